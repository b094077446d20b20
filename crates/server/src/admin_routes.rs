//! `/v1/admin/…`: the administration log and the directory it builds,
//! imports and exports. Writes are administrators' signed entries; reads
//! are for administrators and auditors.

use actix_web::{HttpRequest, HttpResponse, web};
use kiemtra_admin::import;
use kiemtra_admin::{Cell, Entry, ExportFormat, Table};
use serde::{Deserialize, Serialize};

use crate::admin;
use crate::openapi::schemas;
use crate::problem::Problem;
use crate::routes::{authenticate, read_body, require_media};
use crate::startup::AppState;
use crate::storage::ServerStore;

/// Largest body of signed entries.
const LOG_BODY: usize = 16 * 1024 * 1024;

fn may_read(device: &kiemtra_store::DeviceRecord) -> Result<(), Problem> {
    match device.role.as_str() {
        "administrator" | "auditor" => Ok(()),
        _ => Err(Problem::Forbidden(
            "the administration is open to administrators and auditors only".into(),
        )),
    }
}

fn may_write(device: &kiemtra_store::DeviceRecord) -> Result<(), Problem> {
    if device.role == "administrator" {
        Ok(())
    } else {
        Err(Problem::Forbidden(
            "only an administrator changes the administration".into(),
        ))
    }
}

async fn blocking<T: Send + 'static>(
    state: &web::Data<AppState>,
    f: impl FnOnce(&mut crate::backend::Conn<'_>) -> Result<T, Problem> + Send + 'static,
) -> Result<T, Problem> {
    let st = state.clone();
    web::block(move || {
        let mut store = st.store()?;
        f(&mut store)
    })
    .await
    .map_err(|e| Problem::Internal(e.to_string()))?
}

#[derive(Serialize, utoipa::ToSchema)]
struct LogAnswer {
    #[schema(value_type = schemas::Head)]
    head: kiemtra_admin::Head,
    #[schema(value_type = Vec<schemas::Entry>)]
    entries: Vec<Entry>,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct After {
    /// Only the entries after this one (0, the default, for all).
    #[serde(default)]
    #[param(required = false, maximum = 9_223_372_036_854_775_807_u64)]
    after: u64,
}

/// Read the administration log
///
/// `GET /v1/admin/log?after=N`: the entries after N, and the head.
/// Administrators and auditors.
#[utoipa::path(
    get,
    path = "/v1/admin/log",
    tag = "administration",
    params(After),
    responses(
        (status = 200, description = "The head and the entries after `after`", body = LogAnswer),
        (status = 400, description = "`after` is not a whole number"),
        (status = 401),
        (status = 403, description = "Not an administrator's or auditor's device"),
        (status = 500),
    )
)]
pub async fn get_log(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<After>,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    may_read(&device)?;
    let after = query.after;
    // Sequence numbers are stored as signed 64-bit numbers.
    if i64::try_from(after).is_err() {
        return Err(Problem::BadRequest(format!(
            "after is at most {}",
            i64::MAX
        )));
    }
    let (head, entries) = blocking(&state, move |s| {
        let all = admin::read_log(s).map_err(Problem::from)?;
        let head = all.last().map(Entry::head).unwrap_or_default();
        Ok((head, all.into_iter().filter(|e| e.seq > after).collect()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(LogAnswer { head, entries }))
}

#[derive(Deserialize, utoipa::ToSchema)]
struct Append {
    /// Entries following the log's head, each signed by the sending device.
    #[schema(value_type = Vec<schemas::Entry>)]
    entries: Vec<Entry>,
}

/// Append signed entries to the administration log
///
/// `POST /v1/admin/log`: signed entries, appended all or none.
/// Administrators only.
#[utoipa::path(
    post,
    path = "/v1/admin/log",
    tag = "administration",
    request_body = Append,
    responses(
        (status = 200, description = "Appended: the new head", body = schemas::Head),
        (status = 400, description = "Not a list of entries, or an act the directory refuses"),
        (status = 401),
        (status = 403, description = "Not an administrator's device, or an entry not signed by it"),
        (status = 408),
        (status = 409, description = "The log moved on: the entries do not follow its head (admin-log-moved)"),
        (status = 413), (status = 415), (status = 500), (status = 503),
    )
)]
pub async fn post_log(
    state: web::Data<AppState>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    may_write(&device)?;
    require_media(&req, "application/json")?;
    let body = read_body(&state, &req, payload, LOG_BODY).await?;
    let append: Append = serde_json::from_slice(&body.bytes)
        .map_err(|e| Problem::BadRequest(format!("the entries: {e}")))?;
    for e in &append.entries {
        match &e.by {
            kiemtra_admin::Author::Device { device_id } if device_id == &device.device_id => {}
            _ => {
                return Err(Problem::Forbidden(
                    "entries are signed by the device that sends them".into(),
                ));
            }
        }
    }
    let head = blocking(&state, move |s| admin::append(s, &append.entries)).await?;
    tracing::info!(device = %device.device_id, seq = head.seq, "administration log appended");
    Ok(HttpResponse::Ok().json(head))
}

/// The directory the log builds
///
/// `GET /v1/admin/directory`: everything the log says, as of its head.
/// Administrators and auditors.
#[utoipa::path(
    get,
    path = "/v1/admin/directory",
    tag = "administration",
    responses(
        (status = 200, description = "The directory", body = schemas::Directory),
        (status = 401),
        (status = 403, description = "Not an administrator's or auditor's device"),
        (status = 500),
    )
)]
pub async fn get_directory(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    may_read(&device)?;
    let d = blocking(&state, |s| admin::directory(s)).await?;
    Ok(HttpResponse::Ok().json(directory_json(d)?))
}

/// The directory as JSON (templates keyed `<template_id> v<version>`).
fn directory_json(d: kiemtra_admin::Directory) -> Result<serde_json::Value, Problem> {
    serde_json::to_value(&d).map_err(|e| Problem::Internal(e.to_string()))
}

#[derive(Serialize, utoipa::ToSchema)]
struct DeviceCheck {
    #[schema(value_type = schemas::Head)]
    head: kiemtra_admin::Head,
    devices_checked: usize,
    ok: bool,
    #[schema(value_type = Vec<schemas::DeviceProblem>)]
    problems: Vec<admin::DeviceProblem>,
}

/// Check the devices against the log
///
/// `GET /v1/admin/devices/check`: the devices the database holds against
/// the ones the log enrolled. Administrators and auditors.
#[utoipa::path(
    get,
    path = "/v1/admin/devices/check",
    tag = "administration",
    responses(
        (status = 200, description = "Every difference found", body = DeviceCheck),
        (status = 401),
        (status = 403, description = "Not an administrator's or auditor's device"),
        (status = 500),
    )
)]
pub async fn check_devices(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    may_read(&device)?;
    let check = blocking(&state, |s| {
        let rows = s.devices().map_err(Problem::from)?;
        let d = match admin::directory(s) {
            Ok(d) => d,
            Err(p) => {
                return Ok(DeviceCheck {
                    head: Default::default(),
                    devices_checked: rows.len(),
                    ok: false,
                    problems: vec![admin::DeviceProblem {
                        device_id: String::new(),
                        rule: "log-broken",
                        detail: format!(
                            "the administration log itself does not verify, so no device can be \
                             checked against it: {p}"
                        ),
                    }],
                });
            }
        };
        let problems = admin::check_devices(&d, &rows);
        Ok(DeviceCheck {
            head: d.head.clone(),
            devices_checked: rows.len(),
            ok: problems.is_empty(),
            problems,
        })
    })
    .await?;
    Ok(HttpResponse::Ok().json(check))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// The date rosters (and rows without dates) take effect, dd/mm/yyyy or
    /// yyyy-mm-dd.
    #[param(example = "01/07/2025")]
    valid_from: String,
}

#[derive(Serialize, utoipa::ToSchema)]
struct Prepared {
    /// The acts to sign and append to the log.
    #[schema(value_type = Vec<schemas::Act>)]
    acts: Vec<kiemtra_admin::Act>,
}

/// A refused import: a problem document with every bad row.
#[derive(Serialize, utoipa::ToSchema)]
struct ImportRefused {
    r#type: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    #[schema(value_type = Vec<schemas::RowError>)]
    errors: Vec<kiemtra_admin::RowError>,
}

/// Prepare an import from a CSV or .xlsx file
///
/// `POST /v1/admin/imports/{kind}?valid_from=…`: a CSV or .xlsx file of
/// areas, units or staff, checked row by row against the directory; the
/// acts to sign, or every bad row (422) — nothing is stored either way.
/// Administrators only.
#[utoipa::path(
    post,
    path = "/v1/admin/imports/{kind}",
    tag = "administration",
    params(
        ("kind" = schemas::ImportKind, Path, description = "What the file holds"),
        ImportQuery,
    ),
    request_body(
        description = "The file: CSV (UTF-8) or an .xlsx workbook",
        content(
            (schemas::Bytes = "text/csv"),
            (schemas::Bytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            (schemas::Bytes = "application/octet-stream"),
        )
    ),
    responses(
        (status = 200, description = "The acts to sign", body = Prepared),
        (status = 400, description = "`valid_from` is not a date"),
        (status = 401),
        (status = 403, description = "Not an administrator's device"),
        (status = 404, description = "Not a kind of import"),
        (status = 408), (status = 413),
        (status = 422, description = "Rows that cannot be imported; nothing was", body = ImportRefused, content_type = "application/problem+json"),
        (status = 500), (status = 503),
    )
)]
pub async fn prepare_import(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    may_write(&device)?;
    let kind = import::Kind::parse(&path.into_inner())
        .ok_or_else(|| Problem::NotFound("import areas, units or staff".into()))?;
    let valid_from = import::parse_date(&query.valid_from).map_err(Problem::BadRequest)?;
    let body = read_body(&state, &req, payload, import::MAX_FILE).await?;
    let outcome = blocking(&state, move |s| {
        let d = admin::directory(s)?;
        Ok(import::read(&body.bytes, kind)
            .and_then(|sheets| import::prepare(&d, kind, &sheets, valid_from)))
    })
    .await?;
    match outcome {
        Ok(acts) => Ok(HttpResponse::Ok().json(Prepared { acts })),
        Err(errors) => Ok(HttpResponse::UnprocessableEntity()
            .content_type("application/problem+json")
            .json(ImportRefused {
                r#type: "urn:kiemtra:problem:import-refused",
                title: "Some rows cannot be imported; nothing was imported",
                status: 422,
                detail: errors
                    .iter()
                    .take(5)
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
                errors,
            })),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `csv`, `json` (the default) or `xlsx`.
    #[serde(default = "json")]
    #[param(value_type = Option<schemas::ExportFormat>, required = false)]
    format: String,
}

fn json() -> String {
    "json".into()
}

/// A list of the directory as a table.
fn table(d: &kiemtra_admin::Directory, list: &str) -> Option<Table> {
    let mut t;
    match list {
        "users" => {
            t = Table::new("users", &["user_id", "full_name", "role", "active"]);
            for u in d.users.values() {
                t.push(vec![
                    u.user_id.to_string().into(),
                    u.full_name.clone().into(),
                    u.role.key().into(),
                    if u.active { "yes" } else { "no" }.into(),
                ]);
            }
        }
        "teams" => {
            t = Table::new("teams", &["team_id", "name", "leaders", "members"]);
            for x in d.teams.values() {
                let join = |v: &[kiemtra_core::UserId]| {
                    v.iter().map(|u| u.as_str()).collect::<Vec<_>>().join(" ")
                };
                t.push(vec![
                    x.team_id.to_string().into(),
                    x.name.clone().into(),
                    join(&x.leaders).into(),
                    join(&x.members).into(),
                ]);
            }
        }
        "units" => {
            t = Table::new(
                "units",
                &[
                    "unit_code",
                    "unit_name",
                    "unit_kind",
                    "area",
                    "valid_from",
                    "valid_to",
                    "merged_into",
                    "absorbed",
                    "staff",
                ],
            );
            for u in d.units.values() {
                t.push(vec![
                    u.record.code.to_string().into(),
                    u.record.name.clone().into(),
                    u.record.kind.key().into(),
                    u.record.area.to_string().into(),
                    u.record.valid_from.format("%d/%m/%Y").to_string().into(),
                    u.record
                        .valid_to
                        .map(|d| d.format("%d/%m/%Y").to_string())
                        .unwrap_or_default()
                        .into(),
                    u.merged_into
                        .as_ref()
                        .map(|(c, _)| c.to_string())
                        .unwrap_or_default()
                        .into(),
                    u.absorbed
                        .iter()
                        .map(|(c, _)| c.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                        .into(),
                    Cell::from(u.rosters.last().map(|r| r.staff.len()).unwrap_or(0)),
                ]);
            }
        }
        "areas" => {
            t = Table::new(
                "areas",
                &[
                    "area_code",
                    "area_name",
                    "tier",
                    "parent",
                    "valid_from",
                    "valid_to",
                ],
            );
            for a in d.areas.values() {
                t.push(vec![
                    a.code.to_string().into(),
                    a.name.clone().into(),
                    a.tier.as_str().into(),
                    a.parent
                        .as_ref()
                        .map(|p| p.to_string())
                        .unwrap_or_default()
                        .into(),
                    a.valid_from.format("%d/%m/%Y").to_string().into(),
                    a.valid_to
                        .map(|d| d.format("%d/%m/%Y").to_string())
                        .unwrap_or_default()
                        .into(),
                ]);
            }
        }
        "devices" => {
            t = Table::new(
                "devices",
                &[
                    "device_id",
                    "user_id",
                    "team_id",
                    "role",
                    "name",
                    "enrolled_at",
                    "revoked_at",
                ],
            );
            for x in d.devices.values() {
                t.push(vec![
                    x.device_id.clone().into(),
                    x.user_id.to_string().into(),
                    x.team_id.to_string().into(),
                    x.role.key().into(),
                    x.device_name.clone().into(),
                    x.enrolled_at.clone().into(),
                    x.revoked_at.clone().unwrap_or_default().into(),
                ]);
            }
        }
        "campaigns" => {
            t = Table::new(
                "campaigns",
                &[
                    "campaign_id",
                    "title",
                    "decision",
                    "starts_on",
                    "ends_on",
                    "template",
                    "teams",
                    "assignments",
                ],
            );
            for c in d.campaigns.values() {
                t.push(vec![
                    c.campaign_id.to_string().into(),
                    c.title.clone().into(),
                    c.decision.clone().into(),
                    c.starts_on.format("%d/%m/%Y").to_string().into(),
                    c.ends_on.format("%d/%m/%Y").to_string().into(),
                    format!("{} v{}", c.template_id, c.template_version).into(),
                    c.teams
                        .iter()
                        .map(|t| t.as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                        .into(),
                    Cell::from(c.assignments.len()),
                ]);
            }
        }
        _ => return None,
    }
    Some(t)
}

/// Export a list of the directory
///
/// `GET /v1/admin/export/{list}?format=csv|json|xlsx`: users, teams,
/// areas, units, devices or campaigns. Administrators and auditors.
#[utoipa::path(
    get,
    path = "/v1/admin/export/{list}",
    tag = "administration",
    params(
        ("list" = schemas::ExportList, Path, description = "Which list"),
        ExportQuery,
    ),
    responses(
        (status = 200, description = "The list, as an attachment",
            headers(("Content-Disposition" = String, description = "`attachment; filename=\"<list>.<format>\"`")),
            content(
                (Vec<schemas::ExportRow> = "application/json"),
                (schemas::Bytes = "text/csv"),
                (schemas::Bytes = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            )
        ),
        (status = 400, description = "`format` is not csv, json or xlsx"),
        (status = 401),
        (status = 403, description = "Not an administrator's or auditor's device"),
        (status = 404, description = "Not a list"),
        (status = 500),
    )
)]
pub async fn export(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ExportQuery>,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    may_read(&device)?;
    let format = ExportFormat::parse(&query.format)
        .ok_or_else(|| Problem::BadRequest("format is csv, json or xlsx".into()))?;
    let list = path.into_inner();
    let d = blocking(&state, |s| admin::directory(s)).await?;
    let t = table(&d, &list).ok_or_else(|| {
        Problem::NotFound(format!(
            "no list {list:?}; one of users, teams, areas, units, devices, campaigns"
        ))
    })?;
    let bytes = t.write(format).map_err(Problem::Internal)?;
    Ok(HttpResponse::Ok()
        .content_type(format.media_type())
        .insert_header((
            "Content-Disposition",
            format!("attachment; filename=\"{list}.{}\"", format.extension()),
        ))
        .body(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_with_a_published_template_is_answered_as_json() {
        let mut d = kiemtra_admin::Directory::default();
        let id = kiemtra_core::TemplateId::parse("standard").expect("id");
        d.templates.insert(
            (id.clone(), 1),
            kiemtra_admin::directory::PublishedTemplate {
                template_id: id,
                version: 1,
                title_vi: "Mẫu".into(),
                title_en: "Template".into(),
                checks: 3,
                json: "{}".into(),
                seq: 5,
            },
        );
        let v = directory_json(d).expect("the directory as JSON");
        assert_eq!(v["templates"]["standard v1"]["seq"], 5);
    }
}
