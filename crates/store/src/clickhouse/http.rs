//! ClickHouse's HTTP interface: one pooled blocking client, failover across the URL's hosts,
//! and the server's error codes mapped to "retry later" or "this request is wrong".

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::RootCertStore;

use super::config::{ChConfig, Target};
use crate::StoreError;

/// Largest response body read (a query result or an error text).
const MAX_RESPONSE: u64 = 1 << 30;
/// Largest error text kept.
const MAX_ERROR_TEXT: u64 = 4096;

/// Server error codes that mean "try again" (the server or its coordination is busy or
/// down), not "the request is wrong". From ClickHouse's `ErrorCodes.cpp`.
const TRANSIENT: &[u32] = &[
    159, // TIMEOUT_EXCEEDED
    164, // READONLY
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    225, // NO_ZOOKEEPER
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    252, // TOO_MANY_PARTS
    279, // ALL_CONNECTION_TRIES_FAILED
    285, // TOO_FEW_LIVE_REPLICAS
    286, // UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE
    319, // UNKNOWN_STATUS_OF_INSERT
    425, // SYSTEM_ERROR
    999, // KEEPER_EXCEPTION
];

/// Codes worth trying another host for: this node cannot serve, another one may.
const NODE_DOWN: &[u32] = &[164, 210, 225, 242, 279, 999];

/// A server error code from a response text (`Code: 60, e.displayText() = …`).
pub(crate) fn error_code(text: &str) -> Option<u32> {
    let rest = &text[text.find("Code: ")? + 6..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The HTTP client of one store.
pub(crate) struct Http {
    agent: ureq::Agent,
    /// `http(s)://host:port/` per host.
    bases: Vec<String>,
    /// `Authorization` header value.
    auth: String,
    pub database: String,
    /// Host tried first (the last one that answered).
    current: AtomicUsize,
    /// Host list and database, for messages.
    pub target: String,
    query_timeout: Duration,
}

fn tls_config(ca_file: &str) -> Result<Arc<rustls::ClientConfig>, StoreError> {
    let setup = |m: String| StoreError::Setup(format!("clickhouse TLS: {m}"));
    let roots = if ca_file.is_empty() {
        let mut roots = RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        roots
    } else {
        tls::load_roots(std::path::Path::new(ca_file)).map_err(|e| setup(e.to_string()))?
    };
    let config = rustls::ClientConfig::builder_with_provider(tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// What went wrong with one request.
enum Failure {
    /// The host did not answer, or answered that it cannot serve: try the next.
    Host(String),
    /// The server answered with an error.
    Server(u32, String),
}

impl Http {
    pub fn new(target: &Target, config: &ChConfig) -> Result<Http, StoreError> {
        let mut builder = ureq::AgentBuilder::new()
            .timeout_connect(Duration::from_millis(config.connect_timeout_ms.max(1)))
            .timeout_read(Duration::from_millis(config.query_timeout_ms.max(1000)))
            .timeout_write(Duration::from_millis(config.query_timeout_ms.max(1000)))
            .max_idle_connections_per_host(config.writers.max(1) + 4)
            .user_agent("hepstack");
        if target.tls {
            builder = builder.tls_config(tls_config(&config.ca_file)?);
        }
        let scheme = if target.tls { "https" } else { "http" };
        let credentials = format!(
            "{}:{}",
            target.user,
            target.password.as_deref().unwrap_or("")
        );
        Ok(Http {
            agent: builder.build(),
            bases: target
                .hosts
                .iter()
                .map(|h| format!("{scheme}://{h}/"))
                .collect(),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(credentials)
            ),
            database: target.database.clone(),
            current: AtomicUsize::new(0),
            target: target.describe(),
            query_timeout: Duration::from_millis(config.query_timeout_ms.max(1000)),
        })
    }

    fn once(&self, base: &str, params: &[(&str, &str)], body: &[u8]) -> Result<Vec<u8>, Failure> {
        let mut req = self
            .agent
            .post(base)
            .set("Authorization", &self.auth)
            .timeout(self.query_timeout + Duration::from_secs(5));
        for (k, v) in params {
            req = req.query(k, v);
        }
        match req.send_bytes(body) {
            Ok(resp) => {
                let mut out = Vec::new();
                resp.into_reader()
                    .take(MAX_RESPONSE)
                    .read_to_end(&mut out)
                    .map_err(|e| Failure::Host(format!("reading the answer: {e}")))?;
                Ok(out)
            }
            Err(ureq::Error::Status(status, resp)) => {
                let mut text = String::new();
                let _ = resp
                    .into_reader()
                    .take(MAX_ERROR_TEXT)
                    .read_to_string(&mut text);
                let text = text.trim().to_string();
                match error_code(&text) {
                    Some(code) if NODE_DOWN.contains(&code) => Err(Failure::Host(text)),
                    Some(code) => Err(Failure::Server(code, text)),
                    None if status >= 500 => Err(Failure::Host(format!("HTTP {status}: {text}"))),
                    None => Err(Failure::Server(0, format!("HTTP {status}: {text}"))),
                }
            }
            Err(ureq::Error::Transport(t)) => Err(Failure::Host(t.to_string())),
        }
    }

    /// One request, on the current host first and then on each other host in turn.
    pub fn post(
        &self,
        params: &[(&str, &str)],
        body: &[u8],
        with_database: bool,
    ) -> Result<Vec<u8>, StoreError> {
        let mut all: Vec<(&str, &str)> = Vec::with_capacity(params.len() + 1);
        if with_database {
            all.push(("database", self.database.as_str()));
        }
        all.extend_from_slice(params);
        let start = self.current.load(Ordering::Relaxed);
        let mut last = String::new();
        for attempt in 0..self.bases.len() {
            let i = (start + attempt) % self.bases.len();
            match self.once(&self.bases[i], &all, body) {
                Ok(out) => {
                    if i != start {
                        self.current.store(i, Ordering::Relaxed);
                        tracing::info!(host = %self.bases[i], "clickhouse: using another host");
                    }
                    return Ok(out);
                }
                Err(Failure::Host(why)) => {
                    tracing::debug!(host = %self.bases[i], error = %why, "clickhouse host failed");
                    last = why;
                }
                Err(Failure::Server(code, text)) if TRANSIENT.contains(&code) => {
                    return Err(StoreError::Unavailable(format!(
                        "clickhouse {}: {text}",
                        self.target
                    )))
                }
                Err(Failure::Server(_, text)) => {
                    return Err(StoreError::Backend(format!("clickhouse: {text}")))
                }
            }
        }
        Err(StoreError::Unavailable(format!(
            "clickhouse {} unreachable: {last}",
            self.target
        )))
    }

    /// Runs a statement whose answer is ignored (DDL, ALTER).
    pub fn exec(&self, sql: &str, settings: &[(&str, &str)]) -> Result<(), StoreError> {
        self.post(settings, sql.as_bytes(), true).map(|_| ())
    }

    /// Runs a query and returns the raw answer (the SQL names its FORMAT).
    pub fn query(&self, sql: &str) -> Result<Vec<u8>, StoreError> {
        let timeout = self.query_timeout.as_secs().max(1).to_string();
        self.post(
            &[
                ("max_execution_time", &timeout),
                ("load_balancing", "in_order"),
            ],
            sql.as_bytes(),
            true,
        )
    }

    /// Inserts RowBinary rows into a table.
    pub fn insert(
        &self,
        table: &str,
        columns: &str,
        settings: &[(&str, &str)],
        rows: &[u8],
    ) -> Result<(), StoreError> {
        let query = format!("INSERT INTO {table} ({columns}) FORMAT RowBinary");
        let mut params: Vec<(&str, &str)> = vec![("query", &query)];
        params.extend_from_slice(settings);
        self.post(&params, rows, true).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_read_from_both_message_styles() {
        assert_eq!(
            error_code("Code: 60, e.displayText() = DB::Exception: Table x doesn't exist"),
            Some(60)
        );
        assert_eq!(
            error_code("Code: 252. DB::Exception: Too many parts (300). (TOO_MANY_PARTS)"),
            Some(252)
        );
        assert_eq!(error_code("no code here"), None);
    }
}
