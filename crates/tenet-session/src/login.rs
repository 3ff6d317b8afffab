//! Login transactions: the state kept between sending a person to the identity provider and
//! the provider's callback.
//!
//! Each transaction is keyed by the OAuth `state` and bound to the browser that started it by
//! a separate random cookie ([`crate::LOGIN_COOKIE`]) of which only the SHA-256 is kept. A
//! callback must present both. A transaction is single use: the first callback consumes it,
//! even one that then fails, so a state cannot be replayed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

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
    /// Where it sits in the expiry orders.
    key: Key,
    source: Arc<str>,
}

/// A transaction's place in the expiry orders: when it expires, then the order it came in
/// (unique, so that no two transactions share a key).
type Key = (OffsetDateTime, u64);

/// How often a full store says so at warn (the evictions in between are counted into it).
const FULL_WARNING_INTERVAL: Duration = Duration::minutes(1);

#[derive(Debug, Default)]
struct Inner {
    /// Arrival counter for [`Key`].
    arrivals: u64,
    pending: HashMap<String, Pending>,
    /// Pending states by expiry, to prune without a scan.
    expiry: BTreeMap<Key, String>,
    /// Per source, its pending states by expiry.
    by_source: HashMap<Arc<str>, BTreeMap<Key, String>>,
    /// Sources by how many transactions they hold, then by their newest one: the last is
    /// the one a full store evicts from.
    busiest: BTreeSet<(usize, Key, Arc<str>)>,
    used: HashMap<String, Key>,
    used_expiry: BTreeMap<Key, String>,
    /// When a full store last warned, and how many it evicted since.
    last_full_warning: Option<OffsetDateTime>,
    evicted_since_warning: u64,
}

impl Inner {
    /// The rank of `source` in [`Inner::busiest`], if it holds any transaction.
    fn rank(&self, source: &Arc<str>) -> Option<(usize, Key, Arc<str>)> {
        let states = self.by_source.get(source)?;
        let (newest, _) = states.last_key_value()?;
        Some((states.len(), *newest, Arc::clone(source)))
    }

    /// Runs `change` on the transactions of `source`, keeping its rank up to date.
    fn change_source(
        &mut self,
        source: &Arc<str>,
        change: impl FnOnce(&mut BTreeMap<Key, String>),
    ) {
        if let Some(rank) = self.rank(source) {
            self.busiest.remove(&rank);
        }
        let states = self.by_source.entry(Arc::clone(source)).or_default();
        change(states);
        if states.is_empty() {
            self.by_source.remove(source);
        }
        if let Some(rank) = self.rank(source) {
            self.busiest.insert(rank);
        }
    }

    fn insert(&mut self, state: &str, pending: Pending) {
        let key = pending.key;
        let source = Arc::clone(&pending.source);
        self.expiry.insert(key, state.to_owned());
        self.change_source(&source, |states| {
            states.insert(key, state.to_owned());
        });
        self.pending.insert(state.to_owned(), pending);
    }

    fn remove(&mut self, state: &str) -> Option<Pending> {
        let pending = self.pending.remove(state)?;
        self.expiry.remove(&pending.key);
        self.change_source(&pending.source, |states| {
            states.remove(&pending.key);
        });
        Some(pending)
    }

    fn remember_used(&mut self, state: &str, key: Key) {
        self.used.insert(state.to_owned(), key);
        self.used_expiry.insert(key, state.to_owned());
    }

    /// Drops the transactions and used states that expired by `now`, oldest first.
    fn prune(&mut self, now: OffsetDateTime) {
        while let Some(((expires, _), state)) = self.expiry.first_key_value()
            && *expires <= now
        {
            let state = state.clone();
            self.remove(&state);
        }
        while let Some((&key, _)) = self.used_expiry.first_key_value()
            && key.0 <= now
        {
            if let Some(state) = self.used_expiry.remove(&key) {
                self.used.remove(&state);
            }
        }
    }
}

/// The bounded, thread-safe store of login transactions.
#[derive(Debug)]
pub struct LoginTransactions {
    max: usize,
    inner: Mutex<Inner>,
}

impl LoginTransactions {
    /// A store holding at most `max` transactions (at least 1). Past that, the oldest
    /// transaction of the source holding the most goes: a flood from a few sources evicts its
    /// own, not the sign-ins other people have under way.
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

    /// Starts a transaction for `state` on behalf of `source` (the client's address, or its
    /// network: whatever the caller counts sign-ins per), returning the binding cookie value.
    pub fn begin(
        &self,
        source: &str,
        state: &str,
        payload: String,
        return_to: String,
        now: OffsetDateTime,
    ) -> Result<LoginStarted, LoginError> {
        check_state(state)?;
        let mut inner = self.lock();
        inner.prune(now);
        if inner.pending.contains_key(state) || inner.used.contains_key(state) {
            return Err(refused(LoginError::StateInUse));
        }
        self.make_room(&mut inner, now);
        let binding = Token::generate();
        let expires = now + LOGIN_TTL;
        inner.arrivals = inner.arrivals.wrapping_add(1);
        let pending = Pending {
            binding: binding.handle(),
            payload,
            return_to,
            expires,
            key: (expires, inner.arrivals),
            source: Arc::from(source),
        };
        inner.insert(state, pending);
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
        let Some(pending) = inner.remove(state) else {
            let err = if inner.used.contains_key(state) {
                LoginError::AlreadyUsed
            } else {
                LoginError::UnknownState
            };
            return Err(refused(err));
        };
        if inner.used.len() >= self.max.saturating_mul(2) {
            inner.prune(now);
        }
        if inner.used.len() < self.max.saturating_mul(2) {
            inner.remember_used(state, pending.key);
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

    /// How many transactions `source` has pending.
    pub fn pending_from(&self, source: &str) -> usize {
        self.lock().by_source.get(source).map_or(0, BTreeMap::len)
    }

    /// Makes room for one more: the oldest transaction of the source holding the most goes
    /// (of equally busy sources, the one that started a sign-in last).
    fn make_room(&self, inner: &mut Inner, now: OffsetDateTime) {
        while inner.pending.len() >= self.max {
            let Some((held, _, source)) = inner.busiest.last().cloned() else {
                break;
            };
            let oldest = inner
                .by_source
                .get(&source)
                .and_then(|states| states.first_key_value())
                .map(|(_, state)| state.clone());
            let Some(oldest) = oldest else { break };
            inner.remove(&oldest);
            inner.evicted_since_warning = inner.evicted_since_warning.saturating_add(1);
            let due = inner
                .last_full_warning
                .is_none_or(|last| now - last >= FULL_WARNING_INTERVAL);
            if due {
                tracing::warn!(
                    cap = self.max,
                    %source,
                    source_pending = held,
                    evicted = inner.evicted_since_warning,
                    "login transactions full: evicting the oldest sign-ins of the source \
                     holding the most"
                );
                inner.last_full_warning = Some(now);
                inner.evicted_since_warning = 0;
            } else {
                tracing::debug!(cap = self.max, %source, source_pending = held,
                    "login transaction evicted");
            }
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

fn refused(err: LoginError) -> LoginError {
    tracing::info!(error = %err, "login callback refused");
    err
}
