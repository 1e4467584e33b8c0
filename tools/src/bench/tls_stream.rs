//! A TLS stream as h2 sees it, kept so that a TLS failure after the
//! handshake is reported as the TLS failure it is.
//!
//! Under TLS 1.3 a server refuses a client certificate only after the
//! client has finished its handshake: it sends an alert and closes. Two
//! things would hide that alert. h2 keeps only the text of an I/O error, so
//! the typed `rustls::Error` is recorded here, in a [`TlsFailure`] that
//! `dial.rs` reads once h2 has failed. And h2 writes its preface and
//! SETTINGS straight after the handshake; the server, closing with those
//! bytes unread, resets the connection, and the reset can fail the next
//! write before the alert (already in the socket's receive queue) is read.
//! So while connecting, a write error is held back, writes are taken as
//! done, and the read side reports: the alert if the server sent one, else
//! the held write error. Once the connection is up, errors pass as they
//! come.

use std::cell::Cell;
use std::io;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite};
use futures_rustls::rustls;

use crate::tls::rustls_error;

/// What one TLS connection's stream shares with the code that dialled it.
#[derive(Default)]
pub(crate) struct TlsFailure {
    /// The last TLS error a read or write met.
    error: Cell<Option<rustls::Error>>,
    /// The connection answered its first PING: errors are no longer held.
    established: Cell<bool>,
}

impl TlsFailure {
    /// The TLS error that ended the connection, if one did.
    pub(crate) fn take(&self) -> Option<rustls::Error> {
        self.error.take()
    }

    pub(crate) fn set_established(&self) {
        self.established.set(true);
    }
}

pub(crate) struct TlsIo<S> {
    inner: S,
    failure: Rc<TlsFailure>,
    /// A write error held back while connecting (see the module comment).
    held_write_error: Option<io::Error>,
}

impl<S> TlsIo<S> {
    pub(crate) fn new(inner: S) -> TlsIo<S> {
        TlsIo {
            inner,
            failure: Rc::default(),
            held_write_error: None,
        }
    }

    /// Readable after the stream has moved into h2.
    pub(crate) fn failure(&self) -> Rc<TlsFailure> {
        self.failure.clone()
    }

    /// Keeps a TLS error; true if `error` was one.
    fn record(&self, error: &io::Error) -> bool {
        match rustls_error(error) {
            Some(tls_error) => {
                self.failure.error.set(Some(tls_error.clone()));
                true
            }
            None => false,
        }
    }

    /// A write's (or flush's) result: a plain I/O error while connecting
    /// is held and the write taken as done (`done`).
    fn written<T>(&mut self, result: Poll<io::Result<T>>, done: T) -> Poll<io::Result<T>> {
        match result {
            Poll::Ready(Err(error)) if !self.record(&error) => {
                if self.failure.established.get() {
                    return Poll::Ready(Err(error));
                }
                self.held_write_error = Some(error);
                Poll::Ready(Ok(done))
            }
            other => other,
        }
    }

    /// While a write error is held, writes go nowhere.
    fn holding(&self) -> bool {
        self.held_write_error.is_some() && !self.failure.established.get()
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TlsIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        match result {
            Poll::Ready(Err(error)) if self.record(&error) => Poll::Ready(Err(error)),
            // No alert came: the held write error is the reason.
            Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) if self.held_write_error.is_some() => {
                Poll::Ready(Err(self.held_write_error.take().expect("checked")))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TlsIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.holding() {
            return Poll::Ready(Ok(buf.len()));
        }
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.written(result, buf.len())
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|buf| buf.len()).sum();
        if self.holding() {
            return Poll::Ready(Ok(len));
        }
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.written(result, len)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.holding() {
            return Poll::Ready(Ok(()));
        }
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.written(result, ())
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_close(cx);
        if let Poll::Ready(Err(error)) = &result {
            self.record(error);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes fail with a reset; reads give `reads` in turn.
    struct Script {
        reads: Vec<io::Result<usize>>,
    }

    impl AsyncRead for Script {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(self.reads.remove(0))
        }
    }

    impl AsyncWrite for Script {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn alert() -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::BadCertificate),
        )
    }

    fn poll<T>(f: impl FnOnce(&mut Context<'_>) -> Poll<T>) -> T {
        match f(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("pending"),
        }
    }

    #[test]
    fn while_connecting_a_reset_waits_for_the_alert_behind_it() {
        let mut io = TlsIo::new(Script {
            reads: vec![Err(alert())],
        });
        let failure = io.failure();
        let mut io = Pin::new(&mut io);
        assert_eq!(
            poll(|cx| io.as_mut().poll_write(cx, b"preface")).unwrap(),
            7
        );
        assert_eq!(poll(|cx| io.as_mut().poll_write(cx, b"more")).unwrap(), 4);
        let error = poll(|cx| io.as_mut().poll_read(cx, &mut [0; 8])).unwrap_err();
        assert!(rustls_error(&error).is_some(), "{error}");
        assert_eq!(
            failure.take(),
            Some(rustls::Error::AlertReceived(
                rustls::AlertDescription::BadCertificate
            ))
        );
    }

    #[test]
    fn without_an_alert_the_held_error_is_the_reason() {
        let mut io = TlsIo::new(Script { reads: vec![Ok(0)] });
        let failure = io.failure();
        let mut io = Pin::new(&mut io);
        assert!(poll(|cx| io.as_mut().poll_write(cx, b"x")).is_ok());
        let error = poll(|cx| io.as_mut().poll_read(cx, &mut [0; 8])).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(failure.take(), None);
    }

    #[test]
    fn once_established_errors_pass_as_they_come() {
        let mut io = TlsIo::new(Script { reads: vec![] });
        io.failure().set_established();
        let mut io = Pin::new(&mut io);
        let error = poll(|cx| io.as_mut().poll_write(cx, b"x")).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionReset);
    }
}
