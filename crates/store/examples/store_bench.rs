//! Benchmark of the embedded SQLite store.
//!
//! ```text
//! cargo run --release -p store --example store_bench -- --rows 2000000 --dir /tmp/store-bench
//!     [--batch 5000] [--sweep ROWS] [--sweep-variants N] [--skip-2] [--compression none|lz4|zstd|zstd-dict] [--zstd-level N]
//!     [--cache-kib N] [--span-hours H] [--query-only]
//! ```
//!
//! Synthesises realistic SIP records (unique Call-IDs, ~500-byte raw, 7 messages per call:
//! INVITE, 100, 180, 200, ACK, BYE, 200; times spread over `rows / 100k` seconds, or over
//! `--span-hours`), measures
//! insert rows/s with one and two writer threads and the disk bytes per row, then query
//! latencies on the two-writer data set. `--sweep ROWS` first measures single-writer inserts of
//! ROWS rows for every index, compression, span and shard variant.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use store::sqlite::{IndexKind, PartitionSpan, RawCompression, SqliteConfig, SqliteStore};
use store::{MessageFilter, Profile, Record, SipFields, Store};

/// 2026-11-28T23:59:50Z: the data set crosses an hour (and day) boundary.
const BASE_US: i64 = 1_795_910_390_000_000;
const USERS: u64 = 20_000;
const HOSTS: u64 = 200;

struct Args {
    rows: usize,
    dir: PathBuf,
    batch: usize,
    sweep: Option<usize>,
    /// Only the first N sweep variants (quick A/B runs of the default configuration).
    sweep_variants: usize,
    skip_two: bool,
    compression: RawCompression,
    zstd_level: i32,
    cache_kib: u32,
    /// Spread the rows over this many hours of capture time (default: 100,000 rows a second).
    span_hours: Option<f64>,
    /// Query the store a previous run with the same arguments left in `dir`; insert nothing.
    query_only: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        rows: 200_000,
        dir: PathBuf::from("/tmp/store-bench"),
        batch: 5000,
        sweep: None,
        sweep_variants: usize::MAX,
        skip_two: false,
        compression: SqliteConfig::default().compression,
        zstd_level: SqliteConfig::default().zstd_level,
        cache_kib: SqliteConfig::default().writer_cache_kib,
        span_hours: None,
        query_only: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--rows" => args.rows = value()?.parse().map_err(|e| format!("--rows: {e}"))?,
            "--dir" => args.dir = PathBuf::from(value()?),
            "--batch" => args.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--sweep" => args.sweep = Some(value()?.parse().map_err(|e| format!("--sweep: {e}"))?),
            "--skip-2" => args.skip_two = true,
            "--sweep-variants" => {
                args.sweep_variants = value()?
                    .parse()
                    .map_err(|e| format!("--sweep-variants: {e}"))?
            }
            "--compression" => {
                args.compression = match value()?.as_str() {
                    "none" => RawCompression::None,
                    "lz4" => RawCompression::Lz4,
                    "zstd" => RawCompression::Zstd,
                    "zstd-dict" => RawCompression::ZstdDict,
                    other => return Err(format!("--compression: unknown {other}")),
                }
            }
            "--query-only" => args.query_only = true,
            "--span-hours" => {
                args.span_hours = Some(value()?.parse().map_err(|e| format!("--span-hours: {e}"))?)
            }
            "--cache-kib" => {
                args.cache_kib = value()?.parse().map_err(|e| format!("--cache-kib: {e}"))?
            }
            "--zstd-level" => {
                args.zstd_level = value()?.parse().map_err(|e| format!("--zstd-level: {e}"))?
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// A simple deterministic generator (xorshift), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn host(i: u64) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 20, (i / 250) as u8, (i % 250 + 1) as u8))
}

fn call_id(call: u64) -> String {
    format!("{call:016x}-5f3a9c1e@pbx.example.net")
}

fn user(i: u64) -> String {
    format!("49301{i:07}")
}

/// The 7 messages of call number `call`, starting at `start_us`.
fn call_records(call: u64, start_us: i64, rng: &mut Rng) -> Vec<Record> {
    let cid = call_id(call);
    let from = user(rng.next() % USERS);
    let to = user(rng.next() % USERS);
    let caller = host(rng.next() % HOSTS);
    let proxy = host(rng.next() % HOSTS);
    let from_tag = format!("{:08x}", rng.next() as u32);
    let to_tag = format!("{:08x}", rng.next() as u32);
    let steps: [(&str, Option<u16>, &str, i64, bool); 7] = [
        ("INVITE", None, "INVITE", 0, true),
        ("100", Some(100), "INVITE", 2_000, false),
        ("180", Some(180), "INVITE", 300_000, false),
        ("200", Some(200), "INVITE", 4_000_000, false),
        ("ACK", None, "ACK", 4_050_000, true),
        ("BYE", None, "BYE", 34_000_000, true),
        ("200", Some(200), "BYE", 34_030_000, false),
    ];
    steps
        .iter()
        .map(|(method, status, cseq_method, offset, is_request)| {
            let (src, dst) = if *is_request { (caller, proxy) } else { (proxy, caller) };
            let start_line = match status {
                Some(code) => format!("SIP/2.0 {code} {}", if *code == 100 { "Trying" } else if *code == 180 { "Ringing" } else { "OK" }),
                None => format!("{method} sip:{to}@pbx.example.net:5060 SIP/2.0"),
            };
            let raw = format!(
                "{start_line}\r\nVia: SIP/2.0/UDP {caller}:5060;branch=z9hG4bK{:x};rport\r\n\
                 From: <sip:{from}@pbx.example.net>;tag={from_tag}\r\nTo: <sip:{to}@pbx.example.net>{}\r\n\
                 Call-ID: {cid}\r\nCSeq: {} {cseq_method}\r\nContact: <sip:{from}@{caller}:5060>\r\n\
                 Max-Forwards: 70\r\nUser-Agent: Acme-Phone/4.2.1\r\nAllow: INVITE, ACK, CANCEL, BYE, OPTIONS\r\n\
                 Content-Length: 0\r\n\r\n",
                rng.next(),
                if *is_request && *method == "INVITE" { String::new() } else { format!(";tag={to_tag}") },
                if *cseq_method == "BYE" { 2 } else { 1 },
            );
            Record {
                time_us: start_us + offset,
                received_us: start_us + offset + 150,
                hep_type: 1,
                hep_version: 3,
                ip_family: 2,
                ip_proto: 17,
                src_ip: src,
                src_port: 5060,
                dst_ip: dst,
                dst_port: 5060,
                capture_id: 2001,
                node: Some(format!("sbc-{}", call % 4)),
                correlation_id: Some(cid.clone()),
                sid: cid.clone(),
                profile: Profile::from_cseq_method(cseq_method),
                sip: Some(SipFields {
                    method: (*method).into(),
                    is_request: *is_request,
                    status: *status,
                    cseq: Some(format!("{} {cseq_method}", if *cseq_method == "BYE" { 2 } else { 1 }).into()),
                    cseq_method: Some((*cseq_method).into()),
                    call_id: Some(cid.clone().into()),
                    ruri_user: is_request.then(|| to.as_str().into()),
                    ruri_domain: is_request.then(|| "pbx.example.net".into()),
                    from_user: Some(from.clone().into()),
                    from_domain: Some("pbx.example.net".into()),
                    from_tag: Some(from_tag.clone().into()),
                    to_user: Some(to.clone().into()),
                    to_domain: Some("pbx.example.net".into()),
                    to_tag: (*method != "INVITE").then(|| to_tag.as_str().into()),
                    contact_user: Some(from.clone().into()),
                    user_agent: Some("Acme-Phone/4.2.1".into()),
                    via_branch: Some(format!("z9hG4bK{:x}", rng.next()).into()),
                    ..SipFields::default()
                }),
                payload_json: None,
                raw: raw.into_bytes(),
            }
        })
        .collect()
}

/// `rows` records in batches, calls starting evenly over `rows / 100k` seconds.
fn generate(rows: usize, batch: usize, span_hours: Option<f64>) -> Vec<Vec<Record>> {
    let calls = rows.div_ceil(7) as u64;
    let span_us = match span_hours {
        Some(h) => (h * 3.6e9) as i64,
        None => (rows as i64 * 1_000_000 / 100_000).max(1_000_000),
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut all = Vec::with_capacity(rows);
    for call in 0..calls {
        let start = BASE_US + (call as i64 * span_us) / calls as i64;
        all.extend(call_records(call, start, &mut rng));
    }
    all.truncate(rows);
    let mut batches = Vec::new();
    let mut it = all.into_iter().peekable();
    while it.peek().is_some() {
        batches.push(it.by_ref().take(batch).collect());
    }
    batches
}

/// CPU seconds (user + system) this process has used, from /proc/self/stat; 0 elsewhere.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn fresh_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Inserts every batch with `threads` writers (batch i goes to writer i % threads); rows per
/// wall-clock second and rows per CPU second (the machine may be shared).
fn insert(store: &Arc<SqliteStore>, batches: &Arc<Vec<Vec<Record>>>, threads: usize) -> (f64, f64) {
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            let batches = batches.clone();
            std::thread::spawn(move || {
                let mut stored = 0;
                for batch in batches.iter().skip(t).step_by(threads) {
                    let outcome = store.insert_batch(batch).expect("insert");
                    assert!(
                        outcome.rejected.is_empty(),
                        "{:?}",
                        outcome.rejected.first()
                    );
                    stored += outcome.stored;
                }
                stored
            })
        })
        .collect();
    let stored: usize = handles.into_iter().map(|h| h.join().expect("writer")).sum();
    let cpu = (cpu_seconds() - cpu_started).max(0.01);
    (
        stored as f64 / started.elapsed().as_secs_f64(),
        stored as f64 / cpu,
    )
}

fn summarize(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let p = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "  {name:<44} median {:>8.2} ms  p90 {:>8.2} ms  max {:>8.2} ms  (n={})",
        p(0.5),
        p(0.9),
        p(1.0),
        samples.len()
    );
}

fn sweep(rows: usize, batch: usize, dir: &Path, max_variants: usize, cache_kib: u32) {
    let batches = Arc::new(generate(rows, batch, None));
    println!("sweep: single writer, {rows} rows, batches of {batch}");
    let base = SqliteConfig {
        data_dir: dir.to_path_buf(),
        writer_cache_kib: cache_kib,
        ..SqliteConfig::default()
    };
    let mut variants: Vec<(String, SqliteConfig)> = vec![
        ("default config (zstd-dict)".into(), base.clone()),
        (
            "compression lz4".into(),
            SqliteConfig {
                compression: RawCompression::Lz4,
                ..base.clone()
            },
        ),
        (
            "no optional index (time + sid only)".into(),
            SqliteConfig {
                indexes: vec![],
                ..base.clone()
            },
        ),
    ];
    for kind in IndexKind::ALL {
        variants.push((
            format!("time + sid + {kind:?} only"),
            SqliteConfig {
                indexes: vec![kind],
                ..base.clone()
            },
        ));
    }
    variants.push((
        "all 9 optional indexes".into(),
        SqliteConfig {
            indexes: IndexKind::ALL.to_vec(),
            ..base.clone()
        },
    ));
    variants.push((
        "compression none".into(),
        SqliteConfig {
            compression: RawCompression::None,
            ..base.clone()
        },
    ));
    variants.push((
        "compression zstd level 1".into(),
        SqliteConfig {
            compression: RawCompression::Zstd,
            zstd_level: 1,
            ..base.clone()
        },
    ));
    variants.push((
        "compression zstd level 3".into(),
        SqliteConfig {
            compression: RawCompression::Zstd,
            zstd_level: 3,
            ..base.clone()
        },
    ));
    variants.push((
        "span hour".into(),
        SqliteConfig {
            partition_span: PartitionSpan::Hour,
            ..base.clone()
        },
    ));
    variants.push((
        "span day".into(),
        SqliteConfig {
            partition_span: PartitionSpan::Day,
            ..base.clone()
        },
    ));
    let quick = max_variants < variants.len();
    for (name, config) in variants.into_iter().take(max_variants) {
        fresh_dir(dir);
        let store = Arc::new(SqliteStore::open(config).expect("open"));
        let (rate, per_cpu) = insert(&store, &batches, 1);
        drop(store);
        // Reopened so that WAL files (checkpointed and removed on close) do not count.
        let bytes = SqliteStore::open(SqliteConfig {
            data_dir: dir.to_path_buf(),
            ..SqliteConfig::default()
        })
        .and_then(|s| s.stats())
        .expect("stats")
        .bytes;
        println!(
            "  {name:<44} {rate:>8.0} rows/s {per_cpu:>8.0} rows/CPU-s {:>6.0} bytes/row",
            bytes as f64 / rows as f64
        );
    }
    for shards in [1u8, 2] {
        if quick {
            break;
        }
        fresh_dir(dir);
        let config = SqliteConfig {
            data_dir: dir.to_path_buf(),
            write_shards: shards,
            writer_cache_kib: cache_kib,
            ..SqliteConfig::default()
        };
        let store = Arc::new(SqliteStore::open(config).expect("open"));
        let (rate, per_cpu) = insert(&store, &batches, 2);
        println!(
            "  {:<44} {rate:>8.0} rows/s {per_cpu:>8.0} rows/CPU-s",
            format!("2 writers, write_shards = {shards}")
        );
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("store_bench: {e}");
            std::process::exit(2);
        }
    };
    let load = || {
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    println!("load average at start: {}", load());
    if let Some(rows) = args.sweep {
        sweep(
            rows,
            args.batch,
            &args.dir,
            args.sweep_variants,
            args.cache_kib,
        );
    }
    let gen_started = Instant::now();
    let batches = Arc::new(generate(args.rows, args.batch, args.span_hours));
    let raw_avg =
        batches.iter().flatten().map(|r| r.raw.len()).sum::<usize>() as f64 / args.rows as f64;
    println!(
        "generated {} rows ({} calls, avg raw {raw_avg:.0} bytes) in {:.1} s; batches of {}",
        args.rows,
        args.rows.div_ceil(7),
        gen_started.elapsed().as_secs_f64(),
        args.batch
    );
    let config = SqliteConfig {
        data_dir: args.dir.clone(),
        compression: args.compression,
        zstd_level: args.zstd_level,
        writer_cache_kib: args.cache_kib,
        ..SqliteConfig::default()
    };
    let thread_counts: &[usize] = match (args.query_only, args.skip_two) {
        (true, _) => &[],
        (false, true) => &[1],
        (false, false) => &[1, 2],
    };
    let mut store = None;
    for &threads in thread_counts {
        fresh_dir(&args.dir);
        let s = Arc::new(SqliteStore::open(config.clone()).expect("open"));
        let (rate, per_cpu) = insert(&s, &batches, threads);
        drop(s);
        let s = Arc::new(SqliteStore::open(config.clone()).expect("reopen"));
        let stats = s.stats().expect("stats");
        println!(
            "insert, {threads} writer(s): {rate:.0} rows/s ({per_cpu:.0} rows per CPU-second); {} partitions, {:.1} MB on disk, {:.0} bytes/row",
            stats.partitions,
            stats.bytes as f64 / 1e6,
            stats.bytes as f64 / args.rows as f64
        );
        store = Some(s);
    }
    if args.query_only {
        store = Some(Arc::new(SqliteStore::open(config.clone()).expect("open")));
    }
    let Some(store) = store else { return };
    let end_us = batches
        .iter()
        .flatten()
        .map(|r| r.time_us)
        .max()
        .unwrap_or(BASE_US);
    let calls = args.rows.div_ceil(7) as u64;
    let mut rng = Rng(42);
    let pick_call = |rng: &mut Rng| call_id(rng.next() % calls.saturating_sub(1).max(1));
    let runs = 30;

    let samples = (0..runs)
        .map(|_| {
            let filter = MessageFilter {
                call_ids: vec![pick_call(&mut rng)],
                limit: 100,
                ..MessageFilter::default()
            };
            let t = Instant::now();
            let page = store.messages(&filter).expect("messages");
            assert!(page.total >= 1);
            t.elapsed()
        })
        .collect();
    summarize("messages of one Call-ID (no time bounds)", samples);

    let samples = (0..runs)
        .map(|_| {
            let filter = MessageFilter {
                from_user: Some(user(rng.next() % USERS)),
                from_us: Some(end_us - 3_600_000_000),
                to_us: Some(end_us + 1),
                limit: 100,
                ..MessageFilter::default()
            };
            let t = Instant::now();
            store.messages(&filter).expect("messages");
            t.elapsed()
        })
        .collect();
    summarize("messages from_user, one-hour window", samples);

    // The search screen's opening query and an unindexed filter: newest first through the time
    // index (one page, with the window's exact total).
    for (label, text, span_us) in [
        (
            "messages, first page of the last hour, no filter",
            None,
            3_600_000_000,
        ),
        (
            "messages, first page of the last 15 min, text \"BYE\"",
            Some("BYE"),
            900_000_000,
        ),
    ] {
        let mut total = 0;
        let samples = (0..10)
            .map(|_| {
                let filter = MessageFilter {
                    text: text.map(str::to_string),
                    from_us: Some(end_us - span_us),
                    to_us: Some(end_us + 1),
                    limit: 100,
                    ..MessageFilter::default()
                };
                let t = Instant::now();
                let page = store.messages(&filter).expect("messages");
                assert_eq!(page.items.len(), 100);
                total = page.total;
                t.elapsed()
            })
            .collect();
        summarize(&format!("{label} ({total} messages)"), samples);
    }

    for (window, span_us) in [("15 min", 900_000_000), ("hour", 3_600_000_000)] {
        let mut total = 0;
        let samples = (0..5)
            .map(|_| {
                let filter = MessageFilter {
                    from_us: Some(end_us - span_us),
                    to_us: Some(end_us + 1),
                    limit: 100,
                    ..MessageFilter::default()
                };
                let t = Instant::now();
                total = store.calls(&filter).expect("calls").total;
                t.elapsed()
            })
            .collect();
        summarize(
            &format!("calls, first page of last {window} ({total} calls)"),
            samples,
        );
    }

    let samples = (0..runs)
        .map(|_| {
            let filter = MessageFilter {
                from_user: Some(user(rng.next() % USERS)),
                from_us: Some(end_us - 900_000_000),
                to_us: Some(end_us + 1),
                limit: 100,
                ..MessageFilter::default()
            };
            let t = Instant::now();
            store.calls(&filter).expect("calls");
            t.elapsed()
        })
        .collect();
    summarize("calls from_user, last 15 min", samples);

    let samples = (0..runs)
        .map(|_| {
            let id = pick_call(&mut rng);
            let t = Instant::now();
            let flow = store.call_flow(&[id], None, None).expect("flow");
            assert_eq!(flow.len(), 7);
            t.elapsed()
        })
        .collect();
    summarize("call_flow of one call (no time bounds)", samples);
    println!("load average at end: {}", load());
}
