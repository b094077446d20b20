//! Domain types of an inspection visit: units, staff, attendance, conduct,
//! office checks, findings and status. Each enum parses from its stable
//! machine name (`"business_trip"`) and shows itself in Vietnamese or English.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ids::{CampaignId, ChoiceId, StaffId, TeamId, TemplateId, UnitCode, UserId, VisitId};
use crate::text;

/// A language for user-facing text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    Vi,
    En,
}

macro_rules! domain_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal { $($variant:ident => $key:literal, $vi:literal, $en:literal;)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant,)+ }

        impl $name {
            /// Every value, in display order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stable machine name.
            pub fn key(self) -> &'static str {
                match self { $($name::$variant => $key,)+ }
            }
            /// Parses the stable machine name.
            pub fn parse(value: &str) -> Result<Self> {
                match value {
                    $($key => Ok($name::$variant),)+
                    _ => Err(Error::InvalidValue {
                        field: $field,
                        value: value.into(),
                        expected: concat!($($key, " "),+),
                    }),
                }
            }
            /// The label in the given language.
            pub fn label(self, lang: Lang) -> &'static str {
                match (self, lang) {
                    $(($name::$variant, Lang::Vi) => $vi, ($name::$variant, Lang::En) => $en,)+
                }
            }
        }
    };
}

domain_enum!(
    /// The kind of an inspected unit.
    UnitKind, "unit kind" {
    Department => "department", "Sở, ban, ngành", "Department";
    DistrictOffice => "district_office", "Phòng ban chuyên môn cấp huyện", "District office";
    CommuneCommittee => "commune_committee", "UBND xã, phường, thị trấn", "Commune People's Committee";
    OneStopCentre => "one_stop_centre", "Trung tâm Giải quyết TTHC", "One-stop centre";
});

domain_enum!(
    /// Why a staff member was absent at the moment of the visit.
    AbsenceReason, "absence reason" {
    BusinessTrip => "business_trip", "đi công tác", "business trip";
    Training => "training", "học chuyên môn, chính trị", "training";
    Leave => "leave", "nghỉ phép", "leave";
    Sick => "sick", "nghỉ ốm", "sick";
    Unexcused => "unexcused", "vắng không lý do", "unexcused";
    Other => "other", "lý do khác", "other";
});

domain_enum!(
    /// A conduct check made on each staff member.
    ConductKind, "conduct check" {
    Attire => "attire", "trang phục, đồng phục", "work attire / uniform";
    Badge => "badge", "đeo thẻ công chức", "civil-servant badge worn";
    PersonalUse => "personal_use", "dùng giờ làm việc vào việc riêng", "working time used for personal matters";
    Alcohol => "alcohol", "uống rượu bia trong giờ làm việc, giờ nghỉ trưa", "alcohol during working hours or lunch";
});

domain_enum!(
    /// The outcome of a conduct check.
    ConductResult, "conduct result" {
    Compliant => "compliant", "đạt", "compliant";
    Violation => "violation", "vi phạm", "violation";
});

domain_enum!(
    /// The outcome of an office check.
    CheckResult, "check result" {
    Pass => "pass", "đạt", "pass";
    Fail => "fail", "không đạt", "fail";
    NotApplicable => "not_applicable", "không áp dụng", "not applicable";
});

domain_enum!(
    /// How serious a finding is.
    Severity, "severity" {
    Minor => "minor", "nhẹ", "minor";
    Moderate => "moderate", "trung bình", "moderate";
    Serious => "serious", "nghiêm trọng", "serious";
});

domain_enum!(
    /// Where a visit is in its life.
    VisitStatus, "visit status" {
    Draft => "draft", "đang ghi nhận", "draft";
    Submitted => "submitted", "đã nộp", "submitted";
    Approved => "approved", "đã phê duyệt", "approved";
    Returned => "returned", "trả lại", "returned";
});

domain_enum!(
    /// What a user may do. Inspectors record their team's visits; supervisors
    /// also settle conflicts, approve and return; auditors read everything
    /// and write nothing; administrators manage people and units, never
    /// visit contents.
    Role, "role" {
    Inspector => "inspector", "kiểm tra viên", "inspector";
    Supervisor => "supervisor", "trưởng đoàn", "supervisor";
    Auditor => "auditor", "kiểm toán viên", "auditor";
    Administrator => "administrator", "quản trị viên", "administrator";
});

domain_enum!(
    /// A staff member's category.
    StaffCategory, "staff category" {
    Leader => "leader", "lãnh đạo", "leader";
    CivilServant => "civil_servant", "công chức", "civil servant";
    PublicEmployee => "public_employee", "viên chức", "public employee";
    Contract => "contract", "hợp đồng", "contract worker";
});

impl VisitStatus {
    /// Whether the life cycle allows moving from `self` to `to`.
    pub fn can_move_to(self, to: VisitStatus) -> bool {
        use VisitStatus::*;
        matches!(
            (self, to),
            (Draft, Submitted)
                | (Returned, Submitted)
                | (Submitted, Approved)
                | (Submitted, Returned)
        )
    }
}

/// Attendance of one staff member at the moment of the visit. Absence always
/// carries a reason; presence never does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum AttendanceMark {
    Present,
    Late,
    Absent(AbsenceReason),
}

impl AttendanceMark {
    /// Parses the wire form: a status and, for `absent` only, a reason.
    pub fn parse(status: &str, reason: Option<&str>) -> Result<Self> {
        let reason = reason.map(str::trim).filter(|r| !r.is_empty());
        match (status, reason) {
            ("present", None) => Ok(Self::Present),
            ("late", None) => Ok(Self::Late),
            ("present", Some(_)) => Err(Error::ReasonNotAllowed("present")),
            ("late", Some(_)) => Err(Error::ReasonNotAllowed("late")),
            ("absent", Some(r)) => Ok(Self::Absent(AbsenceReason::parse(r)?)),
            ("absent", None) => Err(Error::ReasonRequired),
            (other, _) => Err(Error::InvalidValue {
                field: "attendance status",
                value: other.into(),
                expected: "present late absent",
            }),
        }
    }
    pub fn status_key(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Late => "late",
            Self::Absent(_) => "absent",
        }
    }
    pub fn reason(self) -> Option<AbsenceReason> {
        match self {
            Self::Absent(r) => Some(r),
            _ => None,
        }
    }
    /// Whether the person was at work (on time or late).
    pub fn at_work(self) -> bool {
        !matches!(self, Self::Absent(_))
    }
    pub fn label(self, lang: Lang) -> String {
        match (self, lang) {
            (Self::Present, Lang::Vi) => "có mặt".into(),
            (Self::Present, Lang::En) => "present".into(),
            (Self::Late, Lang::Vi) => "đi muộn".into(),
            (Self::Late, Lang::En) => "late".into(),
            (Self::Absent(r), Lang::Vi) => format!("vắng ({})", r.label(lang)),
            (Self::Absent(r), Lang::En) => format!("absent ({})", r.label(lang)),
        }
    }
}

/// An attendance record as written into the document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attendance {
    pub mark: AttendanceMark,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// When the inspector observed it (UTC).
    pub observed_at: DateTime<Utc>,
}

impl Attendance {
    /// Validates the note (NFC, bounded; required for reason "other").
    pub fn new(mark: AttendanceMark, note: &str, observed_at: DateTime<Utc>) -> Result<Self> {
        let note = text::optional("attendance note", note, text::MAX_NOTE)?;
        if mark == AttendanceMark::Absent(AbsenceReason::Other) && note.is_empty() {
            return Err(Error::NoteRequired);
        }
        Ok(Self {
            mark,
            note,
            observed_at,
        })
    }
}

/// A conduct check outcome with an optional note.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ConductEntry {
    pub result: ConductResult,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// What a valued office check measured, beside its result. JSON:
/// `{"number": 96}`, `{"choice": "modern"}`, `{"text": "VNPT iOffice"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckValue {
    /// A whole number (a count, a percentage), within the check's range.
    Number(i64),
    /// One of the check's options, by id.
    Choice(ChoiceId),
    /// A short text, trimmed NFC.
    Text(String),
}

impl CheckValue {
    /// The kind of value in words, for error messages.
    pub fn kind_key(&self) -> &'static str {
        match self {
            CheckValue::Number(_) => "a number",
            CheckValue::Choice(_) => "a choice",
            CheckValue::Text(_) => "a text",
        }
    }

    /// The value in words without its check (no unit; a choice by id).
    /// [`crate::CheckDef::describe_value`] shows the unit and the option's label.
    pub fn describe(&self, lang: Lang) -> String {
        match self {
            CheckValue::Number(n) => crate::tally::format_int(*n, lang),
            CheckValue::Choice(id) => id.to_string(),
            CheckValue::Text(s) => format!("«{s}»"),
        }
    }
}

/// An office check outcome: the inspector's judgment, what was measured
/// when the check is valued, and an optional note.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CheckEntry {
    pub result: CheckResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<CheckValue>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The visit's status with the note that came with the move (e.g. why it was returned).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StatusEntry {
    pub status: VisitStatus,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// The inspected unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unit {
    pub code: UnitCode,
    pub name: String,
    pub kind: UnitKind,
    /// District or province the unit belongs to, for grouping in reports.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub area: String,
}

impl Unit {
    pub fn new(code: UnitCode, name: &str, kind: UnitKind, area: &str) -> Result<Self> {
        Ok(Self {
            code,
            name: text::required("unit name", name, text::MAX_NAME)?,
            kind,
            area: text::optional("unit area", area, text::MAX_NAME)?,
        })
    }
}

/// One person on the unit's roster (or found on site).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffMember {
    pub id: StaffId,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub position: String,
    pub category: StaffCategory,
    /// On the payroll (trong biên chế): counted in tallies.
    pub on_payroll: bool,
    /// Added by an inspector on site, not on the roster the visit started with.
    #[serde(default)]
    pub found_on_site: bool,
}

impl StaffMember {
    pub fn new(
        id: StaffId,
        name: &str,
        position: &str,
        category: StaffCategory,
        on_payroll: bool,
    ) -> Result<Self> {
        Ok(Self {
            id,
            name: text::required("staff name", name, text::MAX_NAME)?,
            position: text::optional("staff position", position, text::MAX_NAME)?,
            category,
            on_payroll,
            found_on_site: false,
        })
    }
}

/// Everything a visit is created with, apart from its template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitMeta {
    pub visit_id: VisitId,
    pub unit: Unit,
    pub campaign: CampaignId,
    pub team: TeamId,
    /// The day the visit is planned for (Viet Nam date).
    pub scheduled_on: chrono::NaiveDate,
    pub template_id: TemplateId,
    pub template_version: u32,
    pub created_by: UserId,
    pub created_at: DateTime<Utc>,
}

/// The fields of a finding that can be edited one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingField {
    Category,
    Severity,
    Text,
    Recommendation,
    RelatedStaff,
    Withdrawn,
}

impl FindingField {
    pub const ALL: &'static [FindingField] = &[
        Self::Category,
        Self::Severity,
        Self::Text,
        Self::Recommendation,
        Self::RelatedStaff,
        Self::Withdrawn,
    ];
    pub fn key(self) -> &'static str {
        match self {
            Self::Category => "category",
            Self::Severity => "severity",
            Self::Text => "text",
            Self::Recommendation => "recommendation",
            Self::RelatedStaff => "related_staff",
            Self::Withdrawn => "withdrawn",
        }
    }
    pub fn label(self, lang: Lang) -> &'static str {
        match (self, lang) {
            (Self::Category, Lang::Vi) => "nhóm",
            (Self::Category, Lang::En) => "category",
            (Self::Severity, Lang::Vi) => "mức độ",
            (Self::Severity, Lang::En) => "severity",
            (Self::Text, Lang::Vi) => "nội dung",
            (Self::Text, Lang::En) => "text",
            (Self::Recommendation, Lang::Vi) => "kiến nghị xử lý",
            (Self::Recommendation, Lang::En) => "recommendation",
            (Self::RelatedStaff, Lang::Vi) => "cán bộ liên quan",
            (Self::RelatedStaff, Lang::En) => "related staff",
            (Self::Withdrawn, Lang::Vi) => "rút lại",
            (Self::Withdrawn, Lang::En) => "withdrawn",
        }
    }
}

/// A new finding (tồn tại, hạn chế) as an inspector enters it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFinding {
    pub category: String,
    pub severity: Severity,
    pub text: String,
    pub recommendation: String,
    pub related_staff: Vec<StaffId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attendance_mark_rules() {
        assert_eq!(
            AttendanceMark::parse("present", None),
            Ok(AttendanceMark::Present)
        );
        assert_eq!(
            AttendanceMark::parse("present", Some("training")),
            Err(Error::ReasonNotAllowed("present"))
        );
        assert_eq!(
            AttendanceMark::parse("late", Some("sick")),
            Err(Error::ReasonNotAllowed("late"))
        );
        assert_eq!(
            AttendanceMark::parse("absent", None),
            Err(Error::ReasonRequired)
        );
        assert_eq!(
            AttendanceMark::parse("absent", Some("business_trip")),
            Ok(AttendanceMark::Absent(AbsenceReason::BusinessTrip))
        );
        assert!(matches!(
            AttendanceMark::parse("absent", Some("holiday")),
            Err(Error::InvalidValue { .. })
        ));
        assert!(matches!(
            AttendanceMark::parse("here", None),
            Err(Error::InvalidValue { .. })
        ));
    }

    #[test]
    fn other_reason_needs_note() {
        let t = DateTime::<Utc>::UNIX_EPOCH;
        let other = AttendanceMark::Absent(AbsenceReason::Other);
        assert_eq!(Attendance::new(other, " ", t), Err(Error::NoteRequired));
        assert!(Attendance::new(other, "đi họp tổ dân phố", t).is_ok());
    }

    #[test]
    fn status_life_cycle() {
        use VisitStatus::*;
        assert!(Draft.can_move_to(Submitted));
        assert!(Submitted.can_move_to(Approved));
        assert!(Submitted.can_move_to(Returned));
        assert!(Returned.can_move_to(Submitted));
        assert!(!Draft.can_move_to(Approved));
        assert!(!Approved.can_move_to(Draft));
        assert!(!Approved.can_move_to(Returned));
    }

    #[test]
    fn enums_round_trip_their_keys() {
        for r in AbsenceReason::ALL {
            assert_eq!(AbsenceReason::parse(r.key()), Ok(*r));
        }
        for k in UnitKind::ALL {
            assert_eq!(UnitKind::parse(k.key()), Ok(*k));
        }
    }
}
