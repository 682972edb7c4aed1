//! Partition identity: which file a row goes to, and the file names.
//!
//! A partition file is named `<period>.r<days>[.s<shard>].db`: the UTC period it covers
//! (`2026-11-23T14` for an hour, `2026-11-23` for a day; years outside 0000–9999 are written
//! with a sign, `+12345-01-01`), the retention in days its rows were given, and the write shard
//! (omitted for shard 0). Everything needed to route, query and expire a partition is in its
//! name, so the directory listing is the partition catalog.

use super::config::PartitionSpan;

/// Microseconds per day.
pub(crate) const DAY_US: i64 = 86_400_000_000;
/// Microseconds per hour.
const HOUR_US: i64 = 3_600_000_000;

/// Bits of a global row id taken by the partition tag (see [`PartKey::tag`]).
pub(crate) const TAG_BITS: u32 = 21;
/// Largest retention (days) a partition can be tagged with: 16 bits of the tag.
pub(crate) const MAX_RETENTION_DAYS: u32 = 0xffff;
/// Largest number of write shards: 4 bits of the tag.
pub(crate) const MAX_SHARDS: u8 = 16;

/// Identity of one partition file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct PartKey {
    /// Start of the period, µs since the epoch (inclusive).
    pub start_us: i64,
    /// Length of the period.
    pub span: PartitionSpan,
    /// Retention of its rows in days (0 = forever).
    pub retention_days: u32,
    /// Write shard within the period.
    pub shard: u8,
}

impl PartKey {
    /// The partition period containing `time_us`, or None when the period start is not
    /// representable (a timestamp within one period of `i64::MIN`).
    pub fn for_time(
        time_us: i64,
        span: PartitionSpan,
        retention_days: u32,
        shard: u8,
    ) -> Option<PartKey> {
        let len = span.micros();
        let start_us = time_us.div_euclid(len).checked_mul(len)?;
        Some(PartKey {
            start_us,
            span,
            retention_days,
            shard,
        })
    }

    /// End of the period (exclusive), saturating at `i64::MAX`.
    pub fn end_us(&self) -> i64 {
        self.start_us.saturating_add(self.span.micros())
    }

    /// Whether the period overlaps `[from, to)` (None = unbounded).
    pub fn overlaps(&self, from_us: Option<i64>, to_us: Option<i64>) -> bool {
        from_us.map_or(true, |f| self.end_us() > f) && to_us.map_or(true, |t| self.start_us < t)
    }

    /// Low bits of every global row id of this partition: unique among the partitions whose
    /// periods can overlap (same start with another span, retention or shard), so that
    /// `(time_us, id)` identifies a row in the whole store and orders rows totally.
    pub fn tag(&self) -> i64 {
        let span_bit = match self.span {
            PartitionSpan::Hour => 0,
            PartitionSpan::Day => 1,
        };
        (span_bit << 20)
            | (i64::from(self.shard & 0x0f) << 16)
            | i64::from(self.retention_days & 0xffff)
    }

    /// The global id of a row of this partition.
    pub fn global_id(&self, rowid: i64) -> i64 {
        (rowid << TAG_BITS) | self.tag()
    }

    /// The smallest local rowid bound `b` such that `global_id(r) < global` ⟺ `r < b`.
    pub fn local_bound(&self, global: i64) -> i64 {
        let diff = i128::from(global) - i128::from(self.tag());
        if diff <= 0 {
            return 0;
        }
        let m = 1i128 << TAG_BITS;
        let bound = (diff + m - 1) / m;
        i64::try_from(bound).unwrap_or(i64::MAX)
    }

    /// The file name of this partition.
    pub fn file_name(&self) -> String {
        let days = self.start_us.div_euclid(DAY_US);
        let (y, m, d) = civil_from_days(days);
        let year = if (0..=9999).contains(&y) {
            format!("{y:04}")
        } else {
            format!("{y:+}")
        };
        let mut name = format!("{year}-{m:02}-{d:02}");
        if self.span == PartitionSpan::Hour {
            let hour = self.start_us.rem_euclid(DAY_US) / HOUR_US;
            name.push_str(&format!("T{hour:02}"));
        }
        name.push_str(&format!(".r{}", self.retention_days));
        if self.shard != 0 {
            name.push_str(&format!(".s{}", self.shard));
        }
        name.push_str(".db");
        name
    }

    /// Parses a file name written by [`PartKey::file_name`]; None for any other file.
    pub fn parse(name: &str) -> Option<PartKey> {
        let stem = name.strip_suffix(".db")?;
        let mut parts = stem.split('.');
        let period = parts.next()?;
        let retention_days: u32 = parts.next()?.strip_prefix('r')?.parse().ok()?;
        let shard: u8 = match parts.next() {
            Some(s) => s.strip_prefix('s')?.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() || retention_days > MAX_RETENTION_DAYS || shard >= MAX_SHARDS {
            return None;
        }
        let (date, hour) = match period.split_once('T') {
            Some((date, hour)) => (date, Some(hour)),
            None => (period, None),
        };
        // The year may carry a sign; month and day are the last two dash-separated fields.
        let (rest, day) = date.rsplit_once('-')?;
        let (year, month) = rest.rsplit_once('-')?;
        let y: i64 = year.parse().ok()?;
        let m: u32 = month.parse().ok()?;
        let d: u32 = day.parse().ok()?;
        let days = days_from_civil(y, m, d)?;
        let mut start_us = days.checked_mul(DAY_US)?;
        let span = match hour {
            Some(h) => {
                let h: i64 = h.parse().ok()?;
                if !(0..24).contains(&h) {
                    return None;
                }
                start_us = start_us.checked_add(h * HOUR_US)?;
                PartitionSpan::Hour
            }
            None => PartitionSpan::Day,
        };
        let key = PartKey {
            start_us,
            span,
            retention_days,
            shard,
        };
        // Only canonical names: `2026-1-5` or `02026-01-05` are someone else's files.
        (key.file_name() == name).then_some(key)
    }
}

/// Days since 1970-01-01 → proleptic Gregorian (year, month, day) (H. Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Proleptic Gregorian date → days since 1970-01-01; None for an impossible date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) || y.unsigned_abs() > 1_000_000 {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for &t in &[
            0i64,
            1_795_000_000_000_000,
            -1,
            946_684_799_999_999,
            3_786_912_000_000_000,
            i64::MAX,
            i64::MIN + DAY_US,
        ] {
            for span in [PartitionSpan::Hour, PartitionSpan::Day] {
                let key = PartKey::for_time(t, span, 7, 1).unwrap();
                assert!(key.start_us <= t && t < key.end_us() || key.end_us() == i64::MAX);
                assert_eq!(
                    PartKey::parse(&key.file_name()),
                    Some(key),
                    "{}",
                    key.file_name()
                );
            }
        }
        let key = PartKey::for_time(1_795_000_000_000_000, PartitionSpan::Hour, 7, 0).unwrap();
        assert_eq!(key.file_name(), "2026-11-18T11.r7.db");
        assert_eq!(PartKey::parse("catalog.db"), None);
        assert_eq!(PartKey::parse("2026-02-30T01.r7.db"), None);
        assert!(PartKey::for_time(i64::MIN, PartitionSpan::Day, 7, 0).is_none());
    }

    #[test]
    fn civil_dates() {
        for days in -800_000..800_000i64 {
            if days % 997 != 0 {
                continue;
            }
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 2, 29), Some(11_016));
    }

    #[test]
    fn local_bound_matches_global_order() {
        let key = PartKey {
            start_us: 0,
            span: PartitionSpan::Hour,
            retention_days: 7,
            shard: 1,
        };
        for global in [
            0i64,
            1,
            key.global_id(5),
            key.global_id(5) + 1,
            key.global_id(5) - 1,
        ] {
            let b = key.local_bound(global);
            for r in 1..10 {
                assert_eq!(key.global_id(r) < global, r < b, "global {global} r {r}");
            }
        }
    }
}
