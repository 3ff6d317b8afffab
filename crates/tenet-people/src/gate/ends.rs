//! Session ends in the ledger: every session that ends before its time (re-evaluation, an
//! operator's or a playbook's revocation, its device's revocation) is one Authentication
//! `session_end` event (OCSF Logoff) naming the person and why, recorded once.

use std::sync::Arc;

use tenet_event::{AuthenticationEvent, Event, EventKind, EventSink};
use tenet_session::Session;
use time::OffsetDateTime;
use tracing::{info, warn};
use uuid::Uuid;

use super::{ATTR_PROVIDER, SignIn};
use crate::error::PeopleError;

/// The ledger's activity for a session ended before its time.
const SESSION_END: &str = "session_end";

/// The Authentication event of `session`'s end: `reason` starts with a stable machine word
/// (`posture_noncompliant: ...`, `revoked`, `device_revoked: ...`). The address is the one
/// the session was last used from; the request id is left for a caller that has one.
pub(super) fn session_end_event(session: &Session, reason: String) -> AuthenticationEvent {
    AuthenticationEvent {
        activity: SESSION_END.into(),
        user: SignIn::person_name(session),
        provider: session.user.attributes.get(ATTR_PROVIDER).cloned(),
        factor: None,
        success: true,
        reason,
        source_ip: session.last_from.ip,
        device: session.device_id.clone(),
        request_id: None,
    }
}

/// Records the ends on a task of its own, so that a synchronous caller (a playbook step, the
/// risk cut-off) neither waits for the ledger nor loses them.
pub(super) fn record_in_background(
    sink: &Arc<dyn EventSink>,
    ends: Vec<AuthenticationEvent>,
    now: OffsetDateTime,
) {
    if ends.is_empty() {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        warn!(
            sessions = ends.len(),
            "session ends not recorded: no runtime to record them"
        );
        return;
    };
    let sink = Arc::clone(sink);
    runtime.spawn(async move {
        for end in ends {
            let user = end.user.clone();
            let event = Event::new(now, EventKind::Authentication(end));
            if let Err(e) = sink.record(event).await {
                warn!(error = %e, %user, "session end could not be recorded");
            }
        }
    });
}

impl SignIn {
    /// Revokes a device (its certificate no longer identifies it, its reports are refused)
    /// and ends every session bound to it at once, each recorded as a `session_end`
    /// (`device_revoked`); a later request with one of them is refused as `device_revoked`.
    /// Returns how many sessions ended.
    pub async fn revoke_device(&self, id: Uuid, now: OffsetDateTime) -> Result<usize, PeopleError> {
        self.devices.revoke(id, now)?;
        let ended = self.sessions.revoke_device(&id.to_string(), now)?;
        info!(device = %id, sessions = ended.len(), "device revoked, its sessions ended");
        for session in &ended {
            let reason = format!("device_revoked: device {id} was revoked");
            self.record(now, session_end_event(session, reason)).await;
        }
        Ok(ended.len())
    }
}
