//! [`IndexerConfig`] and the compiled [`Indexer`] built from it.

use std::sync::Arc;

use regex::bytes::Regex;
use serde::{Deserialize, Serialize};

use crate::message::SipMessage;

/// Default for [`IndexerConfig::max_headers`].
pub const DEFAULT_MAX_HEADERS: usize = 256;

/// What the indexer extracts beyond the fixed HOMER field set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IndexerConfig {
    /// Extra header names to extract (heplify-server's `CustomHeader`). Matched
    /// case-insensitively; the first occurrence in the message is kept and reported under the
    /// name as configured here. Default: none.
    pub custom_headers: Vec<String>,
    /// A-leg / correlation headers in priority order (heplify-server's `AlegIDs`): the first rule
    /// that matches some header of the message gives [`SipMessage::aleg_id`]. Default: none.
    pub aleg_headers: Vec<AlegRule>,
    /// Safety cap on the number of header lines examined per message; the rest of the header
    /// block is skipped and a [`crate::Diagnostic::TooManyHeaders`] is reported. Real messages
    /// carry 10–40 headers. Default: [`DEFAULT_MAX_HEADERS`].
    pub max_headers: usize,
}

impl Default for IndexerConfig {
    fn default() -> Self {
        IndexerConfig {
            custom_headers: Vec::new(),
            aleg_headers: Vec::new(),
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

/// One A-leg correlation rule: a header name, optionally with a regular expression whose first
/// capture group is the id (e.g. `P-Charging-Vector` with `icid-value=([^;]+)`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlegRule {
    /// Header name, matched case-insensitively (e.g. `X-CID`).
    pub header: String,
    /// Regular expression applied to the header value; capture group 1 is the id. Without one,
    /// the whole (trimmed) value is the id.
    #[serde(default)]
    pub regex: Option<String>,
}

impl AlegRule {
    /// A rule that takes the whole value of `header`.
    pub fn header(header: impl Into<String>) -> Self {
        AlegRule {
            header: header.into(),
            regex: None,
        }
    }

    /// A rule that takes capture group 1 of `regex` applied to the value of `header`.
    pub fn with_regex(header: impl Into<String>, regex: impl Into<String>) -> Self {
        AlegRule {
            header: header.into(),
            regex: Some(regex.into()),
        }
    }
}

/// Why an [`IndexerConfig`] was rejected.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A custom header or A-leg rule has an empty header name.
    #[error("empty header name in the SIP indexer configuration")]
    EmptyHeaderName,
    /// An A-leg regular expression does not compile.
    #[error("A-leg rule for header {header:?}: invalid regular expression")]
    Regex {
        /// The rule's header.
        header: String,
        /// The regex crate's error.
        #[source]
        source: regex::Error,
    },
    /// An A-leg regular expression has no capture group to take the id from.
    #[error("A-leg rule for header {header:?}: the regular expression has no capture group")]
    NoCaptureGroup {
        /// The rule's header.
        header: String,
    },
    /// `max_headers` is 0, which would index nothing.
    #[error("max_headers must be at least 1")]
    ZeroMaxHeaders,
}

/// A compiled A-leg rule.
#[derive(Debug, Clone)]
pub(crate) struct CompiledAleg {
    pub(crate) header: Box<[u8]>,
    pub(crate) regex: Option<Regex>,
}

/// The SIP indexer: build it once from an [`IndexerConfig`] (regular expressions are compiled
/// here, never per message), then call [`Indexer::index`] for every message. Cheap to share
/// between threads (`Sync`) and to clone.
#[derive(Debug, Clone)]
pub struct Indexer {
    pub(crate) custom_headers: Vec<Arc<str>>,
    pub(crate) aleg: Vec<CompiledAleg>,
    pub(crate) max_headers: usize,
}

impl Indexer {
    /// Compiles a configuration.
    pub fn new(config: IndexerConfig) -> Result<Indexer, ConfigError> {
        if config.max_headers == 0 {
            return Err(ConfigError::ZeroMaxHeaders);
        }
        let mut custom_headers = Vec::with_capacity(config.custom_headers.len());
        for name in config.custom_headers {
            let name = name.trim();
            if name.is_empty() {
                return Err(ConfigError::EmptyHeaderName);
            }
            custom_headers.push(Arc::from(name));
        }
        let mut aleg = Vec::with_capacity(config.aleg_headers.len());
        for rule in config.aleg_headers {
            let header = rule.header.trim();
            if header.is_empty() {
                return Err(ConfigError::EmptyHeaderName);
            }
            let regex = match rule.regex {
                None => None,
                Some(pattern) => {
                    let regex = Regex::new(&pattern).map_err(|source| ConfigError::Regex {
                        header: header.to_owned(),
                        source,
                    })?;
                    if regex.captures_len() < 2 {
                        return Err(ConfigError::NoCaptureGroup {
                            header: header.to_owned(),
                        });
                    }
                    Some(regex)
                }
            };
            aleg.push(CompiledAleg {
                header: header.as_bytes().into(),
                regex,
            });
        }
        Ok(Indexer {
            custom_headers,
            aleg,
            max_headers: config.max_headers,
        })
    }

    /// Indexes one SIP message. Never fails: whatever cannot be read is left `None` / empty and
    /// explained in [`SipMessage::diagnostics`].
    pub fn index<'a>(&self, msg: &'a [u8]) -> SipMessage<'a> {
        crate::message::index_with(self, msg)
    }
}

impl Default for Indexer {
    /// The indexer for [`IndexerConfig::default`]: the HOMER field set only.
    fn default() -> Self {
        Indexer {
            custom_headers: Vec::new(),
            aleg: Vec::new(),
            max_headers: DEFAULT_MAX_HEADERS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_bad_configs() {
        let cfg = |rule: AlegRule| IndexerConfig {
            aleg_headers: vec![rule],
            ..IndexerConfig::default()
        };
        assert!(matches!(
            Indexer::new(cfg(AlegRule::with_regex("X", "("))),
            Err(ConfigError::Regex { .. })
        ));
        assert!(matches!(
            Indexer::new(cfg(AlegRule::with_regex("X", "abc"))),
            Err(ConfigError::NoCaptureGroup { .. })
        ));
        assert!(matches!(
            Indexer::new(cfg(AlegRule::header(" "))),
            Err(ConfigError::EmptyHeaderName)
        ));
        assert!(matches!(
            Indexer::new(IndexerConfig {
                max_headers: 0,
                ..IndexerConfig::default()
            }),
            Err(ConfigError::ZeroMaxHeaders)
        ));
        assert!(Indexer::new(cfg(AlegRule::with_regex(
            "P-Charging-Vector",
            "icid-value=([^;]+)"
        )))
        .is_ok());
    }

    #[test]
    fn config_deserializes_with_defaults() {
        let cfg: IndexerConfig = serde_json::from_str(
            r#"{"custom_headers":["X-Foo"],"aleg_headers":[{"header":"X-CID"},{"header":"P-Charging-Vector","regex":"icid-value=([^;]+)"}]}"#,
        )
        .expect("valid config");
        assert_eq!(cfg.max_headers, DEFAULT_MAX_HEADERS);
        assert_eq!(
            cfg.aleg_headers[1].regex.as_deref(),
            Some("icid-value=([^;]+)")
        );
    }
}
