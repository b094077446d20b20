//! The web console in a real browser: Debian's Chromium, headless, driven
//! through chromedriver (WebDriver) with fantoccini. A supervisor sets a
//! password with their code, signs in, reads the campaign, a visit and the
//! report, switches to English and signs out; markup recorded on a phone is
//! shown as text; every page is drawn at desktop and phone width under
//! `target/console-screenshots/`.

use crate::console::{CODES, World, conflicted, world};
use fantoccini::{Client, ClientBuilder, Locator};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver on a free port, stopped when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

async fn driver() -> Driver {
    assert!(
        std::path::Path::new(CHROMIUM).exists() && std::path::Path::new(CHROMEDRIVER).exists(),
        "Debian's chromium and chromium-driver are needed (scripts/setup-browser.sh)"
    );
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver");
    let d = Driver { child, port };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return d;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on {port}");
}

async fn browser(d: &Driver, profile: &std::path::Path) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": CHROMIUM,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync",
                format!("--user-data-dir={}", profile.display()),
            ],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{}", d.port))
        .await
        .expect("a Chromium session")
}

fn shots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}

/// The page at desktop and at phone width, as PNG files.
async fn draw(c: &Client, name: &str) {
    for (label, w, h) in [("desktop", 1280, 900), ("phone", 390, 844)] {
        c.set_window_size(w, h).await.expect("size");
        let png = c.screenshot().await.expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::write(shots().join(format!("{name}-{label}.png")), png).expect("write");
    }
    c.set_window_size(1280, 900).await.expect("size");
}

/// The text of the page's `main`, as the browser renders it.
async fn main_text(c: &Client) -> String {
    c.find(Locator::Css("main"))
        .await
        .expect("main")
        .text()
        .await
        .expect("text")
}

async fn fill(c: &Client, id: &str, text: &str) {
    c.find(Locator::Id(id))
        .await
        .expect("field")
        .send_keys(text)
        .await
        .expect("type");
}

#[tokio::test]
async fn a_supervisor_reads_the_campaign_in_chromium() {
    let World {
        dir,
        server,
        admin,
        visit,
        ..
    } = world().await;
    let d = driver().await;
    let c = browser(&d, &dir.path().join("chromium")).await;
    let url = admin.url.clone();

    c.goto(&format!("{url}/console")).await.expect("goto");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/console/sign-in")
    );
    draw(&c, "sign-in").await;
    c.find(Locator::Css("a[href='/console/invite']"))
        .await
        .expect("the invitation link")
        .click()
        .await
        .expect("click");
    draw(&c, "invite").await;
    let code = CODES
        .iter()
        .find(|(u, _)| *u == "truong-doan")
        .expect("code")
        .1;
    fill(&c, "code", code).await;
    fill(&c, "user", "truong-doan").await;
    fill(&c, "password", "mật khẩu đủ dài 2015").await;
    fill(&c, "again", "mật khẩu đủ dài 2015").await;
    click(&c, "form button[type=submit]").await;
    wait_path(&c, "/console/campaigns").await;
    // The session cookie is not readable from the page.
    let cookies = c.get_all_cookies().await.expect("cookies");
    let session = cookies
        .iter()
        .find(|k| k.name() == "kt_session")
        .expect("session cookie");
    assert_eq!(session.http_only(), Some(true));
    draw(&c, "campaigns").await;

    c.find(Locator::Css("main table a"))
        .await
        .expect("the campaign")
        .click()
        .await
        .expect("click");
    let text = main_text(&c).await;
    assert!(text.contains("Tổng số CBCCVC trong biên chế: 4"), "{text}");
    assert!(text.contains("75,00%"), "{text}");
    // Markup in the campaign's title is text, not markup.
    let h1 = c
        .find(Locator::Css("h1"))
        .await
        .expect("h1")
        .text()
        .await
        .expect("text");
    assert_eq!(h1, "Kiểm tra <b>kỷ cương</b> năm 2015");
    draw(&c, "campaign").await;

    c.goto(&format!("{url}/console/visits/{visit}"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(
        text.contains("<script>alert(1)</script> sổ theo dõi thiếu"),
        "{text}"
    );
    assert!(text.contains("Ngô Thị Nga"), "{text}");
    draw(&c, "visit").await;

    c.goto(&format!("{url}/console/campaigns/ct-2015/report"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("Có mặt: 3 (75,00%)"), "{text}");
    draw(&c, "report").await;

    // English, one click away.
    c.find(Locator::Css("a[href='/console/lang/en']"))
        .await
        .expect("English")
        .click()
        .await
        .expect("click");
    c.goto(&format!("{url}/console/campaigns/ct-2015"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(
        text.contains("Staff on payroll: 4") && text.contains("75.00%"),
        "{text}"
    );
    draw(&c, "campaign-en").await;

    // Signing out ends the session: the campaigns send back to sign-in.
    c.find(Locator::Css("header form button"))
        .await
        .expect("sign out")
        .click()
        .await
        .expect("click");
    c.goto(&format!("{url}/console/campaigns"))
        .await
        .expect("goto");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/console/sign-in")
    );
    c.close().await.expect("close");
    drop(d);
    server.terminate();
}

/// Waits until `check` holds of the page's main text (scripts sign and
/// reload on their own time), for up to 20 s.
async fn wait_text(c: &Client, what: &str, check: impl Fn(&str) -> bool) -> String {
    wait_text_for(c, what, 200, check).await
}

async fn wait_text_for(
    c: &Client,
    what: &str,
    tenths: u32,
    check: impl Fn(&str) -> bool,
) -> String {
    for _ in 0..tenths {
        if let Ok(main) = c.find(Locator::Css("main")).await
            && let Ok(text) = main.text().await
            && check(&text)
        {
            return text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what}: {}", c.source().await.unwrap_or_default());
}

async fn wait_path(c: &Client, path: &str) {
    for _ in 0..200 {
        if c.current_url()
            .await
            .is_ok_and(|u| u.path().ends_with(path))
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("never reached {path}");
}

async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|_| panic!("{css}"))
        .click()
        .await
        .expect("click");
}

fn code_of(user: &str) -> &'static str {
    CODES.iter().find(|(u, _)| *u == user).expect("code").1
}

/// Sets a first password on the invitation page, as a person types it.
async fn accept_invitation(c: &Client, url: &str, user: &str, code: &str) {
    c.goto(&format!("{url}/console/invite"))
        .await
        .expect("goto");
    fill(c, "code", code).await;
    fill(c, "user", user).await;
    fill(c, "password", "mật khẩu đủ dài 2015").await;
    fill(c, "again", "mật khẩu đủ dài 2015").await;
    click(c, "form button[type=submit]").await;
    wait_path(c, "/console/campaigns").await;
}

#[tokio::test]
async fn a_supervisor_signs_with_the_browsers_key_and_an_auditor_replays_in_chromium() {
    let mut w = world().await;
    let visit = conflicted(&mut w).await;
    let d = driver().await;
    let url = w.admin.url.clone();

    // The administrator signs in with the desk's invitation and, from the
    // console, invites the supervisor and the auditor (each act signed by
    // the administrator's browser key into the log).
    let c = browser(&d, &w.dir.path().join("chromium-admin")).await;
    accept_invitation(&c, &url, "quan-tri-2", code_of("quan-tri-2")).await;
    c.goto(&format!("{url}/console/admin")).await.expect("goto");
    wait_path(&c, "/console/admin/users").await;
    draw(&c, "admin-users").await;
    let mut codes = Vec::new();
    for (user, name, role) in [
        ("truong-doan", "Trần Văn Đoàn", "supervisor"),
        ("kiem-toan", "Võ Minh Kiểm", "auditor"),
    ] {
        c.goto(&format!("{url}/console/admin/users"))
            .await
            .expect("goto");
        fill(&c, "user_id", user).await;
        fill(&c, "full_name", name).await;
        click(&c, &format!("select#role option[value={role}]")).await;
        click(&c, "select#team_id option[value=doan-1]").await;
        click(&c, "form[data-kind=invite] button").await;
        let mut code = None;
        for _ in 0..200 {
            if let Ok(e) = c.find(Locator::Css(".sign-status[data-code]")).await {
                code = e.attr("data-code").await.expect("attr");
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let code = code.unwrap_or_else(|| panic!("no code for {user}"));
        codes.push(code);
    }
    draw(&c, "admin-invited").await;
    // A random draw from the console: the browser makes the seed, logs its
    // commitment, and reveals it from its own storage.
    c.goto(&format!("{url}/console/admin/campaigns"))
        .await
        .expect("goto");
    fill(&c, "d-candidates", "so-noi-vu").await;
    fill(&c, "count", "1").await;
    click(&c, "form[data-kind=draw-commit] button").await;
    let mut seed = None;
    for _ in 0..200 {
        if let Ok(e) = c.find(Locator::Css(".sign-status[data-seed]")).await {
            seed = e.attr("data-seed").await.expect("attr");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seed = seed.expect("the draw's seed shown");
    assert_eq!(seed.len(), 64);
    click(&c, "form[data-kind=draw-reveal] button").await;
    let text = wait_text(&c, "the draw is revealed", |t| {
        t.contains("đã công bố, chọn: so-noi-vu")
    })
    .await;
    assert!(!text.contains("chưa công bố"), "{text}");
    for section in ["units", "campaigns", "templates", "devices"] {
        c.goto(&format!("{url}/console/admin/{section}"))
            .await
            .expect("goto");
        draw(&c, &format!("admin-{section}")).await;
    }
    c.goto(&format!("{url}/console/admin/log"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("Chuỗi băm liền mạch"), "{text}");
    assert!(text.contains("code_issued"), "{text}");
    draw(&c, "admin-log").await;
    c.close().await.expect("close");

    // The supervisor: the invitation makes and enrolls the browser's key.
    let c = browser(&d, &w.dir.path().join("chromium-sup")).await;
    accept_invitation(&c, &url, "truong-doan", &codes[0]).await;
    c.goto(&format!("{url}/console/browser"))
        .await
        .expect("goto");
    let text = wait_text(&c, "the key page marks this browser's key", |t| {
        t.contains("khóa của trình duyệt này")
    })
    .await;
    assert!(text.contains("Trình duyệt (console)"), "{text}");
    draw(&c, "signing-key").await;

    // Settles the conflict and approves, each signed in the browser.
    c.goto(&format!("{url}/console/visits/{visit}"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("Xung đột cần trưởng đoàn xử lý"), "{text}");
    draw(&c, "visit-conflict").await;
    click(&c, "form[data-act=settle] button").await;
    wait_text(&c, "the conflict is settled", |t| {
        !t.contains("Xung đột cần trưởng đoàn xử lý") && t.contains("Ký và phê duyệt")
    })
    .await;
    draw(&c, "visit-settled").await;
    fill(&c, "approve-note", "Đồng ý").await;
    click(&c, "form[data-act=approve] button").await;
    let text = wait_text(&c, "the visit is approved", |t| t.contains("Đã phê duyệt")).await;
    assert!(!text.contains("Ký và phê duyệt"), "{text}");

    // Both signatures verify, as the browser's device's.
    c.goto(&format!("{url}/console/visits/{visit}/verify"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("Hợp lệ"), "{text}");
    draw(&c, "verify-visit").await;
    c.goto(&format!("{url}/console/campaigns/ct-2015/verify"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("2/2 biên bản hợp lệ"), "{text}");
    draw(&c, "verify-campaign").await;
    c.goto(&format!("{url}/console/campaigns/ct-2015/approve"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("Không có biên bản nào"), "{text}");
    draw(&c, "bulk-approval").await;
    c.close().await.expect("close");

    // The auditor replays the visit: at the second change the visit was a
    // draft holding one phone's mark; now it is approved.
    let c = browser(&d, &w.dir.path().join("chromium-auditor")).await;
    accept_invitation(&c, &url, "kiem-toan", &codes[1]).await;
    c.goto(&format!("{url}/console/visits/{visit}/history?at=2"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("Trạng thái: Đang ghi nhận"), "{text}");
    assert!(text.contains("Nguyễn Văn Một"), "{text}");
    assert!(c.find(Locator::Css("input[type=range]")).await.is_ok());
    draw(&c, "history").await;
    c.goto(&format!("{url}/console/visits/{visit}/history"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("Trạng thái: Đã phê duyệt"), "{text}");
    assert!(text.contains("phê duyệt"), "{text}");
    // An auditor never gets a write control.
    c.goto(&format!("{url}/console/visits/{visit}"))
        .await
        .expect("goto");
    assert!(c.find(Locator::Css("form.signed")).await.is_err());
    c.goto(&format!("{url}/console/visits/{visit}/verify"))
        .await
        .expect("goto");
    assert!(main_text(&c).await.contains("Hợp lệ"));
    c.close().await.expect("close");

    // The inspector: read only, and a form stripped of its CSRF token is refused.
    let c = browser(&d, &w.dir.path().join("chromium-inspector")).await;
    accept_invitation(&c, &url, "kiem-tra-an", code_of("kiem-tra-an")).await;
    c.goto(&format!("{url}/console/admin/users"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("chỉ dành cho quản trị viên"), "{text}");
    assert!(c.find(Locator::Css("form.admin-act")).await.is_err());
    c.goto(&format!("{url}/console/visits/{visit}"))
        .await
        .expect("goto");
    assert!(c.find(Locator::Css("form.signed")).await.is_err());
    c.execute(
        "document.querySelector('header form input[name=csrf]').remove();",
        vec![],
    )
    .await
    .expect("script");
    click(&c, "header form button").await;
    let text = wait_text(&c, "the form is refused", |t| {
        t.contains("Biểu mẫu không hợp lệ")
    })
    .await;
    assert!(text.contains("CSRF"), "{text}");
    c.close().await.expect("close");
    drop(d);
    w.server.terminate();
}

#[tokio::test]
async fn the_cantho_campaign_is_settled_and_approved_in_chromium_and_reports_its_figures() {
    use crate::admin::{plan_cantho, start, tid, uid};
    use kiemtra_core::AttendanceMark;
    let (dir, server, admin) = start().await;
    let data = dir.path().join("server");
    let fixture = plan_cantho(&admin).await;
    let code = "PPPP-QQQQ-RRRR";
    let (s, v) = admin
        .act(vec![kiemtra_admin::Act::CodeIssued {
            code_hash: kiemtra_admin::log::sha256_hex(
                kiemtra_server::normalise_code(code).as_bytes(),
            ),
            user_id: uid("truong-doan"),
            team_id: tid("doan-1"),
            role: kiemtra_core::Role::Supervisor,
            expires_at: kiemtra_admin::log::timestamp(
                chrono::Utc::now() + chrono::Duration::hours(1),
            ),
        }])
        .await;
    assert_eq!(s, 200, "{v}");

    // Two phones of the team: one records what the 2015 inspectors found
    // at every unit, the other marks the first person of three units
    // otherwise, so those three visits arrive in conflict.
    let mut a = crate::harness::Device::enroll(
        &data,
        &admin.url,
        "kiem-tra-an",
        "doan-1",
        "inspector",
        &dir.path().join("a"),
    )
    .await;
    let mut b = crate::harness::Device::enroll(
        &data,
        &admin.url,
        "kiem-tra-an",
        "doan-1",
        "inspector",
        &dir.path().join("b"),
    )
    .await;
    a.sync().await;
    b.sync().await;
    let by_unit: std::collections::HashMap<String, kiemtra_core::VisitId> = a
        .store
        .list_visits()
        .expect("list")
        .into_iter()
        .map(|s| (s.unit_code.clone(), s.id.clone()))
        .collect();
    assert_eq!(by_unit.len(), 65);
    let mut conflicted = Vec::new();
    for (i, u) in fixture.units.iter().enumerate() {
        let outcomes = u.outcomes().expect("outcomes");
        let visit = &by_unit[u.code.as_str()];
        a.store
            .edit(visit, |v| {
                for (s, m, note) in &outcomes {
                    v.record_attendance(s, *m, note, None)?;
                }
                Ok(())
            })
            .expect("record");
        if i < 3 {
            let (s, m, _) = &outcomes[0];
            let other = match m {
                AttendanceMark::Present => {
                    AttendanceMark::Absent(kiemtra_core::AbsenceReason::Other)
                }
                _ => AttendanceMark::Present,
            };
            b.store
                .edit(visit, |v| {
                    v.record_attendance(s, other, "máy thứ hai ghi nhận", None)
                })
                .expect("record");
            conflicted.push(visit.clone());
        }
    }
    a.sync().await;
    b.sync().await;
    a.sync().await;
    let keep = a.client.credentials().device_id.clone();

    // The supervisor watches the overview while the phone submits: the
    // page redraws itself when the server says the visits changed.
    let d = driver().await;
    let c = browser(&d, &dir.path().join("chromium")).await;
    let url = admin.url.clone();
    accept_invitation(&c, &url, "truong-doan", code).await;
    c.goto(&format!("{url}/console/campaigns/ct-2015"))
        .await
        .expect("goto");
    for visit in by_unit.values() {
        a.store.edit(visit, |v| v.submit("")).expect("submit");
    }
    a.sync().await;
    let mut redrawn = false;
    for _ in 0..200 {
        if c.find(Locator::Css("body[data-updates]")).await.is_ok() {
            redrawn = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        redrawn,
        "the overview was not redrawn after the phone's sync"
    );
    let text = main_text(&c).await;
    assert!(text.contains("Đã cập nhật lúc"), "{text}");

    // The supervisor settles every conflict for the first phone's record
    // and approves the 65 visits at once, each signed in the browser.
    for visit in &conflicted {
        c.goto(&format!("{url}/console/visits/{visit}"))
            .await
            .expect("goto");
        assert!(
            main_text(&c)
                .await
                .contains("Xung đột cần trưởng đoàn xử lý")
        );
        c.find(Locator::XPath(&format!(
            "//li[contains(., '{keep}')]//form[@data-act='settle']//button"
        )))
        .await
        .expect("the first phone's candidate")
        .click()
        .await
        .expect("click");
        wait_text(&c, "the conflict is settled", |t| {
            !t.contains("Xung đột cần trưởng đoàn xử lý") && t.contains("Ký và phê duyệt")
        })
        .await;
    }
    c.goto(&format!("{url}/console/campaigns/ct-2015/approve"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("phê duyệt 65 biên bản"), "{text}");
    draw(&c, "bulk-approval-cantho").await;
    click(&c, "#confirm").await;
    click(&c, "form[data-bulk] button[type=submit]").await;
    wait_text_for(&c, "65 approvals signed", 1800, |t| {
        t.contains("Đã ký 65/65")
    })
    .await;

    // The report from the approved states, and every signature verified.
    c.goto(&format!("{url}/console/campaigns/ct-2015/report"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("1.404"), "{text}");
    assert!(text.contains("Có mặt: 1.071 (76,28%)"), "{text}");
    draw(&c, "report-cantho").await;
    c.goto(&format!("{url}/console/campaigns/ct-2015"))
        .await
        .expect("goto");
    draw(&c, "campaign-cantho").await;
    c.goto(&format!("{url}/console/campaigns/ct-2015/verify"))
        .await
        .expect("goto");
    let text = main_text(&c).await;
    assert!(text.contains("65/65 biên bản hợp lệ"), "{text}");
    c.close().await.expect("close");
    drop(d);
    server.terminate();
}
