//! Second factors in the browser: the WebAuthn page and ceremonies, TOTP and recovery codes.

use super::*;

impl SignIn {
    pub(super) fn mfa_page(&self, req: &AuthRequest, query: &str, jar: &CookieJar) -> Answer {
        let device = self
            .device_of(req.client_id.as_ref())
            .map(|d| d.to_string());
        let Some(session) = self.session_of(jar, req.now, device.as_deref()) else {
            let rd = self.return_path(query).unwrap_or_else(|_| "/".to_owned());
            return see_other(&tenet_gateway_auth_path("login", &rd));
        };
        let rd = match self.return_path(query) {
            Ok(rd) => rd,
            Err(e) => return error(StatusCode::BAD_REQUEST, "bad_return_path", &e),
        };
        let has_credentials = self
            .lock_factors()
            .user(&Self::user_key(&session))
            .is_some_and(|u| !u.credentials().is_empty());
        let who = session
            .user
            .email
            .clone()
            .unwrap_or_else(|| session.user.subject.clone());
        pages::mfa(
            &who,
            &rd,
            if has_credentials {
                "authenticate"
            } else {
                "register"
            },
        )
    }

    pub(super) fn lock_factors(&self) -> std::sync::MutexGuard<'_, FactorStore> {
        self.factors.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn lock_ceremonies(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, (OffsetDateTime, Ceremony)>> {
        self.ceremonies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// A browser POST must come from the gateway's own origin (CSRF).
    pub(super) fn same_origin(req: &AuthRequest) -> bool {
        let expected = if req.port == 443 {
            format!("https://{}", req.host)
        } else {
            format!("https://{}:{}", req.host, req.port)
        };
        req.headers
            .get(header::ORIGIN)
            .is_some_and(|o| o.as_bytes().eq_ignore_ascii_case(expected.as_bytes()))
    }

    pub(super) fn ceremony_begin(
        &self,
        req: &AuthRequest,
        jar: &CookieJar,
        register: bool,
    ) -> Answer {
        let (_, session, _) = match self.browser_session(req, jar) {
            Ok(found) => found,
            Err(answer) => return *answer,
        };
        let key = Self::user_key(&session);
        let mut factors = self.lock_factors();
        let user = factors.user_mut(&key);
        let options = if register {
            // A first credential may be registered right after the provider's sign-in; another
            // one only with a passkey verified in the last few minutes (a stolen cookie is not
            // enough), or right after redeeming a recovery code (the passkey was lost).
            let first = user.credentials().is_empty();
            if !first
                && !recently(&session, req.now, |f| f.phishing_resistant)
                && !recently(&session, req.now, |f| f.name == "recovery")
            {
                return error(
                    StatusCode::FORBIDDEN,
                    "step_up_required",
                    "confirm with an existing passkey (or a recovery code) to add another",
                );
            }
            let account = UserAccount {
                name: session
                    .user
                    .email
                    .clone()
                    .unwrap_or_else(|| session.user.subject.clone()),
                display_name: session
                    .user
                    .display_name
                    .clone()
                    .unwrap_or_else(|| session.user.subject.clone()),
            };
            match self
                .rp
                .start_registration(user, &account, CredentialKind::Passkey, req.now)
            {
                Ok((challenge, pending)) => {
                    self.keep_ceremony(&session, Ceremony::Register(Box::new(pending)), req.now);
                    serde_json::to_vec(&challenge)
                }
                Err(e) => return error(StatusCode::BAD_REQUEST, "webauthn", &e.to_string()),
            }
        } else {
            match self.rp.start_authentication(user, req.now) {
                Ok((challenge, pending)) => {
                    self.keep_ceremony(
                        &session,
                        Ceremony::Authenticate(Box::new(pending)),
                        req.now,
                    );
                    serde_json::to_vec(&challenge)
                }
                Err(e) => return error(StatusCode::BAD_REQUEST, "webauthn", &e.to_string()),
            }
        };
        match options {
            Ok(body) => json(StatusCode::OK, body),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &e.to_string(),
            ),
        }
    }

    /// A browser POST from this site with a valid session (whatever its state): the session
    /// id, the session, and the device the browser presented. Otherwise the refusal.
    pub(super) fn browser_session(
        &self,
        req: &AuthRequest,
        jar: &CookieJar,
    ) -> Result<(String, Session, Option<String>), Box<Answer>> {
        if !Self::same_origin(req) {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "cross_origin",
                "request not from this site",
            )));
        }
        let device = self
            .device_of(req.client_id.as_ref())
            .map(|d| d.to_string());
        match (
            jar.session(),
            self.session_of(jar, req.now, device.as_deref()),
        ) {
            (Some(cookie), Some(session)) => Ok((cookie.to_owned(), session, device)),
            _ => Err(Box::new(error(
                StatusCode::UNAUTHORIZED,
                "sign_in_required",
                "no valid session",
            ))),
        }
    }

    /// Keeps a started ceremony for the session. Ceremonies older than their lifetime (their
    /// session may have ended or moved on) are dropped first; only a table still full of
    /// live ones is emptied.
    pub(super) fn keep_ceremony(&self, session: &Session, ceremony: Ceremony, now: OffsetDateTime) {
        let mut ceremonies = self.lock_ceremonies();
        if ceremonies.len() >= MAX_CEREMONIES {
            ceremonies.retain(|_, (started, _)| now - *started <= CEREMONY_LIFETIME);
        }
        if ceremonies.len() >= MAX_CEREMONIES {
            warn!(
                open = ceremonies.len(),
                "too many WebAuthn ceremonies open; all open ceremonies dropped"
            );
            ceremonies.clear();
        }
        ceremonies.insert(session.handle.as_str().to_owned(), (now, ceremony));
    }

    pub(super) async fn ceremony_finish(&self, req: &AuthRequest, jar: &CookieJar) -> Answer {
        let (cookie, session, device) = match self.browser_session(req, jar) {
            Ok(found) => found,
            Err(answer) => return *answer,
        };
        let cookie = cookie.as_str();
        let Some((_, ceremony)) = self.lock_ceremonies().remove(session.handle.as_str()) else {
            return error(
                StatusCode::BAD_REQUEST,
                "no_ceremony",
                "no WebAuthn ceremony in progress",
            );
        };
        let Ok(body) = std::str::from_utf8(&req.body) else {
            return error(StatusCode::BAD_REQUEST, "bad_body", "the body is not UTF-8");
        };
        let key = Self::user_key(&session);
        let name = Self::person_name(&session);
        let activity = match &ceremony {
            Ceremony::Register(_) => "mfa_register",
            Ceremony::Authenticate(_) => "mfa",
        };
        let event = |success: bool, reason: String| AuthenticationEvent {
            activity: activity.into(),
            user: name.clone(),
            provider: session.user.attributes.get(ATTR_PROVIDER).cloned(),
            factor: Some("webauthn".into()),
            success,
            reason,
            source_ip: req.source_ip,
            device: device.clone(),
            request_id: Some(req.request_id.clone()),
        };
        // tenet-mfa parses the response with serde_json, which keeps the last of two equal
        // keys: a response giving a key twice is refused here, and the ceremony is spent.
        if let Err(refused @ json_body::BodyError::DuplicateKey { .. }) =
            json_body::check(req.body.as_ref())
        {
            self.record(req.now, event(false, refused.to_string()))
                .await;
            return refused.answer("WebAuthn response");
        }
        let malformed;
        let outcome = {
            let mut factors = self.lock_factors();
            let user = factors.user_mut(&key);
            let outcome = match &ceremony {
                // Whether the person was verified (UV) in this ceremony, for the session.
                Ceremony::Register(p) => self
                    .rp
                    .finish_registration(user, p, body, req.now)
                    .map(|credential| credential.user_verified()),
                Ceremony::Authenticate(p) => self
                    .rp
                    .finish_authentication(user, p, body, req.now)
                    .map(|outcome| outcome.factor.user_verified),
            };
            let saved = if outcome.is_ok() {
                factors.save().map_err(|e| e.to_string())
            } else {
                Ok(())
            };
            // A body that is no WebAuthn response at all is the client's mistake (400), not a
            // failed verification (401).
            malformed = matches!(
                outcome,
                Err(tenet_mfa::CeremonyError::MalformedResponse { .. })
            );
            let result = outcome.map_err(|e| e.to_string());
            result.and_then(|verified| saved.map(|()| verified))
        };
        let user_verified = match outcome {
            Ok(user_verified) => user_verified,
            Err(e) => {
                self.record(req.now, event(false, e.clone())).await;
                if malformed {
                    return error(StatusCode::BAD_REQUEST, "bad_body", &e);
                }
                return error(StatusCode::UNAUTHORIZED, "webauthn_failed", &e);
            }
        };
        let (token, _) = match self.sessions.add_factor(
            cookie,
            FactorUse::new("webauthn", true, req.now).with_user_verified(user_verified),
            req.now,
        ) {
            Ok(r) => r,
            Err(e) => return error(StatusCode::UNAUTHORIZED, "sign_in_required", &e.to_string()),
        };
        // The fresh factor vouches for where the person is now: later requests are compared
        // with this address, so a step-up after a network change does not ask again.
        let risk = self.risk.risk(&name, req.now);
        if let Err(e) = self
            .sessions
            .touch(token.as_str(), req.source_ip, risk, req.now)
        {
            warn!(error = %e, "session could not be touched after the factor");
        }
        if !self
            .record(
                req.now,
                event(
                    true,
                    "phishing-resistant factor verified; session id rotated".into(),
                ),
            )
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the sign-in could not be recorded",
            );
        }
        let rd = url::form_urlencoded::parse(
            req.path_and_query
                .split_once('?')
                .map_or("", |(_, q)| q)
                .as_bytes(),
        )
        .find(|(k, _)| k == "rd")
        .map(|(_, v)| v.into_owned())
        .and_then(|rd| match self.return_paths.check(&rd) {
            Ok(ReturnTo::Path(p)) => Some(p),
            _ => None,
        })
        .unwrap_or_else(|| "/".to_owned());
        let body = serde_json::json!({ "redirect": rd }).to_string();
        let mut answer = json(StatusCode::OK, body.into_bytes());
        add_cookie(
            &mut answer,
            &tenet_session::session_set_cookie(token.as_str()),
        );
        debug!(person = %name, "second factor added");
        answer
    }

    /// The session of a browser POST from this site that already proved a phishing-resistant
    /// factor and needs no step-up: the bar for changing a person's factors.
    pub(super) fn strong_session(
        &self,
        req: &AuthRequest,
        jar: &CookieJar,
    ) -> Result<Session, Box<Answer>> {
        let (_, session, _) = self.browser_session(req, jar)?;
        let proven = recently(&session, req.now, |f| f.phishing_resistant);
        if !proven || session.state != SessionState::Active {
            return Err(Box::new(error(
                StatusCode::FORBIDDEN,
                "step_up_required",
                "confirm with your passkey (within the last five minutes) first",
            )));
        }
        Ok(session)
    }

    pub(super) async fn factor_event(
        &self,
        req: &AuthRequest,
        session: &Session,
        activity: &str,
        factor: &str,
        outcome: Result<&str, &str>,
    ) -> bool {
        let (success, reason) = match outcome {
            Ok(r) => (true, r.to_owned()),
            Err(r) => (false, r.to_owned()),
        };
        self.record(
            req.now,
            AuthenticationEvent {
                activity: activity.into(),
                user: Self::person_name(session),
                provider: session.user.attributes.get(ATTR_PROVIDER).cloned(),
                factor: Some(factor.into()),
                success,
                reason,
                source_ip: req.source_ip,
                device: session.device_id.clone(),
                request_id: Some(req.request_id.clone()),
            },
        )
        .await
    }

    /// `POST totp/enrol`: a TOTP secret for an authenticator app (a weaker factor: policy
    /// sees it as `totp`, never as phishing-resistant).
    pub(super) async fn totp_enrol(&self, req: &AuthRequest, jar: &CookieJar) -> Answer {
        let session = match self.strong_session(req, jar) {
            Ok(s) => s,
            Err(answer) => return *answer,
        };
        let account = session
            .user
            .email
            .clone()
            .unwrap_or_else(|| session.user.subject.clone())
            .replace(':', "_");
        let secret = tenet_mfa::TotpEnrolment::generate_secret(&mut rand::rng());
        let setup = {
            let mut factors = self.lock_factors();
            let (enrolment, setup) =
                match tenet_mfa::TotpEnrolment::enrol(secret, "Tenet", &account, req.now) {
                    Ok(pair) => pair,
                    Err(e) => return error(StatusCode::BAD_REQUEST, "totp", &e.to_string()),
                };
            factors.user_mut(&Self::user_key(&session)).totp = Some(enrolment);
            if let Err(e) = factors.save() {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    &e.to_string(),
                );
            }
            setup
        };
        if !self
            .factor_event(req, &session, "mfa_register", "totp", Ok("TOTP enrolled"))
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the enrolment could not be recorded",
            );
        }
        let body =
            serde_json::json!({"secret": setup.secret_base32, "otpauth_url": setup.otpauth_url});
        json(StatusCode::OK, body.to_string().into_bytes())
    }

    /// `POST recovery/generate`: ten single-use recovery codes, shown once (only hashes kept).
    pub(super) async fn recovery_generate(&self, req: &AuthRequest, jar: &CookieJar) -> Answer {
        let session = match self.strong_session(req, jar) {
            Ok(s) => s,
            Err(answer) => return *answer,
        };
        let codes = {
            let mut factors = self.lock_factors();
            let (stored, plain) = tenet_mfa::RecoveryCodes::generate(&mut rand::rng(), 10);
            factors.user_mut(&Self::user_key(&session)).recovery = stored;
            if let Err(e) = factors.save() {
                return error(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    &e.to_string(),
                );
            }
            plain
        };
        if !self
            .factor_event(
                req,
                &session,
                "mfa_register",
                "recovery",
                Ok("recovery codes generated"),
            )
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the change could not be recorded",
            );
        }
        json(
            StatusCode::OK,
            serde_json::json!({"codes": codes}).to_string().into_bytes(),
        )
    }

    /// `POST totp/verify` or `recovery/redeem` with `{"code": ...}`: a weaker factor added to
    /// the session (new id). It does not satisfy a step-up; a recovery code lets the person
    /// register a new passkey for ten minutes.
    pub(super) async fn weak_factor(
        &self,
        req: &AuthRequest,
        jar: &CookieJar,
        totp: bool,
    ) -> Answer {
        let (cookie, session, _) = match self.browser_session(req, jar) {
            Ok(found) => found,
            Err(answer) => return *answer,
        };
        let cookie = cookie.as_str();
        let expected = "the body must be {\"code\": \"...\"}";
        let body = match json_body::parse::<serde_json::Value>(&req.body) {
            Ok(body) => body,
            Err(e) => return e.answer(expected),
        };
        let Some(code) = body.get("code").and_then(serde_json::Value::as_str) else {
            return error(StatusCode::BAD_REQUEST, "bad_body", expected);
        };
        let code = code.to_owned();
        let name = if totp { "totp" } else { "recovery" };
        let person = Self::user_key(&session);
        if !self.factor_failures.allows(&person, req.now) {
            self.factor_event(req, &session, "mfa", name, Err("too many failed codes"))
                .await;
            return error(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                "too many wrong codes; try again in 15 minutes",
            );
        }
        let outcome = {
            let mut factors = self.lock_factors();
            let user = factors.user_mut(&Self::user_key(&session));
            let checked = if totp {
                match user.totp.as_mut() {
                    Some(t) => t
                        .verify(&code, req.now)
                        .map(drop)
                        .map_err(|e| e.to_string()),
                    None => Err("no TOTP enrolled".to_owned()),
                }
            } else {
                user.recovery
                    .redeem(&code, req.now)
                    .map(drop)
                    .map_err(|e| e.to_string())
            };
            // The used step or code must be stored before the factor counts (no replay).
            checked.and_then(|()| factors.save().map_err(|e| e.to_string()))
        };
        if let Err(e) = outcome {
            self.factor_failures.count(&person, req.now);
            self.factor_event(req, &session, "mfa", name, Err(&e)).await;
            return error(StatusCode::UNAUTHORIZED, "factor_failed", &e);
        }
        self.factor_failures.clear(&person);
        let (token, _) =
            match self
                .sessions
                .add_factor(cookie, FactorUse::new(name, false, req.now), req.now)
            {
                Ok(r) => r,
                Err(e) => {
                    return error(StatusCode::UNAUTHORIZED, "sign_in_required", &e.to_string());
                }
            };
        if !self
            .factor_event(
                req,
                &session,
                "mfa",
                name,
                Ok("weaker factor verified; session id rotated"),
            )
            .await
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the factor could not be recorded",
            );
        }
        let mut answer = json(
            StatusCode::OK,
            serde_json::json!({"factor": name}).to_string().into_bytes(),
        );
        add_cookie(
            &mut answer,
            &tenet_session::session_set_cookie(token.as_str()),
        );
        answer
    }
}

/// How long a started WebAuthn ceremony is kept (the relying party refuses it after five
/// minutes anyway).
const CEREMONY_LIFETIME: time::Duration = time::Duration::minutes(5);

/// How recent a factor must be to change a person's factors.
const FACTOR_CHANGE_WINDOW: time::Duration = time::Duration::minutes(5);

/// Whether the session used a factor that `pick` accepts within [`FACTOR_CHANGE_WINDOW`].
fn recently(session: &Session, now: OffsetDateTime, pick: impl Fn(&FactorUse) -> bool) -> bool {
    session
        .factors
        .iter()
        .any(|f| pick(f) && now - f.at <= FACTOR_CHANGE_WINDOW)
}
