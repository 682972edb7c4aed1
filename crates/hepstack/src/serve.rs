//! `hepstack serve`: the collector, the store, the HTTP API and the metrics endpoint in one
//! process. This module only wires the crates together: it loads the configuration, opens the
//! store, binds every socket, starts the parts with one shutdown token, and on SIGTERM/SIGINT
//! cancels the token and waits until everything received is stored or spooled.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, FlagOverrides};

/// `hepstack serve` flags. Each also reads its `HEPSTACK_*` variable; any other key of the
/// configuration can be set as `HEPSTACK_<SECTION>__<KEY>` (see `hepstack config default`).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (see `hepstack config default` for every key).
    #[arg(long, env = "HEPSTACK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// HEP over UDP listen address(es), comma-separated; `off` disables. Default 0.0.0.0:9060.
    #[arg(
        long,
        env = "HEPSTACK_HEP_UDP",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub hep_udp: Option<Vec<String>>,
    /// HEP over TCP listen address(es); `off` disables. Default 0.0.0.0:9060.
    #[arg(
        long,
        env = "HEPSTACK_HEP_TCP",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub hep_tcp: Option<Vec<String>>,
    /// HEP over TLS listen address(es); needs hep.tls.cert_file and key_file. Default: off.
    #[arg(
        long,
        env = "HEPSTACK_HEP_TLS",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub hep_tls: Option<Vec<String>>,
    /// HTTP API/UI listen address; `off` disables. Default 0.0.0.0:9080.
    #[arg(long, env = "HEPSTACK_HTTP", value_name = "ADDR")]
    pub http: Option<String>,
    /// Prometheus metrics listen address; `off` disables. Default 0.0.0.0:9096.
    #[arg(long, env = "HEPSTACK_METRICS", value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Data directory (store partitions, spool). Default ./hepstack-data.
    #[arg(long, env = "HEPSTACK_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Store: `sqlite` (embedded, default), postgres://user@host/db or
    /// clickhouse://user:password@host:8123/db[?cluster=NAME] (clickhouses:// for TLS).
    #[arg(long, env = "HEPSTACK_STORE", value_name = "URL")]
    pub store: Option<String>,
    /// Log filter (log.level; `RUST_LOG` overrides it). Default info.
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Log line format (log.format). Default text.
    #[arg(long, value_name = "FORMAT")]
    pub log_format: Option<config::LogFormat>,
    /// ANSI colour in text logs (log.color): auto = only on a terminal. Default auto.
    #[arg(long, value_name = "WHEN")]
    pub log_color: Option<config::LogColor>,
}

impl ServeArgs {
    fn overrides(&self) -> FlagOverrides {
        FlagOverrides {
            hep_udp: self.hep_udp.clone(),
            hep_tcp: self.hep_tcp.clone(),
            hep_tls: self.hep_tls.clone(),
            http: self.http.clone(),
            metrics: self.metrics.clone(),
            data_dir: self.data_dir.clone(),
            store: self.store.clone(),
            log_level: self.log_level.clone(),
            log_format: self.log_format,
            log_color: self.log_color,
        }
    }
}

/// Loads the configuration and runs until SIGTERM/SIGINT.
pub fn run(args: &ServeArgs) -> Result<ExitCode> {
    let config = config::load(args.config.as_deref(), std::env::vars(), &args.overrides())?;
    init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hepstack")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

/// Installs the log subscriber: `RUST_LOG` or `log.level` as the filter, text or JSON lines on
/// standard error, ANSI colour only where [`config::LogSection::colored`] says so.
pub(crate) fn init_logging(log: &config::LogSection) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(log.colored(std::io::stderr().is_terminal(), no_color));
    // A second initialisation (tests calling run twice) is harmless: keep the first.
    let _ = match log.format {
        config::LogFormat::Text => builder.try_init(),
        config::LogFormat::Json => builder.json().try_init(),
    };
}

/// Opens the configured store.
pub fn open_store(config: &Config) -> Result<Arc<dyn store::Store>> {
    if config.store.url == "sqlite" {
        let mut sqlite = config.store.sqlite.clone();
        if sqlite.data_dir == store::sqlite::SqliteConfig::default().data_dir {
            sqlite.data_dir = config.store_dir();
        }
        let store = store::sqlite::SqliteStore::open(sqlite).with_context(|| {
            format!(
                "opening the embedded store in {}",
                config.store_dir().display()
            )
        })?;
        return Ok(Arc::new(store));
    }
    if config::is_clickhouse_url(&config.store.url) {
        let clickhouse = store::clickhouse::ChConfig {
            url: config.store.url.clone(),
            ..config.store.clickhouse.clone()
        };
        let store =
            store::clickhouse::ChStore::open(clickhouse).context("opening the ClickHouse store")?;
        tracing::info!(target = store.target(), "storing in ClickHouse");
        return Ok(Arc::new(store));
    }
    let postgres = store::postgres::PgConfig {
        url: config.store.url.clone(),
        ..config.store.postgres.clone()
    };
    // The URL may carry a password: errors name only host, port and database.
    let store = store::postgres::PgStore::open(postgres).context("opening the PostgreSQL store")?;
    tracing::info!(
        target = store.target(),
        "storing in PostgreSQL (HOMER 7 layout)"
    );
    Ok(Arc::new(store))
}

async fn bind_http(what: &str, addr: &str) -> Result<Option<tokio::net::TcpListener>> {
    if addr.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = addr
        .parse()
        .with_context(|| format!("{what} address {addr:?}"))?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} on {addr}"))?;
    Ok(Some(listener))
}

/// Announces a bound address on stderr in a fixed form (`hepstack: listening <what> <addr>`)
/// that scripts and tests read to find ports chosen by the kernel (`:0`).
fn announce(what: &str, addr: SocketAddr) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "hepstack: listening {what} {addr}");
}

async fn serve(config: Config) -> Result<()> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let store = tokio::task::spawn_blocking({
        let config = config.clone();
        move || open_store(&config)
    })
    .await
    .context("opening the store")??;

    // The admin bootstrap blocks on the store, so it runs off the async threads; a store that
    // is unavailable at start only defers it (see spawn_admin_bootstrap).
    let admin_password = std::env::var("HEPSTACK_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let first_try = tokio::task::spawn_blocking({
        let store = store.clone();
        let password = admin_password.clone();
        move || web::ensure_admin(&*store, password.as_deref())
    })
    .await
    .context("creating the admin user")?;
    let admin_deferred = match first_try {
        Ok(bootstrap) => {
            report_admin_bootstrap(bootstrap);
            false
        }
        Err(web::WebError::Store(store::StoreError::Unavailable(e))) => {
            tracing::warn!(error = %e, "store unavailable: the admin user is created once it answers");
            true
        }
        Err(e) => return Err(e).context("creating the admin user"),
    };

    let listeners =
        ingest::BoundListeners::bind(&config.hep.listeners()).context("binding HEP listeners")?;
    let (udp, tcp, tls) = listeners.local_addrs();
    let mut seen = Vec::new();
    for addr in udp {
        if !seen.contains(&addr) {
            announce("hep-udp", addr);
            seen.push(addr);
        }
    }
    tcp.into_iter().for_each(|a| announce("hep-tcp", a));
    tls.into_iter().for_each(|a| announce("hep-tls", a));
    let http_listener = bind_http("http", &config.http.listen).await?;
    let metrics_listener = bind_http("metrics", &config.metrics.listen).await?;

    let shutdown = CancellationToken::new();
    let mut collector = collector::Collector::new(config.hep.clone(), store.clone())?
        .open_spool(&config.data_dir)
        .context("opening the spool")?;
    let outputs = build_outputs(&config, &shutdown)?;
    for output in outputs.list.iter() {
        collector = collector.with_output(output.clone());
    }
    let kpi_engine = outputs.kpi.clone();
    let live_feed = outputs.live_feed.clone();
    let loki = outputs.loki;
    let loki_shutdown = outputs.loki_shutdown;
    let loki_stats = loki.as_ref().map(|(stats, _)| stats.clone());
    // HEP mirroring: a copy of every received packet goes through the [forward] rules.
    let forward = if config.forward.is_enabled() {
        let routing = config.forward.clone();
        let relay = tokio::task::spawn_blocking(move || ::relay::Relay::start(&routing))
            .await
            .context("starting HEP forwarding")?
            .context("[forward]")?;
        collector = collector
            .with_tap(relay.clone())
            .with_output(Arc::new(ForwardOutput(relay.clone())));
        Some(relay)
    } else {
        None
    };
    let metrics = collector.metrics();
    let handle = collector
        .start(listeners, shutdown.clone())
        .context("starting the collector")?;
    let output_set = handle.outputs();

    // Runs on a blocking thread (web::api::metrics_response); reads only, no housekeeping.
    let render: Arc<dyn Fn() -> String + Send + Sync> = {
        let metrics = metrics.clone();
        let kpi_engine = kpi_engine.clone();
        let forward = forward.clone();
        Arc::new(move || {
            let mut out = metrics.render();
            output_set.render(&mut out);
            if let Some(relay) = &forward {
                out.push_str(&relay.render_metrics());
            }
            if let Some(engine) = &kpi_engine {
                engine.render_prometheus(&mut out);
            }
            if let Some(stats) = &loki_stats {
                stats.render(&mut out);
            }
            out
        })
    };
    let mut servers = tokio::task::JoinSet::new();
    if let Some(listener) = http_listener {
        announce("http", listener.local_addr()?);
        let mut state = web::AppState::new(store.clone(), config.web.clone(), Some(render.clone()))
            .context("starting the web API")?;
        if let Some(engine) = &kpi_engine {
            state = state.with_kpi(engine.clone());
        }
        state = state.with_live_feed(live_feed.clone());
        servers.spawn(web::serve(listener, web::router(state), shutdown.clone()));
    }
    if let Some(listener) = metrics_listener {
        announce("metrics", listener.local_addr()?);
        servers.spawn(web::serve(
            listener,
            web::metrics_router(render.clone()),
            shutdown.clone(),
        ));
    }
    let admin = admin_deferred
        .then(|| spawn_admin_bootstrap(store.clone(), admin_password, shutdown.clone()));
    let retention = spawn_retention(store.clone(), shutdown.clone());
    {
        // Every listener is announced above; scripts wait for this line.
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "hepstack: ready");
    }

    wait_for_signal(&shutdown).await;
    tracing::info!("shutting down: draining queues to the store or spool");
    shutdown.cancel();
    handle.join().await;
    if let Some(relay) = forward {
        // The listeners are stopped: send what the forwarding queues hold.
        let _ = tokio::task::spawn_blocking(move || relay.shutdown(Duration::from_secs(10))).await;
    }
    loki_shutdown.cancel();
    if let Some((_, task)) = loki {
        let _ = task.await;
    }
    while let Some(result) = servers.join_next().await {
        if let Ok(Err(err)) = result {
            tracing::warn!("HTTP server: {err}");
        }
    }
    let _ = retention.await;
    if let Some(admin) = admin {
        let _ = admin.await;
    }
    let accounting = metrics.accounting();
    tracing::info!(?accounting, "stopped");
    // Every task is done, so this is the last handle of the store: close it on a blocking
    // thread, because a blocking driver (PostgreSQL's) runs its own runtime to shut down.
    let _ = tokio::task::spawn_blocking(move || drop(store)).await;
    Ok(())
}

/// Runs retention once a minute (and once at start) until shutdown.
/// Retries the admin bootstrap (see [`web::ensure_admin`]) while the store is unavailable: a
/// PostgreSQL that is down at start must not stop capture, so the admin user is created once
/// the database answers.
fn spawn_admin_bootstrap(
    store: Arc<dyn store::Store>,
    admin_password: Option<String>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || loop {
        match web::ensure_admin(&*store, admin_password.as_deref()) {
            Ok(bootstrap) => {
                report_admin_bootstrap(bootstrap);
                return;
            }
            Err(web::WebError::Store(store::StoreError::Unavailable(e))) => {
                tracing::warn!(error = %e, "store unavailable: creating the admin user once it answers");
                for _ in 0..20 {
                    if shutdown.is_cancelled() {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "creating the admin user failed");
                return;
            }
        }
    })
}

fn report_admin_bootstrap(bootstrap: web::AdminBootstrap) {
    match bootstrap {
        web::AdminBootstrap::CreatedWithRandomPassword { password } => {
            // Printed once, on the first start only; it is stored hashed.
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "hepstack: created user admin with password {password}");
            let _ = writeln!(err, "hepstack: (shown once; set HEPSTACK_ADMIN_PASSWORD on first start to choose it)");
        }
        web::AdminBootstrap::CreatedFromEnv => {
            tracing::info!("created user admin from HEPSTACK_ADMIN_PASSWORD")
        }
        web::AdminBootstrap::EnvPasswordIgnored => tracing::warn!(
            "HEPSTACK_ADMIN_PASSWORD is ignored: users exist already and it only seeds the first start"
        ),
        web::AdminBootstrap::Existing => {}
    }
}

fn spawn_retention(
    store: Arc<dyn store::Store>,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let store = store.clone();
            let pass = tokio::task::spawn_blocking(move || store.enforce_retention(now_us())).await;
            match pass {
                Ok(Ok(report)) if !report.partitions_dropped.is_empty() => tracing::info!(
                    dropped = ?report.partitions_dropped, bytes_freed = report.bytes_freed, "retention"
                ),
                Ok(Err(err)) => tracing::warn!("retention: {err}"),
                _ => {}
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(60)) => {}
            }
        }
    })
}

fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Waits for SIGTERM or SIGINT (or for the token, if something else cancelled it).
async fn wait_for_signal(shutdown: &CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL only");
        shutdown.cancelled().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM"),
        _ = int.recv() => tracing::info!("SIGINT"),
        _ = shutdown.cancelled() => {}
    }
}

/// What the outputs of `serve` are, once built from their configuration sections.
struct ServeOutputs {
    /// Every output, in the order they are offered records.
    list: Vec<Arc<dyn collector::output::Output>>,
    /// `[kpi]`: the engine, read by `/metrics` and `/api/v1/kpi`.
    kpi: Option<Arc<kpi::Kpi>>,
    /// The live tail's broadcast (`GET /api/v1/tail`).
    live_feed: web::LiveFeed,
    /// `[loki]`: its counters and pusher task.
    loki: Option<(Arc<collector::loki::LokiStats>, tokio::task::JoinHandle<()>)>,
    /// Stops the Loki pusher after the collector drained, so the last records are pushed.
    loki_shutdown: CancellationToken,
}

/// Records waiting for the live tail's worker; the tail skips ahead past this.
const LIVE_QUEUE: usize = 4096;

/// Builds the outputs (docs/kpi.md, docs/loki.md, the live tail), one per configuration
/// section; each gets every record the pipeline accepts through its own bounded queue. An
/// output added later is one more section read here.
fn build_outputs(config: &Config, shutdown: &CancellationToken) -> Result<ServeOutputs> {
    let mut list: Vec<Arc<dyn collector::output::Output>> = Vec::new();
    let kpi = if config.kpi.enabled {
        let engine = Arc::new(kpi::Kpi::new(config.kpi.clone()).context("[kpi]")?);
        let output = collector::kpi_output(engine.clone(), config.kpi.queue_capacity)
            .context("starting the KPI thread")?;
        list.push(Arc::new(output));
        Some(engine)
    } else {
        None
    };
    let loki_shutdown = CancellationToken::new();
    let loki = if config.loki.enabled {
        let (output, stats, task) =
            collector::loki::start(config.loki.clone(), loki_shutdown.clone())?;
        list.push(output);
        Some((stats, task))
    } else {
        None
    };
    // Nothing is copied while no client is connected; slow clients skip ahead.
    let live_feed = web::LiveFeed::new(web::live::DEFAULT_LIVE_CAPACITY, shutdown.clone());
    let feed = live_feed.clone();
    let live = collector::output::QueuedOutput::start(
        "live",
        collector::output::QueueSettings {
            capacity: LIVE_QUEUE,
            batch: 256,
            tick: Duration::from_secs(1),
        },
        Box::new(move |r: &store::Record, _: &collector::ParsedRtcp| {
            (feed.subscribers() > 0).then(|| r.clone())
        }),
        LiveSink(live_feed.clone()),
    )
    .context("starting the live tail")?;
    list.push(Arc::new(live));
    Ok(ServeOutputs {
        list,
        kpi,
        live_feed,
        loki,
        loki_shutdown,
    })
}

/// HEP forwarding (`[forward]`) among the outputs: it forwards packets as received, before
/// decoding, so it is fed as a packet tap ([`collector::Collector::with_tap`]) rather than
/// offered records, and its queues and workers are the relay's, one per destination. Here it
/// reports their sums as `hepstack_output_*{output="forward"}`.
struct ForwardOutput(Arc<::relay::Relay>);

impl collector::output::Output for ForwardOutput {
    fn name(&self) -> &str {
        "forward"
    }

    fn offer(&self, _record: &store::Record, _rtcp: &collector::ParsedRtcp) {}

    fn stats(&self) -> collector::output::OutputStats {
        let t = self.0.totals();
        collector::output::OutputStats {
            sent: t.forwarded,
            dropped: [t.dropped_queue_full, t.dropped_send, 0, 0],
            queued: t.queue_depth as u64,
        }
    }

    fn close(&self, _deadline: Duration) {
        // Shut down with the relay after the listeners stopped (serve's drain).
    }
}

/// Publishes records to the live tail's clients.
struct LiveSink(web::LiveFeed);

impl collector::output::Sink for LiveSink {
    type Item = store::Record;

    fn write(&mut self, items: &mut Vec<store::Record>) -> usize {
        self.0.publish(items);
        items.len()
    }
}
