//! The auditor's verification of a visit: every change signed by the device
//! it names, enrolled and unrevoked when it was received, whose user could
//! write it; every approval signed by a supervisor's device over heads that
//! are present; nothing missing. Devices are read as the administration log
//! enrolled them: a key swapped, an enrollment backdated or a revocation
//! removed in the database is reported on every change that device signed.

use crate::storage::ServerStore;
use kiemtra_core::{Approval, ChangeHash, Visit, VisitId};
use kiemtra_store::DeviceRecord;
use kiemtra_sync_protocol::Signature;
use ring::signature::{ED25519, UnparsedPublicKey};
use serde::Serialize;
use std::collections::HashMap;

use crate::trust::WRITERS;

/// One problem: which change (or approval), which rule, and the detail.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Problem {
    /// Hex change hash, or the approval id.
    pub subject: String,
    /// Stable rule name, e.g. `bad-signature`, `missing-change`.
    pub rule: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub visit_id: String,
    pub changes_checked: usize,
    pub approvals_checked: usize,
    /// Evidence files (photos) the visit refers to, and how many of them
    /// the server holds whole, each re-hashed against its name.
    pub evidence_referenced: usize,
    pub evidence_held: usize,
    /// Referenced files not (yet) uploaded whole: not a problem by itself,
    /// a phone may still be out of coverage.
    pub evidence_missing: Vec<String>,
    pub ok: bool,
    pub problems: Vec<Problem>,
}

fn problem(subject: impl Into<String>, rule: &'static str, detail: impl Into<String>) -> Problem {
    Problem {
        subject: subject.into(),
        rule,
        detail: detail.into(),
    }
}

fn verifies(key: &[u8], message: &[u8], signature: &[u8]) -> bool {
    UnparsedPublicKey::new(&ED25519, key)
        .verify(message, signature)
        .is_ok()
}

/// The user and device the server's own changes are stamped with.
const SERVER: &str = "server";

/// Whether the visit's creation is what its logged assignment asked for.
fn matches_assignment(
    visit: &Visit,
    d: &kiemtra_admin::Directory,
    id: &VisitId,
) -> Result<(), String> {
    let (new, template_id, version) = d.new_visit(id).map_err(|e| e.to_string())?;
    let meta = visit.meta().map_err(|e| e.to_string())?;
    if meta.unit != new.unit
        || meta.team != new.team
        || meta.campaign != new.campaign
        || meta.scheduled_on != new.scheduled_on
        || meta.template_id != template_id
        || meta.template_version != version
    {
        return Err(
            "the visit's unit, team, campaign, date or template is not the logged assignment's"
                .into(),
        );
    }
    let published = d
        .template(&template_id, version)
        .map_err(|e| e.to_string())?;
    if visit.state().map_err(|e| e.to_string())?.template != published {
        return Err("the visit's checklist is not the published version the campaign pins".into());
    }
    Ok(())
}

/// Verifies a visit from what is stored — the document as it is on disk,
/// not a cached copy — against the kept signatures and device records.
pub fn verify_visit(
    store: &mut impl ServerStore,
    id: &VisitId,
) -> Result<Report, kiemtra_store::Error> {
    let log = crate::admin::directory(store).map_err(|p| p.to_string());
    verify_visit_with(store, id, &log)
}

/// [`verify_visit`] with the administration log's directory replayed
/// already (or why it does not replay), so that a campaign's visits share
/// one replay.
pub fn verify_visit_with(
    store: &mut impl ServerStore,
    id: &VisitId,
    log: &Result<kiemtra_admin::Directory, String>,
) -> Result<Report, kiemtra_store::Error> {
    let mut problems = Vec::new();
    let bytes = store.stored_bytes(id)?;
    let visit = match Visit::load(&bytes, store.session()) {
        Ok(v) => v,
        Err(e) => {
            problems.push(problem(
                id.as_str(),
                "document-damaged",
                format!("the stored document does not load: {e}"),
            ));
            return Ok(Report {
                visit_id: id.to_string(),
                changes_checked: 0,
                approvals_checked: 0,
                evidence_referenced: 0,
                evidence_held: 0,
                evidence_missing: Vec::new(),
                ok: false,
                problems,
            });
        }
    };
    let team = visit.meta()?.team.to_string();
    let kept = store.change_receipts(id, &visit.change_index().0)?;
    let receipts: HashMap<ChangeHash, std::sync::Arc<kiemtra_store::Receipt>> =
        kept.changes.into_iter().collect();
    // Every enrolled device, read once (the signers and approvers are
    // looked up in it, and the acceptance rule's authors come from it).
    let rows = store.devices()?;
    // The administration log is the authority on keys: a device it enrolled
    // is checked with the key, enrollment time, identity and revocation the
    // log holds, and where the database's row differs the difference is a
    // problem of every change and approval that device signed.
    let mut tampered: HashMap<String, Vec<crate::admin::DeviceProblem>> = HashMap::new();
    if let Ok(d) = log {
        for p in crate::admin::check_devices(d, &rows) {
            tampered.entry(p.device_id.clone()).or_default().push(p);
        }
    }
    let enrolled: HashMap<String, DeviceRecord> = rows
        .into_iter()
        .map(|row| {
            let logged = match log {
                Ok(d) => d.devices.get(&row.device_id).map(as_logged),
                Err(_) => None,
            };
            // A revocation only restricts: the earlier of the log's and
            // the table's counts, so a revocation in either is honoured.
            let record = match logged {
                Some(mut l) => {
                    l.revoked_at = match (l.revoked_at.take(), row.revoked_at.clone()) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                    l
                }
                None => row,
            };
            (record.device_id.clone(), record)
        })
        .collect();
    let mut reported: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut report_tampered = |problems: &mut Vec<Problem>, device: &str| {
        if reported.insert(device.to_owned())
            && let Some(found) = tampered.get(device)
        {
            for p in found {
                problems.push(problem(
                    device,
                    p.rule,
                    format!("device {device}: {}", p.detail),
                ));
            }
        }
    };
    let mut device = |d: &str| -> Result<Option<DeviceRecord>, kiemtra_store::Error> {
        Ok(enrolled.get(d).cloned())
    };
    // A visit an assignment of the administration log made begins with the
    // server's one change, which no device signs: it is checked against
    // the logged assignment instead.
    let planned = match log {
        Ok(d) => d.visits.contains_key(id).then_some(d),
        Err(e) => {
            problems.push(problem(
                id.as_str(),
                "log-broken",
                format!("the administration log does not verify: {e}"),
            ));
            None
        }
    };
    let mut verified: HashMap<usize, bool> = HashMap::new();
    let changes = visit.changes_with_authors();
    for (c, author) in &changes {
        let h = c.hash();
        let subject = h.to_string();
        if let (Some(d), Some(a)) = (planned, author)
            && a.device.as_str() == SERVER
            && a.user.as_str() == SERVER
        {
            if !c.deps().is_empty() {
                problems.push(problem(
                    &subject,
                    "server-change",
                    "the server wrote a change other than the visit's creation",
                ));
            } else if let Err(detail) = matches_assignment(&visit, d, id) {
                problems.push(problem(&subject, "not-as-assigned", detail));
            }
            continue;
        }
        let Some(receipt) = receipts.get(&h) else {
            problems.push(problem(
                &subject,
                "unsigned",
                "no kept signature covers this change",
            ));
            continue;
        };
        let Some(author) = author else {
            problems.push(problem(&subject, "no-author", "the change names no author"));
            continue;
        };
        if receipt.record.signer != author.device.as_str() {
            problems.push(problem(
                &subject,
                "signer-not-author",
                format!(
                    "names device {} but was signed by {}",
                    author.device, receipt.record.signer
                ),
            ));
            continue;
        }
        report_tampered(&mut problems, &receipt.record.signer);
        let Some(dev) = device(&receipt.record.signer)? else {
            problems.push(problem(
                &subject,
                "unknown-device",
                format!("device {} is not enrolled", receipt.record.signer),
            ));
            continue;
        };
        // One check per kept signature, however many changes it covers.
        let good = *verified
            .entry(std::sync::Arc::as_ptr(receipt) as usize)
            .or_insert_with(|| {
                let raw: Vec<[u8; 32]> = receipt.hashes.iter().map(|h| h.0).collect();
                verifies(
                    &dev.public_key,
                    &Signature::message(id.as_str(), &raw),
                    &receipt.record.signature,
                )
            });
        if !good {
            problems.push(problem(
                &subject,
                "bad-signature",
                format!("the signature of device {} does not verify", dev.device_id),
            ));
        }
        if dev.user_id != author.user.as_str() {
            problems.push(problem(
                &subject,
                "wrong-user",
                format!(
                    "names user {} but device {} belongs to {}",
                    author.user, dev.device_id, dev.user_id
                ),
            ));
        }
        if dev.enrolled_at > receipt.record.received_at {
            problems.push(problem(
                &subject,
                "not-enrolled-when-received",
                format!(
                    "received {} before device {} was enrolled {}",
                    receipt.record.received_at, dev.device_id, dev.enrolled_at
                ),
            ));
        }
        if let Some(revoked) = dev
            .revoked_at
            .as_ref()
            .filter(|r| **r <= receipt.record.received_at)
        {
            problems.push(problem(
                &subject,
                "revoked-before-received",
                format!(
                    "received {} after device {} was revoked {revoked}",
                    receipt.record.received_at, dev.device_id
                ),
            ));
        }
        if !WRITERS.contains(&dev.role.as_str()) {
            problems.push(problem(
                &subject,
                "role-never-writes",
                format!("device {} belongs to a {}", dev.device_id, dev.role),
            ));
        }
        if dev.team != team {
            problems.push(problem(
                &subject,
                "other-team",
                format!("device {} is of team {}", dev.device_id, dev.team),
            ));
        }
    }
    // Every change checked by the acceptance rule against the document
    // before it, as the server checks what it receives: what a build that
    // accepted more stored shows here.
    let mut devices = enrolled.clone();
    if planned.is_some() {
        // The server creates an assigned visit as a supervisor would.
        devices.insert(
            SERVER.into(),
            DeviceRecord {
                device_id: SERVER.into(),
                user_id: SERVER.into(),
                team: team.clone(),
                role: "supervisor".into(),
                name: "kiemtra-server".into(),
                enrolled_at: String::new(),
                revoked_at: None,
                public_key: Vec::new(),
            },
        );
    }
    let authors = crate::trust::Authors {
        team: team.clone(),
        devices,
    };
    for r in visit.audit_history(&authors) {
        let subject = r
            .change
            .map(|h| h.to_string())
            .unwrap_or_else(|| id.to_string());
        problems.push(problem(subject, "refused-change", r.reason));
    }
    for r in &kept.unresolved {
        let named: Vec<String> = r
            .ranges
            .iter()
            .map(|(actor, first, last)| {
                format!("{}:{first}–{last}", kiemtra_core::hex::encode(actor))
            })
            .collect();
        problems.push(problem(
            named.join(", "),
            "missing-change",
            format!(
                "signed by {} and received {}, but missing from the stored document",
                r.signer, r.received_at
            ),
        ));
    }
    for h in visit.missing_deps() {
        problems.push(problem(
            h.to_string(),
            "missing-dependency",
            "a change depends on it, but it is not stored",
        ));
    }
    let state = visit.state()?;
    // The checklist a visit carries is the one published under its id and
    // version (a phone's own visit names one; nothing else binds it).
    if let Ok(d) = log
        && let Ok(published) = d.template(&state.template.id, state.template.version)
        && published != state.template
    {
        problems.push(problem(
            id.as_str(),
            "template-differs",
            format!(
                "the visit's checklist {} version {} is not the one the administration log published",
                state.template.id, state.template.version
            ),
        ));
    }
    for a in &state.approvals {
        report_tampered(&mut problems, a.stamp.device.as_str());
        check_approval(&mut problems, &mut device, &visit, id, a)?;
    }
    let referenced: std::collections::BTreeSet<_> = state.evidence.values().flatten().collect();
    let (mut held, mut missing) = (0, Vec::new());
    for hash in &referenced {
        match store.evidence_bytes(id, hash, 0, u64::MAX)? {
            Some(bytes) if kiemtra_store::evidence_hash(&bytes) == **hash => held += 1,
            Some(_) => problems.push(problem(
                hash.as_str(),
                "evidence-damaged",
                "the stored file no longer hashes to the name the visit refers to",
            )),
            None => missing.push(hash.to_string()),
        }
    }
    Ok(Report {
        visit_id: id.to_string(),
        changes_checked: changes.len(),
        approvals_checked: state.approvals.len(),
        evidence_referenced: referenced.len(),
        evidence_held: held,
        evidence_missing: missing,
        ok: problems.is_empty(),
        problems,
    })
}

fn check_approval(
    problems: &mut Vec<Problem>,
    device: &mut dyn FnMut(&str) -> Result<Option<DeviceRecord>, kiemtra_store::Error>,
    visit: &Visit,
    id: &VisitId,
    a: &Approval,
) -> Result<(), kiemtra_store::Error> {
    let heads: Vec<ChangeHash> = a.heads.iter().filter_map(|h| h.parse().ok()).collect();
    if heads.len() != a.heads.len() || heads.iter().any(|h| !visit.has_change(h)) {
        problems.push(problem(
            &a.id,
            "approval-heads-missing",
            "the approved heads are not all in the document",
        ));
    }
    if a.signature.is_empty() {
        problems.push(problem(
            &a.id,
            "approval-unsigned",
            "the approval carries no signature",
        ));
        return Ok(());
    }
    match device(a.stamp.device.as_str())? {
        None => problems.push(problem(
            &a.id,
            "unknown-device",
            format!("device {} is not enrolled", a.stamp.device),
        )),
        Some(dev) => {
            if !verifies(
                &dev.public_key,
                &Approval::message(id.as_str(), &heads),
                &hex_lenient(&a.signature),
            ) {
                problems.push(problem(
                    &a.id,
                    "approval-bad-signature",
                    format!(
                        "the approval's signature by {} does not verify",
                        dev.device_id
                    ),
                ));
            }
            if dev.role != "supervisor" {
                problems.push(problem(
                    &a.id,
                    "approval-not-by-supervisor",
                    format!("approved by a {}", dev.role),
                ));
            }
        }
    }
    Ok(())
}

/// A device as the administration log enrolled it (and revoked it, if it
/// did).
fn as_logged(d: &kiemtra_admin::LoggedDevice) -> DeviceRecord {
    DeviceRecord {
        device_id: d.device_id.clone(),
        user_id: d.user_id.to_string(),
        team: d.team_id.to_string(),
        role: d.role.key().to_owned(),
        name: d.device_name.clone(),
        enrolled_at: d.enrolled_at.clone(),
        revoked_at: d.revoked_at.clone(),
        public_key: hex_lenient(&d.public_key),
    }
}

/// Hex as stored in approvals; malformed text gives bytes that cannot verify.
fn hex_lenient(s: &str) -> Vec<u8> {
    kiemtra_core::hex::decode(s).unwrap_or_default()
}
