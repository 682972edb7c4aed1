//! `hepstack capture`: the capture agent. Reads a live interface (libpcap, loaded at run time)
//! or pcap/pcapng files and sends SIP, RTCP and DNS as HEPv3 to one or more collectors. The
//! work is done by `agent::Capture`; this module maps flags onto it, binds `--metrics` and
//! prints the counters.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use agent::{AgentConfig, Balance, LiveOptions, Pacing};
use anyhow::{bail, Context, Result};
use clap::Args;
use sender::{SenderConfig, Target, TlsOptions};

/// Arguments of `hepstack capture`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  hepstack capture -i any --to udp://collector:9060 --capture-id 2001 --node-name sbc1\n  hepstack capture -i eth0 --bpf 'port 5060 or port 5062' --to tcp://c1:9060 --to tcp://c2:9060 --balance failover\n  hepstack capture -r calls.pcap -r more.pcapng --to tcp://127.0.0.1:9060\n  hepstack capture -r calls.pcap --original-timing --to udp://127.0.0.1:9060"
)]
pub struct CaptureArgs {
    /// Capture live from this interface (`any` for all of them). Needs libpcap at run time and
    /// the right to capture (root or CAP_NET_RAW).
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        conflicts_with = "read"
    )]
    pub interface: Option<String>,
    /// Read a pcap or pcapng file (`-` = stdin); repeat to read several in a row.
    #[arg(
        short = 'r',
        long = "read",
        value_name = "FILE",
        required_unless_present = "interface"
    )]
    pub read: Vec<PathBuf>,
    /// BPF filter for live capture (default: SIP ports 5060/5061/5080, IP fragments, RTCP by
    /// header, DNS).
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,
    /// Bytes captured per packet.
    #[arg(long, default_value_t = 262_144)]
    pub snaplen: u32,
    /// Do not put the interface into promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,
    /// Kernel capture buffer in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 32)]
    pub buffer_size: u32,
    /// Replay files with their recorded timing divided by X (2 = twice as fast).
    #[arg(long, value_name = "X", conflicts_with = "original_timing")]
    pub speed: Option<f64>,
    /// Replay files with their recorded timing (same as --speed 1).
    #[arg(long)]
    pub original_timing: bool,

    /// Collector: udp://HOST:PORT, tcp://HOST:PORT or tls://HOST:PORT; repeat for several.
    #[arg(long, value_name = "URL", required = true)]
    pub to: Vec<String>,
    /// How to use several collectors: round-robin or failover (first that is up).
    #[arg(long, default_value = "failover")]
    pub balance: Balance,
    /// HEP capture agent id.
    #[arg(long, value_name = "N", default_value_t = 2001)]
    pub capture_id: u32,
    /// HEP node name (default: the host name).
    #[arg(long, value_name = "S")]
    pub node_name: Option<String>,
    /// HEP authentication key.
    #[arg(
        long,
        value_name = "K",
        env = "HEPSTACK_CAPTURE_AUTH_KEY",
        hide_env_values = true
    )]
    pub auth_key: Option<String>,
    /// Serve Prometheus metrics on this address (GET /metrics).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// HEP messages waiting to be sent at most; live capture drops beyond it (counted),
    /// reading files waits.
    #[arg(long, value_name = "N", default_value_t = 65_536)]
    pub queue: usize,
    /// Window of the duplicate filter in milliseconds (0 = off).
    #[arg(long, value_name = "MS", default_value_t = 50)]
    pub dedup_window_ms: u64,
    /// Do not send RTCP.
    #[arg(long)]
    pub no_rtcp: bool,
    /// Send RTCP even when no SDP seen announced its address (no correlation id).
    #[arg(long)]
    pub rtcp_uncorrelated: bool,
    /// Do not send DNS.
    #[arg(long)]
    pub no_dns: bool,
    /// PEM CA certificate(s) to trust for tls:// collectors (default: the system bundle).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Do not verify the collector's TLS certificate.
    #[arg(long)]
    pub insecure: bool,
    /// Print the final counters as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,

    /// Do not send SIP messages with this CSeq method (the requests and their responses);
    /// comma-separated or repeated, e.g. OPTIONS,NOTIFY (heplify's -dim).
    #[arg(long, value_name = "METHOD", value_delimiter = ',')]
    pub discard_method: Vec<String>,
    /// Do not send messages from or to this address or network (CIDR); comma-separated or
    /// repeated (heplify's -diip).
    #[arg(long, value_name = "IP[/BITS]", value_delimiter = ',')]
    pub discard_ip: Vec<String>,

    /// Also write every captured packet, as read, to pcap files in DIR (heplify's -wf).
    #[arg(long, value_name = "DIR")]
    pub write_pcap: Option<PathBuf>,
    /// Start a new pcap file after this many seconds of capture time (0: never).
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub pcap_rotate_secs: u64,
    /// Start a new pcap file before one would grow past this many MiB (0: no limit).
    #[arg(long, value_name = "MIB", default_value_t = 100)]
    pub pcap_rotate_mib: u64,
    /// Keep at most this many pcap files in DIR; the oldest are deleted.
    #[arg(long, value_name = "N", default_value_t = 24)]
    pub pcap_keep: usize,

    /// Keep HEP messages no collector can take in a disk buffer in DIR, sent in order once
    /// one is back (heplify's -hep-buffer-activate / -hep-buffer-file).
    #[arg(long, value_name = "DIR")]
    pub buffer_dir: Option<PathBuf>,
    /// Most disk the buffer may take, in MiB; beyond it messages are dropped (counted).
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    pub buffer_max_mib: u64,
}

/// An address or CIDR network; a plain address is a /32 (IPv4) or /128 (IPv6).
fn parse_net(text: &str) -> Result<ipnet::IpNet> {
    let text = text.trim();
    if let Ok(net) = text.parse::<ipnet::IpNet>() {
        return Ok(net);
    }
    match text.parse::<std::net::IpAddr>() {
        Ok(ip) => Ok(ipnet::IpNet::from(ip)),
        Err(_) => bail!("--discard-ip {text:?} is not an address or CIDR network"),
    }
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default()
}

/// Runs the capture until the input ends (files) or SIGINT/SIGTERM (live).
pub fn run(args: &CaptureArgs) -> Result<ExitCode> {
    let targets = args
        .to
        .iter()
        .map(|u| u.parse::<Target>().with_context(|| format!("--to {u}")))
        .collect::<Result<Vec<_>>>()?;
    let pacing = match (args.speed, args.original_timing) {
        (Some(s), _) if !(s.is_finite() && s > 0.0) => bail!("--speed must be a positive number"),
        (Some(s), _) => Pacing::Speed(s),
        (None, true) => Pacing::Speed(1.0),
        (None, false) => Pacing::Unpaced,
    };
    let cfg = AgentConfig {
        capture_id: args.capture_id,
        node_name: args.node_name.clone().unwrap_or_else(host_name),
        auth_key: args.auth_key.clone(),
        rtcp: !args.no_rtcp,
        rtcp_uncorrelated: args.rtcp_uncorrelated,
        dns: !args.no_dns,
        dedup_window_ms: args.dedup_window_ms,
        discard_methods: args
            .discard_method
            .iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect(),
        discard_ips: args
            .discard_ip
            .iter()
            .map(|t| parse_net(t))
            .collect::<Result<Vec<_>>>()?,
        ..AgentConfig::default()
    };
    let pcap_out = match &args.write_pcap {
        Some(dir) => Some(
            agent::RotatingPcap::open(agent::PcapRotation {
                dir: dir.clone(),
                max_file_bytes: args.pcap_rotate_mib.saturating_mul(1024 * 1024),
                max_file_age: Duration::from_secs(args.pcap_rotate_secs),
                max_files: args.pcap_keep,
            })
            .with_context(|| format!("--write-pcap {}", dir.display()))?,
        ),
        None => None,
    };
    let buffer = match &args.buffer_dir {
        Some(dir) => {
            let spool_cfg = spool::SpoolConfig {
                max_bytes: args.buffer_max_mib.saturating_mul(1024 * 1024),
                segment_bytes: (args.buffer_max_mib.saturating_mul(1024 * 1024) / 8)
                    .clamp(64 * 1024, 64 * 1024 * 1024),
                ..spool::SpoolConfig::default()
            };
            let sp = spool::Spool::open(dir, spool_cfg)
                .with_context(|| format!("--buffer-dir {}", dir.display()))?;
            if !sp.is_empty() {
                eprintln!(
                    "hepstack: {} buffered entries from an earlier run will be sent first",
                    sp.len()
                );
            }
            Some(sp)
        }
        None => None,
    };
    let sender_cfg = SenderConfig {
        // Failing over quickly matters more than insisting on one collector; the agent's own
        // backoff retries it later.
        reconnect_attempts: 1,
        connect_timeout_ms: 3000,
        tls: TlsOptions {
            ca_file: args.ca.clone(),
            insecure: args.insecure,
            ..TlsOptions::default()
        },
        ..SenderConfig::default()
    };
    let live = args.interface.as_ref().map(|device| LiveOptions {
        device: device.clone(),
        snaplen: args.snaplen,
        promisc: !args.no_promisc,
        buffer_size: args.buffer_size.saturating_mul(1024 * 1024),
        timeout_ms: 100,
        filter: args
            .bpf
            .clone()
            .unwrap_or_else(|| agent::DEFAULT_BPF.to_string()),
    });
    let capture = agent::Capture {
        config: cfg,
        targets,
        balance: args.balance,
        sender: sender_cfg,
        live,
        files: args.read.clone(),
        pacing,
        queue: args.queue,
        pcap_out,
        buffer,
    }
    // Open the interface before anything else so a missing libpcap or permission fails fast.
    .open()?;
    let metrics_listener = match &args.metrics {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr.as_str())
                .with_context(|| format!("--metrics {addr}"))?;
            eprintln!("hepstack: listening metrics {}", listener.local_addr()?);
            Some(listener)
        }
        None => None,
    };
    let report = capture.run(metrics_listener)?;
    eprintln!("hepstack: capture done: {}", report.counters.line());
    if args.json {
        println!("{}", serde_json::to_string(&report.counters)?);
    }
    for e in &report.errors {
        eprintln!("hepstack: capture: {e}");
    }
    Ok(if report.errors.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
