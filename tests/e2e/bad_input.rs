//! Bad input gets a clear 4xx problem+json answer (or a per-visit error
//! inside a sync response) and changes nothing.

use crate::harness::*;
use kiemtra_core::*;
use kiemtra_sync_protocol::{
    Cursor, MEDIA_TYPE, SyncRequest, SyncResponse, VisitOffer, VisitStatus,
};
use reqwest::StatusCode;

async fn problem(resp: reqwest::Response) -> (StatusCode, String, String) {
    let status = resp.status();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(ctype, "application/problem+json", "status {status}");
    let body: serde_json::Value = resp.json().await.expect("json");
    (
        status,
        body["type"].as_str().unwrap_or("").to_owned(),
        body["detail"].as_str().unwrap_or("").to_owned(),
    )
}

async fn post_sync(
    url: &str,
    token: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = reqwest::Client::new()
        .post(format!("{url}/v1/sync"))
        .header("Content-Type", content_type)
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("send")
}

fn empty_request() -> Vec<u8> {
    SyncRequest::default().encode()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_unauthenticated_and_oversized_requests_are_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start_with(&dir.path().join("server"), &["--max-body", "4096"]);
    let url = server.url();
    let mut a = Device::enroll(
        &server.data,
        &url,
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    a.store
        .create_visit(new_visit("v-1", "team-1", 4), &template())
        .expect("create");
    a.sync().await;
    let token = a.client.credentials().token.clone();
    let before = server_state(&server.data, &vid("v-1"));

    let (s, t, _) = problem(post_sync(&url, None, MEDIA_TYPE, empty_request()).await).await;
    assert_eq!(
        (s, t.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "urn:kiemtra:problem:unauthenticated"
        )
    );
    let (s, t, _) =
        problem(post_sync(&url, Some("not-a-token"), MEDIA_TYPE, empty_request()).await).await;
    assert_eq!(
        (s, t.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "urn:kiemtra:problem:bad-credentials"
        )
    );
    let (s, t, _) =
        problem(post_sync(&url, Some(&token), MEDIA_TYPE, b"hello".to_vec()).await).await;
    assert_eq!(
        (s, t.as_str()),
        (StatusCode::BAD_REQUEST, "urn:kiemtra:problem:bad-message")
    );
    let mut wrong_version = empty_request();
    wrong_version[4] = 9;
    let (s, t, d) = problem(post_sync(&url, Some(&token), MEDIA_TYPE, wrong_version).await).await;
    assert_eq!(
        (s, t.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "urn:kiemtra:problem:unsupported-version"
        )
    );
    assert!(d.contains("version 9"), "{d}");
    let (s, t, _) =
        problem(post_sync(&url, Some(&token), "application/json", empty_request()).await).await;
    assert_eq!(
        (s, t.as_str()),
        (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "urn:kiemtra:problem:unsupported-media-type"
        )
    );
    let big = SyncRequest {
        cursor: Cursor::default(),
        max_response: 0,
        visits: vec![VisitOffer {
            signatures: vec![],
            implied: false,
            visit_id: "v-1".into(),
            heads: vec![],
            confirmed: None,
            changes: vec![7; 8000],
        }],
    };
    let (s, t, _) = problem(post_sync(&url, Some(&token), MEDIA_TYPE, big.encode()).await).await;
    assert_eq!(
        (s, t.as_str()),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "urn:kiemtra:problem:too-large"
        )
    );
    let dup = SyncRequest {
        cursor: Cursor::default(),
        max_response: 0,
        visits: vec![
            VisitOffer {
                signatures: vec![],
                implied: false,
                visit_id: "v-1".into(),
                heads: vec![],
                confirmed: None,
                changes: vec![],
            },
            VisitOffer {
                signatures: vec![],
                implied: false,
                visit_id: "v-2".into(),
                heads: vec![],
                confirmed: None,
                changes: vec![],
            },
        ],
    };
    let mut bytes = dup.encode();
    // Rename v-2 to v-1 in place: the same visit twice in one message.
    let at = bytes.windows(3).rposition(|w| w == b"v-2").expect("v-2");
    bytes[at + 2] = b'1';
    let (s, t, _) = problem(post_sync(&url, Some(&token), MEDIA_TYPE, bytes).await).await;
    assert_eq!(
        (s, t.as_str()),
        (StatusCode::BAD_REQUEST, "urn:kiemtra:problem:bad-message")
    );

    let http = reqwest::Client::new();
    let (s, t, _) = problem(
        http.get(format!("{url}/v1/visits/v-nope"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(
        (s, t.as_str()),
        (StatusCode::NOT_FOUND, "urn:kiemtra:problem:not-found")
    );
    let (s, _, _) = problem(
        http.get(format!("{url}/v1/visits/bad%20id"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = problem(
        http.get(format!("{url}/v1/visits"))
            .send()
            .await
            .expect("get"),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let ok = http
        .get(format!("{url}/v1/visits/v-1"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(ok.status(), StatusCode::OK);

    assert_eq!(
        server_state(&server.data, &vid("v-1")),
        before,
        "nothing changed"
    );
    assert_eq!(server_visit_count(&server.data), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_gets_a_timeout_and_stores_nothing() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().expect("dir");
    let server =
        ServerProcess::start_with(&dir.path().join("server"), &["--body-timeout-secs", "1"]);
    let a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    let token = a.client.credentials().token.clone();
    let mut conn = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let head = format!(
        "POST /v1/sync HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: {MEDIA_TYPE}\r\nContent-Length: 1000\r\n\r\nKTSQ"
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    // ...and never the rest of the body.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut answer),
    )
    .await;
    assert!(read.is_ok(), "the server answered within its body timeout");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains("urn:kiemtra:problem:request-timeout"),
        "{text}"
    );
    assert_eq!(server_visit_count(&server.data), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_visit_errors_do_not_fail_the_batch_and_store_nothing_for_that_visit() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let url = server.url();
    let mut a = Device::enroll(
        &server.data,
        &url,
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    let mut other = Device::enroll(
        &server.data,
        &url,
        "insp-z",
        "team-2",
        "inspector",
        &dir.path().join("z"),
    )
    .await;
    a.store
        .create_visit(new_visit("v-1", "team-1", 4), &template())
        .expect("create");
    a.store
        .create_visit(new_visit("v-2", "team-1", 4), &template())
        .expect("create");
    a.sync().await;
    other
        .store
        .create_visit(new_visit("v-team2", "team-2", 4), &template())
        .expect("create");
    other.sync().await;
    let token = a.client.credentials().token.clone();
    let v1_before = server_state(&server.data, &vid("v-1"));
    let v2_before = server_state(&server.data, &vid("v-2"));
    let team2_before = server_state(&server.data, &vid("v-team2"));

    // A good new visit, garbage changes for v-1, garbage for v-2 with its
    // heads and confirmation left to those changes (flag bit 2), a write to
    // another team's visit, an unknown visit with nothing to create it
    // from, a bad id.
    let mut fresh = Visit::create(
        new_visit("v-new", "team-1", 3),
        &template(),
        a.store.session(),
    )
    .expect("fresh");
    fresh
        .record_attendance(&staff(0), AttendanceMark::Present, "", None)
        .expect("rec");
    let foreign = other.store.visit(&vid("v-team2")).expect("v").save();
    let fresh_hashes = fresh.change_hashes_after(&[]);
    let fresh_signature = kiemtra_sync_protocol::Signature {
        signer: a.client.credentials().device_id.clone(),
        ranges: fresh
            .seq_ranges(&fresh_hashes)
            .expect("ranges")
            .into_iter()
            .map(|(actor, first, last)| kiemtra_sync_protocol::SeqRange { actor, first, last })
            .collect(),
        signature: a
            .client
            .credentials()
            .sign("v-new", &fresh_hashes)
            .expect("sign"),
    };
    let request = SyncRequest {
        cursor: Cursor::default(),
        max_response: 0,
        visits: vec![
            VisitOffer {
                signatures: vec![fresh_signature],
                implied: false,
                visit_id: "v-new".into(),
                heads: fresh.heads().iter().map(|h| h.0).collect(),
                confirmed: None,
                changes: fresh.save(),
            },
            VisitOffer {
                signatures: vec![],
                implied: false,
                visit_id: "v-1".into(),
                heads: vec![],
                confirmed: None,
                changes: b"garbage".to_vec(),
            },
            VisitOffer {
                signatures: vec![],
                implied: true,
                visit_id: "v-2".into(),
                heads: vec![],
                confirmed: Some(vec![]),
                changes: b"\x85\x6f\x4a\x83 no heads in here".to_vec(),
            },
            VisitOffer {
                signatures: vec![],
                implied: false,
                visit_id: "v-team2".into(),
                heads: vec![],
                confirmed: None,
                changes: foreign,
            },
            VisitOffer {
                signatures: vec![],
                implied: false,
                visit_id: "v-ghost".into(),
                heads: vec![],
                confirmed: None,
                changes: vec![],
            },
            VisitOffer {
                signatures: vec![],
                implied: false,
                visit_id: "bad id!".into(),
                heads: vec![],
                confirmed: None,
                changes: vec![],
            },
        ],
    };
    let resp = post_sync(&url, Some(&token), MEDIA_TYPE, request.encode()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let answer =
        SyncResponse::decode(&resp.bytes().await.expect("body"), usize::MAX).expect("decode");
    let status = |id: &str| {
        answer
            .visits
            .iter()
            .find(|v| v.visit_id == id)
            .map(|v| (v.status, v.message.clone()))
    };
    assert_eq!(status("v-new").map(|s| s.0), Some(VisitStatus::Ok));
    assert_eq!(status("v-1").map(|s| s.0), Some(VisitStatus::Invalid));
    let (invalid, why) = status("v-2").expect("v-2 answered");
    assert_eq!(invalid, VisitStatus::Invalid);
    assert!(why.contains("unreadable"), "{why}");
    // Another team's visit is answered as if it did not exist.
    let (unknown, why) = status("v-team2").expect("v-team2 answered");
    assert_eq!(unknown, VisitStatus::Unknown);
    assert_eq!(why, "no such visit");
    assert_eq!(status("v-ghost").map(|s| s.0), Some(VisitStatus::Unknown));
    assert_eq!(status("bad id!").map(|s| s.0), Some(VisitStatus::Invalid));

    assert!(
        server_state(&server.data, &vid("v-new")).is_some(),
        "the good visit was stored"
    );
    assert_eq!(server_state(&server.data, &vid("v-1")), v1_before);
    assert_eq!(server_state(&server.data, &vid("v-2")), v2_before);
    assert_eq!(server_state(&server.data, &vid("v-team2")), team2_before);
    assert!(server_state(&server.data, &vid("v-ghost")).is_none());
    // Team 2's visit never reaches team 1's devices.
    a.sync().await;
    assert!(a.store.summary(&vid("v-team2")).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enrollment_codes_are_single_use_and_expire_and_revocation_is_immediate() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let url = server.url();
    let http = reqwest::Client::new();
    let code = enroll_codes(&server.data, "insp-a", "team-1", "inspector", 1).remove(0);
    let a = kiemtra_client::enroll(&url, &code, "phone")
        .await
        .expect("first use");
    match kiemtra_client::enroll(&url, &code, "phone 2").await {
        Err(kiemtra_client::Error::Refused {
            status: 403,
            kind,
            detail,
        }) => {
            assert_eq!(kind, "enrollment-refused");
            assert!(detail.contains("already been used"), "{detail}");
        }
        other => panic!("reused code: {other:?}"),
    }
    match kiemtra_client::enroll(&url, "AAAA-BBBB-CCCC", "phone").await {
        Err(kiemtra_client::Error::Refused {
            status: 403,
            detail,
            ..
        }) => assert!(detail.contains("unknown")),
        other => panic!("unknown code: {other:?}"),
    }
    {
        let mut store = kiemtra_server::open_store(&server.data).expect("store");
        let short = kiemtra_server::create_enrollment_code(
            &mut store,
            "insp-b",
            "team-1",
            "inspector",
            chrono::Duration::seconds(1),
        )
        .expect("code");
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        match kiemtra_client::enroll(&url, &short, "phone").await {
            Err(kiemtra_client::Error::Refused {
                status: 403,
                detail,
                ..
            }) => assert!(detail.contains("expired"), "{detail}"),
            other => panic!("expired code: {other:?}"),
        }
    }
    let (s, t, _) = problem(
        http.post(format!("{url}/v1/enroll"))
            .header("Content-Type", "application/json")
            .body("{\"code\": 5}")
            .send()
            .await
            .expect("post"),
    )
    .await;
    assert_eq!(
        (s, t.as_str()),
        (StatusCode::BAD_REQUEST, "urn:kiemtra:problem:bad-request")
    );

    // A request that worked stops working once the device is revoked.
    let body = empty_request();
    assert_eq!(
        post_sync(&url, Some(&a.token), MEDIA_TYPE, body.clone())
            .await
            .status(),
        StatusCode::OK
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiemtra-server"))
        .args(["revoke", &a.device_id, "--data"])
        .arg(&server.data)
        .output()
        .expect("revoke");
    assert!(out.status.success());
    let (s, t, _) = problem(post_sync(&url, Some(&a.token), MEDIA_TYPE, body).await).await;
    assert_eq!(
        (s, t.as_str()),
        (
            StatusCode::UNAUTHORIZED,
            "urn:kiemtra:problem:device-revoked"
        )
    );
    assert_eq!(server_visit_count(&server.data), 0);
}
