//! What the costliest crafted requests cost the server: peak memory
//! (VmHWM), resident memory (VmRSS) and CPU time, read from `/proc` before
//! and after each request. A measurement, not a check of limits: run it by
//! hand against a release build and read the table it prints.
//!
//! ```sh
//! cargo build --release -p kiemtra-server
//! KIEMTRA_COST_SERVER=target/release/kiemtra-server \
//!     cargo test -p kiemtra-server --test e2e cost -- --ignored --nocapture
//! ```
//!
//! Without `KIEMTRA_COST_SERVER` it measures the test build's server. Every
//! request kind gets a fresh server in its own folder, so the high-water
//! mark after it belongs to that request (and the set-up before it).

use crate::harness::*;
use crate::hostile::{http, obj, ranges_of, reshape, tampered, valid_mark, write};
use automerge::legacy::OpType;
use automerge::transaction::Transactable;
use automerge::{Automerge, ScalarValue};
use kiemtra_core::*;
use kiemtra_sync_protocol::{Cursor, MEDIA_TYPE, Signature, SyncRequest, SyncResponse, VisitOffer};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

const TARGET: &str = "v-1";

/// The server binary measured: `KIEMTRA_COST_SERVER`, else the test build's.
fn server_bin() -> PathBuf {
    std::env::var_os("KIEMTRA_COST_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_kiemtra-server")))
}

/// A server process of `server_bin()`; killed when dropped.
struct Measured {
    child: Child,
    url: String,
    data: PathBuf,
}

impl Measured {
    fn start(data: &Path) -> Self {
        let mut child = Command::new(server_bin())
            .args(["--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the measured server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read port line");
        let port: u16 = line
            .trim()
            .strip_prefix("listening on port ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from the server: {line:?}"));
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data: data.to_path_buf(),
        }
    }

    fn enroll_code(&self, user: &str, team: &str, role: &str) -> String {
        let out = Command::new(server_bin())
            .args([
                "enroll-code",
                "--user",
                user,
                "--team",
                team,
                "--role",
                role,
                "--data",
            ])
            .arg(&self.data)
            .env("RUST_LOG", "warn")
            .output()
            .expect("enroll-code");
        assert!(
            out.status.success(),
            "enroll-code failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// VmHWM, VmRSS (KiB) and user + system CPU seconds so far.
    fn usage(&self, ticks: f64) -> Usage {
        let pid = self.child.id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let kib = |key: &str| -> u64 {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name (in parentheses): utime is the 14th
        // field of the line, stime the 15th.
        let cpu = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                let f: Vec<&str> = rest.split_whitespace().collect();
                let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
                (field(11) + field(12)) / ticks
            })
            .unwrap_or(0.0);
        Usage {
            hwm_kib: kib("VmHWM:"),
            rss_kib: kib("VmRSS:"),
            cpu,
        }
    }
}

impl Drop for Measured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Usage {
    hwm_kib: u64,
    rss_kib: u64,
    cpu: f64,
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`, else 100).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A fresh server with the target visit (6 staff) created by `a` and seen
/// by `b`, both inspectors of team-1.
struct Setup {
    _dir: tempfile::TempDir,
    server: Measured,
    a: Device,
    b: Device,
}

impl Setup {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let server = Measured::start(&dir.path().join("server"));
        let code = server.enroll_code("insp-a", "team-1", "inspector");
        let mut a =
            Device::enroll_with_code(&server.url, &code, "insp-a", &dir.path().join("a")).await;
        let code = server.enroll_code("insp-b", "team-1", "inspector");
        let mut b =
            Device::enroll_with_code(&server.url, &code, "insp-b", &dir.path().join("b")).await;
        a.store
            .create_visit(new_visit(TARGET, "team-1", 6), &template())
            .expect("create target");
        a.sync().await;
        b.sync().await;
        Self {
            _dir: dir,
            server,
            a,
            b,
        }
    }

    fn base(&mut self) -> Vec<u8> {
        self.a.store.visit(&vid(TARGET)).expect("visit").save()
    }
}

/// One row of the table.
struct Row {
    request: &'static str,
    answer: String,
    bytes: usize,
    wall: f64,
    cpu: f64,
    hwm_before: u64,
    hwm_after: u64,
    rss_after: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
async fn worst_requests_cost() {
    let ticks = clock_ticks();
    eprintln!("measuring {}", server_bin().display());
    let mut rows = Vec::new();
    for kind in [
        Kind::CopiesOfOneSignature,
        Kind::JunkSignatures,
        Kind::DistinctJunkSignatures,
        Kind::HugeNarrative,
        Kind::Honest,
    ] {
        let mut setup = Setup::new().await;
        let request = kind.build(&mut setup);
        let before = setup.server.usage(ticks);
        let t = Instant::now();
        let (answer, bytes) = match request {
            Some(offer) => {
                let token = setup.a.client.credentials().token.clone();
                let body = SyncRequest {
                    cursor: Cursor::default(),
                    max_response: 0,
                    visits: vec![offer],
                }
                .encode();
                let n = body.len();
                (answer_for(post(&setup.server.url, &token, body).await), n)
            }
            None => {
                let report = setup
                    .b
                    .client
                    .sync(&mut setup.b.store, &mut |_| {})
                    .await
                    .expect("honest sync");
                let answer = if report.errors.is_empty() && report.visits_uploaded == 1 {
                    "Ok (client)".to_owned()
                } else {
                    format!(
                        "{} uploaded, errors {:?}",
                        report.visits_uploaded, report.errors
                    )
                };
                (answer, report.bytes_sent as usize)
            }
        };
        let wall = t.elapsed().as_secs_f64();
        let after = setup.server.usage(ticks);
        rows.push(Row {
            request: kind.name(),
            answer,
            bytes,
            wall,
            cpu: after.cpu - before.cpu,
            hwm_before: before.hwm_kib,
            hwm_after: after.hwm_kib,
            rss_after: after.rss_kib,
        });
    }
    println!("\nserver: {}", server_bin().display());
    println!(
        "| request | answer for the visit | bytes sent | wall | server CPU | VmHWM before | VmHWM after | VmRSS after |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {} | {} | {:.3} s | {:.2} s | {:.1} MiB | {:.1} MiB | {:.1} MiB |",
            r.request,
            r.answer,
            r.bytes,
            r.wall,
            r.cpu,
            mib(r.hwm_before),
            mib(r.hwm_after),
            mib(r.rss_after),
        );
    }
}

#[derive(Clone, Copy)]
enum Kind {
    CopiesOfOneSignature,
    JunkSignatures,
    DistinctJunkSignatures,
    HugeNarrative,
    Honest,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::CopiesOfOneSignature => "(a) 4,096 copies of one valid signature",
            Kind::JunkSignatures => "(b) 4,095 junk signatures on an old change + 1 valid",
            Kind::DistinctJunkSignatures => "(b2) as (b), the 4,095 junk signatures all different",
            Kind::HugeNarrative => "(c) 10-million-character narrative",
            Kind::Honest => "(d) honest sync (one narrative edit)",
        }
    }

    /// The offer `a` sends, or `None` for the honest sync, which `b` makes
    /// through its client (its edit is made here, before the measurement).
    fn build(self, setup: &mut Setup) -> Option<VisitOffer> {
        let base = setup.base();
        match self {
            Kind::CopiesOfOneSignature => {
                let c = valid_mark(&base, &setup.a, 1);
                let mut offer = signed_offer(&setup.a, &base, &[c]);
                let one = offer.signatures[0].clone();
                offer.signatures = vec![one; 4096];
                Some(offer)
            }
            Kind::JunkSignatures => {
                let old = Automerge::load(&base).expect("load").get_changes(&[])[0].clone();
                let c = valid_mark(&base, &setup.a, 1);
                let mut offer = signed_offer(&setup.a, &base, &[c]);
                let junk = Signature {
                    signer: setup.a.client.credentials().device_id.clone(),
                    ranges: ranges_of(&[&old]),
                    signature: vec![0x5a; 64],
                };
                offer.signatures.extend(std::iter::repeat_n(junk, 4095));
                Some(offer)
            }
            Kind::DistinctJunkSignatures => {
                let old = Automerge::load(&base).expect("load").get_changes(&[])[0].clone();
                let c = valid_mark(&base, &setup.a, 1);
                let mut offer = signed_offer(&setup.a, &base, &[c]);
                let signer = setup.a.client.credentials().device_id.clone();
                offer.signatures.extend((0..4095u32).map(|i| {
                    let mut signature = vec![0x5a; 64];
                    signature[..4].copy_from_slice(&i.to_le_bytes());
                    Signature {
                        signer: signer.clone(),
                        ranges: ranges_of(&[&old]),
                        signature,
                    }
                }));
                Some(offer)
            }
            Kind::HugeNarrative => {
                // One small splice, its inserted text replaced by 10 million
                // characters in the encoded change, sent compressed.
                let mut doc = tampered(&base, &setup.a);
                let text = obj(&doc, "narrative");
                let small = write(&mut doc, |tx| tx.splice_text(&text, 0, 0, "x"));
                let long = "a".repeat(10_000_000);
                let mut huge = reshape(&small[0], |x| {
                    for op in &mut x.operations {
                        if let OpType::Put(ScalarValue::Str(_)) = &op.action {
                            op.action = OpType::Put(ScalarValue::Str(long.as_str().into()));
                        }
                    }
                });
                let mut offer = signed_offer(&setup.a, &base, std::slice::from_ref(&huge));
                offer.changes = huge.bytes().to_vec();
                Some(offer)
            }
            Kind::Honest => {
                setup
                    .b
                    .store
                    .edit(&vid(TARGET), |v| v.set_narrative("Đoàn đến lúc 7 giờ 30."))
                    .expect("b's edit");
                None
            }
        }
    }
}

// ----- requests ----------------------------------------------------------------

async fn post(url: &str, token: &str, body: Vec<u8>) -> Result<SyncResponse, String> {
    let resp = http()
        .post(format!("{url}/v1/sync"))
        .bearer_auth(token)
        .header("Content-Type", MEDIA_TYPE)
        .body(body)
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

/// The target's status and the start of its message, or why there was none.
fn answer_for(response: Result<SyncResponse, String>) -> String {
    let shorten = |s: &str| s.chars().take(110).collect::<String>();
    match response {
        Err(e) => shorten(&e),
        Ok(r) => match r.visits.into_iter().find(|v| v.visit_id == TARGET) {
            Some(v) => format!("{:?}: {}", v.status, shorten(&v.message)),
            None => "the answer says nothing about the visit".to_owned(),
        },
    }
}

/// An offer of `changes` on top of `base` for the target, signed by `by`.
fn signed_offer(by: &Device, base: &[u8], changes: &[Change]) -> VisitOffer {
    let base_heads = Automerge::load(base).expect("load").get_heads();
    let deps: std::collections::HashSet<ChangeHash> = changes
        .iter()
        .flat_map(|c| c.deps().iter().copied())
        .collect();
    let mut heads: Vec<ChangeHash> = base_heads
        .iter()
        .copied()
        .chain(changes.iter().map(|c| c.hash()))
        .filter(|h| !deps.contains(h))
        .collect();
    heads.sort();
    heads.dedup();
    let creds = by.client.credentials();
    let refs: Vec<&Change> = changes.iter().collect();
    let hashes: Vec<ChangeHash> = changes.iter().map(|c| c.hash()).collect();
    VisitOffer {
        visit_id: TARGET.to_owned(),
        heads: heads.iter().map(|h| h.0).collect(),
        confirmed: Some(base_heads.iter().map(|h| h.0).collect()),
        changes: changes
            .iter()
            .flat_map(|c| c.raw_bytes().to_vec())
            .collect(),
        signatures: vec![Signature {
            signer: creds.device_id.clone(),
            ranges: ranges_of(&refs),
            signature: creds.sign(TARGET, &hashes).expect("sign"),
        }],
        implied: false,
    }
}
