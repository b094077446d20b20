//! Shared helpers for the core tests: a small visit and per-device sessions
//! with a deterministic clock.
#![allow(dead_code)]

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use kiemtra_core::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

pub const STANDARD: &str = include_str!("../../../../fixtures/templates/standard-v1.json");

pub fn template() -> Template {
    Template::from_json(STANDARD).expect("standard template")
}

/// The valued checks [`valued_template`] adds to the standard one.
pub const VALUED_CHECKS: &str = r#"[
  { "id": "satisfaction-rate", "group": "one_stop_desk", "kind": "number", "min": 0, "max": 100,
    "unit": { "vi": "%", "en": "%" },
    "label": { "vi": "Tỷ lệ người dân hài lòng trên thiết bị đánh giá", "en": "Citizens satisfied, as the rating device shows" } },
  { "id": "one-stop-mode", "group": "one_stop_desk", "kind": "choice",
    "label": { "vi": "Mô hình Bộ phận tiếp nhận và trả kết quả", "en": "Form of the one-stop desk" },
    "options": [
      { "id": "modern", "label": { "vi": "Một cửa hiện đại, điện tử", "en": "Modern (electronic) one-stop" } },
      { "id": "standard", "label": { "vi": "Một cửa thông thường", "en": "Standard one-stop" } },
      { "id": "none", "label": { "vi": "Chưa bố trí", "en": "None set up" } }
    ] },
  { "id": "e-office-software", "group": "e_government", "kind": "text",
    "label": { "vi": "Phần mềm quản lý văn bản đang sử dụng", "en": "E-office software in use" } }
]"#;

/// The standard template with valued checks added (a number, a choice, a text).
pub fn valued_template() -> Template {
    let mut t: serde_json::Value = serde_json::from_str(STANDARD).expect("json");
    let extra: Vec<serde_json::Value> = serde_json::from_str(VALUED_CHECKS).expect("json");
    t["checks"].as_array_mut().expect("checks").extend(extra);
    t["id"] = "standard-valued".into();
    Template::from_json(&t.to_string()).expect("valued template")
}

pub fn choice(id: &str) -> ChoiceId {
    ChoiceId::parse(id).expect("choice id")
}

pub fn t0() -> DateTime<Utc> {
    // 09:00 Viet Nam time, 31/08/2015.
    Utc.with_ymd_and_hms(2015, 8, 31, 2, 0, 0)
        .single()
        .expect("valid time")
}

/// A session whose clock starts at `t0 + offset_min` and advances a minute per read.
pub fn session(user: &str, device: &str, offset_min: i64) -> Session {
    let tick = Arc::new(AtomicI64::new(0));
    let start = t0() + chrono::Duration::minutes(offset_min);
    Session::new(Editor::new(
        UserId::parse(user).expect("user"),
        DeviceId::parse(device).expect("device"),
    ))
    .with_clock(move || start + chrono::Duration::minutes(tick.fetch_add(1, Ordering::SeqCst)))
}

pub fn staff(i: usize) -> StaffId {
    StaffId::parse(&format!("s-{i:03}")).expect("staff id")
}

pub fn check(id: &str) -> CheckId {
    CheckId::parse(id).expect("check id")
}

pub fn roster(n: usize) -> Vec<StaffMember> {
    let names = [
        "Nguyễn Văn An",
        "Trần Thị Bình",
        "Lê Hoàng Cường",
        "Phạm Thị Dung",
        "Huỳnh Minh Đức",
    ];
    (0..n)
        .map(|i| {
            StaffMember::new(
                staff(i),
                &format!("{} {}", names[i % names.len()], i),
                "Chuyên viên",
                StaffCategory::CivilServant,
                i % 10 != 9,
            )
            .expect("staff")
        })
        .collect()
}

pub fn new_visit(staff_count: usize) -> NewVisit {
    NewVisit {
        visit_id: VisitId::parse("v-test-1").expect("id"),
        unit: Unit::new(
            UnitCode::parse("ct-xa-an-binh").expect("code"),
            "UBND phường An Bình",
            UnitKind::CommuneCommittee,
            "Quận Ninh Kiều",
        )
        .expect("unit"),
        campaign: CampaignId::parse("ct-2015").expect("campaign"),
        team: TeamId::parse("team-1").expect("team"),
        scheduled_on: NaiveDate::from_ymd_opt(2015, 8, 31).expect("date"),
        roster: roster(staff_count),
    }
}

pub fn create(staff_count: usize) -> Visit {
    Visit::create(
        new_visit(staff_count),
        &template(),
        &session("sup-1", "dev-sup", 0),
    )
    .expect("create")
}

/// A visit of `staff_count` staff made from [`valued_template`].
pub fn create_valued(staff_count: usize) -> Visit {
    Visit::create(
        new_visit(staff_count),
        &valued_template(),
        &session("sup-1", "dev-sup", 0),
    )
    .expect("create")
}

/// A replica of `v` opened by another device.
pub fn replica(v: &Visit, user: &str, device: &str, offset_min: i64) -> Visit {
    Visit::load(&v.save(), &session(user, device, offset_min)).expect("load replica")
}

pub fn absent(reason: AbsenceReason) -> AttendanceMark {
    AttendanceMark::Absent(reason)
}
