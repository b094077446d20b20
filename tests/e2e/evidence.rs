//! Evidence files: an inspector's photo reaches the server after the visit,
//! resumes after a lost answer without starting again, and is readable by
//! the team and auditors only. Bad uploads are refused and keep nothing.

use crate::harness::*;
use kiemtra_core::CheckId;
use kiemtra_store::evidence_hash;

fn check() -> CheckId {
    CheckId::parse("tthc-posted").expect("check")
}

fn photo(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 253) as u8).collect()
}

fn token(d: &Device) -> String {
    d.client.credentials().token.clone()
}

/// Status code and problem kind (empty for a success) of an answer.
async fn outcome(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return (status, String::new());
    }
    let media = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(media, "application/problem+json", "a {status} answer");
    let body: serde_json::Value = resp.json().await.expect("problem body");
    let kind = body["type"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("urn:kiemtra:problem:")
        .to_owned();
    (status, kind)
}

async fn put(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    offset: u64,
    length: u64,
    body: Vec<u8>,
) -> (u16, String) {
    let resp = http
        .put(url)
        .bearer_auth(token)
        .header("Content-Type", "application/octet-stream")
        .header("Upload-Offset", offset)
        .header("Upload-Length", length)
        .body(body)
        .send()
        .await
        .expect("send");
    outcome(resp).await
}

async fn held(http: &reqwest::Client, url: &str, token: &str) -> serde_json::Value {
    http.get(format!("{url}/status"))
        .bearer_auth(token)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("status json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_photo_is_uploaded_after_its_visit_resumes_and_reaches_the_team_only() {
    let dir = tempfile::tempdir().expect("dir");
    let server =
        ServerProcess::start_with(&dir.path().join("server"), &["--max-evidence", "2000000"]);
    let proxy = Proxy::start(server.addr()).await;
    let enroll = |user: &'static str, team: &'static str, role: &'static str| {
        let (data, url, home) = (server.data.clone(), server.url(), dir.path().join(user));
        async move { Device::enroll(&data, &url, user, team, role, &home).await }
    };
    let mut a = enroll("insp-a", "team-1", "inspector").await;
    let sup = enroll("sup-s", "team-1", "supervisor").await;
    let aud = enroll("aud-u", "team-9", "auditor").await;
    let other = enroll("insp-x", "team-2", "inspector").await;
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 3), &template())
        .expect("create");
    let bytes = photo(700_000);
    let hash = a.store.add_evidence(&id, &check(), &bytes).expect("photo");
    assert_eq!(hash, evidence_hash(&bytes));

    // Before the visit is synced the server does not know it: reported,
    // and the photo stays pending.
    let report = a
        .client
        .upload_evidence(&mut a.store)
        .await
        .expect("upload");
    assert_eq!(report.uploaded, 0);
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert_eq!(report.errors[0].kind, "not-found");
    assert_eq!(a.store.evidence_to_upload().expect("pending").len(), 1);

    a.sync().await;
    // A first piece goes through a link that loses the answer: the server
    // has kept it all the same.
    let http = reqwest::Client::new();
    let url = format!("{}/v1/visits/v-1/evidence/{hash}", server.url());
    let via_proxy = format!("{}/v1/visits/v-1/evidence/{hash}", proxy.url());
    proxy.set_mode(ProxyMode::DropResponses);
    let lost = http
        .put(&via_proxy)
        .bearer_auth(token(&a))
        .header("Content-Type", "application/octet-stream")
        .header("Upload-Offset", 0)
        .header("Upload-Length", 700_000)
        .body(bytes[..300_000].to_vec())
        .send()
        .await;
    assert!(lost.is_err(), "the answer was lost");
    let partial = held(&http, &url, &token(&a)).await;
    assert_eq!(partial["received"], 300_000, "{partial}");
    assert_eq!(partial["complete"], false);
    // The same piece again (a retry) adds nothing.
    assert_eq!(
        put(
            &http,
            &url,
            &token(&a),
            0,
            700_000,
            bytes[..300_000].to_vec()
        )
        .await,
        (200, String::new())
    );
    assert_eq!(held(&http, &url, &token(&a)).await["received"], 300_000);
    assert_eq!(a.store.evidence_to_upload().expect("pending").len(), 1);
    // The phone's upload resumes where the server's copy stops.
    let report = a
        .client
        .upload_evidence(&mut a.store)
        .await
        .expect("upload");
    assert_eq!(report.uploaded, 1, "{report:?}");
    assert_eq!(report.bytes_sent, 400_000, "resumed, not restarted");
    assert!(
        report.requests >= 3,
        "a status and 256 KiB pieces: {report:?}"
    );
    assert!(a.store.evidence_to_upload().expect("pending").is_empty());
    assert_eq!(held(&http, &url, &token(&a)).await["complete"], true);
    let again = a
        .client
        .upload_evidence(&mut a.store)
        .await
        .expect("upload");
    assert_eq!(
        (again.uploaded, again.requests),
        (0, 0),
        "nothing left to send"
    );

    // The team's supervisor and an auditor read it; another team does not,
    // nor does anyone without a token.
    for reader in [&sup, &aud] {
        let got = http
            .get(&url)
            .bearer_auth(token(reader))
            .send()
            .await
            .expect("get");
        assert_eq!(got.status().as_u16(), 200);
        assert_eq!(got.bytes().await.expect("bytes").as_ref(), bytes.as_slice());
    }
    let denied = http
        .get(&url)
        .bearer_auth(token(&other))
        .send()
        .await
        .expect("get");
    assert_eq!(outcome(denied).await, (404, "not-found".to_owned()));
    let anonymous = http.get(&url).send().await.expect("get");
    assert_eq!(
        outcome(anonymous).await,
        (401, "unauthenticated".to_owned())
    );
    let metrics = http
        .get(format!("{}/metrics", server.url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.lines().any(|l| l
            .strip_prefix("kiemtra_evidence_bytes_received_total ")
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 700_000)),
        "{metrics}"
    );

    // The auditor's verification re-hashes the held photo.
    let audit = |who: &Device| {
        let (http, url, token) = (http.clone(), server.url(), token(who));
        async move {
            http.get(format!("{url}/v1/visits/v-1/verify"))
                .bearer_auth(token)
                .send()
                .await
                .expect("verify")
                .json::<serde_json::Value>()
                .await
                .expect("report")
        }
    };
    let report = audit(&aud).await;
    assert_eq!(
        (
            &report["ok"],
            &report["evidence_referenced"],
            &report["evidence_held"]
        ),
        (
            &serde_json::json!(true),
            &serde_json::json!(1),
            &serde_json::json!(1)
        ),
        "{report}"
    );
    // An operator alters the stored photo: the verification says so, and
    // a phone or desk that downloads it refuses the copy.
    rusqlite::Connection::open(server.data.join("kiemtra.db"))
        .expect("open server db")
        .execute(
            "UPDATE evidence_pieces SET data = zeroblob(length(data)) WHERE at = 0",
            [],
        )
        .expect("tamper");
    let report = audit(&aud).await;
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["problems"]
            .as_array()
            .expect("problems")
            .iter()
            .any(|p| p["rule"] == "evidence-damaged" && p["subject"] == hash.as_str()),
        "{report}"
    );
    match sup.client.download_evidence(&id, &hash).await {
        Err(kiemtra_client::Error::Decode(m)) => assert!(m.contains("does not hash"), "{m}"),
        other => panic!("a damaged copy was accepted: {:?}", other.map(|b| b.len())),
    }
    drop(proxy);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_evidence_uploads_are_refused_and_keep_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let server =
        ServerProcess::start_with(&dir.path().join("server"), &["--max-evidence", "100000"]);
    let mut a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    let aud = Device::enroll(
        &server.data,
        &server.url(),
        "aud-u",
        "team-9",
        "auditor",
        &dir.path().join("u"),
    )
    .await;
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 3), &template())
        .expect("create");
    let bytes = photo(50_000);
    let hash = a.store.add_evidence(&id, &check(), &bytes).expect("photo");
    a.sync().await;
    let http = reqwest::Client::new();
    let base = format!("{}/v1/visits/v-1/evidence", server.url());
    let url = format!("{base}/{hash}");
    let t = token(&a);

    // Bytes that do not hash to the name: discarded whole.
    let mut forged = bytes.clone();
    forged[10] ^= 0xff;
    assert_eq!(
        put(&http, &url, &t, 0, 50_000, forged).await,
        (422, "evidence-mismatch".to_owned())
    );
    assert_eq!(held(&http, &url, &t).await["received"], 0);
    let metrics = http
        .get(format!("{}/metrics", server.url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l == "kiemtra_evidence_rejected_total 1"),
        "{metrics}"
    );
    // A file the visit does not refer to.
    let stray = evidence_hash(b"not referenced");
    assert_eq!(
        put(
            &http,
            &format!("{base}/{stray}"),
            &t,
            0,
            14,
            b"not referenced".to_vec()
        )
        .await,
        (422, "evidence-not-referenced".to_owned())
    );
    // A gap, then a changed length, after a good first piece.
    assert_eq!(
        put(&http, &url, &t, 0, 50_000, bytes[..10_000].to_vec()).await,
        (200, String::new())
    );
    assert_eq!(
        put(
            &http,
            &url,
            &t,
            20_000,
            50_000,
            bytes[20_000..30_000].to_vec()
        )
        .await,
        (409, "evidence-gap".to_owned())
    );
    assert_eq!(
        put(&http, &url, &t, 10_000, 60_000, bytes[10_000..].to_vec()).await,
        (409, "evidence-length".to_owned())
    );
    assert_eq!(
        held(&http, &url, &t).await["received"],
        10_000,
        "nothing kept of those"
    );
    // Larger than the server takes; a piece past the end; bad headers,
    // media type, hash and visit.
    assert_eq!(
        put(&http, &url, &t, 0, 200_000, Vec::new()).await,
        (413, "too-large".to_owned())
    );
    assert_eq!(
        put(&http, &url, &t, 10_000, 50_000, photo(40_001)).await,
        (400, "bad-request".to_owned())
    );
    let no_headers = http
        .put(&url)
        .bearer_auth(&t)
        .header("Content-Type", "application/octet-stream")
        .body(vec![1u8])
        .send()
        .await
        .expect("send");
    assert_eq!(outcome(no_headers).await, (400, "bad-request".to_owned()));
    let json = http
        .put(&url)
        .bearer_auth(&t)
        .header("Content-Type", "application/json")
        .header("Upload-Offset", 10_000)
        .header("Upload-Length", 50_000)
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(
        outcome(json).await,
        (415, "unsupported-media-type".to_owned())
    );
    assert_eq!(
        put(&http, &format!("{base}/not-a-hash"), &t, 0, 1, vec![1]).await,
        (400, "bad-request".to_owned())
    );
    assert_eq!(
        put(
            &http,
            &format!("{}/v1/visits/v-404/evidence/{hash}", server.url()),
            &t,
            0,
            50_000,
            bytes.clone()
        )
        .await,
        (404, "not-found".to_owned())
    );
    // Auditors never write; a wrong token is refused.
    assert_eq!(
        put(
            &http,
            &url,
            &token(&aud),
            10_000,
            50_000,
            bytes[10_000..].to_vec()
        )
        .await,
        (403, "forbidden".to_owned())
    );
    assert_eq!(
        put(
            &http,
            &url,
            "not-a-token",
            10_000,
            50_000,
            bytes[10_000..].to_vec()
        )
        .await,
        (401, "bad-credentials".to_owned())
    );
    assert_eq!(
        held(&http, &url, &t).await["received"],
        10_000,
        "still as it was"
    );
    let not_whole = http.get(&url).bearer_auth(&t).send().await.expect("get");
    assert_eq!(outcome(not_whole).await, (404, "not-found".to_owned()));
    // The phone then finishes it from where the server's copy stops.
    let report = a
        .client
        .upload_evidence(&mut a.store)
        .await
        .expect("upload");
    assert_eq!(
        (report.uploaded, report.bytes_sent),
        (1, 40_000),
        "{report:?}"
    );
    // A photo taken, then detached from its check: kept, not sent.
    let second = a
        .store
        .add_evidence(&id, &check(), &photo(999))
        .expect("photo");
    a.store
        .edit(&id, |v| v.detach_evidence(&check(), &second))
        .expect("detach");
    a.sync().await;
    let report = a
        .client
        .upload_evidence(&mut a.store)
        .await
        .expect("upload");
    assert_eq!(
        (
            report.uploaded,
            report.skipped,
            report.requests,
            report.errors.len()
        ),
        (0, 1, 0, 0),
        "{report:?}"
    );
    assert_eq!(a.store.evidence_to_upload().expect("pending").len(), 1);
    drop(server);
}
