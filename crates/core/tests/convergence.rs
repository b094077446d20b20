//! Property: replicas that apply random domain operations and merge in any
//! order converge to identical documents, tallies and conflict lists, and no
//! concurrently written value is dropped. Replicas observe at their own
//! moments and write their own notes: concurrent records of the same
//! observation merge without a conflict, showing the earliest; only
//! different observations are a conflict.

mod common;

use common::*;
use kiemtra_core::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const STAFF: usize = 4;
/// Pass/fail checks, then valued ones (a number, a choice, a text).
const CHECKS: [&str; 6] = [
    "tthc-posted",
    "hotline",
    "dossier-book",
    "satisfaction-rate",
    "one-stop-mode",
    "e-office-software",
];

#[derive(Debug, Clone)]
enum Op {
    Attendance(usize, u8),
    Conduct(usize, u8, bool),
    /// A check, a result, and which of a few values (valued checks only).
    Check(usize, u8, u8),
    Finding(u8),
    Narrative(u8, String),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..STAFF, 0u8..8).prop_map(|(s, m)| Op::Attendance(s, m)),
        (0..STAFF, 0u8..4, any::<bool>()).prop_map(|(s, k, v)| Op::Conduct(s, k, v)),
        (0..CHECKS.len(), 0u8..3, 0u8..2).prop_map(|(c, r, x)| Op::Check(c, r, x)),
        (0u8..3).prop_map(Op::Finding),
        (0u8..20, "[a-zđơư ]{0,6}").prop_map(|(p, s)| Op::Narrative(p, s)),
    ]
}

fn mark(m: u8) -> AttendanceMark {
    match m {
        0 => AttendanceMark::Present,
        1 => AttendanceMark::Late,
        _ => AttendanceMark::Absent(AbsenceReason::ALL[(m as usize - 2) % 5]),
    }
}

/// The value each replica last wrote into each field (its surviving write).
type LastWrites = BTreeMap<FieldRef, FieldValue>;

/// Replica `i`'s note (replica 1 writes one, the others none).
fn note(i: usize) -> &'static str {
    if i == 1 { "ghi chú của tổ 2" } else { "" }
}

fn apply(v: &mut Visit, i: usize, op: &Op, last: &mut LastWrites) {
    match op {
        Op::Attendance(s, m) => {
            // Each replica observes at its own moment.
            let at = t0() + chrono::Duration::minutes(i as i64 * 7);
            v.record_attendance(&staff(*s), mark(*m), note(i), Some(at))
                .expect("attendance");
            last.insert(
                FieldRef::Attendance { staff: staff(*s) },
                FieldValue::Attendance(Attendance::new(mark(*m), note(i), at).expect("a")),
            );
        }
        Op::Conduct(s, k, ok) => {
            let kind = ConductKind::ALL[*k as usize];
            let result = if *ok {
                ConductResult::Compliant
            } else {
                ConductResult::Violation
            };
            v.record_conduct(&staff(*s), kind, result, note(i))
                .expect("conduct");
            last.insert(
                FieldRef::Conduct {
                    staff: staff(*s),
                    check: kind,
                },
                FieldValue::Conduct(ConductEntry {
                    result,
                    note: note(i).into(),
                }),
            );
        }
        Op::Check(c, r, x) => {
            let result = CheckResult::ALL[*r as usize];
            // Two values per valued check, so replicas agree or differ.
            let value = match (CHECKS[*c], result) {
                (_, CheckResult::NotApplicable) => None,
                ("satisfaction-rate", _) => Some(CheckValue::Number(95 + i64::from(*x))),
                ("one-stop-mode", _) => Some(CheckValue::Choice(choice(
                    ["modern", "standard"][*x as usize],
                ))),
                ("e-office-software", _) => Some(CheckValue::Text(
                    ["VNPT iOffice", "Viettel VOffice"][*x as usize].into(),
                )),
                _ => None,
            };
            match value.clone() {
                Some(value) => v.record_check_value(&check(CHECKS[*c]), result, value, note(i)),
                None => v.record_check(&check(CHECKS[*c]), result, note(i)),
            }
            .expect("check");
            last.insert(
                FieldRef::OfficeCheck {
                    check: check(CHECKS[*c]),
                },
                FieldValue::OfficeCheck(CheckEntry {
                    result,
                    value,
                    note: note(i).into(),
                }),
            );
        }
        Op::Finding(sev) => {
            v.add_finding(NewFinding {
                category: "Kỷ luật".into(),
                severity: Severity::ALL[*sev as usize],
                text: "Tồn tại".into(),
                recommendation: String::new(),
                related_staff: vec![],
            })
            .expect("finding");
        }
        Op::Narrative(p, s) => {
            let len = v.state().expect("state").narrative.chars().count();
            v.splice_narrative((*p as usize).min(len), 0, s)
                .expect("narrative");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn replicas_converge_and_keep_every_concurrent_value(
        ops in prop::collection::vec(prop::collection::vec(op(), 0..12), 3),
        order in Just([0usize, 1, 2]).prop_shuffle(),
        order2 in Just([0usize, 1, 2]).prop_shuffle(),
    ) {
        let base = create_valued(STAFF);
        let mut replicas: Vec<Visit> = (0..3)
            .map(|i| replica(&base, &format!("insp-{i}"), &format!("dev-{i}"), i as i64))
            .collect();
        let mut last: Vec<LastWrites> = vec![LastWrites::new(); 3];
        let mut findings = 0;
        for (i, ops) in ops.iter().enumerate() {
            for op in ops {
                apply(&mut replicas[i], i, op, &mut last[i]);
                findings += usize::from(matches!(op, Op::Finding(_)));
            }
        }
        // Merge in two random orders: first into order[0], then spread out in order2.
        let snapshot: Vec<Vec<u8>> = replicas.iter().map(|r| r.save()).collect();
        for &j in &order[1..] {
            let other = Visit::load(&snapshot[j], &session("m", "m", 0)).expect("load");
            replicas[order[0]].merge(&other).expect("merge");
        }
        let hub = replicas[order[0]].save();
        for &j in &order2 {
            let other = Visit::load(&hub, &session("m", "m", 0)).expect("load");
            replicas[j].merge(&other).expect("merge");
        }
        let states: Vec<VisitState> = replicas.iter().map(|r| r.state().expect("state")).collect();
        prop_assert_eq!(&states[0], &states[1]);
        prop_assert_eq!(&states[1], &states[2]);
        prop_assert_eq!(states[0].tally(), states[2].tally());
        prop_assert_eq!(states[0].conflicts(), states[1].conflicts());
        prop_assert_eq!(states[0].findings.len(), findings);
        let mut heads: Vec<_> = replicas.iter().map(|r| { let mut h = r.heads(); h.sort(); h }).collect();
        heads.dedup();
        prop_assert_eq!(heads.len(), 1);

        // Every observation replicas last wrote to a field is shown once
        // (a conflict candidate when they differ), as the earliest record
        // of it, and every candidate is some replica's last write.
        let state = &states[0];
        let mut fields: BTreeSet<&FieldRef> = BTreeSet::new();
        for l in &last { fields.extend(l.keys()); }
        for field in fields {
            let written: Vec<&FieldValue> = last.iter().filter_map(|l| l.get(field)).collect();
            let mut observations: Vec<&FieldValue> = Vec::new();
            for w in &written {
                if !observations.iter().any(|o| o.agrees(w)) {
                    observations.push(w);
                }
            }
            let shown: Vec<FieldValue> = match state.conflicts().into_iter().find(|c| &c.field == field) {
                Some(c) => c.candidates.into_iter().map(|c| c.value).collect(),
                None => state.field_value(field).into_iter().map(|v| v.value).collect(),
            };
            prop_assert_eq!(shown.len(), observations.len(), "field {}: {:?} from {:?}", field, shown, written);
            for s in &shown {
                prop_assert!(written.contains(&s), "field {}: {:?} was never written", field, s);
                if let Some(at) = s.observed_at() {
                    let earliest = written.iter().filter(|w| w.agrees(s)).filter_map(|w| w.observed_at()).min();
                    prop_assert_eq!(Some(at), earliest, "field {} shows a later record", field);
                }
            }
        }

        // Resolving every conflict on one replica clears them everywhere.
        let mut sup = Visit::load(&replicas[0].save(), &session("sup", "dev-sup", 60)).expect("load");
        for c in sup.conflicts().expect("conflicts") {
            sup.resolve(&c.field, c.candidates.len() - 1).expect("resolve");
        }
        for r in &mut replicas {
            r.merge(&sup).expect("merge");
            prop_assert!(r.conflicts().expect("conflicts").is_empty());
        }
    }
}

fn inspector_replica(base: &Visit, user: &str, offset: i64) -> Visit {
    Visit::load(
        &base.save(),
        &session(user, &format!("phone-{user}"), offset).with_role(Role::Inspector),
    )
    .expect("replica")
}

fn everyone(e: &Editor) -> Option<Role> {
    if e.user.as_str().starts_with("insp") {
        Some(Role::Inspector)
    } else {
        Some(Role::Supervisor)
    }
}

#[test]
fn two_groups_marking_one_person_present_is_no_conflict_and_different_marks_are() {
    let base = create(3);
    let mut a = inspector_replica(&base, "insp-a", 0);
    let mut b = inspector_replica(&base, "insp-b", 0);
    let early = t0() + chrono::Duration::minutes(5);
    let later = t0() + chrono::Duration::minutes(9);
    // Both groups find s-000 present, each at its own moment, b with a note.
    a.record_attendance(&staff(0), AttendanceMark::Present, "", Some(later))
        .expect("a");
    b.record_attendance(
        &staff(0),
        AttendanceMark::Present,
        "ngồi tại bàn",
        Some(early),
    )
    .expect("b");
    // They disagree on s-001.
    a.record_attendance(&staff(1), AttendanceMark::Present, "", Some(early))
        .expect("a");
    b.record_attendance(&staff(1), AttendanceMark::Late, "", Some(later))
        .expect("b");
    a.merge(&b).expect("merge");
    b.merge(&a).expect("merge");
    let state = a.state().expect("state");
    assert_eq!(state, b.state().expect("state"), "both show the same");
    let conflicts = state.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].field, FieldRef::Attendance { staff: staff(1) });
    // s-000: the earliest observation shown, the other recorder kept.
    let slot = &state.attendance[&staff(0)];
    assert!(!slot.in_conflict());
    assert_eq!(slot.winner.value.observed_at, early);
    assert_eq!(slot.winner.stamp.by.as_str(), "insp-b");
    assert_eq!(slot.agreeing.len(), 1);
    assert_eq!(slot.agreeing[0].stamp.by.as_str(), "insp-a");
    assert_eq!(slot.agreeing[0].value.observed_at, later);
    // s-000 once, and s-001 (present or late, both "có mặt") once.
    assert_eq!(state.tally().present, 2, "each person counted once");
    assert_eq!(state.tally().unrecorded, 1);
    // Both recorders are in the history.
    let authors: Vec<String> = a
        .history()
        .expect("history")
        .iter()
        .filter_map(|h| h.author.as_ref().map(|e| e.user.to_string()))
        .collect();
    assert!(authors.iter().any(|u| u == "insp-a") && authors.iter().any(|u| u == "insp-b"));
    // The conflict's candidates say what differs.
    let c = &conflicts[0];
    assert_eq!(c.candidates.len(), 2);
    let differs = c.differences();
    assert!(differs.contains(&Aspect::Observation), "{differs:?}");
    assert!(differs.contains(&Aspect::ObservedAt), "{differs:?}");
    assert!(differs.contains(&Aspect::Recorder), "{differs:?}");
    assert!(!differs.contains(&Aspect::Note), "{differs:?}");

    // An inspector may record s-000 again (nothing to settle), here and on
    // the server; not s-001, which only a supervisor settles.
    let (mut server, _) = Visit::accept_new(
        &a.save(),
        &session("server", "server", 0),
        &everyone,
        usize::MAX,
    )
    .expect("the merged visit is accepted");
    let before = a.heads();
    a.record_attendance(&staff(0), AttendanceMark::Late, "", None)
        .expect("an inspector re-records an agreed observation");
    server
        .accept_remote(&a.save_after(&before), &everyone, usize::MAX)
        .expect("the server accepts it");
    let e = a
        .record_attendance(&staff(1), AttendanceMark::Late, "", None)
        .expect_err("an inspector cannot settle s-001");
    assert!(matches!(e, Error::SupervisorOnly(_)), "{e}");
}
