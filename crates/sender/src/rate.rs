//! Rate control: a token bucket that is asked once per burst, not once per message.

use std::time::Duration;

/// A token bucket refilled at `rate` tokens per second up to `burst` tokens.
///
/// Time is passed in (as the duration since an arbitrary start), so the bucket is a pure
/// function of the times it is asked at: tests drive it with made-up times and count what it
/// admits. Over any run, the tokens handed out never exceed `burst + rate × elapsed`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Duration,
}

impl TokenBucket {
    /// A bucket for `rate` messages per second (must be positive and finite) allowing bursts of
    /// `burst` messages (at least 1). It starts empty, so the first burst waits for its tokens.
    pub fn new(rate: f64, burst: u32) -> Self {
        TokenBucket {
            rate: if rate.is_finite() && rate > 0.0 {
                rate
            } else {
                1.0
            },
            burst: f64::from(burst.max(1)),
            tokens: 0.0,
            last: Duration::ZERO,
        }
    }

    /// The burst size a sender should use for `rate`: about 10 ms worth of messages, at least
    /// 1 and at most 8192. Sleeps overshoot by up to a timer tick (~1 ms); the bucket must hold
    /// what accrues meanwhile or the achieved rate falls short of the asked one.
    pub fn default_burst(rate: f64) -> u32 {
        (rate / 100.0).clamp(1.0, 8192.0) as u32
    }

    /// The configured rate, tokens per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn refill(&mut self, now: Duration) {
        if now > self.last {
            let dt = (now - self.last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
            self.last = now;
        }
    }

    /// Take up to `want` tokens at time `now`; returns how many were granted (maybe 0).
    pub fn take(&mut self, now: Duration, want: usize) -> usize {
        self.refill(now);
        let granted = (self.tokens.floor() as usize).min(want);
        self.tokens -= granted as f64;
        granted
    }

    /// How long after `now` until `want` tokens (capped at the burst size) are available.
    pub fn wait_for(&mut self, now: Duration, want: usize) -> Duration {
        self.refill(now);
        let target = (want as f64).min(self.burst).max(1.0);
        if self.tokens >= target {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((target - self.tokens) / self.rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_grants_more_than_rate_times_time_plus_burst() {
        let mut bucket = TokenBucket::new(10_000.0, 50);
        let mut granted = 0usize;
        // 2 simulated seconds asked every 100 µs for 1000 tokens.
        for step in 0..=20_000u64 {
            granted += bucket.take(Duration::from_micros(step * 100), 1000);
        }
        assert!(granted <= 20_000 + 50, "granted {granted}");
        // And it keeps up: the rate is reached to within one burst.
        assert!(granted >= 20_000 - 50, "granted {granted}");
    }

    #[test]
    fn starts_empty_and_reports_the_wait() {
        let mut bucket = TokenBucket::new(1000.0, 10);
        assert_eq!(bucket.take(Duration::ZERO, 5), 0);
        let wait = bucket.wait_for(Duration::ZERO, 5);
        assert_eq!(wait, Duration::from_millis(5));
        assert_eq!(bucket.take(wait, 5), 5);
        // A long pause saves at most one burst.
        assert_eq!(bucket.take(Duration::from_secs(100), 1000), 10);
    }

    #[test]
    fn default_burst_is_bounded() {
        assert_eq!(TokenBucket::default_burst(10.0), 1);
        assert_eq!(TokenBucket::default_burst(100_000.0), 1000);
        assert_eq!(TokenBucket::default_burst(1e9), 8192);
    }
}
