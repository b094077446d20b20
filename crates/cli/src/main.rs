//! `kiemtra`: the desk tool. For now it loads a campaign fixture into a
//! local store and prints the campaign's attendance tallies; the server,
//! sync and the supervisor commands come with their issues.

mod demo;
mod fixture_tally;
mod report;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kiemtra",
    version,
    about = "kiemtra — unannounced inspections of public offices"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The whole story in one command: a server in a temporary folder, a
    /// supervisor's and two inspectors' phones, the Cần Thơ 2015 campaign
    /// recorded offline with conflicts, synced, resolved, approved, and the
    /// Vietnamese campaign report.
    ///
    /// Example: kiemtra demo
    Demo {
        /// Campaign file.
        #[arg(long, default_value = "fixtures/campaigns/cantho-2015.json")]
        campaign: PathBuf,
    },
    /// Records a campaign fixture into a local store, one visit per unit, and
    /// prints its attendance tallies in Vietnamese and English.
    ///
    /// Example: kiemtra fixture-tally --data kiemtra-data
    FixtureTally {
        /// Campaign file.
        #[arg(long, default_value = "fixtures/campaigns/cantho-2015.json")]
        campaign: PathBuf,
        /// Folder holding the store (created if missing).
        #[arg(long, env = "KIEMTRA_DATA", default_value = "kiemtra-data")]
        data: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::FixtureTally { campaign, data } => {
            fixture_tally::run(&campaign, &data).map_err(|e| e.to_string())
        }
        Command::Demo { campaign } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(demo::run(&campaign, &mut |line| eprintln!("{line}")))
                    .map_err(|e| e.to_string())
            }),
    };
    match result {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("kiemtra: {e}");
            ExitCode::FAILURE
        }
    }
}
