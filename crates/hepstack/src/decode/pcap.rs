//! HEP carried in a packet capture: UDP datagrams are messages, TCP streams are reassembled per
//! direction and cut into messages by the HEPv3 framer.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};

use anyhow::Result;
use serde_json::{json, Map, Value};

use capture::{
    CloseReason, Defragmenter, FlowKey, PacketSource, StreamEvent, TcpReassembler, TcpSegment,
    Timestamp, Transport,
};

use super::{Emitter, Origin};

/// The packet a HEP message came in, printed inside `"src"`.
#[derive(Debug, Clone)]
pub(crate) struct PcapOrigin {
    /// 1-based number of the packet in the file (for TCP: the packet that completed the message).
    pub packet: u64,
    /// Capture time in microseconds since the Unix epoch.
    pub ts_us: i64,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// `src:port->dst:port`.
    pub flow: String,
}

impl PcapOrigin {
    pub(crate) fn add_to(&self, src: &mut Map<String, Value>) {
        src.insert("packet".into(), json!(self.packet));
        src.insert("pcap_ts_us".into(), json!(self.ts_us));
        src.insert("transport".into(), json!(self.transport));
        src.insert("flow".into(), json!(self.flow));
    }
}

fn flow_name(flow: &FlowKey) -> String {
    format!(
        "{}->{}",
        SocketAddr::new(flow.src, flow.src_port),
        SocketAddr::new(flow.dst, flow.dst_port)
    )
}

fn udp_flow_name(src: IpAddr, sport: u16, dst: IpAddr, dport: u16) -> String {
    format!(
        "{}->{}",
        SocketAddr::new(src, sport),
        SocketAddr::new(dst, dport)
    )
}

/// Per-direction HEP framing state of the TCP connections in a capture.
struct TcpHep {
    reassembler: TcpReassembler,
    framers: HashMap<FlowKey, hep::StreamFramer>,
}

impl TcpHep {
    fn handle<W: Write>(
        &mut self,
        events: Vec<StreamEvent<'_>>,
        file: &str,
        packet: u64,
        emitter: &mut Emitter<W>,
    ) -> std::io::Result<()> {
        for event in events {
            let flow = event.flow();
            let origin = |ts: Timestamp| Origin {
                file: file.to_string(),
                pcap: Some(PcapOrigin {
                    packet,
                    ts_us: ts.as_micros(),
                    transport: "tcp",
                    flow: flow_name(&flow),
                }),
                ..Origin::default()
            };
            match event {
                StreamEvent::Data {
                    timestamp, data, ..
                } => {
                    let framer = self
                        .framers
                        .entry(flow)
                        .or_insert_with(|| hep::StreamFramer::new(hep::FramerConfig::default()));
                    let skipped_before = framer.bytes_skipped();
                    // Push in pieces no larger than a frame so a drained framer always has room.
                    for piece in data.chunks(hep::MAX_MESSAGE_LEN) {
                        if framer.push(piece).is_err() {
                            emitter.problem(
                                &origin(timestamp),
                                "HEP framer buffer full; stream state reset",
                            )?;
                            *framer = hep::StreamFramer::new(hep::FramerConfig::default());
                            continue;
                        }
                        while let Some(frame) = framer.next_frame() {
                            let frame = frame.to_vec();
                            emitter.message(&origin(timestamp), &frame)?;
                        }
                    }
                    let skipped = framer.bytes_skipped() - skipped_before;
                    if skipped > 0 {
                        emitter.problem(
                            &origin(timestamp),
                            &format!("{skipped} bytes of garbage skipped in the TCP stream"),
                        )?;
                    }
                }
                StreamEvent::Gap { timestamp, len, .. } => {
                    // Whatever was pending cannot be completed: the bytes after the hole belong
                    // to a later message, which the framer finds by resynchronising.
                    if let Some(framer) = self.framers.get_mut(&flow) {
                        *framer = hep::StreamFramer::new(hep::FramerConfig::default());
                    }
                    emitter.problem(
                        &origin(timestamp),
                        &format!("{len} bytes missing from the TCP stream (not captured)"),
                    )?;
                }
                StreamEvent::Closed {
                    timestamp, reason, ..
                } => {
                    if let Some(framer) = self.framers.remove(&flow) {
                        let pending = framer.pending_len();
                        if pending > 0 {
                            let why = match reason {
                                CloseReason::Flushed => "at the end of the capture",
                                _ => "when the connection closed",
                            };
                            emitter.problem(
                                &origin(timestamp),
                                &format!("{pending} bytes of an incomplete HEP message {why}"),
                            )?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// Decode every HEP message in a pcap or pcapng stream.
pub(crate) fn decode_capture<R: Read, W: Write>(
    reader: R,
    file: &str,
    emitter: &mut Emitter<W>,
) -> Result<()> {
    let mut source = capture::open(reader)?;
    let mut defrag = Defragmenter::new(capture::DefragConfig::default());
    let mut tcp = TcpHep {
        reassembler: TcpReassembler::default(),
        framers: HashMap::new(),
    };
    let mut packet_no = 0u64;
    loop {
        let packet = match source.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(err) => {
                let origin = Origin {
                    file: file.to_string(),
                    index: Some(packet_no + 1),
                    ..Origin::default()
                };
                emitter.problem(&origin, &format!("capture file: {err}"))?;
                break;
            }
        };
        packet_no += 1;
        let ts = packet.timestamp;
        let decoded = match capture::decode_packet(packet.link_type, ts, packet.data, &mut defrag) {
            Ok(Some(d)) => d,
            Ok(None) => continue,
            Err(err) => {
                let origin = Origin {
                    file: file.to_string(),
                    index: Some(packet_no),
                    ..Origin::default()
                };
                emitter.problem(&origin, &format!("packet {packet_no}: {err}"))?;
                continue;
            }
        };
        match decoded.transport {
            Transport::Udp {
                src_port: sport,
                dst_port: dport,
            } => {
                let origin = Origin {
                    file: file.to_string(),
                    pcap: Some(PcapOrigin {
                        packet: packet_no,
                        ts_us: ts.as_micros(),
                        transport: "udp",
                        flow: udp_flow_name(decoded.src, sport, decoded.dst, dport),
                    }),
                    ..Origin::default()
                };
                emitter.message(&origin, decoded.payload())?;
            }
            Transport::Tcp(_) => {
                if let Some(segment) = TcpSegment::from_decoded(&decoded, ts) {
                    let events = tcp.reassembler.feed(&segment);
                    tcp.handle(events, file, packet_no, emitter)?;
                }
            }
            // HEP travels over UDP, TCP or TLS only; ICMP, SCTP and the rest are not HEP.
            _ => {}
        }
    }
    let events = tcp.reassembler.flush_all();
    tcp.handle(events, file, packet_no, emitter)?;
    Ok(())
}
