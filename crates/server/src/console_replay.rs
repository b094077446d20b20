//! The console's read-only audit pages: a visit's history with a slider
//! that shows the visit at any point, the domain difference between two
//! points, device time beside server receive time and "after approval"
//! markers; and the verification of a visit and of a campaign, each
//! problem explained in words.

use actix_web::{HttpRequest, HttpResponse, web};
use kiemtra_core::{ChangeHash, Lang, Role, VisitId, VisitState};
use maud::{Markup, html};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

use crate::console::{Viewer, lang_of, page, require_viewer, t, when, with_store};
use crate::problem::Problem;
use crate::startup::AppState;
use crate::storage::ServerStore;

#[derive(Debug, Deserialize)]
pub struct Point {
    /// Changes shown: the first `at` of the history (all by default).
    pub at: Option<usize>,
    /// The earlier point of the difference shown (default: one before `at`).
    pub from: Option<usize>,
}

use crate::console::no_visit as not_found;

/// The visit's team when the viewer may read it.
fn team_in_scope(
    s: &mut impl ServerStore,
    v_scope: &Option<Vec<String>>,
    id: &VisitId,
) -> Result<Option<String>, Problem> {
    let team = match s.summary(id) {
        Ok(summary) => summary.team,
        Err(kiemtra_store::Error::UnknownVisit(_)) => return Ok(None),
        Err(e) => return Err(Problem::internal(&e)),
    };
    Ok(match v_scope {
        Some(teams) if !teams.contains(&team) => None,
        _ => Some(team),
    })
}

/// The heads of the first `n` changes of a causal order (a prefix of a
/// causal order holds every dependency of its members).
fn prefix_heads(entries: &[kiemtra_core::HistoryEntry], n: usize) -> Vec<ChangeHash> {
    let prefix = &entries[..n.min(entries.len())];
    let deps: HashSet<&str> = prefix
        .iter()
        .flat_map(|e| e.deps.iter().map(String::as_str))
        .collect();
    prefix
        .iter()
        .filter(|e| !deps.contains(e.hash.as_str()))
        .filter_map(|e| e.hash.parse().ok())
        .collect()
}

struct Replayed {
    entries: Vec<kiemtra_core::HistoryEntry>,
    /// Server receive time and signer by change hash.
    received: HashMap<String, (String, String)>,
    at_state: Option<VisitState>,
    diff: Vec<String>,
    unit: String,
}

/// `GET /console/visits/{id}/history?at=N&from=M`.
pub async fn replay(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    point: web::Query<Point>,
) -> HttpResponse {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(id) = VisitId::parse(&path.into_inner()) else {
        return not_found(lang);
    };
    let scope = v.visit_scope();
    let (at, from) = (point.at, point.from);
    let vid = id.clone();
    let found = with_store(&state, move |s| {
        if team_in_scope(s, &scope, &vid)?.is_none() {
            return Ok(None);
        }
        let bytes = s.stored_bytes(&vid).map_err(|e| Problem::internal(&e))?;
        let visit = kiemtra_core::Visit::load(&bytes, s.session())
            .map_err(|e| Problem::Internal(format!("visit {vid} does not load: {e}")))?;
        let entries = visit
            .history()
            .map_err(|e| Problem::Internal(e.to_string()))?;
        let (index, _) = visit.change_index();
        let received = s
            .change_receipts(&vid, &index)
            .map_err(|e| Problem::internal(&e))?
            .changes
            .into_iter()
            .map(|(h, r)| {
                (
                    h.to_string(),
                    (r.record.received_at.clone(), r.record.signer.clone()),
                )
            })
            .collect();
        let n = entries.len();
        let at = at.unwrap_or(n).min(n);
        let from = from.unwrap_or(at.saturating_sub(1)).min(at);
        let (at_state, diff) = if at == 0 {
            (None, Vec::new())
        } else {
            let to_heads = prefix_heads(&entries, at);
            let from_heads = prefix_heads(&entries, from);
            let st = visit
                .state_at(&to_heads)
                .map_err(|e| Problem::Internal(e.to_string()))?;
            let diff = visit
                .diff(&from_heads, &to_heads)
                .map_err(|e| Problem::Internal(e.to_string()))?
                .iter()
                .map(|c| c.describe(lang, &st))
                .collect();
            (Some(st), diff)
        };
        let unit = visit
            .meta()
            .map(|m| m.unit.name)
            .map_err(|e| Problem::Internal(e.to_string()))?;
        Ok(Some(Replayed {
            entries,
            received,
            at_state,
            diff,
            unit,
        }))
    })
    .await;
    let r = match found {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(lang),
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let n = r.entries.len();
    let at = point.at.unwrap_or(n).min(n);
    let from = point.from.unwrap_or(at.saturating_sub(1)).min(at);
    let body = html! {
        h1 { (r.unit) " · " (t(lang, "Lịch sử", "History")) }
        p { a href={ "/console/visits/" (id) } { (t(lang, "← Về biên bản", "← Back to the visit")) } }
        form.replay method="get" {
            label for="at" { (t(lang, "Xem biên bản sau thay đổi thứ", "Show the visit after change number")) }
            input id="at" name="at" type="range" min="0" max=(n) value=(at);
            output for="at" { (at) " / " (n) }
            label for="from" { (t(lang, "So với thời điểm sau thay đổi thứ", "Compared with the point after change number")) }
            input id="from" name="from" type="number" min="0" max=(n) value=(from);
            button type="submit" { (t(lang, "Xem", "Show")) }
        }
        h2 { (t(lang, "Khác biệt", "Differences")) " " (from) " → " (at) }
        @if r.diff.is_empty() {
            p { (t(lang, "Không có khác biệt.", "No differences.")) }
        } @else {
            ul.diff { @for line in &r.diff { li { (line) } } }
        }
        @if let Some(st) = &r.at_state {
            h2 { (t(lang, "Biên bản tại thời điểm này", "The visit at this point")) }
            (state_summary(lang, st))
        }
        h2 { (t(lang, "Các thay đổi", "Changes")) }
        ol.timeline {
            @for (i, e) in r.entries.iter().enumerate() {
                li class=[(i < at).then_some("shown")] {
                    a href={ "?at=" (i + 1) } { "#" (i + 1) }
                    " · " (t(lang, "giờ thiết bị", "device time")) " " (when(e.device_time))
                    " · " (t(lang, "máy chủ nhận", "server received")) " "
                    (r.received.get(&e.hash).map(|(at, _)| crate::console::stored_time(at)).unwrap_or_else(|| "—".into()))
                    " · " (e.author.as_ref().map(|a| a.to_string()).unwrap_or_else(|| "?".into()))
                    @if e.after_approval {
                        " " strong.after { (t(lang, "sau phê duyệt", "after approval")) }
                    }
                    @if e.changes.iter().any(|c| matches!(c, kiemtra_core::DomainChange::Approved { .. })) {
                        " " strong.approved { (t(lang, "phê duyệt", "approval")) }
                    }
                    @if let Some(st) = &r.at_state {
                        ul { @for c in &e.changes { li { (c.describe(lang, st)) } } }
                    }
                }
            }
        }
    };
    page(
        lang,
        t(lang, "Lịch sử biên bản", "Visit history"),
        Some((&v, &v.csrf)),
        body,
    )
}

/// What the visit held at a point: status, attendance, checks, findings.
fn state_summary(lang: Lang, st: &VisitState) -> Markup {
    html! {
        p { (t(lang, "Trạng thái", "Status")) ": " strong { (crate::console::status_label(st.status.value().status, lang)) } }
        table.at {
            thead { tr {
                th scope="col" { (t(lang, "Họ và tên", "Name")) }
                th scope="col" { (t(lang, "Điểm danh", "Attendance")) }
            } }
            tbody {
                @for sid in &st.roster {
                    tr {
                        td { (st.staff_name(sid)) }
                        td { @match st.attendance.get(sid) {
                            Some(slot) => { (slot.value().mark.label(lang)) }
                            None => { (t(lang, "chưa ghi nhận", "not recorded")) }
                        } }
                    }
                }
            }
        }
        ul {
            @for def in &st.template.checks {
                @if let Some(slot) = st.checks.get(&def.id) {
                    li { (def.label.get(lang)) ": " (slot.value().result.label(lang)) }
                }
            }
        }
    }
}

// ---------------------------------------------------------------- verification

/// A verification rule in words.
fn explain(rule: &str, lang: Lang) -> &'static str {
    let (vi, en) = match rule {
        "document-damaged" => (
            "Tài liệu lưu trên máy chủ không đọc được.",
            "The stored document does not load.",
        ),
        "unsigned" => (
            "Thay đổi không có chữ ký nào của thiết bị đã ghi nó.",
            "No signature of the device that wrote it covers this change.",
        ),
        "no-author" => (
            "Thay đổi không ghi tên người và thiết bị ghi.",
            "The change names no author.",
        ),
        "signer-not-author" => (
            "Chữ ký là của một thiết bị khác với thiết bị ghi thay đổi.",
            "It is signed by a device other than the one that wrote it.",
        ),
        "unknown-device" => (
            "Thiết bị ký không có trong sổ đăng ký thiết bị.",
            "The signing device is not enrolled.",
        ),
        "bad-signature" => (
            "Chữ ký không khớp với khóa đã đăng ký của thiết bị: nội dung hoặc khóa đã bị thay.",
            "The signature does not verify with the device's enrolled key: the content or the key was changed.",
        ),
        "wrong-user" => (
            "Thiết bị thuộc về người khác với người ghi tên trong thay đổi.",
            "The device belongs to another user than the one the change names.",
        ),
        "not-enrolled-when-received" => (
            "Máy chủ nhận thay đổi trước khi thiết bị được đăng ký.",
            "The server received the change before the device was enrolled.",
        ),
        "revoked-before-received" => (
            "Thiết bị đã bị thu hồi trước khi máy chủ nhận thay đổi.",
            "The device was revoked before the server received the change.",
        ),
        "role-never-writes" => (
            "Vai trò của thiết bị không bao giờ được ghi biên bản.",
            "The device's role never writes visits.",
        ),
        "other-team" => (
            "Thiết bị thuộc đoàn khác với đoàn của biên bản.",
            "The device is of another team than the visit's.",
        ),
        "refused-change" => (
            "Thay đổi vi phạm quy tắc chấp nhận (ví dụ: ghi điều mà vai trò không được phép).",
            "The change breaks the acceptance rule (e.g. writes what its role may not).",
        ),
        "missing-change" => (
            "Một thay đổi đã được ký nhưng không có trong tài liệu.",
            "A signed change is missing from the document.",
        ),
        "missing-dependency" => (
            "Thiếu một thay đổi mà thay đổi khác dựa vào.",
            "A change another depends on is missing.",
        ),
        "approval-heads-missing" => (
            "Phiên bản được phê duyệt không có trong tài liệu.",
            "The approved version is not in the document.",
        ),
        "approval-unsigned" => ("Phê duyệt không có chữ ký.", "The approval is not signed."),
        "approval-bad-signature" => (
            "Chữ ký phê duyệt không khớp với khóa của thiết bị phê duyệt.",
            "The approval's signature does not verify with the approving device's key.",
        ),
        "approval-not-by-supervisor" => (
            "Người phê duyệt không phải trưởng đoàn.",
            "The approval is not by a supervisor.",
        ),
        "evidence-damaged" => (
            "Tệp minh chứng lưu trên máy chủ không còn khớp với mã băm của nó.",
            "A stored evidence file no longer matches its hash.",
        ),
        "template-differs" => (
            "Mẫu kiểm tra của biên bản khác với phiên bản đã công bố.",
            "The visit's checklist differs from the published version.",
        ),
        "not-as-assigned" => (
            "Biên bản không đúng với phân công trong sổ quản trị.",
            "The visit is not what its logged assignment asked for.",
        ),
        _ => ("Vấn đề khác.", "Another problem."),
    };
    t(lang, vi, en)
}

fn may_verify(v: &Viewer) -> bool {
    matches!(v.role, Role::Auditor | Role::Supervisor)
}

fn report_markup(lang: Lang, r: &crate::verify::Report) -> Markup {
    html! {
        p class=(if r.ok { "ok" } else { "error" }) {
            @if r.ok {
                (t(lang, "Hợp lệ: mọi thay đổi và phê duyệt đều được ký đúng.", "Clean: every change and approval is properly signed."))
            } @else {
                (t(lang, "Có vấn đề:", "Problems found:")) " " (r.problems.len())
            }
        }
        p.meta {
            (t(lang, "Thay đổi đã kiểm", "Changes checked")) ": " (r.changes_checked)
            " · " (t(lang, "phê duyệt đã kiểm", "approvals checked")) ": " (r.approvals_checked)
            " · " (t(lang, "ảnh minh chứng có / cần", "photos held / referenced")) ": " (r.evidence_held) "/" (r.evidence_referenced)
        }
        @if !r.problems.is_empty() {
            ul.problems {
                @for p in &r.problems {
                    li { strong { (explain(p.rule, lang)) } br; small { (p.rule) " · " (p.subject) " · " (p.detail) } }
                }
            }
        }
    }
}

/// `GET /console/visits/{id}/verify`: auditors any visit, supervisors
/// their teams'.
pub async fn verify_visit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let Ok(id) = VisitId::parse(&path.into_inner()) else {
        return not_found(lang);
    };
    if !may_verify(&v) {
        return crate::console::not_allowed(
            lang,
            "Kiểm chứng dành cho kiểm toán viên và trưởng đoàn.",
            "Verification is for auditors and supervisors.",
        );
    }
    let scope = v.visit_scope();
    let vid = id.clone();
    let found = with_store(&state, move |s| {
        if team_in_scope(s, &scope, &vid)?.is_none() {
            return Ok(None);
        }
        crate::verify::verify_visit(s, &vid)
            .map(Some)
            .map_err(|e| Problem::internal(&e))
    })
    .await;
    let report = match found {
        Ok(Some(r)) => r,
        Ok(None) => return not_found(lang),
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let body = html! {
        h1 { (t(lang, "Kiểm chứng biên bản", "Verification of the visit")) }
        p { a href={ "/console/visits/" (id) } { (t(lang, "← Về biên bản", "← Back to the visit")) } }
        (report_markup(lang, &report))
    };
    page(
        lang,
        t(lang, "Kiểm chứng", "Verification"),
        Some((&v, &v.csrf)),
        body,
    )
}

/// `GET /console/campaigns/{id}/verify`: every visit of the campaign in
/// the viewer's scope.
pub async fn verify_campaign(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> HttpResponse {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let campaign = path.into_inner();
    if !may_verify(&v) {
        return crate::console::not_allowed(
            lang,
            "Kiểm chứng dành cho kiểm toán viên và trưởng đoàn.",
            "Verification is for auditors and supervisors.",
        );
    }
    let scope = v.visit_scope();
    let c = campaign.clone();
    let found = with_store(&state, move |s| {
        let log = crate::admin::directory(s).map_err(|p| p.to_string());
        let mut out = Vec::new();
        for x in s
            .list_visits()?
            .into_iter()
            .filter(|x| x.campaign == c)
            .filter(|x| scope.as_ref().is_none_or(|teams| teams.contains(&x.team)))
        {
            let r = crate::verify::verify_visit_with(s, &x.id, &log)
                .map_err(|e| Problem::internal(&e))?;
            out.push((x.unit_name, r));
        }
        Ok(out)
    })
    .await;
    let reports = match found {
        Ok(r) => r,
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let clean = reports.iter().filter(|(_, r)| r.ok).count();
    let body = html! {
        h1 { (t(lang, "Kiểm chứng đợt kiểm tra", "Verification of the campaign")) " · " (campaign) }
        p class=(if clean == reports.len() { "ok" } else { "error" }) {
            (clean) "/" (reports.len()) " " (t(lang, "biên bản hợp lệ", "visits clean"))
        }
        @for (unit, r) in &reports {
            section {
                h2 { a href={ "/console/visits/" (r.visit_id) "/verify" } { (unit) } }
                (report_markup(lang, r))
            }
        }
    };
    page(
        lang,
        t(lang, "Kiểm chứng", "Verification"),
        Some((&v, &v.csrf)),
        body,
    )
}

// ---------------------------------------------------------------- photos

/// The kind of image a file is, from its first bytes; `None` for anything
/// that is not a JPEG, PNG or WebP picture (served as a download instead).
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.len() > 12 && &bytes[..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some("image/webp")
    } else {
        None
    }
}

/// `GET /console/visits/{id}/evidence/{hash}`: a photo the visit refers to
/// and the server holds whole, for a user who may read the visit. A file
/// that is not a picture is sent as a download, never shown.
pub async fn evidence(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    let lang = lang_of(&req);
    let v = match require_viewer(&state, &req).await {
        Ok(v) => v,
        Err(r) => return r,
    };
    let (visit, hash) = path.into_inner();
    let (Ok(id), Ok(hash)) = (
        VisitId::parse(&visit),
        kiemtra_core::EvidenceHash::parse(&hash),
    ) else {
        return not_found(lang);
    };
    let scope = v.visit_scope();
    let found = with_store(&state, move |s| {
        if team_in_scope(s, &scope, &id)?.is_none() {
            return Ok(None);
        }
        let referenced = s
            .visit(&id)
            .map_err(|e| Problem::internal(&e))?
            .state()
            .map_err(|e| Problem::Internal(e.to_string()))?
            .evidence
            .values()
            .any(|held| held.contains(&hash));
        if !referenced {
            return Ok(None);
        }
        s.evidence_bytes(&id, &hash, 0, u64::MAX)
            .map_err(|e| Problem::internal(&e))
    })
    .await;
    let bytes = match found {
        Ok(Some(b)) => b,
        Ok(None) => return not_found(lang),
        Err(e) => return actix_web::ResponseError::error_response(&e),
    };
    let mut r = HttpResponse::Ok();
    r.insert_header((
        actix_web::http::header::CACHE_CONTROL,
        "private, max-age=3600",
    ))
    .insert_header((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
    .insert_header((
        actix_web::http::header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; sandbox",
    ));
    match image_type(&bytes) {
        Some(media) => r.content_type(media).body(bytes),
        None => r
            .content_type("application/octet-stream")
            .insert_header(("Content-Disposition", "attachment"))
            .body(bytes),
    }
}
