//! Counters and a latency histogram, rendered in the Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

const BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Default)]
pub struct Metrics {
    pub syncs: AtomicU64,
    pub sync_errors: AtomicU64,
    /// Syncs refused as busy because the queue was full.
    pub syncs_shed: AtomicU64,
    pub visit_errors: AtomicU64,
    pub visits_applied: AtomicU64,
    pub visits_sent: AtomicU64,
    pub bytes_received: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub enrollments: AtomicU64,
    pub enrollment_attempts: AtomicU64,
    pub enrollment_refusals: AtomicU64,
    pub enrollments_limited: AtomicU64,
    pub enrollment_retries: AtomicU64,
    pub auth_failures: AtomicU64,
    pub evidence_bytes_received: AtomicU64,
    pub evidence_rejected: AtomicU64,
    latency_buckets: [AtomicU64; 11],
    latency_count: AtomicU64,
    latency_micros: AtomicU64,
}

impl Metrics {
    pub fn observe_latency(&self, d: Duration) {
        let s = d.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if s <= *b {
                self.latency_buckets[i].fetch_add(1, Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Relaxed);
        self.latency_micros.fetch_add(d.as_micros() as u64, Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, v: &AtomicU64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Relaxed)
            );
        };
        counter(
            &mut out,
            "kiemtra_syncs_total",
            "Sync requests answered.",
            &self.syncs,
        );
        counter(
            &mut out,
            "kiemtra_sync_errors_total",
            "Sync requests refused as a whole.",
            &self.sync_errors,
        );
        counter(
            &mut out,
            "kiemtra_syncs_shed_total",
            "Sync requests refused as busy (503) because the queue was full.",
            &self.syncs_shed,
        );
        counter(
            &mut out,
            "kiemtra_visit_errors_total",
            "Per-visit errors reported inside sync responses.",
            &self.visit_errors,
        );
        counter(
            &mut out,
            "kiemtra_visits_applied_total",
            "Visits whose changes were stored.",
            &self.visits_applied,
        );
        counter(
            &mut out,
            "kiemtra_visits_sent_total",
            "Visits whose changes were sent to devices.",
            &self.visits_sent,
        );
        counter(
            &mut out,
            "kiemtra_bytes_received_total",
            "Sync request body bytes.",
            &self.bytes_received,
        );
        counter(
            &mut out,
            "kiemtra_bytes_sent_total",
            "Sync response body bytes.",
            &self.bytes_sent,
        );
        counter(
            &mut out,
            "kiemtra_enrollments_total",
            "Devices enrolled.",
            &self.enrollments,
        );
        counter(
            &mut out,
            "kiemtra_enrollment_attempts_total",
            "Enrollment requests received.",
            &self.enrollment_attempts,
        );
        counter(
            &mut out,
            "kiemtra_enrollment_refusals_total",
            "Enrollment requests refused (bad code, key or body, too many attempts).",
            &self.enrollment_refusals,
        );
        counter(
            &mut out,
            "kiemtra_enrollments_limited_total",
            "Enrollment requests refused for too many failed attempts from their address.",
            &self.enrollments_limited,
        );
        counter(
            &mut out,
            "kiemtra_enrollment_retries_total",
            "Enrollments repeated with the same code and key: the same device, a new token.",
            &self.enrollment_retries,
        );
        counter(
            &mut out,
            "kiemtra_auth_failures_total",
            "Requests refused for missing, invalid or revoked credentials.",
            &self.auth_failures,
        );
        counter(
            &mut out,
            "kiemtra_evidence_bytes_received_total",
            "Evidence upload bytes received.",
            &self.evidence_bytes_received,
        );
        counter(
            &mut out,
            "kiemtra_evidence_rejected_total",
            "Evidence uploads discarded because the bytes did not match their name.",
            &self.evidence_rejected,
        );
        let name = "kiemtra_sync_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time to answer a sync request.\n# TYPE {name} histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "{name}_bucket{{le=\"{b}\"}} {}",
                self.latency_buckets[i].load(Relaxed)
            );
        }
        let count = self.latency_count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.latency_micros.load(Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {count}");
        out
    }
}
