//! The web console's pages: what a campaign's overview, a visit's page and
//! the campaign's report cost to serve as the campaign grows.
//!
//! The directory is built as an administrator's desk builds it, with
//! signed entries of the administration log: a province and its
//! districts, the units with their rosters, the standard checklist, a
//! supervisor and an inspector in one team, a campaign and one assignment
//! per unit (from which the server makes the visits). The inspector's
//! phone records every visit (attendance of every staff member, office
//! checks, now and then a finding) and submits it; the supervisor's phone
//! approves three visits in four. The supervisor then sets a console
//! password with the code the administrator issued and asks for the pages
//! over HTTP, as a browser without scripts does.

use chrono::NaiveDate;
use kiemtra_admin::log::{sha256_hex, timestamp};
use kiemtra_admin::{Act, Area, Author, Entry, Head, Tier, UnitRecord};
use kiemtra_client::{Credentials, SyncClient, SyncOptions, SyncReport};
use kiemtra_core::{
    AbsenceReason, AttendanceMark, CampaignId, CheckId, CheckResult, DeviceId, Editor, NewFinding,
    Role, Session, Severity, StaffCategory, StaffId, StaffMember, TeamId, TemplateId, UnitCode,
    UnitKind, UserId, VisitId, VisitStatus,
};
use kiemtra_store::Store;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::server::Server;
use crate::workload::TEMPLATE;

/// Most entries the server takes in one `POST /v1/admin/log`.
const BATCH: usize = 1_000;
const CAMPAIGN: &str = "ct-2015";
const TEAM: &str = "doan-1";
const SUPERVISOR: &str = "truong-doan";
const INSPECTOR: &str = "kiem-tra-an";
/// The console invitation the administrator issues to the supervisor.
const INVITATION: &str = "AAAA-BBBB-CCCC-DDDD";
const PASSWORD: &str = "mật khẩu đủ dài 2015";
/// The office checks the phone records in each visit, with a result.
const CHECKS: [(&str, CheckResult); 5] = [
    ("tthc-posted", CheckResult::Pass),
    ("feedback-phone-posted", CheckResult::Pass),
    ("hotline", CheckResult::Fail),
    ("one-stop-staffed", CheckResult::Pass),
    ("dossier-book", CheckResult::NotApplicable),
];

/// What the benchmark is asked to do.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Pages {
    /// Visits in the campaign (one unit each).
    #[arg(long, default_value_t = 65)]
    pub visits: usize,
    /// Staff on each unit's roster.
    #[arg(long, default_value_t = 20)]
    pub staff: usize,
    /// Requests before measuring, per page.
    #[arg(long, default_value_t = 3)]
    pub warm_up: usize,
    /// Measured requests of the overview and of the visit page.
    #[arg(long, default_value_t = 30)]
    pub rounds: usize,
    /// Measured requests of the report page.
    #[arg(long, default_value_t = 5)]
    pub report_rounds: usize,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

fn day(y: i32, m: u32, d: u32) -> Result<NaiveDate, String> {
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| format!("no day {y}-{m}-{d}"))
}

pub async fn console(bin: &Path, pages: Pages) -> Result<(), String> {
    let Pages {
        visits,
        staff,
        warm_up,
        rounds,
        report_rounds,
    } = pages;
    if visits == 0 || staff == 0 || rounds == 0 || report_rounds == 0 {
        return Err("--visits, --staff and the rounds are at least 1".into());
    }
    let dir = tempfile::tempdir().map_err(err)?;
    let server = Server::start(bin, &dir.path().join("server"))?;

    // The administrator's desk: enrolled with a code made on the server
    // machine, then every act signed by its key.
    let t = Instant::now();
    let code = server_code(bin, &server, "quan-tri", "ban-quan-tri", "administrator")?;
    let creds = kiemtra_client::enroll(&server.url, &code, "Bàn quản trị")
        .await
        .map_err(err)?;
    let mut desk = Desk::open(&server.url, creds).await?;
    let (acts, assigned) = directory(visits, staff)?;
    let entries = acts.len();
    let posts = desk.act(acts).await?;
    let directory_time = t.elapsed();

    // The inspector's phone receives the visits, records every one and
    // submits it, then sends them all in one sync.
    let t = Instant::now();
    let mut inspector = Phone::enroll(
        bin,
        &server,
        INSPECTOR,
        Role::Inspector,
        &dir.path().join("inspector"),
    )
    .await?;
    let down = inspector.sync().await?;
    if down.visits_downloaded != visits {
        return Err(format!(
            "the inspector's phone received {} visits, the campaign has {visits}",
            down.visits_downloaded
        ));
    }
    for (i, id) in assigned.iter().enumerate() {
        inspector.store.edit(id, |v| record(v, i)).map_err(err)?;
    }
    let up = inspector.sync().await?;
    let inspector_time = t.elapsed();

    // The supervisor's phone approves three visits in four, each approval
    // signed by its key; the first visit stays submitted.
    let t = Instant::now();
    let mut supervisor = Phone::enroll(
        bin,
        &server,
        SUPERVISOR,
        Role::Supervisor,
        &dir.path().join("supervisor"),
    )
    .await?;
    supervisor.sync().await?;
    let creds = supervisor.client.credentials().clone();
    let mut approved = 0;
    for (i, id) in assigned.iter().enumerate() {
        if i % 4 == 0 {
            continue;
        }
        supervisor
            .store
            .edit(id, |v| {
                v.approve_signed("Đồng ý", &|m| creds.sign_bytes(m).unwrap_or_default())
                    .map(|_| ())
            })
            .map_err(err)?;
        approved += 1;
    }
    supervisor.sync().await?;
    let supervisor_time = t.elapsed();
    let held = (
        status_count(&supervisor.store, VisitStatus::Approved)?,
        status_count(&supervisor.store, VisitStatus::Submitted)?,
    );
    if held != (approved, visits - approved) {
        return Err(format!(
            "the supervisor's phone holds {} approved and {} submitted visits",
            held.0, held.1
        ));
    }

    // The supervisor's first password, set with the invitation.
    let t = Instant::now();
    let mut browser = Browser::invited(&server.url, INVITATION, SUPERVISOR, PASSWORD).await?;
    let sign_in_time = t.elapsed();

    println!(
        "campaign of {visits} visits (units × {staff} staff); {approved} approved, {} submitted",
        visits - approved
    );
    println!(
        "set up: directory {entries} signed log entries in {posts} requests, {:.1} s; \
         inspector's phone (receive, record {visits} visits, send) {:.1} s, {} up; \
         supervisor's phone (receive, approve {approved}, send) {:.1} s; console sign-in {:.2} s",
        directory_time.as_secs_f64(),
        inspector_time.as_secs_f64(),
        mb(up.bytes_sent),
        supervisor_time.as_secs_f64(),
        sign_in_time.as_secs_f64(),
    );

    let overview = format!("/console/campaigns/{CAMPAIGN}");
    let visit = format!("/console/visits/{}", assigned[0]);
    let report = format!("/console/campaigns/{CAMPAIGN}/report");
    // What each page must show, so that a sign-in page or an error is
    // never timed as the page.
    let listed = browser.get(&overview).await?;
    let links = listed.text().matches("href=\"/console/visits/").count();
    if links != visits {
        return Err(format!(
            "the overview lists {links} visits, the campaign has {visits}"
        ));
    }
    let shown = browser.get(&visit).await?;
    if !shown.text().contains(&assigned[0].to_string()) {
        return Err("the visit page does not show the visit".into());
    }

    println!(
        "\n| page | visits | requests | median | p95 | server CPU / request | body |\n|---|---|---|---|---|---|---|"
    );
    for (name, path, n) in [
        ("campaign overview", &overview, rounds),
        ("a visit (submitted)", &visit, rounds),
        ("campaign report", &report, report_rounds),
    ] {
        let f = measure(&mut browser, &server, path, warm_up, n).await?;
        println!(
            "| {name} `{}` | {visits} | {n} | {:.1} ms | {:.1} ms | {:.1} ms | {} B |",
            path.replace(&assigned[0].to_string(), "{id}"),
            f.median.as_secs_f64() * 1e3,
            f.p95.as_secs_f64() * 1e3,
            f.cpu_per_request * 1e3,
            thousands(f.bytes),
        );
    }
    println!(
        "\nserver peak RSS: {:.1} MiB",
        server.peak_rss_kib() as f64 / 1024.0
    );
    drop(server);
    Ok(())
}

/// Runs `kiemtra-server enroll-code` on the server's data folder, as the
/// server machine's operator does.
fn server_code(
    bin: &Path,
    server: &Server,
    user: &str,
    team: &str,
    role: &str,
) -> Result<String, String> {
    let out = Command::new(bin)
        .args([
            "enroll-code",
            "--user",
            user,
            "--team",
            team,
            "--role",
            role,
        ])
        .arg("--data")
        .arg(&server.data)
        .args(&server.extra)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(err)?;
    if !out.status.success() {
        return Err(format!(
            "enroll-code: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The administrator's desk: its device's credentials and where it
/// believes the log stands.
struct Desk {
    url: String,
    http: reqwest::Client,
    creds: Credentials,
    head: Head,
}

impl Desk {
    async fn open(url: &str, creds: Credentials) -> Result<Self, String> {
        let http = reqwest::Client::new();
        let r = http
            .get(format!("{url}/v1/admin/log"))
            .bearer_auth(&creds.token)
            .send()
            .await
            .map_err(err)?;
        if !r.status().is_success() {
            return Err(format!("GET /v1/admin/log: {}", r.status()));
        }
        let v: serde_json::Value = r.json().await.map_err(err)?;
        let head: Head = serde_json::from_value(v["head"].clone()).map_err(err)?;
        Ok(Self {
            url: url.to_owned(),
            http,
            creds,
            head,
        })
    }

    /// Signs the acts one after another from the log's head and sends them
    /// in batches the server takes; returns how many requests it took.
    async fn act(&mut self, acts: Vec<Act>) -> Result<usize, String> {
        let mut rest = acts.into_iter();
        let mut posts = 0;
        loop {
            let mut head = self.head.clone();
            let mut entries = Vec::with_capacity(BATCH);
            for act in rest.by_ref().take(BATCH) {
                let at = timestamp(chrono::Utc::now()).max(head.at.clone());
                let mut e = Entry::next(
                    &head,
                    &at,
                    Author::Device {
                        device_id: self.creds.device_id.clone(),
                    },
                    act,
                );
                e.signature = kiemtra_core::hex::encode(
                    &self.creds.sign_bytes(&e.signing_bytes()).map_err(err)?,
                );
                head = e.head();
                entries.push(e);
            }
            if entries.is_empty() {
                return Ok(posts);
            }
            let r = self
                .http
                .post(format!("{}/v1/admin/log", self.url))
                .bearer_auth(&self.creds.token)
                .json(&serde_json::json!({ "entries": entries }))
                .timeout(Duration::from_secs(600))
                .send()
                .await
                .map_err(err)?;
            let status = r.status();
            let text = r.text().await.map_err(err)?;
            if !status.is_success() {
                return Err(format!("POST /v1/admin/log: {status} {text}"));
            }
            let now: Head = serde_json::from_str(&text).map_err(err)?;
            if now != head {
                return Err(format!(
                    "the log is at {} {}, the desk expected {} {}",
                    now.seq, now.hash, head.seq, head.hash
                ));
            }
            self.head = now;
            posts += 1;
        }
    }
}

/// Cần Thơ's districts of 2015.
const DISTRICTS: [(&str, &str); 9] = [
    ("ninh-kieu", "Quận Ninh Kiều"),
    ("binh-thuy", "Quận Bình Thủy"),
    ("cai-rang", "Quận Cái Răng"),
    ("o-mon", "Quận Ô Môn"),
    ("thot-not", "Quận Thốt Nốt"),
    ("phong-dien", "Huyện Phong Điền"),
    ("co-do", "Huyện Cờ Đỏ"),
    ("thoi-lai", "Huyện Thới Lai"),
    ("vinh-thanh", "Huyện Vĩnh Thạnh"),
];

fn code(s: &str) -> Result<UnitCode, String> {
    UnitCode::parse(s).map_err(err)
}

fn uid(s: &str) -> Result<UserId, String> {
    UserId::parse(s).map_err(err)
}

/// The acts that build the campaign's directory, in order, and the visit
/// of each assignment (one per unit).
fn directory(visits: usize, staff: usize) -> Result<(Vec<Act>, Vec<VisitId>), String> {
    let since = day(2004, 1, 1)?;
    let province = code("can-tho")?;
    let mut areas = vec![Area {
        code: province.clone(),
        name: "Thành phố Cần Thơ".into(),
        tier: Tier::Province,
        parent: None,
        valid_from: since,
        valid_to: None,
    }];
    for (c, name) in DISTRICTS {
        areas.push(Area {
            code: code(c)?,
            name: name.into(),
            tier: Tier::District,
            parent: Some(province.clone()),
            valid_from: since,
            valid_to: None,
        });
    }
    let mut units = Vec::with_capacity(visits);
    let mut rosters = Vec::with_capacity(visits);
    for i in 0..visits {
        let (district, district_name) = DISTRICTS[i % DISTRICTS.len()];
        let place = district_name
            .trim_start_matches("Quận ")
            .trim_start_matches("Huyện ");
        // Most units inspected are communes; some departments, district
        // offices and one-stop centres.
        let (kind, name, area) = match i % 10 {
            0 => (
                UnitKind::Department,
                format!("Sở số {}", i + 1),
                province.clone(),
            ),
            1 | 2 => (
                UnitKind::DistrictOffice,
                format!("Phòng Nội vụ {place} số {}", i + 1),
                code(district)?,
            ),
            3 => (
                UnitKind::OneStopCentre,
                format!("Bộ phận một cửa {place} số {}", i + 1),
                code(district)?,
            ),
            _ => (
                UnitKind::CommuneCommittee,
                format!("UBND xã số {} ({place})", i + 1),
                code(district)?,
            ),
        };
        let unit = code(&format!("u-{i:05}"))?;
        units.push(UnitRecord {
            code: unit.clone(),
            name,
            kind,
            area,
            valid_from: since,
            valid_to: None,
        });
        rosters.push(Act::RosterPublished {
            unit,
            valid_from: day(2015, 1, 1)?,
            staff: roster(i, staff)?,
        });
    }
    let team = TeamId::parse(TEAM).map_err(err)?;
    let campaign = CampaignId::parse(CAMPAIGN).map_err(err)?;
    let template = TemplateId::parse("standard").map_err(err)?;
    let starts = day(2015, 8, 1)?;
    let mut acts = vec![
        Act::AreasImported { areas },
        Act::UnitsImported { units },
        Act::TemplatePublished {
            template_id: template.clone(),
            version: 1,
            json: TEMPLATE.into(),
        },
        Act::UserCreated {
            user_id: uid(SUPERVISOR)?,
            full_name: "Trần Văn Đoàn".into(),
            role: Role::Supervisor,
        },
        Act::UserCreated {
            user_id: uid(INSPECTOR)?,
            full_name: "Lê Thị Ân".into(),
            role: Role::Inspector,
        },
        Act::TeamCreated {
            team_id: team.clone(),
            name: "Đoàn kiểm tra số 1".into(),
        },
        Act::TeamMembers {
            team_id: team.clone(),
            leaders: vec![uid(SUPERVISOR)?],
            members: vec![uid(SUPERVISOR)?, uid(INSPECTOR)?],
        },
        Act::CampaignCreated {
            campaign_id: campaign.clone(),
            title: "Kiểm tra đột xuất việc chấp hành kỷ luật, kỷ cương hành chính năm 2015".into(),
            decision: "Quyết định 138/QĐ-UBND ngày 19/01/2017".into(),
            starts_on: starts,
            ends_on: day(2015, 12, 31)?,
            province,
            template_id: template,
            template_version: 1,
            teams: vec![team.clone()],
        },
    ];
    acts.extend(rosters);
    let mut assigned = Vec::with_capacity(visits);
    for i in 0..visits {
        let visit_id = VisitId::generate();
        assigned.push(visit_id.clone());
        acts.push(Act::Assigned {
            campaign_id: campaign.clone(),
            team_id: team.clone(),
            unit: code(&format!("u-{i:05}"))?,
            // The working days of the campaign, a few units a day.
            planned_on: starts + chrono::Duration::days((i % 150) as i64),
            visit_id,
        });
    }
    acts.push(Act::CodeIssued {
        code_hash: sha256_hex(normalise_code(INVITATION).as_bytes()),
        user_id: uid(SUPERVISOR)?,
        team_id: team,
        role: Role::Supervisor,
        expires_at: timestamp(chrono::Utc::now() + chrono::Duration::hours(24)),
    });
    Ok((acts, assigned))
}

/// Codes are compared case-insensitively and without separators (as the
/// server's `normalise_code`).
fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// Unit `i`'s staff: two leaders, civil servants, public employees and
/// contract workers (not on the payroll).
fn roster(i: usize, staff: usize) -> Result<Vec<StaffMember>, String> {
    const FAMILY: [&str; 10] = [
        "Nguyễn", "Trần", "Lê", "Phạm", "Huỳnh", "Võ", "Phan", "Trương", "Đặng", "Bùi",
    ];
    const MIDDLE: [&str; 5] = ["Văn", "Thị", "Minh", "Ngọc", "Thanh"];
    const GIVEN: [&str; 12] = [
        "An", "Bình", "Cường", "Dũng", "Hạnh", "Khoa", "Lan", "Mai", "Nam", "Phúc", "Sơn", "Yến",
    ];
    (0..staff)
        .map(|k| {
            let n = i * staff + k;
            let name = format!(
                "{} {} {}",
                FAMILY[n % FAMILY.len()],
                MIDDLE[(n / 3) % MIDDLE.len()],
                GIVEN[(n / 7) % GIVEN.len()]
            );
            let (position, category, payroll) = match k * 20 / staff {
                0 => ("Chủ tịch", StaffCategory::Leader, true),
                1 => ("Phó Chủ tịch", StaffCategory::Leader, true),
                2..14 => ("Công chức", StaffCategory::CivilServant, true),
                14..18 => ("Viên chức", StaffCategory::PublicEmployee, true),
                _ => ("Nhân viên hợp đồng", StaffCategory::Contract, false),
            };
            let id = StaffId::parse(&format!("u-{i:05}.s{k:03}")).map_err(err)?;
            StaffMember::new(id, &name, position, category, payroll).map_err(err)
        })
        .collect()
}

/// What the inspector records at visit `i`: everyone's attendance (most
/// present, some late, some absent for one reason or another), the office
/// checks, a finding in one visit of five; then the visit is submitted.
fn record(v: &mut kiemtra_core::Visit, i: usize) -> kiemtra_core::Result<()> {
    let roster = v.state()?.roster;
    for (k, s) in roster.iter().enumerate() {
        let (mark, note) = match (i + 3 * k) % 17 {
            0 => (AttendanceMark::Absent(AbsenceReason::BusinessTrip), ""),
            1 => (AttendanceMark::Absent(AbsenceReason::Leave), ""),
            2 => (AttendanceMark::Late, "đến lúc 7 giờ 45"),
            3 if k % 2 == 0 => (AttendanceMark::Absent(AbsenceReason::Sick), ""),
            4 if k % 3 == 0 => (AttendanceMark::Absent(AbsenceReason::Training), ""),
            5 if k % 5 == 0 => (AttendanceMark::Absent(AbsenceReason::Unexcused), ""),
            6 if k % 4 == 0 => (
                AttendanceMark::Absent(AbsenceReason::Other),
                "đi họp tổ dân phố",
            ),
            _ => (AttendanceMark::Present, ""),
        };
        v.record_attendance(s, mark, note, None)?;
    }
    for (check, result) in CHECKS {
        v.record_check(&CheckId::parse(check)?, result, "")?;
    }
    if i.is_multiple_of(5) {
        v.add_finding(NewFinding {
            category: "Kỷ luật".into(),
            severity: Severity::Minor,
            text: "Sổ theo dõi hồ sơ không ghi chép đầy đủ".into(),
            recommendation: "Chấn chỉnh việc ghi chép sổ theo dõi".into(),
            related_staff: roster.first().cloned().into_iter().collect(),
        })?;
    }
    v.submit("")
}

/// A phone: its store (whose session carries the enrolled role, as the app
/// opens it) and its sync client.
struct Phone {
    store: Store,
    client: SyncClient,
}

impl Phone {
    async fn enroll(
        bin: &Path,
        server: &Server,
        user: &str,
        role: Role,
        dir: &Path,
    ) -> Result<Self, String> {
        let code = server_code(bin, server, user, TEAM, role.key())?;
        let creds = kiemtra_client::enroll(&server.url, &code, &format!("phone of {user}"))
            .await
            .map_err(err)?;
        let editor = Editor::new(
            UserId::parse(&creds.user_id).map_err(err)?,
            DeviceId::parse(&creds.device_id).map_err(err)?,
        );
        let mut store =
            Store::open_with_session(dir.join("device.db"), Session::new(editor).with_role(role))
                .map_err(err)?;
        creds.save(&mut store).map_err(err)?;
        let options = SyncOptions {
            timeout: Duration::from_secs(600),
            ..SyncOptions::default()
        };
        let client = SyncClient::new(creds, options).map_err(err)?;
        Ok(Self { store, client })
    }

    async fn sync(&mut self) -> Result<SyncReport, String> {
        let r = self
            .client
            .sync(&mut self.store, &mut |_| {})
            .await
            .map_err(err)?;
        if !r.errors.is_empty() {
            return Err(format!("per-visit errors: {:?}", r.errors));
        }
        Ok(r)
    }
}

/// A browser without scripts: cookies kept by name, redirects not
/// followed.
struct Browser {
    url: String,
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
}

struct Answer {
    status: u16,
    location: String,
    body: Vec<u8>,
}

impl Answer {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Browser {
    /// Sets `user`'s first password with the invitation `code`: the form's
    /// page gives the form cookie and its hidden token, the answer the
    /// session cookie.
    async fn invited(url: &str, code: &str, user: &str, password: &str) -> Result<Self, String> {
        let mut b = Browser {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(600))
                .build()
                .map_err(err)?,
            jar: BTreeMap::new(),
        };
        let form = b.get("/console/invite").await?;
        let page = form.text();
        let token = page
            .find("name=\"csrf\" value=\"")
            .and_then(|at| page.get(at + 19..at + 19 + 64))
            .ok_or("the invitation page has no csrf field")?
            .to_owned();
        let done = b
            .post(
                "/console/invite",
                &[
                    ("csrf", token.as_str()),
                    ("code", code),
                    ("user", user),
                    ("password", password),
                    ("again", password),
                ],
            )
            .await?;
        if done.status != 303 || done.location != "/console/campaigns" {
            return Err(format!(
                "the invitation was refused ({}): {}",
                done.status,
                done.text()
            ));
        }
        if !b.jar.contains_key("kt_session") {
            return Err("no session cookie after the invitation".into());
        }
        Ok(b)
    }

    fn cookies(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, r: reqwest::Response) -> Result<Answer, String> {
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap_or_default();
            let pair = c.split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.jar.remove(k);
                } else {
                    self.jar.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        Ok(Answer {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
            body: r.bytes().await.map_err(err)?.to_vec(),
        })
    }

    /// A page, which must answer 200.
    async fn get(&mut self, path: &str) -> Result<Answer, String> {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", self.cookies())
            .send()
            .await
            .map_err(err)?;
        let a = self.take(r).await?;
        if a.status != 200 {
            return Err(format!("GET {path}: {} {}", a.status, a.location));
        }
        Ok(a)
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Result<Answer, String> {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("cookie", self.cookies())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(urlencoded(form))
            .send()
            .await
            .map_err(err)?;
        self.take(r).await
    }
}

/// A form's fields as `application/x-www-form-urlencoded`.
fn urlencoded(form: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

struct Figures {
    median: Duration,
    p95: Duration,
    /// Server CPU (user + system) per request, seconds.
    cpu_per_request: f64,
    bytes: usize,
}

/// `rounds` requests of `path` one after another, after `warm_up` more:
/// each timed from sending to the last byte of the body read.
async fn measure(
    b: &mut Browser,
    server: &Server,
    path: &str,
    warm_up: usize,
    rounds: usize,
) -> Result<Figures, String> {
    for _ in 0..warm_up {
        b.get(path).await?;
    }
    let cpu = server.cpu_seconds();
    let mut times = Vec::with_capacity(rounds);
    let mut bytes = 0;
    for _ in 0..rounds {
        let t = Instant::now();
        let a = b.get(path).await?;
        times.push(t.elapsed());
        bytes = a.body.len();
    }
    let cpu_per_request = (server.cpu_seconds() - cpu) / rounds as f64;
    times.sort();
    // Nearest rank.
    let rank = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
    Ok(Figures {
        median: rank(0.5),
        p95: rank(0.95),
        cpu_per_request,
        bytes,
    })
}

fn mb(b: u64) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// How many of a store's visits are in a status.
fn status_count(store: &Store, status: VisitStatus) -> Result<usize, String> {
    Ok(store
        .list_visits()
        .map_err(err)?
        .iter()
        .filter(|s| s.status == status.key())
        .count())
}
