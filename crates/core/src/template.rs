//! Checklist templates: the office checks a visit is made against, as data.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::ids::{CheckId, ChoiceId, TemplateId};
use crate::model::{CheckEntry, CheckResult, CheckValue, Lang};
use crate::text;

/// The template file format this build reads.
pub const TEMPLATE_FORMAT: u32 = 1;

/// A label in both languages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub vi: String,
    pub en: String,
}

impl Label {
    pub fn get(&self, lang: Lang) -> &str {
        match lang {
            Lang::Vi => &self.vi,
            Lang::En => &self.en,
        }
    }
}

/// Most options a `choice` check may offer.
pub const MAX_CHOICES: usize = 50;

/// One option of a `choice` check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceOption {
    pub id: ChoiceId,
    pub label: Label,
}

/// What an office check records besides its result (pass, fail, not
/// applicable): nothing, a whole number, one of the template's options, or
/// a short text.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CheckKind {
    #[default]
    PassFail,
    /// A whole number, within `min..=max` when given, counted in `unit`.
    Number {
        min: Option<i64>,
        max: Option<i64>,
        unit: Option<Label>,
    },
    /// One of the options, by id.
    Choice { options: Vec<ChoiceOption> },
    /// A short text (trimmed NFC, at most [`text::MAX_CHECK_TEXT`] characters).
    Text,
}

impl CheckKind {
    /// The stable machine name (`pass_fail`, `number`, `choice`, `text`).
    pub fn key(&self) -> &'static str {
        match self {
            CheckKind::PassFail => "pass_fail",
            CheckKind::Number { .. } => "number",
            CheckKind::Choice { .. } => "choice",
            CheckKind::Text => "text",
        }
    }

    /// Whether a record of this check carries a value.
    pub fn is_valued(&self) -> bool {
        !matches!(self, CheckKind::PassFail)
    }

    /// What a record's value must be, in words.
    fn expects(&self) -> &'static str {
        match self {
            CheckKind::PassFail => "no value (it is a pass/fail check)",
            CheckKind::Number { .. } => "a number",
            CheckKind::Choice { .. } => "one of its options",
            CheckKind::Text => "a short text",
        }
    }

    /// The option with this id, for a choice.
    pub fn option(&self, id: &ChoiceId) -> Option<&ChoiceOption> {
        match self {
            CheckKind::Choice { options } => options.iter().find(|o| &o.id == id),
            _ => None,
        }
    }

    /// The invariants of the kind itself, as a reason when broken.
    fn problem(&self) -> Option<String> {
        match self {
            CheckKind::PassFail | CheckKind::Text => None,
            CheckKind::Number { min, max, unit } => {
                if let (Some(lo), Some(hi)) = (min, max)
                    && lo > hi
                {
                    return Some(format!("has min {lo} above max {hi}"));
                }
                let unit = unit.as_ref()?;
                label_problem("unit", unit)
            }
            CheckKind::Choice { options } => {
                if options.len() < 2 {
                    return Some(format!(
                        "offers {} option(s); a choice needs at least 2",
                        options.len()
                    ));
                }
                if options.len() > MAX_CHOICES {
                    return Some(format!(
                        "offers {} options; at most {MAX_CHOICES}",
                        options.len()
                    ));
                }
                let mut seen = BTreeSet::new();
                for o in options {
                    if !seen.insert(&o.id) {
                        return Some(format!("offers option {} twice", o.id));
                    }
                    if let Some(p) = label_problem("option label", &o.label) {
                        return Some(format!("option {}: {p}", o.id));
                    }
                }
                None
            }
        }
    }
}

/// Why a label is unusable: empty or over-long in either language.
fn label_problem(what: &'static str, label: &Label) -> Option<String> {
    for (lang, s) in [("vi", &label.vi), ("en", &label.en)] {
        if let Err(e) = text::required(what, s, text::MAX_NAME) {
            return Some(format!("{e} ({lang})"));
        }
    }
    None
}

/// One office check of a template. In JSON the kind is flat beside the
/// check's id: `"kind": "number"` with `min`, `max`, `unit`; `"kind":
/// "choice"` with `options`; `"kind": "text"`; no `kind` is `pass_fail`
/// (and a pass/fail check is written without it, as before kinds existed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCheckDef", into = "RawCheckDef")]
pub struct CheckDef {
    pub id: CheckId,
    /// Section of the checklist, e.g. `procedures`, `one_stop_desk`, `records`.
    pub group: String,
    pub label: Label,
    pub kind: CheckKind,
}

impl CheckDef {
    /// A record of this check as the API writes it: the note and a text
    /// value trimmed NFC and bounded, the value of this check's kind — none
    /// for a pass/fail check or a not-applicable record, one for every
    /// other record of a valued check —, a number within range, a known
    /// option.
    pub fn entry(
        &self,
        result: CheckResult,
        value: Option<CheckValue>,
        note: &str,
    ) -> Result<CheckEntry> {
        let note = text::optional("check note", note, text::MAX_NOTE)?;
        let check = || self.id.to_string();
        let value =
            match (&self.kind, value) {
                (_, None) if !self.kind.is_valued() || result == CheckResult::NotApplicable => None,
                (_, None) => {
                    return Err(Error::CheckValueRequired {
                        check: check(),
                        expected: self.kind.expects(),
                    });
                }
                (CheckKind::PassFail, Some(v)) => {
                    return Err(Error::CheckValueKind {
                        check: check(),
                        expected: self.kind.expects(),
                        found: v.kind_key(),
                    });
                }
                (_, Some(_)) if result == CheckResult::NotApplicable => {
                    return Err(Error::CheckValueNotApplicable { check: check() });
                }
                (CheckKind::Number { min, max, .. }, Some(CheckValue::Number(n))) => {
                    if min.is_some_and(|lo| n < lo) || max.is_some_and(|hi| n > hi) {
                        return Err(Error::CheckNumberOutOfRange {
                            check: check(),
                            value: n,
                            range: range_words(*min, *max),
                        });
                    }
                    Some(CheckValue::Number(n))
                }
                (CheckKind::Choice { .. }, Some(CheckValue::Choice(id))) => {
                    if self.kind.option(&id).is_none() {
                        return Err(Error::UnknownChoice {
                            check: check(),
                            option: id.to_string(),
                        });
                    }
                    Some(CheckValue::Choice(id))
                }
                (CheckKind::Text, Some(CheckValue::Text(s))) => Some(CheckValue::Text(
                    text::required("check text", &s, text::MAX_CHECK_TEXT)?,
                )),
                (kind, Some(v)) => {
                    return Err(Error::CheckValueKind {
                        check: check(),
                        expected: kind.expects(),
                        found: v.kind_key(),
                    });
                }
            };
        Ok(CheckEntry {
            result,
            value,
            note,
        })
    }

    /// A record's value in words, with the unit or the option's label.
    pub fn describe_value(&self, value: &CheckValue, lang: Lang) -> String {
        match (value, &self.kind) {
            // A percentage is written against its number (`96%`, as the
            // reports write `76,28%`); other units after a space.
            (CheckValue::Number(n), CheckKind::Number { unit: Some(u), .. }) => {
                let unit = u.get(lang);
                let sep = if unit == "%" { "" } else { " " };
                format!("{}{sep}{unit}", crate::tally::format_int(*n, lang))
            }
            (CheckValue::Choice(id), kind) => kind
                .option(id)
                .map(|o| o.label.get(lang).to_owned())
                .unwrap_or_else(|| id.to_string()),
            (v, _) => v.describe(lang),
        }
    }
}

/// `0 to 100`, `at least 0`, `at most 100`.
fn range_words(min: Option<i64>, max: Option<i64>) -> String {
    match (min, max) {
        (Some(lo), Some(hi)) => format!("{lo} to {hi}"),
        (Some(lo), None) => format!("at least {lo}"),
        (None, Some(hi)) => format!("at most {hi}"),
        (None, None) => "any".into(),
    }
}

/// The kind's name in template JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum KindTag {
    #[default]
    PassFail,
    Number,
    Choice,
    Text,
}

/// A check as template JSON holds it: the kind's fields flat beside the id.
#[derive(Serialize, Deserialize)]
struct RawCheckDef {
    id: CheckId,
    group: String,
    label: Label,
    #[serde(default, skip_serializing_if = "is_pass_fail")]
    kind: KindTag,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    options: Option<Vec<ChoiceOption>>,
}

fn is_pass_fail(k: &KindTag) -> bool {
    *k == KindTag::PassFail
}

impl TryFrom<RawCheckDef> for CheckDef {
    type Error = String;
    fn try_from(r: RawCheckDef) -> std::result::Result<Self, String> {
        let stray = |field: &str| {
            Err(format!(
                "check {}: {field} does not belong to a {} check",
                r.id,
                match r.kind {
                    KindTag::PassFail => "pass_fail",
                    KindTag::Number => "number",
                    KindTag::Choice => "choice",
                    KindTag::Text => "text",
                }
            ))
        };
        let numeric = r.min.is_some() || r.max.is_some() || r.unit.is_some();
        let kind = match r.kind {
            KindTag::Number if r.options.is_some() => return stray("options"),
            KindTag::Number => CheckKind::Number {
                min: r.min,
                max: r.max,
                unit: r.unit,
            },
            _ if numeric => return stray("min, max or unit"),
            KindTag::Choice => CheckKind::Choice {
                options: r
                    .options
                    .ok_or_else(|| format!("check {}: a choice check lists its options", r.id))?,
            },
            _ if r.options.is_some() => return stray("options"),
            KindTag::PassFail => CheckKind::PassFail,
            KindTag::Text => CheckKind::Text,
        };
        Ok(CheckDef {
            id: r.id,
            group: r.group,
            label: r.label,
            kind,
        })
    }
}

impl From<CheckDef> for RawCheckDef {
    fn from(c: CheckDef) -> Self {
        let mut raw = RawCheckDef {
            id: c.id,
            group: c.group,
            label: c.label,
            kind: KindTag::PassFail,
            min: None,
            max: None,
            unit: None,
            options: None,
        };
        match c.kind {
            CheckKind::PassFail => {}
            CheckKind::Number { min, max, unit } => {
                raw.kind = KindTag::Number;
                raw.min = min;
                raw.max = max;
                raw.unit = unit;
            }
            CheckKind::Choice { options } => {
                raw.kind = KindTag::Choice;
                raw.options = Some(options);
            }
            CheckKind::Text => raw.kind = KindTag::Text,
        }
        raw
    }
}

/// A versioned checklist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    pub format: u32,
    pub id: TemplateId,
    pub version: u32,
    pub title: Label,
    pub checks: Vec<CheckDef>,
}

impl Template {
    /// Parses and validates a template file.
    pub fn from_json(json: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct Probe {
            format: u32,
        }
        let probe: Probe =
            serde_json::from_str(json).map_err(|e| Error::TemplateJson(e.to_string()))?;
        if probe.format != TEMPLATE_FORMAT {
            return Err(Error::UnknownTemplateFormat {
                found: probe.format,
                supported: TEMPLATE_FORMAT,
            });
        }
        let t: Template =
            serde_json::from_str(json).map_err(|e| Error::TemplateJson(e.to_string()))?;
        t.validate()?;
        Ok(t)
    }

    /// Checks the invariants a visit relies on; labels are normalised to NFC.
    pub fn validate(&self) -> Result<()> {
        if self.format != TEMPLATE_FORMAT {
            return Err(Error::UnknownTemplateFormat {
                found: self.format,
                supported: TEMPLATE_FORMAT,
            });
        }
        if self.checks.is_empty() {
            return Err(Error::EmptyTemplate {
                id: self.id.to_string(),
            });
        }
        let mut seen = BTreeSet::new();
        for c in &self.checks {
            if !seen.insert(&c.id) {
                return Err(Error::DuplicateCheck {
                    id: self.id.to_string(),
                    check: c.id.to_string(),
                });
            }
            text::required("check label (vi)", &c.label.vi, text::MAX_NAME)?;
            text::required("check label (en)", &c.label.en, text::MAX_NAME)?;
            if let Some(reason) = c.kind.problem() {
                return Err(Error::InvalidCheckKind {
                    id: self.id.to_string(),
                    check: c.id.to_string(),
                    reason,
                });
            }
        }
        Ok(())
    }

    /// Whether any check records a value (number, choice or text). A visit
    /// made from such a template is written with document schema 2, so that
    /// a build that knows no values refuses it instead of dropping them.
    pub fn has_values(&self) -> bool {
        self.checks.iter().any(|c| c.kind.is_valued())
    }

    /// The document schema a visit made from this template is written with.
    pub fn document_schema(&self) -> u64 {
        if self.has_values() { 2 } else { 1 }
    }

    pub fn check(&self, id: &CheckId) -> Option<&CheckDef> {
        self.checks.iter().find(|c| &c.id == id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STANDARD: &str = include_str!("../../../fixtures/templates/standard-v1.json");

    #[test]
    fn the_standard_template_parses() {
        let t = Template::from_json(STANDARD).expect("standard template parses");
        assert!(t.checks.len() >= 10);
        assert!(
            t.check(&CheckId::parse("tthc-posted").expect("id"))
                .is_some()
        );
    }

    #[test]
    fn unknown_format_is_refused() {
        let bumped = STANDARD.replacen("\"format\": 1", "\"format\": 2", 1);
        assert_eq!(
            Template::from_json(&bumped),
            Err(Error::UnknownTemplateFormat {
                found: 2,
                supported: 1
            })
        );
    }

    #[test]
    fn duplicate_and_empty_checks_are_refused() {
        let t = Template::from_json(STANDARD).expect("standard template parses");
        let mut dup = t.clone();
        dup.checks.push(dup.checks[0].clone());
        assert!(matches!(dup.validate(), Err(Error::DuplicateCheck { .. })));
        let mut empty = t;
        empty.checks.clear();
        assert!(matches!(empty.validate(), Err(Error::EmptyTemplate { .. })));
        assert!(matches!(
            Template::from_json("{"),
            Err(Error::TemplateJson(_))
        ));
    }

    const CCHC_V1: &str = include_str!("../../../fixtures/templates/cchc-v1.json");
    const CCHC_V2: &str = include_str!("../../../fixtures/templates/cchc-v2.json");

    fn groups(t: &Template) -> Vec<&str> {
        let mut groups: Vec<&str> = Vec::new();
        for c in &t.checks {
            if !groups.contains(&c.group.as_str()) {
                groups.push(&c.group);
            }
        }
        groups
    }

    const CCHC_GROUPS: [&str; 8] = [
        "direction",
        "institutions",
        "procedures",
        "organisation",
        "civil_servants",
        "one_stop",
        "public_finance",
        "e_government",
    ];

    #[test]
    fn the_cchc_template_parses_with_its_eight_fields_in_order() {
        let t = Template::from_json(CCHC_V1).expect("cchc template parses");
        assert_eq!(t.id.as_str(), "cchc");
        assert_eq!(t.version, 1);
        assert_eq!(t.checks.len(), 26);
        assert_eq!(groups(&t), CCHC_GROUPS);
        assert!(!t.has_values(), "version 1 is pass/fail only");
        assert_eq!(t.document_schema(), 1);
    }

    fn id(s: &str) -> CheckId {
        CheckId::parse(s).expect("check id")
    }

    fn choice(s: &str) -> ChoiceId {
        ChoiceId::parse(s).expect("choice id")
    }

    #[test]
    fn cchc_version_2_adds_valued_checks_and_keeps_every_check_of_version_1() {
        let v1 = Template::from_json(CCHC_V1).expect("v1");
        let v2 = Template::from_json(CCHC_V2).expect("v2 parses");
        assert_eq!((v2.id.as_str(), v2.version), ("cchc", 2));
        assert_eq!(groups(&v2), CCHC_GROUPS);
        assert_eq!(v2.checks.len(), 30);
        // Version 1's checks, unchanged and in the same order.
        let kept: Vec<&CheckDef> = v2
            .checks
            .iter()
            .filter(|c| v1.check(&c.id).is_some())
            .collect();
        assert_eq!(kept, v1.checks.iter().collect::<Vec<_>>());
        assert!(v2.has_values());
        assert_eq!(v2.document_schema(), 2);

        let rate = v2.check(&id("satisfaction-rate")).expect("rate");
        assert_eq!(rate.group, "one_stop");
        assert!(matches!(
            &rate.kind,
            CheckKind::Number { min: Some(0), max: Some(100), unit: Some(u) } if u.vi == "%"
        ));
        let count = v2.check(&id("ratings-collected")).expect("count");
        assert!(matches!(
            count.kind,
            CheckKind::Number {
                min: Some(0),
                max: None,
                ..
            }
        ));
        let mode = v2.check(&id("one-stop-mode")).expect("mode");
        let CheckKind::Choice { options } = &mode.kind else {
            panic!("a choice: {mode:?}");
        };
        let ids: Vec<&str> = options.iter().map(|o| o.id.as_str()).collect();
        assert_eq!(ids, ["modern", "standard", "none"]);
        let software = v2.check(&id("e-office-software")).expect("software");
        assert_eq!(
            (software.group.as_str(), &software.kind),
            ("e_government", &CheckKind::Text)
        );
    }

    #[test]
    fn a_pass_fail_check_is_written_without_a_kind_and_templates_round_trip() {
        let standard = Template::from_json(STANDARD).expect("standard");
        let json = serde_json::to_string(&standard).expect("json");
        assert!(!json.contains("\"kind\""), "{json}");
        let v2 = Template::from_json(CCHC_V2).expect("v2");
        let json = serde_json::to_string(&v2).expect("json");
        assert!(json.contains(r#""kind":"choice""#), "{json}");
        assert_eq!(Template::from_json(&json), Ok(v2));
        // `"kind": "pass_fail"` spelt out is the same check.
        let spelt = STANDARD.replacen(
            r#""group": "procedures","#,
            r#""group": "procedures", "kind": "pass_fail","#,
            1,
        );
        assert_eq!(Template::from_json(&spelt), Ok(standard));
    }

    /// The standard template with its first check replaced by `check`.
    fn with_check(check: &str) -> Result<Template> {
        let mut t: serde_json::Value = serde_json::from_str(STANDARD).expect("json");
        t["checks"][0] = serde_json::from_str(check).expect("check json");
        Template::from_json(&t.to_string())
    }

    fn kind_reason(check: &str) -> String {
        match with_check(check) {
            Err(Error::InvalidCheckKind { check, reason, .. }) => {
                assert_eq!(check, "x");
                reason
            }
            other => panic!("{check}: {other:?}"),
        }
    }

    const L: &str = r#""label":{"vi":"Thử","en":"Test"}"#;

    #[test]
    fn bad_kinds_are_refused_with_a_reason() {
        let base = format!(r#""id":"x","group":"g",{L}"#);
        assert!(
            kind_reason(&format!(r#"{{{base},"kind":"number","min":5,"max":4}}"#))
                .contains("min 5 above max 4")
        );
        let one = format!(r#"{{{base},"kind":"choice","options":[{{"id":"a",{L}}}]}}"#);
        assert!(kind_reason(&one).contains("needs at least 2"));
        let none = format!(r#"{{{base},"kind":"choice","options":[]}}"#);
        assert!(kind_reason(&none).contains("needs at least 2"));
        let dup =
            format!(r#"{{{base},"kind":"choice","options":[{{"id":"a",{L}}},{{"id":"a",{L}}}]}}"#);
        assert!(kind_reason(&dup).contains("option a twice"));
        let empty = format!(
            r#"{{{base},"kind":"choice","options":[{{"id":"a",{L}}},{{"id":"b","label":{{"vi":" ","en":"B"}}}}]}}"#
        );
        let reason = kind_reason(&empty);
        assert!(
            reason.contains("option b") && reason.contains("(vi)"),
            "{reason}"
        );
        let many: Vec<String> = (0..=MAX_CHOICES)
            .map(|i| format!(r#"{{"id":"o{i}",{L}}}"#))
            .collect();
        let many = format!(
            r#"{{{base},"kind":"choice","options":[{}]}}"#,
            many.join(",")
        );
        assert!(kind_reason(&many).contains("at most"));
        let unit = format!(r#"{{{base},"kind":"number","unit":{{"vi":"%","en":""}}}}"#);
        assert!(kind_reason(&unit).contains("(en)"));
        // Fields of another kind, a choice without options, an unknown
        // kind, a decimal bound and a bad option id do not parse.
        for bad in [
            format!(r#"{{{base},"kind":"number","options":[]}}"#),
            format!(r#"{{{base},"kind":"text","max":3}}"#),
            format!(r#"{{{base},"min":0}}"#),
            format!(r#"{{{base},"kind":"choice"}}"#),
            format!(r#"{{{base},"kind":"rating"}}"#),
            format!(r#"{{{base},"kind":"number","max":99.5}}"#),
            format!(
                r#"{{{base},"kind":"choice","options":[{{"id":"a b",{L}}},{{"id":"c",{L}}}]}}"#
            ),
        ] {
            assert!(
                matches!(with_check(&bad), Err(Error::TemplateJson(_))),
                "{bad}: {:?}",
                with_check(&bad)
            );
        }
        // Well-formed kinds pass.
        for good in [
            format!(r#"{{{base},"kind":"number","min":0,"max":0}}"#),
            format!(r#"{{{base},"kind":"number"}}"#),
            format!(r#"{{{base},"kind":"text"}}"#),
            format!(r#"{{{base},"kind":"choice","options":[{{"id":"a",{L}}},{{"id":"b",{L}}}]}}"#),
        ] {
            assert!(with_check(&good).is_ok(), "{good}: {:?}", with_check(&good));
        }
    }

    #[test]
    fn an_entry_holds_a_value_of_its_checks_kind() {
        use CheckResult::*;
        let v2 = Template::from_json(CCHC_V2).expect("v2");
        let def = |s: &str| v2.check(&id(s)).expect("check").clone();
        let (rate, mode, software, plan) = (
            def("satisfaction-rate"),
            def("one-stop-mode"),
            def("e-office-software"),
            def("cchc-plan-issued"),
        );
        let n = CheckValue::Number;
        // Within range, a known option, a text made NFC and trimmed.
        assert_eq!(
            rate.entry(Pass, Some(n(96)), "").map(|e| e.value),
            Ok(Some(n(96)))
        );
        assert!(rate.entry(Fail, Some(n(0)), "").is_ok());
        assert!(rate.entry(Pass, Some(n(100)), "").is_ok());
        assert!(
            mode.entry(Pass, Some(CheckValue::Choice(choice("modern"))), "")
                .is_ok()
        );
        assert_eq!(
            software
                .entry(
                    Pass,
                    Some(CheckValue::Text(" Ve\u{302}\u{323} iOffice ".into())),
                    ""
                )
                .map(|e| e.value),
            Ok(Some(CheckValue::Text("Vệ iOffice".into())))
        );
        // Not applicable: no value, and none allowed.
        assert_eq!(
            rate.entry(NotApplicable, None, "").map(|e| e.value),
            Ok(None)
        );
        assert_eq!(
            rate.entry(NotApplicable, Some(n(5)), ""),
            Err(Error::CheckValueNotApplicable {
                check: "satisfaction-rate".into()
            })
        );
        // Out of range, an unknown option, the wrong kind, no value, a
        // value on a pass/fail check, an empty or over-long text.
        assert_eq!(
            rate.entry(Pass, Some(n(101)), ""),
            Err(Error::CheckNumberOutOfRange {
                check: "satisfaction-rate".into(),
                value: 101,
                range: "0 to 100".into()
            })
        );
        assert!(matches!(
            rate.entry(Pass, Some(n(-1)), ""),
            Err(Error::CheckNumberOutOfRange { value: -1, .. })
        ));
        assert!(matches!(
            def("ratings-collected").entry(Pass, Some(n(-1)), ""),
            Err(Error::CheckNumberOutOfRange { range, .. }) if range == "at least 0"
        ));
        assert_eq!(
            mode.entry(Pass, Some(CheckValue::Choice(choice("luxury"))), ""),
            Err(Error::UnknownChoice {
                check: "one-stop-mode".into(),
                option: "luxury".into()
            })
        );
        assert_eq!(
            mode.entry(Pass, Some(n(1)), ""),
            Err(Error::CheckValueKind {
                check: "one-stop-mode".into(),
                expected: "one of its options",
                found: "a number"
            })
        );
        assert!(matches!(
            rate.entry(Pass, Some(CheckValue::Text("96".into())), ""),
            Err(Error::CheckValueKind { .. })
        ));
        assert_eq!(
            rate.entry(Fail, None, ""),
            Err(Error::CheckValueRequired {
                check: "satisfaction-rate".into(),
                expected: "a number"
            })
        );
        assert!(matches!(
            plan.entry(Pass, Some(n(1)), ""),
            Err(Error::CheckValueKind {
                found: "a number",
                ..
            })
        ));
        assert!(plan.entry(Pass, None, "").is_ok());
        assert_eq!(
            software.entry(Pass, Some(CheckValue::Text("  ".into())), ""),
            Err(Error::Empty {
                field: "check text"
            })
        );
        let long = "ư".repeat(text::MAX_CHECK_TEXT + 1);
        assert!(matches!(
            software.entry(Pass, Some(CheckValue::Text(long)), ""),
            Err(Error::TooLong {
                field: "check text",
                ..
            })
        ));
        // Shown with the unit and the option's label.
        assert_eq!(rate.describe_value(&n(96), Lang::Vi), "96%");
        assert_eq!(
            def("ratings-collected").describe_value(&n(12_000), Lang::Vi),
            "12.000 lượt"
        );
        assert_eq!(
            mode.describe_value(&CheckValue::Choice(choice("modern")), Lang::En),
            "Modern (electronic) one-stop"
        );
    }
}
