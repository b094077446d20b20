//! Evidence files: kept on the phone with their reference until uploaded;
//! received by the server in pieces, resumed, and checked against their
//! SHA-256 name when whole.

use chrono::NaiveDate;
use kiemtra_core::*;
use kiemtra_store::{EvidenceRefusal, EvidenceStatus, Store, evidence_hash};

const STANDARD: &str = include_str!("../../../fixtures/templates/standard-v1.json");

fn vid(s: &str) -> VisitId {
    VisitId::parse(s).expect("id")
}

fn check() -> CheckId {
    CheckId::parse("tthc-posted").expect("check")
}

fn open(path: &std::path::Path, user: &str) -> Store {
    let editor = Editor::new(
        UserId::parse(user).expect("user"),
        DeviceId::parse(&format!("dev-{user}")).expect("device"),
    );
    Store::open(path, editor).expect("open")
}

fn with_visit(s: &mut Store, id: &str) {
    let visit = NewVisit {
        visit_id: vid(id),
        unit: Unit::new(
            UnitCode::parse("u-2").expect("code"),
            "UBND xã Thạnh Phú",
            UnitKind::CommuneCommittee,
            "Huyện Cờ Đỏ",
        )
        .expect("unit"),
        campaign: CampaignId::parse("ct-2015").expect("campaign"),
        team: TeamId::parse("team-1").expect("team"),
        scheduled_on: NaiveDate::from_ymd_opt(2015, 8, 31).expect("date"),
        roster: Vec::new(),
    };
    let template = Template::from_json(STANDARD).expect("template");
    s.create_visit(visit, &template).expect("create");
}

/// A photo-sized file whose bytes are not all alike.
fn photo(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_phone_keeps_the_file_and_its_reference_until_the_server_holds_it() {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = open(&dir.path().join("phone.db"), "insp-a");
    with_visit(&mut s, "v-1");
    let bytes = photo(70_000);
    let hash = s.add_evidence(&vid("v-1"), &check(), &bytes).expect("add");
    assert_eq!(hash, evidence_hash(&bytes));
    let state = s.visit(&vid("v-1")).expect("visit").state().expect("state");
    assert!(state.evidence[&check()].contains(&hash), "referenced");
    assert_eq!(
        s.evidence_status(&vid("v-1"), &hash).expect("status"),
        Some(EvidenceStatus {
            length: 70_000,
            received: 70_000,
            complete: true
        })
    );
    let part = s
        .evidence_bytes(&vid("v-1"), &hash, 65_536, 65_536)
        .expect("read")
        .expect("held");
    assert_eq!(part, bytes[65_536..]);
    let pending = s.evidence_to_upload().expect("pending");
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].hash.clone(), pending[0].length),
        (hash.clone(), 70_000)
    );
    // Durable across a restart, like any edit.
    drop(s);
    let mut s = open(&dir.path().join("phone.db"), "insp-a");
    assert_eq!(s.evidence_to_upload().expect("pending").len(), 1);
    s.mark_evidence_uploaded(&vid("v-1"), &hash)
        .expect("uploaded");
    assert!(s.evidence_to_upload().expect("pending").is_empty());
    // An unknown file, or a visit that does not exist: refused, nothing written.
    let other = evidence_hash(b"other");
    assert!(s.mark_evidence_uploaded(&vid("v-1"), &other).is_err());
    assert!(s.add_evidence(&vid("v-9"), &check(), b"x").is_err());
    assert!(
        s.evidence_status(&vid("v-9"), &evidence_hash(b"x"))
            .expect("status")
            .is_none(),
        "the bytes are not kept without their reference"
    );
    // A check the template does not have: refused the same way.
    let bad = CheckId::parse("no-such-check").expect("id");
    assert!(s.add_evidence(&vid("v-1"), &bad, b"y").is_err());
    assert!(
        s.evidence_status(&vid("v-1"), &evidence_hash(b"y"))
            .expect("status")
            .is_none()
    );
}

#[test]
fn the_server_receives_pieces_resumes_and_checks_the_whole_file() {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = open(&dir.path().join("server.db"), "server");
    let v = vid("v-1");
    let bytes = photo(10_000);
    let hash = evidence_hash(&bytes);
    let take = |s: &mut Store, offset: usize, end: usize| {
        s.receive_evidence(&v, &hash, 10_000, offset as u64, &bytes[offset..end])
            .expect("store")
    };
    assert_eq!(
        take(&mut s, 0, 4_000),
        Ok(EvidenceStatus {
            length: 10_000,
            received: 4_000,
            complete: false
        })
    );
    // A gap is refused and nothing is kept of it.
    assert_eq!(
        take(&mut s, 6_000, 8_000),
        Err(EvidenceRefusal::Gap {
            offset: 6_000,
            received: 4_000
        })
    );
    // A retried piece overlapping what is held adds only what is new.
    assert_eq!(take(&mut s, 2_000, 7_000).map(|st| st.received), Ok(7_000));
    assert_eq!(take(&mut s, 0, 7_000).map(|st| st.received), Ok(7_000));
    // The length cannot change, and a piece cannot run past it.
    assert_eq!(
        s.receive_evidence(&v, &hash, 20_000, 7_000, &bytes[7_000..])
            .expect("store"),
        Err(EvidenceRefusal::LengthChanged {
            held: 10_000,
            claimed: 20_000
        })
    );
    assert_eq!(
        s.receive_evidence(&v, &hash, 10_000, 7_000, &photo(3_001))
            .expect("store"),
        Err(EvidenceRefusal::PastEnd {
            end: 10_001,
            length: 10_000
        })
    );
    assert!(
        s.evidence_bytes(&v, &hash, 0, 10_000)
            .expect("read")
            .is_none()
    );
    assert_eq!(take(&mut s, 7_000, 10_000).map(|st| st.complete), Ok(true));
    assert_eq!(
        s.evidence_bytes(&v, &hash, 0, u64::MAX).expect("read"),
        Some(bytes.clone())
    );
    // Sending again once whole changes nothing.
    assert_eq!(take(&mut s, 0, 10).map(|st| st.received), Ok(10_000));
    // The server does not upload; it has nothing pending.
    assert!(s.evidence_to_upload().expect("pending").is_empty());
}

#[test]
fn a_file_that_does_not_match_its_name_is_discarded_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let mut s = open(&dir.path().join("server.db"), "server");
    let v = vid("v-1");
    let bytes = photo(5_000);
    let hash = evidence_hash(&bytes);
    let mut forged = bytes.clone();
    forged[4_999] ^= 1;
    assert!(
        s.receive_evidence(&v, &hash, 5_000, 0, &forged[..3_000])
            .expect("store")
            .is_ok()
    );
    assert_eq!(
        s.receive_evidence(&v, &hash, 5_000, 3_000, &forged[3_000..])
            .expect("store"),
        Err(EvidenceRefusal::Mismatch {
            hash: hash.to_string()
        })
    );
    assert_eq!(s.evidence_status(&v, &hash).expect("status"), None);
    // An unfinished upload of a wrong length does not block the right one:
    // a new start from byte 0 replaces it.
    assert!(
        s.receive_evidence(&v, &hash, 9_999, 0, &forged[..100])
            .expect("store")
            .is_ok()
    );
    assert_eq!(
        s.receive_evidence(&v, &hash, 5_000, 100, &bytes[100..200])
            .expect("store"),
        Err(EvidenceRefusal::LengthChanged {
            held: 9_999,
            claimed: 5_000
        })
    );
    // The right bytes, from the start, are then accepted.
    assert_eq!(
        s.receive_evidence(&v, &hash, 5_000, 0, &bytes)
            .expect("store")
            .map(|st| st.complete),
        Ok(true)
    );
    // An empty file is a file too.
    let empty = evidence_hash(b"");
    assert_eq!(
        s.receive_evidence(&v, &empty, 0, 0, b"")
            .expect("store")
            .map(|st| st.complete),
        Ok(true)
    );
}
