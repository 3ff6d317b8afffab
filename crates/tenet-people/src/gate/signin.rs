//! Sign-in and sign-out: the authorization request, the provider's callback (a new
//! session), and sign-out.

use super::*;

impl SignIn {
    /// The return path from a `rd` query parameter: a path on this origin, or `/`.
    pub(super) fn return_path(&self, query: &str) -> Result<String, String> {
        let rd = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "rd")
            .map(|(_, v)| v.into_owned());
        match rd {
            None => Ok("/".to_owned()),
            Some(rd) => match self.return_paths.check(&rd) {
                Ok(ReturnTo::Path(p)) => Ok(p),
                Ok(ReturnTo::Absolute(_)) => Err("rd must be a path on this site".to_owned()),
                Err(e) => Err(format!("rd: {e}")),
            },
        }
    }

    pub(super) async fn login(&self, req: &AuthRequest, query: &str) -> Answer {
        let wanted = url::form_urlencoded::parse(query.as_bytes())
            .find(|(k, _)| k == "provider")
            .map(|(_, v)| v.into_owned());
        let slot = match &wanted {
            Some(name) => self.providers.iter().find(|p| p.config().name == *name),
            None => self.providers.first(),
        };
        // A provider that has not answered discovery yet: nothing to redirect to. This does
        // not count toward the sign-ins of the source address (people retrying during an
        // outage must not be locked out once it ends), and is no failed sign-in.
        if let Some(slot) = slot
            && !slot.is_discovered()
        {
            debug!(provider = %slot.config().name, source = %req.source_ip,
                "sign-in refused: the identity provider is not discovered yet");
            return provider_unreachable(&req.headers, &slot.config().name);
        }
        // Sign-ins count per source as refusals do: an IPv6 host commonly holds a whole /64.
        let source = refusals::source_of(req.source_ip);
        if !self.logins_per_source.count(&source, req.now) {
            info!(%source, "too many sign-ins started from one source");
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_sign_ins",
                "too many sign-ins started from this address; try again later",
            );
        }
        let rd = match self.return_path(query) {
            Ok(rd) => rd,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_return_path", &e),
        };
        let Some(provider) = slot.and_then(|slot| slot.get()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "unknown_provider",
                "no such identity provider",
            );
        };
        let redirect = provider.begin(rd.clone(), req.now);
        let payload = match serde_json::to_string(&redirect.pending) {
            Ok(p) => p,
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    &e.to_string(),
                );
            }
        };
        let state = redirect.pending.state();
        let started = match self.logins.begin(&source, state, payload, rd, req.now) {
            Ok(s) => s,
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "login_unavailable",
                    &e.to_string(),
                );
            }
        };
        let mut answer = see_other(redirect.authorization_url.as_str());
        let max_age = (started.expires - req.now).whole_seconds().max(1);
        add_cookie(
            &mut answer,
            &tenet_session::login_set_cookie(started.binding.as_str(), max_age),
        );
        answer
    }

    pub(super) async fn callback(&self, req: &AuthRequest, query: &str, jar: &CookieJar) -> Answer {
        let failed = |reason: String| AuthenticationEvent {
            activity: "logon".into(),
            user: "unknown".into(),
            provider: None,
            factor: Some("oidc".into()),
            success: false,
            reason,
            source_ip: req.source_ip,
            device: None,
            request_id: Some(req.request_id.clone()),
        };
        let response = match AuthorizationResponse::from_query(query) {
            Ok(r) => r,
            Err(e) => {
                let refused = error(StatusCode::BAD_REQUEST, "bad_callback", &e.to_string());
                let event = failed(format!("bad_callback: {e}"));
                return self.record_refusal(req, event, refused).await;
            }
        };
        let completed = match self
            .logins
            .consume(&response.state, jar.login_binding(), req.now)
        {
            Ok(c) => c,
            Err(e) => {
                let refused = error(StatusCode::BAD_REQUEST, "bad_login_state", &e.to_string());
                let event = failed(format!("login_state: {e}"));
                return self.record_refusal(req, event, refused).await;
            }
        };
        let pending: PendingLogin = match serde_json::from_str(&completed.payload) {
            Ok(p) => p,
            Err(e) => {
                return error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    &e.to_string(),
                );
            }
        };
        let Some(slot) = self
            .providers
            .iter()
            .find(|p| p.config().name == pending.provider())
        else {
            return error(
                StatusCode::BAD_REQUEST,
                "unknown_provider",
                "the provider is no longer configured",
            );
        };
        // A pending login exists only for a provider that was discovered, and slots are never
        // emptied; answered all the same rather than assumed.
        let Some(provider) = slot.get() else {
            return provider_unreachable(&req.headers, &slot.config().name);
        };
        let identity = match provider.complete(&pending, &response, req.now).await {
            Ok(i) => i,
            Err(e) => {
                let mut event = failed(format!("{}: {e}", e.reason()));
                event.provider = Some(provider.config().name.clone());
                let refused = error(StatusCode::UNAUTHORIZED, "sign_in_failed", e.reason());
                return self.record_refusal(req, event, refused).await;
            }
        };
        let mut user = UserIdentity::new(identity.issuer.clone(), identity.subject.clone());
        user.email = identity
            .email
            .clone()
            .filter(|_| identity.email_verified)
            .map(|e| e.to_ascii_lowercase());
        // The session is bound to the device only if it is this person's: a device enrolled
        // for another owner is not, whoever holds its key.
        let device = self
            .devices
            .device_for(req.client_id.as_ref(), user.email.as_deref());
        let state = self.devices.state(device, req.now);
        user.display_name = identity.name.clone();
        user.groups = identity.groups.clone();
        user.attributes
            .insert(ATTR_PROVIDER.into(), provider.config().name.clone());
        user.attributes.insert(
            ATTR_DEVICE_COMPLIANT.into(),
            state.facts.compliant.to_string(),
        );
        let name = format!("user:{}:{}", provider.config().name, identity.subject);
        let risk = self.risk.risk(&name, req.now);
        let new = NewSession {
            user,
            factors: vec![FactorUse::new("oidc", false, req.now)],
            device_id: device.map(|d| d.to_string()),
            ip: req.source_ip,
            risk,
        };
        let needs_webauthn = self.require_webauthn
            || identity
                .groups
                .iter()
                .any(|g| self.admin_groups.contains(g));
        // A sign-in still missing its passkey is a session of its own kind: it ends soon and
        // takes no completed session's place.
        let created = if needs_webauthn {
            self.sessions
                .create_awaiting_second_factor(new, jar.session(), req.now)
        } else {
            self.sessions.create(new, jar.session(), req.now)
        };
        let (token, _) = match created {
            Ok(created) => created,
            Err(e) => {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "session_unavailable",
                    &e.to_string(),
                );
            }
        };
        let next = if needs_webauthn {
            tenet_gateway_auth_path("mfa", &completed.return_to)
        } else {
            completed.return_to.clone()
        };
        let recorded = self
            .record(
                req.now,
                AuthenticationEvent {
                    activity: "logon".into(),
                    user: name,
                    provider: Some(provider.config().name.clone()),
                    factor: Some("oidc".into()),
                    success: true,
                    reason: if needs_webauthn {
                        "second factor pending".into()
                    } else {
                        "signed in".into()
                    },
                    source_ip: req.source_ip,
                    device: device.map(|d| d.to_string()),
                    request_id: Some(req.request_id.clone()),
                },
            )
            .await;
        if !recorded {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the sign-in could not be recorded",
            );
        }
        let mut answer = see_other(&next);
        add_cookie(
            &mut answer,
            &tenet_session::session_set_cookie(token.as_str()),
        );
        add_cookie(&mut answer, &tenet_session::login_clear_cookie());
        answer
    }

    pub(super) async fn logout(&self, req: &AuthRequest, jar: &CookieJar) -> Answer {
        if !Self::same_origin(req) {
            return error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "request not from this site",
            );
        }
        if let Some(cookie) = jar.session()
            && let Some(handle) = tenet_session::Handle::of_text(cookie)
        {
            let name = self.sessions.get(&handle).map(|s| Self::person_name(&s));
            if let Ok(true) = self.sessions.revoke(&handle, req.now) {
                self.record(
                    req.now,
                    AuthenticationEvent {
                        activity: "logoff".into(),
                        user: name.unwrap_or_else(|| "unknown".into()),
                        provider: None,
                        factor: None,
                        success: true,
                        reason: "signed out".into(),
                        source_ip: req.source_ip,
                        device: None,
                        request_id: Some(req.request_id.clone()),
                    },
                )
                .await;
            }
        }
        let mut answer = json(StatusCode::OK, br#"{"signed_out":true}"#.to_vec());
        add_cookie(&mut answer, &tenet_session::session_clear_cookie());
        answer
    }
}
