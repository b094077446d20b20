//! The measured scenarios.

use chrono::NaiveDate;
use kiemtra_client::{Credentials, SyncClient, SyncOptions, SyncReport};
use kiemtra_core::*;
use kiemtra_store::Store;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::server::Server;
use crate::shaper::{Link, Shaper};

pub(crate) const TEMPLATE: &str = include_str!("../../../fixtures/templates/standard-v1.json");
const STAFF: usize = 60;

fn staff(i: usize) -> Result<StaffId, String> {
    StaffId::parse(&format!("s-{i:03}")).map_err(|e| e.to_string())
}

pub(crate) fn new_visit(n: usize, team: &str) -> Result<NewVisit, String> {
    let roster = (0..STAFF)
        .map(|i| {
            StaffMember::new(
                staff(i)?,
                &format!("Nguyễn Thị Thu {i}"),
                "Chuyên viên",
                StaffCategory::CivilServant,
                true,
            )
            .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(NewVisit {
        visit_id: VisitId::parse(&format!("v-{n:04}")).map_err(|e| e.to_string())?,
        unit: Unit::new(
            UnitCode::parse(&format!("u-{n:04}")).map_err(|e| e.to_string())?,
            "UBND xã Thạnh Lợi",
            UnitKind::CommuneCommittee,
            "Huyện Vĩnh Thạnh",
        )
        .map_err(|e| e.to_string())?,
        campaign: CampaignId::parse("bench").map_err(|e| e.to_string())?,
        team: TeamId::parse(team).map_err(|e| e.to_string())?,
        scheduled_on: NaiveDate::from_ymd_opt(2015, 9, 1).ok_or("date")?,
        roster,
    })
}

/// One phone tap: a single change, as the app commits each.
pub(crate) fn tap(v: &mut Visit, k: usize) -> Result<(), Error> {
    let s = |i: usize| StaffId::parse(&format!("s-{:03}", i % STAFF));
    let checks = [
        "tthc-posted",
        "feedback-phone-posted",
        "hotline",
        "rating-forms",
        "one-stop-staffed",
    ];
    match k {
        0..60 => v.record_attendance(&s(k)?, AttendanceMark::Present, "", None),
        60..300 => {
            let kind = ConductKind::ALL[(k - 60) / STAFF];
            v.record_conduct(&s(k)?, kind, ConductResult::Compliant, "")
        }
        300..315 => v.record_check(
            &CheckId::parse(checks[k % checks.len()])?,
            CheckResult::Pass,
            "",
        ),
        315..320 => v
            .add_finding(NewFinding {
                category: "Kỷ luật".into(),
                severity: Severity::Minor,
                text: format!("Tồn tại số {k}"),
                recommendation: "Chấn chỉnh".into(),
                related_staff: vec![s(k)?],
            })
            .map(|_| ()),
        320..340 => {
            let len = v.state()?.narrative.chars().count();
            v.splice_narrative(len, 0, "Ghi nhận thêm. ")
        }
        _ => {
            let mark = if k.is_multiple_of(3) {
                AttendanceMark::Absent(AbsenceReason::BusinessTrip)
            } else {
                AttendanceMark::Late
            };
            v.record_attendance(&s(k)?, mark, "", None)
        }
    }
}

pub struct Recorded {
    pub raw_change_bytes: usize,
    pub saved_bytes: usize,
    pub changes: usize,
}

/// Records `visits` visits of `edits` single-change taps each, in memory, then
/// stores them in the device store.
fn record(
    store: &mut Store,
    team: &str,
    first: usize,
    visits: usize,
    edits: usize,
) -> Result<Recorded, String> {
    let template = Template::from_json(TEMPLATE).map_err(|e| e.to_string())?;
    let mut out = Recorded {
        raw_change_bytes: 0,
        saved_bytes: 0,
        changes: 0,
    };
    for n in first..first + visits {
        let mut v = Visit::create(new_visit(n, team)?, &template, store.session())
            .map_err(|e| e.to_string())?;
        for k in 0..edits {
            tap(&mut v, k).map_err(|e| e.to_string())?;
        }
        let changes = v.automerge().get_changes(&[]);
        out.changes += changes.len();
        out.raw_change_bytes += changes.iter().map(|c| c.raw_bytes().len()).sum::<usize>();
        let saved = v.save();
        out.saved_bytes += saved.len();
        store.insert_loaded(v, &saved).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

struct Phone {
    store: Store,
    client: SyncClient,
}

async fn enroll(
    server: &Server,
    bin: &Path,
    url: &str,
    user: &str,
    team: &str,
    dir: &Path,
) -> Result<Phone, String> {
    let code = server.enroll_code(bin, user, team)?;
    let mut creds: Credentials = kiemtra_client::enroll(&server.url, &code, user)
        .await
        .map_err(|e| e.to_string())?;
    creds.server = url.to_owned();
    let editor = Editor::new(
        UserId::parse(&creds.user_id).map_err(|e| e.to_string())?,
        DeviceId::parse(&creds.device_id).map_err(|e| e.to_string())?,
    );
    let mut store = Store::open(dir.join("device.db"), editor).map_err(|e| e.to_string())?;
    creds.save(&mut store).map_err(|e| e.to_string())?;
    let client = SyncClient::new(creds, SyncOptions::default()).map_err(|e| e.to_string())?;
    Ok(Phone { store, client })
}

async fn sync(p: &mut Phone) -> Result<SyncReport, String> {
    let r = p
        .client
        .sync(&mut p.store, &mut |_| {})
        .await
        .map_err(|e| e.to_string())?;
    if !r.errors.is_empty() {
        return Err(format!("per-visit errors: {:?}", r.errors));
    }
    Ok(r)
}

/// Syncs every phone at once; gives the phones back with the summed
/// report and each phone's sync wall time, in the phones' order.
async fn sync_all(
    phones: Vec<Phone>,
) -> Result<(Vec<Phone>, SyncReport, Vec<std::time::Duration>), String> {
    let tasks: Vec<_> = phones
        .into_iter()
        .map(|mut p| {
            tokio::spawn(async move {
                let t = Instant::now();
                let r = sync(&mut p).await;
                r.map(|r| (p, r, t.elapsed()))
            })
        })
        .collect();
    let mut total = SyncReport::default();
    let mut back = Vec::with_capacity(tasks.len());
    let mut walls = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (p, r, wall) = task.await.map_err(|e| e.to_string())??;
        total.requests += r.requests;
        total.bytes_sent += r.bytes_sent;
        total.bytes_received += r.bytes_received;
        total.visits_uploaded += r.visits_uploaded;
        total.visits_downloaded += r.visits_downloaded;
        back.push(p);
        walls.push(wall);
    }
    Ok((back, total, walls))
}

fn mb(b: usize) -> String {
    format!("{:.2} MB", b as f64 / 1e6)
}

/// Where a phase started: wall clock, and the CPU time used so far by the
/// server process and by this one (the simulated devices).
struct Mark {
    wall: Instant,
    server_cpu: f64,
    device_cpu: f64,
}

impl Mark {
    fn start(server: &Server) -> Self {
        Self {
            wall: Instant::now(),
            server_cpu: server.cpu_seconds(),
            device_cpu: crate::server::own_cpu_seconds(),
        }
    }

    /// One table row for the phase that started at this mark.
    fn line(&self, server: &Server, phase: &str, r: &SyncReport) {
        println!(
            "| {phase} | {} | {} | {} | {} | {:.3} s | {:.2} s | {:.2} s |",
            r.requests,
            mb(r.bytes_sent as usize),
            mb(r.bytes_received as usize),
            r.visits_uploaded.max(r.visits_downloaded),
            self.wall.elapsed().as_secs_f64(),
            server.cpu_seconds() - self.server_cpu,
            crate::server::own_cpu_seconds() - self.device_cpu,
        );
    }
}

pub async fn standard(bin: &Path, visits: usize, edits: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::start(bin, &dir.path().join("server"))?;
    let mut a = enroll(
        &server,
        bin,
        &server.url,
        "insp-a",
        "team-1",
        &dir.path().join("a"),
    )
    .await?;
    let t = Instant::now();
    let rec = record(&mut a.store, "team-1", 0, visits, edits)?;
    println!(
        "recorded {visits} visits × {STAFF} staff × {edits} edits = {} changes in {:.1} s; raw change bytes {}; saved documents {}",
        rec.changes,
        t.elapsed().as_secs_f64(),
        mb(rec.raw_change_bytes),
        mb(rec.saved_bytes)
    );
    println!(
        "\n| phase | requests | bytes up | bytes down | visits | wall | server CPU | devices CPU |\n|---|---|---|---|---|---|---|---|"
    );
    let mark = Mark::start(&server);
    let up = sync(&mut a).await?;
    mark.line(&server, "upload (1 device)", &up);
    let rss_upload = server.peak_rss_kib();

    let mut one = enroll(
        &server,
        bin,
        &server.url,
        "insp-b",
        "team-1",
        &dir.path().join("b"),
    )
    .await?;
    let mark = Mark::start(&server);
    let down = sync(&mut one).await?;
    mark.line(&server, "download (1 fresh device)", &down);

    let mut four = Vec::new();
    for i in 0..4 {
        four.push(
            enroll(
                &server,
                bin,
                &server.url,
                &format!("insp-c{i}"),
                "team-1",
                &dir.path().join(format!("c{i}")),
            )
            .await?,
        );
    }
    let mark = Mark::start(&server);
    let (four, total, _) = sync_all(four).await?;
    mark.line(
        &server,
        "download (4 fresh devices at once, totals)",
        &total,
    );

    // What the download left for later: each phone loads and checks a
    // received visit when it is first opened. Here all four open every
    // visit at once, the most that can be asked of them.
    let mark = Mark::start(&server);
    let opened: Vec<_> = four
        .into_iter()
        .map(|mut p| {
            tokio::task::spawn_blocking(move || {
                p.store
                    .verify_pending()
                    .map(|v| (v.verified, v.removed.len()))
            })
        })
        .collect();
    let mut checked = 0;
    for task in opened {
        let (n, removed) = task
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        if removed > 0 {
            return Err(format!("{removed} received visits failed their check"));
        }
        checked += n;
    }
    mark.line(
        &server,
        "then: 4 devices open (load, check) every received visit",
        &SyncReport {
            visits_downloaded: checked,
            ..SyncReport::default()
        },
    );

    // Steady state: one edit in one visit, then sync.
    a.store
        .edit(&VisitId::parse("v-0000").map_err(|e| e.to_string())?, |v| {
            v.record_attendance(&StaffId::parse("s-007")?, AttendanceMark::Late, "", None)
        })
        .map_err(|e| e.to_string())?;
    let mark = Mark::start(&server);
    let steady = sync(&mut a).await?;
    mark.line(
        &server,
        "steady state: 1 new change, all visits offered",
        &steady,
    );

    println!(
        "\nserver peak RSS: {:.1} MiB after upload, {:.1} MiB at the end",
        rss_upload as f64 / 1024.0,
        server.peak_rss_kib() as f64 / 1024.0
    );
    println!(
        "upload wire bytes / saved document bytes = {:.3} (+{} bytes per visit of framing)",
        up.bytes_sent as f64 / rec.saved_bytes as f64,
        (up.bytes_sent as usize).saturating_sub(rec.saved_bytes) / visits.max(1)
    );
    println!(
        "download wire bytes / saved document bytes = {:.3} (+{} bytes per visit of framing, listing and signatures)",
        down.bytes_received as f64 / rec.saved_bytes as f64,
        (down.bytes_received as usize).saturating_sub(rec.saved_bytes) / visits.max(1)
    );
    Ok(())
}

pub async fn history(bin: &Path, changes: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::start(bin, &dir.path().join("server"))?;
    let mut a = enroll(
        &server,
        bin,
        &server.url,
        "insp-a",
        "team-1",
        &dir.path().join("a"),
    )
    .await?;
    let template = Template::from_json(TEMPLATE).map_err(|e| e.to_string())?;
    let long_id = VisitId::parse("v-0000").map_err(|e| e.to_string())?;
    let fresh_id = VisitId::parse("v-0001").map_err(|e| e.to_string())?;
    let mut long = Visit::create(new_visit(0, "team-1")?, &template, a.store.session())
        .map_err(|e| e.to_string())?;
    for k in 0..changes {
        let mark = if k % 2 == 0 {
            AttendanceMark::Present
        } else {
            AttendanceMark::Late
        };
        long.record_attendance(&staff(k % STAFF)?, mark, "", None)
            .map_err(|e| e.to_string())?;
    }
    let saved = long.save();
    a.store
        .insert_loaded(long, &saved)
        .map_err(|e| e.to_string())?;
    a.store
        .create_visit(new_visit(1, "team-1")?, &template)
        .map_err(|e| e.to_string())?;
    sync(&mut a).await?;
    println!(
        "visit with {} changes of history ({}), and a fresh visit, both synced",
        changes + 1,
        mb(saved.len())
    );
    println!(
        "\n| case | median sync wall | p90 | bytes up | bytes down | new change | bytes bound |\n|---|---|---|---|---|---|---|"
    );
    // The two cases alternate, sync by sync, so that a shared machine's
    // slow and fast spells fall on both alike.
    let cases = [
        ("one new change, long history", &long_id),
        ("one new change, fresh visit", &fresh_id),
    ];
    let mut times: [Vec<std::time::Duration>; 2] = [Vec::new(), Vec::new()];
    let mut last = [SyncReport::default(), SyncReport::default()];
    let mut change_bytes = [0usize; 2];
    for k in 0..60 {
        for (c, (_, id)) in cases.iter().enumerate() {
            a.store
                .edit(id, |v| {
                    v.record_attendance(
                        &StaffId::parse(&format!("s-{:03}", k % STAFF))?,
                        AttendanceMark::Present,
                        &format!("{k}"),
                        None,
                    )
                })
                .map_err(|e| e.to_string())?;
            change_bytes[c] = a
                .store
                .visit(id)
                .map_err(|e| e.to_string())?
                .automerge()
                .get_last_local_change()
                .map_or(0, |ch| ch.raw_bytes().len());
            let t = Instant::now();
            last[c] = sync(&mut a).await?;
            times[c].push(t.elapsed());
        }
    }
    let mut medians = Vec::new();
    for (c, (label, _)) in cases.iter().enumerate() {
        let t = &mut times[c];
        t.sort();
        let median = t[t.len() / 2];
        medians.push(median);
        // The target: wire bytes ≤ 1.1 × what is new + 100 B per visit
        // (both visits are offered in each request).
        let bound = change_bytes[c] * 11 / 10 + 100 * cases.len();
        println!(
            "| {label} | {:.2} ms | {:.2} ms | {} B | {} B | {} B | {} B up {} |",
            median.as_secs_f64() * 1e3,
            t[t.len() * 9 / 10].as_secs_f64() * 1e3,
            last[c].bytes_sent,
            last[c].bytes_received,
            change_bytes[c],
            bound,
            if last[c].bytes_sent as usize <= bound {
                "✔"
            } else {
                "✘"
            }
        );
    }
    // The tightest case for the bytes bound: a device that holds only the
    // one visit, so nothing else in the request shares the 100 B.
    let mut b = enroll(
        &server,
        bin,
        &server.url,
        "insp-b",
        "team-2",
        &dir.path().join("b"),
    )
    .await?;
    let only_id = VisitId::parse("v-0002").map_err(|e| e.to_string())?;
    b.store
        .create_visit(new_visit(2, "team-2")?, &template)
        .map_err(|e| e.to_string())?;
    sync(&mut b).await?;
    let (mut only, mut only_change) = (SyncReport::default(), 0);
    for k in 0..5 {
        b.store
            .edit(&only_id, |v| {
                v.record_attendance(
                    &StaffId::parse(&format!("s-{:03}", k % STAFF))?,
                    AttendanceMark::Late,
                    "",
                    None,
                )
            })
            .map_err(|e| e.to_string())?;
        only_change = b
            .store
            .visit(&only_id)
            .map_err(|e| e.to_string())?
            .automerge()
            .get_last_local_change()
            .map_or(0, |ch| ch.raw_bytes().len());
        only = sync(&mut b).await?;
    }
    let bound = only_change * 11 / 10 + 100;
    println!(
        "| one new change, the device's only visit | — | — | {} B | {} B | {only_change} B | {bound} B up {} |",
        only.bytes_sent,
        only.bytes_received,
        if only.bytes_sent as usize <= bound {
            "✔"
        } else {
            "✘"
        }
    );
    println!(
        "\nratio long/fresh (median): {:.2}",
        medians[0].as_secs_f64() / medians[1].as_secs_f64()
    );
    Ok(())
}

/// A day's work over a shaped link: what was recorded, and the link.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct ShapedDay {
    /// Visits recorded during the day.
    #[arg(long, default_value_t = 10)]
    pub visits: usize,
    /// Single-change taps per visit.
    #[arg(long, default_value_t = 500)]
    pub edits: usize,
    #[arg(long, default_value_t = 384)]
    pub kbit: u64,
    #[arg(long, default_value_t = 300)]
    pub rtt_ms: u64,
    /// Percent of segments lost once (each holds back what follows for one
    /// retransmission timeout).
    #[arg(long, default_value_t = 1.0)]
    pub loss: f64,
    /// Photos taken during the day, uploaded after the visits (0: none).
    #[arg(long, default_value_t = 3)]
    pub photos: usize,
    /// Size of each photo, kB (a phone's photo scaled down for upload).
    #[arg(long, default_value_t = 200)]
    pub photo_kb: usize,
}

pub async fn shaped(bin: &Path, day: ShapedDay) -> Result<(), String> {
    let ShapedDay {
        visits,
        edits,
        kbit,
        rtt_ms,
        loss,
        photos,
        photo_kb,
    } = day;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let server = Server::start(bin, &dir.path().join("server"))?;
    let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], server.port()));
    let rtt = Duration::from_millis(rtt_ms);
    let link = Link {
        bytes_per_sec: kbit as f64 * 1000.0 / 8.0,
        one_way: rtt / 2,
        loss: loss / 100.0,
        rto: rtt.max(Duration::from_millis(200)),
    };
    let shaper = Shaper::start(upstream, link)
        .await
        .map_err(|e| e.to_string())?;
    let url = format!("http://127.0.0.1:{}", shaper.port);
    let mut a = enroll(
        &server,
        bin,
        &url,
        "insp-a",
        "team-1",
        &dir.path().join("a"),
    )
    .await?;
    let rec = record(&mut a.store, "team-1", 0, visits, edits)?;
    println!(
        "a day's work: {visits} visits × {edits} edits ({} changes, raw {}, saved {}); link {kbit} kbit/s, {rtt_ms} ms round trip, {loss}% segment loss",
        rec.changes,
        mb(rec.raw_change_bytes),
        mb(rec.saved_bytes)
    );
    println!(
        "\n| phase | requests | bytes up | bytes down | visits | wall | server CPU | devices CPU |\n|---|---|---|---|---|---|---|---|"
    );
    let mark = Mark::start(&server);
    let up = sync(&mut a).await?;
    mark.line(&server, "upload a day's work over the shaped link", &up);
    let mut b = enroll(
        &server,
        bin,
        &url,
        "insp-b",
        "team-1",
        &dir.path().join("b"),
    )
    .await?;
    let mark = Mark::start(&server);
    let down = sync(&mut b).await?;
    mark.line(
        &server,
        "a supervisor's phone receives it over the same link",
        &down,
    );
    if photos > 0 && visits > 0 {
        photo_phase(&server, &mut a, visits, photos, photo_kb, kbit).await?;
    }
    drop(shaper);
    Ok(())
}

/// The day's photos over the shaped link: each kept on the phone with its
/// reference (one per visit in turn), the references synced, then the files
/// uploaded in pieces.
async fn photo_phase(
    server: &Server,
    a: &mut Phone,
    visits: usize,
    photos: usize,
    photo_kb: usize,
    kbit: u64,
) -> Result<(), String> {
    let check = CheckId::parse("tthc-posted").map_err(|e| e.to_string())?;
    let mut files = 0usize;
    for i in 0..photos {
        let id = VisitId::parse(&format!("v-{:04}", i % visits)).map_err(|e| e.to_string())?;
        // Photo bytes do not compress: pseudo-random, different per photo.
        let mut x = 0x2545_f491_4f6c_dd1du64 ^ (i as u64 + 1);
        let bytes: Vec<u8> = (0..photo_kb * 1000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        a.store
            .add_evidence(&id, &check, &bytes)
            .map_err(|e| e.to_string())?;
        files += bytes.len();
    }
    let mark = Mark::start(server);
    let refs = sync(a).await?;
    let up = a
        .client
        .upload_evidence(&mut a.store)
        .await
        .map_err(|e| e.to_string())?;
    if up.uploaded != photos || !up.errors.is_empty() {
        return Err(format!("photos not all uploaded: {up:?}"));
    }
    let both = SyncReport {
        requests: refs.requests + up.requests,
        bytes_sent: refs.bytes_sent + up.bytes_sent,
        bytes_received: refs.bytes_received,
        visits_uploaded: refs.visits_uploaded,
        ..SyncReport::default()
    };
    mark.line(
        server,
        &format!("then: {photos} photos of {photo_kb} kB (references synced, files uploaded)"),
        &both,
    );
    println!(
        "photos: {} of files sent as {} of evidence pieces in {} requests; at {kbit} kbit/s the files alone need {:.1} s",
        mb(files),
        mb(up.bytes_sent as usize),
        up.requests,
        files as f64 * 8.0 / (kbit as f64 * 1000.0)
    );
    Ok(())
}

/// Many inspectors at once: `devices` phones in teams of `per_team`, each
/// with a day's work recorded offline (`visits` visits of `edits` taps),
/// all coming back into coverage together: every phone uploads at once,
/// then every phone syncs again and receives its team-mates' visits. For
/// the capacity arithmetic in BENCHMARKS.md.
/// Where the fleet's servers keep their data: one process on its embedded
/// store, or `servers` processes over one PostgreSQL database.
pub struct Spread {
    pub database: Option<String>,
    pub servers: usize,
}

pub async fn fleet(
    bin: &Path,
    spread: Spread,
    devices: usize,
    per_team: usize,
    visits: usize,
    edits: usize,
) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let extra: Vec<String> = match &spread.database {
        Some(url) => vec!["--database".into(), url.clone()],
        None => Vec::new(),
    };
    if spread.database.is_none() && spread.servers != 1 {
        return Err("several servers share a PostgreSQL database: give --database".into());
    }
    let servers = (0..spread.servers.max(1))
        .map(|i| Server::start_with(bin, &dir.path().join(format!("server{i}")), &extra))
        .collect::<Result<Vec<_>, _>>()?;
    let per_team = per_team.max(1);
    let t = Instant::now();
    let mut phones = Vec::with_capacity(devices);
    let mut recorded = Recorded {
        raw_change_bytes: 0,
        saved_bytes: 0,
        changes: 0,
    };
    for d in 0..devices {
        let team = format!("team-{}", d / per_team);
        let server = &servers[d % servers.len()];
        let mut p = enroll(
            server,
            bin,
            &server.url,
            &format!("insp-{d}"),
            &team,
            &dir.path().join(format!("d{d}")),
        )
        .await?;
        let r = record(&mut p.store, &team, d * visits, visits, edits)?;
        recorded.changes += r.changes;
        recorded.raw_change_bytes += r.raw_change_bytes;
        recorded.saved_bytes += r.saved_bytes;
        phones.push(p);
    }
    let backend = match &spread.database {
        Some(_) => format!(
            "{} server process(es) over one PostgreSQL database",
            servers.len()
        ),
        None => "one server process on its embedded SQLite store".to_owned(),
    };
    println!(
        "{backend}; {devices} phones in teams of {per_team}, each with {visits} visits × {edits} taps recorded offline ({} changes in all; saved documents {}), set up in {:.1} s",
        recorded.changes,
        mb(recorded.saved_bytes),
        t.elapsed().as_secs_f64()
    );
    println!(
        "\n| phase | requests | req/s | p50 sync | p99 sync | wall | servers CPU | database CPU | devices CPU |\n|---|---|---|---|---|---|---|---|---|"
    );
    let cpu = |servers: &[Server]| servers.iter().map(Server::cpu_seconds).sum::<f64>();
    for phase in [
        "every phone uploads its day at once",
        "every phone syncs again: its team-mates' visits arrive",
    ] {
        let (wall, server_cpu, db_cpu, device_cpu) = (
            Instant::now(),
            cpu(&servers),
            crate::server::postgres_usage().0,
            crate::server::own_cpu_seconds(),
        );
        let (back, total, mut walls) = sync_all(phones).await?;
        phones = back;
        let elapsed = wall.elapsed().as_secs_f64();
        walls.sort();
        let at = |q: f64| walls[((walls.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "| {phase} | {} | {:.0} | {:.0} ms | {:.0} ms | {elapsed:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            total.requests,
            total.requests as f64 / elapsed.max(1e-9),
            at(0.5).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            cpu(&servers) - server_cpu,
            crate::server::postgres_usage().0 - db_cpu,
            crate::server::own_cpu_seconds() - device_cpu,
        );
    }
    // Every phone now holds every visit of its team.
    for (d, p) in phones.iter().enumerate() {
        let team = d / per_team;
        let mates = (devices - team * per_team).min(per_team);
        let held = p.store.list_visits().map_err(|e| e.to_string())?.len();
        if held != mates * visits {
            return Err(format!(
                "phone {d} holds {held} visits, its team has {}",
                mates * visits
            ));
        }
    }
    let rss: u64 = servers.iter().map(Server::peak_rss_kib).sum();
    println!(
        "\nservers' peak RSS (summed over {} process(es)): {:.1} MiB",
        servers.len(),
        rss as f64 / 1024.0
    );
    if spread.database.is_some() {
        println!(
            "PostgreSQL resident memory now (summed over its processes, shared buffers counted in each): {:.1} MiB",
            crate::server::postgres_usage().1 as f64 / 1024.0
        );
    }
    Ok(())
}
