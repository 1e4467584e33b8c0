//! Connecting to one endpoint: TCP, TLS where the endpoint asks for it
//! (`tls.rs`, `tls_stream.rs`), the HTTP/2 handshake, and one PING answered, so a listener
//! that never speaks HTTP/2 fails here rather than on the first request;
//! all within `--dial-timeout`. A plaintext connection is h2 straight over
//! the glommio socket, as it always was: TLS adds nothing to its path.

use std::time::Duration;

use bytes::Bytes;
use glommio::net::TcpStream;
use h2::client::SendRequest;
use keel_net::io_compat::TokioIo;

use crate::endpoint::Endpoint;
use crate::tls::TlsClient;

/// HTTP/2 windows keel-bench opens: a stream's, and the connection's.
const STREAM_WINDOW_BYTES: u32 = 1 << 20;
const CONNECTION_WINDOW_BYTES: u32 = 8 << 20;

/// How a run connects (cheap to clone: one per executor).
#[derive(Clone)]
pub struct Dialer {
    /// Zero: no limit.
    pub timeout: Duration,
    /// Present when some endpoint is TLS.
    pub tls: Option<TlsClient>,
}

impl Dialer {
    /// One connection to `endpoint`, ready for requests.
    pub(crate) async fn connect(&self, endpoint: &Endpoint) -> Result<SendRequest<Bytes>, String> {
        if self.timeout.is_zero() {
            return self.dial(endpoint).await;
        }
        match futures_lite::future::or(async { Some(self.dial(endpoint).await) }, async {
            glommio::timer::sleep(self.timeout).await;
            None
        })
        .await
        {
            Some(result) => result,
            None => Err(format!(
                "cannot connect to {endpoint}: dial timeout ({:?}) expired",
                self.timeout
            )),
        }
    }

    async fn dial(&self, endpoint: &Endpoint) -> Result<SendRequest<Bytes>, String> {
        let stream = TcpStream::connect(endpoint.addr)
            .await
            .map_err(|error| format!("cannot connect to {endpoint}: {error}"))?;
        stream.set_nodelay(true).ok();
        if !endpoint.tls {
            return http2(TokioIo(stream), endpoint, |error| error.to_string()).await;
        }
        let tls = self
            .tls
            .as_ref()
            .expect("a TLS endpoint has a TLS client (run.rs builds one)");
        let stream = tls
            .handshake(stream, &endpoint.host)
            .await
            .map_err(|message| format!("TLS handshake with {endpoint} failed: {message}"))?;
        let failure = stream.failure();
        let sender = http2(TokioIo(stream), endpoint, |error| match failure.take() {
            Some(tls_error) => format!("TLS: {}", tls.explain(&tls_error)),
            None => error.to_string(),
        })
        .await?;
        failure.set_established();
        Ok(sender)
    }
}

/// The HTTP/2 handshake and a PING answered, over `io`; the connection is
/// then driven by a task of its own. `describe` words an h2 error.
async fn http2<T>(
    io: T,
    endpoint: &Endpoint,
    describe: impl Fn(&h2::Error) -> String,
) -> Result<SendRequest<Bytes>, String>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let mut builder = h2::client::Builder::new();
    builder
        .initial_window_size(STREAM_WINDOW_BYTES)
        .initial_connection_window_size(CONNECTION_WINDOW_BYTES);
    let (sender, mut connection) = builder.handshake::<_, Bytes>(io).await.map_err(|error| {
        format!(
            "HTTP/2 handshake with {endpoint} failed: {}",
            describe(&error)
        )
    })?;
    let mut ping_pong = connection
        .ping_pong()
        .expect("a new connection has its ping");
    // The connection is driven here until the PING is answered, so that
    // its own error (a TLS alert, a reset), not a closed ping, is reported.
    let answered = futures_lite::future::or(
        async {
            match ping_pong.ping(h2::Ping::opaque()).await {
                Ok(_) => Ok(()),
                Err(error) => Err(describe(&error)),
            }
        },
        async {
            match (&mut connection).await {
                Ok(()) => Err("the server closed the connection".to_string()),
                Err(error) => Err(describe(&error)),
            }
        },
    )
    .await;
    answered.map_err(|message| format!("HTTP/2 connection to {endpoint} failed: {message}"))?;
    glommio::spawn_local(async move {
        let _ = connection.await;
    })
    .detach();
    Ok(sender)
}
