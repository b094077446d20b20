//! `kiemtra-server`: runs the sync server, or administers its database.

use clap::{Parser, Subcommand};
use kiemtra_server::{ServeOptions, ServerStore};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "kiemtra-server",
    version,
    about = "The kiemtra sync server (embedded SQLite by default)"
)]
struct Cli {
    /// Address to listen on.
    #[arg(
        long,
        env = "KIEMTRA_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    listen: String,
    /// Folder for the embedded database.
    #[arg(
        long,
        env = "KIEMTRA_DATA",
        default_value = "kiemtra-data",
        global = true
    )]
    data: PathBuf,
    /// A PostgreSQL database to use instead of the embedded one
    /// (`postgres://user@host:port/db`); several servers may share it.
    #[arg(long, env = "KIEMTRA_DATABASE", global = true)]
    database: Option<String>,
    #[command(flatten)]
    serve: ServeOptions,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Create a single-use enrollment code for a user's new device.
    ///
    /// Example: kiemtra-server enroll-code --user insp-an --team team-1 --role inspector
    EnrollCode {
        #[arg(long)]
        user: String,
        #[arg(long)]
        team: String,
        #[arg(long, default_value = "inspector")]
        role: String,
        /// Hours the code stays valid.
        #[arg(long, default_value_t = 24)]
        ttl_hours: i64,
        /// How many codes to create (one per line).
        #[arg(long, default_value_t = 1)]
        count: u32,
    },
    /// Revoke a device: its next request is refused.
    Revoke { device_id: String },
    /// List enrolled devices.
    Devices,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    kiemtra_server::init_logging(cli.serve.log_json);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kiemtra-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let settings = kiemtra_server::Settings {
        data: cli.data.clone(),
        database: cli.database.clone(),
        ..kiemtra_server::Settings::default()
    };
    // The administration subcommands work on whichever database serves.
    let open = || kiemtra_server::open_backend(&settings);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let mut serve = cli.serve.settings(cli.listen, cli.data);
            serve.database = cli.database;
            kiemtra_server::serve(serve)
        }
        Command::EnrollCode {
            user,
            team,
            role,
            ttl_hours,
            count,
        } => {
            let backend = open()?;
            let mut store = backend.conn()?;
            for _ in 0..count {
                let ttl = chrono::Duration::hours(ttl_hours);
                let code =
                    kiemtra_server::create_enrollment_code(&mut store, &user, &team, &role, ttl)?;
                println!("{code}");
            }
            Ok(())
        }
        Command::Revoke { device_id } => {
            let backend = open()?;
            let mut store = backend.conn()?;
            store.revoke_device(&device_id, &kiemtra_server::now())?;
            println!("revoked {device_id}");
            Ok(())
        }
        Command::Devices => {
            let backend = open()?;
            let mut store = backend.conn()?;
            // Names are the devices' own words: escaped, so that a name
            // cannot move the cursor, clear the screen or forge a row.
            use kiemtra_server::printable as p;
            for d in store.devices()? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    p(&d.device_id),
                    p(&d.user_id),
                    p(&d.team),
                    p(&d.role),
                    p(&d.name),
                    p(d.revoked_at.as_deref().unwrap_or("active"))
                );
            }
            Ok(())
        }
    }
}
