//! The capture loops: files (as fast as possible or paced) and live interfaces, feeding a
//! [`Pipeline`] until the input ends or the run is cancelled.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use capture::{PacketSource, Timestamp};
use tokio_util::sync::CancellationToken;

use crate::counters::Counters;
use crate::live::{LiveCapture, LiveError, LiveOptions};
use crate::pipeline::{HepSink, Pipeline};

/// How fast files are replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// As fast as the pipeline goes.
    Unpaced,
    /// Packet gaps divided by this factor (1.0 = original timing).
    Speed(f64),
}

/// Errors of a capture run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A file could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file is not pcap/pcapng, or broke off.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: capture::CaptureError,
    },
    /// Live capture failed.
    #[error(transparent)]
    Live(#[from] LiveError),
}

/// Longest single sleep while pacing, so cancellation is noticed quickly.
const SLEEP_SLICE: Duration = Duration::from_millis(100);

/// Reads the files in order through `pipeline`. A truncated file yields its complete packets,
/// then an error for it; the remaining files are still read. Returns the errors met.
pub fn capture_files<S: HepSink + ?Sized>(
    paths: &[PathBuf],
    pacing: Pacing,
    pipeline: &mut Pipeline,
    sink: &mut S,
    cancel: &CancellationToken,
) -> Vec<RunError> {
    let mut errors = Vec::new();
    for path in paths {
        if cancel.is_cancelled() {
            break;
        }
        if let Err(e) = capture_file(path, pacing, pipeline, sink, cancel) {
            Counters::add(&pipeline.counters().errors, 1);
            errors.push(e);
        }
    }
    pipeline.finish(sink);
    sink.flush();
    errors
}

fn capture_file<S: HepSink + ?Sized>(
    path: &Path,
    pacing: Pacing,
    pipeline: &mut Pipeline,
    sink: &mut S,
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let file = File::open(path).map_err(|source| RunError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let read_err = |source| RunError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = capture::open(BufReader::with_capacity(1 << 20, file)).map_err(read_err)?;
    let mut clock: Option<(Timestamp, Instant)> = None;
    let mut n = 0u64;
    while let Some(packet) = reader.next_packet().map_err(read_err)? {
        n += 1;
        if n % 4096 == 0 && cancel.is_cancelled() {
            break;
        }
        if let Pacing::Speed(speed) = pacing {
            let (first, started) = *clock.get_or_insert((packet.timestamp, Instant::now()));
            let offset = packet
                .timestamp
                .saturating_since(first)
                .div_f64(speed.max(1e-6));
            let due = started + offset;
            if due > Instant::now() {
                sink.flush();
                while let Some(left) = due.checked_duration_since(Instant::now()) {
                    if cancel.is_cancelled() {
                        return Ok(());
                    }
                    std::thread::sleep(left.min(SLEEP_SLICE));
                }
            }
        }
        pipeline.process(packet.link_type, packet.timestamp, packet.data, sink);
    }
    Ok(())
}

/// Captures from a live interface until `cancel` fires. Batches are handed on at least every
/// `opts.timeout_ms`; kernel drop counters are refreshed every second.
pub fn capture_live<S: HepSink + ?Sized>(
    opts: &LiveOptions,
    pipeline: &mut Pipeline,
    sink: &mut S,
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let mut cap = LiveCapture::open(opts)?;
    tracing::info!(device = %opts.device, link_type = cap.link_type().0, filter = %opts.filter, "live capture started");
    capture_opened(&mut cap, opts, pipeline, sink, cancel)
}

/// [`capture_live`] on an already opened handle (so a caller can report open errors first).
pub fn capture_opened<S: HepSink + ?Sized>(
    cap: &mut LiveCapture,
    opts: &LiveOptions,
    pipeline: &mut Pipeline,
    sink: &mut S,
    cancel: &CancellationToken,
) -> Result<(), RunError> {
    let counters = pipeline.counters().clone();
    let flush_every = Duration::from_millis(u64::from(opts.timeout_ms.max(1)));
    let mut last_flush = Instant::now();
    let mut last_stats = Instant::now();
    let result = loop {
        if cancel.is_cancelled() {
            break Ok(());
        }
        match cap.next_packet() {
            Ok(Some(packet)) => {
                pipeline.process(packet.link_type, packet.timestamp, packet.data, sink)
            }
            Ok(None) => {}
            Err(e) => break Err(RunError::Live(e)),
        }
        let now = Instant::now();
        if now.duration_since(last_flush) >= flush_every {
            sink.flush();
            last_flush = now;
        }
        if now.duration_since(last_stats) >= Duration::from_secs(1) {
            update_stats(cap, &counters);
            last_stats = now;
        }
    };
    update_stats(cap, &counters);
    pipeline.finish(sink);
    sink.flush();
    result
}

fn update_stats(cap: &mut LiveCapture, counters: &Counters) {
    if let Some(s) = cap.stats() {
        Counters::set(&counters.kernel_dropped, s.dropped);
        Counters::set(&counters.interface_dropped, s.if_dropped);
    }
}
