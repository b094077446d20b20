//! Faults: lost responses, duplicated requests, a server killed mid-sync,
//! a device store or the server database restored from an older copy. After
//! retries everything converges with no lost and no duplicated change.

use crate::harness::*;
use kiemtra_core::*;
use std::path::Path;

fn record(d: &mut Device, id: &VisitId, from: usize, n: usize) {
    for i in from..from + n {
        d.store
            .edit(id, |v| {
                v.record_attendance(
                    &staff(i % 8),
                    AttendanceMark::Late,
                    &format!("edit {i}"),
                    None,
                )
            })
            .expect("edit");
    }
}

fn history_len(d: &mut Device, id: &VisitId) -> usize {
    d.store
        .visit(id)
        .expect("visit")
        .history()
        .expect("history")
        .len()
}

/// Copies a SQLite database (closed by the caller) with its WAL files.
fn copy_db(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), to.join(entry.file_name())).expect("copy");
    }
}

fn restore_db(backup: &Path, to: &Path) {
    std::fs::remove_dir_all(to).expect("remove");
    copy_db(backup, to);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_responses_and_duplicated_requests_change_nothing_more() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let proxy = Proxy::start(server.addr()).await;
    let mut a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    a.repoint(&proxy.url());
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 8), &template())
        .expect("create");
    record(&mut a, &id, 0, 10);

    // The server commits, the answer is lost, the client retries through a
    // proxy that still loses answers for a while.
    proxy.set_mode(ProxyMode::DropResponses);
    let mut quiet = |_: &kiemtra_client::Progress| {};
    let (report, ()) = tokio::join!(a.client.sync(&mut a.store, &mut quiet), async {
        // Let the first attempts lose their answers, then heal the link.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        proxy.set_mode(ProxyMode::Pass);
    });
    let report = report.expect("sync after lost answers");
    assert!(
        report.retries > 0,
        "answers were lost and retried: {report:?}"
    );
    assert_eq!(server_state(&server.data, &id), Some(a.state(&id)));
    assert_eq!(server_history_len(&server.data, &id), 11);

    // Every request is sent twice.
    proxy.set_mode(ProxyMode::Duplicate);
    record(&mut a, &id, 10, 5);
    a.sync().await;
    proxy.set_mode(ProxyMode::Pass);
    a.sync().await;
    assert_eq!(server_state(&server.data, &id), Some(a.state(&id)));
    assert_eq!(
        server_history_len(&server.data, &id),
        16,
        "no change stored twice or lost"
    );
    assert_eq!(history_len(&mut a, &id), 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_killed_mid_sync_and_restarted_loses_nothing() {
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
    for n in 0..40 {
        let id = format!("v-{n:02}");
        a.store
            .create_visit(new_visit(&id, "team-1", 8), &template())
            .expect("create");
        record(&mut a, &vid(&id), 0, 5);
    }
    let restarted = {
        let mut quiet = |_: &kiemtra_client::Progress| {};
        let mut first = std::pin::pin!(a.client.sync(&mut a.store, &mut quiet));
        // Kill the server while the upload is in flight, then bring it back.
        let finished = tokio::select! {
            _ = &mut first => true,
            _ = tokio::time::sleep(std::time::Duration::from_millis(40)) => false,
        };
        server.kill();
        let restarted = ServerProcess::start(&data);
        proxy.set_upstream(restarted.addr());
        if !finished {
            // The interrupted sync resumes through its retries (or fails; the next sync repairs).
            let _ = first.await;
        }
        restarted
    };
    a.sync().await;
    for n in 0..40 {
        let id = vid(&format!("v-{n:02}"));
        assert_eq!(server_state(&data, &id), Some(a.state(&id)), "visit {id}");
        assert_eq!(
            server_history_len(&data, &id),
            6,
            "visit {id}: no change lost or duplicated"
        );
    }
    drop(restarted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_restored_from_an_older_copy_gets_its_synced_work_back() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let device_dir = dir.path().join("a");
    let mut a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &device_dir,
    )
    .await;
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 8), &template())
        .expect("create");
    record(&mut a, &id, 0, 3);
    a.sync().await;
    // Back up the phone (closed), keep working and syncing, then restore.
    let backup = dir.path().join("a-backup");
    let creds = a.client.credentials().clone();
    drop(std::mem::replace(
        &mut a.store,
        open_device_store(&dir.path().join("scratch"), &creds),
    ));
    copy_db(&device_dir, &backup);
    a.store = open_device_store(&device_dir, &creds);
    record(&mut a, &id, 3, 4);
    a.sync().await;
    let synced = a.state(&id);
    drop(std::mem::replace(
        &mut a.store,
        open_device_store(&dir.path().join("scratch"), &creds),
    ));
    restore_db(&backup, &device_dir);
    a.store = open_device_store(&device_dir, &creds);
    assert_eq!(history_len(&mut a, &id), 4, "the restored copy is older");
    a.sync().await;
    assert_eq!(a.state(&id), synced);
    assert_eq!(history_len(&mut a, &id), 8);
    // And it keeps working: a new edit (fresh actor) syncs cleanly.
    record(&mut a, &id, 7, 1);
    a.sync().await;
    assert_eq!(server_state(&server.data, &id), Some(a.state(&id)));
    assert_eq!(server_history_len(&server.data, &id), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_restored_from_an_older_copy_is_repaired_by_its_devices() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let backup = dir.path().join("server-backup");
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
    let mut b = Device::enroll(
        &data,
        &server.url(),
        "insp-b",
        "team-1",
        "inspector",
        &dir.path().join("b"),
    )
    .await;
    a.repoint(&proxy.url());
    b.repoint(&proxy.url());
    let (v1, v2) = (vid("v-1"), vid("v-2"));
    a.store
        .create_visit(new_visit("v-1", "team-1", 8), &template())
        .expect("create");
    record(&mut a, &v1, 0, 2);
    a.sync().await;
    b.sync().await;
    // Back up the server, then more work lands on it: edits to v-1 and a new v-2.
    server.kill();
    copy_db(&data, &backup);
    let server = ServerProcess::start(&data);
    proxy.set_upstream(server.addr());
    record(&mut a, &v1, 2, 3);
    a.store
        .create_visit(new_visit("v-2", "team-1", 4), &template())
        .expect("create");
    a.sync().await;
    b.sync().await;
    assert_eq!(b.state(&v2), a.state(&v2));
    // The server's disk is lost; the older backup is restored.
    server.kill();
    restore_db(&backup, &data);
    let server = ServerProcess::start(&data);
    proxy.set_upstream(server.addr());
    assert!(
        server_state(&data, &v2).is_none(),
        "the backup predates v-2"
    );
    // Devices notice and resend what the server lost.
    let report = a.sync().await;
    assert!(
        report.requests >= 2,
        "a fuller exchange followed the first request: {report:?}"
    );
    b.sync().await;
    for id in [&v1, &v2] {
        assert_eq!(server_state(&data, id), Some(a.state(id)), "{id}");
        assert_eq!(b.state(id), a.state(id), "{id}");
    }
    assert_eq!(server_history_len(&data, &v1), 6);
    // A new device of the team learns of both visits (its cursor starts fresh).
    let mut c = Device::enroll(
        &data,
        &server.url(),
        "insp-c",
        "team-1",
        "inspector",
        &dir.path().join("c"),
    )
    .await;
    c.sync().await;
    assert_eq!(c.state(&v2), a.state(&v2));
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_waiting_on_a_hung_link_stops_when_cancelled_and_the_next_sync_carries_on() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let proxy = Proxy::start(server.addr()).await;
    let mut a = Device::enroll(
        &server.data,
        &server.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    let id = vid("v-hung-link");
    a.store
        .create_visit(new_visit(id.as_str(), "team-1", 4), &template())
        .expect("create");
    record(&mut a, &id, 0, 3);
    // A link that takes the request and never answers, and a timeout far
    // beyond the test's patience: only cancelling can end the wait.
    proxy.set_mode(ProxyMode::Stall);
    a.repoint(&proxy.url());
    a.set_options(kiemtra_client::SyncOptions {
        timeout: std::time::Duration::from_secs(3600),
        max_attempts: 1,
        ..fast_options()
    });
    let flag = a.client.cancel_handle();
    let setter = tokio::spawn({
        let flag = flag.clone();
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let waited = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        a.client.sync(&mut a.store, &mut |_| {}),
    )
    .await
    .expect("the cancelled sync should have stopped, not waited for its timeout");
    setter.await.expect("setter");
    assert!(
        matches!(waited, Err(kiemtra_client::Error::Cancelled)),
        "expected Cancelled, got {waited:?}"
    );
    assert!(proxy.connections.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(
        server_visit_count(&server.data),
        0,
        "nothing reached the server"
    );
    // The link comes back: a new sync sends everything recorded.
    proxy.set_mode(ProxyMode::Pass);
    a.repoint(&proxy.url());
    let report = a.sync().await;
    assert_eq!(report.visits_uploaded, 1, "{report:?}");
    assert_eq!(
        server_state(&server.data, &id).expect("on the server"),
        a.state(&id)
    );
}
