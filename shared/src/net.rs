//! Outbound HTTP: one TLS configuration for every client, and the HTTP client
//! the AWS SDK sends through (the same reqwest stack the Finexer client uses).
//!
//! Why not the defaults: reqwest and the AWS SDK each read and parse the
//! system's certificate store when they are built, which was 16 of a
//! function's 19 ms of init (benches/RESULTS.md). Mozilla's root store,
//! compiled in (`webpki-roots`), costs nothing to load and is what both would
//! find on Lambda's own images anyway. An endpoint behind another CA (a
//! local TLS terminator, a private endpoint) is trusted through a PEM file
//! named by `AWS_CA_BUNDLE` (the AWS clients) or `FINEXER_CA_BUNDLE` (the
//! Finexer client), read at start-up only when set.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;

use crate::error::{Error, Result};

/// The AWS SDK's own default, kept: the SDK is told the same value, so its
/// settings and this client agree.
pub const AWS_CONNECT_TIMEOUT: Duration = Duration::from_millis(3100);

/// The variable naming extra CAs (a PEM file) the AWS clients trust, as the
/// AWS SDKs and CLI define it (for an endpoint behind a private CA, such as
/// a local TLS terminator).
pub const AWS_CA_BUNDLE: &str = "AWS_CA_BUNDLE";
/// The same for the Finexer client.
pub const FINEXER_CA_BUNDLE: &str = "FINEXER_CA_BUNDLE";

static TLS: LazyLock<rustls::ClientConfig> = LazyLock::new(|| tls_config(mozilla_roots()));

fn mozilla_roots() -> rustls::RootCertStore {
    rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

fn tls_config(roots: rustls::RootCertStore) -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs supports the default TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// Mozilla's roots plus the CA certificates in the PEM file `variable`
/// names, when it is set; the file is read only then, so an unset variable
/// costs nothing at start-up.
fn tls_trusting(variable: &str, path: Option<std::ffi::OsString>) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let Some(path) = path.filter(|path| !path.is_empty()) else {
        return Ok(TLS.clone());
    };
    let path = std::path::PathBuf::from(path);
    let unusable = |why: String| Error::Config(format!("{variable} ({}): {why}", path.display()));
    let certificates = CertificateDer::pem_file_iter(&path)
        .and_then(|certificates| certificates.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| unusable(e.to_string()))?;
    let mut roots = mozilla_roots();
    let (added, _) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(unusable("holds no usable CA certificate".into()));
    }
    Ok(tls_config(roots))
}

/// A reqwest builder with what every outbound client shares: the TLS
/// configuration (TLS 1.2 and 1.3, Mozilla's roots, aws-lc-rs), and idle
/// connections dropped after 50 s, before the servers' own idle limits close
/// them under a request.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    with_tls(TLS.clone())
}

/// [`http_client_builder`], whose client also trusts the CAs in the PEM file
/// the variable `ca_bundle` names ([`AWS_CA_BUNDLE`], [`FINEXER_CA_BUNDLE`]).
pub fn http_client_builder_trusting(ca_bundle: &str) -> Result<reqwest::ClientBuilder> {
    Ok(with_tls(tls_trusting(
        ca_bundle,
        std::env::var_os(ca_bundle),
    )?))
}

fn with_tls(tls: rustls::ClientConfig) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .pool_idle_timeout(Duration::from_secs(50))
}

/// The AWS SDK's configuration loader with [`AwsHttpClient`] as its HTTP
/// client, and credentials and region from the environment only.
///
/// Lambda always sets `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
/// `AWS_SESSION_TOKEN` and `AWS_REGION`. The default chains would also build
/// profile, web-identity (an STS client), container and instance-metadata
/// providers: start-up work for nothing on Lambda, and off Lambda a fallback
/// to the metadata address, which nothing here may contact. Other settings
/// (`AWS_ENDPOINT_URL` included) are read as usual.
///
/// Each attempt ends after `attempt_timeout` (a stalled endpoint must not hold
/// a request until Lambda's timeout), and the call with its retries after
/// three of them.
pub fn aws_config_loader(attempt_timeout: Duration) -> Result<aws_config::ConfigLoader> {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(AWS_CONNECT_TIMEOUT.min(attempt_timeout))
        .operation_attempt_timeout(attempt_timeout)
        .operation_timeout(attempt_timeout * 3)
        .build();
    Ok(aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(AwsHttpClient::new()?)
        .credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        )
        .region(aws_config::environment::EnvironmentVariableRegionProvider::new())
        .timeout_config(timeouts))
}

/// Sends the AWS SDK's requests through reqwest. Request and response bodies
/// of DynamoDB and Secrets Manager are small JSON documents, so both are
/// buffered whole.
#[derive(Debug, Clone)]
pub struct AwsHttpClient {
    http: reqwest::Client,
}

impl AwsHttpClient {
    pub fn new() -> Result<Self> {
        let http = http_client_builder_trusting(AWS_CA_BUNDLE)?
            .connect_timeout(AWS_CONNECT_TIMEOUT)
            // AWS endpoints answer, they do not redirect; following one
            // would send a signed request somewhere it was not signed for.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Internal(format!("AWS HTTP client: {e}")))?;
        Ok(Self { http })
    }
}

impl HttpClient for AwsHttpClient {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(AwsConnector {
            http: self.http.clone(),
            read_timeout: settings.read_timeout(),
        })
    }
}

#[derive(Debug)]
struct AwsConnector {
    http: reqwest::Client,
    read_timeout: Option<Duration>,
}

impl HttpConnector for AwsConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let http = self.http.clone();
        let read_timeout = self.read_timeout;
        HttpConnectorFuture::new(async move {
            let prepared = to_reqwest(request, read_timeout).await?;
            let response = http.execute(prepared).await.map_err(classify)?;
            from_reqwest(response).await
        })
    }
}

async fn to_reqwest(
    request: HttpRequest,
    read_timeout: Option<Duration>,
) -> std::result::Result<reqwest::Request, ConnectorError> {
    let request = request
        .try_into_http1x()
        .map_err(|e| ConnectorError::user(e.into()))?;
    let (parts, body) = request.into_parts();
    // Read through the body rather than taking its bytes: the SDK's stalled
    // stream protection measures upload progress as the body is polled.
    let body = http_body_util::BodyExt::collect(body)
        .await
        .map_err(ConnectorError::user)?
        .to_bytes();
    let mut request = reqwest::Request::try_from(http::Request::from_parts(parts, body))
        .map_err(|e| ConnectorError::user(e.into()))?;
    // reqwest has no per-request read timeout; the SDK's bounds the whole
    // exchange here, which is stricter (it is unset unless configured).
    *request.timeout_mut() = read_timeout;
    Ok(request)
}

async fn from_reqwest(
    response: reqwest::Response,
) -> std::result::Result<HttpResponse, ConnectorError> {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(classify)?;
    let mut converted = HttpResponse::new(
        status
            .try_into()
            .map_err(|e: aws_smithy_runtime_api::http::HttpError| {
                ConnectorError::other(e.into(), None)
            })?,
        // As a body rather than bytes: the SDK traces responses with `Debug`,
        // and bytes would print a secret's value into trace-level logs.
        SdkBody::from_body_1_x(http_body_util::Full::new(body)),
    );
    *converted.headers_mut() =
        headers
            .try_into()
            .map_err(|e: aws_smithy_runtime_api::http::HttpError| {
                ConnectorError::other(e.into(), None)
            })?;
    Ok(converted)
}

/// Maps reqwest's failures onto the kinds the SDK's retry rules read:
/// timeouts and I/O errors are transient and retried; a connection that was
/// never made is safe to retry for any operation.
fn classify(error: reqwest::Error) -> ConnectorError {
    if error.is_timeout() {
        ConnectorError::timeout(error.into())
    } else if error.is_connect() {
        ConnectorError::io(error.into()).never_connected()
    } else if error.is_request() || error.is_body() || error.is_decode() {
        ConnectorError::io(error.into())
    } else {
        ConnectorError::other(error.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn request(addr: std::net::SocketAddr) -> HttpRequest {
        let request = http::Request::builder()
            .method("POST")
            .uri(format!("http://{addr}/"))
            .body(SdkBody::from("{}"))
            .unwrap();
        HttpRequest::try_from(request).unwrap()
    }

    async fn listener() -> (TcpListener, std::net::SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    fn connector(read_timeout: Option<Duration>) -> AwsConnector {
        AwsConnector {
            http: AwsHttpClient::new().unwrap().http,
            read_timeout,
        }
    }

    #[test]
    fn an_extra_ca_bundle_is_read_only_when_set_and_must_hold_a_certificate() {
        let unset = tls_trusting(FINEXER_CA_BUNDLE, None).unwrap();
        let empty = tls_trusting(FINEXER_CA_BUNDLE, Some("".into())).unwrap();
        for config in [unset, empty] {
            assert!(config.alpn_protocols.is_empty());
        }
        let missing = tls_trusting(AWS_CA_BUNDLE, Some("/nonexistent/ca.pem".into()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            missing.contains("AWS_CA_BUNDLE (/nonexistent/ca.pem)"),
            "{missing}"
        );
        let dir = std::env::temp_dir().join(format!("ca-bundle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("not.pem");
        std::fs::write(&not_pem, "no certificate here\n").unwrap();
        let refused = tls_trusting(FINEXER_CA_BUNDLE, Some(not_pem.into()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            refused.contains("FINEXER_CA_BUNDLE") && refused.contains("no usable CA"),
            "{refused}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_retryable_io_error_never_connected() {
        let (listener, addr) = listener().await;
        drop(listener);
        let error = connector(None).call(request(addr)).await.unwrap_err();
        assert!(error.is_io(), "{error:?}");
        assert!(format!("{error:?}").contains("NeverConnected"), "{error:?}");
    }

    #[tokio::test]
    async fn a_silent_server_is_a_timeout_after_the_read_timeout() {
        let (listener, addr) = listener().await;
        let hold = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let error = connector(Some(Duration::from_millis(200)))
            .call(request(addr))
            .await
            .unwrap_err();
        assert!(error.is_timeout(), "{error:?}");
        hold.abort();
    }

    #[tokio::test]
    async fn the_answer_comes_back_whole_and_redirects_are_not_followed() {
        let (listener, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = vec![0u8; 4096];
            let n = socket.read(&mut seen).await.unwrap();
            socket
                .write_all(
                    b"HTTP/1.1 307 Temporary Redirect\r\nlocation: http://127.0.0.1:9/\r\n\
                      x-amzn-requestid: abc\r\ncontent-length: 5\r\n\r\nmoved",
                )
                .await
                .unwrap();
            String::from_utf8_lossy(&seen[..n]).into_owned()
        });
        let response = connector(None).call(request(addr)).await.unwrap();
        assert_eq!(response.status().as_u16(), 307);
        assert_eq!(response.headers().get("x-amzn-requestid"), Some("abc"));
        let body = http_body_util::BodyExt::collect(response.into_body())
            .await
            .unwrap()
            .to_bytes();
        assert_eq!(body, &b"moved"[..]);
        let seen = server.await.unwrap();
        assert!(seen.starts_with("POST / HTTP/1.1"), "{seen}");
        assert!(seen.ends_with("\r\n\r\n{}"), "the body is sent: {seen}");
    }

    #[tokio::test]
    async fn a_streamed_request_body_is_sent_whole() {
        let (listener, addr) = listener().await;
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut seen = Vec::new();
            let mut chunk = vec![0u8; 4096];
            while !String::from_utf8_lossy(&seen).ends_with("streamed") {
                let n = socket.read(&mut chunk).await.unwrap();
                assert!(n > 0, "connection closed early");
                seen.extend_from_slice(&chunk[..n]);
            }
            socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let body =
            SdkBody::from_body_1_x(http_body_util::Full::new(bytes::Bytes::from("streamed")));
        let request = http::Request::builder()
            .method("PUT")
            .uri(format!("http://{addr}/"))
            .body(body)
            .unwrap();
        let response = connector(None)
            .call(HttpRequest::try_from(request).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        server.await.unwrap();
    }
}
