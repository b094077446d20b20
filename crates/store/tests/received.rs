//! Visits received whole from the server and stored before they are
//! loaded: listed from the server's listing, checked when first opened,
//! removed (to be downloaded again) when damaged.

use chrono::NaiveDate;
use kiemtra_core::*;
use kiemtra_store::{CURSOR_SETTING, Error, SignatureRecord, Store, Verified, VisitSummary};

const STANDARD: &str = include_str!("../../../fixtures/templates/standard-v1.json");

fn editor(user: &str, device: &str) -> Editor {
    Editor::new(
        UserId::parse(user).expect("user"),
        DeviceId::parse(device).expect("device"),
    )
}

fn vid(s: &str) -> VisitId {
    VisitId::parse(s).expect("id")
}

fn new_visit(id: &str) -> NewVisit {
    NewVisit {
        visit_id: vid(id),
        unit: Unit::new(
            UnitCode::parse("u-7").expect("code"),
            "UBND phường Tân An",
            UnitKind::CommuneCommittee,
            "Quận Ninh Kiều",
        )
        .expect("unit"),
        campaign: CampaignId::parse("ct-2015").expect("campaign"),
        team: TeamId::parse("team-1").expect("team"),
        scheduled_on: NaiveDate::from_ymd_opt(2015, 9, 3).expect("date"),
        roster: (0..4)
            .map(|i| {
                StaffMember::new(
                    StaffId::parse(&format!("s-{i:03}")).expect("staff"),
                    &format!("Trần Văn Bình {i}"),
                    "Chuyên viên",
                    StaffCategory::CivilServant,
                    true,
                )
                .expect("member")
            })
            .collect(),
    }
}

/// The "server": a store holding `id` with two attendance marks, and what
/// it would send a new device (the stored bytes and its summary).
fn source(dir: &std::path::Path, id: &str) -> (Store, Vec<u8>, VisitSummary) {
    let mut s = Store::open(
        dir.join(format!("{id}-source.db")),
        editor("insp-a", "dev-a"),
    )
    .expect("open");
    let template = Template::from_json(STANDARD).expect("template");
    s.create_visit(new_visit(id), &template).expect("create");
    s.edit(&vid(id), |v| {
        v.record_attendance(&StaffId::parse("s-000")?, AttendanceMark::Present, "", None)?;
        v.record_attendance(
            &StaffId::parse("s-001")?,
            AttendanceMark::Absent(AbsenceReason::BusinessTrip),
            "",
            None,
        )
    })
    .expect("edit");
    let bytes = s.stored_bytes(&vid(id)).expect("bytes");
    let summary = s.summary(&vid(id)).expect("summary");
    (s, bytes, summary)
}

fn device(dir: &std::path::Path) -> Store {
    Store::open(dir.join("device.db"), editor("sup-b", "dev-b")).expect("device")
}

fn same_listing(a: &VisitSummary, b: &VisitSummary) -> bool {
    let strip = |s: &VisitSummary| VisitSummary {
        updated_at: String::new(),
        ..s.clone()
    };
    strip(a) == strip(b)
}

#[test]
fn a_received_visit_is_listed_as_sent_and_checked_when_first_opened() {
    let dir = tempfile::tempdir().expect("dir");
    let (_src, bytes, truth) = source(dir.path(), "v-1");
    // A listing that disagrees with the document: the document wins.
    let mut listing = truth.clone();
    listing.unit_name = "sai tên".into();
    listing.tally.present = 9;
    let mut d = device(dir.path());
    d.insert_unverified(&listing, &bytes).expect("stored");
    assert!(d.is_unverified(&vid("v-1")).expect("flag"));
    let listed = d.list_visits().expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].unit_name, "sai tên", "listed as received");

    let state = d.visit(&vid("v-1")).expect("opens").state().expect("state");
    assert_eq!(state.tally().present, 1);
    assert!(!d.is_unverified(&vid("v-1")).expect("flag"));
    let after = d.summary(&vid("v-1")).expect("summary");
    assert!(same_listing(&after, &truth), "{after:?} vs {truth:?}");
    drop(d);
    // The worked-out summary and the flag are on disk.
    let d = device(dir.path());
    assert!(!d.is_unverified(&vid("v-1")).expect("flag"));
    assert_eq!(
        d.summary(&vid("v-1")).expect("summary").unit_name,
        truth.unit_name
    );
}

#[test]
fn a_damaged_received_document_is_removed_and_the_cursor_reset() {
    let dir = tempfile::tempdir().expect("dir");
    let (_src, bytes, truth) = source(dir.path(), "v-1");
    let (_src2, other, _) = source(dir.path(), "v-2");
    let mut d = device(dir.path());

    // Bytes that are no document.
    d.set_setting(CURSOR_SETTING, "12:345").expect("cursor");
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0xff;
    d.insert_unverified(&truth, &damaged)
        .expect("stored unread");
    match d.visit(&vid("v-1")) {
        Err(Error::Refetch { id, .. }) => assert_eq!(id, vid("v-1")),
        other => panic!("expected a refetch, got {:?}", other.map(|_| ())),
    }
    assert!(d.list_visits().expect("list").is_empty());
    assert_eq!(d.setting(CURSOR_SETTING).expect("setting"), None);
    assert!(matches!(
        d.summary(&vid("v-1")),
        Err(Error::UnknownVisit(_))
    ));

    // Another visit's document under this visit's listing.
    d.set_setting(CURSOR_SETTING, "12:345").expect("cursor");
    d.insert_unverified(&truth, &other).expect("stored unread");
    match d.edit(&vid("v-1"), |v| v.splice_narrative(0, 0, "x")) {
        Err(Error::Refetch { reason, .. }) => assert!(reason.contains("v-2"), "{reason}"),
        other => panic!("expected a refetch, got {other:?}"),
    }
    assert!(d.list_visits().expect("list").is_empty());
    assert_eq!(d.setting(CURSOR_SETTING).expect("setting"), None);

    // Received again, whole: it opens.
    d.insert_unverified(&truth, &bytes).expect("stored");
    assert!(d.visit(&vid("v-1")).is_ok());
}

#[test]
fn received_signatures_naming_changes_the_document_lacks_are_dropped_on_opening() {
    let dir = tempfile::tempdir().expect("dir");
    let (mut src, bytes, truth) = source(dir.path(), "v-1");
    let visit = src.visit(&vid("v-1")).expect("visit");
    let all = visit.change_hashes_after(&[]);
    let ranges = visit.seq_ranges(&all).expect("ranges");
    let real = SignatureRecord {
        signer: "dev-a".into(),
        ranges,
        signature: vec![1; 64],
        received_at: "2015-09-03T08:00:00+07:00".into(),
    };
    let bogus = SignatureRecord {
        ranges: vec![(vec![0xee; 16], 1, 40)],
        signature: vec![2; 64],
        ..real.clone()
    };
    let mut d = device(dir.path());
    d.insert_unverified(&truth, &bytes).expect("stored");
    d.record_signatures(&vid("v-1"), &[real.clone(), bogus])
        .expect("signatures");
    assert_eq!(d.signatures_of(&vid("v-1")).expect("kept").len(), 2);
    d.visit(&vid("v-1")).expect("opens");
    assert_eq!(d.signatures_of(&vid("v-1")).expect("kept"), vec![real]);
}

#[test]
fn verify_pending_checks_every_received_visit() {
    let dir = tempfile::tempdir().expect("dir");
    let (_a, good, good_listing) = source(dir.path(), "v-1");
    let (_b, bad, bad_listing) = source(dir.path(), "v-2");
    let mut d = device(dir.path());
    d.insert_unverified(&good_listing, &good).expect("stored");
    d.insert_unverified(&bad_listing, &bad[..bad.len() / 2])
        .expect("stored");
    let report = d.verify_pending().expect("verify");
    assert_eq!(report.verified, 1);
    assert_eq!(report.removed.len(), 1);
    assert_eq!(report.removed[0].0, vid("v-2"));
    assert_eq!(d.verify_pending().expect("again"), Verified::default());
    let ids: Vec<VisitId> = d
        .list_visits()
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec![vid("v-1")]);
}

#[test]
fn bad_received_input_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let (_src, bytes, truth) = source(dir.path(), "v-1");
    let mut d = device(dir.path());
    assert!(d.insert_unverified(&truth, &[]).is_err());
    assert!(d.list_visits().expect("list").is_empty());
    d.insert_unverified(&truth, &bytes).expect("stored");
    assert!(matches!(
        d.insert_unverified(&truth, &bytes),
        Err(Error::VisitExists(_))
    ));
    assert_eq!(d.chunk_count(&vid("v-1")).expect("chunks"), 1);
    // A server (a store with a feed) never keeps a document it has not loaded.
    let mut server = Store::open(dir.path().join("server.db"), editor("srv", "srv-1"))
        .expect("open")
        .with_feed();
    assert!(matches!(
        server.insert_unverified(&truth, &bytes),
        Err(Error::Refused(_))
    ));
    assert!(server.list_visits().expect("list").is_empty());
}
