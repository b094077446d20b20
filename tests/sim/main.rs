//! The in-memory multi-device harness: phones and a server as real stores,
//! driven by the sync engines of both sides with no I/O — the device's
//! [`DeviceEngine`] (SPEC §7) and the server's [`exchange`] (SPEC §6) — and
//! a network made of queues that loses, duplicates, reorders and delays
//! messages, with backups restored on either side. No sockets, threads or
//! processes: a schedule is a list of steps and runs the same way every
//! time, so a failing one is shrunk by proptest to a few steps.
//!
//! Checked after every schedule, once the network heals and every phone
//! has synced until nothing moves: every replica of a visit has the same
//! heads, state and conflicts; every change a phone made is on the server
//! unless a restore removed it from every copy; the server's verification
//! of each visit passes (every change under its author's signature, no
//! signature kept twice); no phone holds another team's visit; and no
//! honest request was refused.
//!
//! `KIEMTRA_SIM_CASES` sets how many random schedules run (default 200); the
//! same schedules also run with the server on PostgreSQL (a throwaway
//! cluster; `KIEMTRA_SIM_PG_CASES`, default 24; server backups and restores
//! are left out there: their copies are files of the embedded store).

use kiemtra_client::{Credentials, DeviceEngine, Round, SyncOptions, SyncReport};
use kiemtra_core::*;
use kiemtra_server::{Metrics, PgStore, ServerStore, exchange};
use kiemtra_store::Store;
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const MAX_BODY: usize = 64 << 20;
const MAX_RESPONSE: usize = 64 << 20;
const STANDARD: &str = include_str!("../../fixtures/templates/standard-v1.json");
const CHECKS: [&str; 3] = ["tthc-posted", "feedback-phone-posted", "hotline"];
const TEAM: &str = "team-1";
const OTHER_TEAM: &str = "team-2";
/// Most visits a schedule creates.
const MAX_VISITS: usize = 4;
/// Rounds a phone's sync may take on a perfect link before the harness
/// calls it stuck (the small limits of one phone need a dozen at most).
const SYNC_ROUNDS: usize = 40;

/// A folder in memory when the machine has one (SQLite's disk syncs cost
/// nothing there), else a temporary folder.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(d) = tempfile::tempdir_in(shm)
    {
        return d;
    }
    tempfile::tempdir().expect("tempdir")
}

/// Copies the SQLite files of `from` (no transaction open) to `to`.
fn copy_files(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).expect("backup folder");
    for e in std::fs::read_dir(from).expect("read dir").flatten() {
        let name = e.file_name();
        if name.to_string_lossy().ends_with("-shm") {
            continue;
        }
        std::fs::copy(e.path(), to.join(name)).expect("copy");
    }
}

fn restore_files(backup: &Path, to: &Path) {
    std::fs::remove_dir_all(to).expect("remove");
    copy_files(backup, to);
}

struct Phone {
    dir: PathBuf,
    creds: Credentials,
    engine: DeviceEngine,
    store: Store,
    /// The round waiting for its answer.
    inflight: Option<Round>,
    /// Answers that reached this phone: (the request they answer, answer).
    inbox: Vec<(Vec<u8>, Vec<u8>)>,
    backup: Option<PathBuf>,
    report: SyncReport,
}

fn open_phone(dir: &Path, creds: &Credentials) -> Store {
    let editor = Editor::new(
        UserId::parse(&creds.user_id).expect("user"),
        DeviceId::parse(&creds.device_id).expect("device"),
    );
    let role = Role::parse(&creds.role).expect("role");
    Store::open_with_session(dir.join("device.db"), Session::new(editor).with_role(role))
        .expect("phone store")
}

struct World<S: ServerStore> {
    root: tempfile::TempDir,
    server: S,
    /// A second server process over the same database, opened on the
    /// first [`Step::SwitchServer`]: requests alternate between the two.
    other_server: Option<S>,
    /// Opens the server's store (in the folder given, for the embedded one).
    open_server: Box<dyn Fn(&Path) -> S>,
    /// Whether the server's data are files in `server_dir` (the embedded
    /// store: backups and restores are copies of them). A PostgreSQL
    /// server's restores are tested end to end instead (`tests/e2e/backup.rs`).
    server_files: bool,
    server_dir: PathBuf,
    server_backup: Option<PathBuf>,
    metrics: Metrics,
    phones: Vec<Phone>,
    /// Requests on their way to the server: (phone, body).
    wire: Vec<(usize, Vec<u8>)>,
    /// Every change a phone made: (visit, change).
    made: BTreeSet<(VisitId, ChangeHash)>,
    visits: Vec<(VisitId, &'static str)>,
    template: Template,
    /// Changes no copy held any more after a restore.
    lost_to_restores: usize,
    /// Visits created so far (their ids are never reused).
    created: usize,
}

/// Who is in the world: two inspectors and a supervisor of one team (the
/// second inspector with small request and response limits, so its syncs
/// continue over several rounds), and an inspector of another team.
const PEOPLE: [(&str, &str, &str); 4] = [
    ("insp-a", TEAM, "inspector"),
    ("insp-b", TEAM, "inspector"),
    ("sup-c", TEAM, "supervisor"),
    ("insp-x", OTHER_TEAM, "inspector"),
];

fn new_visit(n: usize, team: &str) -> NewVisit {
    NewVisit {
        visit_id: VisitId::parse(&format!("v-sim-{n}")).expect("id"),
        unit: Unit::new(
            UnitCode::parse(&format!("u-{n}")).expect("code"),
            "UBND xã Thới An",
            UnitKind::CommuneCommittee,
            "Ô Môn",
        )
        .expect("unit"),
        campaign: CampaignId::parse("ct-2015").expect("campaign"),
        team: TeamId::parse(team).expect("team"),
        scheduled_on: chrono::NaiveDate::from_ymd_opt(2015, 9, 3).expect("date"),
        roster: (0..4)
            .map(|i| {
                StaffMember::new(
                    staff(i),
                    &format!("Nguyễn Thị Lan {i}"),
                    "Công chức",
                    StaffCategory::CivilServant,
                    true,
                )
                .expect("member")
            })
            .collect(),
    }
}

fn staff(i: usize) -> StaffId {
    StaffId::parse(&format!("s-{i}")).expect("staff")
}

/// The embedded store's world.
fn sqlite_world() -> Result<World<Store>, String> {
    World::new(
        Box::new(|dir: &Path| kiemtra_server::open_store(dir).expect("server store")),
        true,
    )
}

impl<S: ServerStore> World<S> {
    fn new(open_server: Box<dyn Fn(&Path) -> S>, server_files: bool) -> Result<Self, String> {
        let root = scratch();
        let server_dir = root.path().join("server");
        let mut server = open_server(&server_dir);
        let mut phones = Vec::new();
        for (i, (user, team, role)) in PEOPLE.iter().enumerate() {
            let code = kiemtra_server::create_enrollment_code(
                &mut server,
                user,
                team,
                role,
                chrono::Duration::hours(1),
            )
            .expect("code");
            let key = kiemtra_client::new_device_key().expect("key");
            let public = kiemtra_client::public_key_of(&key).expect("public key");
            let (record, token, _) =
                kiemtra_server::enroll(&mut server, &code, &format!("phone of {user}"), &public)
                    .expect("enroll");
            let creds = Credentials {
                server: "sim:".into(),
                device_id: record.device_id,
                token,
                user_id: (*user).into(),
                team: (*team).into(),
                role: (*role).into(),
                signing_key: kiemtra_core::hex::encode(&key),
            };
            let dir = root.path().join(format!("phone-{i}"));
            let mut store = open_phone(&dir, &creds);
            creds.save(&mut store).expect("save credentials");
            let options = match i {
                1 => SyncOptions {
                    max_request: 1_500,
                    max_response: 3_000,
                    ..SyncOptions::default()
                },
                _ => SyncOptions::default(),
            };
            phones.push(Phone {
                dir,
                engine: DeviceEngine::new(creds.clone(), options),
                creds,
                store,
                inflight: None,
                inbox: Vec::new(),
                backup: None,
                report: SyncReport::default(),
            });
        }
        let mut w = Self {
            root,
            server,
            other_server: None,
            open_server,
            server_files,
            server_dir,
            server_backup: None,
            metrics: Metrics::default(),
            phones,
            wire: Vec::new(),
            made: BTreeSet::new(),
            visits: Vec::new(),
            template: Template::from_json(STANDARD).expect("template"),
            lost_to_restores: 0,
            created: 0,
        };
        // One visit of the team, on every phone of the team from the start.
        w.create(0);
        for p in 0..w.phones.len() {
            w.sync_fully(p)?;
        }
        Ok(w)
    }

    /// The server's answer to `body` from phone `p`, as the HTTP route
    /// gives it (an honest phone is never refused a whole request).
    fn serve(&mut self, p: usize, body: &[u8]) -> Result<Vec<u8>, String> {
        let device = self
            .server
            .device(&self.phones[p].creds.device_id)
            .expect("device lookup")
            .expect("enrolled");
        exchange(
            &mut self.server,
            &device,
            body,
            MAX_BODY,
            MAX_RESPONSE,
            &self.metrics,
        )
        .map_err(|e| format!("the server refused an honest request of phone {p}: {e}"))
    }

    /// Phone `p` syncs with a perfect network until nothing is left.
    fn sync_fully(&mut self, p: usize) -> Result<(), String> {
        self.phones[p].inflight = None;
        self.phones[p].inbox.clear();
        for _ in 0..SYNC_ROUNDS {
            let phone = &mut self.phones[p];
            let round = phone.engine.begin(&mut phone.store).expect("begin");
            let answer = self.serve(p, &round.body)?;
            let phone = &mut self.phones[p];
            let applied = phone
                .engine
                .apply(&mut phone.store, &round, &answer, &mut phone.report)
                .map_err(|e| format!("phone {p} could not apply an answer: {e}"))?;
            if !applied.again {
                return Ok(());
            }
        }
        Err(format!("phone {p} never finished its sync"))
    }

    fn create(&mut self, p: usize) {
        if self.created >= MAX_VISITS {
            return;
        }
        let team = PEOPLE[p].1;
        let n = self.created;
        self.created += 1;
        let new = new_visit(n, team);
        let id = new.visit_id.clone();
        let phone = &mut self.phones[p];
        phone
            .store
            .create_visit(new, &self.template)
            .expect("create visit");
        let heads = phone.store.visit(&id).expect("visit").heads();
        for h in heads {
            self.made.insert((id.clone(), h));
        }
        self.visits.push((id, team));
    }

    fn edit(&mut self, p: usize, v: usize, what: u8, k: usize) {
        let Some((id, _)) = self.visits.get(v % self.visits.len().max(1)).cloned() else {
            return;
        };
        let phone = &mut self.phones[p];
        if phone.store.summary(&id).is_err() {
            return;
        }
        let before: BTreeSet<ChangeHash> = match phone.store.visit(&id) {
            Ok(visit) => visit.heads().into_iter().collect(),
            Err(_) => return,
        };
        let supervisor = phone.creds.role == "supervisor";
        // Edits the document's rules refuse (a finished visit, a role's
        // limits) are refused here too and change nothing.
        let _ = phone.store.edit(&id, |visit| match what % 7 {
            0 | 1 => {
                let mark = match k % 3 {
                    0 => AttendanceMark::parse("present", None),
                    1 => AttendanceMark::parse("late", None),
                    _ => AttendanceMark::parse("absent", Some("sick")),
                }?;
                visit.record_attendance(&staff(k % 4), mark, "", None)
            }
            2 => visit.record_check(
                &CheckId::parse(CHECKS[k % CHECKS.len()])?,
                CheckResult::parse(if k.is_multiple_of(2) { "pass" } else { "fail" })?,
                "",
            ),
            3 => visit
                .add_finding(NewFinding {
                    category: "tthc".into(),
                    severity: Severity::parse("minor")?,
                    text: format!("phát hiện {k}"),
                    recommendation: String::new(),
                    related_staff: vec![staff(k % 4)],
                })
                .map(|_| ()),
            4 => visit.set_narrative(&format!("Đoàn ghi nhận lần {k}.")),
            5 if supervisor => match visit.conflicts()?.first() {
                Some(c) => visit.resolve(&c.field.clone(), k % c.candidates.len().max(1)),
                None => visit.return_visit("bổ sung"),
            },
            _ => visit.submit("xong"),
        });
        if let Ok(visit) = phone.store.visit(&id) {
            for h in visit.heads() {
                if !before.contains(&h) {
                    self.made.insert((id.clone(), h));
                }
            }
        }
    }

    fn send(&mut self, p: usize, copies: u8) {
        let phone = &mut self.phones[p];
        let round = match &phone.inflight {
            Some(r) => r.clone(),
            None => {
                let r = phone.engine.begin(&mut phone.store).expect("begin");
                phone.inflight = Some(r.clone());
                r
            }
        };
        for _ in 0..copies.clamp(1, 2) {
            self.wire.push((p, round.body.clone()));
        }
    }

    fn deliver(&mut self, i: usize, lose: bool) -> Result<(), String> {
        if self.wire.is_empty() {
            return Ok(());
        }
        let (p, body) = self.wire.remove(i % self.wire.len());
        let answer = self.serve(p, &body)?;
        if !lose {
            self.phones[p].inbox.push((body, answer));
        }
        Ok(())
    }

    fn receive(&mut self, p: usize, i: usize) -> Result<(), String> {
        let phone = &mut self.phones[p];
        if phone.inbox.is_empty() {
            return Ok(());
        }
        let (body, answer) = phone.inbox.remove(i % phone.inbox.len());
        // An answer to a request the phone gave up on is not read (its
        // connection is gone).
        let Some(round) = phone.inflight.clone() else {
            return Ok(());
        };
        if round.body != body {
            return Ok(());
        }
        phone.inflight = None;
        phone
            .engine
            .apply(&mut phone.store, &round, &answer, &mut phone.report)
            .map(|_| ())
            .map_err(|e| format!("phone {p} could not apply an answer: {e}"))
    }

    fn give_up(&mut self, p: usize) {
        self.phones[p].inflight = None;
    }

    fn backup_server(&mut self) {
        if !self.server_files {
            return;
        }
        let to = self.root.path().join("server-backup");
        copy_files(&self.server_dir, &to);
        self.server_backup = Some(to);
    }

    fn restore_server(&mut self) {
        let Some(backup) = self.server_backup.clone() else {
            return;
        };
        let placeholder = self.root.path().join("placeholder");
        // Every process is stopped for a restore.
        self.other_server = None;
        self.server = (self.open_server)(&placeholder);
        restore_files(&backup, &self.server_dir);
        self.server = (self.open_server)(&self.server_dir);
        self.forget_lost();
    }

    /// The next requests go to the other server process over the same
    /// database (no state in memory between requests may matter).
    fn switch_server(&mut self) {
        let other = match self.other_server.take() {
            Some(other) => other,
            None => (self.open_server)(&self.server_dir),
        };
        self.other_server = Some(std::mem::replace(&mut self.server, other));
    }

    fn backup_phone(&mut self, p: usize) {
        let to = self.root.path().join(format!("phone-{p}-backup"));
        copy_files(&self.phones[p].dir, &to);
        self.phones[p].backup = Some(to);
    }

    fn restore_phone(&mut self, p: usize) {
        let Some(backup) = self.phones[p].backup.clone() else {
            return;
        };
        let placeholder = self.root.path().join(format!("placeholder-{p}"));
        let creds = self.phones[p].creds.clone();
        self.phones[p].store = open_phone(&placeholder, &creds);
        restore_files(&backup, &self.phones[p].dir);
        let phone = &mut self.phones[p];
        phone.store = open_phone(&phone.dir, &creds);
        // A restored phone is an app started afresh: nothing in flight.
        phone.inflight = None;
        phone.inbox.clear();
        self.forget_lost();
    }

    /// Changes held by no copy any more (made after the backup a store was
    /// restored from, and not yet anywhere else) are gone by the
    /// operator's hand, not the protocol's: they leave the expected set.
    fn forget_lost(&mut self) {
        let mut gone = Vec::new();
        for (id, h) in &self.made {
            let on_server = self
                .server
                .visit(id)
                .map(|v| v.has_change(h))
                .unwrap_or(false);
            let on_a_phone = self.phones.iter_mut().any(|phone| {
                phone.store.summary(id).is_ok()
                    && phone
                        .store
                        .visit(id)
                        .map(|v| v.has_change(h))
                        .unwrap_or(false)
            });
            if !on_server && !on_a_phone {
                gone.push((id.clone(), *h));
            }
        }
        self.lost_to_restores += gone.len();
        for g in gone {
            self.made.remove(&g);
        }
        // A visit created after the backup and never shared is gone whole.
        let mut kept = Vec::new();
        for (id, team) in std::mem::take(&mut self.visits) {
            let held = self.server.summary(&id).is_ok()
                || self.phones.iter().any(|p| p.store.summary(&id).is_ok());
            if held {
                kept.push((id, team));
            }
        }
        self.visits = kept;
    }

    fn step(&mut self, s: &Step) -> Result<(), String> {
        let n = self.phones.len();
        match *s {
            Step::Deliver { i, lose } => return self.deliver(i, lose),
            Step::Receive { p, i } => return self.receive(p % n, i),
            _ => {}
        }
        match *s {
            Step::Create { p } => self.create(p % n),
            Step::Edit { p, v, what, k } => self.edit(p % n, v, what, k),
            Step::Send { p, copies } => self.send(p % n, copies),
            Step::Deliver { .. } | Step::Receive { .. } => {}
            Step::GiveUp { p } => self.give_up(p % n),
            Step::BackupServer => self.backup_server(),
            Step::RestoreServer => self.restore_server(),
            Step::BackupPhone { p } => self.backup_phone(p % n),
            Step::RestorePhone { p } => self.restore_phone(p % n),
            Step::SwitchServer => self.switch_server(),
        }
        Ok(())
    }

    /// The network heals: what is on the wire is lost, and every phone
    /// syncs until a whole pass moves nothing.
    fn heal(&mut self) -> Result<(), String> {
        self.wire.clear();
        for _pass in 0..8 {
            let before = self.fingerprint();
            for p in 0..self.phones.len() {
                self.sync_fully(p)?;
            }
            if self.fingerprint() == before {
                return Ok(());
            }
        }
        Err("the replicas never settled".into())
    }

    fn fingerprint(&mut self) -> Vec<Vec<ChangeHash>> {
        let ids: Vec<VisitId> = self.visits.iter().map(|(id, _)| id.clone()).collect();
        let mut out = Vec::new();
        for id in &ids {
            out.push(
                self.server
                    .visit(id)
                    .map(|v| sorted(v.heads()))
                    .unwrap_or_default(),
            );
            for phone in &mut self.phones {
                out.push(
                    phone
                        .store
                        .visit(id)
                        .map(|v| sorted(v.heads()))
                        .unwrap_or_default(),
                );
            }
        }
        out
    }

    /// Everything the harness promises; the first broken promise, in words.
    fn check(&mut self) -> Result<(), String> {
        for (i, phone) in self.phones.iter().enumerate() {
            if !phone.report.errors.is_empty() {
                return Err(format!("phone {i} was refused: {:?}", phone.report.errors));
            }
        }
        let visits = self.visits.clone();
        for (id, team) in &visits {
            let server = self
                .server
                .visit(id)
                .map_err(|e| format!("{id} is not on the server: {e}"))?;
            let heads = sorted(server.heads());
            let state = server.state().map_err(|e| e.to_string())?;
            let conflicts = server.conflicts().map_err(|e| e.to_string())?;
            for (h_id, h) in &self.made {
                if h_id == id && !server.has_change(h) {
                    return Err(format!("change {h} of {id} is lost"));
                }
            }
            let report =
                kiemtra_server::verify_visit(&mut self.server, id).map_err(|e| e.to_string())?;
            if !report.ok {
                return Err(format!(
                    "the server's copy of {id} does not verify: {:?}",
                    report.problems
                ));
            }
            let sigs = self.server.signatures_of(id).map_err(|e| e.to_string())?;
            let distinct: BTreeSet<_> = sigs.iter().map(|s| (&s.signer, &s.signature)).collect();
            if distinct.len() != sigs.len() {
                return Err(format!("{id}: a signature is kept twice"));
            }
            for (i, phone) in self.phones.iter_mut().enumerate() {
                let holds = phone.store.summary(id).is_ok();
                let member = phone.creds.team == *team;
                if holds != member {
                    return Err(format!(
                        "phone {i} (team {}) holds={holds} visit {id} of team {team}",
                        phone.creds.team
                    ));
                }
                if !holds {
                    continue;
                }
                let v = phone.store.visit(id).map_err(|e| e.to_string())?;
                if sorted(v.heads()) != heads {
                    return Err(format!("phone {i} has other heads of {id}"));
                }
                if v.state().map_err(|e| e.to_string())? != state {
                    return Err(format!("phone {i} shows {id} otherwise"));
                }
                if v.conflicts().map_err(|e| e.to_string())? != conflicts {
                    return Err(format!("phone {i} lists other conflicts of {id}"));
                }
            }
        }
        Ok(())
    }
}

fn sorted(mut v: Vec<ChangeHash>) -> Vec<ChangeHash> {
    v.sort();
    v
}

/// One thing that happens in a schedule.
#[derive(Debug, Clone)]
enum Step {
    /// Phone `p` creates a visit of its team.
    Create {
        p: usize,
    },
    /// Phone `p` records something in visit `v` (kind `what`, detail `k`).
    Edit {
        p: usize,
        v: usize,
        what: u8,
        k: usize,
    },
    /// Phone `p` sends its round (begun now if none waits); twice is a retry.
    Send {
        p: usize,
        copies: u8,
    },
    /// The server takes request `i` off the wire; its answer is lost or
    /// reaches the phone (later, in any order).
    Deliver {
        i: usize,
        lose: bool,
    },
    /// Phone `p` reads answer `i` of its inbox.
    Receive {
        p: usize,
        i: usize,
    },
    /// Phone `p` stops waiting (a timeout).
    GiveUp {
        p: usize,
    },
    BackupServer,
    RestoreServer,
    BackupPhone {
        p: usize,
    },
    RestorePhone {
        p: usize,
    },
    /// Requests from now on go to another server process over the same
    /// database (and back, the next time).
    SwitchServer,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..4usize).prop_map(|p| Step::Create { p }),
        10 => (0..4usize, 0..8usize, 0..7u8, 0..12usize)
            .prop_map(|(p, v, what, k)| Step::Edit { p, v, what, k }),
        6 => (0..4usize, 1..3u8).prop_map(|(p, copies)| Step::Send { p, copies }),
        6 => (0..8usize, prop::bool::weighted(0.25)).prop_map(|(i, lose)| Step::Deliver { i, lose }),
        6 => (0..4usize, 0..4usize).prop_map(|(p, i)| Step::Receive { p, i }),
        1 => (0..4usize).prop_map(|p| Step::GiveUp { p }),
        1 => Just(Step::BackupServer),
        1 => Just(Step::RestoreServer),
        1 => (0..4usize).prop_map(|p| Step::BackupPhone { p }),
        1 => (0..4usize).prop_map(|p| Step::RestorePhone { p }),
        1 => Just(Step::SwitchServer),
    ]
}

fn run(steps: &[Step]) -> Result<World<Store>, String> {
    run_in(sqlite_world()?, steps)
}

fn run_in<S: ServerStore>(mut w: World<S>, steps: &[Step]) -> Result<World<S>, String> {
    for s in steps {
        w.step(s)?;
    }
    w.heal()?;
    w.check()?;
    Ok(w)
}

fn cases() -> u32 {
    std::env::var("KIEMTRA_SIM_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 2_000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_schedules_converge_with_nothing_lost_or_duplicated(
        steps in prop::collection::vec(step(), 10..70)
    ) {
        if let Err(e) = run(&steps) {
            prop_assert!(false, "{}", e);
        }
    }
}

// ---- the end-to-end suite's merge, fault and continuation cases, without processes

fn edit(p: usize, v: usize, what: u8, k: usize) -> Step {
    Step::Edit { p, v, what, k }
}

/// A phone's whole round trip on a perfect link.
fn round_trip(p: usize) -> [Step; 3] {
    [
        Step::Send { p, copies: 1 },
        Step::Deliver { i: 0, lose: false },
        Step::Receive { p, i: 0 },
    ]
}

#[test]
fn two_inspectors_record_one_person_differently_and_every_replica_lists_the_same_conflict() {
    // Staff member 1: late on one phone, absent on the other.
    let mut steps = vec![edit(0, 0, 0, 1), edit(1, 0, 0, 5)];
    for p in [0, 1, 0, 2] {
        steps.extend(round_trip(p));
    }
    let mut w = run(&steps).expect("converges");
    let id = w.visits[0].0.clone();
    let conflicts = w.server.visit(&id).expect("visit").conflicts().expect("c");
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    // The supervisor settles it; the settlement reaches everyone.
    w.step(&edit(2, 0, 5, 0)).expect("settle");
    w.heal().expect("heal");
    w.check().expect("settled everywhere");
    assert!(
        w.server
            .visit(&id)
            .expect("visit")
            .conflicts()
            .expect("c")
            .is_empty()
    );
}

#[test]
fn two_inspectors_marking_the_same_person_present_is_no_conflict() {
    let mut steps = vec![edit(0, 0, 0, 0), edit(1, 0, 0, 0)];
    for p in [0, 1, 0] {
        steps.extend(round_trip(p));
    }
    let mut w = run(&steps).expect("converges");
    let id = w.visits[0].0.clone();
    assert!(
        w.server
            .visit(&id)
            .expect("visit")
            .conflicts()
            .expect("c")
            .is_empty()
    );
}

#[test]
fn lost_answers_and_duplicated_requests_change_nothing_more() {
    let mut steps = Vec::new();
    for k in 0..6 {
        steps.push(edit(0, 0, 0, k));
        steps.push(Step::Send { p: 0, copies: 2 });
        steps.push(Step::Deliver { i: 0, lose: true });
        steps.push(Step::Deliver {
            i: 0,
            lose: k % 2 == 0,
        });
        steps.push(Step::Receive { p: 0, i: 0 });
        steps.push(Step::GiveUp { p: 0 });
    }
    let mut w = run(&steps).expect("converges");
    assert!(w.server.visit(&w.visits[0].0.clone()).is_ok());
}

#[test]
fn an_answer_computed_before_another_phone_synced_is_applied_late_and_nothing_is_lost() {
    let steps = vec![
        edit(0, 0, 0, 1),
        Step::Send { p: 0, copies: 1 },
        Step::Deliver { i: 0, lose: false },
        // Phone 1 syncs in between; phone 0 reads its old answer after.
        edit(1, 0, 2, 3),
        Step::Send { p: 1, copies: 1 },
        Step::Deliver { i: 0, lose: false },
        Step::Receive { p: 1, i: 0 },
        Step::Receive { p: 0, i: 0 },
    ];
    run(&steps).expect("converges");
}

#[test]
fn a_server_restored_from_an_older_backup_gets_back_every_change_from_the_phones() {
    let mut steps = vec![Step::BackupServer];
    for k in 0..4 {
        steps.push(edit(k % 2, 0, 0, k));
        steps.extend(round_trip(k % 2));
    }
    steps.push(Step::Create { p: 1 });
    steps.extend(round_trip(1));
    steps.push(Step::RestoreServer);
    let w = run(&steps).expect("converges");
    assert_eq!(w.lost_to_restores, 0, "every change was still on a phone");
}

#[test]
fn a_phone_restored_from_an_older_backup_gets_back_what_it_had_shared() {
    let mut steps = vec![Step::BackupPhone { p: 0 }];
    for k in 0..4 {
        steps.push(edit(0, 0, 3, k));
        steps.extend(round_trip(0));
    }
    steps.push(Step::RestorePhone { p: 0 });
    let w = run(&steps).expect("converges");
    assert_eq!(w.lost_to_restores, 0, "every change had reached the server");
}

#[test]
fn a_phone_restored_before_sharing_loses_only_what_no_copy_held() {
    let steps = vec![
        Step::BackupPhone { p: 0 },
        edit(0, 0, 3, 1),
        edit(0, 0, 4, 2),
        Step::RestorePhone { p: 0 },
    ];
    let w = run(&steps).expect("converges");
    assert_eq!(w.lost_to_restores, 2);
}

#[test]
fn a_phone_with_small_limits_continues_over_several_rounds() {
    let mut steps = Vec::new();
    for k in 0..30 {
        steps.push(edit(0, 0, 3, k));
    }
    steps.push(Step::Create { p: 0 });
    steps.push(Step::Create { p: 0 });
    steps.extend(round_trip(0));
    let w = run(&steps).expect("converges");
    // Phone 1 asks for at most 3 KB per answer: its sync took rounds.
    assert!(
        w.phones[1].report.requests >= 4,
        "phone 1 made {} requests",
        w.phones[1].report.requests
    );
}

#[test]
fn two_groups_offline_converge_in_every_sync_order() {
    // All six orders of the three phones' syncs after both groups recorded
    // offline: staff member 1 late in one group and absent in the other (a
    // conflict), staff member 2 present in both (no conflict), a finding
    // and a narrative from each.
    for order in [
        [0, 1, 2],
        [0, 2, 1],
        [1, 0, 2],
        [1, 2, 0],
        [2, 0, 1],
        [2, 1, 0],
    ] {
        let mut steps = vec![
            edit(0, 0, 0, 1),
            edit(0, 0, 0, 6),
            edit(0, 0, 3, 1),
            edit(0, 0, 4, 1),
            edit(1, 0, 0, 5),
            edit(1, 0, 0, 6),
            edit(1, 0, 3, 2),
        ];
        for p in order {
            steps.extend(round_trip(p));
        }
        let mut w = run(&steps).unwrap_or_else(|e| panic!("order {order:?}: {e}"));
        let id = w.visits[0].0.clone();
        let state = w.server.visit(&id).expect("visit").state().expect("state");
        let conflicts = state.conflicts();
        assert_eq!(conflicts.len(), 1, "order {order:?}: {conflicts:?}");
        assert_eq!(conflicts[0].field, FieldRef::Attendance { staff: staff(1) });
        assert_eq!(state.findings.len(), 2, "order {order:?}");
        // The supervisor settles it; the settlement reaches everyone.
        w.step(&edit(2, 0, 5, 0)).expect("settle");
        w.heal().expect("heal");
        w.check().expect("settled everywhere");
        let state = w.server.visit(&id).expect("visit").state().expect("state");
        assert!(state.conflicts().is_empty(), "order {order:?}");
    }
}

#[test]
fn a_steady_state_sync_is_one_request() {
    let mut w = sqlite_world().expect("world");
    for _ in 0..3 {
        w.create(0);
    }
    let before = w.phones[0].report.clone();
    w.sync_fully(0).expect("sync");
    let first = w.phones[0].report.clone();
    assert_eq!(first.requests - before.requests, 1);
    assert_eq!(first.visits_uploaded - before.visits_uploaded, 3);
    w.edit(0, 2, 0, 1);
    w.sync_fully(0).expect("sync");
    let second = w.phones[0].report.clone();
    assert_eq!(second.requests - first.requests, 1);
    assert_eq!(second.visits_uploaded - first.visits_uploaded, 1);
    w.sync_fully(0).expect("sync");
    let idle = w.phones[0].report.clone();
    assert_eq!(idle.requests - second.requests, 1);
    assert_eq!(idle.visits_uploaded, second.visits_uploaded);
    assert_eq!(idle.visits_downloaded, second.visits_downloaded);
    w.heal().expect("heal");
    w.check().expect("converges");
}

#[test]
fn a_server_that_dies_mid_sync_loses_nothing() {
    // Killed before it committed (what it stored is rolled back: the
    // database as it was before the request) and killed after it committed
    // but before it answered (the answer is lost), for two phones.
    let steps = vec![
        edit(0, 0, 0, 1),
        edit(2, 0, 3, 4),
        Step::BackupServer,
        Step::Send { p: 0, copies: 1 },
        Step::Deliver { i: 0, lose: true },
        Step::RestoreServer,
        Step::Send { p: 2, copies: 1 },
        Step::Deliver { i: 0, lose: true },
        edit(0, 0, 2, 1),
        edit(2, 0, 4, 5),
        Step::GiveUp { p: 0 },
        Step::GiveUp { p: 2 },
    ];
    let w = run(&steps).expect("converges");
    assert_eq!(w.lost_to_restores, 0, "every change was still on its phone");
}

#[test]
fn two_server_processes_share_one_database() {
    // Each phone's requests alternate between two server processes over
    // the same database; every request of a round trip goes to the other.
    let mut steps = Vec::new();
    for k in 0..8 {
        steps.push(edit(k % 3, 0, (k % 5) as u8, k));
        steps.push(Step::SwitchServer);
        steps.extend(round_trip(k % 3));
    }
    steps.push(Step::Create { p: 1 });
    steps.push(Step::SwitchServer);
    steps.extend(round_trip(1));
    let w = run(&steps).expect("converges");
    assert!(w.other_server.is_some(), "a second process served requests");
}

#[test]
fn one_small_change_stays_within_the_bytes_bound() {
    let mut w = sqlite_world().expect("world");
    let id = w.visits[0].0.clone();
    for k in 0..3 {
        w.edit(0, 0, 0, k);
        let change = w.phones[0]
            .store
            .visit(&id)
            .expect("visit")
            .automerge()
            .get_last_local_change()
            .expect("a local change")
            .raw_bytes()
            .len();
        let phone = &mut w.phones[0];
        let round = phone.engine.begin(&mut phone.store).expect("begin");
        let bound = change * 11 / 10 + 100;
        assert!(
            round.body.len() <= bound,
            "sent {} bytes for a {change}-byte change (bound {bound})",
            round.body.len()
        );
        let answer = w.serve(0, &round.body).expect("answer");
        let phone = &mut w.phones[0];
        let applied = phone
            .engine
            .apply(&mut phone.store, &round, &answer, &mut phone.report)
            .expect("apply");
        assert!(!applied.again, "one round");
    }
    w.heal().expect("heal");
    w.check().expect("converges");
}

#[test]
fn the_harness_fails_when_a_replica_diverges() {
    // The checks can fail: a phone that records after the network healed,
    // without syncing, differs from the server.
    let mut w = run(&[edit(0, 0, 0, 1)]).expect("converges");
    w.step(&edit(1, 0, 3, 7)).expect("edit");
    assert!(w.check().is_err(), "an unsynced edit went unnoticed");
}

// ---- the same schedules with the server on PostgreSQL

/// Schedules run on PostgreSQL (a throwaway cluster for the whole test, a
/// fresh database per schedule): `KIEMTRA_SIM_PG_CASES` (default 24).
fn pg_cases() -> u32 {
    std::env::var("KIEMTRA_SIM_PG_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24)
}

#[test]
fn random_schedules_converge_on_postgres_too() {
    let cluster = kiemtra_testworld::PgCluster::start();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: pg_cases(),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    });
    let n = std::cell::Cell::new(0u32);
    let outcome = runner.run(&prop::collection::vec(step(), 10..70), |steps| {
        let db = format!("sim_{}", n.get());
        n.set(n.get() + 1);
        cluster.create_db(&db);
        let url = cluster.url(&db);
        let world = World::new(
            Box::new(move |_: &Path| PgStore::connect(&url).expect("postgres store")),
            false,
        )
        .map_err(TestCaseError::fail)?;
        run_in(world, &steps).map_err(TestCaseError::fail)?;
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}
