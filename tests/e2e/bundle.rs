//! Merging on site without a signal: two inspectors' phones record one
//! unit with the server down, exchange bundle files, and show the same
//! merged visit and conflicts; a supervisor's desk reads both. When one
//! phone syncs, the server takes every change once, under the original
//! authors' signatures. Bad bundles are refused and change nothing.

use crate::harness::*;
use kiemtra_client::{Bundle, BundleError, read_bundle, write_bundle};
use kiemtra_core::*;

const V: &str = "v-bundle";

fn heads_sorted(d: &mut Device, id: &VisitId) -> Vec<ChangeHash> {
    let mut h = d.store.visit(id).expect("visit").heads();
    h.sort();
    h
}

/// What a reader's store holds, to show a refused bundle changed nothing.
fn snapshot(d: &mut Device) -> Vec<(String, Vec<ChangeHash>, usize)> {
    let ids: Vec<VisitId> = d
        .store
        .list_visits()
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    ids.into_iter()
        .map(|id| {
            let heads = heads_sorted(d, &id);
            let sigs = d.store.signatures_of(&id).expect("sigs").len();
            (id.to_string(), heads, sigs)
        })
        .collect()
}

fn refused(d: &mut Device, bytes: &[u8], what: &str) -> BundleError {
    let before = snapshot(d);
    let creds = d.client.credentials().clone();
    let e = read_bundle(&mut d.store, &creds, bytes).expect_err(what);
    assert_eq!(snapshot(d), before, "{what}: nothing changed");
    assert!(!e.to_string().is_empty());
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_phones_merge_offline_by_bundles_and_the_server_takes_it_once() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let (data, url) = (server.data.clone(), server.url());
    let d = |n: &str| dir.path().join(n);
    let mut a = Device::enroll(&data, &url, "insp-a", "team-1", "inspector", &d("a")).await;
    let mut b = Device::enroll(&data, &url, "insp-b", "team-1", "inspector", &d("b")).await;
    let mut s = Device::enroll(&data, &url, "sup-1", "team-1", "supervisor", &d("s")).await;
    let mut z = Device::enroll(&data, &url, "insp-z", "team-2", "inspector", &d("z")).await;
    let id = vid(V);
    a.store
        .create_visit(new_visit(V, "team-1", 6), &template())
        .expect("create");
    // Everyone syncs once with a signal: the visit, and the team's keys.
    a.sync().await;
    b.sync().await;
    s.sync().await;
    z.store
        .create_visit(new_visit("v-z", "team-2", 2), &template())
        .expect("create z");
    z.sync().await;
    assert!(
        kiemtra_client::team_devices(&b.store)
            .expect("team")
            .is_some_and(|(t, _)| t.len() == 3),
        "b learned its team's three devices on its sync"
    );

    // No signal from here on.
    server.terminate();
    a.store
        .edit(&id, |v| {
            v.record_attendance(&staff(0), AttendanceMark::Present, "", None)?;
            v.record_attendance(&staff(1), AttendanceMark::Present, "", None)
        })
        .expect("a records");
    b.store
        .edit(&id, |v| {
            v.record_attendance(&staff(0), AttendanceMark::Present, "ngồi tại bàn", None)?;
            v.record_attendance(&staff(1), AttendanceMark::Late, "", None)?;
            v.set_narrative("Tổ 2 đến lúc 8 giờ.")
        })
        .expect("b records");
    let (ca, cb) = (
        a.client.credentials().clone(),
        b.client.credentials().clone(),
    );
    let from_a = write_bundle(&mut a.store, &ca, std::slice::from_ref(&id)).expect("a writes");
    let from_b = write_bundle(&mut b.store, &cb, std::slice::from_ref(&id)).expect("b writes");

    // Bad bundles, each refused with nothing changed (read by b).
    let e = refused(&mut b, &from_a[..from_a.len() - 40], "truncated");
    assert!(matches!(e, BundleError::Damaged), "{e}");
    let mut altered = from_a.clone();
    let mid = altered.len() / 2;
    altered[mid] ^= 0x40;
    let e = refused(&mut b, &altered, "altered");
    assert!(matches!(e, BundleError::Damaged), "{e}");
    let cz = z.client.credentials().clone();
    let other_team = write_bundle(&mut z.store, &cz, &[]).expect("z writes");
    let e = refused(&mut b, &other_team, "another team's");
    assert!(matches!(e, BundleError::OtherTeam { .. }), "{e}");
    // A forged signature, the checksum made right again.
    let mut forged = Bundle::decode(&from_a).expect("decode");
    for sig in &mut forged.visits[0].signatures {
        sig.signature[10] ^= 1;
    }
    let e = refused(&mut b, &forged.encode(), "forged signature");
    assert!(e.to_string().contains("does not verify"), "{e}");
    // A's changes presented as signed by b: b's signature names a's changes.
    let mut misattributed = Bundle::decode(&from_a).expect("decode");
    for sig in &mut misattributed.visits[0].signatures {
        sig.signer = cb.device_id.clone();
    }
    let e = refused(&mut b, &misattributed.encode(), "signer swapped");
    assert!(e.to_string().contains("another device made"), "{e}");
    // Unsigned: every signature dropped.
    let mut unsigned = Bundle::decode(&from_a).expect("decode");
    unsigned.visits[0].signatures.clear();
    let e = refused(&mut b, &unsigned.encode(), "unsigned");
    assert!(e.to_string().contains("covered by no signature"), "{e}");
    let e = refused(&mut b, b"KTSQ not a bundle", "not a bundle");
    assert!(matches!(e, BundleError::NotABundle), "{e}");

    // The exchange, both ways, and the supervisor's desk reads both.
    let into_b = read_bundle(&mut b.store, &cb, &from_a).expect("b reads a's");
    assert_eq!(into_b.updated, vec![id.clone()]);
    assert!(into_b.new_changes >= 1);
    read_bundle(&mut a.store, &ca, &from_b).expect("a reads b's");
    let cs = s.client.credentials().clone();
    read_bundle(&mut s.store, &cs, &from_a).expect("s reads a's");
    read_bundle(&mut s.store, &cs, &from_b).expect("s reads b's");
    let again = read_bundle(&mut s.store, &cs, &from_b).expect("s reads b's twice");
    assert_eq!(again.new_changes, 0, "reading a bundle twice adds nothing");
    assert_eq!(again.unchanged, vec![id.clone()]);
    let (sa, sb, ss) = (a.state(&id), b.state(&id), s.state(&id));
    assert_eq!(sa, sb, "both phones show the same merged visit");
    assert_eq!(sa, ss, "and so does the supervisor");
    let conflicts = ss.conflicts();
    assert_eq!(
        conflicts.len(),
        1,
        "only s-001's different marks: {conflicts:?}"
    );
    assert_eq!(conflicts[0].field, FieldRef::Attendance { staff: staff(1) });
    assert_eq!(ss.narrative, "Tổ 2 đến lúc 8 giờ.");
    let merged = heads_sorted(&mut b, &id);

    // A signal again: b syncs first, carrying a's changes under a's
    // signature; then a syncs; nobody's work is duplicated.
    let server = ServerProcess::start(&data);
    for dev in [&mut a, &mut b, &mut s] {
        dev.repoint(&server.url());
    }
    let report = b.sync().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    let changes = b
        .store
        .visit(&id)
        .expect("visit")
        .automerge()
        .get_changes(&[])
        .len();
    drop(server);
    assert_eq!(
        server_history_len(&data, &id),
        changes,
        "the server holds every change of the merged visit"
    );
    let server = ServerProcess::start(&data);
    for dev in [&mut a, &mut b, &mut s] {
        dev.repoint(&server.url());
    }
    let report = a.sync().await;
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(heads_sorted(&mut a, &id), merged);
    let code = enroll_codes(&data, "audit-1", "team-1", "auditor", 1).remove(0);
    let auditor =
        Device::enroll_with_code(&server.url(), &code, "audit-1", &dir.path().join("aud")).await;
    let report: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/visits/{V}/verify", server.url()))
        .bearer_auth(&auditor.client.credentials().token)
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("report");
    assert_eq!(
        report["ok"], true,
        "every change verifies under its author's signature: {report}"
    );
    drop(server);
    assert_eq!(
        server_history_len(&data, &id),
        changes,
        "a's sync added nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_team_devices_endpoint_lists_only_the_callers_team_and_needs_a_token() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let (data, url) = (server.data.clone(), server.url());
    let d = |n: &str| dir.path().join(n);
    let a = Device::enroll(&data, &url, "insp-a", "team-1", "inspector", &d("a")).await;
    let _s = Device::enroll(&data, &url, "sup-1", "team-1", "supervisor", &d("s")).await;
    let _z = Device::enroll(&data, &url, "insp-z", "team-2", "inspector", &d("z")).await;
    let http = reqwest::Client::new();
    let anonymous = http
        .get(format!("{url}/v1/team/devices"))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), reqwest::StatusCode::UNAUTHORIZED);
    let forged = http
        .get(format!("{url}/v1/team/devices"))
        .bearer_auth("00".repeat(32))
        .send()
        .await
        .expect("answer");
    assert_eq!(forged.status(), reqwest::StatusCode::UNAUTHORIZED);
    let list: Vec<serde_json::Value> = http
        .get(format!("{url}/v1/team/devices"))
        .bearer_auth(&a.client.credentials().token)
        .send()
        .await
        .expect("answer")
        .json()
        .await
        .expect("json");
    let mut users: Vec<&str> = list.iter().filter_map(|d| d["user_id"].as_str()).collect();
    users.sort();
    assert_eq!(users, ["insp-a", "sup-1"], "team-2's device is not listed");
    assert!(
        list.iter()
            .all(|d| d["public_key"].as_str().is_some_and(|k| k.len() == 64))
    );
}
