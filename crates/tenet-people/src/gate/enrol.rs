//! Devices over HTTP: enrolment with a one-time token, and signed posture reports.

use super::*;

impl SignIn {
    pub(super) async fn device_enrol(&self, req: &AuthRequest) -> Answer {
        let request: tenet_device::EnrolmentRequest = match json_body::parse(&req.body) {
            Ok(r) => r,
            Err(e) => return e.answer("enrolment request"),
        };
        let enrolled = match self.devices.enrol(&self.ca, &request, req.now) {
            Ok(e) => e,
            Err(e) => {
                let refused = error(StatusCode::BAD_REQUEST, "enrolment_refused", &e.to_string());
                let event = device_event(req, "device_enrol", Err(e.to_string()));
                return self.record_refusal(req, event, refused).await;
            }
        };
        let done = (enrolled.device_id.to_string(), "enrolled".to_owned());
        if !self
            .record(req.now, device_event(req, "device_enrol", Ok(done)))
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the enrolment could not be recorded",
            );
        }
        let body = serde_json::json!({
            "device_id": enrolled.device_id.to_string(),
            "spiffe_id": enrolled.spiffe_id.as_str(),
            "chain_pem": enrolled.chain_pem(),
            "not_after": enrolled.not_after.unix_timestamp(),
        });
        json(StatusCode::OK, body.to_string().into_bytes())
    }

    pub(super) async fn device_report(&self, req: &AuthRequest) -> Answer {
        let Ok(jws) = std::str::from_utf8(&req.body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_body",
                "the report is not UTF-8",
            );
        };
        let (id, compliance) = match self.devices.report(jws.trim(), req.now) {
            Ok(reported) => reported,
            Err(e @ crate::PeopleError::TooManyReports { until, .. }) => {
                // Not recorded: the device is known, and only its first report over the limit
                // is logged (at warn).
                let mut answer = error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too_many_reports",
                    &e.to_string(),
                );
                let retry_after = (until - req.now).whole_seconds().max(1);
                if let Ok(value) = http::HeaderValue::from_str(&retry_after.to_string()) {
                    answer.headers_mut().insert(header::RETRY_AFTER, value);
                }
                return answer;
            }
            Err(e) => {
                let refused = error(StatusCode::BAD_REQUEST, "report_refused", &e.to_string());
                let event = device_event(req, "device_report", Err(e.to_string()));
                return self.record_refusal(req, event, refused).await;
            }
        };
        let done = format!("posture recorded: {}", compliance.summary());
        let event = device_event(req, "device_report", Ok((id.to_string(), done)));
        self.record(req.now, event).await;
        let mut body = serde_json::json!(compliance);
        if let Some(fields) = body.as_object_mut() {
            fields.insert("device_id".to_owned(), id.to_string().into());
        }
        json(StatusCode::OK, body.to_string().into_bytes())
    }
}

/// The event of a device's enrolment or report: the device id and what happened, or why it
/// was refused.
fn device_event(
    req: &AuthRequest,
    activity: &str,
    step: Result<(String, String), String>,
) -> AuthenticationEvent {
    let (success, reason, device) = match step {
        Ok((device, done)) => (true, done, Some(device)),
        Err(reason) => (false, reason, None),
    };
    AuthenticationEvent {
        activity: activity.into(),
        user: device.clone().unwrap_or_else(|| "unknown".into()),
        provider: None,
        factor: None,
        success,
        reason,
        source_ip: req.source_ip,
        device,
        request_id: Some(req.request_id.clone()),
    }
}
