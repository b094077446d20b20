//! A hostile but enrolled device, through the real server: changes crafted
//! with Automerge's own low-level API (or edited after encoding), authored
//! and signed like the real client's so that only the crafted content is
//! wrong. Each must be refused for its visit (`invalid` or `denied`, never
//! `ok`), nothing of it may be stored, and afterwards the server must still
//! work: an honest sync goes through, `enroll-code` and `revoke` run against
//! the data folder while the server runs, `/healthz` answers, and an
//! enrollment answered after the attack survives a restart.
//!
//! Beside the cases, a property test sends valid changes mutated at random
//! (header, ops, keys, preds, kinds, values) for a stored visit and for new
//! visits' whole histories: every answer is a per-visit status or a 400
//! problem, a refusal stores nothing, the server keeps syncing honest
//! devices, and whatever it accepts passes the auditor's verification.
//! `KIEMTRA_MUTATION_SEED` and `KIEMTRA_MUTATION_CASES` replay or widen it;
//! `KIEMTRA_MUTATION_SHOW` prints what was offered and accepted.

use crate::harness::*;
use automerge::legacy::{ObjectId, OpId, OpType};
use automerge::transaction::{Transactable, Transaction};
use automerge::{
    ActorId, Author, Automerge, AutomergeError, ExpandedChange, ObjType, ROOT, ReadDoc, ScalarValue,
};
use kiemtra_core::*;
use kiemtra_sync_protocol::{
    Cursor, MEDIA_TYPE, SeqRange, Signature, SyncRequest, SyncResponse, VisitOffer, VisitStatus,
};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The visit every attack aims at, created by `a` (inspector of team-1).
const TARGET: &str = "v-1";
/// A visit of team-1 that only honest devices write, to show the server
/// still syncs after each attack.
const HONEST: &str = "v-honest";

// ----- the network -------------------------------------------------------

/// A server and the devices around it: `a` the hostile inspector of
/// team-1 (its key signs the crafted changes), `b` an honest inspector and
/// `s` the supervisor of the same team, `aud` an auditor, `z` an inspector
/// of team-2.
struct Net {
    dir: tempfile::TempDir,
    server: Option<ServerProcess>,
    data: PathBuf,
    url: String,
    a: Device,
    b: Device,
    s: Device,
    aud: Device,
    z: Device,
    round: u32,
    /// Enrollment codes issued before any attack, one used after each.
    spare_codes: Vec<String>,
}

impl Net {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let server = ServerProcess::start(&dir.path().join("server"));
        let (data, url) = (server.data.clone(), server.url());
        let d = |n: &str| dir.path().join(n);
        let mut a = Device::enroll(&data, &url, "insp-a", "team-1", "inspector", &d("a")).await;
        let mut b = Device::enroll(&data, &url, "insp-b", "team-1", "inspector", &d("b")).await;
        let mut s = Device::enroll(&data, &url, "sup-1", "team-1", "supervisor", &d("s")).await;
        let aud = Device::enroll(&data, &url, "audit-1", "team-1", "auditor", &d("aud")).await;
        let z = Device::enroll(&data, &url, "insp-z", "team-2", "inspector", &d("z")).await;
        a.store
            .create_visit(new_visit(TARGET, "team-1", 6), &template())
            .expect("create target");
        a.sync().await;
        b.store
            .create_visit(new_visit(HONEST, "team-1", 2), &template())
            .expect("create honest visit");
        b.sync().await;
        a.sync().await;
        s.sync().await;
        let spare_codes = enroll_codes(&data, "insp-late", "team-1", "inspector", 4);
        Self {
            dir,
            server: Some(server),
            data,
            url,
            a,
            b,
            s,
            aud,
            z,
            round: 0,
            spare_codes,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The target as `a` holds it (everything the server has, after a sync).
    fn base(&mut self) -> Vec<u8> {
        self.base_of(TARGET)
    }

    fn base_of(&mut self, id: &str) -> Vec<u8> {
        self.a.store.visit(&vid(id)).expect("visit").save()
    }

    /// Concurrent attendance marks for `s-002` by `a` and `b`: the server and
    /// `a` then hold a conflict on that slot.
    async fn conflict(&mut self, id: &str) {
        let id = vid(id);
        self.b.sync().await;
        self.a
            .store
            .edit(&id, |v| {
                v.record_attendance(&staff(2), AttendanceMark::Present, "", None)
            })
            .expect("a's mark");
        self.b
            .store
            .edit(&id, |v| {
                v.record_attendance(&staff(2), AttendanceMark::Late, "", None)
            })
            .expect("b's mark");
        self.a.sync().await;
        self.b.sync().await;
        self.a.sync().await;
        assert_eq!(
            self.a.state(&id).conflicts().len(),
            1,
            "a sees the conflict"
        );
    }

    /// The supervisor submits and approves the visit (with a signed
    /// approval); `a` receives it.
    async fn approved(&mut self, id: &str) {
        let id = vid(id);
        self.s.sync().await;
        self.s.store.edit(&id, |v| v.submit("")).expect("submit");
        let creds = self.s.client.credentials().clone();
        self.s
            .store
            .edit(&id, |v| {
                v.approve_signed("đạt", &|m| creds.sign_bytes(m).expect("sign"))
                    .map(|_| ())
            })
            .expect("approve");
        self.s.sync().await;
        self.a.sync().await;
        assert_eq!(
            self.a.state(&id).status(),
            kiemtra_core::VisitStatus::Approved
        );
        assert_eq!(self.a.state(&id).approvals.len(), 1);
    }

    /// `GET /v1/visits/{id}` as the honest inspector: the server's heads,
    /// or `None` for 404.
    async fn heads_of(&self, id: &str) -> Result<Option<Vec<String>>, String> {
        let resp = http()
            .get(format!("{}/v1/visits/{id}", self.url))
            .bearer_auth(&self.b.client.credentials().token)
            .send()
            .await
            .map_err(|e| format!("GET /v1/visits/{id}: {e}"))?;
        match resp.status() {
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            reqwest::StatusCode::OK => {
                let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
                let mut heads: Vec<String> = v["heads"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|h| h.as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
                heads.sort();
                Ok(Some(heads))
            }
            other => Err(format!("GET /v1/visits/{id}: HTTP {other}")),
        }
    }

    /// Visit ids listed by `GET /v1/visits` for a device's token.
    async fn listing(&self, token: &str) -> Result<Vec<String>, String> {
        let resp = http()
            .get(format!("{}/v1/visits", self.url))
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if resp.status() != reqwest::StatusCode::OK {
            return Err(format!("GET /v1/visits: HTTP {}", resp.status()));
        }
        let v: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
        Ok(v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s["id"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Sends `offers` as the device holding `token`, judges the answer for
    /// `target`, checks nothing of it was stored, then that the server still
    /// works (revoking `revoke` on the way). Returns what failed.
    async fn attack(
        &mut self,
        token: &str,
        revoke: &str,
        target: &str,
        offers: Vec<VisitOffer>,
        expect: Expect,
    ) -> Findings {
        let mut f = Findings::default();
        let before = self.heads_of(target).await;
        let answer = answer_for(post(&self.url, token, offers).await, target);
        eprintln!("{target}: answered {answer:?}");
        f.judge(&expect, &answer);
        let after = self.heads_of(target).await;
        f.check(before == after, || {
            format!("the server's heads of {target} changed: {before:?} → {after:?}")
        });
        self.still_works(&mut f, revoke).await;
        f
    }

    /// After an attack: `/healthz`, an honest round between `b` and `s`,
    /// `enroll-code` and `revoke` while the server runs, a new enrollment,
    /// and after a restart that enrollment and the revocation still hold.
    async fn still_works(&mut self, f: &mut Findings, revoke: &str) {
        match http().get(format!("{}/healthz", self.url)).send().await {
            Ok(r) if r.status() == reqwest::StatusCode::OK => {}
            Ok(r) => f.fail(format!("/healthz answered {}", r.status())),
            Err(e) => f.fail(format!("/healthz: {e}")),
        }
        self.honest_round(f).await;

        if let Err(e) = run_server_cli(
            &self.data,
            &[
                "enroll-code",
                "--user",
                "insp-late",
                "--team",
                "team-1",
                "--role",
                "inspector",
            ],
        ) {
            f.fail(format!("enroll-code while the server runs: {e}"));
        }
        // A code issued before the attack, used after it: answered 201.
        let code = self.spare_codes.pop().expect("a spare enrollment code");
        let late = match kiemtra_client::enroll(&self.url, &code, "phone of insp-late").await {
            Ok(creds) => Some(creds),
            Err(e) => {
                f.fail(format!("enrolling after the attack: {e}"));
                None
            }
        };
        if let Err(e) = run_server_cli(&self.data, &["revoke", revoke]) {
            f.fail(format!("revoke {revoke} while the server runs: {e}"));
        }
        self.restart();
        if let Some(creds) = late {
            match self.status_of_token(&creds.token).await {
                Ok(200) => {}
                other => f.fail(format!(
                    "the enrollment answered 201 after the attack is gone after a restart: \
                     GET /v1/visits with its token gave {other:?}"
                )),
            }
        }
        let revoked_token = [&self.a, &self.b, &self.s, &self.aud, &self.z]
            .into_iter()
            .find(|d| d.client.credentials().device_id == revoke)
            .map(|d| d.client.credentials().token.clone());
        if let Some(token) = revoked_token {
            match self.status_of_token(&token).await {
                Ok(401) => {}
                other => f.fail(format!(
                    "the revoked device {revoke} still authenticates after a restart: {other:?}"
                )),
            }
        }
        self.honest_round(f).await;
    }

    async fn status_of_token(&self, token: &str) -> Result<u16, String> {
        http()
            .get(format!("{}/v1/visits", self.url))
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .map_err(|e| e.to_string())
    }

    /// `b` writes the honest visit's narrative and syncs; `s` syncs and
    /// must see it.
    async fn honest_round(&mut self, f: &mut Findings) {
        self.round += 1;
        let text = format!("Vòng kiểm tra {} (round {})", self.round, self.round);
        let id = vid(HONEST);
        if let Err(e) = self.b.store.edit(&id, |v| v.set_narrative(&text)) {
            f.fail(format!("b's local edit: {e}"));
            return;
        }
        match self.b.client.sync(&mut self.b.store, &mut |_| {}).await {
            Ok(r) if r.errors.is_empty() => {}
            Ok(r) => f.fail(format!("honest sync of b: per-visit errors {:?}", r.errors)),
            Err(e) => f.fail(format!("honest sync of b failed: {e}")),
        }
        match self.s.client.sync(&mut self.s.store, &mut |_| {}).await {
            Ok(r) if r.errors.is_empty() => {}
            Ok(r) => f.fail(format!("honest sync of s: per-visit errors {:?}", r.errors)),
            Err(e) => f.fail(format!("honest sync of s failed: {e}")),
        }
        let seen = self
            .s
            .store
            .visit(&id)
            .ok()
            .and_then(|v| v.state().ok())
            .map(|s| s.narrative);
        f.check(seen.as_deref() == Some(text.as_str()), || {
            format!("b's honest change did not reach s: s sees {seen:?}, b wrote {text:?}")
        });
    }

    /// Stops the server (SIGTERM) and starts it again on the same folder.
    fn restart(&mut self) {
        if let Some(old) = self.server.take() {
            old.terminate();
        }
        let server = ServerProcess::start(&self.data);
        self.url = server.url();
        for d in [
            &mut self.a,
            &mut self.b,
            &mut self.s,
            &mut self.aud,
            &mut self.z,
        ] {
            d.repoint(&server.url());
        }
        self.server = Some(server);
    }
}

/// Runs `kiemtra-server --data DIR <args>`; stdout on success.
fn run_server_cli(data: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new(env!("CARGO_BIN_EXE_kiemtra-server"))
        .args(args)
        .arg("--data")
        .arg(data)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub(crate) fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("http client")
}

// ----- judging -----------------------------------------------------------

/// What the contract says a case gets.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Invalid,
    Denied,
    InvalidOrDenied,
}

/// One visit's answer, or why there was none (HTTP error, no result).
type Answer = Result<(VisitStatus, String), String>;

/// Everything that went wrong in one case, reported together so that one
/// run shows the whole picture (a refusal that came as a 500 *and* a wedge).
#[derive(Default)]
struct Findings(Vec<String>);

impl Findings {
    fn fail(&mut self, what: String) {
        self.0.push(what);
    }

    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.0.push(what());
        }
    }

    fn judge(&mut self, expect: &Expect, answer: &Answer) {
        match answer {
            Err(e) => self.fail(format!("expected {expect:?}, got no answer: {e}")),
            Ok((status, message)) => {
                let fits = match expect {
                    Expect::Invalid => *status == VisitStatus::Invalid,
                    Expect::Denied => *status == VisitStatus::Denied,
                    Expect::InvalidOrDenied => {
                        matches!(status, VisitStatus::Invalid | VisitStatus::Denied)
                    }
                };
                self.check(fits && !message.is_empty(), || {
                    format!("expected {expect:?} with a message, got {status:?} {message:?}")
                });
            }
        }
    }

    fn finish(self, case: &str) {
        assert!(self.0.is_empty(), "{case}:\n  - {}", self.0.join("\n  - "));
    }
}

/// POSTs one sync request; the decoded answer, or the HTTP failure.
async fn post(url: &str, token: &str, offers: Vec<VisitOffer>) -> Result<SyncResponse, String> {
    let request = SyncRequest {
        cursor: Cursor::default(),
        max_response: 0,
        visits: offers,
    };
    let resp = http()
        .post(format!("{url}/v1/sync"))
        .bearer_auth(token)
        .header("Content-Type", MEDIA_TYPE)
        .body(request.encode())
        .send()
        .await
        .map_err(|e| format!("no answer: {e}"))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| format!("reading: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
    }
    SyncResponse::decode(&body, usize::MAX).map_err(|e| format!("undecodable answer: {e}"))
}

fn answer_for(response: Result<SyncResponse, String>, id: &str) -> Answer {
    let response = response?;
    response
        .visits
        .into_iter()
        .find(|v| v.visit_id == id)
        .map(|r| (r.status, r.message))
        .ok_or_else(|| format!("the answer says nothing about {id}"))
}

// ----- crafting ------------------------------------------------------------

fn author_bytes(by: &Device) -> Vec<u8> {
    let c = by.client.credentials();
    format!("{}/{}", c.device_id, c.user_id).into_bytes()
}

/// `base` opened by a tampered copy of `by`'s app that writes with
/// Automerge directly: a fresh actor (a new session), `by`'s author field.
pub(crate) fn tampered(base: &[u8], by: &Device) -> Automerge {
    let mut doc = Automerge::load(base).expect("load base");
    doc.set_actor(ActorId::random());
    doc.set_author(Some(Author::from(author_bytes(by))));
    doc
}

/// Runs `f` as one transaction on `doc`; the change(s) it made.
pub(crate) fn write(
    doc: &mut Automerge,
    f: impl FnOnce(&mut Transaction<'_>) -> Result<(), AutomergeError>,
) -> Vec<Change> {
    let heads = doc.get_heads();
    doc.transact(f).map_err(|e| e.error).expect("transaction");
    doc.get_changes(&heads)
}

pub(crate) fn obj(doc: &Automerge, key: &str) -> automerge::ObjId {
    match doc.get(ROOT, key).expect("get") {
        Some((_, id)) => id,
        None => panic!("no {key} in the document"),
    }
}

fn scalar_str(doc: &Automerge, o: &automerge::ObjId, key: &str) -> String {
    match doc.get(o, key).expect("get") {
        Some((automerge::Value::Scalar(s), _)) => match s.as_ref() {
            ScalarValue::Str(s) => s.to_string(),
            other => panic!("{key} holds {other:?}"),
        },
        other => panic!("{key} holds {other:?}"),
    }
}

fn stamp_of(user: &str, device: &str) -> Stamp {
    Stamp {
        by: UserId::parse(user).expect("user"),
        device: DeviceId::parse(device).expect("device"),
        at: chrono::Utc::now(),
    }
}

fn stamp_by(d: &Device) -> Stamp {
    let c = d.client.credentials();
    stamp_of(&c.user_id, &c.device_id)
}

fn stamped_json<T: serde::Serialize>(value: T, stamp: Stamp) -> String {
    serde_json::to_string(&Stamped { value, stamp }).expect("json")
}

fn attendance(mark: AttendanceMark) -> Attendance {
    Attendance {
        mark,
        note: String::new(),
        observed_at: chrono::Utc::now(),
    }
}

/// One valid attendance change by `by` on top of `base`, the first change
/// of a fresh actor (so it carries the author field).
pub(crate) fn valid_mark(base: &[u8], by: &Device, who: usize) -> Change {
    let mut doc = tampered(base, by);
    let stamp = stamp_by(by);
    let att = obj(&doc, "attendance");
    let mut changes = write(&mut doc, |tx| {
        tx.put(
            &att,
            staff(who).as_str(),
            stamped_json(attendance(AttendanceMark::Present), stamp),
        )?;
        Ok(())
    });
    assert_eq!(changes.len(), 1);
    changes.remove(0)
}

/// `c` decoded, edited by `f` and encoded again (a new hash; the author
/// field, which lives in the extra bytes, is kept).
pub(crate) fn reshape(c: &Change, f: impl FnOnce(&mut ExpandedChange)) -> Change {
    let mut x = c.decode();
    f(&mut x);
    x.hash = None;
    Change::from(x)
}

fn bytes_of(changes: &[Change]) -> Vec<u8> {
    changes
        .iter()
        .flat_map(|c| c.raw_bytes().to_vec())
        .collect()
}

pub(crate) fn ranges_of(changes: &[&Change]) -> Vec<SeqRange> {
    seq_ranges_of(
        changes
            .iter()
            .map(|c| (c.actor_id().to_bytes().to_vec(), c.seq())),
    )
    .into_iter()
    .map(|(actor, first, last)| SeqRange { actor, first, last })
    .collect()
}

/// `by`'s signature over `changes` of visit `id`, as its client signs.
fn sign(by: &Device, id: &str, changes: &[&Change]) -> Signature {
    let creds = by.client.credentials();
    let hashes: Vec<ChangeHash> = changes.iter().map(|c| c.hash()).collect();
    Signature {
        signer: creds.device_id.clone(),
        ranges: ranges_of(changes),
        signature: creds.sign(id, &hashes).expect("sign"),
    }
}

/// The heads after applying `changes` (given in causal order) on `base_heads`.
fn heads_with(base_heads: &[ChangeHash], changes: &[Change]) -> Vec<ChangeHash> {
    let deps: std::collections::HashSet<ChangeHash> = changes
        .iter()
        .flat_map(|c| c.deps().iter().copied())
        .collect();
    let mut heads: Vec<ChangeHash> = base_heads
        .iter()
        .chain(changes.iter().map(|c| c.hash()).collect::<Vec<_>>().iter())
        .copied()
        .filter(|h| !deps.contains(h))
        .collect();
    heads.sort();
    heads.dedup();
    heads
}

fn heads_of_doc(base: &[u8]) -> Vec<ChangeHash> {
    Automerge::load(base).expect("load").get_heads()
}

/// An offer of `changes` on top of `base`, signed by `by`, as the real
/// client sends it after a confirmation of `base`'s heads.
fn signed_offer(by: &Device, id: &str, base: &[u8], changes: &[Change]) -> VisitOffer {
    let base_heads = heads_of_doc(base);
    let refs: Vec<&Change> = changes.iter().collect();
    VisitOffer {
        visit_id: id.to_owned(),
        heads: heads_with(&base_heads, changes)
            .iter()
            .map(|h| h.0)
            .collect(),
        confirmed: Some(base_heads.iter().map(|h| h.0).collect()),
        changes: bytes_of(changes),
        signatures: vec![sign(by, id, &refs)],
        implied: false,
    }
}

/// The usual run of a case: `a` sends `changes` on top of `base`, signed.
async fn by_a(net: &mut Net, case: &str, base: &[u8], changes: Vec<Change>, expect: Expect) {
    let offer = signed_offer(&net.a, TARGET, base, &changes);
    let token = net.a.client.credentials().token.clone();
    let revoke = net.a.client.credentials().device_id.clone();
    net.attack(&token, &revoke, TARGET, vec![offer], expect)
        .await
        .finish(case);
}

// ----- 1. structure --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_new_actor_starting_at_seq_2_is_invalid() {
    let mut net = Net::new().await;
    let base = net.base();
    let c = reshape(&valid_mark(&base, &net.a, 1), |x| x.seq = 2);
    by_a(
        &mut net,
        "new actor at seq 2",
        &base,
        vec![c],
        Expect::Invalid,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_gap_in_an_actors_seq_is_invalid() {
    let mut net = Net::new().await;
    let base = net.base();
    // Seq 1 of a fresh actor, accepted.
    let mut doc = tampered(&base, &net.a);
    let stamp = stamp_by(&net.a);
    let att = obj(&doc, "attendance");
    let first = write(&mut doc, |tx| {
        tx.put(
            &att,
            staff(1).as_str(),
            stamped_json(attendance(AttendanceMark::Present), stamp.clone()),
        )?;
        Ok(())
    });
    let (status, message) = answer_for(
        post(
            &net.url,
            &net.a.client.credentials().token,
            vec![signed_offer(&net.a, TARGET, &base, &first)],
        )
        .await,
        TARGET,
    )
    .expect("seq 1 answered");
    assert_eq!(status, VisitStatus::Ok, "seq 1 accepted: {message}");
    net.a.sync().await;
    // Then its seq 2, sent as seq 3.
    let base = net.base();
    let second = write(&mut doc, |tx| {
        tx.put(
            &att,
            staff(3).as_str(),
            stamped_json(attendance(AttendanceMark::Present), stamp),
        )?;
        Ok(())
    });
    let gap = reshape(&second[0], |x| x.seq = 3);
    by_a(&mut net, "seq gap", &base, vec![gap], Expect::Invalid).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_op_on_a_missing_object_is_invalid() {
    let mut net = Net::new().await;
    let base = net.base();
    let c = valid_mark(&base, &net.a, 1);
    let actor = c.actor_id().clone();
    let c = reshape(&c, |x| {
        x.operations[0].obj = ObjectId::Id(OpId::new(999_999, &actor));
    });
    by_a(
        &mut net,
        "op on a missing object",
        &base,
        vec![c],
        Expect::Invalid,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pred_naming_a_missing_op_is_invalid() {
    let mut net = Net::new().await;
    let base = net.base();
    let c = valid_mark(&base, &net.a, 1);
    let other = ActorId::random();
    let c = reshape(&c, |x| {
        x.operations[0].pred = vec![OpId::new(999_999, &other)].into();
    });
    by_a(
        &mut net,
        "pred naming a missing op",
        &base,
        vec![c],
        Expect::Invalid,
    )
    .await;
}

/// A whole document (the visit as stored) with a broken change after it,
/// under the implied flag: the server reads heads off it by loading it.
fn implied_document(net: &mut Net) -> (Vec<u8>, Change) {
    let base = net.base();
    let c = valid_mark(&base, &net.a, 1);
    let actor = c.actor_id().clone();
    let broken = reshape(&c, |x| {
        x.operations[0].obj = ObjectId::Id(OpId::new(999_999, &actor));
    });
    let mut bytes = base;
    bytes.extend_from_slice(broken.raw_bytes());
    (bytes, broken)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_implied_whole_document_from_an_inspector_is_invalid() {
    let mut net = Net::new().await;
    let (bytes, broken) = implied_document(&mut net);
    let offer = VisitOffer {
        visit_id: TARGET.into(),
        heads: Vec::new(),
        confirmed: None,
        changes: bytes,
        signatures: vec![sign(&net.a, TARGET, &[&broken])],
        implied: true,
    };
    let token = net.a.client.credentials().token.clone();
    let revoke = net.a.client.credentials().device_id.clone();
    net.attack(&token, &revoke, TARGET, vec![offer], Expect::Invalid)
        .await
        .finish("implied whole document, inspector");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_implied_whole_document_from_an_unsigned_auditor_is_refused() {
    let mut net = Net::new().await;
    let (bytes, _) = implied_document(&mut net);
    let offer = VisitOffer {
        visit_id: TARGET.into(),
        heads: Vec::new(),
        confirmed: None,
        changes: bytes,
        signatures: Vec::new(),
        implied: true,
    };
    let token = net.aud.client.credentials().token.clone();
    let revoke = net.aud.client.credentials().device_id.clone();
    net.attack(
        &token,
        &revoke,
        TARGET,
        vec![offer],
        Expect::InvalidOrDenied,
    )
    .await
    .finish("implied whole document, auditor without a signature");
}

/// A visit new to the server whose history holds a broken change: the
/// server loads new visits whole, before any other check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_new_visit_with_a_broken_change_is_invalid_and_stays_unknown() {
    let mut net = Net::new().await;
    let id = "v-new";
    let session = net.a.store.session().clone();
    let fresh = Visit::create(new_visit(id, "team-1", 3), &template(), &session).expect("create");
    let base = fresh.save();
    let created = fresh.automerge().get_changes(&[]);
    let c = valid_mark(&base, &net.a, 1);
    let actor = c.actor_id().clone();
    let broken = reshape(&c, |x| {
        x.operations[0].obj = ObjectId::Id(OpId::new(999_999, &actor));
    });
    let mut all = created;
    all.push(broken);
    let refs: Vec<&Change> = all.iter().collect();
    let mut bytes = base;
    bytes.extend_from_slice(all[all.len() - 1].raw_bytes());
    let offer = VisitOffer {
        visit_id: id.into(),
        heads: vec![all[all.len() - 1].hash().0],
        confirmed: None,
        changes: bytes,
        signatures: vec![sign(&net.a, id, &refs)],
        implied: false,
    };
    let token = net.a.client.credentials().token.clone();
    let revoke = net.a.client.credentials().device_id.clone();
    net.attack(&token, &revoke, id, vec![offer], Expect::Invalid)
        .await
        .finish("new visit with a broken change");
}

// ----- 2. role and schema (an inspector of the visit's own team) -----------

/// One forged write: what it is called, what it needs first, and the
/// tampered transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgery {
    MetaTeam,
    SettleByDelete,
    SettleByDeleteThenPut,
    SettleByReput,
    ApprovedToSubmitted,
    ApprovedToDraft,
    ApprovalsReplaced,
    ApprovalsKeyDeleted,
    ApprovalDeleted,
    ApprovalCopiedIntoNewMap,
    StampNamesOtherUser,
    StampNamesOtherDevice,
}

impl Forgery {
    /// The writes a server without the acceptance rule stores (it refuses
    /// deleting the approvals key or one approval), kept in the
    /// forged-history fixture.
    /// The team rewrite comes last: after it the visit is another team's
    /// and every later sync of team-1 would report it.
    pub const IN_HISTORY: [Forgery; 10] = [
        Forgery::SettleByDelete,
        Forgery::SettleByDeleteThenPut,
        Forgery::SettleByReput,
        Forgery::ApprovedToSubmitted,
        Forgery::ApprovedToDraft,
        Forgery::ApprovalsReplaced,
        Forgery::ApprovalCopiedIntoNewMap,
        Forgery::StampNamesOtherUser,
        Forgery::StampNamesOtherDevice,
        Forgery::MetaTeam,
    ];

    fn name(self) -> &'static str {
        match self {
            Forgery::MetaTeam => "meta-team",
            Forgery::SettleByDelete => "settle-by-delete",
            Forgery::SettleByDeleteThenPut => "settle-by-delete-then-put",
            Forgery::SettleByReput => "settle-by-reput",
            Forgery::ApprovedToSubmitted => "approved-to-submitted",
            Forgery::ApprovedToDraft => "approved-to-draft",
            Forgery::ApprovalsReplaced => "approvals-replaced",
            Forgery::ApprovalsKeyDeleted => "approvals-key-deleted",
            Forgery::ApprovalDeleted => "approval-deleted",
            Forgery::ApprovalCopiedIntoNewMap => "approval-copied-into-new-map",
            Forgery::StampNamesOtherUser => "stamp-names-other-user",
            Forgery::StampNamesOtherDevice => "stamp-names-other-device",
        }
    }

    /// A schema violation (a path written once, a stamp naming someone
    /// else) is `invalid`; settling a conflict is a supervisor's operation
    /// (`denied`); for the life cycle and the approvals map either fits.
    fn expect(self) -> Expect {
        match self {
            Forgery::MetaTeam | Forgery::StampNamesOtherUser | Forgery::StampNamesOtherDevice => {
                Expect::Invalid
            }
            Forgery::SettleByDelete | Forgery::SettleByDeleteThenPut => Expect::Denied,
            // Automerge writes a re-put of the shown string as a delete of
            // the other candidate alone: refused as not superseding what
            // its author saw.
            Forgery::SettleByReput => Expect::InvalidOrDenied,
            _ => Expect::InvalidOrDenied,
        }
    }

    fn needs_conflict(self) -> bool {
        matches!(
            self,
            Forgery::SettleByDelete | Forgery::SettleByDeleteThenPut | Forgery::SettleByReput
        )
    }

    fn needs_approval(self) -> bool {
        matches!(
            self,
            Forgery::ApprovedToSubmitted
                | Forgery::ApprovedToDraft
                | Forgery::ApprovalsReplaced
                | Forgery::ApprovalsKeyDeleted
                | Forgery::ApprovalDeleted
                | Forgery::ApprovalCopiedIntoNewMap
        )
    }

    /// The tampered change, written by `a` on top of `base`.
    fn craft(self, base: &[u8], a: &Device, b: &Device) -> Vec<Change> {
        let mut doc = tampered(base, a);
        let stamp = stamp_by(a);
        let slot = staff(2);
        let slot = slot.as_str();
        let changes = match self {
            Forgery::MetaTeam => {
                let mut meta: serde_json::Value =
                    serde_json::from_str(&scalar_str(&doc, &ROOT, "meta")).expect("meta json");
                meta["team"] = "team-2".into();
                let meta = meta.to_string();
                write(&mut doc, |tx| {
                    tx.put(ROOT, "meta", meta)?;
                    Ok(())
                })
            }
            Forgery::SettleByDelete => {
                let att = obj(&doc, "attendance");
                write(&mut doc, |tx| tx.delete(&att, slot))
            }
            Forgery::SettleByDeleteThenPut => {
                let att = obj(&doc, "attendance");
                let value = stamped_json(attendance(AttendanceMark::Present), stamp);
                write(&mut doc, |tx| {
                    tx.delete(&att, slot)?;
                    tx.put(&att, slot, value)
                })
            }
            Forgery::SettleByReput => {
                let att = obj(&doc, "attendance");
                let shown = scalar_str(&doc, &att, slot);
                write(&mut doc, |tx| tx.put(&att, slot, shown))
            }
            Forgery::ApprovedToSubmitted | Forgery::ApprovedToDraft => {
                let status = if self == Forgery::ApprovedToDraft {
                    kiemtra_core::VisitStatus::Draft
                } else {
                    kiemtra_core::VisitStatus::Submitted
                };
                let value = stamped_json(
                    StatusEntry {
                        status,
                        note: String::new(),
                    },
                    stamp,
                );
                write(&mut doc, |tx| tx.put(ROOT, "status", value))
            }
            Forgery::ApprovalsReplaced => write(&mut doc, |tx| {
                tx.put_object(ROOT, "approvals", ObjType::Map)?;
                Ok(())
            }),
            Forgery::ApprovalsKeyDeleted => write(&mut doc, |tx| tx.delete(ROOT, "approvals")),
            Forgery::ApprovalDeleted => {
                let approvals = obj(&doc, "approvals");
                let key = doc.keys(&approvals).next().expect("an approval");
                write(&mut doc, |tx| tx.delete(&approvals, key.as_str()))
            }
            Forgery::ApprovalCopiedIntoNewMap => {
                let approvals = obj(&doc, "approvals");
                let key = doc.keys(&approvals).next().expect("an approval");
                let record = scalar_str(&doc, &approvals, &key);
                write(&mut doc, |tx| {
                    let fresh = tx.put_object(ROOT, "approvals", ObjType::Map)?;
                    tx.put(&fresh, key.as_str(), record)
                })
            }
            Forgery::StampNamesOtherUser | Forgery::StampNamesOtherDevice => {
                let (ac, bc) = (a.client.credentials(), b.client.credentials());
                let stamp = if self == Forgery::StampNamesOtherUser {
                    stamp_of(&bc.user_id, &ac.device_id)
                } else {
                    stamp_of(&ac.user_id, &bc.device_id)
                };
                let att = obj(&doc, "attendance");
                let value = stamped_json(attendance(AttendanceMark::Present), stamp);
                write(&mut doc, |tx| tx.put(&att, staff(4).as_str(), value))
            }
        };
        assert_eq!(changes.len(), 1, "{}: one change", self.name());
        changes
    }
}

async fn forged(forgery: Forgery) {
    let mut net = Net::new().await;
    if forgery.needs_conflict() {
        net.conflict(TARGET).await;
    }
    if forgery.needs_approval() {
        net.approved(TARGET).await;
    }
    let base = net.base();
    let changes = forgery.craft(&base, &net.a, &net.b);
    let offer = signed_offer(&net.a, TARGET, &base, &changes);
    let token = net.a.client.credentials().token.clone();
    let revoke = net.a.client.credentials().device_id.clone();
    let b_token = net.b.client.credentials().token.clone();
    let z_token = net.z.client.credentials().token.clone();
    let mut f = Findings::default();
    let before = net.heads_of(TARGET).await;
    let answer = answer_for(post(&net.url, &token, vec![offer]).await, TARGET);
    eprintln!("{}: answered {answer:?}", forgery.name());
    f.judge(&forgery.expect(), &answer);
    let after = net.heads_of(TARGET).await;
    f.check(before == after, || {
        format!("the server's heads of {TARGET} changed: {before:?} → {after:?}")
    });
    if forgery == Forgery::MetaTeam {
        let own = net.listing(&b_token).await;
        let other = net.listing(&z_token).await;
        f.check(
            own.as_ref().is_ok_and(|l| l.iter().any(|v| v == TARGET)),
            || format!("the visit vanished from its team's listing: {own:?}"),
        );
        f.check(
            other.as_ref().is_ok_and(|l| l.iter().all(|v| v != TARGET)),
            || format!("the visit appears in team-2's listing: {other:?}"),
        );
    }
    net.still_works(&mut f, &revoke).await;
    f.finish(forgery.name());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_rewrites_meta_team() {
    forged(Forgery::MetaTeam).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_settles_a_conflict_by_delete() {
    forged(Forgery::SettleByDelete).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_settles_a_conflict_by_delete_then_put() {
    forged(Forgery::SettleByDeleteThenPut).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_settles_a_conflict_by_reputting_the_value_shown() {
    forged(Forgery::SettleByReput).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_moves_approved_back_to_submitted() {
    forged(Forgery::ApprovedToSubmitted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_moves_approved_back_to_draft() {
    forged(Forgery::ApprovedToDraft).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_replaces_the_approvals_map() {
    forged(Forgery::ApprovalsReplaced).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_deletes_the_approvals_key() {
    forged(Forgery::ApprovalsKeyDeleted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_deletes_an_approval() {
    forged(Forgery::ApprovalDeleted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_copies_a_signed_approval_into_a_new_map() {
    forged(Forgery::ApprovalCopiedIntoNewMap).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_stamps_another_user() {
    forged(Forgery::StampNamesOtherUser).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inspector_stamps_another_device() {
    forged(Forgery::StampNamesOtherDevice).await;
}

// ----- 3. cost -------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_4096_copies_of_one_signature_are_invalid() {
    let mut net = Net::new().await;
    let base = net.base();
    let c = valid_mark(&base, &net.a, 1);
    let mut offer = signed_offer(&net.a, TARGET, &base, &[c]);
    let one = offer.signatures[0].clone();
    offer.signatures = vec![one; 4096];
    let token = net.a.client.credentials().token.clone();
    let revoke = net.a.client.credentials().device_id.clone();
    net.attack(&token, &revoke, TARGET, vec![offer], Expect::Invalid)
        .await
        .finish("4,096 copies of one signature");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_4095_junk_signatures_on_an_old_change_are_invalid() {
    let mut net = Net::new().await;
    let base = net.base();
    let old = Automerge::load(&base).expect("load").get_changes(&[])[0].clone();
    let c = valid_mark(&base, &net.a, 1);
    let mut offer = signed_offer(&net.a, TARGET, &base, &[c]);
    let junk = Signature {
        signer: net.a.client.credentials().device_id.clone(),
        ranges: ranges_of(&[&old]),
        signature: vec![0x5a; 64],
    };
    offer.signatures.extend(std::iter::repeat_n(junk, 4095));
    let token = net.a.client.credentials().token.clone();
    let revoke = net.a.client.credentials().device_id.clone();
    net.attack(&token, &revoke, TARGET, vec![offer], Expect::Invalid)
        .await
        .finish("4,095 junk signatures naming an old change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_ten_million_character_narrative_is_invalid() {
    let mut net = Net::new().await;
    let base = net.base();
    const { assert!(MAX_NARRATIVE < 10_000_000) };
    // One small splice, then its inserted text replaced by 10 million
    // characters in the encoded change (a few kilobytes compressed).
    let mut doc = tampered(&base, &net.a);
    let text = obj(&doc, "narrative");
    let small = write(&mut doc, |tx| tx.splice_text(&text, 0, 0, "x"));
    let long = "a".repeat(10_000_000);
    let huge = reshape(&small[0], |x| {
        for op in &mut x.operations {
            if let OpType::Put(ScalarValue::Str(_)) = &op.action {
                op.action = OpType::Put(ScalarValue::Str(long.as_str().into()));
            }
        }
    });
    // What a reader of the document then sees: 10 million characters.
    let mut probe = Automerge::load(&base).expect("load");
    probe
        .apply_changes([huge.clone()])
        .expect("the change applies");
    assert_eq!(probe.text(&text).expect("text").chars().count(), 10_000_000);
    drop(probe);
    let mut offer = signed_offer(&net.a, TARGET, &base, std::slice::from_ref(&huge));
    // Sent as the client sends changes: compressed.
    let mut compressed = huge.clone();
    offer.changes = compressed.bytes().to_vec();
    assert!(
        offer.changes.len() < 100_000,
        "a small request: {} bytes",
        offer.changes.len()
    );
    let token = net.a.client.credentials().token.clone();
    let revoke = net.a.client.credentials().device_id.clone();
    net.attack(&token, &revoke, TARGET, vec![offer], Expect::Invalid)
        .await
        .finish("10-million-character narrative");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_signature_naming_a_colleagues_change_is_invalid_and_not_forwarded() {
    let mut net = Net::new().await;
    let id = vid(TARGET);
    // b's honest change, stored.
    net.b.sync().await;
    net.b
        .store
        .edit(&id, |v| {
            v.record_attendance(&staff(5), AttendanceMark::Late, "", None)
        })
        .expect("b's mark");
    net.b.sync().await;
    net.a.sync().await;
    let base = net.base();
    let held = Automerge::load(&base).expect("load");
    let b_author = author_bytes(&net.b);
    let b_change = held
        .get_changes(&[])
        .into_iter()
        .rev()
        .find(|c| {
            c.author()
                .is_some_and(|au| au.as_bytes() == b_author.as_slice())
        })
        .expect("b's change");
    let c = valid_mark(&base, &net.a, 1);
    let mut offer = signed_offer(&net.a, TARGET, &base, std::slice::from_ref(&c));
    // a's batch also names b's change (the hashes signed include it).
    offer.signatures = vec![sign(&net.a, TARGET, &[&c, &b_change])];
    let token = net.a.client.credentials().token.clone();
    let revoke = net.a.client.credentials().device_id.clone();
    let a_device = net.a.client.credentials().device_id.clone();
    let mut f = Findings::default();
    let before = net.heads_of(TARGET).await;
    let answer = answer_for(post(&net.url, &token, vec![offer]).await, TARGET);
    f.judge(&Expect::Invalid, &answer);
    let after = net.heads_of(TARGET).await;
    f.check(before == after, || {
        format!("the server's heads of {TARGET} changed: {before:?} → {after:?}")
    });
    // A new device of the team receives the visit: no signature by a may
    // cover b's change.
    let url = net.url.clone();
    let mut fresh = Device::enroll(
        &net.data,
        &url,
        "insp-new",
        "team-1",
        "inspector",
        &net.path("fresh"),
    )
    .await;
    fresh.sync().await;
    let visit = fresh.store.visit(&id).expect("visit");
    let ids = visit
        .change_ids(&[b_change.hash()])
        .expect("b's change held");
    let sigs = fresh.store.signatures_covering(&id, &ids).expect("sigs");
    f.check(sigs.iter().all(|s| s.signer != a_device), || {
        format!(
            "a's signature naming b's change was kept and forwarded ({} signatures cover it)",
            sigs.len()
        )
    });
    net.still_works(&mut f, &revoke).await;
    f.finish("a signature naming a colleague's change");
}

// ----- 4. no existence oracle ---------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_another_team_cannot_tell_an_existing_visit_from_an_unknown_one() {
    let mut net = Net::new().await;
    let base = net.base();
    let heads = heads_of_doc(&base);
    let token = net.z.client.credentials().token.clone();
    let unknown = "v-404";
    let mut f = Findings::default();
    // (a) heads only.
    let heads_only = |id: &str| VisitOffer {
        visit_id: id.into(),
        heads: heads.iter().map(|h| h.0).collect(),
        confirmed: None,
        changes: Vec::new(),
        signatures: Vec::new(),
        implied: false,
    };
    let existing = answer_for(
        post(&net.url, &token, vec![heads_only(TARGET)]).await,
        TARGET,
    );
    let missing = answer_for(
        post(&net.url, &token, vec![heads_only(unknown)]).await,
        unknown,
    );
    f.check(
        missing == Ok((VisitStatus::Unknown, "no such visit".into())),
        || format!("an unknown visit, heads only: {missing:?}"),
    );
    f.check(existing == missing, || {
        format!("heads only: team-1's visit answers {existing:?}, an unknown one {missing:?}")
    });
    // (b) changes: the same bytes for both ids, each signed for its id.
    let c = valid_mark(&base, &net.z, 1);
    let with_changes = |id: &str| VisitOffer {
        visit_id: id.into(),
        heads: vec![c.hash().0],
        confirmed: None,
        changes: c.raw_bytes().to_vec(),
        signatures: vec![sign(&net.z, id, &[&c])],
        implied: false,
    };
    let existing = answer_for(
        post(&net.url, &token, vec![with_changes(TARGET)]).await,
        TARGET,
    );
    let missing = answer_for(
        post(&net.url, &token, vec![with_changes(unknown)]).await,
        unknown,
    );
    f.check(existing.is_ok() && existing == missing, || {
        format!("with changes: team-1's visit answers {existing:?}, an unknown one {missing:?}")
    });
    f.check(net.heads_of(unknown).await == Ok(None), || {
        "the unknown visit was created".to_owned()
    });
    let revoke = net.z.client.credentials().device_id.clone();
    net.still_works(&mut f, &revoke).await;
    f.finish("existence oracle");
}

// ----- verification over stored history -------------------------------------

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/e2e/fixtures/forged-history")
}

/// Writes `tests/e2e/fixtures/forged-history/`: a server data folder in
/// which every forged write is stored (as a server without the acceptance
/// rule, e.g. f8505dd, stores them), one visit per write, and
/// `expected.json` naming each visit's offending change. Regenerated
/// against such a build:
/// `cargo test -p kiemtra-server --test e2e generate_forged_history -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes the forged-history fixture; run by hand against a build that accepts the writes"]
async fn generate_forged_history_fixture() {
    let mut net = Net::new().await;
    let mut expected = serde_json::Map::new();
    for forgery in Forgery::IN_HISTORY {
        let id = format!("v-{}", forgery.name());
        net.a
            .store
            .create_visit(new_visit(&id, "team-1", 6), &template())
            .expect("create");
        net.a.sync().await;
        net.b.sync().await;
        net.s.sync().await;
        if forgery.needs_conflict() {
            net.conflict(&id).await;
        }
        if forgery.needs_approval() {
            net.approved(&id).await;
        }
        let base = net.base_of(&id);
        let changes = forgery.craft(&base, &net.a, &net.b);
        let offer = signed_offer(&net.a, &id, &base, &changes);
        let answer = answer_for(
            post(&net.url, &net.a.client.credentials().token, vec![offer]).await,
            &id,
        );
        match answer {
            Ok((VisitStatus::Ok, _)) => {
                expected.insert(
                    id.clone(),
                    serde_json::json!({
                        "case": forgery.name(),
                        "change": changes[0].hash().to_string(),
                    }),
                );
            }
            other => panic!(
                "{}: this build refused the write ({other:?}); the fixture needs it stored",
                forgery.name()
            ),
        }
    }
    let data = net.data.clone();
    if let Some(server) = net.server.take() {
        let status = server.terminate();
        assert!(status.success(), "clean shutdown: {status}");
    }
    // A clean shutdown checkpoints the WAL: the database file alone is whole.
    let out = fixture_dir();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("fixture dir");
    for entry in std::fs::read_dir(&data).expect("data dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with("-wal") || name.ends_with("-shm") {
            let len = entry.metadata().expect("meta").len();
            assert_eq!(len, 0, "{name} is not empty after a clean shutdown");
            continue;
        }
        if entry.file_type().expect("type").is_file() {
            std::fs::copy(entry.path(), out.join(&name)).expect("copy");
        }
    }
    std::fs::write(
        out.join("expected.json"),
        serde_json::to_string_pretty(&serde_json::Value::Object(expected)).expect("json"),
    )
    .expect("expected.json");
}

/// The auditor's verification flags, in stored history, every forged
/// write with rule `refused-change` and the offending change as subject.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_verification_flags_every_forged_write_in_stored_history() {
    let dir = tempfile::tempdir().expect("dir");
    let data = dir.path().join("server");
    std::fs::create_dir_all(&data).expect("data dir");
    let fixture = fixture_dir();
    for entry in std::fs::read_dir(&fixture).expect("fixture") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), data.join(entry.file_name())).expect("copy fixture");
    }
    let expected: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(fixture.join("expected.json")).expect("expected.json"),
    )
    .expect("expected json");
    assert_eq!(
        expected.len(),
        Forgery::IN_HISTORY.len(),
        "one visit per forged write"
    );
    let code = enroll_codes(&data, "audit-9", "team-1", "auditor", 1).remove(0);
    let server = ServerProcess::start(&data);
    let auditor =
        Device::enroll_with_code(&server.url(), &code, "audit-9", &dir.path().join("aud")).await;
    let mut f = Findings::default();
    for (id, want) in &expected {
        let case = want["case"].as_str().unwrap_or("?");
        let change = want["change"].as_str().expect("change hash");
        let resp = http()
            .get(format!("{}/v1/visits/{id}/verify", server.url()))
            .bearer_auth(&auditor.client.credentials().token)
            .send()
            .await
            .expect("verify");
        if resp.status() != reqwest::StatusCode::OK {
            f.fail(format!("{case}: verify answered {}", resp.status()));
            continue;
        }
        let report: serde_json::Value = resp.json().await.expect("report");
        f.check(report["ok"] == false, || {
            format!("{case}: verify says ok: {report}")
        });
        let flagged = report["problems"].as_array().is_some_and(|ps| {
            ps.iter()
                .any(|p| p["rule"] == "refused-change" && p["subject"] == change)
        });
        f.check(flagged, || {
            format!(
                "{case}: no refused-change problem naming {change}: {}",
                report["problems"]
            )
        });
    }
    f.finish("verification of stored forged writes");
}

// ----- mutated changes through the engine ------------------------------------

/// A small deterministic generator (splitmix64), so a failing case can be
/// replayed from the seed the test prints.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Clone>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize].clone()
    }
}

/// Valid changes by `a` on top of `base`: an attendance mark, a conduct
/// mark, a narrative insert and a submission, each a fresh actor's first.
fn valid_changes(base: &[u8], a: &Device) -> Vec<Change> {
    let stamp = stamp_by(a);
    let mut out = vec![valid_mark(base, a, 1)];
    let mut doc = tampered(base, a);
    let conduct = obj(&doc, "conduct");
    let value = stamped_json(
        ConductEntry {
            result: ConductResult::Compliant,
            note: String::new(),
        },
        stamp.clone(),
    );
    out.extend(write(&mut doc, |tx| {
        tx.put(&conduct, "s-003/uniform", value)
    }));
    let mut doc = tampered(base, a);
    let text = obj(&doc, "narrative");
    out.extend(write(&mut doc, |tx| tx.splice_text(&text, 0, 0, "Đã")));
    let mut doc = tampered(base, a);
    let value = stamped_json(
        StatusEntry {
            status: kiemtra_core::VisitStatus::Submitted,
            note: String::new(),
        },
        stamp,
    );
    out.extend(write(&mut doc, |tx| tx.put(ROOT, "status", value)));
    out
}

/// `c` with one to three random edits of its header, ops, keys, preds,
/// kinds and values; `objects` are op ids of the visit's objects.
fn mutated(c: &Change, r: &mut Rng, objects: &[OpId]) -> Change {
    reshape(c, |x| {
        for _ in 0..=r.below(3) {
            let n = x.operations.len() as u64;
            let i = r.below(n) as usize;
            let actor = x.actor_id.clone();
            match r.below(13) {
                0 => x.seq = r.pick(&[0, 2, 3, 1 << 40]),
                1 => {
                    let s = x.start_op.get();
                    let to = r.pick(&[1, s.saturating_sub(1).max(1), s + 7, 1 << 40]);
                    x.start_op = std::num::NonZeroU64::new(to).expect("nonzero");
                }
                2 => x.deps.clear(),
                3 => x.deps.push(ChangeHash([r.below(256) as u8; 32])),
                4 => {
                    if let Some(d) = x.deps.first().copied() {
                        x.deps.push(d);
                    }
                }
                5 if n > 0 => {
                    x.operations[i].obj = match r.below(3) {
                        0 => ObjectId::Root,
                        1 => ObjectId::Id(r.pick(objects)),
                        _ => ObjectId::Id(OpId(r.below(500) + 1, actor)),
                    }
                }
                6 if n > 0 => {
                    let key = r.pick(&[
                        "meta",
                        "status",
                        "approvals",
                        "schema",
                        "template",
                        "s-999",
                        "s-001",
                        "s-001/uniform",
                        "tthc-posted",
                        "",
                    ]);
                    x.operations[i].key = automerge::legacy::Key::Map(key.into());
                }
                7 if n > 0 => {
                    x.operations[i].key =
                        automerge::legacy::Key::Seq(automerge::legacy::ElementId::Head)
                }
                8 if n > 0 => {
                    x.operations[i].action = r.pick(&[
                        OpType::Delete,
                        OpType::Make(ObjType::Map),
                        OpType::Make(ObjType::Text),
                        OpType::Put(ScalarValue::Int(5)),
                        OpType::Put(ScalarValue::Str("{}".into())),
                        OpType::Increment(1),
                    ])
                }
                9 if n > 0 => {
                    let op = &mut x.operations[i];
                    if r.below(2) == 0 {
                        op.pred = Vec::new().into();
                    } else {
                        let mut pred: Vec<OpId> = op.pred.iter().cloned().collect();
                        pred.push(match r.below(2) {
                            0 => r.pick(objects),
                            _ => OpId(r.below(500) + 1, actor),
                        });
                        op.pred = pred.into();
                    }
                }
                10 if n > 0 => x.operations[i].insert = !x.operations[i].insert,
                11 if n > 0 => {
                    if let OpType::Put(ScalarValue::Str(s)) = &x.operations[i].action {
                        let edited = match r.below(5) {
                            0 => s.replace("insp-a", "insp-b"),
                            1 => s.replace("present", "late"),
                            2 => s.replace("submitted", "approved"),
                            3 => format!("{s}{}", "x".repeat(70_000)),
                            _ => s.replace("Đã", "Đa\u{0303}"),
                        };
                        x.operations[i].action = OpType::Put(ScalarValue::Str(edited.into()));
                    }
                }
                _ => {
                    if n > 0 && r.below(2) == 0 {
                        let op = x.operations[i].clone();
                        x.operations.push(op);
                    } else {
                        x.operations.clear();
                    }
                }
            }
        }
    })
}

/// The op ids of the visit's schema objects in `base`.
fn object_ids(base: &[u8]) -> Vec<OpId> {
    let doc = Automerge::load(base).expect("load");
    [
        "staff",
        "attendance",
        "conduct",
        "checks",
        "evidence",
        "findings",
        "approvals",
        "narrative",
    ]
    .iter()
    .filter_map(|k| match obj(&doc, k) {
        automerge::ObjId::Id(c, a, _) => Some(OpId(c, a)),
        automerge::ObjId::Root => None,
    })
    .collect()
}

/// An auditor's verification of `id` on the running server.
async fn verified_ok(net: &Net, id: &str) -> Result<(), String> {
    let resp = http()
        .get(format!("{}/v1/visits/{id}/verify", net.url))
        .bearer_auth(&net.aud.client.credentials().token)
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("verify answered {}", resp.status()));
    }
    let report: serde_json::Value = resp.json().await.map_err(|e| e.to_string())?;
    if report["ok"] == true {
        Ok(())
    } else {
        Err(format!("verify: {}", report["problems"]))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_mutated_changes_never_break_the_server_and_what_it_accepts_verifies() {
    let seed: u64 = std::env::var("KIEMTRA_MUTATION_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x006b_6965_6d74_7261);
    let cases: usize = std::env::var("KIEMTRA_MUTATION_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40);
    eprintln!("seed {seed}, {cases} cases (KIEMTRA_MUTATION_SEED, KIEMTRA_MUTATION_CASES)");
    let mut r = Rng(seed);
    let mut net = Net::new().await;
    let mut f = Findings::default();
    let token = net.a.client.credentials().token.clone();
    let (mut accepted, mut refused) = (0, 0);
    for case in 0..cases {
        // Every other case a new visit's whole history, else changes to
        // the stored target.
        let new_visit_case = case % 2 == 1;
        let (id, offer) = if new_visit_case {
            let id = format!("v-mut-{case}");
            net.a
                .store
                .create_visit(new_visit(&id, "team-1", 4), &template())
                .expect("create");
            net.a
                .store
                .edit(&vid(&id), |v| {
                    v.record_attendance(&staff(0), AttendanceMark::Present, "", None)?;
                    v.set_narrative("Có mặt")
                })
                .expect("edit");
            let doc = net.a.store.visit(&vid(&id)).expect("visit").save();
            let objects = object_ids(&doc);
            let mut changes = Automerge::load(&doc).expect("load").get_changes(&[]);
            let last = changes.len() - 1;
            let at = if r.below(2) == 0 {
                last
            } else {
                r.below(changes.len() as u64) as usize
            };
            changes[at] = mutated(&changes[at], &mut r, &objects);
            let refs: Vec<&Change> = changes.iter().collect();
            let offer = VisitOffer {
                visit_id: id.clone(),
                heads: heads_with(&[], &changes).iter().map(|h| h.0).collect(),
                confirmed: None,
                changes: bytes_of(&changes),
                signatures: vec![sign(&net.a, &id, &refs)],
                implied: false,
            };
            (id, offer)
        } else {
            let base = net.base();
            let objects = object_ids(&base);
            let valid = valid_changes(&base, &net.a);
            let c = mutated(&r.pick(&valid), &mut r, &objects);
            if std::env::var_os("KIEMTRA_MUTATION_SHOW").is_some() {
                eprintln!("case {case}: offers {:?}", c.decode());
            }
            (TARGET.to_owned(), signed_offer(&net.a, TARGET, &base, &[c]))
        };
        let sent = offer.changes.clone();
        let before = net.heads_of(&id).await;
        let answer = answer_for(post(&net.url, &token, vec![offer]).await, &id);
        let after = net.heads_of(&id).await;
        match &answer {
            Ok((VisitStatus::Ok, _)) => {
                accepted += 1;
                if std::env::var_os("KIEMTRA_MUTATION_SHOW").is_some() {
                    let shown = std::panic::catch_unwind(|| {
                        let mut doc = Automerge::new();
                        let _ = doc.load_incremental(&sent);
                        doc.get_changes(&[])
                            .iter()
                            .map(|c| format!("{:?}", c.decode()))
                            .collect::<Vec<_>>()
                    });
                    eprintln!("case {case}: accepted {shown:?}");
                }
                if let Err(e) = verified_ok(&net, &id).await {
                    f.fail(format!("case {case}: accepted, then {e}"));
                }
            }
            Ok((status, message)) => {
                refused += 1;
                // `resend` asks for more history and needs no words.
                f.check(
                    !message.is_empty() || *status == VisitStatus::Resend,
                    || format!("case {case}: {status:?} without a message"),
                );
                f.check(before == after, || {
                    format!(
                        "case {case}: refused ({status:?} {message}) but {before:?} → {after:?}"
                    )
                });
            }
            // A signature over a range the wire format cannot hold (seq 0)
            // makes the whole request malformed: a 400 problem.
            Err(e) if e.starts_with("HTTP 400") && e.contains("urn:kiemtra:problem:") => {
                refused += 1;
                f.check(before == after, || {
                    format!("case {case}: refused ({e}) but {before:?} → {after:?}")
                });
            }
            Err(e) => f.fail(format!("case {case}: no answer: {e}")),
        }
        match http().get(format!("{}/healthz", net.url)).send().await {
            Ok(resp) if resp.status() == reqwest::StatusCode::OK => {}
            other => f.fail(format!("case {case}: /healthz: {other:?}")),
        }
        let found = f.0.len();
        net.honest_round(&mut f).await;
        if f.0.len() > found {
            f.fail(format!("(the honest round above failed after case {case})"));
        }
    }
    eprintln!("{accepted} accepted, {refused} refused");
    f.check(refused > cases / 2, || {
        format!("only {refused} of {cases} mutations were refused: the mutator is too weak")
    });
    if let Err(e) = verified_ok(&net, TARGET).await {
        f.fail(format!("the target after every case: {e}"));
    }
    f.finish("mutated changes through the engine");
}
