//! The Cần Thơ 2015 campaign fixture, recorded into visits through the core
//! API, reproduces the figures of "Thành phố Cần Thơ đẩy mạnh công tác kiểm
//! tra giờ giấc làm việc, tinh thần, thái độ phục vụ trong cán bộ, công
//! chức, viên chức" (Sở Nội vụ thành phố Cần Thơ, 2015).

mod common;

use common::*;
use kiemtra_core::*;
use std::collections::BTreeMap;

const CAMPAIGN: &str = include_str!("../../../fixtures/campaigns/cantho-2015.json");

#[test]
fn the_fixture_campaign_gives_the_article_s_figures() {
    let fixture = CampaignFixture::from_json(CAMPAIGN).expect("fixture");
    let template = template();
    let mut total = Tally::default();
    let mut by_kind: BTreeMap<UnitKind, usize> = BTreeMap::new();
    let mut national_day: BTreeMap<UnitKind, usize> = BTreeMap::new();
    let mut districts = std::collections::BTreeSet::new();
    for unit in &fixture.units {
        let s = session("insp-1", "dev-1", 0);
        let mut visit = Visit::create(
            unit.new_visit(&fixture.campaign.id).expect("new"),
            &template,
            &s,
        )
        .expect("create");
        unit.record_outcomes(&mut visit).expect("record");
        let state = visit.state().expect("state");
        total.add(&state.tally());
        *by_kind.entry(state.meta.unit.kind).or_default() += 1;
        if unit.round == "national_day" {
            *national_day.entry(state.meta.unit.kind).or_default() += 1;
        }
        if state.meta.unit.kind == UnitKind::DistrictOffice {
            districts.insert(state.meta.unit.area.clone());
        }
        for m in state.staff.values() {
            assert!(!m.value.name.is_empty());
        }
    }
    assert_eq!(fixture.units.len(), 65);
    assert_eq!(by_kind[&UnitKind::Department], 15);
    assert_eq!(by_kind[&UnitKind::DistrictOffice], 18);
    assert_eq!(by_kind[&UnitKind::CommuneCommittee], 32);
    assert_eq!(districts.len(), 9);
    assert_eq!(national_day[&UnitKind::Department], 6);
    assert_eq!(national_day[&UnitKind::CommuneCommittee], 18);

    assert_eq!(total.payroll, 1404);
    assert_eq!(total.present, 1071);
    assert_eq!(total.absent, 333);
    assert_eq!(total.unrecorded, 0);
    assert_eq!(total.reason_count(AbsenceReason::BusinessTrip), 146);
    assert_eq!(total.reason_count(AbsenceReason::Training), 93);
    assert_eq!(total.present_pct().format(Lang::En), "76.28");
    assert_eq!(total.absent_pct().format(Lang::En), "23.72");
    assert_eq!(
        total
            .reason_pct(AbsenceReason::BusinessTrip)
            .format(Lang::Vi),
        "43,84"
    );
    assert_eq!(
        total.reason_pct(AbsenceReason::Training).format(Lang::Vi),
        "27,93"
    );
}

#[test]
fn fixture_names_are_nfc_vietnamese() {
    use unicode_normalization::UnicodeNormalization;
    let fixture = CampaignFixture::from_json(CAMPAIGN).expect("fixture");
    let mut diacritics = 0;
    for u in &fixture.units {
        assert_eq!(u.name, u.name.nfc().collect::<String>());
        for s in &u.staff {
            assert_eq!(s.name, s.name.nfc().collect::<String>());
            diacritics += usize::from(!s.name.is_ascii());
        }
    }
    assert!(
        diacritics > 1000,
        "realistic Vietnamese names carry diacritics"
    );
}

#[test]
fn a_campaign_file_of_another_format_is_refused() {
    let bumped = CAMPAIGN.replacen("\"format\": 1", "\"format\": 7", 1);
    assert!(matches!(
        CampaignFixture::from_json(&bumped),
        Err(Error::UnknownTemplateFormat { found: 7, .. })
    ));
    assert!(CampaignFixture::from_json("[]").is_err());
}
