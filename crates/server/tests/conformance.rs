//! One conformance suite for both storage backends of the server: the
//! embedded SQLite store and PostgreSQL (a throwaway cluster started by the
//! test, one database per case). Every case runs against each backend, on
//! connections opened by [`Backend::open`] (several of them are several
//! server processes sharing one database).

use kiemtra_client::{Credentials, DeviceEngine, SyncOptions, SyncReport};
use kiemtra_core::*;
use kiemtra_server::{Metrics, PgStore, ServerStore};
use kiemtra_store::{EnrollmentRefusal, Error, SignatureRecord, Store};
use kiemtra_testworld::PgCluster;
use std::path::PathBuf;

const STANDARD: &str = include_str!("../../../fixtures/templates/standard-v1.json");

trait Backend {
    type S: ServerStore + Send + 'static;
    /// A new connection to this case's database (another server process).
    fn open(&self) -> Self::S;
}

struct Sqlite(PathBuf);
impl Backend for Sqlite {
    type S = Store;
    fn open(&self) -> Store {
        kiemtra_server::open_store(&self.0).expect("sqlite store")
    }
}

struct Postgres(String);
impl Backend for Postgres {
    type S = PgStore;
    fn open(&self) -> PgStore {
        PgStore::connect(&self.0).expect("postgres store")
    }
}

fn template() -> Template {
    Template::from_json(STANDARD).expect("template")
}

fn new_visit(n: usize, team: &str) -> NewVisit {
    NewVisit {
        visit_id: VisitId::parse(&format!("v-conf-{n}")).expect("id"),
        unit: Unit::new(
            UnitCode::parse(&format!("u-{n}")).expect("code"),
            "UBND phường An Hội",
            UnitKind::CommuneCommittee,
            "Ninh Kiều",
        )
        .expect("unit"),
        campaign: CampaignId::parse("ct-2015").expect("campaign"),
        team: TeamId::parse(team).expect("team"),
        scheduled_on: chrono::NaiveDate::from_ymd_opt(2015, 8, 31).expect("date"),
        roster: (0..3)
            .map(|i| {
                StaffMember::new(
                    StaffId::parse(&format!("s-{i}")).expect("staff"),
                    &format!("Lê Thị Mai {i}"),
                    "Công chức",
                    StaffCategory::CivilServant,
                    true,
                )
                .expect("member")
            })
            .collect(),
    }
}

fn made_visit(n: usize, team: &str) -> (Visit, Vec<u8>) {
    let session = Session::new(Editor::new(
        UserId::parse("insp-a").expect("user"),
        DeviceId::parse("d-a").expect("device"),
    ));
    let visit = Visit::create(new_visit(n, team), &template(), &session).expect("visit");
    let bytes = visit.save();
    (visit, bytes)
}

fn finding(text: &str) -> NewFinding {
    NewFinding {
        category: "tthc".into(),
        severity: Severity::parse("minor").expect("severity"),
        text: text.into(),
        recommendation: String::new(),
        related_staff: Vec::new(),
    }
}

fn sig(signer: &str, byte: u8) -> SignatureRecord {
    SignatureRecord {
        signer: signer.into(),
        ranges: vec![(vec![byte; 16], 1, 3)],
        signature: vec![byte; 64],
        received_at: "2015-08-31T01:00:00Z".into(),
    }
}

// ---- the cases

fn enrollment<B: Backend>(b: &B) {
    let mut s = b.open();
    let code = kiemtra_server::create_enrollment_code(
        &mut s,
        "insp-a",
        "team-1",
        "inspector",
        chrono::Duration::hours(1),
    )
    .expect("code");
    let public = |pkcs8: &[u8]| kiemtra_client::public_key_of(pkcs8).expect("public key");
    let key_hex = public(&kiemtra_client::new_device_key().expect("key"));
    let key = kiemtra_core::hex::decode(&key_hex).expect("hex");
    let (device, token, retry) =
        kiemtra_server::enroll(&mut s, &code, "Điện thoại A", &key_hex).expect("enroll");
    assert!(!retry);
    assert_eq!(
        (device.user_id.as_str(), device.team.as_str()),
        ("insp-a", "team-1")
    );
    assert_eq!(
        s.device(&device.device_id).expect("lookup"),
        Some(device.clone())
    );
    // The same code and key again: the same device, a new token.
    let (again, token2, retry) =
        kiemtra_server::enroll(&mut s, &code, "Điện thoại A", &key_hex).expect("retry");
    assert!(retry);
    assert_eq!(again.device_id, device.device_id);
    assert_ne!(token, token2);
    // Another key with a used code is refused; an unknown code too.
    let other = public(&kiemtra_client::new_device_key().expect("key"));
    assert!(kiemtra_server::enroll(&mut s, &code, "B", &other).is_err());
    assert!(kiemtra_server::enroll(&mut s, "AAAA-BBBB-CCCC", "B", &other).is_err());
    // Another connection sees the device.
    let mut t = b.open();
    assert_eq!(t.devices().expect("devices").len(), 1);
    t.revoke_device(&device.device_id, "2015-09-01T00:00:00Z")
        .expect("revoke");
    assert!(
        t.revoke_device(&device.device_id, "2015-09-02T00:00:00Z")
            .is_err()
    );
    let revoked = s.device(&device.device_id).expect("lookup").expect("kept");
    assert_eq!(revoked.revoked_at.as_deref(), Some("2015-09-01T00:00:00Z"));
    // A revoked device's code no longer enrolls it again.
    assert!(kiemtra_server::enroll(&mut s, &code, "Điện thoại A", &key_hex).is_err());
    // Codes by digest: redeeming an expired one says so.
    s.create_enrollment_code(
        b"digest-1",
        "u",
        "team-1",
        "inspector",
        "2015-01-01T00:00:00Z",
        "2015-01-02T00:00:00Z",
    )
    .expect("code");
    let r = s
        .redeem_enrollment_code(
            b"digest-1",
            "2015-02-01T00:00:00Z",
            "d-x",
            "x",
            b"tok",
            &key,
        )
        .expect("redeem");
    assert_eq!(r.err(), Some(EnrollmentRefusal::Expired));
    let r = s
        .redeem_enrollment_code(b"nope", "2015-02-01T00:00:00Z", "d-x", "x", b"tok", &key)
        .expect("redeem");
    assert_eq!(r.err(), Some(EnrollmentRefusal::Unknown));
    assert!(s.device_by_token(b"tok").expect("lookup").is_none());
}

fn visits<B: Backend>(b: &B) {
    let mut s = b.open();
    let id = VisitId::parse("v-conf-0").expect("id");
    assert!(matches!(s.summary(&id), Err(Error::UnknownVisit(_))));
    assert!(matches!(s.stored_bytes(&id), Err(Error::UnknownVisit(_))));
    let (visit, first) = made_visit(0, "team-1");
    let heads = kiemtra_core::Heads::new(visit.heads());
    let summary = s.insert_loaded(visit, &first).expect("insert");
    assert_eq!(summary.heads, heads);
    assert_eq!(summary.team, "team-1");
    assert_eq!(s.summary(&id).expect("summary"), summary);
    // An edit is one more change, seen by another connection at once.
    s.edit(&id, |v| v.add_finding(finding("chưa niêm yết")).map(|_| ()))
        .expect("edit");
    let mut t = b.open();
    let seen = t.visit(&id).expect("visit").state().expect("state");
    assert_eq!(seen.findings.len(), 1);
    assert_eq!(
        t.summary(&id).expect("summary").heads,
        kiemtra_core::Heads::new(s.visit(&id).expect("visit").heads())
    );
    // What one connection stores, the other's next read shows (no stale copy).
    t.edit(&id, |v| v.add_finding(finding("thiếu sổ")).map(|_| ()))
        .expect("edit");
    assert_eq!(
        s.visit(&id)
            .expect("visit")
            .state()
            .expect("s")
            .findings
            .len(),
        2
    );
    // The stored bytes load as the same document.
    let again = Visit::load(&s.stored_bytes(&id).expect("bytes"), s.session()).expect("load");
    assert_eq!(again.heads().len(), s.visit(&id).expect("v").heads().len());
    // Offering the first document again merges into what is stored; another
    // document under the same id is refused.
    let visit = Visit::load(&first, s.session()).expect("load");
    s.insert_loaded(visit, &first).expect("merge");
    let (impostor, bytes) = made_visit(0, "team-1");
    assert!(s.insert_loaded(impostor, &bytes).is_err());
    assert_eq!(
        s.visit(&id)
            .expect("visit")
            .state()
            .expect("s")
            .findings
            .len(),
        2
    );
    assert_eq!(s.list_visits().expect("list").len(), 1);
}

fn rollback<B: Backend>(b: &B) {
    let mut s = b.open();
    let head = s.feed_head().expect("head");
    let out: Result<(), Error> = s.batch(|s| {
        let (visit, bytes) = made_visit(1, "team-1");
        s.insert_loaded(visit, &bytes)?;
        s.record_signatures(&VisitId::parse("v-conf-1")?, &[sig("d-a", 1)])?;
        Err(Error::Refused("the request failed part-way".into()))
    });
    assert!(out.is_err());
    let id = VisitId::parse("v-conf-1").expect("id");
    assert!(matches!(s.summary(&id), Err(Error::UnknownVisit(_))));
    assert_eq!(
        s.feed_head().expect("head"),
        head,
        "no feed row of a rolled back request"
    );
    assert!(b.open().list_visits().expect("list").is_empty());
    // A batch that succeeds keeps everything.
    s.batch(|s| {
        let (visit, bytes) = made_visit(1, "team-1");
        s.insert_loaded(visit, &bytes)?;
        s.record_signatures(&id, &[sig("d-a", 1)])
    })
    .expect("batch");
    assert_eq!(b.open().signatures_of(&id).expect("sigs").len(), 1);
}

fn feed<B: Backend>(b: &B) {
    let mut s = b.open();
    assert_eq!(s.feed_head().expect("head"), (0, 0));
    assert!(!s.feed_cursor_valid(0, 0).expect("valid"));
    for (n, team) in [(0, "team-1"), (1, "team-2"), (2, "team-1")] {
        let (visit, bytes) = made_visit(n, team);
        s.insert_loaded(visit, &bytes).expect("insert");
    }
    let (seq, nonce) = s.feed_head().expect("head");
    assert!(seq > 0);
    assert!(s.feed_cursor_valid(seq, nonce).expect("valid"));
    assert!(!s.feed_cursor_valid(seq, nonce ^ 1).expect("valid"));
    assert!(!s.feed_cursor_valid(seq + 1000, nonce).expect("valid"));
    let ids = |e: Vec<kiemtra_store::FeedEntry>| -> Vec<String> {
        e.into_iter().map(|e| e.visit_id).collect()
    };
    assert_eq!(
        ids(s.feed_since(Some("team-1"), 0, seq).expect("feed")),
        ["v-conf-0", "v-conf-2"]
    );
    assert_eq!(ids(s.feed_since(None, 0, seq).expect("feed")).len(), 3);
    // An update moves the visit to the end; the feed keeps one row per visit.
    let id0 = VisitId::parse("v-conf-0").expect("id");
    s.edit(&id0, |v| v.set_narrative("Đoàn đến lúc 7 giờ 30."))
        .expect("edit");
    let (seq2, _) = s.feed_head().expect("head");
    assert!(seq2 > seq);
    assert_eq!(
        ids(s.feed_since(Some("team-1"), 0, seq2).expect("feed")),
        ["v-conf-2", "v-conf-0"]
    );
    assert_eq!(
        ids(s.feed_since(Some("team-1"), seq, seq2).expect("feed")),
        ["v-conf-0"]
    );
    // Another process writes under a generation of its own; every cursor
    // handed out before stays valid.
    let mut t = b.open();
    let id1 = VisitId::parse("v-conf-1").expect("id");
    t.edit(&id1, |v| v.set_narrative("Phòng một cửa."))
        .expect("edit");
    let (seq3, nonce3) = t.feed_head().expect("head");
    assert!(seq3 > seq2);
    assert!(s.feed_cursor_valid(seq, nonce).expect("valid"));
    assert!(s.feed_cursor_valid(seq3, nonce3).expect("valid"));
    assert_eq!(
        ids(s.feed_since(Some("team-2"), seq2, seq3).expect("feed")),
        ["v-conf-1"]
    );
}

fn signatures<B: Backend>(b: &B) {
    let mut s = b.open();
    let (visit, bytes) = made_visit(0, "team-1");
    let id = visit.id().expect("id");
    s.insert_loaded(visit, &bytes).expect("insert");
    s.record_signatures(&id, &[sig("d-a", 1), sig("d-b", 2)])
        .expect("record");
    // The same signatures arriving again are not kept twice.
    s.record_signatures(&id, &[sig("d-a", 1)]).expect("record");
    b.open()
        .record_signatures(&id, &[sig("d-b", 2), sig("d-c", 3)])
        .expect("record");
    let kept = s.signatures_of(&id).expect("of");
    assert_eq!(
        kept.iter().map(|k| k.signer.as_str()).collect::<Vec<_>>(),
        ["d-a", "d-b", "d-c"]
    );
    assert_eq!(kept[0], sig("d-a", 1));
    let want = vec![(ChangeHash([0; 32]), vec![2u8; 16], 2u64)];
    let covering = s.signatures_covering(&id, &want).expect("covering");
    assert_eq!(covering, vec![sig("d-b", 2)]);
    assert!(s.signatures_covering(&id, &[]).expect("none").is_empty());
    let none = vec![(ChangeHash([0; 32]), vec![2u8; 16], 9u64)];
    assert!(s.signatures_covering(&id, &none).expect("none").is_empty());
}

/// A phone syncs through the server's engine over the backend: its visit
/// is stored under its signature and comes back to a second phone.
fn engine<B: Backend>(b: &B) {
    let mut s = b.open();
    let dir = tempfile::tempdir().expect("dir");
    let mut phones = Vec::new();
    for user in ["insp-a", "insp-b"] {
        let code = kiemtra_server::create_enrollment_code(
            &mut s,
            user,
            "team-1",
            "inspector",
            chrono::Duration::hours(1),
        )
        .expect("code");
        let key = kiemtra_client::new_device_key().expect("key");
        let public = kiemtra_client::public_key_of(&key).expect("public");
        let (record, token, _) =
            kiemtra_server::enroll(&mut s, &code, user, &public).expect("enroll");
        let creds = Credentials {
            server: "conformance:".into(),
            device_id: record.device_id.clone(),
            token,
            user_id: user.into(),
            team: "team-1".into(),
            role: "inspector".into(),
            signing_key: kiemtra_core::hex::encode(&key),
        };
        let editor = Editor::new(
            UserId::parse(user).expect("user"),
            DeviceId::parse(&record.device_id).expect("device"),
        );
        let mut store = Store::open_with_session(
            dir.path().join(format!("{user}.db")),
            Session::new(editor).with_role(Role::Inspector),
        )
        .expect("phone");
        creds.save(&mut store).expect("creds");
        phones.push((
            store,
            DeviceEngine::new(creds, SyncOptions::default()),
            record,
        ));
    }
    let (store, _, _) = &mut phones[0];
    let summary = store
        .create_visit(new_visit(0, "team-1"), &template())
        .expect("create");
    store
        .edit(&summary.id, |v| {
            v.add_finding(finding("không có hộp thư góp ý")).map(|_| ())
        })
        .expect("edit");
    let metrics = Metrics::default();
    let sync = |s: &mut B::S, p: &mut (Store, DeviceEngine, kiemtra_store::DeviceRecord)| {
        let mut report = SyncReport::default();
        for _ in 0..10 {
            let round = p.1.begin(&mut p.0).expect("begin");
            let answer =
                kiemtra_server::exchange(s, &p.2, &round.body, 64 << 20, 64 << 20, &metrics)
                    .expect("exchange");
            if !p
                .1
                .apply(&mut p.0, &round, &answer, &mut report)
                .expect("apply")
                .again
            {
                break;
            }
        }
        assert!(report.errors.is_empty(), "{:?}", report.errors);
        report
    };
    sync(&mut s, &mut phones[0]);
    let mut other_process = b.open();
    let held = other_process.summary(&summary.id).expect("on the server");
    assert_eq!(held.team, "team-1");
    assert!(
        !other_process
            .signatures_of(&summary.id)
            .expect("sigs")
            .is_empty()
    );
    let report = sync(&mut other_process, &mut phones[1]);
    assert_eq!(report.visits_downloaded, 1, "{report:?}");
    let (a, b_phone) = phones.split_at_mut(1);
    let va = a[0].0.visit(&summary.id).expect("a").heads();
    let vb = b_phone[0].0.visit(&summary.id).expect("b").heads();
    assert_eq!(va.len(), vb.len());
    assert!(va.iter().all(|h| vb.contains(h)));
}

/// Two connections (two server processes) edit one visit at once, each
/// edit in its own transaction, retried when the database is busy: no
/// edit is lost.
fn concurrent_edits<B: Backend>(b: &B) {
    let mut s = b.open();
    let (visit, bytes) = made_visit(0, "team-1");
    let id = visit.id().expect("id");
    s.insert_loaded(visit, &bytes).expect("insert");
    let per_writer = 15;
    std::thread::scope(|scope| {
        for w in 0..2 {
            let mut c = b.open();
            let id = id.clone();
            scope.spawn(move || {
                for i in 0..per_writer {
                    let mut tries = 0;
                    loop {
                        let r = c.batch(|c| {
                            c.lock_visit(&id)?;
                            c.edit(&id, |v| {
                                v.add_finding(finding(&format!("người {w} lần {i}")))
                                    .map(|_| ())
                            })
                        });
                        match r {
                            Ok(()) => break,
                            Err(_) if tries < 100 => {
                                tries += 1;
                                std::thread::sleep(std::time::Duration::from_millis(5));
                            }
                            Err(e) => panic!("writer {w} gave up: {e}"),
                        }
                    }
                }
            });
        }
    });
    let findings = b
        .open()
        .visit(&id)
        .expect("visit")
        .state()
        .expect("s")
        .findings;
    assert_eq!(findings.len(), 2 * per_writer, "edits were lost");
}

/// A process hears of another's stored changes without polling.
fn another_process_hears_of_stored_changes(url: &str) {
    let mut listener = kiemtra_server::FeedListener::connect(url).expect("listen");
    let quiet = listener
        .wait(std::time::Duration::from_millis(100))
        .expect("wait");
    assert_eq!(quiet, None, "nothing was stored yet");
    let mut writer = PgStore::connect(url).expect("connect");
    let (visit, bytes) = made_visit(0, "team-1");
    writer.insert_loaded(visit, &bytes).expect("insert");
    let (head, _) = writer.feed_head().expect("head");
    let heard = listener
        .wait(std::time::Duration::from_secs(10))
        .expect("wait");
    assert_eq!(heard, Some(head));
    // A transaction rolled back announces nothing.
    let _ = writer.batch(|s| {
        let (visit, bytes) = made_visit(1, "team-1");
        s.insert_loaded(visit, &bytes)?;
        Err::<(), _>(Error::Refused("no".into()))
    });
    assert_eq!(
        listener
            .wait(std::time::Duration::from_millis(200))
            .expect("wait"),
        None
    );
}

fn newer_schema_is_refused(url: &str) {
    let mut client = postgres::Client::connect(url, postgres::NoTls).expect("connect");
    client
        .execute(
            "INSERT INTO kiemtra_migrations (version) VALUES ($1)",
            &[&(kiemtra_server::pg::PG_SCHEMA_VERSION + 1)],
        )
        .expect("bump");
    match PgStore::connect(url) {
        Err(Error::NewerDatabase { found, .. }) => {
            assert_eq!(found as i32, kiemtra_server::pg::PG_SCHEMA_VERSION + 1)
        }
        Err(e) => panic!("refused for another reason: {e}"),
        Ok(_) => panic!("a newer database was opened"),
    }
}

/// Photos arrive in pieces that resume where the held bytes stop; a file
/// is kept only whole and matching its name.
fn evidence<B: Backend>(b: &B) {
    let mut s = b.open();
    let (visit, bytes) = made_visit(0, "team-1");
    let id = visit.id().expect("id");
    s.insert_loaded(visit, &bytes).expect("insert");
    let photo: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let hash = kiemtra_store::evidence_hash(&photo);
    let len = photo.len() as u64;
    assert_eq!(s.evidence_status(&id, &hash).expect("status"), None);
    let got = s
        .receive_evidence(&id, &hash, len, 0, &photo[..4_000])
        .expect("piece")
        .expect("taken");
    assert_eq!((got.received, got.complete), (4_000, false));
    // A gap, a piece past the end and another length are refused.
    let gap = s.receive_evidence(&id, &hash, len, 5_000, &photo[5_000..6_000]);
    assert!(matches!(
        gap,
        Ok(Err(kiemtra_store::EvidenceRefusal::Gap {
            received: 4_000,
            ..
        }))
    ));
    let past = s.receive_evidence(&id, &hash, len, 9_000, &photo[..2_000]);
    assert!(matches!(
        past,
        Ok(Err(kiemtra_store::EvidenceRefusal::PastEnd { .. }))
    ));
    let other = s.receive_evidence(&id, &hash, len + 1, 4_000, &photo[4_000..5_000]);
    assert!(matches!(
        other,
        Ok(Err(kiemtra_store::EvidenceRefusal::LengthChanged { .. }))
    ));
    // A retried piece overlapping what is held adds only what is new; the
    // last byte completes the file, seen by another connection.
    let got = s
        .receive_evidence(&id, &hash, len, 3_000, &photo[3_000..])
        .expect("piece")
        .expect("taken");
    assert_eq!((got.received, got.complete), (len, true));
    let mut t = b.open();
    assert_eq!(
        t.evidence_bytes(&id, &hash, 0, u64::MAX).expect("bytes"),
        Some(photo.clone())
    );
    assert_eq!(
        t.evidence_bytes(&id, &hash, 3_990, 20).expect("bytes"),
        Some(photo[3_990..4_010].to_vec())
    );
    // Whole already: a piece changes nothing.
    let again = t
        .receive_evidence(&id, &hash, len, 0, &photo[..10])
        .expect("piece");
    assert_eq!(again.expect("whole").received, len);
    // Bytes that do not hash to the name are discarded whole.
    let wrong = kiemtra_store::evidence_hash(b"another photo");
    t.receive_evidence(&id, &wrong, 4, 0, b"abc")
        .expect("piece")
        .expect("taken");
    let bad = t.receive_evidence(&id, &wrong, 4, 3, b"d").expect("piece");
    assert!(matches!(
        bad,
        Err(kiemtra_store::EvidenceRefusal::Mismatch { .. })
    ));
    assert_eq!(t.evidence_status(&id, &wrong).expect("status"), None);
    assert_eq!(t.evidence_bytes(&id, &wrong, 0, 10).expect("bytes"), None);
    // An unfinished upload gives way to one of another length from byte 0.
    t.receive_evidence(&id, &wrong, 4, 0, b"ab")
        .expect("piece")
        .expect("taken");
    let restarted = t
        .receive_evidence(&id, &wrong, 13, 0, b"another")
        .expect("piece")
        .expect("restarted");
    assert_eq!((restarted.length, restarted.received), (13, 7));
}

/// The administration log: appended in order, a taken number refused with
/// nothing written, kept only when its transaction commits; an enrollment
/// and a code made on the server machine are witnessed into it.
fn admin_log<B: Backend>(b: &B) {
    let mut s = b.open();
    assert!(s.admin_log(0).expect("empty").is_empty());
    kiemtra_server::create_enrollment_code(
        &mut s,
        "insp-a",
        "team-1",
        "inspector",
        chrono::Duration::hours(1),
    )
    .expect("code");
    let log = s.admin_log(0).expect("log");
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].0, 1);
    let first = kiemtra_admin::Entry::from_bytes(&log[0].1).expect("entry");
    assert_eq!(first.act.name(), "code_issued");
    assert!(!s.append_admin_entry(1, b"{}").expect("taken"));
    assert_eq!(
        s.admin_log(0).expect("log")[0].1,
        log[0].1,
        "a taken number overwrites nothing"
    );
    assert!(s.append_admin_entry(2, b"two").expect("append"));
    assert_eq!(s.admin_log(1).expect("after 1"), vec![(2, b"two".to_vec())]);
    let failed: Result<(), _> = s.batch(|t| {
        assert!(t.append_admin_entry(3, b"three")?);
        Err(kiemtra_store::Error::Corrupt("undo".into()))
    });
    assert!(failed.is_err());
    assert_eq!(
        s.admin_log(0).expect("log").len(),
        2,
        "a rolled-back append is not kept"
    );
}

/// Console accounts and sessions: a password set, replaced (clearing the
/// failed count), failures recorded; a session found by its hash, ended,
/// and expired ones swept.
fn console<B: Backend>(b: &B) {
    let mut s = b.open();
    assert!(s.console_account("sup").expect("none").is_none());
    s.set_console_password("sup", "$argon2id$one", "2026-01-01T00:00:00Z")
        .expect("set");
    s.console_sign_in_result("sup", 3, Some("2026-01-01T00:15:00Z"))
        .expect("failed");
    let a = s.console_account("sup").expect("read").expect("account");
    assert_eq!(
        (a.password.as_str(), a.failed, a.locked_until.as_deref()),
        ("$argon2id$one", 3, Some("2026-01-01T00:15:00Z"))
    );
    s.set_console_password("sup", "$argon2id$two", "2026-01-02T00:00:00Z")
        .expect("replace");
    let a = s.console_account("sup").expect("read").expect("account");
    assert_eq!(
        (a.password.as_str(), a.failed, a.locked_until),
        ("$argon2id$two", 0, None)
    );
    let session = |user: &str, expires: &str| kiemtra_store::ConsoleSession {
        user_id: user.into(),
        csrf: "c".repeat(64),
        expires_at: expires.into(),
    };
    s.create_console_session(
        b"one",
        &session("sup", "2026-01-03T00:00:00Z"),
        "2026-01-02T00:00:00Z",
    )
    .expect("create");
    s.create_console_session(
        b"old",
        &session("sup", "2026-01-01T00:00:00Z"),
        "2025-12-31T00:00:00Z",
    )
    .expect("create");
    assert!(
        s.create_console_session(b"one", &session("aud", "2026-01-03T00:00:00Z"), "now")
            .is_err(),
        "a session's hash is taken once"
    );
    assert_eq!(
        s.console_session(b"one").expect("read"),
        Some(session("sup", "2026-01-03T00:00:00Z"))
    );
    s.delete_console_session(b"none", "2026-01-02T12:00:00Z")
        .expect("sweep");
    assert!(s.console_session(b"old").expect("read").is_none(), "swept");
    assert!(s.console_session(b"one").expect("read").is_some());
    s.delete_console_session(b"one", "2026-01-02T12:00:00Z")
        .expect("end");
    assert!(s.console_session(b"one").expect("read").is_none());
}

type Case<B> = (&'static str, fn(&B));

fn cases<B: Backend>() -> Vec<Case<B>> {
    vec![
        ("enrollment", enrollment::<B>),
        ("visits", visits::<B>),
        ("rollback", rollback::<B>),
        ("feed", feed::<B>),
        ("signatures", signatures::<B>),
        ("engine", engine::<B>),
        ("concurrent_edits", concurrent_edits::<B>),
        ("evidence", evidence::<B>),
        ("admin_log", admin_log::<B>),
        ("console", console::<B>),
    ]
}

#[test]
fn the_sqlite_backend_passes_the_conformance_suite() {
    for (name, case) in cases::<Sqlite>() {
        let dir = tempfile::tempdir().expect("dir");
        eprintln!("sqlite: {name}");
        case(&Sqlite(dir.path().join("server")));
    }
}

#[test]
fn the_postgres_backend_passes_the_conformance_suite() {
    let cluster = PgCluster::start();
    for (i, (name, case)) in cases::<Postgres>().into_iter().enumerate() {
        let db = format!("case_{i}");
        cluster.create_db(&db);
        eprintln!("postgres: {name}");
        case(&Postgres(cluster.url(&db)));
    }
    cluster.create_db("listen");
    another_process_hears_of_stored_changes(&cluster.url("listen"));
    cluster.create_db("newer");
    let url = cluster.url("newer");
    drop(PgStore::connect(&url).expect("migrate"));
    newer_schema_is_refused(&url);
}
