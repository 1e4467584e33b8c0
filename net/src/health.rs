//! `grpc.health.v1.Health/Check` as etcd registers it: the whole server
//! ("") is SERVING; any other service name is unknown (grpc-go's answer).

use keel_proto::health::health_check_response::ServingStatus;
use keel_proto::health::{HealthCheckRequest, HealthCheckResponse};

use crate::grpc::{Code, Status};

pub fn check(request: HealthCheckRequest) -> Result<HealthCheckResponse, Status> {
    if !request.service.is_empty() {
        return Err(Status::new(Code::NotFound, "unknown service"));
    }
    Ok(HealthCheckResponse {
        status: ServingStatus::Serving as i32,
    })
}
