//! Listener settings: the UDP, TCP and TLS sections shared by `hepstack serve` and `hepstack
//! relay`, the HEP auth key, and their validation.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A HEP auth key (chunk 0x000e). Its `Debug` form is redacted so that it never reaches a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AuthKey(pub String);

impl fmt::Debug for AuthKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuthKey(<redacted>)")
    }
}

impl AuthKey {
    /// Compares the key with what a packet carried, in time independent of where they differ.
    pub fn matches(&self, presented: Option<&[u8]>) -> bool {
        let Some(presented) = presented else {
            return false;
        };
        let expected = self.0.as_bytes();
        if expected.len() != presented.len() {
            return false;
        }
        expected
            .iter()
            .zip(presented)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
    }
}

/// HEP over UDP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpConfig {
    /// Addresses to listen on. Default: `["0.0.0.0:9060"]`. Empty disables UDP.
    pub addresses: Vec<SocketAddr>,
    /// Sockets bound per address with SO_REUSEPORT, each drained by its own thread, so the
    /// kernel spreads senders over several cores. Default: 2.
    pub sockets_per_address: usize,
    /// Receive buffer requested per socket (SO_RCVBUF), in bytes. Bursts land here while the
    /// receive thread is busy; the kernel caps it at `net.core.rmem_max`. Default: 32 MiB.
    pub receive_buffer_bytes: usize,
    /// Datagrams fetched per `recvmmsg` call. Default: 64.
    pub batch_size: usize,
    /// When set, every packet must carry this HEP auth key (chunk 0x000e); others are counted
    /// as auth failures and dropped. HEPv1/v2 carry no key and fail. Default: none.
    pub auth_key: Option<AuthKey>,
}

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            addresses: vec![default_hep_addr()],
            sockets_per_address: 2,
            receive_buffer_bytes: 32 << 20,
            batch_size: 64,
            auth_key: None,
        }
    }
}

/// HEP over TCP.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpConfig {
    /// Addresses to listen on. Default: `["0.0.0.0:9060"]`. Empty disables TCP.
    pub addresses: Vec<SocketAddr>,
    /// Most connections served at once over all TCP addresses; further ones are closed right
    /// after accept. Default: 1024.
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed, in seconds. Default: 300.
    pub idle_timeout_secs: u64,
    /// Largest HEP message accepted, in bytes (at most 65535, the HEP3 length field's range); a
    /// frame announcing more is treated as garbage and skipped. Default: 65535.
    pub max_frame_bytes: usize,
    /// While the writers are behind (their queue three quarters full, the store up), a
    /// connection stops reading for at most this many milliseconds per read, so TCP flow
    /// control slows the sender instead of the surplus going through the spool, which costs
    /// the CPU the writers need. Past this the connection reads on and the surplus is spooled:
    /// a sender whose socket buffer fills may block or drop on its side, so the wait is kept
    /// short. 0 never waits. Default: 250.
    pub max_backpressure_ms: u64,
    /// When set, every message must carry this HEP auth key. Default: none.
    pub auth_key: Option<AuthKey>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            addresses: vec![default_hep_addr()],
            max_connections: 1024,
            idle_timeout_secs: 300,
            max_frame_bytes: 65535,
            max_backpressure_ms: 250,
            auth_key: None,
        }
    }
}

/// HEP over TLS (same framing as TCP).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Addresses to listen on. Default: none (TLS needs a certificate).
    pub addresses: Vec<SocketAddr>,
    /// PEM file with the server certificate chain. Required when `addresses` is not empty.
    pub cert_file: Option<PathBuf>,
    /// PEM file with the server private key (PKCS#8, PKCS#1 or SEC1). Required with
    /// `addresses`.
    pub key_file: Option<PathBuf>,
    /// PEM file with the CA certificates client certificates must chain to. When set, clients
    /// without a valid certificate are refused during the handshake. Default: none.
    pub client_ca_file: Option<PathBuf>,
    /// Most TLS connections served at once. Default: 1024.
    pub max_connections: usize,
    /// Idle (and handshake) timeout in seconds. Default: 300.
    pub idle_timeout_secs: u64,
    /// Largest HEP message accepted, in bytes. Default: 65535.
    pub max_frame_bytes: usize,
    /// While the writers are behind (their queue three quarters full, the store up), a
    /// connection stops reading for at most this many milliseconds per read, so TCP flow
    /// control slows the sender instead of the surplus going through the spool, which costs
    /// the CPU the writers need. Past this the connection reads on and the surplus is spooled:
    /// a sender whose socket buffer fills may block or drop on its side, so the wait is kept
    /// short. 0 never waits. Default: 250.
    pub max_backpressure_ms: u64,
    /// When set, every message must carry this HEP auth key. Default: none.
    pub auth_key: Option<AuthKey>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            addresses: Vec::new(),
            cert_file: None,
            key_file: None,
            client_ca_file: None,
            max_connections: 1024,
            idle_timeout_secs: 300,
            max_frame_bytes: 65535,
            max_backpressure_ms: 250,
            auth_key: None,
        }
    }
}

fn default_hep_addr() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 9060))
}

/// The listener settings [`crate::start_listeners`] and [`crate::BoundListeners::bind`] need.
#[derive(Clone, Copy, Debug)]
pub struct ListenerConfig<'a> {
    /// UDP settings (addresses, sockets, batch size, auth key).
    pub udp: &'a UdpConfig,
    /// TCP settings (connection limit, idle timeout, frame size, auth key).
    pub tcp: &'a TcpConfig,
    /// TLS settings (certificate, key, client CA, limits, auth key).
    pub tls: &'a TlsConfig,
}

/// A listener setting that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ListenerConfigError {
    /// A numeric setting is out of its range.
    #[error("{field}: {reason}")]
    OutOfRange {
        /// Dotted name of the setting.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// TLS addresses without certificate or key.
    #[error("tls.addresses is set but tls.{0} is missing")]
    TlsMissing(&'static str),
}

impl ListenerConfig<'_> {
    /// Checks every listener value; listeners refuse to start with an invalid configuration.
    pub fn validate(&self) -> Result<(), ListenerConfigError> {
        let range = |ok: bool, field, reason| {
            if ok {
                Ok(())
            } else {
                Err(ListenerConfigError::OutOfRange { field, reason })
            }
        };
        range(
            self.udp.sockets_per_address >= 1 && self.udp.sockets_per_address <= 64,
            "udp.sockets_per_address",
            "must be between 1 and 64",
        )?;
        range(
            self.udp.batch_size >= 1 && self.udp.batch_size <= 1024,
            "udp.batch_size",
            "must be between 1 and 1024",
        )?;
        range(
            self.tcp.max_connections >= 1,
            "tcp.max_connections",
            "must be at least 1",
        )?;
        range(
            self.tls.max_connections >= 1,
            "tls.max_connections",
            "must be at least 1",
        )?;
        range(
            self.tcp.idle_timeout_secs >= 1,
            "tcp.idle_timeout_secs",
            "must be at least 1",
        )?;
        range(
            self.tls.idle_timeout_secs >= 1,
            "tls.idle_timeout_secs",
            "must be at least 1",
        )?;
        for (field, v) in [
            ("tcp.max_backpressure_ms", self.tcp.max_backpressure_ms),
            ("tls.max_backpressure_ms", self.tls.max_backpressure_ms),
        ] {
            range(v <= 10_000, field, "must be at most 10000 (10 s)")?;
        }
        for (field, v) in [
            ("tcp.max_frame_bytes", self.tcp.max_frame_bytes),
            ("tls.max_frame_bytes", self.tls.max_frame_bytes),
        ] {
            range(
                (hep::HEP3_HEADER_LEN..=65535).contains(&v),
                field,
                "must be between 6 and 65535",
            )?;
        }
        if !self.tls.addresses.is_empty() {
            if self.tls.cert_file.is_none() {
                return Err(ListenerConfigError::TlsMissing("cert_file"));
            }
            if self.tls.key_file.is_none() {
                return Err(ListenerConfigError::TlsMissing("key_file"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_key_is_redacted_and_compared() {
        let key = AuthKey("myHep".into());
        assert!(!format!("{key:?}").contains("myHep"));
        let cfg = UdpConfig {
            auth_key: Some(key.clone()),
            ..UdpConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("myHep"));
        assert!(key.matches(Some(b"myHep")));
        assert!(!key.matches(Some(b"myHeq")));
        assert!(!key.matches(Some(b"myHe")));
        assert!(!key.matches(None));
    }
}
