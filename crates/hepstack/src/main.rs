//! `hepstack`: the command-line edge of the workspace. It parses arguments, wires library crates
//! together and turns their typed results into output; business logic lives in the crates.

mod decode;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// VoIP/RTC capture and troubleshooting: HEP collector, store, search and call flows.
#[derive(Debug, Parser)]
#[command(name = "hepstack", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decode HEP (pcap/pcapng of HEP traffic, raw .hep files or folders of them, .hepstream
    /// length-prefixed files, raw HEP byte streams, or stdin) into one JSON object per message.
    Decode(decode::DecodeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Decode(args) => decode::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hepstack: {err:#}");
            ExitCode::from(1)
        }
    }
}
