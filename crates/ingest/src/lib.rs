//! hepstack's HEP listeners, shared by the collector (`hepstack serve`) and the relay
//! (`hepstack relay`): UDP sockets bound with `SO_REUSEPORT` and drained by one `recvmmsg`
//! thread each, TCP and TLS listeners with one tokio task per connection around
//! [`hep::StreamFramer`] (resynchronisation, idle timeout, connection limit, back-pressure while
//! the handler is congested), their configuration sections and the [`PacketHandler`] they feed.
//!
//! Knows nothing of what a frame means: decoding, storing and routing are the handler's. Its
//! dependencies are the HEP codec (framing), tokio and rustls, so the relay links no store.
//!
//! Bind with [`BoundListeners::bind`] (or build one from sockets bound on port 0 in tests),
//! start with [`start_listeners`], cancel the token, then [`Listeners::join`].

#![warn(missing_docs)]

mod clock;
mod config;
mod ipnet;
mod listeners;
mod metrics;
mod stream;
mod udp;

pub use clock::{now_us, ReceiveClock};
pub use config::{AuthKey, ListenerConfig, ListenerConfigError, TcpConfig, TlsConfig, UdpConfig};
pub use ipnet::IpNet;
pub use listeners::{start_listeners, BoundListeners, ListenError, Listeners, PacketHandler};
pub use metrics::{ListenerMetrics, Transport};
pub use stream::{bind_tcp, tls_server_config, TlsSetupError};
pub use udp::{bind_udp, BindError};
