//! IPv4 and IPv6 headers, including the IPv6 extension-header chain.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::error::LayerError;
use crate::link::header;

/// IP protocol numbers this crate acts on.
pub mod proto {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// IPv4 encapsulated in IP.
    pub const IPV4: u8 = 4;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 encapsulated in IP.
    pub const IPV6: u8 = 41;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Generic Routing Encapsulation.
    pub const GRE: u8 = 47;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// IPv6 destination options.
    pub const DEST_OPTS: u8 = 60;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// Most IPv6 extension headers walked before giving up (RFC 8200 expects at most a handful).
pub const MAX_IPV6_EXTENSION_HEADERS: usize = 8;

/// The fields of an IPv4 header this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv4Header {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: u8,
    pub header_len: usize,
    /// Datagram length from the header, checked to lie within the input.
    pub total_len: usize,
    pub id: u16,
    /// Fragment offset in bytes.
    pub frag_offset: usize,
    pub more_fragments: bool,
}

impl Ipv4Header {
    /// Whether this is one fragment of a larger datagram.
    pub fn is_fragment(&self) -> bool {
        self.more_fragments || self.frag_offset != 0
    }
}

/// Parses an IPv4 header; options are skipped and the checksum is not verified (captures of
/// locally sent packets carry checksums the NIC fills in later).
pub(crate) fn parse_ipv4(data: &[u8]) -> Result<Ipv4Header, LayerError> {
    let h = header::<20>(data, "IPv4")?;
    if h[0] >> 4 != 4 {
        return Err(LayerError::malformed("IPv4", "version is not 4"));
    }
    let header_len = usize::from(h[0] & 0x0f) * 4;
    if header_len < 20 {
        return Err(LayerError::malformed("IPv4", "header length below 20"));
    }
    let mut total_len = usize::from(u16::from_be_bytes([h[2], h[3]]));
    if total_len == 0 {
        // TCP segmentation offload leaves the length zero in locally captured packets.
        total_len = data.len();
    }
    if total_len < header_len {
        return Err(LayerError::malformed(
            "IPv4",
            "total length below header length",
        ));
    }
    if total_len > data.len() {
        return Err(LayerError::truncated("IPv4", total_len, data.len()));
    }
    let flags_frag = u16::from_be_bytes([h[6], h[7]]);
    Ok(Ipv4Header {
        src: Ipv4Addr::new(h[12], h[13], h[14], h[15]),
        dst: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
        protocol: h[9],
        header_len,
        total_len,
        id: u16::from_be_bytes([h[4], h[5]]),
        frag_offset: usize::from(flags_frag & 0x1fff) * 8,
        more_fragments: flags_frag & 0x2000 != 0,
    })
}

/// The fixed IPv6 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv6Header {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub next_header: u8,
    /// Header plus payload, always within the input.
    pub total_len: usize,
}

/// Parses the fixed 40-byte IPv6 header.
pub(crate) fn parse_ipv6(data: &[u8]) -> Result<Ipv6Header, LayerError> {
    let h = header::<40>(data, "IPv6")?;
    if h[0] >> 4 != 6 {
        return Err(LayerError::malformed("IPv6", "version is not 6"));
    }
    let payload_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    // Zero means a jumbogram (or offload): the payload runs to the end of the capture.
    let total_len = if payload_len == 0 {
        data.len()
    } else {
        40 + payload_len
    };
    if total_len > data.len() {
        return Err(LayerError::truncated("IPv6", total_len, data.len()));
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&h[8..24]);
    dst.copy_from_slice(&h[24..40]);
    Ok(Ipv6Header {
        src: Ipv6Addr::from(src),
        dst: Ipv6Addr::from(dst),
        next_header: h[6],
        total_len,
    })
}

/// An IPv6 fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv6Fragment {
    pub id: u32,
    /// Offset in bytes.
    pub offset: usize,
    pub more: bool,
}

/// Where an IPv6 extension-header chain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ipv6Chain {
    /// Offset of the upper-layer header (or of the fragmentable part, after a fragment header).
    pub offset: usize,
    /// Protocol of what starts at `offset`.
    pub next_header: u8,
    /// The fragment header that stopped the walk, unless it was atomic (offset 0, no more).
    pub fragment: Option<Ipv6Fragment>,
}

/// Walks extension headers in `data` from `offset`, starting with `next_header`, counting
/// against `budget` (shared across the chain before and after reassembly).
pub(crate) fn walk_ipv6_extensions(
    data: &[u8],
    mut offset: usize,
    mut next_header: u8,
    budget: &mut usize,
) -> Result<Ipv6Chain, LayerError> {
    loop {
        let len = match next_header {
            proto::HOP_BY_HOP | proto::ROUTING | proto::DEST_OPTS => {
                let h = header::<2>(data.get(offset..).unwrap_or_default(), "IPv6 extension")?;
                (usize::from(h[1]) + 1) * 8
            }
            proto::AH => {
                let h = header::<2>(data.get(offset..).unwrap_or_default(), "IPv6 AH")?;
                (usize::from(h[1]) + 2) * 4
            }
            proto::FRAGMENT => 8,
            _ => {
                return Ok(Ipv6Chain {
                    offset,
                    next_header,
                    fragment: None,
                })
            }
        };
        if *budget == 0 {
            return Err(LayerError::TooManyExtensionHeaders(
                MAX_IPV6_EXTENSION_HEADERS,
            ));
        }
        *budget -= 1;
        let ext = data
            .get(offset..offset + len)
            .ok_or_else(|| LayerError::truncated("IPv6 extension", offset + len, data.len()))?;
        let this = next_header;
        next_header = ext.first().copied().unwrap_or_default();
        offset += len;
        if this == proto::FRAGMENT {
            let h = header::<8>(ext, "IPv6 fragment")?;
            let off_flags = u16::from_be_bytes([h[2], h[3]]);
            let fragment = Ipv6Fragment {
                id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                offset: usize::from(off_flags >> 3) * 8,
                more: off_flags & 1 != 0,
            };
            // An atomic fragment (RFC 6946) is a whole datagram: keep walking.
            if fragment.offset != 0 || fragment.more {
                return Ok(Ipv6Chain {
                    offset,
                    next_header,
                    fragment: Some(fragment),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(len: u16, frag: u16) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0x12, 0x34, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        p[2..4].copy_from_slice(&len.to_be_bytes());
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p.resize(usize::from(len).max(20), 0);
        p
    }

    #[test]
    fn ipv4_fields_and_fragments() {
        let h = parse_ipv4(&v4(28, 0x2000 | 3)).unwrap();
        assert_eq!(h.protocol, 17);
        assert_eq!((h.frag_offset, h.more_fragments, h.id), (24, true, 0x1234));
        assert!(h.is_fragment());
        assert!(!parse_ipv4(&v4(28, 0x4000)).unwrap().is_fragment());
    }

    #[test]
    fn ipv4_rejects_bad_lengths() {
        let mut p = v4(28, 0);
        p.truncate(24);
        assert!(matches!(parse_ipv4(&p), Err(LayerError::Truncated { .. })));
        let mut p = v4(28, 0);
        p[0] = 0x44;
        assert!(matches!(parse_ipv4(&p), Err(LayerError::Malformed { .. })));
        let p = v4(19, 0);
        assert!(parse_ipv4(&p).is_err());
    }

    #[test]
    fn ipv6_chain_with_fragment_and_budget() {
        // hop-by-hop (8 bytes) -> fragment (offset 8, more) -> UDP
        let ext = [
            proto::FRAGMENT,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            proto::UDP,
            0,
            0,
            9,
            0,
            0,
            0,
            7,
        ];
        let mut budget = MAX_IPV6_EXTENSION_HEADERS;
        let c = walk_ipv6_extensions(&ext, 0, proto::HOP_BY_HOP, &mut budget).unwrap();
        assert_eq!(c.offset, 16);
        assert_eq!(c.next_header, proto::UDP);
        assert_eq!(
            c.fragment,
            Some(Ipv6Fragment {
                id: 7,
                offset: 8,
                more: true
            })
        );
        let mut looped = Vec::new();
        for _ in 0..=MAX_IPV6_EXTENSION_HEADERS {
            looped.extend_from_slice(&[proto::DEST_OPTS, 0, 0, 0, 0, 0, 0, 0]);
        }
        let mut budget = MAX_IPV6_EXTENSION_HEADERS;
        assert_eq!(
            walk_ipv6_extensions(&looped, 0, proto::DEST_OPTS, &mut budget),
            Err(LayerError::TooManyExtensionHeaders(
                MAX_IPV6_EXTENSION_HEADERS
            ))
        );
    }
}
