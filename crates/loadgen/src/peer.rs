//! The peer a team would otherwise pick: Automerge's own sync protocol (the
//! one automerge-repo speaks), run in memory on the same workload, one sync
//! session per visit. It counts messages, sequential round trips and bytes;
//! no network, so its times are CPU only and lower bounds.

use automerge::Automerge;
use automerge::sync::{Message, State, SyncDoc};
use kiemtra_core::{DeviceId, Editor, Session, Template, UserId, Visit};
use std::time::{Duration, Instant};

use crate::workload::{TEMPLATE, new_visit, tap};

#[derive(Default)]
struct Exchange {
    messages_up: usize,
    messages_down: usize,
    bytes_up: usize,
    bytes_down: usize,
    /// Sequential round trips of the longest visit's session: what the
    /// wall time over a slow link follows when every visit's session runs
    /// at once on one connection.
    round_trips: usize,
    cpu: Duration,
}

impl Exchange {
    fn add(&mut self, other: Exchange) {
        self.messages_up += other.messages_up;
        self.messages_down += other.messages_down;
        self.bytes_up += other.bytes_up;
        self.bytes_down += other.bytes_down;
        self.round_trips = self.round_trips.max(other.round_trips);
        self.cpu += other.cpu;
    }

    fn line(&self, phase: &str) {
        println!(
            "| {phase} | {} + {} | {} | {} B | {} B | {:.3} s |",
            self.messages_up,
            self.messages_down,
            self.round_trips,
            self.bytes_up,
            self.bytes_down,
            self.cpu.as_secs_f64()
        );
    }
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// One message from `from` to `to`, if `from` has anything to say, encoded
/// and decoded as on a wire; returns its size.
fn send(
    from: &Automerge,
    from_state: &mut State,
    to: &mut Automerge,
    to_state: &mut State,
) -> Result<Option<usize>, String> {
    let Some(m) = from.generate_sync_message(from_state) else {
        return Ok(None);
    };
    let bytes = m.encode();
    to.receive_sync_message(to_state, Message::decode(&bytes).map_err(err)?)
        .map_err(err)?;
    Ok(Some(bytes.len()))
}

/// Runs one sync session between `device` and `server` until neither has
/// anything to say.
fn exchange(
    device: &mut Automerge,
    server: &mut Automerge,
    device_state: &mut State,
    server_state: &mut State,
) -> Result<Exchange, String> {
    let mut x = Exchange::default();
    let start = Instant::now();
    loop {
        let up = send(device, device_state, server, server_state)?;
        let down = send(server, server_state, device, device_state)?;
        if up.is_none() && down.is_none() {
            break;
        }
        if let Some(n) = up {
            x.messages_up += 1;
            x.bytes_up += n;
        }
        if let Some(n) = down {
            x.messages_down += 1;
            x.bytes_down += n;
        }
        x.round_trips += 1;
        if x.round_trips > 1000 {
            return Err("the peer protocol did not settle".into());
        }
    }
    x.cpu = start.elapsed();
    Ok(x)
}

/// A sync state as a device would keep it between sessions (Automerge
/// persists only the shared heads).
fn persisted(state: &State) -> Result<State, String> {
    State::decode(&state.encode()).map_err(err)
}

pub fn peer(visits: usize, edits: usize) -> Result<(), String> {
    let template = Template::from_json(TEMPLATE).map_err(err)?;
    let session = Session::new(Editor::new(
        UserId::parse("bench-user").map_err(err)?,
        DeviceId::parse("bench-device").map_err(err)?,
    ));
    let t = Instant::now();
    let mut recorded = Vec::with_capacity(visits);
    let mut raw = 0usize;
    let mut saved = 0usize;
    for n in 0..visits {
        let mut v = Visit::create(new_visit(n, "team-1")?, &template, &session).map_err(err)?;
        for k in 0..edits {
            tap(&mut v, k).map_err(err)?;
        }
        raw += v
            .automerge()
            .get_changes(&[])
            .iter()
            .map(|c| c.raw_bytes().len())
            .sum::<usize>();
        saved += v.save().len();
        recorded.push(v);
    }
    println!(
        "recorded {visits} visits × {edits} edits in {:.1} s; raw change bytes {:.2} MB; saved documents {:.2} MB\n",
        t.elapsed().as_secs_f64(),
        raw as f64 / 1e6,
        saved as f64 / 1e6
    );
    println!(
        "| phase (Automerge sync protocol, in memory) | messages up + down | round trips | bytes up | bytes down | CPU |"
    );
    println!("|---|---|---|---|---|---|");

    // Upload: each visit to a server that has nothing of it.
    let mut upload = Exchange::default();
    let mut servers = Vec::with_capacity(visits);
    let mut states = Vec::with_capacity(visits);
    for v in &recorded {
        let mut device = v.automerge().clone();
        let mut server = Automerge::new();
        let (mut ds, mut ss) = (State::new(), State::new());
        upload.add(exchange(&mut device, &mut server, &mut ds, &mut ss)?);
        servers.push(server);
        states.push((persisted(&ds)?, persisted(&ss)?));
    }
    upload.line(&format!("upload, {visits} visits"));

    // A fresh device receives every visit.
    let mut download = Exchange::default();
    for server in &mut servers {
        let mut device = Automerge::new();
        let (mut ds, mut ss) = (State::new(), State::new());
        download.add(exchange(&mut device, server, &mut ds, &mut ss)?);
    }
    download.line(&format!("download by a fresh device, {visits} visits"));

    // Steady state: one new change in one visit, all visits checked, with
    // the sync states kept from the upload.
    if let (Some(v), Some(server), Some((ds, ss))) = (
        recorded.first_mut(),
        servers.first_mut(),
        states.first_mut(),
    ) {
        tap(v, edits).map_err(err)?;
        let mut device = v.automerge().clone();
        let one = exchange(&mut device, server, ds, ss)?;
        one.line("steady state: 1 new change in 1 visit");
        let mut all = one;
        for ((v, server), (ds, ss)) in recorded
            .iter()
            .zip(servers.iter_mut())
            .zip(states.iter_mut())
            .skip(1)
        {
            let mut device = v.automerge().clone();
            all.add(exchange(&mut device, server, ds, ss)?);
        }
        all.line(&format!(
            "steady state: 1 new change, {visits} visits checked"
        ));
    }
    Ok(())
}
