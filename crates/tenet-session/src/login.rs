//! Login transactions: the state kept between sending a person to the identity provider and
//! the provider's callback.
//!
//! Each transaction is keyed by the OAuth `state` and bound to the browser that started it by
//! a separate random cookie ([`crate::LOGIN_COOKIE`]) of which only the SHA-256 is kept. A
//! callback must present both. A transaction is single use: the first callback consumes it,
//! even one that then fails, so a state cannot be replayed.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::token::{Handle, Token};

/// How long a login transaction lives.
pub const LOGIN_TTL: Duration = Duration::minutes(10);

/// The longest `state` accepted.
pub const MAX_STATE_LEN: usize = 512;

/// Why a login transaction could not be started or completed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoginError {
    /// The `state` is empty, too long or not printable ASCII.
    #[error("login state is malformed")]
    MalformedState,
    /// A transaction with this `state` already exists.
    #[error("login state is already in use")]
    StateInUse,
    /// No transaction has this `state`.
    #[error("login state is unknown")]
    UnknownState,
    /// The transaction was already consumed by an earlier callback.
    #[error("login state was already used")]
    AlreadyUsed,
    /// The transaction is older than its lifetime.
    #[error("login transaction expired")]
    Expired,
    /// The callback came without the login binding cookie.
    #[error("login binding cookie is missing")]
    MissingBinding,
    /// The callback's binding cookie belongs to another login.
    #[error("login binding cookie does not match the login state")]
    BindingMismatch,
}

/// What the gateway gets back when it starts a login.
#[derive(Debug)]
pub struct LoginStarted {
    /// The value for the login binding cookie (see [`crate::login_set_cookie`]).
    pub binding: Token,
    /// When the transaction expires.
    pub expires: OffsetDateTime,
}

/// What a successful callback gets back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedLogin {
    /// The opaque payload stored at the start (the OIDC client's pending login).
    pub payload: String,
    /// Where to send the person after login, as checked when the login started.
    pub return_to: String,
}

#[derive(Debug)]
struct Pending {
    binding: Handle,
    payload: String,
    return_to: String,
    expires: OffsetDateTime,
}

#[derive(Debug, Default)]
struct Inner {
    pending: HashMap<String, Pending>,
    used: HashMap<String, OffsetDateTime>,
}

/// The bounded, thread-safe store of login transactions.
#[derive(Debug)]
pub struct LoginTransactions {
    max: usize,
    inner: Mutex<Inner>,
}

impl LoginTransactions {
    /// A store holding at most `max` transactions (at least 1); past that the oldest goes.
    pub fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // INVARIANT: no code path panics while holding the lock.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a transaction for `state`, returning the binding cookie value.
    pub fn begin(
        &self,
        state: &str,
        payload: String,
        return_to: String,
        now: OffsetDateTime,
    ) -> Result<LoginStarted, LoginError> {
        check_state(state)?;
        let mut inner = self.lock();
        prune(&mut inner, now);
        if inner.pending.contains_key(state) || inner.used.contains_key(state) {
            return Err(refused(LoginError::StateInUse));
        }
        self.make_room(&mut inner);
        let binding = Token::generate();
        let expires = now + LOGIN_TTL;
        let pending = Pending {
            binding: binding.handle(),
            payload,
            return_to,
            expires,
        };
        inner.pending.insert(state.to_owned(), pending);
        tracing::debug!("login transaction started");
        Ok(LoginStarted { binding, expires })
    }

    /// Consumes the transaction for `state`, checking the binding cookie. The transaction is
    /// gone afterwards whatever the outcome.
    pub fn consume(
        &self,
        state: &str,
        binding_cookie: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<CompletedLogin, LoginError> {
        let mut inner = self.lock();
        let Some(pending) = inner.pending.remove(state) else {
            let err = if inner.used.contains_key(state) {
                LoginError::AlreadyUsed
            } else {
                LoginError::UnknownState
            };
            return Err(refused(err));
        };
        if inner.used.len() >= self.max.saturating_mul(2) {
            prune(&mut inner, now);
        }
        if inner.used.len() < self.max.saturating_mul(2) {
            inner.used.insert(state.to_owned(), pending.expires);
        }
        drop(inner);
        check_pending(&pending, binding_cookie, now).map_err(refused)?;
        tracing::debug!("login transaction completed");
        Ok(CompletedLogin {
            payload: pending.payload,
            return_to: pending.return_to,
        })
    }

    /// How many transactions are pending.
    pub fn len(&self) -> usize {
        self.lock().pending.len()
    }

    /// Whether none is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn make_room(&self, inner: &mut Inner) {
        while inner.pending.len() >= self.max {
            let oldest = inner
                .pending
                .iter()
                .min_by_key(|(_, p)| p.expires)
                .map(|(s, _)| s.clone());
            let Some(oldest) = oldest else { break };
            inner.pending.remove(&oldest);
            tracing::info!(cap = self.max, "login transaction evicted");
        }
    }
}

fn check_pending(
    pending: &Pending,
    binding_cookie: Option<&str>,
    now: OffsetDateTime,
) -> Result<(), LoginError> {
    if now >= pending.expires {
        return Err(LoginError::Expired);
    }
    let presented = binding_cookie.ok_or(LoginError::MissingBinding)?;
    // Comparing SHA-256 digests: timing reveals nothing usable about the secret itself.
    match Handle::of_text(presented) {
        Some(h) if h == pending.binding => Ok(()),
        _ => Err(LoginError::BindingMismatch),
    }
}

fn check_state(state: &str) -> Result<(), LoginError> {
    let printable = state.bytes().all(|b| b.is_ascii_graphic());
    if state.is_empty() || state.len() > MAX_STATE_LEN || !printable {
        return Err(refused(LoginError::MalformedState));
    }
    Ok(())
}

fn prune(inner: &mut Inner, now: OffsetDateTime) {
    inner.pending.retain(|_, p| p.expires > now);
    inner.used.retain(|_, expires| *expires > now);
}

fn refused(err: LoginError) -> LoginError {
    tracing::info!(error = %err, "login callback refused");
    err
}
