//! The auditor's verification: a clean visit verifies; tampering with the
//! server database is detected and named.

use crate::harness::*;
use kiemtra_core::*;
use kiemtra_sync_protocol::{
    Cursor, MEDIA_TYPE, Signature, SyncRequest, SyncResponse, VisitOffer, VisitStatus,
};

async fn verify(url: &str, d: &Device, id: &str) -> (reqwest::StatusCode, serde_json::Value) {
    let resp = reqwest::Client::new()
        .get(format!("{url}/v1/visits/{id}/verify"))
        .bearer_auth(&d.client.credentials().token)
        .send()
        .await
        .expect("verify");
    (resp.status(), resp.json().await.unwrap_or_default())
}

fn rules(report: &serde_json::Value) -> Vec<String> {
    report["problems"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter_map(|p| p["rule"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn db(data: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(data.join("kiemtra.db")).expect("open server db")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_detects_tampering_removal_bad_approvals_and_late_revocation() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let (data, url) = (server.data.clone(), server.url());
    let d = |n: &str| dir.path().join(n);
    let mut a = Device::enroll(&data, &url, "insp-a", "team-1", "inspector", &d("a")).await;
    let mut sup = Device::enroll(&data, &url, "sup-1", "team-1", "supervisor", &d("s")).await;
    let aud = Device::enroll(&data, &url, "audit-1", "team-9", "auditor", &d("aud")).await;
    let z = Device::enroll(&data, &url, "insp-z", "team-2", "inspector", &d("z")).await;
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 4), &template())
        .expect("create");
    a.store
        .edit(&id, |v| {
            v.record_attendance(&staff(0), AttendanceMark::Present, "", None)
        })
        .expect("edit");
    a.sync().await;
    a.store
        .edit(&id, |v| {
            v.record_attendance(&staff(1), AttendanceMark::Late, "", None)
        })
        .expect("edit");
    a.sync().await;
    sup.sync().await;
    let creds = sup.client.credentials().clone();
    sup.store.edit(&id, |v| v.submit("")).expect("submit");
    sup.store
        .edit(&id, |v| {
            v.approve_signed("Đồng ý", &|m| creds.sign_bytes(m).unwrap_or_default())
                .map(|_| ())
        })
        .expect("approve");
    sup.sync().await;

    // Clean: the auditor (of no team) and the supervisor may verify; others may not.
    let (status, report) = verify(&url, &aud, "v-1").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{report}");
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["changes_checked"], 5);
    assert_eq!(report["approvals_checked"], 1);
    assert_eq!(verify(&url, &sup, "v-1").await.0, reqwest::StatusCode::OK);
    assert_eq!(
        verify(&url, &a, "v-1").await.0,
        reqwest::StatusCode::FORBIDDEN
    );
    assert_eq!(
        verify(&url, &z, "v-1").await.0,
        reqwest::StatusCode::NOT_FOUND,
        "another team sees nothing"
    );
    assert_eq!(
        verify(&url, &aud, "v-nope").await.0,
        reqwest::StatusCode::NOT_FOUND
    );
    // The server's receive times: one per change, first batch wins; the
    // same scope as reading the visit; nothing without credentials.
    let receipts = |token: Option<String>, visit: &str| {
        let url = format!("{url}/v1/visits/{visit}/receipts");
        async move {
            let mut req = reqwest::Client::new().get(url);
            if let Some(t) = token {
                req = req.bearer_auth(t);
            }
            let resp = req.send().await.expect("receipts");
            (
                resp.status(),
                resp.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let token = |d: &Device| Some(d.client.credentials().token.clone());
    let (status, list) = receipts(token(&a), "v-1").await;
    assert_eq!(status, reqwest::StatusCode::OK, "{list}");
    let list = list.as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 5, "one receipt per change: {list:?}");
    let hashes: std::collections::HashSet<&str> =
        list.iter().filter_map(|r| r["hash"].as_str()).collect();
    assert_eq!(hashes.len(), 5);
    assert!(list.iter().all(|r| {
        r["received_at"]
            .as_str()
            .is_some_and(|t| t.starts_with("20"))
    }));
    assert_eq!(
        receipts(token(&aud), "v-1").await.0,
        reqwest::StatusCode::OK
    );
    assert_eq!(
        receipts(token(&z), "v-1").await.0,
        reqwest::StatusCode::NOT_FOUND,
        "another team sees nothing"
    );
    assert_eq!(
        receipts(token(&a), "v-nope").await.0,
        reqwest::StatusCode::NOT_FOUND
    );
    assert_eq!(
        receipts(token(&a), "not a visit id").await.0,
        reqwest::StatusCode::BAD_REQUEST
    );
    assert_eq!(
        receipts(None, "v-1").await.0,
        reqwest::StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        receipts(Some("forged-token".into()), "v-1").await.0,
        reqwest::StatusCode::UNAUTHORIZED
    );

    let campaign = reqwest::Client::new()
        .get(format!("{url}/v1/campaigns/ct-2015/verify"))
        .bearer_auth(&aud.client.credentials().token)
        .send()
        .await
        .expect("campaign");
    let campaign: serde_json::Value = campaign.json().await.expect("json");
    assert_eq!(campaign["ok"], true, "{campaign}");

    // A device revoked before a change of it was received.
    db(&data)
        .execute(
            "UPDATE devices SET revoked_at = '2000-01-01T00:00:00Z' WHERE user_id = 'insp-a'",
            [],
        )
        .expect("backdate revocation");
    let (_, report) = verify(&url, &aud, "v-1").await;
    assert!(
        rules(&report).contains(&"revoked-before-received".to_owned()),
        "{report}"
    );
    db(&data)
        .execute(
            "UPDATE devices SET revoked_at = NULL WHERE user_id = 'insp-a'",
            [],
        )
        .expect("undo");

    // An approval whose heads are not in the document (a tampered supervisor app signs it properly).
    let base = sup.store.visit(&id).expect("v").save();
    let mut doc = automerge::Automerge::load(&base).expect("load");
    let before = doc.get_heads();
    doc.set_author(Some(automerge::Author::from(
        format!("{}/sup-1", creds.device_id).into_bytes(),
    )));
    let fake: ChangeHash = "ab".repeat(32).parse().expect("hash");
    let forged = Approval {
        id: "a-forged".into(),
        heads: vec![fake.to_string()],
        stamp: Stamp {
            by: UserId::parse("sup-1").expect("u"),
            device: DeviceId::parse(&creds.device_id).expect("d"),
            at: chrono::Utc::now(),
        },
        signature: creds
            .sign_bytes(&Approval::message("v-1", &[fake]))
            .expect("sign")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
    };
    {
        use automerge::ReadDoc;
        use automerge::transaction::Transactable;
        let approvals = doc
            .get(automerge::ROOT, "approvals")
            .expect("get")
            .expect("approvals")
            .1;
        let mut tx = doc.transaction();
        tx.put(
            &approvals,
            "a-forged",
            serde_json::to_string(&forged).expect("json"),
        )
        .expect("put");
        tx.commit();
    }
    let hashes = doc
        .get_changes(&before)
        .iter()
        .map(|c| c.hash())
        .collect::<Vec<_>>();
    let offer = SyncRequest {
        cursor: Cursor::default(),
        max_response: 0,
        visits: vec![VisitOffer {
            visit_id: "v-1".into(),
            heads: doc.get_heads().iter().map(|h| h.0).collect(),
            confirmed: None,
            changes: doc.save_after(&before),
            signatures: vec![Signature {
                signer: creds.device_id.clone(),
                ranges: vec![kiemtra_sync_protocol::SeqRange {
                    actor: doc.get_actor().to_bytes().to_vec(),
                    first: 1,
                    last: hashes.len() as u64,
                }],
                signature: creds.sign("v-1", &hashes).expect("sign"),
            }],
            implied: false,
        }],
    };
    let resp = reqwest::Client::new()
        .post(format!("{url}/v1/sync"))
        .bearer_auth(&creds.token)
        .header("Content-Type", MEDIA_TYPE)
        .body(offer.encode())
        .send()
        .await
        .expect("post");
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    // The acceptance rule refuses an approval over heads other than the
    // ones its change was made on; nothing of it is stored.
    let answer =
        SyncResponse::decode(&resp.bytes().await.expect("body"), usize::MAX).expect("decode");
    assert_eq!(
        answer.visits[0].status,
        VisitStatus::Invalid,
        "{}",
        answer.visits[0].message
    );
    assert!(
        answer.visits[0].message.contains("approves heads"),
        "{}",
        answer.visits[0].message
    );
    let (_, report) = verify(&url, &aud, "v-1").await;
    assert!(rules(&report).is_empty(), "{report}");

    // A change removed from the database (its chunk deleted).
    db(&data)
        .execute("DELETE FROM visit_chunks WHERE seq = (SELECT max(seq) FROM visit_chunks WHERE visit_id = 'v-1')", [])
        .expect("delete a chunk");
    let (_, report) = verify(&url, &aud, "v-1").await;
    assert!(
        rules(&report).contains(&"missing-change".to_owned()),
        "{report}"
    );

    // A change altered in the database.
    {
        let conn = db(&data);
        let (seq, mut bytes): (i64, Vec<u8>) = conn
            .query_row(
                "SELECT seq, data FROM visit_chunks WHERE visit_id = 'v-1' ORDER BY seq LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("read a chunk");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xff;
        conn.execute(
            "UPDATE visit_chunks SET data = ?1 WHERE seq = ?2",
            rusqlite::params![bytes, seq],
        )
        .expect("alter a chunk");
    }
    let (_, report) = verify(&url, &aud, "v-1").await;
    assert_eq!(report["ok"], false);
    assert!(
        rules(&report).contains(&"document-damaged".to_owned()),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_of_a_visit_reaches_devices_outside_its_scope() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let (data, url) = (server.data.clone(), server.url());
    let d = |n: &str| dir.path().join(n);
    let mut a = Device::enroll(&data, &url, "insp-a", "team-1", "inspector", &d("a")).await;
    let mut z = Device::enroll(&data, &url, "insp-z", "team-2", "inspector", &d("z")).await;
    let mut admin =
        Device::enroll(&data, &url, "admin-1", "team-1", "administrator", &d("adm")).await;
    let mut aud = Device::enroll(&data, &url, "audit-1", "team-9", "auditor", &d("aud")).await;
    a.store
        .create_visit(new_visit("v-1", "team-1", 4), &template())
        .expect("create");
    a.sync().await;
    let http = reqwest::Client::new();
    for (who, dev) in [("other team", &mut z), ("administrator", &mut admin)] {
        let list: serde_json::Value = http
            .get(format!("{url}/v1/visits"))
            .bearer_auth(&dev.client.credentials().token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("json");
        assert_eq!(list, serde_json::json!([]), "{who}: listing");
        let one = http
            .get(format!("{url}/v1/visits/v-1"))
            .bearer_auth(&dev.client.credentials().token)
            .send()
            .await
            .expect("get");
        assert_eq!(
            one.status(),
            reqwest::StatusCode::NOT_FOUND,
            "{who}: lookup"
        );
        let report = dev.sync().await;
        assert_eq!(report.visits_downloaded, 0, "{who}: sync");
        assert!(
            dev.store.list_visits().expect("list").is_empty(),
            "{who}: nothing stored on the device"
        );
    }
    // The auditor reads every team's visits, and writes none.
    aud.sync().await;
    assert_eq!(aud.state(&vid("v-1")), a.state(&vid("v-1")));
}
