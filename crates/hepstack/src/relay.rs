//! `hepstack relay`: the HEP switch. Loads a relay configuration (listeners, destinations,
//! groups, rules), receives HEP with the collector's listeners and routes it with the `relay`
//! crate; `/metrics` on `metrics_listen`; SIGHUP reloads the rules (unchanged destinations keep
//! their queues and connections); SIGTERM/SIGINT drain and stop. `--check FILE` validates a
//! file and prints the resolved rules.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// `hepstack relay` flags.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("file").required(true).args(["config", "check"])))]
pub struct RelayArgs {
    /// The relay configuration (TOML; see docs/relay.md).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate FILE, print the resolved rules and the expected share of each balance group
    /// member, and exit (status 1 when invalid).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    pub check: Option<PathBuf>,
}

/// Reads and validates a relay configuration file.
pub fn load(path: &Path) -> Result<(relay::RelayConfig, relay::Plan)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading relay config {}", path.display()))?;
    let config: relay::RelayConfig =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let plan = relay::Plan::compile(&config.routing())
        .with_context(|| format!("invalid relay config {}", path.display()))?;
    listener_config(&config)
        .validate()
        .with_context(|| format!("invalid listener settings in {}", path.display()))?;
    if !config.metrics_listen.is_empty() {
        config
            .metrics_listen
            .parse::<SocketAddr>()
            .with_context(|| format!("metrics_listen {:?}", config.metrics_listen))?;
    }
    Ok((config, plan))
}

/// Runs `hepstack relay`.
pub fn run(args: &RelayArgs) -> Result<ExitCode> {
    if let Some(path) = &args.check {
        let (config, plan) = load(path)?;
        let mut out = std::io::stdout().lock();
        let listen: Vec<String> = config
            .udp
            .addresses
            .iter()
            .map(|a| format!("udp {a}"))
            .chain(config.tcp.addresses.iter().map(|a| format!("tcp {a}")))
            .chain(config.tls.addresses.iter().map(|a| format!("tls {a}")))
            .collect();
        writeln!(out, "{}: ok", path.display())?;
        writeln!(out, "listen: {}", listen.join(", "))?;
        writeln!(
            out,
            "metrics: {}",
            if config.metrics_listen.is_empty() {
                "off"
            } else {
                config.metrics_listen.as_str()
            }
        )?;
        write!(out, "{}", plan.describe())?;
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = args.config.clone() else {
        anyhow::bail!("--config FILE or --check FILE is required");
    };
    let (config, _) = load(&path)?;
    crate::serve::init_logging(&crate::config::LogSection {
        level: config.log_level.clone(),
        ..Default::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("hepstack-relay")
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve_relay(path, config))?;
    Ok(ExitCode::SUCCESS)
}

fn announce(what: &str, addr: SocketAddr) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "hepstack: listening {what} {addr}");
}

async fn serve_relay(path: PathBuf, config: relay::RelayConfig) -> Result<()> {
    let relay = tokio::task::spawn_blocking({
        let routing = config.routing();
        move || relay::Relay::start(&routing)
    })
    .await
    .context("starting the relay")??;
    let listeners =
        ingest::BoundListeners::bind(&listener_config(&config)).context("binding HEP listeners")?;
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

    let shutdown = CancellationToken::new();
    // Connection gauges of the listeners; only the relay's own metrics are served.
    let listener_metrics = Arc::new(ingest::ListenerMetrics::default());
    let handler: Arc<dyn ingest::PacketHandler> = relay.clone();
    let running = ingest::start_listeners(
        listeners,
        &listener_config(&config),
        handler,
        listener_metrics.clone(),
        shutdown.clone(),
    )
    .context("starting the HEP listeners")?;

    let mut servers = tokio::task::JoinSet::new();
    if !config.metrics_listen.is_empty() {
        let addr: SocketAddr = config
            .metrics_listen
            .parse()
            .with_context(|| format!("metrics_listen {:?}", config.metrics_listen))?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding metrics on {addr}"))?;
        announce("metrics", listener.local_addr()?);
        let render: Arc<dyn Fn() -> String + Send + Sync> = {
            let relay = relay.clone();
            let listener_metrics = listener_metrics.clone();
            Arc::new(move || {
                let mut text = relay.render_metrics();
                text.push_str(&connection_metrics(&listener_metrics));
                text
            })
        };
        servers.spawn(web::serve(
            listener,
            web::metrics_router(render),
            shutdown.clone(),
        ));
    }
    {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(err, "hepstack: ready");
    }

    wait_for_signals(&path, &relay, &shutdown).await;
    tracing::info!("shutting down: sending what is queued");
    shutdown.cancel();
    running.join().await;
    let drained = tokio::task::spawn_blocking({
        let relay = relay.clone();
        move || relay.shutdown(Duration::from_secs(10))
    })
    .await;
    if drained.is_err() {
        tracing::error!("relay drain failed");
    }
    while let Some(result) = servers.join_next().await {
        if let Ok(Err(err)) = result {
            tracing::warn!("metrics server: {err}");
        }
    }
    Ok(())
}

fn listener_config(config: &relay::RelayConfig) -> ingest::ListenerConfig<'_> {
    ingest::ListenerConfig {
        udp: &config.udp,
        tcp: &config.tcp,
        tls: &config.tls,
    }
}

fn connection_metrics(m: &ingest::ListenerMetrics) -> String {
    use ingest::Transport;
    let mut out = String::from(
        "# HELP hepstack_relay_connections open HEP stream connections into the relay\n# TYPE hepstack_relay_connections gauge\n",
    );
    for t in [Transport::Tcp, Transport::Tls] {
        out.push_str(&format!(
            "hepstack_relay_connections{{transport=\"{}\"}} {}\n",
            t.as_str(),
            m.connections(t)
        ));
    }
    out
}

/// Waits for SIGTERM/SIGINT; reloads the routing on SIGHUP (listener settings need a restart).
async fn wait_for_signals(path: &Path, relay: &Arc<relay::Relay>, shutdown: &CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::warn!("cannot install signal handlers; stop with SIGKILL only");
        shutdown.cancelled().await;
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM"); return; }
            _ = int.recv() => { tracing::info!("SIGINT"); return; }
            _ = shutdown.cancelled() => return,
            _ = hup.recv() => {
                let path = path.to_path_buf();
                let relay = relay.clone();
                let result = tokio::task::spawn_blocking(move || -> Result<()> {
                    let (config, _) = load(&path)?;
                    relay.reload(&config.routing())?;
                    Ok(())
                })
                .await;
                match result {
                    Ok(Ok(())) => {
                        tracing::info!("SIGHUP: configuration reloaded");
                        let mut err = std::io::stderr().lock();
                        let _ = writeln!(err, "hepstack: reloaded");
                    }
                    Ok(Err(e)) => {
                        tracing::error!("SIGHUP: reload refused, keeping the running configuration: {e:#}");
                        let mut err = std::io::stderr().lock();
                        let _ = writeln!(err, "hepstack: reload failed");
                    }
                    Err(e) => tracing::error!("SIGHUP: reload task failed: {e}"),
                }
            }
        }
    }
}
