//! The ingest side's health as an orchestrator needs it: whether records are being stored,
//! spooled or lost, and why, so that `/healthz` does not answer "ok" while every write fails.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Drops this recent make the collector `failing`.
const RECENT: Duration = Duration::from_secs(60);

/// Overall state, worst first when compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthStatus {
    /// Records are stored as they arrive.
    Ok,
    /// Nothing is lost, but the store is failing or behind and records wait in the spool.
    Degraded,
    /// Records are being lost (the spool is full or failing), or the store fails without a
    /// spool to fall back on.
    Failing,
}

impl HealthStatus {
    /// `ok`, `degraded` or `failing`.
    pub fn as_str(self) -> &'static str {
        match self {
            HealthStatus::Ok => "ok",
            HealthStatus::Degraded => "degraded",
            HealthStatus::Failing => "failing",
        }
    }
}

/// The ingest side's health with the reasons for anything but `ok`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthReport {
    /// The overall state.
    pub status: HealthStatus,
    /// Why it is not `ok`, one sentence each.
    pub reasons: Vec<String>,
    /// The last store write or spool append failed for lack of disk space.
    pub disk_full: bool,
}

/// What the writers last saw, kept by [`crate::Metrics`].
#[derive(Debug, Default)]
pub(crate) struct HealthState {
    /// The last `insert_batch` error, while the store keeps failing.
    store_error: Mutex<Option<String>>,
    /// The last drop and its reason.
    last_drop: Mutex<Option<(Instant, String)>>,
    disk_full: AtomicBool,
}

/// Whether an error text says the disk (or the file system's quota) is full: SQLite's
/// `SQLITE_FULL` ("database or disk is full"), `ENOSPC` and `EDQUOT` from the spool or a
/// server backend.
fn is_disk_full(error: &str) -> bool {
    let e = error.to_ascii_lowercase();
    e.contains("disk is full")
        || e.contains("no space left")
        || e.contains("disk quota exceeded")
        || e.contains("could not extend file")
}

impl HealthState {
    /// Records the outcome of one `insert_batch` call.
    pub(crate) fn store_outcome(&self, error: Option<&dyn std::fmt::Display>) {
        let mut slot = self.store_error.lock().unwrap_or_else(|e| e.into_inner());
        match error {
            Some(e) => {
                let text = e.to_string();
                self.disk_full.store(is_disk_full(&text), Ordering::Relaxed);
                *slot = Some(text);
            }
            None => {
                if slot.take().is_some() {
                    self.disk_full.store(false, Ordering::Relaxed);
                }
            }
        }
    }

    /// Records that records were dropped, and why.
    pub(crate) fn dropped(&self, why: &str) {
        if is_disk_full(why) {
            self.disk_full.store(true, Ordering::Relaxed);
        }
        *self.last_drop.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((Instant::now(), why.to_owned()));
    }

    pub(crate) fn disk_full(&self) -> bool {
        self.disk_full.load(Ordering::Relaxed)
    }

    /// The report, given the bytes waiting in the spool.
    pub(crate) fn report(&self, spool_bytes: u64) -> HealthReport {
        let mut status = HealthStatus::Ok;
        let mut reasons = Vec::new();
        let store_error = self
            .store_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(e) = store_error {
            status = status.max(HealthStatus::Degraded);
            reasons.push(format!("store writes failing: {e}"));
        } else if spool_bytes > 0 {
            status = status.max(HealthStatus::Degraded);
            reasons.push(format!(
                "{spool_bytes} bytes in the spool waiting to be stored"
            ));
        }
        let last_drop = self
            .last_drop
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some((at, why)) = last_drop {
            if at.elapsed() < RECENT {
                status = HealthStatus::Failing;
                reasons.push(format!("records dropped in the last minute: {why}"));
            }
        }
        let disk_full = self.disk_full();
        if disk_full {
            reasons.insert(0, "disk full".to_owned());
        }
        HealthReport {
            status,
            reasons,
            disk_full,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_store_degrades_and_drops_fail() {
        let h = HealthState::default();
        assert_eq!(h.report(0).status, HealthStatus::Ok);
        h.store_outcome(Some(&"database or disk is full"));
        let r = h.report(10);
        assert_eq!(r.status, HealthStatus::Degraded);
        assert!(r.disk_full);
        assert_eq!(r.reasons[0], "disk full");
        h.dropped("spool full");
        assert_eq!(h.report(10).status, HealthStatus::Failing);
        h.store_outcome(None);
        assert!(!h.report(0).disk_full);
    }

    #[test]
    fn a_spool_waiting_for_replay_degrades() {
        let h = HealthState::default();
        let r = h.report(4096);
        assert_eq!(r.status, HealthStatus::Degraded);
        assert!(r.reasons[0].contains("4096 bytes in the spool"));
    }
}
