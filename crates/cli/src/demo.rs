//! `kiemtra demo`: the whole story in one command. A server on an embedded
//! database in a temporary folder; a supervisor and two inspectors' phones
//! enrolled; the Cần Thơ 2015 campaign (as reported in "Thành phố Cần Thơ
//! đẩy mạnh công tác kiểm tra giờ giấc làm việc…", Sở Nội vụ thành phố Cần
//! Thơ, 2015) recorded offline across
//! the phones — both groups at some units, producing real conflicts —
//! synced, resolved, approved with signatures, and reported in Vietnamese.

use kiemtra_client::{Credentials, SyncClient, SyncOptions};
use kiemtra_core::*;
use kiemtra_server::{Application, Settings};
use kiemtra_store::Store;
use std::path::Path;
use std::time::Instant;

use kiemtra_admin::report::{CampaignReport, VisitForReport};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Step(String),
}

fn step<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> Error + '_ {
    move |e| Error::Step(format!("{what}: {e}"))
}

struct Phone {
    store: Store,
    client: SyncClient,
    creds: Credentials,
}

async fn enroll(
    url: &str,
    data: &Path,
    user: &str,
    role: Role,
    dir: &Path,
) -> Result<Phone, Error> {
    let code = {
        let mut server_store =
            kiemtra_server::open_store(data).map_err(step("opening the server's store"))?;
        kiemtra_server::create_enrollment_code(
            &mut server_store,
            user,
            "team-1",
            role.key(),
            chrono::Duration::hours(1),
        )
        .map_err(step("creating an enrollment code"))?
    };
    let creds = kiemtra_client::enroll(url, &code, &format!("Điện thoại của {user}"))
        .await
        .map_err(step("enrolling"))?;
    let editor = Editor::new(
        UserId::parse(&creds.user_id).map_err(step("user"))?,
        DeviceId::parse(&creds.device_id).map_err(step("device"))?,
    );
    let mut store = Store::open_with_session(
        dir.join(format!("{user}.db")),
        Session::new(editor).with_role(role),
    )
    .map_err(step("opening a phone's store"))?;
    creds.save(&mut store).map_err(step("saving credentials"))?;
    let client = SyncClient::new(creds.clone(), SyncOptions::default()).map_err(step("client"))?;
    Ok(Phone {
        store,
        client,
        creds,
    })
}

async fn sync(p: &mut Phone) -> Result<kiemtra_client::SyncReport, Error> {
    let r = p
        .client
        .sync(&mut p.store, &mut |_| {})
        .await
        .map_err(step("sync"))?;
    if let Some(e) = r.errors.first() {
        return Err(Error::Step(format!(
            "sync refused visit {}: {}",
            e.visit_id, e.message
        )));
    }
    Ok(r)
}

/// Runs the demo; progress goes to `log`, the report is returned.
/// `campaign_path` `None` plays the campaign the binary carries.
pub async fn run(campaign_path: Option<&Path>, log: &mut dyn FnMut(&str)) -> Result<String, Error> {
    let started = Instant::now();
    let fixture = CampaignFixture::from_json(
        &crate::builtin::campaign(campaign_path).map_err(step("reading the campaign"))?,
    )
    .map_err(step("campaign"))?;
    let template = Template::from_json(
        &crate::builtin::template(campaign_path, &fixture.template)
            .map_err(step("reading the template"))?,
    )
    .map_err(step("template"))?;
    let dir = tempfile::tempdir().map_err(step("temporary folder"))?;
    let data = dir.path().join("server");

    let app = Application::build(Settings {
        listen: "127.0.0.1:0".into(),
        data: data.clone(),
        ..Settings::default()
    })
    .map_err(step("starting the server"))?;
    let url = format!("http://127.0.0.1:{}", app.port());
    let server = tokio::spawn(app.run_until_stopped());
    log(&format!(
        "1/6 Máy chủ chạy tại {url} (CSDL SQLite trong thư mục tạm) / server up"
    ));

    let mut sup = enroll(&url, &data, "truong-doan", Role::Supervisor, dir.path()).await?;
    let mut g1 = enroll(&url, &data, "nhom-1", Role::Inspector, dir.path()).await?;
    let mut g2 = enroll(&url, &data, "nhom-2", Role::Inspector, dir.path()).await?;
    log(
        "2/6 Đã đăng ký 3 điện thoại: trưởng đoàn và hai nhóm kiểm tra / 3 phones enrolled (keys made on each)",
    );

    for unit in &fixture.units {
        let mut new = unit
            .new_visit(&fixture.campaign.id)
            .map_err(step("visit"))?;
        new.team = TeamId::parse("team-1").map_err(step("team"))?;
        sup.store
            .create_visit(new, &template)
            .map_err(step("creating a visit"))?;
    }
    sync(&mut sup).await?;
    sync(&mut g1).await?;
    sync(&mut g2).await?;
    log(&format!(
        "3/6 Trưởng đoàn tạo {} biên bản; hai nhóm đã nhận / {} visits assigned",
        fixture.units.len(),
        fixture.units.len()
    ));

    // Offline: group 1 takes even units, group 2 odd ones; both groups go to
    // the first three units and disagree about one person there.
    let both = 3;
    for (i, unit) in fixture.units.iter().enumerate() {
        let id = unit.visit_id(&fixture.campaign.id).map_err(step("id"))?;
        let outcomes = unit.outcomes().map_err(step("outcomes"))?;
        let phone = if i % 2 == 0 { &mut g1 } else { &mut g2 };
        phone
            .store
            .edit(&id, |v| {
                for (staff, mark, note) in &outcomes {
                    v.record_attendance(staff, *mark, note, None)?;
                }
                if i % 7 == 0 {
                    v.record_check(
                        &CheckId::parse("tthc-posted")?,
                        CheckResult::Fail,
                        "thiếu thủ tục mới",
                    )?;
                    v.add_finding(NewFinding {
                        category: "Niêm yết".into(),
                        severity: Severity::Moderate,
                        text: "Chưa niêm yết đầy đủ, kịp thời thủ tục hành chính".into(),
                        recommendation: "Cập nhật niêm yết trong 5 ngày làm việc".into(),
                        related_staff: vec![],
                    })?;
                }
                Ok(())
            })
            .map_err(step("recording"))?;
        if i % 7 == 0 {
            // A photo of the notice board that lacks the new procedures.
            let board: Vec<u8> = (0..40_000u32)
                .map(|k| (k.wrapping_mul(2_654_435_761).wrapping_add(i as u32) >> 24) as u8)
                .collect();
            phone
                .store
                .add_evidence(
                    &id,
                    &CheckId::parse("tthc-posted").map_err(step("photo"))?,
                    &board,
                )
                .map_err(step("photo"))?;
        }
        if i < both {
            let other = if i % 2 == 0 { &mut g2 } else { &mut g1 };
            let (first, mark, _) = outcomes
                .first()
                .cloned()
                .ok_or_else(|| Error::Step("empty roster".into()))?;
            let differing = if mark == AttendanceMark::Present {
                AttendanceMark::Absent(AbsenceReason::Other)
            } else {
                AttendanceMark::Present
            };
            other
                .store
                .edit(&id, |v| {
                    v.record_attendance(&first, differing, "ghi nhận của nhóm còn lại", None)
                })
                .map_err(step("recording"))?;
        }
    }
    log(
        "4/6 Hai nhóm ghi nhận ngoại tuyến (cả hai nhóm cùng đến 3 đơn vị) / both groups recorded offline",
    );

    sync(&mut g1).await?;
    sync(&mut g2).await?;
    let mut photos = 0;
    for p in [&mut g1, &mut g2] {
        let up = p
            .client
            .upload_evidence(&mut p.store)
            .await
            .map_err(step("photo upload"))?;
        if let Some(e) = up.errors.first() {
            return Err(Error::Step(format!("photo upload refused: {}", e.message)));
        }
        photos += up.uploaded;
    }
    log(&format!(
        "   {photos} ảnh bảng niêm yết đã tải lên, đối chiếu SHA-256 / {photos} photos of notice boards uploaded, SHA-256 checked"
    ));
    sync(&mut sup).await?;
    let mut conflicts = 0;
    for unit in &fixture.units {
        let id = unit.visit_id(&fixture.campaign.id).map_err(step("id"))?;
        let expected: std::collections::HashMap<StaffId, AttendanceMark> = unit
            .outcomes()
            .map_err(step("outcomes"))?
            .into_iter()
            .map(|(s, m, _)| (s, m))
            .collect();
        let open = sup
            .store
            .visit(&id)
            .map_err(step("visit"))?
            .conflicts()
            .map_err(step("conflicts"))?;
        for c in open {
            conflicts += 1;
            // The supervisor checks with the unit and keeps what was true.
            let keep = c
                .candidates
                .iter()
                .position(|cand| match (&c.field, &cand.value) {
                    (FieldRef::Attendance { staff }, FieldValue::Attendance(a)) => {
                        expected.get(staff) == Some(&a.mark)
                    }
                    _ => false,
                })
                .unwrap_or(0);
            sup.store
                .edit(&id, |v| v.resolve(&c.field, keep))
                .map_err(step("resolving"))?;
        }
        let creds = sup.creds.clone();
        sup.store
            .edit(&id, |v| {
                v.submit("")?;
                v.approve_signed("Đồng ý", &|m| creds.sign_bytes(m).unwrap_or_default())
                    .map(|_| ())
            })
            .map_err(step("approving"))?;
    }
    sync(&mut sup).await?;
    log(&format!(
        "5/6 Trưởng đoàn giải quyết {conflicts} xung đột và phê duyệt (có chữ ký) / {conflicts} conflicts resolved, visits approved and signed"
    ));

    let mut visits = Vec::new();
    for unit in &fixture.units {
        let id = unit.visit_id(&fixture.campaign.id).map_err(step("id"))?;
        let v = sup.store.visit(&id).map_err(step("visit"))?;
        let (approval, approved) = v.approval().map_err(step("approval"))?.unzip();
        visits.push(VisitForReport {
            unit: unit.name.clone(),
            kind: UnitKind::parse(&unit.kind).map_err(step("kind"))?,
            absorbed: Vec::new(),
            unplanned: false,
            approved,
            approval,
        });
    }
    let report = CampaignReport::build(
        fixture.campaign.id.as_str(),
        fixture.campaign.name.get(Lang::Vi),
        &visits,
        Lang::Vi,
    );
    server.abort();
    log(&format!(
        "6/6 Báo cáo đợt kiểm tra / campaign report ({:.1} s)",
        started.elapsed().as_secs_f64()
    ));
    Ok(report.markdown(Lang::Vi))
}
