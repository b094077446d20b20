//! The supervisor's and auditor's desk: a device of its own (enrolled with a
//! code like a phone, with its own key and local store under `--home`) that
//! syncs with the server, then lists, shows, resolves, approves, reports,
//! replays, verifies and exports from what it holds.

use chrono::{DateTime, Utc};
use kiemtra_client::{Device, SyncClient, SyncOptions};
use kiemtra_core::{
    CampaignId, ChangeHash, EvidenceHash, Lang, NewVisit, Role, StaffCategory, StaffId,
    StaffMember, TeamId, Template, Unit, UnitCode, UnitKind, Visit, VisitId, VisitState,
    format_count, format_time,
};
use kiemtra_store::VisitSummary;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use kiemtra_admin::report::{CampaignReport, VisitForReport};

/// A failure with the exit code it maps to.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad input: a malformed value, file or row (exit 2).
    #[error("{0}")]
    Invalid(String),
    /// No such visit, field or point (exit 3).
    #[error("{0}")]
    NotFound(String),
    /// The desk's role may not do this (exit 4).
    #[error("{0}")]
    NotAllowed(String),
    /// The server could not be reached or refused (exit 5).
    #[error("{0}")]
    Network(String),
    /// Verification found problems (exit 6).
    #[error("{0}")]
    Problems(String),
    /// Anything else (exit 1).
    #[error("{0}")]
    Other(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Other(_) => 1,
            CliError::Invalid(_) => 2,
            CliError::NotFound(_) => 3,
            CliError::NotAllowed(_) => 4,
            CliError::Network(_) => 5,
            CliError::Problems(_) => 6,
        }
    }
}

impl From<kiemtra_core::Error> for CliError {
    fn from(e: kiemtra_core::Error) -> Self {
        use kiemtra_core::Error as E;
        let m = e.to_string();
        match e {
            E::SupervisorOnly(_) | E::ReadOnlyRole(_) => CliError::NotAllowed(m),
            E::UnknownStaff(_)
            | E::UnknownCheck(_)
            | E::UnknownFinding(_)
            | E::NoConflict(_)
            | E::UnknownHeads(_) => CliError::NotFound(m),
            E::Corrupt(_) | E::Automerge(_) => CliError::Other(m),
            _ => CliError::Invalid(m),
        }
    }
}

impl From<kiemtra_store::Error> for CliError {
    fn from(e: kiemtra_store::Error) -> Self {
        use kiemtra_store::Error as E;
        match e {
            E::Visit(e) => e.into(),
            E::UnknownVisit(_) => CliError::NotFound(e.to_string()),
            E::VisitExists(_) => CliError::Invalid(e.to_string()),
            _ => CliError::Other(e.to_string()),
        }
    }
}

impl From<kiemtra_client::Error> for CliError {
    fn from(e: kiemtra_client::Error) -> Self {
        use kiemtra_client::Error as E;
        let m = e.to_string();
        match e {
            E::Store(e) => e.into(),
            E::Refused { status: 403, .. } => CliError::NotAllowed(m),
            E::Refused { status: 404, .. } => CliError::NotFound(m),
            E::Network(_) | E::Decode(_) | E::Refused { .. } | E::Cancelled => CliError::Network(m),
            E::NotEnrolled => CliError::Invalid(format!(
                "{m}; run `kiemtra login --server URL --code CODE` first"
            )),
            E::AlreadyEnrolled(_) | E::KeyElsewhere(_) | E::KeyMismatch(_) => CliError::Invalid(m),
        }
    }
}

pub type Result<T> = std::result::Result<T, CliError>;

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(e.to_string()))
}

pub fn lang_of(s: &str) -> Result<Lang> {
    match s {
        "vi" => Ok(Lang::Vi),
        "en" => Ok(Lang::En),
        other => Err(CliError::Invalid(format!(
            "unknown language {other:?}; use vi or en"
        ))),
    }
}

/// User-supplied text as it may be printed (see [`table`]).
pub fn p(text: &str) -> std::borrow::Cow<'_, str> {
    kiemtra_server::printable(text)
}

fn l(lang: Lang, vi: &'static str, en: &'static str) -> &'static str {
    if lang == Lang::Vi { vi } else { en }
}

/// Prints a table: boxed on a terminal, tab-separated when piped. Cells
/// hold what people typed (names, notes) and what the server sent: each is
/// escaped ([`kiemtra_server::printable`]), so that no cell can act on the
/// terminal or break a row or column.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) {
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| r.iter().map(|c| p(c).into_owned()).collect())
        .collect();
    if std::io::stdout().is_terminal() {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
        t.set_header(headers.to_vec());
        for r in rows {
            t.add_row(r);
        }
        println!("{t}");
    } else {
        println!("{}", headers.join("\t"));
        for r in rows {
            println!("{}", r.join("\t"));
        }
    }
}

/// The desk: an enrolled device (its store and credentials) kept in
/// `desk.db` under the desk's home folder.
pub struct Desk {
    device: Device,
}

impl std::ops::Deref for Desk {
    type Target = Device;
    fn deref(&self) -> &Device {
        &self.device
    }
}

impl std::ops::DerefMut for Desk {
    fn deref_mut(&mut self) -> &mut Device {
        &mut self.device
    }
}

fn store_path(home: &Path) -> PathBuf {
    home.join("desk.db")
}

impl Desk {
    pub fn open(home: &Path) -> Result<Self> {
        let path = store_path(home);
        if !path.exists() {
            return Err(CliError::Invalid(format!(
                "no desk at {}; run `kiemtra login --server URL --code CODE` first",
                home.display()
            )));
        }
        Ok(Self {
            device: Device::open(&path)?,
        })
    }

    pub fn login(home: &Path, server: &str, code: &str, name: &str) -> Result<Self> {
        let path = store_path(home);
        if path.exists() && Device::enrollment(&path)?.is_some() {
            return Err(CliError::Invalid(format!(
                "{} is enrolled already; use another --home",
                home.display()
            )));
        }
        let key = kiemtra_client::new_device_key()?;
        let device = runtime()?.block_on(Device::enroll(
            &path,
            server,
            code,
            name,
            &SyncOptions::default(),
            &key,
            None,
        ))?;
        Ok(Self { device })
    }

    /// Syncs with the server, with a progress bar on a terminal.
    pub fn sync(&mut self) -> Result<kiemtra_client::SyncReport> {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message("đồng bộ / syncing");
        let report = runtime()?.block_on(self.device.sync(SyncOptions::default(), &mut |p| {
            bar.set_length(p.visits_total as u64);
            bar.set_position(p.visits_done as u64);
            bar.set_message(format!(
                "{} / {} — ↑{} B ↓{} B",
                p.visits_done, p.visits_total, p.bytes_sent, p.bytes_received
            ));
        }));
        bar.finish_and_clear();
        let report = report?;
        if let Some(e) = report.errors.first() {
            return Err(CliError::NotAllowed(format!(
                "the server refused visit {}: {}",
                e.visit_id, e.message
            )));
        }
        Ok(report)
    }

    /// A visit by id, or by unit code when exactly one visit has it.
    pub fn find(&self, key: &str) -> Result<VisitId> {
        let list = self.store.list_visits()?;
        if let Some(s) = list.iter().find(|s| s.id.as_str() == key) {
            return Ok(s.id.clone());
        }
        let by_unit: Vec<&VisitSummary> = list.iter().filter(|s| s.unit_code == key).collect();
        match by_unit.as_slice() {
            [one] => Ok(one.id.clone()),
            [] => Err(CliError::NotFound(format!(
                "no visit {key:?} on this desk (run `kiemtra sync`?)"
            ))),
            _ => Err(CliError::Invalid(format!(
                "unit {key} has several visits; give the visit id"
            ))),
        }
    }

    pub fn campaign_visits(&self, campaign: &str) -> Result<Vec<VisitSummary>> {
        Ok(self
            .store
            .list_visits()?
            .into_iter()
            .filter(|s| s.campaign == campaign)
            .collect())
    }

    pub fn approve(&mut self, id: &VisitId, note: &str) -> Result<()> {
        self.device.approve(id, note)?;
        Ok(())
    }
}

// ---------------------------------------------------------------- assign

/// One CSV row of a roster file.
#[derive(Debug, serde::Deserialize)]
struct RosterRow {
    unit_code: String,
    unit_name: String,
    unit_kind: String,
    #[serde(default)]
    area: String,
    staff_id: String,
    staff_name: String,
    #[serde(default)]
    position: String,
    category: String,
    on_payroll: String,
}

/// Reads a roster CSV (`unit_code,unit_name,unit_kind,area,staff_id,
/// staff_name,position,category,on_payroll`, one row per person) into new
/// visits, or the first bad row with its line number.
pub fn read_roster(
    path: &Path,
    campaign: &CampaignId,
    team: &TeamId,
    date: chrono::NaiveDate,
) -> Result<Vec<NewVisit>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| CliError::Invalid(format!("{}: {e}", path.display())))?;
    let mut units: BTreeMap<String, NewVisit> = BTreeMap::new();
    let mut order = Vec::new();
    for (i, row) in reader.deserialize::<RosterRow>().enumerate() {
        let line = i + 2; // line 1 is the header
        let at = |e: &dyn std::fmt::Display| {
            CliError::Invalid(format!("{}: line {line}: {e}", path.display()))
        };
        let row = row.map_err(|e| at(&e))?;
        let on_payroll = match row.on_payroll.as_str() {
            "yes" | "true" | "1" | "có" => true,
            "no" | "false" | "0" | "không" => false,
            other => {
                return Err(at(&format!(
                    "on_payroll {other:?} is not yes/no/true/false/1/0"
                )));
            }
        };
        let member = StaffMember::new(
            StaffId::parse(&row.staff_id).map_err(|e| at(&e))?,
            &row.staff_name,
            &row.position,
            StaffCategory::parse(&row.category).map_err(|e| at(&e))?,
            on_payroll,
        )
        .map_err(|e| at(&e))?;
        if !units.contains_key(&row.unit_code) {
            let code = UnitCode::parse(&row.unit_code).map_err(|e| at(&e))?;
            let unit = Unit::new(
                code.clone(),
                &row.unit_name,
                UnitKind::parse(&row.unit_kind).map_err(|e| at(&e))?,
                &row.area,
            )
            .map_err(|e| at(&e))?;
            let visit_id = unguessable_visit_id(campaign, &code).map_err(|e| at(&e))?;
            order.push(row.unit_code.clone());
            units.insert(
                row.unit_code.clone(),
                NewVisit {
                    visit_id,
                    unit,
                    campaign: campaign.clone(),
                    team: team.clone(),
                    scheduled_on: date,
                    roster: Vec::new(),
                },
            );
        }
        let visit = units
            .get_mut(&row.unit_code)
            .ok_or_else(|| at(&"unit vanished"))?;
        if visit.roster.iter().any(|m| m.id == member.id) {
            return Err(at(&format!(
                "staff {} appears twice in unit {}",
                member.id, row.unit_code
            )));
        }
        visit.roster.push(member);
    }
    if order.is_empty() {
        return Err(CliError::Invalid(format!(
            "{}: no rows after the header",
            path.display()
        )));
    }
    Ok(order
        .into_iter()
        .filter_map(|code| units.remove(&code))
        .collect())
}

/// A new visit's id: `CAMPAIGN.UNIT.` and 40 random bits, so that no one
/// can create (and so block) a visit another team will be assigned, or
/// probe for it, by guessing its id.
fn unguessable_visit_id(campaign: &CampaignId, unit: &UnitCode) -> kiemtra_core::Result<VisitId> {
    let random = uuid::Uuid::new_v4().simple().to_string();
    VisitId::parse(&format!("{campaign}.{unit}.{}", &random[..10]))
}

/// Creates the team's visits from a roster file, all or nothing.
pub fn assign(
    desk: &mut Desk,
    campaign: &str,
    template: &Path,
    roster: &Path,
    date: &str,
) -> Result<usize> {
    if desk.role()? != Role::Supervisor {
        return Err(CliError::NotAllowed(format!(
            "only a supervisor's desk assigns visits; this desk is {}",
            desk.creds.role
        )));
    }
    let template = Template::from_json(
        &std::fs::read_to_string(template)
            .map_err(|e| CliError::Invalid(format!("{}: {e}", template.display())))?,
    )?;
    let campaign = CampaignId::parse(campaign)?;
    let team = TeamId::parse(&desk.creds.team)?;
    let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map_err(|e| CliError::Invalid(format!("--date {date:?}: {e} (use yyyy-mm-dd)")))?;
    let visits = read_roster(roster, &campaign, &team, date)?;
    // Ids are random, so assigning a unit twice is caught here.
    let held = desk.store.list_visits()?;
    if let Some(v) = visits.iter().find(|v| {
        held.iter()
            .any(|s| s.campaign == campaign.as_str() && s.unit_code == v.unit.code.as_str())
    }) {
        return Err(CliError::Invalid(format!(
            "unit {} already has a visit in campaign {campaign}",
            v.unit.code
        )));
    }
    let n = visits.len();
    desk.store.batch(|store| {
        for v in visits {
            store.create_visit(v, &template)?;
        }
        Ok(())
    })?;
    Ok(n)
}

// ---------------------------------------------------------------- show

pub fn show_state(state: &VisitState, lang: Lang) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let t = state.tally();
    let _ = writeln!(
        o,
        "{} ({}) — {}",
        p(&state.meta.unit.name),
        state.meta.unit.code,
        state.meta.unit.kind.label(lang)
    );
    let _ = writeln!(
        o,
        "{}: {} · {}: {} · {}: {}",
        l(lang, "Biên bản", "Visit"),
        state.meta.visit_id,
        l(lang, "Ngày", "Date"),
        state.meta.scheduled_on.format("%d/%m/%Y"),
        l(lang, "Trạng thái", "Status"),
        state.status().label(lang)
    );
    let _ = writeln!(
        o,
        "{}: {} · {}: {} ({}%) · {}: {} · {}: {} ({}%) · {}: {}",
        l(lang, "Biên chế", "On payroll"),
        format_count(t.payroll, lang),
        l(lang, "Có mặt", "Present"),
        format_count(t.present, lang),
        t.present_pct().format(lang),
        l(lang, "Đi muộn", "Late"),
        format_count(t.late, lang),
        l(lang, "Vắng", "Absent"),
        format_count(t.absent, lang),
        t.absent_pct().format(lang),
        l(lang, "Chưa ghi nhận", "Not recorded"),
        format_count(t.unrecorded, lang),
    );
    for (reason, n) in &t.absent_by_reason {
        let _ = writeln!(
            o,
            "  - {}: {} ({}%)",
            reason.label(lang),
            n,
            t.reason_pct(*reason).format(lang)
        );
    }
    let _ = writeln!(o, "\n{}:", l(lang, "Điểm danh", "Attendance"));
    for (id, m) in &state.staff {
        let mark = state
            .attendance
            .get(id)
            .map(|a| {
                let conflict = if a.in_conflict() {
                    l(lang, " [xung đột]", " [conflict]")
                } else {
                    ""
                };
                format!("{}{conflict}", a.value().mark.label(lang))
            })
            .unwrap_or_else(|| l(lang, "chưa ghi nhận", "not recorded").into());
        let _ = writeln!(o, "  {id}\t{}\t{mark}", p(&m.value.name));
    }
    let _ = writeln!(o, "\n{}:", l(lang, "Nội dung kiểm tra", "Office checks"));
    for def in &state.template.checks {
        let result = state
            .checks
            .get(&def.id)
            .map(|c| {
                let entry = c.value();
                let mut shown = entry.result.label(lang).to_owned();
                if let Some(value) = &entry.value {
                    shown = format!("{shown}: {}", p(&def.describe_value(value, lang)));
                }
                if !entry.note.is_empty() {
                    shown = format!("{shown} – {}", p(&entry.note));
                }
                shown
            })
            .unwrap_or_else(|| "—".into());
        let _ = writeln!(o, "  {}: {result}", def.label.get(lang));
        for hash in state.evidence.get(&def.id).into_iter().flatten() {
            let _ = writeln!(o, "    {} {hash}", l(lang, "ảnh", "photo"));
        }
    }
    let findings: Vec<_> = state.findings.values().filter(|f| !f.withdrawn()).collect();
    if !findings.is_empty() {
        let _ = writeln!(o, "\n{}:", l(lang, "Tồn tại, hạn chế", "Findings"));
        for f in findings {
            let _ = writeln!(o, "  - {} → {}", p(f.text()), p(f.recommendation()));
        }
    }
    if !state.narrative.is_empty() {
        let _ = writeln!(
            o,
            "\n{}:\n  {}",
            l(lang, "Diễn biến", "Narrative"),
            kiemtra_server::printable_lines(&state.narrative)
        );
    }
    o
}

// ---------------------------------------------------------------- report

/// The campaign report from the approved states this desk holds.
pub fn report(
    desk: &mut Desk,
    campaign: &str,
    title: Option<&str>,
    lang: Lang,
) -> Result<CampaignReport> {
    let summaries = desk.campaign_visits(campaign)?;
    if summaries.is_empty() {
        return Err(CliError::NotFound(format!(
            "no visit of campaign {campaign:?} on this desk (run `kiemtra sync`?)"
        )));
    }
    let mut visits = Vec::new();
    for s in &summaries {
        let v = desk.store.visit(&s.id)?;
        let (approval, approved) = v.approval()?.unzip();
        visits.push(VisitForReport {
            unit: s.unit_name.clone(),
            kind: UnitKind::parse(&s.unit_kind)?,
            absorbed: Vec::new(),
            unplanned: false,
            approved,
            approval,
        });
    }
    let default_title = match lang {
        Lang::Vi => format!("Báo cáo kết quả kiểm tra – {campaign}"),
        Lang::En => format!("Inspection report – {campaign}"),
    };
    Ok(CampaignReport::build(
        campaign,
        title.unwrap_or(&default_title),
        &visits,
        lang,
    ))
}

/// A report in one of the formats the desk writes: md, csv, json, xlsx.
pub fn report_bytes(r: &CampaignReport, lang: Lang, format: &str) -> Result<Vec<u8>> {
    match format {
        "md" | "markdown" => Ok(r.markdown(lang).into_bytes()),
        "json" => serde_json::to_string_pretty(r)
            .map(|s| (s + "\n").into_bytes())
            .map_err(|e| CliError::Other(e.to_string())),
        "csv" => Ok(r.csv(lang).into_bytes()),
        "xlsx" => r.xlsx(lang).map_err(CliError::Other),
        other => Err(CliError::Invalid(format!(
            "unknown format {other:?}; use md, csv, json or xlsx"
        ))),
    }
}

// ---------------------------------------------------------------- replay

/// A point in history: a change hash (or a unique prefix of one, at least
/// 6 characters), or a time (RFC 3339 or `yyyy-mm-dd hh:mm`, Viet Nam time).
pub fn point(visit: &Visit, s: &str) -> Result<Vec<ChangeHash>> {
    if s.len() >= 6 && s.chars().all(|c| c.is_ascii_hexdigit()) {
        let matches: Vec<ChangeHash> = visit
            .change_hashes_after(&[])
            .into_iter()
            .filter(|h| h.to_string().starts_with(&s.to_ascii_lowercase()))
            .collect();
        return match matches.as_slice() {
            [one] => Ok(vec![*one]),
            [] => Err(CliError::NotFound(format!("no change {s} in this visit"))),
            _ => Err(CliError::Invalid(format!(
                "{s} matches several changes; give more characters"
            ))),
        };
    }
    let at = parse_when(s)?;
    let heads = visit.heads_at_time(at);
    if heads.is_empty() {
        return Err(CliError::NotFound(format!(
            "the visit did not exist yet at {s}"
        )));
    }
    Ok(heads)
}

fn parse_when(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let vn = chrono::FixedOffset::east_opt(7 * 3600)
        .ok_or_else(|| CliError::Other("time zone".into()))?;
    for f in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%d/%m/%Y %H:%M"] {
        if let Ok(naive) = chrono::NaiveDateTime::parse_from_str(s, f)
            && let Some(t) = naive.and_local_timezone(vn).single()
        {
            return Ok(t.with_timezone(&Utc));
        }
    }
    Err(CliError::Invalid(format!(
        "{s:?} is neither a change hash nor a time (RFC 3339, or yyyy-mm-dd hh:mm in Viet Nam time)"
    )))
}

/// When the server first received each change of a visit (its receipts
/// endpoint); `None` when the server cannot be reached.
fn server_receipts(desk: &Desk, id: &VisitId) -> Result<Option<BTreeMap<ChangeHash, String>>> {
    let url = format!(
        "{}/v1/visits/{id}/receipts",
        desk.creds.server.trim_end_matches('/')
    );
    let token = desk.creds.token.clone();
    runtime()?.block_on(async move {
        let resp = match reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
        {
            Ok(r) => r,
            Err(_) => return Ok(None),
        };
        match resp.status().as_u16() {
            200 => {}
            404 => return Err(CliError::NotFound(format!("the server has no visit {id}"))),
            401 | 403 => {
                return Err(CliError::NotAllowed(
                    "the server refused this desk's credentials".into(),
                ));
            }
            _ => return Ok(None),
        }
        let list: Vec<serde_json::Value> = resp
            .json()
            .await
            .map_err(|e| CliError::Network(format!("unreadable receipts: {e}")))?;
        Ok(Some(
            list.iter()
                .filter_map(|r| {
                    Some((
                        r["hash"].as_str()?.parse().ok()?,
                        r["received_at"].as_str()?.to_owned(),
                    ))
                })
                .collect(),
        ))
    })
}

pub fn replay(desk: &mut Desk, key: &str, lang: Lang) -> Result<()> {
    let id = desk.find(key)?;
    // The server's receive times; offline, the times this desk received
    // the changes (marked with *).
    let (receipts, from_server): (BTreeMap<ChangeHash, String>, bool) =
        match server_receipts(desk, &id)? {
            Some(r) => (r, true),
            None => {
                let (index, _) = desk.store.visit(&id)?.change_index();
                let kept = desk.store.change_receipts(&id, &index)?;
                let times = kept
                    .changes
                    .into_iter()
                    .map(|(h, r)| (h, r.record.received_at.clone()))
                    .collect();
                (times, false)
            }
        };
    let visit = desk.store.visit(&id)?;
    let state = visit.state()?;
    let mut rows = Vec::new();
    for (i, h) in visit.history()?.iter().enumerate() {
        let hash: ChangeHash = h
            .hash
            .parse()
            .map_err(|_| CliError::Other(format!("bad hash {}", h.hash)))?;
        let received = receipts
            .get(&hash)
            .and_then(|r| DateTime::parse_from_rfc3339(r).ok())
            .map(|t| {
                let t = format_time(t.with_timezone(&Utc));
                if from_server { t } else { format!("{t}*") }
            })
            .unwrap_or_else(|| "—".into());
        let what: Vec<String> = h.changes.iter().map(|c| c.describe(lang, &state)).collect();
        rows.push(vec![
            (i + 1).to_string(),
            h.hash[..12].to_owned(),
            h.author
                .as_ref()
                .map(|a| format!("{} ({})", a.user, a.device))
                .unwrap_or_else(|| "?".into()),
            format_time(h.device_time),
            received,
            if h.after_approval {
                l(lang, "SAU PHÊ DUYỆT", "AFTER APPROVAL").into()
            } else {
                String::new()
            },
            what.join("; "),
        ]);
    }
    table(
        &[
            "#",
            l(lang, "thay đổi", "change"),
            l(lang, "người ghi", "author"),
            l(lang, "giờ thiết bị", "device time"),
            l(lang, "máy chủ nhận", "server received"),
            "",
            l(lang, "nội dung", "what"),
        ],
        rows,
    );
    if !from_server {
        eprintln!(
            "{}",
            l(
                lang,
                "* không kết nối được máy chủ: giờ bàn làm việc này nhận thay đổi",
                "* server unreachable: the times this desk received the changes"
            )
        );
    }
    Ok(())
}

/// The fields that differ between two points, one line each.
pub fn diff_lines(visit: &Visit, a: &str, b: &str, lang: Lang) -> Result<Vec<String>> {
    let (from, to) = (point(visit, a)?, point(visit, b)?);
    let state = visit.state()?;
    Ok(visit
        .diff(&from, &to)?
        .iter()
        .map(|c| p(&c.describe(lang, &state)).into_owned())
        .collect())
}

// ---------------------------------------------------------------- evidence

/// A photo the visit refers to: from this desk's own store when it holds
/// it, otherwise from the server, checked against its SHA-256 either way.
pub fn fetch_evidence(desk: &mut Desk, id: &VisitId, sha256: &str) -> Result<Vec<u8>> {
    let hash = EvidenceHash::parse(sha256).map_err(|e| CliError::Invalid(e.to_string()))?;
    let state = desk.store.visit(id)?.state()?;
    if !state.refers_to(&hash) {
        return Err(CliError::NotFound(format!(
            "visit {id} does not refer to evidence {hash} (run `kiemtra sync`?)"
        )));
    }
    if let Some(bytes) = desk.store.evidence_bytes(id, &hash, 0, u64::MAX)? {
        return Ok(bytes);
    }
    let client = SyncClient::new(desk.creds.clone(), SyncOptions::default())?;
    match runtime()?.block_on(client.download_evidence(id, &hash)) {
        Ok(bytes) => Ok(bytes),
        Err(kiemtra_client::Error::Decode(m)) => Err(CliError::Problems(m)),
        Err(kiemtra_client::Error::Refused { status: 404, .. }) => {
            Err(CliError::NotFound(format!(
                "the server does not hold evidence {hash} of visit {id} whole yet (not uploaded?)"
            )))
        }
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------- verify

pub fn verify(desk: &Desk, target: &str) -> Result<serde_json::Value> {
    let server = desk.creds.server.trim_end_matches('/');
    let url = if target.starts_with("v-") || target.contains('.') {
        format!("{server}/v1/visits/{target}/verify")
    } else {
        format!("{server}/v1/campaigns/{target}/verify")
    };
    let token = desk.creds.token.clone();
    runtime()?.block_on(async move {
        let resp = reqwest::Client::new()
            .get(&url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| CliError::Network(e.to_string()))?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp
            .json()
            .await
            .map_err(|e| CliError::Network(format!("unreadable answer: {e}")))?;
        let detail = body["detail"].as_str().unwrap_or("").to_owned();
        match status {
            200 => Ok(body),
            404 => Err(CliError::NotFound(format!("{target}: {detail}"))),
            401 | 403 => Err(CliError::NotAllowed(format!("{target}: {detail}"))),
            400 => Err(CliError::Invalid(format!("{target}: {detail}"))),
            _ => Err(CliError::Network(format!("{status}: {detail}"))),
        }
    })
}

/// A readable verification report; `Err(Problems)` when anything failed.
pub fn render_verify(body: &serde_json::Value, lang: Lang) -> (String, bool) {
    use std::fmt::Write as _;
    let visits: Vec<&serde_json::Value> = match body.get("visits").and_then(|v| v.as_array()) {
        Some(list) => list.iter().collect(),
        None => vec![body],
    };
    let mut o = String::new();
    let mut all_ok = true;
    for v in visits {
        let ok = v["ok"].as_bool().unwrap_or(false);
        all_ok &= ok;
        let _ = writeln!(
            o,
            "{} {} — {} {}, {} {}",
            if ok { "✓" } else { "✗" },
            p(v["visit_id"].as_str().unwrap_or("?")),
            v["changes_checked"],
            l(lang, "thay đổi đã kiểm", "changes checked"),
            v["approvals_checked"],
            l(lang, "phê duyệt đã kiểm", "approvals checked"),
        );
        let referenced = v["evidence_referenced"].as_u64().unwrap_or(0);
        if referenced > 0 {
            let _ = writeln!(
                o,
                "    {}: {} / {referenced} {}",
                l(lang, "ảnh", "photos"),
                v["evidence_held"].as_u64().unwrap_or(0),
                l(
                    lang,
                    "có trên máy chủ, khớp SHA-256",
                    "held by the server, SHA-256 checked"
                ),
            );
            for h in v["evidence_missing"].as_array().into_iter().flatten() {
                let _ = writeln!(
                    o,
                    "    {} {}",
                    l(lang, "chưa tải lên:", "not uploaded yet:"),
                    p(h.as_str().unwrap_or("?"))
                );
            }
        }
        for problem in v["problems"].as_array().into_iter().flatten() {
            let _ = writeln!(
                o,
                "    [{}] {}: {}",
                p(problem["rule"].as_str().unwrap_or("?")),
                p(problem["subject"].as_str().unwrap_or("?")),
                p(problem["detail"].as_str().unwrap_or(""))
            );
        }
    }
    (o, all_ok)
}

// ---------------------------------------------------------------- export

pub fn export(desk: &mut Desk, ids: &[VisitId], format: &str) -> Result<String> {
    match format {
        "json" => {
            let mut states = Vec::new();
            for id in ids {
                states.push(desk.store.visit(id)?.state()?);
            }
            serde_json::to_string_pretty(&states)
                .map(|s| s + "\n")
                .map_err(|e| CliError::Other(e.to_string()))
        }
        "csv" => {
            let mut w = csv::Writer::from_writer(Vec::new());
            let io = |e: csv::Error| CliError::Other(e.to_string());
            w.write_record([
                "visit_id",
                "unit_code",
                "unit_name",
                "status",
                "staff_id",
                "staff_name",
                "on_payroll",
                "attendance",
                "absence_reason",
                "note",
                "in_conflict",
            ])
            .map_err(io)?;
            for id in ids {
                let s = desk.store.visit(id)?.state()?;
                for (sid, m) in &s.staff {
                    let a = s.attendance.get(sid);
                    let mark = a.map(|a| a.value().mark);
                    w.write_record([
                        s.meta.visit_id.as_str(),
                        s.meta.unit.code.as_str(),
                        &s.meta.unit.name,
                        s.status().key(),
                        sid.as_str(),
                        &m.value.name,
                        if m.value.on_payroll { "yes" } else { "no" },
                        mark.map(|m| m.status_key()).unwrap_or(""),
                        mark.and_then(|m| m.reason()).map(|r| r.key()).unwrap_or(""),
                        a.map(|a| a.value().note.as_str()).unwrap_or(""),
                        if a.is_some_and(|a| a.in_conflict()) {
                            "yes"
                        } else {
                            "no"
                        },
                    ])
                    .map_err(io)?;
                }
            }
            let bytes = w.into_inner().map_err(|e| CliError::Other(e.to_string()))?;
            String::from_utf8(bytes).map_err(|e| CliError::Other(e.to_string()))
        }
        other => Err(CliError::Invalid(format!(
            "unknown format {other:?}; use json or csv"
        ))),
    }
}
