//! Notification texts: the default subject, title, text and HTML templates (Alertmanager-like:
//! `[FIRING:2] HighCPU (web critical)`), and user overrides parsed once at build time.

use crate::notify::message::Notification;
use crate::template::Template;

/// `[FIRING:n] <group label values> (<other common label values>)`.
pub const DEFAULT_SUBJECT: &str = concat!(
    "[{{ .Status | toUpper }}{{ if eq .Status \"firing\" }}:{{ len .Alerts.Firing }}{{ end }}] ",
    "{{ join \" \" .GroupLabels.Values }}",
    "{{ with .CommonLabels.Remove .GroupLabels.Names }} ({{ join \" \" .Values }}){{ end }}",
);

/// One paragraph per alert: status, name, summary, labels, times and where it comes from.
pub const DEFAULT_TEXT: &str = concat!(
    "{{ range .Alerts }}",
    "{{ .Status | toUpper }} {{ .Labels.alertname }}{{ with .Annotations.summary }}: {{ . }}{{ end }}\n",
    "{{ with .Annotations.description }}{{ . }}\n{{ end }}",
    "{{ range .Labels.SortedPairs }}  {{ .Name }} = {{ .Value }}\n{{ end }}",
    "  started {{ .StartsAt.Format \"2006-01-02 15:04:05 MST\" }}",
    "{{ if eq .Status \"resolved\" }}, resolved {{ .EndsAt.Format \"2006-01-02 15:04:05 MST\" }}{{ end }}\n",
    "{{ with .GeneratorURL }}  source: {{ . }}\n{{ end }}",
    "\n{{ end }}",
    "{{ with .ExternalURL }}Sent by fleetwatch-alerter {{ . }}\n{{ end }}",
);

/// The HTML body: one table per alert, escaped.
pub const DEFAULT_HTML: &str = concat!(
    "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{{ template_subject }}</title></head>\n",
    "<body style=\"font-family: sans-serif\">\n",
    "<h2>{{ len .Alerts.Firing }} firing, {{ len .Alerts.Resolved }} resolved</h2>\n",
    "{{ range .Alerts }}<table style=\"border-collapse: collapse; margin-bottom: 1em\">\n",
    "<tr><th colspan=\"2\" style=\"text-align: left; color: {{ if eq .Status \"firing\" }}#c0392b{{ else }}#27ae60{{ end }}\">",
    "{{ .Status | toUpper }} {{ .Labels.alertname }}</th></tr>\n",
    "{{ range .Annotations.SortedPairs }}<tr><td><b>{{ .Name }}</b></td><td>{{ .Value }}</td></tr>\n{{ end }}",
    "{{ range .Labels.SortedPairs }}<tr><td>{{ .Name }}</td><td>{{ .Value }}</td></tr>\n{{ end }}",
    "<tr><td>started</td><td>{{ .StartsAt.Format \"2006-01-02 15:04:05 MST\" }}</td></tr>\n",
    "{{ if eq .Status \"resolved\" }}<tr><td>resolved</td><td>{{ .EndsAt.Format \"2006-01-02 15:04:05 MST\" }}</td></tr>\n{{ end }}",
    "{{ with .GeneratorURL }}<tr><td>source</td><td><a href=\"{{ . }}\">{{ . }}</a></td></tr>\n{{ end }}",
    "</table>\n{{ end }}",
    "{{ with .ExternalURL }}<p>Sent by <a href=\"{{ . }}\">fleetwatch-alerter</a></p>\n{{ end }}",
    "</body></html>\n",
);

/// A short text for chat messages: one line per alert.
pub const DEFAULT_CHAT_TEXT: &str = concat!(
    "{{ range .Alerts }}*{{ .Status | toUpper }}* {{ .Labels.alertname }}",
    "{{ with .Labels.instance }} on {{ . }}{{ end }}",
    "{{ with .Annotations.summary }}: {{ . }}{{ end }}\n{{ end }}",
);

/// A parsed notification template.
#[derive(Debug)]
pub struct Text(Template);

impl Text {
    /// Parses `text` (a user override) or `default`; `name` appears in errors.
    pub fn parse(name: &str, text: Option<&str>, default: &str, html: bool) -> Result<Text, String> {
        let src = text.unwrap_or(default);
        // The HTML default's <title> repeats the subject; expand it here so templates stay plain.
        let src = src.replace("{{ template_subject }}", DEFAULT_SUBJECT);
        Template::parse_notification(name, &src, html).map(Text).map_err(|e| e.to_string())
    }

    /// Renders over `n`; a failing template is a fatal delivery error (retrying cannot help).
    pub fn render(&self, n: &Notification) -> Result<String, super::SendError> {
        self.0.render_notification(n).map_err(|e| super::SendError::fatal(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::receiver::payload::fixtures::notification;

    fn render(text: &str, html: bool) -> String {
        Text::parse("t", Some(text), "", html).unwrap().render(&notification()).unwrap()
    }

    #[test]
    fn default_subject_looks_like_alertmanagers() {
        let s = Text::parse("subject", None, DEFAULT_SUBJECT, false).unwrap().render(&notification()).unwrap();
        assert_eq!(s, "[FIRING:1] HighCPU (critical)");
        let mut n = notification();
        n.alerts.remove(0);
        n.summarize();
        let s = Text::parse("subject", None, DEFAULT_SUBJECT, false).unwrap().render(&n).unwrap();
        assert_eq!(s, "[RESOLVED] HighCPU (web-2:9100 critical)");
    }

    #[test]
    fn default_text_lists_every_alert() {
        let s = Text::parse("text", None, DEFAULT_TEXT, false).unwrap().render(&notification()).unwrap();
        let want = "FIRING HighCPU: CPU busy on web-1\n  alertname = HighCPU\n  instance = web-1:9100\n  severity = critical\n  started 2023-11-14 22:13:20 UTC\n  source: http://alerter:9911/graph?g0.expr=cpu\n\n\
RESOLVED HighCPU: CPU busy on web-2\n  alertname = HighCPU\n  instance = web-2:9100\n  severity = critical\n  started 2023-11-14 21:56:40 UTC, resolved 2023-11-14 22:14:20 UTC\n  source: http://alerter:9911/graph?g0.expr=cpu\n\n\
Sent by fleetwatch-alerter http://alerter:9911\n";
        assert_eq!(s, want);
    }

    #[test]
    fn data_model_fields_and_functions() {
        assert_eq!(render("{{ .Receiver }} {{ .Status }} {{ len .Alerts }} {{ len .Alerts.Resolved }}", false), "team-x firing 2 1");
        assert_eq!(render("{{ range $i, $a := .Alerts }}{{ $i }}={{ $a.Labels.instance }} {{ end }}", false), "0=web-1:9100 1=web-2:9100 ");
        assert_eq!(render("{{ .CommonLabels.SortedPairs.Names | join \",\" }}", false), "alertname,severity");
        assert_eq!(render("{{ .GroupLabels.alertname | toUpper }}", false), "HIGHCPU");
        assert_eq!(render("{{ (index .Alerts 1).EndsAt }}", false), "2023-11-14 22:14:20.5 +0000 UTC");
        assert_eq!(render("{{ (index .Alerts 0).EndsAt }}", false), "0001-01-01 00:00:00 +0000 UTC");
        assert_eq!(render("{{ (index .Alerts 0).StartsAt.Unix }}", false), "1700000000");
        assert_eq!(render("{{ join \"-\" (stringSlice \"a\" \"b\") }} {{ trimSpace \"  x \" }}", false), "a-b x");
        assert_eq!(render("{{ range .CommonLabels }}{{ . }};{{ end }}", false), "HighCPU;critical;");
        assert_eq!(render("{{ (index .Alerts 0).StartsAt.Format \"Mon Jan _2 03:04:05PM 2006\" }}", false), "Tue Nov 14 10:13:20PM 2023");
    }

    #[test]
    fn html_templates_escape_values_unless_safe() {
        let mut n = notification();
        n.alerts[0].annotations.insert("summary".into(), "<b>load</b> & \"more\"".into());
        let t = Text::parse("h", Some("<p>{{ (index .Alerts 0).Annotations.summary }}</p>{{ safeHtml \"<br>\" }}"), "", true).unwrap();
        assert_eq!(t.render(&n).unwrap(), "<p>&lt;b&gt;load&lt;/b&gt; &amp; &#34;more&#34;</p><br>");
        let html = Text::parse("h", None, DEFAULT_HTML, true).unwrap().render(&n).unwrap();
        assert!(html.contains("&lt;b&gt;load") && html.contains("<title>[FIRING:1] HighCPU (critical)</title>"), "{html}");
    }

    #[test]
    fn bad_templates_fail_at_build_or_render_time() {
        assert!(Text::parse("t", Some("{{ .Alerts"), "", false).unwrap_err().contains("t"));
        assert!(Text::parse("t", Some("{{ query \"up\" }}"), "", false).unwrap_err().contains("not defined"));
        let t = Text::parse("t", Some("{{ .Nope }}"), "", false).unwrap();
        let e = t.render(&notification()).unwrap_err();
        assert!(!e.retryable && e.msg.contains("Nope"), "{}", e.msg);
    }

    #[test]
    fn random_notification_templates_never_panic() {
        let words = [
            "{{",
            "}}",
            " ",
            ".",
            ".Alerts",
            ".Firing",
            ".Resolved",
            ".Labels",
            ".Annotations",
            ".StartsAt",
            ".EndsAt",
            ".Format",
            ".Unix",
            ".SortedPairs",
            ".Names",
            ".Values",
            ".Remove",
            ".Name",
            ".Value",
            ".Status",
            ".GroupLabels",
            ".CommonLabels",
            "$",
            "$x",
            ":=",
            "|",
            "(",
            ")",
            "range",
            "with",
            "if",
            "else",
            "end",
            "index",
            "len",
            "join",
            "stringSlice",
            "safeHtml",
            "trimSpace",
            "toUpper",
            "printf",
            "eq",
            "\"%v\"",
            "\"2006 .999 Jan _2 -07:00\"",
            "\",\"",
            "0",
            "1",
            "-1",
            "99",
            "nil",
        ];
        let n = notification();
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..4000 {
            let len = 1 + (seed % 14) as usize;
            let mut text = String::from("{{ ");
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                text.push_str(words[(seed % words.len() as u64) as usize]);
                text.push(' ');
            }
            text.push_str("}}");
            for html in [false, true] {
                if let Ok(t) = Text::parse("fuzz", Some(&text), "", html) {
                    let _ = t.render(&n);
                }
            }
        }
    }
}
