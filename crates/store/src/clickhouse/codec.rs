//! Records to and from ClickHouse's RowBinary format, row ids, shard keys and SQL literals.

use std::hash::Hasher;
use std::net::IpAddr;

use compact_str::CompactString;
use siphasher::sip::SipHasher13;

use super::schema::{DAY_US, HOUR_US};
use crate::{Profile, Record, SipFields, StoreError, StoredMessage};

/// A ClickHouse string literal: quoted, with `\` and `'` escaped (any bytes otherwise pass).
pub(crate) fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '\0' => out.push_str("\\0"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `(lit, lit, …)` for `IN`.
pub(crate) fn lit_list<'a>(values: impl IntoIterator<Item = &'a str>) -> String {
    let items: Vec<String> = values.into_iter().map(lit).collect();
    format!("({})", items.join(", "))
}

fn hash(parts: &[&[u8]]) -> u64 {
    let mut h = SipHasher13::new_with_keys(0x6865_7073_7461_636b, 0x636c_6963_6b68_6f75);
    for p in parts {
        h.write_usize(p.len());
        h.write(p);
    }
    h.finish()
}

/// The shard key of a record: a stable hash of its correlation group (the correlation id,
/// else the Call-ID), so that every leg, report and log of a call goes to one shard.
pub(crate) fn shard_key(r: &Record) -> u64 {
    hash(&[r.correlation_id.as_deref().unwrap_or(&r.sid).as_bytes()])
}

/// The row id of a record: a stable hash of its content and of how many identical records
/// came before it in the batch. Stable, so that a replayed batch encodes to the same bytes
/// and the server drops it as a duplicate block.
pub(crate) fn row_id(r: &Record, occurrence: u32) -> i64 {
    let h = hash(&[
        &r.time_us.to_le_bytes(),
        &r.received_us.to_le_bytes(),
        &[r.hep_type, r.ip_proto],
        r.src_ip.to_string().as_bytes(),
        &r.src_port.to_le_bytes(),
        r.dst_ip.to_string().as_bytes(),
        &r.dst_port.to_le_bytes(),
        &r.capture_id.to_le_bytes(),
        r.sid.as_bytes(),
        &r.raw,
        &occurrence.to_le_bytes(),
    ]);
    (h >> 1) as i64
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    put_varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Appends a RowBinary `String`.
pub(crate) fn put_string(out: &mut Vec<u8>, s: &str) {
    put_bytes(out, s.as_bytes());
}

/// A stable hash of an encoded block (the deduplication token of its insert).
pub(crate) fn block_hash(rows: &[u8]) -> u64 {
    hash(&[rows])
}

fn put_opt(out: &mut Vec<u8>, v: Option<&str>, bit: u32, present: &mut u32) {
    if let Some(s) = v {
        *present |= 1 << bit;
        put_bytes(out, s.as_bytes());
    } else {
        put_bytes(out, b"");
    }
}

/// Presence bits of the `present` column.
pub(crate) mod bit {
    pub const NODE: u32 = 0;
    pub const CORRELATION: u32 = 1;
    pub const SIP: u32 = 2;
    pub const STATUS: u32 = 3;
    pub const PAYLOAD_JSON: u32 = 4;
    /// First of the 20 optional SIP text fields, in [`super::SIP_TEXT`] order.
    pub const SIP_TEXT: u32 = 5;
}

/// The optional SIP text fields, in column order.
const SIP_TEXT: [fn(&SipFields) -> &Option<CompactString>; 20] = [
    |s| &s.cseq,
    |s| &s.cseq_method,
    |s| &s.call_id,
    |s| &s.ruri_user,
    |s| &s.ruri_domain,
    |s| &s.from_user,
    |s| &s.from_domain,
    |s| &s.from_tag,
    |s| &s.to_user,
    |s| &s.to_domain,
    |s| &s.to_tag,
    |s| &s.contact_user,
    |s| &s.pid_user,
    |s| &s.auth_user,
    |s| &s.user_agent,
    |s| &s.server,
    |s| &s.reason,
    |s| &s.content_type,
    |s| &s.via_branch,
    |s| &s.aleg_id,
];

/// The presence bit of a SIP text column, by column name.
pub(crate) fn sip_text_bit(column: &str) -> Option<u32> {
    const NAMES: [&str; 20] = [
        "cseq",
        "cseq_method",
        "call_id",
        "ruri_user",
        "ruri_domain",
        "from_user",
        "from_domain",
        "from_tag",
        "to_user",
        "to_domain",
        "to_tag",
        "contact_user",
        "pid_user",
        "auth_user",
        "user_agent",
        "server",
        "reason",
        "content_type",
        "via_branch",
        "aleg_id",
    ];
    NAMES
        .iter()
        .position(|n| *n == column)
        .map(|i| bit::SIP_TEXT + i as u32)
}

fn profile_code(p: Profile) -> u8 {
    match p {
        Profile::Call => 0,
        Profile::Registration => 1,
        Profile::Default => 2,
    }
}

/// Appends one data-table row (see `schema::COLUMNS`); the caller has checked `time_us`.
pub(crate) fn encode_row(r: &Record, id: i64, out: &mut Vec<u8>) {
    let day = r.time_us.div_euclid(DAY_US) as u16;
    let hour = r.time_us.div_euclid(HOUR_US) as u32;
    out.extend_from_slice(&day.to_le_bytes());
    out.extend_from_slice(&hour.to_le_bytes());
    out.extend_from_slice(&r.time_us.to_le_bytes());
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&shard_key(r).to_le_bytes());
    out.extend_from_slice(&r.received_us.to_le_bytes());
    out.extend_from_slice(&[r.hep_type, r.hep_version, r.ip_family, r.ip_proto]);
    put_bytes(out, r.src_ip.to_string().as_bytes());
    out.extend_from_slice(&r.src_port.to_le_bytes());
    put_bytes(out, r.dst_ip.to_string().as_bytes());
    out.extend_from_slice(&r.dst_port.to_le_bytes());
    out.extend_from_slice(&r.capture_id.to_le_bytes());
    let mut present = 0u32;
    put_opt(out, r.node.as_deref(), bit::NODE, &mut present);
    put_opt(
        out,
        r.correlation_id.as_deref(),
        bit::CORRELATION,
        &mut present,
    );
    put_bytes(out, r.sid.as_bytes());
    out.push(profile_code(r.profile));
    // `present` is known only after the optional fields: reserve its place.
    let present_at = out.len();
    out.extend_from_slice(&[0; 4]);
    let empty = SipFields::default();
    let sip = match &r.sip {
        Some(s) => {
            present |= 1 << bit::SIP;
            s
        }
        None => &empty,
    };
    put_bytes(out, sip.method.as_bytes());
    out.push(u8::from(sip.is_request));
    if sip.status.is_some() {
        present |= 1 << bit::STATUS;
    }
    out.extend_from_slice(&sip.status.unwrap_or(0).to_le_bytes());
    for (i, field) in SIP_TEXT.iter().enumerate() {
        put_opt(
            out,
            field(sip).as_deref(),
            bit::SIP_TEXT + i as u32,
            &mut present,
        );
    }
    put_varint(out, sip.custom_headers.len() as u64);
    for (name, _) in &sip.custom_headers {
        put_bytes(out, name.as_bytes());
    }
    put_varint(out, sip.custom_headers.len() as u64);
    for (_, value) in &sip.custom_headers {
        put_bytes(out, value.as_bytes());
    }
    put_varint(out, sip.sdp_media.len() as u64);
    for m in &sip.sdp_media {
        put_bytes(out, m.as_bytes());
    }
    put_opt(
        out,
        r.payload_json.as_deref(),
        bit::PAYLOAD_JSON,
        &mut present,
    );
    put_bytes(out, &r.raw);
    out[present_at..present_at + 4].copy_from_slice(&present.to_le_bytes());
}

/// Appends one `links` row.
pub(crate) fn encode_link(r: &Record, key: &str, out: &mut Vec<u8>) {
    let day = r.time_us.div_euclid(DAY_US) as u16;
    let hour = r.time_us.div_euclid(HOUR_US) as u32;
    out.extend_from_slice(&day.to_le_bytes());
    out.extend_from_slice(&hour.to_le_bytes());
    out.extend_from_slice(&r.time_us.to_le_bytes());
    put_bytes(out, key.as_bytes());
    put_bytes(out, r.sid.as_bytes());
    out.push(u8::from(r.sip.is_some()));
    out.extend_from_slice(&shard_key(r).to_le_bytes());
}

/// The ids a record links to besides its own Call-ID (correlation id, A-leg id), deduplicated.
pub(crate) fn link_keys(r: &Record) -> Vec<&str> {
    let mut keys: Vec<&str> = Vec::with_capacity(2);
    let aleg = r.sip.as_ref().and_then(|s| s.aleg_id.as_deref());
    for k in [r.correlation_id.as_deref(), aleg].into_iter().flatten() {
        if k != r.sid && !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// A reader over a RowBinary answer.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn short() -> StoreError {
    StoreError::Backend("clickhouse: truncated RowBinary answer".into())
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    pub fn done(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self.pos.checked_add(n).ok_or_else(short)?;
        let s = self.buf.get(self.pos..end).ok_or_else(short)?;
        self.pos = end;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    pub fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn varint(&mut self) -> Result<u64, StoreError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(StoreError::Backend("clickhouse: bad varint".into()))
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = usize::try_from(self.varint()?).map_err(|_| short())?;
        self.take(n)
    }

    pub fn string(&mut self) -> Result<String, StoreError> {
        Ok(String::from_utf8_lossy(self.bytes()?).into_owned())
    }

    fn strings(&mut self) -> Result<Vec<String>, StoreError> {
        let n = self.varint()?;
        // Each element takes at least one byte: a count beyond the answer is corrupt.
        if n > (self.buf.len() - self.pos) as u64 {
            return Err(short());
        }
        (0..n).map(|_| self.string()).collect()
    }
}

fn ip(text: &str) -> Result<IpAddr, StoreError> {
    text.parse().map_err(|_| {
        StoreError::Backend(format!("clickhouse: stored address {text:?} is not an IP"))
    })
}

fn opt(text: String, present: u32, bit: u32) -> Option<String> {
    (present & (1 << bit) != 0).then_some(text)
}

/// Reads one row of [`super::schema::read_columns`].
pub(crate) fn decode_row(r: &mut Reader<'_>) -> Result<StoredMessage, StoreError> {
    let time_us = r.i64()?;
    let id = r.i64()?;
    let received_us = r.i64()?;
    let hep_type = r.u8()?;
    let hep_version = r.u8()?;
    let ip_family = r.u8()?;
    let ip_proto = r.u8()?;
    let src_ip = ip(&r.string()?)?;
    let src_port = r.u16()?;
    let dst_ip = ip(&r.string()?)?;
    let dst_port = r.u16()?;
    let capture_id = r.u32()?;
    let node = r.string()?;
    let correlation_id = r.string()?;
    let sid = r.string()?;
    let profile = match r.u8()? {
        0 => Profile::Call,
        1 => Profile::Registration,
        _ => Profile::Default,
    };
    let present = r.u32()?;
    let method = r.string()?;
    let is_request = r.u8()? != 0;
    let status = r.u16()?;
    let mut texts: Vec<Option<CompactString>> = Vec::with_capacity(SIP_TEXT.len());
    for i in 0..SIP_TEXT.len() {
        let t = r.string()?;
        texts.push(opt(t, present, bit::SIP_TEXT + i as u32).map(CompactString::from));
    }
    let names = r.strings()?;
    let values = r.strings()?;
    let sdp_media = r.strings()?;
    let payload_json = opt(r.string()?, present, bit::PAYLOAD_JSON);
    let raw = r.bytes()?.to_vec();
    let sip = (present & (1 << bit::SIP) != 0).then(|| {
        let mut t = texts.into_iter();
        let mut next = || t.next().flatten();
        SipFields {
            method: method.into(),
            is_request,
            status: (present & (1 << bit::STATUS) != 0).then_some(status),
            cseq: next(),
            cseq_method: next(),
            call_id: next(),
            ruri_user: next(),
            ruri_domain: next(),
            from_user: next(),
            from_domain: next(),
            from_tag: next(),
            to_user: next(),
            to_domain: next(),
            to_tag: next(),
            contact_user: next(),
            pid_user: next(),
            auth_user: next(),
            user_agent: next(),
            server: next(),
            reason: next(),
            content_type: next(),
            via_branch: next(),
            aleg_id: next(),
            custom_headers: names.into_iter().zip(values).collect(),
            sdp_media,
        }
    });
    Ok(StoredMessage {
        id,
        record: Record {
            time_us,
            received_us,
            hep_type,
            hep_version,
            ip_family,
            ip_proto,
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            capture_id,
            node: opt(node, present, bit::NODE),
            correlation_id: opt(correlation_id, present, bit::CORRELATION),
            sid,
            profile,
            sip,
            payload_json,
            raw,
        },
    })
}

/// Every row of a RowBinary answer of [`super::schema::read_columns`].
pub(crate) fn decode_rows(buf: &[u8]) -> Result<Vec<StoredMessage>, StoreError> {
    let mut r = Reader::new(buf);
    let mut out = Vec::new();
    while !r.done() {
        out.push(decode_row(&mut r)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes_backslashes_and_nul() {
        assert_eq!(lit("a'b\\c\0"), "'a\\'b\\\\c\\0'");
        assert_eq!(lit_list(["x", "y"]), "('x', 'y')");
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 40, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(Reader::new(&out).varint().unwrap(), v);
        }
        assert!(Reader::new(&[0x80]).varint().is_err());
        assert!(Reader::new(&[5, b'a']).bytes().is_err());
    }
}
