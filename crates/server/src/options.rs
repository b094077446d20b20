//! The serving options `kiemtra-server` and `kiemtra serve` both take, and
//! what both do with them: one definition, so the two cannot drift.

use std::path::PathBuf;
use std::time::Duration;

use crate::startup::{Application, Settings};

/// TLS, limits and log format (the listen address and data folder are each
/// binary's own, as `kiemtra-server` shares them with its subcommands).
#[derive(clap::Args, Debug, Clone)]
pub struct ServeOptions {
    /// PEM certificate chain; with --tls-key, serve HTTPS.
    #[arg(long, env = "KIEMTRA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, env = "KIEMTRA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Largest request body in bytes.
    #[arg(long, env = "KIEMTRA_MAX_BODY", default_value_t = 64 << 20)]
    pub max_body: usize,
    /// Seconds allowed to receive a request's body (sync and evidence); a
    /// body waiting for room under --max-buffered waits at most as long.
    #[arg(long, env = "KIEMTRA_BODY_TIMEOUT_SECS", default_value_t = 120)]
    pub body_timeout_secs: u64,
    /// Sync requests decoded and answered at once (the others wait with
    /// only their body in memory; bodies are read regardless).
    #[arg(long, env = "KIEMTRA_MAX_SYNCS", default_value_t = 4, value_parser = at_least_one)]
    pub max_syncs: usize,
    /// Syncs that may wait, body read, for one of those places; a sync
    /// arriving past them is refused at once with 503 and a Retry-After
    /// that books it a moment of its own later on.
    #[arg(long, env = "KIEMTRA_MAX_QUEUED_SYNCS", default_value_t = 32)]
    pub max_queued_syncs: usize,
    /// Largest evidence file (a photo) taken, in bytes.
    #[arg(long, env = "KIEMTRA_MAX_EVIDENCE", default_value_t = 32 << 20)]
    pub max_evidence: u64,
    /// Request body bytes buffered at once across all sync and evidence
    /// requests (at least --max-body); past it a body waits for room, at
    /// most the body timeout, then is refused with 503 and Retry-After.
    #[arg(long, env = "KIEMTRA_MAX_BUFFERED", default_value_t = 256 << 20)]
    pub max_buffered: usize,
    /// Log as JSON lines instead of text.
    #[arg(long, env = "KIEMTRA_LOG_JSON")]
    pub log_json: bool,
}

impl ServeOptions {
    /// Settings for a server on `listen` over the database in `data`.
    pub fn settings(self, listen: String, data: PathBuf) -> Settings {
        Settings {
            listen,
            data,
            tls: self.tls_cert.zip(self.tls_key),
            max_body: self.max_body,
            body_timeout: Duration::from_secs(self.body_timeout_secs),
            max_syncs: self.max_syncs,
            max_queued_syncs: self.max_queued_syncs,
            max_evidence: self.max_evidence,
            max_buffered: self.max_buffered,
            ..Settings::default()
        }
    }
}

/// Logs to stderr, as JSON lines or text (coloured on a terminal), at the
/// level `RUST_LOG` gives (info by default).
pub fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    } else {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .with_writer(std::io::stderr)
            .init();
    }
}

/// Builds the server, prints `listening on port N` (tests and scripts read
/// the chosen port from that line) and serves until stopped.
pub fn serve(settings: Settings) -> Result<(), Box<dyn std::error::Error>> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let app = Application::build(settings)?;
        println!("listening on port {}", app.port());
        app.run_until_stopped().await?;
        Ok(())
    })
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
