//! A new device stores the visits the server sends whole as received, lists
//! them from the server's listing, and loads (so checks) each one when it is
//! first opened; a damaged one is removed and downloaded again.

use crate::harness::*;
use kiemtra_core::*;
use kiemtra_store::VisitSummary;

fn record(d: &mut Device, id: &str, absent: usize) {
    d.store
        .create_visit(new_visit(id, "team-1", 8), &template())
        .expect("create");
    d.store
        .edit(&vid(id), |v| {
            v.record_attendance(&staff(0), AttendanceMark::Present, "", None)?;
            v.record_attendance(&staff(1), AttendanceMark::Late, "", None)?;
            for i in 2..2 + absent {
                v.record_attendance(
                    &staff(i),
                    AttendanceMark::Absent(AbsenceReason::BusinessTrip),
                    "",
                    None,
                )?;
            }
            v.splice_narrative(0, 0, "Đoàn đến lúc 7 giờ 30.")
        })
        .expect("record");
}

fn without_time(s: VisitSummary) -> VisitSummary {
    VisitSummary {
        updated_at: String::new(),
        ..s
    }
}

/// Cuts a visit's stored bytes short in a device's database (a damaged
/// download), then reopens the device's store. It keeps 12 bytes, less
/// than any whole chunk: a cut at half the length can land exactly between
/// two chunks (a whole document chunk, then changes of the same size), and
/// that prefix is a valid, older document rather than a damaged one.
fn damage(d: &mut Device, id: &str) {
    let conn = rusqlite::Connection::open(d.dir.join("device.db")).expect("sqlite");
    let n = conn
        .execute(
            "UPDATE visit_chunks SET data = substr(data, 1, 12) WHERE visit_id = ?1",
            [id],
        )
        .expect("damage");
    assert_eq!(n, 1);
    drop(conn);
    d.reopen();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn received_visits_are_listed_before_loading_and_a_damaged_one_comes_back() {
    let dir = tempfile::tempdir().expect("dir");
    let server = ServerProcess::start(&dir.path().join("server"));
    let (data, url) = (server.data.clone(), server.url());
    let mut a = Device::enroll(
        &data,
        &url,
        "insp-a",
        "team-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    record(&mut a, "v-1", 1);
    record(&mut a, "v-2", 3);
    a.sync().await;

    let mut sup = Device::enroll(
        &data,
        &url,
        "sup-1",
        "team-1",
        "supervisor",
        &dir.path().join("sup"),
    )
    .await;
    let got = sup.sync().await;
    assert_eq!(got.visits_downloaded, 2);
    assert_eq!(got.requests, 1);
    for id in ["v-1", "v-2"] {
        assert!(
            sup.store.is_unverified(&vid(id)).expect("flag"),
            "{id} not loaded yet"
        );
        assert_eq!(
            without_time(sup.store.summary(&vid(id)).expect("listed")),
            without_time(a.store.summary(&vid(id)).expect("a's")),
            "{id}: the listing is the one the document gives"
        );
    }
    assert_eq!(
        sup.store.summary(&vid("v-2")).expect("listed").tally.absent,
        3
    );

    // Opening loads and checks it; the received signatures are kept.
    assert_eq!(sup.state(&vid("v-1")), a.state(&vid("v-1")));
    assert!(!sup.store.is_unverified(&vid("v-1")).expect("flag"));
    assert!(
        !sup.store
            .signatures_of(&vid("v-1"))
            .expect("kept")
            .is_empty()
    );

    // Damaged on the device before it was opened: opening it says so and
    // removes it; the next sync downloads it again.
    damage(&mut sup, "v-2");
    match sup.store.visit(&vid("v-2")) {
        Err(kiemtra_store::Error::Refetch { id, .. }) => assert_eq!(id, vid("v-2")),
        other => panic!("expected a refetch, got {:?}", other.map(|_| ())),
    }
    let ids: Vec<VisitId> = sup
        .store
        .list_visits()
        .expect("list")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec![vid("v-1")]);
    let again = sup.sync().await;
    assert_eq!(again.visits_downloaded, 1);
    assert_eq!(sup.state(&vid("v-2")), a.state(&vid("v-2")));

    // Damaged again, and found when a sync merges new changes into it: the
    // same sync removes it and downloads it whole.
    let fresh = sup.sync().await;
    assert_eq!(fresh.visits_downloaded, 0, "nothing new");
    {
        // As if it had been received and never opened.
        let conn = rusqlite::Connection::open(sup.dir.join("device.db")).expect("sqlite");
        conn.execute("UPDATE visits SET verified = 0 WHERE id = 'v-2'", [])
            .expect("mark as received");
    }
    damage(&mut sup, "v-2");
    a.store
        .edit(&vid("v-2"), |v| {
            v.record_attendance(&staff(7), AttendanceMark::Present, "", None)
        })
        .expect("new mark");
    a.sync().await;
    let repaired = sup.sync().await;
    assert_eq!(repaired.refetched, 1);
    assert!(repaired.requests >= 2, "{repaired:?}");
    assert_eq!(sup.state(&vid("v-2")), a.state(&vid("v-2")));
    assert_eq!(
        Some(sup.state(&vid("v-2"))),
        server_state(&data, &vid("v-2"))
    );

    // Damaged once more, and found while the sync builds its request (its
    // confirmation differs from its heads, so the offer opens it): the
    // request asks from the start of the feed and the answer brings it back.
    {
        let conn = rusqlite::Connection::open(sup.dir.join("device.db")).expect("sqlite");
        conn.execute("UPDATE visits SET verified = 0 WHERE id = 'v-2'", [])
            .expect("mark as received");
    }
    damage(&mut sup, "v-2");
    let other = sup.store.summary(&vid("v-1")).expect("v-1").heads[0];
    sup.store
        .set_confirmed_heads(&vid("v-2"), kiemtra_client::PEER, &[other])
        .expect("confirmation");
    let rebuilt = sup.sync().await;
    assert_eq!(rebuilt.requests, 1, "{rebuilt:?}");
    assert_eq!(rebuilt.visits_downloaded, 1, "{rebuilt:?}");
    assert_eq!(sup.state(&vid("v-2")), a.state(&vid("v-2")));
}
