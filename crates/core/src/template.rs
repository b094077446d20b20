//! Checklist templates: the office checks a visit is made against, as data.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::ids::{CheckId, TemplateId};
use crate::model::Lang;
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

/// One office check of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckDef {
    pub id: CheckId,
    /// Section of the checklist, e.g. `procedures`, `one_stop_desk`, `records`.
    pub group: String,
    pub label: Label,
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
        }
        Ok(())
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

    #[test]
    fn the_cchc_template_parses_with_its_eight_fields_in_order() {
        let t = Template::from_json(include_str!("../../../fixtures/templates/cchc-v1.json"))
            .expect("cchc template parses");
        assert_eq!(t.id.as_str(), "cchc");
        assert_eq!(t.version, 1);
        let mut groups: Vec<&str> = Vec::new();
        for c in &t.checks {
            if !groups.contains(&c.group.as_str()) {
                groups.push(&c.group);
            }
        }
        assert_eq!(
            groups,
            [
                "direction",
                "institutions",
                "procedures",
                "organisation",
                "civil_servants",
                "one_stop",
                "public_finance",
                "e_government",
            ]
        );
    }
}
