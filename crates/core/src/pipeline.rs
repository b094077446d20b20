//! Loading many documents on background threads while the caller stores
//! the ones already loaded: validation (an Automerge load and whatever work
//! needs only the document) overlaps with the caller's sequential writes.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender, channel};

use crate::error::{Error, Result};
use crate::session::Session;
use crate::visit::Visit;

type Loaded<R> = Result<(Visit, R)>;

/// Documents being loaded in the background, handed out in input order by
/// its [`Iterator`] implementation. At most `window` documents are loaded ahead of the
/// caller, which bounds memory.
pub struct Loads<R> {
    jobs: Option<Sender<usize>>,
    results: Receiver<(usize, Loaded<R>)>,
    pending: HashMap<usize, Loaded<R>>,
    next: usize,
    queued: usize,
    total: usize,
    window: usize,
}

impl<R> Loads<R> {
    fn queue_ahead(&mut self) {
        let limit = self.total.min(self.next + self.window);
        while self.queued < limit {
            match &self.jobs {
                Some(jobs) if jobs.send(self.queued).is_ok() => self.queued += 1,
                _ => return,
            }
        }
    }
}

impl<R> Iterator for Loads<R> {
    type Item = Loaded<R>;

    /// The next document's result, in input order; `None` after the last.
    fn next(&mut self) -> Option<Loaded<R>> {
        if self.next >= self.total {
            return None;
        }
        self.queue_ahead();
        loop {
            if let Some(r) = self.pending.remove(&self.next) {
                self.next += 1;
                self.queue_ahead();
                return Some(r);
            }
            match self.results.recv() {
                Ok((k, r)) => {
                    self.pending.insert(k, r);
                }
                Err(_) => {
                    self.next += 1;
                    return Some(Err(Error::Corrupt("the loading threads stopped".into())));
                }
            }
        }
    }
}

/// Loads `docs` on the machine's cores, running `then` on each loaded visit
/// on the loading thread, while `body` takes the results in order with
/// its [`Iterator`] implementation on the calling thread. Returns what `body` returns. A
/// panic while loading one document becomes that document's error.
pub fn load_pipelined<R: Send, T>(
    docs: &[&[u8]],
    session: &Session,
    window: usize,
    then: impl Fn(&Visit) -> R + Sync,
    body: impl FnOnce(&mut Loads<R>) -> T,
) -> T {
    let (jobs, job_queue) = channel::<usize>();
    let (done, results) = channel::<(usize, Loaded<R>)>();
    let job_queue = Mutex::new(job_queue);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(docs.len())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done = done.clone();
            let (job_queue, then) = (&job_queue, &then);
            scope.spawn(move || {
                loop {
                    let job = match job_queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(k) = job else { return };
                    let loaded = catch_unwind(AssertUnwindSafe(|| {
                        Visit::load(docs[k], session).map(|v| {
                            let r = then(&v);
                            (v, r)
                        })
                    }))
                    .unwrap_or_else(|_| {
                        Err(Error::Corrupt("loading the document panicked".into()))
                    });
                    if done.send((k, loaded)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done);
        let mut loads = Loads {
            jobs: Some(jobs),
            results,
            pending: HashMap::new(),
            next: 0,
            queued: 0,
            total: docs.len(),
            window: window.max(1),
        };
        let out = body(&mut loads);
        // Stop the workers: no more jobs; a worker still loading finds the
        // results channel closed and ends.
        loads.jobs = None;
        drop(loads);
        out
    })
}
