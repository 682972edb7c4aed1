//! Address patterns of target groups: an IP or CIDR, optionally with a port.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// Why an address pattern does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an IP, CIDR or socket address.
    #[error("{0:?} is not an IP address, CIDR prefix or IP:port")]
    Syntax(String),
    /// Prefix length larger than the address.
    #[error("{0:?}: prefix length out of range")]
    Prefix(String),
}

/// One address pattern: `net/prefix` with an optional port (`None` = any port).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrPattern {
    net: IpAddr,
    prefix: u8,
    port: Option<u16>,
}

impl AddrPattern {
    /// True when `addr` lies in the pattern.
    pub fn matches(&self, addr: SocketAddr) -> bool {
        if let Some(p) = self.port {
            if p != addr.port() {
                return false;
            }
        }
        let ip = match (self.net, addr.ip()) {
            // IPv4-mapped IPv6 addresses match IPv4 patterns.
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for AddrPattern {
    type Err = TargetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(sa) = s.parse::<SocketAddr>() {
            let ip = sa.ip();
            return Ok(AddrPattern {
                net: ip,
                prefix: if ip.is_ipv4() { 32 } else { 128 },
                port: Some(sa.port()),
            });
        }
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, p)) => (ip, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = ip.parse().map_err(|_| TargetError::Syntax(s.into()))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().map_err(|_| TargetError::Syntax(s.into()))?,
            None => max,
        };
        if prefix > max {
            return Err(TargetError::Prefix(s.into()));
        }
        Ok(AddrPattern {
            net,
            prefix,
            port: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn patterns_match_ip_cidr_and_port() {
        let p: AddrPattern = "10.0.0.0/8".parse().unwrap();
        assert!(p.matches(sa("10.1.2.3:5060")));
        assert!(!p.matches(sa("11.1.2.3:5060")));
        assert!(p.matches(sa("[::ffff:10.1.2.3]:5060")));
        let p: AddrPattern = "127.0.0.1:5060".parse().unwrap();
        assert!(p.matches(sa("127.0.0.1:5060")));
        assert!(!p.matches(sa("127.0.0.1:5070")));
        let p: AddrPattern = "[2001:db8::1]:5061".parse().unwrap();
        assert!(p.matches(sa("[2001:db8::1]:5061")));
        let p: AddrPattern = "2001:db8::/32".parse().unwrap();
        assert!(p.matches(sa("[2001:db8:1::5]:1")));
        assert!(!p.matches(sa("10.0.0.1:1")));
        let p: AddrPattern = "0.0.0.0/0".parse().unwrap();
        assert!(p.matches(sa("1.2.3.4:5")));
        assert!("10.0.0.0/33".parse::<AddrPattern>().is_err());
        assert!("host.example".parse::<AddrPattern>().is_err());
    }
}
