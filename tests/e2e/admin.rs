//! The administration over HTTP against a real server process: the first
//! administrator enrolls with a code made on the server machine, signs
//! every act with the desk's key, imports the Cần Thơ units and rosters
//! from an .xlsx, issues a code a phone redeems; every bad input is refused
//! with nothing changed; a key swapped, a revocation removed, an enrollment
//! backdated, a log entry edited or removed in the database are detected.

use crate::harness::*;
use kiemtra_admin::export::write_workbook;
use kiemtra_admin::log::sha256_hex;
use kiemtra_admin::{Act, Author, Cell, Entry, Head, Table};
use kiemtra_core::{Role, TeamId, UserId};
use serde_json::{Value, json};

pub(crate) struct Admin {
    pub(crate) url: String,
    pub(crate) creds: kiemtra_client::Credentials,
    http: reqwest::Client,
}

impl Admin {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .bearer_auth(&self.creds.token)
            .send()
            .await
            .expect("get");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    async fn head(&self) -> Head {
        let (s, v) = self.get("/v1/admin/log").await;
        assert_eq!(s, 200, "{v}");
        serde_json::from_value(v["head"].clone()).expect("head")
    }
    fn sign(&self, head: &Head, act: Act) -> Entry {
        let at = kiemtra_admin::log::timestamp(chrono::Utc::now()).max(head.at.clone());
        let mut e = Entry::next(
            head,
            &at,
            Author::Device {
                device_id: self.creds.device_id.clone(),
            },
            act,
        );
        e.signature =
            kiemtra_core::hex::encode(&self.creds.sign_bytes(&e.signing_bytes()).expect("sign"));
        e
    }
    async fn post(&self, entries: &[Entry]) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/v1/admin/log", self.url))
            .bearer_auth(&self.creds.token)
            .json(&json!({ "entries": entries }))
            .send()
            .await
            .expect("post");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    /// Signs acts one after another from the current head and sends them.
    pub(crate) async fn act(&self, acts: Vec<Act>) -> (u16, Value) {
        let mut head = self.head().await;
        let mut entries = Vec::new();
        for a in acts {
            let e = self.sign(&head, a);
            head = e.head();
            entries.push(e);
        }
        self.post(&entries).await
    }
    async fn import(&self, kind: &str, body: Vec<u8>) -> (u16, Value) {
        let r = self
            .http
            .post(format!(
                "{}/v1/admin/imports/{kind}?valid_from=01/01/2015",
                self.url
            ))
            .bearer_auth(&self.creds.token)
            .body(body)
            .send()
            .await
            .expect("import");
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }
    async fn import_and_sign(&self, kind: &str, body: Vec<u8>) {
        let (s, v) = self.import(kind, body).await;
        assert_eq!(s, 200, "{v}");
        let acts: Vec<Act> = serde_json::from_value(v["acts"].clone()).expect("acts");
        let (s, v) = self.act(acts).await;
        assert_eq!(s, 200, "{v}");
    }
}

pub(crate) fn uid(s: &str) -> UserId {
    UserId::parse(s).expect("id")
}
pub(crate) fn tid(s: &str) -> TeamId {
    TeamId::parse(s).expect("id")
}

/// The Cần Thơ campaign's units and rosters as a workbook, and its areas
/// (the city and its districts of 2015) as CSV.
fn cantho() -> (String, Vec<u8>, usize) {
    let fixture: Value =
        serde_json::from_str(include_str!("../../fixtures/campaigns/cantho-2015.json"))
            .expect("fixture");
    let units = fixture["units"].as_array().expect("units");
    let mut areas = vec![
        "area_code,area_name,tier,parent".to_owned(),
        "can-tho,Thành phố Cần Thơ,province,".into(),
    ];
    let mut codes = std::collections::BTreeMap::new();
    codes.insert("Thành phố Cần Thơ".to_owned(), "can-tho".to_owned());
    let mut unit_sheet = Table::new("units", &["unit_code", "unit_name", "unit_kind", "area"]);
    let mut staff_sheet = Table::new(
        "staff",
        &[
            "unit_code",
            "staff_id",
            "staff_name",
            "position",
            "category",
            "on_payroll",
        ],
    );
    let mut people = 0;
    for u in units {
        let area = u["area"].as_str().expect("area").to_owned();
        let n = codes.len();
        let code = codes
            .entry(area.clone())
            .or_insert_with(|| {
                let c = format!("quan-huyen-{n}");
                areas.push(format!("{c},{area},district,can-tho"));
                c
            })
            .clone();
        let s = |k: &str| Cell::from(u[k].as_str().unwrap_or_default());
        unit_sheet.push(vec![s("code"), s("name"), s("kind"), code.into()]);
        for m in u["staff"].as_array().expect("staff") {
            let t = |k: &str| Cell::from(m[k].as_str().unwrap_or_default());
            staff_sheet.push(vec![
                s("code"),
                t("id"),
                t("name"),
                t("position"),
                t("category"),
                if m["on_payroll"].as_bool() == Some(true) {
                    "có"
                } else {
                    "không"
                }
                .into(),
            ]);
            people += 1;
        }
    }
    (
        areas.join("\n"),
        write_workbook(&[unit_sheet, staff_sheet]).expect("xlsx"),
        people,
    )
}

pub(crate) async fn start() -> (tempfile::TempDir, ServerProcess, Admin) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let server = ServerProcess::start(&data);
    let url = server.url();
    let code = enroll_codes(&data, "quan-tri", "so-noi-vu", "administrator", 1).remove(0);
    let creds = kiemtra_client::enroll(&url, &code, "Bàn quản trị")
        .await
        .expect("enroll the administrator");
    let admin = Admin {
        url,
        creds,
        http: reqwest::Client::new(),
    };
    (dir, server, admin)
}

#[tokio::test]
async fn an_administrator_builds_the_directory_from_an_xlsx_and_a_phone_enrolls_with_a_signed_code()
{
    let (dir, server, admin) = start().await;
    // The first two entries are the server's: the code made on its machine
    // and the enrollment it witnessed.
    let (_, log) = admin.get("/v1/admin/log").await;
    let kinds: Vec<&str> = log["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["act"]["type"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(kinds, ["code_issued", "device_enrolled"]);

    let (areas, book, people) = cantho();
    admin.import_and_sign("areas", areas.into_bytes()).await;
    admin.import_and_sign("units", book.clone()).await;
    admin.import_and_sign("staff", book).await;
    let (_, d) = admin.get("/v1/admin/directory").await;
    let units = d["units"].as_object().expect("units");
    assert_eq!(units.len(), 65);
    let staff: usize = units
        .values()
        .map(|u| u["rosters"][0]["staff"].as_array().map_or(0, |s| s.len()))
        .sum();
    assert_eq!(staff, people);
    assert_eq!(units["so-noi-vu"]["name"], "Sở Nội vụ");

    let (s, v) = admin
        .act(vec![
            Act::UserCreated {
                user_id: uid("truong-doan"),
                full_name: "Trần Văn Đoàn".into(),
                role: Role::Supervisor,
            },
            Act::UserCreated {
                user_id: uid("kiem-tra-an"),
                full_name: "Lê Thị Ân".into(),
                role: Role::Inspector,
            },
            Act::TeamCreated {
                team_id: tid("doan-1"),
                name: "Đoàn kiểm tra số 1".into(),
            },
            Act::TeamMembers {
                team_id: tid("doan-1"),
                leaders: vec![uid("truong-doan")],
                members: vec![uid("truong-doan"), uid("kiem-tra-an")],
            },
        ])
        .await;
    assert_eq!(s, 200, "{v}");
    // A code the administrator signed; the phone redeems it.
    let code = "ABCD-EFGH-JKLM-NPQR";
    let expires = kiemtra_admin::log::timestamp(chrono::Utc::now() + chrono::Duration::hours(1));
    let (s, v) = admin
        .act(vec![Act::CodeIssued {
            code_hash: sha256_hex(kiemtra_server::normalise_code(code).as_bytes()),
            user_id: uid("kiem-tra-an"),
            team_id: tid("doan-1"),
            role: Role::Inspector,
            expires_at: expires,
        }])
        .await;
    assert_eq!(s, 200, "{v}");
    let mut phone =
        Device::enroll_with_code(&admin.url, code, "kiem-tra-an", &dir.path().join("phone")).await;
    assert_eq!(phone.client.credentials().team, "doan-1");

    // A template, a campaign on it, and assignments: the server creates the
    // visits and each team's phones receive exactly theirs.
    let day = |s: &str| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date");
    let unit = |s: &str| kiemtra_core::UnitCode::parse(s).expect("unit");
    let campaign = kiemtra_core::CampaignId::parse("ct-2015").expect("id");
    let visit =
        |u: &str| kiemtra_core::VisitId::parse(&format!("ct-2015.{u}.a1b2c3d4e5")).expect("id");
    let assign = |team: &str, u: &str, on: &str| Act::Assigned {
        campaign_id: campaign.clone(),
        team_id: tid(team),
        unit: unit(u),
        planned_on: day(on),
        visit_id: visit(u),
    };
    let (s, v) = admin
        .act(vec![
            Act::TemplatePublished {
                template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
                version: 1,
                json: include_str!("../../fixtures/templates/standard-v1.json").into(),
            },
            Act::UserCreated {
                user_id: uid("kiem-tra-binh"),
                full_name: "Phạm Văn Bình".into(),
                role: Role::Inspector,
            },
            Act::TeamCreated {
                team_id: tid("doan-2"),
                name: "Đoàn kiểm tra số 2".into(),
            },
            Act::TeamMembers {
                team_id: tid("doan-2"),
                leaders: vec![],
                members: vec![uid("kiem-tra-binh")],
            },
            Act::CampaignCreated {
                campaign_id: campaign.clone(),
                title: "Kiểm tra đột xuất việc chấp hành kỷ luật, kỷ cương hành chính năm 2015"
                    .into(),
                decision: "Quyết định 138/QĐ-UBND ngày 19/01/2017".into(),
                starts_on: day("2015-08-01"),
                ends_on: day("2015-12-31"),
                province: unit("can-tho"),
                template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
                template_version: 1,
                teams: vec![tid("doan-1"), tid("doan-2")],
            },
            assign("doan-1", "so-noi-vu", "2015-08-31"),
            assign("doan-1", "so-tu-phap", "2015-08-31"),
            assign("doan-2", "so-y-te", "2015-09-01"),
        ])
        .await;
    assert_eq!(s, 200, "{v}");
    // An assignment naming a visit id already taken is refused (an
    // assigned visit cannot be squatted or taken over).
    let (s, v) = admin
        .act(vec![Act::Assigned {
            campaign_id: campaign.clone(),
            team_id: tid("doan-2"),
            unit: unit("so-tai-chinh"),
            planned_on: day("2015-09-01"),
            visit_id: visit("so-noi-vu"),
        }])
        .await;
    assert_eq!(s, 400, "{v}");
    // An assignment outside the campaign's province is refused.
    let (s, v) = admin
        .act(vec![
            Act::AreasImported {
                areas: vec![kiemtra_admin::Area {
                    code: unit("vinh-long"),
                    name: "Tỉnh Vĩnh Long".into(),
                    tier: kiemtra_admin::Tier::Province,
                    parent: None,
                    valid_from: day("2004-01-01"),
                    valid_to: None,
                }],
            },
            Act::UnitsImported {
                units: vec![kiemtra_admin::UnitRecord {
                    code: unit("so-noi-vu-vl"),
                    name: "Sở Nội vụ Vĩnh Long".into(),
                    kind: kiemtra_core::UnitKind::Department,
                    area: unit("vinh-long"),
                    valid_from: day("2004-01-01"),
                    valid_to: None,
                }],
            },
            Act::RosterPublished {
                unit: unit("so-noi-vu-vl"),
                valid_from: day("2015-01-01"),
                staff: vec![],
            },
            assign("doan-2", "so-noi-vu-vl", "2015-09-01"),
        ])
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["detail"].as_str().unwrap_or("").contains("province"),
        "{v}"
    );
    phone.sync().await;
    let mut ids: Vec<String> = phone
        .store
        .list_visits()
        .expect("list")
        .into_iter()
        .map(|v| v.id.to_string())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            visit("so-noi-vu").to_string(),
            visit("so-tu-phap").to_string()
        ]
    );
    let state = phone.state(&visit("so-noi-vu"));
    assert_eq!(state.meta.unit.name, "Sở Nội vụ");
    assert_eq!(
        state.staff.len(),
        units["so-noi-vu"]["rosters"][0]["staff"]
            .as_array()
            .map_or(0, |s| s.len())
    );
    let data = dir.path().join("server");
    let mut other = Device::enroll(
        &data,
        &admin.url,
        "kiem-tra-binh",
        "doan-2",
        "inspector",
        &dir.path().join("phone-2"),
    )
    .await;
    other.sync().await;
    let theirs: Vec<String> = other
        .store
        .list_visits()
        .expect("list")
        .into_iter()
        .map(|v| v.id.to_string())
        .collect();
    assert_eq!(theirs, [visit("so-y-te").to_string()]);
    // The server's creation verifies against the logged assignment.
    let auditor = Device::enroll(
        &data,
        &admin.url,
        "kiem-toan",
        "so-noi-vu",
        "auditor",
        &dir.path().join("auditor"),
    )
    .await;
    let r = reqwest::Client::new()
        .get(format!(
            "{}/v1/visits/{}/verify",
            admin.url,
            visit("so-noi-vu")
        ))
        .bearer_auth(&auditor.client.credentials().token)
        .send()
        .await
        .expect("verify");
    let report: Value = r.json().await.expect("report");
    assert_eq!(report["ok"], true, "{report}");
    let (s, check) = admin.get("/v1/admin/devices/check").await;
    assert_eq!(s, 200);
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["devices_checked"], 4);

    // Exports.
    let r = reqwest::Client::new()
        .get(format!("{}/v1/admin/export/units?format=csv", admin.url))
        .bearer_auth(&admin.creds.token)
        .send()
        .await
        .expect("export");
    assert_eq!(r.status().as_u16(), 200);
    let csv = r.text().await.expect("csv");
    assert!(csv.contains("so-noi-vu,Sở Nội vụ,department"), "{csv}");
    let r = reqwest::Client::new()
        .get(format!("{}/v1/admin/export/users?format=xlsx", admin.url))
        .bearer_auth(&admin.creds.token)
        .send()
        .await
        .expect("export");
    assert!(r.bytes().await.expect("xlsx").starts_with(b"PK\x03\x04"));
    server.terminate();
    drop(dir);
}

#[tokio::test]
async fn bad_administration_input_is_refused_and_changes_nothing() {
    let (dir, server, admin) = start().await;
    let data = dir.path().join("server");
    let (areas, _, _) = cantho();
    admin.import_and_sign("areas", areas.into_bytes()).await;
    let before = admin.head().await;

    // A bad row, with its line.
    let csv = "unit_code,unit_name,unit_kind,area\n\
               so-noi-vu,Sở Nội vụ,department,can-tho\n\
               so-y-te,Sở Y tế,hospital,can-tho\n\
               so-tu-phap,Sở Tư pháp,department,ha-noi\n";
    let (s, v) = admin.import("units", csv.as_bytes().to_vec()).await;
    assert_eq!(s, 422, "{v}");
    let lines: Vec<u64> = v["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .map(|e| e["line"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(lines, [3, 4], "{v}");
    // A workbook that is not one.
    let (s, v) = admin.import("units", b"PK\x03\x04not a zip".to_vec()).await;
    assert_eq!(s, 422, "{v}");
    // An unknown team; a user in no team given a code; an edited entry;
    // an entry after an old head; a template that does not parse.
    let (s, v) = admin
        .act(vec![Act::TeamMembers {
            team_id: tid("doan-9"),
            leaders: vec![],
            members: vec![],
        }])
        .await;
    assert_eq!(s, 400, "{v}");
    // An unknown unit.
    let (s, v) = admin
        .act(vec![Act::RosterPublished {
            unit: kiemtra_core::UnitCode::parse("so-khong-co").expect("code"),
            valid_from: chrono::NaiveDate::from_ymd_opt(2015, 1, 1).expect("date"),
            staff: vec![],
        }])
        .await;
    assert_eq!(s, 400, "{v}");
    assert!(
        v["detail"].as_str().unwrap_or("").contains("so-khong-co"),
        "{v}"
    );
    let (s, v) = admin
        .act(vec![
            Act::UserCreated {
                user_id: uid("co-don"),
                full_name: "Cô Đơn".into(),
                role: Role::Inspector,
            },
            Act::CodeIssued {
                code_hash: sha256_hex(b"x"),
                user_id: uid("co-don"),
                team_id: tid("doan-1"),
                role: Role::Inspector,
                expires_at: "2099-01-01T00:00:00Z".into(),
            },
        ])
        .await;
    assert_eq!(s, 400, "{v}");
    let head = admin.head().await;
    let mut e = admin.sign(
        &head,
        Act::TeamCreated {
            team_id: tid("doan-2"),
            name: "Đoàn 2".into(),
        },
    );
    e.act = Act::TeamCreated {
        team_id: tid("doan-3"),
        name: "Đoàn 3".into(),
    };
    let (s, v) = admin.post(&[e]).await;
    assert_eq!(s, 403, "{v}");
    let mut stale = head.clone();
    stale.seq -= 1;
    let e = admin.sign(
        &stale,
        Act::TeamCreated {
            team_id: tid("doan-2"),
            name: "Đoàn 2".into(),
        },
    );
    let (s, v) = admin.post(&[e]).await;
    assert_eq!(s, 409, "{v}");
    let (s, v) = admin
        .act(vec![Act::TemplatePublished {
            template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
            version: 2,
            json: "{\"format\": 1,".into(),
        }])
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = admin.post(&[]).await;
    assert_eq!(s, 400, "{v}");
    let r = reqwest::Client::new()
        .post(format!("{}/v1/admin/log", admin.url))
        .bearer_auth(&admin.creds.token)
        .header("Content-Type", "application/json")
        .body("{\"entries\": [{\"seq\": \"one\"}]}")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status().as_u16(), 400);
    assert_eq!(admin.head().await, before, "nothing refused was stored");

    // A non-administrator on every admin route.
    let inspector = Device::enroll(
        &data,
        &admin.url,
        "kiem-tra-an",
        "doan-1",
        "inspector",
        &dir.path().join("phone"),
    )
    .await;
    let token = inspector.client.credentials().token.clone();
    let http = reqwest::Client::new();
    for (method, path) in [
        ("GET", "/v1/admin/log"),
        ("POST", "/v1/admin/log"),
        ("GET", "/v1/admin/directory"),
        ("GET", "/v1/admin/devices/check"),
        ("POST", "/v1/admin/imports/units?valid_from=01/01/2015"),
        ("GET", "/v1/admin/export/users"),
    ] {
        let url = format!("{}{path}", admin.url);
        let req = if method == "GET" {
            http.get(url)
        } else {
            http.post(url).json(&json!({"entries": []}))
        };
        let r = req.bearer_auth(&token).send().await.expect("request");
        assert_eq!(r.status().as_u16(), 403, "{method} {path}");
    }
    let r = http
        .get(format!("{}/v1/admin/log", admin.url))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status().as_u16(), 401);
    server.terminate();
}

#[tokio::test]
async fn tampering_with_devices_or_the_log_in_the_database_is_detected() {
    let (dir, server, admin) = start().await;
    let data = dir.path().join("server");
    let phone = Device::enroll(
        &data,
        &admin.url,
        "kiem-tra-an",
        "doan-1",
        "inspector",
        &dir.path().join("phone"),
    )
    .await;
    let other = Device::enroll(
        &data,
        &admin.url,
        "kiem-tra-binh",
        "doan-1",
        "inspector",
        &dir.path().join("phone-2"),
    )
    .await;
    // Both phones write to one visit of their team, then one is revoked.
    let (mut phone, mut other) = (phone, other);
    let visit = phone
        .store
        .create_visit(new_visit("v-1", "doan-1", 4), &template())
        .expect("create")
        .id;
    phone.sync().await;
    other.sync().await;
    for (p, i) in [(&mut phone, 0), (&mut other, 1)] {
        p.store
            .edit(&visit, |v| {
                v.record_attendance(&staff(i), kiemtra_core::AttendanceMark::Present, "", None)
            })
            .expect("edit");
        p.sync().await;
    }
    let auditor = Device::enroll(
        &data,
        &admin.url,
        "kiem-toan",
        "doan-1",
        "auditor",
        &dir.path().join("auditor"),
    )
    .await;
    let revoked = other.client.credentials().device_id.clone();
    // Times are kept to the second: a change received in the second of
    // its device's revocation counts as received after it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (s, v) = admin
        .act(vec![Act::DeviceRevoked {
            device_id: revoked.clone(),
        }])
        .await;
    assert_eq!(s, 200, "{v}");
    let (_, check) = admin.get("/v1/admin/devices/check").await;
    assert_eq!(check["ok"], true, "{check}");
    server.terminate();

    let id = phone.client.credentials().device_id.clone();
    let token = admin.creds.token.clone();
    let audit = (
        visit.to_string(),
        auditor.client.credentials().token.clone(),
    );
    // Each tampering is found by the device check and by the auditor's
    // verification of the visit those devices signed; the signatures still
    // verify, with the keys the log enrolled.
    let rules = |sql: &'static str| tampered(&data, &id, &revoked, &token, &audit, sql);
    let both = |rule: &str| (vec![rule.to_owned()], vec![rule.to_owned()]);
    assert_eq!(
        rules("UPDATE devices SET public_key = randomblob(32) WHERE device_id = '{id}';").await,
        both("key-differs")
    );
    assert_eq!(
        rules("UPDATE devices SET revoked_at = NULL WHERE device_id = '{revoked}';").await,
        both("revocation-missing")
    );
    assert_eq!(
        rules("UPDATE devices SET enrolled_at = '2015-01-01T00:00:00Z' WHERE device_id = '{id}';")
            .await,
        both("enrollment-time-differs")
    );
    // An entry edited (the phone's key in its enrollment), or removed.
    assert_eq!(
        rules("UPDATE admin_log SET entry = CAST(replace(CAST(entry AS TEXT), 'kiem-tra-an', 'kiem-tra-xx') AS BLOB) WHERE seq = 4;").await,
        both("log-broken")
    );
    assert_eq!(
        rules("DELETE FROM admin_log WHERE seq = 5;").await,
        both("log-broken")
    );
}

/// The rules the device check, and the auditor's verification of the
/// visit `audit` names, break after `sql` ran on a copy of the server's
/// database.
async fn tampered(
    data: &std::path::Path,
    id: &str,
    revoked: &str,
    token: &str,
    audit: &(String, String),
    sql: &str,
) -> (Vec<String>, Vec<String>) {
    let copy = tempfile::tempdir().expect("tempdir");
    let copied = copy.path().join("server");
    copy_dir(data, &copied);
    let c = rusqlite::Connection::open(copied.join("kiemtra.db")).expect("open");
    c.execute_batch(&sql.replace("{id}", id).replace("{revoked}", revoked))
        .expect("tamper");
    drop(c);
    let server = ServerProcess::start(&copied);
    let http = reqwest::Client::new();
    let get = |path: String, token: String| {
        let http = http.clone();
        let url = format!("{}{path}", server.url());
        async move {
            let r = http.get(url).bearer_auth(token).send().await.expect("get");
            r.json::<Value>().await.expect("json")
        }
    };
    let check = get("/v1/admin/devices/check".into(), token.into()).await;
    let verified = get(format!("/v1/visits/{}/verify", audit.0), audit.1.clone()).await;
    server.terminate();
    let rules = |v: &Value| {
        assert_eq!(v["ok"], false, "{sql}: {v}");
        let mut rules: Vec<String> = v["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .map(|p| p["rule"].as_str().unwrap_or("").to_owned())
            .collect();
        rules.sort();
        rules.dedup();
        rules
    };
    (rules(&check), rules(&verified))
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let target = to.join(e.file_name());
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).expect("copy");
        }
    }
}

pub(crate) fn day(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}

pub(crate) fn code(s: &str) -> kiemtra_core::UnitCode {
    kiemtra_core::UnitCode::parse(s).expect("unit code")
}

/// An assigned visit's id: the campaign, the unit and a random tail, as the
/// administrator's desk makes them.
pub(crate) fn random_visit(campaign: &str, unit: &str) -> kiemtra_core::VisitId {
    let tail = uuid::Uuid::new_v4().simple().to_string();
    kiemtra_core::VisitId::parse(&format!("{campaign}.{unit}.{}", &tail[..12])).expect("visit id")
}

async fn report(url: &str, token: &str, campaign: &str, query: &str) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new()
        .get(format!("{url}/v1/campaigns/{campaign}/report?{query}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("report");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

/// The supervisor's phone submits (where the inspector has not) and
/// approves every visit it holds not yet approved, each approval signed by its key.
pub(crate) async fn approve_all(sup: &mut Device) {
    sup.sync().await;
    let creds = sup.client.credentials().clone();
    for s in sup.store.list_visits().expect("list") {
        sup.store
            .edit(&s.id, |v| {
                match v.state()?.status.value().status {
                    kiemtra_core::VisitStatus::Approved => return Ok(()),
                    kiemtra_core::VisitStatus::Submitted => {}
                    _ => v.submit("")?,
                }
                v.approve_signed("Đồng ý", &|m| creds.sign_bytes(m).unwrap_or_default())
                    .map(|_| ())
            })
            .expect("approve");
    }
    sup.sync().await;
}

/// The Cần Thơ 2015 campaign planned in the log: areas, units and rosters
/// from the workbook, the standard checklist, a supervisor and an
/// inspector in one team, and one assignment per unit of the fixture.
pub(crate) async fn plan_cantho(admin: &Admin) -> kiemtra_core::CampaignFixture {
    let (areas, book, _) = cantho();
    admin.import_and_sign("areas", areas.into_bytes()).await;
    admin.import_and_sign("units", book.clone()).await;
    admin.import_and_sign("staff", book).await;
    let fixture = kiemtra_core::CampaignFixture::from_json(include_str!(
        "../../fixtures/campaigns/cantho-2015.json"
    ))
    .expect("fixture");
    let campaign = kiemtra_core::CampaignId::parse("ct-2015").expect("id");
    let team = tid("doan-1");
    let mut acts = vec![
        Act::TemplatePublished {
            template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
            version: 1,
            json: include_str!("../../fixtures/templates/standard-v1.json").into(),
        },
        Act::UserCreated {
            user_id: uid("truong-doan"),
            full_name: "Trần Văn Đoàn".into(),
            role: Role::Supervisor,
        },
        Act::UserCreated {
            user_id: uid("kiem-tra-an"),
            full_name: "Lê Thị Ân".into(),
            role: Role::Inspector,
        },
        Act::TeamCreated {
            team_id: team.clone(),
            name: "Đoàn kiểm tra số 1".into(),
        },
        Act::TeamMembers {
            team_id: team.clone(),
            leaders: vec![uid("truong-doan")],
            members: vec![uid("truong-doan"), uid("kiem-tra-an")],
        },
        Act::CampaignCreated {
            campaign_id: campaign.clone(),
            title: "Kiểm tra đột xuất việc chấp hành kỷ luật, kỷ cương hành chính năm 2015".into(),
            decision: "Kế hoạch kiểm tra của Sở Nội vụ thành phố Cần Thơ năm 2015".into(),
            starts_on: day("2015-01-01"),
            ends_on: day("2015-12-31"),
            province: code("can-tho"),
            template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
            template_version: 1,
            teams: vec![team.clone()],
        },
    ];
    for u in &fixture.units {
        acts.push(Act::Assigned {
            campaign_id: campaign.clone(),
            team_id: team.clone(),
            unit: u.code.clone(),
            planned_on: u.visit_date,
            visit_id: random_visit("ct-2015", u.code.as_str()),
        });
    }
    let (s, v) = admin.act(acts).await;
    assert_eq!(s, 200, "{v}");
    fixture
}

#[tokio::test]
async fn the_cantho_campaign_planned_in_the_log_reports_as_in_2015_beside_a_campaign_on_todays_units()
 {
    let (dir, server, admin) = start().await;
    let data = dir.path().join("server");
    let fixture = plan_cantho(&admin).await;
    let team = tid("doan-1");

    // The inspector's phone receives the 65 visits the server made and
    // records what the 2015 inspectors found; the supervisor approves.
    let mut phone = Device::enroll(
        &data,
        &admin.url,
        "kiem-tra-an",
        "doan-1",
        "inspector",
        &dir.path().join("phone"),
    )
    .await;
    phone.sync().await;
    let held = phone.store.list_visits().expect("list");
    assert_eq!(held.len(), 65);
    let by_unit: std::collections::HashMap<String, kiemtra_core::VisitId> = held
        .iter()
        .map(|s| (s.unit_code.clone(), s.id.clone()))
        .collect();
    for u in &fixture.units {
        let outcomes = u.outcomes().expect("outcomes");
        phone
            .store
            .edit(&by_unit[u.code.as_str()], |v| {
                for (s, m, note) in &outcomes {
                    v.record_attendance(s, *m, note, None)?;
                }
                v.submit("")
            })
            .expect("record");
    }
    phone.sync().await;
    let mut sup = Device::enroll(
        &data,
        &admin.url,
        "truong-doan",
        "doan-1",
        "supervisor",
        &dir.path().join("sup"),
    )
    .await;
    approve_all(&mut sup).await;
    let auditor = Device::enroll(
        &data,
        &admin.url,
        "kiem-toan",
        "so-noi-vu",
        "auditor",
        &dir.path().join("auditor"),
    )
    .await;
    let audit = auditor.client.credentials().token.clone();
    let (s, body) = report(&admin.url, &audit, "ct-2015", "format=json").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let json: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["tally"]["payroll"], 1404, "{json}");
    assert_eq!(json["tally"]["present"], 1071);
    assert_eq!(json["present_pct"], "76,28%");
    assert_eq!(json["absent_pct"], "23,72%");
    assert_eq!(json["units_inspected"], 65);
    assert_eq!(
        json["units_by_kind"],
        json!({
            "Sở, ban, ngành": 15,
            "Phòng ban chuyên môn cấp huyện": 18,
            "UBND xã, phường, thị trấn": 32
        })
    );
    assert_eq!(json["not_approved"], json!([]));
    let (_, md) = report(&admin.url, &audit, "ct-2015", "").await;
    let md = String::from_utf8(md).expect("utf-8");
    assert!(md.contains("**1.404**"), "{md}");
    assert!(md.contains("Có mặt: 1.071 (76,28%)"), "{md}");
    assert!(md.contains("(43,84% số vắng)"), "{md}");
    let (_, csv) = report(&admin.url, &audit, "ct-2015", "format=csv&lang=en").await;
    let csv = String::from_utf8(csv).expect("utf-8");
    assert!(csv.contains("staff,on payroll,1404,"), "{csv}");
    assert!(csv.contains("staff,present,1071,76.28%"), "{csv}");
    let (_, xlsx) = report(&admin.url, &audit, "ct-2015", "format=xlsx").await;
    assert!(xlsx.starts_with(b"PK\x03\x04"));
    // The PDF in the layout of administrative documents, read back as text
    // (pdftotext) and its first page drawn (pdftoppm) under target/.
    let (s, pdf) = report(
        &admin.url,
        &audit,
        "ct-2015",
        "format=pdf&number=125/BC-SNV&date=05/09/2015&signer=Nguy%E1%BB%85n%20Kh%E1%BA%A3i%20Ho%C3%A0n",
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&pdf));
    assert!(pdf.starts_with(b"%PDF-"));
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/report-pdf");
    std::fs::create_dir_all(&out).expect("mkdir");
    let file = out.join("ct-2015.pdf");
    std::fs::write(&file, &pdf).expect("write");
    let text = std::process::Command::new("pdftotext")
        .args(["-layout", file.to_str().expect("path"), "-"])
        .output()
        .expect("pdftotext (poppler-utils; scripts/setup-report-tools.sh)");
    let text = String::from_utf8_lossy(&text.stdout);
    for expected in [
        "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM",
        "Độc lập - Tự do - Hạnh phúc",
        "Cần Thơ, ngày 05 tháng 9 năm 2015",
        "UBND THÀNH PHỐ CẦN THƠ",
        "Số: 125/BC-SNV",
        "BÁO CÁO",
        "1.404",
        "76,28%",
        "Nguyễn Khải Hoàn",
        "Nơi nhận:",
        "truong-doan",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    let verification = json["verification"].as_str().expect("reference");
    assert!(text.contains(verification), "{text}");
    let png = std::process::Command::new("pdftoppm")
        .args(["-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&file)
        .arg(out.join("ct-2015-page-1"))
        .status()
        .expect("pdftoppm");
    assert!(png.success());
    // The supervisor reads the same report; the inspector and the
    // administrator may not; a bad format is refused.
    let (s, _) = report(
        &admin.url,
        &sup.client.credentials().token,
        "ct-2015",
        "format=json",
    )
    .await;
    assert_eq!(s, 200);
    for token in [&phone.client.credentials().token, &admin.creds.token] {
        let (s, _) = report(&admin.url, token, "ct-2015", "format=json").await;
        assert_eq!(s, 403);
    }
    let (s, _) = report(&admin.url, &audit, "ct-2015", "format=docx").await;
    assert_eq!(s, 400);
    let (s, _) = report(&admin.url, &audit, "ct-2099", "format=json").await;
    assert_eq!(s, 404);

    // Since 1 July 2025: no district level; wards merged. The districts end
    // on 30 June 2025, a new ward absorbs three old ones, and a campaign
    // planned in 2026 is made on today's units only.
    let (s, v) = admin
        .act(vec![
            Act::UnitsImported {
                units: vec![
                    kiemtra_admin::UnitRecord {
                        code: code("ninh-kieu.tan-an"),
                        name: "UBND phường Tân An".into(),
                        kind: kiemtra_core::UnitKind::CommuneCommittee,
                        area: code("quan-huyen-1"),
                        valid_from: day("2004-01-01"),
                        valid_to: None,
                    },
                    kiemtra_admin::UnitRecord {
                        code: code("ninh-kieu.thoi-binh"),
                        name: "UBND phường Thới Bình".into(),
                        kind: kiemtra_core::UnitKind::CommuneCommittee,
                        area: code("quan-huyen-1"),
                        valid_from: day("2004-01-01"),
                        valid_to: None,
                    },
                    kiemtra_admin::UnitRecord {
                        code: code("phuong-ninh-kieu"),
                        name: "UBND phường Ninh Kiều".into(),
                        kind: kiemtra_core::UnitKind::CommuneCommittee,
                        area: code("can-tho"),
                        valid_from: day("2025-07-01"),
                        valid_to: None,
                    },
                ],
            },
            Act::UnitsMerged {
                into: code("phuong-ninh-kieu"),
                absorbed: vec![
                    code("ninh-kieu.tan-an"),
                    code("ninh-kieu.thoi-binh"),
                    code("ninh-kieu.xuan-khanh"),
                ],
                on: day("2025-07-01"),
            },
            Act::RosterPublished {
                unit: code("phuong-ninh-kieu"),
                valid_from: day("2025-07-01"),
                staff: vec![
                    kiemtra_core::StaffMember::new(
                        kiemtra_core::StaffId::parse("pnk.s01").expect("id"),
                        "Nguyễn Thị Hạnh",
                        "Chủ tịch UBND phường",
                        kiemtra_core::StaffCategory::Leader,
                        true,
                    )
                    .expect("staff"),
                ],
            },
        ])
        .await;
    assert_eq!(s, 200, "{v}");
    // The district office's unit ends with its district.
    let (s, v) = admin
        .act(vec![Act::UnitsImported {
            units: vec![kiemtra_admin::UnitRecord {
                code: code("ninh-kieu.phong-noi-vu"),
                name: "Phòng Nội vụ Quận Ninh Kiều".into(),
                kind: kiemtra_core::UnitKind::DistrictOffice,
                area: code("quan-huyen-1"),
                valid_from: day("2004-01-01"),
                valid_to: Some(day("2025-06-30")),
            }],
        }])
        .await;
    assert_eq!(s, 200, "{v}");
    // A second version of the checklist, with one more check: the 2026
    // campaign pins it; the visits made in 2015 keep version 1.
    let v2 = include_str!("../../fixtures/templates/standard-v1.json")
        .replacen("\"version\": 1", "\"version\": 2", 1)
        .replacen(
            "\"checks\": [",
            "\"checks\": [\n    { \"id\": \"hotline-answered\", \"group\": \"citizens\", \"label\": { \"vi\": \"Gọi thử đường dây nóng được trả lời\", \"en\": \"A test call to the hotline is answered\" } },",
            1,
        );
    let (s, v) = admin
        .act(vec![Act::TemplatePublished {
            template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
            version: 2,
            json: v2,
        }])
        .await;
    assert_eq!(s, 200, "{v}");
    let now = kiemtra_core::CampaignId::parse("ct-2026").expect("id");
    let assign = |unit: &str| Act::Assigned {
        campaign_id: now.clone(),
        team_id: team.clone(),
        unit: code(unit),
        planned_on: day("2026-03-10"),
        visit_id: random_visit("ct-2026", unit),
    };
    let (s, v) = admin
        .act(vec![
            Act::CampaignCreated {
                campaign_id: now.clone(),
                title: "Kiểm tra công vụ năm 2026".into(),
                decision: "Kế hoạch kiểm tra công vụ năm 2026".into(),
                starts_on: day("2026-01-01"),
                ends_on: day("2026-12-31"),
                province: code("can-tho"),
                template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
                template_version: 2,
                teams: vec![team.clone()],
            },
            assign("so-noi-vu"),
            assign("phuong-ninh-kieu"),
        ])
        .await;
    assert_eq!(s, 200, "{v}");
    // Units that no longer exist cannot be planned today: a district
    // office, a ward absorbed in the merger.
    for gone in ["ninh-kieu.phong-noi-vu", "ninh-kieu.xuan-khanh"] {
        let (s, v) = admin.act(vec![assign(gone)]).await;
        assert_eq!(s, 400, "{gone}: {v}");
        assert!(
            v["detail"]
                .as_str()
                .unwrap_or("")
                .contains("does not exist"),
            "{v}"
        );
    }
    phone.sync().await;
    let today: Vec<_> = phone
        .store
        .list_visits()
        .expect("list")
        .into_iter()
        .filter(|s| s.campaign == "ct-2026")
        .collect();
    assert_eq!(today.len(), 2);
    let before = phone.state(&by_unit["so-noi-vu"]);
    assert_eq!(before.template.version, 1, "made before version 2");
    for s in &today {
        let state = phone.state(&s.id);
        assert_eq!(state.template.version, 2);
        assert!(
            state
                .template
                .check(&kiemtra_core::CheckId::parse("hotline-answered").expect("id"))
                .is_some()
        );
        let marks: Vec<_> = state.staff.keys().cloned().collect();
        phone
            .store
            .edit(&s.id, |v| {
                for id in &marks {
                    v.record_attendance(id, kiemtra_core::AttendanceMark::Present, "", None)?;
                }
                v.submit("")
            })
            .expect("record");
    }
    phone.sync().await;
    approve_all(&mut sup).await;
    let (s, body) = report(&admin.url, &audit, "ct-2026", "format=json").await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let json: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(
        json["units_by_kind"],
        json!({ "Sở, ban, ngành": 1, "UBND xã, phường, thị trấn": 1 }),
        "{json}"
    );
    assert_eq!(
        json["merged_units"],
        json!([[
            "UBND phường Ninh Kiều",
            [
                "UBND phường Tân An",
                "UBND phường Thới Bình",
                "UBND phường Xuân Khánh"
            ]
        ]]),
        "{json}"
    );
    let (_, md) = report(&admin.url, &audit, "ct-2026", "").await;
    let md = String::from_utf8(md).expect("utf-8");
    assert!(
        md.contains("UBND phường Ninh Kiều: hợp nhất từ UBND phường Tân An, UBND phường Thới Bình, UBND phường Xuân Khánh"),
        "{md}"
    );
    // The 2015 report is unchanged by the merger: still its own 65 units
    // in three tiers, none listed as merged.
    let (_, body) = report(&admin.url, &audit, "ct-2015", "format=json").await;
    let json: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["units_inspected"], 65);
    assert_eq!(json["tally"]["payroll"], 1404);
    assert_eq!(json["merged_units"], json!([]));
    server.terminate();
}

/// A staff member of a roster published in a test.
pub(crate) fn member(id: &str, name: &str, position: &str) -> kiemtra_core::StaffMember {
    kiemtra_core::StaffMember::new(
        kiemtra_core::StaffId::parse(id).expect("staff id"),
        name,
        position,
        kiemtra_core::StaffCategory::CivilServant,
        true,
    )
    .expect("staff")
}

#[tokio::test]
async fn an_administrative_reform_inspection_draws_two_of_phong_diens_communes_and_reports_on_its_checklist()
 {
    let (dir, server, admin) = start().await;
    let data = dir.path().join("server");
    // Phong Điền district as it was in 2014: a township and six communes.
    let communes = [
        ("phong-dien.thi-tran", "UBND thị trấn Phong Điền"),
        ("phong-dien.nhon-ai", "UBND xã Nhơn Ái"),
        ("phong-dien.nhon-nghia", "UBND xã Nhơn Nghĩa"),
        ("phong-dien.giai-xuan", "UBND xã Giai Xuân"),
        ("phong-dien.my-khanh", "UBND xã Mỹ Khánh"),
        ("phong-dien.tan-thoi", "UBND xã Tân Thới"),
        ("phong-dien.truong-long", "UBND xã Trường Long"),
    ];
    let area = |c: &str, name: &str, tier, parent: Option<&str>| kiemtra_admin::Area {
        code: code(c),
        name: name.into(),
        tier,
        parent: parent.map(code),
        valid_from: day("2004-01-01"),
        valid_to: None,
    };
    let mut acts = vec![
        Act::AreasImported {
            areas: vec![
                area(
                    "can-tho",
                    "Thành phố Cần Thơ",
                    kiemtra_admin::Tier::Province,
                    None,
                ),
                area(
                    "phong-dien",
                    "Huyện Phong Điền",
                    kiemtra_admin::Tier::District,
                    Some("can-tho"),
                ),
            ],
        },
        Act::UnitsImported {
            units: communes
                .iter()
                .map(|(c, name)| kiemtra_admin::UnitRecord {
                    code: code(c),
                    name: (*name).into(),
                    kind: kiemtra_core::UnitKind::CommuneCommittee,
                    area: code("phong-dien"),
                    valid_from: day("2004-01-01"),
                    valid_to: None,
                })
                .collect(),
        },
    ];
    for (i, (c, _)) in communes.iter().enumerate() {
        acts.push(Act::RosterPublished {
            unit: code(c),
            valid_from: day("2014-01-01"),
            staff: vec![
                member(&format!("{c}.s1"), "Nguyễn Văn Hùng", "Chủ tịch UBND"),
                member(
                    &format!("{c}.s2"),
                    &format!("Trần Thị Mai {}", i + 1),
                    "Công chức Văn phòng – Thống kê",
                ),
            ],
        });
    }
    let team = tid("doan-cchc");
    acts.extend([
        Act::TemplatePublished {
            template_id: kiemtra_core::TemplateId::parse("cchc").expect("id"),
            version: 2,
            json: include_str!("../../fixtures/templates/cchc-v2.json").into(),
        },
        Act::UserCreated {
            user_id: uid("pho-giam-doc"),
            full_name: "Nguyễn Khải Hoàn".into(),
            role: Role::Supervisor,
        },
        Act::UserCreated {
            user_id: uid("nhom-1"),
            full_name: "Lê Văn Nhất".into(),
            role: Role::Inspector,
        },
        Act::UserCreated {
            user_id: uid("nhom-2"),
            full_name: "Phạm Thị Nhì".into(),
            role: Role::Inspector,
        },
        Act::TeamCreated {
            team_id: team.clone(),
            name: "Đoàn kiểm tra cải cách hành chính thành phố Cần Thơ".into(),
        },
        Act::TeamMembers {
            team_id: team.clone(),
            leaders: vec![uid("pho-giam-doc")],
            members: vec![uid("pho-giam-doc"), uid("nhom-1"), uid("nhom-2")],
        },
        Act::CampaignCreated {
            campaign_id: kiemtra_core::CampaignId::parse("cchc-2014").expect("id"),
            title: "Kiểm tra công tác cải cách hành chính năm 2014 tại huyện Phong Điền".into(),
            decision: "Kế hoạch kiểm tra công tác cải cách hành chính năm 2014".into(),
            starts_on: day("2014-09-01"),
            ends_on: day("2014-12-31"),
            province: code("can-tho"),
            template_id: kiemtra_core::TemplateId::parse("cchc").expect("id"),
            template_version: 2,
            teams: vec![team.clone()],
        },
    ]);
    let (s, v) = admin.act(acts).await;
    assert_eq!(s, 200, "{v}");

    // The draw: committed with the candidates before anyone knows the
    // seed, revealed after. The article's draw chose Trường Long and Tân
    // Thới; the test takes the first of its seeds that does the same, so
    // that the campaign is the article's.
    let campaign = kiemtra_core::CampaignId::parse("cchc-2014").expect("id");
    let mut candidates: Vec<_> = communes.iter().map(|(c, _)| code(c)).collect();
    candidates.sort();
    let wanted = [code("phong-dien.tan-thoi"), code("phong-dien.truong-long")];
    let seed = (0u32..)
        .map(|i| ring::digest::digest(&ring::digest::SHA256, &i.to_be_bytes()))
        .map(|d| d.as_ref().to_vec())
        .find(|seed| {
            let mut s = kiemtra_admin::draw::select(seed, &candidates, 2);
            s.sort();
            s == wanted
        })
        .expect("a seed");
    let (s, v) = admin
        .act(vec![Act::DrawCommitted {
            campaign_id: campaign.clone(),
            commitment: kiemtra_admin::draw::commitment_of(&seed),
            candidates: candidates.clone(),
            count: 2,
        }])
        .await;
    assert_eq!(s, 200, "{v}");
    // A reveal whose selection is not the seed's is refused.
    let selection = kiemtra_admin::draw::select(&seed, &candidates, 2);
    let (s, v) = admin
        .act(vec![Act::DrawRevealed {
            campaign_id: campaign.clone(),
            seed: kiemtra_core::hex::encode(&seed),
            selection: vec![code("phong-dien.nhon-ai"), code("phong-dien.my-khanh")],
        }])
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, v) = admin
        .act(vec![
            Act::DrawRevealed {
                campaign_id: campaign.clone(),
                seed: kiemtra_core::hex::encode(&seed),
                selection: selection.clone(),
            },
            Act::Assigned {
                campaign_id: campaign.clone(),
                team_id: team.clone(),
                unit: code("phong-dien.truong-long"),
                planned_on: day("2014-09-16"),
                visit_id: random_visit("cchc-2014", "truong-long"),
            },
            Act::Assigned {
                campaign_id: campaign.clone(),
                team_id: team.clone(),
                unit: code("phong-dien.tan-thoi"),
                planned_on: day("2014-09-16"),
                visit_id: random_visit("cchc-2014", "tan-thoi"),
            },
        ])
        .await;
    assert_eq!(s, 200, "{v}");

    // The team split into two groups, one per commune; each group's phone
    // records its commune against the reform checklist.
    let mut groups = Vec::new();
    for user in ["nhom-1", "nhom-2"] {
        let mut p = Device::enroll(
            &data,
            &admin.url,
            user,
            "doan-cchc",
            "inspector",
            &dir.path().join(user),
        )
        .await;
        p.sync().await;
        groups.push(p);
    }
    let template =
        kiemtra_core::Template::from_json(include_str!("../../fixtures/templates/cchc-v2.json"))
            .expect("template");
    let check = |s: &str| kiemtra_core::CheckId::parse(s).expect("check");
    let failed = [
        ("phong-dien.truong-long", "dossier-book"),
        ("phong-dien.truong-long", "deputy-when-head-away"),
        ("phong-dien.tan-thoi", "dossier-book"),
        ("phong-dien.tan-thoi", "code-of-conduct"),
    ];
    for (p, unit) in groups
        .iter_mut()
        .zip(["phong-dien.truong-long", "phong-dien.tan-thoi"])
    {
        let held = p.store.list_visits().expect("list");
        assert!(held.len() >= 2, "both visits reach the team's phones");
        let id = held
            .iter()
            .find(|s| s.unit_code == unit)
            .expect("the group's commune")
            .id
            .clone();
        let state = p.state(&id);
        assert_eq!(state.template.id.as_str(), "cchc", "pinned by the campaign");
        p.store
            .edit(&id, |v| {
                for c in &template.checks {
                    let result = if failed.contains(&(unit, c.id.as_str())) {
                        kiemtra_core::CheckResult::Fail
                    } else {
                        kiemtra_core::CheckResult::Pass
                    };
                    // The checks beyond pass or fail: the rating device's
                    // count and rate, the one-stop desk's kind, the
                    // e-office software named.
                    let value = match c.id.as_str() {
                        "satisfaction-rate" => Some(kiemtra_core::CheckValue::Number(
                            if unit.ends_with("truong-long") {
                                96
                            } else {
                                88
                            },
                        )),
                        "ratings-collected" => Some(kiemtra_core::CheckValue::Number(1250)),
                        "one-stop-mode" => Some(kiemtra_core::CheckValue::Choice(
                            kiemtra_core::ChoiceId::parse("standard").expect("option"),
                        )),
                        "e-office-software" => {
                            Some(kiemtra_core::CheckValue::Text("VNPT-iOffice".into()))
                        }
                        _ => None,
                    };
                    match value {
                        Some(value) => v.record_check_value(&c.id, result, value, "")?,
                        None => v.record_check(&c.id, result, "")?,
                    }
                }
                // A value of the wrong kind, or out of range, is refused.
                assert!(
                    v.record_check_value(
                        &check("satisfaction-rate"),
                        kiemtra_core::CheckResult::Pass,
                        kiemtra_core::CheckValue::Number(140),
                        ""
                    )
                    .is_err()
                );
                for s in state.staff.keys() {
                    v.record_attendance(s, kiemtra_core::AttendanceMark::Present, "", None)?;
                }
                v.add_finding(kiemtra_core::NewFinding {
                    category: "cchc".into(),
                    severity: kiemtra_core::Severity::Moderate,
                    text:
                        "Hồ sơ lưu trữ chưa khoa học; sổ theo dõi giải quyết hồ sơ thiếu thông tin"
                            .into(),
                    recommendation: "Sắp xếp lại hồ sơ, ghi đầy đủ sổ theo dõi".into(),
                    related_staff: vec![],
                })?;
                v.submit("")
            })
            .expect("record");
        p.sync().await;
    }
    // On the way back the first group stops at the district's one-stop
    // section, which no assignment named: an unplanned visit of its own
    // team, flagged as such in the report.
    let mut found = new_visit("cchc-2014.phong-dien.bp-mot-cua", "doan-cchc", 2);
    found.unit = kiemtra_core::Unit::new(
        code("phong-dien.bp-mot-cua"),
        "Bộ phận tiếp nhận và trả kết quả huyện Phong Điền",
        kiemtra_core::UnitKind::OneStopCentre,
        "Huyện Phong Điền",
    )
    .expect("unit");
    found.campaign = campaign.clone();
    found.scheduled_on = day("2014-09-16");
    let found = groups[0]
        .store
        .create_visit(found, &template)
        .expect("unplanned visit")
        .id;
    groups[0]
        .store
        .edit(&found, |v| {
            v.record_check(
                &check("one-stop-staffed"),
                kiemtra_core::CheckResult::Pass,
                "",
            )?;
            v.submit("")
        })
        .expect("record");
    groups[0].sync().await;
    let mut sup = Device::enroll(
        &data,
        &admin.url,
        "pho-giam-doc",
        "doan-cchc",
        "supervisor",
        &dir.path().join("sup"),
    )
    .await;
    approve_all(&mut sup).await;

    // The supervisor's report: both communes, the checks each failed, the
    // findings, and the draw, which anyone can recompute from its seed.
    let (s, body) = report(
        &admin.url,
        &sup.client.credentials().token,
        "cchc-2014",
        "format=json",
    )
    .await;
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&body));
    let json: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(json["units_inspected"], 3, "{json}");
    assert_eq!(
        json["units_by_kind"],
        json!({ "UBND xã, phường, thị trấn": 2, "Trung tâm Giải quyết TTHC": 1 })
    );
    assert_eq!(
        json["unplanned"],
        json!(["Bộ phận tiếp nhận và trả kết quả huyện Phong Điền"])
    );
    let label = |id: &str| template.check(&check(id)).expect("check").label.vi.clone();
    let mut expected = vec![
        json!([label("dossier-book"), 2]),
        json!([label("deputy-when-head-away"), 1]),
        json!([label("code-of-conduct"), 1]),
    ];
    expected.sort_by_key(|v| v[0].as_str().unwrap_or("").to_owned());
    assert_eq!(json["checks_failed"], Value::Array(expected), "{json}");
    assert_eq!(json["findings"].as_array().map(Vec::len), Some(2));
    let values = json["check_values"].as_array().expect("values");
    assert_eq!(values.len(), 8, "{json}");
    let rate = label("satisfaction-rate");
    assert!(
        values.contains(&json!(["UBND xã Trường Long", rate, "96%"])),
        "{json}"
    );
    assert!(
        values.contains(&json!([
            "UBND xã Tân Thới",
            label("ratings-collected"),
            "1.250 lượt"
        ])),
        "{json}"
    );
    let draw = &json["draws"][0];
    assert_eq!(draw["rechecked"], true, "{json}");
    assert_eq!(draw["count"], 2);
    assert_eq!(draw["candidates"].as_array().map(Vec::len), Some(7));
    let seed = kiemtra_core::hex::decode(draw["seed"].as_str().expect("seed")).expect("hex");
    let again: Vec<String> = kiemtra_admin::draw::select(&seed, &candidates, 2)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(draw["selection"], json!(again));
    assert_eq!(
        draw["commitment"],
        kiemtra_admin::draw::commitment_of(&seed),
        "the seed is the one committed"
    );
    let (_, md) = report(&admin.url, &sup.client.credentials().token, "cchc-2014", "").await;
    let md = String::from_utf8(md).expect("utf-8");
    assert!(md.contains("Bốc thăm ngẫu nhiên"), "{md}");
    assert!(md.contains("đã kiểm tra lại: khớp"), "{md}");
    assert!(md.contains("Hồ sơ lưu trữ chưa khoa học"), "{md}");

    // A phone's own visit carrying a checklist that claims to be the
    // published version but widens a range: the auditor's verification
    // names it; the honest visits verify.
    let forged_json = include_str!("../../fixtures/templates/cchc-v2.json").replacen(
        "\"max\": 100",
        "\"max\": 100000",
        1,
    );
    assert_ne!(
        forged_json,
        include_str!("../../fixtures/templates/cchc-v2.json")
    );
    let forged = kiemtra_core::Template::from_json(&forged_json).expect("forged template");
    let mut other = new_visit("cchc-2014.phong-dien.nhon-nghia", "doan-cchc", 1);
    other.campaign = campaign.clone();
    other.scheduled_on = day("2014-09-17");
    let other = groups[1]
        .store
        .create_visit(other, &forged)
        .expect("visit")
        .id;
    groups[1]
        .store
        .edit(&other, |v| {
            v.record_check_value(
                &check("satisfaction-rate"),
                kiemtra_core::CheckResult::Pass,
                kiemtra_core::CheckValue::Number(5000),
                "",
            )
        })
        .expect("a value the forged range allows");
    groups[1].sync().await;
    let auditor = Device::enroll(
        &data,
        &admin.url,
        "kiem-toan",
        "so-noi-vu",
        "auditor",
        &dir.path().join("auditor"),
    )
    .await;
    let verify = |id: kiemtra_core::VisitId| {
        let token = auditor.client.credentials().token.clone();
        let url = format!("{}/v1/visits/{id}/verify", admin.url);
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("verify");
            r.json::<Value>().await.expect("json")
        }
    };
    let v = verify(other).await;
    let rules: Vec<&str> = v["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .filter_map(|p| p["rule"].as_str())
        .collect();
    assert_eq!(rules, ["template-differs"], "{v}");
    let v = verify(found).await;
    assert_eq!(v["ok"], true, "{v}");
    server.terminate();
}
