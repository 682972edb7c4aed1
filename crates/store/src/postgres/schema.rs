//! The `homer_data` layout heplify-server writes: parent tables, their RANGE partitions
//! `<table>_YYYYMMDD_HHMM` and the per-partition indexes (from heplify-server's
//! `rotator/pgfiles.go`), plus hepstack's own `hepstack_*` tables.

use super::config::PartitionSteps;
use crate::Record;

/// Microseconds per minute.
pub(crate) const MINUTE_US: i64 = 60_000_000;
/// Microseconds per day.
pub(crate) const DAY_US: i64 = 86_400_000_000;
/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01).
pub(crate) const PG_EPOCH_US: i64 = 946_684_800_000_000;
/// First instant accepted: 0001-01-01T00:00:00Z (partition names carry a 4-digit year).
pub(crate) const MIN_TIME_US: i64 = -62_135_596_800_000_000;
/// First instant refused: 10000-01-01T00:00:00Z.
pub(crate) const MAX_TIME_US: i64 = 253_402_300_800_000_000;

/// What decides a table's partition step and index set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Sip,
    Qos,
    Log,
    Isup,
}

/// One parent table of `homer_data`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Table {
    /// Position in [`TABLES`]; also the low bits of the ids the API hands out, so that ids
    /// stay unique across tables.
    pub no: u8,
    pub name: &'static str,
    pub kind: Kind,
}

/// Every parent table. heplify-server routes HEP types it has no table for into
/// `hep_proto_35_default`, and so does hepstack; `hep_proto_53_default` (DNS) is created
/// here although heplify-server only writes to it.
pub(crate) const TABLES: [Table; 8] = [
    Table {
        no: 0,
        name: "hep_proto_1_call",
        kind: Kind::Sip,
    },
    Table {
        no: 1,
        name: "hep_proto_1_registration",
        kind: Kind::Sip,
    },
    Table {
        no: 2,
        name: "hep_proto_1_default",
        kind: Kind::Sip,
    },
    Table {
        no: 3,
        name: "hep_proto_5_default",
        kind: Kind::Qos,
    },
    Table {
        no: 4,
        name: "hep_proto_35_default",
        kind: Kind::Qos,
    },
    Table {
        no: 5,
        name: "hep_proto_53_default",
        kind: Kind::Log,
    },
    Table {
        no: 6,
        name: "hep_proto_54_default",
        kind: Kind::Isup,
    },
    Table {
        no: 7,
        name: "hep_proto_100_default",
        kind: Kind::Log,
    },
];

/// Bits of an API id that hold the table number.
pub(crate) const TABLE_BITS: u32 = 3;

/// The table a record goes to: SIP by heplify-server's profile, other types by HEP type.
pub(crate) fn table_for(r: &Record) -> &'static Table {
    if r.sip.is_some() {
        return &TABLES[match r.profile {
            crate::Profile::Call => 0,
            crate::Profile::Registration => 1,
            crate::Profile::Default => 2,
        }];
    }
    &TABLES[match r.hep_type {
        1 => 2,
        5 => 3,
        53 => 5,
        54 => 6,
        100 => 7,
        _ => 4,
    }]
}

impl Table {
    /// Partition length of this table.
    pub fn step_us(&self, steps: &PartitionSteps) -> i64 {
        let minutes = match self.kind {
            Kind::Sip => steps.sip_minutes,
            Kind::Qos => steps.qos_minutes,
            Kind::Log => steps.log_minutes,
            Kind::Isup => steps.isup_minutes,
        };
        i64::from(minutes) * MINUTE_US
    }

    /// Whether this table holds SIP rows (its data_header has the SIP keys).
    pub fn is_sip(&self) -> bool {
        self.kind == Kind::Sip
    }

    /// The parent table's DDL, verbatim heplify-server's.
    pub fn create_parent(&self) -> String {
        format!(
            "CREATE TABLE IF NOT EXISTS {} (\n\
             \tid BIGSERIAL NOT NULL,\n\
             \tsid varchar NOT NULL,\n\
             \tcreate_date timestamp with time zone DEFAULT CURRENT_TIMESTAMP NOT NULL,\n\
             \tprotocol_header jsonb NOT NULL,\n\
             \tdata_header jsonb NOT NULL,\n\
             \traw varchar NOT NULL\n\
             ) PARTITION BY RANGE (create_date)",
            self.name
        )
    }

    /// Statements creating one partition and its indexes (heplify-server's index set).
    pub fn create_partition(&self, start_us: i64, step_us: i64) -> Vec<String> {
        let part = partition_name(self.name, start_us);
        let mut out = vec![format!(
            "CREATE TABLE IF NOT EXISTS {part} PARTITION OF {} FOR VALUES FROM ('{}') TO ('{}')",
            self.name,
            timestamp_literal(start_us),
            timestamp_literal(start_us + step_us)
        )];
        let mut index = |suffix: &str, expr: &str| {
            out.push(format!(
                "CREATE INDEX IF NOT EXISTS {part}_{suffix} ON {part} ({expr})"
            ));
        };
        index("create_date", "create_date");
        index("sid", "sid");
        if self.kind != Kind::Isup {
            index("srcIp", "(protocol_header->>'srcIp')");
            index("dstIp", "(protocol_header->>'dstIp')");
        }
        index("correlation_id", "(protocol_header->>'correlation_id')");
        let data_keys: &[&str] = match self.kind {
            Kind::Sip => &[
                "ruri_domain",
                "ruri_user",
                "from_user",
                "to_user",
                "pid_user",
                "auth_user",
                "callid",
                "method",
            ],
            Kind::Isup => &[
                "called_number",
                "calling_number",
                "opc",
                "dpc",
                "cic",
                "msg_name",
                "callid",
            ],
            Kind::Qos | Kind::Log => &[],
        };
        for key in data_keys {
            index(key, &format!("(data_header->>'{key}')"));
        }
        out
    }
}

/// Start of the partition holding `time_us` for a step (floor, also before 1970).
pub(crate) fn partition_start(time_us: i64, step_us: i64) -> i64 {
    time_us.div_euclid(step_us) * step_us
}

/// Civil date (year, month, day) of a day number since 1970-01-01 (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
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

/// Day number since 1970-01-01 of a civil date.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// (year, month, day, hour, minute) in UTC.
fn civil(time_us: i64) -> (i64, u32, u32, u32, u32) {
    let days = time_us.div_euclid(DAY_US);
    let minute_of_day = (time_us.rem_euclid(DAY_US) / MINUTE_US) as u32;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, minute_of_day / 60, minute_of_day % 60)
}

/// `<table>_YYYYMMDD_HHMM` for the partition starting at `start_us`.
pub(crate) fn partition_name(table: &str, start_us: i64) -> String {
    let (y, mo, d, h, mi) = civil(start_us);
    format!("{table}_{y:04}{mo:02}{d:02}_{h:02}{mi:02}")
}

/// Parses the start of a partition from its name; None for foreign tables.
pub(crate) fn parse_partition_name(table: &str, name: &str) -> Option<i64> {
    let rest = name.strip_prefix(table)?.strip_prefix('_')?;
    let (date, time) = rest.split_once('_')?;
    if date.len() != 8
        || time.len() != 4
        || !date.bytes().chain(time.bytes()).all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let y: i64 = date[..4].parse().ok()?;
    let m: u32 = date[4..6].parse().ok()?;
    let d: u32 = date[6..].parse().ok()?;
    let h: i64 = time[..2].parse().ok()?;
    let mi: i64 = time[2..].parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 {
        return None;
    }
    Some(days_from_civil(y, m, d) * DAY_US + (h * 60 + mi) * MINUTE_US)
}

/// `YYYY-MM-DD HH:MM:00+00`.
pub(crate) fn timestamp_literal(time_us: i64) -> String {
    let (y, mo, d, h, mi) = civil(time_us);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:00+00")
}

/// hepstack's own tables, kept apart from heplify-server's so homer-app never sees them.
pub(crate) const HEPSTACK_DDL: [&str; 2] = [
    "CREATE TABLE IF NOT EXISTS hepstack_users (\n\
     \tname varchar PRIMARY KEY,\n\
     \tpassword_hash varchar NOT NULL,\n\
     \tadmin boolean NOT NULL\n\
     )",
    "CREATE TABLE IF NOT EXISTS hepstack_settings (\n\
     \tnamespace varchar NOT NULL,\n\
     \tkey varchar NOT NULL,\n\
     \tvalue varchar NOT NULL,\n\
     \tPRIMARY KEY (namespace, key)\n\
     )",
];

/// Checks a partition step: positive and dividing a day, so partitions tile days.
pub(crate) fn valid_step(minutes: u32) -> bool {
    minutes > 0 && 1440 % minutes == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_floor_before_1970() {
        for t in [
            0,
            1_795_392_000_000_000 + 3_600_000_000 * 14 + 1,
            -1,
            -DAY_US - 5,
            MIN_TIME_US,
            MAX_TIME_US - 1,
        ] {
            let start = partition_start(t, 60 * MINUTE_US);
            assert!(start <= t && t < start + 60 * MINUTE_US);
            let name = partition_name("hep_proto_1_call", start);
            assert_eq!(
                parse_partition_name("hep_proto_1_call", &name),
                Some(start),
                "{name}"
            );
        }
        assert_eq!(
            partition_name(
                "hep_proto_1_call",
                1_795_392_000_000_000 + 3_600_000_000 * 14
            ),
            "hep_proto_1_call_20261123_1400"
        );
        assert_eq!(timestamp_literal(0), "1970-01-01 00:00:00+00");
        assert_eq!(
            parse_partition_name("hep_proto_1_call", "hep_proto_1_call_2026112_1400"),
            None
        );
        assert_eq!(
            parse_partition_name("hep_proto_1_call", "hep_proto_1_callx_20261123_1400"),
            None
        );
    }

    #[test]
    fn civil_dates_match_day_numbers() {
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
