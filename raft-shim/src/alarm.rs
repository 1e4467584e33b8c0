//! Alarms (etcd's `alarmStore`): raised and cleared through raft, kept in
//! memory, published to the shard cores lock-free. While NOSPACE is raised
//! the apply loop refuses writes that need space (etcd's capped applier).
//!
//! Departure from etcd: alarms are not stored in the backend, so a restart
//! clears them; a member still over its quota raises NOSPACE again at the
//! next write that does not fit.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwap;
use keel_proto::etcdserverpb::alarm_request::AlarmAction;
use keel_proto::etcdserverpb::{AlarmMember, AlarmRequest, AlarmResponse, AlarmType};

use crate::message::{ApplyError, Response};

/// The raised alarms as the shard cores read them.
pub type AlarmList = Arc<ArcSwap<Vec<AlarmMember>>>;

#[derive(Debug, Default)]
pub struct Alarms {
    raised: BTreeSet<(u64, i32)>,
}

impl Alarms {
    pub fn no_space(&self) -> bool {
        self.raised
            .iter()
            .any(|&(_, alarm)| alarm == AlarmType::Nospace as i32)
    }

    /// Applies an Activate or Deactivate (a Get is answered from the
    /// published list, without raft) and republishes the list.
    pub fn apply(
        &mut self,
        request: &AlarmRequest,
        published: &AlarmList,
    ) -> Result<Response, ApplyError> {
        let alarm = (request.member_id, request.alarm);
        let changed = match AlarmAction::try_from(request.action) {
            Ok(AlarmAction::Activate) => {
                if request.alarm == AlarmType::None as i32 {
                    return Err(ApplyError::Unsupported);
                }
                self.raised.insert(alarm);
                vec![alarm]
            }
            Ok(AlarmAction::Deactivate) => {
                // etcd: member 0 / alarm NONE match every member / alarm.
                let matching: Vec<(u64, i32)> = self
                    .raised
                    .iter()
                    .copied()
                    .filter(|&(member, kind)| {
                        (request.member_id == 0 || member == request.member_id)
                            && (request.alarm == AlarmType::None as i32 || kind == request.alarm)
                    })
                    .collect();
                for raised in &matching {
                    self.raised.remove(raised);
                }
                matching
            }
            Ok(AlarmAction::Get) => self.raised.iter().copied().collect(),
            Err(_) => return Err(ApplyError::Unsupported),
        };
        published.store(Arc::new(self.list()));
        Ok(Response::Alarm(AlarmResponse {
            header: None,
            alarms: changed.into_iter().map(to_member).collect(),
        }))
    }

    pub fn list(&self) -> Vec<AlarmMember> {
        self.raised.iter().copied().map(to_member).collect()
    }
}

fn to_member((member_id, alarm): (u64, i32)) -> AlarmMember {
    AlarmMember { member_id, alarm }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(action: AlarmAction, member_id: u64, alarm: AlarmType) -> AlarmRequest {
        AlarmRequest {
            action: action as i32,
            member_id,
            alarm: alarm as i32,
        }
    }

    #[test]
    fn raise_list_and_disarm() {
        let published = AlarmList::default();
        let mut alarms = Alarms::default();
        assert!(!alarms.no_space());
        alarms
            .apply(
                &request(AlarmAction::Activate, 7, AlarmType::Nospace),
                &published,
            )
            .unwrap();
        assert!(alarms.no_space());
        assert_eq!(published.load().len(), 1);
        let Response::Alarm(disarmed) = alarms
            .apply(
                &request(AlarmAction::Deactivate, 0, AlarmType::None),
                &published,
            )
            .unwrap()
        else {
            panic!("an alarm response")
        };
        assert_eq!(disarmed.alarms.len(), 1);
        assert!(!alarms.no_space());
        assert!(published.load().is_empty());
    }
}
