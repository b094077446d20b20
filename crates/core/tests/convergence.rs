//! Property: replicas that apply random domain operations and merge in any
//! order converge to identical documents, tallies and conflict lists, and no
//! concurrently written value is dropped.

mod common;

use common::*;
use kiemtra_core::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const STAFF: usize = 4;
const CHECKS: [&str; 3] = ["tthc-posted", "hotline", "dossier-book"];

#[derive(Debug, Clone)]
enum Op {
    Attendance(usize, u8),
    Conduct(usize, u8, bool),
    Check(usize, u8),
    Finding(u8),
    Narrative(u8, String),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..STAFF, 0u8..8).prop_map(|(s, m)| Op::Attendance(s, m)),
        (0..STAFF, 0u8..4, any::<bool>()).prop_map(|(s, k, v)| Op::Conduct(s, k, v)),
        (0..CHECKS.len(), 0u8..3).prop_map(|(c, r)| Op::Check(c, r)),
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

fn apply(v: &mut Visit, op: &Op, last: &mut LastWrites) {
    match op {
        Op::Attendance(s, m) => {
            v.record_attendance(&staff(*s), mark(*m), "", Some(t0()))
                .expect("attendance");
            last.insert(
                FieldRef::Attendance { staff: staff(*s) },
                FieldValue::Attendance(Attendance::new(mark(*m), "", t0()).expect("a")),
            );
        }
        Op::Conduct(s, k, ok) => {
            let kind = ConductKind::ALL[*k as usize];
            let result = if *ok {
                ConductResult::Compliant
            } else {
                ConductResult::Violation
            };
            v.record_conduct(&staff(*s), kind, result, "")
                .expect("conduct");
            last.insert(
                FieldRef::Conduct {
                    staff: staff(*s),
                    check: kind,
                },
                FieldValue::Conduct(ConductEntry {
                    result,
                    note: String::new(),
                }),
            );
        }
        Op::Check(c, r) => {
            let result = CheckResult::ALL[*r as usize];
            v.record_check(&check(CHECKS[*c]), result, "")
                .expect("check");
            last.insert(
                FieldRef::OfficeCheck {
                    check: check(CHECKS[*c]),
                },
                FieldValue::OfficeCheck(CheckEntry {
                    result,
                    note: String::new(),
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
        let base = create(STAFF);
        let mut replicas: Vec<Visit> = (0..3)
            .map(|i| replica(&base, &format!("insp-{i}"), &format!("dev-{i}"), i as i64))
            .collect();
        let mut last: Vec<LastWrites> = vec![LastWrites::new(); 3];
        let mut findings = 0;
        for (i, ops) in ops.iter().enumerate() {
            for op in ops {
                apply(&mut replicas[i], op, &mut last[i]);
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

        // Every replica's last write to a field is shown or is a conflict candidate,
        // and every candidate is some replica's last write.
        let state = &states[0];
        let mut fields: BTreeSet<&FieldRef> = BTreeSet::new();
        for l in &last { fields.extend(l.keys()); }
        for field in fields {
            let written: BTreeSet<String> = last.iter().filter_map(|l| l.get(field)).map(|v| format!("{v:?}")).collect();
            let shown: BTreeSet<String> = match state.conflicts().into_iter().find(|c| &c.field == field) {
                Some(c) => c.candidates.iter().map(|c| format!("{:?}", c.value)).collect(),
                None => state.field_value(field).into_iter().map(|v| format!("{:?}", v.value)).collect(),
            };
            prop_assert_eq!(written, shown, "field {}", field);
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
