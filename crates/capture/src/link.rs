//! Link layers: Ethernet with VLAN stacks, Linux cooked (SLL, SLL2), raw IP, BSD loopback.

use crate::error::LayerError;

/// A pcap `LINKTYPE_*` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LinkType(pub u32);

impl LinkType {
    /// BSD loopback: 4-byte address family in the capturing host's byte order.
    pub const NULL: LinkType = LinkType(0);
    /// Ethernet II / 802.3.
    pub const ETHERNET: LinkType = LinkType(1);
    /// Raw IP as `DLT_RAW` is numbered on most BSDs.
    pub const RAW_BSD: LinkType = LinkType(12);
    /// Raw IP as `DLT_RAW` is numbered on OpenBSD.
    pub const RAW_OPENBSD: LinkType = LinkType(14);
    /// Raw IP (`LINKTYPE_RAW`), version from the first nibble.
    pub const RAW: LinkType = LinkType(101);
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: LinkType = LinkType(108);
    /// Linux cooked capture v1.
    pub const LINUX_SLL: LinkType = LinkType(113);
    /// Raw IPv4 only.
    pub const IPV4: LinkType = LinkType(228);
    /// Raw IPv6 only.
    pub const IPV6: LinkType = LinkType(229);
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: LinkType = LinkType(276);
}

/// The network-layer protocol a link header announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Network {
    /// IPv4.
    Ipv4,
    /// IPv6.
    Ipv6,
    /// Anything else (ARP, LLC, an unknown address family): the ethertype or family value.
    Other(u32),
}

/// A 48-bit MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

/// Most VLAN tags kept from one frame (QinQ needs two; carriers rarely stack more).
pub const MAX_VLAN_TAGS: usize = 4;

/// The VLAN ids of a frame, outermost first, without allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Vlans {
    ids: [u16; MAX_VLAN_TAGS],
    len: u8,
}

impl Vlans {
    /// The VLAN ids, outermost first.
    pub fn as_slice(&self) -> &[u16] {
        self.ids.get(..usize::from(self.len)).unwrap_or_default()
    }

    /// Whether the frame carried no VLAN tag.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn push(&mut self, id: u16) -> Result<(), LayerError> {
        let slot = self
            .ids
            .get_mut(usize::from(self.len))
            .ok_or(LayerError::TooManyVlanTags(MAX_VLAN_TAGS))?;
        *slot = id;
        self.len += 1;
        Ok(())
    }
}

/// What the link layer of one frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkInfo {
    /// The protocol of the payload.
    pub network: Network,
    /// Offset of the network-layer header in the frame.
    pub offset: usize,
    /// VLAN ids, outermost first.
    pub vlans: Vlans,
    /// Source MAC, when the link layer has one (Ethernet; SLL/SLL2 over Ethernet devices).
    pub src_mac: Option<MacAddr>,
    /// Destination MAC (Ethernet only).
    pub dst_mac: Option<MacAddr>,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// Pre-standard QinQ outer tag types still seen on older switches.
const ETHERTYPE_QINQ_OLD: [u16; 2] = [0x9100, 0x9200];
const ARPHRD_ETHER: u16 = 1;

/// BSD `AF_INET`.
const AF_INET: u32 = 2;
/// The numbers of `AF_INET6` on Linux, NetBSD/OpenBSD, FreeBSD and Darwin.
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// Parses the link layer of a frame of the given link type.
pub fn parse_link(link_type: LinkType, frame: &[u8]) -> Result<LinkInfo, LayerError> {
    match link_type {
        LinkType::ETHERNET => parse_ethernet(frame),
        LinkType::RAW | LinkType::RAW_BSD | LinkType::RAW_OPENBSD => {
            let network = match frame.first().map(|b| b >> 4) {
                Some(4) => Network::Ipv4,
                Some(6) => Network::Ipv6,
                Some(v) => Network::Other(u32::from(v)),
                None => return Err(LayerError::truncated("raw IP", 1, 0)),
            };
            Ok(bare(network, 0))
        }
        LinkType::IPV4 => Ok(bare(Network::Ipv4, 0)),
        LinkType::IPV6 => Ok(bare(Network::Ipv6, 0)),
        LinkType::NULL => {
            let b = header::<4>(frame, "BSD loopback")?;
            // Host byte order of the capturing machine: families are small numbers, so a
            // value with zero low bytes is byte-swapped.
            let le = u32::from_le_bytes(b);
            let family = if le & 0xffff == 0 {
                u32::from_be_bytes(b)
            } else {
                le
            };
            Ok(bare(family_network(family), 4))
        }
        LinkType::LOOP => {
            let b = header::<4>(frame, "OpenBSD loopback")?;
            Ok(bare(family_network(u32::from_be_bytes(b)), 4))
        }
        LinkType::LINUX_SLL => {
            let h = header::<16>(frame, "Linux cooked")?;
            let arphrd = u16::from_be_bytes([h[2], h[3]]);
            let addr_len = u16::from_be_bytes([h[4], h[5]]);
            let protocol = u16::from_be_bytes([h[14], h[15]]);
            let src_mac = (arphrd == ARPHRD_ETHER && addr_len == 6)
                .then(|| MacAddr([h[6], h[7], h[8], h[9], h[10], h[11]]));
            walk_ethertype(frame, 16, protocol, src_mac, None)
        }
        LinkType::LINUX_SLL2 => {
            let h = header::<20>(frame, "Linux cooked v2")?;
            let protocol = u16::from_be_bytes([h[0], h[1]]);
            let arphrd = u16::from_be_bytes([h[8], h[9]]);
            let addr_len = h[11];
            let src_mac = (arphrd == ARPHRD_ETHER && addr_len == 6)
                .then(|| MacAddr([h[12], h[13], h[14], h[15], h[16], h[17]]));
            walk_ethertype(frame, 20, protocol, src_mac, None)
        }
        other => Err(LayerError::UnsupportedLinkType(other.0)),
    }
}

/// Parses an Ethernet II header and any VLAN tags after it.
pub fn parse_ethernet(frame: &[u8]) -> Result<LinkInfo, LayerError> {
    let h = header::<14>(frame, "Ethernet")?;
    let dst = MacAddr([h[0], h[1], h[2], h[3], h[4], h[5]]);
    let src = MacAddr([h[6], h[7], h[8], h[9], h[10], h[11]]);
    let ethertype = u16::from_be_bytes([h[12], h[13]]);
    walk_ethertype(frame, 14, ethertype, Some(src), Some(dst))
}

/// Follows 802.1Q/802.1ad tags from `ethertype` at `offset` to the network protocol.
fn walk_ethertype(
    frame: &[u8],
    mut offset: usize,
    mut ethertype: u16,
    src_mac: Option<MacAddr>,
    dst_mac: Option<MacAddr>,
) -> Result<LinkInfo, LayerError> {
    let mut vlans = Vlans::default();
    loop {
        let network = match ethertype {
            ETHERTYPE_IPV4 => Network::Ipv4,
            ETHERTYPE_IPV6 => Network::Ipv6,
            t if is_vlan_tag(t) => {
                let tag = frame
                    .get(offset..offset + 4)
                    .ok_or_else(|| LayerError::truncated("VLAN tag", offset + 4, frame.len()))?;
                let tci = u16::from_be_bytes([tag[0], tag[1]]);
                vlans.push(tci & 0x0fff)?;
                ethertype = u16::from_be_bytes([tag[2], tag[3]]);
                offset += 4;
                continue;
            }
            // Includes 802.3 length values (<= 1500), whose LLC payload is not IP.
            t => Network::Other(u32::from(t)),
        };
        return Ok(LinkInfo {
            network,
            offset,
            vlans,
            src_mac,
            dst_mac,
        });
    }
}

fn is_vlan_tag(ethertype: u16) -> bool {
    matches!(ethertype, ETHERTYPE_VLAN | ETHERTYPE_QINQ) || ETHERTYPE_QINQ_OLD.contains(&ethertype)
}

fn family_network(family: u32) -> Network {
    if family == AF_INET {
        Network::Ipv4
    } else if AF_INET6.contains(&family) {
        Network::Ipv6
    } else {
        Network::Other(family)
    }
}

fn bare(network: Network, offset: usize) -> LinkInfo {
    LinkInfo {
        network,
        offset,
        vlans: Vlans::default(),
        src_mac: None,
        dst_mac: None,
    }
}

/// The first `N` bytes of `frame` as an array, or a truncation error for `layer`.
pub(crate) fn header<const N: usize>(
    frame: &[u8],
    layer: &'static str,
) -> Result<[u8; N], LayerError> {
    frame
        .get(..N)
        .and_then(|b| <[u8; N]>::try_from(b).ok())
        .ok_or_else(|| LayerError::truncated(layer, N, frame.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(ethertype: &[u8], rest: &[u8]) -> Vec<u8> {
        let mut f = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        f.extend_from_slice(ethertype);
        f.extend_from_slice(rest);
        f
    }

    #[test]
    fn ethernet_plain_and_qinq() {
        let f = eth(&[0x08, 0x00], &[0x45]);
        let l = parse_link(LinkType::ETHERNET, &f).unwrap();
        assert_eq!((l.network, l.offset), (Network::Ipv4, 14));
        assert_eq!(l.dst_mac, Some(MacAddr([1, 2, 3, 4, 5, 6])));
        assert_eq!(l.src_mac, Some(MacAddr([7, 8, 9, 10, 11, 12])));

        let f = eth(
            &[0x88, 0xa8],
            &[0x20, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x86, 0xdd, 0x60],
        );
        let l = parse_link(LinkType::ETHERNET, &f).unwrap();
        assert_eq!((l.network, l.offset), (Network::Ipv6, 22));
        assert_eq!(l.vlans.as_slice(), &[100, 200]);
    }

    #[test]
    fn vlan_stack_is_bounded_and_truncation_reported() {
        let mut rest = Vec::new();
        for _ in 0..=MAX_VLAN_TAGS {
            rest.extend_from_slice(&[0, 1, 0x81, 0x00]);
        }
        let f = eth(&[0x81, 0x00], &rest);
        assert_eq!(
            parse_link(LinkType::ETHERNET, &f),
            Err(LayerError::TooManyVlanTags(MAX_VLAN_TAGS))
        );
        let f = eth(&[0x81, 0x00], &[0, 1]);
        assert!(matches!(
            parse_link(LinkType::ETHERNET, &f),
            Err(LayerError::Truncated { .. })
        ));
    }

    #[test]
    fn loopback_families_both_orders() {
        let l = parse_link(LinkType::NULL, &[2, 0, 0, 0, 0x45]).unwrap();
        assert_eq!((l.network, l.offset), (Network::Ipv4, 4));
        let l = parse_link(LinkType::NULL, &[0, 0, 0, 30]).unwrap();
        assert_eq!(l.network, Network::Ipv6);
        let l = parse_link(LinkType::LOOP, &[0, 0, 0, 24]).unwrap();
        assert_eq!(l.network, Network::Ipv6);
        let l = parse_link(LinkType::LOOP, &[0, 0, 0, 7]).unwrap();
        assert_eq!(l.network, Network::Other(7));
    }

    #[test]
    fn cooked_and_raw() {
        let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
        sll.push(0x45);
        let l = parse_link(LinkType::LINUX_SLL, &sll).unwrap();
        assert_eq!((l.network, l.offset), (Network::Ipv4, 16));
        assert_eq!(l.src_mac, Some(MacAddr([1, 2, 3, 4, 5, 6])));

        let sll2 = [
            0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x60,
        ];
        let l = parse_link(LinkType::LINUX_SLL2, &sll2).unwrap();
        assert_eq!((l.network, l.offset), (Network::Ipv6, 20));

        for lt in [LinkType::RAW, LinkType::RAW_BSD, LinkType::RAW_OPENBSD] {
            assert_eq!(parse_link(lt, &[0x60]).unwrap().network, Network::Ipv6);
        }
        assert_eq!(
            parse_link(LinkType(147), &[0]),
            Err(LayerError::UnsupportedLinkType(147))
        );
    }
}
