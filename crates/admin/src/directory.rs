//! The directory the administration log builds: users, teams, the
//! administrative hierarchy, units and their rosters, templates, campaigns,
//! assignments, enrollment codes, devices and draws. [`Directory::apply`]
//! is the one place an act is checked: the server runs it before it stores
//! an entry, the auditor's verification runs it over the stored log.

use chrono::NaiveDate;
use kiemtra_core::{
    CampaignId, NewVisit, Role, StaffMember, TeamId, Template, TemplateId, Unit, UnitCode,
    UnitKind, UserId, VisitId, text,
};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

use crate::log::{Act, Author, Entry, Head, parse_timestamp};

/// The tier of an area in the administrative hierarchy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    /// Tỉnh, thành phố trực thuộc trung ương.
    Province,
    /// Quận, huyện, thị xã (until 30/06/2025).
    District,
    /// Xã, phường, thị trấn; đặc khu.
    Commune,
}

impl Tier {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim() {
            "province" | "tỉnh" | "tinh" => Some(Tier::Province),
            "district" | "huyện" | "huyen" => Some(Tier::District),
            "commune" | "xã" | "xa" => Some(Tier::Commune),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Province => "province",
            Tier::District => "district",
            Tier::Commune => "commune",
        }
    }
}

/// An area: a province, a district or a commune, valid between two dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Area {
    pub code: UnitCode,
    pub name: String,
    pub tier: Tier,
    /// The area it belongs to; none for a province.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<UnitCode>,
    pub valid_from: NaiveDate,
    /// Last day of validity; none while it exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<NaiveDate>,
}

/// A unit (office) as imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRecord {
    pub code: UnitCode,
    pub name: String,
    pub kind: UnitKind,
    /// The area it is in.
    pub area: UnitCode,
    pub valid_from: NaiveDate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_to: Option<NaiveDate>,
}

fn valid_on(from: NaiveDate, to: Option<NaiveDate>, day: NaiveDate) -> bool {
    from <= day && to.is_none_or(|t| day <= t)
}

impl Area {
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        valid_on(self.valid_from, self.valid_to, day)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub user_id: UserId,
    pub full_name: String,
    pub role: Role,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Team {
    pub team_id: TeamId,
    pub name: String,
    pub leaders: Vec<UserId>,
    pub members: Vec<UserId>,
}

/// A roster in force from a date on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterVersion {
    pub valid_from: NaiveDate,
    /// Log entry that published it.
    pub seq: u64,
    pub staff: Vec<StaffMember>,
}

/// A unit with everything the log says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitEntry {
    #[serde(flatten)]
    pub record: UnitRecord,
    /// Units merged into this one, with the day each merge took effect.
    pub absorbed: Vec<(UnitCode, NaiveDate)>,
    /// The unit this one merged into, and from when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<(UnitCode, NaiveDate)>,
    pub rosters: Vec<RosterVersion>,
}

impl UnitEntry {
    pub fn valid_on(&self, day: NaiveDate) -> bool {
        valid_on(self.record.valid_from, self.record.valid_to, day)
    }
    /// The roster in force on `day`.
    pub fn roster_on(&self, day: NaiveDate) -> Option<&RosterVersion> {
        self.rosters.iter().rfind(|r| r.valid_from <= day)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedTemplate {
    pub template_id: TemplateId,
    pub version: u32,
    pub title_vi: String,
    pub title_en: String,
    pub checks: usize,
    pub json: String,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub team_id: TeamId,
    pub unit: UnitCode,
    pub planned_on: NaiveDate,
    pub visit_id: VisitId,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrawRecord {
    pub commitment: String,
    pub candidates: Vec<UnitCode>,
    pub count: u32,
    pub committed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selection: Vec<UnitCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revealed_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    pub campaign_id: CampaignId,
    pub title: String,
    pub decision: String,
    pub starts_on: NaiveDate,
    pub ends_on: NaiveDate,
    pub province: UnitCode,
    pub template_id: TemplateId,
    pub template_version: u32,
    pub teams: Vec<TeamId>,
    pub assignments: Vec<Assignment>,
    pub draws: Vec<DrawRecord>,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Code {
    pub user_id: UserId,
    pub team_id: TeamId,
    pub role: Role,
    pub expires_at: String,
    /// Issued by an administrator's device (signed) or on the server machine.
    pub issued_by: Author,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_by: Option<String>,
}

/// A device as the log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedDevice {
    pub device_id: String,
    pub user_id: UserId,
    pub team_id: TeamId,
    pub role: Role,
    /// Hex Ed25519 public key.
    pub public_key: String,
    pub device_name: String,
    pub enrolled_at: String,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
}

/// Why an act is refused. Nothing of a refused act is kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The entry does not follow the log's head (another act came first).
    #[error("the log moved on: the entry names {found}, the log stands at {expected}")]
    Stale { expected: String, found: String },
    /// The author may not make this act (not an administrator, a revoked
    /// device, a bad signature).
    #[error("{0}")]
    Forbidden(String),
    /// A name the act refers to does not exist.
    #[error("{0}")]
    Unknown(String),
    /// The act itself is wrong.
    #[error("{0}")]
    Invalid(String),
}

fn invalid(s: impl Into<String>) -> Refusal {
    Refusal::Invalid(s.into())
}
fn unknown(s: impl Into<String>) -> Refusal {
    Refusal::Unknown(s.into())
}

/// Whether `s` is 64 hex characters (a SHA-256 digest, an Ed25519 key).
fn hex64(s: &str) -> bool {
    s.len() == 64 && kiemtra_core::hex::decode(s).is_some()
}

fn clean_name(field: &'static str, value: &str) -> Result<String, Refusal> {
    text::required(field, value, text::MAX_NAME).map_err(|e| invalid(e.to_string()))
}

/// Everything the log says, as of its head.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Directory {
    pub head: Head,
    pub users: BTreeMap<UserId, User>,
    pub teams: BTreeMap<TeamId, Team>,
    pub areas: BTreeMap<UnitCode, Area>,
    pub units: BTreeMap<UnitCode, UnitEntry>,
    /// Keyed by id and version; written as an object keyed
    /// `<template_id> v<version>`, as the exports name them.
    #[serde(serialize_with = "templates_by_name")]
    pub templates: BTreeMap<(TemplateId, u32), PublishedTemplate>,
    pub campaigns: BTreeMap<CampaignId, Campaign>,
    pub codes: BTreeMap<String, Code>,
    pub devices: BTreeMap<String, LoggedDevice>,
    /// Every visit an assignment created, with its campaign.
    pub visits: BTreeMap<VisitId, CampaignId>,
}

fn templates_by_name<S: serde::Serializer>(
    templates: &BTreeMap<(TemplateId, u32), PublishedTemplate>,
    s: S,
) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(templates.len()))?;
    for ((id, version), t) in templates {
        m.serialize_entry(&format!("{id} v{version}"), t)?;
    }
    m.end()
}

/// Most entries of one list in one act (units, areas, staff).
pub const MAX_ITEMS: usize = 10_000;

impl Directory {
    /// Replays a log from its first entry; the first refused entry stops it.
    pub fn replay<'a>(
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<Self, (u64, Refusal)> {
        let mut d = Directory::default();
        for e in entries {
            d.apply(e).map_err(|r| (e.seq, r))?;
        }
        Ok(d)
    }

    /// Whether `device` may sign administrative acts now.
    pub fn administrator(&self, device_id: &str) -> Result<&LoggedDevice, Refusal> {
        let d = self.devices.get(device_id).ok_or_else(|| {
            Refusal::Forbidden(format!(
                "device {device_id} is not enrolled in the administration log"
            ))
        })?;
        if d.revoked_at.is_some() {
            return Err(Refusal::Forbidden(format!("device {device_id} is revoked")));
        }
        if d.role != Role::Administrator {
            return Err(Refusal::Forbidden(format!(
                "device {device_id} belongs to a {}, not an administrator",
                d.role.key()
            )));
        }
        if self.users.get(&d.user_id).is_some_and(|u| !u.active) {
            return Err(Refusal::Forbidden(format!(
                "user {} is disabled",
                d.user_id
            )));
        }
        Ok(d)
    }

    /// Checks `entry` against the log as it stands and applies it; on a
    /// refusal nothing changes.
    pub fn apply(&mut self, entry: &Entry) -> Result<(), Refusal> {
        if entry.seq != self.head.seq + 1 || entry.prev != self.head.hash {
            return Err(Refusal::Stale {
                expected: format!("entry {} after {}", self.head.seq + 1, self.head.hash),
                found: format!("entry {} after {}", entry.seq, entry.prev),
            });
        }
        if parse_timestamp(&entry.at).is_none() {
            return Err(invalid(format!(
                "time {:?} is not RFC 3339 UTC to the second, e.g. 2026-12-01T08:00:00Z",
                entry.at
            )));
        }
        if entry.at < self.head.at {
            return Err(invalid(format!(
                "time {} is before the entry before ({})",
                entry.at, self.head.at
            )));
        }
        match &entry.by {
            Author::Server => {
                if !entry.signature.is_empty() {
                    return Err(invalid("a server entry carries no signature"));
                }
                if !matches!(
                    entry.act,
                    Act::DeviceEnrolled { .. } | Act::CodeIssued { .. } | Act::DeviceRevoked { .. }
                ) {
                    return Err(Refusal::Forbidden(format!(
                        "the server writes only enrollments, and codes issued and revocations made on its machine, not {}",
                        entry.act.name()
                    )));
                }
            }
            Author::Device { device_id } => {
                let device = self.administrator(device_id)?;
                let key = kiemtra_core::hex::decode(&device.public_key).unwrap_or_default();
                if !entry.signed_by(&key) {
                    return Err(Refusal::Forbidden(format!(
                        "the signature does not verify under device {device_id}'s key"
                    )));
                }
                if matches!(entry.act, Act::DeviceEnrolled { .. }) {
                    return Err(Refusal::Forbidden(
                        "a device enrolls by redeeming a code, not by an administrator's act"
                            .into(),
                    ));
                }
            }
        }
        let mut next = self.clone();
        next.act(entry)?;
        next.head = entry.head();
        *self = next;
        Ok(())
    }

    fn user(&self, id: &UserId) -> Result<&User, Refusal> {
        self.users
            .get(id)
            .ok_or_else(|| unknown(format!("no user {id}")))
    }
    fn team(&self, id: &TeamId) -> Result<&Team, Refusal> {
        self.teams
            .get(id)
            .ok_or_else(|| unknown(format!("no team {id}")))
    }
    fn unit(&self, code: &UnitCode) -> Result<&UnitEntry, Refusal> {
        self.units
            .get(code)
            .ok_or_else(|| unknown(format!("no unit {code}")))
    }
    fn campaign(&self, id: &CampaignId) -> Result<&Campaign, Refusal> {
        self.campaigns
            .get(id)
            .ok_or_else(|| unknown(format!("no campaign {id}")))
    }

    /// Whether area `code` is `ancestor` or lies within it.
    pub fn area_within(&self, code: &UnitCode, ancestor: &UnitCode) -> bool {
        let mut at = Some(code.clone());
        let mut steps = 0;
        while let Some(c) = at {
            if &c == ancestor {
                return true;
            }
            steps += 1;
            if steps > 8 {
                return false;
            }
            at = self.areas.get(&c).and_then(|a| a.parent.clone());
        }
        false
    }

    fn act(&mut self, entry: &Entry) -> Result<(), Refusal> {
        let seq = entry.seq;
        match &entry.act {
            Act::UserCreated {
                user_id,
                full_name,
                role,
            } => {
                if self.users.contains_key(user_id) {
                    return Err(invalid(format!("user {user_id} exists already")));
                }
                let clean = clean_name("full name", full_name)?;
                if &clean != full_name {
                    return Err(invalid("the full name must be sent in Unicode NFC"));
                }
                self.users.insert(
                    user_id.clone(),
                    User {
                        user_id: user_id.clone(),
                        full_name: clean,
                        role: *role,
                        active: true,
                    },
                );
            }
            Act::UserUpdated {
                user_id,
                full_name,
                active,
            } => {
                self.user(user_id)?;
                let clean = clean_name("full name", full_name)?;
                if &clean != full_name {
                    return Err(invalid("the full name must be sent in Unicode NFC"));
                }
                let u = self.users.get_mut(user_id).ok_or_else(|| unknown("user"))?;
                u.full_name = clean;
                u.active = *active;
                if !active {
                    for d in self.devices.values_mut() {
                        if &d.user_id == user_id && d.revoked_at.is_none() {
                            d.revoked_at = Some(entry.at.clone());
                        }
                    }
                }
            }
            Act::TeamCreated { team_id, name } => {
                if self.teams.contains_key(team_id) {
                    return Err(invalid(format!("team {team_id} exists already")));
                }
                let name = clean_name("team name", name)?;
                self.teams.insert(
                    team_id.clone(),
                    Team {
                        team_id: team_id.clone(),
                        name,
                        leaders: Vec::new(),
                        members: Vec::new(),
                    },
                );
            }
            Act::TeamMembers {
                team_id,
                leaders,
                members,
            } => {
                self.team(team_id)?;
                let mut seen = BTreeSet::new();
                for m in members {
                    let u = self.user(m)?;
                    if !u.active {
                        return Err(invalid(format!("user {m} is disabled")));
                    }
                    if !seen.insert(m) {
                        return Err(invalid(format!("user {m} is listed twice")));
                    }
                }
                for l in leaders {
                    if !seen.contains(l) {
                        return Err(invalid(format!(
                            "leader {l} is not among the team's members"
                        )));
                    }
                    if self.user(l)?.role != Role::Supervisor {
                        return Err(invalid(format!(
                            "leader {l} is not a supervisor: a team is led by supervisors"
                        )));
                    }
                }
                let t = self.teams.get_mut(team_id).ok_or_else(|| unknown("team"))?;
                t.leaders = leaders.clone();
                t.members = members.clone();
            }
            Act::AreasImported { areas } => {
                if areas.is_empty() || areas.len() > MAX_ITEMS {
                    return Err(invalid(format!("1 to {MAX_ITEMS} areas in one import")));
                }
                for a in areas {
                    let name = clean_name("area name", &a.name)?;
                    if name != a.name {
                        return Err(invalid(format!("area {}: name not in NFC", a.code)));
                    }
                    if a.valid_to.is_some_and(|t| t < a.valid_from) {
                        return Err(invalid(format!(
                            "area {}: valid_to before valid_from",
                            a.code
                        )));
                    }
                    match (&a.parent, a.tier) {
                        (None, Tier::Province) => {}
                        (None, _) => {
                            return Err(invalid(format!(
                                "area {}: a {} needs a parent area",
                                a.code,
                                a.tier.as_str()
                            )));
                        }
                        (Some(_), Tier::Province) => {
                            return Err(invalid(format!(
                                "area {}: a province has no parent",
                                a.code
                            )));
                        }
                        (Some(p), tier) => {
                            let parent = self.areas.get(p).ok_or_else(|| {
                                unknown(format!("area {}: no parent area {p}", a.code))
                            })?;
                            if parent.tier >= tier {
                                return Err(invalid(format!(
                                    "area {}: a {} cannot lie within a {}",
                                    a.code,
                                    tier.as_str(),
                                    parent.tier.as_str()
                                )));
                            }
                        }
                    }
                    self.areas.insert(a.code.clone(), a.clone());
                }
            }
            Act::UnitsImported { units } => {
                if units.is_empty() || units.len() > MAX_ITEMS {
                    return Err(invalid(format!("1 to {MAX_ITEMS} units in one import")));
                }
                let mut seen = BTreeSet::new();
                for u in units {
                    if !seen.insert(&u.code) {
                        return Err(invalid(format!("unit {} is listed twice", u.code)));
                    }
                    let name = clean_name("unit name", &u.name)?;
                    if name != u.name {
                        return Err(invalid(format!("unit {}: name not in NFC", u.code)));
                    }
                    if !self.areas.contains_key(&u.area) {
                        return Err(unknown(format!("unit {}: no area {}", u.code, u.area)));
                    }
                    if u.valid_to.is_some_and(|t| t < u.valid_from) {
                        return Err(invalid(format!(
                            "unit {}: valid_to before valid_from",
                            u.code
                        )));
                    }
                    let entry = self
                        .units
                        .entry(u.code.clone())
                        .or_insert_with(|| UnitEntry {
                            record: u.clone(),
                            absorbed: Vec::new(),
                            merged_into: None,
                            rosters: Vec::new(),
                        });
                    entry.record = u.clone();
                }
            }
            Act::RosterPublished {
                unit,
                valid_from,
                staff,
            } => {
                self.unit(unit)?;
                if staff.len() > kiemtra_core::MAX_STAFF {
                    return Err(invalid(format!(
                        "a roster holds at most {} people",
                        kiemtra_core::MAX_STAFF
                    )));
                }
                let mut seen = BTreeSet::new();
                for m in staff {
                    if !seen.insert(&m.id) {
                        return Err(invalid(format!("staff {} appears twice", m.id)));
                    }
                    let clean = StaffMember::new(
                        m.id.clone(),
                        &m.name,
                        &m.position,
                        m.category,
                        m.on_payroll,
                    )
                    .map_err(|e| invalid(format!("staff {}: {e}", m.id)))?;
                    if clean.name != m.name || clean.position != m.position {
                        return Err(invalid(format!("staff {}: text not in NFC", m.id)));
                    }
                }
                let u = self.units.get_mut(unit).ok_or_else(|| unknown("unit"))?;
                u.rosters.retain(|r| r.valid_from != *valid_from);
                u.rosters.push(RosterVersion {
                    valid_from: *valid_from,
                    seq,
                    staff: staff.clone(),
                });
                u.rosters.sort_by_key(|r| r.valid_from);
            }
            Act::UnitsMerged { into, absorbed, on } => {
                let target = self.unit(into)?;
                if !target.valid_on(*on) {
                    return Err(invalid(format!("unit {into} is not valid on {on}")));
                }
                if absorbed.is_empty() {
                    return Err(invalid("name the units absorbed"));
                }
                for a in absorbed {
                    if a == into {
                        return Err(invalid(format!("unit {a} cannot absorb itself")));
                    }
                    let u = self.unit(a)?;
                    if u.merged_into.is_some() {
                        return Err(invalid(format!("unit {a} has merged already")));
                    }
                    if *on <= u.record.valid_from {
                        return Err(invalid(format!("unit {a} did not exist before {on}")));
                    }
                }
                let last_day = on.pred_opt().ok_or_else(|| invalid("date"))?;
                for a in absorbed {
                    let u = self.units.get_mut(a).ok_or_else(|| unknown("unit"))?;
                    u.record.valid_to = Some(last_day);
                    u.merged_into = Some((into.clone(), *on));
                }
                let t = self.units.get_mut(into).ok_or_else(|| unknown("unit"))?;
                t.absorbed.extend(absorbed.iter().map(|a| (a.clone(), *on)));
            }
            Act::TemplatePublished {
                template_id,
                version,
                json,
            } => {
                if json.len() > 1_000_000 {
                    return Err(invalid("a template is at most 1 MB"));
                }
                let t = Template::from_json(json)
                    .map_err(|e| invalid(format!("the template does not parse: {e}")))?;
                if &t.id != template_id || t.version != *version {
                    return Err(invalid(format!(
                        "the file is template {} version {}, not {template_id} version {version}",
                        t.id, t.version
                    )));
                }
                let key = (template_id.clone(), *version);
                if self.templates.contains_key(&key) {
                    return Err(invalid(format!(
                        "template {template_id} version {version} is published already; publish a new version"
                    )));
                }
                self.templates.insert(
                    key,
                    PublishedTemplate {
                        template_id: template_id.clone(),
                        version: *version,
                        title_vi: t.title.vi.clone(),
                        title_en: t.title.en.clone(),
                        checks: t.checks.len(),
                        json: json.clone(),
                        seq,
                    },
                );
            }
            Act::CampaignCreated {
                campaign_id,
                title,
                decision,
                starts_on,
                ends_on,
                province,
                template_id,
                template_version,
                teams,
            } => {
                if self.campaigns.contains_key(campaign_id) {
                    return Err(invalid(format!("campaign {campaign_id} exists already")));
                }
                let title = clean_name("title", title)?;
                let decision = text::optional("decision", decision, text::MAX_NAME)
                    .map_err(|e| invalid(e.to_string()))?;
                if ends_on < starts_on {
                    return Err(invalid("the campaign ends before it starts"));
                }
                let area = self
                    .areas
                    .get(province)
                    .ok_or_else(|| unknown(format!("no area {province}")))?;
                if area.tier != Tier::Province {
                    return Err(invalid(format!("area {province} is not a province")));
                }
                if !self
                    .templates
                    .contains_key(&(template_id.clone(), *template_version))
                {
                    return Err(unknown(format!(
                        "template {template_id} version {template_version} is not published"
                    )));
                }
                if teams.is_empty() {
                    return Err(invalid("a campaign needs at least one team"));
                }
                for t in teams {
                    self.team(t)?;
                }
                self.campaigns.insert(
                    campaign_id.clone(),
                    Campaign {
                        campaign_id: campaign_id.clone(),
                        title,
                        decision,
                        starts_on: *starts_on,
                        ends_on: *ends_on,
                        province: province.clone(),
                        template_id: template_id.clone(),
                        template_version: *template_version,
                        teams: teams.clone(),
                        assignments: Vec::new(),
                        draws: Vec::new(),
                        created_at: entry.at.clone(),
                    },
                );
            }
            Act::Assigned {
                campaign_id,
                team_id,
                unit,
                planned_on,
                visit_id,
            } => {
                let c = self.campaign(campaign_id)?;
                if !c.teams.contains(team_id) {
                    return Err(invalid(format!(
                        "team {team_id} is not one of campaign {campaign_id}'s teams"
                    )));
                }
                if self.team(team_id)?.members.is_empty() {
                    return Err(invalid(format!("team {team_id} has no members")));
                }
                if *planned_on < c.starts_on || *planned_on > c.ends_on {
                    return Err(invalid(format!(
                        "{planned_on} is outside the campaign ({} to {})",
                        c.starts_on, c.ends_on
                    )));
                }
                let u = self.unit(unit)?;
                if !u.valid_on(*planned_on) {
                    return Err(invalid(format!(
                        "unit {unit} does not exist on {planned_on}"
                    )));
                }
                if !self.area_within(&u.record.area, &c.province) {
                    return Err(invalid(format!(
                        "unit {unit} is not in the campaign's province {}",
                        c.province
                    )));
                }
                if u.roster_on(*planned_on).is_none() {
                    return Err(invalid(format!(
                        "unit {unit} has no roster in force on {planned_on}"
                    )));
                }
                if c.assignments.iter().any(|a| &a.unit == unit) {
                    return Err(invalid(format!(
                        "unit {unit} is assigned already in campaign {campaign_id}"
                    )));
                }
                if self.visits.contains_key(visit_id) {
                    return Err(invalid(format!("visit {visit_id} exists already")));
                }
                self.visits.insert(visit_id.clone(), campaign_id.clone());
                let c = self
                    .campaigns
                    .get_mut(campaign_id)
                    .ok_or_else(|| unknown("campaign"))?;
                c.assignments.push(Assignment {
                    team_id: team_id.clone(),
                    unit: unit.clone(),
                    planned_on: *planned_on,
                    visit_id: visit_id.clone(),
                    seq,
                });
            }
            Act::CodeIssued {
                code_hash,
                user_id,
                team_id,
                role,
                expires_at,
            } => {
                if !hex64(code_hash) {
                    return Err(invalid("code_hash must be 64 hex characters"));
                }
                if self.codes.contains_key(code_hash) {
                    return Err(invalid("this code is issued already"));
                }
                if parse_timestamp(expires_at).is_none() || expires_at.as_str() <= entry.at.as_str()
                {
                    return Err(invalid("the code must expire after it is issued"));
                }
                if matches!(entry.by, Author::Device { .. }) {
                    let u = self.user(user_id)?;
                    if !u.active {
                        return Err(invalid(format!("user {user_id} is disabled")));
                    }
                    if u.role != *role {
                        return Err(invalid(format!(
                            "user {user_id} is a {}, not a {}",
                            u.role.key(),
                            role.key()
                        )));
                    }
                    if *role != Role::Administrator && *role != Role::Auditor {
                        let t = self.team(team_id)?;
                        if !t.members.contains(user_id) {
                            return Err(invalid(format!(
                                "user {user_id} is not a member of team {team_id}"
                            )));
                        }
                    }
                }
                self.codes.insert(
                    code_hash.clone(),
                    Code {
                        user_id: user_id.clone(),
                        team_id: team_id.clone(),
                        role: *role,
                        expires_at: expires_at.clone(),
                        issued_by: entry.by.clone(),
                        seq,
                        used_by: None,
                    },
                );
            }
            Act::DeviceEnrolled {
                device_id,
                user_id,
                team_id,
                role,
                public_key,
                device_name,
                code_hash,
            } => {
                let code = self
                    .codes
                    .get(code_hash)
                    .ok_or_else(|| unknown("the enrollment names no issued code"))?;
                if code.used_by.is_some() {
                    return Err(invalid("the code was used already"));
                }
                if &code.user_id != user_id || &code.team_id != team_id || code.role != *role {
                    return Err(invalid(
                        "the enrollment's user, team or role is not the code's",
                    ));
                }
                if entry.at > code.expires_at {
                    return Err(invalid("the code had expired"));
                }
                if !hex64(public_key) {
                    return Err(invalid("public_key must be 64 hex characters"));
                }
                if self.devices.contains_key(device_id) {
                    return Err(invalid(format!("device {device_id} is enrolled already")));
                }
                if let Some(c) = self.codes.get_mut(code_hash) {
                    c.used_by = Some(device_id.clone());
                }
                self.devices.insert(
                    device_id.clone(),
                    LoggedDevice {
                        device_id: device_id.clone(),
                        user_id: user_id.clone(),
                        team_id: team_id.clone(),
                        role: *role,
                        public_key: public_key.clone(),
                        device_name: device_name.clone(),
                        enrolled_at: entry.at.clone(),
                        seq,
                        revoked_at: None,
                    },
                );
            }
            Act::DeviceRevoked { device_id } => {
                let d = self
                    .devices
                    .get_mut(device_id)
                    .ok_or_else(|| unknown(format!("no device {device_id}")))?;
                if d.revoked_at.is_some() {
                    return Err(invalid(format!("device {device_id} is revoked already")));
                }
                d.revoked_at = Some(entry.at.clone());
            }
            Act::DrawCommitted {
                campaign_id,
                commitment,
                candidates,
                count,
            } => {
                self.campaign(campaign_id)?;
                if !hex64(commitment) {
                    return Err(invalid("commitment must be 64 hex characters"));
                }
                let mut sorted = candidates.clone();
                sorted.sort();
                sorted.dedup();
                if sorted != *candidates || candidates.is_empty() {
                    return Err(invalid("candidates must be sorted, distinct and not empty"));
                }
                for u in candidates {
                    self.unit(u)?;
                }
                if *count == 0 || *count as usize > candidates.len() {
                    return Err(invalid(format!(
                        "a draw selects 1 to {} of its candidates",
                        candidates.len()
                    )));
                }
                let c = self
                    .campaigns
                    .get_mut(campaign_id)
                    .ok_or_else(|| unknown("campaign"))?;
                if c.draws.iter().any(|d| d.seed.is_none()) {
                    return Err(invalid("the campaign's last draw is not revealed yet"));
                }
                c.draws.push(DrawRecord {
                    commitment: commitment.clone(),
                    candidates: candidates.clone(),
                    count: *count,
                    committed_at: entry.at.clone(),
                    seed: None,
                    selection: Vec::new(),
                    revealed_at: None,
                });
            }
            Act::DrawRevealed {
                campaign_id,
                seed,
                selection,
            } => {
                self.campaign(campaign_id)?;
                let c = self
                    .campaigns
                    .get_mut(campaign_id)
                    .ok_or_else(|| unknown("campaign"))?;
                let d = c
                    .draws
                    .iter_mut()
                    .find(|d| d.seed.is_none())
                    .ok_or_else(|| invalid("the campaign has no draw waiting to be revealed"))?;
                let raw = kiemtra_core::hex::decode(seed)
                    .filter(|s| s.len() == 32)
                    .ok_or_else(|| invalid("seed must be 64 hex characters"))?;
                if crate::draw::commitment_of(&raw) != d.commitment {
                    return Err(invalid("this seed does not match the recorded commitment"));
                }
                let expected = crate::draw::select(&raw, &d.candidates, d.count as usize);
                if &expected != selection {
                    return Err(invalid("the selection is not the one the seed makes"));
                }
                d.seed = Some(seed.clone());
                d.selection = selection.clone();
                d.revealed_at = Some(entry.at.clone());
            }
        }
        Ok(())
    }

    /// The visit an assignment asks for, as the server creates it: the unit
    /// as it stands, its area's name, the roster in force on the planned day.
    pub fn new_visit(&self, visit_id: &VisitId) -> Result<(NewVisit, TemplateId, u32), Refusal> {
        let campaign_id = self
            .visits
            .get(visit_id)
            .ok_or_else(|| unknown(format!("no assignment made visit {visit_id}")))?;
        let c = self.campaign(campaign_id)?;
        let a = c
            .assignments
            .iter()
            .find(|a| &a.visit_id == visit_id)
            .ok_or_else(|| unknown("assignment"))?;
        let u = self.unit(&a.unit)?;
        let area = self
            .areas
            .get(&u.record.area)
            .map(|a| a.name.clone())
            .unwrap_or_default();
        let roster = u
            .roster_on(a.planned_on)
            .map(|r| r.staff.clone())
            .unwrap_or_default();
        let unit = Unit::new(u.record.code.clone(), &u.record.name, u.record.kind, &area)
            .map_err(|e| invalid(e.to_string()))?;
        Ok((
            NewVisit {
                visit_id: visit_id.clone(),
                unit,
                campaign: campaign_id.clone(),
                team: a.team_id.clone(),
                scheduled_on: a.planned_on,
                roster,
            },
            c.template_id.clone(),
            c.template_version,
        ))
    }

    /// A published template, parsed.
    pub fn template(&self, id: &TemplateId, version: u32) -> Result<Template, Refusal> {
        let t = self
            .templates
            .get(&(id.clone(), version))
            .ok_or_else(|| unknown(format!("template {id} version {version} is not published")))?;
        Template::from_json(&t.json).map_err(|e| invalid(e.to_string()))
    }
}
