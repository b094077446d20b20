//! The visit document: recording, validation, merging, conflicts, approval.

mod common;

use common::*;
use kiemtra_core::*;

#[test]
fn a_new_visit_has_its_roster_template_and_draft_status() {
    let v = create(12);
    let s = v.state().expect("state");
    assert_eq!(
        s.schema, 1,
        "a visit of pass/fail checks only keeps schema 1"
    );
    assert_eq!(s.staff.len(), 12);
    assert_eq!(s.status(), VisitStatus::Draft);
    assert_eq!(s.meta.unit.name, "UBND phường An Bình");
    assert_eq!(s.meta.template_version, 1);
    let t = v.tally().expect("tally");
    assert_eq!((t.payroll, t.unrecorded, t.present), (11, 11, 0));
}

#[test]
fn tallies_follow_attendance() {
    let mut v = create(10);
    v.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("rec");
    v.record_attendance(&staff(1), AttendanceMark::Late, "đến 7h45", None)
        .expect("rec");
    v.record_attendance(&staff(2), absent(AbsenceReason::BusinessTrip), "", None)
        .expect("rec");
    v.record_attendance(&staff(3), absent(AbsenceReason::Training), "", None)
        .expect("rec");
    // Staff 9 is not on the payroll: recorded, but not counted.
    v.record_attendance(&staff(9), absent(AbsenceReason::Unexcused), "", None)
        .expect("rec");
    let t = v.tally().expect("tally");
    assert_eq!(t.payroll, 9);
    assert_eq!(t.present, 2);
    assert_eq!(t.late, 1);
    assert_eq!(t.absent, 2);
    assert_eq!(t.unrecorded, 5);
    assert_eq!(t.reason_count(AbsenceReason::BusinessTrip), 1);
    assert_eq!(t.reason_count(AbsenceReason::Unexcused), 0);
    assert_eq!(t.present_pct().format(Lang::Vi), "22,22");
    assert_eq!(
        t.reason_pct(AbsenceReason::Training).format(Lang::En),
        "50.00"
    );
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let mut v = create(3);
    let heads = v.heads();
    let before = v.save();
    let unknown = StaffId::parse("s-999").expect("id");
    assert_eq!(
        v.record_attendance(&unknown, AttendanceMark::Present, "", None),
        Err(Error::UnknownStaff("s-999".into()))
    );
    assert_eq!(
        v.record_check(&check("no-such-check"), CheckResult::Pass, ""),
        Err(Error::UnknownCheck("no-such-check".into()))
    );
    assert!(matches!(
        v.record_attendance(
            &staff(0),
            AttendanceMark::Present,
            &"x".repeat(MAX_NOTE + 1),
            None
        ),
        Err(Error::TooLong { .. })
    ));
    assert_eq!(
        v.record_attendance(&staff(0), absent(AbsenceReason::Other), "", None),
        Err(Error::NoteRequired)
    );
    assert!(matches!(
        v.add_staff(StaffMember {
            id: StaffId::generate(),
            name: "   ".into(),
            position: String::new(),
            category: StaffCategory::Contract,
            on_payroll: false,
            found_on_site: true,
        }),
        Err(Error::Empty {
            field: "staff name"
        })
    ));
    assert!(matches!(
        v.add_staff(roster(1).remove(0)),
        Err(Error::DuplicateStaff(_))
    ));
    assert!(matches!(
        v.add_finding(NewFinding {
            category: "Niêm yết".into(),
            severity: Severity::Minor,
            text: "".into(),
            recommendation: String::new(),
            related_staff: vec![],
        }),
        Err(Error::Empty {
            field: "finding text"
        })
    ));
    assert!(matches!(
        v.add_finding(NewFinding {
            category: "Kỷ luật".into(),
            severity: Severity::Minor,
            text: "Vắng không lý do".into(),
            recommendation: String::new(),
            related_staff: vec![unknown.clone()],
        }),
        Err(Error::UnknownStaff(_))
    ));
    assert!(matches!(
        v.update_finding(
            &FindingId::parse("f-nope").expect("id"),
            FindingValue::Withdrawn(true)
        ),
        Err(Error::UnknownFinding(_))
    ));
    assert!(matches!(
        v.splice_narrative(5, 0, "x"),
        Err(Error::NarrativeRange { .. })
    ));
    assert!(matches!(
        v.approve(""),
        Err(Error::InvalidTransition {
            from: "draft",
            to: "approved"
        })
    ));
    assert!(matches!(v.return_visit("  "), Err(Error::Empty { .. })));
    assert!(matches!(
        v.resolve(&FieldRef::Status, 0),
        Err(Error::NoConflict(_))
    ));
    assert!(matches!(
        v.attach_evidence(
            &check("no-such-check"),
            &EvidenceHash::parse(&"a".repeat(64)).expect("hash")
        ),
        Err(Error::UnknownCheck(_))
    ));
    assert_eq!(
        v.heads(),
        heads,
        "a refused operation must not add a change"
    );
    assert_eq!(
        v.save(),
        before,
        "a refused operation must not change the document"
    );
}

#[test]
fn creation_refuses_bad_rosters_and_templates() {
    let s = session("sup-1", "dev-sup", 0);
    let mut dup = new_visit(3);
    dup.roster.push(dup.roster[0].clone());
    assert!(matches!(
        Visit::create(dup, &template(), &s),
        Err(Error::DuplicateStaff(_))
    ));
    let mut t = template();
    t.format = 9;
    assert!(matches!(
        Visit::create(new_visit(3), &t, &s),
        Err(Error::UnknownTemplateFormat { found: 9, .. })
    ));
    let mut big = new_visit(0);
    big.roster = roster(MAX_STAFF + 1);
    assert!(matches!(
        Visit::create(big, &template(), &s),
        Err(Error::RosterTooLarge(..))
    ));
}

#[test]
fn text_is_stored_as_nfc() {
    let mut v = create(1);
    let nfd_name = "Tr\u{1ea7}n Th\u{1ecb} Nga\u{300}"; // "Trần Thị Ngà" with a combining grave
    let id = StaffId::generate();
    v.add_staff(
        StaffMember::new(id.clone(), nfd_name, "", StaffCategory::Contract, false).expect("staff"),
    )
    .expect("add");
    let s = v.state().expect("state");
    assert_eq!(s.staff_name(&id), "Trần Thị Ngà");
    assert!(s.staff[&id].value.found_on_site);
    v.set_narrative("Cu\u{300}ng ki\u{1ec3}m tra")
        .expect("narrative");
    assert_eq!(v.state().expect("state").narrative, "Cùng kiểm tra");
}

#[test]
fn independent_edits_merge_without_conflict() {
    let base = create(6);
    let mut a = replica(&base, "insp-a", "dev-a", 10);
    let mut b = replica(&base, "insp-b", "dev-b", 12);
    a.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("a");
    a.record_check(&check("tthc-posted"), CheckResult::Fail, "thiếu 3 thủ tục")
        .expect("a");
    a.set_narrative("Đoàn đến lúc 7 giờ 30.").expect("a");
    b.record_attendance(&staff(1), absent(AbsenceReason::Sick), "", None)
        .expect("b");
    b.record_conduct(&staff(0), ConductKind::Badge, ConductResult::Violation, "")
        .expect("b");
    b.record_check(&check("hotline"), CheckResult::Pass, "")
        .expect("b");
    let fa = a
        .add_finding(NewFinding {
            category: "Niêm yết".into(),
            severity: Severity::Moderate,
            text: "Chưa niêm yết đầy đủ TTHC".into(),
            recommendation: "Bổ sung ngay".into(),
            related_staff: vec![],
        })
        .expect("finding a");
    let fb = b
        .add_finding(NewFinding {
            category: "Kỷ luật".into(),
            severity: Severity::Minor,
            text: "Một công chức không đeo thẻ".into(),
            recommendation: String::new(),
            related_staff: vec![staff(0)],
        })
        .expect("finding b");
    a.merge(&b).expect("merge");
    b.merge(&a).expect("merge");
    let (sa, sb) = (a.state().expect("a"), b.state().expect("b"));
    assert_eq!(sa, sb);
    assert!(sa.conflicts().is_empty(), "{:?}", sa.conflicts());
    assert_eq!(sa.attendance.len(), 2);
    assert_eq!(sa.checks.len(), 2);
    assert_eq!(sa.conduct.len(), 1);
    assert!(sa.findings.contains_key(&fa) && sa.findings.contains_key(&fb));
}

#[test]
fn narrative_edits_to_different_parts_both_survive() {
    let mut base = create(1);
    base.set_narrative("Mở đầu. Kết luận.").expect("n");
    let mut a = replica(&base, "insp-a", "dev-a", 10);
    let mut b = replica(&base, "insp-b", "dev-b", 10);
    a.splice_narrative(0, 0, "Sáng 31/8: ").expect("a");
    b.set_narrative("Mở đầu. Kết luận: cần chấn chỉnh.")
        .expect("b");
    a.merge(&b).expect("merge");
    let text = a.state().expect("state").narrative;
    assert_eq!(text, "Sáng 31/8: Mở đầu. Kết luận: cần chấn chỉnh.");
}

#[test]
fn concurrent_different_values_are_a_listed_conflict_until_resolved() {
    let base = create(4);
    let mut a = replica(&base, "insp-a", "dev-a", 10);
    let mut b = replica(&base, "insp-b", "dev-b", 11);
    a.record_attendance(&staff(2), AttendanceMark::Present, "", None)
        .expect("a");
    b.record_attendance(
        &staff(2),
        absent(AbsenceReason::BusinessTrip),
        "đi Hà Nội",
        None,
    )
    .expect("b");
    // Same value on both sides is not a conflict.
    a.record_check(&check("hotline"), CheckResult::Pass, "")
        .expect("a");
    b.record_check(&check("hotline"), CheckResult::Pass, "")
        .expect("b");
    a.merge(&b).expect("merge");
    b.merge(&a).expect("merge");
    let ca = a.conflicts().expect("conflicts");
    assert_eq!(ca, b.conflicts().expect("conflicts"));
    assert_eq!(ca.len(), 1);
    let c = &ca[0];
    assert_eq!(c.field, FieldRef::Attendance { staff: staff(2) });
    assert_eq!(c.candidates.len(), 2);
    let who: Vec<&str> = c.candidates.iter().map(|x| x.stamp.by.as_str()).collect();
    assert!(who.contains(&"insp-a") && who.contains(&"insp-b"));
    // The shown value is the same on both replicas.
    assert_eq!(
        a.state().expect("a").attendance[&staff(2)].winner,
        b.state().expect("b").attendance[&staff(2)].winner
    );
    // Approval is refused while a conflict is open.
    let mut sup = replica(&a, "sup-1", "dev-sup", 30);
    sup.submit("").expect("submit");
    assert_eq!(sup.approve(""), Err(Error::UnresolvedConflicts(1)));
    // Resolve by choosing the business-trip record.
    let idx = c
        .candidates
        .iter()
        .position(|x| matches!(x.value, FieldValue::Attendance(ref at) if at.mark == absent(AbsenceReason::BusinessTrip)))
        .expect("candidate");
    assert!(matches!(
        sup.resolve(&c.field, 7),
        Err(Error::NoSuchCandidate { count: 2, .. })
    ));
    sup.resolve(&c.field, idx).expect("resolve");
    assert!(sup.conflicts().expect("c").is_empty());
    a.merge(&sup).expect("merge");
    assert!(a.conflicts().expect("c").is_empty());
    assert_eq!(
        a.state().expect("a").attendance[&staff(2)].value().mark,
        absent(AbsenceReason::BusinessTrip)
    );
    let approval = sup.approve("Đồng ý").expect("approve");
    assert_eq!(sup.state().expect("s").status(), VisitStatus::Approved);
    assert_eq!(approval.head_hashes().expect("heads").len(), 1);
}

#[test]
fn approval_seals_a_point_and_later_edits_are_flagged() {
    let mut v = create(3);
    v.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("rec");
    v.submit("").expect("submit");
    let approval = v.approve("").expect("approve");
    assert!(matches!(
        v.submit(""),
        Err(Error::InvalidTransition {
            from: "approved",
            ..
        })
    ));
    v.record_attendance(&staff(1), absent(AbsenceReason::Leave), "", None)
        .expect("late edit");
    let approved = v.approved_state().expect("approved").expect("some");
    assert_eq!(
        approved.attendance.len(),
        1,
        "the approved state excludes the later edit"
    );
    assert_eq!(approved.meta, v.state().expect("s").meta);
    let history = v.history().expect("history");
    let last = history.last().expect("last");
    assert!(last.after_approval);
    let approving = history.iter().find(|h| {
        h.changes
            .iter()
            .any(|c| matches!(c, DomainChange::Approved { .. }))
    });
    assert!(approving.is_some_and(|h| !h.after_approval));
    assert_eq!(history.iter().filter(|h| h.after_approval).count(), 1);
    assert_eq!(approval.heads.len(), 1);
}

#[test]
fn return_and_resubmit() {
    let mut v = create(2);
    v.submit("").expect("submit");
    v.return_visit("Thiếu chữ ký").expect("return");
    let s = v.state().expect("s");
    assert_eq!(s.status(), VisitStatus::Returned);
    assert_eq!(s.status.value().note, "Thiếu chữ ký");
    v.submit("Đã bổ sung").expect("resubmit");
    assert_eq!(v.state().expect("s").status(), VisitStatus::Submitted);
}

#[test]
fn newer_schema_is_refused() {
    use automerge::transaction::Transactable;
    let v = create(1);
    let mut doc = automerge::Automerge::load(&v.save()).expect("load");
    let mut tx = doc.transaction();
    tx.put(
        automerge::ROOT,
        "schema",
        automerge::ScalarValue::Uint(SCHEMA_VERSION + 1),
    )
    .expect("put");
    tx.commit();
    let err = Visit::load(&doc.save(), &session("x", "y", 0)).expect_err("refused");
    assert_eq!(
        err,
        Error::NewerSchema {
            found: SCHEMA_VERSION + 1,
            supported: SCHEMA_VERSION
        }
    );
    assert!(err.to_string().contains("Update the app"));
    // Merging a newer replica into an older one is refused too.
    let mut older = replica(&v, "a", "b", 0);
    assert!(matches!(
        older.load_incremental(&doc.save()),
        Err(Error::NewerSchema { .. })
    ));
    assert_eq!(older.state().expect("still readable").schema, 1);
}

#[test]
fn non_visit_bytes_are_refused() {
    assert!(matches!(
        Visit::load(b"not automerge", &session("x", "y", 0)),
        Err(Error::NotAVisit(_))
    ));
    let empty = automerge::Automerge::new().save();
    assert!(matches!(
        Visit::load(&empty, &session("x", "y", 0)),
        Err(Error::NotAVisit(_))
    ));
}

#[test]
fn evidence_is_a_set() {
    let mut v = create(1);
    let h = EvidenceHash::parse(&"ab".repeat(32)).expect("hash");
    v.attach_evidence(&check("tthc-posted"), &h)
        .expect("attach");
    let heads = v.heads();
    v.attach_evidence(&check("tthc-posted"), &h).expect("again");
    assert_eq!(v.heads(), heads, "attaching twice adds nothing");
    assert_eq!(
        v.state().expect("s").evidence[&check("tthc-posted")].len(),
        1
    );
    v.detach_evidence(&check("tthc-posted"), &h)
        .expect("detach");
    assert!(v.state().expect("s").evidence.is_empty());
    assert!(v.detach_evidence(&check("tthc-posted"), &h).is_err());
}

#[test]
fn findings_are_withdrawn_not_deleted() {
    let mut v = create(2);
    let f = v
        .add_finding(NewFinding {
            category: "Hồ sơ".into(),
            severity: Severity::Serious,
            text: "Hồ sơ bị ách tắc do lãnh đạo đi vắng".into(),
            recommendation: "Kiểm điểm trách nhiệm".into(),
            related_staff: vec![staff(1), staff(1)],
        })
        .expect("add");
    let s = v.state().expect("s");
    assert_eq!(s.findings[&f].related_staff(), &[staff(1)]);
    assert_eq!(s.findings[&f].severity(), Some(Severity::Serious));
    v.update_finding(&f, FindingValue::Withdrawn(true))
        .expect("withdraw");
    let s = v.state().expect("s");
    assert!(s.findings[&f].withdrawn());
    assert_eq!(
        s.findings[&f].text(),
        "Hồ sơ bị ách tắc do lãnh đạo đi vắng"
    );
}

#[test]
fn author_and_time_are_on_every_change_and_survive_save_and_load() {
    let mut v = create(2);
    v.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("rec");
    let reloaded = replica(&v, "other", "dev-other", 0);
    let history = reloaded.history().expect("history");
    assert_eq!(history.len(), 2);
    for h in &history {
        let author = h.author.as_ref().expect("author recorded");
        assert_eq!(author.user.as_str(), "sup-1");
        assert_eq!(author.device.as_str(), "dev-sup");
        assert!(h.device_time >= t0(), "device time set: {}", h.device_time);
    }
}

#[test]
fn bytes_of_another_visit_or_garbage_are_refused_on_merge() {
    let mut v = create(2);
    let heads = v.heads();
    let mut other_new = new_visit(2);
    other_new.visit_id = VisitId::parse("v-other").expect("id");
    let other = Visit::create(other_new, &template(), &session("x", "dev-x", 0)).expect("other");
    assert!(matches!(
        v.load_incremental(&other.save()),
        Err(Error::NotAVisit(_))
    ));
    assert!(matches!(v.merge(&other), Err(Error::NotAVisit(_))));
    // Same id, created separately: still a different document.
    let twin = Visit::create(new_visit(2), &template(), &session("x", "dev-x", 0)).expect("twin");
    assert!(matches!(v.merge(&twin), Err(Error::NotAVisit(_))));
    assert!(matches!(
        v.load_incremental(b"garbage"),
        Err(Error::NotAVisit(_))
    ));
    let mut b = replica(&v, "b", "dev-b", 0);
    b.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("rec");
    let changes = b.save_after(&heads);
    assert!(matches!(
        v.load_incremental(&changes[..changes.len() - 2]),
        Err(Error::NotAVisit(_))
    ));
    assert_eq!(v.heads(), heads);
    v.load_incremental(&changes).expect("whole changes apply");
    assert_eq!(v.heads(), b.heads());
}

#[test]
fn changes_whose_dependencies_are_missing_are_refused_as_such() {
    let v = create(2);
    let mut b = replica(&v, "b", "dev-b", 0);
    let base = b.heads();
    b.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("first");
    let middle = b.heads();
    b.record_attendance(&staff(1), AttendanceMark::Late, "", None)
        .expect("second");
    // Only the second change, without the first it depends on.
    let second_only = b.save_after(&middle);
    let mut a = replica(&v, "a", "dev-a", 0);
    let before = a.save();
    assert!(matches!(
        a.load_incremental(&second_only),
        Err(Error::MissingChanges(_))
    ));
    assert_eq!(a.save(), before);
    a.load_incremental(&b.save_after(&base))
        .expect("both changes apply");
    assert_eq!(a.heads(), b.heads());
    // Applying them again changes nothing (idempotent).
    a.load_incremental(&b.save_after(&base)).expect("again");
    assert_eq!(a.heads(), b.heads());
}

#[test]
fn roles_are_enforced_locally_before_anything_is_written() {
    let base = create(3);
    let inspector = |user: &str, device: &str| session(user, device, 5).with_role(Role::Inspector);
    let mut a = Visit::load(&base.save(), &inspector("insp-a", "dev-a")).expect("a");
    let mut b = Visit::load(&base.save(), &inspector("insp-b", "dev-b")).expect("b");
    a.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("a");
    b.record_attendance(&staff(0), AttendanceMark::Late, "", None)
        .expect("b");
    a.merge(&b).expect("merge");
    let heads = a.heads();
    let field = FieldRef::Attendance { staff: staff(0) };
    assert_eq!(
        a.resolve(&field, 0),
        Err(Error::SupervisorOnly("settle a conflict"))
    );
    assert_eq!(
        a.record_attendance(&staff(0), AttendanceMark::Present, "", None),
        Err(Error::SupervisorOnly("settle a conflict")),
        "overwriting a field in conflict settles it"
    );
    a.record_attendance(&staff(1), AttendanceMark::Present, "", None)
        .expect("other fields stay writable");
    a.submit("").expect("inspectors submit");
    assert_eq!(
        a.return_visit("x"),
        Err(Error::SupervisorOnly("return the visit"))
    );
    assert!(matches!(
        a.approve(""),
        Err(Error::SupervisorOnly("approve the visit"))
    ));
    assert_eq!(a.heads().len(), 1);
    assert_ne!(a.heads(), heads);

    for (role, name) in [
        (Role::Auditor, "auditor"),
        (Role::Administrator, "administrator"),
    ] {
        let mut r = Visit::load(&base.save(), &session("u", "d", 0).with_role(role)).expect("load");
        let before = r.heads();
        assert_eq!(
            r.record_attendance(&staff(1), AttendanceMark::Present, "", None),
            Err(Error::ReadOnlyRole(name))
        );
        assert_eq!(r.set_narrative("x"), Err(Error::ReadOnlyRole(name)));
        assert!(matches!(
            r.add_finding(NewFinding {
                category: "x".into(),
                severity: Severity::Minor,
                text: "x".into(),
                recommendation: String::new(),
                related_staff: vec![],
            }),
            Err(Error::ReadOnlyRole(_))
        ));
        assert_eq!(r.heads(), before);
        assert!(r.state().is_ok(), "{name}s still read");
    }
}

#[test]
fn the_roster_keeps_its_order_then_staff_found_on_site_as_added() {
    let member = |id: &str, name: &str| {
        StaffMember::new(
            StaffId::parse(id).expect("id"),
            name,
            "Chuyên viên",
            StaffCategory::CivilServant,
            true,
        )
        .expect("member")
    };
    let mut new = new_visit(0);
    // Not in id order: the order the unit's list gives.
    new.roster = vec![
        member("s-030", "Trần Văn Ba"),
        member("s-010", "Nguyễn Thị Một"),
        member("s-020", "Lê Văn Hai"),
    ];
    let mut v = Visit::create(new, &template(), &session("sup-1", "dev-sup", 0)).expect("create");
    v.add_staff(member("s-005", "Phạm Văn Năm"))
        .expect("found on site");
    v.add_staff(member("s-040", "Võ Thị Bốn"))
        .expect("found on site");
    let order: Vec<String> = v
        .state()
        .expect("state")
        .roster
        .iter()
        .map(|id| id.to_string())
        .collect();
    assert_eq!(order, ["s-030", "s-010", "s-020", "s-005", "s-040"]);
    // Any replica reads the same order.
    let copy = replica(&v, "insp-a", "phone-a", 3);
    assert_eq!(
        copy.state().expect("state").roster,
        v.state().expect("state").roster
    );
}

// ----- valued office checks ---------------------------------------------

#[test]
fn valued_checks_are_recorded_with_a_value_of_their_kind() {
    let mut v = create_valued(2);
    assert_eq!(
        v.state().expect("state").schema,
        2,
        "valued checks: schema 2"
    );
    v.record_check_value(
        &check("satisfaction-rate"),
        CheckResult::Pass,
        CheckValue::Number(96),
        "theo thiết bị đánh giá",
    )
    .expect("number");
    v.record_check_value(
        &check("one-stop-mode"),
        CheckResult::Pass,
        CheckValue::Choice(choice("modern")),
        "",
    )
    .expect("choice");
    // NFD input is stored NFC and trimmed.
    v.record_check_value(
        &check("e-office-software"),
        CheckResult::Pass,
        CheckValue::Text(" Pha\u{302}\u{300}n me\u{302}\u{300}m VNPT ".into()),
        "",
    )
    .expect("text");
    v.record_check(&check("hotline"), CheckResult::Fail, "")
        .expect("a pass/fail check as before");
    let s = v.state().expect("state");
    assert_eq!(
        s.checks[&check("satisfaction-rate")].value().value,
        Some(CheckValue::Number(96))
    );
    assert_eq!(
        s.checks[&check("e-office-software")].value().value,
        Some(CheckValue::Text("Phần mềm VNPT".into()))
    );
    assert_eq!(s.checks[&check("hotline")].value().value, None);
    // The history says what was measured, with the unit and the label.
    let lines: Vec<String> = v
        .history()
        .expect("history")
        .iter()
        .flat_map(|h| h.changes.iter().map(|c| c.describe(Lang::Vi, &s)))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("đạt: 96% – theo thiết bị đánh giá")),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("đạt: Một cửa hiện đại, điện tử")),
        "{lines:?}"
    );
    // A visit of schema 2 loads in this build.
    let reloaded = Visit::load(&v.save(), &session("x", "y", 0)).expect("load");
    assert_eq!(reloaded.state().expect("state"), s);
}

#[test]
fn a_value_that_does_not_fit_its_check_is_refused_and_nothing_is_written() {
    let mut v = create_valued(1);
    let before = v.heads();
    let rate = check("satisfaction-rate");
    let cases: Vec<(Result<()>, &str)> = vec![
        (
            v.record_check_value(&rate, CheckResult::Pass, CheckValue::Number(101), ""),
            "out of its range (0 to 100)",
        ),
        (
            v.record_check_value(&rate, CheckResult::Pass, CheckValue::Text("96".into()), ""),
            "takes a number, not a text",
        ),
        (
            v.record_check(&rate, CheckResult::Pass, ""),
            "needs a number unless it is not applicable",
        ),
        (
            v.record_check_value(&rate, CheckResult::NotApplicable, CheckValue::Number(5), ""),
            "not applicable, so it takes no value",
        ),
        (
            v.record_check_value(
                &check("one-stop-mode"),
                CheckResult::Pass,
                CheckValue::Choice(choice("luxury")),
                "",
            ),
            "has no option \"luxury\"",
        ),
        (
            v.record_check_value(
                &check("e-office-software"),
                CheckResult::Pass,
                CheckValue::Text("x".repeat(MAX_CHECK_TEXT + 1)),
                "",
            ),
            "too long",
        ),
        (
            v.record_check_value(
                &check("hotline"),
                CheckResult::Pass,
                CheckValue::Number(1),
                "",
            ),
            "takes no value (it is a pass/fail check), not a number",
        ),
        (
            v.record_check_value(
                &check("no-such-check"),
                CheckResult::Pass,
                CheckValue::Number(1),
                "",
            ),
            "unknown office check",
        ),
    ];
    for (got, says) in cases {
        let e = got.expect_err(says);
        assert!(e.to_string().contains(says), "{e} should say {says:?}");
    }
    assert_eq!(v.heads(), before, "nothing written");
    // Not applicable without a value is a valid record of a valued check.
    v.record_check(&rate, CheckResult::NotApplicable, "không có thiết bị")
        .expect("not applicable");
}

#[test]
fn concurrent_records_of_a_valued_check_conflict_only_when_their_values_differ() {
    let base = create_valued(1);
    let inspector = |user: &str, offset: i64| {
        let s = session(user, &format!("phone-{user}"), offset).with_role(Role::Inspector);
        Visit::load(&base.save(), &s).expect("replica")
    };
    let mut a = inspector("insp-a", 0);
    let mut b = inspector("insp-b", 3);
    let rate = check("satisfaction-rate");
    let mode = check("one-stop-mode");
    // Same result and value, different notes: one observation.
    a.record_check_value(
        &mode,
        CheckResult::Pass,
        CheckValue::Choice(choice("modern")),
        "",
    )
    .expect("a");
    b.record_check_value(
        &mode,
        CheckResult::Pass,
        CheckValue::Choice(choice("modern")),
        "có máy lấy số",
    )
    .expect("b");
    // Same result, different numbers: a conflict.
    a.record_check_value(&rate, CheckResult::Pass, CheckValue::Number(96), "")
        .expect("a");
    b.record_check_value(&rate, CheckResult::Pass, CheckValue::Number(99), "")
        .expect("b");
    a.merge(&b).expect("merge");
    b.merge(&a).expect("merge");
    let s = a.state().expect("state");
    assert_eq!(s, b.state().expect("state"));
    assert!(!s.checks[&mode].in_conflict());
    assert_eq!(s.checks[&mode].agreeing.len(), 1);
    let conflicts = s.conflicts();
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(
        conflicts[0].field,
        FieldRef::OfficeCheck {
            check: rate.clone()
        }
    );
    assert!(conflicts[0].differences().contains(&Aspect::Observation));
    let shown: Vec<String> = conflicts[0]
        .candidates
        .iter()
        .map(|c| c.value.describe_for(&conflicts[0].field, Lang::En, &s))
        .collect();
    let mut sorted = shown.clone();
    sorted.sort();
    assert_eq!(sorted, ["pass: 96%", "pass: 99%"]);
    // An inspector may not settle it; the supervisor does, with a candidate.
    assert!(matches!(
        a.record_check_value(&rate, CheckResult::Pass, CheckValue::Number(97), ""),
        Err(Error::SupervisorOnly(_))
    ));
    let mut sup = replica(&a, "sup-1", "dev-sup", 10);
    sup.resolve(&conflicts[0].field, 1).expect("resolve");
    let s = sup.state().expect("state");
    assert!(s.conflicts().is_empty());
    assert_eq!(
        s.checks[&rate].value(),
        &match &conflicts[0].candidates[1].value {
            FieldValue::OfficeCheck(c) => c.clone(),
            other => panic!("{other:?}"),
        }
    );
}
