//! The `health:` section of the exporter config: scheduled checks and the `/probe` modules
//! (blackbox_exporter's module format, the http and tcp probers), with `{var}` expansion and the
//! checks serde cannot make, and their compilation into ready-to-run [`Module`]s.

use super::probe::{HttpProbe, IpPreference, Module, Prober, TcpProbe, TlsSetup};
use fleetwatch_common::client_config::{auth_of, check_auth, AuthorizationConfig, BasicAuthConfig, TlsClientConfig};
use fleetwatch_common::config::ConfigRegex;
use fleetwatch_common::duration::PromDuration;
use hyper::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Deserializer};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

/// `health:` — defaults apply to every check that does not set its own.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    #[serde(default = "default_interval")]
    pub interval: PromDuration,
    #[serde(default = "default_timeout")]
    pub timeout: PromDuration,
    #[serde(default = "default_concurrency")]
    pub max_concurrency: usize,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
    #[serde(default = "default_modules")]
    pub modules: BTreeMap<String, ModuleConfig>,
}

fn default_interval() -> PromDuration {
    PromDuration(Duration::from_secs(15))
}
fn default_timeout() -> PromDuration {
    PromDuration(Duration::from_secs(5))
}
fn default_concurrency() -> usize {
    64
}
/// blackbox_exporter's two everyday modules.
fn default_modules() -> BTreeMap<String, ModuleConfig> {
    let module = |prober| ModuleConfig { prober, timeout: None, http: None, tcp: None };
    BTreeMap::from([("http_2xx".to_string(), module(ProberKind::Http)), ("tcp_connect".to_string(), module(ProberKind::Tcp))])
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            interval: default_interval(),
            timeout: default_timeout(),
            max_concurrency: default_concurrency(),
            vars: BTreeMap::new(),
            checks: Vec::new(),
            modules: default_modules(),
        }
    }
}

/// One scheduled check: `url` (HTTP) or `tcp` (`host:port`), with the HTTP options inline.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckConfig {
    pub name: String,
    pub url: Option<String>,
    pub tcp: Option<String>,
    pub interval: Option<PromDuration>,
    pub timeout: Option<PromDuration>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    /// `tcp` checks: TLS after connecting.
    #[serde(default)]
    pub tls: bool,
    #[serde(flatten)]
    pub http: HttpOptions,
    /// Keys no field took: refused in `checked` (serde's `deny_unknown_fields` does not combine
    /// with `flatten`).
    #[serde(flatten)]
    pub unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

/// blackbox_exporter's `http:` module options (the subset fleetwatch implements).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    pub method: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    #[serde(default)]
    pub valid_http_versions: Vec<String>,
    #[serde(default)]
    pub fail_if_body_matches_regexp: Vec<ConfigRegex>,
    #[serde(default)]
    pub fail_if_body_not_matches_regexp: Vec<ConfigRegex>,
    #[serde(default)]
    pub fail_if_ssl: bool,
    #[serde(default)]
    pub fail_if_not_ssl: bool,
    pub follow_redirects: Option<bool>,
    #[serde(default)]
    pub tls_config: TlsClientConfig,
    pub basic_auth: Option<BasicAuthConfig>,
    pub authorization: Option<AuthorizationConfig>,
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<std::path::PathBuf>,
    pub preferred_ip_protocol: Option<IpProtocol>,
    pub ip_protocol_fallback: Option<bool>,
    /// Bytes of body read at most (0 = no limit); a larger body fails the probe.
    #[serde(default)]
    pub body_size_limit: u64,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpOptions {
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub tls_config: TlsClientConfig,
    pub preferred_ip_protocol: Option<IpProtocol>,
    pub ip_protocol_fallback: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum IpProtocol {
    #[serde(rename = "ip4")]
    Ip4,
    #[serde(rename = "ip6")]
    Ip6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProberKind {
    Http,
    Tcp,
}

/// A `/probe` module, as in blackbox_exporter's config file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleConfig {
    pub prober: ProberKind,
    pub timeout: Option<PromDuration>,
    pub http: Option<HttpOptions>,
    pub tcp: Option<TcpOptions>,
}

/// A check ready to schedule.
#[derive(Debug)]
pub struct Check {
    pub name: String,
    pub target: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub module: Arc<Module>,
}

/// The compiled section: checks to schedule, modules for `/probe`.
#[derive(Debug, Default)]
pub struct Compiled {
    pub checks: Vec<Arc<Check>>,
    pub modules: BTreeMap<String, Arc<Module>>,
    pub max_concurrency: usize,
}

impl HealthConfig {
    /// Validates and compiles everything; errors name the check or module.
    pub fn compile(&self) -> Result<Compiled, String> {
        let mut checks = Vec::new();
        let mut names = HashSet::new();
        for (i, c) in self.checks.iter().enumerate() {
            let at = format!("health.checks[{i}] ({:?})", c.name);
            if !names.insert(c.name.as_str()) {
                return Err(format!("{at}: duplicate check name"));
            }
            checks.push(Arc::new(self.compile_check(c).map_err(|e| format!("{at}: {e}"))?));
        }
        let mut modules = BTreeMap::new();
        for (name, m) in &self.modules {
            let module = compile_module(m).map_err(|e| format!("health.modules.{name}: {e}"))?;
            modules.insert(name.clone(), Arc::new(module));
        }
        if self.max_concurrency == 0 {
            return Err("health.max_concurrency must be at least 1".into());
        }
        Ok(Compiled { checks, modules, max_concurrency: self.max_concurrency })
    }

    fn compile_check(&self, c: &CheckConfig) -> Result<Check, String> {
        if let Some(key) = c.unknown.keys().next() {
            return Err(format!("unknown field `{key}`"));
        }
        if c.name.is_empty() {
            return Err("name must not be empty".into());
        }
        let mut vars = self.vars.clone();
        vars.extend(c.vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        vars.entry("name".into()).or_insert_with(|| c.name.clone());
        let expand = |s: &str| expand_vars(s, &vars);
        let interval = c.interval.unwrap_or(self.interval).0;
        let timeout = c.timeout.unwrap_or(self.timeout).0;
        if interval.is_zero() || timeout.is_zero() {
            return Err("interval and timeout must be positive".into());
        }
        let mut http = c.http.clone();
        for value in http.headers.values_mut() {
            *value = expand(value)?;
        }
        http.body = expand(&http.body)?;
        let (target, prober) = match (&c.url, &c.tcp) {
            (Some(url), None) => {
                let url = expand(url)?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(format!("url {url:?} must start with http:// or https://"));
                }
                (url, Prober::Http(Box::new(http_probe(&http, IpProtocol::Ip4)?)))
            }
            (None, Some(addr)) => {
                let addr = expand(addr)?;
                split_host_port(&addr).ok_or_else(|| format!("tcp {addr:?} must be host:port"))?;
                let tcp = TcpOptions {
                    tls: c.tls,
                    tls_config: http.tls_config.clone(),
                    preferred_ip_protocol: http.preferred_ip_protocol,
                    ip_protocol_fallback: http.ip_protocol_fallback,
                };
                (addr, Prober::Tcp(tcp_probe(&tcp, IpProtocol::Ip4)?))
            }
            _ => return Err("exactly one of url and tcp must be set".into()),
        };
        let module = Arc::new(Module { timeout, prober });
        Ok(Check { name: c.name.clone(), target, interval, timeout, module })
    }
}

fn compile_module(m: &ModuleConfig) -> Result<Module, String> {
    let timeout = m.timeout.map(|d| d.0).unwrap_or(Duration::ZERO);
    let prober = match m.prober {
        ProberKind::Http => {
            if m.tcp.is_some() {
                return Err("a tcp: block needs prober: tcp".into());
            }
            Prober::Http(Box::new(http_probe(&m.http.clone().unwrap_or_default(), IpProtocol::Ip6)?))
        }
        ProberKind::Tcp => {
            if m.http.is_some() {
                return Err("an http: block needs prober: http".into());
            }
            Prober::Tcp(tcp_probe(&m.tcp.clone().unwrap_or_default(), IpProtocol::Ip6)?)
        }
    };
    Ok(Module { timeout, prober })
}

fn ip_preference(p: Option<IpProtocol>, fallback: Option<bool>, default: IpProtocol) -> IpPreference {
    IpPreference { prefer_v6: p.unwrap_or(default) == IpProtocol::Ip6, fallback: fallback.unwrap_or(true) }
}

fn http_probe(o: &HttpOptions, default_ip: IpProtocol) -> Result<HttpProbe, String> {
    let method = o.method.as_deref().unwrap_or("GET");
    let method = hyper::Method::from_bytes(method.as_bytes()).map_err(|_| format!("invalid method {method:?}"))?;
    let mut headers = Vec::new();
    let mut host = None;
    for (k, v) in &o.headers {
        if k.eq_ignore_ascii_case("host") {
            host = Some(v.clone());
            continue;
        }
        let name = HeaderName::from_bytes(k.as_bytes()).map_err(|_| format!("invalid header name {k:?}"))?;
        let value = HeaderValue::from_str(v).map_err(|_| format!("invalid value of header {k:?}"))?;
        headers.push((name, value));
    }
    let mut authz = o.authorization.clone();
    if o.bearer_token.is_some() || o.bearer_token_file.is_some() {
        if authz.is_some() {
            return Err("at most one of bearer_token, bearer_token_file and authorization may be set".into());
        }
        authz = Some(AuthorizationConfig {
            kind: "Bearer".into(),
            credentials: o.bearer_token.clone(),
            credentials_file: o.bearer_token_file.clone(),
        });
    }
    check_auth(&o.basic_auth, &authz)?;
    Ok(HttpProbe {
        method,
        headers,
        host,
        body: bytes::Bytes::from(o.body.clone()),
        valid_status_codes: o.valid_status_codes.clone(),
        valid_http_versions: o.valid_http_versions.clone(),
        body_matches: o.fail_if_body_matches_regexp.iter().map(|r| r.0.clone()).collect(),
        body_not_matches: o.fail_if_body_not_matches_regexp.iter().map(|r| r.0.clone()).collect(),
        fail_if_ssl: o.fail_if_ssl,
        fail_if_not_ssl: o.fail_if_not_ssl,
        follow_redirects: o.follow_redirects.unwrap_or(true),
        tls: TlsSetup::new(&o.tls_config)?,
        auth: auth_of(&o.basic_auth, &authz),
        ip: ip_preference(o.preferred_ip_protocol, o.ip_protocol_fallback, default_ip),
        body_size_limit: o.body_size_limit,
    })
}

fn tcp_probe(o: &TcpOptions, default_ip: IpProtocol) -> Result<TcpProbe, String> {
    let tls = if o.tls { Some(TlsSetup::new(&o.tls_config)?) } else { None };
    Ok(TcpProbe { tls, ip: ip_preference(o.preferred_ip_protocol, o.ip_protocol_fallback, default_ip) })
}

/// Replaces `{name}` by its value. Braces around anything that is not an identifier (JSON bodies)
/// stay as they are; an identifier with no value is an error.
pub fn expand_vars(s: &str, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let ident_len = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
        let is_var = ident_len > 0 && after[ident_len..].starts_with('}') && !after.starts_with(|c: char| c.is_ascii_digit());
        if !is_var {
            out.push('{');
            rest = after;
            continue;
        }
        let name = &after[..ident_len];
        let value = vars.get(name).ok_or_else(|| format!("unknown variable {{{name}}} (set it in vars)"))?;
        out.push_str(value);
        rest = &after[ident_len + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `host:port` or `[v6]:port`.
pub fn split_host_port(s: &str) -> Option<(&str, u16)> {
    let (host, port) = s.rsplit_once(':')?;
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Some((host, port.parse().ok()?)).filter(|(h, _)| !h.is_empty())
}

/// Deserializes `health:` so an explicitly empty section (`health:`) means the defaults.
pub fn optional_health<'de, D: Deserializer<'de>>(d: D) -> Result<HealthConfig, D::Error> {
    Ok(Option::<HealthConfig>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwatch_common::config::parse_yaml;

    fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn variables_expand_and_json_braces_stay() {
        let v = vars(&[("app", "shop"), ("port", "8080")]);
        assert_eq!(expand_vars("http://{app}.local:{port}/h", &v).unwrap(), "http://shop.local:8080/h");
        assert_eq!(expand_vars(r#"{"a": {1}, "b": "{app}"}"#, &v).unwrap(), r#"{"a": {1}, "b": "shop"}"#);
        assert_eq!(expand_vars("{", &v).unwrap(), "{");
        assert!(expand_vars("{nope}", &v).unwrap_err().contains("{nope}"));
    }

    #[test]
    fn host_port() {
        assert_eq!(split_host_port("db:5432"), Some(("db", 5432)));
        assert_eq!(split_host_port("[::1]:80"), Some(("::1", 80)));
        assert_eq!(split_host_port("db"), None);
        assert_eq!(split_host_port(":80"), None);
    }

    fn compile(yaml: &str) -> Result<Compiled, String> {
        parse_yaml::<HealthConfig>(yaml, "x.yml").map_err(|e| e.to_string())?.compile()
    }

    #[test]
    fn checks_compile_with_defaults_and_vars() {
        let c = compile(
            "interval: 30s\nvars: {host: 127.0.0.1}\nchecks:\n  - name: a\n    url: http://{host}:1/{name}\n    timeout: 2s\n  - name: b\n    tcp: '{host}:22'\n    interval: 1s\n",
        )
        .unwrap();
        assert_eq!(c.checks[0].target, "http://127.0.0.1:1/a");
        assert_eq!((c.checks[0].interval, c.checks[0].timeout), (Duration::from_secs(30), Duration::from_secs(2)));
        assert_eq!(c.checks[1].target, "127.0.0.1:22");
        assert_eq!((c.checks[1].interval, c.checks[1].timeout), (Duration::from_secs(1), Duration::from_secs(5)));
        assert_eq!(c.modules.keys().collect::<Vec<_>>(), ["http_2xx", "tcp_connect"]);
    }

    #[test]
    fn bad_checks_are_named() {
        let err = compile("checks:\n  - name: a\n    url: http://x/\n    methd: GET\n").unwrap_err();
        assert!(err.contains("health.checks[0] (\"a\"): unknown field `methd`"), "{err}");
        let err = compile("checks:\n  - name: a\n    url: ftp://x/\n").unwrap_err();
        assert!(err.contains("must start with http"), "{err}");
        let err = compile("checks:\n  - name: a\n    url: http://x/\n    tcp: x:1\n").unwrap_err();
        assert!(err.contains("exactly one of url and tcp"), "{err}");
        let err = compile("checks:\n  - {name: a, tcp: 'x:1'}\n  - {name: a, tcp: 'x:2'}\n").unwrap_err();
        assert!(err.contains("duplicate check name"), "{err}");
        let err = compile("checks:\n  - {name: a, url: 'http://{who}/'}\n").unwrap_err();
        assert!(err.contains("unknown variable {who}"), "{err}");
        let err = compile("modules:\n  m: {prober: icmp}\n").unwrap_err();
        assert!(err.starts_with("x.yml:2:"), "{err}");
        let err = compile("modules:\n  m:\n    prober: http\n    http: {query_response: []}\n").unwrap_err();
        assert!(err.contains("unknown field `query_response`"), "{err}");
        let err = compile("checks:\n  - {name: a, url: 'http://x/', fail_if_body_matches_regexp: ['(']}\n").unwrap_err();
        assert!(err.contains("invalid regex"), "{err}");
    }
}
