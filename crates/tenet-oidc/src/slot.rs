//! A provider that may not be discovered yet: its configuration, checked, and the discovered
//! [`Provider`] once discovery has succeeded.
//!
//! The gateway starts whether or not a provider answers: each configured provider is a
//! [`ProviderSlot`], discovery is retried with a capped exponential [`Backoff`] until it
//! succeeds, and the per-request path reads the slot with one atomic load (a slot is filled
//! once and never emptied).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::config::ProviderConfig;
use crate::error::OidcError;
use crate::http::HttpClient;
use crate::provider::Provider;

/// The waits between discovery attempts: `first`, doubling after every failure, never more
/// than `max`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    first: Duration,
    max: Duration,
}

impl Backoff {
    /// The default first wait: one second.
    pub const DEFAULT_FIRST: Duration = Duration::from_secs(1);
    /// The default longest wait: one minute.
    pub const DEFAULT_MAX: Duration = Duration::from_secs(60);
    /// The shortest first wait accepted (a smaller one is raised to it).
    const SHORTEST: Duration = Duration::from_millis(10);

    /// Waits starting at `first` (at least 10 ms) and capped at `max` (at least `first`).
    pub fn new(first: Duration, max: Duration) -> Self {
        let first = first.max(Self::SHORTEST);
        Self {
            first,
            max: max.max(first),
        }
    }

    /// The wait after `failures` failed attempts in a row: `first · 2^(failures-1)`, at most
    /// `max` (none before the first attempt).
    pub fn delay(&self, failures: u32) -> Duration {
        let Some(doublings) = failures.checked_sub(1) else {
            return Duration::ZERO;
        };
        // 2^31 times any first wait is far past any cap; the shift stays in range.
        let factor = 1u32 << doublings.min(31);
        self.first.saturating_mul(factor).min(self.max)
    }

    /// The longest wait.
    pub fn max(&self) -> Duration {
        self.max
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new(Self::DEFAULT_FIRST, Self::DEFAULT_MAX)
    }
}

/// One configured OpenID provider, discovered or not yet. Share it behind an `Arc`.
pub struct ProviderSlot {
    config: ProviderConfig,
    http: HttpClient,
    provider: OnceLock<Arc<Provider>>,
}

impl std::fmt::Debug for ProviderSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderSlot")
            .field("name", &self.config.name)
            .field("issuer", &self.config.issuer)
            .field("discovered", &self.is_discovered())
            .finish_non_exhaustive()
    }
}

impl ProviderSlot {
    /// Checks the configuration and builds the HTTP client (reading the CA file), without
    /// contacting the provider: what fails here can be fixed only by changing the
    /// configuration.
    pub fn new(config: ProviderConfig) -> Result<Self, OidcError> {
        config.validate()?;
        let http = HttpClient::new(&config.http, config.ca_file.as_deref())?;
        Ok(Self {
            config,
            http,
            provider: OnceLock::new(),
        })
    }

    /// A slot holding a provider already discovered.
    pub fn discovered(provider: Arc<Provider>) -> Self {
        let slot = Self {
            config: provider.config().clone(),
            http: provider.http().clone(),
            provider: OnceLock::new(),
        };
        // A fresh cell: the value is always taken.
        let _ = slot.provider.set(provider);
        slot
    }

    /// The configuration (name, issuer, ...), known whether or not discovery succeeded.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// The discovered provider; `None` until discovery succeeds. One atomic load.
    pub fn get(&self) -> Option<&Arc<Provider>> {
        self.provider.get()
    }

    /// Whether discovery has succeeded.
    pub fn is_discovered(&self) -> bool {
        self.provider.get().is_some()
    }

    /// One discovery attempt (none when the slot is already filled); fills the slot on
    /// success. Nothing is logged here.
    pub async fn discover_once(&self) -> Result<&Arc<Provider>, OidcError> {
        if let Some(provider) = self.provider.get() {
            return Ok(provider);
        }
        let provider = Provider::discover_with(self.config.clone(), self.http.clone()).await?;
        // If another attempt filled the slot meanwhile, its provider stays.
        Ok(self.provider.get_or_init(|| Arc::new(provider)))
    }

    /// Attempt number `attempt` (1 for the first), logged: at info when the provider is
    /// discovered; when it is not, at warn for a provider that could not be reached (or
    /// answered 5xx, 408, 429) and at error for one whose answer shows a configuration that
    /// cannot work as it stands (another issuer, an unusable document or key set, ...), with
    /// the reason and the wait before the next attempt under `backoff`. True when discovered.
    pub async fn attempt(&self, attempt: u32, backoff: &Backoff) -> bool {
        let error = match self.discover_once().await {
            Ok(_) => {
                if attempt > 1 {
                    tracing::info!(
                        provider = %self.config.name,
                        issuer = %self.config.issuer,
                        attempt,
                        "identity provider reachable; sign-in through it is open"
                    );
                }
                return true;
            }
            Err(error) => error,
        };
        let retry_in_secs = backoff.delay(attempt).as_secs_f64();
        if error.is_transient() {
            tracing::warn!(
                provider = %self.config.name,
                issuer = %self.config.issuer,
                attempt,
                reason = error.reason(),
                %error,
                retry_in_secs,
                "identity provider not reachable; sign-in through it answers 503 until it is"
            );
        } else {
            tracing::error!(
                provider = %self.config.name,
                issuer = %self.config.issuer,
                attempt,
                reason = error.reason(),
                %error,
                retry_in_secs,
                "identity provider cannot be used as configured; retrying, but the \
                 configuration or the provider must change"
            );
        }
        false
    }

    /// Attempts discovery until it succeeds, `failures` attempts having failed already:
    /// waits [`Backoff::delay`] of the failures so far before each attempt, and logs each
    /// as [`ProviderSlot::attempt`] does. Returns at once when the slot is filled.
    pub async fn keep_discovering(&self, backoff: Backoff, mut failures: u32) {
        while !self.is_discovered() {
            tokio::time::sleep(backoff.delay(failures)).await;
            if self.attempt(failures.saturating_add(1), &backoff).await {
                return;
            }
            failures = failures.saturating_add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn the_default_backoff_doubles_from_one_second_to_a_minute() {
        let b = Backoff::default();
        let waits: Vec<Duration> = (0..=10).map(|n| b.delay(n)).collect();
        assert_eq!(
            waits,
            [0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60].map(S).to_vec()
        );
        assert_eq!(b.delay(u32::MAX), S(60));
        assert_eq!(b.max(), S(60));
    }

    #[test]
    fn a_backoff_keeps_its_cap_at_least_its_first_wait() {
        let b = Backoff::new(Duration::from_millis(250), S(1));
        let waits: Vec<Duration> = (1..=5).map(|n| b.delay(n)).collect();
        let ms = Duration::from_millis;
        assert_eq!(waits, vec![ms(250), ms(500), ms(1000), ms(1000), ms(1000)]);
        // A cap below the first wait is raised to it; a zero first wait to 10 ms.
        assert_eq!(Backoff::new(S(5), S(1)).delay(3), S(5));
        assert_eq!(Backoff::new(Duration::ZERO, S(1)).delay(1), ms(10));
        // Very long first waits saturate instead of overflowing.
        let huge = Backoff::new(Duration::MAX / 2, Duration::MAX);
        assert_eq!(huge.delay(40), Duration::MAX);
    }

    #[tokio::test]
    async fn an_unreachable_provider_leaves_the_slot_empty_with_a_transient_error() {
        // A port with nothing listening: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let issuer = format!("https://127.0.0.1:{port}");
        let config = ProviderConfig::new(
            "corp",
            &issuer,
            "tenet",
            "https://app.example.test:8443/.tenet/auth/callback",
        );
        let slot = ProviderSlot::new(config).unwrap();
        assert!(!slot.is_discovered() && slot.get().is_none());
        let error = slot.discover_once().await.unwrap_err();
        assert!(error.is_transient(), "{error:?}");
        assert!(!slot.attempt(1, &Backoff::default()).await);
        assert!(slot.get().is_none());
        assert_eq!(slot.config().name, "corp");
        assert!(format!("{slot:?}").contains("discovered: false"));
    }

    #[test]
    fn local_problems_fail_before_any_attempt() {
        let mut config = ProviderConfig::new(
            "corp",
            "https://idp.example.test",
            "tenet",
            "https://app.example.test:8443/.tenet/auth/callback",
        );
        config.ca_file = Some("/nonexistent/idp-ca.pem".into());
        let error = ProviderSlot::new(config).unwrap_err();
        assert!(matches!(error, OidcError::Http(_)), "{error:?}");
        assert!(!error.is_transient());
    }

    #[test]
    fn transient_errors_are_those_a_retry_can_cure() {
        let status = |status: u16| {
            OidcError::Http(crate::HttpError::Status {
                url: "https://idp.example.test/.well-known/openid-configuration".into(),
                status,
            })
        };
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(status(s).is_transient(), "{s}");
        }
        for s in [301, 400, 401, 403, 404] {
            assert!(!status(s).is_transient(), "{s}");
        }
        let mismatch = OidcError::IssuerMismatch {
            configured: "https://idp.example.test".into(),
            discovered: "https://other.example.test".into(),
        };
        assert!(!mismatch.is_transient());
        let unusable = OidcError::Discovery {
            issuer: "https://idp.example.test".into(),
            problem: "no token_endpoint".into(),
        };
        assert!(!unusable.is_transient());
    }
}
