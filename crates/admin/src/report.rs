//! The campaign report in the shape of the Cần Thơ 2015 report ("Thành phố
//! Cần Thơ đẩy mạnh công tác kiểm tra giờ giấc làm việc…", Sở Nội vụ thành
//! phố Cần Thơ, 2015): units by kind, staff on
//! payroll, present and absent with percentages, absences by reason,
//! violations by check, findings and recommendations — from approved states
//! only, listing the visits not yet approved, and the merged units among
//! those inspected with the units each absorbed. Vietnamese or English;
//! Markdown, CSV, JSON or Excel (.xlsx).

use kiemtra_core::{
    AbsenceReason, Approval, CheckResult, ConductKind, ConductResult, Lang, Percent, Tally,
    UnitKind, VisitState, format_count, format_time,
};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::export::{Cell, Table};

/// A visit as the report sees it: the approved state, or why there is none.
pub struct VisitForReport {
    pub unit: String,
    pub kind: UnitKind,
    /// The names of the units this one absorbed in mergers, as the
    /// administration directory records them (empty when none or unknown).
    pub absorbed: Vec<String>,
    /// Made by a phone for an office found on the way, not from an
    /// assignment of the campaign.
    pub unplanned: bool,
    pub approved: Option<VisitState>,
    /// The approval the approved state is the state of (the latest), as the
    /// visit's current state holds it: who approved, when, over which
    /// heads, signed.
    pub approval: Option<Approval>,
}

#[derive(Debug, Serialize)]
pub struct CampaignReport {
    pub campaign: String,
    pub title: String,
    pub units_by_kind: BTreeMap<String, u32>,
    pub units_inspected: u32,
    pub tally: Tally,
    pub present_pct: String,
    pub absent_pct: String,
    pub reasons: Vec<(String, u32, String)>,
    pub conduct_violations: Vec<(String, u32)>,
    pub checks_failed: Vec<(String, u32)>,
    pub findings: Vec<(String, String, String)>,
    pub not_approved: Vec<String>,
    pub approved_at: Vec<(String, String)>,
    /// Inspected units formed by a merger, each with the units it absorbed.
    pub merged_units: Vec<(String, Vec<String>)>,
    /// Visits a phone made for an office found on the way, not from an
    /// assignment (counted like the others once approved).
    pub unplanned: Vec<String>,
    /// The values recorded on checks beyond pass or fail (a number, a
    /// choice, a short text): unit, check, value as shown.
    pub check_values: Vec<(String, String, String)>,
    /// The users whose signed approvals the figures count, each once.
    pub approvers: Vec<String>,
    /// SHA-256 (hex) over the counted visits' ids, approved heads and
    /// approval signatures, one line per visit in id order: recomputable by
    /// an auditor from the visits (`/v1/campaigns/{id}/verify` checks each
    /// signature), so a printed report names exactly what it counted.
    pub verification: String,
    /// The campaign's random draws as the administration log holds them,
    /// each rechecked from its seed.
    pub draws: Vec<ReportDraw>,
}

/// A draw of the campaign: what was committed before, what was revealed
/// after, and whether the seed gives both the commitment and the selection.
#[derive(Debug, Clone, Serialize)]
pub struct ReportDraw {
    pub committed_at: String,
    pub commitment: String,
    pub candidates: Vec<String>,
    pub count: u32,
    pub seed: Option<String>,
    pub selection: Vec<String>,
    pub revealed_at: Option<String>,
    /// The seed hashes to the commitment and selects the selection.
    pub rechecked: bool,
}

impl ReportDraw {
    pub fn of(d: &crate::directory::DrawRecord) -> Self {
        let rechecked = d
            .seed
            .as_deref()
            .and_then(kiemtra_core::hex::decode)
            .is_some_and(|seed| {
                crate::draw::commitment_of(&seed) == d.commitment
                    && crate::draw::select(&seed, &d.candidates, d.count as usize) == d.selection
            });
        ReportDraw {
            committed_at: d.committed_at.clone(),
            commitment: d.commitment.clone(),
            candidates: d.candidates.iter().map(ToString::to_string).collect(),
            count: d.count,
            seed: d.seed.clone(),
            selection: d.selection.iter().map(ToString::to_string).collect(),
            revealed_at: d.revealed_at.clone(),
            rechecked,
        }
    }
}

/// `cell`, with a leading `'` when a spreadsheet would read it as a formula.
pub fn defused(cell: &str) -> std::borrow::Cow<'_, str> {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}").into(),
        _ => cell.into(),
    }
}

fn pct(p: Percent, lang: Lang) -> String {
    format!("{}%", p.format(lang))
}

impl CampaignReport {
    pub fn build(campaign: &str, title: &str, visits: &[VisitForReport], lang: Lang) -> Self {
        let mut r = CampaignReport {
            campaign: campaign.into(),
            title: title.into(),
            units_by_kind: BTreeMap::new(),
            units_inspected: 0,
            tally: Tally::default(),
            present_pct: String::new(),
            absent_pct: String::new(),
            reasons: Vec::new(),
            conduct_violations: Vec::new(),
            checks_failed: Vec::new(),
            findings: Vec::new(),
            not_approved: Vec::new(),
            approved_at: Vec::new(),
            merged_units: Vec::new(),
            draws: Vec::new(),
            unplanned: Vec::new(),
            approvers: Vec::new(),
            verification: String::new(),
            check_values: Vec::new(),
        };
        let mut counted: Vec<String> = Vec::new();
        let mut conduct: BTreeMap<ConductKind, u32> = BTreeMap::new();
        let mut checks: BTreeMap<String, u32> = BTreeMap::new();
        for v in visits {
            if v.unplanned {
                r.unplanned.push(v.unit.clone());
            }
            let Some(state) = &v.approved else {
                r.not_approved.push(v.unit.clone());
                continue;
            };
            r.units_inspected += 1;
            if !v.absorbed.is_empty() {
                r.merged_units.push((v.unit.clone(), v.absorbed.clone()));
            }
            *r.units_by_kind
                .entry(v.kind.label(lang).to_owned())
                .or_default() += 1;
            r.tally.add(&state.tally());
            for ((_, kind), slot) in &state.conduct {
                if slot.value().result == ConductResult::Violation {
                    *conduct.entry(*kind).or_default() += 1;
                }
            }
            for (id, slot) in &state.checks {
                if let (Some(value), Some(def)) = (&slot.value().value, state.template.check(id)) {
                    r.check_values.push((
                        v.unit.clone(),
                        def.label.get(lang).to_owned(),
                        def.describe_value(value, lang),
                    ));
                }
                if slot.value().result == CheckResult::Fail {
                    let label = state
                        .template
                        .check(id)
                        .map(|c| c.label.get(lang).to_owned())
                        .unwrap_or_else(|| id.to_string());
                    *checks.entry(label).or_default() += 1;
                }
            }
            for f in state.findings.values().filter(|f| !f.withdrawn()) {
                r.findings.push((
                    v.unit.clone(),
                    f.text().to_owned(),
                    f.recommendation().to_owned(),
                ));
            }
            if let Some(a) = &v.approval {
                r.approved_at
                    .push((v.unit.clone(), format_time(a.stamp.at)));
                let who = a.stamp.by.to_string();
                if !r.approvers.contains(&who) {
                    r.approvers.push(who);
                }
                let mut heads = a.heads.clone();
                heads.sort();
                counted.push(format!(
                    "{} {} {}",
                    state.meta.visit_id,
                    heads.join(","),
                    a.signature
                ));
            }
        }
        r.present_pct = pct(r.tally.present_pct(), lang);
        r.absent_pct = pct(r.tally.absent_pct(), lang);
        r.reasons = AbsenceReason::ALL
            .iter()
            .filter(|reason| r.tally.reason_count(**reason) > 0)
            .map(|reason| {
                (
                    reason.label(lang).to_owned(),
                    r.tally.reason_count(*reason),
                    pct(r.tally.reason_pct(*reason), lang),
                )
            })
            .collect();
        r.conduct_violations = conduct
            .into_iter()
            .map(|(k, n)| (k.label(lang).to_owned(), n))
            .collect();
        r.checks_failed = checks.into_iter().collect();
        r.approvers.sort();
        counted.sort();
        r.verification = crate::log::sha256_hex(counted.join("\n").as_bytes());
        r
    }

    /// The report as `section,item,count,percent` rows (one table, so that
    /// a spreadsheet opens it directly); the count is empty where a row
    /// counts nothing.
    pub fn rows(&self, lang: Lang) -> Vec<[String; 4]> {
        let l = |vi: &'static str, en: &'static str| if lang == Lang::Vi { vi } else { en };
        let mut rows: Vec<[String; 4]> = vec![[
            l("muc", "section").into(),
            l("noi_dung", "item").into(),
            l("so_luong", "count").into(),
            l("ty_le", "percent").into(),
        ]];
        let mut row = |a: &str, b: &str, c: String, d: &str| {
            rows.push([a.into(), b.into(), c, d.into()]);
        };
        let units = l("don_vi", "units");
        row(
            units,
            l("đã phê duyệt", "approved"),
            self.units_inspected.to_string(),
            "",
        );
        for (kind, count) in &self.units_by_kind {
            row(units, kind, count.to_string(), "");
        }
        let staff = l("cbccvc", "staff");
        let t = &self.tally;
        row(
            staff,
            l("trong biên chế", "on payroll"),
            t.payroll.to_string(),
            "",
        );
        row(
            staff,
            l("có mặt", "present"),
            t.present.to_string(),
            &self.present_pct,
        );
        row(
            staff,
            l("vắng mặt", "absent"),
            t.absent.to_string(),
            &self.absent_pct,
        );
        row(staff, l("đi muộn", "late"), t.late.to_string(), "");
        for (reason, count, p) in &self.reasons {
            row(
                l("ly_do_vang", "absence_reason"),
                reason,
                count.to_string(),
                p,
            );
        }
        for (what, count) in &self.conduct_violations {
            row(l("vi_pham", "violation"), what, count.to_string(), "");
        }
        for (what, count) in &self.checks_failed {
            row(l("khong_dat", "check_failed"), what, count.to_string(), "");
        }
        for (unit, check, value) in &self.check_values {
            row(
                l("so_lieu", "value"),
                &format!("{unit} — {check}: {value}"),
                String::new(),
                "",
            );
        }
        for (unit, text, rec) in &self.findings {
            row(
                l("ton_tai", "finding"),
                &format!("{unit}: {text} — {rec}"),
                String::new(),
                "",
            );
        }
        for (unit, absorbed) in &self.merged_units {
            row(
                l("hop_nhat", "merged"),
                &format!("{unit}: {}", absorbed.join("; ")),
                absorbed.len().to_string(),
                "",
            );
        }
        for unit in &self.unplanned {
            row(l("ngoai_ke_hoach", "unplanned"), unit, String::new(), "");
        }
        for unit in &self.not_approved {
            row(l("chua_phe_duyet", "not_approved"), unit, String::new(), "");
        }
        rows
    }

    /// The rows as CSV. A cell a spreadsheet would take for a formula
    /// (starting `=`, `+`, `-`, `@`, a tab or a carriage return: text a
    /// device recorded can) is written with a leading `'`.
    pub fn csv(&self, lang: Lang) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        for r in &self.rows(lang) {
            let _ = w.write_record(r.iter().map(|c| defused(c).into_owned()));
        }
        w.into_inner()
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// The rows as an Excel workbook (counts kept as numbers).
    pub fn xlsx(&self, lang: Lang) -> Result<Vec<u8>, String> {
        let rows = self.rows(lang);
        let Some((header, body)) = rows.split_first() else {
            return Err("an empty report".into());
        };
        let columns: Vec<&str> = header.iter().map(String::as_str).collect();
        let mut t = Table::new(
            if lang == Lang::Vi {
                "bao_cao"
            } else {
                "report"
            },
            &columns,
        );
        for [a, b, c, d] in body {
            let count = match c.parse::<i64>() {
                Ok(n) => Cell::Number(n),
                Err(_) => Cell::Text(c.clone()),
            };
            t.push(vec![
                a.as_str().into(),
                b.as_str().into(),
                count,
                d.as_str().into(),
            ]);
        }
        t.write(crate::export::ExportFormat::Xlsx)
    }

    pub fn markdown(&self, lang: Lang) -> String {
        let l = |vi: &'static str, en: &'static str| if lang == Lang::Vi { vi } else { en };
        let n = |x: u32| format_count(x, lang);
        let mut o = String::new();
        let _ = writeln!(o, "# {}\n", self.title);
        let _ = writeln!(
            o,
            "{}: **{}**",
            l(
                "Số đơn vị đã kiểm tra (đã phê duyệt)",
                "Units inspected (approved)"
            ),
            n(self.units_inspected)
        );
        for (kind, count) in &self.units_by_kind {
            let _ = writeln!(o, "- {kind}: {}", n(*count));
        }
        let t = &self.tally;
        let _ = writeln!(
            o,
            "\n{}: **{}**",
            l("Tổng số CBCCVC trong biên chế", "Staff on payroll"),
            n(t.payroll)
        );
        let _ = writeln!(
            o,
            "- {}: {} ({})",
            l("Có mặt", "Present"),
            n(t.present),
            self.present_pct
        );
        let _ = writeln!(
            o,
            "- {}: {} ({})",
            l("Vắng mặt", "Absent"),
            n(t.absent),
            self.absent_pct
        );
        for (reason, count, p) in &self.reasons {
            let _ = writeln!(
                o,
                "  - {reason}: {} ({p} {})",
                n(*count),
                l("số vắng", "of the absent")
            );
        }
        if t.late > 0 {
            let _ = writeln!(
                o,
                "- {}: {}",
                l("Đi muộn (trong số có mặt)", "Late (among the present)"),
                n(t.late)
            );
        }
        if !self.conduct_violations.is_empty() || !self.checks_failed.is_empty() {
            let _ = writeln!(
                o,
                "\n## {}",
                l("Vi phạm theo nội dung kiểm tra", "Violations by check")
            );
            for (what, count) in &self.conduct_violations {
                let _ = writeln!(o, "- {what}: {} {}", n(*count), l("người", "staff"));
            }
            for (what, count) in &self.checks_failed {
                let _ = writeln!(o, "- {what}: {} {}", n(*count), l("đơn vị", "units"));
            }
        }
        if !self.check_values.is_empty() {
            let _ = writeln!(o, "\n## {}", l("Số liệu ghi nhận", "Recorded values"));
            for (unit, check, value) in &self.check_values {
                let _ = writeln!(o, "- {unit} — {check}: {value}");
            }
        }
        if !self.findings.is_empty() {
            let _ = writeln!(
                o,
                "\n## {}",
                l(
                    "Tồn tại, hạn chế và kiến nghị xử lý",
                    "Findings and recommendations"
                )
            );
            for (unit, text, rec) in &self.findings {
                let _ = writeln!(
                    o,
                    "- {unit}: {text}{}",
                    if rec.is_empty() {
                        String::new()
                    } else {
                        format!(" — {} {rec}", l("Kiến nghị:", "Recommendation:"))
                    }
                );
            }
        }
        if !self.merged_units.is_empty() {
            let _ = writeln!(
                o,
                "\n## {}",
                l(
                    "Đơn vị hình thành sau sắp xếp, hợp nhất",
                    "Units formed by mergers"
                )
            );
            for (unit, absorbed) in &self.merged_units {
                let _ = writeln!(
                    o,
                    "- {unit}: {} {}",
                    l("hợp nhất từ", "merged from"),
                    absorbed.join(", ")
                );
            }
        }
        if !self.draws.is_empty() {
            let _ = writeln!(o, "\n## {}", l("Bốc thăm ngẫu nhiên", "Random draws"));
            for d in &self.draws {
                let _ = writeln!(
                    o,
                    "- {} {} / {}: {} ({} {}; {} {}; {})",
                    d.committed_at,
                    d.count,
                    d.candidates.len(),
                    if d.selection.is_empty() {
                        l("chưa công bố", "not revealed yet").to_owned()
                    } else {
                        d.selection.join(", ")
                    },
                    l("cam kết", "commitment"),
                    d.commitment,
                    l("hạt giống", "seed"),
                    d.seed.as_deref().unwrap_or("—"),
                    match (d.seed.is_some(), d.rechecked) {
                        (false, _) => l("chờ công bố", "awaiting the reveal"),
                        (true, true) => l("đã kiểm tra lại: khớp", "rechecked: matches"),
                        (true, false) => l("KIỂM TRA LẠI KHÔNG KHỚP", "RECHECK FAILED"),
                    }
                );
            }
        }
        if !self.unplanned.is_empty() {
            let _ = writeln!(
                o,
                "\n## {}",
                l(
                    "Đơn vị kiểm tra ngoài kế hoạch",
                    "Units inspected outside the plan"
                )
            );
            for unit in &self.unplanned {
                let _ = writeln!(o, "- {unit}");
            }
        }
        if !self.not_approved.is_empty() {
            let _ = writeln!(
                o,
                "\n## {}",
                l(
                    "Biên bản chưa được phê duyệt (không tính vào số liệu)",
                    "Visits not yet approved (not counted)"
                )
            );
            for unit in &self.not_approved {
                let _ = writeln!(o, "- {unit}");
            }
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiemtra_core::*;

    fn visit(id: &str, present: bool, approve: bool) -> Visit {
        let template =
            Template::from_json(include_str!("../../../fixtures/templates/standard-v1.json"))
                .expect("template");
        let s1 = StaffId::parse("s-1").expect("id");
        let session = Session::new(Editor::new(
            UserId::parse("sup").expect("u"),
            DeviceId::parse("d").expect("d"),
        ));
        let mut v = Visit::create(
            NewVisit {
                visit_id: VisitId::parse(id).expect("id"),
                unit: Unit::new(
                    UnitCode::parse(id).expect("c"),
                    "UBND xã Mỹ Khánh",
                    UnitKind::CommuneCommittee,
                    "",
                )
                .expect("unit"),
                campaign: CampaignId::parse("c").expect("c"),
                team: TeamId::parse("t").expect("t"),
                scheduled_on: chrono::NaiveDate::from_ymd_opt(2015, 9, 1).expect("d"),
                roster: vec![
                    StaffMember::new(
                        s1.clone(),
                        "Lê Văn Tám",
                        "",
                        StaffCategory::CivilServant,
                        true,
                    )
                    .expect("m"),
                ],
            },
            &template,
            &session,
        )
        .expect("visit");
        let mark = if present {
            AttendanceMark::Present
        } else {
            AttendanceMark::Absent(AbsenceReason::Sick)
        };
        v.record_attendance(&s1, mark, "", None).expect("rec");
        if approve {
            v.submit("").expect("submit");
            v.approve("").expect("approve");
            // Recorded after approval: not in the report.
            v.record_attendance(
                &s1,
                AttendanceMark::Absent(AbsenceReason::Unexcused),
                "",
                None,
            )
            .expect("late edit");
        }
        v
    }

    #[test]
    fn reports_count_approved_states_only_and_list_the_rest() {
        let approved = visit("v-a", true, true);
        let pending = visit("v-b", false, false);
        let visits = vec![
            VisitForReport {
                unit: "A".into(),
                kind: UnitKind::CommuneCommittee,
                absorbed: vec!["X".into(), "Y".into()],
                unplanned: false,
                approved: approved.approved_state().expect("state"),
                approval: approved.state().expect("state").latest_approval().cloned(),
            },
            VisitForReport {
                unit: "B".into(),
                kind: UnitKind::CommuneCommittee,
                absorbed: vec![],
                unplanned: true,
                approved: pending.approved_state().expect("state"),
                approval: None,
            },
        ];
        let (a, at) = approved.approval().expect("approval").expect("approved");
        assert_eq!(Some(&a), visits[0].approval.as_ref());
        assert_eq!(
            Some(at),
            visits[0].approved.clone(),
            "the approved state with it"
        );
        assert!(pending.approval().expect("approval").is_none());
        let r = CampaignReport::build("c", "Báo cáo", &visits, Lang::Vi);
        assert_eq!(r.units_inspected, 1);
        assert_eq!(
            (r.tally.payroll, r.tally.present, r.tally.absent),
            (1, 1, 0),
            "the approved state, not the later edit"
        );
        assert_eq!(r.not_approved, vec!["B".to_owned()]);
        assert_eq!(r.approvers, vec!["sup".to_owned()]);
        assert_eq!(r.approved_at.len(), 1);
        assert_ne!(
            r.verification,
            crate::log::sha256_hex(b""),
            "the reference names the approval it counted"
        );
        let md = r.markdown(Lang::Vi);
        assert!(md.contains("Có mặt: 1 (100,00%)"), "{md}");
        assert!(md.contains("chưa được phê duyệt"), "{md}");
        assert!(md.contains("- A: hợp nhất từ X, Y"), "{md}");
        assert!(md.contains("ngoài kế hoạch\n- B\n"), "{md}");
        let book = r.xlsx(Lang::Vi).expect("xlsx");
        assert!(book.starts_with(b"PK\x03\x04"));
        assert!(r.csv(Lang::Vi).contains("hop_nhat,A: X; Y,2,"));
        assert_eq!(defused("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defused("UBND xã"), "UBND xã");
        let en = CampaignReport::build("c", "Report", &visits, Lang::En).markdown(Lang::En);
        assert!(
            en.contains("Present: 1 (100.00%)") && en.contains("Visits not yet approved"),
            "{en}"
        );
    }
}
