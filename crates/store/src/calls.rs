//! The call summary both backends compute for the call list: a bounded fold over a call's SIP
//! messages in any order ([`CallFold`]) into a [`CallSummary`]. Backends only differ in how they
//! fetch the rows, so the rules (first request, final status, answered duration, A-leg) live
//! here once.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use crate::{CallSummary, MessageFilter, Page, StoreError, StoredMessage};

/// Most Call-IDs one filter or call flow may name (SQLite binds each as a parameter).
pub const MAX_CALL_IDS: usize = 1000;
/// Rounds of the call-flow correlation closure.
pub(crate) const FLOW_ROUNDS: usize = 10;

/// Checks a call-flow request the same way on every backend; `Ok(false)` when it names no
/// Call-ID (an empty flow, nothing to look up).
pub(crate) fn check_flow_request(
    call_ids: &[String],
    from_us: Option<i64>,
    to_us: Option<i64>,
) -> Result<bool, StoreError> {
    if call_ids.is_empty() {
        return Ok(false);
    }
    if call_ids.len() > MAX_CALL_IDS {
        return Err(StoreError::InvalidQuery(format!(
            "at most {MAX_CALL_IDS} Call-IDs per call flow"
        )));
    }
    if let (Some(f), Some(t)) = (from_us, to_us) {
        if f >= t {
            return Err(StoreError::InvalidQuery(format!(
                "empty time window: from {f} ≥ to {t}"
            )));
        }
    }
    Ok(true)
}

/// The fields of one SIP message a call summary needs.
#[derive(Clone, Debug)]
pub(crate) struct CallRow {
    pub id: i64,
    pub time_us: i64,
    pub sid: String,
    pub correlation_id: Option<String>,
    pub aleg_id: Option<String>,
    pub node: Option<String>,
    pub src_ip: IpAddr,
    pub dst_ip: IpAddr,
    pub method: Option<String>,
    pub is_request: bool,
    pub status: Option<u16>,
    pub cseq_method: Option<String>,
    pub from_user: Option<String>,
    pub to_user: Option<String>,
    pub ruri_user: Option<String>,
}

impl CallRow {
    /// The summary fields of a stored message (non-SIP records give empty fields).
    pub fn from_message(m: StoredMessage) -> CallRow {
        let r = m.record;
        let sip = r.sip.unwrap_or_default();
        CallRow {
            id: m.id,
            time_us: r.time_us,
            sid: r.sid,
            correlation_id: r.correlation_id,
            aleg_id: sip.aleg_id.map(String::from),
            node: r.node,
            src_ip: r.src_ip,
            dst_ip: r.dst_ip,
            method: Some(sip.method.into()),
            is_request: sip.is_request,
            status: sip.status,
            cseq_method: sip.cseq_method.map(String::from),
            from_user: sip.from_user.map(String::from),
            to_user: sip.to_user.map(String::from),
            ruri_user: sip.ruri_user.map(String::from),
        }
    }
}

/// Running aggregate of one call over its SIP messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallAgg {
    pub start_us: i64,
    pub end_us: i64,
    pub count: u64,
}

impl Default for CallAgg {
    fn default() -> Self {
        CallAgg::EMPTY
    }
}

/// How far beyond the search window a listed call's own messages are still read for its
/// summary. Why: a call is listed when one of its messages falls inside the window, but its
/// start, final status, duration and message count are facts of the whole call; a call
/// crossing the window edge must not show a truncated duration or a missing final reply.
pub(crate) const CALL_CONTEXT_US: i64 = 3 * 3_600 * 1_000_000;

impl CallAgg {
    pub const EMPTY: CallAgg = CallAgg {
        start_us: i64::MAX,
        end_us: i64::MIN,
        count: 0,
    };

    pub fn merge(&mut self, start: i64, end: i64, count: u64) {
        self.start_us = self.start_us.min(start);
        self.end_us = self.end_us.max(end);
        self.count += count;
    }
}

/// Bounded per-call state folded from its messages in any order, for a [`CallSummary`].
#[derive(Default)]
pub(crate) struct CallFold {
    /// First message by (time, id).
    first: Option<CallRow>,
    /// First request by (time, id).
    first_request: Option<CallRow>,
    /// Latest final reply per CSeq method (upper case): (time, id, status).
    finals: HashMap<String, (i64, i64, u16)>,
    /// Earliest 2xx to INVITE.
    answered_us: Option<i64>,
    /// Earliest BYE request times (at most [`MAX_BYES`], smallest kept).
    byes: Vec<i64>,
    /// First A-leg id, first correlation id differing from the Call-ID (by time).
    aleg: Option<(i64, String)>,
    other_correlation: Option<(i64, String)>,
    nodes: BTreeSet<String>,
    /// First and last message time and message count, over every message folded.
    span: CallAgg,
}

const MAX_BYES: usize = 16;
const MAX_NODES: usize = 64;

fn earlier(a: &CallRow, b: &CallRow) -> bool {
    (a.time_us, a.id) < (b.time_us, b.id)
}

fn keep_min(slot: &mut Option<(i64, String)>, time: i64, value: &Option<String>) {
    if let Some(v) = value {
        if slot.as_ref().map_or(true, |(t, _)| time < *t) {
            *slot = Some((time, v.clone()));
        }
    }
}

impl CallFold {
    pub fn add(&mut self, row: CallRow) {
        self.span.merge(row.time_us, row.time_us, 1);
        if let (false, Some(status), Some(method)) = (row.is_request, row.status, &row.cseq_method)
        {
            let method = method.to_ascii_uppercase();
            if status >= 200 {
                let entry =
                    self.finals
                        .entry(method.clone())
                        .or_insert((row.time_us, row.id, status));
                if (row.time_us, row.id) > (entry.0, entry.1) {
                    *entry = (row.time_us, row.id, status);
                }
            }
            if (200..300).contains(&status) && method == "INVITE" {
                self.answered_us =
                    Some(self.answered_us.map_or(row.time_us, |t| t.min(row.time_us)));
            }
        }
        if row.is_request
            && row
                .method
                .as_deref()
                .is_some_and(|m| m.eq_ignore_ascii_case("BYE"))
        {
            self.byes.push(row.time_us);
            self.byes.sort_unstable();
            self.byes.truncate(MAX_BYES);
        }
        keep_min(&mut self.aleg, row.time_us, &row.aleg_id);
        if row.correlation_id.as_deref() != Some(row.sid.as_str()) {
            keep_min(
                &mut self.other_correlation,
                row.time_us,
                &row.correlation_id,
            );
        }
        if let Some(node) = &row.node {
            if self.nodes.len() < MAX_NODES {
                self.nodes.insert(node.clone());
            }
        }
        if row.is_request
            && self
                .first_request
                .as_ref()
                .map_or(true, |f| earlier(&row, f))
        {
            self.first_request = Some(row.clone());
        }
        if self.first.as_ref().map_or(true, |f| earlier(&row, f)) {
            self.first = Some(row);
        }
    }

    /// The call's final status ([`CallSummary::status`]): the last final reply to the method
    /// of its first request.
    pub fn status(&self) -> Option<u16> {
        let method = self.first_request.as_ref()?.method.as_ref()?;
        self.finals
            .get(&method.to_ascii_uppercase())
            .map(|(_, _, s)| *s)
    }

    /// The call's summary; `agg` (its in-window aggregate) stands in when no message was folded.
    pub fn summary(self, call_id: String, agg: CallAgg) -> CallSummary {
        let agg = if self.span.count > 0 { self.span } else { agg };
        let status = self.status();
        let request = self.first_request.as_ref();
        let method = request.and_then(|r| r.method.clone());
        let is_invite = method
            .as_deref()
            .is_some_and(|m| m.eq_ignore_ascii_case("INVITE"));
        let duration_ms = match (is_invite, self.answered_us) {
            (true, Some(answered)) => {
                let end = self
                    .byes
                    .iter()
                    .copied()
                    .find(|t| *t >= answered)
                    .unwrap_or(agg.end_us);
                Some((end - answered) / 1000)
            }
            _ => None,
        };
        let correlation_id = self
            .aleg
            .map(|(_, v)| v)
            .or(self.other_correlation.map(|(_, v)| v))
            .or_else(|| self.first.as_ref().and_then(|f| f.correlation_id.clone()));
        CallSummary {
            call_id,
            correlation_id,
            start_us: agg.start_us,
            end_us: agg.end_us,
            method,
            from_user: request.and_then(|r| r.from_user.clone()),
            to_user: request.and_then(|r| r.to_user.clone()),
            ruri_user: request.and_then(|r| r.ruri_user.clone()),
            src_ip: self.first.as_ref().map(|f| f.src_ip),
            dst_ip: self.first.as_ref().map(|f| f.dst_ip),
            status,
            duration_ms,
            message_count: agg.count,
            nodes: self.nodes.into_iter().collect(),
        }
    }
}

/// The page of a call search from its candidate calls (Call-ID → in-window aggregate), the
/// same on every backend: the final-status filter (a fact of the whole call, so every
/// candidate is folded first when it is set), the true total, newest first by (start,
/// Call-ID) after the `cursor`, at most `limit`, summaries from `fold` (the backend's read of
/// the calls' messages around the window) and the next cursor made by `cursor_of`.
pub(crate) fn call_page(
    mut calls: HashMap<String, CallAgg>,
    filter: &MessageFilter,
    cursor: Option<(i64, String)>,
    limit: usize,
    mut fold: impl FnMut(&[String]) -> Result<HashMap<String, CallFold>, StoreError>,
    cursor_of: fn(i64, &str) -> String,
) -> Result<Page<CallSummary>, StoreError> {
    let mut folds = HashMap::new();
    if !filter.final_status.is_empty() && !calls.is_empty() {
        let sids: Vec<String> = calls.keys().cloned().collect();
        folds = fold(&sids)?;
        calls.retain(|sid, _| {
            filter.final_status_matches(folds.get(sid).and_then(CallFold::status))
        });
    }
    let total = calls.len() as u64;
    let mut ordered: Vec<(String, CallAgg)> = calls
        .into_iter()
        .filter(|(sid, agg)| match &cursor {
            Some((start, csid)) => (agg.start_us, sid.as_str()) < (*start, csid.as_str()),
            None => true,
        })
        .collect();
    ordered.sort_unstable_by(|(sa, a), (sb, b)| (b.start_us, sb).cmp(&(a.start_us, sa)));
    let has_more = ordered.len() > limit;
    ordered.truncate(limit);
    let unfolded: Vec<String> = ordered
        .iter()
        .filter(|(sid, _)| !folds.contains_key(sid))
        .map(|(sid, _)| sid.clone())
        .collect();
    if !unfolded.is_empty() {
        folds.extend(fold(&unfolded)?);
    }
    let next = if has_more {
        ordered
            .last()
            .map(|(sid, agg)| cursor_of(agg.start_us, sid))
    } else {
        None
    };
    let items = ordered
        .into_iter()
        .map(|(sid, agg)| folds.remove(&sid).unwrap_or_default().summary(sid, agg))
        .collect();
    Ok(Page { total, items, next })
}
