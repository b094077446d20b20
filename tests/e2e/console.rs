//! The web console over HTTP, as a browser without scripts uses it: a user
//! sets a password with the code an administrator issued, signs in, sees
//! what their role and teams may see, in Vietnamese or English; forms
//! without their CSRF token are refused; failed sign-ins are slowed and then
//! locked; signing out ends the session.

use crate::admin::*;
use crate::harness::*;
use kiemtra_admin::Act;
use kiemtra_admin::log::sha256_hex;
use kiemtra_core::Role;
use std::collections::BTreeMap;

/// A browser: cookies kept by name, redirects not followed.
pub(crate) struct Browser {
    url: String,
    http: reqwest::Client,
    jar: BTreeMap<String, String>,
    /// The `Set-Cookie` headers of the last answer, whole.
    set_cookie: Vec<String>,
}

struct Page {
    status: u16,
    location: String,
    body: String,
}

impl Browser {
    fn new(url: &str) -> Self {
        Browser {
            url: url.to_owned(),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            jar: BTreeMap::new(),
            set_cookie: Vec::new(),
        }
    }

    pub(crate) fn cookies(&self) -> String {
        self.jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn take(&mut self, r: reqwest::Response) -> Page {
        self.set_cookie = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        for c in &self.set_cookie {
            let pair = c.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                if v.is_empty() || c.contains("Max-Age=0") {
                    self.jar.remove(k);
                } else {
                    self.jar.insert(k.to_owned(), v.to_owned());
                }
            }
        }
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned(),
            body: r.text().await.unwrap_or_default(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .header("cookie", self.cookies())
            .send()
            .await
            .expect("get");
        self.take(r).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let r = self
            .http
            .post(format!("{}{path}", self.url))
            .header("cookie", self.cookies())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(urlencoded(form))
            .send()
            .await
            .expect("post");
        self.take(r).await
    }
}

/// A form's fields as `application/x-www-form-urlencoded`.
fn urlencoded(form: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    (b as char).to_string()
                }
                b' ' => "+".into(),
                b => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    form.iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the hidden `csrf` field of a page's form.
fn csrf(body: &str) -> String {
    let at = body.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
    body[at..at + 64].to_owned()
}

/// Sets `user`'s first password with `code` and follows the redirect.
pub(crate) async fn invited(url: &str, code: &str, user: &str, password: &str) -> Browser {
    invited_with_key(url, code, user, password, "").await
}

/// [`invited`], sending `public_key` (hex) as the browser's key, as the
/// console's script does.
pub(crate) async fn invited_with_key(
    url: &str,
    code: &str,
    user: &str,
    password: &str,
    public_key: &str,
) -> Browser {
    let mut b = Browser::new(url);
    let form = b.get("/console/invite").await;
    assert_eq!(form.status, 200);
    let token = csrf(&form.body);
    let done = b
        .post(
            "/console/invite",
            &[
                ("csrf", token.as_str()),
                ("code", code),
                ("user", user),
                ("password", password),
                ("again", password),
                ("public_key", public_key),
            ],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location, "/console/campaigns");
    b
}

/// What the console's tests start from: a server whose log holds a unit of
/// Cần Thơ with its roster, the standard checklist, a supervisor, an
/// inspector, an auditor and an administrator of one team (each with an
/// unused code), a campaign and one assigned visit, recorded by the
/// inspector's phone and approved by the supervisor's.
pub(crate) struct World {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) server: ServerProcess,
    pub(crate) admin: Admin,
    pub(crate) campaign: kiemtra_core::CampaignId,
    pub(crate) visit: kiemtra_core::VisitId,
    pub(crate) phone: Device,
    pub(crate) sup_phone: Device,
}

/// The codes [`World`] issued, by user.
pub(crate) const CODES: [(&str, &str); 4] = [
    ("truong-doan", "AAAA-BBBB-CCCC"),
    ("kiem-tra-an", "DDDD-EEEE-FFFF"),
    ("kiem-toan", "GGGG-HHHH-JJJJ"),
    ("quan-tri-2", "KKKK-MMMM-NNNN"),
];

pub(crate) async fn world() -> World {
    let (dir, server, admin) = start().await;
    let data = dir.path().join("server");
    let team = tid("doan-1");
    let campaign = kiemtra_core::CampaignId::parse("ct-2015").expect("id");
    let visit = random_visit("ct-2015", "so-noi-vu");
    let expires = kiemtra_admin::log::timestamp(chrono::Utc::now() + chrono::Duration::hours(1));
    let issued = |user: &str, role: Role, code: &str| Act::CodeIssued {
        code_hash: sha256_hex(kiemtra_server::normalise_code(code).as_bytes()),
        user_id: uid(user),
        team_id: tid("doan-1"),
        role,
        expires_at: expires.clone(),
    };
    let user = |id: &str, name: &str, role| Act::UserCreated {
        user_id: uid(id),
        full_name: name.into(),
        role,
    };
    let (s, v) = admin
        .act(vec![
            Act::AreasImported {
                areas: vec![kiemtra_admin::Area {
                    code: code("can-tho"),
                    name: "Thành phố Cần Thơ".into(),
                    tier: kiemtra_admin::Tier::Province,
                    parent: None,
                    valid_from: day("2004-01-01"),
                    valid_to: None,
                }],
            },
            Act::UnitsImported {
                units: vec![kiemtra_admin::UnitRecord {
                    code: code("so-noi-vu"),
                    name: "Sở Nội vụ".into(),
                    kind: kiemtra_core::UnitKind::Department,
                    area: code("can-tho"),
                    valid_from: day("2004-01-01"),
                    valid_to: None,
                }],
            },
            Act::RosterPublished {
                unit: code("so-noi-vu"),
                valid_from: day("2015-01-01"),
                staff: vec![
                    member("snv.s1", "Ngô Thị Nga", "Giám đốc"),
                    member("snv.s2", "Lê Văn Tư", "Chuyên viên"),
                    member("snv.s3", "Trần Thị Ba", "Chuyên viên"),
                    member("snv.s4", "Phạm Văn Năm", "Chuyên viên"),
                ],
            },
            Act::TemplatePublished {
                template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
                version: 1,
                json: include_str!("../../fixtures/templates/standard-v1.json").into(),
            },
            user("truong-doan", "Trần Văn Đoàn", Role::Supervisor),
            user("kiem-tra-an", "Lê Thị Ân", Role::Inspector),
            user("kiem-toan", "Võ Minh Kiểm", Role::Auditor),
            user("quan-tri-2", "Đặng Quản Trị", Role::Administrator),
            Act::TeamCreated {
                team_id: team.clone(),
                name: "Đoàn kiểm tra số 1".into(),
            },
            Act::TeamMembers {
                team_id: team.clone(),
                leaders: vec![uid("truong-doan")],
                members: vec![
                    uid("truong-doan"),
                    uid("kiem-tra-an"),
                    uid("kiem-toan"),
                    uid("quan-tri-2"),
                ],
            },
            Act::CampaignCreated {
                campaign_id: campaign.clone(),
                title: "Kiểm tra <b>kỷ cương</b> năm 2015".into(),
                decision: "Quyết định 138/QĐ-UBND ngày 19/01/2017".into(),
                starts_on: day("2015-01-01"),
                ends_on: day("2015-12-31"),
                province: code("can-tho"),
                template_id: kiemtra_core::TemplateId::parse("standard").expect("id"),
                template_version: 1,
                teams: vec![team.clone()],
            },
            Act::Assigned {
                campaign_id: campaign.clone(),
                team_id: team.clone(),
                unit: code("so-noi-vu"),
                planned_on: day("2015-08-31"),
                visit_id: visit.clone(),
            },
            issued("truong-doan", Role::Supervisor, "AAAA-BBBB-CCCC"),
            issued("kiem-tra-an", Role::Inspector, "DDDD-EEEE-FFFF"),
            issued("kiem-toan", Role::Auditor, "GGGG-HHHH-JJJJ"),
            issued("quan-tri-2", Role::Administrator, "KKKK-MMMM-NNNN"),
        ])
        .await;
    assert_eq!(s, 200, "{v}");

    // The team's phone records the visit (a finding with markup in it), the
    // supervisor's phone approves.
    let mut phone = Device::enroll(
        &data,
        &admin.url,
        "kiem-tra-an",
        "doan-1",
        "inspector",
        &dir.path().join("phone"),
    )
    .await;
    phone.sync().await;
    phone
        .store
        .edit(&visit, |v| {
            let staff = kiemtra_core::StaffId::parse;
            for (id, mark) in [
                ("snv.s1", kiemtra_core::AttendanceMark::Present),
                ("snv.s2", kiemtra_core::AttendanceMark::Present),
                ("snv.s3", kiemtra_core::AttendanceMark::Present),
                (
                    "snv.s4",
                    kiemtra_core::AttendanceMark::Absent(kiemtra_core::AbsenceReason::BusinessTrip),
                ),
            ] {
                v.record_attendance(&staff(id).expect("id"), mark, "", None)?;
            }
            v.add_finding(kiemtra_core::NewFinding {
                category: "records".into(),
                severity: kiemtra_core::Severity::Minor,
                text: "<script>alert(1)</script> sổ theo dõi thiếu".into(),
                recommendation: String::new(),
                related_staff: vec![],
            })?;
            v.submit("")
        })
        .expect("record");
    phone.sync().await;
    let mut sup_phone = Device::enroll(
        &data,
        &admin.url,
        "truong-doan",
        "doan-1",
        "supervisor",
        &dir.path().join("sup-phone"),
    )
    .await;
    approve_all(&mut sup_phone).await;

    World {
        dir,
        server,
        admin,
        campaign,
        visit,
        phone,
        sup_phone,
    }
}

/// Adds to [`World`] a submitted visit of its team with one conflict: two
/// phones of the inspector marked the commune's chairman differently.
pub(crate) async fn conflicted(w: &mut World) -> kiemtra_core::VisitId {
    let visit = random_visit("ct-2015", "ubnd-an-hoa");
    let (s, v) = w
        .admin
        .act(vec![
            Act::UnitsImported {
                units: vec![kiemtra_admin::UnitRecord {
                    code: code("ubnd-an-hoa"),
                    name: "UBND phường An Hòa".into(),
                    kind: kiemtra_core::UnitKind::CommuneCommittee,
                    area: code("can-tho"),
                    valid_from: day("2004-01-01"),
                    valid_to: None,
                }],
            },
            Act::RosterPublished {
                unit: code("ubnd-an-hoa"),
                valid_from: day("2015-01-01"),
                staff: vec![
                    member("ah.s1", "Nguyễn Văn Một", "Chủ tịch"),
                    member("ah.s2", "Trần Thị Hai", "Công chức"),
                ],
            },
            Act::Assigned {
                campaign_id: w.campaign.clone(),
                team_id: tid("doan-1"),
                unit: code("ubnd-an-hoa"),
                planned_on: day("2015-09-02"),
                visit_id: visit.clone(),
            },
        ])
        .await;
    assert_eq!(s, 200, "{v}");
    let mut other = Device::enroll(
        &w.dir.path().join("server"),
        &w.admin.url,
        "kiem-tra-an",
        "doan-1",
        "inspector",
        &w.dir.path().join("phone-2"),
    )
    .await;
    w.phone.sync().await;
    other.sync().await;
    let staff = |id| kiemtra_core::StaffId::parse(id).expect("id");
    w.phone
        .store
        .edit(&visit, |v| {
            v.record_attendance(
                &staff("ah.s1"),
                kiemtra_core::AttendanceMark::Present,
                "",
                None,
            )?;
            v.record_attendance(
                &staff("ah.s2"),
                kiemtra_core::AttendanceMark::Present,
                "",
                None,
            )
        })
        .expect("record");
    other
        .store
        .edit(&visit, |v| {
            v.record_attendance(
                &staff("ah.s1"),
                kiemtra_core::AttendanceMark::Absent(kiemtra_core::AbsenceReason::Sick),
                "",
                None,
            )
        })
        .expect("record");
    w.phone.sync().await;
    other.sync().await;
    w.phone.sync().await;
    // A photo of the posted procedures, uploaded to the server.
    let check = kiemtra_core::CheckId::parse("tthc-posted").expect("check");
    w.phone
        .store
        .add_evidence(&visit, &check, &tiny_png())
        .expect("photo");
    w.phone
        .store
        .edit(&visit, |v| v.submit(""))
        .expect("submit");
    w.phone.sync().await;
    let report = w
        .phone
        .client
        .upload_evidence(&mut w.phone.store)
        .await
        .expect("upload");
    assert_eq!(report.uploaded, 1, "{report:?}");
    visit
}

/// A 2×2 PNG picture.
pub(crate) fn tiny_png() -> Vec<u8> {
    kiemtra_core::hex::decode(
        "89504e470d0a1a0a0000000d4948445200000002000000020802000000fdd49a73\
         0000001049444154789c63f8cfc000440c100a001fee03fd8b5f14d40000000049\
         454e44ae426082",
    )
    .expect("hex")
}

/// The value of `attr` on the first element after `marker` in `body`.
pub(crate) fn attr_after(body: &str, marker: &str, attr: &str) -> String {
    let from = body
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {body}"));
    let rest = &body[from..];
    let key = format!("{attr}=\"");
    let at = rest
        .find(&key)
        .unwrap_or_else(|| panic!("{attr} after {marker}"))
        + key.len();
    let end = rest[at..].find('"').expect("closing quote");
    rest[at..at + end]
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}

/// A browser's signing key, as WebCrypto would hold it.
struct BrowserKey(ring::signature::Ed25519KeyPair);

impl BrowserKey {
    fn new() -> Self {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("key");
        BrowserKey(ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key"))
    }
    fn public_hex(&self) -> String {
        use ring::signature::KeyPair;
        kiemtra_core::hex::encode(self.0.public_key().as_ref())
    }
    fn sign(&self, message: &[u8]) -> String {
        kiemtra_core::hex::encode(self.0.sign(message).as_ref())
    }
}

/// What the console's script does for one act: prepare, (for an approval,
/// sign the approval message and prepare again), check the change's
/// dependencies and hash, sign, commit. The commit's answer.
async fn signed_act(
    b: &mut Browser,
    key: &BrowserKey,
    fields: &[(&str, &str)],
) -> (u16, serde_json::Value) {
    let mut f: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let get = |f: &[(String, String)], k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (s, mut made) = post_json(b, "/console/acts/prepare", &f).await;
    if s != 200 {
        return (s, made);
    }
    let visit = get(&f, "visit");
    let heads: Vec<kiemtra_core::ChangeHash> = get(&f, "heads")
        .split(' ')
        .map(|h| h.parse().expect("a head"))
        .collect();
    if made["approval"] == true {
        let message = kiemtra_core::Approval::message(&visit, &heads);
        f.push(("approval_signature".into(), key.sign(&message)));
        let (s, again) = post_json(b, "/console/acts/prepare", &f).await;
        assert_eq!(s, 200, "{again}");
        made = again;
    }
    let change = kiemtra_core::hex::decode(made["change"].as_str().expect("change")).expect("hex");
    let sent = kiemtra_core::sent_changes(&change).expect("one change");
    assert_eq!(sent.len(), 1);
    let mut deps = sent[0].deps.clone();
    deps.sort();
    let mut want = heads.clone();
    want.sort();
    assert_eq!(
        deps, want,
        "the change builds on the version the page showed"
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, &change[8..]);
    assert_eq!(digest.as_ref(), sent[0].hash.0.as_slice());
    let message = kiemtra_sync_protocol::Signature::message(&visit, &[sent[0].hash.0]);
    f.push((
        "change".into(),
        made["change"].as_str().unwrap_or("").to_owned(),
    ));
    f.push(("signature".into(), key.sign(&message)));
    post_json(b, "/console/acts/commit", &f).await
}

fn borrow(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, x)| (k.as_str(), x.as_str())).collect()
}

async fn post_json(
    b: &mut Browser,
    path: &str,
    f: &[(String, String)],
) -> (u16, serde_json::Value) {
    let refs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let page = b.post(path, &refs).await;
    let json = serde_json::from_str(&page.body).unwrap_or_default();
    (page.status, json)
}

/// The browser's device id as the page lists it for `key`.
fn device_of(body: &str, key: &BrowserKey) -> String {
    let keys = attr_after(body, "<body", "data-keys");
    keys.split(',')
        .find(|e| e.ends_with(&key.public_hex()))
        .and_then(|e| e.split(' ').next())
        .expect("the browser's device among the user's")
        .to_owned()
}

#[tokio::test]
async fn a_supervisor_settles_and_approves_with_the_browsers_own_key() {
    let mut w = world().await;
    let visit = conflicted(&mut w).await;
    let key = BrowserKey::new();
    let mut b = invited_with_key(
        &w.admin.url,
        "AAAA-BBBB-CCCC",
        "truong-doan",
        "mật khẩu đủ dài 2015",
        &key.public_hex(),
    )
    .await;
    let page = b.get(&format!("/console/visits/{visit}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Xung đột cần trưởng đoàn xử lý"),
        "{}",
        page.body
    );
    // The photo's thumbnail, served to who may read the visit, as a picture.
    let photo = attr_after(&page.body, "td class=\"photos\"", "src");
    let r = reqwest::Client::new()
        .get(format!("{}{photo}", w.admin.url))
        .header("cookie", b.cookies())
        .send()
        .await
        .expect("photo");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/png");
    assert_eq!(
        r.bytes().await.expect("bytes").as_ref(),
        tiny_png().as_slice()
    );
    let stranger = Browser::new(&w.admin.url).get(&photo).await;
    assert_eq!(stranger.status, 303, "no photo without a session");
    assert_eq!(stranger.location, "/console/sign-in");
    let other = format!("/console/visits/{visit}/evidence/{}", "ab".repeat(32));
    assert_eq!(b.get(&other).await.status, 404);
    let device = device_of(&page.body, &key);
    let token = csrf(&page.body);
    let heads = attr_after(&page.body, "data-act=\"settle\"", "data-heads");
    let field = attr_after(&page.body, "data-act=\"settle\"", "value");
    assert_eq!(field, "attendance/ah.s1");
    let vid = visit.to_string();
    let settle = |candidate: &'static str, csrf: &str| {
        vec![
            ("csrf".to_owned(), csrf.to_owned()),
            ("visit".to_owned(), vid.clone()),
            ("act".to_owned(), "settle".to_owned()),
            ("heads".to_owned(), heads.clone()),
            ("device".to_owned(), device.clone()),
            ("field".to_owned(), field.clone()),
            ("candidate".to_owned(), candidate.to_owned()),
        ]
    };

    // Without the CSRF token, or with a forged signature: refused, and the
    // conflict is still there.
    let no_csrf = settle("1", "");
    let refused = b.post("/console/acts/prepare", &borrow(&no_csrf)).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    let fields = settle("1", &token);
    let prepared = b.post("/console/acts/prepare", &borrow(&fields)).await;
    assert_eq!(prepared.status, 200, "{}", prepared.body);
    let made: serde_json::Value = serde_json::from_str(&prepared.body).expect("json");
    let mut forged = fields.clone();
    forged.push((
        "change".into(),
        made["change"].as_str().expect("change").into(),
    ));
    forged.push((
        "signature".into(),
        BrowserKey::new().sign(b"kiemtra-changes-v1\0"),
    ));
    let refused = b.post("/console/acts/commit", &borrow(&forged)).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    assert!(refused.body.contains("signature"), "{}", refused.body);
    let page = b.get(&format!("/console/visits/{visit}")).await;
    assert!(page.body.contains("Xung đột cần trưởng đoàn xử lý"));

    // Settled with the browser's key: the conflict is gone.
    let (s, v) = signed_act(&mut b, &key, &borrow(&fields)).await;
    assert_eq!(s, 200, "{v}");
    let page = b.get(&format!("/console/visits/{visit}")).await;
    assert!(
        !page.body.contains("Xung đột cần trưởng đoàn xử lý"),
        "{}",
        page.body
    );
    assert!(page.body.contains("data-act=\"approve\""), "{}", page.body);

    // Approved, signed twice by the browser: the approval record and the change.
    let heads = attr_after(&page.body, "data-act=\"approve\"", "data-heads");
    let approve = vec![
        ("csrf".to_owned(), token.clone()),
        ("visit".to_owned(), vid.clone()),
        ("act".to_owned(), "approve".to_owned()),
        ("heads".to_owned(), heads),
        ("device".to_owned(), device.clone()),
        ("note".to_owned(), "Đồng ý".to_owned()),
    ];
    let (s, v) = signed_act(&mut b, &key, &borrow(&approve)).await;
    assert_eq!(s, 200, "{v}");
    let page = b.get(&format!("/console/visits/{visit}")).await;
    assert!(page.body.contains("Đã phê duyệt"), "{}", page.body);
    assert!(!page.body.contains("data-act=\"approve\""));

    // The server verifies both acts as signed by the browser's device, and
    // every signature it keeps for them is the browser's.
    let verify = b.get(&format!("/console/visits/{visit}/verify")).await;
    assert_eq!(verify.status, 200);
    assert!(verify.body.contains("Hợp lệ"), "{}", verify.body);
    let http = reqwest::Client::new();
    let token = &w.sup_phone.client.credentials().token;
    let receipts: serde_json::Value = http
        .get(format!("{}/v1/visits/{visit}/receipts", w.admin.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("receipts")
        .json()
        .await
        .expect("json");
    let by_browser = receipts
        .as_array()
        .expect("list")
        .iter()
        .filter(|r| r["signer"] == device.as_str())
        .count();
    assert_eq!(by_browser, 2, "{receipts}");
    let report: serde_json::Value = http
        .get(format!("{}/v1/visits/{visit}/verify", w.admin.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("verify")
        .json()
        .await
        .expect("json");
    assert_eq!(report["ok"], true, "{report}");
    assert!(report["approvals_checked"].as_u64() >= Some(1), "{report}");

    // A page drawn before the approval is stale: nothing is prepared on it.
    let again = b
        .post(
            "/console/acts/prepare",
            &borrow(&settle("0", &csrf(&page.body))),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    w.server.terminate();
}

/// Reads a streamed answer until `want` appears, for up to 15 s.
async fn stream_until(r: &mut reqwest::Response, want: &str) -> String {
    let mut seen = String::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        match tokio::time::timeout(std::time::Duration::from_secs(5), r.chunk()).await {
            Ok(Ok(Some(bytes))) => {
                seen.push_str(&String::from_utf8_lossy(&bytes));
                if seen.contains(want) {
                    return seen;
                }
            }
            Ok(Ok(None)) | Ok(Err(_)) => break,
            Err(_) => {}
        }
    }
    panic!("no {want:?} in {seen:?}");
}

#[tokio::test]
async fn the_overview_streams_an_update_when_a_visit_of_the_campaign_is_stored() {
    let mut w = world().await;
    let visit = conflicted(&mut w).await;
    let key = BrowserKey::new();
    let mut b = invited_with_key(
        &w.admin.url,
        "AAAA-BBBB-CCCC",
        "truong-doan",
        "mật khẩu đủ dài 2015",
        &key.public_hex(),
    )
    .await;
    let http = reqwest::Client::new();
    // No session, or a campaign that does not exist: no stream.
    let r = http
        .get(format!("{}/console/campaigns/ct-2015/events", w.admin.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{}/console/campaigns/no-such/events", w.admin.url))
        .header("cookie", b.cookies())
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 404);
    let mut events = http
        .get(format!("{}/console/campaigns/ct-2015/events", w.admin.url))
        .header("cookie", b.cookies())
        .send()
        .await
        .expect("get");
    assert_eq!(events.status(), 200);
    assert_eq!(
        events.headers()["content-type"].to_str().expect("type"),
        "text/event-stream"
    );
    // Nothing new: a comment each tick, no update.
    let quiet = stream_until(&mut events, ": nothing new").await;
    assert!(!quiet.contains("event: update"), "{quiet}");
    // A signed act stores a change of the campaign's visit: an update.
    let page = b.get(&format!("/console/visits/{visit}")).await;
    let fields = vec![
        ("csrf".to_owned(), csrf(&page.body)),
        ("visit".to_owned(), visit.to_string()),
        ("act".to_owned(), "settle".to_owned()),
        (
            "heads".to_owned(),
            attr_after(&page.body, "data-act=\"settle\"", "data-heads"),
        ),
        ("device".to_owned(), device_of(&page.body, &key)),
        (
            "field".to_owned(),
            attr_after(&page.body, "data-act=\"settle\"", "value"),
        ),
        ("candidate".to_owned(), "0".to_owned()),
    ];
    let (s, v) = signed_act(&mut b, &key, &borrow(&fields)).await;
    assert_eq!(s, 200, "{v}");
    stream_until(&mut events, "event: update").await;
    drop(events);
    w.server.terminate();
}

/// Signs the entries of `made` one at a time, asking for each next one as
/// the console's script does.
async fn sign_entries(
    b: &mut Browser,
    key: &BrowserKey,
    f: &[(String, String)],
    made: &serde_json::Value,
) -> Vec<serde_json::Value> {
    let get = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let acts = made["acts"].as_array().expect("acts").len();
    let mut signed: Vec<serde_json::Value> = Vec::new();
    let mut next = made.clone();
    while signed.len() < acts {
        let bytes = kiemtra_core::hex::decode(next["signing"].as_str().expect("hex")).expect("hex");
        assert!(bytes.starts_with(b"kiemtra-admin-log-v1\n"));
        let mut e = next["entry"].clone();
        e["signature"] = key.sign(&bytes).into();
        signed.push(e);
        if signed.len() < acts {
            let (s, v) = post_json(
                b,
                "/console/admin/w/next",
                &[
                    ("csrf".into(), get("csrf")),
                    ("device".into(), get("device")),
                    ("acts".into(), made["acts"].to_string()),
                    (
                        "signed".into(),
                        serde_json::Value::Array(signed.clone()).to_string(),
                    ),
                ],
            )
            .await;
            assert_eq!(s, 200, "{v}");
            next = v;
        }
    }
    signed
}

/// Prepares entries for an administration form and signs them as the
/// console's script does: the answer of the commit.
async fn admin_act(
    b: &mut Browser,
    key: &BrowserKey,
    kind: &str,
    fields: &[(&str, &str)],
) -> (u16, serde_json::Value, serde_json::Value) {
    let f: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let (s, made) = post_json(b, &format!("/console/admin/w/prepare/{kind}"), &f).await;
    if s != 200 {
        return (s, made, serde_json::Value::Null);
    }
    let entries = sign_entries(b, key, &f, &made).await;
    let get = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let commit = vec![
        ("csrf".to_owned(), get("csrf")),
        ("device".to_owned(), get("device")),
        (
            "entries".to_owned(),
            serde_json::Value::Array(entries).to_string(),
        ),
    ];
    let (s, done) = post_json(b, "/console/admin/w/commit", &commit).await;
    (s, done, made)
}

#[tokio::test]
async fn administration_writes_are_signed_by_the_administrators_browser_and_bad_ones_change_nothing()
 {
    let w = world().await;
    let key = BrowserKey::new();
    let mut b = invited_with_key(
        &w.admin.url,
        "KKKK-MMMM-NNNN",
        "quan-tri-2",
        "mật khẩu đủ dài 2015",
        &key.public_hex(),
    )
    .await;
    let page = b.get("/console/admin/users").await;
    assert_eq!(page.status, 200, "{}", page.body);
    let token = csrf(&page.body);
    let device = device_of(&page.body, &key);
    let seq = |b: &str| -> u64 {
        let at = b
            .find("Số mục</span>")
            .or_else(|| b.find("Số mục"))
            .expect("entries");
        b[at..]
            .split(|c: char| !c.is_ascii_digit())
            .find(|s| !s.is_empty())
            .expect("a number")
            .parse()
            .expect("seq")
    };
    let log = b.get("/console/admin/log").await;
    let before = seq(&log.body);

    // An invitation: the user, their team and a code, signed by the browser.
    let invite = [
        ("csrf", token.as_str()),
        ("device", device.as_str()),
        ("user_id", "truong-doan-2"),
        ("full_name", "Phạm Thị Lãnh Đạo"),
        ("role", "supervisor"),
        ("team_id", "doan-1"),
    ];
    let (s, done, made) = admin_act(&mut b, &key, "invite", &invite).await;
    assert_eq!(s, 200, "{done} {made}");
    let code = made["code"].as_str().expect("a code").to_owned();
    assert_eq!(done["seq"].as_u64(), Some(before + 3), "{done}");
    // The new supervisor sets a password with it.
    let mut newcomer = invited(&w.admin.url, &code, "truong-doan-2", "mật khẩu đủ dài 2016").await;
    let page = newcomer.get("/console/campaigns").await;
    assert!(page.body.contains("Phạm Thị Lãnh Đạo"), "{}", page.body);

    let log = b.get("/console/admin/log").await;
    let after = seq(&log.body);
    assert!(log.body.contains("Chuỗi băm liền mạch"), "{}", log.body);

    // Refused, each changing nothing: no CSRF token, an unknown kind, bad
    // fields, entries signed by another key, entries naming another device,
    // not entries at all, a stale head, a bad import row, a non-administrator.
    let mut no_csrf = invite.to_vec();
    no_csrf[0].1 = "";
    let (s, v, _) = admin_act(&mut b, &key, "invite", &no_csrf).await;
    assert_eq!(s, 403, "{v}");
    let (s, v, _) = admin_act(&mut b, &key, "drop-tables", &invite).await;
    assert_eq!(s, 400, "{v}");
    let mut bad = invite.to_vec();
    bad[2].1 = "Tên Có Dấu";
    let (s, v, _) = admin_act(&mut b, &key, "invite", &bad).await;
    assert_eq!(s, 400, "{v}");
    let (s, v, _) = admin_act(
        &mut b,
        &BrowserKey::new(),
        "team",
        &[
            ("csrf", token.as_str()),
            ("device", device.as_str()),
            ("team_id", "doan-2"),
            ("name", "Đoàn 2"),
        ],
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let f: Vec<(String, String)> = vec![
        ("csrf".into(), token.clone()),
        ("device".into(), device.clone()),
        ("team_id".into(), "doan-2".into()),
        ("name".into(), "Đoàn 2".into()),
    ];
    let (s, made) = post_json(&mut b, "/console/admin/w/prepare/team", &f).await;
    assert_eq!(s, 200, "{made}");
    let mut entries = serde_json::Value::Array(vec![made["entry"].clone()]);
    entries[0]["by"]["device_id"] = w.sup_phone.client.credentials().device_id.clone().into();
    let (s, v) = post_json(
        &mut b,
        "/console/admin/w/commit",
        &[
            ("csrf".into(), token.clone()),
            ("device".into(), device.clone()),
            ("entries".into(), entries.to_string()),
        ],
    )
    .await;
    assert_eq!(s, 403, "{v}");
    let (s, v) = post_json(
        &mut b,
        "/console/admin/w/commit",
        &[
            ("csrf".into(), token.clone()),
            ("device".into(), device.clone()),
            ("entries".into(), "{\"not\": \"entries\"}".into()),
        ],
    )
    .await;
    assert_eq!(s, 400, "{v}");
    // Signed after a head that has moved on since: 409.
    let (s, stale) = post_json(&mut b, "/console/admin/w/prepare/team", &f).await;
    assert_eq!(s, 200);
    let (s, v, _) = admin_act(&mut b, &key, "team", &borrow(&f)).await;
    assert_eq!(s, 200, "{v}");
    let entries = sign_entries(&mut b, &key, &f, &stale).await;
    let (s, v) = post_json(
        &mut b,
        "/console/admin/w/commit",
        &[
            ("csrf".into(), token.clone()),
            ("device".into(), device.clone()),
            (
                "entries".into(),
                serde_json::Value::Array(entries).to_string(),
            ),
        ],
    )
    .await;
    assert_eq!(s, 409, "{v}");
    // A roster with an unknown unit: every bad row named, nothing imported.
    let r = reqwest::Client::new()
        .post(format!(
            "{}/console/admin/w/import/staff?csrf={token}&device={device}&valid_from=01/01/2016",
            w.admin.url
        ))
        .header("cookie", b.cookies())
        .body("unit_code,staff_id,full_name,position\nno-such-unit,x.1,Nguyễn Văn A,Chuyên viên\n")
        .send()
        .await
        .expect("import");
    assert_eq!(r.status(), 422);
    let text = r.text().await.expect("text");
    assert!(
        text.contains("no-such-unit") || text.contains("line"),
        "{text}"
    );
    // An inspector's session: no administration, read or write.
    let mut inspector = invited(
        &w.admin.url,
        "DDDD-EEEE-FFFF",
        "kiem-tra-an",
        "mật khẩu đủ dài 2015",
    )
    .await;
    let page = inspector.get("/console/admin/users").await;
    assert_eq!(page.status, 403);
    let itoken = csrf(&inspector.get("/console/campaigns").await.body);
    let (s, v) = post_json(
        &mut inspector,
        "/console/admin/w/prepare/team",
        &[
            ("csrf".into(), itoken),
            ("device".into(), device.clone()),
            ("team_id".into(), "doan-3".into()),
            ("name".into(), "Đoàn 3".into()),
        ],
    )
    .await;
    assert_eq!(s, 403, "{v}");
    // A random draw: the commitment first (the seed stays with the
    // browser), a reveal with another seed refused, then the reveal.
    let seed = [7u8; 32];
    let commitment = kiemtra_admin::draw::commitment_of(&seed);
    let draw = [
        ("csrf", token.as_str()),
        ("device", device.as_str()),
        ("campaign_id", "ct-2015"),
        ("commitment", commitment.as_str()),
        ("candidates", "so-noi-vu\nso-noi-vu"),
        ("count", "1"),
    ];
    let (s, v, _) = admin_act(&mut b, &key, "draw-commit", &draw).await;
    assert_eq!(s, 200, "{v}");
    let wrong = kiemtra_core::hex::encode(&[8u8; 32]);
    let (s, v, _) = admin_act(
        &mut b,
        &key,
        "draw-reveal",
        &[
            ("csrf", token.as_str()),
            ("device", device.as_str()),
            ("campaign_id", "ct-2015"),
            ("seed", wrong.as_str()),
        ],
    )
    .await;
    assert_eq!(s, 400, "{v}");
    let right = kiemtra_core::hex::encode(&seed);
    let (s, v, _) = admin_act(
        &mut b,
        &key,
        "draw-reveal",
        &[
            ("csrf", token.as_str()),
            ("device", device.as_str()),
            ("campaign_id", "ct-2015"),
            ("seed", right.as_str()),
        ],
    )
    .await;
    assert_eq!(s, 200, "{v}");
    let page = b.get("/console/admin/campaigns").await;
    assert!(
        page.body.contains("đã công bố, chọn: so-noi-vu"),
        "{}",
        page.body
    );

    // Only the good team and the draw were added since the invitation.
    let log = b.get("/console/admin/log").await;
    assert_eq!(seq(&log.body), after + 3, "{}", log.body);
    w.server.terminate();
}

/// Signs in with a password: the status of the answer.
async fn sign_in(url: &str, user: &str, password: &str) -> u16 {
    let mut b = Browser::new(url);
    let form = b.get("/console/sign-in").await;
    let token = csrf(&form.body);
    b.post(
        "/console/sign-in",
        &[
            ("csrf", token.as_str()),
            ("user", user),
            ("password", password),
        ],
    )
    .await
    .status
}

#[tokio::test]
async fn a_code_resets_a_password_only_while_enrolling_a_browser_key_and_only_once() {
    let w = world().await;
    let url = w.admin.url.clone();
    invited(&url, "AAAA-BBBB-CCCC", "truong-doan", "mật khẩu cũ đủ dài").await;
    let again = |key: String| {
        let url = url.clone();
        async move {
            let mut b = Browser::new(&url);
            let form = b.get("/console/invite").await;
            let token = csrf(&form.body);
            b.post(
                "/console/invite",
                &[
                    ("csrf", token.as_str()),
                    ("code", "AAAA-BBBB-CCCC"),
                    ("user", "truong-doan"),
                    ("password", "mật khẩu mới đủ dài"),
                    ("again", "mật khẩu mới đủ dài"),
                    ("public_key", key.as_str()),
                ],
            )
            .await
            .status
        }
    };
    // Without a key, a code never sets an existing account's password.
    assert_eq!(again(String::new()).await, 422);
    assert_eq!(
        sign_in(&url, "truong-doan", "mật khẩu mới đủ dài").await,
        401
    );
    // With this browser's key enrolled by it, the code resets it once.
    assert_eq!(again(BrowserKey::new().public_hex()).await, 303);
    assert_eq!(
        sign_in(&url, "truong-doan", "mật khẩu cũ đủ dài").await,
        401
    );
    assert_eq!(
        sign_in(&url, "truong-doan", "mật khẩu mới đủ dài").await,
        303
    );
    assert_eq!(again(BrowserKey::new().public_hex()).await, 422);
    w.server.terminate();
}

#[tokio::test]
async fn acts_are_refused_to_other_roles_foreign_devices_and_bad_bytes() {
    let mut w = world().await;
    let visit = conflicted(&mut w).await;
    let vid = visit.to_string();
    // An inspector's session, with a key of its own enrolled: never signs acts.
    let inspector_key = BrowserKey::new();
    let mut inspector = invited_with_key(
        &w.admin.url,
        "DDDD-EEEE-FFFF",
        "kiem-tra-an",
        "mật khẩu đủ dài 2015",
        &inspector_key.public_hex(),
    )
    .await;
    let page = inspector.get(&format!("/console/visits/{visit}")).await;
    assert_eq!(page.status, 200);
    assert!(
        !page.body.contains("class=\"signed"),
        "an inspector sees no act"
    );
    let device = device_of(&page.body, &inspector_key);
    let token = csrf(&page.body);
    let r = inspector
        .post(
            "/console/acts/prepare",
            &[
                ("csrf", token.as_str()),
                ("visit", vid.as_str()),
                ("act", "return"),
                ("heads", "00"),
                ("device", device.as_str()),
                ("note", "x"),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // A supervisor whose browser holds no enrolled key, naming another
    // user's device: refused.
    let mut sup = invited(
        &w.admin.url,
        "AAAA-BBBB-CCCC",
        "truong-doan",
        "mật khẩu đủ dài 2015",
    )
    .await;
    let page = sup.get(&format!("/console/visits/{visit}")).await;
    let token = csrf(&page.body);
    let heads = attr_after(&page.body, "data-act=\"settle\"", "data-heads");
    let field = attr_after(&page.body, "data-act=\"settle\"", "value");
    let base = |device: &str| {
        vec![
            ("csrf".to_owned(), token.clone()),
            ("visit".to_owned(), vid.clone()),
            ("act".to_owned(), "settle".to_owned()),
            ("heads".to_owned(), heads.clone()),
            ("device".to_owned(), device.to_owned()),
            ("field".to_owned(), field.clone()),
            ("candidate".to_owned(), "0".to_owned()),
        ]
    };
    let r = sup
        .post("/console/acts/prepare", &borrow(&base(&device)))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // The supervisor's phone is their device: the server prepares, but the
    // browser holds no key for it, and a change signed by another key or
    // bytes that are not one change are refused.
    let phone = w.sup_phone.client.credentials().device_id.clone();
    let r = sup
        .post("/console/acts/prepare", &borrow(&base(&phone)))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let made: serde_json::Value = serde_json::from_str(&r.body).expect("json");
    let change = made["change"].as_str().expect("change").to_owned();
    for (bytes, signature, status) in [
        (change.clone(), BrowserKey::new().sign(b"x"), 422),
        ("zz".to_owned(), BrowserKey::new().sign(b"x"), 400),
        ("00".repeat(40), BrowserKey::new().sign(b"x"), 400),
        (
            format!("{change}{change}"),
            BrowserKey::new().sign(b"x"),
            400,
        ),
        (change.clone(), "00".to_owned(), 400),
        ("ab".repeat(70_000), BrowserKey::new().sign(b"x"), 400),
    ] {
        let mut f = base(&phone);
        f.push(("change".into(), bytes));
        f.push(("signature".into(), signature));
        let r = sup.post("/console/acts/commit", &borrow(&f)).await;
        assert_eq!(r.status, status, "{}", r.body);
    }
    // Unknown visits, stale or malformed heads, unknown acts.
    let mut f = base(&phone);
    f[1].1 = "v-ffffffffffffffffffffffffffffffff".into();
    let r = sup.post("/console/acts/prepare", &borrow(&f)).await;
    assert_eq!(r.status, 404, "{}", r.body);
    let mut f = base(&phone);
    f[3].1 = "ab".repeat(32);
    let r = sup.post("/console/acts/prepare", &borrow(&f)).await;
    assert_eq!(r.status, 409, "{}", r.body);
    f[3].1 = "nonsense".into();
    let r = sup.post("/console/acts/prepare", &borrow(&f)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let mut f = base(&phone);
    f[2].1 = "delete".into();
    let r = sup.post("/console/acts/prepare", &borrow(&f)).await;
    assert_eq!(r.status, 400, "{}", r.body);
    // Bodies: none is read without a session, none past its bound.
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/console/acts/commit", w.admin.url))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 1 << 20])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{}/console/acts/commit", w.admin.url))
        .header("cookie", sup.cookies())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'a'; 300 * 1024])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 413);
    let r = http
        .post(format!("{}/console/acts/prepare", w.admin.url))
        .header("cookie", sup.cookies())
        .header("content-type", "application/x-www-form-urlencoded")
        .body("csrf=%ZZ&&&=")
        .send()
        .await
        .expect("post");
    assert!(matches!(r.status().as_u16(), 400 | 403), "{}", r.status());
    // Nothing of it was stored: the conflict is still there.
    let page = sup.get(&format!("/console/visits/{visit}")).await;
    assert!(page.body.contains("Xung đột cần trưởng đoàn xử lý"));
    w.server.terminate();
}

#[tokio::test]
async fn the_console_signs_users_in_shows_their_scope_and_refuses_forged_forms() {
    let World {
        dir: _dir,
        server,
        admin,
        campaign,
        visit,
        mut phone,
        mut sup_phone,
    } = world().await;
    // Before signing in: sent to the sign-in page; a sign-in form posted
    // without its token is refused.
    let mut stranger = Browser::new(&admin.url);
    let r = stranger.get("/console/campaigns").await;
    assert_eq!((r.status, r.location.as_str()), (303, "/console/sign-in"));
    let r = stranger
        .post(
            "/console/sign-in",
            &[("user", "truong-doan"), ("password", "x"), ("csrf", "")],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // The supervisor sets a password with the code and is signed in.
    let password = "mật khẩu đủ dài 2015";
    let mut sup = invited(&admin.url, "aaaa bbbb cccc", "truong-doan", password).await;
    let session = sup
        .set_cookie
        .iter()
        .find(|c| c.starts_with("kt_session="))
        .expect("a session cookie")
        .clone();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(session.contains(flag), "{session}");
    }
    assert!(!session.contains("Secure"), "no TLS here: {session}");
    // The code sets a first password only.
    let mut again = Browser::new(&admin.url);
    let form = again.get("/console/invite").await;
    let token = csrf(&form.body);
    let r = again
        .post(
            "/console/invite",
            &[
                ("csrf", token.as_str()),
                ("code", "AAAA-BBBB-CCCC"),
                ("user", "truong-doan"),
                ("password", "một mật khẩu khác"),
                ("again", "một mật khẩu khác"),
            ],
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.body);

    let list = sup.get("/console/campaigns").await;
    assert_eq!(list.status, 200);
    assert!(
        list.body
            .contains("Kiểm tra &lt;b&gt;kỷ cương&lt;/b&gt; năm 2015"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("<b>kỷ cương"), "markup shown as text");
    let overview = sup.get("/console/campaigns/ct-2015").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    for expected in [
        "Tổng số CBCCVC trong biên chế",
        "75,00%",
        "25,00%",
        "<svg",
        "Đoàn kiểm tra số 1",
    ] {
        assert!(
            overview.body.contains(expected),
            "{expected:?} in {}",
            overview.body
        );
    }
    // One filter away: a range without the visit's day has no results.
    let september = sup
        .get("/console/campaigns/ct-2015?from=01%2F09%2F2015&to=30%2F09%2F2015")
        .await;
    assert_eq!(september.status, 200);
    assert!(!september.body.contains("75,00%"), "{}", september.body);
    let bad = sup
        .get("/console/campaigns/ct-2015?from=31%2F02%2F2015")
        .await;
    assert_eq!(bad.status, 400);
    let report = sup.get("/console/campaigns/ct-2015/report").await;
    assert_eq!(report.status, 200);
    assert!(
        report
            .body
            .contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{}",
        report.body
    );
    assert!(!report.body.contains("<script>"), "never a script");
    let csv = sup
        .get("/console/campaigns/ct-2015/report?format=csv")
        .await;
    assert_eq!(csv.status, 200);
    assert!(csv.body.contains("có mặt,3,\"75,00%\""), "{}", csv.body);
    // The visit: roster with attendance, the finding as text.
    let page = sup.get(&format!("/console/visits/{visit}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for expected in [
        "Ngô Thị Nga",
        "Phạm Văn Năm",
        "vắng (đi công tác)",
        "&lt;script&gt;",
        "Đã phê duyệt",
    ] {
        assert!(
            page.body.contains(expected),
            "{expected:?} in {}",
            page.body
        );
    }
    assert!(!page.body.contains("<script>"));
    // A conflict: the inspector and the supervisor mark one person
    // differently on a visit of their team, each offline.
    let mut other = new_visit("ct-2015.so-noi-vu.lan-2", "doan-1", 2);
    other.campaign = campaign.clone();
    let other = phone
        .store
        .create_visit(other, &template())
        .expect("visit")
        .id;
    phone.sync().await;
    sup_phone.sync().await;
    for (device, mark) in [
        (&mut phone, kiemtra_core::AttendanceMark::Present),
        (
            &mut sup_phone,
            kiemtra_core::AttendanceMark::Absent(kiemtra_core::AbsenceReason::Sick),
        ),
    ] {
        device
            .store
            .edit(&other, |v| v.record_attendance(&staff(0), mark, "", None))
            .expect("mark");
    }
    phone.sync().await;
    sup_phone.sync().await;
    let overview = sup.get("/console/campaigns/ct-2015").await;
    assert!(
        overview.body.contains(&format!("/console/visits/{other}")),
        "{}",
        overview.body
    );
    let page = sup.get(&format!("/console/visits/{other}")).await;
    assert_eq!(page.status, 200);
    for expected in [
        "Xung đột cần trưởng đoàn xử lý",
        "kết quả ghi nhận",
        "kiem-tra-an",
        "truong-doan",
        "có mặt",
        "nghỉ ốm",
    ] {
        assert!(
            page.body.contains(expected),
            "{expected:?} in {}",
            page.body
        );
    }
    assert_eq!(sup.get("/console/visits/v-khong-co").await.status, 404);

    // English, one click away.
    let r = sup.get("/console/lang/en").await;
    assert_eq!(r.status, 303);
    let en = sup.get("/console/campaigns/ct-2015").await;
    assert!(
        en.body.contains("Staff on payroll") && en.body.contains("75.00%"),
        "{}",
        en.body
    );

    // Signing out needs the session's token; then the session is gone.
    let r = sup
        .post("/console/sign-out", &[("csrf", &"0".repeat(64))])
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(
        sup.get("/console/campaigns").await.status,
        200,
        "still signed in"
    );
    let token = csrf(&sup.get("/console/campaigns").await.body);
    let kept = sup.cookies();
    let r = sup.post("/console/sign-out", &[("csrf", &token)]).await;
    assert_eq!((r.status, r.location.as_str()), (303, "/console/sign-in"));
    let mut replay = Browser::new(&admin.url);
    for pair in kept.split("; ") {
        if let Some((k, v)) = pair.split_once('=') {
            replay.jar.insert(k.into(), v.into());
        }
    }
    assert_eq!(
        replay.get("/console/campaigns").await.status,
        303,
        "the old cookie is dead"
    );

    // Wrong passwords are slowed, then lock the account for a while, even
    // against the right one.
    let mut guess = Browser::new(&admin.url);
    for i in 0..5 {
        let form = guess.get("/console/sign-in").await;
        let token = csrf(&form.body);
        let started = std::time::Instant::now();
        let r = guess
            .post(
                "/console/sign-in",
                &[
                    ("csrf", token.as_str()),
                    ("user", "truong-doan"),
                    ("password", "sai mật khẩu"),
                ],
            )
            .await;
        assert_eq!(r.status, 401, "attempt {i}");
        assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    }
    let form = guess.get("/console/sign-in").await;
    let token = csrf(&form.body);
    let r = guess
        .post(
            "/console/sign-in",
            &[
                ("csrf", token.as_str()),
                ("user", "truong-doan"),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(r.status, 429, "{}", r.body);

    // The inspector sees their team's campaign; the administrator its plan
    // but no visit contents; nobody's console shows what their role may not.
    let mut insp = invited(
        &admin.url,
        "DDDD-EEEE-FFFF",
        "kiem-tra-an",
        "thanh tra viên 2015",
    )
    .await;
    let page = insp.get("/console/campaigns/ct-2015").await;
    assert!(page.body.contains("75,00%"), "{}", page.body);
    assert!(
        !page
            .body
            .contains("<form method=\"post\" action=\"/console/campaigns"),
        "read only"
    );
    let mut admin_page = invited(
        &admin.url,
        "KKKK-MMMM-NNNN",
        "quan-tri-2",
        "quản trị viên 2015",
    )
    .await;
    let page = admin_page.get("/console/campaigns/ct-2015").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("75,00%"), "{}", page.body);
    assert!(
        page.body
            .contains("Quản trị viên không xem nội dung biên bản")
    );
    let r = admin_page.get("/console/campaigns/ct-2015/report").await;
    assert_eq!(r.status, 403);
    let r = admin_page.get(&format!("/console/visits/{visit}")).await;
    assert_eq!(r.status, 404, "administrators see no visit contents");
    let mut aud = invited(
        &admin.url,
        "GGGG-HHHH-JJJJ",
        "kiem-toan",
        "kiểm toán viên 2015",
    )
    .await;
    let page = aud
        .get("/console/campaigns/ct-2015/report?format=json")
        .await;
    assert_eq!(page.status, 200);
    let json: serde_json::Value = serde_json::from_str(&page.body).expect("json");
    assert_eq!(json["tally"]["payroll"], 4);
    server.terminate();
}
