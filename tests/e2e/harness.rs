//! The end-to-end harness: a real `kiemtra-server` process on 127.0.0.1
//! port 0 in its own temporary folder, device stores, and the fault proxy
//! of `kiemtra-testworld` (shared with the bindings tests).

use chrono::NaiveDate;
use kiemtra_client::{Credentials, SyncClient, SyncOptions, SyncReport};
use kiemtra_core::*;
use kiemtra_store::Store;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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
    enroll_codes_with(data, &[], user, team, role, count)
}

/// [`enroll_codes`] with more arguments (`--database postgres://…`).
pub fn enroll_codes_with(
    data: &Path,
    extra: &[&str],
    user: &str,
    team: &str,
    role: &str,
    count: u32,
) -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_kiemtra-server"))
        .args(extra)
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
/// A counter from the server's `/metrics`.
pub async fn metric(url: &str, name: &str) -> u64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in\n{text}"))
}

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

pub use kiemtra_testworld::{Proxy, ProxyMode};
