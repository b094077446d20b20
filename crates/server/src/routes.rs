//! HTTP handlers. Each answers errors as problem+json.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use kiemtra_core::VisitId;
use kiemtra_sync_protocol::MEDIA_TYPE;
use serde::{Deserialize, Serialize};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Instant;

use crate::auth;
use crate::engine;
use crate::openapi::schemas;
use crate::problem::Problem;
use crate::startup::AppState;
use crate::storage::ServerStore;

/// Whether the server takes writes
///
/// `ok` only while the store takes a write (a write transaction is begun
/// and rolled back); 503 otherwise.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "The store takes writes (`status` is `ok`)", body = schemas::Health),
        (status = 503, description = "The store does not take writes (`status` is `unavailable`)", body = schemas::Health),
    )
)]
pub async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    let st = state.clone();
    match web::block(move || st.store()?.check_writable()).await {
        Ok(Ok(())) => HttpResponse::Ok().json(serde_json::json!({ "status": "ok" })),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "the store does not take writes");
            HttpResponse::ServiceUnavailable()
                .json(serde_json::json!({ "status": "unavailable", "detail": "the store does not take writes" }))
        }
        Err(_) => {
            HttpResponse::ServiceUnavailable().json(serde_json::json!({ "status": "unavailable" }))
        }
    }
}

/// The server's metrics (Prometheus text)
///
/// Syncs, per-visit errors, visits applied and sent, bytes each way, a
/// latency histogram, enrollments and their refusals, authentication
/// failures. Not JSON: the Prometheus text format 0.0.4.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "Prometheus text", body = String, content_type = "text/plain"),
    )
)]
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

#[derive(Deserialize, utoipa::ToSchema)]
pub struct EnrollRequest {
    /// The single-use enrollment code (`XXXX-XXXX-XXXX-XXXX`; case, spaces
    /// and dashes do not matter).
    code: String,
    /// What the device is called, 1 to 100 characters.
    device_name: String,
    /// The device's Ed25519 public key, 64 hex characters.
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    public_key: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct EnrollResponse {
    device_id: String,
    /// The bearer token: send it as `Authorization: Bearer <token>`.
    token: String,
    user_id: String,
    team: String,
    #[schema(value_type = schemas::Role)]
    role: String,
}

/// Largest enrollment body: a code, a name and a key fit in far less.
const ENROLL_BODY: usize = 16 * 1024;
/// Most time a client has to send an enrollment body (the server's body
/// timeout when that is shorter).
const ENROLL_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Enroll a device with a code
///
/// `POST /v1/enroll`. Every attempt is counted; a client address with too
/// many failed attempts in the last minute is answered 429 with
/// `Retry-After`, before its body is read or the database touched. The body
/// is read here, bounded in size and time, then parsed.
#[utoipa::path(
    post,
    path = "/v1/enroll",
    tag = "devices",
    security(()),
    request_body = EnrollRequest,
    responses(
        (status = 201, description = "Enrolled: the device and its bearer token", body = EnrollResponse),
        (status = 400, description = "Not an enrollment request, a bad public key or device name"),
        (status = 403, description = "The code is unknown, used or expired (enrollment-refused)"),
        (status = 408), (status = 413), (status = 415),
        (status = 429, description = "Too many failed attempts from this address (too-many-attempts)"),
        (status = 500), (status = 503),
    )
)]
pub async fn enroll(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let metrics = &state.metrics;
    metrics.enrollment_attempts.fetch_add(1, Relaxed);
    let client = auth::client_key(req.peer_addr());
    if let Some(wait) = state.enroll_limiter.refused(client, Instant::now()) {
        metrics.enrollment_refusals.fetch_add(1, Relaxed);
        metrics.enrollments_limited.fetch_add(1, Relaxed);
        tracing::warn!(%client, "enrollment attempts refused: too many failures");
        return Ok(auth::too_many_attempts(wait));
    }
    let outcome = enroll_inner(&state, &req, payload).await;
    if let Err(problem) = &outcome {
        metrics.enrollment_refusals.fetch_add(1, Relaxed);
        // A fault of the server's is not the client's failure.
        if !matches!(problem, Problem::Internal(_)) {
            state.enroll_limiter.failed(client, Instant::now());
        }
        tracing::info!(%client, kind = problem.kind(), "enrollment refused");
    }
    outcome
}

async fn enroll_inner(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let media = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
        .unwrap_or("");
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(Problem::UnsupportedMediaType("application/json"));
    }
    let limit = state.limits.body_timeout.min(ENROLL_BODY_TIMEOUT);
    let body = tokio::time::timeout(limit, read_body(state, req, payload, ENROLL_BODY))
        .await
        .map_err(|_| Problem::Timeout(limit.as_secs()))??;
    let body: EnrollRequest = serde_json::from_slice(&body.bytes)
        .map_err(|e| Problem::BadRequest(format!("the enrollment request: {e}")))?;
    let st = state.clone();
    let (record, token, retry) = web::block(move || {
        let mut store = st.store()?;
        auth::enroll(&mut store, &body.code, &body.device_name, &body.public_key)
    })
    .await
    .map_err(|e| Problem::Internal(e.to_string()))??;
    if retry {
        state.metrics.enrollment_retries.fetch_add(1, Relaxed);
        tracing::info!(device = %record.device_id, user = %record.user_id, team = %record.team, "device enrolled again with the same key: new token");
    } else {
        state.metrics.enrollments.fetch_add(1, Relaxed);
        tracing::info!(device = %record.device_id, user = %record.user_id, team = %record.team, "device enrolled");
    }
    Ok(HttpResponse::Created().json(EnrollResponse {
        device_id: record.device_id,
        token,
        user_id: record.user_id,
        team: record.team,
        role: record.role,
    }))
}

/// Authenticates on the blocking pool (the lookup reads the database).
pub(crate) async fn authenticate(
    state: &web::Data<AppState>,
    req: &HttpRequest,
) -> Result<kiemtra_store::DeviceRecord, Problem> {
    let outcome = match auth::bearer(req) {
        Ok(token) => {
            let st = state.clone();
            web::block(move || auth::device(&mut st.store()?, &token))
                .await
                .map_err(|e| Problem::Internal(e.to_string()))?
        }
        Err(e) => Err(e),
    };
    if outcome.is_err() {
        state.metrics.auth_failures.fetch_add(1, Relaxed);
    }
    outcome
}

/// Refuses a body whose `Content-Type` is not `media`.
pub(crate) fn require_media(req: &HttpRequest, media: &'static str) -> Result<(), Problem> {
    let sent = req
        .headers()
        .get("Content-Type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sent == media {
        Ok(())
    } else {
        Err(Problem::UnsupportedMediaType(media))
    }
}

/// The body's declared `Content-Length`, refused before anything is read
/// when it is over `limit` (`None` for a body sent without one).
pub(crate) fn declared_length(req: &HttpRequest, limit: usize) -> Result<Option<usize>, Problem> {
    let Some(value) = req.headers().get(actix_web::http::header::CONTENT_LENGTH) else {
        return Ok(None);
    };
    let n = value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or_else(|| Problem::BadRequest("Content-Length must be a number of bytes".into()))?;
    match usize::try_from(n) {
        Ok(n) if n <= limit => Ok(Some(n)),
        _ => Err(Problem::TooLarge(limit)),
    }
}

/// A request body held in memory with its reservation under the server's
/// bound on bytes buffered at once; the bytes are released when this (and
/// whatever keeps the reservation) is dropped.
pub(crate) struct Body {
    pub bytes: Vec<u8>,
    pub reserved: crate::startup::Reserved,
}

/// Reads a body of at most `limit` bytes: refuses a declared length over
/// the limit before reading, reserves the declared length (the limit when
/// none is declared) under the server-wide bound — waiting for room, in
/// arrival order, for at most the body timeout, then refusing as busy —
/// and then gives the body the body timeout to arrive. A body that grows
/// past what it reserved is refused.
pub(crate) async fn read_body(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Body, Problem> {
    let declared = declared_length(req, limit)?;
    let timeout = state.limits.body_timeout;
    let room = declared.unwrap_or(limit);
    let reserved = state
        .buffered
        .reserve(room, tokio::time::Instant::now() + timeout)
        .await?;
    let read = async {
        // The whole declared length at once: no copies while growing, and
        // pages the sender never fills are never touched.
        let mut body = Vec::with_capacity(declared.unwrap_or(0));
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|e| Problem::BadRequest(format!("reading the body: {e}")))?;
            if body.len() + chunk.len() > room {
                return Err(Problem::TooLarge(room));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    };
    let bytes = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| Problem::Timeout(timeout.as_secs()))??;
    Ok(Body { bytes, reserved })
}

/// Sync visits (binary protocol)
///
/// The sync protocol of sync-protocol/SPEC.md: a signed request of the
/// device's changes and what it has, answered with what it lacks. Not
/// JSON: both bodies are `application/x-kiemtra-sync`.
#[utoipa::path(
    post,
    path = "/v1/sync",
    tag = "visits",
    request_body(content = schemas::Bytes, content_type = "application/x-kiemtra-sync"),
    responses(
        (status = 200, description = "The sync answer", body = schemas::Bytes, content_type = "application/x-kiemtra-sync"),
        (status = 400, description = "A malformed sync message or an unsupported protocol version (bad-message, unsupported-version)"),
        (status = 401), (status = 408), (status = 413), (status = 415), (status = 500), (status = 503),
    )
)]
pub async fn sync(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let started = Instant::now();
    let outcome = sync_inner(&state, &req, payload).await;
    state.metrics.observe_latency(started.elapsed());
    if outcome.is_err() {
        state.metrics.sync_errors.fetch_add(1, Relaxed);
    }
    outcome
}

async fn sync_inner(
    state: &web::Data<AppState>,
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    // A full queue refuses before anything is read or looked up.
    if let Some(secs) = state.admission.full() {
        state.metrics.syncs_shed.fetch_add(1, Relaxed);
        return Err(Problem::Busy(secs));
    }
    let device = authenticate(state, req).await?;
    require_media(req, MEDIA_TYPE)?;
    let Body {
        bytes: body,
        reserved: _reserved,
    } = read_body(state, req, payload, state.limits.max_body).await?;
    state
        .metrics
        .bytes_received
        .fetch_add(body.len() as u64, Relaxed);
    // Decoding, the engine and encoding the answer take a place; waiting
    // requests hold only their body. (The engine itself runs one request at
    // a time behind the store's lock; without this, every waiting request
    // would sit decoded on a blocking thread.)
    let place = state.admission.enter().map_err(|secs| {
        state.metrics.syncs_shed.fetch_add(1, Relaxed);
        Problem::Busy(secs)
    })?;
    let _slot = match tokio::time::timeout(crate::admission::SLOT_WAIT, place.slot()).await {
        Ok(slot) => slot.map_err(|e| Problem::Internal(e.to_string()))?,
        Err(_) => {
            state.metrics.syncs_shed.fetch_add(1, Relaxed);
            return Err(Problem::Busy(state.admission.rebook()));
        }
    };
    let (request, budget) = engine::decode_request(
        &body,
        &device,
        state.limits.max_body,
        state.limits.max_response,
    )?;
    // The decoded request holds what it needs; the reservation now covers
    // it (at most a small multiple of the body, SPEC §3) until the end.
    drop(body);
    let st = state.clone();
    let visits = request.visits.len();
    let response = web::block(move || {
        let mut store = st.store()?;
        // One transaction per request: one disk sync, and a request that
        // fails part-way stores nothing (the client retries it whole).
        store.batch(|store| engine::sync(store, &device, &request, budget, &st.metrics))
    })
    .await
    .map_err(|e| Problem::Internal(e.to_string()))?
    .map_err(|e| Problem::internal(&e))?;
    let bytes = response.encode();
    let (answered, more) = (response.visits.len(), response.more);
    // The answer's documents are in `bytes` now; free the decoded copy
    // before the body is sent (else four concurrent downloads each hold both).
    drop(response);
    state.metrics.syncs.fetch_add(1, Relaxed);
    state
        .metrics
        .bytes_sent
        .fetch_add(bytes.len() as u64, Relaxed);
    tracing::debug!(visits, answered, more, bytes = bytes.len(), "sync");
    Ok(HttpResponse::Ok().content_type(MEDIA_TYPE).body(bytes))
}

/// The visits the device may read
///
/// Its team's visits, as summaries (every team's for auditors, none for
/// administrators).
#[utoipa::path(
    get,
    path = "/v1/visits",
    tag = "visits",
    responses(
        (status = 200, description = "The visits' summaries", body = Vec<schemas::VisitSummary>),
        (status = 401), (status = 500),
    )
)]
pub async fn list_visits(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    let st = state.clone();
    let list = web::block(move || st.store()?.list_visits())
        .await
        .map_err(|e| Problem::Internal(e.to_string()))?
        .map_err(Problem::from)?;
    let mine: Vec<_> = list
        .into_iter()
        .filter(|s| in_scope(&device, &s.team))
        .collect();
    Ok(HttpResponse::Ok().json(mine))
}

/// A device of the caller's team as `GET /v1/team/devices` lists it: what a
/// phone needs to check, with no signal, a colleague's signatures in a
/// bundle (SPEC §13).
#[derive(serde::Serialize, utoipa::ToSchema)]
struct TeamDevice {
    device_id: String,
    user_id: String,
    #[schema(value_type = schemas::Role)]
    role: String,
    /// The Ed25519 public key, hex.
    public_key: String,
    revoked: bool,
}

/// The devices of the caller's team
///
/// Auditors and administrators: of the team they enrolled in. Revoked
/// devices are listed, marked.
#[utoipa::path(
    get,
    path = "/v1/team/devices",
    tag = "devices",
    responses(
        (status = 200, description = "The team's devices", body = Vec<TeamDevice>),
        (status = 401), (status = 500),
    )
)]
pub async fn team_devices(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    let st = state.clone();
    let all = web::block(move || st.store()?.devices())
        .await
        .map_err(|e| Problem::Internal(e.to_string()))?
        .map_err(Problem::from)?;
    let team: Vec<TeamDevice> = all
        .into_iter()
        .filter(|d| d.team == device.team)
        .map(|d| TeamDevice {
            public_key: kiemtra_core::hex::encode(&d.public_key),
            revoked: d.revoked_at.is_some(),
            device_id: d.device_id,
            user_id: d.user_id,
            role: d.role,
        })
        .collect();
    Ok(HttpResponse::Ok().json(team))
}

/// One visit's summary
///
/// 404 for unknown visits and for other teams' visits alike.
#[utoipa::path(
    get,
    path = "/v1/visits/{id}",
    tag = "visits",
    params(("id" = schemas::Id, Path, description = "The visit's id")),
    responses(
        (status = 200, description = "The visit's summary", body = schemas::VisitSummary),
        (status = 400, description = "Not a visit id"),
        (status = 401), (status = 404), (status = 500),
    )
)]
pub async fn get_visit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    let id = VisitId::parse(&path.into_inner()).map_err(|e| Problem::BadRequest(e.to_string()))?;
    let st = state.clone();
    let summary = web::block(move || summary_in_scope(&mut st.store()?, &device, &id))
        .await
        .map_err(|e| Problem::Internal(e.to_string()))??;
    Ok(HttpResponse::Ok().json(summary))
}

/// A visit's summary if `device` may read it; unknown visits and other
/// teams' visits alike are "not found".
pub(crate) fn summary_in_scope(
    store: &mut impl ServerStore,
    device: &kiemtra_store::DeviceRecord,
    id: &VisitId,
) -> Result<kiemtra_store::VisitSummary, Problem> {
    match store.summary(id) {
        Ok(s) if in_scope(device, &s.team) => Ok(s),
        Ok(_) | Err(kiemtra_store::Error::UnknownVisit(_)) => {
            Err(Problem::NotFound(format!("no visit {id}")))
        }
        Err(e) => Err(Problem::from(e)),
    }
}

/// When each change of a visit was received
///
/// `GET /v1/visits/{id}/receipts`: when the server first received each
/// change of a visit, and from which device's signed batch, as a JSON list
/// of `{hash, received_at, signer}` — the server's side of a replay.
#[utoipa::path(
    get,
    path = "/v1/visits/{id}/receipts",
    tag = "visits",
    params(("id" = schemas::Id, Path, description = "The visit's id")),
    responses(
        (status = 200, description = "One receipt per change", body = Vec<schemas::Receipt>),
        (status = 400, description = "Not a visit id"),
        (status = 401), (status = 404), (status = 500),
    )
)]
pub async fn visit_receipts(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    let id = VisitId::parse(&path.into_inner()).map_err(|e| Problem::BadRequest(e.to_string()))?;
    let st = state.clone();
    let receipts = web::block(move || {
        let mut store = st.store()?;
        summary_in_scope(&mut store, &device, &id)?;
        let (index, _) = store.visit(&id).map_err(Problem::from)?.change_index();
        store.change_receipts(&id, &index).map_err(Problem::from)
    })
    .await
    .map_err(|e| Problem::Internal(e.to_string()))??;
    let list: Vec<serde_json::Value> = receipts
        .changes
        .into_iter()
        .map(|(hash, r)| {
            serde_json::json!({
                "hash": hash.to_string(),
                "received_at": r.record.received_at,
                "signer": r.record.signer,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(list))
}

/// Whether a device may read a visit of `team`: its own team's, every
/// team's for auditors, none for administrators.
fn in_scope(device: &kiemtra_store::DeviceRecord, team: &str) -> bool {
    match device.role.as_str() {
        "auditor" => true,
        "administrator" => false,
        _ => device.team == team,
    }
}

/// Who may verify: auditors (any visit) and supervisors (their team's).
fn may_verify(device: &kiemtra_store::DeviceRecord, team: &str) -> Result<(), Problem> {
    if !in_scope(device, team) {
        return Err(Problem::NotFound("no such visit".into()));
    }
    match device.role.as_str() {
        "auditor" | "supervisor" => Ok(()),
        role => Err(Problem::Forbidden(format!(
            "{role}s cannot verify visits; auditors and supervisors can"
        ))),
    }
}

/// Verify one visit
///
/// `GET /v1/visits/{id}/verify`: the audit of one visit — every change
/// signed by an enrolled device that could write it, every approval by a
/// supervisor, nothing missing. Auditors (any visit) and supervisors
/// (their team's).
#[utoipa::path(
    get,
    path = "/v1/visits/{id}/verify",
    tag = "visits",
    params(("id" = schemas::Id, Path, description = "The visit's id")),
    responses(
        (status = 200, description = "The verification report", body = schemas::VerifyReport),
        (status = 400, description = "Not a visit id"),
        (status = 401),
        (status = 403, description = "The device's role does not verify (inspectors)"),
        (status = 404), (status = 500),
    )
)]
pub async fn verify_visit(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    let id = VisitId::parse(&path.into_inner()).map_err(|e| Problem::BadRequest(e.to_string()))?;
    let st = state.clone();
    let report = web::block(move || {
        let mut store = st.store()?;
        let summary = summary_in_scope(&mut store, &device, &id)?;
        may_verify(&device, &summary.team)?;
        crate::verify::verify_visit(&mut store, &id).map_err(Problem::from)
    })
    .await
    .map_err(|e| Problem::Internal(e.to_string()))??;
    Ok(HttpResponse::Ok().json(report))
}

/// Verify a campaign's visits
///
/// `GET /v1/campaigns/{id}/verify`: the audit of every visit of a campaign
/// the device may verify; 404 when there is none.
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}/verify",
    tag = "visits",
    params(("id" = schemas::Id, Path, description = "The campaign's id")),
    responses(
        (status = 200, description = "One report per visit", body = schemas::CampaignVerification),
        (status = 400, description = "Not a campaign id"),
        (status = 401), (status = 404), (status = 500),
    )
)]
pub async fn verify_campaign(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    let campaign = kiemtra_core::CampaignId::parse(&path.into_inner())
        .map_err(|e| Problem::BadRequest(e.to_string()))?;
    let st = state.clone();
    let reports = web::block(move || {
        let mut store = st.store()?;
        let list = store.list_visits().map_err(Problem::from)?;
        // The administration log is replayed once for the whole campaign.
        let log = crate::admin::directory(&mut store).map_err(|p| p.to_string());
        let mut reports = Vec::new();
        for s in list.iter().filter(|s| s.campaign == campaign.as_str()) {
            if may_verify(&device, &s.team).is_ok() {
                reports.push(
                    crate::verify::verify_visit_with(&mut store, &s.id, &log)
                        .map_err(Problem::from)?,
                );
            }
        }
        if reports.is_empty() {
            return Err(Problem::NotFound(format!(
                "no visit of campaign {campaign} you may verify"
            )));
        }
        Ok(reports)
    })
    .await
    .map_err(|e| Problem::Internal(e.to_string()))??;
    let ok = reports.iter().all(|r| r.ok);
    Ok(HttpResponse::Ok().json(serde_json::json!({ "ok": ok, "visits": reports })))
}

/// The answer to a method a path does not take: 405 with `Allow`.
pub fn method_not_allowed(
    allow: &'static str,
) -> impl Fn() -> std::future::Ready<Result<HttpResponse, Problem>> + Clone + 'static {
    move || std::future::ready(Err(Problem::MethodNotAllowed(allow)))
}

pub async fn not_found(req: HttpRequest) -> Result<HttpResponse, Problem> {
    Err(Problem::NotFound(format!(
        "no route {} {}",
        req.method(),
        req.path()
    )))
}
