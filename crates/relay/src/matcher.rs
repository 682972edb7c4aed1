//! Rule conditions compiled from [`MatchConfig`], the per-packet context they read, and the
//! minimal SIP view (start line and header lookup) used when a rule needs SIP. SIP is looked at
//! only by rules with `sip_method`/`sip_status`, by rewrites taking a header and by balancing
//! SIP packets on their Call-ID; everything else matches on the decoded HEP chunks alone.

use std::borrow::Cow;
use std::net::IpAddr;

use ingest::{IpNet, Transport};

use crate::config::{ConfigError, HepTypeSpec, MatchConfig};

/// The HEP type number for a name (case-insensitive): `sip` 1, `xmpp` 2, `sdp` 3, `rtp` 4,
/// `rtcp` 5, `mgcp` 6, `megaco` 7, `m2ua` 8, `m3ua` 9, `iax` 10, `h322` 11, `h321` 12, `m2pa` 13,
/// `mos` / `rtcp_xr` 34, `rtcpxr` 35, `horaclifix` 38, `sip_json` 50, `dns` 53, `isup` 54,
/// `rtsp` 55, `diameter` 56, `gsm_map` 57, `rtcp_pion` 58, `cdr` 60, `verto` 61, `log` 100.
pub fn hep_type_from_name(name: &str) -> Option<u8> {
    let n = match name.to_ascii_lowercase().as_str() {
        "sip" => 1,
        "xmpp" => 2,
        "sdp" => 3,
        "rtp" => 4,
        "rtcp" => 5,
        "mgcp" => 6,
        "megaco" => 7,
        "m2ua" => 8,
        "m3ua" => 9,
        "iax" => 10,
        "h322" => 11,
        "h321" => 12,
        "m2pa" => 13,
        "mos" | "rtcp_xr" => 34,
        "rtcpxr" => 35,
        "horaclifix" => 38,
        "sip_json" => 50,
        "dns" => 53,
        "isup" => 54,
        "rtsp" => 55,
        "diameter" => 56,
        "gsm_map" => 57,
        "rtcp_pion" => 58,
        "cdr" => 60,
        "verto" => 61,
        "log" => 100,
        _ => return None,
    };
    Some(n)
}

/// HEP type of SIP.
pub const SIP: u8 = 1;

/// A SIP status condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StatusPattern {
    /// This code.
    Exact(u16),
    /// Any code of this class (the hundreds digit).
    Class(u16),
}

impl StatusPattern {
    fn parse(text: &str) -> Option<StatusPattern> {
        let t = text.trim().to_ascii_lowercase();
        if let Some(d) = t.strip_suffix("xx") {
            let class: u16 = d.parse().ok()?;
            return (1..=6)
                .contains(&class)
                .then_some(StatusPattern::Class(class));
        }
        let code: u16 = t.parse().ok()?;
        (100..=699)
            .contains(&code)
            .then_some(StatusPattern::Exact(code))
    }

    fn matches(self, code: u16) -> bool {
        match self {
            StatusPattern::Exact(c) => c == code,
            StatusPattern::Class(c) => code / 100 == c,
        }
    }
}

/// Compiled conditions of one rule.
#[derive(Clone, Debug, Default)]
pub(crate) struct Matcher {
    hep_type: Vec<u8>,
    capture_id: Vec<u32>,
    node: Vec<Vec<u8>>,
    src_ip: Vec<IpNet>,
    dst_ip: Vec<IpNet>,
    ip: Vec<IpNet>,
    src_port: Vec<u16>,
    dst_port: Vec<u16>,
    transport: Vec<Transport>,
    hep_version: Vec<u8>,
    auth_key: Option<Vec<u8>>,
    sip_method: Vec<Vec<u8>>,
    sip_status: Vec<StatusPattern>,
    /// The configuration it was compiled from (for descriptions).
    source: MatchConfig,
}

fn nets(place: &str, field: &str, list: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    list.iter()
        .map(|t| {
            IpNet::parse(t).ok_or_else(|| ConfigError::BadMatch {
                place: place.into(),
                why: format!("{field}: {t:?} is not an address or CIDR network"),
            })
        })
        .collect()
}

impl Matcher {
    /// Compiles the conditions of the rule called `place`.
    pub(crate) fn compile(place: &str, m: &MatchConfig) -> Result<Matcher, ConfigError> {
        let bad = |why: String| ConfigError::BadMatch {
            place: place.into(),
            why,
        };
        let hep_type = m
            .hep_type
            .iter()
            .map(|t| match t {
                HepTypeSpec::Number(n) => Ok(*n),
                HepTypeSpec::Name(name) => hep_type_from_name(name)
                    .or_else(|| name.parse().ok())
                    .ok_or_else(|| bad(format!("hep_type: unknown type name {name:?}"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let transport = m
            .transport
            .iter()
            .map(|t| match t.to_ascii_lowercase().as_str() {
                "udp" => Ok(Transport::Udp),
                "tcp" => Ok(Transport::Tcp),
                "tls" => Ok(Transport::Tls),
                other => Err(bad(format!("transport: {other:?} is not udp, tcp or tls"))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(v) = m.hep_version.iter().find(|v| !(1..=3).contains(*v)) {
            return Err(bad(format!("hep_version: {v} is not 1, 2 or 3")));
        }
        let sip_status = m
            .sip_status
            .iter()
            .map(|s| {
                StatusPattern::parse(s).ok_or_else(|| {
                    bad(format!("sip_status: {s:?} is not a code or class like 4xx"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(bad_method) = m.sip_method.iter().find(|s| {
            s.is_empty()
                || !s
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }) {
            return Err(bad(format!(
                "sip_method: {bad_method:?} is not a method token"
            )));
        }
        Ok(Matcher {
            hep_type,
            capture_id: m.capture_id.clone(),
            node: m.node.iter().map(|n| n.as_bytes().to_vec()).collect(),
            src_ip: nets(place, "src_ip", &m.src_ip)?,
            dst_ip: nets(place, "dst_ip", &m.dst_ip)?,
            ip: nets(place, "ip", &m.ip)?,
            src_port: m.src_port.clone(),
            dst_port: m.dst_port.clone(),
            transport,
            hep_version: m.hep_version.clone(),
            auth_key: m.auth_key.as_ref().map(|k| k.as_bytes().to_vec()),
            sip_method: m
                .sip_method
                .iter()
                .map(|s| s.to_ascii_uppercase().into_bytes())
                .collect(),
            sip_status,
            source: m.clone(),
        })
    }

    /// The conditions in words, for `--check`.
    pub(crate) fn describe(&self) -> String {
        fn list<T: std::fmt::Display>(name: &str, v: &[T], out: &mut Vec<String>) {
            if !v.is_empty() {
                let items: Vec<String> = v.iter().map(ToString::to_string).collect();
                out.push(format!("{name} in [{}]", items.join(", ")));
            }
        }
        let mut parts = Vec::new();
        let types: Vec<String> = self
            .hep_type
            .iter()
            .map(|t| format!("{t} ({})", hep::proto_type_name(*t)))
            .collect();
        list("hep_type", &types, &mut parts);
        list("capture_id", &self.capture_id, &mut parts);
        let nodes: Vec<String> = self
            .node
            .iter()
            .map(|n| format!("{:?}", String::from_utf8_lossy(n)))
            .collect();
        list("node", &nodes, &mut parts);
        list("src_ip", &self.source.src_ip, &mut parts);
        list("dst_ip", &self.source.dst_ip, &mut parts);
        list("ip (src or dst)", &self.source.ip, &mut parts);
        list("src_port", &self.src_port, &mut parts);
        list("dst_port", &self.dst_port, &mut parts);
        let transports: Vec<&str> = self.transport.iter().map(|t| t.as_str()).collect();
        list("transport", &transports, &mut parts);
        list("hep_version", &self.hep_version, &mut parts);
        if self.auth_key.is_some() {
            parts.push("auth_key matches".into());
        }
        let methods: Vec<String> = self
            .sip_method
            .iter()
            .map(|m| String::from_utf8_lossy(m).into_owned())
            .collect();
        list("sip_method", &methods, &mut parts);
        let statuses: Vec<String> = self
            .sip_status
            .iter()
            .map(|s| match s {
                StatusPattern::Exact(c) => c.to_string(),
                StatusPattern::Class(c) => format!("{c}xx"),
            })
            .collect();
        list("sip_status", &statuses, &mut parts);
        if parts.is_empty() {
            "any packet".into()
        } else {
            parts.join(" and ")
        }
    }

    /// Whether the rule looks into SIP.
    pub(crate) fn needs_sip(&self) -> bool {
        !self.sip_method.is_empty() || !self.sip_status.is_empty()
    }

    /// Evaluates the conditions, cheapest first; SIP is parsed only when the HEP conditions
    /// already hold.
    pub(crate) fn matches(&self, ctx: &mut PacketCtx<'_>) -> bool {
        let p = ctx.packet;
        if !self.hep_type.is_empty() && !self.hep_type.contains(&p.proto_type.unwrap_or(0)) {
            return false;
        }
        if !self.transport.is_empty() && !self.transport.contains(&ctx.transport) {
            return false;
        }
        if !self.hep_version.is_empty() && !self.hep_version.contains(&p.version) {
            return false;
        }
        if !self.capture_id.is_empty()
            && !p
                .capture_id_normalized()
                .is_some_and(|c| self.capture_id.contains(&c))
        {
            return false;
        }
        if !self.src_port.is_empty() && !p.src_port.is_some_and(|v| self.src_port.contains(&v)) {
            return false;
        }
        if !self.dst_port.is_empty() && !p.dst_port.is_some_and(|v| self.dst_port.contains(&v)) {
            return false;
        }
        if !self.src_ip.is_empty() && !in_any(&self.src_ip, p.src_ip) {
            return false;
        }
        if !self.dst_ip.is_empty() && !in_any(&self.dst_ip, p.dst_ip) {
            return false;
        }
        if !self.ip.is_empty() && !in_any(&self.ip, p.src_ip) && !in_any(&self.ip, p.dst_ip) {
            return false;
        }
        if let Some(key) = &self.auth_key {
            if p.auth_key != Some(key.as_slice()) {
                return false;
            }
        }
        if !self.node.is_empty() {
            let node: Cow<'_, [u8]> = match p.node_name {
                Some(n) if !n.is_empty() => Cow::Borrowed(n),
                _ => Cow::Owned(
                    p.capture_id_normalized()
                        .map(|c| c.to_string().into_bytes())
                        .unwrap_or_default(),
                ),
            };
            if !self.node.iter().any(|n| n.as_slice() == node.as_ref()) {
                return false;
            }
        }
        if !self.needs_sip() {
            return true;
        }
        if p.proto_type != Some(SIP) {
            return false;
        }
        let Some(sip) = ctx.sip() else {
            return false;
        };
        if !self.sip_status.is_empty() {
            match sip.status {
                Some(code) if self.sip_status.iter().any(|s| s.matches(code)) => {}
                _ => return false,
            }
        }
        if !self.sip_method.is_empty() {
            let method = match sip.method {
                Some(m) => Some(m),
                None => sip.cseq_method(),
            };
            match method {
                Some(m)
                    if self
                        .sip_method
                        .iter()
                        .any(|want| m.eq_ignore_ascii_case(want)) => {}
                _ => return false,
            }
        }
        true
    }
}

fn in_any(nets: &[IpNet], ip: Option<IpAddr>) -> bool {
    ip.is_some_and(|ip| nets.iter().any(|n| n.contains(ip)))
}

/// What the rules look at for one packet. The payload is inflated at most once and only when
/// SIP is needed.
pub(crate) struct PacketCtx<'a> {
    pub(crate) packet: &'a hep::HepPacket<'a>,
    pub(crate) transport: Transport,
    max_inflated: usize,
    inflated: Option<Option<Vec<u8>>>,
}

impl<'a> PacketCtx<'a> {
    pub(crate) fn new(
        packet: &'a hep::HepPacket<'a>,
        transport: Transport,
        max_inflated: usize,
    ) -> PacketCtx<'a> {
        PacketCtx {
            packet,
            transport,
            max_inflated,
            inflated: None,
        }
    }

    /// The payload, inflated when it came compressed (`None` when absent or not inflatable).
    pub(crate) fn payload(&mut self) -> Option<&[u8]> {
        if let Some(p) = self.packet.payload {
            return Some(p);
        }
        self.packet.payload_compressed?;
        if self.inflated.is_none() {
            self.inflated = Some(self.packet.inflate_payload(self.max_inflated).ok());
        }
        self.inflated.as_ref().and_then(|o| o.as_deref())
    }

    /// The SIP view of the payload, for SIP packets that have a start line.
    pub(crate) fn sip(&mut self) -> Option<SipView<'_>> {
        if self.packet.proto_type != Some(SIP) {
            return None;
        }
        SipView::parse(self.payload()?)
    }
}

/// Start line and header access of a SIP message, without indexing it.
#[derive(Clone, Copy, Debug)]
pub struct SipView<'a> {
    /// Request method as written.
    pub method: Option<&'a [u8]>,
    /// Response status code.
    pub status: Option<u16>,
    msg: &'a [u8],
}

impl<'a> SipView<'a> {
    /// Reads the start line (leading CRLF keep-alives skipped); `None` when it is neither a
    /// request line nor a status line.
    pub fn parse(msg: &'a [u8]) -> Option<SipView<'a>> {
        let start = msg.iter().position(|b| !matches!(b, b'\r' | b'\n'))?;
        let rest = msg.get(start..)?;
        let line_end = rest
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(rest.len());
        let line = rest.get(..line_end)?;
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let first = words.next()?;
        if first.len() >= 7 && first[..4].eq_ignore_ascii_case(b"SIP/") {
            let code = words.next()?;
            if code.len() != 3 || !code.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let status = code
                .iter()
                .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
            return Some(SipView {
                method: None,
                status: Some(status),
                msg,
            });
        }
        let _uri = words.next()?;
        let version = words.next()?;
        if !(version.len() >= 4 && version[..4].eq_ignore_ascii_case(b"SIP/")) {
            return None;
        }
        if !first.iter().all(|b| b.is_ascii_graphic()) {
            return None;
        }
        Some(SipView {
            method: Some(first),
            status: None,
            msg,
        })
    }

    /// The first value of header `name` (case-insensitive; compact forms match their long
    /// names), trimmed.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        sip::headers(self.msg)
            .find(|h| h.is(name))
            .map(|h| h.value.as_bytes())
            .filter(|v| !v.is_empty())
    }

    /// The Call-ID.
    pub fn call_id(&self) -> Option<&'a [u8]> {
        self.header("Call-ID")
    }

    /// The method of the CSeq header.
    pub fn cseq_method(&self) -> Option<&'a [u8]> {
        let cseq = self.header("CSeq")?;
        cseq.split(|b| b.is_ascii_whitespace())
            .filter(|w| !w.is_empty())
            .nth(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_view_reads_requests_and_responses() {
        let req =
            SipView::parse(b"\r\nINVITE sip:b@x SIP/2.0\r\ni: abc@h\r\nCSeq: 1 INVITE\r\n\r\n")
                .expect("request");
        assert_eq!(req.method, Some(&b"INVITE"[..]));
        assert_eq!(req.call_id(), Some(&b"abc@h"[..]));
        let resp = SipView::parse(b"SIP/2.0 486 Busy Here\r\nCall-ID: z\r\nCSeq: 7 INVITE\r\n\r\n")
            .expect("response");
        assert_eq!(resp.status, Some(486));
        assert_eq!(resp.cseq_method(), Some(&b"INVITE"[..]));
        assert!(SipView::parse(b"hello world").is_none());
        assert!(SipView::parse(b"SIP/2.0 48x nope").is_none());
        assert!(SipView::parse(b"").is_none());
    }

    #[test]
    fn status_patterns() {
        assert_eq!(StatusPattern::parse("4xx"), Some(StatusPattern::Class(4)));
        assert_eq!(StatusPattern::parse("486"), Some(StatusPattern::Exact(486)));
        assert_eq!(StatusPattern::parse("9xx"), None);
        assert_eq!(StatusPattern::parse("42"), None);
        assert!(StatusPattern::Class(4).matches(404));
        assert!(!StatusPattern::Class(4).matches(500));
    }

    proptest::proptest! {
        #[test]
        fn sip_view_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
            if let Some(v) = SipView::parse(&bytes) {
                let _ = v.call_id();
                let _ = v.cseq_method();
            }
        }
    }
}
