//! DNS messages (RFC 1035) as a capture agent sees them on the wire, decoded to a typed record
//! that serializes to JSON:
//!
//! ```json
//! {"id": 4660, "flags": {"qr": true, "opcode": "QUERY", "aa": false, "tc": false, "rd": true,
//!   "ra": true, "z": false, "ad": false, "cd": false}, "rcode": "NOERROR",
//!  "counts": {"questions": 1, "answers": 1, "authorities": 0, "additionals": 0},
//!  "questions": [{"name": "_sip._udp.example.com", "type": "SRV", "class": "IN"}],
//!  "answers": [{"name": "_sip._udp.example.com", "type": "SRV", "class": "IN", "ttl": 300,
//!               "data": {"priority": 10, "weight": 60, "port": 5060, "target": "sip1.example.com"}}],
//!  "authorities": [], "additionals": []}
//! ```
//!
//! Type, class, opcode and rcode are their mnemonic strings (`TYPE65280`-style for unknown
//! numbers). `data` is typed for A / AAAA (address string), CNAME / NS / PTR (name string), MX,
//! TXT (array of strings), SRV, NAPTR and SOA (objects); any other type, and typed rdata that does
//! not decode, is a lower-case hex string.
//!
//! Names are dotted, without the trailing dot (the root is `.`); bytes other than printable ASCII,
//! `.` and `\` inside a label are escaped as in zone files (`\.`, `\\`, `\DDD`).
//!
//! Caps: input at most [`MAX_DNS_BYTES`] (the largest DNS message); names at most 255 bytes on the
//! wire; at most [`MAX_POINTER_JUMPS`] compression pointers per name (loop protection). Counts in
//! the header never size an allocation: each question consumes at least 5 bytes and each record
//! 11, so the input bounds the work.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Serialize, Serializer};

use crate::wire::{hex, Reader};

/// Largest message accepted: DNS over TCP frames messages with a 16-bit length.
pub const MAX_DNS_BYTES: usize = 65_535;

/// Most compression pointers followed while reading one name.
pub const MAX_POINTER_JUMPS: usize = 64;

/// Longest name on the wire (RFC 1035 §2.3.4), length bytes included.
pub const MAX_NAME_WIRE_BYTES: usize = 255;

/// Why a DNS message does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The message ends inside a field.
    #[error("DNS message truncated in {what} at byte {offset}")]
    Truncated {
        /// The part being read.
        what: &'static str,
        /// Offset where the input ran out.
        offset: usize,
    },
    /// Larger than [`MAX_DNS_BYTES`].
    #[error("DNS message of {0} bytes exceeds {MAX_DNS_BYTES}")]
    TooLarge(usize),
    /// A name longer than 255 bytes.
    #[error("DNS name at byte {0} exceeds 255 bytes")]
    NameTooLong(usize),
    /// More than [`MAX_POINTER_JUMPS`] compression pointers in one name.
    #[error("DNS name at byte {0} has a compression pointer loop")]
    PointerLoop(usize),
    /// A label length byte with the reserved 01 / 10 high bits.
    #[error("DNS label type {label:#04x} at byte {offset} is not supported")]
    BadLabel {
        /// The length byte.
        label: u8,
        /// Its offset.
        offset: usize,
    },
}

/// A decoded DNS message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsMessage {
    /// Transaction id.
    pub id: u16,
    /// Header flags and opcode.
    pub flags: DnsFlags,
    /// Response code (4-bit header field).
    #[serde(serialize_with = "ser_rcode")]
    pub rcode: u8,
    /// Section counts as the header states them.
    pub counts: DnsCounts,
    /// Question section.
    pub questions: Vec<DnsQuestion>,
    /// Answer section.
    pub answers: Vec<DnsRecord>,
    /// Authority section.
    pub authorities: Vec<DnsRecord>,
    /// Additional section (EDNS OPT pseudo-records included, as type "OPT").
    pub additionals: Vec<DnsRecord>,
}

/// Header flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DnsFlags {
    /// Response (true) or query.
    pub qr: bool,
    /// Operation code.
    #[serde(serialize_with = "ser_opcode")]
    pub opcode: u8,
    /// Authoritative answer.
    pub aa: bool,
    /// Truncated.
    pub tc: bool,
    /// Recursion desired.
    pub rd: bool,
    /// Recursion available.
    pub ra: bool,
    /// Reserved bit.
    pub z: bool,
    /// Authentic data (DNSSEC).
    pub ad: bool,
    /// Checking disabled (DNSSEC).
    pub cd: bool,
}

/// Section counts from the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DnsCounts {
    /// QDCOUNT.
    pub questions: u16,
    /// ANCOUNT.
    pub answers: u16,
    /// NSCOUNT.
    pub authorities: u16,
    /// ARCOUNT.
    pub additionals: u16,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsQuestion {
    /// Queried name.
    pub name: String,
    /// QTYPE.
    #[serde(rename = "type", serialize_with = "ser_type")]
    pub qtype: u16,
    /// QCLASS (the top bit is the mDNS unicast-response flag on multicast DNS).
    #[serde(rename = "class", serialize_with = "ser_class")]
    pub qclass: u16,
}

/// One resource record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsRecord {
    /// Owner name.
    pub name: String,
    /// TYPE.
    #[serde(rename = "type", serialize_with = "ser_type")]
    pub rtype: u16,
    /// CLASS (for OPT: the requestor's UDP payload size).
    #[serde(serialize_with = "ser_class")]
    pub class: u16,
    /// TTL in seconds (for OPT: extended rcode and flags).
    pub ttl: u32,
    /// Decoded RDATA.
    pub data: RData,
}

/// Typed RDATA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RData {
    /// A: IPv4 address.
    A(Ipv4Addr),
    /// AAAA: IPv6 address.
    Aaaa(Ipv6Addr),
    /// CNAME, NS or PTR: a domain name.
    Name(String),
    /// MX.
    Mx {
        /// Preference (lower first).
        preference: u16,
        /// Mail exchanger.
        exchange: String,
    },
    /// TXT: the character strings.
    Txt(Vec<String>),
    /// SRV (RFC 2782).
    Srv {
        /// Priority (lower first).
        priority: u16,
        /// Weight among equal priorities.
        weight: u16,
        /// Port.
        port: u16,
        /// Target host.
        target: String,
    },
    /// NAPTR (RFC 3403), how SIP finds its transports (RFC 3263).
    Naptr {
        /// Order (lower first).
        order: u16,
        /// Preference among equal orders.
        preference: u16,
        /// Flags ("S", "A", "U", "P").
        flags: String,
        /// Service ("SIP+D2U", "SIPS+D2T", …).
        services: String,
        /// Substitution regular expression.
        regexp: String,
        /// Replacement domain.
        replacement: String,
    },
    /// SOA.
    Soa {
        /// Primary name server.
        mname: String,
        /// Responsible mailbox.
        rname: String,
        /// Zone serial.
        serial: u32,
        /// Refresh interval, s.
        refresh: u32,
        /// Retry interval, s.
        retry: u32,
        /// Expire limit, s.
        expire: u32,
        /// Negative-caching TTL, s.
        minimum: u32,
    },
    /// Any other type, or typed RDATA that did not decode: the bytes.
    Raw(#[serde(serialize_with = "ser_hex")] Vec<u8>),
}

fn ser_hex<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(bytes))
}

fn ser_type<S: Serializer>(t: &u16, s: S) -> Result<S::Ok, S::Error> {
    match type_name(*t) {
        Some(name) => s.serialize_str(name),
        None => s.serialize_str(&format!("TYPE{t}")),
    }
}

fn ser_class<S: Serializer>(c: &u16, s: S) -> Result<S::Ok, S::Error> {
    match c {
        1 => s.serialize_str("IN"),
        3 => s.serialize_str("CH"),
        4 => s.serialize_str("HS"),
        254 => s.serialize_str("NONE"),
        255 => s.serialize_str("ANY"),
        other => s.serialize_str(&format!("CLASS{other}")),
    }
}

fn ser_rcode<S: Serializer>(r: &u8, s: S) -> Result<S::Ok, S::Error> {
    const NAMES: [&str; 11] = [
        "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
        "NXRRSET", "NOTAUTH", "NOTZONE",
    ];
    match NAMES.get(usize::from(*r)) {
        Some(name) => s.serialize_str(name),
        None => s.serialize_str(&format!("RCODE{r}")),
    }
}

fn ser_opcode<S: Serializer>(o: &u8, s: S) -> Result<S::Ok, S::Error> {
    match o {
        0 => s.serialize_str("QUERY"),
        1 => s.serialize_str("IQUERY"),
        2 => s.serialize_str("STATUS"),
        4 => s.serialize_str("NOTIFY"),
        5 => s.serialize_str("UPDATE"),
        6 => s.serialize_str("DSO"),
        other => s.serialize_str(&format!("OPCODE{other}")),
    }
}

/// The mnemonic of a DNS TYPE number, if it is a commonly seen one.
pub fn type_name(t: u16) -> Option<&'static str> {
    Some(match t {
        1 => "A",
        2 => "NS",
        5 => "CNAME",
        6 => "SOA",
        10 => "NULL",
        11 => "WKS",
        12 => "PTR",
        13 => "HINFO",
        15 => "MX",
        16 => "TXT",
        17 => "RP",
        18 => "AFSDB",
        24 => "SIG",
        25 => "KEY",
        28 => "AAAA",
        29 => "LOC",
        33 => "SRV",
        35 => "NAPTR",
        36 => "KX",
        37 => "CERT",
        39 => "DNAME",
        41 => "OPT",
        43 => "DS",
        44 => "SSHFP",
        46 => "RRSIG",
        47 => "NSEC",
        48 => "DNSKEY",
        50 => "NSEC3",
        51 => "NSEC3PARAM",
        52 => "TLSA",
        55 => "HIP",
        59 => "CDS",
        60 => "CDNSKEY",
        64 => "SVCB",
        65 => "HTTPS",
        99 => "SPF",
        249 => "TKEY",
        250 => "TSIG",
        251 => "IXFR",
        252 => "AXFR",
        255 => "ANY",
        256 => "URI",
        257 => "CAA",
        _ => return None,
    })
}

/// Decodes a DNS message.
pub fn parse(msg: &[u8]) -> Result<DnsMessage, DnsError> {
    if msg.len() > MAX_DNS_BYTES {
        return Err(DnsError::TooLarge(msg.len()));
    }
    let mut r = Reader::new(msg);
    let truncated = |what, r: &Reader<'_>| DnsError::Truncated {
        what,
        offset: r.position(),
    };
    let id = r.u16().ok_or_else(|| truncated("header", &r))?;
    let bits = r.u16().ok_or_else(|| truncated("header", &r))?;
    let mut counts = [0u16; 4];
    for c in &mut counts {
        *c = r.u16().ok_or_else(|| truncated("header", &r))?;
    }
    let [qd, an, ns, ar] = counts;
    let flags = DnsFlags {
        qr: bits & 0x8000 != 0,
        // Masked to 4 bits, so the cast is exact.
        opcode: ((bits >> 11) & 0x0f) as u8,
        aa: bits & 0x0400 != 0,
        tc: bits & 0x0200 != 0,
        rd: bits & 0x0100 != 0,
        ra: bits & 0x0080 != 0,
        z: bits & 0x0040 != 0,
        ad: bits & 0x0020 != 0,
        cd: bits & 0x0010 != 0,
    };
    let mut questions = Vec::new();
    for _ in 0..qd {
        let name = read_name(msg, &mut r)?;
        let qtype = r.u16().ok_or_else(|| truncated("question", &r))?;
        let qclass = r.u16().ok_or_else(|| truncated("question", &r))?;
        questions.push(DnsQuestion {
            name,
            qtype,
            qclass,
        });
    }
    let answers = read_records(msg, &mut r, an)?;
    let authorities = read_records(msg, &mut r, ns)?;
    let additionals = read_records(msg, &mut r, ar)?;
    Ok(DnsMessage {
        id,
        flags,
        rcode: (bits & 0x000f) as u8,
        counts: DnsCounts {
            questions: qd,
            answers: an,
            authorities: ns,
            additionals: ar,
        },
        questions,
        answers,
        authorities,
        additionals,
    })
}

fn read_records(msg: &[u8], r: &mut Reader<'_>, count: u16) -> Result<Vec<DnsRecord>, DnsError> {
    let mut out = Vec::new();
    for _ in 0..count {
        let name = read_name(msg, r)?;
        let truncated = |r: &Reader<'_>| DnsError::Truncated {
            what: "resource record",
            offset: r.position(),
        };
        let rtype = r.u16().ok_or_else(|| truncated(r))?;
        let class = r.u16().ok_or_else(|| truncated(r))?;
        let ttl = r.u32().ok_or_else(|| truncated(r))?;
        let rdlength = r.u16().ok_or_else(|| truncated(r))?;
        let rdata_start = r.position();
        let rdata = r.take(usize::from(rdlength)).ok_or_else(|| truncated(r))?;
        let data = decode_rdata(msg, rtype, rdata_start, rdata)
            .unwrap_or_else(|| RData::Raw(rdata.to_vec()));
        out.push(DnsRecord {
            name,
            rtype,
            class,
            ttl,
            data,
        });
    }
    Ok(out)
}

/// Typed RDATA, or `None` when the type is not decoded here or its bytes do not fit it.
fn decode_rdata(msg: &[u8], rtype: u16, start: usize, rdata: &[u8]) -> Option<RData> {
    // Names inside RDATA may point anywhere earlier in the message, so they are read from `msg`
    // positioned at the RDATA, and must end inside it.
    let end = start.checked_add(rdata.len())?;
    let mut r = Reader::new(msg.get(..end)?);
    r.take(start)?;
    let data = match rtype {
        1 => {
            let b: [u8; 4] = r.take(4)?.try_into().ok()?;
            RData::A(Ipv4Addr::from(b))
        }
        28 => {
            let b: [u8; 16] = r.take(16)?.try_into().ok()?;
            RData::Aaaa(Ipv6Addr::from(b))
        }
        2 | 5 | 12 => RData::Name(read_name(msg, &mut r).ok()?),
        15 => RData::Mx {
            preference: r.u16()?,
            exchange: read_name(msg, &mut r).ok()?,
        },
        16 => {
            let mut strings = Vec::new();
            while r.remaining() > 0 {
                strings.push(read_char_string(&mut r)?);
            }
            RData::Txt(strings)
        }
        33 => RData::Srv {
            priority: r.u16()?,
            weight: r.u16()?,
            port: r.u16()?,
            target: read_name(msg, &mut r).ok()?,
        },
        35 => RData::Naptr {
            order: r.u16()?,
            preference: r.u16()?,
            flags: read_char_string(&mut r)?,
            services: read_char_string(&mut r)?,
            regexp: read_char_string(&mut r)?,
            replacement: read_name(msg, &mut r).ok()?,
        },
        6 => RData::Soa {
            mname: read_name(msg, &mut r).ok()?,
            rname: read_name(msg, &mut r).ok()?,
            serial: r.u32()?,
            refresh: r.u32()?,
            retry: r.u32()?,
            expire: r.u32()?,
            minimum: r.u32()?,
        },
        _ => return None,
    };
    // Trailing bytes mean the record is not what its type says: show it raw instead.
    (r.remaining() == 0).then_some(data)
}

fn read_char_string(r: &mut Reader<'_>) -> Option<String> {
    let len = r.u8()?;
    Some(String::from_utf8_lossy(r.take(usize::from(len))?).into_owned())
}

/// Reads a possibly compressed name at the reader's position, leaving the reader after the name
/// as it appears in place (after the first pointer, if any).
fn read_name(msg: &[u8], r: &mut Reader<'_>) -> Result<String, DnsError> {
    let start = r.position();
    let mut pos = start;
    let mut resume_at = None;
    let mut jumps = 0usize;
    let mut wire_len = 0usize;
    let mut name = String::new();
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated {
            what: "name",
            offset: pos,
        })?;
        match len & 0xc0 {
            0x00 => {
                if len == 0 {
                    pos += 1;
                    break;
                }
                let label =
                    msg.get(pos + 1..pos + 1 + usize::from(len))
                        .ok_or(DnsError::Truncated {
                            what: "name",
                            offset: pos,
                        })?;
                wire_len += 1 + label.len();
                if wire_len + 1 > MAX_NAME_WIRE_BYTES {
                    return Err(DnsError::NameTooLong(start));
                }
                if !name.is_empty() {
                    name.push('.');
                }
                push_label(&mut name, label);
                pos += 1 + label.len();
            }
            0xc0 => {
                let low = *msg.get(pos + 1).ok_or(DnsError::Truncated {
                    what: "name",
                    offset: pos,
                })?;
                if resume_at.is_none() {
                    resume_at = Some(pos + 2);
                }
                jumps += 1;
                if jumps > MAX_POINTER_JUMPS {
                    return Err(DnsError::PointerLoop(start));
                }
                pos = usize::from(len & 0x3f) << 8 | usize::from(low);
            }
            _ => {
                return Err(DnsError::BadLabel {
                    label: len,
                    offset: pos,
                })
            }
        }
    }
    let next = resume_at.unwrap_or(pos);
    // Advance the caller's reader to just after the in-place part of the name.
    let advance = next.saturating_sub(r.position());
    r.take(advance).ok_or(DnsError::Truncated {
        what: "name",
        offset: next,
    })?;
    if name.is_empty() {
        name.push('.');
    }
    Ok(name)
}

fn push_label(out: &mut String, label: &[u8]) {
    for &b in label {
        match b {
            b'.' => out.push_str("\\."),
            b'\\' => out.push_str("\\\\"),
            0x21..=0x7e => out.push(char::from(b)),
            _ => {
                out.push('\\');
                out.push_str(&format!("{b:03}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Builds a response to `_sip._udp.example.com SRV` with compression, NAPTR and A records.
    fn sample() -> Vec<u8> {
        let mut m = vec![
            0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 1, // header: response, RD RA, 1/2/0/1
        ];
        // Question at offset 12: _sip._udp.example.com SRV IN
        for label in ["_sip", "_udp", "example", "com"] {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&[0, 33, 0, 1]);
        // Answer 1: pointer to question name, SRV 10 60 5060 sip1.<example.com at offset 22>
        m.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1, 0, 0, 1, 44]);
        let target = [4, b's', b'i', b'p', b'1', 0xc0, 22];
        m.extend_from_slice(&[0, 6 + target.len() as u8]);
        m.extend_from_slice(&[0, 10, 0, 60, 0x13, 0xc4]);
        m.extend_from_slice(&target);
        // Answer 2: example.com NAPTR 10 50 "s" "SIP+D2U" "" _sip._udp.example.com
        m.extend_from_slice(&[0xc0, 22, 0, 35, 0, 1, 0, 0, 0, 60]);
        let mut rd = vec![0, 10, 0, 50, 1, b's', 7];
        rd.extend_from_slice(b"SIP+D2U");
        rd.extend_from_slice(&[0, 0xc0, 12]);
        m.extend_from_slice(&[0, rd.len() as u8]);
        m.extend_from_slice(&rd);
        // Additional: OPT, UDP size 1232.
        m.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
        m
    }

    #[test]
    fn decodes_srv_naptr_with_compression() {
        let msg = parse(&sample()).expect("decodes");
        assert_eq!(msg.id, 0x1234);
        assert!(msg.flags.qr && msg.flags.rd && msg.flags.ra && !msg.flags.aa);
        assert_eq!(msg.questions[0].name, "_sip._udp.example.com");
        assert_eq!(
            msg.answers[0].data,
            RData::Srv {
                priority: 10,
                weight: 60,
                port: 5060,
                target: "sip1.example.com".into()
            }
        );
        let v = serde_json::to_value(&msg).expect("serializes");
        assert_eq!(v["rcode"], "NOERROR");
        assert_eq!(v["flags"]["opcode"], "QUERY");
        assert_eq!(
            v["questions"][0],
            json!({"name": "_sip._udp.example.com", "type": "SRV", "class": "IN"})
        );
        assert_eq!(
            v["answers"][1]["data"],
            json!({"order": 10, "preference": 50, "flags": "s", "services": "SIP+D2U",
                   "regexp": "", "replacement": "_sip._udp.example.com"})
        );
        assert_eq!(v["answers"][1]["type"], "NAPTR");
        assert_eq!(v["additionals"][0]["type"], "OPT");
        assert_eq!(v["additionals"][0]["name"], ".");
        assert_eq!(v["additionals"][0]["data"], "");
    }

    #[test]
    fn pointer_loop_is_rejected() {
        // Question name is a pointer to itself.
        let m = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert_eq!(parse(&m), Err(DnsError::PointerLoop(12)));
        // Two pointers pointing at each other.
        let m = [
            0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 14, 0xc0, 12, 0, 1, 0, 1,
        ];
        assert_eq!(parse(&m), Err(DnsError::PointerLoop(12)));
    }

    #[test]
    fn long_names_and_bad_labels_are_rejected() {
        let mut m = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for _ in 0..5 {
            m.push(63);
            m.extend_from_slice(&[b'a'; 63]);
        }
        m.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(parse(&m), Err(DnsError::NameTooLong(12)));
        let m = [0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 1, 0, 1];
        assert!(matches!(
            parse(&m),
            Err(DnsError::BadLabel { label: 0x40, .. })
        ));
    }

    #[test]
    fn truncation_and_escaping() {
        let full = sample();
        for cut in 0..full.len() {
            assert!(
                parse(&full[..cut]).is_err(),
                "prefix of {cut} bytes decoded"
            );
        }
        let m = [
            0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'a', b'.', 0x07, 0, 0, 1, 0, 1,
        ];
        assert_eq!(parse(&m).expect("decodes").questions[0].name, "a\\.\\007");
    }

    #[test]
    fn address_records_are_typed() {
        let m = [
            0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 0, 0, 1,
        ];
        let msg = parse(&m).expect("decodes");
        assert_eq!(msg.answers[0].data, RData::A(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn malformed_rdata_is_shown_raw() {
        // A record with 3 bytes of RDATA.
        let m = [
            0, 1, 0x80, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 5, 0, 3, 1, 2, 3,
        ];
        let msg = parse(&m).expect("decodes");
        assert_eq!(msg.answers[0].data, RData::Raw(vec![1, 2, 3]));
        assert_eq!(
            serde_json::to_value(&msg).expect("json")["answers"][0]["data"],
            "010203"
        );
    }
}
