//! A verifiable random draw of units ("bốc thăm ngẫu nhiên", as in "Kiểm
//! tra công tác cải cách hành chính tại huyện Phong Điền", Báo Cần Thơ,
//! 17/09/2014).
//!
//! Before the draw a secret 32-byte seed is made and only its commitment,
//! `SHA-256("kiemtra-draw-v1" 0x00 seed)`, is recorded. After the draw the
//! seed is revealed; anyone recomputes the selection: every candidate unit
//! code gets the key `SHA-256(seed 0x00 code)`, candidates are ordered by
//! key (then code) and the first N are selected. The candidates are part of
//! the commitment's record, so they cannot be changed afterwards.

use kiemtra_core::UnitCode;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

/// The commitment to a seed (hex).
pub fn commitment_of(seed: &[u8]) -> String {
    let mut m = b"kiemtra-draw-v1\0".to_vec();
    m.extend_from_slice(seed);
    kiemtra_core::hex::encode(digest(&SHA256, &m).as_ref())
}

/// A new secret seed.
pub fn new_seed() -> Option<[u8; 32]> {
    let mut seed = [0u8; 32];
    SystemRandom::new().fill(&mut seed).ok()?;
    Some(seed)
}

/// The selection a seed makes among `candidates`: deterministic, the same
/// everywhere.
pub fn select(seed: &[u8], candidates: &[UnitCode], n: usize) -> Vec<UnitCode> {
    let names: Vec<&str> = candidates.iter().map(|c| c.as_str()).collect();
    select_names(seed, &names, n)
        .into_iter()
        .filter_map(|c| UnitCode::parse(&c).ok())
        .collect()
}

/// [`select`] over plain names.
pub fn select_names(seed: &[u8], candidates: &[&str], n: usize) -> Vec<String> {
    let mut keyed: Vec<(Vec<u8>, &str)> = candidates
        .iter()
        .map(|c| {
            let mut m = seed.to_vec();
            m.push(0);
            m.extend_from_slice(c.as_bytes());
            (digest(&SHA256, &m).as_ref().to_vec(), *c)
        })
        .collect();
    keyed.sort();
    keyed
        .into_iter()
        .take(n)
        .map(|(_, c)| c.to_owned())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_selects_the_same_units_everywhere_and_another_seed_others() {
        let c: Vec<UnitCode> = (1..=12)
            .map(|i| UnitCode::parse(&format!("xa-{i:02}")).expect("code"))
            .collect();
        let a = select(&[1u8; 32], &c, 2);
        assert_eq!(a, select(&[1u8; 32], &c, 2));
        assert_eq!(a.len(), 2);
        let others = (2..20u8)
            .map(|s| select(&[s; 32], &c, 2))
            .filter(|b| b != &a)
            .count();
        assert!(
            others > 10,
            "different seeds should mostly select other units"
        );
    }

    #[test]
    fn the_commitment_binds_the_seed() {
        assert_ne!(commitment_of(&[1u8; 32]), commitment_of(&[2u8; 32]));
        assert_eq!(commitment_of(&[1u8; 32]).len(), 64);
    }
}
