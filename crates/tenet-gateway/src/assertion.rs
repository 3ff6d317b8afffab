//! The signed identity assertion the gateway adds to every forwarded request: a JWT-SVID
//! whose subject is the caller and whose audience is the target service, verifiable by the
//! upstream against the trust bundle. Client-supplied copies of the header are removed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use tenet_identity::{CertificateAuthority, SpiffeId};
use time::OffsetDateTime;

/// The header carrying the assertion to the upstream.
pub static ASSERTION_HEADER: HeaderName = HeaderName::from_static("x-tenet-identity");

/// Issues identity assertions for (caller, audience) pairs.
pub trait AssertionIssuer: Send + Sync + 'static {
    /// A token asserting `caller` to `audience`, valid at `now`, as the header's value.
    fn assertion(
        &self,
        caller: &SpiffeId,
        audience: &str,
        now: OffsetDateTime,
    ) -> Result<HeaderValue, String>;
}

/// A token, ready as a header value (a clone shares its bytes), and the time after which it
/// is re-signed.
type CachedAssertion = (HeaderValue, OffsetDateTime);
/// Tokens by audience, then caller (looked up by reference, without building a key per
/// request), and how many there are.
#[derive(Default)]
struct AssertionCache {
    tokens: HashMap<String, HashMap<SpiffeId, CachedAssertion>>,
    count: usize,
}

/// Signs assertions with the deployment CA's JWT key and reuses each token for half of
/// its lifetime, so the signing cost is paid once per caller and service, not per request.
pub struct CaAssertionIssuer {
    ca: Arc<CertificateAuthority>,
    ttl: Duration,
    cache: Mutex<AssertionCache>,
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
            cache: Mutex::new(AssertionCache::default()),
        }
    }
}

impl AssertionIssuer for CaAssertionIssuer {
    fn assertion(
        &self,
        caller: &SpiffeId,
        audience: &str,
        now: OffsetDateTime,
    ) -> Result<HeaderValue, String> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((token, refresh_at)) = cache.tokens.get(audience).and_then(|c| c.get(caller))
            && now < *refresh_at
        {
            return Ok(token.clone());
        }
        let token = self
            .ca
            .issue_jwt_svid(caller, &[audience.to_string()], self.ttl, now)
            .map_err(|e| e.to_string())?;
        let token = HeaderValue::from_str(&token).map_err(|e| e.to_string())?;
        if cache.count > 100_000 {
            *cache = AssertionCache::default();
        }
        let replaced = cache
            .tokens
            .entry(audience.to_string())
            .or_default()
            .insert(caller.clone(), (token.clone(), now + self.ttl / 2));
        if replaced.is_none() {
            cache.count += 1;
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use tenet_identity::TrustDomain;

    use super::*;

    #[test]
    fn tokens_are_reused_per_caller_and_audience_until_half_their_life() {
        let td = TrustDomain::parse("example.org").unwrap();
        let now = OffsetDateTime::now_utc();
        let ca = Arc::new(CertificateAuthority::generate(&td, now).unwrap());
        let issuer = CaAssertionIssuer::new(ca, Duration::from_secs(60));
        let a = SpiffeId::parse("spiffe://example.org/a").unwrap();
        let b = SpiffeId::parse("spiffe://example.org/b").unwrap();

        let first = issuer.assertion(&a, "shop", now).unwrap();
        assert_eq!(issuer.assertion(&a, "shop", now).unwrap(), first);
        let later = now + Duration::from_secs(29);
        assert_eq!(issuer.assertion(&a, "shop", later).unwrap(), first);
        assert_ne!(issuer.assertion(&b, "shop", now).unwrap(), first);
        assert_ne!(issuer.assertion(&a, "cart", now).unwrap(), first);
        // Half of the lifetime gone: signed again, for the new time.
        let renewed = issuer
            .assertion(&a, "shop", now + Duration::from_secs(31))
            .unwrap();
        assert_ne!(renewed, first);
        assert_eq!(issuer.cache.lock().unwrap().count, 3);
    }
}
