//! A small blocking connection pool with fail-fast reconnection.
//!
//! While the server is unreachable every caller gets [`StoreError::Unavailable`] at once
//! (after one connect attempt per backoff period), so the collector spools instead of
//! blocking its writer threads; the pause between attempts doubles up to the configured
//! maximum and resets on the first success.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use postgres::error::SqlState;
use postgres::{Client, Config};

use super::tls::Connector;
use crate::StoreError;

/// Connection state shared by the callers.
struct State {
    idle: Vec<Client>,
    /// Connections open or being opened.
    open: usize,
    /// Consecutive failed connection attempts.
    failures: u32,
    /// No new attempt before this instant.
    retry_at: Option<Instant>,
    /// Last connection error, for the "unavailable" message.
    last_error: String,
}

pub(crate) struct Pool {
    config: Config,
    tls: Connector,
    max: usize,
    max_backoff: Duration,
    /// `host:port/db` for messages (never the password).
    pub(crate) target: String,
    state: Mutex<State>,
    freed: Condvar,
}

/// A pooled connection; returned to the pool on drop unless marked broken.
pub(crate) struct Conn<'a> {
    pool: &'a Pool,
    client: Option<Client>,
    broken: bool,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("client present until drop")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("client present until drop")
    }
}

impl Conn<'_> {
    /// Classifies an error of this connection; connection-level errors mark it broken so
    /// that it is not reused.
    pub(crate) fn check(&mut self, e: postgres::Error) -> StoreError {
        let err = classify(&e, &self.pool.target);
        if matches!(err, StoreError::Unavailable(_))
            || self.client.as_ref().is_some_and(|c| c.is_closed())
        {
            self.broken = true;
        }
        err
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let mut st = self.pool.lock();
        if self.broken || client.is_closed() {
            st.open -= 1;
        } else {
            st.idle.push(client);
        }
        drop(st);
        self.pool.freed.notify_one();
    }
}

/// Whether a server error means "try again later" rather than "this request is wrong".
pub(crate) fn transient(state: &SqlState) -> bool {
    [
        SqlState::ADMIN_SHUTDOWN,
        SqlState::CRASH_SHUTDOWN,
        SqlState::CANNOT_CONNECT_NOW,
        SqlState::TOO_MANY_CONNECTIONS,
        SqlState::CONNECTION_FAILURE,
        SqlState::CONNECTION_EXCEPTION,
        SqlState::SQLCLIENT_UNABLE_TO_ESTABLISH_SQLCONNECTION,
        SqlState::READ_ONLY_SQL_TRANSACTION,
        SqlState::DISK_FULL,
        SqlState::OUT_OF_MEMORY,
        SqlState::T_R_SERIALIZATION_FAILURE,
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::LOCK_NOT_AVAILABLE,
        SqlState::QUERY_CANCELED,
    ]
    .contains(state)
}

/// Maps a driver error: no SQLSTATE (I/O, closed connection) or a transient one is
/// `Unavailable`, anything else `Backend`.
pub(crate) fn classify(e: &postgres::Error, target: &str) -> StoreError {
    match e.code() {
        Some(code) if !transient(code) => {
            StoreError::Backend(format!("postgres {target}: {}", error_text(e)))
        }
        _ => StoreError::Unavailable(format!("postgres {target}: {}", error_text(e))),
    }
}

/// The error with its source chain (the driver's Display hides the server message).
pub(crate) fn error_text(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(": ");
                s.push_str(&inner.to_string());
                src = inner.source();
            }
            s
        }
    }
}

impl Pool {
    pub(crate) fn new(
        config: Config,
        tls: Connector,
        max: usize,
        max_backoff: Duration,
        target: String,
    ) -> Pool {
        Pool {
            config,
            tls,
            max: max.max(1),
            max_backoff,
            target,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
                failures: 0,
                retry_at: None,
                last_error: String::new(),
            }),
            freed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens one connection (no pool accounting).
    pub(crate) fn connect_raw(&self, config: &Config) -> Result<Client, postgres::Error> {
        match &self.tls {
            Connector::Plain => config.connect(postgres::NoTls),
            Connector::Tls(tls) => config.connect(tls.clone()),
        }
    }

    /// Forgets the backoff after the cause of the last failure was removed (the missing
    /// database was just created), so that the next `get` connects at once.
    pub(crate) fn clear_backoff(&self) {
        let mut st = self.lock();
        st.failures = 0;
        st.retry_at = None;
    }

    /// A connection: an idle one, a new one, or one freed within `wait`.
    pub(crate) fn get(&self, wait: Duration) -> Result<Conn<'_>, StoreError> {
        let deadline = Instant::now() + wait;
        let mut st = self.lock();
        loop {
            if let Some(client) = st.idle.pop() {
                if client.is_closed() {
                    st.open -= 1;
                    continue;
                }
                return Ok(Conn {
                    pool: self,
                    client: Some(client),
                    broken: false,
                });
            }
            if st.open < self.max {
                if let Some(at) = st.retry_at {
                    let now = Instant::now();
                    if now < at {
                        return Err(StoreError::Unavailable(format!(
                            "postgres {}: {} (next attempt in {} ms)",
                            self.target,
                            st.last_error,
                            (at - now).as_millis()
                        )));
                    }
                }
                st.open += 1;
                drop(st);
                let result = self.connect_raw(&self.config);
                let mut st = self.lock();
                return match result {
                    Ok(client) => {
                        if st.failures > 0 {
                            tracing::info!(target = %self.target, "postgres connection restored");
                        }
                        st.failures = 0;
                        st.retry_at = None;
                        Ok(Conn {
                            pool: self,
                            client: Some(client),
                            broken: false,
                        })
                    }
                    Err(e) => {
                        st.open -= 1;
                        st.failures = st.failures.saturating_add(1);
                        let backoff =
                            Duration::from_millis(100u64 << st.failures.min(16).saturating_sub(1))
                                .min(self.max_backoff);
                        st.retry_at = Some(Instant::now() + backoff);
                        st.last_error = error_text(&e);
                        if st.failures == 1 {
                            tracing::warn!(target = %self.target, error = %st.last_error, "postgres unreachable; retrying with backoff");
                        }
                        Err(classify(&e, &self.target))
                    }
                };
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(StoreError::Unavailable(format!(
                    "postgres {}: all {} connections busy",
                    self.target, self.max
                )));
            }
            st = self
                .freed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}
