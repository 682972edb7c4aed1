//! IP aliases: names for addresses, networks and ports, shown in searches, call rows and the
//! call flow's host columns.
//!
//! An alias maps an IP address or CIDR network, optionally narrowed to one port and/or one
//! capture node, to a name (`10.0.0.0/24` → `core SBCs`, `192.0.2.10` port 5061 → `PBX TLS`).
//! They are kept in the store's settings namespace [`ALIAS_NAMESPACE`], one JSON entry per
//! id. When several aliases cover an endpoint, the most specific wins: the longest prefix,
//! then one with a port, then one with a node.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use store::{Store, StoreError};

/// Settings namespace of the alias entries.
pub const ALIAS_NAMESPACE: &str = "aliases";

/// Longest alias name, in bytes.
pub const MAX_ALIAS_NAME_BYTES: usize = 128;

/// Most aliases kept (each lookup scans them all).
pub const MAX_ALIASES: usize = 10_000;

/// One alias as stored and as the API shows it (plus its `id`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alias {
    /// IP address (`192.0.2.10`, `2001:db8::1`) or CIDR network (`10.0.0.0/8`).
    pub address: String,
    /// Only this port, when given.
    #[serde(default)]
    pub port: Option<u16>,
    /// Only traffic seen by this capture node, when given.
    #[serde(default)]
    pub node: Option<String>,
    /// The name shown.
    pub name: String,
}

/// A parsed network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `ip` or `ip/prefix`; host bits beyond the prefix are an error, so a typo such
    /// as `10.0.0.1/8` is not silently widened.
    pub fn parse(text: &str) -> Result<Network, String> {
        let (ip, prefix) = match text.trim().split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (text.trim(), None),
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or CIDR network"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("prefix length of {text:?} must be 0 to {max}"))?,
        };
        let net = Network { addr, prefix };
        if net.masked(addr) != addr_bits(addr) {
            return Err(format!(
                "{text:?} has host bits set beyond the /{prefix} prefix"
            ));
        }
        Ok(net)
    }

    fn masked(&self, ip: IpAddr) -> u128 {
        let bits = addr_bits(ip);
        let width = if ip.is_ipv4() { 32 } else { 128 };
        if self.prefix == 0 {
            return 0;
        }
        let keep = u32::from(self.prefix);
        let shift = width - keep;
        if shift >= 128 {
            0
        } else {
            (bits >> shift) << shift
        }
    }

    /// Whether `ip` lies in the network (families must agree).
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.addr.is_ipv4() == ip.is_ipv4() && self.masked(ip) == addr_bits(self.addr)
    }
}

fn addr_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl Alias {
    /// Checks the entry: a valid address or network and a non-empty name of bounded length.
    pub fn validate(&self) -> Result<Network, String> {
        let net = Network::parse(&self.address)?;
        let name = self.name.trim();
        if name.is_empty() || name.len() > MAX_ALIAS_NAME_BYTES {
            return Err(format!("name must be 1 to {MAX_ALIAS_NAME_BYTES} bytes"));
        }
        if self
            .node
            .as_deref()
            .is_some_and(|n| n.is_empty() || n.len() > 256)
        {
            return Err("node must be 1 to 256 bytes".into());
        }
        Ok(net)
    }
}

/// The aliases in force, ready for lookups.
#[derive(Clone, Debug, Default)]
pub struct AliasTable {
    entries: Vec<(Network, Alias)>,
}

impl AliasTable {
    /// Builds a table; invalid entries are skipped.
    pub fn new(aliases: impl IntoIterator<Item = Alias>) -> AliasTable {
        let entries = aliases
            .into_iter()
            .filter_map(|a| Some((a.validate().ok()?, a)))
            .collect();
        AliasTable { entries }
    }

    /// Reads every alias from the store.
    pub fn load(store: &dyn Store) -> Result<AliasTable, StoreError> {
        Ok(AliasTable::new(list(store)?.into_iter().map(|(_, a)| a)))
    }

    /// Whether there are no aliases.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The most specific alias name of an endpoint seen by `node`.
    pub fn lookup(&self, ip: IpAddr, port: u16, node: Option<&str>) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(net, a)| {
                net.contains(ip)
                    && a.port.map_or(true, |p| p == port)
                    && a.node.as_deref().map_or(true, |n| Some(n) == node)
            })
            .max_by_key(|(net, a)| (net.prefix, a.port.is_some(), a.node.is_some()))
            .map(|(_, a)| a.name.as_str())
    }

    /// The most specific alias of an address when port and node are unknown (call rows):
    /// only aliases without a port or node condition apply.
    pub fn lookup_ip(&self, ip: IpAddr) -> Option<&str> {
        self.entries
            .iter()
            .filter(|(net, a)| net.contains(ip) && a.port.is_none() && a.node.is_none())
            .max_by_key(|(net, _)| net.prefix)
            .map(|(_, a)| a.name.as_str())
    }
}

/// Every stored alias with its id, ordered by id (unparsable entries skipped).
pub fn list(store: &dyn Store) -> Result<Vec<(String, Alias)>, StoreError> {
    Ok(store
        .settings(ALIAS_NAMESPACE)?
        .into_iter()
        .filter_map(|(id, json)| Some((id, serde_json::from_str(&json).ok()?)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alias(address: &str, port: Option<u16>, node: Option<&str>, name: &str) -> Alias {
        Alias {
            address: address.into(),
            port,
            node: node.map(Into::into),
            name: name.into(),
        }
    }

    #[test]
    fn networks() {
        let n = Network::parse("10.0.0.0/8").expect("cidr");
        assert!(n.contains("10.200.1.1".parse().expect("ip")));
        assert!(!n.contains("11.0.0.1".parse().expect("ip")));
        assert!(!n.contains("::a00:1".parse().expect("ip")));
        let all = Network::parse("0.0.0.0/0").expect("all");
        assert!(all.contains("192.0.2.1".parse().expect("ip")));
        let v6 = Network::parse("2001:db8::/32").expect("v6");
        assert!(v6.contains("2001:db8:1::5".parse().expect("ip")));
        assert!(!v6.contains("2001:db9::5".parse().expect("ip")));
        assert!(Network::parse("2001:db8::1/128").is_ok());
        for bad in ["10.0.0.1/8", "10.0.0.0/33", "x", "10.0.0.0/", "::/129"] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn most_specific_wins() {
        let t = AliasTable::new([
            alias("10.0.0.0/8", None, None, "core"),
            alias("10.0.0.5", None, None, "sbc"),
            alias("10.0.0.5", Some(5061), None, "sbc-tls"),
            alias("10.0.0.5", Some(5061), Some("n2"), "sbc-tls-n2"),
            alias("bogus", None, None, "skipped"),
        ]);
        let ip = "10.0.0.5".parse().expect("ip");
        assert_eq!(t.lookup(ip, 5060, None), Some("sbc"));
        assert_eq!(t.lookup(ip, 5061, Some("n1")), Some("sbc-tls"));
        assert_eq!(t.lookup(ip, 5061, Some("n2")), Some("sbc-tls-n2"));
        assert_eq!(
            t.lookup("10.9.9.9".parse().expect("ip"), 1, None),
            Some("core")
        );
        assert_eq!(t.lookup("192.0.2.1".parse().expect("ip"), 1, None), None);
    }
}
