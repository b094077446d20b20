//! Reading a sender's heads and confirmation off the bytes it sent (sync
//! protocol flag bit 2).

mod common;

use common::*;
use kiemtra_core::*;

fn sorted(v: Vec<ChangeHash>) -> Heads {
    Heads::new(v)
}

#[test]
fn changes_imply_their_heads_and_the_confirmation_they_build_on() {
    let mut a = create(5);
    let confirmed = a.heads();
    for i in 0..3 {
        a.record_attendance(&staff(i), AttendanceMark::Present, "", None)
            .expect("record");
    }
    let implied = implied_by(&a.save_after(&confirmed)).expect("implied");
    assert_eq!(implied.heads, sorted(a.heads()));
    assert_eq!(implied.confirmed, Some(sorted(confirmed)));
}

#[test]
fn concurrent_branches_give_two_heads_and_both_bases() {
    let base = create(5);
    let mut a = replica(&base, "u-a", "d-a", 1);
    let mut b = replica(&base, "u-b", "d-b", 2);
    a.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("a");
    b.record_attendance(&staff(1), AttendanceMark::Late, "", None)
        .expect("b");
    let a_heads = a.heads();
    a.merge(&b).expect("merge");
    // Everything after the base: both branches, so two heads.
    let implied = implied_by(&a.save_after(&base.heads())).expect("implied");
    assert_eq!(implied.heads.len(), 2);
    assert_eq!(implied.heads, sorted(a.heads()));
    assert_eq!(implied.confirmed, Some(sorted(base.heads())));
    // Only b's branch after a's heads: it builds on the base, not on a's
    // change, so the confirmation it implies is the base — which is why a
    // device sends implied heads only when they match exactly.
    let implied = implied_by(&a.save_after(&a_heads)).expect("implied");
    assert_eq!(implied.confirmed, Some(sorted(base.heads())));
    assert_ne!(implied.heads, sorted(a.heads()));
}

#[test]
fn a_whole_document_implies_its_heads_and_no_confirmation() {
    let mut a = create(5);
    a.record_attendance(&staff(2), AttendanceMark::Present, "", None)
        .expect("record");
    let implied = implied_by(&a.save()).expect("implied");
    assert_eq!(implied.heads, sorted(a.heads()));
    assert_eq!(implied.confirmed, None);
}

#[test]
fn empty_or_unreadable_bytes_imply_nothing() {
    assert!(implied_by(&[]).is_err());
    assert!(implied_by(b"not automerge").is_err());
    let mut a = create(5);
    let before = a.heads();
    a.record_attendance(&staff(2), AttendanceMark::Present, "", None)
        .expect("record");
    let mut bytes = a.save_after(&before);
    bytes.truncate(bytes.len() - 3);
    assert!(implied_by(&bytes).is_err());
}
