//! Packet timestamps.

use std::time::Duration;

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// A packet timestamp: whole seconds since the Unix epoch plus nanoseconds.
///
/// Seconds are signed so that pcapng `if_tsoffset` values (which may be negative) never wrap, and
/// nanoseconds are always normalised below one second, so the derived ordering is chronological.
/// Classic pcap files with microsecond resolution produce multiples of 1000 ns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    secs: i64,
    nanos: u32,
}

impl Timestamp {
    /// The Unix epoch, also used for packets whose format carries no time (pcapng simple packet
    /// blocks before any other packet).
    pub const EPOCH: Timestamp = Timestamp { secs: 0, nanos: 0 };

    /// Builds a timestamp; nanoseconds of one second or more carry into the seconds.
    pub const fn new(secs: i64, nanos: u32) -> Self {
        let carry = (nanos / NANOS_PER_SEC) as i64;
        Timestamp {
            secs: secs.saturating_add(carry),
            nanos: nanos % NANOS_PER_SEC,
        }
    }

    /// Builds a timestamp from microseconds since the epoch.
    pub const fn from_micros(micros: i64) -> Self {
        Timestamp {
            secs: micros.div_euclid(1_000_000),
            nanos: (micros.rem_euclid(1_000_000) as u32) * 1000,
        }
    }

    /// Whole seconds since the epoch.
    pub const fn secs(self) -> i64 {
        self.secs
    }

    /// Nanoseconds within the second (always below 1 000 000 000).
    pub const fn subsec_nanos(self) -> u32 {
        self.nanos
    }

    /// Microseconds since the epoch (sub-microsecond digits truncated), saturating at the `i64`
    /// range; this is the unit HEP and the store use.
    pub const fn as_micros(self) -> i64 {
        self.secs
            .saturating_mul(1_000_000)
            .saturating_add((self.nanos / 1000) as i64)
    }

    /// Nanoseconds since the epoch; `i128` so no representable timestamp overflows.
    pub const fn as_nanos(self) -> i128 {
        self.secs as i128 * NANOS_PER_SEC as i128 + self.nanos as i128
    }

    /// This timestamp moved forward by `d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Self {
        let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
        Timestamp::new(
            self.secs.saturating_add(secs),
            self.nanos + d.subsec_nanos(),
        )
    }

    /// Time elapsed from `earlier` to `self`, zero when `earlier` is later (captures merged from
    /// several interfaces may step back a little, which must not look like a huge idle period).
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        let diff = self.as_nanos() - earlier.as_nanos();
        if diff <= 0 {
            return Duration::ZERO;
        }
        let secs = u64::try_from(diff / NANOS_PER_SEC as i128).unwrap_or(u64::MAX);
        Duration::new(secs, (diff % NANOS_PER_SEC as i128) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_and_converts() {
        let t = Timestamp::new(10, 1_500_000_000);
        assert_eq!((t.secs(), t.subsec_nanos()), (11, 500_000_000));
        assert_eq!(t.as_micros(), 11_500_000);
        assert_eq!(Timestamp::from_micros(-1), Timestamp::new(-1, 999_999_000));
        assert_eq!(Timestamp::from_micros(1_234_567).as_micros(), 1_234_567);
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::new(5, 900_000_000);
        assert_eq!(
            t.saturating_add(Duration::from_millis(200)),
            Timestamp::new(6, 100_000_000)
        );
        assert_eq!(
            Timestamp::new(i64::MAX, 0).saturating_add(Duration::from_secs(u64::MAX)),
            Timestamp::new(i64::MAX, 0)
        );
        assert_eq!(t.saturating_since(Timestamp::new(6, 0)), Duration::ZERO);
        assert_eq!(
            Timestamp::new(6, 0).saturating_since(t),
            Duration::from_millis(100)
        );
        assert!(Timestamp::new(1, 999_999_999) < Timestamp::new(2, 0));
    }
}
