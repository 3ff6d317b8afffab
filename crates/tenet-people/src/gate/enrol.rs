//! Devices over HTTP: enrolment with a one-time token, and signed posture reports.

use super::*;

impl SignIn {
    pub(super) async fn device_enrol(&self, req: &AuthRequest) -> Answer {
        let request: tenet_device::EnrolmentRequest = match serde_json::from_slice(&req.body) {
            Ok(r) => r,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    &format!("enrolment request: {e}"),
                );
            }
        };
        let outcome = self.devices.enrol(&self.ca, &request, req.now);
        let (success, reason, device) = match &outcome {
            Ok(e) => (true, "enrolled".to_owned(), Some(e.device_id.to_string())),
            Err(e) => (false, e.to_string(), None),
        };
        let user = device.clone().unwrap_or_else(|| "unknown".into());
        let event = AuthenticationEvent {
            activity: "device_enrol".into(),
            user,
            provider: None,
            factor: None,
            success,
            reason,
            source_ip: req.source_ip,
            device,
            request_id: Some(req.request_id.clone()),
        };
        let recorded = self.record(req.now, event).await;
        match outcome {
            Ok(e) if recorded => {
                let body = serde_json::json!({
                    "device_id": e.device_id.to_string(),
                    "spiffe_id": e.spiffe_id.as_str(),
                    "chain_pem": e.chain_pem(),
                    "not_after": e.not_after.unix_timestamp(),
                });
                json(StatusCode::OK, body.to_string().into_bytes())
            }
            Ok(_) => error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the enrolment could not be recorded",
            ),
            Err(e) => error(StatusCode::BAD_REQUEST, "enrolment_refused", &e.to_string()),
        }
    }

    pub(super) async fn device_report(&self, req: &AuthRequest) -> Answer {
        let Ok(jws) = std::str::from_utf8(&req.body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the report is not UTF-8",
            );
        };
        let outcome = self.devices.report(jws.trim(), req.now);
        let (success, reason, device) = match &outcome {
            Ok(id) => (true, "posture recorded".to_owned(), Some(id.to_string())),
            Err(e) => (false, e.to_string(), None),
        };
        let user = device.clone().unwrap_or_else(|| "unknown".into());
        let event = AuthenticationEvent {
            activity: "device_report".into(),
            user,
            provider: None,
            factor: None,
            success,
            reason,
            source_ip: req.source_ip,
            device,
            request_id: Some(req.request_id.clone()),
        };
        self.record(req.now, event).await;
        match outcome {
            Ok(id) => json(
                StatusCode::OK,
                serde_json::json!({"device_id": id.to_string()})
                    .to_string()
                    .into_bytes(),
            ),
            Err(e) => error(StatusCode::BAD_REQUEST, "report_refused", &e.to_string()),
        }
    }
}
