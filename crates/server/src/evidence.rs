//! Evidence uploads (SPEC §12): a file referenced from a visit by SHA-256,
//! sent in pieces that a dropped link can resume, kept once whole and
//! matching its name.

use crate::backend::Conn;
use crate::storage::ServerStore;
use actix_web::{HttpRequest, HttpResponse, web};
use kiemtra_core::{EvidenceHash, VisitId};
use kiemtra_store::{EvidenceRefusal, EvidenceStatus};
use std::sync::atomic::Ordering::Relaxed;

use crate::openapi::schemas;
use crate::problem::Problem;
use crate::routes::{authenticate, declared_length, read_body, require_media, summary_in_scope};
use crate::startup::AppState;
use crate::trust::WRITERS;

pub const OCTETS: &str = "application/octet-stream";

fn ids(path: (String, String)) -> Result<(VisitId, EvidenceHash), Problem> {
    let visit = VisitId::parse(&path.0).map_err(|e| Problem::BadRequest(e.to_string()))?;
    let hash = EvidenceHash::parse(&path.1).map_err(|e| Problem::BadRequest(e.to_string()))?;
    Ok((visit, hash))
}

fn status_json(s: Option<EvidenceStatus>) -> serde_json::Value {
    match s {
        Some(s) => serde_json::json!({
            "length": s.length, "received": s.received, "complete": s.complete,
        }),
        None => serde_json::json!({ "length": null, "received": 0, "complete": false }),
    }
}

fn header_u64(req: &HttpRequest, name: &str) -> Result<u64, Problem> {
    let value = req
        .headers()
        .get(name)
        .ok_or_else(|| Problem::BadRequest(format!("the {name} header is required")))?;
    // Lengths and offsets are stored as signed 64-bit numbers.
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|n| i64::try_from(*n).is_ok())
        .ok_or_else(|| Problem::BadRequest(format!("{name} must be a number of bytes")))
}

/// Authenticates, then runs `read` on the blocking pool for a visit the
/// device may read (unknown and out-of-scope visits alike are not found).
async fn read_in_scope<T: Send + 'static>(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    path: (String, String),
    read: impl FnOnce(&mut Conn<'_>, &VisitId, &EvidenceHash) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let device = authenticate(state, req).await?;
    let (visit, hash) = ids(path)?;
    let st = state.clone();
    web::block(move || {
        let mut store = st.store()?;
        summary_in_scope(&mut store, &device, &visit)?;
        read(&mut store, &visit, &hash)
    })
    .await
    .map_err(|e| Problem::Internal(e.to_string()))?
}

/// How much of an evidence file the server holds
///
/// `GET /v1/visits/{id}/evidence/{hash}/status`: how much of the file the
/// server holds (`received` 0 and `length` null when nothing).
#[utoipa::path(
    get,
    path = "/v1/visits/{id}/evidence/{hash}/status",
    operation_id = "evidence_status",
    tag = "evidence",
    params(
        ("id" = schemas::Id, Path, description = "The visit's id"),
        ("hash" = schemas::Sha256, Path, description = "The file's SHA-256, hex"),
    ),
    responses(
        (status = 200, description = "What the server holds", body = schemas::EvidenceStatus),
        (status = 400, description = "Not a visit id or not a SHA-256"),
        (status = 401), (status = 404), (status = 500),
    )
)]
pub async fn status(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let held = read_in_scope(&state, &req, path.into_inner(), |store, visit, hash| {
        store.evidence_status(visit, hash).map_err(Problem::from)
    })
    .await?;
    Ok(HttpResponse::Ok().json(status_json(held)))
}

/// Upload a piece of an evidence file
///
/// `PUT /v1/visits/{id}/evidence/{hash}` with `Upload-Offset` and
/// `Upload-Length`: one piece of the file. Only a file the visit refers to
/// is taken; a piece must start where the held bytes end.
#[utoipa::path(
    put,
    path = "/v1/visits/{id}/evidence/{hash}",
    operation_id = "put_evidence",
    tag = "evidence",
    params(
        ("id" = schemas::Id, Path, description = "The visit's id"),
        ("hash" = schemas::Sha256, Path, description = "The file's SHA-256, hex"),
        ("Upload-Offset" = i64, Header, minimum = 0, description = "Where in the file this piece starts, bytes"),
        ("Upload-Length" = i64, Header, minimum = 0, description = "The whole file's length, bytes"),
    ),
    request_body(content = schemas::Bytes, content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "What the server holds now", body = schemas::EvidenceStatus),
        (status = 400, description = "A bad id, hash or header, or a piece past the file's end"),
        (status = 401),
        (status = 403, description = "The device's role does not upload (auditors, administrators)"),
        (status = 404),
        (status = 408),
        (status = 409, description = "A gap before the piece, or another length than before (evidence-gap, evidence-length)"),
        (status = 413),
        (status = 415),
        (status = 422, description = "The visit does not refer to the file, or the whole file does not hash to its name (evidence-not-referenced, evidence-mismatch)"),
        (status = 500), (status = 503),
    )
)]
pub async fn put(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    let (visit, hash) = ids(path.into_inner())?;
    require_media(&req, OCTETS)?;
    let offset = header_u64(&req, "Upload-Offset")?;
    let length = header_u64(&req, "Upload-Length")?;
    if length > state.limits.max_evidence {
        return Err(Problem::FileTooLarge(state.limits.max_evidence));
    }
    declared_length(&req, state.limits.max_body)?;
    // Who may write here is known from the headers: refused before a byte
    // of the piece is read, as it would be after.
    let st = state.clone();
    let (d, v) = (device.clone(), visit.clone());
    web::block(move || may_upload(&mut st.store()?, &d, &v))
        .await
        .map_err(|e| Problem::Internal(e.to_string()))??;
    // The reservation is held until the piece is stored.
    let crate::routes::Body {
        bytes: piece,
        reserved: _reserved,
    } = read_body(&state, &req, payload, state.limits.max_body).await?;
    state
        .metrics
        .evidence_bytes_received
        .fetch_add(piece.len() as u64, Relaxed);
    let st = state.clone();
    let outcome = web::block(move || {
        let mut store = st.store()?;
        may_upload(&mut store, &device, &visit)?;
        // Only a file the visit refers to is taken: the server is not a
        // place to keep anything else. Checked when the upload starts.
        if store
            .evidence_status(&visit, &hash)
            .map_err(Problem::from)?
            .is_none()
        {
            let referenced = store
                .visit(&visit)
                .and_then(|v| Ok(v.state()?))
                .map_err(Problem::from)?
                .refers_to(&hash);
            if !referenced {
                return Err(Problem::Unprocessable(
                    "evidence-not-referenced",
                    format!(
                        "visit {visit} does not refer to evidence {hash}; sync the visit first"
                    ),
                ));
            }
        }
        store
            .receive_evidence(&visit, &hash, length, offset, &piece)
            .map_err(Problem::from)
    })
    .await
    .map_err(|e| Problem::Internal(e.to_string()))??;
    match outcome {
        Ok(status) => {
            if status.complete {
                tracing::info!(length = status.length, "evidence held whole");
            }
            Ok(HttpResponse::Ok().json(status_json(Some(status))))
        }
        Err(refusal) => Err(match refusal {
            EvidenceRefusal::Mismatch { .. } => {
                state.metrics.evidence_rejected.fetch_add(1, Relaxed);
                Problem::Unprocessable("evidence-mismatch", refusal.to_string())
            }
            EvidenceRefusal::Gap { .. } => Problem::Conflict("evidence-gap", refusal.to_string()),
            EvidenceRefusal::LengthChanged { .. } => {
                Problem::Conflict("evidence-length", refusal.to_string())
            }
            EvidenceRefusal::PastEnd { .. } => Problem::BadRequest(refusal.to_string()),
        }),
    }
}

/// Whether `device` may upload evidence of `visit`: one it may read (unknown
/// and out-of-scope visits alike are not found), by a role that writes.
fn may_upload(
    store: &mut impl ServerStore,
    device: &kiemtra_store::DeviceRecord,
    visit: &VisitId,
) -> Result<(), Problem> {
    summary_in_scope(store, device, visit)?;
    if !WRITERS.contains(&device.role.as_str()) {
        return Err(Problem::Forbidden(format!(
            "{}s cannot upload evidence; inspectors and supervisors can",
            device.role
        )));
    }
    Ok(())
}

/// Download an evidence file
///
/// `GET /v1/visits/{id}/evidence/{hash}`: the file, once held whole.
#[utoipa::path(
    get,
    path = "/v1/visits/{id}/evidence/{hash}",
    operation_id = "get_evidence",
    tag = "evidence",
    params(
        ("id" = schemas::Id, Path, description = "The visit's id"),
        ("hash" = schemas::Sha256, Path, description = "The file's SHA-256, hex"),
    ),
    responses(
        (status = 200, description = "The file", body = schemas::Bytes, content_type = "application/octet-stream"),
        (status = 400, description = "Not a visit id or not a SHA-256"),
        (status = 401),
        (status = 404, description = "No such visit for this device, or the file is not held whole"),
        (status = 500),
    )
)]
pub async fn get(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let bytes = read_in_scope(&state, &req, path.into_inner(), |store, visit, hash| {
        store
            .evidence_bytes(visit, hash, 0, u64::MAX)
            .map_err(Problem::from)?
            .ok_or_else(|| Problem::NotFound(format!("evidence {hash} is not held whole")))
    })
    .await?;
    Ok(HttpResponse::Ok().content_type(OCTETS).body(bytes))
}
