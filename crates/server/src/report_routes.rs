//! `GET /v1/campaigns/{id}/report`: the campaign report computed on the
//! server from the approved states it stores, with the administration
//! directory's knowledge of the units — the kinds of the campaign's era come
//! with each visit, and a unit formed by a merger is listed with the units
//! it absorbed up to the visit's date; the campaign's draws, rechecked.

use actix_web::{HttpRequest, HttpResponse, web};
use kiemtra_admin::Directory;
use kiemtra_admin::report::{CampaignReport, VisitForReport};
use kiemtra_core::{CampaignId, Lang, UnitCode, UnitKind, Visit};
use serde::Deserialize;
use std::collections::BTreeSet;

use crate::problem::Problem;
use crate::routes::authenticate;
use crate::startup::AppState;
use crate::storage::ServerStore;

#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    /// md, csv, json or xlsx; md when absent.
    pub format: Option<String>,
    /// vi or en; vi when absent.
    pub lang: Option<String>,
}

/// The names of the units `code` absorbed on or before `on`, and those
/// they had absorbed before them, in the order the merges were logged.
pub fn absorbed_names(d: &Directory, code: &UnitCode, on: chrono::NaiveDate) -> Vec<String> {
    let mut names = Vec::new();
    let mut seen = BTreeSet::new();
    let mut queue = vec![code.clone()];
    while let Some(next) = queue.pop() {
        let Some(entry) = d.units.get(&next) else {
            continue;
        };
        for (gone, when) in &entry.absorbed {
            if *when <= on && seen.insert(gone.clone()) {
                if let Some(g) = d.units.get(gone) {
                    names.push(g.record.name.clone());
                }
                queue.push(gone.clone());
            }
        }
    }
    names
}

pub async fn campaign_report(
    state: web::Data<AppState>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ReportQuery>,
) -> Result<HttpResponse, Problem> {
    let device = authenticate(&state, &req).await?;
    let campaign =
        CampaignId::parse(&path.into_inner()).map_err(|e| Problem::BadRequest(e.to_string()))?;
    let lang = match query.lang.as_deref() {
        None | Some("vi") => Lang::Vi,
        Some("en") => Lang::En,
        Some(other) => {
            return Err(Problem::BadRequest(format!(
                "unknown language {other:?}; use vi or en"
            )));
        }
    };
    let format = query.format.clone().unwrap_or_else(|| "md".into());
    if !matches!(format.as_str(), "md" | "csv" | "json" | "xlsx") {
        return Err(Problem::BadRequest(format!(
            "unknown format {format:?}; use md, csv, json or xlsx"
        )));
    }
    // Reports count visit contents: auditors see every visit, supervisors
    // their team's; inspectors and administrators see none.
    let team = match device.role.as_str() {
        "auditor" => None,
        "supervisor" => Some(device.team.clone()),
        role => {
            return Err(Problem::Forbidden(format!(
                "{role}s cannot read campaign reports; auditors and supervisors can"
            )));
        }
    };
    let st = state.clone();
    let report = web::block(move || {
        let mut store = st.store()?;
        let directory = crate::admin::directory(&mut store).ok();
        let list = store.list_visits().map_err(Problem::from)?;
        let mut visits = Vec::new();
        for s in list.iter().filter(|s| {
            s.campaign == campaign.as_str() && team.as_ref().is_none_or(|t| *t == s.team)
        }) {
            let bytes = store.stored_bytes(&s.id).map_err(Problem::from)?;
            let visit = Visit::load(&bytes, store.session())
                .map_err(|e| Problem::Internal(format!("visit {} does not load: {e}", s.id)))?;
            let meta = visit.meta().map_err(|e| Problem::Internal(e.to_string()))?;
            let absorbed = directory
                .as_ref()
                .map(|d| absorbed_names(d, &meta.unit.code, meta.scheduled_on))
                .unwrap_or_default();
            visits.push(VisitForReport {
                unit: s.unit_name.clone(),
                kind: UnitKind::parse(&s.unit_kind)
                    .map_err(|e| Problem::Internal(e.to_string()))?,
                absorbed,
                // With a log to read, a visit no assignment made is a
                // phone's, for an office found on the way.
                unplanned: directory
                    .as_ref()
                    .is_some_and(|d| !d.visits.contains_key(&s.id)),
                approved: visit
                    .approved_state()
                    .map_err(|e| Problem::Internal(e.to_string()))?,
            });
        }
        if visits.is_empty() {
            return Err(Problem::NotFound(format!(
                "no visit of campaign {campaign} you may see"
            )));
        }
        let title = directory
            .as_ref()
            .and_then(|d| d.campaigns.get(&campaign))
            .map(|c| c.title.clone())
            .unwrap_or_else(|| match lang {
                Lang::Vi => format!("Báo cáo kết quả kiểm tra – {campaign}"),
                Lang::En => format!("Inspection report – {campaign}"),
            });
        let mut report = CampaignReport::build(campaign.as_str(), &title, &visits, lang);
        if let Some(c) = directory.as_ref().and_then(|d| d.campaigns.get(&campaign)) {
            report.draws = c
                .draws
                .iter()
                .map(kiemtra_admin::report::ReportDraw::of)
                .collect();
        }
        Ok(report)
    })
    .await
    .map_err(|e| Problem::Internal(e.to_string()))??;
    let (media, body) = match format.as_str() {
        "csv" => ("text/csv; charset=utf-8", report.csv(lang).into_bytes()),
        "json" => (
            "application/json",
            serde_json::to_vec_pretty(&report).map_err(|e| Problem::Internal(e.to_string()))?,
        ),
        "xlsx" => (
            kiemtra_admin::ExportFormat::Xlsx.media_type(),
            report.xlsx(lang).map_err(Problem::Internal)?,
        ),
        _ => (
            "text/markdown; charset=utf-8",
            report.markdown(lang).into_bytes(),
        ),
    };
    Ok(HttpResponse::Ok().content_type(media).body(body))
}
