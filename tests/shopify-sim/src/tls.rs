//! Plain HTTP and HTTPS on the same port: the first byte of a connection says which (0x16 opens
//! a TLS handshake). HTTPS uses the test-only CA in `certs/` (regenerate with
//! `scripts/make-test-certs.sh`), whose certificate covers `*.myshopify.com`, `localhost` and
//! 127.0.0.1, so a client keeps Shopify's real URLs (`https://<shop>.myshopify.com/admin/...`),
//! trusts `CA_PEM` and only overrides the address it connects to.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The CA that signed the simulator's certificate: trust it in clients (test use only).
pub const CA_PEM: &str = include_str!("../certs/ca.pem");
const CERT_PEM: &str = include_str!("../certs/server.pem");
const KEY_PEM: &str = include_str!("../certs/server.key");

pub fn server_config() -> io::Result<Arc<rustls::ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(CERT_PEM.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(io::Error::other)?;
    let key = PrivateKeyDer::from_pem_slice(KEY_PEM.as_bytes()).map_err(io::Error::other)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(io::Error::other)?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// A connection, plain or TLS.
pub enum SimIo {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

impl AsyncRead for SimIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SimIo::Plain(s) => Pin::new(s).poll_read(cx, buf),
            SimIo::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for SimIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            SimIo::Plain(s) => Pin::new(s).poll_write(cx, buf),
            SimIo::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SimIo::Plain(s) => Pin::new(s).poll_flush(cx),
            SimIo::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            SimIo::Plain(s) => Pin::new(s).poll_shutdown(cx),
            SimIo::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

pub struct SimListener {
    tcp: TcpListener,
    tls: TlsAcceptor,
}

impl SimListener {
    pub fn new(tcp: TcpListener) -> io::Result<Self> {
        Ok(SimListener {
            tcp,
            tls: TlsAcceptor::from(server_config()?),
        })
    }
}

impl axum::serve::Listener for SimListener {
    type Io = SimIo;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (SimIo, SocketAddr) {
        // The first byte and the handshake are awaited here, with short timeouts so a silent
        // client cannot hold up the listener for long (loopback handshakes take a millisecond).
        loop {
            let (stream, addr) = match self.tcp.accept().await {
                Ok(x) => x,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let mut first = [0u8; 1];
            match tokio::time::timeout(Duration::from_secs(2), stream.peek(&mut first)).await {
                Ok(Ok(1)) if first[0] == 0x16 => {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(Duration::from_secs(5), self.tls.accept(stream)).await
                    {
                        return (SimIo::Tls(Box::new(tls)), addr);
                    }
                }
                Ok(Ok(n)) if n > 0 => return (SimIo::Plain(stream), addr),
                _ => {}
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}
