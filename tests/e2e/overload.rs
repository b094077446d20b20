//! More phones at once than the server answers: the server admits what it
//! can queue, tells the others when to come back (503 with `Retry-After`,
//! each booked a moment of its own), and phones wait as told without
//! counting it as a failed attempt, so every one of them finishes.

use crate::harness::*;
use kiemtra_core::*;

fn record(d: &mut Device, id: &str) {
    d.store
        .create_visit(new_visit(id, "team-1", 40), &template())
        .expect("create");
    d.store
        .edit(&vid(id), |v| {
            for round in 0..3 {
                for i in 0..40 {
                    let mark = match (i + round) % 3 {
                        0 => AttendanceMark::Present,
                        1 => AttendanceMark::Late,
                        _ => AttendanceMark::Absent(AbsenceReason::BusinessTrip),
                    };
                    v.record_attendance(&staff(i), mark, "", None)?;
                }
            }
            v.splice_narrative(0, 0, "Đoàn đến lúc 7 giờ 30.")
        })
        .expect("record");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowd_past_the_queue_is_told_when_to_come_back_and_every_phone_finishes() {
    const PHONES: usize = 16;
    let dir = tempfile::tempdir().expect("dir");
    // One sync answered at a time and none waiting: every sync that
    // arrives while another is answered is refused as busy.
    let server = ServerProcess::start_with(
        &dir.path().join("server"),
        &["--max-syncs", "1", "--max-queued-syncs", "0"],
    );
    let url = server.url();
    let codes = enroll_codes(&server.data, "insp-a", "team-1", "inspector", PHONES as u32);
    let mut phones = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let mut d =
            Device::enroll_with_code(&url, code, "insp-a", &dir.path().join(format!("p{i}"))).await;
        record(&mut d, &format!("v-{i}"));
        // One attempt: only waiting as a busy answer asks lets a phone
        // through a refusal.
        d.set_options(kiemtra_client::SyncOptions {
            max_attempts: 1,
            ..fast_options()
        });
        phones.push(d);
    }
    let tasks: Vec<_> = phones
        .into_iter()
        .map(|mut d| {
            tokio::spawn(async move {
                let r = d.client.sync(&mut d.store, &mut |_| {}).await;
                (d, r)
            })
        })
        .collect();
    let mut retried = 0;
    let mut phones = Vec::new();
    for t in tasks {
        let (d, r) = t.await.expect("task");
        let r = r.expect("every phone finishes its sync");
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        retried += r.retries;
        phones.push(d);
    }
    let shed = metric(&url, "kiemtra_syncs_shed_total").await;
    assert!(
        shed > 0,
        "no sync was refused as busy: the test proved nothing"
    );
    assert_eq!(
        u64::from(retried),
        shed,
        "each refusal was one wait as told"
    );
    // Everything arrived once, and every phone's work is on the server.
    for (i, d) in phones.iter_mut().enumerate() {
        let id = vid(&format!("v-{i}"));
        assert_eq!(server_state(&server.data, &id), Some(d.state(&id)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_answer_names_a_wait_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    // One slot and no queue: a request arriving while another is answered
    // is refused. Several are sent at once, as raw requests, and every
    // answer is read.
    let server = ServerProcess::start_with(
        &dir.path().join("server"),
        &["--max-syncs", "1", "--max-queued-syncs", "0"],
    );
    let url = server.url();
    let codes = enroll_codes(&server.data, "insp-a", "team-1", "inspector", 8);
    let mut bodies = Vec::new();
    for (i, code) in codes.iter().enumerate() {
        let mut d =
            Device::enroll_with_code(&url, code, "insp-a", &dir.path().join(format!("p{i}"))).await;
        record(&mut d, &format!("v-{i}"));
        let engine = kiemtra_client::DeviceEngine::new(
            d.client.credentials().clone(),
            kiemtra_client::SyncOptions::default(),
        );
        let round = engine.begin(&mut d.store).expect("round");
        bodies.push((d.client.credentials().token.clone(), round.body));
    }
    let http = reqwest::Client::new();
    let mut answers = Vec::new();
    // Whether a visit was ever answered 200 (and so may be stored).
    let mut taken = vec![false; bodies.len()];
    for _ in 0..5 {
        let sends: Vec<_> = bodies
            .iter()
            .map(|(token, body)| {
                let send = http
                    .post(format!("{url}/v1/sync"))
                    .bearer_auth(token)
                    .header("Content-Type", kiemtra_sync_protocol::MEDIA_TYPE)
                    .body(body.clone())
                    .send();
                tokio::spawn(async move {
                    let r = send.await.expect("answer");
                    let status = r.status().as_u16();
                    let wait = r.headers().get("Retry-After").map(|v| {
                        v.to_str()
                            .expect("ascii")
                            .parse::<u64>()
                            .expect("whole seconds")
                    });
                    (status, wait, r.text().await.unwrap_or_default())
                })
            })
            .collect();
        for (i, t) in sends.into_iter().enumerate() {
            let (status, wait, body) = t.await.expect("task");
            taken[i] |= status == 200;
            answers.push((status, wait, body));
        }
        if answers.iter().any(|(s, _, _)| *s == 503) {
            break;
        }
    }
    let busy: Vec<_> = answers.iter().filter(|(s, _, _)| *s == 503).collect();
    assert!(
        !busy.is_empty(),
        "no busy answer in {} requests",
        answers.len()
    );
    for (_, wait, body) in &busy {
        let wait = wait.expect("a busy answer says when to come back");
        assert!((1..=60).contains(&wait), "Retry-After {wait}");
        assert!(body.contains("busy"), "{body}");
    }
    assert!(
        answers.iter().all(|(s, _, _)| *s == 200 || *s == 503),
        "{answers:?}"
    );
    for (i, taken) in taken.iter().enumerate() {
        let held = server_state(&server.data, &vid(&format!("v-{i}")));
        assert_eq!(
            held.is_some(),
            *taken,
            "v-{i}: stored only when answered 200"
        );
    }
}
