//! `kiemtra fixture-tally`.

use kiemtra_core::{
    AbsenceReason, CampaignFixture, DeviceId, Editor, Lang, Tally, Template, UnitKind, UserId,
    format_count,
};
use kiemtra_store::Store;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Read(#[from] crate::builtin::ReadError),
    #[error(transparent)]
    Visit(#[from] kiemtra_core::Error),
    #[error(transparent)]
    Store(#[from] kiemtra_store::Error),
}

/// Loads the campaign into the store at `data/fixture.db` (visits already
/// there are kept, not recorded twice) and renders the tallies.
/// `campaign_path` `None` records the campaign the binary carries.
pub fn run(campaign_path: Option<&Path>, data: &Path) -> Result<String, Error> {
    let fixture = CampaignFixture::from_json(&crate::builtin::campaign(campaign_path)?)?;
    let template =
        Template::from_json(&crate::builtin::template(campaign_path, &fixture.template)?)?;
    let editor = Editor::new(UserId::parse("fixture-loader")?, DeviceId::parse("desk")?);
    let mut store = Store::open(data.join("fixture.db"), editor)?;
    let known: Vec<_> = store.list_visits()?.into_iter().map(|s| s.id).collect();
    for unit in &fixture.units {
        let id = unit.visit_id(&fixture.campaign.id)?;
        if known.contains(&id) {
            continue;
        }
        store.create_visit(unit.new_visit(&fixture.campaign.id)?, &template)?;
        store.edit(&id, |v| unit.record_outcomes(v))?;
    }
    let mut by_kind: BTreeMap<String, (u32, Tally)> = BTreeMap::new();
    let mut total = Tally::default();
    let campaign = fixture.campaign.id.to_string();
    for s in store
        .list_visits()?
        .into_iter()
        .filter(|s| s.campaign == campaign)
    {
        let e = by_kind.entry(s.unit_kind.clone()).or_default();
        e.0 += 1;
        e.1.add(&s.tally);
        total.add(&s.tally);
    }
    let mut out = String::new();
    for lang in [Lang::Vi, Lang::En] {
        render(&mut out, lang, &fixture, &by_kind, &total);
    }
    Ok(out)
}

fn render(
    out: &mut String,
    lang: Lang,
    fixture: &CampaignFixture,
    by_kind: &BTreeMap<String, (u32, Tally)>,
    t: &Tally,
) {
    let units: u32 = by_kind.values().map(|(n, _)| n).sum();
    let l = |vi: &'static str, en: &'static str| if lang == Lang::Vi { vi } else { en };
    let _ = writeln!(out, "# {}", fixture.campaign.name.get(lang));
    let _ = writeln!(
        out,
        "{}: {}",
        l("Cơ quan kiểm tra", "Inspecting authority"),
        fixture.campaign.authority.get(lang)
    );
    let _ = writeln!(
        out,
        "{}: {}",
        l("Số đơn vị được kiểm tra", "Units inspected"),
        format_count(units, lang)
    );
    for kind in UnitKind::ALL {
        if let Some((n, _)) = by_kind.get(kind.key()) {
            let _ = writeln!(out, "  - {}: {}", kind.label(lang), format_count(*n, lang));
        }
    }
    let _ = writeln!(
        out,
        "{}: {}",
        l("Tổng số CBCCVC trong biên chế", "Staff on payroll"),
        format_count(t.payroll, lang)
    );
    let _ = writeln!(
        out,
        "{}: {} ({}%)",
        l("Có mặt", "Present"),
        format_count(t.present, lang),
        t.present_pct().format(lang)
    );
    let _ = writeln!(
        out,
        "{}: {} ({}%)",
        l("Vắng mặt", "Absent"),
        format_count(t.absent, lang),
        t.absent_pct().format(lang)
    );
    for reason in AbsenceReason::ALL {
        let n = t.reason_count(*reason);
        if n > 0 {
            let _ = writeln!(
                out,
                "  - {}: {}/{} ({}%)",
                reason.label(lang),
                format_count(n, lang),
                format_count(t.absent, lang),
                t.reason_pct(*reason).format(lang)
            );
        }
    }
    if t.unrecorded > 0 {
        let _ = writeln!(
            out,
            "{}: {}",
            l("Chưa ghi nhận", "Not recorded"),
            format_count(t.unrecorded, lang)
        );
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/campaigns/cantho-2015.json")
    }

    #[test]
    fn prints_the_article_s_figures_in_both_languages_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("dir");
        let first = run(Some(&campaign()), dir.path()).expect("run");
        assert!(first.contains("Có mặt: 1.071 (76,28%)"), "{first}");
        assert!(first.contains("Vắng mặt: 333 (23,72%)"), "{first}");
        assert!(first.contains("đi công tác: 146/333 (43,84%)"), "{first}");
        assert!(
            first.contains("học chuyên môn, chính trị: 93/333 (27,93%)"),
            "{first}"
        );
        assert!(first.contains("Present: 1,071 (76.28%)"), "{first}");
        assert!(first.contains("Staff on payroll: 1,404"), "{first}");
        let second = run(Some(&campaign()), dir.path()).expect("rerun");
        assert_eq!(
            first, second,
            "a second run does not record the campaign twice"
        );
    }

    #[test]
    fn a_missing_campaign_file_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("dir");
        let err = run(Some(&dir.path().join("nope.json")), dir.path()).expect_err("missing");
        assert!(err.to_string().contains("nope.json"), "{err}");
    }
}
