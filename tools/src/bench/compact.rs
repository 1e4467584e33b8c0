//! `put --compact-interval`: while the puts run, every interval read the
//! current revision (a Range of "foo", as etcd's benchmark) and compact to
//! it minus `--compact-index-delta`. A failed compaction ends the run, as
//! it does etcd's (which panics).

use std::time::Duration;

use keel_proto::etcdserverpb as pb;

use crate::client::Share;
use crate::grpc_call::unary;
use crate::watch_stream::until_stopped;

/// Compacts every `interval` until the run stops; returns only on failure
/// or stop.
pub(crate) async fn run_compactor(
    share: &Share,
    interval: Duration,
    index_delta: i64,
) -> Result<(), String> {
    let endpoint = &share.endpoints[0];
    let mut sender = share.dialer.connect(endpoint).await?;
    let mut compacted = 0;
    loop {
        if until_stopped(share, glommio::timer::sleep(interval))
            .await
            .is_none()
        {
            return Ok(());
        }
        let range: pb::RangeResponse = unary(
            &mut sender,
            endpoint,
            "/etcdserverpb.KV/Range",
            &pb::RangeRequest {
                key: b"foo".to_vec(),
                ..Default::default()
            },
        )
        .await
        .map_err(|message| format!("compaction: reading the revision failed: {message}"))?;
        let revision = range.header.map(|header| header.revision).unwrap_or(0);
        let Some(target) = compact_target(revision, index_delta, compacted) else {
            continue;
        };
        unary::<pb::CompactionResponse>(
            &mut sender,
            endpoint,
            "/etcdserverpb.KV/Compact",
            &pb::CompactionRequest {
                revision: target,
                physical: false,
            },
        )
        .await
        .map_err(|message| format!("compaction to revision {target} failed: {message}"))?;
        compacted = target;
    }
}

/// The revision to compact to: `revision - index_delta`, if that is past
/// both revision 0 and the last compaction (etcd compacts to max(0, ..) and
/// would fail on a repeat; keel-bench skips instead).
pub fn compact_target(revision: i64, index_delta: i64, compacted: i64) -> Option<i64> {
    let target = revision.saturating_sub(index_delta);
    (target > 0 && target > compacted).then_some(target)
}
