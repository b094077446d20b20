//! Store benchmarks: recording one attendance mark durably in a 60-staff
//! visit (with its p50/p99 over many single edits), and opening a store of
//! 1,000 visits and listing them.

use chrono::NaiveDate;
use criterion::{Criterion, criterion_group};
use kiemtra_core::*;
use kiemtra_store::Store;
use std::time::{Duration, Instant};

const STANDARD: &str = include_str!("../../../fixtures/templates/standard-v1.json");

fn editor() -> Editor {
    Editor::new(
        UserId::parse("insp").expect("u"),
        DeviceId::parse("dev").expect("d"),
    )
}

fn staff(i: usize) -> StaffId {
    StaffId::parse(&format!("s-{i:03}")).expect("id")
}

fn new_visit(n: usize) -> NewVisit {
    NewVisit {
        visit_id: VisitId::parse(&format!("v-{n:05}")).expect("id"),
        unit: Unit::new(
            UnitCode::parse(&format!("u-{n}")).expect("c"),
            "UBND xã Trung An",
            UnitKind::CommuneCommittee,
            "",
        )
        .expect("unit"),
        campaign: CampaignId::parse("c").expect("c"),
        team: TeamId::parse("t").expect("t"),
        scheduled_on: NaiveDate::from_ymd_opt(2015, 9, 1).expect("d"),
        roster: (0..60)
            .map(|i| {
                StaffMember::new(
                    staff(i),
                    &format!("Phan Thị {i}"),
                    "",
                    StaffCategory::CivilServant,
                    true,
                )
                .expect("m")
            })
            .collect(),
    }
}

fn mark(i: usize) -> AttendanceMark {
    if i.is_multiple_of(3) {
        AttendanceMark::Absent(AbsenceReason::Sick)
    } else {
        AttendanceMark::Present
    }
}

fn record_durably(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = Store::open(dir.path().join("b.db"), editor()).expect("open");
    let template = Template::from_json(STANDARD).expect("t");
    store.create_visit(new_visit(0), &template).expect("create");
    let id = VisitId::parse("v-00000").expect("id");
    let mut i = 0usize;
    c.bench_function("record_attendance_durable_60_staff", |b| {
        b.iter(|| {
            i += 1;
            store
                .edit(&id, |v| {
                    v.record_attendance(&staff(i % 60), mark(i), "", None)
                })
                .expect("edit")
        })
    });

    // Percentiles over single edits, which criterion does not report.
    let mut samples: Vec<Duration> = Vec::with_capacity(2000);
    for _ in 0..2000 {
        i += 1;
        let t = Instant::now();
        store
            .edit(&id, |v| {
                v.record_attendance(&staff(i % 60), mark(i), "", None)
            })
            .expect("edit");
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "record_attendance_durable_60_staff over {} single edits: p50 {:?}, p99 {:?}, max {:?}",
        samples.len(),
        pct(0.50),
        pct(0.99),
        samples[samples.len() - 1]
    );
}

fn open_and_list(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("thousand.db");
    {
        let mut store = Store::open(&path, editor()).expect("open");
        let template = Template::from_json(STANDARD).expect("t");
        for n in 0..1000 {
            store.create_visit(new_visit(n), &template).expect("create");
        }
    }
    c.bench_function("open_store_and_list_1000_visits", |b| {
        b.iter(|| {
            let store = Store::open(&path, editor()).expect("open");
            let list = store.list_visits().expect("list");
            assert_eq!(list.len(), 1000);
            list.len()
        })
    });
}

criterion_group! {
    name = store;
    config = Criterion::default().sample_size(30).measurement_time(Duration::from_secs(4));
    targets = record_durably, open_and_list
}

fn main() {
    store();
    Criterion::default().configure_from_args().final_summary();
}
