//! Receive time: the wall clock in microseconds and [`ReceiveClock`], which makes one
//! receiver's stamps strictly increasing.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Receive timestamps of one receiver (a UDP socket, a stream connection): the wall clock, made
/// strictly increasing. Why: the messages of one `recvmmsg` call or one stream read would
/// otherwise share a timestamp, and the KPI engine puts messages stored by parallel writer
/// threads back in order by it; one sender's messages reach one receiver, so their receive
/// order is then exact. A message is stamped at most a microsecond per message of its read
/// later than the clock says.
#[derive(Debug, Default)]
pub struct ReceiveClock {
    last_us: i64,
}

impl ReceiveClock {
    /// The receive time of the next message, given the wall clock `now_us`.
    pub fn stamp(&mut self, now_us: i64) -> i64 {
        self.last_us = now_us.max(self.last_us.saturating_add(1));
        self.last_us
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn receive_stamps_strictly_increase() {
        let mut clock = ReceiveClock::default();
        // Three messages of one read, then a read after the wall clock went back.
        assert_eq!(clock.stamp(1_000), 1_000);
        assert_eq!(clock.stamp(1_000), 1_001);
        assert_eq!(clock.stamp(1_000), 1_002);
        assert_eq!(clock.stamp(900), 1_003);
        assert_eq!(clock.stamp(5_000), 5_000);
    }
}
