//! Log lines sent as HEP type 100 (Kamailio `hlog()`, OpenSIPS `trace`, FreeSWITCH, …).
//!
//! The text is decoded as UTF-8 (invalid bytes become U+FFFD and [`LogRecord::invalid_utf8`] is
//! set), trailing CR / LF are trimmed, text past [`MAX_LOG_BYTES`] is cut (and
//! [`LogRecord::truncated`] set), and a severity is extracted when the line carries one in a form
//! the common SIP servers write:
//!
//! * Kamailio / OpenSIPS / syslog style: `ERROR:`, `WARNING:`, `NOTICE:`, `INFO:`, `DEBUG:`
//!   (also `ERR:`, `WARN:`, `DBG:`, `CRITICAL:`, `CRIT:`, `ALERT:`, `BUG:`, `EMERG:`), e.g.
//!   ` 0(1234) ERROR: tm [t_lookup.c:1234]: ...` or `ERROR:core:receive_msg: ...`;
//! * FreeSWITCH style: `[ERR]`, `[WARNING]`, `[NOTICE]`, `[INFO]`, `[DEBUG]` (also `[CRIT]`,
//!   `[ALERT]`, `[CONSOLE]`), e.g. `2024-01-01 10:00:00.123456 [ERR] sofia.c:123 ...`.
//!
//! A token counts only at the start of the text or after a non-alphanumeric byte, and only within
//! the first [`LEVEL_SCAN_BYTES`] bytes, where every one of those formats puts it. Critical,
//! alert, emergency and bug levels map to [`LogLevel::Error`]; FreeSWITCH's CONSOLE to
//! [`LogLevel::Info`].

use serde::Serialize;

/// Longest log text kept, in bytes; longer text is cut at a character boundary.
pub const MAX_LOG_BYTES: usize = 64 * 1024;

/// How far into the text a severity token is looked for.
pub const LEVEL_SCAN_BYTES: usize = 256;

/// Severity of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LogLevel {
    /// Errors (and critical, alert, emergency, bug).
    Error,
    /// Warnings.
    Warning,
    /// Notices.
    Notice,
    /// Informational messages.
    Info,
    /// Debug output.
    Debug,
}

/// A decoded log payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    /// The text, trailing newlines removed.
    pub text: String,
    /// The severity, when the text carries one.
    pub level: Option<LogLevel>,
    /// Whether invalid UTF-8 was replaced.
    pub invalid_utf8: bool,
    /// Whether the text was cut at [`MAX_LOG_BYTES`].
    pub truncated: bool,
}

/// Decodes a log payload. Never fails: any bytes are some text.
pub fn parse(bytes: &[u8]) -> LogRecord {
    let truncated = bytes.len() > MAX_LOG_BYTES;
    let kept = bytes.get(..MAX_LOG_BYTES).unwrap_or(bytes);
    let (mut text, invalid_utf8) = match std::str::from_utf8(kept) {
        Ok(s) => (s.to_owned(), false),
        Err(e) if truncated && e.error_len().is_none() && e.valid_up_to() + 4 > kept.len() => {
            // The cut split a multi-byte character: drop its first bytes, the text is still valid.
            let valid = kept.get(..e.valid_up_to()).unwrap_or_default();
            (String::from_utf8_lossy(valid).into_owned(), false)
        }
        Err(_) => (String::from_utf8_lossy(kept).into_owned(), true),
    };
    let trimmed = text.trim_end_matches(['\r', '\n']).len();
    text.truncate(trimmed);
    let level = detect_level(&text);
    LogRecord {
        text,
        level,
        invalid_utf8,
        truncated,
    }
}

/// The severity a log line announces, if any (see the module docs for the recognised forms).
pub fn detect_level(text: &str) -> Option<LogLevel> {
    const COLON_TOKENS: &[(&str, LogLevel)] = &[
        ("ERROR:", LogLevel::Error),
        ("ERR:", LogLevel::Error),
        ("CRITICAL:", LogLevel::Error),
        ("CRIT:", LogLevel::Error),
        ("ALERT:", LogLevel::Error),
        ("EMERG:", LogLevel::Error),
        ("BUG:", LogLevel::Error),
        ("WARNING:", LogLevel::Warning),
        ("WARN:", LogLevel::Warning),
        ("NOTICE:", LogLevel::Notice),
        ("INFO:", LogLevel::Info),
        ("DEBUG:", LogLevel::Debug),
        ("DBG:", LogLevel::Debug),
    ];
    const BRACKET_TOKENS: &[(&str, LogLevel)] = &[
        ("[ERR]", LogLevel::Error),
        ("[ERROR]", LogLevel::Error),
        ("[CRIT]", LogLevel::Error),
        ("[ALERT]", LogLevel::Error),
        ("[WARNING]", LogLevel::Warning),
        ("[WARN]", LogLevel::Warning),
        ("[NOTICE]", LogLevel::Notice),
        ("[INFO]", LogLevel::Info),
        ("[CONSOLE]", LogLevel::Info),
        ("[DEBUG]", LogLevel::Debug),
    ];
    let head = text.as_bytes();
    let head = head.get(..LEVEL_SCAN_BYTES).unwrap_or(head);
    // The earliest token wins: later ones are usually part of the message itself.
    (0..head.len()).find_map(|i| {
        let at_boundary = i == 0
            || head
                .get(i - 1)
                .is_some_and(|b| !b.is_ascii_alphanumeric() && *b != b'_');
        if !at_boundary {
            return None;
        }
        let rest = head.get(i..)?;
        COLON_TOKENS
            .iter()
            .chain(BRACKET_TOKENS)
            .find(|(token, _)| rest.starts_with(token.as_bytes()))
            .map(|(_, level)| *level)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_of_common_servers() {
        let cases = [
            (
                " 0(1234) ERROR: tm [t_lookup.c:1234]: no transaction",
                Some(LogLevel::Error),
            ),
            (
                "Jan  1 10:00:00 host opensips[99]: WARNING:core:parse_msg: odd",
                Some(LogLevel::Warning),
            ),
            (
                "14(2345) NOTICE: <script>: routing INVITE",
                Some(LogLevel::Notice),
            ),
            (
                " 3(11) INFO: <core> [main.c:10]: started",
                Some(LogLevel::Info),
            ),
            (
                " 3(11) DEBUG: <core> [parser.c:10]: parsing",
                Some(LogLevel::Debug),
            ),
            (
                "2024-01-01 10:00:00.123456 [ERR] sofia.c:123 failed",
                Some(LogLevel::Error),
            ),
            (
                "2024-01-01 10:00:00.123456 [WARNING] switch_core.c:1 x",
                Some(LogLevel::Warning),
            ),
            (
                "2024-01-01 10:00:00.123456 [DEBUG] mod_sofia.c:1 x",
                Some(LogLevel::Debug),
            ),
            ("CRITICAL: <core> out of memory", Some(LogLevel::Error)),
            ("kamailio routing INVITE to 1001 from caller201", None),
            ("NOERROR: not a level", None),
            ("XERROR: glued to a word", None),
        ];
        for (text, level) in cases {
            assert_eq!(detect_level(text), level, "{text}");
        }
    }

    #[test]
    fn earliest_token_wins() {
        assert_eq!(
            detect_level(" 1(2) WARNING: remote said ERROR: busy"),
            Some(LogLevel::Warning)
        );
    }

    #[test]
    fn trims_and_flags_bad_utf8() {
        let rec = parse(b"ERROR: bad \xff byte\r\n\n");
        assert_eq!(rec.text, "ERROR: bad \u{fffd} byte");
        assert!(rec.invalid_utf8);
        assert!(!rec.truncated);
        assert_eq!(rec.level, Some(LogLevel::Error));
    }

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let mut bytes = vec![b'a'; MAX_LOG_BYTES - 1];
        bytes.extend_from_slice("é and more".as_bytes());
        let rec = parse(&bytes);
        assert!(rec.truncated);
        assert!(!rec.invalid_utf8);
        assert_eq!(rec.text.len(), MAX_LOG_BYTES - 1);
    }
}
