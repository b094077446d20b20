//! `/v1/admin/…`: the administration log and the directory it builds,
//! imports and exports. Writes are administrators' signed entries; reads
//! are for administrators and auditors.

use actix_web::{HttpRequest, HttpResponse, web};
use kiemtra_admin::import;
use kiemtra_admin::{Cell, Entry, ExportFormat, Table};
use serde::{Deserialize, Serialize};

use crate::admin;
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

#[derive(Serialize)]
struct LogAnswer {
    head: kiemtra_admin::Head,
    entries: Vec<Entry>,
}

#[derive(Deserialize)]
pub struct After {
    #[serde(default)]
    after: u64,
}

/// `GET /v1/admin/log?after=N`: the entries after N, and the head.
pub async fn get_log(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: web::Query<After>,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    may_read(&device)?;
    let after = query.after;
    let (head, entries) = blocking(&state, move |s| {
        let all = admin::read_log(s).map_err(Problem::from)?;
        let head = all.last().map(Entry::head).unwrap_or_default();
        Ok((head, all.into_iter().filter(|e| e.seq > after).collect()))
    })
    .await?;
    Ok(HttpResponse::Ok().json(LogAnswer { head, entries }))
}

#[derive(Deserialize)]
struct Append {
    entries: Vec<Entry>,
}

/// `POST /v1/admin/log`: signed entries, appended all or none.
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

/// `GET /v1/admin/directory`: everything the log says, as of its head.
pub async fn get_directory(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    may_read(&device)?;
    let d = blocking(&state, |s| admin::directory(s)).await?;
    Ok(HttpResponse::Ok().json(d))
}

#[derive(Serialize)]
struct DeviceCheck {
    head: kiemtra_admin::Head,
    devices_checked: usize,
    ok: bool,
    problems: Vec<admin::DeviceProblem>,
}

/// `GET /v1/admin/devices/check`: the devices the database holds against
/// the ones the log enrolled.
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

#[derive(Deserialize)]
pub struct ImportQuery {
    /// The date rosters (and rows without dates) take effect, dd/mm/yyyy or
    /// yyyy-mm-dd.
    valid_from: String,
}

#[derive(Serialize)]
struct Prepared {
    acts: Vec<kiemtra_admin::Act>,
}

#[derive(Serialize)]
struct ImportRefused {
    r#type: &'static str,
    title: &'static str,
    status: u16,
    detail: String,
    errors: Vec<kiemtra_admin::RowError>,
}

/// `POST /v1/admin/imports/{kind}?valid_from=…`: a CSV or .xlsx file of
/// areas, units or staff, checked row by row against the directory; the
/// acts to sign, or every bad row (422) — nothing is stored either way.
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
                r#type: "https://kiemtra.invalid/problems/import-refused",
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

#[derive(Deserialize)]
pub struct ExportQuery {
    #[serde(default = "json")]
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

/// `GET /v1/admin/export/{list}?format=csv|json|xlsx`: users, teams,
/// areas, units, devices or campaigns.
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
