//! The desk tool driven end to end against a real server (`kiemtra serve`
//! on 127.0.0.1 port 0): a supervisor's desk assigns the Cần Thơ 2015
//! campaign from a roster CSV, an inspector's phone records it offline and
//! submits, the desk approves, and the report reproduces the article's
//! figures. Also replay, draws, and bad input on every subcommand.

use kiemtra_client::{Credentials, SyncClient, SyncOptions};
use kiemtra_core::{
    AbsenceReason, AttendanceMark, CampaignFixture, ChangeHash, CheckId, DeviceId, Editor, Role,
    Session, UserId, VisitId,
};
use kiemtra_store::Store;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

struct Server {
    child: Child,
    url: String,
    data: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> Server {
    let data = dir.join("server");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kiemtra serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port line");
    let port = line
        .trim()
        .strip_prefix("listening on port ")
        .unwrap_or_else(|| panic!("unexpected {line:?}"))
        .to_owned();
    Server {
        child,
        url: format!("http://127.0.0.1:{port}"),
        data,
    }
}

fn kiemtra(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .arg("--home")
        .arg(home)
        .args(args)
        .current_dir(root())
        .output()
        .expect("run kiemtra")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "kiemtra failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Checks a refusal: its exit code and a word of its message.
fn refused(out: &Output, code: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
}

fn code(server: &Server, user: &str, role: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .args(["admin", "--data"])
        .arg(&server.data)
        .args([
            "enroll-code",
            "--user",
            user,
            "--team",
            "team-1",
            "--role",
            role,
        ])
        .output()
        .expect("admin");
    ok(&out).trim().to_owned()
}

fn roster_csv(fixture: &CampaignFixture) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "unit_code",
        "unit_name",
        "unit_kind",
        "area",
        "staff_id",
        "staff_name",
        "position",
        "category",
        "on_payroll",
    ])
    .expect("header");
    for u in &fixture.units {
        for s in &u.staff {
            w.write_record([
                u.code.as_str(),
                &u.name,
                &u.kind,
                &u.area,
                s.id.as_str(),
                &s.name,
                &s.position,
                &s.category,
                if s.on_payroll { "yes" } else { "no" },
            ])
            .expect("row");
        }
    }
    String::from_utf8(w.into_inner().expect("csv")).expect("utf8")
}

struct Phone {
    store: Store,
    client: SyncClient,
}

fn phone(rt: &tokio::runtime::Runtime, server: &Server, dir: &Path) -> Phone {
    let code = code(server, "nhom-1", "inspector");
    let creds: Credentials = rt
        .block_on(kiemtra_client::enroll(&server.url, &code, "phone"))
        .expect("enroll");
    let editor = Editor::new(
        UserId::parse(&creds.user_id).expect("user"),
        DeviceId::parse(&creds.device_id).expect("device"),
    );
    let mut store = Store::open_with_session(
        dir.join("phone.db"),
        Session::new(editor).with_role(Role::Inspector),
    )
    .expect("store");
    creds.save(&mut store).expect("save");
    let client = SyncClient::new(creds, SyncOptions::default()).expect("client");
    Phone { store, client }
}

fn sync(rt: &tokio::runtime::Runtime, p: &mut Phone) {
    let r = rt
        .block_on(p.client.sync(&mut p.store, &mut |_| {}))
        .expect("sync");
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

#[test]
fn a_desk_assigns_approves_and_reports_the_campaign() {
    let dir = tempfile::tempdir().expect("dir");
    let server = serve(dir.path());
    let sup = dir.path().join("desk-sup");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let fixture = CampaignFixture::from_json(
        &std::fs::read_to_string(root().join("fixtures/campaigns/cantho-2015.json"))
            .expect("fixture"),
    )
    .expect("parse");
    let campaign = fixture.campaign.id.to_string();

    ok(&kiemtra(
        &sup,
        &[
            "login",
            "--server",
            &server.url,
            "--code",
            &code(&server, "truong-doan", "supervisor"),
        ],
    ));

    // A malformed roster: refused with its line number, nothing created.
    let bad = dir.path().join("bad.csv");
    let good = roster_csv(&fixture);
    let mut lines: Vec<&str> = good.lines().collect();
    let broken = lines[2]
        .replacen(",yes", ",perhaps", 1)
        .replacen(",no", ",perhaps", 1);
    lines[2] = &broken;
    std::fs::write(&bad, lines.join("\n")).expect("write");
    refused(
        &kiemtra(
            &sup,
            &[
                "assign",
                "--campaign",
                &campaign,
                "--csv",
                bad.to_str().expect("path"),
                "--date",
                "2015-08-31",
            ],
        ),
        2,
        "line 3",
    );
    assert_eq!(
        ok(&kiemtra(&sup, &["visits"])).lines().count(),
        1,
        "only the header"
    );

    let roster = dir.path().join("roster.csv");
    std::fs::write(&roster, &good).expect("write");
    let assign = [
        "assign",
        "--campaign",
        &campaign,
        "--csv",
        roster.to_str().expect("path"),
        "--date",
        "2015-08-31",
    ];
    ok(&kiemtra(&sup, &assign));
    // Assigned ids are random, so a second assignment of the same units is
    // refused rather than making a second visit of each.
    refused(&kiemtra(&sup, &assign), 2, "already has a visit");
    assert_eq!(
        ok(&kiemtra(&sup, &["visits", "--campaign", &campaign]))
            .lines()
            .count(),
        66
    );

    // The inspector's phone records every unit offline; the first unit's
    // first person is marked differently once, then corrected (replay).
    let mut p = phone(&rt, &server, dir.path());
    sync(&rt, &mut p);
    let listed = p.store.list_visits().expect("list");
    let held: Vec<VisitId> = listed.iter().map(|s| s.id.clone()).collect();
    assert_eq!(held.len(), 65);
    // Assigned visits have random ids: found by their unit.
    let by_unit: std::collections::HashMap<String, VisitId> = listed
        .iter()
        .map(|s| (s.unit_code.clone(), s.id.clone()))
        .collect();
    for id in &held {
        assert!(id.as_str().starts_with("ct-2015."), "{id}");
    }
    let id_of = |unit: &kiemtra_core::UnitFixture| by_unit[unit.code.as_str()].clone();
    let mut points: Vec<Vec<ChangeHash>> = Vec::new();
    let first = id_of(&fixture.units[0]);
    let (first_staff, first_mark, _) = fixture.units[0].outcomes().expect("o")[0].clone();
    for (i, unit) in fixture.units.iter().enumerate() {
        let id = id_of(unit);
        let outcomes = unit.outcomes().expect("outcomes");
        p.store
            .edit(&id, |v| {
                for (s, m, note) in &outcomes {
                    v.record_attendance(s, *m, note, None)?;
                }
                Ok(())
            })
            .expect("record");
        if i == 0 {
            let other = if first_mark == AttendanceMark::Present {
                AttendanceMark::Absent(AbsenceReason::Sick)
            } else {
                AttendanceMark::Present
            };
            points.push(p.store.visit(&id).expect("v").heads());
            p.store
                .edit(&id, |v| v.record_attendance(&first_staff, other, "", None))
                .expect("toggle");
            points.push(p.store.visit(&id).expect("v").heads());
            p.store
                .edit(&id, |v| {
                    v.record_attendance(&first_staff, first_mark, "", None)
                })
                .expect("back");
        }
        // Two visits stay unsubmitted for now.
        if i >= 2 {
            p.store.edit(&id, |v| v.submit("")).expect("submit");
        }
    }
    // A photo of the last unit's posted procedures, taken on the phone.
    let last = id_of(&fixture.units[fixture.units.len() - 1]);
    let photo: Vec<u8> = (0..90_000u32).map(|i| (i * 13 % 256) as u8).collect();
    let sha = p
        .store
        .add_evidence(
            &last,
            &CheckId::parse("tthc-posted").expect("check"),
            &photo,
        )
        .expect("photo");
    sync(&rt, &mut p);
    let up = rt
        .block_on(p.client.upload_evidence(&mut p.store))
        .expect("upload");
    assert_eq!((up.uploaded, up.errors.len()), (1, 0), "{up:?}");

    ok(&kiemtra(&sup, &["sync"]));
    // The desk lists the photo under its check and saves it, checked.
    let shown = ok(&kiemtra(&sup, &["show", last.as_str()]));
    assert!(shown.contains(sha.as_str()), "{shown}");
    let saved = dir.path().join("photo.jpg");
    ok(&kiemtra(
        &sup,
        &[
            "evidence",
            last.as_str(),
            sha.as_str(),
            "--out",
            saved.to_str().expect("path"),
        ],
    ));
    assert_eq!(std::fs::read(&saved).expect("saved"), photo);
    let stray = "ab".repeat(32);
    refused(
        &kiemtra(&sup, &["evidence", last.as_str(), &stray, "--out", "x"]),
        3,
        "does not refer to evidence",
    );
    refused(
        &kiemtra(
            &sup,
            &["evidence", last.as_str(), "not-a-hash", "--out", "x"],
        ),
        2,
        "SHA-256",
    );
    // The verification counts the photo as held and matching.
    let verified = ok(&kiemtra(&sup, &["--lang", "en", "verify", last.as_str()]));
    assert!(
        verified.contains("photos: 1 / 1 held by the server, SHA-256 checked"),
        "{verified}"
    );
    ok(&kiemtra(
        &sup,
        &[
            "approve",
            "--campaign",
            &campaign,
            "--all",
            "--note",
            "Đồng ý",
        ],
    ));
    let partial = ok(&kiemtra(&sup, &["report", &campaign]));
    assert!(
        partial.contains("Biên bản chưa được phê duyệt"),
        "{partial}"
    );
    assert!(partial.contains(&fixture.units[0].name), "{partial}");
    assert!(partial.contains(&fixture.units[1].name), "{partial}");
    assert!(partial.contains("**63**"), "{partial}");

    for id in held
        .iter()
        .filter(|id| **id == first || **id == id_of(&fixture.units[1]))
    {
        p.store.edit(id, |v| v.submit("")).expect("submit");
    }
    sync(&rt, &mut p);
    ok(&kiemtra(&sup, &["sync"]));
    ok(&kiemtra(
        &sup,
        &["approve", first.as_str(), fixture.units[1].code.as_str()],
    ));

    let vi = ok(&kiemtra(&sup, &["report", &campaign, "--lang", "vi"]));
    for expected in [
        "Tổng số CBCCVC trong biên chế: **1.404**",
        "Có mặt: 1.071 (76,28%)",
        "Vắng mặt: 333 (23,72%)",
        "(43,84% số vắng)",
        "(27,93% số vắng)",
    ] {
        assert!(vi.contains(expected), "missing {expected:?} in:\n{vi}");
    }
    assert!(!vi.contains("chưa được phê duyệt"), "{vi}");
    let json: serde_json::Value = serde_json::from_str(&ok(&kiemtra(
        &sup,
        &["report", &campaign, "--format", "json", "--offline"],
    )))
    .expect("json report");
    assert_eq!(json["present_pct"], "76,28%");
    assert_eq!(json["absent_pct"], "23,72%");
    assert_eq!(json["tally"]["payroll"], 1404);
    let reasons: Vec<String> = json["reasons"]
        .as_array()
        .expect("reasons")
        .iter()
        .map(|r| r[2].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(reasons.contains(&"43,84%".to_owned()) && reasons.contains(&"27,93%".to_owned()));
    assert_eq!(json["not_approved"].as_array().map(Vec::len), Some(0));
    let en = ok(&kiemtra(
        &sup,
        &[
            "report",
            &campaign,
            "--lang",
            "en",
            "--format",
            "csv",
            "--offline",
        ],
    ));
    assert!(en.contains("present,1071,76.28%"), "{en}");
    // The same report as a workbook: written to a file, never the terminal.
    let book = dir.path().join("report.xlsx");
    let xlsx = [
        "report",
        &campaign,
        "--format",
        "xlsx",
        "--offline",
        "--out",
        book.to_str().expect("path"),
    ];
    refused(&kiemtra(&sup, &xlsx[..5]), 2, "--out");
    ok(&kiemtra(&sup, &xlsx));
    assert!(
        std::fs::read(&book)
            .expect("workbook")
            .starts_with(b"PK\x03\x04")
    );

    // Replay: the visit --at a past point is what had been recorded then,
    // and --diff lists exactly the field changed in between.
    let hex = |h: &[ChangeHash]| h[0].to_string();
    let name = fixture.units[0].staff[0].name.clone();
    let at = ok(&kiemtra(
        &sup,
        &["replay", first.as_str(), "--at", &hex(&points[1])],
    ));
    let line = at
        .lines()
        .find(|l| l.contains(&name))
        .expect("the person in the past state")
        .to_owned();
    assert!(
        line.ends_with(if first_mark == AttendanceMark::Present {
            "vắng (nghỉ ốm)"
        } else {
            "có mặt"
        }),
        "{line}"
    );
    assert!(at.contains("đang ghi nhận"), "a draft then:\n{at}");
    let diff = ok(&kiemtra(
        &sup,
        &[
            "--lang",
            "en",
            "replay",
            first.as_str(),
            "--diff",
            &hex(&points[0]),
            &hex(&points[1]),
        ],
    ));
    let diff_lines: Vec<&str> = diff.lines().collect();
    assert_eq!(diff_lines.len(), 1, "{diff}");
    assert!(
        diff_lines[0].starts_with(&format!("Attendance of {name}")),
        "{diff}"
    );
    let timeline = ok(&kiemtra(&sup, &["replay", first.as_str()]));
    assert!(timeline.contains("nhom-1"), "{timeline}");
    // Piped, the timeline is tab-separated; every change of the inspector
    // shows the server's receive time (not this desk's, which ends in *).
    let by_phone: Vec<Vec<&str>> = timeline
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c.len() == 7 && c[2].starts_with("nhom-1"))
        .collect();
    assert!(!by_phone.is_empty(), "{timeline}");
    for row in &by_phone {
        assert!(
            row[4].contains('/') && !row[4].ends_with('*'),
            "server receive time in {row:?}"
        );
    }

    // Verify and export.
    let verified = ok(&kiemtra(&sup, &["verify", first.as_str()]));
    assert!(verified.starts_with('✓'), "{verified}");
    let csv_out = ok(&kiemtra(
        &sup,
        &["export", "--campaign", &campaign, "--format", "csv"],
    ));
    assert_eq!(
        csv_out.lines().count(),
        1 + fixture.units.iter().map(|u| u.staff.len()).sum::<usize>()
    );

    // Bad input: a clear message, a non-zero exit, nothing changed.
    let before = ok(&kiemtra(&sup, &["visits"]));
    refused(&kiemtra(&sup, &["show", "v-nosuch"]), 3, "no visit");
    refused(
        &kiemtra(&sup, &["replay", first.as_str(), "--at", "yesterday"]),
        2,
        "neither",
    );
    refused(
        &kiemtra(&sup, &["replay", first.as_str(), "--at", "abcdef12"]),
        3,
        "no change",
    );
    refused(
        &kiemtra(&sup, &["resolve", first.as_str(), "nonsense", "0"]),
        2,
        "invalid field",
    );
    refused(
        &kiemtra(&sup, &["resolve", first.as_str(), "attendance/s-x", "0"]),
        3,
        "no conflict",
    );
    refused(
        &kiemtra(&sup, &["report", "no-such-campaign", "--offline"]),
        3,
        "no visit",
    );
    refused(
        &kiemtra(&sup, &["report", &campaign, "--format", "xml", "--offline"]),
        2,
        "unknown format",
    );
    refused(
        &kiemtra(
            &sup,
            &["export", "--campaign", &campaign, "--format", "pdf"],
        ),
        2,
        "unknown format",
    );
    refused(&kiemtra(&sup, &["export"]), 2, "export one VISIT");
    refused(
        &kiemtra(&sup, &["--lang", "fr", "visits"]),
        2,
        "unknown language",
    );
    refused(&kiemtra(&sup, &["verify", "v-nosuch"]), 3, "v-nosuch");
    refused(&kiemtra(&sup, &["approve"]), 2, "nothing to approve");
    refused(
        &kiemtra(&sup, &["return", first.as_str(), "--reason", "x"]),
        2,
        "cannot move",
    );
    refused(
        &kiemtra(
            &sup,
            &["login", "--server", &server.url, "--code", "AAAA-BBBB-CCCC"],
        ),
        2,
        "enrolled already",
    );
    let nobody = dir.path().join("nobody");
    refused(&kiemtra(&nobody, &["visits"]), 2, "kiemtra login");
    refused(
        &kiemtra(
            &nobody,
            &["login", "--server", &server.url, "--code", "AAAA-BBBB-CCCC"],
        ),
        4,
        "unknown code",
    );
    let no_data = Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .args(["admin", "--data"])
        .arg(dir.path().join("nothing"))
        .arg("devices")
        .output()
        .expect("admin");
    refused(&no_data, 2, "no server database");
    let wrong_role = Command::new(env!("CARGO_BIN_EXE_kiemtra"))
        .args(["admin", "--data"])
        .arg(&server.data)
        .args([
            "enroll-code",
            "--user",
            "x",
            "--team",
            "t",
            "--role",
            "king",
        ])
        .output()
        .expect("admin");
    refused(&wrong_role, 2, "role");

    // A wrong role: an inspector's desk may not approve, resolve or assign.
    let insp = dir.path().join("desk-insp");
    ok(&kiemtra(
        &insp,
        &[
            "login",
            "--server",
            &server.url,
            "--code",
            &code(&server, "nhom-2", "inspector"),
        ],
    ));
    ok(&kiemtra(&insp, &["sync"]));
    refused(
        &kiemtra(&insp, &["approve", first.as_str()]),
        4,
        "supervisor",
    );
    refused(
        &kiemtra(
            &insp,
            &[
                "assign",
                "--campaign",
                "c-2",
                "--csv",
                roster.to_str().expect("p"),
                "--date",
                "2015-09-01",
            ],
        ),
        4,
        "supervisor",
    );
    refused(&kiemtra(&insp, &["verify", first.as_str()]), 4, "inspector");
    assert_eq!(ok(&kiemtra(&sup, &["visits"])), before, "nothing changed");
}

#[test]
fn a_draw_is_recorded_and_checked() {
    let dir = tempfile::tempdir().expect("dir");
    let server = serve(dir.path());
    let desk = dir.path().join("desk");
    ok(&kiemtra(
        &desk,
        &[
            "login",
            "--server",
            &server.url,
            "--code",
            &code(&server, "truong-doan", "supervisor"),
        ],
    ));
    let units = dir.path().join("units.txt");
    std::fs::write(&units, "u-01\nu-02\nu-03\nu-04\nu-05\n").expect("units");
    let out = ok(&kiemtra(
        &desk,
        &[
            "draw",
            "commit",
            "--campaign",
            "c-1",
            "--n",
            "2",
            "--units",
            units.to_str().expect("p"),
        ],
    ));
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(name))
            .expect("field")
            .trim()
            .to_owned()
    };
    let (commitment, seed) = (field("commitment "), field("seed "));
    let mut wrong = seed.clone();
    wrong.replace_range(0..1, if seed.starts_with('0') { "1" } else { "0" });
    refused(
        &kiemtra(
            &desk,
            &[
                "draw",
                "reveal",
                "--campaign",
                "c-1",
                "--commitment",
                &commitment,
                "--seed",
                &wrong,
            ],
        ),
        2,
        "does not match",
    );
    let picked = ok(&kiemtra(
        &desk,
        &[
            "draw",
            "reveal",
            "--campaign",
            "c-1",
            "--commitment",
            &commitment,
            "--seed",
            &seed,
        ],
    ));
    assert_eq!(picked.lines().count(), 2);
    // Anyone recomputes the same selection from the seed.
    let again = ok(&kiemtra(
        &desk,
        &[
            "draw",
            "check",
            "--commitment",
            &commitment,
            "--seed",
            &seed,
            "--n",
            "2",
            "--units",
            units.to_str().expect("p"),
        ],
    ));
    assert_eq!(picked, again);
    refused(
        &kiemtra(
            &desk,
            &[
                "draw",
                "reveal",
                "--campaign",
                "c-1",
                "--commitment",
                "00ff",
                "--seed",
                &seed,
            ],
        ),
        3,
        "no draw",
    );
    refused(
        &kiemtra(
            &desk,
            &[
                "draw",
                "commit",
                "--campaign",
                "c-1",
                "--n",
                "9",
                "--units",
                units.to_str().expect("p"),
            ],
        ),
        2,
        "cannot draw",
    );
}

#[test]
fn serve_refuses_bad_settings() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_kiemtra"))
            .arg("serve")
            .args(["--data", data.to_str().expect("path")])
            .args(args)
            .output()
            .expect("run serve")
    };
    // A certificate without its key is a usage error (clap).
    refused(&run(&["--tls-cert", "cert.pem"]), 2, "--tls-key");
    refused(&run(&["--listen", "not-an-address"]), 2, "not-an-address");
    refused(&run(&["--max-syncs", "0"]), 2, "at least 1");
    refused(
        &run(&[
            "--listen",
            "127.0.0.1:0",
            "--tls-cert",
            "missing-cert.pem",
            "--tls-key",
            "missing-key.pem",
        ]),
        2,
        "missing-cert.pem",
    );
}

#[test]
fn a_desk_reads_a_phones_bundle_with_no_server_and_refuses_a_damaged_one() {
    let dir = tempfile::tempdir().expect("dir");
    let server = serve(dir.path());
    let sup = dir.path().join("desk-sup");
    let rt = tokio::runtime::Runtime::new().expect("rt");
    ok(&kiemtra(
        &sup,
        &[
            "login",
            "--server",
            &server.url,
            "--code",
            &code(&server, "truong-doan", "supervisor"),
        ],
    ));
    let roster = dir.path().join("roster.csv");
    std::fs::write(
        &roster,
        "unit_code,unit_name,unit_kind,area,staff_id,staff_name,position,category,on_payroll\n\
         u-1,UBND xã Thạnh Lợi,commune_committee,Huyện Vĩnh Thạnh,s-1,Nguyễn Văn An,Chủ tịch,leader,yes\n\
         u-1,UBND xã Thạnh Lợi,commune_committee,Huyện Vĩnh Thạnh,s-2,Trần Thị Bình,Công chức,civil_servant,yes\n",
    )
    .expect("write");
    ok(&kiemtra(
        &sup,
        &[
            "assign",
            "--campaign",
            "ct-2015",
            "--csv",
            roster.to_str().expect("path"),
            "--date",
            "2015-08-31",
        ],
    ));
    let mut p = phone(&rt, &server, dir.path());
    sync(&rt, &mut p);
    // The desk learns the phone's key while there is a signal.
    let out = ok(&kiemtra(&sup, &["team-refresh"]));
    assert!(out.contains("2 thiết bị"), "{out}");
    drop(server);

    let id = p.store.list_visits().expect("list")[0].id.clone();
    p.store
        .edit(&id, |v| {
            v.record_attendance(
                &kiemtra_core::StaffId::parse("s-1").expect("id"),
                AttendanceMark::Absent(AbsenceReason::BusinessTrip),
                "",
                None,
            )
        })
        .expect("record");
    let creds = p.client.credentials().clone();
    let bytes = kiemtra_client::write_bundle(&mut p.store, &creds, &[]).expect("bundle");
    let file = dir.path().join("from-phone.ktb");
    std::fs::write(&file, &bytes).expect("write");
    let mut damaged = bytes.clone();
    damaged.truncate(bytes.len() - 1);
    let bad = dir.path().join("damaged.ktb");
    std::fs::write(&bad, &damaged).expect("write");
    let before = ok(&kiemtra(&sup, &["show", id.as_str()]));
    refused(
        &kiemtra(&sup, &["bundle", "read", bad.to_str().expect("path")]),
        2,
        "checksum",
    );
    assert_eq!(
        ok(&kiemtra(&sup, &["show", id.as_str()])),
        before,
        "nothing changed"
    );
    let out = ok(&kiemtra(
        &sup,
        &["bundle", "read", file.to_str().expect("path")],
    ));
    assert!(out.contains("1 updated"), "{out}");
    let after = ok(&kiemtra(&sup, &["show", id.as_str()]));
    assert_ne!(
        after, before,
        "the phone's mark reached the desk with no server"
    );
    assert!(after.contains("công tác"), "{after}");
    // The desk's own bundle.
    let out_file = dir.path().join("desk.ktb");
    ok(&kiemtra(
        &sup,
        &["bundle", "write", out_file.to_str().expect("path")],
    ));
    assert_eq!(&std::fs::read(&out_file).expect("read")[..4], b"KTBN");
}

/// `kiemtra admin` over HTTP: an administrator's desk creates a user and a
/// team, imports areas and units, issues a signed code a phone's desk
/// enrolls with, and verifies the log; a code for a user in no team and a
/// bad row are refused with exit 2; an inspector's desk may not administer
/// (exit 4); a log cut after the desk verified it is caught (exit 6).
#[test]
fn an_administrators_desk_administers_over_http_and_verifies_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = serve(dir.path());
    let admin = dir.path().join("admin-desk");
    ok(&kiemtra(
        &admin,
        &[
            "login",
            "--server",
            &server.url,
            "--code",
            &code(&server, "quan-tri", "administrator"),
        ],
    ));
    ok(&kiemtra(
        &admin,
        &[
            "admin",
            "user-add",
            "kiem-tra-an",
            "Lê Thị Ân",
            "--role",
            "inspector",
        ],
    ));
    ok(&kiemtra(
        &admin,
        &["admin", "team-add", "doan-1", "Đoàn kiểm tra số 1"],
    ));
    // A user in no team is given no code.
    refused(
        &kiemtra(
            &admin,
            &["admin", "code", "--user", "kiem-tra-an", "--team", "doan-1"],
        ),
        2,
        "not a member",
    );
    ok(&kiemtra(
        &admin,
        &[
            "admin",
            "team-members",
            "doan-1",
            "--members",
            "kiem-tra-an",
        ],
    ));
    let areas = dir.path().join("areas.csv");
    std::fs::write(
        &areas,
        "area_code,area_name,tier,parent\ncan-tho,Thành phố Cần Thơ,province,\n",
    )
    .expect("write");
    ok(&kiemtra(
        &admin,
        &[
            "admin",
            "import",
            "areas",
            areas.to_str().expect("path"),
            "--valid-from",
            "01/01/2015",
        ],
    ));
    let units = dir.path().join("units.csv");
    std::fs::write(
        &units,
        "unit_code,unit_name,unit_kind,area\nso-noi-vu,Sở Nội vụ,department,can-tho\nso-y-te,Sở Y tế,clinic,can-tho\n",
    )
    .expect("write");
    refused(
        &kiemtra(
            &admin,
            &[
                "admin",
                "import",
                "units",
                units.to_str().expect("path"),
                "--valid-from",
                "01/01/2015",
            ],
        ),
        2,
        "line 3",
    );
    std::fs::write(
        &units,
        "unit_code,unit_name,unit_kind,area\nso-noi-vu,Sở Nội vụ,department,can-tho\n",
    )
    .expect("write");
    let staff = dir.path().join("staff.csv");
    std::fs::write(
        &staff,
        "unit_code,staff_id,staff_name,position,category,on_payroll\nso-noi-vu,so-noi-vu.s01,Ngô Thị Nga,Giám đốc,leader,có\n",
    )
    .expect("write");
    for (kind, file) in [("units", &units), ("staff", &staff)] {
        ok(&kiemtra(
            &admin,
            &[
                "admin",
                "import",
                kind,
                file.to_str().expect("path"),
                "--valid-from",
                "01/01/2015",
            ],
        ));
    }
    let template = root().join("fixtures/templates/standard-v1.json");
    ok(&kiemtra(
        &admin,
        &[
            "admin",
            "template-publish",
            template.to_str().expect("path"),
        ],
    ));
    ok(&kiemtra(
        &admin,
        &[
            "admin",
            "campaign-create",
            "ct-2015",
            "Kiểm tra đột xuất năm 2015",
            "--decision",
            "Quyết định 138/QĐ-UBND ngày 19/01/2017",
            "--starts",
            "01/08/2015",
            "--ends",
            "31/12/2015",
            "--province",
            "can-tho",
            "--template",
            "standard",
            "--version",
            "1",
            "--teams",
            "doan-1",
        ],
    ));
    let assign = [
        "admin",
        "assign",
        "ct-2015",
        "--team",
        "doan-1",
        "--unit",
        "so-noi-vu",
        "--on",
        "31/08/2015",
    ];
    let visit = ok(&kiemtra(&admin, &assign));
    assert!(visit.trim().starts_with("ct-2015.so-noi-vu."), "{visit}");
    refused(&kiemtra(&admin, &assign), 2, "assigned already");
    // A draw on the server: committed, then revealed and rechecked there.
    let candidates = dir.path().join("candidates.txt");
    std::fs::write(&candidates, "so-noi-vu\n").expect("write");
    let committed = ok(&kiemtra(
        &admin,
        &[
            "admin",
            "draw-commit",
            "ct-2015",
            "--n",
            "1",
            "--units",
            candidates.to_str().expect("path"),
        ],
    ));
    let seed = committed
        .trim()
        .strip_prefix("seed ")
        .expect("seed")
        .to_owned();
    refused(
        &kiemtra(
            &admin,
            &["admin", "draw-reveal", "ct-2015", &"0".repeat(64)],
        ),
        2,
        "does not match",
    );
    let selected = ok(&kiemtra(
        &admin,
        &["admin", "draw-reveal", "ct-2015", &seed],
    ));
    assert_eq!(selected.lines().next(), Some("so-noi-vu"), "{selected}");
    let code = ok(&kiemtra(
        &admin,
        &["admin", "code", "--user", "kiem-tra-an", "--team", "doan-1"],
    ));
    let phone = dir.path().join("phone-desk");
    ok(&kiemtra(
        &phone,
        &["login", "--server", &server.url, "--code", code.trim()],
    ));
    refused(
        &kiemtra(&phone, &["admin", "log"]),
        4,
        "administrators and auditors",
    );
    let verified = ok(&kiemtra(&admin, &["admin", "verify-log"]));
    assert!(
        verified.contains("all as the log enrolled them"),
        "{verified}"
    );
    let listed = ok(&kiemtra(&admin, &["admin", "export", "users"]));
    assert!(
        listed.contains("kiem-tra-an,Lê Thị Ân,inspector,yes"),
        "{listed}"
    );
    // The operator cuts the log's tail: the desk remembers what it verified.
    let c = rusqlite::Connection::open(server.data.join("kiemtra.db")).expect("open");
    c.execute(
        "DELETE FROM admin_log WHERE seq = (SELECT max(seq) FROM admin_log)",
        [],
    )
    .expect("cut");
    drop(c);
    refused(
        &kiemtra(&admin, &["admin", "verify-log"]),
        6,
        "no longer holds entry",
    );
}
