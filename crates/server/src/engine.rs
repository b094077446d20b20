//! The sync engine: one request in, one response out, over the store. No
//! state is kept between requests except what the database holds.

use kiemtra_core::{ChangeHash, Heads, Visit, VisitId};
use kiemtra_store::DeviceRecord;

use crate::storage::ServerStore;
use kiemtra_sync_protocol::{
    Cursor, Hash, Listing, SyncRequest, SyncResponse, VisitOffer, VisitResult, VisitStatus,
};
use std::collections::HashSet;
use std::sync::atomic::Ordering::Relaxed;

use crate::metrics::Metrics;
use crate::problem::Problem;
use crate::trust;
use kiemtra_sync_protocol::DecodeError;

/// Visits new to the server loaded ahead of the one being stored.
const LOAD_WINDOW: usize = 16;

/// Heads as the wire carries them, parsed once.
fn heads_of_wire(hs: &[Hash]) -> Heads {
    hs.iter().map(|h| ChangeHash(*h)).collect()
}

fn from_hashes(hs: &[ChangeHash]) -> Vec<Hash> {
    hs.iter().map(|h| h.0).collect()
}

fn result(
    visit_id: &str,
    status: VisitStatus,
    heads: Vec<Hash>,
    changes: Vec<u8>,
    message: String,
) -> VisitResult {
    VisitResult {
        visit_id: visit_id.to_owned(),
        status,
        heads,
        changes,
        signatures: Vec::new(),
        message,
        listing: None,
    }
}

/// A visit's summary from the server's index, as the wire's listing.
fn listing_of(s: &kiemtra_store::VisitSummary) -> Listing {
    Listing {
        unit_code: s.unit_code.clone(),
        unit_name: s.unit_name.clone(),
        unit_kind: s.unit_kind.clone(),
        campaign: s.campaign.clone(),
        team: s.team.clone(),
        scheduled_on: s.scheduled_on.clone(),
        status: s.status.clone(),
        conflicts: s.conflicts,
        payroll: s.tally.payroll,
        present: s.tally.present,
        late: s.tally.late,
        absent: s.tally.absent,
        unrecorded: s.tally.unrecorded,
        absent_by_reason: s
            .tally
            .absent_by_reason
            .iter()
            .map(|(reason, n)| (reason.key().to_owned(), *n))
            .collect(),
    }
}

fn to_wire(records: Vec<kiemtra_store::SignatureRecord>) -> Vec<kiemtra_sync_protocol::Signature> {
    records
        .into_iter()
        .map(|s| kiemtra_sync_protocol::Signature {
            signer: s.signer,
            ranges: s
                .ranges
                .into_iter()
                .map(|(actor, first, last)| kiemtra_sync_protocol::SeqRange { actor, first, last })
                .collect(),
            signature: s.signature,
        })
        .collect()
}

fn refuse(visit_id: &str, status: VisitStatus, message: impl Into<String>) -> VisitResult {
    result(visit_id, status, Vec::new(), Vec::new(), message.into())
}

/// A sync request's body, decoded within `max_body` (SPEC §3), with the
/// signer filled in where it was left implied (the requesting device), and
/// the response budget: the device's wish, at most `max_response`.
pub fn decode_request(
    body: &[u8],
    device: &DeviceRecord,
    max_body: usize,
    max_response: usize,
) -> Result<(SyncRequest, usize), Problem> {
    let mut request = SyncRequest::decode(body, max_body).map_err(|e| match e {
        DecodeError::UnsupportedVersion { .. } => Problem::UnsupportedVersion(e.to_string()),
        other => Problem::BadMessage(other.to_string()),
    })?;
    // A signature with no signer is the requesting device's own.
    for s in request
        .visits
        .iter_mut()
        .flat_map(|v| v.signatures.iter_mut())
    {
        if s.signer.is_empty() {
            s.signer.clone_from(&device.device_id);
        }
    }
    let budget = match request.max_response {
        0 => max_response,
        n => (n as usize).min(max_response),
    };
    Ok((request, budget))
}

/// SPEC §6 as one call with no I/O: an authenticated device's request body
/// in, the answer's bytes out, in one transaction of `store` (a request
/// that fails part-way stores nothing). The HTTP route is this plus
/// authentication, body limits, a place in the queue and a blocking
/// thread; the in-memory harness of the tests calls it directly.
pub fn exchange<S: ServerStore>(
    store: &mut S,
    device: &DeviceRecord,
    body: &[u8],
    max_body: usize,
    max_response: usize,
    metrics: &Metrics,
) -> Result<Vec<u8>, Problem> {
    let (request, budget) = decode_request(body, device, max_body, max_response)?;
    let response = store
        .batch(|store| sync(store, device, &request, budget, metrics))
        .map_err(|e| Problem::internal(&e))?;
    Ok(response.encode())
}

/// Answers a sync request for `device` within `budget` response bytes.
pub fn sync<S: ServerStore>(
    store: &mut S,
    device: &DeviceRecord,
    req: &SyncRequest,
    budget: usize,
    metrics: &Metrics,
) -> Result<SyncResponse, kiemtra_store::Error> {
    let mut used = 0usize;
    let mut more = false;
    let mut visits = Vec::new();
    // Documents of visits new to the server are loaded (and so validated)
    // on background threads, at most a window ahead to bound memory, while
    // this thread checks and stores the ones already loaded, in order.
    let docs: Vec<Option<&[u8]>> = req
        .visits
        .iter()
        .map(|o| {
            let fresh = !o.changes.is_empty()
                && trust::WRITERS.contains(&device.role.as_str())
                && VisitId::parse(&o.visit_id).is_ok_and(|id| {
                    matches!(
                        store.summary(&id),
                        Err(kiemtra_store::Error::UnknownVisit(_))
                    )
                });
            fresh.then_some(o.changes.as_slice())
        })
        .collect();
    // The enrolled devices, read once for every offer that writes. The
    // acceptance rule runs on the new visits' whole histories on
    // background threads.
    let writes = trust::WRITERS.contains(&device.role.as_str())
        && req.visits.iter().any(|o| !o.changes.is_empty());
    let writers = if writes {
        trust::Writers::read(store)?
    } else {
        trust::Writers::default()
    };
    let session = store.session().clone();
    // A database failure on any offer fails the request as a whole.
    let mut failed: Option<kiemtra_store::Error> = None;
    kiemtra_core::map_pipelined(
        &docs,
        LOAD_WINDOW,
        |bytes| {
            Visit::accept_new(
                bytes,
                &session,
                &writers,
                kiemtra_core::op_budget(bytes.len()),
            )
            .map(|(v, accepted)| {
                let summary = kiemtra_store::VisitSummary::of(&v).ok();
                (v, Prepared { accepted, summary })
            })
        },
        || {
            Err(kiemtra_core::Refusal {
                kind: kiemtra_core::RefusalKind::Invalid,
                change: None,
                reason: "checking the document failed".into(),
            })
        },
        |loads| {
            for (offer, preloaded) in req.visits.iter().zip(loads) {
                let answered = offer_result(
                    store, device, &writers, offer, preloaded, budget, &mut used, metrics,
                );
                let answered = match answered {
                    Ok(a) => a,
                    Err(e) => {
                        failed.get_or_insert(e);
                        None
                    }
                };
                if let Some(r) = answered {
                    match r.status {
                        VisitStatus::Deferred => more = true,
                        VisitStatus::Denied | VisitStatus::Invalid | VisitStatus::Unknown => {
                            metrics.visit_errors.fetch_add(1, Relaxed);
                        }
                        _ => {}
                    }
                    visits.push(r);
                }
            }
        },
    );

    if let Some(e) = failed {
        return Err(e);
    }
    // Visits of the device's team it does not hold yet, from the feed.
    let (head_seq, head_nonce) = store.feed_head()?;
    let valid_cursor = store.feed_cursor_valid(req.cursor.seq, req.cursor.nonce)?;
    let (after, mut cursor) = if valid_cursor {
        (req.cursor.seq, req.cursor)
    } else {
        (0, Cursor::default())
    };
    let offered: HashSet<&str> = req.visits.iter().map(|v| v.visit_id.as_str()).collect();
    let mut complete = true;
    // Inspectors and supervisors follow their team; auditors read every
    // team; administrators never receive visit contents.
    let scope = match device.role.as_str() {
        "auditor" => Some(None),
        "administrator" => None,
        _ => Some(Some(device.team.as_str())),
    };
    let entries = match scope {
        Some(team) => store.feed_since(team, after, head_seq)?,
        None => Vec::new(),
    };
    for entry in entries {
        if !offered.contains(entry.visit_id.as_str()) {
            let id = VisitId::parse(&entry.visit_id)?;
            // The stored chunks are a loadable document: no load and save here.
            let doc = store.stored_bytes(&id)?;
            if used > 0 && used + doc.len() > budget {
                more = true;
                complete = false;
                break;
            }
            used += doc.len();
            let summary = store.summary(&id)?;
            let heads = from_hashes(&summary.heads);
            metrics.visits_sent.fetch_add(1, Relaxed);
            let mut r = result(&entry.visit_id, VisitStatus::Ok, heads, doc, String::new());
            r.signatures = to_wire(store.signatures_of(&id)?);
            // The index's summary of the same document, so the device can
            // list the visit before loading it (SPEC §5, §7).
            r.listing = Some(listing_of(&summary));
            visits.push(r);
        }
        cursor = Cursor {
            seq: entry.seq,
            nonce: entry.nonce,
        };
    }
    if complete {
        cursor = Cursor {
            seq: head_seq,
            nonce: head_nonce,
        };
    }
    Ok(SyncResponse {
        cursor,
        more,
        visits,
    })
}

/// One offer of an authenticated device outside a sync request — the web
/// console's signed acts, whose browser is the device: SPEC §6 steps for a
/// stored visit, the acceptance and signature rules included, in one
/// transaction of `store`; no feed. `None` when the server already held
/// everything offered.
pub fn offer_alone<S: ServerStore>(
    store: &mut S,
    device: &DeviceRecord,
    offer: &VisitOffer,
    metrics: &Metrics,
) -> Result<Option<VisitResult>, Problem> {
    store
        .batch(|store| {
            let writers = trust::Writers::read(store)?;
            let mut used = 0usize;
            offer_result(
                store,
                device,
                &writers,
                offer,
                None,
                8 << 20,
                &mut used,
                metrics,
            )
        })
        .map_err(|e| Problem::internal(&e))
}

/// What the acceptance rule made of a new visit's document on a
/// background thread: its changes with their authors, and its summary.
pub struct Prepared {
    accepted: Vec<kiemtra_core::Accepted>,
    summary: Option<kiemtra_store::VisitSummary>,
}

type Preloaded = Result<(Visit, Prepared), kiemtra_core::Refusal>;

/// Why an offer's handling stopped short: an answer to give (a refusal, a
/// request to resend), or a failure of the database, which fails the whole
/// request instead (a 5xx the client retries), never the visit.
enum Stop {
    Answer(Box<VisitResult>),
    Failed(kiemtra_store::Error),
}

/// A storage error met while answering an offer: the database's (its
/// connection, a transaction; the request fails and is retried whole) or
/// the visit's (its stored document damaged: refused as invalid).
fn answer_or_fail(vid: &str, e: kiemtra_store::Error) -> Result<VisitResult, kiemtra_store::Error> {
    // Damaged data of one visit is that visit's answer: every later sync
    // would offer it again, so failing the request would stop them all.
    match e.class() {
        kiemtra_store::ErrorClass::Server => Err(e),
        _ => Ok(refuse(vid, VisitStatus::Invalid, e.to_string())),
    }
}

/// The answer to a refused offer.
fn refusal(vid: &str, r: &kiemtra_core::Refusal) -> VisitResult {
    let status = match r.kind {
        kiemtra_core::RefusalKind::Denied => VisitStatus::Denied,
        _ => VisitStatus::Invalid,
    };
    refuse(vid, status, r.to_string())
}

/// What the server does with one offered visit; `None` when the device and
/// the server already agree and there is nothing to say.
#[allow(clippy::too_many_arguments)]
fn offer_result<S: ServerStore>(
    store: &mut S,
    device: &DeviceRecord,
    writers: &trust::Writers,
    offer: &VisitOffer,
    preloaded: Option<Preloaded>,
    budget: usize,
    used: &mut usize,
    metrics: &Metrics,
) -> Result<Option<VisitResult>, kiemtra_store::Error> {
    let vid = offer.visit_id.as_str();
    let id = match VisitId::parse(vid) {
        Ok(id) => id,
        Err(e) => return Ok(Some(refuse(vid, VisitStatus::Invalid, e.to_string()))),
    };
    let summary = match store.summary(&id) {
        Ok(s) => s,
        Err(kiemtra_store::Error::UnknownVisit(_)) => {
            return new_visit(store, device, writers, offer, preloaded, &id, metrics).map(Some);
        }
        Err(e) => return answer_or_fail(vid, e).map(Some),
    };
    if device.role == "administrator" {
        return Ok(Some(refuse(
            vid,
            VisitStatus::Denied,
            "administrators never read or write visit contents",
        )));
    }
    // Writes are refused by role before anything of them is read.
    if !offer.changes.is_empty() && !trust::WRITERS.contains(&device.role.as_str()) {
        return Ok(Some(refuse(
            vid,
            VisitStatus::Denied,
            format!("{}s never write visit contents", device.role),
        )));
    }
    let reads_all = device.role == "auditor" && offer.changes.is_empty();
    if summary.team != device.team && !reads_all {
        // The same answer as for a visit that does not exist: whether
        // another team has a visit of this unit is not told.
        return Ok(Some(refuse(vid, VisitStatus::Unknown, "no such visit")));
    }
    // The device's heads and confirmation: as sent, or read off the
    // changes when the offer left them to those (flag bit 2).
    let (offer_heads, offer_confirmed) = match offer.implied {
        false => (
            heads_of_wire(&offer.heads),
            offer.confirmed.as_deref().map(heads_of_wire),
        ),
        true => match kiemtra_core::implied_by(&offer.changes) {
            Ok(implied) => (implied.heads, implied.confirmed),
            Err(e) => return Ok(Some(refuse(vid, VisitStatus::Invalid, e.to_string()))),
        },
    };
    // In sync already: answered from the index, without loading the visit.
    if offer.changes.is_empty() && summary.heads == offer_heads {
        if offer_confirmed.as_ref() == Some(&summary.heads) {
            return Ok(None);
        }
        return Ok(Some(result(
            vid,
            VisitStatus::Ok,
            from_hashes(&summary.heads),
            Vec::new(),
            String::new(),
        )));
    }
    // A write holds other writers of this visit off from here to the end
    // of the request (PostgreSQL; the embedded store has one writer).
    if !offer.changes.is_empty()
        && let Err(e) = store.lock_visit(&id)
    {
        return answer_or_fail(vid, e).map(Some);
    }
    // A confirmation naming changes the server does not have: the server
    // was restored from an older copy. Ask for everything after what it has.
    let visit = match store.visit(&id) {
        Ok(v) => v,
        Err(e) => return answer_or_fail(vid, e).map(Some),
    };
    if let Some(confirmed) = &offer_confirmed
        && confirmed.iter().any(|h| !visit.has_change(h))
    {
        return Ok(Some(result(
            vid,
            VisitStatus::Resend,
            from_hashes(&visit.heads()),
            Vec::new(),
            String::new(),
        )));
    }
    let applied = !offer.changes.is_empty();
    if applied && let Err(stop) = accept_offer(store, writers, offer, &id, &summary.team, metrics) {
        return match stop {
            Stop::Answer(r) => Ok(Some(*r)),
            Stop::Failed(e) => Err(e),
        };
    }
    let visit = match store.visit(&id) {
        Ok(v) => v,
        Err(e) => return answer_or_fail(vid, e).map(Some),
    };
    let server_heads = Heads::new(visit.heads());
    let device_heads = offer_heads;
    if device_heads.iter().any(|h| !visit.has_change(h)) {
        // The device holds changes it did not send (its confirmation was
        // ahead of this server): ask for them.
        return Ok(Some(result(
            vid,
            VisitStatus::Resend,
            from_hashes(&server_heads),
            Vec::new(),
            String::new(),
        )));
    }
    if server_heads == device_heads {
        let confirmed_now = offer_confirmed.as_ref() == Some(&server_heads);
        if !applied && confirmed_now {
            return Ok(None);
        }
        return Ok(Some(result(
            vid,
            VisitStatus::Ok,
            from_hashes(&server_heads),
            Vec::new(),
            String::new(),
        )));
    }
    let missing = visit.save_after(&device_heads);
    if *used > 0 && *used + missing.len() > budget {
        return Ok(Some(refuse(vid, VisitStatus::Deferred, "")));
    }
    *used += missing.len();
    metrics.visits_sent.fetch_add(1, Relaxed);
    let sent = visit.change_hashes_after(&device_heads);
    let mut r = result(
        vid,
        VisitStatus::Ok,
        from_hashes(&server_heads),
        missing,
        String::new(),
    );
    let sent = visit.change_ids(&sent).unwrap_or_default();
    r.signatures = match store.signatures_covering(&id, &sent) {
        Ok(s) => to_wire(s),
        Err(e) => return answer_or_fail(vid, e).map(Some),
    };
    Ok(Some(r))
}

/// A visit the server does not hold: created on the device, or lost by a
/// restored server.
fn new_visit<S: ServerStore>(
    store: &mut S,
    device: &DeviceRecord,
    writers: &trust::Writers,
    offer: &VisitOffer,
    preloaded: Option<Preloaded>,
    id: &VisitId,
    metrics: &Metrics,
) -> Result<VisitResult, kiemtra_store::Error> {
    let vid = offer.visit_id.as_str();
    if offer.changes.is_empty() {
        return Ok(if offer.confirmed.is_some() {
            result(
                vid,
                VisitStatus::Resend,
                Vec::new(),
                Vec::new(),
                String::new(),
            )
        } else {
            refuse(vid, VisitStatus::Unknown, "no such visit")
        });
    }
    if !trust::WRITERS.contains(&device.role.as_str()) {
        return Ok(refuse(
            vid,
            VisitStatus::Denied,
            format!("{}s never write visit contents", device.role),
        ));
    }
    let loaded = match preloaded {
        Some(l) => l,
        None => {
            let budget = kiemtra_core::op_budget(offer.changes.len());
            Visit::accept_new(&offer.changes, store.session(), writers, budget).map(
                |(v, accepted)| {
                    let summary = kiemtra_store::VisitSummary::of(&v).ok();
                    (v, Prepared { accepted, summary })
                },
            )
        }
    };
    let (visit, prepared) = match loaded {
        Ok(v) => v,
        // Only a part of the history arrived (the device thought the server
        // had the rest): ask for all of it.
        Err(r) if r.kind == kiemtra_core::RefusalKind::Missing && offer.confirmed.is_some() => {
            return Ok(result(
                vid,
                VisitStatus::Resend,
                Vec::new(),
                Vec::new(),
                String::new(),
            ));
        }
        // Changes of a visit the server does not hold, without its history:
        // answered like any other visit outside the device's reach.
        Err(r) if r.kind == kiemtra_core::RefusalKind::Missing => {
            return Ok(refuse(vid, VisitStatus::Unknown, "no such visit"));
        }
        Err(r) => return Ok(refusal(vid, &r)),
    };
    match visit.meta() {
        Ok(meta) if meta.visit_id != *id => {
            return Ok(refuse(
                vid,
                VisitStatus::Invalid,
                "the document is of another visit",
            ));
        }
        Ok(meta) if meta.team.as_str() != device.team => {
            return Ok(refuse(
                vid,
                VisitStatus::Denied,
                "a device creates visits only for its own team",
            ));
        }
        Ok(_) => {}
        Err(e) => return Ok(refuse(vid, VisitStatus::Invalid, e.to_string())),
    }
    let team = device.team.clone();
    let changes: Vec<(ChangeHash, Option<kiemtra_core::Editor>)> = prepared
        .accepted
        .iter()
        .map(|a| (a.hash, Some(a.author.clone())))
        .collect();
    let expanded = match trust::expand_in(&visit, &prepared.accepted, &offer.signatures) {
        Ok(x) => x,
        Err((status, message)) => return Ok(refuse(vid, status, message)),
    };
    let keep = match trust::check(store, vid, &team, &changes, &expanded, &crate::auth::now()) {
        Ok(keep) => keep,
        Err((status, message)) => return Ok(refuse(vid, status, message)),
    };
    // The offered bytes are what was checked, change by change (a whole
    // document, or canonical change chunks): they are stored as received,
    // which saves saving the document again.
    let stored = match prepared.summary {
        Some(summary) => store.insert_summarised(visit, &offer.changes, summary),
        None => store.insert_loaded(visit, &offer.changes),
    };
    let stored = stored.and_then(|summary| store.record_signatures(id, &keep).map(|_| summary));
    match stored {
        Ok(summary) => {
            metrics.visits_applied.fetch_add(1, Relaxed);
            let heads = from_hashes(&summary.heads);
            Ok(result(
                vid,
                VisitStatus::Ok,
                heads,
                Vec::new(),
                String::new(),
            ))
        }
        Err(e) => answer_or_fail(vid, e),
    }
}

/// Checks an offer's changes to a stored visit by the acceptance rule and
/// its signatures by the trust rule, and stores them; the answer to give
/// instead when they are refused (or a dependency is missing).
fn accept_offer<S: ServerStore>(
    store: &mut S,
    writers: &trust::Writers,
    offer: &VisitOffer,
    id: &VisitId,
    team: &str,
    metrics: &Metrics,
) -> Result<(), Stop> {
    let vid = offer.visit_id.as_str();
    let internal = |e: kiemtra_store::Error| match answer_or_fail(vid, e) {
        Ok(r) => Stop::Answer(Box::new(r)),
        Err(e) => Stop::Failed(e),
    };
    let session = store.session().clone();
    let mut candidate = store.visit(id).map_err(internal)?.fork_for(&session);
    let max_ops = kiemtra_core::op_budget(offer.changes.len());
    let accepted = match candidate.accept_remote(&offer.changes, writers, max_ops) {
        Ok(a) => a,
        Err(r) if r.kind == kiemtra_core::RefusalKind::Missing => {
            let heads = store.summary(id).map(|s| s.heads).unwrap_or_default();
            let heads = from_hashes(&heads);
            return Err(Stop::Answer(Box::new(result(
                vid,
                VisitStatus::Resend,
                heads,
                Vec::new(),
                String::new(),
            ))));
        }
        Err(r) => return Err(Stop::Answer(Box::new(refusal(vid, &r)))),
    };
    let expanded = trust::expand_in(&candidate, &accepted, &offer.signatures)
        .map_err(|(status, message)| Stop::Answer(Box::new(refuse(vid, status, message))))?;
    let changes: Vec<(ChangeHash, Option<kiemtra_core::Editor>)> = accepted
        .iter()
        .map(|a| (a.hash, Some(a.author.clone())))
        .collect();
    let keep = trust::check(store, vid, team, &changes, &expanded, &crate::auth::now())
        .map_err(|(status, message)| Stop::Answer(Box::new(refuse(vid, status, message))))?;
    if accepted.is_empty() {
        return Ok(());
    }
    store
        .edit(id, |v| v.adopt(candidate))
        .and_then(|_| store.record_signatures(id, &keep))
        .map_err(internal)?;
    metrics.visits_applied.fetch_add(1, Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_failure_fails_the_request_and_a_damaged_visit_is_refused() {
        let failed = answer_or_fail("v-1", kiemtra_store::Error::database("connection lost"));
        assert!(
            matches!(failed, Err(kiemtra_store::Error::Database { .. })),
            "a database error must fail the request (5xx), not the visit"
        );
        let damaged = answer_or_fail("v-1", kiemtra_store::Error::Corrupt("bad chunk".into()))
            .expect("a damaged visit is the visit's answer");
        assert_eq!(damaged.status, VisitStatus::Invalid);
        assert!(damaged.message.contains("bad chunk"), "{}", damaged.message);
        let unknown = answer_or_fail(
            "v-1",
            kiemtra_store::Error::UnknownVisit(VisitId::parse("v-1").expect("id")),
        )
        .expect("answered");
        assert_eq!(unknown.status, VisitStatus::Invalid);
    }
}
