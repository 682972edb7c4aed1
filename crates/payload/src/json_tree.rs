//! A JSON document as a tree that borrows its strings from the input, for readers that look a
//! few fields up and throw the document away (the RTCP JSON reader).
//!
//! Why not [`serde_json::Value`]: building a `Value` allocates every object key and a B-tree per
//! object, which made the RTCP JSON parse cost ≈ 2.7 µs per report in the collector. Here keys
//! and escape-free strings borrow from the input and an object is a vector of entries.
//!
//! Reading a [`JsonTree`] gives the same answers as reading the `Value` serde_json would build
//! from the same bytes: the syntax is serde_json's own (it drives the visitor below), numbers
//! keep serde_json's three kinds, and of repeated keys the last one counts, as in a `Value` map
//! (the tests compare the two on generated documents).

use std::borrow::Cow;
use std::fmt;

use std::cell::Cell;

use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use crate::json::{JsonError, MAX_JSON_BYTES, MAX_JSON_DEPTH};

/// A JSON number, kept the way serde_json's `Number` keeps it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum JsonNumber {
    /// A non-negative integer.
    PosInt(u64),
    /// A negative integer.
    NegInt(i64),
    /// Any other number (finite).
    Float(f64),
}

impl JsonNumber {
    /// As serde_json's `Number::as_u64`.
    pub(crate) fn as_u64(self) -> Option<u64> {
        match self {
            JsonNumber::PosInt(n) => Some(n),
            _ => None,
        }
    }

    /// As serde_json's `Number::as_i64`.
    pub(crate) fn as_i64(self) -> Option<i64> {
        match self {
            JsonNumber::PosInt(n) => i64::try_from(n).ok(),
            JsonNumber::NegInt(n) => Some(n),
            JsonNumber::Float(_) => None,
        }
    }

    /// As serde_json's `Number::as_f64` (always `Some`; the `Option` keeps its signature).
    pub(crate) fn as_f64(self) -> Option<f64> {
        Some(match self {
            JsonNumber::PosInt(n) => n as f64,
            JsonNumber::NegInt(n) => n as f64,
            JsonNumber::Float(f) => f,
        })
    }
}

/// One JSON value whose strings borrow from the parsed bytes where they can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum JsonTree<'a> {
    Null,
    Bool(bool),
    Number(JsonNumber),
    String(Cow<'a, str>),
    Array(Vec<JsonTree<'a>>),
    Object(JsonObject<'a>),
}

/// A JSON object: its entries in document order, repeated keys included.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct JsonObject<'a> {
    entries: Vec<(Cow<'a, str>, JsonTree<'a>)>,
}

impl<'a> JsonTree<'a> {
    /// The object, when this is one.
    pub(crate) fn as_object(&self) -> Option<&JsonObject<'a>> {
        match self {
            JsonTree::Object(o) => Some(o),
            _ => None,
        }
    }
}

impl<'a> JsonObject<'a> {
    /// The value of `key`; of repeated keys the last, as serde_json's map keeps it.
    pub(crate) fn get(&self, key: &str) -> Option<&JsonTree<'a>> {
        self.entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The values of the distinct keys (the last of repeated ones), in no particular order.
    /// Large objects are sorted rather than compared pairwise, so that a hostile object with
    /// thousands of keys costs O(n log n).
    pub(crate) fn values(&self) -> impl Iterator<Item = &JsonTree<'a>> {
        let entries = &self.entries;
        let mut keep: Vec<usize> = (0..entries.len()).collect();
        if entries.len() <= 16 {
            keep.retain(|&i| !entries[i + 1..].iter().any(|(k, _)| *k == entries[i].0));
        } else {
            // By key, and of equal keys the latest first; then the first of each run is kept.
            keep.sort_unstable_by(|&a, &b| entries[a].0.cmp(&entries[b].0).then(b.cmp(&a)));
            keep.dedup_by(|later, kept| entries[*later].0 == entries[*kept].0);
        }
        keep.into_iter().map(move |i| &entries[i].1)
    }
}

/// Parses `bytes` as one JSON document within the crate's size and depth caps
/// ([`crate::json::MAX_JSON_BYTES`], [`crate::json::MAX_JSON_DEPTH`]). The depth is counted
/// while the tree is built (no separate scan of the bytes), so a document too deep is refused
/// before the parser recurses further.
///
/// Two parsers: [`FastParser`] reads the documents the collector sees every second (objects,
/// arrays, integers, plain strings) and gives up on anything else; serde_json then reads the
/// document again, so floats, `\u` surrogates, every error and its message are serde_json's.
pub(crate) fn parse_tree(bytes: &[u8]) -> Result<JsonTree<'_>, JsonError> {
    if bytes.len() > MAX_JSON_BYTES {
        return Err(JsonError::TooLarge(bytes.len()));
    }
    if let Some(tree) = FastParser::parse(bytes) {
        return Ok(tree);
    }
    parse_tree_with_serde(bytes)
}

/// [`parse_tree`] by serde_json alone.
fn parse_tree_with_serde(bytes: &[u8]) -> Result<JsonTree<'_>, JsonError> {
    let too_deep = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed = TreeSeed {
        depth: 0,
        too_deep: &too_deep,
    }
    .deserialize(&mut de)
    .and_then(|tree| de.end().map(|()| tree));
    match parsed {
        Ok(tree) => Ok(tree),
        Err(_) if too_deep.get() => Err(JsonError::TooDeep),
        Err(e) => Err(JsonError::Syntax(e)),
    }
}

/// A JSON reader for the common case. Building the tree through serde_json's deserializer
/// and visitor was ~3 % of the collector's CPU (an RTCP report per four messages); reading the
/// bytes directly took `rtcp::from_json` of the rtpengine sample from 1.60 to 1.42 µs.
///
/// It accepts only what serde_json accepts and builds the same tree; whatever it is not sure
/// of (a float, an integer out of the plain `u64`/`i64` ranges, `-0`, a `\u` escape of a
/// surrogate, any syntax error, nesting deeper than the cap) makes it give up with `None`, and
/// the caller asks serde_json. The tests and the `json_tree` fuzz target compare the two.
struct FastParser<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> FastParser<'a> {
    fn parse(bytes: &'a [u8]) -> Option<JsonTree<'a>> {
        let mut p = FastParser { bytes, pos: 0 };
        p.skip_ws();
        let tree = p.value(0)?;
        p.skip_ws();
        (p.pos == bytes.len()).then_some(tree)
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
    }

    /// Consumes `b` (after whitespace) when it comes next.
    fn eat(&mut self, b: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// One value at nesting `depth` (the top-level value's containers are at depth 1), with
    /// the position on its first byte.
    fn value(&mut self, depth: usize) -> Option<JsonTree<'a>> {
        match self.peek()? {
            b'{' => {
                if depth >= MAX_JSON_DEPTH {
                    return None;
                }
                self.pos += 1;
                let mut entries = Vec::with_capacity(8);
                if self.eat(b'}') {
                    return Some(JsonTree::Object(JsonObject { entries }));
                }
                loop {
                    self.skip_ws();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return None;
                    }
                    self.skip_ws();
                    entries.push((key, self.value(depth + 1)?));
                    if self.eat(b',') {
                        continue;
                    }
                    return self
                        .eat(b'}')
                        .then_some(JsonTree::Object(JsonObject { entries }));
                }
            }
            b'[' => {
                if depth >= MAX_JSON_DEPTH {
                    return None;
                }
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat(b']') {
                    return Some(JsonTree::Array(items));
                }
                loop {
                    self.skip_ws();
                    items.push(self.value(depth + 1)?);
                    if self.eat(b',') {
                        continue;
                    }
                    return self.eat(b']').then_some(JsonTree::Array(items));
                }
            }
            b'"' => self.string().map(JsonTree::String),
            b't' => self.literal(b"true", JsonTree::Bool(true)),
            b'f' => self.literal(b"false", JsonTree::Bool(false)),
            b'n' => self.literal(b"null", JsonTree::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &[u8], tree: JsonTree<'a>) -> Option<JsonTree<'a>> {
        let end = self.pos + word.len();
        (self.bytes.get(self.pos..end)? == word).then(|| {
            self.pos = end;
            tree
        })
    }

    /// An integer as serde_json reads it: unsigned when not negative, signed when negative.
    fn number(&mut self) -> Option<JsonTree<'a>> {
        let start = self.pos;
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let digits = self.pos;
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
        let run = self.bytes.get(digits..self.pos)?;
        // No digit, or a leading zero followed by more digits (invalid JSON either way).
        if run.is_empty() || (run.len() > 1 && run[0] == b'0') {
            return None;
        }
        if let Some(b'.' | b'e' | b'E') = self.peek() {
            return self.float(start);
        }
        let mut magnitude: u64 = 0;
        for d in run {
            magnitude = magnitude
                .checked_mul(10)?
                .checked_add(u64::from(d - b'0'))?;
        }
        let number = if !negative {
            JsonNumber::PosInt(magnitude)
        } else if magnitude == 0 || magnitude > 1 << 63 {
            // `-0` is a float to serde_json, and so is a magnitude past `i64::MIN`.
            return None;
        } else {
            // 1..=2^63: `i64::MIN` included.
            JsonNumber::NegInt(0i64.wrapping_sub_unsigned(magnitude))
        };
        Some(JsonTree::Number(number))
    }

    /// A number with a fraction or an exponent, from its first byte at `start`: its token is
    /// handed to serde_json, which rounds exactly as it would in a whole document.
    fn float(&mut self, start: usize) -> Option<JsonTree<'a>> {
        while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = self.peek() {
            self.pos += 1;
        }
        let v: f64 = serde_json::from_slice(self.bytes.get(start..self.pos)?).ok()?;
        // serde_json's `Value` turns a non-finite float into null.
        Some(if v.is_finite() {
            JsonTree::Number(JsonNumber::Float(v))
        } else {
            JsonTree::Null
        })
    }

    /// A string, with the position on its opening quote; borrowed when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek() != Some(b'"') {
            return None;
        }
        self.pos += 1;
        let first = self.plain_run()?;
        if self.peek() == Some(b'"') {
            self.pos += 1;
            return Some(Cow::Borrowed(first));
        }
        let mut owned = String::from(first);
        loop {
            match self.peek()? {
                b'"' => {
                    self.pos += 1;
                    return Some(Cow::Owned(owned));
                }
                b'\\' => {
                    let escaped = match *self.bytes.get(self.pos + 1)? {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => {
                            let hex = self.bytes.get(self.pos + 2..self.pos + 6)?;
                            let hex = std::str::from_utf8(hex).ok()?;
                            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                                return None;
                            }
                            // Surrogates (pairs or lone) are left to serde_json.
                            let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                            self.pos += 4;
                            c
                        }
                        _ => return None,
                    };
                    owned.push(escaped);
                    self.pos += 2;
                }
                // A control character, which JSON strings may not hold.
                _ => return None,
            }
            owned.push_str(self.plain_run()?);
        }
    }

    /// The string text from the position up to the next quote, backslash or control byte
    /// (possibly empty), which must exist; it must be UTF-8.
    fn plain_run(&mut self) -> Option<&'a str> {
        let rest = self.bytes.get(self.pos..)?;
        let end = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        self.pos += end;
        std::str::from_utf8(&rest[..end]).ok()
    }
}

/// Whether the fast reader agrees with serde_json on `bytes`: where it reads a tree, serde_json
/// reads the same one. For the `rtcp` fuzz target and the tests.
#[doc(hidden)]
pub fn fast_reader_agrees(bytes: &[u8]) -> bool {
    match FastParser::parse(bytes) {
        None => true,
        Some(fast) => matches!(parse_tree_with_serde(bytes), Ok(slow) if slow == fast),
    }
}

/// Builds one value at nesting `depth` (the top-level value's containers are at depth 1).
#[derive(Clone, Copy)]
struct TreeSeed<'f> {
    depth: usize,
    too_deep: &'f Cell<bool>,
}

impl TreeSeed<'_> {
    /// The seed for the members of a container opened at this level, or the too-deep error.
    fn nested<E: de::Error>(self) -> Result<Self, E> {
        if self.depth >= MAX_JSON_DEPTH {
            self.too_deep.set(true);
            return Err(E::custom("JSON nested too deep"));
        }
        Ok(TreeSeed {
            depth: self.depth + 1,
            too_deep: self.too_deep,
        })
    }
}

impl<'de> DeserializeSeed<'de> for TreeSeed<'_> {
    type Value = JsonTree<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for TreeSeed<'_> {
    type Value = JsonTree<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(JsonTree::Null)
    }

    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(JsonTree::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(JsonTree::Bool(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(JsonTree::Number(JsonNumber::PosInt(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        // serde_json's `Number::from(i64)` keeps non-negative values as unsigned.
        Ok(JsonTree::Number(match u64::try_from(v) {
            Ok(n) => JsonNumber::PosInt(n),
            Err(_) => JsonNumber::NegInt(v),
        }))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        // serde_json's `Value` turns a non-finite float into null.
        Ok(if v.is_finite() {
            JsonTree::Number(JsonNumber::Float(v))
        } else {
            JsonTree::Null
        })
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(JsonTree::String(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(JsonTree::String(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(JsonTree::String(Cow::Owned(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let member = self.nested()?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(member)? {
            items.push(item);
        }
        Ok(JsonTree::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let member = self.nested()?;
        // RTCP report objects have 5–10 keys: one allocation for most of them.
        let mut entries = Vec::with_capacity(8);
        while let Some(ObjectKey(key)) = map.next_key()? {
            entries.push((key, map.next_value_seed(member)?));
        }
        Ok(JsonTree::Object(JsonObject { entries }))
    }
}

/// An object key, borrowed when it has no escapes.
struct ObjectKey<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for ObjectKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = ObjectKey<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(ObjectKey(Cow::Borrowed(v)))
            }

            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ObjectKey(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(ObjectKey(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// The same reading of a tree and of the `Value` serde_json builds from the same bytes.
    fn same(tree: &JsonTree, value: &Value) -> bool {
        match (tree, value) {
            (JsonTree::Null, Value::Null) => true,
            (JsonTree::Bool(a), Value::Bool(b)) => a == b,
            (JsonTree::Number(n), Value::Number(m)) => {
                n.as_u64() == m.as_u64() && n.as_i64() == m.as_i64() && n.as_f64() == m.as_f64()
            }
            (JsonTree::String(a), Value::String(b)) => a == b,
            (JsonTree::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
            }
            (JsonTree::Object(o), Value::Object(m)) => {
                o.values().count() == m.len()
                    && m.iter().all(|(k, v)| o.get(k).is_some_and(|t| same(t, v)))
            }
            _ => false,
        }
    }

    #[test]
    fn strings_borrow_unless_escaped() {
        let tree = parse_tree(br#"{"a":"plain","b\u0041":"esc\n"}"#).expect("valid");
        let o = tree.as_object().expect("object");
        assert!(matches!(
            o.get("a"),
            Some(JsonTree::String(Cow::Borrowed("plain")))
        ));
        assert!(matches!(o.get("bA"), Some(JsonTree::String(Cow::Owned(s))) if s == "esc\n"));
    }

    #[test]
    fn repeated_keys_read_as_serde_json_reads_them() {
        let bytes = br#"{"k":1,"x":2,"k":3,"k":{"z":[1,-2,3.5]}}"#;
        let tree = parse_tree(bytes).expect("valid");
        let value: Value = serde_json::from_slice(bytes).expect("valid");
        assert!(same(&tree, &value), "{tree:?} vs {value}");
        assert_eq!(tree.as_object().expect("object").values().count(), 2);
    }

    #[test]
    fn values_of_large_objects_keep_the_last_of_repeated_keys() {
        let mut text = String::from("{");
        for i in 0..40 {
            text.push_str(&format!("\"k{}\":{i},", i % 20));
        }
        text.push_str("\"z\":null}");
        let tree = parse_tree(text.as_bytes()).expect("valid");
        let value: Value = serde_json::from_str(&text).expect("valid");
        assert!(same(&tree, &value));
        let mut seen: Vec<u64> = tree
            .as_object()
            .expect("object")
            .values()
            .filter_map(|v| match v {
                JsonTree::Number(n) => n.as_u64(),
                _ => None,
            })
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (20..40).collect::<Vec<u64>>());
    }

    #[test]
    fn limits_and_syntax_errors_are_those_of_parse_value() {
        let deep = "[".repeat(MAX_JSON_DEPTH + 1);
        assert!(matches!(
            parse_tree(deep.as_bytes()),
            Err(JsonError::TooDeep)
        ));
        let deepest = format!(
            "{}{}",
            "[".repeat(MAX_JSON_DEPTH),
            "]".repeat(MAX_JSON_DEPTH)
        );
        assert!(parse_tree(deepest.as_bytes()).is_ok());
        assert!(crate::json::parse_value(deepest.as_bytes()).is_ok());
        let big = vec![b' '; MAX_JSON_BYTES + 1];
        assert!(matches!(parse_tree(&big), Err(JsonError::TooLarge(_))));
        for bad in [&b"{"[..], b"{\"a\":}", b"", b"1 2", b"{\"a\":1e400}"] {
            let ours = parse_tree(bad).expect_err("invalid").to_string();
            let theirs = crate::json::parse_value(bad)
                .expect_err("invalid")
                .to_string();
            assert_eq!(ours, theirs);
        }
    }

    #[test]
    fn the_fast_reader_reads_what_serde_json_reads_or_gives_up() {
        let cases: [&[u8]; 40] = [
            b"0",
            b"-0",
            b"01",
            b"-",
            b"-a",
            b"1.",
            b"1.5",
            b"-0.0",
            b"1e400",
            b"-1e400",
            b"2.5E-3",
            b"1e5-3",
            b"18446744073709551615",
            b"18446744073709551616",
            b"-9223372036854775808",
            b"-9223372036854775809",
            b"[1,]",
            b"[,1]",
            b"{\"a\":1,}",
            b"{\"a\" 1}",
            b"{a:1}",
            b"{\"a\":1 \"b\":2}",
            b" [ 1 , { \"k\" : [ true , false , null ] } ] \r\n\t",
            b"tru",
            b"nulls",
            b"\"\\ud800\"",
            b"\"\\ud83d\\ude00\"",
            b"\"\\u00e9\\n\\/\\b\\f\\r\\t\\\"\\\\\"",
            b"\"\\u00G9\"",
            b"\"\\x\"",
            b"\"a\tb\"",
            b"\"\xff\"",
            b"\"\xc3\xa9\"",
            b"\"caf\xc3\xa9\\n\xc3\xa9\"",
            b"\"unterminated",
            b"[1] x",
            b"",
            b"   ",
            b"{\"a\":{\"b\":[[[]]]},\"a\":-5}",
            b"[\"\\u0000\"]",
        ];
        for case in cases {
            assert!(
                fast_reader_agrees(case),
                "fast reader disagrees on {:?}",
                String::from_utf8_lossy(case)
            );
            // And the two-stage parse answers as serde_json's `Value` does.
            let value: Result<Value, _> = serde_json::from_slice(case);
            match (parse_tree(case), value) {
                (Ok(tree), Ok(value)) => assert!(same(&tree, &value), "{tree:?} vs {value}"),
                (Err(_), Err(_)) => {}
                (a, b) => panic!("{:?}: {a:?} vs {b:?}", String::from_utf8_lossy(case)),
            }
        }
        // The common case takes the fast path, with borrowed strings.
        let rtcp = br#"{"type":200,"ssrc":305419896,"report_blocks":[{"fraction_lost":0,"packets_lost":-3}],"sdes":"x"}"#;
        let tree = FastParser::parse(rtcp).expect("fast path");
        let o = tree.as_object().expect("object");
        assert!(matches!(
            o.get("sdes"),
            Some(JsonTree::String(Cow::Borrowed("x")))
        ));
        // Floats are read through their token; `-0` is left to serde_json (a float to it).
        assert_eq!(
            FastParser::parse(b"[1.5,2e3]"),
            Some(JsonTree::Array(vec![
                JsonTree::Number(JsonNumber::Float(1.5)),
                JsonTree::Number(JsonNumber::Float(2000.0)),
            ]))
        );
        assert!(FastParser::parse(b"[1.5, -0]").is_none());
        let deepest = "[".repeat(MAX_JSON_DEPTH) + &"]".repeat(MAX_JSON_DEPTH);
        assert!(FastParser::parse(deepest.as_bytes()).is_some());
        let too_deep = "[".repeat(MAX_JSON_DEPTH + 1) + &"]".repeat(MAX_JSON_DEPTH + 1);
        assert!(FastParser::parse(too_deep.as_bytes()).is_none());
        assert!(matches!(
            parse_tree(too_deep.as_bytes()),
            Err(JsonError::TooDeep)
        ));
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            (-1e20f64..1e20).prop_map(Value::from),
            "[a-z\\\\\"\u{e9}\n]{0,6}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec(("[a-c]{1,2}", inner), 0..6).prop_map(|kv| {
                    // Written out by hand so that repeated keys reach the parser.
                    let body: Vec<String> = kv
                        .iter()
                        .map(|(k, v)| format!("{}:{}", Value::String(k.clone()), render(v)))
                        .collect();
                    Value::String(format!("{{{}}}", body.join(",")))
                }),
            ]
        })
    }

    /// Renders generated values, turning the strings that spell objects back into raw objects.
    fn render(v: &Value) -> String {
        match v {
            Value::String(s) if s.starts_with('{') => s.clone(),
            Value::Array(a) => format!("[{}]", a.iter().map(render).collect::<Vec<_>>().join(",")),
            other => other.to_string(),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        #[test]
        fn reads_as_serde_json_value_reads(doc in arb_json()) {
            let text = render(&doc);
            let value: Result<Value, _> = serde_json::from_str(&text);
            let tree = parse_tree(text.as_bytes());
            match (&tree, &value) {
                (Ok(t), Ok(v)) => prop_assert!(same(t, v), "{} → {:?} vs {}", text, t, v),
                (Err(_), Err(_)) => {}
                _ => prop_assert!(false, "{}: {:?} vs {:?}", text, tree, value),
            }
        }

        /// Documents with a few bytes changed: near-valid input, where a reader that accepts
        /// too much would show. Mostly structural bytes, so that trailing commas, missing
        /// colons and the like come up often.
        #[test]
        fn the_fast_reader_agrees_on_damaged_documents(
            doc in arb_json(),
            edits in prop::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    prop_oneof![
                        3 => prop::sample::select(b"{}[]:,\" ".to_vec()),
                        1 => prop::sample::select(
                            b"\\0123456789-+.eEtrufalsn\x00\x1f\x7f\xc3\xa9\xff/ubnx".to_vec(),
                        ),
                    ],
                    0u8..3,
                ),
                1..4,
            ),
        ) {
            let mut bytes = render(&doc).into_bytes();
            for (at, byte, how) in edits {
                let i = at.index(bytes.len() + 1);
                match how {
                    0 => bytes.insert(i, byte),
                    1 if i < bytes.len() => { bytes.remove(i); }
                    _ if i < bytes.len() => bytes[i] = byte,
                    _ => bytes.push(byte),
                }
            }
            prop_assert!(fast_reader_agrees(&bytes), "{:?}", String::from_utf8_lossy(&bytes));
            let value = crate::json::parse_value(&bytes);
            let tree = parse_tree(&bytes);
            prop_assert_eq!(value.is_ok(), tree.is_ok());
            if let (Ok(v), Ok(t)) = (&value, &tree) {
                prop_assert!(same(t, v));
            }
        }

        #[test]
        fn arbitrary_bytes_parse_alike(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let value = crate::json::parse_value(&bytes);
            let tree = parse_tree(&bytes);
            prop_assert_eq!(value.is_ok(), tree.is_ok());
            if let (Ok(v), Ok(t)) = (&value, &tree) {
                prop_assert!(same(t, v));
            }
        }
    }
}
