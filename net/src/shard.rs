//! A shard core's link to the raft core: it sends proposals and read-index
//! requests over its bounded queue and wakes the request that waits for each
//! reply. Requests in flight are bounded by a semaphore sized to the reply
//! queue, so neither direction can grow without bound.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use futures_channel::oneshot;
use glommio::channels::shared_channel::{ConnectedReceiver, ConnectedSender};
use glommio::sync::Semaphore;
use keel_engine::StoreReader;
use keel_proto::keelpb::internal_request::Request;
use keel_raft_shim::message::SHARD_INFLIGHT_MAX;
use keel_raft_shim::{
    FromRaft, LeaseAnswer, LeaseQuery, RaftStatus, Response, ShardId, ToRaft, Token,
};

use crate::metrics::ShardMetrics;
use crate::status::RequestError;
use crate::watch::WatchHub;
use crate::ServeConfig;

pub struct Shard {
    pub id: ShardId,
    pub reader: StoreReader,
    pub status: Arc<RaftStatus>,
    pub config: ServeConfig,
    pub watches: WatchHub,
    /// This core's metrics.
    pub metrics: Arc<ShardMetrics>,
    /// Every core's metrics, for `/metrics`.
    pub all_metrics: Arc<[Arc<ShardMetrics>]>,
    to_raft: ConnectedSender<ToRaft>,
    waiters: RefCell<HashMap<Token, oneshot::Sender<FromRaft>>>,
    next_token: Cell<Token>,
    inflight: Semaphore,
}

impl Shard {
    pub fn new(
        id: ShardId,
        all_metrics: Arc<[Arc<ShardMetrics>]>,
        reader: StoreReader,
        status: Arc<RaftStatus>,
        config: ServeConfig,
        to_raft: ConnectedSender<ToRaft>,
    ) -> Shard {
        let metrics = all_metrics[id].clone();
        let watches = WatchHub::new(
            id,
            reader.clone(),
            status.clone(),
            config.max_request_bytes,
            metrics.clone(),
        );
        Shard {
            id,
            reader,
            status,
            config,
            watches,
            metrics,
            all_metrics,
            to_raft,
            waiters: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            inflight: Semaphore::new(SHARD_INFLIGHT_MAX as u64),
        }
    }

    /// Replicates and applies `request`; resolves once it is applied.
    pub async fn propose(&self, request: Request) -> Result<Response, RequestError> {
        match self
            .call(|shard, token| ToRaft::Propose {
                shard,
                token,
                request,
            })
            .await?
        {
            FromRaft::Applied { result, .. } => result.map_err(RequestError::Apply),
            _ => unreachable!("a proposal is answered by Applied"),
        }
    }

    /// Resolves once this member has applied everything committed before
    /// the call: the linearizable read barrier.
    pub async fn read_index(&self) -> Result<(), RequestError> {
        self.call(|shard, token| ToRaft::ReadIndex { shard, token })
            .await
            .map(|_| ())
    }

    /// Asks the raft core's lease table (keep-alive, time-to-live, list).
    pub async fn lease_query(&self, query: LeaseQuery) -> Result<LeaseAnswer, RequestError> {
        match self
            .call(|shard, token| ToRaft::Lease {
                shard,
                token,
                query,
            })
            .await?
        {
            FromRaft::Lease { answer, .. } => Ok(answer),
            _ => unreachable!("a lease query is answered by Lease"),
        }
    }

    /// Defragments the backend; resolves once the defrag finished.
    pub async fn defragment(&self) -> Result<(), RequestError> {
        match self
            .call(|shard, token| ToRaft::Defragment { shard, token })
            .await?
        {
            FromRaft::Defragmented { result, .. } => result.map_err(RequestError::Defrag),
            _ => unreachable!("a defragment is answered by Defragmented"),
        }
    }

    async fn call(
        &self,
        make: impl FnOnce(ShardId, Token) -> ToRaft,
    ) -> Result<FromRaft, RequestError> {
        let _permit = self
            .inflight
            .acquire_permit(1)
            .await
            .map_err(|_| RequestError::Stopped)?;
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let (reply_tx, reply_rx) = oneshot::channel();
        self.waiters.borrow_mut().insert(token, reply_tx);
        if self.to_raft.send(make(self.id, token)).await.is_err() {
            self.waiters.borrow_mut().remove(&token);
            return Err(RequestError::Stopped);
        }
        reply_rx.await.map_err(|_| RequestError::Stopped)
    }

    /// Delivers the raft core's replies to the requests waiting for them.
    pub async fn run_replies(self: Rc<Self>, from_raft: ConnectedReceiver<FromRaft>) {
        while let Some(reply) = from_raft.recv().await {
            let token = match &reply {
                FromRaft::Applied { token, .. }
                | FromRaft::ReadIndexReady { token }
                | FromRaft::Lease { token, .. }
                | FromRaft::Defragmented { token, .. } => *token,
                FromRaft::Events(batch) => {
                    self.watches.on_events(batch);
                    continue;
                }
            };
            if let Some(waiter) = self.waiters.borrow_mut().remove(&token) {
                // The client may have gone; the write is applied regardless.
                let _ = waiter.send(reply);
            }
        }
        // The raft core is gone: fail everything still waiting.
        self.waiters.borrow_mut().clear();
        self.inflight.close();
    }
}
