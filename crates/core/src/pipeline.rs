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

/// One entry per item given to [`load_pipelined`] (or [`map_pipelined`]),
/// in input order: `None` for an item with no document to load, else its
/// document's result. At most `window` items are worked on ahead of the
/// caller, which bounds memory.
pub struct Loads<'a, O> {
    docs: &'a [Option<&'a [u8]>],
    jobs: Sender<usize>,
    results: Receiver<(usize, O)>,
    pending: HashMap<usize, O>,
    stopped: fn() -> O,
    next: usize,
    queued: usize,
    window: usize,
}

impl<O> Loads<'_, O> {
    fn queue_ahead(&mut self) {
        let limit = self.docs.len().min(self.next + self.window);
        while self.queued < limit {
            if self.docs[self.queued].is_some() && self.jobs.send(self.queued).is_err() {
                return;
            }
            self.queued += 1;
        }
    }
}

impl<O> Iterator for Loads<'_, O> {
    type Item = Option<O>;

    fn next(&mut self) -> Option<Self::Item> {
        let at = self.next;
        if at >= self.docs.len() {
            return None;
        }
        self.next += 1;
        self.queue_ahead();
        if self.docs[at].is_none() {
            return Some(None);
        }
        loop {
            if let Some(r) = self.pending.remove(&at) {
                return Some(Some(r));
            }
            match self.results.recv() {
                Ok((k, r)) => {
                    self.pending.insert(k, r);
                }
                Err(_) => return Some(Some((self.stopped)())),
            }
        }
    }
}

/// Loads the given documents on the machine's cores, running `then` on
/// each loaded visit on the loading thread, while `body` takes one entry
/// per item of `docs`, in order, from the [`Loads`] iterator on the calling
/// thread. Returns what `body` returns. A panic while loading one document
/// becomes that document's error.
pub fn load_pipelined<R: Send, T>(
    docs: &[Option<&[u8]>],
    session: &Session,
    window: usize,
    then: impl Fn(&Visit) -> R + Sync,
    body: impl FnOnce(&mut Loads<'_, Loaded<R>>) -> T,
) -> T {
    map_pipelined(
        docs,
        window,
        |doc| {
            Visit::load(doc, session).map(|v| {
                let r = then(&v);
                (v, r)
            })
        },
        || Err(Error::Corrupt("loading the document panicked".into())),
        body,
    )
}

/// Like [`load_pipelined`] with any work on each document: `work` runs on
/// the machine's cores (`failed` stands in for a run that panicked, or for
/// results when the workers stopped), `body` takes the results in order.
pub fn map_pipelined<O: Send, T>(
    docs: &[Option<&[u8]>],
    window: usize,
    work: impl Fn(&[u8]) -> O + Sync,
    failed: fn() -> O,
    body: impl FnOnce(&mut Loads<'_, O>) -> T,
) -> T {
    let (jobs, job_queue) = channel::<usize>();
    let (done, results) = channel::<(usize, O)>();
    let job_queue = Mutex::new(job_queue);
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(docs.iter().flatten().count())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let done = done.clone();
            let (job_queue, work) = (&job_queue, &work);
            scope.spawn(move || {
                loop {
                    let job = match job_queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(k) = job else { return };
                    let Some(doc) = docs[k] else { continue };
                    let out =
                        catch_unwind(AssertUnwindSafe(|| work(doc))).unwrap_or_else(|_| failed());
                    if done.send((k, out)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done);
        let mut loads = Loads {
            docs,
            jobs,
            results,
            pending: HashMap::new(),
            stopped: failed,
            next: 0,
            queued: 0,
            window: window.max(1),
        };
        // Dropping `loads` at the end closes both channels: the workers
        // find no more jobs, or nobody to hand a result to, and end.
        body(&mut loads)
    })
}
