//! Instruction-count harness for the HEP decode + SIP index hot path (the machine is shared, so
//! instructions, not time, are the stable measure). Decodes and indexes the three sample
//! datagrams of `crates/hep/tests/data` (INVITE+SDP, REGISTER, 200 OK+SDP) `N` times:
//!
//! ```text
//! cargo build --release -p sip --example instructions
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
//!     $CARGO_TARGET_DIR/release/examples/instructions both 2000
//! ```
//!
//! Instructions per message = (Ir(N) − Ir(0)) / (3 N); run it once with `N = 0` for the
//! baseline. The first argument picks the work: `hep` (decode only), `sip` (index only, on the
//! payloads decoded once up front) or `both`.

use std::hint::black_box;

/// The HOMER field set, read the way the collector reads it (every accessor evaluated).
fn fields(msg: &sip::SipMessage<'_>) -> usize {
    let texts = [
        msg.method(),
        msg.call_id,
        msg.cseq_method(),
        msg.ruri_user(),
        msg.ruri_domain(),
        msg.from_user(),
        msg.from_domain(),
        msg.from_tag(),
        msg.to_user(),
        msg.to_domain(),
        msg.to_tag(),
        msg.contact_user(),
        msg.pid_user(),
        msg.via_branch(),
        msg.user_agent,
        msg.content_type,
        msg.aleg_id,
    ];
    texts.iter().flatten().map(|t| t.len()).sum::<usize>()
        + usize::from(msg.status_code().unwrap_or(0))
        + msg.sdp.as_ref().map_or(0, |s| s.media.len())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "both".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../hep/tests/data/");
    let datagrams: Vec<Vec<u8>> = ["invite", "register", "ok200-invite"]
        .iter()
        .map(|name| std::fs::read(format!("{dir}{name}.hep")).unwrap_or_default())
        .collect();
    let payloads: Vec<&[u8]> = datagrams
        .iter()
        .map(|d| {
            hep::decode(d)
                .ok()
                .and_then(|p| p.payload)
                .unwrap_or_default()
        })
        .collect();
    let indexer = sip::Indexer::default();
    let mut sum = 0usize;
    for _ in 0..n {
        for (datagram, payload) in datagrams.iter().zip(&payloads) {
            sum += match mode.as_str() {
                "hep" => hep::decode(black_box(datagram)).map_or(0, |p| {
                    p.payload.map_or(0, <[u8]>::len) + p.src_port.map_or(0, usize::from)
                }),
                "sip" => fields(&indexer.index(black_box(payload))),
                _ => match hep::decode(black_box(datagram)) {
                    Ok(p) => {
                        p.src_port.map_or(0, usize::from)
                            + p.payload.map_or(0, |pl| fields(&indexer.index(pl)))
                    }
                    Err(_) => 0,
                },
            };
        }
    }
    println!("{mode} x{n}: {sum}");
}
