//! Query-string parsing into a [`MessageFilter`], and the time formats of the API.

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use store::MessageFilter;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::{ApiError, WebConfig};

/// Longest value accepted for a text parameter, in bytes.
pub const MAX_PARAM_BYTES: usize = 1024;

/// Most Call-IDs one search may name.
pub const MAX_CALL_IDS: usize = 1000;

/// Most `json.<path>` conditions one search may give.
pub const MAX_JSON_CONDITIONS: usize = 16;

/// Most entries of a `method`, `status` or `final_status` list.
pub const MAX_LIST_ENTRIES: usize = 64;

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// Formats microseconds since the epoch as RFC 3339 UTC with exactly six fractional digits
/// (`2026-11-23T12:30:22.123456Z`); `None` outside years 0000–9999.
pub fn format_time_us(us: i64) -> Option<String> {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000).ok()?;
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    t.format(&format).ok()
}

/// Parses a time parameter: RFC 3339 (any offset, any fraction) or integer epoch
/// milliseconds. Returns microseconds since the epoch.
pub fn parse_time_param(name: &str, value: &str) -> Result<i64, ApiError> {
    let v = value.trim();
    let digits = v.strip_prefix('-').unwrap_or(v);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let ms: i64 = v
            .parse()
            .map_err(|_| ApiError::bad_param(name, "epoch milliseconds out of range"))?;
        return ms
            .checked_mul(1000)
            .ok_or_else(|| ApiError::bad_param(name, "epoch milliseconds out of range"));
    }
    let t = OffsetDateTime::parse(v, &Rfc3339).map_err(|e| {
        ApiError::bad_param(
            name,
            format!("expected an RFC 3339 time or epoch milliseconds ({e})"),
        )
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1000)
        .map_err(|_| ApiError::bad_param(name, "time out of range"))
}

fn text_param(name: &str, value: &str) -> Result<String, ApiError> {
    if value.is_empty() {
        return Err(ApiError::bad_param(name, "empty value"));
    }
    if value.len() > MAX_PARAM_BYTES {
        return Err(ApiError::bad_param(
            name,
            format!("longer than {MAX_PARAM_BYTES} bytes"),
        ));
    }
    Ok(value.to_string())
}

/// The non-empty, trimmed entries of a comma-separated list parameter.
fn list_param(name: &str, value: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        if out.len() >= MAX_LIST_ENTRIES {
            return Err(ApiError::bad_param(
                name,
                format!("more than {MAX_LIST_ENTRIES} entries"),
            ));
        }
        let entry = text_param(name, entry)?;
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    if out.is_empty() {
        return Err(ApiError::bad_param(name, "empty value"));
    }
    Ok(out)
}

/// A list of status-code patterns: `486`, `4*`, and the `4xx` / `48x` spelling (trailing `x`
/// for any digit, the same as `*` since codes have three digits).
fn status_param(name: &str, value: &str) -> Result<Vec<String>, ApiError> {
    list_param(name, value)?
        .into_iter()
        .map(|entry| {
            let digits = entry.trim_end_matches(['x', 'X']);
            let pattern = if digits.len() < entry.len() {
                format!("{digits}*")
            } else {
                entry.clone()
            };
            let valid = !pattern.is_empty()
                && pattern.len() <= 8
                && pattern.bytes().all(|b| b.is_ascii_digit() || b == b'*');
            if valid {
                Ok(pattern)
            } else {
                Err(ApiError::bad_param(
                    name,
                    format!("`{entry}`: expected status codes like 486, 4xx or 4*"),
                ))
            }
        })
        .collect()
}

fn ip_param(name: &str, value: &str) -> Result<IpAddr, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_param(name, "expected an IPv4 or IPv6 address"))
}

fn once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), ApiError> {
    if slot.is_some() {
        return Err(ApiError::bad_param(name, "given more than once"));
    }
    *slot = Some(value);
    Ok(())
}

/// [`once`] for a list parameter (its entries are comma-separated in one value).
fn once_list(slot: &mut Vec<String>, name: &str, value: Vec<String>) -> Result<(), ApiError> {
    if !slot.is_empty() {
        return Err(ApiError::bad_param(name, "given more than once"));
    }
    *slot = value;
    Ok(())
}

/// Parses the search parameters of `/messages` (see the crate docs for the list). Unknown
/// parameters are errors, so a typo never silently widens a search. `now_us` anchors the
/// default window.
pub fn parse_filter(
    raw_query: Option<&str>,
    config: &WebConfig,
    now_us: i64,
) -> Result<MessageFilter, ApiError> {
    parse_params(raw_query, Some((config, now_us)), false)
}

/// Parses the search parameters of `/calls`: those of [`parse_filter`] plus `final_status`.
pub fn parse_call_filter(
    raw_query: Option<&str>,
    config: &WebConfig,
    now_us: i64,
) -> Result<MessageFilter, ApiError> {
    parse_params(raw_query, Some((config, now_us)), true)
}

/// Parses the filter of the live tail: the search parameters without `from`, `to`, `limit`
/// and `cursor` (a tail has no window and no pages).
pub fn parse_tail_filter(raw_query: Option<&str>) -> Result<MessageFilter, ApiError> {
    parse_params(raw_query, None, false)
}

fn port_param(name: &str, value: &str) -> Result<u16, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_param(name, "expected a port number 0-65535"))
}

/// `search`: the configuration and the current time when parsing a search (with its window
/// and paging); `None` for the tail.
fn parse_params(
    raw_query: Option<&str>,
    search: Option<(&WebConfig, i64)>,
    calls: bool,
) -> Result<MessageFilter, ApiError> {
    let mut f = MessageFilter::default();
    let mut from = None;
    let mut to = None;
    let mut limit = None;
    for (key, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        let (key, value) = (key.as_ref(), value.as_ref());
        match key {
            "callid" => {
                let mut ids = value.split(',').map(str::trim).filter(|s| !s.is_empty());
                let Some(first) = ids.next() else {
                    return Err(ApiError::bad_param(key, "empty value"));
                };
                for id in std::iter::once(first).chain(ids) {
                    if f.call_ids.len() >= MAX_CALL_IDS {
                        return Err(ApiError::bad_param(
                            key,
                            format!("more than {MAX_CALL_IDS} Call-IDs"),
                        ));
                    }
                    let id = text_param(key, id)?;
                    if !f.call_ids.contains(&id) {
                        f.call_ids.push(id);
                    }
                }
            }
            "from_user" => once(&mut f.from_user, key, text_param(key, value)?)?,
            "to_user" => once(&mut f.to_user, key, text_param(key, value)?)?,
            "ruri_user" => once(&mut f.ruri_user, key, text_param(key, value)?)?,
            "method" => once_list(&mut f.method, key, list_param(key, value)?)?,
            "status" => once_list(&mut f.status, key, status_param(key, value)?)?,
            "final_status" if !calls => {
                return Err(ApiError::bad_param(
                    key,
                    "a parameter of the call search (/calls) only",
                ));
            }
            "final_status" => once_list(&mut f.final_status, key, status_param(key, value)?)?,
            "any_user" => once(&mut f.any_user, key, text_param(key, value)?)?,
            "user_agent" => once(&mut f.user_agent, key, text_param(key, value)?)?,
            "port" => once(&mut f.port, key, port_param(key, value)?)?,
            "src_port" => once(&mut f.src_port, key, port_param(key, value)?)?,
            "dst_port" => once(&mut f.dst_port, key, port_param(key, value)?)?,
            "node" => once(&mut f.node, key, text_param(key, value)?)?,
            "correlation_id" => once(&mut f.correlation_id, key, text_param(key, value)?)?,
            "text" => once(&mut f.text, key, text_param(key, value)?)?,
            "ip" => once(&mut f.ip, key, ip_param(key, value)?)?,
            "src_ip" => once(&mut f.src_ip, key, ip_param(key, value)?)?,
            "dst_ip" => once(&mut f.dst_ip, key, ip_param(key, value)?)?,
            "hep_type" => {
                let t = value
                    .trim()
                    .parse::<u8>()
                    .map_err(|_| ApiError::bad_param(key, "expected a number 0-255"))?;
                once(&mut f.hep_type, key, t)?;
            }
            "from" | "to" | "limit" | "cursor" if search.is_none() => {
                return Err(ApiError::bad_param(key, "not a parameter of the live tail"));
            }
            "from" => once(&mut from, key, parse_time_param(key, value)?)?,
            "to" => once(&mut to, key, parse_time_param(key, value)?)?,
            "limit" => {
                let n = value
                    .trim()
                    .parse::<usize>()
                    .ok()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| ApiError::bad_param(key, "expected a positive integer"))?;
                // Like an unknown parameter, a page larger than allowed is refused rather
                // than shortened behind the caller's back.
                if let Some((config, _)) = search {
                    if n > config.max_page_size {
                        return Err(ApiError::bad_param(
                            key,
                            format!(
                                "at most {} per page (web.max_page_size); page on with `cursor`",
                                config.max_page_size
                            ),
                        ));
                    }
                }
                once(&mut limit, key, n)?;
            }
            "cursor" => once(&mut f.cursor, key, text_param(key, value)?)?,
            _ => {
                if let Some(path) = key.strip_prefix("json.") {
                    if path.is_empty() || path.len() > MAX_PARAM_BYTES {
                        return Err(ApiError::bad_param(key, "expected json.<path>=<value>"));
                    }
                    if f.json.len() >= MAX_JSON_CONDITIONS {
                        return Err(ApiError::bad_param(
                            key,
                            format!("more than {MAX_JSON_CONDITIONS} json conditions"),
                        ));
                    }
                    if value.len() > MAX_PARAM_BYTES {
                        return Err(ApiError::bad_param(
                            key,
                            format!("longer than {MAX_PARAM_BYTES} bytes"),
                        ));
                    }
                    f.json.push((path.to_string(), value.to_string()));
                } else {
                    return Err(ApiError::bad_param(key, "unknown parameter"));
                }
            }
        }
    }
    let Some((config, now_us)) = search else {
        return Ok(f);
    };
    let window_us = i64::try_from(config.default_window_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1_000_000);
    let (from_us, to_us) = match (from, to) {
        (Some(a), Some(b)) => (a, b),
        (Some(a), None) => (a, a.saturating_add(window_us)),
        (None, Some(b)) => (b.saturating_sub(window_us), b),
        // The upper bound is exclusive: one microsecond past now includes what just arrived.
        (None, None) => (now_us.saturating_sub(window_us), now_us.saturating_add(1)),
    };
    if from_us >= to_us {
        let culprit = if from.is_some() { "from" } else { "to" };
        return Err(ApiError::bad_param(culprit, "`from` must be before `to`"));
    }
    f.from_us = Some(from_us);
    f.to_us = Some(to_us);
    f.limit = limit.unwrap_or(config.default_page_size);
    Ok(f)
}

/// Most further calls one flow may join with `with` (the UI's multi-select).
pub const MAX_FLOW_WITH: usize = 49;

/// The query of a call flow and its exports.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct FlowQuery {
    /// Optional lower bound, µs (no default window: the flow of a Call-ID is found wherever
    /// it is).
    pub from_us: Option<i64>,
    /// Optional upper bound, µs.
    pub to_us: Option<i64>,
    /// Further Call-IDs shown in the same ladder (`with`, repeated or comma-separated), each
    /// with its own correlated legs.
    pub with: Vec<String>,
}

/// Parses the optional `from`/`to` and `with` of the call flow.
pub fn parse_flow_query(raw_query: Option<&str>) -> Result<FlowQuery, ApiError> {
    let mut q = FlowQuery::default();
    for (key, value) in form_urlencoded::parse(raw_query.unwrap_or("").as_bytes()) {
        match key.as_ref() {
            "from" => once(&mut q.from_us, "from", parse_time_param("from", &value)?)?,
            "to" => once(&mut q.to_us, "to", parse_time_param("to", &value)?)?,
            "with" => {
                for id in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let id = text_param("with", id)?;
                    if q.with.contains(&id) {
                        continue;
                    }
                    if q.with.len() >= MAX_FLOW_WITH {
                        return Err(ApiError::bad_param(
                            "with",
                            format!("at most {MAX_FLOW_WITH} further calls in one flow"),
                        ));
                    }
                    q.with.push(id);
                }
            }
            other => return Err(ApiError::bad_param(other, "unknown parameter")),
        }
    }
    if let (Some(a), Some(b)) = (q.from_us, q.to_us) {
        if a >= b {
            return Err(ApiError::bad_param("from", "`from` must be before `to`"));
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(e: ApiError) -> String {
        match e {
            ApiError::BadParam { param, .. } => param,
            other => panic!("not a parameter error: {other:?}"),
        }
    }

    #[test]
    fn time_formats() {
        assert_eq!(
            parse_time_param("from", "2026-11-23T12:30:22.5Z").expect("rfc3339"),
            1_795_437_022_500_000
        );
        assert_eq!(
            parse_time_param("from", "2026-11-23T13:30:22.5+01:00").expect("offset"),
            1_795_437_022_500_000
        );
        assert_eq!(
            parse_time_param("from", "1795437022500").expect("ms"),
            1_795_437_022_500_000
        );
        assert_eq!(parse_time_param("from", "-1000").expect("ms"), -1_000_000);
        for bad in ["", "yesterday", "2026-11-23", "99999999999999999999", "1.5"] {
            assert_eq!(
                param_of(parse_time_param("to", bad).unwrap_err()),
                "to",
                "{bad}"
            );
        }
        assert_eq!(
            format_time_us(1_795_437_022_500_000).as_deref(),
            Some("2026-11-23T12:30:22.500000Z")
        );
        assert_eq!(
            format_time_us(0).as_deref(),
            Some("1970-01-01T00:00:00.000000Z")
        );
        assert_eq!(format_time_us(i64::MAX), None);
    }

    #[test]
    fn every_parameter_maps() {
        let c = WebConfig::default();
        let q = "callid=a,b&callid=c&callid=a&from_user=alice&to_user=bob&ruri_user=100\
                 &method=INVITE&ip=10.0.0.1&src_ip=10.0.0.2&dst_ip=%3A%3A1&node=n1&hep_type=5\
                 &correlation_id=cid&text=hello%20world&json.questions[0].name=example.org\
                 &json.payload.x=1&from=1000&to=2026-01-01T00:00:00Z&limit=50&cursor=abc";
        let f = parse_filter(Some(q), &c, 0).expect("parse");
        assert_eq!(f.call_ids, ["a", "b", "c"]);
        assert_eq!(f.from_user.as_deref(), Some("alice"));
        assert_eq!(f.to_user.as_deref(), Some("bob"));
        assert_eq!(f.ruri_user.as_deref(), Some("100"));
        assert_eq!(f.method, ["INVITE"]);
        assert_eq!(f.ip, Some("10.0.0.1".parse().expect("ip")));
        assert_eq!(f.src_ip, Some("10.0.0.2".parse().expect("ip")));
        assert_eq!(f.dst_ip, Some("::1".parse().expect("ip")));
        assert_eq!(f.node.as_deref(), Some("n1"));
        assert_eq!(f.hep_type, Some(5));
        assert_eq!(f.correlation_id.as_deref(), Some("cid"));
        assert_eq!(f.text.as_deref(), Some("hello world"));
        assert_eq!(
            f.json,
            [
                ("questions[0].name".to_string(), "example.org".to_string()),
                ("payload.x".to_string(), "1".to_string())
            ]
        );
        assert_eq!(f.from_us, Some(1_000_000));
        assert_eq!(f.to_us, Some(1_767_225_600_000_000));
        assert_eq!(f.limit, 50);
        assert_eq!(f.cursor.as_deref(), Some("abc"));
    }

    #[test]
    fn new_search_fields_and_tail() {
        let c = WebConfig::default();
        let q = "any_user=10*&user_agent=*Zoiper*&port=5060&src_port=5061&dst_port=5062\
                 &status=4*&callid=abc*";
        let f = parse_filter(Some(q), &c, 0).expect("parse");
        assert_eq!(f.any_user.as_deref(), Some("10*"));
        assert_eq!(f.user_agent.as_deref(), Some("*Zoiper*"));
        assert_eq!(
            (f.port, f.src_port, f.dst_port),
            (Some(5060), Some(5061), Some(5062))
        );
        assert_eq!(f.status, ["4*"]);
        assert_eq!(f.call_ids, ["abc*"]);
        for (q, param) in [
            ("method=INVITE&method=BYE", "method"),
            ("status=INVITE", "status"),
            ("status=4x5", "status"),
            ("status=,", "status"),
            ("final_status=4xx", "final_status"),
            ("port=70000", "port"),
            ("src_port=-1", "src_port"),
        ] {
            assert_eq!(
                param_of(parse_filter(Some(q), &c, 0).unwrap_err()),
                param,
                "{q}"
            );
        }
        let t = parse_tail_filter(Some("from_user=alice&method=INVITE")).expect("tail");
        assert_eq!((t.from_us, t.to_us), (None, None));
        assert_eq!(t.from_user.as_deref(), Some("alice"));
        for q in ["from=1", "limit=5", "cursor=x", "to=1"] {
            assert!(parse_tail_filter(Some(q)).is_err(), "{q}");
        }
    }

    #[test]
    fn method_and_status_lists() {
        let c = WebConfig::default();
        let f = parse_filter(Some("method=INVITE,%20486,,invite&status=486"), &c, 0)
            .expect("lists and both fields");
        assert_eq!(f.method, ["INVITE", "486", "invite"]);
        assert_eq!(f.status, ["486"]);
        let f = parse_call_filter(Some("final_status=4xx,5XX,6*,603,48x"), &c, 0).expect("calls");
        assert_eq!(f.final_status, ["4*", "5*", "6*", "603", "48*"]);
        let many = format!("method={}", vec!["A"; MAX_LIST_ENTRIES + 1].join(","));
        assert!(parse_filter(Some(&many), &c, 0).is_ok(), "duplicates fold");
        let many: Vec<String> = (0..=MAX_LIST_ENTRIES).map(|i| format!("M{i}")).collect();
        let many = format!("method={}", many.join(","));
        assert_eq!(
            param_of(parse_filter(Some(&many), &c, 0).unwrap_err()),
            "method"
        );
        assert!(parse_tail_filter(Some("final_status=4xx")).is_err());
    }

    #[test]
    fn defaults_window_and_limit() {
        let c = WebConfig::default();
        let now = 10_000_000_000;
        let f = parse_filter(None, &c, now).expect("parse");
        assert_eq!(f.from_us, Some(now - 3_600_000_000));
        assert_eq!(f.to_us, Some(now + 1));
        assert_eq!(f.limit, 100);
        let e = parse_filter(Some("limit=1001"), &c, now).expect_err("over max_page_size");
        assert_eq!(param_of(e), "limit");
        let f = parse_filter(Some("limit=1000"), &c, now).expect("max_page_size");
        assert_eq!(f.limit, 1000);
        let f = parse_filter(Some("from=1000"), &c, now).expect("parse");
        assert_eq!((f.from_us, f.to_us), (Some(1_000_000), Some(3_601_000_000)));
        let f = parse_filter(Some("to=7200000"), &c, now).expect("parse");
        assert_eq!(
            (f.from_us, f.to_us),
            (Some(3_600_000_000), Some(7_200_000_000))
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let c = WebConfig::default();
        let cases = [
            ("limit=0", "limit"),
            ("limit=ten", "limit"),
            ("hep_type=300", "hep_type"),
            ("ip=10.0.0", "ip"),
            ("src_ip=x", "src_ip"),
            ("dst_ip=", "dst_ip"),
            ("from=tomorrow", "from"),
            ("to=2026-13-01T00:00:00Z", "to"),
            ("from=2000&to=1000", "from"),
            ("bogus=1", "bogus"),
            ("json.=1", "json."),
            ("from_user=", "from_user"),
            ("callid=,", "callid"),
            ("from_user=a&from_user=b", "from_user"),
            ("limit=1&limit=2", "limit"),
        ];
        for (q, param) in cases {
            let e = parse_filter(Some(q), &c, 0).expect_err(q);
            assert_eq!(param_of(e), param, "{q}");
        }
        let long = format!("text={}", "x".repeat(MAX_PARAM_BYTES + 1));
        assert_eq!(
            param_of(parse_filter(Some(&long), &c, 0).unwrap_err()),
            "text"
        );
    }

    #[test]
    fn flow_bounds() {
        assert_eq!(parse_flow_query(None).expect("none"), FlowQuery::default());
        let q = parse_flow_query(Some("from=1&to=2")).expect("both");
        assert_eq!((q.from_us, q.to_us), (Some(1000), Some(2000)));
        assert!(parse_flow_query(Some("from=2&to=1")).is_err());
        assert!(parse_flow_query(Some("limit=1")).is_err());
        let q = parse_flow_query(Some("with=b,c&with=c&with=d")).expect("with");
        assert_eq!(q.with, ["b", "c", "d"]);
        let many: Vec<String> = (0..=MAX_FLOW_WITH).map(|i| format!("c{i}")).collect();
        let e = parse_flow_query(Some(&format!("with={}", many.join(",")))).unwrap_err();
        assert_eq!(param_of(e), "with");
    }
}
