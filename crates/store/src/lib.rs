//! hepstack storage.
//!
//! This crate owns the backend-neutral [`Record`] (what the collector stores for every HEP
//! packet), the query model ([`MessageFilter`], [`Page`], [`CallSummary`]) and the [`Store`]
//! trait every backend implements: the embedded SQLite store (the default), PostgreSQL in the
//! HOMER 7 schema, and ClickHouse (single server or replicated, sharded cluster). Only this crate knows SQL; the collector and the web
//! crate talk to `dyn Store`.
//!
//! The trait is synchronous on purpose: backends are driven from dedicated writer threads
//! (batches) and from `spawn_blocking` in the HTTP server, so a backend may use blocking
//! drivers (rusqlite, `postgres`) without dragging an async runtime into this crate.
//!
//! [`sqlite::SqliteStore`] is the embedded backend: time-partitioned SQLite files in a data
//! directory, see the [`sqlite`] module for its layout, durability and query costs.
//!
//! [`postgres::PgStore`] writes heplify-server's HOMER 7 `homer_data` layout so that an
//! existing homer-app keeps working; see the [`postgres`] module.
//!
//! [`clickhouse::ChStore`] stores in ClickHouse over its HTTP interface, on one server or a
//! cluster of replicated shards (the scale-out store); see the [`clickhouse`] module.

mod calls;
pub mod clickhouse;
mod model;
pub mod postgres;
pub mod sqlite;
pub mod transfer;

pub use self::clickhouse::{ChConfig, ChStore};
pub use self::postgres::{PgConfig, PgStore};
pub use compact_str::CompactString;
pub use model::*;
pub use sqlite::{SqliteConfig, SqliteStore};
