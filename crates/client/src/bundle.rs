//! Bundles: a device's visits with every signature it holds, in one file
//! that another device of the same team reads in with no network — over a
//! share sheet, a cable, Bluetooth or a chat app (SPEC §13).
//!
//! Reading one checks it as the server would check the same changes: the
//! acceptance rule with the roles of the team's devices, and every new
//! change covered by a signature of its own device that verifies with that
//! device's enrolled key. The keys come from the server
//! (`GET /v1/team/devices`), fetched by [`SyncClient::refresh_team`] while
//! there is a signal (and by `sync` when the list is missing or a day old).
//! Everything a bundle holds is checked before anything is stored; a bad
//! bundle changes nothing. When any device later syncs, the server accepts
//! the bundled changes under their original authors' signatures.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use kiemtra_core::{ChangeHash, Editor, Role, Visit, VisitId};
use kiemtra_store::{SignatureRecord, Store};
use kiemtra_sync_protocol::{Cursor, SeqRange, Signature, SyncRequest, VisitOffer};
use ring::digest::{SHA256, digest};
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::client::{Credentials, SyncClient, keep_own_signature};
use crate::error::Error;

/// The first bytes of a bundle file.
pub const BUNDLE_MAGIC: &[u8; 4] = b"KTBN";
/// The bundle format this build writes and reads.
pub const BUNDLE_VERSION: u8 = 1;
/// Largest bundle read or written, bytes (a server's default sync body
/// bound; a whole campaign's 200 visits take about 2 MB).
pub const MAX_BUNDLE: usize = 64 * 1024 * 1024;

const TEAM_SETTING: &str = "team.devices";
const TEAM_FETCHED_SETTING: &str = "team.devices.fetched_at";

/// A device of this device's team, as the server vouches for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamDevice {
    pub device_id: String,
    pub user_id: String,
    pub role: String,
    /// Ed25519 public key, hex.
    pub public_key: String,
    pub revoked: bool,
}

/// The team's devices this device last learned, and when.
pub type KnownTeam = (Vec<TeamDevice>, DateTime<Utc>);

/// When this device last learned its team's devices (read without the
/// list itself: every sync asks).
pub(crate) fn team_fetched_at(store: &Store) -> Result<Option<DateTime<Utc>>, Error> {
    store
        .setting(TEAM_FETCHED_SETTING)?
        .map(|at| {
            DateTime::parse_from_rfc3339(&at)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| Error::Decode(format!("the stored team list's time: {e}")))
        })
        .transpose()
}

/// The team's devices this device last learned, and when.
pub fn team_devices(store: &Store) -> Result<Option<KnownTeam>, Error> {
    let (Some(json), Some(at)) = (store.setting(TEAM_SETTING)?, team_fetched_at(store)?) else {
        return Ok(None);
    };
    let list: Vec<TeamDevice> = serde_json::from_str(&json)
        .map_err(|e| Error::Decode(format!("the stored team list: {e}")))?;
    Ok(Some((list, at)))
}

impl SyncClient {
    /// Fetches the devices of this device's team (ids, users, roles,
    /// public keys) and keeps them in `store`, for reading bundles with no
    /// signal. Returns how many there are.
    pub async fn refresh_team(&self, store: &mut Store) -> Result<usize, Error> {
        let url = format!("{}/v1/team/devices", self.credentials().server);
        let body = self.get_bytes(&url).await?;
        let list: Vec<TeamDevice> = serde_json::from_slice(&body)
            .map_err(|e| Error::Decode(format!("the team's devices: {e}")))?;
        for d in &list {
            let key = kiemtra_core::hex::decode(&d.public_key);
            if key.is_none_or(|k| k.len() != 32) {
                return Err(Error::Decode(format!(
                    "device {} has no Ed25519 public key",
                    d.device_id
                )));
            }
        }
        let json = serde_json::to_string(&list).map_err(|e| Error::Decode(e.to_string()))?;
        store.set_setting(TEAM_SETTING, &json)?;
        store.set_setting(TEAM_FETCHED_SETTING, &store.session().now().to_rfc3339())?;
        Ok(list.len())
    }
}

/// Why a bundle was refused. Nothing of it was stored.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("not a kiemtra bundle (it does not start with KTBN)")]
    NotABundle,
    #[error("bundle format version {found}; this app reads version {supported}")]
    Version { found: u8, supported: u8 },
    #[error("the bundle is cut short or was altered after it was written (its checksum fails)")]
    Damaged,
    #[error("the bundle is {0} bytes; at most {MAX_BUNDLE} are read")]
    TooLarge(usize),
    #[error("the bundle is malformed: {0}")]
    Malformed(String),
    #[error("the bundle is team {found}'s; this device is of team {mine}")]
    OtherTeam { found: String, mine: String },
    #[error(
        "this device does not know its team's devices yet: sync once with a signal, then read the bundle again"
    )]
    NoTeamKeys,
    #[error("visit {visit}: {reason}")]
    Visit { visit: String, reason: String },
    #[error(transparent)]
    Device(#[from] Error),
}

impl From<kiemtra_store::Error> for BundleError {
    fn from(e: kiemtra_store::Error) -> Self {
        BundleError::Device(Error::Store(e))
    }
}

/// What reading a bundle did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleReport {
    /// Who wrote it.
    pub writer: String,
    /// Visits new to this device.
    pub added: Vec<VisitId>,
    /// Visits this device held that got changes.
    pub updated: Vec<VisitId>,
    /// Visits whose changes this device held already.
    pub unchanged: Vec<VisitId>,
    /// Changes new to this device, in all.
    pub new_changes: usize,
}

/// The decoded parts of a bundle file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub team: String,
    pub writer: String,
    /// One per visit: its changes (a whole document) and the signatures
    /// over them, every signer named.
    pub visits: Vec<VisitOffer>,
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(len)]);
}

fn take<'a>(rest: &mut &'a [u8], n: usize, what: &str) -> Result<&'a [u8], BundleError> {
    if rest.len() < n {
        return Err(BundleError::Malformed(format!("it ends inside {what}")));
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}

fn take_str(rest: &mut &[u8], what: &str) -> Result<String, BundleError> {
    let len = take(rest, 2, what)?;
    let n = usize::from(u16::from_le_bytes([len[0], len[1]]));
    let s = take(rest, n, what)?;
    String::from_utf8(s.to_vec())
        .map_err(|_| BundleError::Malformed(format!("{what} is not UTF-8")))
}

impl Bundle {
    /// `KTBN`, the version byte, the team and the writer (each a 2-byte
    /// little-endian length and UTF-8), the visits as the body of a sync
    /// request (SPEC §4), and the SHA-256 of every byte before it.
    pub fn encode(&self) -> Vec<u8> {
        let body = SyncRequest {
            cursor: Cursor::default(),
            max_response: 0,
            visits: self.visits.clone(),
        }
        .encode();
        let mut out = Vec::with_capacity(body.len() + 64);
        out.extend_from_slice(BUNDLE_MAGIC);
        out.push(BUNDLE_VERSION);
        put_str(&mut out, &self.team);
        put_str(&mut out, &self.writer);
        out.extend_from_slice(&body);
        let sum = digest(&SHA256, &out);
        out.extend_from_slice(sum.as_ref());
        out
    }

    /// Decodes a bundle file, checking its checksum first.
    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() > MAX_BUNDLE {
            return Err(BundleError::TooLarge(bytes.len()));
        }
        if bytes.len() < 4 || &bytes[..4] != BUNDLE_MAGIC {
            return Err(BundleError::NotABundle);
        }
        if bytes.len() < 5 + 32 {
            return Err(BundleError::Damaged);
        }
        if bytes[4] != BUNDLE_VERSION {
            return Err(BundleError::Version {
                found: bytes[4],
                supported: BUNDLE_VERSION,
            });
        }
        let (content, sum) = bytes.split_at(bytes.len() - 32);
        if digest(&SHA256, content).as_ref() != sum {
            return Err(BundleError::Damaged);
        }
        let mut rest = &content[5..];
        let team = take_str(&mut rest, "the team")?;
        let writer = take_str(&mut rest, "the writer")?;
        let body = SyncRequest::decode(rest, MAX_BUNDLE)
            .map_err(|e| BundleError::Malformed(e.to_string()))?;
        if body.cursor != Cursor::default() || body.max_response != 0 {
            return Err(BundleError::Malformed("its body carries a cursor".into()));
        }
        for v in &body.visits {
            if v.changes.is_empty() {
                return Err(BundleError::Malformed(format!(
                    "visit {} carries no changes",
                    v.visit_id
                )));
            }
            if v.signatures.iter().any(|s| s.signer.is_empty()) {
                return Err(BundleError::Malformed(format!(
                    "a signature of visit {} names no signer",
                    v.visit_id
                )));
            }
        }
        Ok(Self {
            team,
            writer,
            visits: body.visits,
        })
    }
}

/// Writes the visits `ids` (all this device holds when empty) with every
/// signature it holds, signing its own changes no kept signature covers
/// yet (kept, so that its next sync sends the same signature).
pub fn write_bundle(
    store: &mut Store,
    creds: &Credentials,
    ids: &[VisitId],
) -> Result<Vec<u8>, BundleError> {
    let ids: Vec<VisitId> = if ids.is_empty() {
        store.list_visits()?.into_iter().map(|s| s.id).collect()
    } else {
        ids.to_vec()
    };
    let pair = creds.key_pair()?;
    let mut visits = Vec::with_capacity(ids.len());
    for id in ids {
        let summary = store.summary(&id)?;
        if summary.team != creds.team {
            continue;
        }
        let (own, mark) = store.own_unsigned(&id)?;
        if !own.is_empty() {
            let hashes: Vec<ChangeHash> = own.iter().map(|(h, _, _)| *h).collect();
            let ranges =
                kiemtra_core::seq_ranges_of(own.into_iter().map(|(_, actor, seq)| (actor, seq)));
            keep_own_signature(store, &creds.device_id, &pair, &id, &hashes, ranges, mark)?;
        }
        let signatures = store
            .signatures_of(&id)?
            .into_iter()
            .map(|s| Signature {
                signer: s.signer,
                ranges: s
                    .ranges
                    .into_iter()
                    .map(|(actor, first, last)| SeqRange { actor, first, last })
                    .collect(),
                signature: s.signature,
            })
            .collect();
        visits.push(VisitOffer {
            visit_id: id.to_string(),
            heads: Vec::new(),
            confirmed: None,
            changes: store.stored_bytes(&id)?,
            signatures,
            implied: true,
        });
    }
    let bytes = Bundle {
        team: creds.team.clone(),
        writer: creds.device_id.clone(),
        visits,
    }
    .encode();
    if bytes.len() > MAX_BUNDLE {
        return Err(BundleError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// The roles of the team's devices, for the acceptance rule.
struct TeamRoles<'a>(&'a HashMap<&'a str, &'a TeamDevice>);

impl kiemtra_core::Roles for TeamRoles<'_> {
    fn role(&self, author: &Editor) -> Option<Role> {
        let d = self.0.get(author.device.as_str())?;
        if d.revoked || d.user_id != author.user.as_str() {
            return None;
        }
        Role::parse(&d.role).ok()
    }
}

/// One visit of a bundle, checked and ready to store.
struct Checked {
    id: VisitId,
    held: bool,
    changes: Vec<u8>,
    new_changes: usize,
    signatures: Vec<SignatureRecord>,
}

/// Reads a bundle into `store`: every visit checked first (format, team,
/// acceptance rule, signatures), then all stored in one transaction, or
/// nothing.
pub fn read_bundle(
    store: &mut Store,
    creds: &Credentials,
    bytes: &[u8],
) -> Result<BundleReport, BundleError> {
    let bundle = Bundle::decode(bytes)?;
    if bundle.team != creds.team {
        return Err(BundleError::OtherTeam {
            found: bundle.team,
            mine: creds.team.clone(),
        });
    }
    let (team, _) = team_devices(store)?.ok_or(BundleError::NoTeamKeys)?;
    let by_id: HashMap<&str, &TeamDevice> =
        team.iter().map(|d| (d.device_id.as_str(), d)).collect();
    let roles = TeamRoles(&by_id);
    let mut checked = Vec::with_capacity(bundle.visits.len());
    for offer in &bundle.visits {
        checked.push(
            check_visit(store, creds, offer, &roles, &by_id).map_err(|reason| {
                BundleError::Visit {
                    visit: offer.visit_id.clone(),
                    reason,
                }
            })?,
        );
    }
    let mut report = BundleReport {
        writer: bundle.writer,
        ..BundleReport::default()
    };
    store
        .batch(|s| {
            for c in &checked {
                if c.held {
                    s.apply_remote(&c.id, &c.changes)?;
                } else {
                    s.import_visit(&c.changes)?;
                }
                if !c.signatures.is_empty() {
                    s.record_signatures(&c.id, &c.signatures)?;
                }
            }
            Ok(())
        })
        .map_err(Error::from)?;
    for c in checked {
        report.new_changes += c.new_changes;
        match (c.held, c.new_changes) {
            (false, _) => report.added.push(c.id),
            (true, 0) => report.unchanged.push(c.id),
            (true, _) => report.updated.push(c.id),
        }
    }
    Ok(report)
}

fn check_visit(
    store: &mut Store,
    creds: &Credentials,
    offer: &VisitOffer,
    roles: &TeamRoles<'_>,
    team: &HashMap<&str, &TeamDevice>,
) -> Result<Checked, String> {
    let id = VisitId::parse(&offer.visit_id).map_err(|e| e.to_string())?;
    let budget = kiemtra_core::op_budget(offer.changes.len());
    let held = match store.summary(&id) {
        Ok(s) if s.team != creds.team => return Err("it is another team's visit".into()),
        Ok(_) => true,
        Err(kiemtra_store::Error::UnknownVisit(_)) => false,
        Err(e) => return Err(e.to_string()),
    };
    // The visit as it would be with the bundle's changes, and which of
    // them are new here.
    let session = store.session().clone();
    let (visit, accepted) = if held {
        let mut copy = store
            .visit(&id)
            .map_err(|e| e.to_string())?
            .fork_for(&session);
        let accepted = copy
            .accept_remote(&offer.changes, roles, budget)
            .map_err(|r| format!("refused by the acceptance rule: {r}"))?;
        (copy, accepted)
    } else {
        Visit::accept_new(&offer.changes, &session, roles, budget)
            .map_err(|r| format!("refused by the acceptance rule: {r}"))?
    };
    let meta = visit.meta().map_err(|e| e.to_string())?;
    if meta.visit_id != id {
        return Err("its document is of another visit".into());
    }
    if meta.team.as_str() != creds.team {
        return Err("it is another team's visit".into());
    }
    // Every signature must verify with its device's key over the changes
    // its ranges name, all of them that device's own.
    let (_, authors) = visit.change_index();
    let author_of: HashMap<ChangeHash, Option<Editor>> = authors.into_iter().collect();
    let kept: HashSet<Vec<u8>> = if held {
        store
            .signatures_of(&id)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|s| s.signature)
            .collect()
    } else {
        HashSet::new()
    };
    let mut covered: HashSet<ChangeHash> = HashSet::new();
    let mut records = Vec::new();
    let received_at = session.now().to_rfc3339();
    for s in &offer.signatures {
        let device = team.get(s.signer.as_str()).ok_or_else(|| {
            format!(
                "signed by device {}, which is not of this team (or not known here yet: sync once)",
                s.signer
            )
        })?;
        let ranges: Vec<(Vec<u8>, u64, u64)> = s
            .ranges
            .iter()
            .map(|r| (r.actor.clone(), r.first, r.last))
            .collect();
        let hashes = visit.hashes_in_ranges(&ranges, &[]).ok_or_else(|| {
            format!(
                "a signature of {} names changes the bundle does not hold",
                s.signer
            )
        })?;
        if hashes.iter().any(|h| {
            author_of
                .get(h)
                .and_then(|a| a.as_ref())
                .is_none_or(|a| a.device.as_str() != s.signer)
        }) {
            return Err(format!(
                "a signature of {} names changes another device made",
                s.signer
            ));
        }
        let key = kiemtra_core::hex::decode(&device.public_key).unwrap_or_default();
        let raw: Vec<[u8; 32]> = hashes.iter().map(|h| h.0).collect();
        UnparsedPublicKey::new(&ED25519, &key)
            .verify(
                &Signature::message(offer.visit_id.as_str(), &raw),
                &s.signature,
            )
            .map_err(|_| {
                format!(
                    "a signature of {} does not verify: forged or altered",
                    s.signer
                )
            })?;
        covered.extend(hashes);
        if !kept.contains(&s.signature) {
            records.push(SignatureRecord {
                signer: s.signer.clone(),
                ranges,
                signature: s.signature.clone(),
                received_at: received_at.clone(),
            });
        }
    }
    if let Some(a) = accepted.iter().find(|a| !covered.contains(&a.hash)) {
        return Err(format!(
            "change {} by {} is covered by no signature of its device",
            &a.hash.to_string()[..12],
            a.author.device
        ));
    }
    Ok(Checked {
        id,
        held,
        changes: offer.changes.clone(),
        new_changes: accepted.len(),
        signatures: records,
    })
}
