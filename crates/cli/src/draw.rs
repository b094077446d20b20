//! A verifiable random draw of units ("bốc thăm ngẫu nhiên", as in "Kiểm
//! tra công tác cải cách hành chính tại huyện Phong Điền", Báo Cần Thơ,
//! 17/09/2014).
//!
//! Before the draw a secret 32-byte seed is made and only its commitment,
//! `SHA-256("kiemtra-draw-v1" 0x00 seed)`, is published and recorded. After
//! the draw the seed is revealed; anyone recomputes the selection: every
//! candidate unit code gets the key `SHA-256(seed 0x00 code)`, candidates
//! are ordered by key (then code) and the first N are selected. The list of
//! candidates is part of the record, so it cannot be changed afterwards.

use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::desk::{CliError, Result};

use kiemtra_core::hex::{decode as unhex, encode as hex};

/// A draw as recorded: committed, and later revealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Draw {
    pub campaign: String,
    pub n: usize,
    /// Candidate unit codes, sorted, without duplicates.
    pub candidates: Vec<String>,
    pub commitment: String,
    pub committed_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selected: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revealed_at: Option<String>,
}

pub use kiemtra_admin::draw::commitment_of;

/// Cleans a candidate list: trimmed, no blanks, sorted, unique.
pub fn candidates(raw: &[String]) -> Result<Vec<String>> {
    let mut c: Vec<String> = raw
        .iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.starts_with('#'))
        .collect();
    c.sort();
    c.dedup();
    if c.is_empty() {
        return Err(CliError::Invalid("no candidate units".into()));
    }
    Ok(c)
}

/// The selection a seed makes: deterministic, the same everywhere (the
/// scheme the server checks draws by, `kiemtra_admin::draw`).
pub fn select(seed: &[u8], candidates: &[String], n: usize) -> Vec<String> {
    let names: Vec<&str> = candidates.iter().map(String::as_str).collect();
    kiemtra_admin::draw::select_names(seed, &names, n)
}

/// Makes a seed and the draw's commitment; the seed is returned to the
/// caller to keep secret until the reveal.
pub fn commit(campaign: &str, n: usize, raw: &[String]) -> Result<(Draw, String)> {
    let candidates = candidates(raw)?;
    if n == 0 || n > candidates.len() {
        return Err(CliError::Invalid(format!(
            "cannot draw {n} of {} candidates",
            candidates.len()
        )));
    }
    let mut seed = [0u8; 32];
    SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| CliError::Other("no system randomness".into()))?;
    let draw = Draw {
        campaign: campaign.into(),
        n,
        candidates,
        commitment: commitment_of(&seed),
        committed_at: chrono::Utc::now().to_rfc3339(),
        seed: None,
        selected: Vec::new(),
        revealed_at: None,
    };
    Ok((draw, hex(&seed)))
}

/// Checks the seed against the commitment and computes the selection.
pub fn reveal(draw: &Draw, seed_hex: &str) -> Result<Draw> {
    let seed = unhex(seed_hex.trim())
        .filter(|s| s.len() == 32)
        .ok_or_else(|| CliError::Invalid("the seed is 64 hexadecimal characters".into()))?;
    if commitment_of(&seed) != draw.commitment {
        return Err(CliError::Invalid(format!(
            "this seed does not match the published commitment {}; the draw is refused",
            draw.commitment
        )));
    }
    if let Some(done) = &draw.seed
        && done != &hex(&seed)
    {
        return Err(CliError::Invalid("this draw was revealed already".into()));
    }
    let mut out = draw.clone();
    out.selected = select(&seed, &draw.candidates, draw.n);
    out.seed = Some(hex(&seed));
    out.revealed_at = Some(chrono::Utc::now().to_rfc3339());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units() -> Vec<String> {
        ["u-a", "u-b", "u-c", "u-d", "u-e", "u-f"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[test]
    fn the_same_seed_selects_the_same_units() {
        let (draw, seed) = commit("c-1", 2, &units()).expect("commit");
        let a = reveal(&draw, &seed).expect("reveal");
        let b = reveal(&draw, &seed).expect("reveal again");
        assert_eq!(a.selected, b.selected);
        assert_eq!(a.selected.len(), 2);
        // Order of the candidate list does not matter.
        let mut shuffled = units();
        shuffled.reverse();
        let seed_bytes = unhex(&seed).expect("hex");
        assert_eq!(
            select(&seed_bytes, &candidates(&shuffled).expect("c"), 2),
            a.selected
        );
    }

    #[test]
    fn different_seeds_select_differently_somewhere() {
        let c = candidates(&units()).expect("c");
        let picks: std::collections::BTreeSet<Vec<String>> =
            (0u8..20).map(|i| select(&[i; 32], &c, 2)).collect();
        assert!(picks.len() > 1);
    }

    #[test]
    fn a_seed_that_does_not_match_is_refused() {
        let (draw, seed) = commit("c-1", 2, &units()).expect("commit");
        let mut wrong = seed.clone();
        wrong.replace_range(0..2, if &seed[0..2] == "00" { "01" } else { "00" });
        assert!(matches!(reveal(&draw, &wrong), Err(CliError::Invalid(_))));
        assert!(matches!(reveal(&draw, "xyz"), Err(CliError::Invalid(_))));
    }

    #[test]
    fn impossible_draws_are_refused() {
        assert!(commit("c", 7, &units()).is_err());
        assert!(commit("c", 0, &units()).is_err());
        assert!(commit("c", 1, &[" ".into()]).is_err());
    }
}
