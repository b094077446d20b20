//! The OpenAPI 3.1 document of the HTTP API, served at `GET /v1/openapi.json`.
//!
//! Each operation is described where its handler is (`#[utoipa::path]` on
//! the handler), with the types it answers with; [`ApiDoc`] gathers them.
//! The answers made of another crate's types (the administration log and
//! directory, a visit's summary, a verification report) are described by
//! the mirrors in [`schemas`], field for field as those types serialize.
//! Two rules hold for every operation and are applied here once, by
//! [`Errors`]: every error answer is `application/problem+json`
//! ([`crate::problem`]), and a 401 says `WWW-Authenticate`, a 429 or 503
//! `Retry-After`.
//!
//! `crates/server/tests/openapi.rs` checks that every route of the route
//! table is in the document; `scripts/api-property-test.sh` runs the whole
//! API against it with schemathesis.

use actix_web::HttpResponse;
use std::sync::LazyLock;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, Response, header::Header};
use utoipa::{Modify, OpenApi, PartialSchema};

use crate::problem::Problem;

const DESCRIPTION: &str = "\
The kiemtra sync and administration server: phones enroll and sync their \
inspection visits; auditors and supervisors verify them; administrators \
keep the signed administration log and the directory it builds.

Every JSON endpoint is here. Two are not JSON: `POST /v1/sync` takes and \
answers the binary sync protocol (`application/x-kiemtra-sync`, \
sync-protocol/SPEC.md), described here as an opaque body, and \
`GET /metrics` answers Prometheus text. Errors are \
`application/problem+json` (RFC 9457) with a stable `type` \
`urn:kiemtra:problem:<kind>`. Every request but enrollment, health, \
metrics and this document needs a device's bearer token \
(`Authorization: Bearer <token>`, from `POST /v1/enroll`).

Máy chủ đồng bộ và quản trị kiemtra: điện thoại đăng ký và đồng bộ các \
cuộc kiểm tra; kiểm toán viên và trưởng đoàn xác minh; quản trị viên giữ \
nhật ký quản trị đã ký và danh bạ lập từ nhật ký đó.";

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(title = "kiemtra server API", description = DESCRIPTION, license(name = "MIT OR Apache-2.0")),
    paths(
        crate::routes::healthz,
        crate::routes::metrics,
        document,
        crate::routes::enroll,
        crate::routes::sync,
        crate::routes::list_visits,
        crate::routes::get_visit,
        crate::routes::visit_receipts,
        crate::routes::verify_visit,
        crate::routes::verify_campaign,
        campaign_report,
        crate::routes::team_devices,
        crate::evidence::status,
        crate::evidence::put,
        crate::evidence::get,
        crate::admin_routes::get_log,
        crate::admin_routes::post_log,
        crate::admin_routes::get_directory,
        crate::admin_routes::check_devices,
        crate::admin_routes::prepare_import,
        crate::admin_routes::export,
    ),
    components(schemas(
        schemas::Sha256,
        schemas::ImportKind,
        schemas::ExportList,
        schemas::ExportFormat,
        schemas::ReportFormat,
        schemas::Lang,
    )),
    modifiers(&Errors),
    security(("bearer" = [])),
    tags(
        (name = "service", description = "Health, metrics and this document"),
        (name = "devices", description = "Enrollment and the team's devices"),
        (name = "visits", description = "Visits, their receipts and their verification"),
        (name = "evidence", description = "Evidence files (photos), uploaded in resumable pieces"),
        (name = "administration", description = "The administration log, the directory, imports and exports"),
    )
)]
pub struct ApiDoc;

static DOCUMENT: LazyLock<Result<String, String>> =
    LazyLock::new(|| ApiDoc::openapi().to_json().map_err(|e| e.to_string()));

/// This document
///
/// The OpenAPI 3.1 description of every endpoint, generated from the code.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "service",
    security(()),
    responses(
        (status = 200, description = "The OpenAPI document", body = schemas::OpenApiDocument),
        (status = 500, description = "The document could not be written"),
    )
)]
pub async fn document() -> Result<HttpResponse, Problem> {
    let json = DOCUMENT
        .as_ref()
        .map_err(|e| Problem::Internal(e.clone()))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json.clone()))
}

/// A campaign's report
///
/// `GET /v1/campaigns/{id}/report?format=md|csv|json|xlsx|pdf&lang=vi|en`: the
/// report of a campaign computed from the approved states of its visits
/// (auditors: every visit; supervisors: their team's). The handler is
/// `report_routes::campaign_report`; it is described here.
#[utoipa::path(
    get,
    path = "/v1/campaigns/{id}/report",
    tag = "visits",
    params(
        ("id" = schemas::Id, Path, description = "The campaign's id"),
        ("format" = Option<schemas::ReportFormat>, Query, description = "`md` (the default), `csv`, `json`, `xlsx` or `pdf` (the layout of administrative documents, Decree 30/2020/NĐ-CP)"),
        ("lang" = Option<schemas::Lang>, Query, description = "`vi` (the default) or `en`"),
        ("parent_body" = Option<String>, Query, description = "PDF: the body above the issuer; default `UBND` and the province's name"),
        ("issuer" = Option<String>, Query, description = "PDF: the issuing body; default `SỞ NỘI VỤ`"),
        ("number" = Option<String>, Query, description = "PDF: number and symbol, e.g. `125/BC-SNV`"),
        ("place" = Option<String>, Query, description = "PDF: the place of the date line; default the province's name"),
        ("date" = Option<String>, Query, description = "PDF: the date, dd/mm/yyyy; default today in Viet Nam"),
        ("signer_position" = Option<String>, Query, description = "PDF: the signer's position, lines separated by `|`"),
        ("signer" = Option<String>, Query, description = "PDF: the signer's full name; default the requesting user's"),
        ("recipients" = Option<String>, Query, description = "PDF: the recipients, separated by `|`"),
    ),
    responses(
        (status = 200, description = "The report",
            content(
                (schemas::Bytes = "text/markdown"),
                (schemas::Bytes = "text/csv"),
                (schemas::CampaignReport = "application/json"),
                (schemas::Bytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                (schemas::Bytes = "application/pdf"),
            )
        ),
        (status = 400, description = "Not a campaign id, a format, a language, a date, or a letterhead field too long"),
        (status = 401),
        (status = 403, description = "The device's role does not read reports (inspectors, administrators)"),
        (status = 404, description = "No visit of the campaign the device may see"),
        (status = 500),
    )
)]
#[allow(dead_code)]
fn campaign_report() {}

/// The bearer scheme, and the shape of every error answer: each 4xx and
/// 5xx answer without a body of its own is a problem document, with the
/// headers its status carries.
struct Errors;

impl Modify for Errors {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        components
            .schemas
            .insert("Problem".into(), crate::problem::Body::schema());
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in operations.into_iter().flatten() {
                for (status, response) in op.responses.responses.iter_mut() {
                    if let RefOr::T(response) = response {
                        error_answer(status, response);
                    }
                }
            }
        }
    }
}

fn error_answer(status: &str, response: &mut Response) {
    let code: u16 = status.parse().unwrap_or(0);
    if code < 400 {
        return;
    }
    if response.content.is_empty() {
        response.content.insert(
            "application/problem+json".into(),
            Content::new(Some(Ref::from_schema_name("Problem"))),
        );
    }
    if response.description.is_empty() {
        response.description = standard_description(code).into();
    }
    let header = |description: &str| {
        let mut h = Header::new(String::schema());
        h.description = Some(description.into());
        h
    };
    match code {
        401 => {
            response.headers.insert(
                "WWW-Authenticate".into(),
                header("`Bearer`: send a device's token"),
            );
        }
        429 | 503 => {
            response.headers.insert(
                "Retry-After".into(),
                header("Whole seconds to wait before trying again"),
            );
        }
        _ => {}
    }
}

fn standard_description(code: u16) -> &'static str {
    match code {
        400 => "The request is malformed (bad-request)",
        401 => {
            "No bearer token, an unknown token or a revoked device (unauthenticated, bad-credentials, device-revoked)"
        }
        403 => "The device's role may not do this (forbidden)",
        404 => "No such resource, or one the device may not see (not-found)",
        408 => "The body did not arrive in time (request-timeout)",
        409 => "The request conflicts with what the server holds",
        413 => "The body is larger than the server takes (too-large)",
        415 => {
            "The body's Content-Type is not the one this endpoint takes (unsupported-media-type)"
        }
        422 => "Well formed but not acceptable",
        429 => "Too many attempts; try again after Retry-After",
        500 => "The server failed; nothing of the request was kept; retry later (internal)",
        503 => "The server is busy; try again after Retry-After (busy)",
        _ => "An error",
    }
}

/// Descriptions of the answers made of other crates' types, field for field
/// as those types serialize (`serde_json`). They are never built: the
/// handlers answer with the real types, and schemathesis checks the real
/// answers against these. Those only ever answered are closed
/// (`deny_unknown_fields`: `additionalProperties: false`), so a field added
/// to the real type and not here fails the property test.
#[allow(dead_code)]
pub(crate) mod schemas {
    use chrono::NaiveDate;
    use serde::Serialize;
    use std::collections::BTreeMap;
    use utoipa::ToSchema;

    /// An identifier: letters A-Z and a-z, digits, `.`, `_` and `-`, 1 to 64 characters.
    #[derive(Serialize, ToSchema)]
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    pub struct Id(String);

    /// Bytes, not JSON: a file, or a message of the sync protocol.
    #[derive(Serialize, ToSchema)]
    #[schema(value_type = String, format = Binary)]
    pub struct Bytes(Vec<u8>);

    /// A SHA-256 digest, 64 hexadecimal characters.
    #[derive(Serialize, ToSchema)]
    #[schema(pattern = "^[0-9a-fA-F]{64}$")]
    pub struct Sha256(String);

    /// What a user may do.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Role {
        Inspector,
        Supervisor,
        Auditor,
        Administrator,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum UnitKind {
        Department,
        DistrictOffice,
        CommuneCommittee,
        OneStopCentre,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Tier {
        Province,
        District,
        Commune,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum StaffCategory {
        Leader,
        CivilServant,
        PublicEmployee,
        Contract,
    }

    /// `GET /healthz`.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Health {
        pub status: HealthStatus,
        /// Why the server is unavailable, when it knows.
        #[schema(required = false)]
        pub detail: String,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum HealthStatus {
        Ok,
        Unavailable,
    }

    /// The OpenAPI document itself (described by its own specification).
    #[derive(Serialize, ToSchema)]
    pub struct OpenApiDocument {
        #[schema(pattern = r"^3\.1\.\d+$")]
        pub openapi: String,
        #[schema(value_type = Object)]
        pub info: (),
        #[schema(value_type = Object)]
        pub paths: (),
    }

    /// Attendance figures for the staff on payroll.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Tally {
        pub payroll: u32,
        pub present: u32,
        pub late: u32,
        pub absent: u32,
        pub unrecorded: u32,
        /// The absent by reason (`business_trip`, `training`, `leave`,
        /// `sick`, `unexcused`, `other`).
        pub absent_by_reason: BTreeMap<String, u32>,
    }

    /// What a listing shows of a visit.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct VisitSummary {
        #[schema(value_type = Id)]
        pub id: String,
        pub unit_code: String,
        pub unit_name: String,
        pub unit_kind: String,
        pub campaign: String,
        pub team: String,
        /// `YYYY-MM-DD`.
        pub scheduled_on: String,
        /// `draft`, `submitted`, `approved` or `returned`.
        pub status: String,
        pub conflicts: u32,
        pub tally: Tally,
        /// The document's heads: sorted, distinct change hashes (hex).
        pub heads: Vec<String>,
        pub updated_at: String,
    }

    /// When the server first received a change, and from whose signed batch.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Receipt {
        /// The change hash, hex.
        pub hash: String,
        /// RFC 3339, UTC.
        pub received_at: String,
        /// The device whose signed batch brought it.
        pub signer: String,
    }

    /// One problem a verification found.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct VerifyProblem {
        /// Hex change hash, or the approval id.
        pub subject: String,
        /// Stable rule name, e.g. `bad-signature`, `missing-change`.
        pub rule: String,
        pub detail: String,
    }

    /// The audit of one visit.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct VerifyReport {
        pub visit_id: String,
        pub changes_checked: u64,
        pub approvals_checked: u64,
        pub evidence_referenced: u64,
        pub evidence_held: u64,
        /// Referenced files not (yet) uploaded whole.
        pub evidence_missing: Vec<String>,
        pub ok: bool,
        pub problems: Vec<VerifyProblem>,
    }

    /// The audit of every visit of a campaign the device may verify.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CampaignVerification {
        /// Every visit verifies.
        pub ok: bool,
        pub visits: Vec<VerifyReport>,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ReportFormat {
        Md,
        Csv,
        Json,
        Xlsx,
        Pdf,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum Lang {
        Vi,
        En,
    }

    /// A campaign's report (`kiemtra_admin::report::CampaignReport`).
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CampaignReport {
        pub campaign: String,
        pub title: String,
        /// Units inspected, by the label of their kind.
        pub units_by_kind: BTreeMap<String, u32>,
        pub units_inspected: u32,
        pub tally: Tally,
        pub present_pct: String,
        pub absent_pct: String,
        /// Each reason of absence: its label, the count and its share.
        pub reasons: Vec<(String, u32, String)>,
        pub conduct_violations: Vec<(String, u32)>,
        pub checks_failed: Vec<(String, u32)>,
        pub findings: Vec<(String, String, String)>,
        pub not_approved: Vec<String>,
        pub approved_at: Vec<(String, String)>,
        /// Inspected units formed by a merger, each with the units it absorbed.
        pub merged_units: Vec<(String, Vec<String>)>,
        /// Visits made for an office found on the way, not from an assignment.
        pub unplanned: Vec<String>,
        /// The campaign's random draws, each rechecked from its seed.
        pub draws: Vec<ReportDraw>,
        /// Values recorded on checks beyond pass or fail: unit, check, value.
        pub check_values: Vec<(String, String, String)>,
        /// The users whose signed approvals the figures count (with their
        /// full names where the directory knows them).
        pub approvers: Vec<String>,
        /// SHA-256 (hex) over the counted visits' ids, approved heads and
        /// approval signatures.
        pub verification: String,
    }

    /// A draw of a campaign as its report shows it.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ReportDraw {
        pub committed_at: String,
        pub commitment: String,
        pub candidates: Vec<String>,
        pub count: u32,
        /// Null until revealed.
        pub seed: Option<String>,
        pub selection: Vec<String>,
        pub revealed_at: Option<String>,
        /// The seed hashes to the commitment and selects the selection.
        pub rechecked: bool,
    }

    /// How much of an evidence file the server holds.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct EvidenceStatus {
        /// The file's whole length, bytes; null while nothing is held.
        pub length: Option<u64>,
        /// Bytes held so far, from the start.
        pub received: u64,
        /// Held whole, and the bytes hash to the file's name.
        pub complete: bool,
    }

    /// Where the administration log stands.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Head {
        /// Entries in the log (0 for an empty log).
        pub seq: u64,
        /// Hex hash of the last entry; empty for an empty log.
        pub hash: String,
        /// The last entry's time; empty for an empty log.
        pub at: String,
    }

    /// Who wrote an entry.
    #[derive(Serialize, ToSchema)]
    #[serde(tag = "kind", rename_all = "snake_case")]
    pub enum Author {
        /// An enrolled administrator's device; the entry carries its signature.
        Device { device_id: String },
        /// The server: an enrollment it witnessed, or a code issued on the
        /// server machine.
        Server,
    }

    /// An area of the administrative hierarchy.
    #[derive(Serialize, ToSchema)]
    pub struct Area {
        pub code: String,
        pub name: String,
        pub tier: Tier,
        #[schema(required = false)]
        pub parent: String,
        pub valid_from: NaiveDate,
        #[schema(required = false)]
        pub valid_to: NaiveDate,
    }

    /// A unit (office) as imported.
    #[derive(Serialize, ToSchema)]
    pub struct UnitRecord {
        pub code: String,
        pub name: String,
        pub kind: UnitKind,
        pub area: String,
        pub valid_from: NaiveDate,
        #[schema(required = false)]
        pub valid_to: NaiveDate,
    }

    /// One person on a unit's roster.
    #[derive(Serialize, ToSchema)]
    pub struct StaffMember {
        pub id: String,
        pub name: String,
        #[schema(required = false)]
        pub position: String,
        pub category: StaffCategory,
        pub on_payroll: bool,
        #[schema(required = false)]
        pub found_on_site: bool,
    }

    /// One administrative act, by its `type`.
    #[derive(Serialize, ToSchema)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Act {
        UserCreated {
            user_id: String,
            full_name: String,
            role: Role,
        },
        UserUpdated {
            user_id: String,
            full_name: String,
            active: bool,
        },
        TeamCreated {
            team_id: String,
            name: String,
        },
        TeamMembers {
            team_id: String,
            leaders: Vec<String>,
            members: Vec<String>,
        },
        AreasImported {
            areas: Vec<Area>,
        },
        UnitsImported {
            units: Vec<UnitRecord>,
        },
        RosterPublished {
            unit: String,
            valid_from: NaiveDate,
            staff: Vec<StaffMember>,
        },
        UnitsMerged {
            into: String,
            absorbed: Vec<String>,
            on: NaiveDate,
        },
        TemplatePublished {
            template_id: String,
            version: u32,
            json: String,
        },
        CampaignCreated {
            campaign_id: String,
            title: String,
            decision: String,
            starts_on: NaiveDate,
            ends_on: NaiveDate,
            province: String,
            template_id: String,
            template_version: u32,
            teams: Vec<String>,
        },
        Assigned {
            campaign_id: String,
            team_id: String,
            unit: String,
            planned_on: NaiveDate,
            visit_id: String,
        },
        CodeIssued {
            code_hash: String,
            user_id: String,
            team_id: String,
            role: Role,
            expires_at: String,
        },
        DeviceEnrolled {
            device_id: String,
            user_id: String,
            team_id: String,
            role: Role,
            public_key: String,
            device_name: String,
            code_hash: String,
        },
        DeviceRevoked {
            device_id: String,
        },
        DrawCommitted {
            campaign_id: String,
            commitment: String,
            candidates: Vec<String>,
            count: u32,
        },
        DrawRevealed {
            campaign_id: String,
            seed: String,
            selection: Vec<String>,
        },
    }

    /// One entry of the administration log.
    #[derive(Serialize, ToSchema)]
    pub struct Entry {
        /// 1 for the first entry, then one more each.
        pub seq: u64,
        /// Hex hash of the entry before; empty for the first.
        pub prev: String,
        /// RFC 3339, UTC, whole seconds.
        pub at: String,
        pub by: Author,
        pub act: Act,
        /// Hex Ed25519 signature of the author's device; absent for the server's entries.
        #[schema(required = false)]
        pub signature: String,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct User {
        pub user_id: String,
        pub full_name: String,
        pub role: Role,
        pub active: bool,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Team {
        pub team_id: String,
        pub name: String,
        pub leaders: Vec<String>,
        pub members: Vec<String>,
    }

    /// A roster in force from a date on.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RosterVersion {
        pub valid_from: NaiveDate,
        pub seq: u64,
        pub staff: Vec<StaffMember>,
    }

    /// A unit with everything the log says about it.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct UnitEntry {
        pub code: String,
        pub name: String,
        pub kind: UnitKind,
        pub area: String,
        pub valid_from: NaiveDate,
        #[schema(required = false)]
        pub valid_to: NaiveDate,
        /// Units merged into this one, each with the day the merge took effect.
        pub absorbed: Vec<(String, NaiveDate)>,
        /// The unit this one merged into, and from when.
        #[schema(required = false)]
        pub merged_into: (String, NaiveDate),
        pub rosters: Vec<RosterVersion>,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct PublishedTemplate {
        pub template_id: String,
        pub version: u32,
        pub title_vi: String,
        pub title_en: String,
        pub checks: u64,
        pub json: String,
        pub seq: u64,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Assignment {
        pub team_id: String,
        pub unit: String,
        pub planned_on: NaiveDate,
        pub visit_id: String,
        pub seq: u64,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct DrawRecord {
        pub commitment: String,
        pub candidates: Vec<String>,
        pub count: u32,
        pub committed_at: String,
        #[schema(required = false)]
        pub seed: String,
        #[schema(required = false)]
        pub selection: Vec<String>,
        #[schema(required = false)]
        pub revealed_at: String,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Campaign {
        pub campaign_id: String,
        pub title: String,
        pub decision: String,
        pub starts_on: NaiveDate,
        pub ends_on: NaiveDate,
        pub province: String,
        pub template_id: String,
        pub template_version: u32,
        pub teams: Vec<String>,
        pub assignments: Vec<Assignment>,
        pub draws: Vec<DrawRecord>,
        pub created_at: String,
    }

    /// An enrollment code as the log records it.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Code {
        pub user_id: String,
        pub team_id: String,
        pub role: Role,
        pub expires_at: String,
        pub issued_by: Author,
        pub seq: u64,
        /// The device that redeemed it.
        #[schema(required = false)]
        pub used_by: String,
    }

    /// A device as the log records it.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct LoggedDevice {
        pub device_id: String,
        pub user_id: String,
        pub team_id: String,
        pub role: Role,
        /// Hex Ed25519 public key.
        pub public_key: String,
        pub device_name: String,
        pub enrolled_at: String,
        pub seq: u64,
        #[schema(required = false)]
        pub revoked_at: String,
    }

    /// Everything the administration log says, as of its head; each map
    /// keyed by the id of what it holds.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Directory {
        pub head: Head,
        pub users: BTreeMap<String, User>,
        pub teams: BTreeMap<String, Team>,
        pub areas: BTreeMap<String, Area>,
        pub units: BTreeMap<String, UnitEntry>,
        /// Keyed `<template_id> v<version>`.
        pub templates: BTreeMap<String, PublishedTemplate>,
        pub campaigns: BTreeMap<String, Campaign>,
        /// Keyed by the code's SHA-256 (hex).
        pub codes: BTreeMap<String, Code>,
        pub devices: BTreeMap<String, LoggedDevice>,
        /// Every visit an assignment created, with its campaign.
        pub visits: BTreeMap<String, String>,
    }

    /// One difference between the devices the database holds and the log.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct DeviceProblem {
        /// Empty when the log itself does not verify.
        pub device_id: String,
        /// `not-in-log`, `key-differs`, `enrollment-time-differs`,
        /// `revocation-missing`, `identity-differs` or `log-broken`.
        pub rule: String,
        pub detail: String,
    }

    /// One refused row of an import.
    #[derive(Serialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RowError {
        pub sheet: String,
        /// 1-based line (row) of the file; 0 for the file or sheet as a whole.
        pub line: u64,
        pub reason: String,
    }

    /// Which list an export writes.
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ExportList {
        Users,
        Teams,
        Areas,
        Units,
        Devices,
        Campaigns,
    }

    /// What an import reads (`roster` and `rosters` are `staff`).
    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ImportKind {
        Areas,
        Units,
        Staff,
        Roster,
        Rosters,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum ExportFormat {
        Csv,
        Json,
        Xlsx,
    }

    /// A row of a JSON export: the list's columns, each text or a whole number.
    #[derive(Serialize, ToSchema)]
    pub struct ExportRow(BTreeMap<String, Cell>);

    #[derive(Serialize, ToSchema)]
    #[serde(untagged)]
    pub enum Cell {
        Text(String),
        Number(i64),
    }
}
