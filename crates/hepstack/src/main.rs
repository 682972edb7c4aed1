//! `hepstack`: the command-line edge of the workspace. It parses arguments, wires library crates
//! together and turns their typed results into output; business logic lives in the crates.

mod capture;
mod config;
mod decode;
mod import;
mod relay;
mod send;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mimalloc instead of glibc malloc. Why: the collector allocates every record on a receive
/// thread and frees it on a writer thread; with glibc that cross-thread traffic took ~40 % of
/// the pipeline's CPU (arena locks, `_int_free`, consolidation) and fragmented the heap.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `hepstack --version`: the release and the commit it was built from (build.rs).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("HEPSTACK_COMMIT"),
    ")"
);

/// VoIP/RTC capture and troubleshooting: HEP collector, store, search and call flows.
#[derive(Debug, Parser)]
#[command(name = "hepstack", version = VERSION, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Capture agent: SIP (UDP, TCP, SCTP, WebSocket), RTCP and DNS from a live interface
    /// (libpcap, loaded at run time) or pcap/pcapng files, sent as HEPv3 to collectors.
    Capture(Box<capture::CaptureArgs>),
    /// Decode HEP (pcap/pcapng of HEP traffic, raw .hep files or folders of them, .hepstream
    /// length-prefixed files, raw HEP byte streams, or stdin) into one JSON object per message.
    Decode(decode::DecodeArgs),
    /// Send synthetic HEP load (calls, registrations, OPTIONS, RTCP, logs) or replay recorded
    /// HEP (pcap, .hep folders, .hepstream) to a collector over UDP, TCP or TLS.
    Send(Box<send::SendArgs>),
    /// Run the collector: HEP listeners (UDP, TCP, TLS), the ingest pipeline, the store (embedded
    /// SQLite by default), the HTTP API and the Prometheus metrics endpoint.
    Serve(serve::ServeArgs),
    /// Copy messages between stores (embedded SQLite, PostgreSQL in the HOMER 7 layout — also
    /// a `homer_data` written by heplify-server), resumably, with progress on stderr and a
    /// final count checked against the source.
    Import(import::ImportArgs),
    /// Run the HEP relay: receive HEP (UDP, TCP, TLS) and route it by rules to other
    /// collectors — by type, fan-out copies, consistent-hash balancing with failover, chunk
    /// rewriting; `--check FILE` validates a configuration. SIGHUP reloads it.
    Relay(crate::relay::RelayArgs),
    /// Configuration helpers.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the full default configuration as commented TOML.
    Default,
    /// Load a configuration (file + HEPSTACK_* environment), validate it and print the result.
    Check {
        /// The TOML file; without it only defaults and the environment are checked.
        #[arg(long, env = "HEPSTACK_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Capture(args) => capture::run(&args),
        Command::Decode(args) => decode::run(&args),
        Command::Send(args) => send::run(&args),
        Command::Serve(args) => serve::run(&args),
        Command::Import(args) => import::run(&args),
        Command::Relay(args) => crate::relay::run(&args),
        Command::Config(ConfigCommand::Default) => {
            print!("{}", config::DEFAULT_CONFIG_TOML);
            Ok(ExitCode::SUCCESS)
        }
        Command::Config(ConfigCommand::Check { config: file }) => config::load(
            file.as_deref(),
            std::env::vars(),
            &config::FlagOverrides::default(),
        )
        .and_then(|c| {
            print!("{}", toml::to_string(&c)?);
            Ok(ExitCode::SUCCESS)
        }),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hepstack: {err:#}");
            ExitCode::from(1)
        }
    }
}
