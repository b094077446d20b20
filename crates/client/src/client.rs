//! Enrollment and sync over HTTP.

use kiemtra_core::{ChangeHash, Visit, VisitId};
use kiemtra_store::Store;
use kiemtra_sync_protocol::{
    Cursor, MEDIA_TYPE, SeqRange, Signature, SyncRequest, SyncResponse, VisitOffer, VisitStatus,
};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::Error;

/// The sync peer name under which the store keeps what the server confirmed.
pub const PEER: &str = "server";

/// Set by the store migration that began recording own changes, on a store
/// that already held visits: the next complete sync also scans documents
/// for own changes nobody signed, then clears it.
const SCAN_ALL: &str = "sign.scan_all";

/// What a device received at enrollment; kept in its store's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub server: String,
    pub device_id: String,
    pub token: String,
    pub user_id: String,
    pub team: String,
    pub role: String,
    /// The device's Ed25519 private key (PKCS#8, hex). It never leaves the
    /// device store; the server holds only the public key.
    #[serde(default)]
    pub signing_key: String,
}

pub(crate) fn sign_batch(key: &Ed25519KeyPair, visit_id: &str, hashes: &[ChangeHash]) -> Vec<u8> {
    let raw: Vec<[u8; 32]> = hashes.iter().map(|h| h.0).collect();
    key.sign(&Signature::message(visit_id, &raw))
        .as_ref()
        .to_vec()
}

/// Signs `hashes` (this device's own changes of visit `id`, named by
/// `ranges`) with `key` and keeps the signature as this device's, marking
/// its own changes up to `mark` signed (see `Store::own_unsigned`), so that
/// a retry, a later sync or a bundle sends the same signature.
pub(crate) fn keep_own_signature(
    store: &mut Store,
    signer: &str,
    key: &Ed25519KeyPair,
    id: &VisitId,
    hashes: &[ChangeHash],
    ranges: Vec<(Vec<u8>, u64, u64)>,
    mark: i64,
) -> Result<(), kiemtra_store::Error> {
    let record = kiemtra_store::SignatureRecord {
        signer: signer.to_owned(),
        ranges,
        signature: sign_batch(key, id.as_str(), hashes),
        received_at: store.session().now().to_rfc3339(),
    };
    store.record_own_signature(id, &record, mark)
}

impl Credentials {
    pub(crate) fn key_pair(&self) -> Result<Ed25519KeyPair, Error> {
        let bytes = kiemtra_core::hex::decode(&self.signing_key).ok_or(Error::NotEnrolled)?;
        Ed25519KeyPair::from_pkcs8(&bytes).map_err(|_| Error::NotEnrolled)
    }

    /// Signs arbitrary bytes with the device key (used for approvals).
    pub fn sign_bytes(&self, message: &[u8]) -> Result<Vec<u8>, Error> {
        Ok(self.key_pair()?.sign(message).as_ref().to_vec())
    }

    /// Signs a batch of this device's own changes of one visit.
    pub fn sign(&self, visit_id: &str, hashes: &[ChangeHash]) -> Result<Vec<u8>, Error> {
        Ok(sign_batch(&self.key_pair()?, visit_id, hashes))
    }
    pub fn save(&self, store: &mut Store) -> Result<(), Error> {
        let json = serde_json::to_string(self).map_err(|e| Error::Decode(e.to_string()))?;
        store.set_setting("sync.credentials", &json)?;
        Ok(())
    }
    pub fn load(store: &Store) -> Result<Self, Error> {
        let json = store
            .setting("sync.credentials")?
            .ok_or(Error::NotEnrolled)?;
        serde_json::from_str(&json).map_err(|e| Error::Decode(e.to_string()))
    }
}

/// Limits and patience of the client.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Time allowed for one HTTP exchange.
    pub timeout: Duration,
    /// Attempts per request (network errors, 5xx and 429 are retried).
    /// A busy answer (503 or 429 with `Retry-After`) waits as it says
    /// without using up an attempt, while the waits add up to at most
    /// `max_busy_wait`.
    pub max_attempts: u32,
    /// Most time one request spends waiting as busy answers ask.
    pub max_busy_wait: Duration,
    /// First backoff; doubles each retry, with full jitter, up to `max_backoff`.
    pub base_backoff: Duration,
    pub max_backoff: Duration,
    /// Change bytes the client puts in one request before continuing in the next.
    pub max_request: usize,
    /// Response bytes the client asks the server to stay under.
    pub max_response: u64,
    /// Most request rounds in one `sync` call.
    pub max_rounds: u32,
    /// Bytes of an evidence file sent per request: what a dropped link
    /// can cost to send again.
    pub evidence_piece: u64,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(60),
            max_attempts: 8,
            max_busy_wait: Duration::from_secs(600),
            base_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(15),
            max_request: 4 << 20,
            max_response: 8 << 20,
            max_rounds: 64,
            evidence_piece: 256 << 10,
        }
    }
}

/// Reported after every request of a sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub visits_done: usize,
    pub visits_total: usize,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// A visit the server would not take, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitError {
    pub visit_id: String,
    pub status: VisitStatus,
    pub message: String,
}

/// What one `sync` call did.
#[derive(Debug, Clone, Default)]
pub struct SyncReport {
    /// HTTP requests that got an answer (retries not counted).
    pub requests: u32,
    /// Attempts that failed and were retried.
    pub retries: u32,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub visits_uploaded: usize,
    pub visits_downloaded: usize,
    pub errors: Vec<VisitError>,
    /// Visits stored as received that were found damaged when this sync
    /// opened them: removed, and downloaded again.
    pub refetched: usize,
}

/// What one `upload_evidence` call did.
#[derive(Debug, Clone, Default)]
pub struct EvidenceReport {
    /// Files the server now holds whole.
    pub uploaded: usize,
    /// HTTP requests that got an answer (retries not counted).
    pub requests: u32,
    /// Attempts that failed and were retried.
    pub retries: u32,
    /// Evidence bytes sent.
    pub bytes_sent: u64,
    /// Files the server would not take, left for the next call.
    pub errors: Vec<EvidenceError>,
    /// Files no longer referenced from their visit here (detached): kept
    /// on the device, not sent.
    pub skipped: usize,
}

/// An evidence file the server refused, with its reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvidenceError {
    pub visit_id: String,
    pub hash: String,
    pub status: u16,
    /// The problem type's kind (`evidence-not-referenced`, `not-found`, …).
    pub kind: String,
    pub message: String,
}

/// The server's answer about how much of a file it holds.
fn parse_status(answer: &[u8]) -> Result<kiemtra_store::EvidenceStatus, Error> {
    #[derive(Deserialize)]
    struct Held {
        length: Option<u64>,
        received: u64,
        complete: bool,
    }
    let h: Held = serde_json::from_slice(answer).map_err(|e| Error::Decode(e.to_string()))?;
    Ok(kiemtra_store::EvidenceStatus {
        length: h.length.unwrap_or(0),
        received: h.received,
        complete: h.complete,
    })
}

/// Enrolls this device with a code from an administrator. A new Ed25519
/// key pair is made here; only its public half is sent. Retried with the
/// default patience (see [`enroll_with`]).
pub async fn enroll(server: &str, code: &str, device_name: &str) -> Result<Credentials, Error> {
    enroll_with(server, code, device_name, &SyncOptions::default()).await
}

/// Enrolls this device, retrying network failures, lost or cut answers,
/// 5xx and 429 (after its `Retry-After`) up to `options.max_attempts` times
/// with backoff. Every attempt sends the same key pair, made once here: the
/// server answers a repeat of a code it already redeemed for that key with
/// the same device and a fresh token, so an answer lost on a bad link does
/// not burn the code. A 4xx answer is returned at once as
/// [`Error::Refused`].
pub async fn enroll_with(
    server: &str,
    code: &str,
    device_name: &str,
    options: &SyncOptions,
) -> Result<Credentials, Error> {
    let pkcs8 = new_device_key()?;
    enroll_with_key(server, code, device_name, options, &pkcs8).await
}

/// A new Ed25519 device key (PKCS#8 bytes), for an app that keeps the key
/// in a store of its own before enrolling with it ([`enroll_with_key`]).
pub fn new_device_key() -> Result<Vec<u8>, Error> {
    Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
        .map(|k| k.as_ref().to_vec())
        .map_err(|_| Error::Network("no system randomness".into()))
}

/// The public half (hex) of a device key in PKCS#8; [`Error::NotEnrolled`]
/// when the bytes are not an Ed25519 key.
pub fn public_key_of(pkcs8: &[u8]) -> Result<String, Error> {
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8).map_err(|_| Error::NotEnrolled)?;
    Ok(kiemtra_core::hex::encode(pair.public_key().as_ref()))
}

/// [`enroll_with`] with a key made beforehand ([`new_device_key`]).
pub async fn enroll_with_key(
    server: &str,
    code: &str,
    device_name: &str,
    options: &SyncOptions,
    pkcs8: &[u8],
) -> Result<Credentials, Error> {
    let public_key = public_key_of(pkcs8)?;
    #[derive(Deserialize)]
    struct Enrolled {
        device_id: String,
        token: String,
        user_id: String,
        team: String,
        role: String,
    }
    let http = reqwest::Client::builder()
        .timeout(options.timeout)
        .build()
        .map_err(|e| Error::Network(e.to_string()))?;
    let server = server.trim_end_matches('/').to_owned();
    let body =
        serde_json::json!({ "code": code, "device_name": device_name, "public_key": public_key });
    let mut last = String::new();
    let mut wait = Duration::ZERO;
    for attempt in 0..options.max_attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(wait.max(backoff(options, attempt))).await;
        }
        wait = Duration::ZERO;
        let resp = match http
            .post(format!("{server}/v1/enroll"))
            .json(&body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        let status = resp.status();
        if status.is_success() {
            match resp.json::<Enrolled>().await {
                Ok(e) => {
                    return Ok(Credentials {
                        server,
                        device_id: e.device_id,
                        token: e.token,
                        user_id: e.user_id,
                        team: e.team,
                        role: e.role,
                        signing_key: kiemtra_core::hex::encode(pkcs8),
                    });
                }
                // Cut off or garbled on the way: the server may have
                // enrolled us; asking again with the same key is safe.
                Err(e) => {
                    last = format!("the answer was lost: {e}");
                    continue;
                }
            }
        }
        if status.as_u16() == 429 {
            wait = retry_after(&resp).unwrap_or_default();
            last = format!("HTTP {status}");
            continue;
        }
        if status.is_server_error() {
            last = format!("HTTP {status}");
            continue;
        }
        return Err(refused(resp).await);
    }
    Err(Error::Network(format!(
        "enrollment gave up after {} attempts: {last}",
        options.max_attempts.max(1)
    )))
}

/// The wait before retry `attempt`: exponential from `base_backoff`, capped
/// at `max_backoff`, with full jitter.
fn backoff(options: &SyncOptions, attempt: u32) -> Duration {
    let cap = options
        .base_backoff
        .saturating_mul(1u32 << attempt.min(16))
        .min(options.max_backoff);
    let mut b = [0u8; 4];
    let r = SystemRandom::new()
        .fill(&mut b)
        .map(|_| u32::from_le_bytes(b))
        .unwrap_or(u32::MAX / 2);
    cap.mul_f64(f64::from(r) / f64::from(u32::MAX))
}

/// The wait a `Retry-After` header in whole seconds asks for (at most five
/// minutes), if the answer has one.
fn retry_after(resp: &reqwest::Response) -> Option<Duration> {
    resp.headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(300)))
}

/// A busy answer's wait, made later by up to a quarter of it and at least
/// up to a second at random, so phones told the same whole second do not
/// come back in the same instant.
fn spread(wait: Duration) -> Duration {
    let mut b = [0u8; 4];
    let r = SystemRandom::new()
        .fill(&mut b)
        .map(|_| u32::from_le_bytes(b))
        .unwrap_or(u32::MAX / 2);
    let room = (wait / 4).max(Duration::from_secs(1));
    wait + room.mul_f64(f64::from(r) / f64::from(u32::MAX))
}

async fn refused(resp: reqwest::Response) -> Error {
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    Error::Refused {
        status,
        kind: body["type"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("urn:kiemtra:problem:")
            .to_owned(),
        detail: body["detail"].as_str().unwrap_or("").to_owned(),
    }
}

/// Syncs a device store with its server: the HTTP shell (retries,
/// backoff, cancellation, evidence uploads) around [`DeviceEngine`].
pub struct SyncClient {
    http: reqwest::Client,
    engine: DeviceEngine,
    cancel: Arc<AtomicBool>,
}

/// SPEC §7 without I/O: what a device sends in one round of a sync and
/// what it does with the answer, over its store. No sockets, threads or
/// runtime: [`SyncClient`] carries the bytes over HTTP, and the in-memory
/// harness of the tests (`tests/sim`) carries them to a server engine
/// directly.
#[derive(Debug, Clone)]
pub struct DeviceEngine {
    creds: Credentials,
    options: SyncOptions,
}

/// One round's request, built by [`DeviceEngine::begin`].
#[derive(Debug, Clone)]
pub struct Round {
    /// The request as it goes on the wire (SPEC §4).
    pub body: Vec<u8>,
    /// Visits were left out for a later round (the request was full).
    local_more: bool,
    /// Offers that carry changes.
    offered: usize,
}

/// What [`DeviceEngine::apply`] made of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Another round is needed (more on either side, or a visit to fetch again).
    pub again: bool,
    /// Visits the answer spoke of.
    pub answered: usize,
}

impl DeviceEngine {
    pub fn new(creds: Credentials, options: SyncOptions) -> Self {
        Self { creds, options }
    }

    pub fn credentials(&self) -> &Credentials {
        &self.creds
    }

    pub fn options(&self) -> &SyncOptions {
        &self.options
    }

    /// The next round's request: every visit with its heads, with changes
    /// where the server has not confirmed them all, and the feed cursor.
    /// Signs this device's unsigned changes and keeps the signatures (one
    /// transaction), so a repeat sends the same ones.
    pub fn begin(&self, store: &mut Store) -> Result<Round, Error> {
        let cursor = parse_cursor(store.setting(kiemtra_store::CURSOR_SETTING)?);
        // One transaction for the whole request: the signatures it
        // records are written with one disk sync, not one per visit.
        let (request, local_more, offered) =
            store.batch(|store| Ok(self.build_request(store, cursor)))??;
        Ok(Round {
            body: request.encode(),
            local_more,
            offered,
        })
    }

    /// Applies the server's `answer` to `round` in one transaction (with
    /// the new cursor) and counts it in `report`. An answer that does not
    /// decode changes nothing.
    pub fn apply(
        &self,
        store: &mut Store,
        round: &Round,
        answer: &[u8],
        report: &mut SyncReport,
    ) -> Result<Applied, Error> {
        let response =
            SyncResponse::decode(answer, usize::MAX).map_err(|e| Error::Decode(e.to_string()))?;
        report.requests += 1;
        report.bytes_sent += round.body.len() as u64;
        report.bytes_received += answer.len() as u64;
        report.visits_uploaded += round.offered;
        let mut again = round.local_more || response.more;
        // The whole answer is applied in one transaction (one disk sync),
        // with the cursor stored alongside.
        let refetched_before = report.refetched;
        again |= store.batch(|store| {
            let mut again = false;
            // Visits new to this device are loaded (validated) on
            // background threads, a window ahead of the one being
            // stored; storing stays sequential, in order.
            let docs: Vec<Option<&[u8]>> = response
                .visits
                .iter()
                .map(|r| {
                    // A whole document sent with the server's listing
                    // is stored as received and loaded when first opened
                    // (SPEC §7); only the others are loaded now.
                    let fresh = r.status == VisitStatus::Ok
                        && !r.changes.is_empty()
                        && r.listing.is_none()
                        && VisitId::parse(&r.visit_id).is_ok_and(|id| store.summary(&id).is_err());
                    fresh.then_some(r.changes.as_slice())
                })
                .collect();
            let session = store.session().clone();
            kiemtra_core::load_pipelined(&docs, &session, LOAD_WINDOW, Fresh::of, |loads| {
                for (r, preloaded) in response.visits.iter().zip(loads) {
                    again |= apply_result(store, r, preloaded, report)?;
                }
                Ok::<_, kiemtra_store::Error>(())
            })?;
            // Left cleared when a received visit was removed as damaged
            // (so the next round is answered with it again).
            if report.refetched == refetched_before {
                let cursor = format!("{}:{}", response.cursor.seq, response.cursor.nonce);
                store.set_setting(kiemtra_store::CURSOR_SETTING, &cursor)?;
            }
            Ok(again)
        })?;
        if !again && store.setting(SCAN_ALL)?.is_some() && !round.local_more {
            store.delete_setting(SCAN_ALL)?;
        }
        Ok(Applied {
            again,
            answered: response.visits.len(),
        })
    }

    /// Offers: every visit with its heads; with changes when the server has
    /// not confirmed them all. Returns the request, whether visits were left
    /// out for the next round, and how many offers carry changes.
    fn build_request(
        &self,
        store: &mut Store,
        mut cursor: Cursor,
    ) -> Result<(SyncRequest, bool, usize), Error> {
        let mut visits = Vec::new();
        let mut size = 0usize;
        let mut left_out = false;
        let mut with_changes = 0;
        let scan_all = store.setting(SCAN_ALL)?.is_some();
        let mut key: Option<Ed25519KeyPair> = None;
        let device = kiemtra_core::DeviceId::parse(&self.creds.device_id)
            .map_err(kiemtra_store::Error::from)?;
        for summary in store.list_visits()? {
            let heads = summary.heads.clone();
            let confirmed = store
                .confirmed_heads(&summary.id, PEER)?
                .filter(|c| !c.is_empty());
            if confirmed.as_ref() == Some(&heads) {
                visits.push(VisitOffer {
                    visit_id: summary.id.to_string(),
                    heads: heads.iter().map(|h| h.0).collect(),
                    confirmed: confirmed.map(|c| c.iter().map(|h| h.0).collect()),
                    changes: Vec::new(),
                    signatures: Vec::new(),
                    implied: false,
                });
                continue;
            }
            if size > 0 && size >= self.options.max_request {
                left_out = true;
                continue;
            }
            // Sign this device's own changes that no kept signature covers
            // yet; keep the signature so a retry sends the same one. The
            // store recorded them as they were made, so a visit with
            // nothing confirmed is offered without loading its document.
            // After an upgrade from a store that did not record them, the
            // first sync also scans each visit for them (`SCAN_ALL`).
            let (own, mark) = store.own_unsigned(&summary.id)?;
            let (payload_ids, partial, scanned) = if confirmed.is_some() || scan_all {
                let visit = match store.visit(&summary.id) {
                    Ok(v) => v,
                    // Stored as received and found damaged on opening: removed.
                    // Asking from the start of the feed brings it back in
                    // this very answer.
                    Err(kiemtra_store::Error::Refetch { .. }) => {
                        cursor = Cursor::default();
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let known: Vec<ChangeHash> = confirmed
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|h| visit.has_change(h))
                    .collect();
                // For a whole document every kept signature is sent; for a
                // partial one, those covering its changes.
                // By actor and sequence number: kept signatures name
                // their changes that way.
                let payload_ids = match known.is_empty() {
                    true => Vec::new(),
                    false => visit
                        .change_ids(&visit.change_hashes_after(&known))
                        .unwrap_or_default(),
                };
                let partial = (!known.is_empty()).then(|| visit.save_after(&known));
                let scanned = match scan_all {
                    true => {
                        let mine = visit.changes_by(&known, &device);
                        visit.change_ids(&mine).unwrap_or_default()
                    }
                    false => Vec::new(),
                };
                (payload_ids, partial, scanned)
            } else {
                (Vec::new(), None, Vec::new())
            };
            let mut unsigned: Vec<ChangeHash> = own.iter().map(|(h, _, _)| *h).collect();
            let ranges = if scanned.is_empty() {
                kiemtra_core::seq_ranges_of(own.into_iter().map(|(_, actor, seq)| (actor, seq)))
            } else {
                let signed = store.signed_among(&summary.id, &scanned)?;
                let listed: std::collections::HashSet<ChangeHash> =
                    unsigned.iter().copied().collect();
                unsigned.extend(
                    scanned
                        .into_iter()
                        .map(|(h, _, _)| h)
                        .filter(|h| !signed.contains(h) && !listed.contains(h)),
                );
                store
                    .visit(&summary.id)?
                    .seq_ranges(&unsigned)
                    .unwrap_or_default()
            };
            let partial_sent = partial.is_some();
            let changes = match partial {
                Some(bytes) => bytes,
                // Nothing confirmed: the whole document, as stored (no load and save).
                None => store.stored_bytes(&summary.id)?,
            };
            if !unsigned.is_empty() {
                // The key is parsed once per request, not once per visit.
                let pair = match key.take() {
                    Some(pair) => pair,
                    None => self.creds.key_pair()?,
                };
                keep_own_signature(
                    store,
                    &self.creds.device_id,
                    &pair,
                    &summary.id,
                    &unsigned,
                    ranges,
                    mark,
                )?;
                key = Some(pair);
            }
            let kept = match partial_sent {
                true => store.signatures_covering(&summary.id, &payload_ids)?,
                false => store.signatures_of(&summary.id)?,
            };
            // This device's own batches leave the signer implied (the
            // server knows who is asking); others' are named.
            let signatures = kept
                .into_iter()
                .map(|s| Signature {
                    signer: if s.signer == self.creds.device_id {
                        String::new()
                    } else {
                        s.signer
                    },
                    ranges: s
                        .ranges
                        .into_iter()
                        .map(|(actor, first, last)| SeqRange { actor, first, last })
                        .collect(),
                    signature: s.signature,
                })
                .collect();
            size += changes.len() + 100;
            with_changes += 1;
            // Heads and confirmation stay off the wire when the changes
            // imply them exactly (SPEC §4, flag bit 2): always for a whole
            // document offered without a confirmation; for changes, when
            // they are all that was added since the confirmation.
            let implied = match (&confirmed, partial_sent) {
                (None, false) => true,
                (Some(c), true) => kiemtra_core::implied_by(&changes)
                    .is_ok_and(|i| i.heads == heads && i.confirmed.as_ref() == Some(c)),
                _ => false,
            };
            let written = |hs: &[ChangeHash]| match implied {
                true => Vec::new(),
                false => hs.iter().map(|h| h.0).collect(),
            };
            visits.push(VisitOffer {
                visit_id: summary.id.to_string(),
                heads: written(&heads),
                confirmed: confirmed.as_deref().map(written),
                changes,
                signatures,
                implied,
            });
        }
        Ok((
            SyncRequest {
                cursor,
                max_response: self.options.max_response,
                visits,
            },
            left_out,
            with_changes,
        ))
    }
}

fn parse_cursor(s: Option<String>) -> Cursor {
    s.and_then(|s| {
        let (a, b) = s.split_once(':')?;
        Some(Cursor {
            seq: a.parse().ok()?,
            nonce: b.parse().ok()?,
        })
    })
    .unwrap_or_default()
}

impl SyncClient {
    pub fn new(creds: Credentials, options: SyncOptions) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout.min(Duration::from_secs(15)))
            .build()
            .map_err(|e| Error::Network(e.to_string()))?;
        Ok(Self {
            http,
            engine: DeviceEngine::new(creds, options),
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Uses `flag` as this client's cancel switch (shared with a caller
    /// that may set it from another thread).
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = flag;
        self
    }

    /// A handle that cancels a running sync at its next step when set.
    pub fn cancel_handle(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    pub fn credentials(&self) -> &Credentials {
        &self.engine.creds
    }

    /// The decisions this client carries over HTTP.
    pub fn engine(&self) -> &DeviceEngine {
        &self.engine
    }

    /// Sends every visit with unsynced changes, receives what the device
    /// lacks (including visits new to it), and records what the server
    /// confirmed — only after the answer has been received and applied.
    /// One request in the steady state; more when the server asks for a
    /// fuller exchange or either side has more than fits in one message.
    pub async fn sync(
        &self,
        store: &mut Store,
        progress: &mut (dyn FnMut(&Progress) + Send),
    ) -> Result<SyncReport, Error> {
        let mut report = SyncReport::default();
        let mut done = 0usize;
        for _round in 0..self.engine.options.max_rounds {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let round = self.engine.begin(store)?;
            let answer = self.post(round.body.clone(), &mut report).await?;
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            let applied = self.engine.apply(store, &round, &answer, &mut report)?;
            done += applied.answered;
            progress(&Progress {
                visits_done: done,
                visits_total: done + usize::from(applied.again),
                bytes_sent: report.bytes_sent,
                bytes_received: report.bytes_received,
            });
            if !applied.again {
                // The team's keys, for reading bundles with no signal:
                // fetched when missing or a day old. A failure here does
                // not fail the sync; the next one tries again.
                let stale = match crate::bundle::team_fetched_at(store) {
                    Ok(Some(at)) => store.session().now() - at > chrono::Duration::hours(24),
                    _ => true,
                };
                if stale && let Err(e) = self.refresh_team(store).await {
                    tracing::warn!(error = %e, "could not refresh the team's devices");
                }
                return Ok(report);
            }
        }
        Ok(report)
    }

    /// POSTs a sync message, retrying network failures, 5xx and 429 with
    /// exponential backoff and full jitter. Safe because sync is idempotent.
    async fn post(&self, body: Vec<u8>, report: &mut SyncReport) -> Result<Vec<u8>, Error> {
        let url = format!("{}/v1/sync", self.engine.creds.server);
        self.send(&mut report.retries, || {
            self.http
                .post(&url)
                .header("Content-Type", MEDIA_TYPE)
                .body(body.clone())
        })
        .await
    }

    /// Sends the request `make` builds, authenticated, retrying network
    /// errors, 5xx and 429 with backoff; a 4xx answer is returned as
    /// [`Error::Refused`] at once. Counts retries in `retries`.
    /// GET `url` with this device's token, retried as a sync is.
    pub(crate) async fn get_bytes(&self, url: &str) -> Result<Vec<u8>, Error> {
        let mut retries = 0;
        self.send(&mut retries, || self.http.get(url)).await
    }

    async fn send(
        &self,
        retries: &mut u32,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<Vec<u8>, Error> {
        let mut last = String::new();
        let options = &self.engine.options;
        // Set by a busy answer: how long it asked to wait.
        let mut asked: Option<Duration> = None;
        let mut busy_waited = Duration::ZERO;
        let mut attempt = 0;
        while attempt < options.max_attempts {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Cancelled);
            }
            match asked.take() {
                Some(wait) => {
                    *retries += 1;
                    busy_waited += wait;
                    self.unless_cancelled(tokio::time::sleep(wait)).await?;
                }
                None if attempt > 0 => {
                    *retries += 1;
                    self.unless_cancelled(tokio::time::sleep(self.backoff(attempt)))
                        .await?;
                }
                None => {}
            }
            attempt += 1;
            let sent = self
                .unless_cancelled(make().bearer_auth(&self.engine.creds.token).send())
                .await?;
            let resp = match sent {
                Ok(r) => r,
                Err(e) => {
                    last = e.to_string();
                    continue;
                }
            };
            let status = resp.status();
            if status.is_success() {
                match self.unless_cancelled(resp.bytes()).await? {
                    Ok(b) => return Ok(b.to_vec()),
                    Err(e) => {
                        last = e.to_string();
                        continue;
                    }
                }
            }
            if status.is_server_error() || status.as_u16() == 429 {
                last = format!("HTTP {status}");
                let busy = matches!(status.as_u16(), 429 | 503);
                if let Some(wait) = retry_after(&resp).filter(|_| busy) {
                    let wait = spread(wait);
                    // Waiting as told is not a failed attempt while the
                    // waits stay within `max_busy_wait`; past it the wait
                    // is still kept, and counts.
                    if busy_waited + wait <= options.max_busy_wait {
                        attempt -= 1;
                    }
                    asked = Some(wait);
                }
                continue;
            }
            return Err(refused(resp).await);
        }
        Err(Error::Network(format!(
            "gave up after {} attempts: {last}",
            options.max_attempts
        )))
    }

    /// Uploads every evidence file this device holds that the server does
    /// not hold whole, in pieces of `SyncOptions::evidence_piece` bytes,
    /// each resuming where the server's copy stops (so a file cut off by a
    /// dropped link is not sent again from the start). A file is marked
    /// uploaded only once the server answers that it holds it whole and
    /// matching its name. Run it after [`SyncClient::sync`]: the server
    /// takes only files a visit it holds refers to. A file the server will
    /// not take is reported and left for the next call.
    pub async fn upload_evidence(&self, store: &mut Store) -> Result<EvidenceReport, Error> {
        let mut report = EvidenceReport::default();
        for file in store.evidence_to_upload()? {
            // A photo detached from its check on this device is kept (it may
            // be attached again) but not sent: the server would refuse it.
            let referenced = store
                .visit(&file.visit_id)
                .ok()
                .and_then(|v| v.state().ok())
                .is_some_and(|s| s.refers_to(&file.hash));
            if !referenced {
                report.skipped += 1;
                continue;
            }
            match self.upload_one(store, &file, &mut report).await {
                Ok(()) => {
                    store.mark_evidence_uploaded(&file.visit_id, &file.hash)?;
                    report.uploaded += 1;
                }
                Err(Error::Refused {
                    status,
                    kind,
                    detail,
                }) => report.errors.push(EvidenceError {
                    visit_id: file.visit_id.to_string(),
                    hash: file.hash.to_string(),
                    status,
                    kind,
                    message: detail,
                }),
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// An evidence file of a visit, as the server holds it, checked here
    /// against its name: a copy that does not hash to it is refused
    /// ([`Error::Decode`]), so what is shown is what the inspector took.
    pub async fn download_evidence(
        &self,
        visit: &VisitId,
        hash: &kiemtra_core::EvidenceHash,
    ) -> Result<Vec<u8>, Error> {
        let url = format!(
            "{}/v1/visits/{visit}/evidence/{hash}",
            self.engine.creds.server
        );
        let mut retries = 0;
        let bytes = self.send(&mut retries, || self.http.get(&url)).await?;
        if kiemtra_store::evidence_hash(&bytes) != *hash {
            return Err(Error::Decode(format!(
                "the server's copy of evidence {hash} does not hash to its name"
            )));
        }
        Ok(bytes)
    }

    async fn upload_one(
        &self,
        store: &Store,
        file: &kiemtra_store::PendingEvidence,
        report: &mut EvidenceReport,
    ) -> Result<(), Error> {
        let url = format!(
            "{}/v1/visits/{}/evidence/{}",
            self.engine.creds.server, file.visit_id, file.hash
        );
        let status_url = format!("{url}/status");
        let answer = self
            .send(&mut report.retries, || self.http.get(&status_url))
            .await?;
        report.requests += 1;
        let mut held = parse_status(&answer)?;
        // One fresh start is allowed: the server discards a file whose
        // bytes did not match (damaged on the way), and a piece from byte 0
        // replaces an unfinished upload of another length.
        let mut restarted = false;
        while !held.complete {
            let piece = store
                .evidence_bytes(
                    &file.visit_id,
                    &file.hash,
                    held.received,
                    self.engine.options.evidence_piece,
                )?
                .ok_or_else(|| {
                    Error::Store(kiemtra_store::Error::Refused(format!(
                        "evidence {} is no longer held whole on this device",
                        file.hash
                    )))
                })?;
            let offset = held.received;
            let sent = self
                .send(&mut report.retries, || {
                    self.http
                        .put(&url)
                        .header("Content-Type", "application/octet-stream")
                        .header("Upload-Offset", offset)
                        .header("Upload-Length", file.length)
                        .body(piece.clone())
                })
                .await;
            report.requests += 1;
            let answer = match sent {
                Ok(a) => a,
                Err(Error::Refused { kind, .. })
                    if (kind == "evidence-mismatch" || kind == "evidence-length") && !restarted =>
                {
                    restarted = true;
                    held = kiemtra_store::EvidenceStatus {
                        length: file.length,
                        received: 0,
                        complete: false,
                    };
                    continue;
                }
                Err(e) => return Err(e),
            };
            report.bytes_sent += piece.len() as u64;
            let next = parse_status(&answer)?;
            if !next.complete && next.received <= held.received {
                return Err(Error::Decode(format!(
                    "the server's copy of evidence {} did not grow ({} bytes)",
                    file.hash, next.received
                )));
            }
            held = next;
        }
        Ok(())
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff(&self.engine.options, attempt)
    }

    /// Runs `step` (a request, its answer, a backoff) unless the cancel
    /// switch is set first: a cancelled call stops within
    /// [`CANCEL_POLL`] even while waiting on a slow link. A request cut off
    /// this way may have reached the server; every exchange of the
    /// protocol is safe to repeat, so the next sync sends it again.
    async fn unless_cancelled<T>(&self, step: impl Future<Output = T>) -> Result<T, Error> {
        let flag = &self.cancel;
        let watch = async {
            while !flag.load(Ordering::Relaxed) {
                tokio::time::sleep(CANCEL_POLL).await;
            }
        };
        tokio::select! {
            biased;
            () = watch => Err(Error::Cancelled),
            out = step => Ok(out),
        }
    }
}

/// How often a waiting request looks at its cancel switch.
pub const CANCEL_POLL: Duration = Duration::from_millis(20);

/// The server's listing of a visit it sent whole, as this store's summary
/// (`None` when it names an absence reason this build does not know, or no
/// heads: the document is then loaded at once instead).
fn listed_summary(
    id: &VisitId,
    l: &kiemtra_sync_protocol::Listing,
    heads: &[kiemtra_sync_protocol::Hash],
    now: String,
) -> Option<kiemtra_store::VisitSummary> {
    if heads.is_empty() {
        return None;
    }
    let mut absent_by_reason = std::collections::BTreeMap::new();
    for (reason, n) in &l.absent_by_reason {
        absent_by_reason.insert(kiemtra_core::AbsenceReason::parse(reason).ok()?, *n);
    }
    Some(kiemtra_store::VisitSummary {
        id: id.clone(),
        unit_code: l.unit_code.clone(),
        unit_name: l.unit_name.clone(),
        unit_kind: l.unit_kind.clone(),
        campaign: l.campaign.clone(),
        team: l.team.clone(),
        scheduled_on: l.scheduled_on.clone(),
        status: l.status.clone(),
        conflicts: l.conflicts,
        tally: kiemtra_core::Tally {
            payroll: l.payroll,
            present: l.present,
            late: l.late,
            absent: l.absent,
            unrecorded: l.unrecorded,
            absent_by_reason,
        },
        heads: heads.iter().map(|h| ChangeHash(*h)).collect(),
        updated_at: now,
    })
}

/// Applies one visit's answer; returns whether another round is needed.
/// Visits new to the device loaded in parallel at a time.
const LOAD_WINDOW: usize = 16;

/// What is worked out from a new visit's document on the loading thread:
/// its summary for the listing, and its changes by `(actor, seq)` to name
/// the changes each received signature covers.
struct Fresh {
    summary: Option<kiemtra_store::VisitSummary>,
    index: kiemtra_core::ChangeIndex,
}

impl Fresh {
    fn of(visit: &Visit) -> Self {
        Self {
            summary: kiemtra_store::VisitSummary::of(visit).ok(),
            index: visit.change_index().0,
        }
    }

    fn hashes(&self, ranges: &[(Vec<u8>, u64, u64)]) -> Option<Vec<ChangeHash>> {
        self.index.hashes(ranges)
    }
}

type Preloaded = kiemtra_core::Result<(Visit, Fresh)>;

fn apply_result(
    store: &mut Store,
    r: &kiemtra_sync_protocol::VisitResult,
    preloaded: Option<Preloaded>,
    report: &mut SyncReport,
) -> kiemtra_store::Result<bool> {
    let id = match VisitId::parse(&r.visit_id) {
        Ok(id) => id,
        Err(e) => {
            report.errors.push(VisitError {
                visit_id: r.visit_id.clone(),
                status: VisitStatus::Invalid,
                message: format!("server sent a bad visit id: {e}"),
            });
            return Ok(false);
        }
    };
    let server_heads: Vec<ChangeHash> = r.heads.iter().map(|h| ChangeHash(*h)).collect();
    match r.status {
        VisitStatus::Ok => {
            let held = store.summary(&id).is_ok();
            let mut fresh = None;
            // Stored as received, not loaded: its signatures are kept as
            // sent and checked against the document when it is opened.
            let mut unread = false;
            let listed = match (held, &r.listing) {
                (false, Some(l)) if !r.changes.is_empty() => {
                    listed_summary(&id, l, &r.heads, store.session().now().to_rfc3339())
                }
                _ => None,
            };
            let applied = if r.changes.is_empty() {
                Ok(())
            } else if held {
                store.apply_remote(&id, &r.changes).map(|_| ())
            } else if let Some(summary) = listed {
                unread = true;
                store.insert_unverified(&summary, &r.changes)
            } else {
                match preloaded {
                    Some(Ok((visit, f))) => {
                        let stored = match f.summary.clone() {
                            Some(summary) => store.insert_summarised(visit, &r.changes, summary),
                            None => store.insert_loaded(visit, &r.changes),
                        };
                        fresh = Some(f);
                        stored.map(|_| ())
                    }
                    Some(Err(e)) => Err(e.into()),
                    None => store.import_visit(&r.changes).map(|_| ()),
                }
            };
            match applied {
                Ok(()) => {
                    if !r.changes.is_empty() {
                        report.visits_downloaded += 1;
                    }
                    let received_at = store.session().now().to_rfc3339();
                    // An answer to an upload carries no signatures: nothing
                    // to record, and no need to open the document.
                    let visit = match r.signatures.is_empty() || fresh.is_some() || unread {
                        true => None,
                        false => Some(store.visit(&id)?),
                    };
                    let records: Vec<kiemtra_store::SignatureRecord> = r
                        .signatures
                        .iter()
                        .filter_map(|s| {
                            let ranges: Vec<(Vec<u8>, u64, u64)> = s
                                .ranges
                                .iter()
                                .map(|g| (g.actor.clone(), g.first, g.last))
                                .collect();
                            // Kept only when its ranges name changes the
                            // visit holds (checked when it is first opened,
                            // for a visit stored as received).
                            let names_held = match &fresh {
                                Some(f) => f.hashes(&ranges).is_some(),
                                None if unread => true,
                                None => visit
                                    .and_then(|v| v.hashes_in_ranges(&ranges, &[]))
                                    .is_some(),
                            };
                            names_held.then(|| kiemtra_store::SignatureRecord {
                                signer: s.signer.clone(),
                                ranges,
                                signature: s.signature.clone(),
                                received_at: received_at.clone(),
                            })
                        })
                        .collect();
                    if !records.is_empty() {
                        store.record_signatures(&id, &records)?;
                    }
                    store.set_confirmed_heads(&id, PEER, &server_heads)?;
                }
                // A visit stored as received was found damaged when this
                // answer opened it: the store removed it and reset the
                // cursor, and the next round downloads it again.
                Err(kiemtra_store::Error::Refetch { .. }) => {
                    report.refetched += 1;
                    return Ok(true);
                }
                Err(e) => report.errors.push(VisitError {
                    visit_id: r.visit_id.clone(),
                    status: VisitStatus::Invalid,
                    message: format!("could not apply the server's changes: {e}"),
                }),
            }
            Ok(false)
        }
        VisitStatus::Resend => {
            // The server lacks what we thought it had: confirm only the
            // server heads we know, so the next round sends the rest.
            let visit = match store.visit(&id) {
                Ok(v) => v,
                // Stored as received and damaged: removed, to be downloaded again.
                Err(kiemtra_store::Error::Refetch { .. }) => {
                    report.refetched += 1;
                    return Ok(true);
                }
                Err(e) => return Err(e),
            };
            let known: Vec<ChangeHash> = server_heads
                .into_iter()
                .filter(|h| visit.has_change(h))
                .collect();
            store.set_confirmed_heads(&id, PEER, &known)?;
            Ok(true)
        }
        VisitStatus::Deferred => Ok(true),
        status => {
            report.errors.push(VisitError {
                visit_id: r.visit_id.clone(),
                status,
                message: r.message.clone(),
            });
            Ok(false)
        }
    }
}
