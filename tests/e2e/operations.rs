//! Running the server: TLS, graceful shutdown with a sync in flight, metrics.

use crate::harness::*;
use kiemtra_core::*;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_certificate_and_key() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let (ca, cert, key) = (d.join("ca.pem"), d.join("cert.pem"), d.join("key.pem"));
    std::fs::write(
        d.join("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .current_dir(d)
            .args(args)
            .output()
            .expect("openssl is needed for this test (.ci/run installs it)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // A throwaway CA, and a server certificate it signs.
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=kiemtra test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "key.pem",
        "-out",
        "leaf.csr",
    ]);
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    let cert_arg = cert.to_string_lossy().into_owned();
    let key_arg = key.to_string_lossy().into_owned();
    let server = ServerProcess::start_with(
        &dir.path().join("server"),
        &["--tls-cert", &cert_arg, "--tls-key", &key_arg],
    );
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca).expect("ca")).expect("pem");
    let https = reqwest::Client::builder()
        .add_root_certificate(ca)
        .build()
        .expect("client");
    let ok = https
        .get(format!("https://localhost:{}/healthz", server.port))
        .send()
        .await
        .expect("https request");
    assert_eq!(ok.status(), reqwest::StatusCode::OK);
    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", server.port))
        .send()
        .await;
    assert!(
        plain
            .map(|r| r.status() != reqwest::StatusCode::OK)
            .unwrap_or(true)
    );
    // A client that does not trust the certificate is refused.
    assert!(
        reqwest::Client::new()
            .get(format!("https://localhost:{}/healthz", server.port))
            .send()
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_sync_in_flight_then_exits_cleanly() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let server = ServerProcess::start(&data);
    let proxy = Proxy::start(server.addr()).await;
    let mut a = Device::enroll(
        &data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    a.repoint(&proxy.url());
    // Enough work that the request is still being answered when SIGTERM
    // arrives, and little enough that a debug build answers it well within
    // the server's 30 s shutdown grace, even on a loaded machine (every
    // new visit's history is checked change by change on arrival).
    for n in 0..40 {
        let id = format!("v-{n:02}");
        a.store
            .create_visit(new_visit(&id, "team-1", 30), &template())
            .expect("create");
        a.store
            .edit(&vid(&id), |v| {
                for i in 0..30 {
                    v.record_attendance(&staff(i), AttendanceMark::Present, "", None)?;
                }
                Ok(())
            })
            .expect("record");
    }
    let before = proxy.forwarded.load(Ordering::SeqCst);
    let mut quiet = |_: &kiemtra_client::Progress| {};
    let (report, status) = tokio::join!(a.client.sync(&mut a.store, &mut quiet), async {
        // Once the request is on its way in, ask the server to stop.
        while proxy.forwarded.load(Ordering::SeqCst) == before {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::task::spawn_blocking(move || server.terminate())
            .await
            .expect("terminate")
    });
    let report = report.expect("the sync in flight completed");
    assert_eq!(
        report.retries, 0,
        "answered by the stopping server, not by a retry"
    );
    assert_eq!(report.visits_uploaded, 40);
    assert!(status.success(), "clean exit: {status:?}");
    assert_eq!(server_visit_count(&data), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_syncs_bytes_and_errors() {
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
    a.store
        .create_visit(new_visit("v-1", "team-1", 4), &template())
        .expect("create");
    a.sync().await;
    let _ = reqwest::Client::new()
        .post(format!("{}/v1/sync", server.url()))
        .send()
        .await
        .expect("post");
    let text = reqwest::get(format!("{}/metrics", server.url()))
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
    };
    assert_eq!(value("kiemtra_syncs_total"), 1.0);
    assert_eq!(value("kiemtra_visits_applied_total"), 1.0);
    assert_eq!(value("kiemtra_enrollments_total"), 1.0);
    assert!(value("kiemtra_bytes_received_total") > 100.0);
    assert!(value("kiemtra_auth_failures_total") >= 1.0);
    assert!(value("kiemtra_sync_duration_seconds_count") >= 2.0);
}

/// `/healthz` says ok only while the database takes a write: with another
/// process holding the write lock it answers 503, and ok again once the
/// lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_while_the_store_takes_no_write() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let server = ServerProcess::start(&data);
    let health = || async {
        reqwest::get(format!("{}/healthz", server.url()))
            .await
            .expect("healthz")
            .status()
    };
    assert_eq!(health().await, reqwest::StatusCode::OK);
    let db = rusqlite::Connection::open(data.join("kiemtra.db")).expect("open");
    db.execute_batch("BEGIN IMMEDIATE")
        .expect("take the write lock");
    assert_eq!(health().await, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    db.execute_batch("ROLLBACK").expect("release");
    assert_eq!(health().await, reqwest::StatusCode::OK);
}
