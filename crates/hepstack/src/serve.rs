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

use anyhow::{bail, Context, Result};
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
    /// Store: `sqlite` (embedded, default) or postgres://user@host/db.
    #[arg(long, env = "HEPSTACK_STORE", value_name = "URL")]
    pub store: Option<String>,
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
        }
    }
}

/// Loads the configuration and runs until SIGTERM/SIGINT.
pub fn run(args: &ServeArgs) -> Result<ExitCode> {
    let config = config::load(args.config.as_deref(), std::env::vars(), &args.overrides())?;
    init_logging(&config.log.level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hepstack")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))?;
    Ok(ExitCode::SUCCESS)
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second initialisation (tests calling run twice) is harmless: keep the first.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
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
    bail!(
        "store {:?}: the PostgreSQL backend is not part of this build yet; use the embedded store (`--store sqlite`)",
        config.store.url
    )
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

    let admin_password = std::env::var("HEPSTACK_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let bootstrap =
        web::ensure_admin(&*store, admin_password.as_deref()).context("creating the admin user")?;
    match bootstrap {
        web::AdminBootstrap::CreatedWithRandomPassword { password } => {
            // Printed once, on the first start only; it is stored hashed.
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "hepstack: created user admin with password {password}");
            let _ = writeln!(err, "hepstack: (shown once; set HEPSTACK_ADMIN_PASSWORD on first start to choose it)");
        }
        web::AdminBootstrap::CreatedFromEnv => tracing::info!("created user admin from HEPSTACK_ADMIN_PASSWORD"),
        web::AdminBootstrap::EnvPasswordIgnored => tracing::warn!(
            "HEPSTACK_ADMIN_PASSWORD is ignored: users exist already and it only seeds the first start"
        ),
        web::AdminBootstrap::Existing => {}
    }

    let listeners =
        collector::BoundListeners::bind(&config.hep).context("binding HEP listeners")?;
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
    let collector = collector::Collector::new(config.hep.clone(), store.clone())?
        .open_spool(&config.data_dir)
        .context("opening the spool")?;
    let metrics = collector.metrics();
    let handle = collector
        .start(listeners, shutdown.clone())
        .context("starting the collector")?;

    let render: Arc<dyn Fn() -> String + Send + Sync> = {
        let metrics = metrics.clone();
        Arc::new(move || metrics.render())
    };
    let mut servers = tokio::task::JoinSet::new();
    if let Some(listener) = http_listener {
        announce("http", listener.local_addr()?);
        let state = web::AppState::new(store.clone(), config.web.clone(), Some(render.clone()))
            .context("starting the web API")?;
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
    while let Some(result) = servers.join_next().await {
        if let Ok(Err(err)) = result {
            tracing::warn!("HTTP server: {err}");
        }
    }
    let _ = retention.await;
    let accounting = metrics.accounting();
    tracing::info!(?accounting, "stopped");
    Ok(())
}

/// Runs retention once a minute (and once at start) until shutdown.
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
