//! Identifiers, parsed once at the edge.
//!
//! Every identifier is a short ASCII token (`A-Z a-z 0-9 . _ -`, at most 64
//! characters) so it can be used as an Automerge map key, a SQLite key and a
//! path segment without escaping.

use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::{Error, Result};

const MAX_ID: usize = 64;

fn check_token(kind: &'static str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::InvalidId {
            kind,
            value: value.into(),
            reason: "empty",
        });
    }
    if value.len() > MAX_ID {
        return Err(Error::InvalidId {
            kind,
            value: value.into(),
            reason: "longer than 64 characters",
        });
    }
    if !value
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err(Error::InvalidId {
            kind,
            value: value.into(),
            reason: "only letters A-Z, digits, '.', '_' and '-' are allowed",
        });
    }
    Ok(())
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the identifier.
            pub fn parse(value: &str) -> Result<Self> {
                check_token($kind, value)?;
                Ok(Self(value.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                check_token($kind, &value)?;
                Ok(Self(value))
            }
        }
        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                Self::parse(s)
            }
        }
    };
}

token_id!(
    /// One inspection visit (one Automerge document).
    VisitId, "visit id");
token_id!(
    /// A staff member within a visit's roster.
    StaffId, "staff id");
token_id!(
    /// An office check defined by a template.
    CheckId, "check id");
token_id!(
    /// An option of a `choice` office check, defined by its template.
    ChoiceId, "choice id");
token_id!(
    /// A finding recorded in a visit.
    FindingId, "finding id");
token_id!(
    /// The code of an inspected unit.
    UnitCode, "unit code");
token_id!(
    /// An inspection campaign (đợt kiểm tra).
    CampaignId, "campaign id");
token_id!(
    /// An inspection team (tổ/đoàn kiểm tra).
    TeamId, "team id");
token_id!(
    /// A user (inspector, supervisor, auditor, administrator).
    UserId, "user id");
token_id!(
    /// An enrolled device (a phone).
    DeviceId, "device id");
token_id!(
    /// A checklist template.
    TemplateId, "template id");

impl VisitId {
    /// A fresh random visit id.
    pub fn generate() -> Self {
        Self(format!("v-{}", uuid::Uuid::new_v4().simple()))
    }
}
impl StaffId {
    /// A fresh random staff id, for staff found on site.
    pub fn generate() -> Self {
        Self(format!("s-{}", uuid::Uuid::new_v4().simple()))
    }
}
impl FindingId {
    /// A fresh random finding id.
    pub fn generate() -> Self {
        Self(format!("f-{}", uuid::Uuid::new_v4().simple()))
    }
}

/// A SHA-256 digest of a piece of evidence (a photo), lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EvidenceHash(String);

impl EvidenceHash {
    pub fn parse(value: &str) -> Result<Self> {
        let ok = value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(Error::InvalidId {
                kind: "evidence hash",
                value: value.into(),
                reason: "a SHA-256 digest is 64 hexadecimal characters",
            });
        }
        Ok(Self(value.to_ascii_lowercase()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl TryFrom<String> for EvidenceHash {
    type Error = Error;
    fn try_from(value: String) -> Result<Self> {
        Self::parse(&value)
    }
}
impl From<EvidenceHash> for String {
    fn from(v: EvidenceHash) -> String {
        v.0
    }
}
impl fmt::Display for EvidenceHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_bad_tokens() {
        assert!(StaffId::parse("").is_err());
        assert!(StaffId::parse("a/b").is_err());
        assert!(StaffId::parse("Nguyễn").is_err());
        assert!(StaffId::parse(&"x".repeat(65)).is_err());
        assert_eq!(
            StaffId::parse("ct-001.s-07").map(|s| s.0),
            Ok("ct-001.s-07".into())
        );
    }

    #[test]
    fn ids_refuse_bad_json() {
        assert!(serde_json::from_str::<VisitId>("\"a b\"").is_err());
        assert!(serde_json::from_str::<VisitId>("\"ok-1\"").is_ok());
    }

    #[test]
    fn evidence_hash_is_sha256_hex() {
        assert!(EvidenceHash::parse("abc").is_err());
        assert!(EvidenceHash::parse(&"g".repeat(64)).is_err());
        let h = EvidenceHash::parse(&"AB".repeat(32)).map(|h| h.0);
        assert_eq!(h, Ok("ab".repeat(32)));
    }
}
