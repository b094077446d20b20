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

#[derive(Debug, Default, Deserialize)]
pub struct ReportQuery {
    /// md, csv, json, xlsx or pdf; md when absent.
    pub format: Option<String>,
    /// vi or en; vi when absent.
    pub lang: Option<String>,
    /// The PDF's letterhead (each optional; see [`letterhead`]).
    pub parent_body: Option<String>,
    pub issuer: Option<String>,
    pub number: Option<String>,
    pub place: Option<String>,
    /// dd/mm/yyyy.
    pub date: Option<String>,
    /// Lines separated by `|`, e.g. `KT. GIÁM ĐỐC|PHÓ GIÁM ĐỐC`.
    pub signer_position: Option<String>,
    pub signer: Option<String>,
    /// Separated by `|`.
    pub recipients: Option<String>,
}

/// The directory the report's fonts are read from: `KIEMTRA_FONT_DIR`, or
/// Debian's `fonts-liberation2` (Liberation Serif 2 has every Vietnamese
/// letter; the older `fonts-liberation` lacks most of them).
pub fn font_dir() -> std::path::PathBuf {
    std::env::var_os("KIEMTRA_FONT_DIR")
        .map(Into::into)
        .unwrap_or_else(|| "/usr/share/fonts/truetype/liberation2".into())
}

/// Liberation Serif's four faces from [`font_dir`].
pub fn load_fonts() -> Result<kiemtra_admin::pdf::Fonts, String> {
    let dir = font_dir();
    let read = |face: &str| {
        let path = dir.join(format!("LiberationSerif-{face}.ttf"));
        std::fs::read(&path).map_err(|e| {
            format!(
                "the report's font {} cannot be read ({e}); install Debian's fonts-liberation2 or set KIEMTRA_FONT_DIR",
                path.display()
            )
        })
    };
    Ok(kiemtra_admin::pdf::Fonts {
        regular: read("Regular")?,
        bold: read("Bold")?,
        italic: read("Italic")?,
        bold_italic: read("BoldItalic")?,
    })
}

fn field(name: &'static str, value: &Option<String>) -> Result<Option<String>, Problem> {
    value
        .as_deref()
        .map(|v| {
            kiemtra_core::text::optional(name, v, kiemtra_core::text::MAX_NAME * 4)
                .map_err(|e| Problem::BadRequest(e.to_string()))
        })
        .transpose()
}

/// The letterhead from the query, with defaults from the directory: the
/// People's Committee of the campaign's province above the Department of
/// Home Affairs, the province's name as the place, today in Viet Nam, the
/// requesting user as the signer.
pub(crate) fn letterhead(
    q: &ReportQuery,
    directory: Option<&Directory>,
    campaign: &CampaignId,
    title: &str,
    user: &str,
) -> Result<kiemtra_admin::pdf::Letterhead, Problem> {
    let province = directory
        .and_then(|d| d.campaigns.get(campaign))
        .and_then(|c| directory.and_then(|d| d.areas.get(&c.province)))
        .map(|a| a.name.clone())
        .unwrap_or_default();
    let place = province
        .trim_start_matches("Thành phố ")
        .trim_start_matches("Tỉnh ")
        .to_owned();
    let date = match field("date", &q.date)? {
        Some(d) if !d.is_empty() => {
            kiemtra_admin::import::parse_date(&d).map_err(Problem::BadRequest)?
        }
        _ => (chrono::Utc::now() + chrono::Duration::hours(7)).date_naive(),
    };
    let lines = |v: Option<String>| -> Vec<String> {
        v.map(|v| {
            v.split('|')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    let signer_name = directory
        .and_then(|d| d.users.get(&kiemtra_core::UserId::parse(user).ok()?))
        .map(|u| u.full_name.clone())
        .unwrap_or_else(|| user.to_owned());
    let mut position = lines(field("signer_position", &q.signer_position)?);
    let mut recipients = lines(field("recipients", &q.recipients)?);
    if position.len() > 4 || recipients.len() > 12 {
        return Err(Problem::BadRequest(
            "a signer's position is at most 4 lines, the recipients at most 12".into(),
        ));
    }
    if position.is_empty() {
        position = vec!["KT. GIÁM ĐỐC".into(), "PHÓ GIÁM ĐỐC".into()];
    }
    if recipients.is_empty() {
        recipients = vec![format!("UBND {province} (để báo cáo)"), "Lưu: VT".into()];
    }
    Ok(kiemtra_admin::pdf::Letterhead {
        parent_body: field("parent_body", &q.parent_body)?
            .unwrap_or_else(|| format!("UBND {}", province.to_uppercase())),
        body: field("issuer", &q.issuer)?.unwrap_or_else(|| "SỞ NỘI VỤ".into()),
        number: field("number", &q.number)?.unwrap_or_default(),
        place: field("place", &q.place)?.unwrap_or(place),
        date,
        summary: format!("Kết quả {}", lowercase_first(title)),
        signer_position: position,
        signer_name: field("signer", &q.signer)?.unwrap_or(signer_name),
        recipients,
    })
}

/// `Kiểm tra …` → `kiểm tra …`, for the summary line after `Kết quả`.
fn lowercase_first(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

/// The names of the units `code` absorbed on or before `on`, and those
/// they had absorbed before them, in the order the merges were logged.
pub fn absorbed_names(d: &Directory, code: &UnitCode, on: chrono::NaiveDate) -> Vec<String> {
    let mut names = Vec::new();
    let mut seen = BTreeSet::from([code.clone()]);
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
    if !matches!(format.as_str(), "md" | "csv" | "json" | "xlsx" | "pdf") {
        return Err(Problem::BadRequest(format!(
            "unknown format {format:?}; use md, csv, json, xlsx or pdf"
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
    let query = query.into_inner();
    let wanted = format.clone();
    let user = device.user_id.clone();
    let (report, head) = web::block(move || {
        let mut store = st.store()?;
        let teams = team.map(|t| vec![t]);
        let (report, directory, title) =
            build_report(&mut store, &campaign, teams.as_deref(), None, lang)?;
        let head = if wanted == "pdf" {
            Some(letterhead(
                &query,
                directory.as_deref(),
                &campaign,
                &title,
                &user,
            )?)
        } else {
            None
        };
        Ok::<_, Problem>((report, head))
    })
    .await
    .map_err(|e| Problem::Internal(e.to_string()))??;
    let (media, body) = encoded(report, &format, lang, head).await?;
    Ok(HttpResponse::Ok().content_type(media).body(body))
}

/// The report in `format` (md, csv, json, xlsx; pdf when `head` is given),
/// with its media type.
pub(crate) async fn encoded(
    report: CampaignReport,
    format: &str,
    lang: Lang,
    head: Option<kiemtra_admin::pdf::Letterhead>,
) -> Result<(&'static str, Vec<u8>), Problem> {
    if let Some(head) = head {
        // A server without the fonts answers 500 and logs why (the
        // operator installs fonts-liberation2 or sets KIEMTRA_FONT_DIR).
        let pdf = web::block(move || {
            let fonts = load_fonts()?;
            kiemtra_admin::pdf::render(&report, &head, &fonts, lang)
        })
        .await
        .map_err(|e| Problem::Internal(e.to_string()))?
        .map_err(Problem::Internal)?;
        return Ok(("application/pdf", pdf));
    }
    Ok(match format {
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
    })
}

/// The report of `campaign` over the visits of `teams` (all when `None`)
/// planned within `within` (inclusive; all when `None`), with the
/// directory it was read with and the campaign's title.
pub(crate) fn build_report(
    store: &mut impl ServerStore,
    campaign: &CampaignId,
    teams: Option<&[String]>,
    within: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    lang: Lang,
) -> Result<(CampaignReport, Option<std::sync::Arc<Directory>>, String), Problem> {
    // A log that does not replay is reported, not papered over: the
    // report's unplanned visits, merged units, draws and names come from it.
    let directory = Some(crate::admin::directory_cached(store)?);
    let list = store.list_visits().map_err(Problem::from)?;
    let mut visits = Vec::new();
    for s in list.iter().filter(|s| {
        s.campaign == campaign.as_str()
            && teams.is_none_or(|t| t.contains(&s.team))
            && within.is_none_or(|(from, to)| {
                chrono::NaiveDate::parse_from_str(&s.scheduled_on, "%Y-%m-%d")
                    .is_ok_and(|d| d >= from && d <= to)
            })
    }) {
        let bytes = store.stored_bytes(&s.id).map_err(Problem::from)?;
        let visit = Visit::load(&bytes, store.session())
            .map_err(|e| Problem::Internal(format!("visit {} does not load: {e}", s.id)))?;
        let meta = visit.meta().map_err(|e| Problem::Internal(e.to_string()))?;
        let absorbed = directory
            .as_ref()
            .map(|d| absorbed_names(d, &meta.unit.code, meta.scheduled_on))
            .unwrap_or_default();
        let (approval, approved) = visit
            .approval()
            .map_err(|e| Problem::Internal(e.to_string()))?
            .unzip();
        visits.push(VisitForReport {
            unit: s.unit_name.clone(),
            kind: UnitKind::parse(&s.unit_kind).map_err(|e| Problem::Internal(e.to_string()))?,
            absorbed,
            // With a log to read, a visit no assignment made is a
            // phone's, for an office found on the way.
            unplanned: directory
                .as_ref()
                .is_some_and(|d| !d.visits.contains_key(&s.id)),
            approved,
            approval,
        });
    }
    if visits.is_empty() {
        return Err(Problem::NotFound(format!(
            "no visit of campaign {campaign} you may see"
        )));
    }
    let title = directory
        .as_ref()
        .and_then(|d| d.campaigns.get(campaign))
        .map(|c| c.title.clone())
        .unwrap_or_else(|| match lang {
            Lang::Vi => format!("Báo cáo kết quả kiểm tra – {campaign}"),
            Lang::En => format!("Inspection report – {campaign}"),
        });
    // A report over some teams' visits says so in its title.
    let title = match teams {
        Some(teams) if !teams.is_empty() => {
            let names: Vec<String> = teams
                .iter()
                .map(|t| {
                    directory
                        .as_ref()
                        .and_then(|d| d.teams.get(&kiemtra_core::TeamId::parse(t).ok()?))
                        .map(|x| x.name.clone())
                        .unwrap_or_else(|| t.clone())
                })
                .collect();
            match lang {
                Lang::Vi => format!("{title} – phạm vi: {}", names.join(", ")),
                Lang::En => format!("{title} – scope: {}", names.join(", ")),
            }
        }
        _ => title,
    };
    let mut report = CampaignReport::build(campaign.as_str(), &title, &visits, lang);
    // Approvers by their full names where the directory knows them.
    if let Some(d) = directory.as_ref() {
        for a in &mut report.approvers {
            if let Some(u) = kiemtra_core::UserId::parse(a)
                .ok()
                .and_then(|id| d.users.get(&id))
            {
                *a = format!("{} ({a})", u.full_name);
            }
        }
    }
    if let Some(c) = directory.as_ref().and_then(|d| d.campaigns.get(campaign)) {
        report.draws = c
            .draws
            .iter()
            .map(kiemtra_admin::report::ReportDraw::of)
            .collect();
    }
    Ok((report, directory, title))
}
