//! Discard and censor rules, compiled once from [`RulesConfig`].

use std::net::IpAddr;

use ingest::IpNet;

use crate::config::RulesConfig;

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
