//! Admission of syncs when more phones come back into coverage than the
//! server can answer at once.
//!
//! At most `slots` syncs are decoded and answered at a time, and at most
//! `queue` more wait for a slot with their body read. A sync that arrives
//! while all of them are taken is refused at once with 503 and a `Retry-After`
//! that gives it its own moment later on: refused syncs are booked one
//! after another at the rate the server can answer (its slots over a
//! moving average of the time a sync held one), so a crowd of phones is
//! told to come back spread over the time the server needs for all of them
//! instead of together. The rate is the server's capacity, not what it
//! answered: a server told to expect few phones would otherwise see few
//! and never book faster. The average follows each answered sync, so a
//! crowd of cheap syncs after costly ones is booked closer within a few
//! dozen answers. Without this bound every request waits, the phones' timeouts run out while the server still
//! works on what they gave up, they send it all again, and the server
//! spends its time on answers nobody reads.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::{Duration, Instant};
use tokio::sync::{Semaphore, SemaphorePermit};

/// Longest wait a busy answer asks for, in seconds.
pub const MAX_RETRY_SECS: u64 = 60;
/// The weight of each answered sync in the moving average of the time a
/// sync holds its slot.
const WEIGHT: f64 = 1.0 / 16.0;
/// The time a sync is assumed to hold its slot before any was measured.
const FIRST_SERVICE: Duration = Duration::from_millis(50);
/// The shortest mean time a sync is taken to hold its slot.
const MIN_SERVICE: Duration = Duration::from_millis(2);
/// The longest a sync with its body read waits for a slot; past it, it is
/// refused as busy (well before a phone's own timeout runs out, so the
/// server does not answer requests nobody waits for any more).
pub const SLOT_WAIT: Duration = Duration::from_secs(15);

/// The server's sync admission (see the module's documentation).
pub struct Admission {
    slots: Semaphore,
    slot_count: usize,
    /// Most syncs admitted at once: the slots and the queue before them.
    bound: usize,
    /// Syncs admitted and not yet finished (waiting or answered).
    inside: AtomicUsize,
    book: Mutex<Book>,
}

/// The time syncs hold their slot and the moment up to which refused
/// syncs have been booked.
#[derive(Debug)]
struct Book {
    /// Moving average of the seconds a sync held its slot.
    held: f64,
    /// Syncs answered so far.
    served: u64,
    /// Refused syncs are booked up to here.
    booked_until: Instant,
}

impl Book {
    /// Syncs per second the server can answer with `slots` places.
    fn rate(&self, slots: usize) -> f64 {
        slots as f64 / self.held.max(MIN_SERVICE.as_secs_f64())
    }

    fn answered(&mut self, held: Duration) {
        self.held += (held.as_secs_f64() - self.held) * WEIGHT;
        self.served += 1;
    }
}

/// An admitted sync, waiting for a slot; its place is given back when
/// dropped.
pub struct Place<'a> {
    admission: &'a Admission,
}

/// A slot to decode and answer one sync; when dropped the sync counts as
/// answered and its place is given back.
pub struct Slot<'a> {
    _permit: SemaphorePermit<'a>,
    place: Place<'a>,
    since: Instant,
}

impl Admission {
    pub fn new(slots: usize, queue: usize) -> Self {
        let now = Instant::now();
        let slots = slots.max(1);
        Self {
            slots: Semaphore::new(slots),
            slot_count: slots,
            bound: slots + queue,
            inside: AtomicUsize::new(0),
            book: Mutex::new(Book {
                held: FIRST_SERVICE.as_secs_f64(),
                served: 0,
                booked_until: now,
            }),
        }
    }

    /// Syncs admitted now (waiting for a slot or being answered).
    pub fn inside(&self) -> usize {
        self.inside.load(SeqCst)
    }

    /// Before anything of a request is read (its token not yet checked):
    /// the seconds to tell it to wait when every slot is taken and the
    /// queue is full. It is told the moment booked last and books none of
    /// its own, so requests without a valid token cannot push every
    /// phone's moment back.
    pub fn full(&self) -> Option<u64> {
        (self.inside() >= self.bound).then(|| self.horizon(Instant::now()))
    }

    /// Seconds from `now` to the last booked moment (at least 1).
    fn horizon(&self, now: Instant) -> u64 {
        let book = match self.book.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        retry_secs(book.booked_until.saturating_duration_since(now))
    }

    /// A place among the admitted, or the seconds to tell the request to
    /// wait.
    pub fn enter(&self) -> Result<Place<'_>, u64> {
        if self.inside.fetch_add(1, SeqCst) >= self.bound {
            self.inside.fetch_sub(1, SeqCst);
            return Err(self.refuse(Instant::now()));
        }
        Ok(Place { admission: self })
    }

    /// Books a moment for a sync that waited [`SLOT_WAIT`] without a slot.
    pub fn rebook(&self) -> u64 {
        self.refuse(Instant::now())
    }

    /// Books a refused sync after those already booked and returns how
    /// many seconds from `now` its moment is (at least 1).
    fn refuse(&self, now: Instant) -> u64 {
        let mut book = match self.book.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        let step = Duration::from_secs_f64(1.0 / book.rate(self.slot_count));
        let after = book.booked_until.max(now) + step;
        let cap = now + Duration::from_secs(MAX_RETRY_SECS);
        book.booked_until = after.min(cap);
        retry_secs(book.booked_until.saturating_duration_since(now))
    }

    fn served(&self, held: Duration) {
        let mut book = match self.book.lock() {
            Ok(b) => b,
            Err(poisoned) => poisoned.into_inner(),
        };
        book.answered(held);
    }
}

/// Whole seconds, rounded up, between 1 and [`MAX_RETRY_SECS`].
fn retry_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.clamp(1, MAX_RETRY_SECS)
}

impl<'a> Place<'a> {
    /// Waits, in arrival order, for a slot.
    pub async fn slot(self) -> Result<Slot<'a>, tokio::sync::AcquireError> {
        let permit = self.admission.slots.acquire().await?;
        Ok(Slot {
            _permit: permit,
            place: self,
            since: Instant::now(),
        })
    }
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.admission.inside.fetch_sub(1, SeqCst);
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.place.admission.served(self.since.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_refuses_and_a_freed_place_admits_again() {
        // One slot and a queue of one: two admitted, the third refused.
        let a = Admission::new(1, 1);
        let first = a.enter().expect("room");
        let second = a.enter().expect("room");
        assert!(a.full().is_some());
        assert!(a.enter().is_err());
        assert_eq!(a.inside(), 2);
        drop(first);
        assert_eq!(a.inside(), 1);
        assert!(a.full().is_none());
        let _third = a.enter().expect("room again");
        drop(second);
    }

    #[test]
    fn without_a_queue_only_the_slots_are_admitted() {
        let a = Admission::new(2, 0);
        let _one = a.enter().expect("a slot");
        let _two = a.enter().expect("a slot");
        assert!(a.enter().is_err());
    }

    #[test]
    fn refused_syncs_are_booked_one_after_another_at_the_answering_rate() {
        let a = Admission::new(1, 0);
        let now = Instant::now();
        {
            let mut book = a.book.lock().expect("book");
            // One slot held 20 ms a sync: 50 a second.
            book.held = 0.020;
            book.booked_until = now;
        }
        // 500 refused at 50 a second: the last is told about 10 s.
        let waits: Vec<u64> = (0..500).map(|_| a.refuse(now)).collect();
        assert_eq!(waits[0], 1);
        assert!(waits.windows(2).all(|w| w[0] <= w[1]), "never earlier");
        assert_eq!(*waits.last().expect("last"), 10);
        // Each second of the booking holds about the rate's worth.
        let in_fifth = waits.iter().filter(|&&w| w == 5).count();
        assert!(
            (45..=55).contains(&in_fifth),
            "{in_fifth} booked in the fifth second"
        );
    }

    #[test]
    fn a_booking_never_asks_for_more_than_the_longest_wait() {
        let a = Admission::new(1, 0);
        let now = Instant::now();
        a.book.lock().expect("book").held = 2.0;
        let last = (0..1_000).map(|_| a.refuse(now)).last().expect("last");
        assert_eq!(last, MAX_RETRY_SECS);
    }

    #[test]
    fn the_rate_follows_the_time_syncs_held_their_slot() {
        let mut book = Book {
            held: FIRST_SERVICE.as_secs_f64(),
            served: 0,
            booked_until: Instant::now(),
        };
        // Syncs holding a slot 40 ms each, on 4 slots: 100 a second.
        for _ in 0..200 {
            book.answered(Duration::from_millis(40));
        }
        assert!((99.0..=101.0).contains(&book.rate(4)), "{}", book.rate(4));
        // Cheap syncs after them: within a few dozen answers the rate is
        // near theirs (10 ms: 400 a second).
        for _ in 0..48 {
            book.answered(Duration::from_millis(10));
        }
        assert!(book.rate(4) > 330.0, "{}", book.rate(4));
        // Requests refused within microseconds do not make it endless.
        for _ in 0..1_000 {
            book.answered(Duration::from_micros(1));
        }
        assert!(book.rate(4) <= 4.0 / MIN_SERVICE.as_secs_f64() + 1e-6);
        assert_eq!(book.served, 1_248);
    }

    #[test]
    fn a_request_refused_before_its_token_is_checked_books_nothing() {
        let a = Admission::new(1, 0);
        let _inside = a.enter().expect("a slot");
        let before = a.book.lock().expect("book").booked_until;
        for _ in 0..1_000 {
            assert_eq!(a.full(), Some(1));
        }
        assert_eq!(a.book.lock().expect("book").booked_until, before);
    }

    #[tokio::test]
    async fn a_finished_slot_gives_its_place_back_and_counts_as_answered() {
        let a = Admission::new(1, 4);
        let place = a.enter().expect("room");
        let slot = place.slot().await.expect("slot");
        assert_eq!(a.inside(), 1);
        drop(slot);
        assert_eq!(a.inside(), 0);
        assert_eq!(a.book.lock().expect("book").served, 1);
    }
}
