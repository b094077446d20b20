//! History in domain terms, the visit as of a point, and diffs between points.

mod common;

use common::*;
use kiemtra_core::*;

#[test]
fn diff_between_two_points_names_exactly_what_changed() {
    let mut v = create(3);
    v.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("rec");
    v.record_attendance(&staff(1), AttendanceMark::Present, "", None)
        .expect("rec");
    let p1 = v.heads();
    let mut b = replica(&v, "insp-x", "dev-x", 12);
    b.record_attendance(&staff(0), absent(AbsenceReason::BusinessTrip), "", None)
        .expect("rec");
    b.record_check(&check("hotline"), CheckResult::Fail, "không có")
        .expect("rec");
    let p2 = b.heads();
    let diff = b.diff(&p1, &p2).expect("diff");
    assert_eq!(diff.len(), 2, "{diff:?}");
    let state = b.state().expect("state");
    let lines: Vec<String> = diff.iter().map(|d| d.describe(Lang::En, &state)).collect();
    assert!(
        lines.contains(&"Attendance of Nguyễn Văn An 0: present → absent (business trip), by insp-x at 09:13 31/08/2015".to_owned()),
        "{lines:?}"
    );
    let vi: Vec<String> = diff.iter().map(|d| d.describe(Lang::Vi, &state)).collect();
    assert!(
        vi.iter().any(|l| l
            .starts_with("Điểm danh Nguyễn Văn An 0: có mặt → vắng (đi công tác), bởi insp-x lúc")),
        "{vi:?}"
    );
    assert!(
        vi.iter()
            .any(|l| l.contains("(chưa ghi) → không đạt – không có")),
        "{vi:?}"
    );
    // Staff 1 did not change and is not listed.
    assert!(!lines.iter().any(|l| l.contains("Trần Thị Bình 1")));
}

#[test]
fn the_visit_as_of_a_past_point_is_what_was_recorded_then() {
    let mut v = create(3);
    v.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("rec");
    let then = v.heads();
    let snapshot = v.state().expect("state");
    v.record_attendance(&staff(0), absent(AbsenceReason::Sick), "", None)
        .expect("rec");
    v.set_narrative("Sau đó").expect("n");
    assert_eq!(v.state_at(&then).expect("at"), snapshot);
    assert_ne!(v.state().expect("now"), snapshot);
    // By device time: the clock advances a minute per stamp.
    let heads = v.heads_at_time(
        snapshot.attendance[&staff(0)].winner.stamp.at + chrono::Duration::seconds(30),
    );
    assert_eq!(heads, then);
    let unknown: ChangeHash = "00".repeat(32).parse().expect("hash");
    assert!(matches!(
        v.state_at(&[unknown]),
        Err(Error::UnknownHeads(_))
    ));
}

#[test]
fn history_lists_every_change_with_a_domain_summary() {
    let base = create(2);
    let mut a = replica(&base, "insp-a", "dev-a", 10);
    let mut b = replica(&base, "insp-b", "dev-b", 10);
    a.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("a");
    b.record_attendance(&staff(0), AttendanceMark::Late, "", None)
        .expect("b");
    a.merge(&b).expect("merge");
    let history = a.history().expect("history");
    assert_eq!(history.len(), 3);
    assert!(matches!(
        history[0].changes[0],
        DomainChange::VisitCreated { staff: 2, .. }
    ));
    let authors: Vec<String> = history
        .iter()
        .filter_map(|h| h.author.as_ref().map(|e| e.user.to_string()))
        .collect();
    assert_eq!(authors.iter().filter(|u| *u == "insp-a").count(), 1);
    assert_eq!(authors.iter().filter(|u| *u == "insp-b").count(), 1);
    for h in &history[1..] {
        assert_eq!(h.changes.len(), 1, "{:?}", h.changes);
        assert!(matches!(
            h.changes[0],
            DomainChange::Field {
                field: FieldRef::Attendance { .. },
                ..
            }
        ));
    }
    // The merged state shows the conflict; the diff from base says so.
    let diff = a.diff(&base.heads(), &a.heads()).expect("diff");
    assert!(
        matches!(diff[0], DomainChange::Field { candidates: 2, .. }),
        "{diff:?}"
    );
}
