//! [`Capture`]: the capture agent's runtime in one place, behind `hepstack capture`. A reader
//! thread runs the [`Pipeline`] over a live interface or files into the bounded queue; a
//! current-thread tokio runtime runs the sender task, the `/metrics` endpoint and the signal
//! handler. [`Capture::open`] opens the interface (so a missing libpcap or permission fails
//! before anything starts), [`OpenCapture::run`] runs until the input ends (files) or
//! SIGINT/SIGTERM (live) and every queued message was handed to the sender.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sender::{SenderConfig, Target};
use tokio_util::sync::CancellationToken;

use crate::{
    AgentConfig, Balance, Counters, LiveCapture, LiveError, LiveOptions, Pacing, Pipeline,
    Snapshot, WhenFull,
};

/// Everything a capture run needs, resolved from flags by the binary.
#[derive(Debug)]
pub struct Capture {
    /// The pipeline's settings (capture id, node name, RTCP, DNS, caps).
    pub config: AgentConfig,
    /// The collectors to send to.
    pub targets: Vec<Target>,
    /// How messages are spread over several collectors.
    pub balance: Balance,
    /// Connection settings of the sender (timeouts, TLS).
    pub sender: SenderConfig,
    /// Capture from this interface; `None` reads `files`.
    pub live: Option<LiveOptions>,
    /// pcap/pcapng files read in turn when there is no interface (`-` is stdin).
    pub files: Vec<PathBuf>,
    /// Pacing of file input.
    pub pacing: Pacing,
    /// Batches the queue between reader and sender holds.
    pub queue: usize,
    /// Also write every captured frame to rotated pcap files. Default: none.
    pub pcap_out: Option<crate::RotatingPcap>,
    /// Disk buffer for messages no collector takes, sent in order once one is back. Default:
    /// none.
    pub buffer: Option<spool::Spool>,
}

/// Why the capture could not start.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The interface could not be opened.
    #[error(transparent)]
    Live(#[from] LiveError),
    /// The runtime, a socket or the reader thread could not be set up.
    #[error("capture setup: {0}")]
    Io(#[from] std::io::Error),
}

/// What a finished capture reports.
#[derive(Debug)]
pub struct CaptureReport {
    /// The final counters.
    pub counters: Snapshot,
    /// Input errors (unreadable files, a failing interface), one line each.
    pub errors: Vec<String>,
}

/// A capture with its interface open, ready to run.
pub struct OpenCapture {
    spec: Capture,
    handle: Option<LiveCapture>,
}

impl std::fmt::Debug for OpenCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenCapture")
            .field("live", &self.handle.is_some())
            .finish_non_exhaustive()
    }
}

impl Capture {
    /// Opens the interface, if any.
    pub fn open(self) -> Result<OpenCapture, CaptureError> {
        let handle = match &self.live {
            Some(opts) => Some(LiveCapture::open(opts)?),
            None => None,
        };
        Ok(OpenCapture { spec: self, handle })
    }
}

impl OpenCapture {
    /// Runs the capture; `metrics`, when given, serves `/metrics` and `/healthz` meanwhile.
    pub fn run(
        self,
        metrics: Option<std::net::TcpListener>,
    ) -> Result<CaptureReport, CaptureError> {
        let OpenCapture { spec, handle } = self;
        let counters = Arc::new(Counters::default());
        let cancel = CancellationToken::new();
        let when_full = if spec.live.is_some() {
            WhenFull::Drop
        } else {
            WhenFull::Wait
        };
        let (producer, rx) = crate::output::queue(spec.queue, when_full, counters.clone());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let metrics = match metrics {
            Some(listener) => {
                listener.set_nonblocking(true)?;
                let _guard = rt.enter();
                Some(tokio::net::TcpListener::from_std(listener)?)
            }
            None => None,
        };
        let reader = spawn_reader(
            ReaderInput {
                config: spec.config,
                live: spec.live,
                handle,
                files: spec.files,
                pacing: spec.pacing,
                pcap_out: spec.pcap_out,
            },
            producer,
            counters.clone(),
            cancel.clone(),
        )?;
        let (targets, balance, sender_cfg, buffer) =
            (spec.targets, spec.balance, spec.sender, spec.buffer);
        let errors = rt.block_on(async {
            let output = tokio::spawn(crate::output::run(
                rx,
                targets,
                balance,
                sender_cfg,
                counters.clone(),
                buffer,
            ));
            if let Some(listener) = metrics {
                tokio::spawn(crate::metrics::serve(
                    listener,
                    counters.clone(),
                    cancel.clone(),
                ));
            }
            tokio::spawn(signals(counters.clone(), cancel.clone()));
            let _ = output.await;
            cancel.cancel();
            tokio::task::spawn_blocking(move || reader.join().unwrap_or_default())
                .await
                .unwrap_or_default()
        });
        rt.shutdown_timeout(Duration::from_millis(200));
        Ok(CaptureReport {
            counters: counters.snapshot(),
            errors,
        })
    }
}

/// What the reader thread reads from.
struct ReaderInput {
    config: AgentConfig,
    live: Option<LiveOptions>,
    handle: Option<LiveCapture>,
    files: Vec<PathBuf>,
    pacing: Pacing,
    pcap_out: Option<crate::RotatingPcap>,
}

/// Starts the thread that runs the pipeline over the input into `producer`; it returns the
/// input errors. Dropping the producer when it ends closes the queue, which ends the sender.
fn spawn_reader(
    input: ReaderInput,
    mut producer: crate::Producer,
    counters: Arc<Counters>,
    cancel: CancellationToken,
) -> std::io::Result<std::thread::JoinHandle<Vec<String>>> {
    std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || -> Vec<String> {
            let ReaderInput {
                config,
                live,
                mut handle,
                files,
                pacing,
                pcap_out,
            } = input;
            let mut pipeline = Pipeline::new(config, counters);
            if let Some(out) = pcap_out {
                pipeline.write_pcap(out);
            }
            let errors = match (&live, handle.as_mut()) {
                (Some(opts), Some(cap)) => {
                    eprintln!(
                        "hepstack: capturing on {} (link type {}, filter {:?})",
                        opts.device,
                        cap.link_type().0,
                        opts.filter
                    );
                    crate::run::capture_opened(cap, opts, &mut pipeline, &mut producer, &cancel)
                        .err()
                        .into_iter()
                        .map(|e| e.to_string())
                        .collect()
                }
                _ => crate::capture_files(&files, pacing, &mut pipeline, &mut producer, &cancel)
                    .into_iter()
                    .map(|e| e.to_string())
                    .collect(),
            };
            drop(producer);
            errors
        })
}

/// SIGUSR1 prints the counters; SIGINT/SIGTERM stop the capture (queued messages are still
/// sent).
async fn signals(counters: Arc<Counters>, cancel: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut usr1), Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::user_defined1()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::warn!("cannot install signal handlers");
        return;
    };
    loop {
        tokio::select! {
            _ = usr1.recv() => eprintln!("hepstack: capture counters: {}", counters.snapshot().line()),
            _ = int.recv() => cancel.cancel(),
            _ = term.recv() => cancel.cancel(),
            _ = cancel.cancelled() => return,
        }
    }
}
