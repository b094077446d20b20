//! Data that survives its operator, on both backends: an online backup
//! (`kiemtra-server backup`) taken while phones sync restores
//! (`kiemtra-server restore`) to a database that verifies; a server
//! restored from an older backup is repaired by its devices; a damaged
//! embedded database is refused at start.

use crate::harness::*;
use kiemtra_core::*;
use kiemtra_server::ServerStore;
use kiemtra_testworld::PgCluster;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A throwaway cluster with database `db`, and its URL.
fn postgres(db: &str) -> (PgCluster, String) {
    let cluster = PgCluster::start();
    cluster.create_db(db);
    let url = cluster.url(db);
    (cluster, url)
}

/// `--database URL` for PostgreSQL, nothing for the embedded store.
fn db_args(url: &Option<String>) -> Vec<&str> {
    match url {
        Some(u) => vec!["--database", u.as_str()],
        None => Vec::new(),
    }
}

fn server_cmd(data: &Path, url: &Option<String>, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kiemtra-server"))
        .arg("--data")
        .arg(data)
        .args(db_args(url))
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run kiemtra-server")
}

fn ok(out: std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What the database holds of each visit, read off the async threads:
/// the state, the number of changes, and whether verification passes.
async fn held(
    data: PathBuf,
    url: Option<String>,
    ids: Vec<VisitId>,
) -> Vec<Option<(VisitState, usize, bool)>> {
    tokio::task::spawn_blocking(move || {
        fn read(
            s: &mut impl ServerStore,
            ids: &[VisitId],
        ) -> Vec<Option<(VisitState, usize, bool)>> {
            ids.iter()
                .map(|id| {
                    let v = s.visit(id).ok()?;
                    let state = v.state().ok()?;
                    let len = v.history().ok()?.len();
                    let verified = kiemtra_server::verify_visit(s, id).ok()?.ok;
                    Some((state, len, verified))
                })
                .collect()
        }
        match url {
            Some(u) => read(
                &mut kiemtra_server::PgStore::connect(&u).expect("connect"),
                &ids,
            ),
            None => read(&mut kiemtra_server::open_store(&data).expect("open"), &ids),
        }
    })
    .await
    .expect("read the database")
}

async fn restored_from_an_older_backup_is_repaired_by_its_devices(url: Option<String>) {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let args = db_args(&url);
    let server = ServerProcess::start_with(&data, &args);
    let proxy = Proxy::start(server.addr()).await;
    let code =
        |user: &str| enroll_codes_with(&data, &args, user, "team-1", "inspector", 1).remove(0);
    let mut a = Device::enroll_with_code(
        &proxy.url(),
        &code("insp-a"),
        "insp-a",
        &dir.path().join("a"),
    )
    .await;
    let mut b = Device::enroll_with_code(
        &proxy.url(),
        &code("insp-b"),
        "insp-b",
        &dir.path().join("b"),
    )
    .await;
    let (v1, v2) = (vid("v-1"), vid("v-2"));
    a.store
        .create_visit(new_visit("v-1", "team-1", 8), &template())
        .expect("create");
    record(&mut a, &v1, 0, 2);
    a.sync().await;
    b.sync().await;
    // An online backup, then more work lands: edits to v-1 and a new v-2.
    let backup = dir.path().join("backup.bin");
    let b_path = backup.display().to_string();
    ok(
        server_cmd(&data, &url, &["backup", "--to", &b_path]),
        "backup",
    );
    assert!(
        !server_cmd(&data, &url, &["backup", "--to", &b_path])
            .status
            .success(),
        "a backup never overwrites a file"
    );
    record(&mut a, &v1, 2, 3);
    a.store
        .create_visit(new_visit("v-2", "team-1", 4), &template())
        .expect("create");
    a.sync().await;
    b.sync().await;
    // The database is lost; the older backup is restored.
    server.kill();
    ok(
        server_cmd(&data, &url, &["restore", "--from", &b_path]),
        "restore",
    );
    let server = ServerProcess::start_with(&data, &args);
    proxy.set_upstream(server.addr());
    let before = held(data.clone(), url.clone(), vec![v1.clone(), v2.clone()]).await;
    assert!(before[1].is_none(), "the backup predates v-2");
    assert_eq!(
        before[0].as_ref().map(|h| h.1),
        Some(3),
        "the backup holds v-1's first changes"
    );
    // Devices notice and resend what the database lost.
    let report = a.sync().await;
    assert!(
        report.requests >= 2,
        "a fuller exchange followed: {report:?}"
    );
    b.sync().await;
    let after = held(data.clone(), url.clone(), vec![v1.clone(), v2.clone()]).await;
    for (id, h) in [&v1, &v2].into_iter().zip(after) {
        let (state, _, verified) = h.unwrap_or_else(|| panic!("{id} is back"));
        assert_eq!(state, a.state(id), "{id}");
        assert_eq!(b.state(id), a.state(id), "{id}");
        assert!(verified, "{id} verifies after the repair");
    }
    let v1_len = held(data.clone(), url.clone(), vec![v1.clone()]).await[0]
        .as_ref()
        .map(|h| h.1);
    assert_eq!(v1_len, Some(6), "no change lost or duplicated");
    drop(server);
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_restored_from_an_older_backup_is_repaired_by_its_devices() {
    restored_from_an_older_backup_is_repaired_by_its_devices(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restored_from_an_older_backup_is_repaired_by_its_devices() {
    let (cluster, url) = postgres("kiemtra");
    restored_from_an_older_backup_is_repaired_by_its_devices(Some(url)).await;
    drop(cluster);
}

/// A backup taken while two phones keep recording and syncing restores to
/// a database whose every visit verifies.
async fn an_online_backup_during_syncs_restores_whole(
    url: Option<String>,
    restored_url: Option<String>,
) {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let args = db_args(&url);
    let server = ServerProcess::start_with(&data, &args);
    let code =
        |user: &str| enroll_codes_with(&data, &args, user, "team-1", "inspector", 1).remove(0);
    let mut phones = Vec::new();
    for (i, user) in ["insp-a", "insp-b"].into_iter().enumerate() {
        let mut d =
            Device::enroll_with_code(&server.url(), &code(user), user, &dir.path().join(user))
                .await;
        let id = format!("v-load-{i}");
        d.store
            .create_visit(new_visit(&id, "team-1", 8), &template())
            .expect("create");
        d.sync().await;
        phones.push((d, vid(&id)));
    }
    let load = tokio::spawn(async move {
        for round in 0..15 {
            for (d, id) in phones.iter_mut() {
                record(d, id, round, 1);
                d.sync().await;
            }
        }
        phones
    });
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let backup = dir.path().join("online.bin");
    let b_path = backup.display().to_string();
    let (d2, u2) = (data.clone(), url.clone());
    let taken =
        tokio::task::spawn_blocking(move || server_cmd(&d2, &u2, &["backup", "--to", &b_path]))
            .await
            .expect("join");
    let still_syncing = !load.is_finished();
    ok(taken, "the online backup");
    let phones = load.await.expect("the phones' syncs");
    eprintln!("online backup taken while the phones synced: {still_syncing}");
    // Restored elsewhere (a new folder, or a new database).
    let target = dir.path().join("restored");
    let b_path = backup.display().to_string();
    ok(
        server_cmd(&target, &restored_url, &["restore", "--from", &b_path]),
        "restore",
    );
    let ids: Vec<VisitId> = phones.iter().map(|(_, id)| id.clone()).collect();
    let got = held(target, restored_url, ids).await;
    for h in got {
        let (_, len, verified) = h.expect("every visit synced before the backup is in it");
        assert!(len >= 1);
        assert!(verified, "the restored copy verifies");
    }
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_online_backup_during_syncs_restores_whole() {
    an_online_backup_during_syncs_restores_whole(None, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_online_backup_during_syncs_restores_whole() {
    let (cluster, url) = postgres("kiemtra");
    cluster.create_db("restored");
    let restored = cluster.url("restored");
    an_online_backup_during_syncs_restores_whole(Some(url), Some(restored)).await;
    drop(cluster);
}

#[test]
fn a_damaged_embedded_database_is_refused_at_start() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let _ = enroll_codes(&data, "insp-a", "team-1", "inspector", 50);
    let file = data.join("kiemtra.db");
    let mut bytes = std::fs::read(&file).expect("read");
    assert!(bytes.len() > 3 * 4096, "a database of several pages");
    // Damage every page but the first (the header).
    for b in bytes[4096..].iter_mut().step_by(7) {
        *b = 0xA5;
    }
    std::fs::write(&file, &bytes).expect("write");
    let _ = std::fs::remove_file(data.join("kiemtra.db-wal"));
    let out = server_cmd(&data, &None, &["--listen", "127.0.0.1:0"]);
    assert!(!out.status.success(), "a damaged database was served");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("damaged") || said.contains("malformed"),
        "the refusal says the file is damaged: {said}"
    );
}
