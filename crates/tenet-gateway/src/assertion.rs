//! The signed identity assertion the gateway adds to every forwarded request: a JWT-SVID
//! whose subject is the caller and whose audience is the target service, verifiable by the
//! upstream against the trust bundle. Client-supplied copies of the header are removed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenet_identity::{CertificateAuthority, SpiffeId};
use time::OffsetDateTime;

/// The header carrying the assertion to the upstream.
pub const ASSERTION_HEADER: &str = "x-tenet-identity";

/// Issues identity assertions for (caller, audience) pairs.
pub trait AssertionIssuer: Send + Sync + 'static {
    /// A token asserting `caller` to `audience`, valid at `now`.
    fn assertion(
        &self,
        caller: &SpiffeId,
        audience: &str,
        now: OffsetDateTime,
    ) -> Result<Arc<str>, String>;
}

/// (caller, audience)
type AssertionKey = (SpiffeId, String);
/// A token and the time after which it is re-signed.
type CachedAssertion = (Arc<str>, OffsetDateTime);

/// Signs assertions with the deployment CA's JWT key and reuses each token for half of
/// its lifetime, so the signing cost is paid once per caller and service, not per request.
pub struct CaAssertionIssuer {
    ca: Arc<CertificateAuthority>,
    ttl: Duration,
    cache: Mutex<HashMap<AssertionKey, CachedAssertion>>,
}

impl std::fmt::Debug for CaAssertionIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaAssertionIssuer")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl CaAssertionIssuer {
    /// Assertions valid for `ttl` (a minute is a good default).
    pub fn new(ca: Arc<CertificateAuthority>, ttl: Duration) -> Self {
        Self {
            ca,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

impl AssertionIssuer for CaAssertionIssuer {
    fn assertion(
        &self,
        caller: &SpiffeId,
        audience: &str,
        now: OffsetDateTime,
    ) -> Result<Arc<str>, String> {
        let key = (caller.clone(), audience.to_string());
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((token, refresh_at)) = cache.get(&key)
            && now < *refresh_at
        {
            return Ok(token.clone());
        }
        let token: Arc<str> = self
            .ca
            .issue_jwt_svid(caller, &[audience.to_string()], self.ttl, now)
            .map_err(|e| e.to_string())?
            .into();
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(key, (token.clone(), now + self.ttl / 2));
        Ok(token)
    }
}
