//! Enrollment on a bad link and against a guesser: a lost answer does not
//! burn the code, a retry gets the same device with a fresh token, weak
//! keys are refused, failed attempts are limited per address, a trickled
//! body times out, the server's files are private, and device names are
//! printed escaped.

use crate::harness::*;
use reqwest::StatusCode;
use ring::signature::{Ed25519KeyPair, KeyPair};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn new_key() -> String {
    let pkcs8 =
        Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("random key");
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("pair");
    kiemtra_core::hex::encode(pair.public_key().as_ref())
}

async fn post_enroll(
    http: &reqwest::Client,
    url: &str,
    code: &str,
    name: &str,
    key: &str,
) -> reqwest::Response {
    http.post(format!("{url}/v1/enroll"))
        .json(&serde_json::json!({ "code": code, "device_name": name, "public_key": key }))
        .send()
        .await
        .expect("post enroll")
}

async fn json(resp: reqwest::Response) -> serde_json::Value {
    resp.json().await.expect("json answer")
}

/// The devices `kiemtra-server devices` lists, one line each, as printed.
fn devices_output(data: &std::path::Path) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kiemtra-server"))
        .arg("devices")
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .output()
        .expect("devices");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

async fn visits_status(url: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .get(format!("{url}/v1/visits"))
        .bearer_auth(token)
        .send()
        .await
        .expect("get visits")
        .status()
}

/// A proxy that forwards the first `lose` connections' requests and drops
/// them as soon as the server starts answering (the server has committed;
/// the phone never hears), then passes everything.
async fn losing_proxy(upstream: std::net::SocketAddr, lose: u32) -> (String, Arc<AtomicU32>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let seen = Arc::new(AtomicU32::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let Ok(mut up) = TcpStream::connect(upstream).await else {
                    return;
                };
                if n >= lose {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut up).await;
                    return;
                }
                let (mut a, mut b) = (vec![0u8; 16384], vec![0u8; 16384]);
                loop {
                    tokio::select! {
                        r = client.read(&mut a) => match r {
                            Ok(0) | Err(_) => return,
                            Ok(k) => if up.write_all(&a[..k]).await.is_err() { return },
                        },
                        r = up.read(&mut b) => {
                            let _ = r;
                            return; // lose the answer
                        }
                    }
                }
            });
        }
    });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_enrollment_answer_is_retried_with_the_same_key_and_gets_the_same_device() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let code = enroll_codes(&server.data, "insp-a", "team-1", "inspector", 1).remove(0);
    let (proxy, connections) = losing_proxy(server.addr(), 2).await;
    let creds = kiemtra_client::enroll_with(&proxy, &code, "phone of insp-a", &fast_options())
        .await
        .expect("enrolled despite two lost answers");
    assert!(
        connections.load(Ordering::SeqCst) >= 3,
        "the answers were lost twice"
    );
    let listed = devices_output(&server.data);
    assert_eq!(listed.lines().count(), 1, "one device, no orphan: {listed}");
    assert!(listed.starts_with(&creds.device_id), "{listed}");
    assert_eq!(metric(&server.url(), "kiemtra_enrollments_total").await, 1);
    assert_eq!(
        metric(&server.url(), "kiemtra_enrollment_retries_total").await,
        2
    );
    // The credentials the phone kept work: it syncs a visit.
    let mut device = {
        let mut store = open_device_store(&dir.path().join("a"), &creds);
        creds.save(&mut store).expect("save");
        Device {
            store,
            client: kiemtra_client::SyncClient::new(creds, fast_options()).expect("client"),
            dir: dir.path().join("a"),
        }
    };
    device.repoint(&server.url());
    device
        .store
        .create_visit(new_visit("v-1", "team-1", 2), &template())
        .expect("create");
    device.sync().await;
    assert_eq!(server_visit_count(&server.data), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_rotates_the_token_and_another_key_with_a_used_code_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let url = server.url();
    let http = reqwest::Client::new();
    let code = enroll_codes(&server.data, "insp-a", "team-1", "inspector", 1).remove(0);
    let key = new_key();
    let first = post_enroll(&http, &url, &code, "phone", &key).await;
    assert_eq!(first.status(), StatusCode::CREATED);
    let first = json(first).await;
    let again = post_enroll(&http, &url, &code, "phone", &key).await;
    assert_eq!(again.status(), StatusCode::CREATED, "the same key again");
    let again = json(again).await;
    assert_eq!(again["device_id"], first["device_id"]);
    assert_eq!(again["user_id"], "insp-a");
    assert_ne!(again["token"], first["token"], "a fresh token");
    let (old, new) = (
        first["token"].as_str().expect("token"),
        again["token"].as_str().expect("token"),
    );
    assert_eq!(visits_status(&url, old).await, StatusCode::UNAUTHORIZED);
    assert_eq!(visits_status(&url, new).await, StatusCode::OK);

    let thief = post_enroll(&http, &url, &code, "thief", &new_key()).await;
    assert_eq!(thief.status(), StatusCode::FORBIDDEN);
    let body = json(thief).await;
    assert_eq!(body["type"], "urn:kiemtra:problem:enrollment-refused");
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("already been used")),
        "{body}"
    );
    assert_eq!(visits_status(&url, new).await, StatusCode::OK, "unchanged");
    assert_eq!(devices_output(&server.data).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_and_invalid_public_keys_are_refused_and_leave_the_code_unused() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let url = server.url();
    let http = reqwest::Client::new();
    let code = enroll_codes(&server.data, "insp-a", "team-1", "inspector", 1).remove(0);
    let mut identity = "00".repeat(32);
    identity.replace_range(0..2, "01");
    for (key, why) in [
        ("00".repeat(32), "small order"),
        (identity, "small order"),
        ("ff".repeat(32), "canonical"),
    ] {
        let resp = post_enroll(&http, &url, &code, "phone", &key).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{key}");
        let body = json(resp).await;
        assert_eq!(body["type"], "urn:kiemtra:problem:bad-request");
        let detail = body["detail"].as_str().unwrap_or("");
        assert!(detail.contains(why), "{key}: {detail}");
    }
    assert_eq!(devices_output(&server.data), "", "nothing enrolled");
    let ok = post_enroll(&http, &url, &code, "phone", &new_key()).await;
    assert_eq!(ok.status(), StatusCode::CREATED, "the code is still unused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_past_the_limit_are_refused_with_retry_after_without_the_database() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let url = server.url();
    let codes = enroll_codes(&server.data, "insp-a", "team-1", "inspector", 2);
    let http = reqwest::Client::new();
    for i in 0..10 {
        let resp = post_enroll(&http, &url, "AAAA-BBBB-CCCC", "guess", &new_key()).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "guess {i}");
    }
    // The eleventh, even with a right code, is refused without a look.
    let resp = post_enroll(&http, &url, &codes[0], "phone", &new_key()).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = resp
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    let body = json(resp).await;
    assert_eq!(body["type"], "urn:kiemtra:problem:too-many-attempts");

    // Neither the body nor the database is touched: with the database
    // locked by another process and a body that never comes, the answer
    // is still immediate.
    let db = rusqlite::Connection::open(server.data.join("kiemtra.db")).expect("open db");
    db.execute_batch("BEGIN EXCLUSIVE")
        .expect("lock the database");
    let started = Instant::now();
    let mut conn = TcpStream::connect(server.addr()).await.expect("connect");
    conn.write_all(
        b"POST /v1/enroll HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{",
    )
    .await
    .expect("write");
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(3), conn.read(&mut answer))
        .await
        .expect("answered at once")
        .expect("read");
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(3));
    db.execute_batch("ROLLBACK").expect("unlock");
    drop(db);

    // A right code from another address is not affected.
    let other = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .expect("client");
    let resp = post_enroll(&other, &url, &codes[1], "phone", &new_key()).await;
    assert_eq!(resp.status(), StatusCode::CREATED);

    assert_eq!(metric(&url, "kiemtra_enrollment_attempts_total").await, 13);
    assert_eq!(metric(&url, "kiemtra_enrollment_refusals_total").await, 12);
    assert_eq!(metric(&url, "kiemtra_enrollments_limited_total").await, 2);
    assert_eq!(metric(&url, "kiemtra_enrollments_total").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_or_oversized_enrollment_body_is_refused() {
    let dir = tempfile::tempdir().expect("dir");
    let server =
        ServerProcess::start_with(&dir.path().join("server"), &["--body-timeout-secs", "1"]);
    let mut conn = TcpStream::connect(server.addr()).await.expect("connect");
    conn.write_all(
        b"POST /v1/enroll HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n",
    )
    .await
    .expect("write head");
    // One byte every 300 ms: the connection stays busy, the body never ends.
    let started = Instant::now();
    let trickle = async {
        for _ in 0..40 {
            if conn.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_millis(1800), trickle).await;
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), conn.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the server answered and closed");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.contains("urn:kiemtra:problem:request-timeout"),
        "{text}"
    );
    assert!(started.elapsed() < Duration::from_secs(7));

    let http = reqwest::Client::new();
    let big = "x".repeat(20_000);
    let resp = post_enroll(&http, &server.url(), &big, "phone", &new_key()).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(devices_output(&server.data), "");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_data_folder_and_database_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode =
        |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let server = ServerProcess::start(&data);
    let mut a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    a.store
        .create_visit(new_visit("v-1", "team-1", 2), &template())
        .expect("create");
    a.sync().await;
    assert_eq!(mode(&data), 0o700);
    for f in ["kiemtra.db", "kiemtra.db-wal", "kiemtra.db-shm"] {
        assert_eq!(mode(&data.join(f)), 0o600, "server {f}");
    }
    assert_eq!(mode(&dir.path().join("a")), 0o700);
    for f in ["device.db", "device.db-wal", "device.db-shm"] {
        assert_eq!(mode(&dir.path().join("a").join(f)), 0o600, "device {f}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_names_are_printed_escaped() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let code = enroll_codes(&server.data, "insp-a", "team-1", "inspector", 1).remove(0);
    let name = "máy\x1b[2J\nfake-device\tinsp-z";
    let resp = post_enroll(
        &reqwest::Client::new(),
        &server.url(),
        &code,
        name,
        &new_key(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let out = devices_output(&server.data);
    assert!(
        !out.contains('\x1b'),
        "no escape byte reaches the terminal: {out:?}"
    );
    assert_eq!(
        out.lines().count(),
        1,
        "the newline does not forge a row: {out:?}"
    );
    assert!(
        out.contains("máy\\u{1b}[2J\\nfake-device\\tinsp-z"),
        "the name is shown with visible escapes: {out:?}"
    );
    assert_eq!(
        out.trim_end().split('\t').count(),
        6,
        "six columns: {out:?}"
    );
}
