//! TLS to PostgreSQL with rustls (pure Rust; no libpq, no OpenSSL), with libpq's `sslmode`
//! semantics: `prefer`/`require` encrypt without verifying the certificate, `verify-ca`
//! verifies the chain, `verify-full` the chain and the host name.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};
use postgres::Socket;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::RootCertStore;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::config::TlsMode;
use crate::StoreError;

/// How connections are made: plain, or TLS with a prepared rustls configuration.
#[derive(Clone)]
pub(crate) enum Connector {
    Plain,
    Tls(RustlsConnect),
}

/// `MakeTlsConnect` over rustls.
#[derive(Clone)]
pub(crate) struct RustlsConnect {
    config: Arc<rustls::ClientConfig>,
}

/// Builds the connector for a mode; `ca_file` (PEM) replaces the Mozilla roots when set.
pub(crate) fn connector(mode: TlsMode, ca_file: &str) -> Result<Connector, StoreError> {
    if mode == TlsMode::Disable {
        return Ok(Connector::Plain);
    }
    let setup = |m: String| StoreError::Setup(format!("postgres TLS: {m}"));
    let provider = tls::provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(e.to_string()))?;
    let config = match mode {
        TlsMode::Prefer | TlsMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(tls::AnyServerCertificate::new(provider)))
            .with_no_client_auth(),
        _ => {
            let roots = if ca_file.is_empty() {
                let mut roots = RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                roots
            } else {
                tls::load_roots(std::path::Path::new(ca_file)).map_err(|e| setup(e.to_string()))?
            };
            let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| setup(e.to_string()))?;
            if mode == TlsMode::VerifyCa {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(tls::CertificateChainOnly::new(
                        verifier,
                    )))
                    .with_no_client_auth()
            } else {
                builder.with_webpki_verifier(verifier).with_no_client_auth()
            }
        }
    };
    Ok(Connector::Tls(RustlsConnect {
        config: Arc::new(config),
    }))
}

/// One pending TLS handshake.
pub(crate) struct RustlsConnectOne {
    name: ServerName<'static>,
    connector: tokio_rustls::TlsConnector,
}

impl MakeTlsConnect<Socket> for RustlsConnect {
    type Stream = RustlsStream;
    type TlsConnect = RustlsConnectOne;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<RustlsConnectOne, io::Error> {
        let name = ServerName::try_from(domain.to_string())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnectOne {
            name,
            connector: tokio_rustls::TlsConnector::from(self.config.clone()),
        })
    }
}

impl TlsConnect<Socket> for RustlsConnectOne {
    type Stream = RustlsStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream>> + Send>>;

    fn connect(self, stream: Socket) -> Self::Future {
        Box::pin(async move {
            let tls = self.connector.connect(self.name, stream).await?;
            Ok(RustlsStream(Box::new(tls)))
        })
    }
}

/// An established TLS stream.
pub(crate) struct RustlsStream(Box<tokio_rustls::client::TlsStream<Socket>>);

impl AsyncRead for RustlsStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for RustlsStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

impl TlsStream for RustlsStream {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}
