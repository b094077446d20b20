//! A document's heads as one type: the change hashes no other change of the
//! document depends on, sorted and without repeats. Written as a list of
//! lowercase hex strings wherever text is needed (JSON, the stores' index
//! columns, the bindings), and parsed once where such text comes in.

use crate::{Error, Result};
use automerge::ChangeHash;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Sorted, distinct change hashes naming a version of a visit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Heads(Vec<ChangeHash>);

impl Heads {
    /// The heads named by `hashes`, in any order, repeats dropped.
    pub fn new(hashes: impl IntoIterator<Item = ChangeHash>) -> Self {
        let mut v: Vec<ChangeHash> = hashes.into_iter().collect();
        v.sort();
        v.dedup();
        Self(v)
    }

    /// Parses hex change hashes; the first that is not one is named.
    pub fn parse<S: AsRef<str>>(hex: &[S]) -> Result<Self> {
        hex.iter()
            .map(|h| {
                h.as_ref()
                    .parse::<ChangeHash>()
                    .map_err(|_| Error::InvalidId {
                        kind: "change hash",
                        value: h.as_ref().to_owned(),
                        reason: "expected 64 hex digits",
                    })
            })
            .collect::<Result<Vec<_>>>()
            .map(Self::new)
    }

    /// Parses the JSON list of hex strings the stores keep.
    pub fn from_json(json: &str) -> Result<Self> {
        let hex: Vec<String> = serde_json::from_str(json)
            .map_err(|e| Error::Corrupt(format!("unreadable heads: {e}")))?;
        Self::parse(&hex)
    }

    /// The JSON list of hex strings the stores keep.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.to_hex()).unwrap_or_else(|_| "[]".into())
    }

    /// Lowercase hex, in order.
    pub fn to_hex(&self) -> Vec<String> {
        self.0.iter().map(|h| h.to_string()).collect()
    }

    pub fn as_slice(&self) -> &[ChangeHash] {
        &self.0
    }

    pub fn to_vec(&self) -> Vec<ChangeHash> {
        self.0.clone()
    }

    pub fn into_vec(self) -> Vec<ChangeHash> {
        self.0
    }
}

impl std::ops::Deref for Heads {
    type Target = [ChangeHash];
    fn deref(&self) -> &[ChangeHash] {
        &self.0
    }
}

impl From<Vec<ChangeHash>> for Heads {
    fn from(v: Vec<ChangeHash>) -> Self {
        Self::new(v)
    }
}

impl From<&[ChangeHash]> for Heads {
    fn from(v: &[ChangeHash]) -> Self {
        Self::new(v.iter().copied())
    }
}

impl FromIterator<ChangeHash> for Heads {
    fn from_iter<I: IntoIterator<Item = ChangeHash>>(iter: I) -> Self {
        Self::new(iter)
    }
}

impl<'a> IntoIterator for &'a Heads {
    type Item = &'a ChangeHash;
    type IntoIter = std::slice::Iter<'a, ChangeHash>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl Serialize for Heads {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.to_hex().serialize(s)
    }
}

impl<'de> Deserialize<'de> for Heads {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let hex = Vec::<String>::deserialize(d)?;
        Self::parse(&hex).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(b: u8) -> ChangeHash {
        ChangeHash([b; 32])
    }

    #[test]
    fn sorted_and_distinct_whatever_the_order_given() {
        let h = Heads::new([hash(3), hash(1), hash(3)]);
        assert_eq!(h.as_slice(), &[hash(1), hash(3)]);
        assert_eq!(h, Heads::from(vec![hash(1), hash(3)]));
    }

    #[test]
    fn hex_and_json_round_trip() {
        let h = Heads::new([hash(0xab), hash(0x01)]);
        assert_eq!(Heads::parse(&h.to_hex()).expect("parse"), h);
        assert_eq!(Heads::from_json(&h.to_json()).expect("json"), h);
        let json = serde_json::to_string(&h).expect("serde");
        assert_eq!(json, h.to_json());
        assert_eq!(serde_json::from_str::<Heads>(&json).expect("serde"), h);
    }

    #[test]
    fn text_that_is_not_a_hash_is_refused_by_name() {
        let e = Heads::parse(&["ab"]).expect_err("refused");
        assert!(e.to_string().contains("\"ab\""), "{e}");
        assert!(Heads::from_json("{").is_err());
        assert!(serde_json::from_str::<Heads>("[\"00\"]").is_err());
    }
}
