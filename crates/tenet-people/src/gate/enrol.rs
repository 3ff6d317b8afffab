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
        let step = match &outcome {
            Ok(e) => Ok((e.device_id.to_string(), "enrolled".to_owned())),
            Err(e) => Err(e.to_string()),
        };
        let recorded = self.device_step(req, "device_enrol", step).await;
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
        let step = match &outcome {
            Ok((id, compliance)) => Ok((
                id.to_string(),
                format!("posture recorded: {}", compliance.summary()),
            )),
            Err(e) => Err(e.to_string()),
        };
        self.device_step(req, "device_report", step).await;
        match outcome {
            Ok((id, compliance)) => {
                let mut body = serde_json::json!(compliance);
                if let Some(fields) = body.as_object_mut() {
                    fields.insert("device_id".to_owned(), id.to_string().into());
                }
                json(StatusCode::OK, body.to_string().into_bytes())
            }
            Err(e) => error(StatusCode::BAD_REQUEST, "report_refused", &e.to_string()),
        }
    }

    /// Records a device's enrolment or report: the device id and what happened, or why it
    /// was refused. Returns whether the event was stored.
    async fn device_step(
        &self,
        req: &AuthRequest,
        activity: &str,
        step: Result<(String, String), String>,
    ) -> bool {
        let (success, reason, device) = match step {
            Ok((device, done)) => (true, done, Some(device)),
            Err(reason) => (false, reason, None),
        };
        let event = AuthenticationEvent {
            activity: activity.into(),
            user: device.clone().unwrap_or_else(|| "unknown".into()),
            provider: None,
            factor: None,
            success,
            reason,
            source_ip: req.source_ip,
            device,
            request_id: Some(req.request_id.clone()),
        };
        self.record(req.now, event).await
    }
}
