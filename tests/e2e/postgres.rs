//! Several stateless server processes over one PostgreSQL database: phones
//! spread over them, two groups recording one visit, one process killed
//! with SIGKILL in the middle of a sync and its phones moved to another
//! (as a load balancer would). Every replica converges, nothing is lost or
//! duplicated, and the database's copy verifies.

use crate::harness::*;
use kiemtra_core::*;
use kiemtra_server::ServerStore;
use kiemtra_testworld::PgCluster;

fn record_many(d: &mut Device, id: &VisitId, who: &str, n: usize) {
    for i in 0..n {
        d.store
            .edit(id, |v| {
                v.add_finding(NewFinding {
                    category: "tthc".into(),
                    severity: Severity::parse("minor")?,
                    text: format!("{who}: phát hiện {i}"),
                    recommendation: String::new(),
                    related_staff: Vec::new(),
                })
                .map(|_| ())
            })
            .expect("edit");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_servers_over_one_postgres_survive_one_killed_mid_sync() {
    let cluster = PgCluster::start();
    cluster.create_db("kiemtra");
    let url = cluster.url("kiemtra");
    let dir = tempfile::tempdir().expect("dir");
    let db = ["--database", url.as_str()];
    let s1 = ServerProcess::start_with(&dir.path().join("s1"), &db);
    let s2 = ServerProcess::start_with(&dir.path().join("s2"), &db);
    let s3 = ServerProcess::start_with(&dir.path().join("s3"), &db);
    // Each phone reaches its server through a proxy, as through a load
    // balancer that can move it to another server.
    let (p1, p2, p3) = (
        Proxy::start(s1.addr()).await,
        Proxy::start(s2.addr()).await,
        Proxy::start(s3.addr()).await,
    );
    let code = |user: &str, role: &str| {
        enroll_codes_with(&dir.path().join("admin"), &db, user, "team-1", role, 1).remove(0)
    };
    let mut a = Device::enroll_with_code(
        &p1.url(),
        &code("insp-a", "inspector"),
        "insp-a",
        &dir.path().join("a"),
    )
    .await;
    let mut b = Device::enroll_with_code(
        &p2.url(),
        &code("insp-b", "inspector"),
        "insp-b",
        &dir.path().join("b"),
    )
    .await;
    let mut sup = Device::enroll_with_code(
        &p3.url(),
        &code("sup-c", "supervisor"),
        "sup-c",
        &dir.path().join("c"),
    )
    .await;
    let id = vid("v-pg-three");
    a.store
        .create_visit(new_visit(id.as_str(), "team-1", 6), &template())
        .expect("create");
    a.sync().await;
    b.sync().await;
    assert!(
        b.store.summary(&id).is_ok(),
        "b received the visit through another server"
    );

    // Two groups record offline; the same person differently, and many findings.
    a.store
        .edit(&id, |v| {
            v.record_attendance(&staff(1), AttendanceMark::Late, "", None)
        })
        .expect("edit");
    b.store
        .edit(&id, |v| {
            v.record_attendance(
                &staff(1),
                AttendanceMark::parse("absent", Some("sick"))?,
                "",
                None,
            )
        })
        .expect("edit");
    record_many(&mut a, &id, "tổ 1", 20);
    record_many(&mut b, &id, "tổ 2", 120);

    // b's sync goes to server 2, which is killed while it runs; the
    // balancer then sends b to server 3 and the retry completes there.
    let before = p2.forwarded.load(std::sync::atomic::Ordering::SeqCst);
    let b_sync = tokio::spawn(async move {
        let r = b.client.sync(&mut b.store, &mut |_| {}).await;
        (b, r)
    });
    // Killed as soon as b's request is on its way in.
    let started = std::time::Instant::now();
    while p2.forwarded.load(std::sync::atomic::Ordering::SeqCst) == before
        && started.elapsed() < std::time::Duration::from_secs(30)
    {
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    s2.kill();
    p2.set_upstream(s3.addr());
    let a_sync = a
        .client
        .sync(&mut a.store, &mut |_| {})
        .await
        .expect("a syncs");
    assert!(a_sync.errors.is_empty(), "{:?}", a_sync.errors);
    let (mut b, r) = b_sync.await.expect("join");
    let r = r.expect("b's sync completes through another server");
    eprintln!(
        "b's sync across the kill: {} requests, {} retries",
        r.requests, r.retries
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    for _ in 0..2 {
        a.sync().await;
        b.sync().await;
        sup.sync().await;
    }

    // Every replica the same; the database holds every change once, and verifies.
    let state = a.state(&id);
    assert_eq!(b.state(&id), state);
    assert_eq!(sup.state(&id), state);
    assert_eq!(state.findings.len(), 140, "a finding was lost");
    let heads: Vec<ChangeHash> = [&mut a, &mut b]
        .into_iter()
        .flat_map(|d| d.store.visit(&id).expect("visit").heads())
        .collect();
    let conflicts = a.store.visit(&id).expect("v").conflicts().expect("c");
    assert_eq!(
        conflicts.len(),
        1,
        "the two groups' marks conflict: {conflicts:?}"
    );
    assert_eq!(
        b.store.visit(&id).expect("v").conflicts().expect("c"),
        conflicts
    );
    // The blocking PostgreSQL client runs (and is dropped) off the async threads.
    let (url2, id2) = (url.clone(), id.clone());
    tokio::task::spawn_blocking(move || {
        let mut pg = kiemtra_server::PgStore::connect(&url2).expect("connect");
        let held = pg.visit(&id2).expect("in the database");
        assert!(
            heads.iter().all(|h| held.has_change(h)),
            "a change is missing"
        );
        assert_eq!(held.state().expect("state"), state);
        let report = kiemtra_server::verify_visit(&mut pg, &id2).expect("verify");
        assert!(report.ok, "{:?}", report.problems);
        let sigs = pg.signatures_of(&id2).expect("signatures");
        let distinct: std::collections::BTreeSet<_> = sigs.iter().map(|s| &s.signature).collect();
        assert_eq!(distinct.len(), sigs.len(), "a signature kept twice");
    })
    .await
    .expect("the database's copy checks out");
    drop((s1, s3));
}
