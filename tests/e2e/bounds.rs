//! Bounded cost of request bodies: what the headers say is checked before a
//! byte of the body is read (an oversized length, a device that may not
//! write the visit), bodies share a server-wide bound on bytes buffered at
//! once (a body waits for room within its timeout, then is refused with 503
//! and Retry-After), and every body has a timeout.

use crate::harness::*;
use kiemtra_core::CheckId;
use kiemtra_sync_protocol::MEDIA_TYPE;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn token(d: &Device) -> String {
    d.client.credentials().token.clone()
}

/// Opens a connection and sends a request head with `content_length`, then
/// `body` (which may be less than that length, or nothing).
async fn send(
    addr: SocketAddr,
    method_path: &str,
    token: &str,
    media: &str,
    extra: &str,
    content_length: usize,
    body: &[u8],
) -> TcpStream {
    let mut conn = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "{method_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: {media}\r\n{extra}Content-Length: {content_length}\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.expect("write head");
    conn.write_all(body).await.expect("write body");
    conn
}

/// The answer's status, problem kind and whole text, if it comes `within`.
async fn answer(conn: &mut TcpStream, within: Duration) -> Option<(u16, String, String)> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(within, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
            // A problem body is small: stop at its end.
            if let Some(end) = find(&bytes, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&bytes[..end]).to_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if len.is_some_and(|len| bytes.len() >= end + 4 + len) {
                    break;
                }
            }
        }
    })
    .await;
    read.ok()?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let status = text.get(9..12)?.parse().ok()?;
    let kind = text
        .split("urn:kiemtra:problem:")
        .nth(1)
        .map(|rest| rest.split('"').next().unwrap_or("").to_owned())
        .unwrap_or_default();
    Some((status, kind, text))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

const SYNC: &str = "POST /v1/sync";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_content_length_is_refused_before_the_body_is_read() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start_with(
        &dir.path().join("server"),
        &["--max-body", "100000", "--body-timeout-secs", "60"],
    );
    let mut a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    let t = token(&a);
    // A sync body one byte over the limit, of which nothing is sent: the
    // answer comes at once, not after the body (or its timeout).
    let started = Instant::now();
    let mut conn = send(server.addr(), SYNC, &t, MEDIA_TYPE, "", 100_001, b"").await;
    let (status, kind, text) = answer(&mut conn, Duration::from_secs(10))
        .await
        .expect("an answer without the body");
    assert_eq!((status, kind.as_str()), (413, "too-large"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The same for an evidence piece.
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 3), &template())
        .expect("create");
    let photo = vec![7u8; 1000];
    let hash = a
        .store
        .add_evidence(&id, &CheckId::parse("tthc-posted").expect("check"), &photo)
        .expect("photo");
    a.sync().await;
    let put = format!("PUT /v1/visits/v-1/evidence/{hash}");
    let offsets = "Upload-Offset: 0\r\nUpload-Length: 1000\r\n";
    let mut conn = send(
        server.addr(),
        &put,
        &t,
        "application/octet-stream",
        offsets,
        100_001,
        b"",
    )
    .await;
    let (status, kind, text) = answer(&mut conn, Duration::from_secs(10))
        .await
        .expect("an answer without the body");
    assert_eq!((status, kind.as_str()), (413, "too-large"), "{text}");
    // Nothing was kept, and a piece within the limit is still taken.
    let mut conn = send(
        server.addr(),
        &put,
        &t,
        "application/octet-stream",
        offsets,
        photo.len(),
        &photo,
    )
    .await;
    let (status, _, text) = answer(&mut conn, Duration::from_secs(10))
        .await
        .expect("answer");
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"complete\":true"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_waits_for_room_under_the_buffered_bound_then_is_refused_as_busy() {
    let dir = tempfile::tempdir().expect("dir");
    // Room for one 600 KB body at a time.
    let server = ServerProcess::start_with(
        &dir.path().join("server"),
        &[
            "--max-body",
            "1000000",
            "--max-buffered",
            "1000000",
            "--body-timeout-secs",
            "3",
        ],
    );
    let mut a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    let t = token(&a);
    let junk = vec![0u8; 600_000];

    // A holds 600 KB reserved while sending slowly; B's 600 KB does not fit
    // and waits. When A's body ends (a bad message, answered at once), B
    // gets the room and is read: B is answered for its body, not refused.
    let mut first = send(
        server.addr(),
        SYNC,
        &t,
        MEDIA_TYPE,
        "",
        junk.len(),
        &junk[..10],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut second = send(server.addr(), SYNC, &t, MEDIA_TYPE, "", junk.len(), &junk).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    first.write_all(&junk[10..]).await.expect("rest of A");
    let (status, kind, text) = answer(&mut first, Duration::from_secs(10))
        .await
        .expect("A answered");
    assert_eq!((status, kind.as_str()), (400, "bad-message"), "{text}");
    let (status, kind, text) = answer(&mut second, Duration::from_secs(10))
        .await
        .expect("B answered");
    assert_eq!(
        (status, kind.as_str()),
        (400, "bad-message"),
        "B waited for room and was read: {text}"
    );

    // A1 holds the room for its body timeout, then A2 (queued first) for
    // its own: B, waiting behind them longer than its body timeout, is
    // refused as busy, with Retry-After, without its body being read.
    let slow = || {
        send(
            server.addr(),
            SYNC,
            &t,
            MEDIA_TYPE,
            "",
            junk.len(),
            &junk[..10],
        )
    };
    let mut first = slow().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut queued = slow().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let mut second = send(server.addr(), SYNC, &t, MEDIA_TYPE, "", junk.len(), b"").await;
    let (status, kind, text) = answer(&mut second, Duration::from_secs(15))
        .await
        .expect("B answered");
    assert_eq!(
        (status, kind.as_str()),
        (503, "busy"),
        "{text} after {:?}",
        started.elapsed()
    );
    assert!(
        text.to_lowercase().contains("\r\nretry-after: 10\r\n"),
        "{text}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "B waited first"
    );
    // A1's and A2's bodies time out (408) and their room is released: an
    // honest sync goes through.
    for conn in [&mut first, &mut queued] {
        let (status, kind, _) = answer(conn, Duration::from_secs(15))
            .await
            .expect("A answered");
        assert_eq!((status, kind.as_str()), (408, "request-timeout"));
    }
    a.store
        .create_visit(new_visit("v-1", "team-1", 3), &template())
        .expect("create");
    a.sync().await;
    assert_eq!(server_visit_count(&server.data), 1);
}

/// A team-1 inspector's visit with a referenced photo, synced; the photo's
/// evidence PUT line.
async fn visit_with_photo(server: &ServerProcess, dir: &std::path::Path) -> (Device, String) {
    let mut a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.join("a"),
    )
    .await;
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 3), &template())
        .expect("create");
    let photo: Vec<u8> = (0..50_000).map(|i| (i % 251) as u8).collect();
    let hash = a
        .store
        .add_evidence(&id, &CheckId::parse("tthc-posted").expect("check"), &photo)
        .expect("photo");
    a.sync().await;
    (a, format!("PUT /v1/visits/v-1/evidence/{hash}"))
}

const PIECE: &str = "Upload-Offset: 0\r\nUpload-Length: 50000\r\n";
const OCTETS: &str = "application/octet-stream";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evidence_from_a_device_that_may_not_write_the_visit_is_refused_before_the_body() {
    let dir = tempfile::tempdir().expect("dir");
    // A long body timeout: an answer that waited for the body would not
    // come within the test's few seconds.
    let server =
        ServerProcess::start_with(&dir.path().join("server"), &["--body-timeout-secs", "120"]);
    let (a, put) = visit_with_photo(&server, dir.path()).await;
    let other = Device::enroll(
        &server.data,
        &server.url(),
        "insp-b",
        "team-2",
        "inspector",
        &dir.path().join("b"),
    )
    .await;
    let auditor = Device::enroll(
        &server.data,
        &server.url(),
        "aud-u",
        "team-9",
        "auditor",
        &dir.path().join("u"),
    )
    .await;
    // Another team's inspector: the visit is not found, as for an unknown one.
    for path in [put.clone(), put.replace("v-1", "v-unknown")] {
        let mut conn = send(
            server.addr(),
            &path,
            &token(&other),
            OCTETS,
            PIECE,
            50_000,
            b"",
        )
        .await;
        let (status, kind, text) = answer(&mut conn, Duration::from_secs(5))
            .await
            .expect("refused without the body");
        assert_eq!((status, kind.as_str()), (404, "not-found"), "{text}");
    }
    // An auditor reads every visit but writes none.
    let mut conn = send(
        server.addr(),
        &put,
        &token(&auditor),
        OCTETS,
        PIECE,
        50_000,
        b"",
    )
    .await;
    let (status, kind, text) = answer(&mut conn, Duration::from_secs(5))
        .await
        .expect("refused without the body");
    assert_eq!((status, kind.as_str()), (403, "forbidden"), "{text}");
    // Nothing is held; the team's own inspector is still read and taken.
    let mut conn = send(server.addr(), &put, &token(&a), OCTETS, PIECE, 50_000, b"").await;
    let no_answer = answer(&mut conn, Duration::from_millis(1500)).await;
    assert!(
        no_answer.is_none(),
        "the writer's body is waited for: {no_answer:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evidence_body_that_stalls_gets_a_timeout_and_keeps_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let server =
        ServerProcess::start_with(&dir.path().join("server"), &["--body-timeout-secs", "1"]);
    let (a, put) = visit_with_photo(&server, dir.path()).await;
    let started = Instant::now();
    let mut conn = send(
        server.addr(),
        &put,
        &token(&a),
        OCTETS,
        PIECE,
        50_000,
        &[0u8; 20_000],
    )
    .await;
    let (status, kind, text) = answer(&mut conn, Duration::from_secs(10))
        .await
        .expect("answered within the body timeout");
    assert_eq!((status, kind.as_str()), (408, "request-timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let status = reqwest::Client::new()
        .get(format!(
            "{}{}/status",
            server.url(),
            put.trim_start_matches("PUT ")
        ))
        .bearer_auth(token(&a))
        .send()
        .await
        .expect("status")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    assert_eq!(status["received"], 0, "{status}");
}
