//! The acceptance rule for changes arriving in a sync request.
//!
//! Every change the server does not hold yet must name its author (device
//! and user, in Automerge's author field) and be covered by a signature of
//! exactly that device's key over a batch of change hashes. The device must
//! be enrolled and unrevoked, belong to the user it names, be of the visit's
//! team, and have a role that writes. A signature only ever vouches for the
//! changes its device authored: a change slipped into someone's history in
//! their name fails, whoever forwards it.

use kiemtra_core::{Accepted, ChangeHash, Editor, Role, Visit};

/// A signature from the wire with the change hashes its ranges name.
pub struct Expanded {
    pub signer: String,
    pub hashes: Vec<ChangeHash>,
    pub ranges: Vec<(Vec<u8>, u64, u64)>,
    pub signature: Vec<u8>,
}

/// Most changes one signature may name.
const MAX_SIGNED: u64 = 1_000_000;

/// The roles of the enrolled devices, for the acceptance rule: a change's
/// device's role when the device belongs to the user the change names.
/// Read once per request, so that it can be asked from any thread. The
/// device's team and revocation are checked after it by [`check`], with
/// the change's signature.
#[derive(Default)]
pub struct Writers {
    devices: HashMap<String, DeviceRecord>,
}

impl Writers {
    pub fn read(store: &mut impl ServerStore) -> Result<Self, kiemtra_store::Error> {
        Ok(Self {
            devices: store
                .devices()?
                .into_iter()
                .map(|d| (d.device_id.clone(), d))
                .collect(),
        })
    }
}

impl kiemtra_core::Roles for Writers {
    fn role(&self, author: &Editor) -> Option<Role> {
        let d = self.devices.get(author.device.as_str())?;
        if d.user_id != author.user.as_str() {
            return None;
        }
        Role::parse(&d.role).ok()
    }
}

/// The roles of a visit's authors for the auditor's check of stored
/// history: each device's role if it is of the visit's team and its user
/// (revocation is judged against receive times elsewhere).
pub struct Authors {
    pub team: String,
    pub devices: HashMap<String, DeviceRecord>,
}

impl kiemtra_core::Roles for Authors {
    fn role(&self, author: &Editor) -> Option<Role> {
        let d = self.devices.get(author.device.as_str())?;
        if d.user_id != author.user.as_str() || d.team != self.team {
            return None;
        }
        Role::parse(&d.role).ok()
    }
}

/// Resolves each signature's actor and sequence ranges to change hashes of
/// `visit` (which already holds the accepted changes). A signature may
/// name only changes its own device authored, only changes that are there,
/// and no change another signature of the request names (so the same
/// signature twice is refused, and what is looked up is bounded by the
/// visit's changes). A signature that names none of the `accepted` (new)
/// changes is dropped unverified (a repeated upload, or a colleague's
/// batch forwarded again), so only signatures over new changes are
/// verified.
pub fn expand_in(
    visit: &Visit,
    accepted: &[Accepted],
    sigs: &[Signature],
) -> Result<Vec<Expanded>, Refusal> {
    let mut seen_sigs = std::collections::HashSet::new();
    for s in sigs {
        if !seen_sigs.insert((s.signer.as_str(), s.signature.as_slice())) {
            return Err((
                VisitStatus::Invalid,
                format!("the same signature of device {} is offered twice", s.signer),
            ));
        }
    }
    let mut named: std::collections::HashSet<ChangeHash> = std::collections::HashSet::new();
    let new: HashMap<ChangeHash, &Editor> = accepted.iter().map(|a| (a.hash, &a.author)).collect();
    let index = visit.change_index();
    let authored: HashMap<ChangeHash, Option<&Editor>> =
        index.1.iter().map(|(h, e)| (*h, e.as_ref())).collect();
    let mut out = Vec::new();
    for s in sigs {
        let refuse = |what: &str| {
            (
                VisitStatus::Invalid,
                format!("the signature of device {} {what}", s.signer),
            )
        };
        let ranges: Vec<(Vec<u8>, u64, u64)> = s
            .ranges
            .iter()
            .map(|r| (r.actor.clone(), r.first, r.last))
            .collect();
        let count: u64 = ranges
            .iter()
            .map(|(_, a, b)| b.saturating_sub(*a).saturating_add(1))
            .fold(0u64, u64::saturating_add);
        if count > MAX_SIGNED || ranges.iter().any(|(_, a, b)| a > b) {
            return Err(refuse("names too many changes"));
        }
        let hashes = index
            .0
            .hashes(&ranges)
            .ok_or_else(|| refuse("names changes that are not in this visit"))?;
        for h in &hashes {
            let by = new
                .get(h)
                .copied()
                .or_else(|| authored.get(h).copied().flatten());
            if by.is_none_or(|e| e.device.as_str() != s.signer) {
                return Err(refuse("names a change its device did not author"));
            }
            if !named.insert(*h) {
                return Err(refuse(
                    "names a change another signature of this request names",
                ));
            }
        }
        if !hashes.iter().any(|h| new.contains_key(h)) {
            continue;
        }
        out.push(Expanded {
            signer: s.signer.clone(),
            hashes,
            ranges,
            signature: s.signature.clone(),
        });
    }
    Ok(out)
}
use crate::storage::ServerStore;
use kiemtra_store::{DeviceRecord, SignatureRecord};
use kiemtra_sync_protocol::{Signature, VisitStatus};
use ring::signature::{ED25519, UnparsedPublicKey};
use std::collections::HashMap;

/// Roles whose devices may write visit contents.
pub const WRITERS: [&str; 2] = ["inspector", "supervisor"];

/// Why a visit's changes were refused: the status to answer and a message
/// naming the change and the rule.
pub type Refusal = (VisitStatus, String);

fn short(h: &ChangeHash) -> String {
    h.to_string().chars().take(12).collect()
}

/// Checks `changes` (those new to the server) of visit `visit_id` of team
/// `team` against `signatures`. On success returns the signatures that
/// cover them, stamped with the receive time `now`, for keeping.
pub fn check(
    store: &mut impl ServerStore,
    visit_id: &str,
    team: &str,
    changes: &[(ChangeHash, Option<Editor>)],
    signatures: &[Expanded],
    now: &str,
) -> Result<Vec<SignatureRecord>, Refusal> {
    let internal = |e: kiemtra_store::Error| (VisitStatus::Invalid, e.to_string());
    let mut devices: HashMap<String, Option<DeviceRecord>> = HashMap::new();
    let mut device = |id: &str| -> Result<Option<DeviceRecord>, Refusal> {
        if !devices.contains_key(id) {
            devices.insert(id.to_owned(), store.device(id).map_err(internal)?);
        }
        Ok(devices.get(id).cloned().flatten())
    };
    let new: std::collections::HashSet<ChangeHash> = changes.iter().map(|(h, _)| *h).collect();
    // Verify every signature that covers a new change; remember who signed what.
    // Change → index of the signer in `signers` (no string per change).
    let mut signers: Vec<String> = Vec::new();
    let mut signed_by: HashMap<ChangeHash, usize> = HashMap::new();
    let mut keep = Vec::new();
    for s in signatures {
        let hashes = &s.hashes;
        if !hashes.iter().any(|h| new.contains(h)) {
            continue;
        }
        let Some(signer) = device(&s.signer)? else {
            return Err((
                VisitStatus::Denied,
                format!("signature by unknown device {}", s.signer),
            ));
        };
        let raw: Vec<[u8; 32]> = s.hashes.iter().map(|h| h.0).collect();
        let message = Signature::message(visit_id, &raw);
        if UnparsedPublicKey::new(&ED25519, &signer.public_key)
            .verify(&message, &s.signature)
            .is_err()
        {
            return Err((
                VisitStatus::Invalid,
                format!(
                    "the signature of device {} does not verify over the changes it lists",
                    s.signer
                ),
            ));
        }
        let who = match signers.iter().position(|x| x == &s.signer) {
            Some(i) => i,
            None => {
                signers.push(s.signer.clone());
                signers.len() - 1
            }
        };
        signed_by.reserve(hashes.len());
        for h in hashes {
            signed_by.insert(*h, who);
        }
        keep.push(SignatureRecord {
            signer: s.signer.clone(),
            ranges: s.ranges.clone(),
            signature: s.signature.clone(),
            received_at: now.to_owned(),
        });
    }
    // The author checks depend only on (device, user): done once per pair.
    let mut passed: std::collections::HashSet<(&str, &str)> = std::collections::HashSet::new();
    for (h, author) in changes {
        let h = *h;
        let Some(author) = author else {
            return Err((
                VisitStatus::Invalid,
                format!("change {} names no author", short(&h)),
            ));
        };
        let key = (author.device.as_str(), author.user.as_str());
        if !passed.contains(&key) {
            {
                let Some(record) = device(author.device.as_str())? else {
                    return Err((
                        VisitStatus::Denied,
                        format!(
                            "change {} names device {}, which is not enrolled",
                            short(&h),
                            author.device
                        ),
                    ));
                };
                if record.user_id != author.user.as_str() {
                    return Err((
                        VisitStatus::Invalid,
                        format!(
                            "change {} names user {} on device {}, which belongs to {}",
                            short(&h),
                            author.user,
                            author.device,
                            record.user_id
                        ),
                    ));
                }
                if record.revoked_at.is_some() {
                    return Err((
                        VisitStatus::Denied,
                        format!(
                            "change {} is by device {}, which is revoked",
                            short(&h),
                            author.device
                        ),
                    ));
                }
                if record.team != team {
                    return Err((
                        VisitStatus::Denied,
                        format!(
                            "change {} is by device {} of another team",
                            short(&h),
                            author.device
                        ),
                    ));
                }
                if !WRITERS.contains(&record.role.as_str()) {
                    return Err((
                        VisitStatus::Denied,
                        format!(
                            "change {} is by a {} device; {}s never write visit contents",
                            short(&h),
                            record.role,
                            record.role
                        ),
                    ));
                }
                passed.insert(key);
            }
        }
        check_signer(&h, author, &signed_by, &signers)?;
    }
    Ok(keep)
}

/// That change `h` was signed, and by the device its author names.
fn check_signer(
    h: &ChangeHash,
    author: &Editor,
    signed_by: &HashMap<ChangeHash, usize>,
    signers: &[String],
) -> Result<(), Refusal> {
    match signed_by.get(h).map(|i| signers[*i].as_str()) {
        Some(signer) if signer == author.device.as_str() => Ok(()),
        Some(signer) => Err((
            VisitStatus::Invalid,
            format!(
                "change {} names device {}, but was signed by {}",
                short(h),
                author.device,
                signer
            ),
        )),
        None => Err((
            VisitStatus::Invalid,
            format!(
                "change {} by device {} carries no signature",
                short(h),
                author.device
            ),
        )),
    }
}
