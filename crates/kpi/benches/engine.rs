//! Cost per SIP message of the KPI engine alone, with 10k, 100k, 1M and 3M dialogs open.
//!
//! Steady state: each cycle opens a call (INVITE, 100, 180, 200, ACK) and closes the call
//! opened `open` cycles before (BYE, 200), so the number of established dialogs stays at
//! `open`; packet time advances 100 µs per cycle, so about a million transactions wait for
//! their timeout too, and the once-a-second expiry runs every 10,000 cycles. The figure is
//! time per message; the engine's expiry must keep it flat whatever `open` is.
//!
//! Run: `cargo bench -p kpi --bench engine` (figures in BENCHMARKS.md).

use std::fmt::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kpi::{Kpi, KpiConfig, SipEvent};

const BASE_US: i64 = 1_700_000_000_000_000;
const CYCLE_US: i64 = 100;
/// Messages per cycle: five to open a call, two to close one.
const MESSAGES_PER_CYCLE: u64 = 7;

struct Traffic {
    kpi: Kpi,
    open: u64,
    next: u64,
    call_id: String,
    branch: String,
    uac: SocketAddr,
    uas: SocketAddr,
}

impl Traffic {
    fn new(open: u64) -> Traffic {
        let cap = (open as usize).saturating_mul(2).max(2_000_000);
        let kpi = Kpi::new(KpiConfig {
            max_transactions: cap,
            max_sessions: cap,
            max_registrations: cap,
            reorder_window_ms: 0,
            ..KpiConfig::default()
        })
        .expect("config");
        let mut t = Traffic {
            kpi,
            open,
            next: 0,
            call_id: String::new(),
            branch: String::new(),
            uac: "10.0.0.1:5060".parse().expect("addr"),
            uas: "10.0.0.2:5060".parse().expect("addr"),
        };
        for _ in 0..open {
            t.start_call();
        }
        t
    }

    fn msg(
        &self,
        t: i64,
        request: bool,
        method: &str,
        status: Option<u16>,
        cseq: (u32, &str),
        to_tag: bool,
    ) {
        let (src, dst) = if request {
            (self.uac, self.uas)
        } else {
            (self.uas, self.uac)
        };
        self.kpi.observe_sip(&SipEvent {
            time_us: t,
            received_us: t,
            node: "bench",
            src,
            dst,
            method: request.then_some(method),
            status,
            call_id: &self.call_id,
            cseq_num: cseq.0,
            cseq_method: cseq.1,
            via_branch: Some(&self.branch),
            to_tag: to_tag.then_some("tag"),
        });
    }

    fn ids(&mut self, n: u64, what: &str) {
        self.call_id.clear();
        let _ = write!(self.call_id, "call-{n}@bench");
        self.branch.clear();
        let _ = write!(self.branch, "z9hG4bK-{n}-{what}");
    }

    fn start_call(&mut self) {
        let n = self.next;
        self.next += 1;
        let t = BASE_US + n as i64 * CYCLE_US;
        let inv = (1, "INVITE");
        self.ids(n, "inv");
        self.msg(t, true, "INVITE", None, inv, false);
        self.msg(t + 1, false, "", Some(100), inv, false);
        self.msg(t + 2, false, "", Some(180), inv, true);
        self.msg(t + 3, false, "", Some(200), inv, true);
        self.ids(n, "ack");
        self.msg(t + 4, true, "ACK", None, (1, "ACK"), true);
    }

    fn end_call(&mut self, n: u64) {
        let t = BASE_US + self.next as i64 * CYCLE_US + 5;
        self.ids(n, "bye");
        self.msg(t, true, "BYE", None, (2, "BYE"), true);
        self.msg(t + 1, false, "", Some(200), (2, "BYE"), true);
    }

    fn cycle(&mut self) {
        let old = self.next - self.open;
        self.start_call();
        self.end_call(old);
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("kpi_engine_open_dialogs");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(MESSAGES_PER_CYCLE));
    for open in [10_000u64, 100_000, 1_000_000, 3_000_000] {
        let mut traffic = Traffic::new(open);
        g.bench_function(format!("{open}"), |b| {
            b.iter_custom(|iters| {
                let started = Instant::now();
                for _ in 0..iters {
                    traffic.cycle();
                }
                started.elapsed()
            })
        });
        let (_, sessions, _) = traffic.kpi.tracked();
        assert!(
            sessions as u64 >= open,
            "{sessions} sessions tracked, {open} open"
        );
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
