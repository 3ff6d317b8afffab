//! The session store: creation at login, lookup with timeouts, rotation, revocation, bounds.
//!
//! Sessions live in memory behind a mutex; with a file configured, every change that matters
//! for security (create, rotate, revoke, state change) is written before the call returns.
//! `touch` only marks the store dirty; [`SessionStore::flush`] writes it (the gateway calls it
//! periodically), so the file's `last_seen` can lag, which only makes idle expiry after a
//! restart earlier, never later.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::evaluate::Verdict;
use crate::persist::{self, EndCause, FILE_VERSION, StoreFile, StoreFileError, Tombstone};
use crate::session::{FactorUse, NewSession, Origin, Reason, Session, SessionState, UserIdentity};
use crate::token::{Handle, Token};

/// Timeouts and bounds of a [`SessionStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// A session unused for this long ends.
    pub idle_timeout: Duration,
    /// A session ends this long after sign-in, however busy.
    pub absolute_timeout: Duration,
    /// The most sessions kept; the oldest is evicted past it.
    pub max_sessions: usize,
    /// The most sessions one person (issuer + subject) keeps; their oldest is evicted past it.
    /// Sessions still waiting for their second factor are counted apart: a person keeps up to
    /// this many of those too, and they never take the place of completed sessions.
    pub max_sessions_per_user: usize,
    /// A session still waiting for its second factor this long after sign-in ends.
    pub second_factor_timeout: Duration,
}

impl Default for SessionLimits {
    /// 30 minutes idle, 12 hours absolute, 100 000 sessions, 10 per person, 10 minutes to give
    /// the second factor.
    fn default() -> Self {
        Self {
            idle_timeout: Duration::minutes(30),
            absolute_timeout: Duration::hours(12),
            max_sessions: 100_000,
            max_sessions_per_user: 10,
            second_factor_timeout: Duration::minutes(10),
        }
    }
}

/// Why a session id was refused or an operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The presented value is not a well-formed session id.
    #[error("presented session id is malformed")]
    Malformed,
    /// No such session (never existed, or expired and forgotten).
    #[error("session {handle} is unknown")]
    Unknown {
        /// The handle of the presented id.
        handle: Handle,
    },
    /// The session was unused for longer than the idle timeout.
    #[error("session {handle} expired after being idle for {idle}")]
    IdleExpired {
        /// The session.
        handle: Handle,
        /// How long it had been idle.
        idle: Duration,
    },
    /// The session is older than the absolute timeout.
    #[error("session {handle} expired at the absolute timeout (age {age})")]
    AbsoluteExpired {
        /// The session.
        handle: Handle,
        /// Its age.
        age: Duration,
    },
    /// The session was still waiting for its second factor when its time for it ran out.
    #[error("session {handle} ended: its second factor was not given in time (age {age})")]
    SecondFactorExpired {
        /// The session.
        handle: Handle,
        /// Its age.
        age: Duration,
    },
    /// The id was revoked, rotated away, ended or evicted.
    #[error("session {handle} is no longer valid ({cause})")]
    Revoked {
        /// The session id's handle.
        handle: Handle,
        /// Why it stopped working.
        cause: EndCause,
        /// Whose session it was, when known (issuer, subject and attributes only).
        user: Option<Box<UserIdentity>>,
    },
    /// The session is bound to another device than the request's.
    #[error("session {handle} is bound to device '{bound}', request came from {presented:?}")]
    DeviceMismatch {
        /// The session.
        handle: Handle,
        /// The device it is bound to.
        bound: String,
        /// The request's device, if any.
        presented: Option<String>,
    },
    /// The limits are unusable.
    #[error("invalid session limits: {0}")]
    InvalidLimits(&'static str),
    /// The store's file could not be read or written.
    #[error(transparent)]
    File(#[from] StoreFileError),
}

/// Whose sessions to revoke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserSelector {
    /// By subject, at one issuer or (with `None`) at any.
    Subject {
        /// The issuer, or `None` for every issuer.
        issuer: Option<String>,
        /// The subject.
        subject: String,
    },
    /// By e-mail address, compared without regard to ASCII case.
    Email(String),
}

impl UserSelector {
    fn matches(&self, s: &Session) -> bool {
        match self {
            UserSelector::Subject { issuer, subject } => {
                s.user.subject == *subject && issuer.as_ref().is_none_or(|i| *i == s.user.issuer)
            }
            UserSelector::Email(email) => s
                .user
                .email
                .as_ref()
                .is_some_and(|e| e.eq_ignore_ascii_case(email)),
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    sessions: HashMap<Handle, Session>,
    tombstones: HashMap<Handle, Tombstone>,
    dirty: bool,
}

/// The thread-safe store of people's sessions.
#[derive(Debug)]
pub struct SessionStore {
    limits: SessionLimits,
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

impl SessionStore {
    /// A store kept in memory only.
    pub fn in_memory(limits: SessionLimits) -> Result<Self, SessionError> {
        validate(&limits)?;
        Ok(Self {
            limits,
            path: None,
            inner: Mutex::new(Inner::default()),
        })
    }

    /// A store persisted to `path`, loading what it holds (a missing file is an empty store;
    /// a corrupt one is an error naming it). Sessions expired at `now` are dropped.
    pub fn open(
        path: &Path,
        limits: SessionLimits,
        now: OffsetDateTime,
    ) -> Result<Self, SessionError> {
        validate(&limits)?;
        let mut inner = Inner::default();
        if let Some(file) = persist::load(path)? {
            inner = from_file(path, file)?;
        }
        let store = Self {
            limits,
            path: Some(path.to_owned()),
            inner: Mutex::new(inner),
        };
        {
            let mut inner = store.lock();
            let dropped = store.purge(&mut inner, now);
            let sessions = inner.sessions.len();
            tracing::debug!(file = %path.display(), sessions, dropped, "session store loaded");
        }
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // INVARIANT: no code path panics while holding the lock, so the data stays consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a session at login. The id is always new: a session id the browser presented
    /// before login (`replacing`) is never adopted; if it names a live session, that session
    /// is ended.
    pub fn create(
        &self,
        new: NewSession,
        replacing: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(Token, Session), SessionError> {
        self.insert_new(new, replacing, SessionState::Active, now)
    }

    /// Creates a session at login, like [`SessionStore::create`], for a sign-in that still
    /// needs its second factor: the session is [`SessionState::SecondFactorPending`] until a
    /// phishing-resistant factor is added ([`SessionStore::add_factor`]), and ends if that has
    /// not happened within the limits' `second_factor_timeout`. Until then it takes no
    /// completed session's place: a person's waiting sessions are capped apart from their
    /// completed ones, and the overall cap evicts waiting sessions first.
    pub fn create_awaiting_second_factor(
        &self,
        new: NewSession,
        replacing: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(Token, Session), SessionError> {
        let until = now + self.limits.second_factor_timeout;
        let state = SessionState::SecondFactorPending { until };
        self.insert_new(new, replacing, state, now)
    }

    fn insert_new(
        &self,
        new: NewSession,
        replacing: Option<&str>,
        state: SessionState,
        now: OffsetDateTime,
    ) -> Result<(Token, Session), SessionError> {
        let mut inner = self.lock();
        if let Some(old) = replacing.and_then(Handle::of_text)
            && let Some(replaced) = inner.sessions.remove(&old)
        {
            tracing::info!(session = %old, "pre-login session replaced at login");
            self.bury(&mut inner, &replaced, old, EndCause::Replaced, now);
        }
        self.purge(&mut inner, now);
        let pending = matches!(state, SessionState::SecondFactorPending { .. });
        let person = (new.user.issuer.as_str(), new.user.subject.as_str());
        self.make_room_for_person(&mut inner, person, pending, None, now);
        self.make_room_overall(&mut inner, now);

        let token = fresh_token(&inner);
        let origin = Origin::of(new.ip);
        let session = Session {
            handle: token.handle(),
            user: new.user,
            factors: new.factors,
            device_id: new.device_id,
            created: now,
            last_seen: now,
            started_from: origin,
            last_from: origin,
            risk: new.risk.min(100),
            state,
        };
        inner
            .sessions
            .insert(session.handle.clone(), session.clone());
        self.save(&mut inner)?;
        let subject = &session.user.subject;
        tracing::debug!(session = %session.handle, %subject, "session created");
        Ok((token, session))
    }

    /// The session for a cookie value, if live, not expired, and bound to `device` (when the
    /// session is bound to a device, a request without that device is refused).
    pub fn lookup(
        &self,
        presented: &str,
        device: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<Session, SessionError> {
        let mut inner = self.lock();
        let handle = self.live(&mut inner, presented, now)?;
        let session = inner
            .sessions
            .get(&handle)
            .ok_or(SessionError::Unknown { handle })?;
        if let Some(bound) = &session.device_id
            && device != Some(bound.as_str())
        {
            let err = SessionError::DeviceMismatch {
                handle: session.handle.clone(),
                bound: bound.clone(),
                presented: device.map(str::to_owned),
            };
            tracing::info!(session = %session.handle, error = %err, "session refused");
            return Err(err);
        }
        Ok(session.clone())
    }

    /// Records a use of the session: time, source address and current risk.
    pub fn touch(
        &self,
        presented: &str,
        ip: IpAddr,
        risk: u8,
        now: OffsetDateTime,
    ) -> Result<Session, SessionError> {
        self.update(presented, now, |s| {
            s.last_seen = now;
            s.last_from = Origin::of(ip);
            s.risk = risk.min(100);
        })
    }

    /// Gives the session a new id; the old id is refused afterwards.
    pub fn rotate(
        &self,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<(Token, Session), SessionError> {
        let mut inner = self.lock();
        let old = self.live(&mut inner, presented, now)?;
        let rotated = self.rotate_locked(&mut inner, &old, now)?;
        self.save(&mut inner)?;
        Ok(rotated)
    }

    /// Adds a factor the person just used. This always rotates the id (the session gained
    /// privilege); a phishing-resistant factor also clears a pending step-up and completes a
    /// sign-in waiting for its second factor (the session then counts among the person's
    /// completed sessions, evicting their oldest past the cap).
    pub fn add_factor(
        &self,
        presented: &str,
        factor: FactorUse,
        now: OffsetDateTime,
    ) -> Result<(Token, Session), SessionError> {
        let mut inner = self.lock();
        let handle = self.live(&mut inner, presented, now)?;
        let mut completed = None;
        if let Some(s) = inner.sessions.get_mut(&handle) {
            if factor.phishing_resistant {
                if s.awaits_second_factor() {
                    completed = Some((s.user.issuer.clone(), s.user.subject.clone()));
                }
                s.state = SessionState::Active;
            }
            s.factors.push(factor);
            s.last_seen = now;
        }
        if let Some((issuer, subject)) = &completed {
            let person = (issuer.as_str(), subject.as_str());
            self.make_room_for_person(&mut inner, person, false, Some(&handle), now);
        }
        let rotated = self.rotate_locked(&mut inner, &handle, now)?;
        self.save(&mut inner)?;
        let current = &rotated.1.handle;
        tracing::debug!(session = %current, previous = %handle, "factor added, id rotated");
        Ok(rotated)
    }

    /// Puts the session in [`SessionState::StepUpRequired`].
    pub fn require_step_up(
        &self,
        presented: &str,
        reason: Reason,
        now: OffsetDateTime,
    ) -> Result<Session, SessionError> {
        let session = self.update(presented, now, |s| {
            if s.state == SessionState::Active {
                s.state = SessionState::StepUpRequired {
                    reason: reason.clone(),
                };
            }
        })?;
        tracing::info!(session = %session.handle, reason = %reason, "step-up required");
        self.save(&mut self.lock())?;
        Ok(session)
    }

    /// Applies a verdict of continuous evaluation: a step-up marks the session, an end
    /// revokes it, an allow changes nothing. An end returns the session it ended, so that the
    /// caller records the end once: a concurrent request whose evaluation also called for the
    /// end finds the session ended already ([`SessionError::Revoked`]).
    pub fn apply_verdict(
        &self,
        presented: &str,
        verdict: &Verdict,
        now: OffsetDateTime,
    ) -> Result<Option<Session>, SessionError> {
        match verdict {
            Verdict::Allow => self.live(&mut self.lock(), presented, now).map(|_| None),
            Verdict::StepUp { reason } => self
                .require_step_up(presented, reason.clone(), now)
                .map(|_| None),
            Verdict::End { reason } => {
                let mut inner = self.lock();
                let handle = self.live(&mut inner, presented, now)?;
                let ended = inner
                    .sessions
                    .remove(&handle)
                    .ok_or(SessionError::Unknown {
                        handle: handle.clone(),
                    })?;
                self.bury(&mut inner, &ended, handle.clone(), EndCause::Ended, now);
                tracing::info!(session = %handle, reason = %reason, "session ended by evaluation");
                self.save(&mut inner)?;
                Ok(Some(ended))
            }
        }
    }

    /// Revokes one session by handle. Returns whether it existed.
    pub fn revoke(&self, handle: &Handle, now: OffsetDateTime) -> Result<bool, SessionError> {
        self.revoke_where(now, EndCause::Revoked, |s| s.handle == *handle)
            .map(|ended| !ended.is_empty())
    }

    /// Revokes every session of a person. Returns the sessions revoked.
    pub fn revoke_user(
        &self,
        who: &UserSelector,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, SessionError> {
        self.revoke_where(now, EndCause::Revoked, |s| who.matches(s))
    }

    /// Puts every active session of a person in step-up (a response action: the person must
    /// confirm with a fresh phishing-resistant factor). Returns how many sessions changed.
    pub fn require_step_up_user(
        &self,
        who: &UserSelector,
        reason: &Reason,
        now: OffsetDateTime,
    ) -> Result<usize, SessionError> {
        let mut inner = self.lock();
        self.purge(&mut inner, now);
        let mut changed = 0;
        for s in inner.sessions.values_mut().filter(|s| who.matches(s)) {
            if s.state == SessionState::Active {
                s.state = SessionState::StepUpRequired {
                    reason: reason.clone(),
                };
                changed += 1;
                tracing::info!(session = %s.handle, %reason, "step-up required");
            }
        }
        if changed > 0 {
            self.save(&mut inner)?;
        }
        Ok(changed)
    }

    /// Revokes every session bound to a device (the device was revoked): a later request
    /// with one of them is refused as [`EndCause::DeviceRevoked`]. Returns the sessions
    /// revoked.
    pub fn revoke_device(
        &self,
        device_id: &str,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, SessionError> {
        self.revoke_where(now, EndCause::DeviceRevoked, |s| {
            s.device_id.as_deref() == Some(device_id)
        })
    }

    /// Every session held, oldest first.
    pub fn list(&self) -> Vec<Session> {
        let mut all: Vec<Session> = self.lock().sessions.values().cloned().collect();
        all.sort_by(|a, b| {
            a.created
                .cmp(&b.created)
                .then_with(|| a.handle.cmp(&b.handle))
        });
        all
    }

    /// One session by handle, whatever its state.
    pub fn get(&self, handle: &Handle) -> Option<Session> {
        self.lock().sessions.get(handle).cloned()
    }

    /// How many sessions are held.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops expired sessions and forgotten tombstones. Returns how many sessions went.
    pub fn purge_expired(&self, now: OffsetDateTime) -> Result<usize, SessionError> {
        let mut inner = self.lock();
        let n = self.purge(&mut inner, now);
        if n > 0 {
            self.save(&mut inner)?;
        }
        Ok(n)
    }

    /// Writes the file if anything changed since the last write (touches included).
    pub fn flush(&self) -> Result<(), SessionError> {
        let mut inner = self.lock();
        if inner.dirty {
            self.save(&mut inner)
        } else {
            Ok(())
        }
    }

    fn update(
        &self,
        presented: &str,
        now: OffsetDateTime,
        change: impl FnOnce(&mut Session),
    ) -> Result<Session, SessionError> {
        let mut inner = self.lock();
        let handle = self.live(&mut inner, presented, now)?;
        let session = inner
            .sessions
            .get_mut(&handle)
            .ok_or(SessionError::Unknown { handle })?;
        change(session);
        let session = session.clone();
        inner.dirty = true;
        Ok(session)
    }

    /// The handle of a live session for a presented id, ending it if it has expired.
    fn live(
        &self,
        inner: &mut Inner,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<Handle, SessionError> {
        let result = self.check_live(inner, presented, now);
        if let Err(err) = &result {
            tracing::info!(error = %err, "session refused");
        }
        result
    }

    fn check_live(
        &self,
        inner: &mut Inner,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<Handle, SessionError> {
        let handle = Handle::of_text(presented).ok_or(SessionError::Malformed)?;
        if let Some(t) = inner.tombstones.get(&handle).filter(|t| t.until > now) {
            return Err(SessionError::Revoked {
                handle,
                cause: t.cause,
                user: t.user.clone().map(Box::new),
            });
        }
        let Some(session) = inner.sessions.get(&handle) else {
            return Err(SessionError::Unknown { handle });
        };
        let age = now - session.created;
        let idle = now - session.last_seen;
        let err = if age >= self.limits.absolute_timeout {
            SessionError::AbsoluteExpired {
                handle: handle.clone(),
                age,
            }
        } else if second_factor_overdue(session, now) {
            SessionError::SecondFactorExpired {
                handle: handle.clone(),
                age,
            }
        } else if idle >= self.limits.idle_timeout {
            SessionError::IdleExpired {
                handle: handle.clone(),
                idle,
            }
        } else {
            return Ok(handle);
        };
        inner.sessions.remove(&handle);
        inner.dirty = true;
        Err(err)
    }

    fn rotate_locked(
        &self,
        inner: &mut Inner,
        old: &Handle,
        now: OffsetDateTime,
    ) -> Result<(Token, Session), SessionError> {
        let mut session = inner.sessions.remove(old).ok_or(SessionError::Unknown {
            handle: old.clone(),
        })?;
        let token = fresh_token(inner);
        self.bury(inner, &session, old.clone(), EndCause::Rotated, now);
        session.handle = token.handle();
        session.last_seen = now;
        inner
            .sessions
            .insert(session.handle.clone(), session.clone());
        Ok((token, session))
    }

    fn revoke_where(
        &self,
        now: OffsetDateTime,
        cause: EndCause,
        pick: impl Fn(&Session) -> bool,
    ) -> Result<Vec<Session>, SessionError> {
        let mut inner = self.lock();
        let doomed: Vec<Handle> = inner
            .sessions
            .values()
            .filter(|s| pick(s))
            .map(|s| s.handle.clone())
            .collect();
        let mut ended = Vec::with_capacity(doomed.len());
        for handle in doomed {
            if let Some(session) = inner.sessions.remove(&handle) {
                self.bury(&mut inner, &session, handle.clone(), cause, now);
                tracing::info!(session = %handle, %cause, "session revoked");
                ended.push(session);
            }
        }
        if !ended.is_empty() {
            self.save(&mut inner)?;
        }
        Ok(ended)
    }

    /// Remembers that an id ended, until no session created with it could still be valid.
    fn bury(
        &self,
        inner: &mut Inner,
        ended: &Session,
        handle: Handle,
        cause: EndCause,
        now: OffsetDateTime,
    ) {
        if inner.tombstones.len() >= self.limits.max_sessions {
            inner.tombstones.retain(|_, t| t.until > now);
        }
        if inner.tombstones.len() >= self.limits.max_sessions {
            let oldest = inner
                .tombstones
                .values()
                .min_by_key(|t| t.until)
                .map(|t| t.handle.clone());
            if let Some(oldest) = oldest {
                inner.tombstones.remove(&oldest);
            }
        }
        let until = now + self.limits.absolute_timeout;
        inner.tombstones.insert(
            handle.clone(),
            Tombstone {
                handle,
                cause,
                until,
                user: Some(whose(&ended.user)),
            },
        );
        inner.dirty = true;
    }

    fn purge(&self, inner: &mut Inner, now: OffsetDateTime) -> usize {
        let limits = self.limits;
        let before = inner.sessions.len();
        inner.sessions.retain(|_, s| {
            now - s.created < limits.absolute_timeout
                && now - s.last_seen < limits.idle_timeout
                && !second_factor_overdue(s, now)
        });
        inner.tombstones.retain(|_, t| t.until > now);
        let dropped = before - inner.sessions.len();
        if dropped > 0 {
            inner.dirty = true;
        }
        dropped
    }

    /// Evicts the person's oldest sessions of one kind (waiting for their second factor, or
    /// completed) so that one more of that kind fits within the per-person cap; `joining` is
    /// a session already held that is becoming one of that kind.
    fn make_room_for_person(
        &self,
        inner: &mut Inner,
        (issuer, subject): (&str, &str),
        pending: bool,
        joining: Option<&Handle>,
        now: OffsetDateTime,
    ) {
        let same_kind = |s: &Session| {
            s.user.issuer == issuer
                && s.user.subject == subject
                && s.awaits_second_factor() == pending
                && Some(&s.handle) != joining
        };
        let cap = if pending {
            "per-user cap of sessions awaiting a second factor"
        } else {
            "per-user cap"
        };
        while inner.sessions.values().filter(|s| same_kind(s)).count()
            >= self.limits.max_sessions_per_user
        {
            if !self.evict_oldest(inner, now, cap, same_kind) {
                break;
            }
        }
    }

    /// Evicts sessions so that one more fits within the overall cap: the oldest of those
    /// waiting for their second factor first, completed ones only when none waits.
    fn make_room_overall(&self, inner: &mut Inner, now: OffsetDateTime) {
        while inner.sessions.len() >= self.limits.max_sessions {
            if !self.evict_oldest(inner, now, "overall cap", Session::awaits_second_factor)
                && !self.evict_oldest(inner, now, "overall cap", |_| true)
            {
                break;
            }
        }
    }

    fn evict_oldest(
        &self,
        inner: &mut Inner,
        now: OffsetDateTime,
        why: &'static str,
        pick: impl Fn(&Session) -> bool,
    ) -> bool {
        let oldest = inner
            .sessions
            .values()
            .filter(|s| pick(s))
            .min_by_key(|s| s.created)
            .map(|s| s.handle.clone());
        let Some(handle) = oldest else { return false };
        let Some(evicted) = inner.sessions.remove(&handle) else {
            return false;
        };
        let subject = &evicted.user.subject;
        tracing::info!(session = %handle, %subject, cap = why, "session evicted");
        self.bury(inner, &evicted, handle, EndCause::Evicted, now);
        true
    }

    fn save(&self, inner: &mut Inner) -> Result<(), SessionError> {
        let Some(path) = &self.path else {
            inner.dirty = false;
            return Ok(());
        };
        let file = StoreFile {
            version: FILE_VERSION,
            sessions: inner.sessions.values().cloned().collect(),
            tombstones: inner.tombstones.values().cloned().collect(),
        };
        persist::save(path, &file)?;
        inner.dirty = false;
        Ok(())
    }
}

fn validate(limits: &SessionLimits) -> Result<(), SessionError> {
    if limits.idle_timeout <= Duration::ZERO || limits.absolute_timeout <= Duration::ZERO {
        return Err(SessionError::InvalidLimits("timeouts must be positive"));
    }
    if limits.idle_timeout > limits.absolute_timeout {
        return Err(SessionError::InvalidLimits(
            "idle timeout exceeds absolute timeout",
        ));
    }
    if limits.second_factor_timeout <= Duration::ZERO {
        return Err(SessionError::InvalidLimits(
            "the second factor timeout must be positive",
        ));
    }
    if limits.max_sessions == 0 || limits.max_sessions_per_user == 0 {
        return Err(SessionError::InvalidLimits(
            "session caps must be at least 1",
        ));
    }
    Ok(())
}

/// What a tombstone keeps of the person whose session ended: who (issuer and subject) and
/// the attributes naming how they signed in, never their e-mail, name or groups.
fn whose(user: &UserIdentity) -> UserIdentity {
    UserIdentity {
        attributes: user.attributes.clone(),
        ..UserIdentity::new(user.issuer.clone(), user.subject.clone())
    }
}

/// Whether the session still waits for its second factor past its time for it.
fn second_factor_overdue(session: &Session, now: OffsetDateTime) -> bool {
    matches!(session.state, SessionState::SecondFactorPending { until } if now >= until)
}

fn fresh_token(inner: &Inner) -> Token {
    loop {
        let token = Token::generate();
        let handle = token.handle();
        if !inner.sessions.contains_key(&handle) && !inner.tombstones.contains_key(&handle) {
            return token;
        }
    }
}

fn from_file(path: &Path, file: StoreFile) -> Result<Inner, SessionError> {
    let mut inner = Inner::default();
    for session in file.sessions {
        let handle = session.handle.clone();
        if inner.sessions.insert(handle.clone(), session).is_some() {
            return Err(StoreFileError::DuplicateSession {
                path: path.to_owned(),
                handle,
            }
            .into());
        }
    }
    for t in file.tombstones {
        inner.tombstones.insert(t.handle.clone(), t);
    }
    Ok(inner)
}
