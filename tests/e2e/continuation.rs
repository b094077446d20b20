//! Bounded messages with continuation, progress reports, and two server
//! processes sharing one database.

use crate::harness::*;
use kiemtra_client::{Progress, SyncOptions};
use kiemtra_core::*;

fn record(d: &mut Device, id: &VisitId, n: usize) {
    d.store
        .edit(id, |v| {
            for i in 0..n {
                v.record_attendance(
                    &staff(i % 20),
                    AttendanceMark::Late,
                    &format!("ghi chú {i}"),
                    None,
                )?;
            }
            Ok(())
        })
        .expect("record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_budgets_split_a_sync_into_several_requests_and_lose_nothing() {
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
    let mut b = Device::enroll(
        &server.data,
        &server.url(),
        "insp-b",
        "team-1",
        "inspector",
        &dir.path().join("b"),
    )
    .await;
    for n in 0..30 {
        let id = format!("v-{n:02}");
        a.store
            .create_visit(new_visit(&id, "team-1", 20), &template())
            .expect("create");
        record(&mut a, &vid(&id), 20);
    }
    let small = SyncOptions {
        max_request: 20_000,
        max_response: 20_000,
        ..fast_options()
    };
    a.set_options(small.clone());
    let mut seen: Vec<Progress> = Vec::new();
    let up = a
        .client
        .sync(&mut a.store, &mut |p| seen.push(p.clone()))
        .await
        .expect("upload");
    assert!(up.errors.is_empty(), "{:?}", up.errors);
    assert!(up.requests >= 3, "the upload was split: {up:?}");
    assert_eq!(up.visits_uploaded, 30);
    assert_eq!(
        seen.len() as u32,
        up.requests,
        "one progress report per request"
    );
    assert!(
        seen.windows(2).all(|w| w[1].bytes_sent > w[0].bytes_sent),
        "{seen:?}"
    );
    assert_eq!(seen.last().map(|p| p.bytes_sent), Some(up.bytes_sent));

    b.set_options(small);
    let down = b
        .client
        .sync(&mut b.store, &mut |_| {})
        .await
        .expect("download");
    assert!(down.errors.is_empty());
    assert!(down.requests >= 3, "the download was split: {down:?}");
    assert_eq!(down.visits_downloaded, 30);
    for n in 0..30 {
        let id = vid(&format!("v-{n:02}"));
        assert_eq!(b.state(&id), a.state(&id));
        assert_eq!(server_state(&server.data, &id), Some(a.state(&id)));
    }
    // Nothing left: the next sync is one request that moves nothing.
    let idle = b.sync().await;
    assert_eq!((idle.requests, idle.visits_downloaded), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_share_one_database() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    let one = ServerProcess::start(&data);
    let two = ServerProcess::start(&data);
    let mut a = Device::enroll(
        &data,
        &one.url(),
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    let mut b = Device::enroll(
        &data,
        &two.url(),
        "insp-b",
        "team-1",
        "inspector",
        &dir.path().join("b"),
    )
    .await;
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 20), &template())
        .expect("create");
    a.sync().await;
    b.sync().await;
    for round in 0..4 {
        record(&mut a, &id, 3);
        b.store
            .edit(&id, |v| {
                v.record_conduct(
                    &staff(round),
                    ConductKind::Badge,
                    ConductResult::Violation,
                    "",
                )
            })
            .expect("b");
        // Alternate which process each device talks to.
        if round % 2 == 1 {
            a.repoint(&two.url());
            b.repoint(&one.url());
        } else {
            a.repoint(&one.url());
            b.repoint(&two.url());
        }
        a.sync().await;
        b.sync().await;
    }
    a.sync().await;
    assert_eq!(a.state(&id), b.state(&id));
    assert_eq!(server_state(&data, &id), Some(a.state(&id)));
    // Creation, 3 attendance changes by a and 1 conduct change by b per round.
    assert_eq!(server_history_len(&data, &id), 1 + 4 * 3 + 4);
}

/// The bytes bound (SPEC.md, BENCHMARKS.md: wire bytes ≤ 1.1 × the new
/// change + 100 B per visit) in its tightest case: a device holding one
/// visit sends one small change. Heads and confirmation stay off the wire
/// (flag bit 2); written out, they alone would cost 66 of the 100 bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_small_change_stays_within_the_bytes_bound() {
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
    let id = vid("v-1");
    a.store
        .create_visit(new_visit("v-1", "team-1", 20), &template())
        .expect("create");
    a.sync().await;
    for k in 0..3 {
        a.store
            .edit(&id, |v| {
                v.record_attendance(&staff(k), AttendanceMark::Late, "", None)
            })
            .expect("record");
        let change = a
            .store
            .visit(&id)
            .expect("visit")
            .automerge()
            .get_last_local_change()
            .expect("a local change")
            .raw_bytes()
            .len();
        let report = a.sync().await;
        let bound = change * 11 / 10 + 100;
        assert_eq!(report.requests, 1);
        assert!(
            report.bytes_sent as usize <= bound,
            "sent {} bytes for a {change}-byte change (bound {bound})",
            report.bytes_sent
        );
        assert_eq!(server_state(&server.data, &id), Some(a.state(&id)));
    }
}
