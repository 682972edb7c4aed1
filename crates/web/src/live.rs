//! Live tail: records as the store accepts them, streamed to browsers as server-sent events.
//!
//! The web crate does not know the collector: the binary feeds a [`LiveFeed`] (e.g. from a
//! collector `RecordObserver`) with [`LiveFeed::publish`], and `GET /api/v1/tail` subscribes.
//! The feed is a bounded tokio broadcast channel of `Arc<Record>`: publishing never blocks
//! the writer threads, and a client that falls behind by more than the capacity skips ahead
//! and is told how many records it missed (an `event: lagged` with `{"missed": N}`) rather
//! than slowing anybody down. Nothing is copied while no client is connected.
//!
//! # Events
//!
//! * `event: message`, `data:` one message item (the search API's shape plus `src_alias`,
//!   `dst_alias`), `id:` the record's time in µs;
//! * `event: lagged`, `data: {"missed": N}`;
//! * a `: keep-alive` comment every 15 s, so proxies keep the connection open.
//!
//! The stream ends when the server shuts down (the feed's cancellation token).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use futures_util::stream::{self, Stream};
use serde_json::{json, Value};
use store::{MessageFilter, Record, StoredMessage};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::aliases::AliasTable;
use crate::query::parse_tail_filter;
use crate::render::{add_aliases, message_json};
use crate::{ApiError, AppState};

/// Default number of records a slow client may fall behind before it skips.
pub const DEFAULT_LIVE_CAPACITY: usize = 4096;

/// Interval of the keep-alive comments.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The feed of newly stored records. Cheap to clone.
#[derive(Clone, Debug)]
pub struct LiveFeed {
    sender: broadcast::Sender<Arc<Record>>,
    shutdown: CancellationToken,
}

impl LiveFeed {
    /// A feed letting a client fall `capacity` records behind (at least 16); tail streams end
    /// when `shutdown` is cancelled.
    pub fn new(capacity: usize, shutdown: CancellationToken) -> LiveFeed {
        let (sender, _) = broadcast::channel(capacity.max(16));
        LiveFeed { sender, shutdown }
    }

    /// Offers records to the connected clients; never blocks, costs nothing without clients.
    pub fn publish(&self, records: &[Record]) {
        if self.sender.receiver_count() == 0 {
            return;
        }
        for r in records {
            // An error only means the last client just left.
            let _ = self.sender.send(Arc::new(r.clone()));
        }
    }

    /// Clients connected now.
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Record>> {
        self.sender.subscribe()
    }
}

struct Tail {
    rx: broadcast::Receiver<Arc<Record>>,
    filter: MessageFilter,
    aliases: AliasTable,
    shutdown: CancellationToken,
}

fn message_event(r: &Record, aliases: &AliasTable) -> Event {
    let m = StoredMessage {
        id: 0,
        record: r.clone(),
    };
    let mut o = message_json(&m);
    o.remove("id");
    add_aliases(&mut o, r, aliases);
    Event::default()
        .event("message")
        .id(r.time_us.to_string())
        .data(Value::Object(o).to_string())
}

fn tail_stream(tail: Tail) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(tail, |mut t| async move {
        loop {
            let next = tokio::select! {
                _ = t.shutdown.cancelled() => return None,
                next = t.rx.recv() => next,
            };
            match next {
                Ok(record) => {
                    if t.filter.matches(&record, false) {
                        let event = message_event(&record, &t.aliases);
                        return Some((Ok(event), t));
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let event = Event::default()
                        .event("lagged")
                        .data(json!({ "missed": missed }).to_string());
                    return Some((Ok(event), t));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// `GET /api/v1/tail?<search filters>`: matching records as server-sent events.
pub async fn tail(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<axum::response::Response, ApiError> {
    let filter = parse_tail_filter(query.as_deref())?;
    let Some(feed) = state.inner.live.clone() else {
        return Err(ApiError::Unavailable(
            "live tail is not enabled on this server".into(),
        ));
    };
    let store = state.inner.store.clone();
    let aliases = tokio::task::spawn_blocking(move || AliasTable::load(store.as_ref()))
        .await?
        .map_err(|e| ApiError::from_store(e, false))?;
    let tail = Tail {
        rx: feed.subscribe(),
        filter,
        aliases,
        shutdown: feed.shutdown.clone(),
    };
    Ok(Sse::new(tail_stream(tail))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
        .into_response())
}
