//! `netdev`: per-interface counters from /proc/net/dev (`node_network_{receive,transmit}_*_total`),
//! plus `receive_nohandler` from sysfs, as node_exporter reports them.

use super::{num, parse_error, CollectError, Collector, Context, OpenFiles};
use fleetwatch_common::config::ConfigRegex;
use fleetwatch_common::expfmt::Family;
use std::path::PathBuf;

/// The sixteen /proc/net/dev columns in order, as node_exporter names and describes them.
pub const FIELDS: [(&str, &str); 16] = [
    ("node_network_receive_bytes_total", "Network device statistic receive_bytes."),
    ("node_network_receive_packets_total", "Network device statistic receive_packets."),
    ("node_network_receive_errs_total", "Network device statistic receive_errs."),
    ("node_network_receive_drop_total", "Network device statistic receive_drop."),
    ("node_network_receive_fifo_total", "Network device statistic receive_fifo."),
    ("node_network_receive_frame_total", "Network device statistic receive_frame."),
    ("node_network_receive_compressed_total", "Network device statistic receive_compressed."),
    ("node_network_receive_multicast_total", "Network device statistic receive_multicast."),
    ("node_network_transmit_bytes_total", "Network device statistic transmit_bytes."),
    ("node_network_transmit_packets_total", "Network device statistic transmit_packets."),
    ("node_network_transmit_errs_total", "Network device statistic transmit_errs."),
    ("node_network_transmit_drop_total", "Network device statistic transmit_drop."),
    ("node_network_transmit_fifo_total", "Network device statistic transmit_fifo."),
    ("node_network_transmit_colls_total", "Network device statistic transmit_colls."),
    ("node_network_transmit_carrier_total", "Network device statistic transmit_carrier."),
    ("node_network_transmit_compressed_total", "Network device statistic transmit_compressed."),
];

/// Parses /proc/net/dev into (device, 16 counters).
pub fn parse(text: &str) -> Result<Vec<(String, [f64; 16])>, String> {
    let mut out = Vec::new();
    for line in text.lines().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            continue;
        };
        let mut values = [0.0; 16];
        let mut fields = rest.split_ascii_whitespace();
        for v in values.iter_mut() {
            *v = num(fields.next().ok_or_else(|| format!("too few fields for {}", name.trim()))?)?;
        }
        out.push((name.trim().to_string(), values));
    }
    Ok(out)
}

pub struct Netdev {
    path: PathBuf,
    sys_class_net: PathBuf,
    exclude: Option<ConfigRegex>,
    include: Option<ConfigRegex>,
    files: OpenFiles,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    let cfg = &ctx.config.netdev;
    Ok(Box::new(Netdev {
        path: ctx.paths.proc("net/dev"),
        sys_class_net: ctx.paths.sys("class/net"),
        exclude: cfg.device_exclude.clone(),
        include: cfg.device_include.clone(),
        files: OpenFiles::default(),
    }))
}

impl Netdev {
    fn wanted(&self, device: &str) -> bool {
        self.include.as_ref().is_none_or(|r| r.is_match(device)) && !self.exclude.as_ref().is_some_and(|r| r.is_match(device))
    }
}

impl Collector for Netdev {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let devices = parse(&self.files.read(&self.path)?).map_err(|e| parse_error(&self.path, e))?;
        let mut families: Vec<Family> = FIELDS.iter().map(|(name, help)| Family::counter(*name, *help)).collect();
        let mut nohandler = Family::counter("node_network_receive_nohandler_total", "Network device statistic receive_nohandler.");
        for (device, values) in devices.iter().filter(|(d, _)| self.wanted(d)) {
            for (family, v) in families.iter_mut().zip(values) {
                family.add(&[("device", device)], *v);
            }
            let path = self.sys_class_net.join(device).join("statistics/rx_nohandler");
            if let Some(v) = self.files.read_io(&path).ok().and_then(|s| s.trim().parse::<u64>().ok()) {
                nohandler.add(&[("device", device)], v as f64);
            }
        }
        out.extend(families);
        out.push(nohandler);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "Inter-|   Receive                                                |  Transmit\n face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    lo:   36689      53    0    0    0     0          0         0    36689      53    0    0    0     0       0          0\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n";

    #[test]
    fn parses_every_column() {
        let devs = parse(SAMPLE).unwrap();
        assert_eq!(devs.len(), 2);
        assert_eq!(devs[0].0, "lo");
        assert_eq!(devs[0].1[0], 36689.0);
        assert_eq!(devs[1].0, "eth0");
        assert_eq!(devs[1].1[15], 16.0);
        assert_eq!(devs[1].1[13], 14.0, "colls");
    }

    #[test]
    fn rejects_short_lines() {
        assert!(parse("h\nh\neth0: 1 2 3\n").is_err());
    }
}
