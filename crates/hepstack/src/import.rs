//! `hepstack import`: copies the messages of a time window from one store to another — e.g. a
//! HOMER 7 `homer_data` database written by heplify-server into the embedded store — with a
//! checkpoint file to resume from after an interruption, progress on stderr and a final count
//! checked against the source. The copy itself is `store::transfer`.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::config::{self, FlagOverrides};

/// `hepstack import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The store to read: `sqlite:DIR` (an embedded store: DIR is `hepstack serve`'s data
    /// directory, or the store directory itself), a `postgres://user@host/db` URL of a
    /// HOMER 7 `homer_data` database (written by heplify-server or by hepstack), or a
    /// `clickhouse://user:password@host:8123/db[?cluster=NAME]` URL.
    #[arg(long, value_name = "STORE_URL")]
    pub from: String,
    /// The store to write, same forms as --from; created when missing.
    #[arg(long, value_name = "STORE_URL")]
    pub to: String,
    /// Copy messages captured at or after this time: RFC 3339 or epoch milliseconds.
    #[arg(long, value_name = "T")]
    pub from_time: Option<String>,
    /// Copy messages captured before this time: RFC 3339 or epoch milliseconds.
    #[arg(long, value_name = "T")]
    pub to_time: Option<String>,
    /// Checkpoint file; running the same command again resumes from it. Default:
    /// `hepstack-import-<hash of source, target and window>.json` in the current directory.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Messages per batch.
    #[arg(long, default_value_t = store::transfer::DEFAULT_BATCH)]
    pub batch: usize,
    /// Configuration file whose `[store.sqlite]` and `[store.postgres]` settings (partition
    /// steps, compression, connections, TLS) apply to both stores.
    #[arg(long, env = "HEPSTACK_CONFIG")]
    pub config: Option<PathBuf>,
}

/// A store URL with its password, if any, replaced for messages and the state file.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// The embedded store's directory named by `sqlite:DIR`: DIR itself when it holds the
/// catalog, else DIR/store (DIR is then a `--data-dir`).
fn sqlite_dir(dir: &Path) -> PathBuf {
    if dir.join("catalog.db").exists() {
        dir.to_path_buf()
    } else {
        dir.join("store")
    }
}

/// Opens one side. `must_exist`: an embedded source that is not there is an error rather than
/// a new, empty store.
fn open(url: &str, file: Option<&Path>, must_exist: bool) -> Result<Arc<dyn store::Store>> {
    let sqlite = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"));
    let mut cfg = config::load(
        file,
        std::env::vars(),
        &FlagOverrides {
            store: Some(if sqlite.is_some() {
                "sqlite".into()
            } else {
                url.into()
            }),
            ..FlagOverrides::default()
        },
    )?;
    cfg.validate()?;
    if let Some(dir) = sqlite {
        if dir.is_empty() {
            bail!("{url}: name the directory, e.g. sqlite:./hepstack-data");
        }
        let dir = sqlite_dir(Path::new(dir));
        if must_exist && !dir.join("catalog.db").exists() {
            bail!("{url}: no embedded store in {}", dir.display());
        }
        cfg.store.sqlite.data_dir = dir;
    }
    crate::serve::open_store(&cfg).with_context(|| format!("opening {}", redact(url)))
}

fn parse_time(name: &str, value: Option<&str>) -> Result<Option<i64>> {
    value
        .map(|v| {
            web::query::parse_time_param(name, v).map_err(|e| anyhow::anyhow!("--{name}: {e}"))
        })
        .transpose()
}

fn time_text(us: i64) -> String {
    web::query::format_time_us(us).unwrap_or_else(|| format!("{us} µs"))
}

/// Raises `stop` on SIGINT or SIGTERM, so that the copy ends after its current batch with the
/// checkpoint saved; a second signal ends the process at once.
fn watch_signals(stop: Arc<AtomicBool>) {
    let spawned = std::thread::Builder::new()
        .name("import-signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                use tokio::signal::unix::{signal, SignalKind};
                let (Ok(mut int), Ok(mut term)) = (
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::terminate()),
                ) else {
                    return;
                };
                for _ in 0..2 {
                    tokio::select! {
                        _ = int.recv() => {}
                        _ = term.recv() => {}
                    }
                    if stop.swap(true, Ordering::SeqCst) {
                        std::process::exit(130);
                    }
                    eprintln!("import: stopping after the current batch (again to quit at once)");
                }
            });
        });
    if spawned.is_err() {
        tracing::warn!(
            "cannot watch signals: an interrupted import resumes from its last checkpoint"
        );
    }
}

/// Runs `hepstack import`.
pub fn run(args: &ImportArgs) -> Result<ExitCode> {
    crate::serve::init_logging(&crate::config::LogSection {
        level: "warn".into(),
        ..crate::config::LogSection::default()
    });
    let from_us = parse_time("from-time", args.from_time.as_deref())?;
    let to_us = parse_time("to-time", args.to_time.as_deref())?;
    if let (Some(f), Some(t)) = (from_us, to_us) {
        if f >= t {
            bail!("--from-time must be before --to-time");
        }
    }
    let identity = format!("{} -> {}", redact(&args.from), redact(&args.to));
    let state = args.state.clone().unwrap_or_else(|| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&identity, from_us, to_us).hash(&mut h);
        PathBuf::from(format!("hepstack-import-{:016x}.json", h.finish()))
    });
    let source = open(&args.from, args.config.as_deref(), true).context("--from")?;
    let target = open(&args.to, args.config.as_deref(), false).context("--to")?;
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone());
    eprintln!(
        "import: {identity}, window {} .. {}, checkpoint {}",
        from_us.map_or("oldest".into(), time_text),
        to_us.map_or("newest".into(), time_text),
        state.display()
    );
    let opts = store::transfer::CopyOptions {
        from_us,
        to_us,
        batch: args.batch,
        identity,
    };
    let started = Instant::now();
    let mut last_line = Instant::now() - Duration::from_secs(10);
    let mut first_copied = None;
    let result = store::transfer::copy(
        source.as_ref(),
        target.as_ref(),
        &opts,
        &state,
        &stop,
        |p| {
            let cp = p.checkpoint;
            for why in p.rejected.iter().take(5) {
                eprintln!("import: the target refused a message: {why}");
            }
            let base = *first_copied.get_or_insert(cp.copied);
            if last_line.elapsed() < Duration::from_secs(1) && !cp.done {
                return;
            }
            last_line = Instant::now();
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let done = cp.copied + cp.rejected;
            let pct = if cp.source_total == 0 {
                100.0
            } else {
                100.0 * done as f64 / cp.source_total as f64
            };
            eprintln!(
                "import: {done} of {} messages ({pct:.1} %), {:.0}/s, up to {}",
                cp.source_total,
                (cp.copied - base) as f64 / secs,
                cp.position.map_or("-".into(), |p| time_text(p.time_us)),
            );
        },
    );
    let cp = match result {
        Ok(cp) => cp,
        Err(store::transfer::TransferError::Interrupted) => {
            eprintln!(
                "import: interrupted; run the same command again to resume from {}",
                state.display()
            );
            return Ok(ExitCode::from(130));
        }
        Err(e) => return Err(e).context("import failed; run the same command again to resume"),
    };
    let target_now =
        store::transfer::count(target.as_ref(), from_us, to_us).context("counting the target")?;
    let source_now =
        store::transfer::count(source.as_ref(), from_us, to_us).context("counting the source")?;
    let added = target_now.saturating_sub(cp.target_before);
    eprintln!(
        "import: done in {:.1} s: source {source_now} messages; target {} before, {target_now} now (+{added}); {} refused by the target",
        started.elapsed().as_secs_f64(),
        cp.target_before,
        cp.rejected
    );
    if added + cp.rejected != source_now {
        eprintln!(
            "import: the counts differ: {added} added + {} refused != {source_now} in the source (was the source or the target written to meanwhile?)",
            cp.rejected
        );
        return Ok(ExitCode::from(1));
    }
    println!("{added}");
    Ok(ExitCode::SUCCESS)
}
