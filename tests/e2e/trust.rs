//! The acceptance rule: every refused change gets a clear per-visit error and
//! nothing of it is stored.

use crate::harness::*;
use kiemtra_core::*;
use kiemtra_sync_protocol::{
    Cursor, MEDIA_TYPE, SeqRange, Signature, SyncRequest, SyncResponse, VisitOffer, VisitStatus,
};

/// A change to `id` made with `by`'s identity (so it names `by` as author)
/// by a tampered app that skips the local role checks, on top of what the
/// server holds; returns the bytes and their hashes.
/// Changes named both ways: their hashes (what is signed) and their actor
/// and sequence ranges (what travels).
pub struct Batch {
    hashes: Vec<ChangeHash>,
    ranges: Vec<SeqRange>,
}

fn change_by(by: &Device, base: &[u8], id: &VisitId) -> (Vec<u8>, Batch, Vec<ChangeHash>) {
    let tampered = by.store.session().clone().with_role(Role::Supervisor);
    let mut v = Visit::load(base, &tampered).expect("load");
    let heads = v.heads();
    v.record_attendance(
        &staff(1),
        AttendanceMark::Absent(AbsenceReason::Unexcused),
        "",
        None,
    )
    .expect("record");
    let _ = id;
    let hashes = v.change_hashes_after(&heads);
    let ranges = v
        .seq_ranges(&hashes)
        .expect("ranges")
        .into_iter()
        .map(|(actor, first, last)| SeqRange { actor, first, last })
        .collect();
    (v.save_after(&heads), Batch { hashes, ranges }, v.heads())
}

fn sign(by: &Device, id: &str, batch: &Batch) -> Signature {
    let creds = by.client.credentials();
    Signature {
        signer: creds.device_id.clone(),
        ranges: batch.ranges.clone(),
        signature: creds.sign(id, &batch.hashes).expect("sign"),
    }
}

/// Sends one offer as `via` and returns the visit's answer.
async fn offer(
    url: &str,
    via: &Device,
    id: &str,
    heads: Vec<ChangeHash>,
    changes: Vec<u8>,
    signatures: Vec<Signature>,
) -> (VisitStatus, String) {
    let request = SyncRequest {
        cursor: Cursor::default(),
        max_response: 0,
        visits: vec![VisitOffer {
            visit_id: id.into(),
            heads: heads.iter().map(|h| h.0).collect(),
            confirmed: None,
            changes,
            signatures,
            implied: false,
        }],
    };
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/sync"))
        .bearer_auth(&via.client.credentials().token)
        .header("Content-Type", MEDIA_TYPE)
        .body(request.encode())
        .send()
        .await
        .expect("send");
    assert_eq!(
        resp.status(),
        reqwest::StatusCode::OK,
        "{:?}",
        resp.text().await
    );
    let answer =
        SyncResponse::decode(&resp.bytes().await.expect("body"), usize::MAX).expect("decode");
    let r = answer
        .visits
        .into_iter()
        .find(|v| v.visit_id == id)
        .expect("answered");
    (r.status, r.message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_unauthorised_and_tampered_changes_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let (data, url) = (server.data.clone(), server.url());
    let d = |n: &str| dir.path().join(n);
    let mut a = Device::enroll(&data, &url, "insp-a", "team-1", "inspector", &d("a")).await;
    let mut b = Device::enroll(&data, &url, "insp-b", "team-1", "inspector", &d("b")).await;
    let z = Device::enroll(&data, &url, "insp-z", "team-2", "inspector", &d("z")).await;
    let auditor = Device::enroll(&data, &url, "audit-1", "team-1", "auditor", &d("aud")).await;
    let admin = Device::enroll(&data, &url, "admin-1", "team-1", "administrator", &d("adm")).await;
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 4), &template())
        .expect("create");
    a.sync().await;
    b.sync().await;
    let base = a.store.visit(&id).expect("v").save();
    let before = server_state(&data, &id);
    let expect = |got: (VisitStatus, String), status: VisitStatus, words: &str| {
        assert_eq!(got.0, status, "{}", got.1);
        assert!(got.1.contains(words), "expected {words:?} in {:?}", got.1);
    };

    // Signed with another device's key, under the author's name.
    let (bytes, hashes, heads) = change_by(&a, &base, &id);
    let mut forged = sign(&b, "v-1", &hashes);
    forged.signer = a.client.credentials().device_id.clone();
    expect(
        offer(&url, &a, "v-1", heads.clone(), bytes.clone(), vec![forged]).await,
        VisitStatus::Invalid,
        "does not verify",
    );
    // Names a device that did not sign it (a valid signature by someone else).
    expect(
        offer(
            &url,
            &b,
            "v-1",
            heads.clone(),
            bytes.clone(),
            vec![sign(&b, "v-1", &hashes)],
        )
        .await,
        VisitStatus::Invalid,
        "did not author",
    );
    // Stripped signature.
    expect(
        offer(&url, &a, "v-1", heads.clone(), bytes.clone(), vec![]).await,
        VisitStatus::Invalid,
        "carries no signature",
    );
    // A signature over other visit's message does not cover these changes here.
    expect(
        offer(
            &url,
            &a,
            "v-1",
            heads.clone(),
            bytes.clone(),
            vec![sign(&a, "v-2", &hashes)],
        )
        .await,
        VisitStatus::Invalid,
        "does not verify",
    );
    // Altered change bytes.
    let mut altered = bytes.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0xff;
    expect(
        offer(
            &url,
            &a,
            "v-1",
            heads.clone(),
            altered,
            vec![sign(&a, "v-1", &hashes)],
        )
        .await,
        VisitStatus::Invalid,
        "unreadable",
    );

    // A device of another team: its own write, and its change forwarded by a team member.
    let (zb, zh, zheads) = change_by(&z, &base, &id);
    expect(
        offer(
            &url,
            &z,
            "v-1",
            zheads.clone(),
            zb.clone(),
            vec![sign(&z, "v-1", &zh)],
        )
        .await,
        VisitStatus::Unknown,
        "no such visit",
    );
    expect(
        offer(&url, &b, "v-1", zheads, zb, vec![sign(&z, "v-1", &zh)]).await,
        VisitStatus::Denied,
        "another team",
    );
    // An auditor's write and an administrator's edit of visit contents.
    let (ab, ah, aheads) = change_by(&auditor, &base, &id);
    expect(
        offer(
            &url,
            &auditor,
            "v-1",
            aheads.clone(),
            ab.clone(),
            vec![sign(&auditor, "v-1", &ah)],
        )
        .await,
        VisitStatus::Denied,
        "auditors never write",
    );
    expect(
        offer(
            &url,
            &b,
            "v-1",
            aheads,
            ab,
            vec![sign(&auditor, "v-1", &ah)],
        )
        .await,
        VisitStatus::Denied,
        "auditors never write",
    );
    let (mb, mh, mheads) = change_by(&admin, &base, &id);
    expect(
        offer(
            &url,
            &admin,
            "v-1",
            mheads,
            mb,
            vec![sign(&admin, "v-1", &mh)],
        )
        .await,
        VisitStatus::Denied,
        "administrators never",
    );

    assert_eq!(
        server_state(&data, &id),
        before,
        "nothing of any refused change was stored"
    );

    // The genuine change, properly signed, is accepted.
    expect(
        offer(
            &url,
            &a,
            "v-1",
            heads.clone(),
            bytes.clone(),
            vec![sign(&a, "v-1", &hashes)],
        )
        .await,
        VisitStatus::Ok,
        "",
    );
    assert_ne!(server_state(&data, &id), before);

    // From a revoked device: its next change, forwarded by a team member, is refused.
    let accepted = {
        let mut v = Visit::load(&base, a.store.session()).expect("load");
        v.load_incremental(&bytes).expect("accepted change");
        v.save()
    };
    let (rb, rh, rheads) = change_by(&a, &accepted, &id);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiemtra-server"))
        .args(["revoke", &a.client.credentials().device_id, "--data"])
        .arg(&data)
        .output()
        .expect("revoke");
    assert!(out.status.success());
    // Revoked on the server machine, and logged as the server's act.
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("administration log entry"), "{said}");
    let after_accept = server_state(&data, &id);
    expect(
        offer(&url, &b, "v-1", rheads, rb, vec![sign(&a, "v-1", &rh)]).await,
        VisitStatus::Denied,
        "revoked",
    );
    assert_eq!(server_state(&data, &id), after_accept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signatures_travel_with_changes_to_other_devices() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let mut a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    let mut b = Device::enroll(
        &server.data,
        &server.url(),
        "insp-b",
        "team-1",
        "inspector",
        &dir.path().join("b"),
    )
    .await;
    let id = visit_with_one_mark(&mut a);
    a.sync().await;
    b.sync().await;
    let visit = b.store.visit(&id).expect("v");
    let all = visit.change_hashes_after(&[]);
    let ids = visit.change_ids(&all).expect("ids");
    let (index, _) = visit.change_index();
    let kept = b.store.change_receipts(&id, &index).expect("receipts");
    assert!(kept.unresolved.is_empty());
    let signed: std::collections::HashSet<_> = kept.changes.iter().map(|(h, _)| *h).collect();
    assert_eq!(all.len(), 2);
    assert!(
        all.iter().all(|h| signed.contains(h)),
        "b holds a's signatures for every change it received"
    );
    let sigs = b.store.signatures_covering(&id, &ids).expect("sigs");
    assert!(!sigs.is_empty());
    assert!(
        sigs.iter()
            .all(|s| s.signer == a.client.credentials().device_id)
    );
}

/// Visit `v-1` of team-1 created on `d` with one attendance mark: two
/// changes of `d`, not synced.
fn visit_with_one_mark(d: &mut Device) -> VisitId {
    let id = vid("v-1");
    d.store
        .create_visit(new_visit("v-1", "team-1", 4), &template())
        .expect("create");
    d.store
        .edit(&id, |v| {
            v.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        })
        .expect("edit");
    id
}

/// A store that held unsigned changes before it recorded its own changes
/// (an app upgraded from schema 5) signs them at its next sync by scanning,
/// once; without that scan the server would refuse them as unsigned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_store_signs_its_older_changes_once() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let mut a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    let id = visit_with_one_mark(&mut a);
    // What the store looked like before: no record of its own changes, and
    // the flag the migration sets on a store that held visits.
    {
        let conn = rusqlite::Connection::open(a.dir.join("device.db")).expect("sqlite");
        conn.execute("DELETE FROM own_changes", []).expect("forget");
        conn.execute(
            "INSERT INTO settings (key, value) VALUES ('sign.scan_all', '1')",
            [],
        )
        .expect("flag");
    }
    a.reopen();
    assert!(a.store.own_unsigned(&id).expect("own").0.is_empty());
    let report = a.sync().await;
    assert_eq!(report.visits_uploaded, 1);
    assert_eq!(
        server_history_len(&server.data, &id),
        2,
        "both changes accepted"
    );
    assert_eq!(a.store.setting("sign.scan_all").expect("setting"), None);
    // Without the flag, the same forgetting leaves changes unsigned and the
    // server refuses them: the scan is what made the difference.
    a.store
        .edit(&id, |v| {
            v.record_attendance(&staff(1), AttendanceMark::Late, "", None)
        })
        .expect("edit");
    {
        let conn = rusqlite::Connection::open(a.dir.join("device.db")).expect("sqlite");
        conn.execute("DELETE FROM own_changes", []).expect("forget");
    }
    a.reopen();
    let refused = a
        .client
        .sync(&mut a.store, &mut |_| {})
        .await
        .expect("sync");
    assert_eq!(refused.errors.len(), 1, "{:?}", refused.errors);
    assert!(
        refused.errors[0].message.contains("no signature"),
        "{:?}",
        refused.errors
    );
    assert_eq!(server_history_len(&server.data, &id), 2, "nothing stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_supervisors_approve_return_or_settle_conflicts() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let (data, url) = (server.data.clone(), server.url());
    let d = |n: &str| dir.path().join(n);
    let mut a = Device::enroll(&data, &url, "insp-a", "team-1", "inspector", &d("a")).await;
    let mut b = Device::enroll(&data, &url, "insp-b", "team-1", "inspector", &d("b")).await;
    let mut sup = Device::enroll(&data, &url, "sup-1", "team-1", "supervisor", &d("s")).await;
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 4), &template())
        .expect("create");
    a.sync().await;
    b.sync().await;
    a.store
        .edit(&id, |v| {
            v.record_attendance(&staff(2), AttendanceMark::Present, "", None)
        })
        .expect("a");
    b.store
        .edit(&id, |v| {
            v.record_attendance(&staff(2), AttendanceMark::Late, "", None)
        })
        .expect("b");
    a.sync().await;
    b.sync().await;
    a.sync().await;
    assert_eq!(a.state(&id).conflicts().len(), 1);

    // Inspectors' attempts, each from its own copy so one refusal does not hide another.
    type Attempt = fn(&mut Visit) -> kiemtra_core::Result<()>;
    let attempts: [(&str, Attempt); 3] = [
        ("settle a conflict", |v| {
            v.resolve(&FieldRef::Attendance { staff: staff(2) }, 0)
        }),
        ("approve the visit", |v| {
            v.resolve(&FieldRef::Attendance { staff: staff(2) }, 0)?;
            v.submit("")?;
            v.approve("").map(|_| ())
        }),
        ("return the visit", |v| {
            v.submit("")?;
            v.return_visit("thiếu chữ ký")
        }),
    ];
    // The honest app refuses these before anything is written.
    let field = FieldRef::Attendance { staff: staff(2) };
    assert!(matches!(
        a.store.edit(&id, |v| v.resolve(&field, 0)),
        Err(kiemtra_store::Error::Visit(Error::SupervisorOnly(_)))
    ));
    let before = server_state(&data, &id);
    for (what, attempt) in attempts {
        let shared = d(&format!("copy-{}", what.replace(' ', "-")));
        std::fs::create_dir_all(&shared).expect("dir");
        for f in ["device.db", "device.db-wal", "device.db-shm"] {
            if a.dir.join(f).exists() {
                std::fs::copy(a.dir.join(f), shared.join(f)).expect("copy db");
            }
        }
        // A tampered copy of the inspector's app, without the local role checks.
        let tampered = Session::new(editor(a.client.credentials())).with_role(Role::Supervisor);
        let mut copy = Device {
            store: kiemtra_store::Store::open_with_session(shared.join("device.db"), tampered)
                .expect("store"),
            client: kiemtra_client::SyncClient::new(a.client.credentials().clone(), fast_options())
                .expect("client"),
            dir: shared.clone(),
        };
        // The first two attempts need the submit to be a separate, allowed change.
        copy.store.edit(&id, attempt).expect("local edit");
        let report = copy
            .client
            .sync(&mut copy.store, &mut |_| {})
            .await
            .expect("sync");
        let err = report
            .errors
            .iter()
            .find(|e| e.visit_id == "v-1")
            .unwrap_or_else(|| panic!("{what}: not refused"));
        assert_eq!(err.status, VisitStatus::Denied, "{what}: {}", err.message);
        assert!(
            err.message.contains("only a supervisor may"),
            "{what}: {}",
            err.message
        );
        assert_eq!(server_state(&data, &id), before, "{what}: nothing stored");
    }

    // The supervisor may do all three.
    sup.sync().await;
    sup.store
        .edit(&id, |v| {
            v.resolve(&FieldRef::Attendance { staff: staff(2) }, 0)
        })
        .expect("resolve");
    sup.store.edit(&id, |v| v.submit("")).expect("submit");
    sup.store
        .edit(&id, |v| v.return_visit("bổ sung ảnh"))
        .expect("return");
    sup.store.edit(&id, |v| v.submit("")).expect("resubmit");
    sup.store
        .edit(&id, |v| v.approve("").map(|_| ()))
        .expect("approve");
    sup.sync().await;
    let s = server_state(&data, &id).expect("state");
    assert_eq!(s.status(), kiemtra_core::VisitStatus::Approved);
    assert!(s.conflicts().is_empty());
}
