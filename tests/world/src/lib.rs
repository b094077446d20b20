//! What the end-to-end tests (`tests/e2e`) and the bindings tests
//! (`mobile-bindings/tests`) share: a TCP proxy in front of a real
//! `kiemtra-server` that can lose answers, duplicate requests or stall, so
//! that every client (the Rust one, and the generated Kotlin, Swift and
//! Python bindings) meets the same faults.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does with traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ProxyMode {
    Pass = 0,
    /// Forward requests, then drop the connection instead of answering.
    DropResponses = 1,
    /// Send every request to the server twice; answer with the first.
    Duplicate = 2,
    /// Accept connections and never forward or answer (a link that hangs).
    Stall = 3,
    /// Carry enrollments (`POST /v1/enroll`) and stall everything else: a
    /// device that enrolled and then lost its link mid-sync.
    StallExceptEnroll = 4,
}

impl ProxyMode {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::DropResponses,
            2 => Self::Duplicate,
            3 => Self::Stall,
            4 => Self::StallExceptEnroll,
            _ => Self::Pass,
        }
    }
}

/// A TCP proxy in front of the server whose upstream can move (server
/// restarts) and which can lose responses, duplicate requests or stall.
/// Runs on the tokio runtime it was started on; stops when dropped.
pub struct Proxy {
    pub port: u16,
    /// Bytes forwarded from clients to the server so far.
    pub forwarded: Arc<AtomicU64>,
    /// Connections whose answer was lost on purpose so far.
    pub lost: Arc<AtomicU32>,
    /// Connections accepted so far.
    pub connections: Arc<AtomicU32>,
    mode: Arc<AtomicU8>,
    lose_next: Arc<AtomicU32>,
    upstream: Arc<Mutex<SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let mode = Arc::new(AtomicU8::new(ProxyMode::Pass as u8));
        let lose_next = Arc::new(AtomicU32::new(0));
        let upstream = Arc::new(Mutex::new(upstream));
        let forwarded = Arc::new(AtomicU64::new(0));
        let lost = Arc::new(AtomicU32::new(0));
        let connections = Arc::new(AtomicU32::new(0));
        let (m, n, u, f, l, c) = (
            mode.clone(),
            lose_next.clone(),
            upstream.clone(),
            forwarded.clone(),
            lost.clone(),
            connections.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let mut mode = ProxyMode::from_u8(m.load(Ordering::SeqCst));
                let one_lost = n
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |k| k.checked_sub(1))
                    .is_ok();
                if one_lost {
                    mode = ProxyMode::DropResponses;
                }
                if mode == ProxyMode::DropResponses {
                    l.fetch_add(1, Ordering::SeqCst);
                }
                let target = *u.lock().expect("upstream");
                let f = f.clone();
                tokio::spawn(async move {
                    let _ = relay(client, target, mode, f).await;
                });
            }
        });
        Self {
            port,
            forwarded,
            lost,
            connections,
            mode,
            lose_next,
            upstream,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn set_mode(&self, mode: ProxyMode) {
        self.mode.store(mode as u8, Ordering::SeqCst);
    }

    /// Loses the answers of the next `n` connections (whatever the mode),
    /// then goes back to the mode set.
    pub fn lose_next_answers(&self, n: u32) {
        self.lose_next.store(n, Ordering::SeqCst);
    }

    pub fn set_upstream(&self, addr: SocketAddr) {
        *self.upstream.lock().expect("upstream") = addr;
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    mut client: TcpStream,
    target: SocketAddr,
    mode: ProxyMode,
    forwarded: Arc<AtomicU64>,
) -> std::io::Result<()> {
    let mut from_client = vec![0u8; 64 * 1024];
    let mut first = 0;
    let stall = match mode {
        ProxyMode::Stall => true,
        ProxyMode::StallExceptEnroll => {
            // The request line decides (an enrollment's connection carries
            // nothing else: the client makes one for it).
            let want = b"POST /v1/enroll";
            while first < want.len() {
                let n = client.read(&mut from_client[first..]).await?;
                if n == 0 {
                    return Ok(());
                }
                first += n;
            }
            !from_client.starts_with(want)
        }
        _ => false,
    };
    if stall {
        // Read and discard until the client gives up.
        while client.read(&mut from_client).await? > 0 {}
        return Ok(());
    }
    let mut up = TcpStream::connect(target).await?;
    if first > 0 {
        up.write_all(&from_client[..first]).await?;
        forwarded.fetch_add(first as u64, Ordering::SeqCst);
    }
    let mut twin = if mode == ProxyMode::Duplicate {
        Some(TcpStream::connect(target).await?)
    } else {
        None
    };
    let mut from_up = vec![0u8; 64 * 1024];
    let mut from_twin = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            n = client.read(&mut from_client) => {
                let n = n?;
                if n == 0 { return Ok(()); }
                up.write_all(&from_client[..n]).await?;
                forwarded.fetch_add(n as u64, Ordering::SeqCst);
                if let Some(t) = twin.as_mut() { t.write_all(&from_client[..n]).await?; }
            }
            n = up.read(&mut from_up) => {
                let n = n?;
                if n == 0 { return Ok(()); }
                if mode == ProxyMode::DropResponses {
                    // The server has answered (so it has committed): lose the answer.
                    return Ok(());
                }
                client.write_all(&from_up[..n]).await?;
            }
            n = async { match twin.as_mut() { Some(t) => t.read(&mut from_twin).await, None => std::future::pending().await } } => {
                if n? == 0 { twin = None; }
            }
        }
    }
}

/// A throwaway PostgreSQL cluster for one test: `initdb` in a temporary
/// folder (as the `postgres` user when run as root), started on 127.0.0.1
/// and a free port, with its socket in that folder; stopped and removed
/// when dropped. Uses Debian's PostgreSQL (`/usr/lib/postgresql/*/bin`) or
/// the folder `KIEMTRA_PG_BIN` names.
pub struct PgCluster {
    dir: tempfile::TempDir,
    bin: std::path::PathBuf,
    pub port: u16,
    as_postgres: bool,
}

impl PgCluster {
    pub fn start() -> Self {
        let bin = pg_bin();
        let dir = tempfile::tempdir().expect("a folder for the cluster");
        let data = dir.path().join("data");
        let as_postgres = is_root();
        std::fs::create_dir_all(&data).expect("data folder");
        if as_postgres {
            let status = std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .expect("chown");
            assert!(status.success(), "chown of the cluster folder failed");
        }
        let run = |program: &str, args: &[&str]| {
            let path = bin.join(program);
            let mut cmd = if as_postgres {
                let mut c = std::process::Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(&path);
                c
            } else {
                std::process::Command::new(&path)
            };
            let out = cmd
                .args(args)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", path.display()));
            assert!(
                out.status.success(),
                "{program} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let data_s = data.display().to_string();
        run(
            "initdb",
            &[
                "-D",
                &data_s,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off -c max_connections=200",
            dir.path().display()
        );
        let log = dir.path().join("log").display().to_string();
        run(
            "pg_ctl",
            &["-D", &data_s, "-o", &options, "-l", &log, "-w", "start"],
        );
        Self {
            dir,
            bin,
            port,
            as_postgres,
        }
    }

    /// The URL of database `db` of this cluster (made by [`PgCluster::create_db`]).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Makes an empty database.
    pub fn create_db(&self, db: &str) {
        let out = std::process::Command::new(self.bin.join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", "postgres", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("CREATE DATABASE \"{db}\""))
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "CREATE DATABASE {db} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data").display().to_string();
        let path = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&path);
            c
        } else {
            std::process::Command::new(&path)
        };
        let _ = cmd
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .output();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn pg_bin() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("KIEMTRA_PG_BIN") {
        return p.into();
    }
    let mut found: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    found.retain(|p| p.join("initdb").exists());
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "no PostgreSQL server found under /usr/lib/postgresql: \
             `apt-get install -y postgresql` (Debian 12: PostgreSQL 15) or set KIEMTRA_PG_BIN"
        )
    })
}
