//! `kiemtra-loadgen`: measures sync against a real `kiemtra-server` process.
//!
//! Build both in release mode first:
//! `cargo build --release -p kiemtra-server -p kiemtra-loadgen`, then
//! `target/release/kiemtra-loadgen standard` (or `history`, `shaped`,
//! `fleet`, `peer`, `console`).

mod console;
mod peer;
mod server;
mod shaper;
mod workload;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kiemtra-loadgen",
    about = "Sync benchmarks against a real kiemtra-server"
)]
struct Cli {
    /// The server binary (default: beside this one).
    #[arg(long)]
    server: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// 200 visits × 60 staff × 500 single-change edits recorded offline on one
    /// device, uploaded, then downloaded by 1 and by 4 fresh devices at once.
    Standard {
        #[arg(long, default_value_t = 200)]
        visits: usize,
        #[arg(long, default_value_t = 500)]
        edits: usize,
    },
    /// One new change synced into a visit with a long history, against the
    /// same into a fresh visit.
    History {
        #[arg(long, default_value_t = 10_000)]
        changes: usize,
    },
    /// A day's work (10 visits) over a link shaped in-process to the given
    /// rate, round trip and loss.
    Shaped(workload::ShapedDay),
    /// Many inspectors coming back into coverage at once: each phone
    /// uploads a day's work, then receives its team-mates' visits. With
    /// `--database`, against `--servers` processes over one PostgreSQL
    /// database, the phones spread over them.
    Fleet {
        /// A PostgreSQL database for the servers (default: one server on
        /// its embedded store).
        #[arg(long)]
        database: Option<String>,
        /// Server processes (with `--database` only).
        #[arg(long, default_value_t = 1)]
        servers: usize,
        #[arg(long, default_value_t = 200)]
        devices: usize,
        #[arg(long, default_value_t = 10)]
        per_team: usize,
        #[arg(long, default_value_t = 2)]
        visits: usize,
        #[arg(long, default_value_t = 200)]
        edits: usize,
    },
    /// The standard workload through Automerge's own sync protocol, in
    /// memory, for comparison: messages, round trips and bytes.
    Peer {
        #[arg(long, default_value_t = 200)]
        visits: usize,
        #[arg(long, default_value_t = 500)]
        edits: usize,
    },
    /// The web console's pages for a campaign of `--visits` visits: the
    /// directory built with signed log entries, every visit recorded and
    /// submitted by a phone (three in four approved), then a supervisor
    /// signed in over HTTP asks for the overview, a visit and the report.
    Console(console::Pages),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let server_bin = cli.server.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("kiemtra-server")))
            .unwrap_or_else(|| PathBuf::from("kiemtra-server"))
    });
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kiemtra-loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async move {
        match cli.command {
            Command::Standard { visits, edits } => {
                workload::standard(&server_bin, visits, edits).await
            }
            Command::History { changes } => workload::history(&server_bin, changes).await,
            Command::Shaped(day) => workload::shaped(&server_bin, day).await,
            Command::Fleet {
                database,
                servers,
                devices,
                per_team,
                visits,
                edits,
            } => {
                let spread = workload::Spread { database, servers };
                workload::fleet(&server_bin, spread, devices, per_team, visits, edits).await
            }
            Command::Peer { visits, edits } => peer::peer(visits, edits),
            Command::Console(pages) => console::console(&server_bin, pages).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiemtra-loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}
