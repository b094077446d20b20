//! The administration log end to end with real keys: the first
//! administrator enrolls with a code issued on the server machine, then
//! signs every act; forged, stale, edited and badly ordered entries are
//! refused and change nothing; imports report every bad row with its line.

use kiemtra_admin::import::{self, Kind};
use kiemtra_admin::log::sha256_hex;
use kiemtra_admin::{Act, Author, Cell, Directory, Entry, ExportFormat, Refusal, Table};
use kiemtra_core::{Role, TeamId, UnitCode, UserId, hex};
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key")
}

struct World {
    d: Directory,
    admin: Ed25519KeyPair,
    at: u32,
}

impl World {
    fn time(&mut self) -> String {
        self.at += 1;
        format!("2026-12-01T08:{:02}:{:02}Z", self.at / 60, self.at % 60)
    }
    fn server(&mut self, act: Act) -> Result<Entry, Refusal> {
        let at = self.time();
        let e = Entry::next(&self.d.head, &at, Author::Server, act);
        self.d.apply(&e).map(|()| e)
    }
    fn signed(&mut self, act: Act) -> Entry {
        let at = self.time();
        let mut e = Entry::next(
            &self.d.head,
            &at,
            Author::Device {
                device_id: "admin-desk".into(),
            },
            act,
        );
        e.signature = hex::encode(self.admin.sign(&e.signing_bytes()).as_ref());
        e
    }
    fn act(&mut self, act: Act) -> Result<Entry, Refusal> {
        let e = self.signed(act);
        self.d.apply(&e).map(|()| e)
    }
    fn new() -> Self {
        let admin = key();
        let mut w = World {
            d: Directory::default(),
            admin,
            at: 0,
        };
        let code = sha256_hex(b"root code");
        w.server(Act::CodeIssued {
            code_hash: code.clone(),
            user_id: UserId::parse("quan-tri").expect("id"),
            team_id: TeamId::parse("so-noi-vu").expect("id"),
            role: Role::Administrator,
            expires_at: "2026-12-02T00:00:00Z".into(),
        })
        .expect("root code");
        let public = hex::encode(w.admin.public_key().as_ref());
        w.server(Act::DeviceEnrolled {
            device_id: "admin-desk".into(),
            user_id: UserId::parse("quan-tri").expect("id"),
            team_id: TeamId::parse("so-noi-vu").expect("id"),
            role: Role::Administrator,
            public_key: public,
            device_name: "Bàn quản trị".into(),
            code_hash: code,
        })
        .expect("root enrollment");
        w
    }
}

fn user(id: &str, name: &str, role: Role) -> Act {
    Act::UserCreated {
        user_id: UserId::parse(id).expect("id"),
        full_name: name.into(),
        role,
    }
}

#[test]
#[allow(clippy::vec_init_then_push)]
fn an_administrator_builds_a_team_and_every_entry_replays() {
    let mut w = World::new();
    let mut log = vec![];
    log.push(
        w.act(user("truong-doan", "Trần Văn Đoàn", Role::Supervisor))
            .expect("user"),
    );
    log.push(
        w.act(user("kiem-tra-1", "Lê Thị Hương", Role::Inspector))
            .expect("user"),
    );
    log.push(
        w.act(Act::TeamCreated {
            team_id: TeamId::parse("doan-1").expect("id"),
            name: "Đoàn kiểm tra số 1".into(),
        })
        .expect("team"),
    );
    log.push(
        w.act(Act::TeamMembers {
            team_id: TeamId::parse("doan-1").expect("id"),
            leaders: vec![UserId::parse("truong-doan").expect("id")],
            members: vec![
                UserId::parse("truong-doan").expect("id"),
                UserId::parse("kiem-tra-1").expect("id"),
            ],
        })
        .expect("members"),
    );
    assert_eq!(w.d.teams.len(), 1);
    assert_eq!(w.d.head.seq, 6);
    // The same entries, read back from their bytes, build the same directory.
    let bytes: Vec<Vec<u8>> = log.iter().map(|e| e.to_bytes()).collect();
    for (b, e) in bytes.iter().zip(&log) {
        assert_eq!(&Entry::from_bytes(b).expect("canonical"), e);
    }
}

#[test]
fn refused_acts_change_nothing() {
    let mut w = World::new();
    w.act(user("truong-doan", "Trần Văn Đoàn", Role::Supervisor))
        .expect("user");
    let before = w.d.head.clone();
    // A user in no team cannot be given a supervisor's code.
    let r = w.act(Act::CodeIssued {
        code_hash: sha256_hex(b"c2"),
        user_id: UserId::parse("truong-doan").expect("id"),
        team_id: TeamId::parse("doan-1").expect("id"),
        role: Role::Supervisor,
        expires_at: "2026-12-02T00:00:00Z".into(),
    });
    assert!(matches!(r, Err(Refusal::Unknown(_))), "{r:?}");
    // An unknown team's members.
    let r = w.act(Act::TeamMembers {
        team_id: TeamId::parse("doan-9").expect("id"),
        leaders: vec![],
        members: vec![],
    });
    assert!(matches!(r, Err(Refusal::Unknown(_))), "{r:?}");
    // A template that does not parse.
    let r = w.act(Act::TemplatePublished {
        template_id: kiemtra_core::TemplateId::parse("x").expect("id"),
        version: 1,
        json: "{not json".into(),
    });
    assert!(matches!(r, Err(Refusal::Invalid(_))), "{r:?}");
    // A name not in NFC (decomposed "Đoàn" written as D + combining marks is
    // not the issue here: "ệ" as e + U+0323 + U+0302).
    let r = w.act(user("u3", "Nguye\u{0323}\u{0302}n", Role::Inspector));
    assert!(matches!(r, Err(Refusal::Invalid(_))), "{r:?}");
    assert_eq!(w.d.head, before);
}

#[test]
fn forged_stale_and_edited_entries_are_refused() {
    let mut w = World::new();
    // Signed by another key under the administrator's device id.
    let mut e = w.signed(user("a", "An", Role::Inspector));
    e.signature = hex::encode(key().sign(&e.signing_bytes()).as_ref());
    assert!(matches!(w.d.apply(&e), Err(Refusal::Forbidden(_))));
    // Edited after signing.
    let mut e = w.signed(user("a", "An", Role::Inspector));
    e.act = user("a", "Bình", Role::Administrator);
    assert!(matches!(w.d.apply(&e), Err(Refusal::Forbidden(_))));
    // Written by the server, which may not create users.
    let r = w.server(user("a", "An", Role::Inspector));
    assert!(matches!(r, Err(Refusal::Forbidden(_))), "{r:?}");
    // Following an old head.
    let e1 = w.signed(user("a", "An", Role::Inspector));
    let e2 = w.signed(user("b", "Bình", Role::Inspector));
    w.d.apply(&e1).expect("first");
    assert!(matches!(w.d.apply(&e2), Err(Refusal::Stale { .. })));
    // Bytes that are not canonical.
    let mut b = e1.to_bytes();
    b.insert(1, b' ');
    assert!(Entry::from_bytes(&b).is_err());
}

#[test]
fn a_revoked_administrator_signs_nothing_more() {
    let mut w = World::new();
    w.act(Act::DeviceRevoked {
        device_id: "admin-desk".into(),
    })
    .expect("revoke");
    let r = w.act(user("a", "An", Role::Inspector));
    assert!(matches!(r, Err(Refusal::Forbidden(_))), "{r:?}");
}

fn hierarchy(w: &mut World) {
    let csv = "area_code,area_name,tier,parent,valid_from,valid_to\n\
               can-tho,Thành phố Cần Thơ,province,,01/01/2004,\n\
               phong-dien,Huyện Phong Điền,district,can-tho,01/01/2004,30/06/2025\n\
               nhon-ai,Xã Nhơn Ái,commune,phong-dien,01/01/2004,30/06/2025\n";
    let sheets = import::read(csv.as_bytes(), Kind::Areas).expect("read");
    let acts = import::prepare(&w.d, Kind::Areas, &sheets, "2015-01-01".parse().expect("d"))
        .expect("areas");
    for a in acts {
        w.act(a).expect("areas act");
    }
}

#[test]
fn every_bad_row_is_refused_with_its_sheet_and_line() {
    let mut w = World::new();
    hierarchy(&mut w);
    let csv = "unit_code,unit_name,unit_kind,area\n\
               so-noi-vu,Sở Nội vụ,department,can-tho\n\
               xa-1,UBND xã Nhơn Ái,commune,nhon-ai\n\
               ,Không mã,department,can-tho\n\
               xa-2,UBND xã Mỹ Khánh,commune_committee,ha-noi\n";
    let sheets = import::read(csv.as_bytes(), Kind::Units).expect("read");
    let errors = import::prepare(&w.d, Kind::Units, &sheets, "2015-01-01".parse().expect("d"))
        .expect_err("bad rows");
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 4, 5], "{errors:?}");
    assert!(errors[2].reason.contains("ha-noi"), "{errors:?}");
    assert_eq!(w.d.units.len(), 0);
}

#[test]
fn an_xlsx_written_by_the_export_imports_the_same_rows() {
    let mut w = World::new();
    hierarchy(&mut w);
    let mut units = Table::new("units", &["unit_code", "unit_name", "unit_kind", "area"]);
    units.push(vec![
        Cell::from("so-noi-vu"),
        "Sở Nội vụ".into(),
        "department".into(),
        "can-tho".into(),
    ]);
    units.push(vec![
        Cell::from("ubnd-nhon-ai"),
        "UBND xã Nhơn Ái".into(),
        "commune_committee".into(),
        "nhon-ai".into(),
    ]);
    let mut staff = Table::new(
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
    for (i, name) in ["Ngô Thị Nga", "Trần Thanh Mai"].iter().enumerate() {
        staff.push(vec![
            Cell::from("so-noi-vu"),
            format!("so-noi-vu.s{:02}", i + 1).into(),
            (*name).into(),
            "Chuyên viên".into(),
            "civil_servant".into(),
            "có".into(),
        ]);
    }
    staff.push(vec![
        Cell::from("so-noi-vu"),
        "so-noi-vu.s03".into(),
        "Lê Văn Bảy".into(),
        "".into(),
        "gardener".into(),
        "có".into(),
    ]);
    let book = kiemtra_admin::export::write_workbook(&[units, staff.clone()]).expect("xlsx");
    let day = "2015-08-01".parse().expect("d");
    let sheets = import::read(&book, Kind::Units).expect("units sheet");
    for a in import::prepare(&w.d, Kind::Units, &sheets, day).expect("units") {
        w.act(a).expect("units act");
    }
    assert_eq!(w.d.units.len(), 2);
    // The bad category on the staff sheet's fourth line refuses all of it.
    let sheets = import::read(&book, Kind::Staff).expect("staff sheet");
    let errors = import::prepare(&w.d, Kind::Staff, &sheets, day).expect_err("bad row");
    assert_eq!(
        (errors[0].sheet.as_str(), errors[0].line),
        ("staff", 4),
        "{errors:?}"
    );
    staff.rows.pop();
    let book = kiemtra_admin::export::write_workbook(&[staff]).expect("xlsx");
    let sheets = import::read(&book, Kind::Staff).expect("staff sheet");
    for a in import::prepare(&w.d, Kind::Staff, &sheets, day).expect("staff") {
        w.act(a).expect("roster act");
    }
    let unit = &w.d.units[&UnitCode::parse("so-noi-vu").expect("c")];
    let roster = unit.roster_on(day).expect("roster");
    assert_eq!(roster.staff.len(), 2);
    assert_eq!(roster.staff[0].name, "Ngô Thị Nga");
    assert!(unit.roster_on("2015-07-31".parse().expect("d")).is_none());
    // CSV and JSON of the same table.
    let t = Table::new("x", &["a"]);
    assert!(
        t.write(ExportFormat::Csv)
            .expect("csv")
            .starts_with(b"\xEF\xBB\xBFa")
    );
    assert_eq!(t.write(ExportFormat::Json).expect("json"), b"[]");
}

#[test]
fn a_workbook_that_unpacks_too_far_is_refused_before_it_is_read() {
    // Not a zip at all, but starting like one.
    let errors = import::read(b"PK\x03\x04garbage", Kind::Units).expect_err("refused");
    assert_eq!(errors[0].line, 0);
}

fn day(s: &str) -> chrono::NaiveDate {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("date")
}
fn code(s: &str) -> UnitCode {
    UnitCode::parse(s).expect("code")
}

/// The three tiers of 2015 beside the two of today: a 2015 campaign plans
/// on the district-era units, a unit merged on 01/07/2025 keeps the units
/// it absorbed and is the one a 2026 campaign plans on; a merged-away unit
/// cannot be planned after the merge.
#[test]
fn a_merged_unit_keeps_what_it_absorbed_and_each_campaign_plans_on_its_own_units() {
    let mut w = World::new();
    hierarchy(&mut w);
    w.act(Act::AreasImported {
        areas: vec![kiemtra_admin::Area {
            code: code("phong-dien-xa"),
            name: "Xã Phong Điền".into(),
            tier: kiemtra_admin::Tier::Commune,
            parent: Some(code("can-tho")),
            valid_from: day("2025-07-01"),
            valid_to: None,
        }],
    })
    .expect("two-tier commune");
    let unit = |c: &str, name: &str, area: &str, from: &str| kiemtra_admin::UnitRecord {
        code: code(c),
        name: name.into(),
        kind: kiemtra_core::UnitKind::CommuneCommittee,
        area: code(area),
        valid_from: day(from),
        valid_to: None,
    };
    w.act(Act::UnitsImported {
        units: vec![
            unit("ubnd-nhon-ai", "UBND xã Nhơn Ái", "nhon-ai", "2004-01-01"),
            unit(
                "ubnd-tt-phong-dien",
                "UBND thị trấn Phong Điền",
                "phong-dien",
                "2004-01-01",
            ),
            unit(
                "ubnd-xa-phong-dien",
                "UBND xã Phong Điền",
                "phong-dien-xa",
                "2025-07-01",
            ),
        ],
    })
    .expect("units");
    for u in ["ubnd-nhon-ai", "ubnd-tt-phong-dien"] {
        w.act(Act::RosterPublished {
            unit: code(u),
            valid_from: day("2015-01-01"),
            staff: vec![],
        })
        .expect("roster");
    }
    w.act(Act::RosterPublished {
        unit: code("ubnd-xa-phong-dien"),
        valid_from: day("2025-07-01"),
        staff: vec![],
    })
    .expect("roster");
    w.act(Act::UnitsMerged {
        into: code("ubnd-xa-phong-dien"),
        absorbed: vec![code("ubnd-nhon-ai"), code("ubnd-tt-phong-dien")],
        on: day("2025-07-01"),
    })
    .expect("merge");
    let merged = &w.d.units[&code("ubnd-xa-phong-dien")];
    let absorbed: Vec<&str> = merged.absorbed.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(absorbed, ["ubnd-nhon-ai", "ubnd-tt-phong-dien"]);
    assert_eq!(
        w.d.units[&code("ubnd-nhon-ai")].record.valid_to,
        Some(day("2025-06-30"))
    );

    let standard = include_str!("../../../fixtures/templates/standard-v1.json");
    w.act(Act::TemplatePublished {
        template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
        version: 1,
        json: standard.into(),
    })
    .expect("template");
    w.act(user("an", "Lê Thị Ân", Role::Inspector))
        .expect("user");
    w.act(Act::TeamCreated {
        team_id: TeamId::parse("doan-1").expect("id"),
        name: "Đoàn 1".into(),
    })
    .expect("team");
    w.act(Act::TeamMembers {
        team_id: TeamId::parse("doan-1").expect("id"),
        leaders: vec![],
        members: vec![UserId::parse("an").expect("id")],
    })
    .expect("members");
    let campaign = |id: &str, from: &str, to: &str| Act::CampaignCreated {
        campaign_id: kiemtra_core::CampaignId::parse(id).expect("id"),
        title: format!("Kiểm tra {id}"),
        decision: String::new(),
        starts_on: day(from),
        ends_on: day(to),
        province: code("can-tho"),
        template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
        template_version: 1,
        teams: vec![TeamId::parse("doan-1").expect("id")],
    };
    w.act(campaign("ct-2015", "2015-08-01", "2015-12-31"))
        .expect("2015");
    w.act(campaign("ct-2026", "2026-01-01", "2026-12-31"))
        .expect("2026");
    let assign = |c: &str, u: &str, on: &str, n: u32| Act::Assigned {
        campaign_id: kiemtra_core::CampaignId::parse(c).expect("id"),
        team_id: TeamId::parse("doan-1").expect("id"),
        unit: code(u),
        planned_on: day(on),
        visit_id: kiemtra_core::VisitId::parse(&format!("v{n}")).expect("id"),
    };
    w.act(assign("ct-2015", "ubnd-nhon-ai", "2015-08-31", 1))
        .expect("2015 on the old commune");
    let r = w.act(assign("ct-2015", "ubnd-xa-phong-dien", "2015-08-31", 2));
    assert!(
        matches!(r, Err(Refusal::Invalid(_))),
        "not yet a unit in 2015: {r:?}"
    );
    let r = w.act(assign("ct-2026", "ubnd-nhon-ai", "2026-03-02", 3));
    assert!(
        matches!(r, Err(Refusal::Invalid(_))),
        "merged away by 2026: {r:?}"
    );
    w.act(assign("ct-2026", "ubnd-xa-phong-dien", "2026-03-02", 4))
        .expect("2026 on the new commune");
    // Each visit carries its own era's unit and area.
    let (old, _, _) =
        w.d.new_visit(&kiemtra_core::VisitId::parse("v1").expect("id"))
            .expect("v1");
    assert_eq!(
        (old.unit.name.as_str(), old.unit.area.as_str()),
        ("UBND xã Nhơn Ái", "Xã Nhơn Ái")
    );
    let (new, _, _) =
        w.d.new_visit(&kiemtra_core::VisitId::parse("v4").expect("id"))
            .expect("v4");
    assert_eq!(new.unit.area, "Xã Phong Điền");
}

/// A draw on the log: the commitment before, the seed and the selection
/// after; a seed that does not match, or a selection that is not the one
/// the seed makes, is refused.
#[test]
fn a_draw_is_committed_before_and_rechecked_from_its_seed() {
    let mut w = World::new();
    hierarchy(&mut w);
    let communes: Vec<UnitCode> = (1..=7).map(|i| code(&format!("ubnd-xa-{i}"))).collect();
    w.act(Act::UnitsImported {
        units: communes
            .iter()
            .map(|c| kiemtra_admin::UnitRecord {
                code: c.clone(),
                name: format!("UBND {c}"),
                kind: kiemtra_core::UnitKind::CommuneCommittee,
                area: code("phong-dien"),
                valid_from: day("2004-01-01"),
                valid_to: None,
            })
            .collect(),
    })
    .expect("units");
    // The administrative-reform (CCHC) checklist, published as data.
    w.act(Act::TemplatePublished {
        template_id: kiemtra_core::TemplateId::parse("cchc").expect("id"),
        version: 1,
        json: include_str!("../../../fixtures/templates/cchc-v1.json").into(),
    })
    .expect("template");
    assert_eq!(
        w.d.template(&kiemtra_core::TemplateId::parse("cchc").expect("id"), 1)
            .expect("published")
            .checks
            .len(),
        26
    );
    w.act(Act::TeamCreated {
        team_id: TeamId::parse("doan-1").expect("id"),
        name: "Đoàn 1".into(),
    })
    .expect("team");
    w.act(Act::CampaignCreated {
        campaign_id: kiemtra_core::CampaignId::parse("cchc-2014").expect("id"),
        title: "Kiểm tra công tác cải cách hành chính tại huyện Phong Điền".into(),
        decision: String::new(),
        starts_on: day("2014-09-01"),
        ends_on: day("2014-09-30"),
        province: code("can-tho"),
        template_id: kiemtra_core::TemplateId::parse("cchc").expect("id"),
        template_version: 1,
        teams: vec![TeamId::parse("doan-1").expect("id")],
    })
    .expect("campaign");
    let seed = [7u8; 32];
    let campaign = kiemtra_core::CampaignId::parse("cchc-2014").expect("id");
    w.act(Act::DrawCommitted {
        campaign_id: campaign.clone(),
        commitment: kiemtra_admin::draw::commitment_of(&seed),
        candidates: communes.clone(),
        count: 2,
    })
    .expect("commit");
    let selection = kiemtra_admin::draw::select(&seed, &communes, 2);
    let r = w.act(Act::DrawRevealed {
        campaign_id: campaign.clone(),
        seed: hex::encode(&[8u8; 32]),
        selection: selection.clone(),
    });
    assert!(matches!(r, Err(Refusal::Invalid(_))), "another seed: {r:?}");
    let mut wrong = selection.clone();
    wrong.reverse();
    let r = w.act(Act::DrawRevealed {
        campaign_id: campaign.clone(),
        seed: hex::encode(&seed),
        selection: wrong,
    });
    assert!(
        matches!(r, Err(Refusal::Invalid(_))),
        "another selection: {r:?}"
    );
    w.act(Act::DrawRevealed {
        campaign_id: campaign.clone(),
        seed: hex::encode(&seed),
        selection: selection.clone(),
    })
    .expect("reveal");
    let d = &w.d.campaigns[&campaign].draws[0];
    assert_eq!(d.selection.len(), 2);
    assert_eq!(d.selection, selection);
}
