//! Acts a supervisor signs in the console — settling a conflict, returning,
//! approving — with the browser's own key (SPEC §14).
//!
//! The browser is a device: its non-extractable Ed25519 key was made by
//! WebCrypto and enrolled with an enrollment code, like a phone's. The
//! server never holds that key and never signs. For each act the server
//! writes the change the act makes, as the browser's device and on the
//! version of the visit the page showed (`heads`, which must still be the
//! visit's current heads), and hands its bytes to
//! the browser (`prepare`); the browser checks that they depend on exactly
//! those heads, signs their hash and sends bytes and signature back
//! (`commit`), which the server then treats exactly as a phone's offer:
//! the acceptance rule, the signature rule, storage, receipts, the feed.
//! Nothing is kept between the two requests.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use kiemtra_core::{ChangeHash, DeviceId, Editor, FieldRef, Role, Session, VisitId};
use kiemtra_store::DeviceRecord;
use serde::Deserialize;
use serde_json::json;

use crate::console::{Viewer, lang_of, session_form, t, token_matches, with_store};
use crate::problem::Problem;
use crate::startup::AppState;
use crate::storage::ServerStore;
use kiemtra_core::Lang;

/// Heads a page may name (an honest visit has a handful).
const MAX_HEADS: usize = 64;
/// The largest change a console act makes is an approval record: far
/// below this.
const MAX_CHANGE_BYTES: usize = 64 * 1024;

/// The largest form either step takes (a change in hex, its signature,
/// the page's heads).
const MAX_FORM: usize = 256 * 1024;

/// The fields of both steps; each step reads those it needs.
#[derive(Debug, Deserialize)]
pub struct ActForm {
    #[serde(default)]
    pub csrf: String,
    pub visit: String,
    /// `settle`, `return` or `approve`.
    pub act: String,
    /// The visit's heads as the page showed them, hex, space-separated.
    #[serde(default)]
    pub heads: String,
    /// The browser's device id.
    #[serde(default)]
    pub device: String,
    /// For `settle`: the field (`attendance/STAFF`, …) and the candidate kept.
    #[serde(default)]
    pub field: String,
    #[serde(default)]
    pub candidate: Option<usize>,
    /// The approval's note or the return's reason.
    #[serde(default)]
    pub note: String,
    /// For `approve`: the browser's signature over the approval message, hex.
    #[serde(default)]
    pub approval_signature: String,
    /// For `commit`: the change's bytes, hex, and the browser's signature.
    #[serde(default)]
    pub change: String,
    #[serde(default)]
    pub signature: String,
}

fn answer(status: StatusCode, body: serde_json::Value) -> HttpResponse {
    HttpResponse::build(status)
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .insert_header((actix_web::http::header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .json(body)
}

fn refused(status: StatusCode, lang: Lang, vi: &'static str, en: &'static str) -> HttpResponse {
    answer(status, json!({ "error": t(lang, vi, en) }))
}

fn refused_with(
    status: StatusCode,
    lang: Lang,
    vi: &'static str,
    en: &'static str,
    detail: &str,
) -> HttpResponse {
    answer(
        status,
        json!({ "error": format!("{} ({detail})", t(lang, vi, en)) }),
    )
}

fn internal(e: Problem) -> HttpResponse {
    actix_web::ResponseError::error_response(&e)
}

/// What both steps establish before anything of the act is read: a
/// session, its CSRF token, a supervisor, a visit of one of their teams,
/// and the browser's device enrolled for that user and that team.
struct Allowed {
    viewer: Viewer,
    device: DeviceRecord,
    visit_id: VisitId,
}

async fn allowed(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    v: Viewer,
    form: &ActForm,
) -> Result<Allowed, HttpResponse> {
    let lang = lang_of(req);
    if !token_matches(&v.csrf, &form.csrf) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            lang,
            "Thiếu mã xác thực (CSRF) hoặc mã đã hết hạn. Hãy tải lại trang.",
            "The form's token (CSRF) is missing or stale. Reload the page.",
        ));
    }
    if v.role != Role::Supervisor {
        return Err(refused(
            StatusCode::FORBIDDEN,
            lang,
            "Chỉ trưởng đoàn mới ký xử lý xung đột, trả lại hoặc phê duyệt.",
            "Only a team's supervisor signs settlements, returns and approvals.",
        ));
    }
    let not_found = || {
        refused(
            StatusCode::NOT_FOUND,
            lang,
            "Không có biên bản này trong phạm vi của bạn.",
            "No such visit in your scope.",
        )
    };
    let Ok(visit_id) = VisitId::parse(&form.visit) else {
        return Err(not_found());
    };
    let Some(device) = v
        .devices
        .iter()
        .find(|d| d.device_id == form.device)
        .cloned()
    else {
        return Err(refused(
            StatusCode::FORBIDDEN,
            lang,
            "Trình duyệt này chưa có khóa ký được đăng ký cho bạn (hoặc khóa đã bị thu hồi).",
            "This browser holds no signing key enrolled for you (or it was revoked).",
        ));
    };
    let id = visit_id.clone();
    let team = with_store(state, move |s| match s.summary(&id) {
        Ok(summary) => Ok(Some(summary.team)),
        Err(kiemtra_store::Error::UnknownVisit(_)) => Ok(None),
        Err(e) => Err(Problem::internal(&e)),
    })
    .await
    .map_err(internal)?;
    let Some(team) = team.filter(|t| v.teams.contains(t)) else {
        return Err(not_found());
    };
    if device.team != team {
        return Err(refused(
            StatusCode::FORBIDDEN,
            lang,
            "Khóa của trình duyệt này được đăng ký cho đoàn khác: hãy đăng ký trình duyệt bằng một mã của đoàn này.",
            "This browser's key is enrolled for another team: enroll the browser with a code of this team.",
        ));
    }
    Ok(Allowed {
        viewer: v,
        device,
        visit_id,
    })
}

fn parse_heads(text: &str) -> Option<Vec<ChangeHash>> {
    let heads: Vec<ChangeHash> = text
        .split_whitespace()
        .map(|h| kiemtra_core::hex::decode(h).and_then(|b| ChangeHash::try_from(b.as_slice()).ok()))
        .collect::<Option<_>>()?;
    (!heads.is_empty() && heads.len() <= MAX_HEADS).then_some(heads)
}

fn signature_bytes(text: &str) -> Option<Vec<u8>> {
    kiemtra_core::hex::decode(text).filter(|b| b.len() == 64)
}

/// What `prepare` made: the change to sign, or why not.
enum Prepared {
    Change(Vec<u8>, ChangeHash),
    Refused(StatusCode, &'static str, &'static str, String),
}

/// `POST /console/acts/prepare`: the change the act makes on the version
/// the page showed, for the browser to check and sign. For an approval
/// without `approval_signature` the answer is `{"approval": true}`: the
/// browser signs the approval message (visit id and the heads it showed)
/// and asks again with it. Nothing is stored.
pub async fn prepare(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let lang = lang_of(&req);
    let (v, form) = match session_form::<ActForm>(&state, &req, payload, MAX_FORM).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let a = match allowed(&state, &req, v, &form).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let Some(heads) = parse_heads(&form.heads) else {
        return refused(
            StatusCode::BAD_REQUEST,
            lang,
            "Thiếu phiên bản biên bản mà trang đã hiển thị.",
            "The version of the visit the page showed is missing or malformed.",
        );
    };
    if !matches!(form.act.as_str(), "settle" | "return" | "approve") {
        return refused(
            StatusCode::BAD_REQUEST,
            lang,
            "Thao tác không xác định.",
            "Unknown act.",
        );
    }
    let approval_signature = if form.act == "approve" && !form.approval_signature.is_empty() {
        match signature_bytes(&form.approval_signature) {
            Some(sig) => Some(sig),
            None => {
                return refused(
                    StatusCode::BAD_REQUEST,
                    lang,
                    "Chữ ký phê duyệt không đúng định dạng.",
                    "The approval signature is malformed.",
                );
            }
        }
    } else {
        None
    };
    if form.act == "approve" && approval_signature.is_none() {
        return answer(StatusCode::OK, json!({ "approval": true }));
    }
    let Ok(device_id) = DeviceId::parse(&a.device.device_id) else {
        return internal(Problem::Internal(
            "a stored device id does not parse".into(),
        ));
    };
    let editor = Editor::new(a.viewer.user_id.clone(), device_id);
    let public_key = a.device.public_key.clone();
    let id = a.visit_id.clone();
    let made = with_store(&state, move |s| {
        let visit = s.visit(&id).map_err(|e| Problem::internal(&e))?;
        // Acts are made on the visit as it stands: a page drawn before a
        // phone's sync (or another act) must be reloaded first.
        if kiemtra_core::Heads::new(visit.heads()) != kiemtra_core::Heads::new(heads.clone()) {
            return Ok(Prepared::Refused(
                StatusCode::CONFLICT,
                "Trang đã cũ so với biên bản trên máy chủ. Hãy tải lại trang.",
                "The page is older than the visit on the server. Reload the page.",
                String::new(),
            ));
        }
        let session = Session::new(editor).with_role(Role::Supervisor);
        let mut fork = visit
            .fork_at(&heads, &session)
            .map_err(|e| Problem::Internal(e.to_string()))?;
        let done = match form.act.as_str() {
            "settle" => match (FieldRef::parse(&form.field), form.candidate) {
                (Ok(field), Some(candidate)) => fork.resolve(&field, candidate),
                _ => {
                    return Ok(Prepared::Refused(
                        StatusCode::BAD_REQUEST,
                        "Thiếu nội dung xung đột hoặc giá trị được chọn.",
                        "The conflict's field or the value kept is missing.",
                        String::new(),
                    ));
                }
            },
            "return" => fork.return_visit(&form.note),
            _ => {
                let sig = approval_signature.unwrap_or_default();
                let message = kiemtra_core::Approval::message(id.as_str(), &heads);
                let key = ring::signature::UnparsedPublicKey::new(
                    &ring::signature::ED25519,
                    public_key.as_slice(),
                );
                if key.verify(&message, &sig).is_err() {
                    return Ok(Prepared::Refused(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "Chữ ký phê duyệt không khớp với khóa của trình duyệt này.",
                        "The approval signature does not verify with this browser's key.",
                        String::new(),
                    ));
                }
                fork.approve_signed(&form.note, &|_| sig.clone())
                    .map(|_| ())
            }
        };
        if let Err(e) = done {
            return Ok(Prepared::Refused(
                StatusCode::UNPROCESSABLE_ENTITY,
                "Không thực hiện được thao tác trên phiên bản này của biên bản",
                "The act cannot be made on this version of the visit",
                e.to_string(),
            ));
        }
        let made = fork.take_made_here();
        let [(hash, _, _)] = made.as_slice() else {
            return Err(Problem::Internal(
                "an act made other than one change".into(),
            ));
        };
        let bytes = fork
            .change_bytes(hash)
            .ok_or_else(|| Problem::Internal("the change just made is missing".into()))?;
        Ok(Prepared::Change(bytes, *hash))
    })
    .await;
    match made {
        Ok(Prepared::Change(bytes, hash)) => answer(
            StatusCode::OK,
            json!({
                "change": kiemtra_core::hex::encode(&bytes),
                "hash": hash.to_string(),
            }),
        ),
        Ok(Prepared::Refused(status, vi, en, detail)) if detail.is_empty() => {
            refused(status, lang, vi, en)
        }
        Ok(Prepared::Refused(status, vi, en, detail)) => {
            refused_with(status, lang, vi, en, &detail)
        }
        Err(e) => internal(e),
    }
}

/// `POST /console/acts/commit`: the change and the browser's signature
/// over it, offered as the browser's device offers anything — the
/// acceptance rule, the signature rule and storage in one transaction
/// (`engine::offer_alone`). The change need not be the one `prepare`
/// made: whatever bytes arrive are checked as a phone's would be.
pub async fn commit(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let lang = lang_of(&req);
    let (v, form) = match session_form::<ActForm>(&state, &req, payload, MAX_FORM).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let a = match allowed(&state, &req, v, &form).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let bytes = kiemtra_core::hex::decode(&form.change)
        .filter(|b| !b.is_empty() && b.len() <= MAX_CHANGE_BYTES);
    let (Some(bytes), Some(signature)) = (bytes, signature_bytes(&form.signature)) else {
        return refused(
            StatusCode::BAD_REQUEST,
            lang,
            "Thiếu thay đổi hoặc chữ ký, hoặc không đúng định dạng.",
            "The change or the signature is missing or malformed.",
        );
    };
    let sent = match kiemtra_core::sent_changes(&bytes) {
        Ok(sent) if sent.len() == 1 => sent.into_iter().next(),
        _ => None,
    };
    let Some(sent) = sent else {
        return refused(
            StatusCode::BAD_REQUEST,
            lang,
            "Dữ liệu gửi lên không phải là đúng một thay đổi.",
            "What was sent is not exactly one change.",
        );
    };
    let offer = kiemtra_sync_protocol::VisitOffer {
        visit_id: a.visit_id.to_string(),
        heads: vec![sent.hash.0],
        confirmed: Some(sent.deps.iter().map(|d| d.0).collect()),
        changes: bytes,
        signatures: vec![kiemtra_sync_protocol::Signature {
            signer: a.device.device_id.clone(),
            ranges: vec![kiemtra_sync_protocol::SeqRange {
                actor: sent.actor,
                first: sent.seq,
                last: sent.seq,
            }],
            signature,
        }],
        implied: false,
    };
    let st = state.clone();
    let device = a.device;
    let outcome = web::block(move || {
        let mut store = st.store()?;
        crate::engine::offer_alone(&mut store, &device, &offer, &st.metrics)
    })
    .await;
    use kiemtra_sync_protocol::VisitStatus as S;
    match outcome {
        Ok(Ok(None)) => answer(StatusCode::OK, json!({ "ok": true })),
        Ok(Ok(Some(r))) => match r.status {
            S::Ok => answer(StatusCode::OK, json!({ "ok": true })),
            S::Resend | S::Deferred => refused(
                StatusCode::CONFLICT,
                lang,
                "Máy chủ chưa có phiên bản mà thay đổi này dựa trên. Hãy tải lại trang.",
                "The server lacks the version this change builds on. Reload the page.",
            ),
            _ => refused_with(
                StatusCode::UNPROCESSABLE_ENTITY,
                lang,
                "Máy chủ từ chối thay đổi đã ký",
                "The server refused the signed change",
                &r.message,
            ),
        },
        Ok(Err(e)) => internal(e),
        Err(e) => internal(Problem::Internal(e.to_string())),
    }
}
