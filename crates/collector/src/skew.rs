//! The capture-time rule: which HEP timestamps a record keeps, and which are replaced by the
//! receive time.
//!
//! Stores partition by capture time (SQLite one file per hour or day, PostgreSQL one partition
//! per table and period, ClickHouse by day), so a sender that stamps every packet in another
//! hour makes the store create a partition per packet, and age retention never removes those in
//! the future. The rule, applied in the pipeline so that every backend inherits it:
//!
//! * a timestamp within the *current window* (`receive time − 1 h … receive time +
//!   max_future_secs`) is kept;
//! * a timestamp later than that (a clock in the future) is replaced by the receive time;
//! * an earlier one (within `max_past_secs` when that is set) is kept while the hour it falls
//!   in is one of the `max_past_hours` past hours admitted in the last 24 hours: a capture
//!   replayed from a file, or an agent flushing a backlog, spans a few hours and keeps its
//!   times; a sender spraying timestamps over many hours gets the receive time for the rest.
//!
//! So a sender can make the store create at most `max_past_hours` hour partitions (per
//! retention class and write shard) outside the current window per day, however it stamps its
//! packets. A replaced timestamp is counted (`hepstack_timestamps_clamped_total{reason}`).

use std::collections::HashMap;
use std::sync::Mutex;

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;

/// Why a timestamp was replaced by the receive time (the `reason` label).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClampReason {
    /// Later than the receive time plus `max_future_secs`.
    Future,
    /// Earlier than the receive time minus `max_past_secs`.
    Past,
    /// In a past hour beyond the `max_past_hours` admitted in the last day.
    PastHours,
}

impl ClampReason {
    /// Every reason, in label order.
    pub const ALL: [ClampReason; 3] = [
        ClampReason::Future,
        ClampReason::Past,
        ClampReason::PastHours,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            ClampReason::Future => "future",
            ClampReason::Past => "past",
            ClampReason::PastHours => "past_hours",
        }
    }

    pub(crate) fn index(self) -> usize {
        match self {
            ClampReason::Future => 0,
            ClampReason::Past => 1,
            ClampReason::PastHours => 2,
        }
    }
}

/// The limits of [`TimePolicy`] (see `PipelineConfig`).
#[derive(Clone, Copy, Debug)]
pub struct TimeLimits {
    /// How far after the receive time a timestamp may be, in microseconds.
    pub max_future_us: i64,
    /// How far before the receive time a timestamp may be, in microseconds (`i64::MAX`: no
    /// limit but the hour budget).
    pub max_past_us: i64,
    /// Distinct past hours outside the current window admitted per 24 hours.
    pub max_past_hours: usize,
}

/// Applies the capture-time rule; shared by every receive thread (the lock is taken only for
/// timestamps older than the current window).
#[derive(Debug)]
pub struct TimePolicy {
    limits: TimeLimits,
    /// Admitted past hour (timestamp / 1 h) → receive time it was first admitted at.
    admitted: Mutex<HashMap<i64, i64>>,
}

impl TimePolicy {
    /// A policy with these limits.
    pub fn new(limits: TimeLimits) -> TimePolicy {
        TimePolicy {
            limits,
            admitted: Mutex::new(HashMap::new()),
        }
    }

    /// The time to store for a packet stamped `hep_us` and received at `received_us`, or the
    /// reason the receive time replaces it.
    pub fn check(&self, hep_us: i64, received_us: i64) -> Result<i64, ClampReason> {
        if hep_us > received_us.saturating_add(self.limits.max_future_us) {
            return Err(ClampReason::Future);
        }
        if hep_us >= received_us.saturating_sub(HOUR_US) {
            return Ok(hep_us);
        }
        if hep_us < received_us.saturating_sub(self.limits.max_past_us) {
            return Err(ClampReason::Past);
        }
        let hour = hep_us.div_euclid(HOUR_US);
        let mut admitted = self.admitted.lock().unwrap_or_else(|e| e.into_inner());
        if admitted.contains_key(&hour) {
            return Ok(hep_us);
        }
        if admitted.len() >= self.limits.max_past_hours {
            // Hours admitted more than a day ago free their place.
            admitted.retain(|_, since| received_us.saturating_sub(*since) < DAY_US);
            if admitted.len() >= self.limits.max_past_hours {
                return Err(ClampReason::PastHours);
            }
        }
        admitted.insert(hour, received_us);
        Ok(hep_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000;

    fn policy(max_past_hours: usize) -> TimePolicy {
        TimePolicy::new(TimeLimits {
            max_future_us: HOUR_US,
            max_past_us: 30 * DAY_US,
            max_past_hours,
        })
    }

    #[test]
    fn current_window_is_kept() {
        let p = policy(0);
        assert_eq!(p.check(NOW, NOW), Ok(NOW));
        assert_eq!(p.check(NOW - HOUR_US + 1, NOW), Ok(NOW - HOUR_US + 1));
        assert_eq!(p.check(NOW + HOUR_US, NOW), Ok(NOW + HOUR_US));
    }

    #[test]
    fn far_future_and_far_past_are_clamped() {
        let p = policy(100);
        assert_eq!(p.check(NOW + HOUR_US + 1, NOW), Err(ClampReason::Future));
        assert_eq!(p.check(i64::MAX, NOW), Err(ClampReason::Future));
        assert_eq!(p.check(NOW - 31 * DAY_US, NOW), Err(ClampReason::Past));
        assert_eq!(p.check(0, NOW), Err(ClampReason::Past));
        assert_eq!(p.check(i64::MIN, NOW), Err(ClampReason::Past));
    }

    #[test]
    fn past_hours_are_admitted_up_to_the_budget_per_day() {
        let p = policy(3);
        // A capture of two hours, three days old: every packet keeps its time.
        for i in 0..1000 {
            let t = NOW - 3 * DAY_US + i * 7_000_000;
            assert_eq!(p.check(t, NOW), Ok(t));
        }
        // A spray over distinct hours: one more hour, then every further one is clamped.
        let kept = (0..60)
            .filter(|i| p.check(NOW - 2 * HOUR_US - i * HOUR_US, NOW).is_ok())
            .count();
        assert_eq!(kept, 1);
        assert_eq!(p.check(NOW - 20 * DAY_US, NOW), Err(ClampReason::PastHours));
        // A day later the budget is free again.
        let later = NOW + DAY_US;
        assert!(p.check(later - 10 * DAY_US, later).is_ok());
    }
}
