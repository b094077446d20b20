//! Codes and tokens: random from ring, stored only as SHA-256 digests.

use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};

use crate::problem::Problem;

pub fn sha256(secret: &str) -> Vec<u8> {
    digest(&SHA256, secret.as_bytes()).as_ref().to_vec()
}

fn random_bytes<const N: usize>() -> Result<[u8; N], Problem> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Problem::Internal("no system randomness".into()))?;
    Ok(b)
}

/// A bearer token: 32 random bytes, hex.
pub fn new_token() -> Result<String, Problem> {
    Ok(kiemtra_core::hex::encode(&random_bytes::<32>()?))
}

/// An enrollment code a person can type: 12 characters from an alphabet
/// without look-alikes (no 0/O, 1/I/L), in groups of four.
pub fn new_code() -> Result<String, Problem> {
    const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
    let bytes = random_bytes::<12>()?;
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect();
    Ok(chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// Codes are compared case-insensitively and without separators.
pub fn normalise_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

/// A device id: `d-` and 16 random bytes, hex.
pub fn new_device_id() -> Result<String, Problem> {
    Ok(format!(
        "d-{}",
        kiemtra_core::hex::encode(&random_bytes::<16>()?)
    ))
}
