//! A child process records edits and is killed with SIGKILL at random
//! moments, many times; after each reopen every acknowledged edit is there.

use chrono::NaiveDate;
use kiemtra_core::*;
use kiemtra_store::Store;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STANDARD: &str = include_str!("../../../fixtures/templates/standard-v1.json");
const STAFF: usize = 60;
const CHILD_ENV: &str = "KIEMTRA_CRASH_CHILD_DB";

fn staff(i: usize) -> StaffId {
    StaffId::parse(&format!("s-{i:03}")).expect("staff")
}

fn visit_id() -> VisitId {
    VisitId::parse("v-crash").expect("id")
}

fn editor() -> Editor {
    Editor::new(
        UserId::parse("insp-1").expect("u"),
        DeviceId::parse("dev-1").expect("d"),
    )
}

/// Runs only inside the child: opens the store, then records edit after
/// edit, printing `ack N` after each call returns, until killed.
#[test]
fn crash_child() {
    let Ok(db) = std::env::var(CHILD_ENV) else {
        return;
    };
    let start: usize = std::env::var("KIEMTRA_CRASH_START")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut store = Store::open(&db, editor()).expect("open");
    if store.list_visits().expect("list").is_empty() {
        let new = NewVisit {
            visit_id: visit_id(),
            unit: Unit::new(
                UnitCode::parse("u-1").expect("c"),
                "UBND xã Nhơn Ái",
                UnitKind::CommuneCommittee,
                "",
            )
            .expect("unit"),
            campaign: CampaignId::parse("c").expect("c"),
            team: TeamId::parse("t").expect("t"),
            scheduled_on: NaiveDate::from_ymd_opt(2015, 9, 1).expect("d"),
            roster: (0..STAFF)
                .map(|i| {
                    StaffMember::new(
                        staff(i),
                        &format!("Lý Văn Tâm {i}"),
                        "",
                        StaffCategory::CivilServant,
                        true,
                    )
                    .expect("m")
                })
                .collect(),
        };
        store
            .create_visit(new, &Template::from_json(STANDARD).expect("t"))
            .expect("create");
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready").expect("stdout");
    out.flush().expect("flush");
    for n in start.. {
        store
            .edit(&visit_id(), |v| {
                v.record_attendance(
                    &staff(n % STAFF),
                    AttendanceMark::Present,
                    &n.to_string(),
                    None,
                )
            })
            .expect("edit");
        writeln!(out, "ack {n}").expect("stdout");
        out.flush().expect("flush");
    }
}

/// A small deterministic generator for kill moments.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

#[test]
fn acknowledged_edits_survive_sigkill() {
    let dir = tempfile::tempdir().expect("dir");
    let db = dir.path().join("device.db");
    let exe = std::env::current_exe().expect("exe");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7);
    let mut rng = Lcg(seed);
    // Highest acknowledged sequence number per staff member.
    let mut acked: Vec<Option<usize>> = vec![None; STAFF];
    let mut next = 0usize;
    let rounds = 25;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &db)
            .env("KIEMTRA_CRASH_START", next.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("stdout");
        // Read acks on a thread; kill after a random delay.
        let (tx, rx) = std::sync::mpsc::channel::<usize>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse().ok())
                    && tx.send(n).is_err()
                {
                    break;
                }
            }
        });
        let delay = Duration::from_millis(30 + rng.next() % 150);
        let started = Instant::now();
        while started.elapsed() < delay {
            std::thread::sleep(Duration::from_millis(2));
        }
        child.kill().expect("SIGKILL");
        let _ = child.wait();
        let _ = reader.join();
        let mut last = None;
        for n in rx.try_iter() {
            acked[n % STAFF] = Some(acked[n % STAFF].map_or(n, |m: usize| m.max(n)));
            last = Some(n);
        }
        if let Some(n) = last {
            next = n + 1;
        }
        // Reopen (a fresh actor) and check every acknowledged edit.
        let mut store = Store::open(&db, editor())
            .unwrap_or_else(|e| panic!("round {round}: store did not reopen: {e}"));
        if store.list_visits().expect("list").is_empty() {
            assert!(
                acked.iter().all(Option::is_none),
                "round {round}: visit lost"
            );
            continue;
        }
        let state = store
            .visit(&visit_id())
            .expect("visit")
            .state()
            .expect("state");
        for (i, a) in acked.iter().enumerate() {
            let Some(a) = a else { continue };
            let slot = state
                .attendance
                .get(&staff(i))
                .unwrap_or_else(|| panic!("round {round}: staff {i} lost (acked {a})"));
            let stored: usize = slot
                .value()
                .note
                .parse()
                .expect("note is a sequence number");
            assert!(
                stored >= *a,
                "round {round}: staff {i} has edit {stored}, but {a} was acknowledged"
            );
        }
        // Continue numbering after anything that may have landed unacknowledged.
        let max_stored = state
            .attendance
            .values()
            .filter_map(|s| s.value().note.parse::<usize>().ok())
            .max();
        if let Some(m) = max_stored {
            next = next.max(m + 1);
        }
    }
    let total: usize = acked.iter().flatten().count();
    assert!(total > 0, "the child acknowledged some edits");
}
