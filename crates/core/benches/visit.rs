//! Core benchmarks: recording into a 60-staff visit in memory, merging two
//! diverged replicas, and reading state/tallies.

use chrono::NaiveDate;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use kiemtra_core::*;

const STANDARD: &str = include_str!("../../../fixtures/templates/standard-v1.json");

fn staff(i: usize) -> StaffId {
    StaffId::parse(&format!("s-{i:03}")).expect("id")
}

fn session(user: &str) -> Session {
    Session::new(Editor::new(
        UserId::parse(user).expect("u"),
        DeviceId::parse(&format!("dev-{user}")).expect("d"),
    ))
}

/// A 60-staff visit as the standard workload has it.
pub fn visit_60() -> Visit {
    let new = NewVisit {
        visit_id: VisitId::parse("v-bench").expect("id"),
        unit: Unit::new(
            UnitCode::parse("u").expect("c"),
            "Sở Nội vụ",
            UnitKind::Department,
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
                    &format!("Nguyễn Văn {i}"),
                    "Chuyên viên",
                    StaffCategory::CivilServant,
                    true,
                )
                .expect("m")
            })
            .collect(),
    };
    Visit::create(
        new,
        &Template::from_json(STANDARD).expect("t"),
        &session("sup"),
    )
    .expect("visit")
}

fn mark(i: usize) -> AttendanceMark {
    match i % 4 {
        0 => AttendanceMark::Present,
        1 => AttendanceMark::Late,
        2 => AttendanceMark::Absent(AbsenceReason::BusinessTrip),
        _ => AttendanceMark::Absent(AbsenceReason::Training),
    }
}

fn record(v: &mut Visit, edits: usize, offset: usize) {
    for i in 0..edits {
        v.record_attendance(&staff((i + offset) % 60), mark(i + offset), "", None)
            .expect("rec");
    }
}

fn benches(c: &mut Criterion) {
    let mut v = visit_60();
    record(&mut v, 250, 0);
    c.bench_function("record_attendance_in_memory_60_staff", |b| {
        let mut i = 0;
        b.iter(|| {
            i += 1;
            v.record_attendance(&staff(i % 60), mark(i), "", None)
                .expect("rec")
        })
    });

    let base = visit_60();
    let bytes = base.save();
    let mut a = Visit::load(&bytes, &session("a")).expect("a");
    let mut b = Visit::load(&bytes, &session("b")).expect("b");
    record(&mut a, 250, 0);
    record(&mut b, 250, 7);
    c.bench_function("merge_two_replicas_60_staff_250_edits_each", |bench| {
        bench.iter_batched(
            || Visit::load(&a.save(), &session("m")).expect("copy"),
            |mut mine| {
                mine.merge(&b).expect("merge");
                mine
            },
            BatchSize::SmallInput,
        )
    });

    let mut merged = Visit::load(&a.save(), &session("m")).expect("copy");
    merged.merge(&b).expect("merge");
    c.bench_function("state_and_tally_60_staff_merged", |bench| {
        bench.iter(|| merged.state().expect("state").tally())
    });
    c.bench_function("conflicts_60_staff_merged", |bench| {
        bench.iter(|| merged.conflicts().expect("c").len())
    });

    // What signing a sync batch costs per visit of the standard workload
    // (500 edits by one device): loading, naming the device's changes, and
    // turning them into sequence ranges and back.
    let mut day = visit_60();
    record(&mut day, 500, 0);
    let saved = day.save();
    let device = DeviceId::parse("dev-sup").expect("d");
    c.bench_function("load_60_staff_500_edits", |bench| {
        bench.iter(|| Visit::load(&saved, &session("l")).expect("load"))
    });
    c.bench_function("state_and_tally_500_edits", |bench| {
        bench.iter(|| day.state().expect("state").tally())
    });
    c.bench_function("changes_by_500_edits", |bench| {
        bench.iter(|| day.changes_by(&[], &device).len())
    });
    // What the server's acceptance of a new visit costs beside loading
    // it: the changes read out of the document, decoded, and checked by
    // the acceptance rule.
    let server = session("server");
    let writers = |_: &Editor| Some(Role::Inspector);
    c.bench_function("get_changes_500_edits", |bench| {
        bench.iter(|| day.automerge().get_changes(&[]).len())
    });
    c.bench_function("accept_new_60_staff_500_edits", |bench| {
        bench.iter(|| {
            Visit::accept_new(&saved, &server, &writers, usize::MAX)
                .expect("accepted")
                .1
                .len()
        })
    });
    c.bench_function("change_index_500_edits", |bench| {
        bench.iter(|| day.change_index().1.len())
    });
    let mine = day.changes_by(&[], &device);
    c.bench_function("seq_ranges_500_edits", |bench| {
        bench.iter(|| day.seq_ranges(&mine).expect("ranges").len())
    });
    let ranges = day.seq_ranges(&mine).expect("ranges");
    c.bench_function("hashes_in_ranges_500_edits", |bench| {
        bench.iter(|| day.hashes_in_ranges(&ranges, &[]).expect("hashes").len())
    });
}

criterion_group!(core, benches);
criterion_main!(core);
