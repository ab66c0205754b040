//! Local TLS endpoints for the cold-request part, as a function meets AWS
//! and Finexer: a test CA made here (rcgen), a TLS terminator in front of an
//! upstream, and in front of that a latency line that delivers every byte a
//! fixed time later in each direction, and a new connection's first bytes
//! one round trip later still (its TCP handshake: the kernel completes
//! `connect` on loopback at once). Behind the terminator the decrypted bytes
//! go to one upstream connection per client connection, so a keep-alive
//! client keeps its TLS session; in front of moto, which answers every
//! request with `Connection: close`, that upstream is the counting proxy
//! (`proxy.rs`), which keeps the client's connection open and opens its own
//! to moto per request.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// The harness's certificate authority and the server certificate it signed
/// for 127.0.0.1.
pub struct TestCa {
    /// The CA certificate (PEM): `AWS_CA_BUNDLE` and `FINEXER_CA_BUNDLE`.
    pub pem_path: PathBuf,
    server: Arc<rustls::ServerConfig>,
}

impl TestCa {
    pub fn create(dir: &Path) -> Result<TestCa, String> {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
        };
        let e = |e: rcgen::Error| format!("test CA: {e}");
        let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "connect-bench test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().map_err(e)?;
        let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
        let issuer = Issuer::new(ca, ca_key);

        let server = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(e)?;
        let server_key = KeyPair::generate().map_err(e)?;
        let server_cert = server.signed_by(&server_key, &issuer).map_err(e)?;

        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let pem_path = dir.join("test-ca.pem");
        std::fs::write(&pem_path, ca_cert.pem()).map_err(|e| e.to_string())?;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(server_cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
            )
            .map_err(|e| format!("server certificate: {e}"))?;
        Ok(TestCa {
            pem_path,
            server: Arc::new(config),
        })
    }
}

/// A TLS endpoint on `port` (0: any free one) for `upstream`, with
/// `one_way` latency in front: what a function's client connects to.
pub struct Endpoint {
    pub url: String,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Endpoint {
    /// Binds the latency line on `port` and the terminator behind it on
    /// `terminator_port`.
    pub async fn start(
        ca: &TestCa,
        port: u16,
        terminator_port: u16,
        upstream: SocketAddr,
        one_way: Duration,
    ) -> Result<Endpoint, String> {
        let terminator = bind(terminator_port).await?;
        let terminator_addr = terminator.local_addr().map_err(|e| e.to_string())?;
        let line = bind(port).await?;
        let addr = line.local_addr().map_err(|e| e.to_string())?;
        let acceptor = tokio_rustls::TlsAcceptor::from(ca.server.clone());
        let terminate = tokio::spawn(async move {
            while let Ok((tcp, _)) = terminator.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut upstream) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    let _ = upstream.set_nodelay(true);
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                });
            }
        });
        let delay = tokio::spawn(async move {
            while let Ok((client, _)) = line.accept().await {
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(terminator_addr).await else {
                        return;
                    };
                    for socket in [&client, &server] {
                        let _ = socket.set_nodelay(true);
                    }
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    // The TCP handshake: one round trip before the client's
                    // first bytes can leave.
                    tokio::join!(
                        delayed(client_read, server_write, one_way, one_way * 2),
                        delayed(server_read, client_write, one_way, Duration::ZERO),
                    );
                });
            }
        });
        Ok(Endpoint {
            url: format!("https://{addr}"),
            tasks: vec![terminate, delay],
        })
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

async fn bind(port: u16) -> Result<TcpListener, String> {
    TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| format!("127.0.0.1:{port}: {e}"))
}

/// Copies `from` to `to`, each chunk delivered `one_way` after it was read
/// (the first `first_extra` later still): a delay line, not a throttle.
async fn delayed(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    one_way: Duration,
    first_extra: Duration,
) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut extra = first_extra;
        loop {
            let mut chunk = vec![0u8; 16 * 1024];
            match from.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    if tx.send((Instant::now() + one_way + extra, chunk)).is_err() {
                        break;
                    }
                    extra = Duration::ZERO;
                }
            }
        }
    };
    let write = async move {
        while let Some((at, chunk)) = rx.recv().await {
            tokio::time::sleep_until(at).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}
