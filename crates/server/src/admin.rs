//! The administration log on the server: stored entries replayed into the
//! directory, signed entries from administrators' desks checked and
//! appended, and the entries the server witnesses itself (enrollments,
//! codes issued on the server machine).

use crate::problem::Problem;
use crate::storage::ServerStore;
use kiemtra_admin::log::{parse_timestamp, timestamp};
use kiemtra_admin::{Act, Author, Directory, Entry, Head, Refusal};

/// Most entries one request may append.
pub const MAX_ENTRIES: usize = 1_000;
/// How far an administrator's clock may be from the server's.
pub const CLOCK_SKEW_SECS: i64 = 15 * 60;

/// The stored log, read and checked entry by entry.
pub fn read_log(store: &mut impl ServerStore) -> Result<Vec<Entry>, kiemtra_store::Error> {
    let mut out = Vec::new();
    for (seq, bytes) in store.admin_log(0)? {
        let e = Entry::from_bytes(&bytes).map_err(|e| {
            kiemtra_store::Error::Corrupt(format!("administration log entry {seq}: {e}"))
        })?;
        if e.seq != seq {
            return Err(kiemtra_store::Error::Corrupt(format!(
                "administration log entry {seq} says it is entry {}",
                e.seq
            )));
        }
        out.push(e);
    }
    Ok(out)
}

/// The directory the stored log builds; a log that does not replay is a
/// damaged database.
pub fn directory(store: &mut impl ServerStore) -> Result<Directory, Problem> {
    let entries = read_log(store).map_err(Problem::from)?;
    Directory::replay(&entries).map_err(|(seq, r)| {
        Problem::Internal(format!(
            "the stored administration log does not replay at entry {seq}: {r}"
        ))
    })
}

/// The last directory [`directory_cached`] replayed, by the log head it
/// stands at.
static DIRECTORY: std::sync::Mutex<Option<std::sync::Arc<Directory>>> = std::sync::Mutex::new(None);

/// The directory at the stored log's head, for pages and reports: replayed
/// once, then brought forward by the entries appended since. A head names
/// its whole chain (each entry the hash of the one before), so the copy
/// held is used only when the stored entry at its head still has its hash;
/// otherwise (another database, a restored one) the log is replayed whole.
/// Audits — verification, the device check, appends — replay the whole
/// log every time with [`directory`], so that an entry altered in the
/// database is found there.
pub fn directory_cached(
    store: &mut impl ServerStore,
) -> Result<std::sync::Arc<Directory>, Problem> {
    let held = DIRECTORY.lock().ok().and_then(|d| d.clone());
    if let Some(d) = held {
        let from = d.head.seq.saturating_sub(1);
        let stored = store.admin_log(from).map_err(Problem::from)?;
        let mut entries = Vec::with_capacity(stored.len());
        for (seq, bytes) in stored {
            let e = Entry::from_bytes(&bytes).map_err(|e| {
                Problem::from(kiemtra_store::Error::Corrupt(format!(
                    "administration log entry {seq}: {e}"
                )))
            })?;
            entries.push(e);
        }
        let same_head = match entries.first() {
            None => d.head.seq == 0,
            Some(first) => first.seq == d.head.seq && first.hash() == d.head.hash,
        };
        if same_head {
            if entries.len() <= 1 {
                return Ok(d);
            }
            let mut next = (*d).clone();
            let applied = entries[1..].iter().try_for_each(|e| next.apply(e));
            if applied.is_ok() {
                let next = std::sync::Arc::new(next);
                if let Ok(mut slot) = DIRECTORY.lock() {
                    *slot = Some(next.clone());
                }
                return Ok(next);
            }
        }
    }
    let d = std::sync::Arc::new(directory(store)?);
    if let Ok(mut slot) = DIRECTORY.lock() {
        *slot = Some(d.clone());
    }
    Ok(d)
}

fn refused(r: Refusal) -> Problem {
    match r {
        Refusal::Stale { .. } => Problem::Conflict("admin-log-moved", r.to_string()),
        Refusal::Forbidden(s) => Problem::Forbidden(s),
        Refusal::Unknown(s) | Refusal::Invalid(s) => Problem::BadRequest(s),
    }
}

/// Checks signed entries from an administrator's desk against the log and
/// appends them, all or none, with what they make the server do (codes
/// that can be redeemed, revocations).
pub fn append(store: &mut impl ServerStore, entries: &[Entry]) -> Result<Head, Problem> {
    if entries.is_empty() || entries.len() > MAX_ENTRIES {
        return Err(Problem::BadRequest(format!(
            "send 1 to {MAX_ENTRIES} entries"
        )));
    }
    let now = chrono::Utc::now();
    for e in entries {
        if !matches!(e.by, Author::Device { .. }) {
            return Err(Problem::Forbidden(
                "only the server writes entries of its own".into(),
            ));
        }
        let at = parse_timestamp(&e.at).ok_or_else(|| {
            Problem::BadRequest(format!("time {:?} is not RFC 3339 UTC to the second", e.at))
        })?;
        if (at - now).num_seconds().abs() > CLOCK_SKEW_SECS {
            return Err(Problem::BadRequest(format!(
                "entry {} is dated {}; the server's clock says {}: set the desk's clock",
                e.seq,
                e.at,
                timestamp(now)
            )));
        }
    }
    store
        .batch(|s| {
            s.lock_admin_log()?;
            let mut d = match directory(s) {
                Ok(d) => d,
                Err(p) => return Ok(Err(p)),
            };
            // Every entry is checked before anything is written, so a
            // refusal leaves the transaction empty.
            let mut states = Vec::with_capacity(entries.len());
            for e in entries {
                if let Err(r) = d.apply(e) {
                    return Ok(Err(refused(r)));
                }
                // An assignment's visit id must be new to the store too: a
                // phone's unplanned visit cannot be taken over, nor an
                // assignment squatted.
                if let Act::Assigned { visit_id, .. } = &e.act {
                    match s.summary(visit_id) {
                        Ok(_) => {
                            return Ok(Err(Problem::BadRequest(format!(
                                "a visit {visit_id} exists already; choose another id"
                            ))));
                        }
                        Err(kiemtra_store::Error::UnknownVisit(_)) => {}
                        Err(other) => return Err(other),
                    }
                }
                states.push(d.clone());
            }
            for (e, after) in entries.iter().zip(&states) {
                // The log is locked (or has one writer): a taken number is a
                // writer that ignored the lock, and undoes the whole batch.
                if !s.append_admin_entry(e.seq, &e.to_bytes())? {
                    return Err(kiemtra_store::Error::Corrupt(format!(
                        "administration log entry {} was written by another writer",
                        e.seq
                    )));
                }
                effects(s, after, e)?;
            }
            Ok(Ok(d.head.clone()))
        })
        .map_err(Problem::from)?
}

/// What an appended act makes the server do besides keeping it.
fn effects(s: &mut impl ServerStore, d: &Directory, e: &Entry) -> Result<(), kiemtra_store::Error> {
    match &e.act {
        Act::CodeIssued {
            code_hash,
            user_id,
            team_id,
            role,
            expires_at,
        } => {
            let hash = kiemtra_core::hex::decode(code_hash).unwrap_or_default();
            s.create_enrollment_code(
                &hash,
                user_id.as_str(),
                team_id.as_str(),
                role.key(),
                &e.at,
                expires_at,
            )?;
        }
        Act::DeviceRevoked { device_id } => revoke(s, device_id, &e.at)?,
        Act::Assigned { visit_id, .. } => create_visit(s, d, visit_id)?,
        Act::UserUpdated {
            user_id,
            active: false,
            ..
        } => {
            for dev in d.devices.values() {
                if &dev.user_id == user_id {
                    revoke(s, &dev.device_id, &e.at)?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Creates an assignment's visit: the unit as the directory has it, the
/// roster in force on the planned day, the campaign's template version;
/// authored by the server (its only change of the visit, checked by the
/// verification against the logged assignment), and fed to the team.
fn create_visit(
    s: &mut impl ServerStore,
    d: &Directory,
    visit_id: &kiemtra_core::VisitId,
) -> Result<(), kiemtra_store::Error> {
    let refused = |r: Refusal| kiemtra_store::Error::Corrupt(format!("the assignment: {r}"));
    let (new, template_id, version) = d.new_visit(visit_id).map_err(refused)?;
    let template = d.template(&template_id, version).map_err(refused)?;
    let session = s.session().clone();
    let visit = kiemtra_core::Visit::create(new, &template, &session)?;
    let bytes = visit.save();
    s.insert_loaded(visit, &bytes)?;
    Ok(())
}

fn revoke(s: &mut impl ServerStore, device_id: &str, at: &str) -> Result<(), kiemtra_store::Error> {
    match s.device(device_id)? {
        Some(d) if d.revoked_at.is_none() => s.revoke_device(device_id, at),
        _ => Ok(()),
    }
}

/// Appends an entry the server witnesses (an enrollment, a code issued on
/// the server machine). A refusal is returned, not stored.
pub fn witness(
    store: &mut impl ServerStore,
    act: Act,
    at: Option<String>,
) -> Result<Result<Head, Refusal>, Problem> {
    store
        .batch(|s| {
            s.lock_admin_log()?;
            let mut d = match directory(s) {
                Ok(d) => d,
                Err(p) => return Ok(Err(p)),
            };
            let at = at
                .clone()
                .unwrap_or_else(|| timestamp(chrono::Utc::now()))
                .max(d.head.at.clone());
            let e = Entry::next(&d.head, &at, Author::Server, act);
            if let Err(r) = d.apply(&e) {
                return Ok(Ok(Err(r)));
            }
            if !s.append_admin_entry(e.seq, &e.to_bytes())? {
                return Ok(Ok(Err(Refusal::Stale {
                    expected: "a free entry".into(),
                    found: format!("entry {} taken", e.seq),
                })));
            }
            Ok(Ok(Ok(d.head.clone())))
        })
        .map_err(Problem::from)?
}

/// Revokes a device from the server machine (a phone lost when no
/// administrator's desk is at hand), logged as the server's act so that the
/// log and the database agree. A device the log never enrolled (enrolled
/// before the log existed) is revoked in the database only; the answer says
/// so.
pub fn revoke_on_server_machine(
    store: &mut impl ServerStore,
    device_id: &str,
) -> Result<String, Problem> {
    if store.device(device_id)?.is_none() {
        return Err(Problem::NotFound(format!("no device {device_id}")));
    }
    let at = timestamp(chrono::Utc::now());
    let logged = witness(
        store,
        Act::DeviceRevoked {
            device_id: device_id.to_owned(),
        },
        Some(at.clone()),
    )?;
    store.revoke_device(device_id, &at)?;
    Ok(match logged {
        Ok(head) => format!(
            "revoked {device_id} (administration log entry {})",
            head.seq
        ),
        Err(r) => format!("revoked {device_id} in the database; not logged: {r}"),
    })
}

/// One problem found comparing the devices the database holds with the
/// devices the log enrolled.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
pub struct DeviceProblem {
    pub device_id: String,
    /// `not-in-log`, `key-differs`, `enrollment-time-differs`,
    /// `revocation-missing`, `identity-differs`.
    pub rule: &'static str,
    pub detail: String,
}

/// Every way the devices table differs from the log: a key swapped in the
/// database, a revocation removed, an enrollment backdated, a device added
/// by hand.
pub fn check_devices(d: &Directory, devices: &[kiemtra_store::DeviceRecord]) -> Vec<DeviceProblem> {
    let mut out = Vec::new();
    let p = |device_id: &str, rule, detail: String| DeviceProblem {
        device_id: device_id.to_owned(),
        rule,
        detail,
    };
    for row in devices {
        let Some(logged) = d.devices.get(&row.device_id) else {
            out.push(p(
                &row.device_id,
                "not-in-log",
                "the database holds a device no logged enrollment made".into(),
            ));
            continue;
        };
        if kiemtra_core::hex::encode(&row.public_key) != logged.public_key {
            out.push(p(
                &row.device_id,
                "key-differs",
                format!(
                    "the database holds key {}, the log enrolled key {}",
                    kiemtra_core::hex::encode(&row.public_key),
                    logged.public_key
                ),
            ));
        }
        if row.enrolled_at != logged.enrolled_at {
            out.push(p(
                &row.device_id,
                "enrollment-time-differs",
                format!(
                    "the database says enrolled at {}, the log at {}",
                    row.enrolled_at, logged.enrolled_at
                ),
            ));
        }
        if logged.revoked_at.is_some() && row.revoked_at.is_none() {
            out.push(p(
                &row.device_id,
                "revocation-missing",
                format!(
                    "the log revoked it at {}; the database holds it active",
                    logged.revoked_at.clone().unwrap_or_default()
                ),
            ));
        }
        if row.user_id != logged.user_id.as_str()
            || row.team != logged.team_id.as_str()
            || row.role != logged.role.key()
        {
            out.push(p(
                &row.device_id,
                "identity-differs",
                format!(
                    "the database says {} of {} as {}, the log {} of {} as {}",
                    row.user_id,
                    row.team,
                    row.role,
                    logged.user_id,
                    logged.team_id,
                    logged.role.key()
                ),
            ));
        }
    }
    out
}
