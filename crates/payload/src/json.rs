//! JSON reports (HEP types 34, 35, 38, 50, 53, 54, 55, 56, 57, 58, 60, 61, 126, 133, …) kept as
//! validated [`serde_json::Value`]s, and [`json_path`] to look fields up by path.
//!
//! Validation caps the input at [`MAX_JSON_BYTES`] and the nesting at [`MAX_JSON_DEPTH`]. The
//! depth is checked by a byte scan *before* serde_json builds anything, so neither serde_json's
//! recursion nor the recursive drop of a deep `Value` can exhaust the stack.

use serde::Serialize;
use serde_json::Value;

/// Largest JSON payload accepted, in bytes. A HEP packet's length field is 16 bits, so real
/// payloads are below 64 KiB; the cap leaves room for HEP over TCP framings that exceed it.
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// Deepest nesting of arrays / objects accepted (the top-level value is depth 1).
pub const MAX_JSON_DEPTH: usize = 64;

/// Why a payload is not accepted as JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Larger than [`MAX_JSON_BYTES`].
    #[error("JSON payload of {0} bytes exceeds the {MAX_JSON_BYTES}-byte cap")]
    TooLarge(usize),
    /// Nested deeper than [`MAX_JSON_DEPTH`].
    #[error("JSON nested deeper than {MAX_JSON_DEPTH} levels")]
    TooDeep,
    /// Not valid JSON.
    #[error("invalid JSON: {0}")]
    Syntax(#[from] serde_json::Error),
}

/// A JSON payload that passed validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JsonReport {
    /// HEP proto type it arrived with.
    pub proto_type: u8,
    /// The document.
    pub value: Value,
}

/// Validates `bytes` as one JSON document within the size and depth caps.
pub fn parse_value(bytes: &[u8]) -> Result<Value, JsonError> {
    if bytes.len() > MAX_JSON_BYTES {
        return Err(JsonError::TooLarge(bytes.len()));
    }
    check_depth(bytes)?;
    Ok(serde_json::from_slice(bytes)?)
}

/// Rejects input whose brackets nest deeper than [`MAX_JSON_DEPTH`], ignoring brackets inside
/// strings. Syntax errors are left to serde_json.
fn check_depth(bytes: &[u8]) -> Result<(), JsonError> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_JSON_DEPTH {
                    return Err(JsonError::TooDeep);
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// Whether the first non-whitespace byte opens a JSON object or array.
pub fn looks_like_json(bytes: &[u8]) -> bool {
    matches!(
        bytes.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{') | Some(b'[')
    )
}

/// Looks up a field by path.
///
/// Syntax: keys separated by `.`, each optionally followed by one or more `[n]` array indexes;
/// a path may also start with an index. Examples: `payload.questions[0].name`, `[2].id`,
/// `matrix[1][0]`. Keys cannot contain `.` or `[`. The empty path is the value itself. Returns
/// `None` when any step is missing, indexes a non-array, or keys a non-object.
pub fn json_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut current = value;
    if path.is_empty() {
        return Some(current);
    }
    for segment in path.split('.') {
        let (key, mut indexes) = match segment.find('[') {
            Some(i) => (segment.get(..i)?, segment.get(i..)?),
            None => (segment, ""),
        };
        if !key.is_empty() {
            current = current.as_object()?.get(key)?;
        } else if indexes.is_empty() {
            // An empty key between dots ("a..b") names nothing.
            return None;
        }
        while !indexes.is_empty() {
            let rest = indexes.strip_prefix('[')?;
            let close = rest.find(']')?;
            let index: usize = rest.get(..close)?.parse().ok()?;
            current = current.as_array()?.get(index)?;
            indexes = rest.get(close + 1..)?;
        }
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn path_lookup() {
        let v = json!({"payload": {"questions": [{"name": "a.example"}, {"name": "b"}]},
                       "m": [[1, 2], [3]], "k": 5});
        assert_eq!(
            json_path(&v, "payload.questions[0].name"),
            Some(&json!("a.example"))
        );
        assert_eq!(
            json_path(&v, "payload.questions[1].name"),
            Some(&json!("b"))
        );
        assert_eq!(json_path(&v, "m[1][0]"), Some(&json!(3)));
        assert_eq!(json_path(&v, ""), Some(&v));
        assert_eq!(json_path(&json!([7, 8]), "[1]"), Some(&json!(8)));
        assert_eq!(json_path(&v, "payload.questions[2]"), None);
        assert_eq!(json_path(&v, "k.x"), None);
        assert_eq!(json_path(&v, "k[0]"), None);
        assert_eq!(json_path(&v, "m[x]"), None);
        assert_eq!(json_path(&v, "m[0"), None);
        assert_eq!(json_path(&v, "payload..questions"), None);
    }

    #[test]
    fn depth_cap_counts_only_structural_brackets() {
        let ok = format!("{}{}", "[".repeat(64), "]".repeat(64));
        assert!(parse_value(ok.as_bytes()).is_ok());
        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        assert!(matches!(
            parse_value(deep.as_bytes()),
            Err(JsonError::TooDeep)
        ));
        let in_string = format!("{{\"a\":\"{}\\\"{}\"}}", "[".repeat(100), "{".repeat(100));
        assert!(parse_value(in_string.as_bytes()).is_ok());
        // A huge unbalanced prefix is rejected without recursion.
        let hostile = "[".repeat(1_000_000);
        assert!(matches!(
            parse_value(hostile.as_bytes()),
            Err(JsonError::TooDeep)
        ));
    }

    #[test]
    fn size_cap() {
        let big = vec![b' '; MAX_JSON_BYTES + 1];
        assert!(matches!(parse_value(&big), Err(JsonError::TooLarge(_))));
    }

    #[test]
    fn detects_json_start() {
        assert!(looks_like_json(b"  {\"a\":1}"));
        assert!(looks_like_json(b"[1]"));
        assert!(!looks_like_json(b"\x80\xc8"));
        assert!(!looks_like_json(b""));
    }
}
