//! The administration log: every administrative act as one entry, chained
//! to the one before by its hash and signed by the administrator's device
//! that made it.
//!
//! An entry's bytes are its JSON as this module writes it (fields in the
//! order declared here, no floats, no maps), so the server, the desk and an
//! auditor all hash and sign the same bytes. The hash of an entry is
//! `SHA-256` of those bytes, signature included; the next entry names it in
//! `prev`. A device signs `"kiemtra-admin-log-v1\n"` followed by the bytes
//! of the entry without its signature.
//!
//! Two kinds of entry carry no signature: an enrollment, which the server
//! witnesses when a device redeems a code (the code was issued by a signed
//! entry), and a code issued on the server machine itself (how the first
//! administrator enrolls). Everything before a signed entry is fixed by it:
//! changing, removing or reordering an earlier entry changes the hash the
//! signed entry names.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use kiemtra_core::{CampaignId, Role, StaffMember, TeamId, TemplateId, UnitCode, UserId, VisitId};
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::directory::{Area, UnitRecord};

/// What a device signs before the entry's bytes.
pub const SIGNING_CONTEXT: &[u8] = b"kiemtra-admin-log-v1\n";

/// Who wrote an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Author {
    /// An enrolled administrator's device; the entry carries its signature.
    Device { device_id: String },
    /// The server: an enrollment it witnessed, or a code issued on the
    /// server machine. Such an entry carries no signature.
    Server,
}

/// One administrative act.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Act {
    UserCreated {
        user_id: UserId,
        /// Full name with diacritics, stored NFC.
        full_name: String,
        role: Role,
    },
    /// A user's name corrected or the user disabled (or enabled again). A
    /// disabled user's devices are revoked by the same act.
    UserUpdated {
        user_id: UserId,
        full_name: String,
        active: bool,
    },
    TeamCreated {
        team_id: TeamId,
        name: String,
    },
    /// A team's members, replaced whole; leaders are supervisors among them.
    TeamMembers {
        team_id: TeamId,
        leaders: Vec<UserId>,
        members: Vec<UserId>,
    },
    /// Areas of the administrative hierarchy (provinces, districts,
    /// communes), each with its dates of validity.
    AreasImported {
        areas: Vec<Area>,
    },
    /// Units (offices), new or with their details replaced.
    UnitsImported {
        units: Vec<UnitRecord>,
    },
    /// A unit's roster from a date on (earlier versions stay in force for
    /// earlier dates).
    RosterPublished {
        unit: UnitCode,
        valid_from: NaiveDate,
        staff: Vec<StaffMember>,
    },
    /// Units absorbed into another from a date on: they stay valid until the
    /// day before, and the unit they merged into lists them.
    UnitsMerged {
        into: UnitCode,
        absorbed: Vec<UnitCode>,
        on: NaiveDate,
    },
    /// A checklist version, as the template file's text.
    TemplatePublished {
        template_id: TemplateId,
        version: u32,
        json: String,
    },
    CampaignCreated {
        campaign_id: CampaignId,
        title: String,
        /// The decision that ordered it, e.g. "Quyết định 138/QĐ-UBND ngày 19/01/2017".
        decision: String,
        starts_on: NaiveDate,
        ends_on: NaiveDate,
        /// The province (an area of tier `province`) whose units it inspects.
        province: UnitCode,
        template_id: TemplateId,
        template_version: u32,
        teams: Vec<TeamId>,
    },
    /// A team to inspect a unit on a planned date; the server creates the
    /// visit `visit_id` (chosen by the server: random, unguessable).
    Assigned {
        campaign_id: CampaignId,
        team_id: TeamId,
        unit: UnitCode,
        planned_on: NaiveDate,
        visit_id: VisitId,
    },
    /// A single-use enrollment code (only its SHA-256 is logged).
    CodeIssued {
        code_hash: String,
        user_id: UserId,
        team_id: TeamId,
        role: Role,
        expires_at: String,
    },
    /// A device enrolled with a code: its public key as the server took it.
    DeviceEnrolled {
        device_id: String,
        user_id: UserId,
        team_id: TeamId,
        role: Role,
        public_key: String,
        device_name: String,
        code_hash: String,
    },
    DeviceRevoked {
        device_id: String,
    },
    /// A random draw's commitment, recorded before the draw.
    DrawCommitted {
        campaign_id: CampaignId,
        commitment: String,
        candidates: Vec<UnitCode>,
        count: u32,
    },
    /// The draw's seed, and the selection anyone can recompute from it.
    DrawRevealed {
        campaign_id: CampaignId,
        seed: String,
        selection: Vec<UnitCode>,
    },
}

impl Act {
    /// The act's name as stored (`user_created`, …).
    pub fn name(&self) -> &'static str {
        match self {
            Act::UserCreated { .. } => "user_created",
            Act::UserUpdated { .. } => "user_updated",
            Act::TeamCreated { .. } => "team_created",
            Act::TeamMembers { .. } => "team_members",
            Act::AreasImported { .. } => "areas_imported",
            Act::UnitsImported { .. } => "units_imported",
            Act::RosterPublished { .. } => "roster_published",
            Act::UnitsMerged { .. } => "units_merged",
            Act::TemplatePublished { .. } => "template_published",
            Act::CampaignCreated { .. } => "campaign_created",
            Act::Assigned { .. } => "assigned",
            Act::CodeIssued { .. } => "code_issued",
            Act::DeviceEnrolled { .. } => "device_enrolled",
            Act::DeviceRevoked { .. } => "device_revoked",
            Act::DrawCommitted { .. } => "draw_committed",
            Act::DrawRevealed { .. } => "draw_revealed",
        }
    }
}

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// 1 for the first entry, then one more each.
    pub seq: u64,
    /// Hex hash of the entry before; empty for the first.
    pub prev: String,
    /// When the act was made (RFC 3339, UTC, seconds); never before the
    /// entry before.
    pub at: String,
    pub by: Author,
    pub act: Act,
    /// Hex Ed25519 signature of the author's device; empty for the server.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub signature: String,
}

#[derive(Serialize)]
struct Unsigned<'a> {
    seq: u64,
    prev: &'a str,
    at: &'a str,
    by: &'a Author,
    act: &'a Act,
}

/// Where the log stands: how many entries and the last one's hash.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Head {
    pub seq: u64,
    /// Hex hash of the last entry; empty for an empty log.
    pub hash: String,
    /// The last entry's time; empty for an empty log.
    pub at: String,
}

impl Entry {
    /// An entry following `head`, not yet signed.
    pub fn next(head: &Head, at: &str, by: Author, act: Act) -> Self {
        Entry {
            seq: head.seq + 1,
            prev: head.hash.clone(),
            at: at.to_owned(),
            by,
            act,
            signature: String::new(),
        }
    }

    /// The bytes stored, hashed and sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads an entry; the bytes must be exactly those [`Entry::to_bytes`]
    /// writes, so that a hash over them is a hash over the entry.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let entry: Entry =
            serde_json::from_slice(bytes).map_err(|e| format!("not a log entry: {e}"))?;
        if entry.to_bytes() != bytes {
            return Err("the entry is not in its canonical form".into());
        }
        Ok(entry)
    }

    /// What the author's device signs.
    pub fn signing_bytes(&self) -> Vec<u8> {
        let mut m = SIGNING_CONTEXT.to_vec();
        let unsigned = Unsigned {
            seq: self.seq,
            prev: &self.prev,
            at: &self.at,
            by: &self.by,
            act: &self.act,
        };
        m.extend(serde_json::to_vec(&unsigned).unwrap_or_default());
        m
    }

    /// The entry's hash (hex), signature included.
    pub fn hash(&self) -> String {
        kiemtra_core::hex::encode(digest(&SHA256, &self.to_bytes()).as_ref())
    }

    /// Whether the signature verifies under `public_key`.
    pub fn signed_by(&self, public_key: &[u8]) -> bool {
        let Some(sig) = kiemtra_core::hex::decode(&self.signature) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, public_key)
            .verify(&self.signing_bytes(), &sig)
            .is_ok()
    }

    /// The head after this entry.
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            hash: self.hash(),
            at: self.at.clone(),
        }
    }
}

/// A time as the log writes it (RFC 3339, UTC, whole seconds).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses a time written by [`timestamp`]; anything else is refused.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    (timestamp(t) == s).then_some(t)
}

/// SHA-256 (hex) of bytes, as codes and draws are logged.
pub fn sha256_hex(bytes: &[u8]) -> String {
    kiemtra_core::hex::encode(digest(&SHA256, bytes).as_ref())
}
