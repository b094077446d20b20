//! Two groups record the same visit offline, then sync in every order:
//! every device and the server hold identical visits and the same conflicts.

use crate::harness::*;
use kiemtra_core::*;

async fn record_group_a(d: &mut Device, id: &VisitId) {
    d.store
        .edit(id, |v| {
            v.record_attendance(&staff(0), AttendanceMark::Present, "", None)?;
            v.record_attendance(&staff(2), AttendanceMark::Present, "", None)?;
            v.record_check(
                &CheckId::parse("tthc-posted")?,
                CheckResult::Fail,
                "thiếu 4 TTHC",
            )?;
            v.splice_narrative(0, 0, "Nhóm 1 đến lúc 7 giờ 35. ")?;
            v.add_finding(NewFinding {
                category: "Niêm yết".into(),
                severity: Severity::Moderate,
                text: "Chưa niêm yết đầy đủ thủ tục hành chính".into(),
                recommendation: "Bổ sung trong tuần".into(),
                related_staff: vec![],
            })?;
            Ok(())
        })
        .expect("group A records");
}

async fn record_group_b(d: &mut Device, id: &VisitId) {
    d.store
        .edit(id, |v| {
            v.record_attendance(
                &staff(1),
                AttendanceMark::Absent(AbsenceReason::Training),
                "",
                None,
            )?;
            v.record_attendance(
                &staff(2),
                AttendanceMark::Absent(AbsenceReason::BusinessTrip),
                "",
                None,
            )?;
            v.record_conduct(&staff(0), ConductKind::Badge, ConductResult::Violation, "")?;
            let len = v.state()?.narrative.chars().count();
            v.splice_narrative(len, 0, "Nhóm 2 kiểm tra bộ phận một cửa.")?;
            v.add_finding(NewFinding {
                category: "Kỷ luật".into(),
                severity: Severity::Minor,
                text: "Một công chức không đeo thẻ".into(),
                recommendation: String::new(),
                related_staff: vec![staff(0)],
            })?;
            Ok(())
        })
        .expect("group B records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_groups_offline_converge_in_every_sync_order() {
    // All six orders of the three devices' first syncs.
    for order in [
        ["a", "b", "sup"],
        ["a", "sup", "b"],
        ["b", "a", "sup"],
        ["b", "sup", "a"],
        ["sup", "a", "b"],
        ["sup", "b", "a"],
    ] {
        let dir = tempfile::tempdir().expect("dir");
        let server = ServerProcess::start(&dir.path().join("server"));
        let data = server.data.clone();
        let url = server.url();
        let mut a = Device::enroll(
            &data,
            &url,
            "insp-a",
            "team-1",
            "inspector",
            &dir.path().join("a"),
        )
        .await;
        let mut b = Device::enroll(
            &data,
            &url,
            "insp-b",
            "team-1",
            "inspector",
            &dir.path().join("b"),
        )
        .await;
        let mut sup = Device::enroll(
            &data,
            &url,
            "sup-1",
            "team-1",
            "supervisor",
            &dir.path().join("sup"),
        )
        .await;
        let id = vid("v-trung-kien");
        a.store
            .create_visit(new_visit("v-trung-kien", "team-1", 6), &template())
            .expect("create");
        a.store
            .edit(&id, |v| v.set_narrative("Biên bản kiểm tra. "))
            .expect("narrative");
        a.sync().await;
        b.sync().await;
        sup.sync().await;
        assert!(
            b.store.summary(&id).is_ok(),
            "b received the visit through the feed"
        );

        record_group_a(&mut a, &id).await;
        record_group_b(&mut b, &id).await;
        for who in order {
            match who {
                "a" => a.sync().await,
                "b" => b.sync().await,
                _ => sup.sync().await,
            };
        }
        // A second pass lets every device fetch what arrived after it synced.
        for d in [&mut a, &mut b, &mut sup] {
            d.sync().await;
        }
        let sa = a.state(&id);
        assert_eq!(sa, b.state(&id), "order {order:?}: a and b differ");
        assert_eq!(
            sa,
            sup.state(&id),
            "order {order:?}: a and supervisor differ"
        );
        assert_eq!(
            Some(sa.clone()),
            server_state(&data, &id),
            "order {order:?}: server differs"
        );
        let conflicts = sa.conflicts();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert_eq!(conflicts[0].field, FieldRef::Attendance { staff: staff(2) });
        assert_eq!(sa.findings.len(), 2);
        assert_eq!(
            sa.narrative,
            "Nhóm 1 đến lúc 7 giờ 35. Biên bản kiểm tra. Nhóm 2 kiểm tra bộ phận một cửa."
        );

        // The supervisor resolves; everyone converges without the conflict.
        sup.store
            .edit(&id, |v| {
                v.resolve(&FieldRef::Attendance { staff: staff(2) }, 0)
            })
            .expect("resolve");
        sup.sync().await;
        a.sync().await;
        b.sync().await;
        assert!(a.state(&id).conflicts().is_empty());
        assert_eq!(a.state(&id), b.state(&id));
        assert_eq!(Some(a.state(&id)), server_state(&data, &id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_state_sync_is_one_request() {
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
    for n in 0..5 {
        let id = format!("v-{n}");
        a.store
            .create_visit(new_visit(&id, "team-1", 4), &template())
            .expect("create");
    }
    let first = a.sync().await;
    assert_eq!(first.requests, 1, "{first:?}");
    assert_eq!(first.visits_uploaded, 5);
    a.store
        .edit(&vid("v-3"), |v| {
            v.record_attendance(&staff(1), AttendanceMark::Late, "", None)
        })
        .expect("edit");
    let second = a.sync().await;
    assert_eq!(second.requests, 1);
    assert_eq!(second.visits_uploaded, 1);
    let idle = a.sync().await;
    assert_eq!(idle.requests, 1);
    assert_eq!(idle.visits_uploaded, 0);
    assert_eq!(idle.visits_downloaded, 0);
}
