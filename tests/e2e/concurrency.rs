//! 200 devices in 20 teams record and sync concurrently against one server
//! (answering one sync at a time) for a bounded time: no errors, and every
//! team converges.

use crate::harness::*;
use kiemtra_core::*;
use std::time::{Duration, Instant};

const TEAMS: usize = 20;
const PER_TEAM: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_devices_sync_concurrently_without_errors() {
    let dir = tempfile::tempdir().expect("dir");
    // One sync decoded and answered at a time: every other request waits
    // for the place with its body read, and none of them may fail.
    let server = ServerProcess::start_with(&dir.path().join("server"), &["--max-syncs", "1"]);
    let url = server.url();
    let mut devices = Vec::new();
    for t in 0..TEAMS {
        let team = format!("team-{t}");
        let codes = enroll_codes(
            &server.data,
            &format!("insp-{t}"),
            &team,
            "inspector",
            PER_TEAM as u32,
        );
        for (i, code) in codes.iter().enumerate() {
            let d = Device::enroll_with_code(
                &url,
                code,
                &format!("insp-{t}"),
                &dir.path().join(format!("d-{t}-{i}")),
            )
            .await;
            devices.push((t, i, d));
        }
    }
    // Each team's first device creates the team's visit.
    for (t, i, d) in devices.iter_mut() {
        if *i == 0 {
            d.store
                .create_visit(
                    new_visit(&format!("v-team-{t}"), &format!("team-{t}"), 12),
                    &template(),
                )
                .expect("create");
            d.sync().await;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for (t, i, mut d) in devices {
        tasks.push(tokio::spawn(async move {
            let id = vid(&format!("v-team-{t}"));
            let mut syncs = 0u32;
            let mut n = 0usize;
            while Instant::now() < deadline {
                // Each device records its own staff member: inspectors never
                // overwrite one another, which would be settling a conflict.
                if d.store.summary(&id).is_ok() {
                    d.store
                        .edit(&id, |v| {
                            v.record_attendance(
                                &staff(i),
                                AttendanceMark::Present,
                                &format!("{i}/{n}"),
                                None,
                            )
                        })
                        .expect("edit");
                    n += 1;
                }
                let report = d
                    .client
                    .sync(&mut d.store, &mut |_| {})
                    .await
                    .expect("sync");
                assert!(report.errors.is_empty(), "{:?}", report.errors);
                syncs += 1;
            }
            (t, d, syncs)
        }));
    }
    let mut finished = Vec::new();
    for task in tasks {
        finished.push(task.await.expect("device task"));
    }
    let total: u32 = finished.iter().map(|(_, _, s)| s).sum();
    assert!(total >= 200, "every device synced at least once: {total}");
    // Settle: two more rounds, then each team's devices equal the server.
    for _ in 0..2 {
        for (_, d, _) in finished.iter_mut() {
            d.sync().await;
        }
    }
    let on_server: Vec<Option<VisitState>> = (0..TEAMS)
        .map(|t| server_state(&server.data, &vid(&format!("v-team-{t}"))))
        .collect();
    for (t, d, _) in finished.iter_mut() {
        let id = vid(&format!("v-team-{t}"));
        assert_eq!(Some(d.state(&id)), on_server[*t], "team {t}");
    }
}
