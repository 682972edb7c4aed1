//! Fuzz the relay's per-packet path: HEP decode, every kind of rule condition (SIP method and
//! status parsed from the payload), rewrites including the correlation id taken from a SIP
//! header, re-encoding, and balancing on the Call-ID or correlation id. Nothing may panic.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use ingest::{PacketHandler, Transport};
use libfuzzer_sys::fuzz_target;

const ROUTING: &str = r#"
[destinations.a]
url = "udp://127.0.0.1:9"
queue_capacity = 16
[destinations.b]
url = "udp://127.0.0.1:9"
queue_capacity = 16
[groups.g]
members = ["a", "b"]
key_header = "X-CID"
[[rules]]
match = { sip_method = ["INVITE"], sip_status = ["4xx"] }
drop = true
[[rules]]
match = { src_ip = ["10.0.0.0/8"], dst_port = [5060], node = ["n1"], capture_id = [1] }
rewrite = { capture_id = 7, node_name = "fuzz", strip_auth_key = true, correlation_id_from_header = "X-CID" }
forward = ["a"]
continue = true
[[rules]]
match = { hep_type = ["sip", "rtcp", "log"] }
balance = "g"
continue = true
[[rules]]
rewrite = { auth_key = "k" }
forward = ["b"]
"#;

fn relay() -> &'static Arc<relay::Relay> {
    static RELAY: OnceLock<Arc<relay::Relay>> = OnceLock::new();
    RELAY.get_or_init(|| {
        let cfg: relay::RoutingConfig = toml::from_str(ROUTING).expect("routing");
        relay::Relay::start(&cfg).expect("relay")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Some(view) = relay::SipView::parse(data) {
        let _ = view.call_id();
        let _ = view.cseq_method();
        let _ = view.header("X-CID");
    }
    relay().handle(data, Transport::Udp, None, 0, Instant::now());
});
