//! The end-to-end harness: a real `kiemtra-server` process on 127.0.0.1
//! port 0 in its own temporary folder, device stores, and a TCP proxy that
//! can drop responses or duplicate requests.

use chrono::NaiveDate;
use kiemtra_client::{Credentials, SyncClient, SyncOptions, SyncReport};
use kiemtra_core::*;
use kiemtra_store::Store;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub const STANDARD: &str = include_str!("../../fixtures/templates/standard-v1.json");

pub fn template() -> Template {
    Template::from_json(STANDARD).expect("template")
}

/// A running server process; killed (SIGKILL) when dropped.
pub struct ServerProcess {
    child: Child,
    pub port: u16,
    pub data: PathBuf,
}

impl ServerProcess {
    pub fn start(data: &Path) -> Self {
        Self::start_with(data, &[])
    }

    pub fn start_with(data: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_kiemtra-server"))
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn kiemtra-server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read port line");
        let port = line
            .trim()
            .strip_prefix("listening on port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"));
        Self {
            child,
            port,
            data: data.to_path_buf(),
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Sends SIGTERM (through `kill`, no unsafe code) and waits for the exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("wait for the server")
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `kiemtra-server enroll-code` against a data folder; returns the codes.
pub fn enroll_codes(data: &Path, user: &str, team: &str, role: &str, count: u32) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_kiemtra-server"))
        .args([
            "enroll-code",
            "--user",
            user,
            "--team",
            team,
            "--role",
            role,
            "--count",
        ])
        .arg(count.to_string())
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .output()
        .expect("enroll-code");
    assert!(
        out.status.success(),
        "enroll-code failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A phone: its own store, credentials and sync client.
pub struct Device {
    pub store: Store,
    pub client: SyncClient,
    pub dir: PathBuf,
}

impl Device {
    pub async fn enroll(
        server_data: &Path,
        url: &str,
        user: &str,
        team: &str,
        role: &str,
        dir: &Path,
    ) -> Self {
        let code = enroll_codes(server_data, user, team, role, 1).remove(0);
        Self::enroll_with_code(url, &code, user, dir).await
    }

    pub async fn enroll_with_code(url: &str, code: &str, user: &str, dir: &Path) -> Self {
        let creds = kiemtra_client::enroll(url, code, &format!("phone of {user}"))
            .await
            .expect("enroll");
        let mut store = open_device_store(dir, &creds);
        creds.save(&mut store).expect("save credentials");
        let client = SyncClient::new(creds, fast_options()).expect("client");
        Self {
            store,
            client,
            dir: dir.to_path_buf(),
        }
    }

    /// Reopens the device's store (a fresh session, as after an app restart).
    pub fn reopen(&mut self) {
        let creds = self.client.credentials().clone();
        self.store = open_device_store(&self.dir, &creds);
    }

    pub fn set_options(&mut self, options: kiemtra_client::SyncOptions) {
        self.client = SyncClient::new(self.client.credentials().clone(), options).expect("client");
    }

    pub fn repoint(&mut self, url: &str) {
        let mut creds = self.client.credentials().clone();
        creds.server = url.to_owned();
        self.client = SyncClient::new(creds, fast_options()).expect("client");
    }

    pub async fn sync(&mut self) -> SyncReport {
        let report = self
            .client
            .sync(&mut self.store, &mut |_| {})
            .await
            .expect("sync");
        assert!(
            report.errors.is_empty(),
            "per-visit errors: {:?}",
            report.errors
        );
        report
    }

    pub fn state(&mut self, id: &VisitId) -> VisitState {
        self.store.visit(id).expect("visit").state().expect("state")
    }
}

pub fn editor(creds: &Credentials) -> Editor {
    Editor::new(
        UserId::parse(&creds.user_id).expect("user"),
        DeviceId::parse(&creds.device_id).expect("device"),
    )
}

/// A device store whose session carries the enrolled role, as the app opens it.
pub fn open_device_store(dir: &Path, creds: &Credentials) -> Store {
    let role = Role::parse(&creds.role).expect("role");
    Store::open_with_session(
        dir.join("device.db"),
        Session::new(editor(creds)).with_role(role),
    )
    .expect("device store")
}

pub fn fast_options() -> SyncOptions {
    SyncOptions {
        timeout: Duration::from_secs(20),
        max_attempts: 12,
        base_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(400),
        ..SyncOptions::default()
    }
}

pub fn staff(i: usize) -> StaffId {
    StaffId::parse(&format!("s-{i:03}")).expect("staff")
}

pub fn new_visit(id: &str, team: &str, staff_count: usize) -> NewVisit {
    NewVisit {
        visit_id: VisitId::parse(id).expect("id"),
        unit: Unit::new(
            UnitCode::parse("thot-not.trung-kien").expect("code"),
            "UBND phường Trung Kiên",
            UnitKind::CommuneCommittee,
            "Quận Thốt Nốt",
        )
        .expect("unit"),
        campaign: CampaignId::parse("ct-2015").expect("campaign"),
        team: TeamId::parse(team).expect("team"),
        scheduled_on: NaiveDate::from_ymd_opt(2015, 9, 3).expect("date"),
        roster: (0..staff_count)
            .map(|i| {
                StaffMember::new(
                    staff(i),
                    &format!("Trương Minh Khoa {i}"),
                    "Công chức",
                    StaffCategory::CivilServant,
                    true,
                )
                .expect("m")
            })
            .collect(),
    }
}

pub fn vid(s: &str) -> VisitId {
    VisitId::parse(s).expect("id")
}

/// The server's copy of a visit, read from its database by a second reader.
pub fn server_state(data: &Path, id: &VisitId) -> Option<VisitState> {
    let mut store = kiemtra_server::open_store(data).expect("open server store");
    match store.visit(id) {
        Ok(v) => Some(v.state().expect("state")),
        Err(_) => None,
    }
}

pub fn server_history_len(data: &Path, id: &VisitId) -> usize {
    let mut store = kiemtra_server::open_store(data).expect("open server store");
    store
        .visit(id)
        .expect("visit")
        .history()
        .expect("history")
        .len()
}

pub fn server_visit_count(data: &Path) -> usize {
    kiemtra_server::open_store(data)
        .expect("open")
        .list_visits()
        .expect("list")
        .len()
}

/// What the proxy does with traffic.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProxyMode {
    Pass = 0,
    /// Forward requests, then drop the connection instead of answering.
    DropResponses = 1,
    /// Send every request to the server twice; answer with the first.
    Duplicate = 2,
}

/// A TCP proxy in front of the server whose upstream can move (server
/// restarts) and which can lose responses or duplicate requests.
pub struct Proxy {
    pub port: u16,
    /// Bytes forwarded from clients to the server so far.
    pub forwarded: Arc<std::sync::atomic::AtomicU64>,
    mode: Arc<AtomicU8>,
    upstream: Arc<Mutex<SocketAddr>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let mode = Arc::new(AtomicU8::new(ProxyMode::Pass as u8));
        let upstream = Arc::new(Mutex::new(upstream));
        let forwarded = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (m, u, f) = (mode.clone(), upstream.clone(), forwarded.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let mode = m.load(Ordering::SeqCst);
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
            mode,
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
    mode: u8,
    forwarded: Arc<std::sync::atomic::AtomicU64>,
) -> std::io::Result<()> {
    let mut up = TcpStream::connect(target).await?;
    let mut twin = if mode == ProxyMode::Duplicate as u8 {
        Some(TcpStream::connect(target).await?)
    } else {
        None
    };
    let mut from_client = vec![0u8; 64 * 1024];
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
                if mode == ProxyMode::DropResponses as u8 {
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
