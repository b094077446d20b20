//! The console's administration pages: users and invitations, teams, units
//! and their imports, campaigns and assignments, templates, devices and
//! the administration log. Administrators only; visit contents never.
//!
//! Every write is an entry of the signed administration log, signed by the
//! administrator's browser key as the desk signs it: a form is turned into
//! acts and unsigned entries by the server (`prepare`, `import`), the
//! browser signs each entry's signing bytes, and `commit` appends them
//! through the same checks as `POST /v1/admin/log`. Nothing is kept
//! between the two requests.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use kiemtra_admin::log::{Author, Entry, sha256_hex, timestamp};
use kiemtra_admin::{Act, Directory};
use kiemtra_core::{CampaignId, Lang, Role, TeamId, TemplateId, UnitCode, UserId, VisitId};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::json;
use std::collections::HashMap;

use crate::console::{
    Viewer, date, json_refusal, lang_of, message_page, page, require_viewer, session_form, t,
    token_matches, viewer, with_store,
};
use crate::problem::Problem;
use crate::startup::AppState;
use crate::storage::ServerStore;

/// How long an invitation code made in the console stays valid.
const INVITATION_HOURS: i64 = 72;
/// Log entries listed on the log page, newest first.
const LOG_SHOWN: usize = 200;

const SECTIONS: [(&str, &str, &str); 6] = [
    ("users", "Người dùng và đoàn", "Users and teams"),
    ("units", "Đơn vị và danh sách", "Units and rosters"),
    ("campaigns", "Đợt kiểm tra", "Campaigns"),
    ("templates", "Mẫu kiểm tra", "Templates"),
    ("devices", "Thiết bị", "Devices"),
    ("log", "Sổ quản trị", "Administration log"),
];

fn forbidden(lang: Lang) -> HttpResponse {
    crate::console::not_allowed(
        lang,
        "Trang quản trị chỉ dành cho quản trị viên.",
        "Administration is for administrators only.",
    )
}

fn nav(lang: Lang, current: &str) -> Markup {
    html! {
        nav.sections aria-label=(t(lang, "Mục quản trị", "Administration sections")) {
            @for (key, vi, en) in SECTIONS {
                @if key == current {
                    strong aria-current="page" { (t(lang, vi, en)) }
                } @else {
                    a href={ "/console/admin/" (key) } { (t(lang, vi, en)) }
                }
                " "
            }
        }
    }
}

/// A form whose submission the script turns into signed log entries.
fn act_form(
    lang: Lang,
    kind: &str,
    button: (&'static str, &'static str),
    fields: Markup,
) -> Markup {
    html! {
        form.admin-act data-kind=(kind) {
            (fields)
            button type="submit" { (t(lang, button.0, button.1)) }
        }
    }
}

fn field(id: &str, label: &str, kind: &str, required: bool) -> Markup {
    html! {
        label for=(id) { (label) }
        input id=(id) name=(id) type=(kind) required[required] maxlength="300";
    }
}

pub async fn root() -> HttpResponse {
    crate::console::redirect("/console/admin/users")
}

/// `GET /console/admin/{section}`.
pub async fn section(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    if v.role != Role::Administrator {
        return forbidden(lang);
    }
    let section = path.into_inner();
    if !SECTIONS.iter().any(|(k, _, _)| *k == section) {
        return message_page(
            StatusCode::NOT_FOUND,
            lang,
            t(lang, "Không tìm thấy", "Not found"),
            t(lang, "Không có mục quản trị này.", "No such section."),
        );
    }
    let want_log = section == "log" || section == "devices";
    let found = with_store(&state, move |s| {
        let d = crate::admin::directory_cached(s)?;
        let devices = s.devices().map_err(|e| Problem::internal(&e))?;
        let log = if want_log {
            crate::admin::read_log(s).map_err(|e| Problem::internal(&e))?
        } else {
            Vec::new()
        };
        Ok((d, devices, log))
    })
    .await;
    let (d, devices, log) = match found {
        Ok(x) => x,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let content = match section.as_str() {
        "users" => users(lang, &d),
        "units" => units(lang, &d),
        "campaigns" => campaigns(lang, &d),
        "templates" => templates(lang, &d),
        "devices" => devices_page(lang, &d, &devices),
        _ => log_page(lang, &d, &log),
    };
    let title = SECTIONS
        .iter()
        .find(|(k, _, _)| *k == section)
        .map(|(_, vi, en)| t(lang, vi, en))
        .unwrap_or("");
    let body = html! {
        h1 { (t(lang, "Quản trị", "Administration")) " · " (title) }
        (nav(lang, &section))
        noscript { p.error { (t(lang, "Việc ký các thay đổi quản trị cần JavaScript.", "Signing administrative changes needs JavaScript.")) } }
        (content)
    };
    page(lang, title, Some((&v, &v.csrf)), body)
}

fn role_options(lang: Lang) -> Markup {
    html! {
        @for r in [Role::Inspector, Role::Supervisor, Role::Auditor, Role::Administrator] {
            option value=(r.key()) { (r.label(lang)) }
        }
    }
}

fn users(lang: Lang, d: &Directory) -> Markup {
    html! {
        h2 { (t(lang, "Người dùng", "Users")) " (" (d.users.len()) ")" }
        table {
            thead { tr {
                th scope="col" { (t(lang, "Tên đăng nhập", "User id")) }
                th scope="col" { (t(lang, "Họ và tên", "Full name")) }
                th scope="col" { (t(lang, "Vai trò", "Role")) }
                th scope="col" { (t(lang, "Đoàn", "Teams")) }
                th scope="col" { (t(lang, "Trạng thái", "State")) }
            } }
            tbody {
                @for u in d.users.values() {
                    tr {
                        td { (u.user_id) }
                        td { (u.full_name) }
                        td { (u.role.label(lang)) }
                        td { (d.teams.values().filter(|t| t.members.contains(&u.user_id) || t.leaders.contains(&u.user_id)).map(|t| t.team_id.to_string()).collect::<Vec<_>>().join(", ")) }
                        td {
                            (if u.active { t(lang, "đang hoạt động", "active") } else { t(lang, "đã khóa", "disabled") })
                            (act_form(lang, "user-active",
                                if u.active { ("Khóa", "Disable") } else { ("Mở khóa", "Enable") },
                                html! {
                                    input type="hidden" name="user_id" value=(u.user_id);
                                    input type="hidden" name="active" value=(if u.active { "no" } else { "yes" });
                                }))
                        }
                    }
                }
            }
        }
        h2 { (t(lang, "Mời người dùng", "Invite a user")) }
        p { (t(lang, "Tạo người dùng (nếu chưa có), thêm vào đoàn và cấp một mã mời dùng một lần, hiệu lực 72 giờ, để đặt mật khẩu và đăng ký thiết bị.",
            "Creates the user (if new), adds them to the team and issues a single-use invitation code, valid 72 hours, to set a password and enroll a device.")) }
        (act_form(lang, "invite", ("Ký và mời", "Sign and invite"), html! {
            (field("user_id", t(lang, "Tên đăng nhập (chữ thường, số, dấu gạch)", "User id (lowercase, digits, dashes)"), "text", true))
            (field("full_name", t(lang, "Họ và tên (có dấu)", "Full name (with diacritics)"), "text", true))
            label for="role" { (t(lang, "Vai trò", "Role")) }
            select id="role" name="role" { (role_options(lang)) }
            label for="team_id" { (t(lang, "Đoàn", "Team")) }
            select id="team_id" name="team_id" {
                @for tm in d.teams.values() { option value=(tm.team_id) { (tm.name) " (" (tm.team_id) ")" } }
            }
        }))
        h2 { (t(lang, "Đoàn kiểm tra", "Teams")) " (" (d.teams.len()) ")" }
        table {
            thead { tr {
                th scope="col" { (t(lang, "Mã", "Id")) }
                th scope="col" { (t(lang, "Tên", "Name")) }
                th scope="col" { (t(lang, "Trưởng đoàn", "Leaders")) }
                th scope="col" { (t(lang, "Thành viên", "Members")) }
            } }
            tbody {
                @for tm in d.teams.values() {
                    tr {
                        td { (tm.team_id) }
                        td { (tm.name) }
                        td { (tm.leaders.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", ")) }
                        td { (tm.members.len()) }
                    }
                }
            }
        }
        h3 { (t(lang, "Lập đoàn mới", "New team")) }
        (act_form(lang, "team", ("Ký và lập đoàn", "Sign and create"), html! {
            (field("team_id", t(lang, "Mã đoàn", "Team id"), "text", true))
            (field("name", t(lang, "Tên đoàn", "Team name"), "text", true))
        }))
    }
}

fn units(lang: Lang, d: &Directory) -> Markup {
    html! {
        h2 { (t(lang, "Đơn vị", "Units")) " (" (d.units.len()) ")" }
        table {
            thead { tr {
                th scope="col" { (t(lang, "Mã", "Code")) }
                th scope="col" { (t(lang, "Tên", "Name")) }
                th scope="col" { (t(lang, "Loại", "Kind")) }
                th scope="col" { (t(lang, "Địa bàn", "Area")) }
                th scope="col" { (t(lang, "Danh sách mới nhất", "Latest roster")) }
            } }
            tbody {
                @for u in d.units.values() {
                    tr {
                        td { (u.record.code) }
                        td { (u.record.name) }
                        td { (u.record.kind.label(lang)) }
                        td { (u.record.area) }
                        td { @if let Some(r) = u.rosters.last() { (date(r.valid_from)) " · " (r.staff.len()) } @else { "—" } }
                    }
                }
            }
        }
        h2 { (t(lang, "Nhập từ tệp CSV hoặc Excel (.xlsx)", "Import from a CSV or Excel (.xlsx) file")) }
        p { (t(lang, "Tất cả hoặc không: một dòng sai thì không nhập gì, và mỗi dòng sai được nêu kèm trang tính, dòng và lý do.",
            "All or nothing: one bad row imports nothing, and each bad row is named with its sheet, line and reason.")) }
        @for (kind, vi, en) in [("areas", "Địa bàn hành chính", "Administrative areas"), ("units", "Đơn vị", "Units"), ("staff", "Danh sách cán bộ (biên chế)", "Staff rosters (payroll)")] {
            h3 { (t(lang, vi, en)) }
            (act_form(lang, kind, ("Kiểm tra, ký và nhập", "Check, sign and import"), html! {
                label for={ "file-" (kind) } { (t(lang, "Tệp", "File")) }
                input id={ "file-" (kind) } name="file" type="file" accept=".csv,.xlsx" required;
                label for={ "valid-" (kind) } { (t(lang, "Có hiệu lực từ ngày (dd/mm/yyyy)", "Valid from (dd/mm/yyyy)")) }
                input id={ "valid-" (kind) } name="valid_from" type="text" required pattern="[0-9]{2}/[0-9]{2}/[0-9]{4}" placeholder="01/01/2015";
            }))
        }
    }
}

fn campaigns(lang: Lang, d: &Directory) -> Markup {
    html! {
        h2 { (t(lang, "Đợt kiểm tra", "Campaigns")) " (" (d.campaigns.len()) ")" }
        table {
            thead { tr {
                th scope="col" { (t(lang, "Mã", "Id")) }
                th scope="col" { (t(lang, "Tên", "Title")) }
                th scope="col" { (t(lang, "Quyết định", "Decision")) }
                th scope="col" { (t(lang, "Thời gian", "Period")) }
                th scope="col" { (t(lang, "Mẫu", "Template")) }
                th scope="col" { (t(lang, "Phân công", "Assignments")) }
            } }
            tbody {
                @for c in d.campaigns.values() {
                    tr {
                        td { a href={ "/console/campaigns/" (c.campaign_id) } { (c.campaign_id) } }
                        td { (c.title) }
                        td { (c.decision) }
                        td { (date(c.starts_on)) " – " (date(c.ends_on)) }
                        td { (c.template_id) " v" (c.template_version) }
                        td.num { (c.assignments.len()) }
                    }
                }
            }
        }
        h3 { (t(lang, "Lập đợt kiểm tra", "New campaign")) }
        (act_form(lang, "campaign", ("Ký và lập", "Sign and create"), html! {
            (field("campaign_id", t(lang, "Mã đợt", "Campaign id"), "text", true))
            (field("title", t(lang, "Tên đợt", "Title"), "text", true))
            (field("decision", t(lang, "Quyết định (ví dụ: Quyết định 138/QĐ-UBND ngày 19/01/2017)", "Decision (e.g. Quyết định 138/QĐ-UBND ngày 19/01/2017)"), "text", true))
            (field("starts_on", t(lang, "Từ ngày (dd/mm/yyyy)", "From (dd/mm/yyyy)"), "text", true))
            (field("ends_on", t(lang, "Đến ngày (dd/mm/yyyy)", "To (dd/mm/yyyy)"), "text", true))
            label for="province" { (t(lang, "Tỉnh, thành phố", "Province or city")) }
            select id="province" name="province" {
                @for a in d.areas.values().filter(|a| a.parent.is_none()) { option value=(a.code) { (a.name) } }
            }
            label for="template" { (t(lang, "Mẫu kiểm tra", "Template")) }
            select id="template" name="template" {
                @for ((id, version), tp) in &d.templates { option value={ (id) " " (version) } { (tp.title_vi) " (" (id) " v" (version) ")" } }
            }
            (field("teams", t(lang, "Các đoàn (mã, cách nhau bởi dấu cách)", "Teams (ids, separated by spaces)"), "text", true))
        }))
        h3 { (t(lang, "Bốc thăm ngẫu nhiên đơn vị", "Random draw of units")) }
        p { (t(lang,
            "Trình duyệt tạo một hạt giống bí mật và chỉ gửi cam kết của nó (SHA-256) vào sổ trước khi bốc thăm; sau đó công bố hạt giống, ai cũng tính lại được các đơn vị được chọn. Hãy giữ hạt giống được hiển thị cho đến khi công bố.",
            "The browser makes a secret seed and logs only its commitment (SHA-256) before the draw; revealing the seed afterwards lets anyone recompute the units drawn. Keep the seed shown until you reveal it.")) }
        @for c in d.campaigns.values() {
            @for dr in &c.draws {
                p {
                    (c.campaign_id) ": " (dr.count) "/" (dr.candidates.len()) " · "
                    @match &dr.seed {
                        Some(_) => { (t(lang, "đã công bố, chọn: ", "revealed, drawn: ")) (dr.selection.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(", ")) }
                        None => { (t(lang, "đã cam kết, chưa công bố", "committed, not revealed yet")) }
                    }
                }
            }
        }
        (act_form(lang, "draw-commit", ("Tạo hạt giống, ký cam kết", "Make a seed and sign its commitment"), html! {
            input type="hidden" name="commitment" value="";
            label for="d-campaign" { (t(lang, "Đợt", "Campaign")) }
            select id="d-campaign" name="campaign_id" { @for c in d.campaigns.values() { option value=(c.campaign_id) { (c.campaign_id) } } }
            label for="d-candidates" { (t(lang, "Các đơn vị dự bốc thăm (mã, mỗi dòng một mã)", "Candidate units (codes, one per line)")) }
            textarea id="d-candidates" name="candidates" rows="4" required {}
            (field("count", t(lang, "Số đơn vị cần chọn", "Units to draw"), "number", true))
        }))
        (act_form(lang, "draw-reveal", ("Ký công bố hạt giống", "Sign the seed's reveal"), html! {
            label for="r-campaign" { (t(lang, "Đợt", "Campaign")) }
            select id="r-campaign" name="campaign_id" { @for c in d.campaigns.values() { option value=(c.campaign_id) { (c.campaign_id) } } }
            (field("seed", t(lang, "Hạt giống (64 ký tự hex; để trống nếu trình duyệt này đã tạo nó)", "Seed (64 hex characters; empty when this browser made it)"), "text", false))
        }))
        h3 { (t(lang, "Phân công kiểm tra", "Assign a visit")) }
        (act_form(lang, "assign", ("Ký và phân công", "Sign and assign"), html! {
            label for="a-campaign" { (t(lang, "Đợt", "Campaign")) }
            select id="a-campaign" name="campaign_id" { @for c in d.campaigns.values() { option value=(c.campaign_id) { (c.campaign_id) } } }
            label for="a-team" { (t(lang, "Đoàn", "Team")) }
            select id="a-team" name="team_id" { @for tm in d.teams.values() { option value=(tm.team_id) { (tm.name) } } }
            label for="a-unit" { (t(lang, "Đơn vị (mã)", "Unit (code)")) }
            input id="a-unit" name="unit" type="text" required list="unit-codes" maxlength="64";
            datalist id="unit-codes" { @for u in d.units.values() { option value=(u.record.code) { (u.record.name) } } }
            (field("planned_on", t(lang, "Ngày dự kiến (dd/mm/yyyy)", "Planned date (dd/mm/yyyy)"), "text", true))
        }))
    }
}

fn templates(lang: Lang, d: &Directory) -> Markup {
    html! {
        h2 { (t(lang, "Mẫu kiểm tra đã công bố", "Published templates")) " (" (d.templates.len()) ")" }
        table {
            thead { tr {
                th scope="col" { (t(lang, "Mẫu", "Template")) }
                th scope="col" { (t(lang, "Phiên bản", "Version")) }
                th scope="col" { (t(lang, "Tên", "Title")) }
                th scope="col" { (t(lang, "Số nội dung", "Checks")) }
            } }
            tbody {
                @for ((id, version), tp) in &d.templates {
                    tr { td { (id) } td.num { (version) } td { (t(lang, "", "")) (if lang == Lang::Vi { &tp.title_vi } else { &tp.title_en }) } td.num { (tp.checks) } }
                }
            }
        }
        h3 { (t(lang, "Công bố phiên bản mới", "Publish a version")) }
        p { (t(lang, "Một phiên bản mới không bao giờ thay đổi các biên bản đã lập.", "A new version never changes visits already made.")) }
        (act_form(lang, "template", ("Ký và công bố", "Sign and publish"), html! {
            (field("template_id", t(lang, "Mã mẫu", "Template id"), "text", true))
            (field("version", t(lang, "Phiên bản", "Version"), "number", true))
            label for="json" { (t(lang, "Nội dung mẫu (JSON)", "The template (JSON)")) }
            textarea id="json" name="json" rows="10" required {}
        }))
    }
}

fn devices_page(lang: Lang, d: &Directory, devices: &[kiemtra_store::DeviceRecord]) -> Markup {
    let problems = crate::admin::check_devices(d, devices);
    html! {
        h2 { (t(lang, "Thiết bị đã đăng ký", "Enrolled devices")) " (" (devices.len()) ")" }
        table {
            thead { tr {
                th scope="col" { (t(lang, "Thiết bị", "Device")) }
                th scope="col" { (t(lang, "Người dùng", "User")) }
                th scope="col" { (t(lang, "Đoàn", "Team")) }
                th scope="col" { (t(lang, "Đăng ký lúc", "Enrolled")) }
                th scope="col" { (t(lang, "Trạng thái", "State")) }
            } }
            tbody {
                @for dev in devices {
                    tr {
                        td { (dev.name) br; small { (dev.device_id) } }
                        td { (dev.user_id) }
                        td { (dev.team) }
                        td { (crate::console::stored_time(&dev.enrolled_at)) }
                        td {
                            @if let Some(at) = &dev.revoked_at {
                                (t(lang, "đã thu hồi lúc ", "revoked at ")) (crate::console::stored_time(at))
                            } @else {
                                (act_form(lang, "revoke", ("Thu hồi", "Revoke"), html! {
                                    input type="hidden" name="device_id" value=(dev.device_id);
                                }))
                            }
                        }
                    }
                }
            }
        }
        h2 { (t(lang, "Đối chiếu với sổ quản trị", "Checked against the administration log")) }
        @if problems.is_empty() {
            p.ok { (t(lang, "Mọi thiết bị khớp với sổ: khóa, thời điểm đăng ký và thu hồi.", "Every device matches the log: keys, enrollment and revocation times.")) }
        } @else {
            ul.problems { @for p in &problems { li { strong { (p.rule) } " · " (p.device_id) " · " (p.detail) } } }
        }
    }
}

fn log_page(lang: Lang, d: &Directory, log: &[Entry]) -> Markup {
    // The chain rechecked from the first entry: each entry names the hash
    // of the one before.
    let mut broken = None;
    let mut prev = String::new();
    for e in log {
        if e.prev != prev {
            broken = Some(e.seq);
            break;
        }
        prev = e.hash();
    }
    html! {
        h2 { (t(lang, "Sổ quản trị", "Administration log")) }
        p {
            (t(lang, "Số mục", "Entries")) ": " (d.head.seq) " · " (t(lang, "mã băm cuối", "last hash")) ": " code { (d.head.hash) }
        }
        @match broken {
            None => p.ok { (t(lang, "Chuỗi băm liền mạch và mọi chữ ký của quản trị viên hợp lệ (sổ được dựng lại từ mục đầu).",
                "The hash chain is unbroken and every administrator's signature verifies (the log replays from its first entry).")) },
            Some(seq) => p.error { (t(lang, "Chuỗi băm bị đứt tại mục ", "The hash chain breaks at entry ")) (seq) },
        }
        table {
            thead { tr {
                th scope="col" { "#" }
                th scope="col" { (t(lang, "Thời điểm", "Time")) }
                th scope="col" { (t(lang, "Người ký", "Signed by")) }
                th scope="col" { (t(lang, "Thao tác", "Act")) }
            } }
            tbody {
                @for e in log.iter().rev().take(LOG_SHOWN) {
                    tr {
                        td.num { (e.seq) }
                        td { (crate::console::stored_time(&e.at)) }
                        td { @match &e.by { Author::Device { device_id } => { (device_id) }, Author::Server => { (t(lang, "máy chủ", "the server")) } } }
                        td { (e.act.name()) }
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- writes

fn refused(status: StatusCode, message: String) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(json!({ "error": message }))
}

/// The largest administration form: a workbook's acts, signed.
const MAX_FORM: usize = 16 << 20;

/// The signed-in administrator and their device named by the form.
fn administrator(
    req: &HttpRequest,
    v: Viewer,
    csrf: &str,
    device: &str,
) -> Result<(Viewer, String), Box<HttpResponse>> {
    let lang = lang_of(req);
    if !token_matches(&v.csrf, csrf) {
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            t(
                lang,
                "Thiếu mã xác thực (CSRF).",
                "The form's token (CSRF) is missing or stale.",
            )
            .into(),
        )));
    }
    if v.role != Role::Administrator {
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            t(lang, "Chỉ quản trị viên.", "Administrators only.").into(),
        )));
    }
    if !v.devices.iter().any(|d| d.device_id == device) {
        return Err(Box::new(refused(
            StatusCode::FORBIDDEN,
            t(
                lang,
                "Trình duyệt này chưa có khóa ký được đăng ký cho bạn.",
                "This browser holds no signing key enrolled for you.",
            )
            .into(),
        )));
    }
    let device = device.to_owned();
    Ok((v, device))
}

/// The unsigned entry for an act following `head`, and the bytes the
/// browser signs for it. An entry's hash covers its signature, so the next
/// entry is made only once this one is signed (`next`).
fn entry_after(head: &kiemtra_admin::log::Head, device: &str, act: Act) -> serde_json::Value {
    let at = timestamp(chrono::Utc::now()).max(head.at.clone());
    let e = Entry::next(
        head,
        &at,
        Author::Device {
            device_id: device.to_owned(),
        },
        act,
    );
    json!({
        "signing": kiemtra_core::hex::encode(&e.signing_bytes()),
        "entry": e,
    })
}

/// What `prepare` and `import` answer: the acts, the first entry to sign.
fn first_of(
    d: &Directory,
    device: &str,
    acts: Vec<Act>,
    code: Option<String>,
) -> serde_json::Value {
    let mut answer = match acts.first() {
        Some(act) => entry_after(&d.head, device, act.clone()),
        None => json!({}),
    };
    answer["acts"] = json!(acts);
    answer["code"] = json!(code);
    answer
}

fn get<'a>(f: &'a HashMap<String, String>, k: &str) -> &'a str {
    f.get(k).map(|s| s.trim()).unwrap_or("")
}

fn parsed<T>(what: &str, r: kiemtra_core::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

/// The acts a form asks for (and an invitation's code, shown once).
fn acts_for(
    kind: &str,
    f: &HashMap<String, String>,
    d: &Directory,
) -> Result<(Vec<Act>, Option<String>), String> {
    let day = |k: &str| kiemtra_admin::import::parse_date(get(f, k));
    let acts = match kind {
        "invite" => {
            let user = parsed("user id", UserId::parse(get(f, "user_id")))?;
            let role = parsed("role", Role::parse(get(f, "role")))?;
            let team_id = parsed("team", TeamId::parse(get(f, "team_id")))?;
            let team = d
                .teams
                .get(&team_id)
                .ok_or_else(|| format!("no team {team_id}"))?;
            let mut acts = Vec::new();
            match d.users.get(&user) {
                Some(u) if u.role != role => {
                    return Err(format!("{user} is a {} already", u.role.key()));
                }
                Some(_) => {}
                None => acts.push(Act::UserCreated {
                    user_id: user.clone(),
                    full_name: kiemtra_core::text::nfc(get(f, "full_name")),
                    role,
                }),
            }
            let mut members = team.members.clone();
            let mut leaders = team.leaders.clone();
            let mut changed = false;
            if !members.contains(&user) {
                members.push(user.clone());
                changed = true;
            }
            if role == Role::Supervisor && !leaders.contains(&user) {
                leaders.push(user.clone());
                changed = true;
            }
            if changed {
                acts.push(Act::TeamMembers {
                    team_id: team_id.clone(),
                    leaders,
                    members,
                });
            }
            let code = crate::secrets::new_code().map_err(|e| e.to_string())?;
            acts.push(Act::CodeIssued {
                code_hash: sha256_hex(crate::secrets::normalise_code(&code).as_bytes()),
                user_id: user,
                team_id,
                role,
                expires_at: timestamp(
                    chrono::Utc::now() + chrono::Duration::hours(INVITATION_HOURS),
                ),
            });
            return Ok((acts, Some(code)));
        }
        "team" => vec![Act::TeamCreated {
            team_id: parsed("team id", TeamId::parse(get(f, "team_id")))?,
            name: kiemtra_core::text::nfc(get(f, "name")),
        }],
        "user-active" => {
            let user = parsed("user id", UserId::parse(get(f, "user_id")))?;
            let u = d
                .users
                .get(&user)
                .ok_or_else(|| format!("no user {user}"))?;
            vec![Act::UserUpdated {
                user_id: user,
                full_name: u.full_name.clone(),
                active: get(f, "active") == "yes",
            }]
        }
        "revoke" => vec![Act::DeviceRevoked {
            device_id: get(f, "device_id").to_owned(),
        }],
        "template" => vec![Act::TemplatePublished {
            template_id: parsed("template id", TemplateId::parse(get(f, "template_id")))?,
            version: get(f, "version")
                .parse()
                .map_err(|_| "the version is a whole number".to_owned())?,
            json: get(f, "json").to_owned(),
        }],
        "campaign" => {
            let (template, version) = get(f, "template")
                .split_once(' ')
                .ok_or_else(|| "choose a template".to_owned())?;
            vec![Act::CampaignCreated {
                campaign_id: parsed("campaign id", CampaignId::parse(get(f, "campaign_id")))?,
                title: kiemtra_core::text::nfc(get(f, "title")),
                decision: kiemtra_core::text::nfc(get(f, "decision")),
                starts_on: day("starts_on")?,
                ends_on: day("ends_on")?,
                province: parsed("province", UnitCode::parse(get(f, "province")))?,
                template_id: parsed("template id", TemplateId::parse(template))?,
                template_version: version
                    .parse()
                    .map_err(|_| "the template version is a whole number".to_owned())?,
                teams: get(f, "teams")
                    .split([' ', ','])
                    .filter(|s| !s.is_empty())
                    .map(|s| parsed("team", TeamId::parse(s)))
                    .collect::<Result<_, _>>()?,
            }]
        }
        "draw-commit" => {
            let commitment = get(f, "commitment").to_ascii_lowercase();
            if commitment.len() != 64 || !commitment.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("the commitment is the SHA-256 of the seed: 64 hex characters".into());
            }
            let mut candidates = get(f, "candidates")
                .split([' ', ',', '\n', '\r'])
                .filter(|s| !s.is_empty())
                .map(|s| parsed("unit", UnitCode::parse(s)))
                .collect::<Result<Vec<_>, _>>()?;
            candidates.sort();
            candidates.dedup();
            vec![Act::DrawCommitted {
                campaign_id: parsed("campaign id", CampaignId::parse(get(f, "campaign_id")))?,
                commitment,
                candidates,
                count: get(f, "count")
                    .parse()
                    .map_err(|_| "the number of units to draw is a whole number".to_owned())?,
            }]
        }
        "draw-reveal" => {
            let campaign_id = parsed("campaign id", CampaignId::parse(get(f, "campaign_id")))?;
            let draw = d
                .campaigns
                .get(&campaign_id)
                .and_then(|c| c.draws.iter().find(|d| d.seed.is_none()))
                .ok_or_else(|| format!("campaign {campaign_id} has no draw to reveal"))?;
            let seed = get(f, "seed").to_ascii_lowercase();
            let raw = kiemtra_core::hex::decode(&seed)
                .filter(|s| s.len() == 32)
                .ok_or_else(|| "the seed is 64 hex characters".to_owned())?;
            if kiemtra_admin::draw::commitment_of(&raw) != draw.commitment {
                return Err("this seed is not the one the draw committed to".into());
            }
            vec![Act::DrawRevealed {
                campaign_id,
                selection: kiemtra_admin::draw::select(&raw, &draw.candidates, draw.count as usize),
                seed,
            }]
        }
        "assign" => vec![Act::Assigned {
            campaign_id: parsed("campaign id", CampaignId::parse(get(f, "campaign_id")))?,
            team_id: parsed("team", TeamId::parse(get(f, "team_id")))?,
            unit: parsed("unit", UnitCode::parse(get(f, "unit")))?,
            planned_on: day("planned_on")?,
            visit_id: VisitId::generate(),
        }],
        _ => return Err("unknown kind of change".into()),
    };
    Ok((acts, None))
}

/// `POST /console/admin/w/prepare/{kind}`: the entries a form asks for, to
/// sign. Nothing is stored.
pub async fn prepare(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let (v, form) =
        match session_form::<HashMap<String, String>>(&state, &req, payload, MAX_FORM).await {
            Ok(x) => x,
            Err(r) => return r,
        };
    let (_, device) = match administrator(&req, v, get(&form, "csrf"), get(&form, "device")) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let kind = path.into_inner();
    let made = with_store(&state, move |s| {
        let d = crate::admin::directory_cached(s)?;
        Ok(acts_for(&kind, &form, &d).map(|(acts, code)| first_of(&d, &device, acts, code)))
    })
    .await;
    match made {
        Ok(Ok(answer)) => HttpResponse::Ok()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .json(answer),
        Ok(Err(why)) => refused(StatusCode::BAD_REQUEST, why),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

#[derive(Debug, Deserialize)]
pub struct ImportQuery {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub device: String,
    #[serde(default)]
    pub valid_from: String,
}

/// `POST /console/admin/w/import/{areas|units|staff}?csrf=…&device=…&valid_from=dd/mm/yyyy`
/// with the file as the body: its acts as entries to sign, or every bad
/// row. Nothing is stored.
pub async fn import(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> HttpResponse {
    let lang = lang_of(&req);
    let v = match viewer(&state, &req).await {
        Ok(Some(v)) => v,
        Ok(None) => return json_refusal(StatusCode::UNAUTHORIZED, "sign in again"),
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let (_, device) = match administrator(&req, v, &query.csrf, &query.device) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let Some(kind) = kiemtra_admin::import::Kind::parse(&path.into_inner()) else {
        return refused(StatusCode::NOT_FOUND, "import areas, units or staff".into());
    };
    let valid_from = match kiemtra_admin::import::parse_date(&query.valid_from) {
        Ok(d) => d,
        Err(e) => return refused(StatusCode::BAD_REQUEST, e),
    };
    let body = match crate::routes::read_body(
        &state,
        &req,
        payload,
        kiemtra_admin::import::MAX_FILE,
    )
    .await
    {
        Ok(b) => b.bytes,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let made = with_store(&state, move |s| {
        let d = crate::admin::directory_cached(s)?;
        Ok(kiemtra_admin::import::read(&body, kind)
            .and_then(|sheets| kiemtra_admin::import::prepare(&d, kind, &sheets, valid_from))
            .map(|acts| first_of(&d, &device, acts, None)))
    })
    .await;
    match made {
        Ok(Ok(answer)) => HttpResponse::Ok()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .json(answer),
        Ok(Err(errors)) => refused(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!(
                "{} {}",
                t(
                    lang,
                    "Không nhập gì; các dòng sai:",
                    "Nothing imported; bad rows:"
                ),
                errors
                    .iter()
                    .take(20)
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        ),
        Err(e) => actix_web::ResponseError::error_response(&e),
    }
}

#[derive(Debug, Deserialize)]
pub struct NextForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub device: String,
    /// The acts being signed, as `prepare` or `import` gave them (JSON).
    #[serde(default)]
    pub acts: String,
    /// The entries signed so far, in order (JSON).
    #[serde(default)]
    pub signed: String,
}

/// `POST /console/admin/w/next`: the entry for the next act, chained after
/// the last one signed. Nothing is stored; `commit` checks everything.
pub async fn next(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let (v, form) = match session_form::<NextForm>(&state, &req, payload, MAX_FORM).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (_, device) = match administrator(&req, v, &form.csrf, &form.device) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let (Ok(acts), Ok(signed)) = (
        serde_json::from_str::<Vec<Act>>(&form.acts),
        serde_json::from_str::<Vec<Entry>>(&form.signed),
    ) else {
        return refused(StatusCode::BAD_REQUEST, "not acts and log entries".into());
    };
    if acts.len() > crate::admin::MAX_ENTRIES || signed.is_empty() || signed.len() >= acts.len() {
        return refused(StatusCode::BAD_REQUEST, "no act is left to sign".into());
    }
    let head = signed.last().map(Entry::head).unwrap_or_default();
    HttpResponse::Ok()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(entry_after(&head, &device, acts[signed.len()].clone()))
}

#[derive(Debug, Deserialize)]
pub struct CommitForm {
    #[serde(default)]
    pub csrf: String,
    #[serde(default)]
    pub device: String,
    /// The entries, each with the browser's signature, as JSON.
    #[serde(default)]
    pub entries: String,
}

/// `POST /console/admin/w/commit`: signed entries appended to the log with
/// the checks of `POST /v1/admin/log` (signatures, chain, rules; all or
/// nothing). Each must be signed as the administrator's own device.
pub async fn commit(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let lang = lang_of(&req);
    let (v, form) = match session_form::<CommitForm>(&state, &req, payload, MAX_FORM).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let (_, device) = match administrator(&req, v, &form.csrf, &form.device) {
        Ok(x) => x,
        Err(r) => return *r,
    };
    let entries: Vec<Entry> = match serde_json::from_str(&form.entries) {
        Ok(e) => e,
        Err(e) => return refused(StatusCode::BAD_REQUEST, format!("not log entries: {e}")),
    };
    if entries
        .iter()
        .any(|e| !matches!(&e.by, Author::Device { device_id } if *device_id == device))
    {
        return refused(
            StatusCode::FORBIDDEN,
            t(
                lang,
                "Mỗi mục phải do chính thiết bị của bạn ký.",
                "Every entry must be signed by your own device.",
            )
            .into(),
        );
    }
    let appended = with_store(&state, move |s| crate::admin::append(s, &entries)).await;
    match appended {
        Ok(head) => HttpResponse::Ok()
            .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
            .json(json!({ "seq": head.seq, "hash": head.hash })),
        Err(p) => {
            let status = actix_web::ResponseError::status_code(&p);
            refused(
                status,
                format!("{}: {p}", t(lang, "Máy chủ từ chối", "The server refused")),
            )
        }
    }
}
