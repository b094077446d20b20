//! The store: durable edits, listing from the index, compaction, deletion,
//! sync state, bad input.

use chrono::NaiveDate;
use kiemtra_core::*;
use kiemtra_store::{COMPACT_AFTER, Error, Store};

const STANDARD: &str = include_str!("../../../fixtures/templates/standard-v1.json");

fn editor(user: &str) -> Editor {
    Editor::new(
        UserId::parse(user).expect("user"),
        DeviceId::parse("dev-1").expect("device"),
    )
}

fn staff(i: usize) -> StaffId {
    StaffId::parse(&format!("s-{i:03}")).expect("staff")
}

fn new_visit(id: &str, staff_count: usize) -> NewVisit {
    NewVisit {
        visit_id: VisitId::parse(id).expect("id"),
        unit: Unit::new(
            UnitCode::parse("u-1").expect("code"),
            "Sở Tư pháp",
            UnitKind::Department,
            "TP Cần Thơ",
        )
        .expect("unit"),
        campaign: CampaignId::parse("ct-2015").expect("campaign"),
        team: TeamId::parse("team-1").expect("team"),
        scheduled_on: NaiveDate::from_ymd_opt(2015, 9, 3).expect("date"),
        roster: (0..staff_count)
            .map(|i| {
                StaffMember::new(
                    staff(i),
                    &format!("Võ Thị Hạnh {i}"),
                    "Chuyên viên",
                    StaffCategory::CivilServant,
                    true,
                )
                .expect("member")
            })
            .collect(),
    }
}

fn template() -> Template {
    Template::from_json(STANDARD).expect("template")
}

fn vid(s: &str) -> VisitId {
    VisitId::parse(s).expect("id")
}

#[test]
fn edits_survive_reopening_and_listing_reads_the_index() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("device.db");
    {
        let mut store = Store::open(&path, editor("insp-1")).expect("open");
        store
            .create_visit(new_visit("v-1", 5), &template())
            .expect("create");
        store
            .create_visit(new_visit("v-2", 3), &template())
            .expect("create");
        store
            .edit(&vid("v-1"), |v| {
                v.record_attendance(&staff(0), AttendanceMark::Present, "", None)
            })
            .expect("edit");
        store
            .edit(&vid("v-1"), |v| {
                v.record_attendance(
                    &staff(1),
                    AttendanceMark::Absent(AbsenceReason::Training),
                    "",
                    None,
                )
            })
            .expect("edit");
    }
    let mut store = Store::open(&path, editor("insp-1")).expect("reopen");
    let list = store.list_visits().expect("list");
    assert_eq!(list.len(), 2);
    let v1 = list
        .iter()
        .find(|s| s.id == vid("v-1"))
        .expect("v-1 listed");
    assert_eq!(
        (v1.tally.payroll, v1.tally.present, v1.tally.absent),
        (5, 1, 1)
    );
    assert_eq!(v1.unit_name, "Sở Tư pháp");
    assert_eq!(v1.status, "draft");
    let state = store
        .visit(&vid("v-1"))
        .expect("visit")
        .state()
        .expect("state");
    assert_eq!(state.attendance.len(), 2);
    assert_eq!(state.tally(), v1.tally);
    assert_eq!(v1.heads.len(), 1);
}

#[test]
fn each_opened_store_writes_with_a_fresh_actor() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("device.db");
    let first = Store::open(&path, editor("insp-1")).expect("open");
    let a1 = first.session().actor().clone();
    drop(first);
    let second = Store::open(&path, editor("insp-1")).expect("open");
    assert_ne!(&a1, second.session().actor());
}

#[test]
fn chunks_are_compacted_without_losing_history() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("device.db");
    let mut store = Store::open(&path, editor("insp-1")).expect("open");
    store
        .create_visit(new_visit("v-1", 60), &template())
        .expect("create");
    let edits = COMPACT_AFTER as usize + 10;
    for i in 0..edits {
        store
            .edit(&vid("v-1"), |v| {
                v.record_attendance(&staff(i % 60), AttendanceMark::Late, &format!("{i}"), None)
            })
            .expect("edit");
    }
    // Edits only append; compaction stays off the tap path.
    assert_eq!(
        store.chunk_count(&vid("v-1")).expect("chunks"),
        edits as u32 + 1
    );
    drop(store);
    // Opening the visit from disk compacts it, keeping every change.
    let mut store = Store::open(&path, editor("insp-1")).expect("reopen");
    let history = store
        .visit(&vid("v-1"))
        .expect("visit")
        .history()
        .expect("history");
    assert_eq!(
        history.len(),
        edits + 1,
        "every change is still in the history"
    );
    assert_eq!(store.chunk_count(&vid("v-1")).expect("chunks"), 1);
    drop(store);
    let mut store = Store::open(&path, editor("insp-1")).expect("reopen");
    assert_eq!(
        store
            .visit(&vid("v-1"))
            .expect("visit")
            .history()
            .expect("history")
            .len(),
        edits + 1
    );
    store
        .edit(&vid("v-1"), |v| {
            v.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        })
        .expect("edit after compaction");
    assert_eq!(store.chunk_count(&vid("v-1")).expect("chunks"), 2);
}

#[test]
fn compact_all_compacts_only_visits_that_are_due() {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = Store::open(dir.path().join("s.db"), editor("insp-1")).expect("open");
    store
        .create_visit(new_visit("v-1", 3), &template())
        .expect("create");
    store
        .create_visit(new_visit("v-2", 3), &template())
        .expect("create");
    for i in 0..=COMPACT_AFTER as usize {
        store
            .edit(&vid("v-1"), |v| {
                v.record_attendance(&staff(i % 3), AttendanceMark::Late, &i.to_string(), None)
            })
            .expect("edit");
    }
    store
        .edit(&vid("v-2"), |v| {
            v.record_attendance(&staff(0), AttendanceMark::Late, "", None)
        })
        .expect("edit");
    let before = store.visit(&vid("v-1")).expect("v").state().expect("s");
    assert_eq!(store.compact_all().expect("compact"), 1);
    assert_eq!(store.chunk_count(&vid("v-1")).expect("c"), 1);
    assert_eq!(store.chunk_count(&vid("v-2")).expect("c"), 2);
    assert_eq!(
        store.visit(&vid("v-1")).expect("v").state().expect("s"),
        before
    );
}

#[test]
fn bad_input_is_refused_and_the_store_is_unchanged() {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = Store::open(dir.path().join("s.db"), editor("insp-1")).expect("open");
    store
        .create_visit(new_visit("v-1", 2), &template())
        .expect("create");
    let before = store.list_visits().expect("list");
    let chunks = store.chunk_count(&vid("v-1")).expect("chunks");

    assert!(matches!(
        store.create_visit(new_visit("v-1", 2), &template()),
        Err(Error::VisitExists(_))
    ));
    assert!(matches!(
        store.visit(&vid("v-404")),
        Err(Error::UnknownVisit(_))
    ));
    assert!(matches!(
        store.edit(&vid("v-404"), |_| Ok(())),
        Err(Error::UnknownVisit(_))
    ));
    let unknown_staff = store.edit(&vid("v-1"), |v| {
        v.record_attendance(&staff(7), AttendanceMark::Present, "", None)
    });
    assert!(matches!(
        unknown_staff,
        Err(Error::Visit(kiemtra_core::Error::UnknownStaff(_)))
    ));
    assert!(matches!(
        store.import_visit(b"garbage"),
        Err(Error::Visit(_))
    ));
    assert!(matches!(
        store.apply_remote(&vid("v-1"), b"garbage"),
        Err(Error::Visit(_))
    ));
    assert!(matches!(
        store.delete_visit(&vid("v-404")),
        Err(Error::UnknownVisit(_))
    ));
    assert!(matches!(
        store.set_confirmed_heads(&vid("v-404"), "server", &[]),
        Err(Error::UnknownVisit(_))
    ));

    assert_eq!(store.list_visits().expect("list"), before);
    assert_eq!(store.chunk_count(&vid("v-1")).expect("chunks"), chunks);
}

#[test]
fn applying_another_visit_s_bytes_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = Store::open(dir.path().join("s.db"), editor("insp-1")).expect("open");
    store
        .create_visit(new_visit("v-1", 2), &template())
        .expect("create");
    let other =
        Visit::create(new_visit("v-2", 2), &template(), &Session::new(editor("x"))).expect("v2");
    assert!(store.apply_remote(&vid("v-1"), &other.save()).is_err());
    // The refused bytes left nothing behind: v-1 still reads as v-1 after reopening.
    let path = store.path().to_path_buf();
    drop(store);
    let mut store = Store::open(path, editor("insp-1")).expect("reopen");
    assert_eq!(
        store.visit(&vid("v-1")).expect("v1").id().expect("id"),
        vid("v-1")
    );
}

#[test]
fn remote_changes_merge_into_the_stored_visit() {
    let dir = tempfile::tempdir().expect("dir");
    let mut phone_a = Store::open(dir.path().join("a.db"), editor("insp-a")).expect("a");
    let mut phone_b = Store::open(dir.path().join("b.db"), editor("insp-b")).expect("b");
    phone_a
        .create_visit(new_visit("v-1", 3), &template())
        .expect("create");
    let doc = phone_a.visit(&vid("v-1")).expect("v").save();
    phone_b.import_visit(&doc).expect("import");
    let base = phone_b.visit(&vid("v-1")).expect("v").heads();
    phone_b
        .edit(&vid("v-1"), |v| {
            v.record_attendance(&staff(2), AttendanceMark::Late, "", None)
        })
        .expect("edit b");
    let changes = phone_b.visit(&vid("v-1")).expect("v").save_after(&base);
    let summary = phone_a.apply_remote(&vid("v-1"), &changes).expect("apply");
    assert_eq!(summary.tally.late, 1);
    assert_eq!(
        summary.heads,
        phone_b.summary(&vid("v-1")).expect("b").heads
    );
}

#[test]
fn sync_state_is_kept_per_visit_and_peer() {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = Store::open(dir.path().join("s.db"), editor("insp-1")).expect("open");
    store
        .create_visit(new_visit("v-1", 1), &template())
        .expect("create");
    assert_eq!(
        store.confirmed_heads(&vid("v-1"), "server").expect("get"),
        None
    );
    let heads = store.visit(&vid("v-1")).expect("v").heads();
    store
        .set_confirmed_heads(&vid("v-1"), "server", &heads)
        .expect("set");
    assert_eq!(
        store.confirmed_heads(&vid("v-1"), "server").expect("get"),
        Some(kiemtra_core::Heads::new(heads))
    );
    store.clear_confirmed_heads("server").expect("clear");
    assert_eq!(
        store.confirmed_heads(&vid("v-1"), "server").expect("get"),
        None
    );
}

#[test]
fn deletion_removes_the_visit_and_its_chunks() {
    let dir = tempfile::tempdir().expect("dir");
    let mut store = Store::open(dir.path().join("s.db"), editor("insp-1")).expect("open");
    store
        .create_visit(new_visit("v-1", 1), &template())
        .expect("create");
    store.delete_visit(&vid("v-1")).expect("delete");
    assert!(store.list_visits().expect("list").is_empty());
    assert_eq!(store.chunk_count(&vid("v-1")).expect("chunks"), 0);
    assert!(matches!(
        store.visit(&vid("v-1")),
        Err(Error::UnknownVisit(_))
    ));
}

#[test]
fn own_changes_are_remembered_until_signed_and_remote_ones_never() {
    let dir = tempfile::tempdir().expect("dir");
    let mut phone = Store::open(dir.path().join("a.db"), editor("insp-a")).expect("a");
    phone
        .create_visit(new_visit("v-1", 3), &template())
        .expect("create");
    for i in 0..3 {
        phone
            .edit(&vid("v-1"), |v| {
                v.record_attendance(&staff(i), AttendanceMark::Present, "", None)
            })
            .expect("edit");
    }
    let (own, mark) = phone.own_unsigned(&vid("v-1")).expect("own");
    let all = phone
        .visit(&vid("v-1"))
        .expect("v")
        .change_hashes_after(&[]);
    // The creation change and three edits, in order, all of this device.
    assert_eq!(own.iter().map(|(h, _, _)| *h).collect::<Vec<_>>(), all);
    let seqs: Vec<u64> = own.iter().map(|(_, _, s)| *s).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4]);

    // A failed edit writes nothing and remembers nothing.
    assert!(
        phone
            .edit(&vid("v-1"), |v| v.record_attendance(
                &staff(99),
                AttendanceMark::Present,
                "",
                None
            ))
            .is_err()
    );
    assert_eq!(phone.own_unsigned(&vid("v-1")).expect("own").0.len(), 4);

    // Signed: forgotten as unsigned; a later edit is the only one left.
    let record = kiemtra_store::SignatureRecord {
        signer: "dev-1".into(),
        ranges: kiemtra_core::seq_ranges_of(own.iter().map(|(_, a, s)| (a.clone(), *s))),
        signature: vec![7; 64],
        received_at: "2015-09-03T08:00:00+07:00".into(),
    };
    phone
        .record_own_signature(&vid("v-1"), &record, mark)
        .expect("sign");
    assert!(phone.own_unsigned(&vid("v-1")).expect("own").0.is_empty());
    assert_eq!(
        phone.signed_among(&vid("v-1"), &own).expect("signed").len(),
        4
    );
    phone
        .edit(&vid("v-1"), |v| {
            v.record_attendance(&staff(0), AttendanceMark::Late, "", None)
        })
        .expect("edit");
    let (left, _) = phone.own_unsigned(&vid("v-1")).expect("own");
    assert_eq!(left.len(), 1);
    let (index, _) = phone.visit(&vid("v-1")).expect("v").change_index();
    let kept = phone
        .change_receipts(&vid("v-1"), &index)
        .expect("receipts");
    assert_eq!(kept.changes.len(), 4, "receipts follow the kept signature");
    assert!(kept.unresolved.is_empty());
    let hashes: Vec<_> = kept.changes.iter().map(|(h, _)| *h).collect();
    assert_eq!(hashes, all, "the hashes are read off the document by range");
    assert_eq!(
        kept.changes[0].1.hashes, all,
        "the batch the signature was made over"
    );
    // Covering is decided by actor and sequence number: the new edit is
    // not covered, the first one is.
    let actor = own[0].1.clone();
    // Covering reads only the actor and sequence number.
    let later = (kiemtra_core::ChangeHash([0; 32]), actor.clone(), 5);
    assert_eq!(
        phone
            .signatures_covering(&vid("v-1"), std::slice::from_ref(&later))
            .expect("covering")
            .len(),
        0
    );
    assert_eq!(
        phone
            .signatures_covering(&vid("v-1"), &[own[0].clone(), later.clone()])
            .expect("covering"),
        vec![record.clone()]
    );
    // A kept signature naming changes the document lacks is reported, not
    // silently given hashes.
    let lost = kiemtra_store::SignatureRecord {
        ranges: vec![(actor, 90, 91)],
        ..record.clone()
    };
    phone
        .record_signatures(&vid("v-1"), std::slice::from_ref(&lost))
        .expect("keep");
    let kept = phone
        .change_receipts(&vid("v-1"), &index)
        .expect("receipts");
    assert_eq!(kept.changes.len(), 4);
    assert_eq!(kept.unresolved, vec![lost.clone()]);
    // A signature received again (from the server, then in a bundle) is
    // kept once: a device must never send the same one twice.
    let before = phone.signatures_of(&vid("v-1")).expect("sigs").len();
    phone
        .record_signatures(&vid("v-1"), &[lost.clone(), record.clone()])
        .expect("keep again");
    assert_eq!(
        phone.signatures_of(&vid("v-1")).expect("sigs").len(),
        before
    );

    // Another device's changes merged in are not this device's to sign.
    let mut other = Store::open(dir.path().join("b.db"), editor("insp-b")).expect("b");
    other
        .import_visit(&phone.visit(&vid("v-1")).expect("v").save())
        .expect("import");
    assert!(other.own_unsigned(&vid("v-1")).expect("own").0.is_empty());

    // Survives reopening; compaction prunes only what was signed.
    drop(phone);
    let mut phone = Store::open(dir.path().join("a.db"), editor("insp-a")).expect("reopen");
    phone.compact(&vid("v-1")).expect("compact");
    let (after, _) = phone.own_unsigned(&vid("v-1")).expect("own");
    assert_eq!(
        after.iter().map(|(h, _, _)| *h).collect::<Vec<_>>(),
        vec![left[0].0]
    );
}
