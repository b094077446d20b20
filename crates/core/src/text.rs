//! Free text as it enters the document: trimmed, Unicode NFC, bounded.

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// Longest name (person, unit, position) in characters.
pub const MAX_NAME: usize = 200;
/// Longest text value of an office check (e.g. the software in use).
pub const MAX_CHECK_TEXT: usize = 200;
/// Longest note on a record.
pub const MAX_NOTE: usize = 2_000;
/// Longest finding text or recommendation.
pub const MAX_FINDING_TEXT: usize = 8_000;
/// Longest narrative.
pub const MAX_NARRATIVE: usize = 100_000;

/// Normalises to NFC and trims; refuses empty or over-long text.
pub fn required(field: &'static str, value: &str, max: usize) -> Result<String> {
    let s = optional(field, value, max)?;
    if s.is_empty() {
        return Err(Error::Empty { field });
    }
    Ok(s)
}

/// Normalises to NFC and trims; empty is allowed.
pub fn optional(field: &'static str, value: &str, max: usize) -> Result<String> {
    let s: String = value.trim().nfc().collect();
    let len = s.chars().count();
    if len > max {
        return Err(Error::TooLong { field, len, max });
    }
    Ok(s)
}

/// NFC without trimming, for narrative splices where whitespace matters.
pub fn nfc(value: &str) -> String {
    value.nfc().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decomposed_vietnamese_becomes_nfc() {
        // "Nguyễn" written with combining marks (NFD).
        let nfd = "Nguye\u{302}\u{303}n";
        let s = required("name", nfd, MAX_NAME).expect("valid name");
        assert_eq!(s, "Nguyễn");
        assert_ne!(s.len(), nfd.len());
    }

    #[test]
    fn empty_and_long_are_refused() {
        assert_eq!(
            required("name", "  ", 10),
            Err(Error::Empty { field: "name" })
        );
        assert!(matches!(
            required("name", "ơ".repeat(11).as_str(), 10),
            Err(Error::TooLong { len: 11, .. })
        ));
        assert_eq!(optional("note", "", 10), Ok(String::new()));
    }
}
