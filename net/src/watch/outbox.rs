//! A watch stream's outbox: the framed responses waiting for the client,
//! bounded by count and bytes. The stream's writer task drains it; the
//! hub fills it and, when it is full, leaves a watcher to catch up from
//! history later instead of growing it (so a slow client costs memory only
//! up to these bounds, and never stalls the raft core or other streams).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

use bytes::Bytes;

/// Responses one stream may have queued.
pub const OUTBOX_RESPONSES_MAX: usize = 1024;
/// Bytes one stream may have queued (one larger response is still taken
/// when the outbox is empty, so a huge revision is never stuck).
pub const OUTBOX_BYTES_MAX: usize = 8 << 20;

#[derive(Default)]
pub struct Outbox {
    queue: RefCell<VecDeque<Bytes>>,
    queued_bytes: Cell<usize>,
    /// The writer, waiting for a response.
    writer: Cell<Option<Waker>>,
    /// The request reader, waiting for room.
    reader: Cell<Option<Waker>>,
    closed: Cell<bool>,
}

impl Outbox {
    /// Whether the hub may queue another event response.
    pub fn has_room(&self) -> bool {
        let queue = self.queue.borrow();
        queue.is_empty()
            || (queue.len() < OUTBOX_RESPONSES_MAX && self.queued_bytes.get() < OUTBOX_BYTES_MAX)
    }

    /// Queues one framed response. Callers check [`Outbox::has_room`]
    /// first (control responses are bounded by the reader waiting for room
    /// before it reads the next request).
    pub fn push(&self, framed: Bytes) {
        if self.closed.get() {
            return;
        }
        self.queued_bytes
            .set(self.queued_bytes.get() + framed.len());
        self.queue.borrow_mut().push_back(framed);
        if let Some(waker) = self.writer.take() {
            waker.wake();
        }
    }

    /// The next response; `None` once closed.
    pub async fn pop(&self) -> Option<Bytes> {
        poll_fn(|cx| {
            if self.closed.get() {
                return Poll::Ready(None);
            }
            match self.queue.borrow_mut().pop_front() {
                Some(framed) => {
                    self.queued_bytes
                        .set(self.queued_bytes.get() - framed.len());
                    if let Some(waker) = self.reader.take() {
                        waker.wake();
                    }
                    Poll::Ready(Some(framed))
                }
                None => {
                    self.writer.set(Some(cx.waker().clone()));
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Resolves once the outbox has room (or is closed).
    pub async fn room(&self) {
        poll_fn(|cx| {
            if self.closed.get() || self.has_room() {
                Poll::Ready(())
            } else {
                self.reader.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }

    /// Drops everything queued; later pushes are ignored.
    pub fn close(&self) {
        self.closed.set(true);
        self.queue.borrow_mut().clear();
        self.queued_bytes.set(0);
        for waker in [self.writer.take(), self.reader.take()]
            .into_iter()
            .flatten()
        {
            waker.wake();
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.borrow().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_by_count() {
        let outbox = Outbox::default();
        for _ in 0..OUTBOX_RESPONSES_MAX {
            assert!(outbox.has_room());
            outbox.push(Bytes::from_static(b"x"));
        }
        assert!(!outbox.has_room());
        let popped = futures_lite::future::block_on(outbox.pop());
        assert_eq!(popped.as_deref(), Some(&b"x"[..]));
        assert!(outbox.has_room());
    }

    #[test]
    fn one_huge_response_fits_an_empty_outbox() {
        let outbox = Outbox::default();
        outbox.push(Bytes::from(vec![0u8; OUTBOX_BYTES_MAX + 1]));
        assert!(!outbox.has_room());
        outbox.close();
        assert_eq!(futures_lite::future::block_on(outbox.pop()), None);
    }
}
