//! Discard and censor rules, compiled once from [`RulesConfig`].

use std::net::IpAddr;

use crate::config::RulesConfig;

/// An IP network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `192.0.2.0/24`, `2001:db8::/32` or a bare address (a /32 or /128). `None` when it
    /// is neither or the prefix is too long for the family.
    pub fn parse(text: &str) -> Option<IpNet> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(IpNet { addr, prefix })
    }

    /// Whether `ip` lies inside the network. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a.get(..full) != b.get(..full) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// Which rule discarded a packet (the `rule` label of `hepstack_packets_discarded_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DiscardRule {
    /// `discard_methods`.
    Method,
    /// `discard_hep_types`.
    HepType,
    /// `discard_ips`.
    Ip,
}

impl DiscardRule {
    /// Every rule, in label order.
    pub const ALL: [DiscardRule; 3] = [DiscardRule::Method, DiscardRule::HepType, DiscardRule::Ip];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DiscardRule::Method => "method",
            DiscardRule::HepType => "hep_type",
            DiscardRule::Ip => "ip",
        }
    }
}

/// Compiled rules.
#[derive(Clone, Debug)]
pub struct Rules {
    discard_methods: Vec<String>,
    discard_types: [bool; 256],
    any_type: bool,
    discard_nets: Vec<IpNet>,
    censor_methods: Vec<String>,
}

impl Rules {
    /// Compiles the configuration; invalid networks are skipped (validation reports them).
    pub fn new(cfg: &RulesConfig) -> Rules {
        let mut discard_types = [false; 256];
        for &t in &cfg.discard_hep_types {
            discard_types[usize::from(t)] = true;
        }
        Rules {
            discard_methods: cfg
                .discard_methods
                .iter()
                .map(|m| m.trim().to_ascii_uppercase())
                .collect(),
            discard_types,
            any_type: !cfg.discard_hep_types.is_empty(),
            discard_nets: cfg
                .discard_ips
                .iter()
                .filter_map(|n| IpNet::parse(n))
                .collect(),
            censor_methods: cfg
                .censor_body_methods
                .iter()
                .map(|m| m.trim().to_ascii_uppercase())
                .collect(),
        }
    }

    /// Rules that only need the HEP header: type and addresses.
    pub fn check_header(&self, hep_type: u8, src: IpAddr, dst: IpAddr) -> Option<DiscardRule> {
        if self.any_type && self.discard_types[usize::from(hep_type)] {
            return Some(DiscardRule::HepType);
        }
        if self
            .discard_nets
            .iter()
            .any(|n| n.contains(src) || n.contains(dst))
        {
            return Some(DiscardRule::Ip);
        }
        None
    }

    /// Whether SIP messages of this (CSeq) method are discarded.
    pub fn discards_method(&self, method: &[u8]) -> bool {
        self.discard_methods
            .iter()
            .any(|m| m.as_bytes().eq_ignore_ascii_case(method))
    }

    /// Whether SIP messages of this (CSeq) method have their body censored.
    pub fn censors_method(&self, method: &[u8]) -> bool {
        self.censor_methods
            .iter()
            .any(|m| m.as_bytes().eq_ignore_ascii_case(method))
    }

    /// True when there are method rules at all (saves the lookup otherwise).
    pub fn has_method_rules(&self) -> bool {
        !self.discard_methods.is_empty() || !self.censor_methods.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn networks() {
        let n = IpNet::parse("10.1.0.0/16").expect("net");
        assert!(n.contains(ip("10.1.200.3")));
        assert!(!n.contains(ip("10.2.0.1")));
        assert!(n.contains(ip("::ffff:10.1.0.9")));
        let n = IpNet::parse("192.0.2.7").expect("host");
        assert!(n.contains(ip("192.0.2.7")));
        assert!(!n.contains(ip("192.0.2.8")));
        let n = IpNet::parse("2001:db8::/33").expect("v6");
        assert!(n.contains(ip("2001:db8:7fff::1")));
        assert!(!n.contains(ip("2001:db8:8000::1")));
        assert!(!n.contains(ip("10.0.0.1")));
        assert!(IpNet::parse("0.0.0.0/0")
            .expect("all")
            .contains(ip("8.8.8.8")));
        assert_eq!(IpNet::parse("10.0.0.0/33"), None);
        assert_eq!(IpNet::parse("nonsense"), None);
        assert_eq!(IpNet::parse("10.0.0.0/x"), None);
    }

    #[test]
    fn rules_match() {
        let rules = Rules::new(&RulesConfig {
            discard_methods: vec!["options".into()],
            discard_hep_types: vec![100],
            discard_ips: vec!["192.0.2.0/24".into()],
            censor_body_methods: vec!["MESSAGE".into()],
        });
        let a = ip("10.0.0.1");
        assert_eq!(rules.check_header(100, a, a), Some(DiscardRule::HepType));
        assert_eq!(rules.check_header(1, a, a), None);
        assert_eq!(
            rules.check_header(1, a, ip("192.0.2.9")),
            Some(DiscardRule::Ip)
        );
        assert!(rules.discards_method(b"OPTIONS"));
        assert!(!rules.discards_method(b"INVITE"));
        assert!(rules.censors_method(b"message"));
        assert!(rules.has_method_rules());
        assert!(!Rules::new(&RulesConfig::default()).has_method_rules());
    }
}
