//! The web console in a real browser: Debian's Chromium, headless, driven
//! through chromedriver (WebDriver) with fantoccini. A supervisor sets a
//! password with their code, signs in, reads the campaign, a visit and the
//! report, switches to English and signs out; markup recorded on a phone is
//! shown as text; every page is drawn at desktop and phone width under
//! `target/console-screenshots/`.

use crate::console::{CODES, World, world};
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
    c.find(Locator::Css("form button[type=submit]"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("click");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/console/campaigns")
    );
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
