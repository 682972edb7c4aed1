//! Media addresses learnt from SDP, so RTCP can be tied to its call (as heplify does: the
//! correlation id of an RTCP report is the Call-ID of the SDP that announced its address).

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use capture::Timestamp;

/// Address → Call-ID, bounded in entries and in age.
#[derive(Debug)]
pub struct MediaTable {
    ttl: Duration,
    max_entries: usize,
    map: HashMap<SocketAddr, (Box<[u8]>, Timestamp)>,
    order: VecDeque<(SocketAddr, Timestamp)>,
}

impl MediaTable {
    /// An empty table.
    pub fn new(ttl: Duration, max_entries: usize) -> Self {
        MediaTable {
            ttl,
            max_entries: max_entries.max(1),
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Learns the RTCP (and, under rtcp-mux, RTP) addresses of a SIP message's SDP.
    pub fn learn(&mut self, message: &sip::SipMessage<'_>, now: Timestamp) {
        let (Some(call_id), Some(sdp)) = (message.call_id, message.sdp.as_ref()) else {
            return;
        };
        for media in &sdp.media {
            let Some(ip) = media.connection.and_then(|c| {
                std::str::from_utf8(c.as_bytes())
                    .ok()?
                    .parse::<IpAddr>()
                    .ok()
            }) else {
                continue;
            };
            if media.port == 0 {
                continue;
            }
            for port in [media.rtcp_port, media.port] {
                if port != 0 && (port == media.rtcp_port || media.rtcp_mux) {
                    self.insert(SocketAddr::new(ip, port), call_id.as_bytes(), now);
                }
            }
        }
    }

    /// The Call-ID announced for this address, if still valid.
    pub fn lookup(&self, addr: SocketAddr, now: Timestamp) -> Option<&[u8]> {
        let (call_id, t) = self.map.get(&addr)?;
        (now.saturating_since(*t) <= self.ttl).then_some(&**call_id)
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn insert(&mut self, addr: SocketAddr, call_id: &[u8], now: Timestamp) {
        self.map.insert(addr, (call_id.into(), now));
        self.order.push_back((addr, now));
        while let Some(&(old, t)) = self.order.front() {
            let over = self.order.len() > self.max_entries.saturating_mul(2)
                || self.map.len() > self.max_entries;
            if !over && now.saturating_since(t) <= self.ttl {
                break;
            }
            self.order.pop_front();
            if self.map.get(&old).is_some_and(|(_, seen)| *seen == t) {
                self.map.remove(&old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:b@x SIP/2.0\r\nCall-ID: call-1\r\nContent-Type: application/sdp\r\nContent-Length: 95\r\n\r\nv=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.9\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n\r\n";

    #[test]
    fn learns_rtcp_port_and_expires() {
        let msg = sip::index(INVITE);
        assert!(msg.sdp.is_some(), "{:?}", msg.diagnostics);
        let mut t = MediaTable::new(Duration::from_secs(10), 10);
        t.learn(&msg, Timestamp::new(100, 0));
        let rtcp: SocketAddr = "10.0.0.9:4001".parse().unwrap();
        assert_eq!(t.lookup(rtcp, Timestamp::new(105, 0)), Some(&b"call-1"[..]));
        assert_eq!(
            t.lookup("10.0.0.9:4000".parse().unwrap(), Timestamp::new(105, 0)),
            None
        );
        assert_eq!(t.lookup(rtcp, Timestamp::new(200, 0)), None);
    }

    #[test]
    fn bounded() {
        let mut t = MediaTable::new(Duration::from_secs(1000), 16);
        for i in 0..1000u16 {
            t.insert(
                SocketAddr::new([10, 0, 0, 1].into(), i),
                b"c",
                Timestamp::new(1, 0),
            );
        }
        assert!(t.len() <= 16);
        assert!(t.order.len() <= 32);
    }
}
