//! `hepstack send`: synthesize realistic HEP load, or replay recorded HEP, to a collector.
//! The work is done by the `sender` crate; this module maps flags onto it and prints the summary.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use sender::{
    HepDirReader, HepSender, HepSource, HepstreamReader, HepstreamWriter, MessageSource, Mix,
    Overrides, Pacing, PcapHepReader, ReplaySource, RunOptions, SenderConfig, Sink, Synth,
    SynthConfig, SynthSource, Target, TlsOptions,
};

/// How replayed messages are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Timing {
    /// At `--rate` messages per second (or as fast as possible without it).
    Rate,
    /// With the recorded gaps between messages, divided by `--speed`.
    Original,
}

/// Arguments of `hepstack send`.
///
/// Counting: a *message* is one HEP message (one UDP datagram or one HEP frame on TCP/TLS):
/// every SIP request or response, RTCP report and log line counts as one. A *call* is one
/// generated INVITE scenario of any outcome (answered, busy, not found, timeout, cancelled),
/// which is several messages (an answered call with the default 2 RTCP reports per direction and
/// a log line is 13 messages, 20 with --b-legs). Registrations and OPTIONS pings are generated
/// alongside calls in the proportions of --mix.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  hepstack send --to udp://127.0.0.1:9060 --calls 1000 --rate 5000\n  hepstack send --to tcp://127.0.0.1:9060 --count 10000000 --seed 7 --b-legs --json\n  hepstack send --to tls://collector:9061 --ca ca.pem --pcap capture.pcap --timing original --speed 10\n  hepstack send --dry-run --out synth.hepstream --calls 100 --seed 1"
)]
pub struct SendArgs {
    /// Destination: udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT.
    #[arg(long, value_name = "URL", required_unless_present = "dry_run")]
    pub to: Option<String>,

    /// Replay the HEP messages in a pcap/pcapng capture of HEP traffic (UDP datagrams and
    /// reassembled TCP streams).
    #[arg(long, value_name = "FILE", group = "input")]
    pub pcap: Option<PathBuf>,
    /// Replay a folder of .hep files (one HEP message each, in name order).
    #[arg(long, value_name = "DIR", group = "input")]
    pub hep_dir: Option<PathBuf>,
    /// Replay a .hepstream file (u32 big-endian length + message, repeated).
    #[arg(long, value_name = "FILE", group = "input")]
    pub hepstream: Option<PathBuf>,
    /// Replay byte-exact as recorded instead of re-encoding as HEPv3 (then --node-name,
    /// --capture-id and --auth-key do not apply).
    #[arg(long)]
    pub raw: bool,

    /// Synthesize until this many calls (INVITE scenarios of any outcome) have been generated.
    #[arg(long, value_name = "N")]
    pub calls: Option<u64>,
    /// Synthesize until this many scenarios of any kind have been generated.
    #[arg(long, value_name = "N")]
    pub scenarios: Option<u64>,
    /// Stop after sending this many HEP messages in total (may cut the last scenario short).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Send at most this many HEP messages per second (all kinds together); unlimited without.
    #[arg(long, value_name = "MSG_PER_SEC")]
    pub rate: Option<f64>,
    /// Messages sent back to back per token-bucket check (default: 10 ms worth of --rate).
    #[arg(long, value_name = "N", requires = "rate")]
    pub burst: Option<u32>,
    /// Spacing of replayed messages.
    #[arg(long, value_enum, default_value_t = Timing::Rate)]
    pub timing: Timing,
    /// Speed factor for --timing original (2 = twice as fast).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,

    /// Seed of the synthetic traffic; the same seed sends the same messages (random without).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Scenario weights, e.g. call=55,busy=5,notfound=5,timeout=3,cancel=4,register=20,options=8
    /// (the default); `calls=N` spreads N over the call outcomes.
    #[arg(long, value_name = "SPEC")]
    pub mix: Option<String>,
    /// Give every call (except 404s, answered by the proxy itself) a B-leg (proxy → callee)
    /// whose X-CID header is the A-leg Call-ID.
    #[arg(long)]
    pub b_legs: bool,
    /// RTCP reports (HEP type 5 JSON) per direction of each answered call.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub rtcp_reports: u32,
    /// Do not send the per-call log line (HEP type 100).
    #[arg(long)]
    pub no_logs: bool,
    /// HEP node name to send (synthetic default: none; replay: replaces the recorded one).
    #[arg(long)]
    pub node_name: Option<String>,
    /// HEP capture id to send (synthetic default: 2001; replay: replaces the recorded one).
    #[arg(long)]
    pub capture_id: Option<u32>,
    /// HEP authentication key to send (replay: replaces the recorded one).
    #[arg(long, env = "HEPSTACK_SEND_AUTH_KEY", hide_env_values = true)]
    pub auth_key: Option<String>,

    /// PEM CA certificate(s) to trust for tls:// (default: the system bundle).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Do not verify the collector's TLS certificate (self-signed lab collectors).
    #[arg(long)]
    pub insecure: bool,
    /// Name to check the collector's certificate against (default: the host of --to).
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
    /// PEM client certificate, for collectors that require one.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,

    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
    /// Write the messages to --out as .hepstream instead of sending them.
    #[arg(long, requires = "out")]
    pub dry_run: bool,
    /// Output file of --dry-run (`-` for stdout).
    #[arg(long, value_name = "FILE.hepstream", requires = "dry_run")]
    pub out: Option<PathBuf>,
}

#[derive(Serialize)]
struct Output<'a> {
    #[serde(flatten)]
    summary: &'a sender::Summary,
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<u64>,
}

fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Build the message source the flags ask for; returns it with the seed used (synthetic only).
fn source(args: &SendArgs) -> Result<(Box<dyn MessageSource>, Option<u64>)> {
    let replay: Option<Box<dyn HepSource + Send>> = if let Some(path) = &args.pcap {
        Some(Box::new(PcapHepReader::open(path)?))
    } else if let Some(dir) = &args.hep_dir {
        Some(Box::new(HepDirReader::open(dir)?))
    } else if let Some(path) = &args.hepstream {
        Some(Box::new(HepstreamReader::open(path)?))
    } else {
        None
    };
    if let Some(replay) = replay {
        if args.calls.is_some() || args.scenarios.is_some() || args.mix.is_some() || args.b_legs {
            bail!(
                "--calls, --scenarios, --mix and --b-legs are for synthetic traffic, not replays"
            );
        }
        let overrides = Overrides {
            capture_id: args.capture_id,
            node_name: args.node_name.clone(),
            auth_key: args.auth_key.clone(),
        };
        return Ok((
            Box::new(ReplaySource::new(replay, args.raw, overrides)),
            None,
        ));
    }
    if args.raw {
        bail!("--raw applies to replays (--pcap, --hep-dir, --hepstream)");
    }
    if args.timing == Timing::Original {
        bail!("--timing original applies to replays (--pcap, --hep-dir, --hepstream)");
    }
    if args.calls.is_none()
        && args.scenarios.is_none()
        && args.count.is_none()
        && args.duration.is_none()
    {
        bail!("say how much to synthesize: --calls N, --scenarios N, --count N or --duration SECS (or replay with --pcap, --hep-dir, --hepstream)");
    }
    let seed = args.seed.unwrap_or_else(|| {
        // Random enough for distinct Call-IDs between runs; printed so a run can be repeated.
        let t = now_micros();
        t ^ (u64::from(std::process::id()) << 40)
    });
    let mix = match &args.mix {
        Some(spec) => spec.parse::<Mix>()?,
        None => Mix::default(),
    };
    // Space scenario start times so message timestamps advance at about the send rate
    // (about 7 messages per scenario with the default mix).
    let interval = match args.rate {
        Some(rate) if rate > 0.0 => (7e6 / rate) as u64,
        _ => 100,
    };
    let cfg = SynthConfig {
        seed,
        mix,
        b_legs: args.b_legs,
        rtcp_reports: args.rtcp_reports,
        logs: !args.no_logs,
        capture_id: args.capture_id.unwrap_or(SynthConfig::default().capture_id),
        node_name: args.node_name.clone(),
        auth_key: args.auth_key.clone(),
        start_micros: now_micros().saturating_sub(sender::synth::MAX_SCENARIO_SPAN_MICROS),
        scenario_interval_micros: interval.max(1),
    };
    let source = SynthSource::new(Synth::new(cfg), args.calls, args.scenarios)?;
    Ok((Box::new(source), Some(seed)))
}

fn pacing(args: &SendArgs) -> Result<Option<Pacing>> {
    match args.timing {
        Timing::Original => {
            if !(args.speed.is_finite() && args.speed > 0.0) {
                bail!("--speed must be a positive number");
            }
            if args.rate.is_some() {
                bail!("--rate and --timing original exclude each other");
            }
            Ok(Some(Pacing::Original { speed: args.speed }))
        }
        Timing::Rate => match args.rate {
            Some(rate) if rate.is_finite() && rate > 0.0 => Ok(Some(Pacing::Rate {
                per_second: rate,
                burst: args.burst,
            })),
            Some(_) => bail!("--rate must be a positive number of messages per second"),
            None => Ok(Some(Pacing::Unlimited)),
        },
    }
}

/// Run `hepstack send`.
pub fn run(args: &SendArgs) -> Result<ExitCode> {
    let (mut source, seed) = source(args)?;
    let options = RunOptions {
        pacing: pacing(args)?,
        count: args.count,
        duration: match args.duration {
            Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
            Some(_) => bail!("--duration must be a positive number of seconds"),
            None => None,
        },
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let summary = runtime.block_on(async {
        let mut sink = sink(args).await?;
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        let summary = sender::run(source.as_mut(), &mut sink, options, &cancel).await?;
        if let Sink::Hep(client) = sink {
            client.close().await?;
        }
        anyhow::Ok(summary)
    })?;
    // With `--dry-run --out -` stdout carries the messages; the summary goes to stderr then.
    let to_stderr = args.dry_run && args.out.as_ref().is_some_and(|o| o.as_os_str() == "-");
    let mut report: Box<dyn Write> = if to_stderr {
        Box::new(io::stderr().lock())
    } else {
        Box::new(io::stdout().lock())
    };
    if args.json {
        serde_json::to_writer(
            &mut report,
            &Output {
                summary: &summary,
                seed,
            },
        )?;
        writeln!(report)?;
    } else {
        write!(report, "{summary}")?;
        if let Some(seed) = seed {
            writeln!(report, "seed:      {seed}")?;
        }
    }
    report.flush()?;
    Ok(ExitCode::SUCCESS)
}

async fn sink(args: &SendArgs) -> Result<Sink> {
    if args.dry_run {
        let Some(out) = &args.out else {
            bail!("--dry-run needs --out FILE.hepstream");
        };
        let (writer, name): (Box<dyn Write + Send>, String) = if out.as_os_str() == "-" {
            (Box::new(BufWriter::new(io::stdout())), "stdout".into())
        } else {
            let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
            (Box::new(BufWriter::new(file)), out.display().to_string())
        };
        return Ok(Sink::Hepstream {
            writer: HepstreamWriter::new(writer),
            name,
        });
    }
    let Some(url) = &args.to else {
        bail!("--to URL is required (or --dry-run --out FILE)");
    };
    let target: Target = url.parse()?;
    let cfg = SenderConfig {
        tls: TlsOptions {
            ca_file: args.ca.clone(),
            insecure: args.insecure,
            server_name: args.tls_server_name.clone(),
            client_cert: args.cert.clone(),
            client_key: args.key.clone(),
        },
        ..SenderConfig::default()
    };
    Ok(Sink::Hep(Box::new(HepSender::connect(target, cfg).await?)))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        send: SendArgs,
    }

    fn parse(args: &[&str]) -> Result<SendArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("send").chain(args.iter().copied())).map(|c| c.send)
    }

    fn dry_run(out: &std::path::Path, extra: &[&str]) -> Vec<u8> {
        let out_s = out.to_str().unwrap();
        let mut args = vec!["--dry-run", "--out", out_s, "--json"];
        args.extend_from_slice(extra);
        let parsed = parse(&args).unwrap();
        run(&parsed).unwrap();
        std::fs::read(out).unwrap()
    }

    #[test]
    fn flags_are_checked() {
        // A destination or a dry run is required.
        assert!(parse(&["--calls", "1"]).is_err());
        // One replay input at a time.
        assert!(parse(&["--to", "udp://h:1", "--pcap", "a", "--hep-dir", "b"]).is_err());
        // --out only with --dry-run and vice versa.
        assert!(parse(&["--to", "udp://h:1", "--out", "x"]).is_err());
        assert!(parse(&["--dry-run", "--calls", "1"]).is_err());
        // Synthetic traffic needs a bound; replays reject synthetic-only flags.
        let unbounded = parse(&["--dry-run", "--out", "/dev/null"]).unwrap();
        assert!(source(&unbounded).is_err());
        let mixed = parse(&[
            "--to",
            "udp://h:1",
            "--hepstream",
            "/dev/null",
            "--calls",
            "3",
        ])
        .unwrap();
        assert!(source(&mixed).is_err());
        let original =
            parse(&["--to", "udp://h:1", "--calls", "3", "--timing", "original"]).unwrap();
        assert!(source(&original).is_err());
        let bad_rate = parse(&["--to", "udp://h:1", "--calls", "3", "--rate=-1"]).unwrap();
        assert!(pacing(&bad_rate).is_err());
        let bad_mix = parse(&["--to", "udp://h:1", "--calls", "3", "--mix", "call=x"]).unwrap();
        assert!(source(&bad_mix).is_err());
    }

    #[test]
    fn a_seeded_dry_run_is_reproducible_and_counts_hold() {
        let dir = tempfile::tempdir().unwrap();
        let a = dry_run(
            &dir.path().join("a.hepstream"),
            &["--count", "500", "--seed", "5"],
        );
        let b = dry_run(
            &dir.path().join("b.hepstream"),
            &["--count", "500", "--seed", "5"],
        );
        let c = dry_run(
            &dir.path().join("c.hepstream"),
            &["--count", "500", "--seed", "6"],
        );
        // Timestamps follow the clock, so compare the SIP payloads, which the seed fixes.
        let payloads = |bytes: &[u8]| -> Vec<Vec<u8>> {
            let mut out = Vec::new();
            let mut rest = bytes;
            while rest.len() >= 4 {
                let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                let msg = hep::decode(&rest[4..4 + len]).unwrap();
                // RTCP carries NTP times derived from the clock; SIP and logs do not.
                if msg.proto_type != Some(5) {
                    out.push(msg.payload.unwrap().to_vec());
                }
                rest = &rest[4 + len..];
            }
            out
        };
        let (pa, pb, pc) = (payloads(&a), payloads(&b), payloads(&c));
        assert!(pa.len() > 300, "500 messages, most of them not RTCP");
        assert!(pa == pb, "same seed, same SIP and log payloads");
        assert!(pa != pc, "another seed, other payloads");

        // --calls counts INVITE scenarios: 20 A-leg INVITEs (B-leg INVITEs carry X-CID).
        let d = dry_run(
            &dir.path().join("d.hepstream"),
            &["--calls", "20", "--b-legs", "--seed", "1", "--no-logs"],
        );
        let invites: Vec<Vec<u8>> = payloads(&d)
            .into_iter()
            .filter(|p| p.starts_with(b"INVITE "))
            .collect();
        let is_b_leg = |p: &Vec<u8>| p.windows(7).any(|w| w == b"X-CID: ");
        assert_eq!(invites.iter().filter(|p| !is_b_leg(p)).count(), 20);
        assert!(invites.iter().any(is_b_leg));
    }

    #[test]
    fn replays_a_sample_in_a_dry_run() {
        let sample = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../../shared/samples/kamailio-hep3-udp/datagrams.hepstream");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("raw.hepstream");
        let bytes = dry_run(&out, &["--hepstream", sample.to_str().unwrap(), "--raw"]);
        assert_eq!(
            bytes,
            std::fs::read(&sample).unwrap(),
            "raw replay is byte-exact"
        );
    }
}
