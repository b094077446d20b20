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
    /// Write a consistent copy of the database while the server runs:
    /// the embedded store with `VACUUM INTO`, PostgreSQL with `pg_dump`
    /// (custom format).
    ///
    /// Example: kiemtra-server backup --to /backups/kiemtra-2026-12-02.db
    Backup {
        /// The file to write; it must not exist.
        #[arg(long)]
        to: PathBuf,
    },
    /// Replace the database with a backup (stop every server first). The
    /// embedded store's file is kept aside as `kiemtra.db.replaced-<time>`;
    /// PostgreSQL is restored with `pg_restore --clean`. The restored
    /// database is then opened and checked.
    Restore {
        /// A file `backup` wrote.
        #[arg(long)]
        from: PathBuf,
    },
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
            println!(
                "{}",
                kiemtra_server::admin::revoke_on_server_machine(&mut store, &device_id)?
            );
            Ok(())
        }
        Command::Backup { to } => {
            match &cli.database {
                Some(url) => pg_tool(
                    "pg_dump",
                    &["--format=custom", "--no-owner", "--file"],
                    &to,
                    url,
                )?,
                None => kiemtra_server::open_store(&cli.data)?.backup_to(&to)?,
            }
            println!("backup written to {}", to.display());
            Ok(())
        }
        Command::Restore { from } => {
            match &cli.database {
                Some(url) => {
                    pg_tool(
                        "pg_restore",
                        &[
                            "--clean",
                            "--if-exists",
                            "--no-owner",
                            "--single-transaction",
                        ],
                        &from,
                        url,
                    )?;
                    let url = url.clone();
                    std::thread::spawn(move || kiemtra_server::PgStore::connect(&url).map(drop))
                        .join()
                        .map_err(|_| "checking the restored database panicked")??;
                }
                None => restore_sqlite(&cli.data, &from)?,
            }
            println!("restored from {}", from.display());
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

/// Runs a PostgreSQL client tool (`pg_dump`, `pg_restore`) on `file` and
/// the database `url`: from `PATH`, else Debian's newest under
/// `/usr/lib/postgresql`.
fn pg_tool(
    tool: &str,
    args: &[&str],
    file: &std::path::Path,
    url: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    if tool == "pg_dump" && file.exists() {
        return Err(format!(
            "{} exists already; a backup never overwrites a file",
            file.display()
        )
        .into());
    }
    let mut installed: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("bin").join(tool))
                .collect()
        })
        .unwrap_or_default();
    installed.retain(|p| p.exists());
    installed.sort();
    let program = installed.pop().unwrap_or_else(|| PathBuf::from(tool));
    let mut cmd = std::process::Command::new(&program);
    cmd.args(args);
    if tool == "pg_dump" {
        cmd.arg(file).arg(url);
    } else {
        cmd.args(["--dbname", url]).arg(file);
    }
    let out = cmd.output().map_err(|e| {
        format!(
            "cannot run {} (PostgreSQL's client tools): {e}",
            program.display()
        )
    })?;
    if !out.status.success() {
        return Err(format!(
            "{tool} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

/// Puts a backup of the embedded store in place of `data/kiemtra.db`,
/// after checking that it opens whole; the file it replaces is kept aside.
fn restore_sqlite(
    data: &std::path::Path,
    from: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let staging = data.join("kiemtra.db.restoring");
    std::fs::create_dir_all(data)?;
    let _ = std::fs::remove_file(&staging);
    std::fs::copy(from, &staging)
        .map_err(|e| format!("reading the backup {}: {e}", from.display()))?;
    {
        // Opened (migrated if older) and checked before it replaces anything.
        let editor = kiemtra_core::Editor::new(
            kiemtra_core::UserId::parse("server")?,
            kiemtra_core::DeviceId::parse("server")?,
        );
        let store = kiemtra_store::Store::open(&staging, editor)
            .map_err(|e| format!("the backup {} does not open: {e}", from.display()))?;
        store.check_integrity()?;
    }
    let live = data.join("kiemtra.db");
    if live.exists() {
        let aside = data.join(format!(
            "kiemtra.db.replaced-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%SZ")
        ));
        std::fs::rename(&live, &aside)?;
        eprintln!("the replaced database is kept as {}", aside.display());
    }
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(data.join(format!("kiemtra.db{ext}")));
        let _ = std::fs::remove_file(data.join(format!("kiemtra.db.restoring{ext}")));
    }
    std::fs::rename(&staging, &live)?;
    kiemtra_server::open_store(data)?;
    Ok(())
}
