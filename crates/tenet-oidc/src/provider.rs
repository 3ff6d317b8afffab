//! One discovered OpenID provider: begin a login, complete it into an `Identity`.

use std::sync::{Arc, Mutex, PoisonError, RwLock};

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreClientAuthMethod, CoreJsonWebKeySet,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthType, AuthorizationCode, ClientId, CsrfToken, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RequestTokenError, Scope,
    TokenResponse as _,
};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::config::ProviderConfig;
use crate::error::OidcError;
use crate::http::HttpClient;
use crate::identity::{self, Expected, Identity};
use crate::keys::KeySet;
use crate::login::{AuthorizationResponse, LoginRedirect, PendingLogin, same_secret};
use crate::token::{self, TokenError};

/// The openidconnect client with authorization and token endpoints set.
type OidcClient =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The provider's keys: the current set, only ever swapped whole (its lock is never held
/// across a request, so readers never wait for the provider), and the refetches because of an
/// unknown `kid` (their lock is never held across a request either).
struct KeyCache {
    keys: RwLock<Arc<KeySet>>,
    refetches: Arc<Mutex<Refetches>>,
}

/// Refetches of the JWKS because of an unknown `kid`: when the last one started (the rate
/// limit), and the one under way, whose end every receiver of `in_flight` can wait for.
#[derive(Default)]
struct Refetches {
    last: Option<OffsetDateTime>,
    in_flight: Option<watch::Receiver<bool>>,
}

/// What a caller that met an unknown `kid` may do about it.
enum Claim {
    /// The current keys have the `kid` (a refetch ended meanwhile).
    Known(Arc<KeySet>),
    /// This caller fetches the keys; the others wait for it.
    Lead(Leading),
    /// Another caller is fetching the keys: wait for the end of its fetch.
    Follow(watch::Receiver<bool>),
    /// The last refetch started less than the configured interval ago.
    RateLimited,
}

/// The refetch a caller leads: when it is dropped (fetch done, failed or abandoned), the
/// refetch is no longer under way and its waiters are released.
struct Leading {
    refetches: Arc<Mutex<Refetches>>,
    done: watch::Sender<bool>,
}

impl Drop for Leading {
    fn drop(&mut self) {
        self.refetches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .in_flight = None;
        self.done.send_replace(true);
    }
}

/// The end of a JWKS refetch under way (see [`Provider::refetch_for_kid_in_background`]).
#[derive(Debug)]
pub struct RefetchDone(watch::Receiver<bool>);

impl RefetchDone {
    /// Waits until the refetch has ended, whatever its outcome (the keys are then those it
    /// fetched, or still the previous ones).
    pub async fn wait(mut self) {
        // An error means the leader is gone, which also ends the refetch.
        let _ended = self.0.wait_for(|done| *done).await;
    }
}

/// What [`Provider::refetch_for_kid_in_background`] found or started.
#[derive(Debug)]
pub enum KidRefetch {
    /// The current keys have the `kid` already: a refetch ended since the token was checked.
    Known,
    /// A refetch is under way, started by this call or before it; it ends when
    /// [`RefetchDone::wait`] returns.
    Pending(RefetchDone),
    /// No refetch now: the last one started less than `jwks_refetch_interval` ago, or there
    /// is no runtime to run one on.
    NotNow,
}

impl KeyCache {
    fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Decides, without waiting, what a caller that met the unknown `kid` at `now` does: a
    /// refetch starts only when none is under way and the last started at least `interval`
    /// before.
    fn claim(&self, kid: &str, now: OffsetDateTime, config: &ProviderConfig) -> Claim {
        let mut refetches = self
            .refetches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.current();
        if current.keys().iter().any(|k| k.kid() == Some(kid)) {
            return Claim::Known(current);
        }
        if let Some(in_flight) = &refetches.in_flight {
            return Claim::Follow(in_flight.clone());
        }
        if let Some(last) = refetches.last
            && (now - last).unsigned_abs() < config.jwks_refetch_interval
        {
            tracing::info!(provider = %config.name, kid, "JWKS refetch rate-limited");
            return Claim::RateLimited;
        }
        refetches.last = Some(now);
        let (done, in_flight) = watch::channel(false);
        refetches.in_flight = Some(in_flight);
        Claim::Lead(Leading {
            refetches: Arc::clone(&self.refetches),
            done,
        })
    }

    fn replace(&self, keys: KeySet) -> Arc<KeySet> {
        let keys = Arc::new(keys);
        *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&keys);
        keys
    }
}

/// A discovered OpenID provider, ready to run logins. Share it behind an `Arc`.
pub struct Provider {
    config: ProviderConfig,
    http: HttpClient,
    client: OidcClient,
    jwks_uri: String,
    keys: KeyCache,
}

impl std::fmt::Debug for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Provider")
            .field("name", &self.config.name)
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Provider {
    /// Validates the configuration, fetches the discovery document and the JWKS.
    ///
    /// The document's `issuer` must equal the configured issuer exactly.
    pub async fn discover(config: ProviderConfig) -> Result<Self, OidcError> {
        config.validate()?;
        let http = HttpClient::new(&config.http, config.ca_file.as_deref())?;
        Self::discover_with(config, http).await
    }

    /// [`Provider::discover`] with a configuration already validated and its HTTP client
    /// built (see [`crate::ProviderSlot`]).
    pub(crate) async fn discover_with(
        config: ProviderConfig,
        http: HttpClient,
    ) -> Result<Self, OidcError> {
        let metadata = fetch_metadata(&http, &config).await?;
        let client = build_client(&config, &metadata)?;
        let jwks_uri = metadata.jwks_uri().url().to_string();
        let keys = fetch_keys(&http, &config, &jwks_uri).await?;
        tracing::info!(
            provider = %config.name,
            issuer = %config.issuer,
            keys = keys.len(),
            "identity provider discovered"
        );
        Ok(Self {
            config,
            http,
            client,
            jwks_uri,
            keys: KeyCache {
                keys: RwLock::new(Arc::new(keys)),
                refetches: Arc::new(Mutex::new(Refetches::default())),
            },
        })
    }

    /// The configuration this provider runs with.
    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// The HTTP client this provider talks to it with.
    pub(crate) fn http(&self) -> &HttpClient {
        &self.http
    }

    /// The provider's current signing keys (for verifying its access tokens with a
    /// [`crate::BearerVerifier`]); available at once, also while a refetch is under way.
    pub fn current_keys(&self) -> Arc<crate::KeySet> {
        self.keys.current()
    }

    /// Starts a login: authorization URL (code flow, PKCE S256, fresh state and nonce) and
    /// the pending login to keep until the callback.
    pub fn begin(&self, return_to: impl Into<String>, now: OffsetDateTime) -> LoginRedirect {
        let pending = PendingLogin::new(&self.config.name, return_to.into(), now);
        let verifier = PkceCodeVerifier::new(pending.pkce_verifier().to_owned());
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&verifier);
        let (state, nonce) = (pending.state().to_owned(), pending.nonce().to_owned());
        let scopes = self.config.scopes.iter().filter(|s| *s != "openid");
        let (authorization_url, _, _) = self
            .client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .add_scopes(scopes.map(|s| Scope::new(s.clone())))
            .set_pkce_challenge(challenge)
            .url();
        tracing::debug!(provider = %self.config.name, "login started");
        LoginRedirect {
            authorization_url,
            pending,
        }
    }

    /// Completes a login: checks the callback against the pending login, exchanges the code
    /// and verifies the ID token. `now` is the verification time.
    pub async fn complete(
        &self,
        pending: &PendingLogin,
        response: &AuthorizationResponse,
        now: OffsetDateTime,
    ) -> Result<Identity, OidcError> {
        match self.try_complete(pending, response, now).await {
            Ok(identity) => {
                tracing::debug!(
                    provider = %self.config.name,
                    subject = %identity.subject,
                    "login completed"
                );
                Ok(identity)
            }
            Err(error) => {
                tracing::info!(
                    provider = %self.config.name,
                    reason = error.reason(),
                    %error,
                    "login refused"
                );
                Err(error)
            }
        }
    }

    async fn try_complete(
        &self,
        pending: &PendingLogin,
        response: &AuthorizationResponse,
        now: OffsetDateTime,
    ) -> Result<Identity, OidcError> {
        self.check_callback(pending, response, now)?;
        let id_token = self.exchange_code(pending, &response.code).await?;
        let claims = self.verify_signature(&id_token, now).await?;
        let expected = Expected {
            issuer: &self.config.issuer,
            client_id: &self.config.client_id,
            nonce: pending.nonce(),
            groups_claim: &self.config.groups_claim,
            skew: seconds(self.config.clock_skew),
        };
        Ok(identity::validate(claims, &expected, now.unix_timestamp())?)
    }

    /// Provider, age, `state` and `iss` of the callback, before anything is sent anywhere.
    fn check_callback(
        &self,
        pending: &PendingLogin,
        response: &AuthorizationResponse,
        now: OffsetDateTime,
    ) -> Result<(), OidcError> {
        if pending.provider() != self.config.name {
            return Err(OidcError::WrongProvider {
                expected: self.config.name.clone(),
                found: pending.provider().to_owned(),
            });
        }
        let age = now - pending.created_at();
        if age.is_negative() || age > self.config.login_max_age {
            return Err(OidcError::LoginExpired);
        }
        if !same_secret(&response.state, pending.state()) {
            return Err(OidcError::StateMismatch);
        }
        match &response.iss {
            Some(iss) if *iss != self.config.issuer => Err(OidcError::CallbackIssuerMismatch {
                expected: self.config.issuer.clone(),
                found: iss.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// Redeems the code (with the PKCE verifier) and returns the raw ID token.
    async fn exchange_code(&self, pending: &PendingLogin, code: &str) -> Result<String, OidcError> {
        let verifier = PkceCodeVerifier::new(pending.pkce_verifier().to_owned());
        let response = self
            .client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(verifier)
            .request_async(&self.http)
            .await
            .map_err(token_request_error)?;
        let id_token = response.id_token().ok_or(OidcError::MissingIdToken)?;
        // The serialised form is the token exactly as received (signing input + signature).
        serde_json::to_value(id_token)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| OidcError::TokenResponse("id_token cannot be re-read".to_owned()))
    }

    /// Verifies the signature; on an unknown `kid`, refetches the JWKS once and retries.
    async fn verify_signature(
        &self,
        id_token: &str,
        now: OffsetDateTime,
    ) -> Result<serde_json::Map<String, serde_json::Value>, OidcError> {
        let keys = self.keys.current();
        match token::verify(id_token, &keys) {
            Err(TokenError::UnknownKey { kid }) => {
                let keys = self.refetch_keys(&kid, now).await?;
                Ok(token::verify(id_token, &keys)?.claims)
            }
            other => Ok(other?.claims),
        }
    }

    /// Refetches the JWKS because a token named the unknown key `kid` (rate-limited as for
    /// ID tokens); for callers that verify the provider's tokens themselves.
    pub async fn refetch_for_kid(&self, kid: &str, now: OffsetDateTime) -> Result<(), OidcError> {
        self.refetch_keys(kid, now).await.map(drop)
    }

    /// Fetches the JWKS again, so that keys the provider retired stop verifying; for a
    /// periodic refresh.
    pub async fn refresh_keys(&self) -> Result<(), OidcError> {
        let keys = fetch_keys(&self.http, &self.config, &self.jwks_uri).await?;
        tracing::debug!(provider = %self.config.name, keys = keys.len(), "JWKS refreshed");
        self.keys.replace(keys);
        Ok(())
    }

    /// Refetches the JWKS because a token named the unknown key `kid`, without waiting for
    /// it: on this runtime, in a task of its own, when the rate limit allows one and none is
    /// under way (the same limit as [`Provider::refetch_for_kid`]). Says whether a refetch is
    /// under way, whose end the caller may wait for, shared with every other caller.
    pub fn refetch_for_kid_in_background(
        self: &Arc<Self>,
        kid: &str,
        now: OffsetDateTime,
    ) -> KidRefetch {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return KidRefetch::NotNow;
        };
        match self.keys.claim(kid, now, &self.config) {
            Claim::Known(_) => KidRefetch::Known,
            Claim::RateLimited => KidRefetch::NotNow,
            Claim::Follow(in_flight) => KidRefetch::Pending(RefetchDone(in_flight)),
            Claim::Lead(leading) => {
                let done = RefetchDone(leading.done.subscribe());
                let (provider, kid) = (Arc::clone(self), kid.to_owned());
                runtime.spawn(async move {
                    if let Err(e) = provider.fetch_leading(leading, &kid).await {
                        tracing::info!(provider = %provider.config.name, error = %e, "keys not refetched");
                    }
                });
                KidRefetch::Pending(done)
            }
        }
    }

    /// Whether a refetch for the unknown `kid` is under way, without starting one (and without
    /// logging): for a caller that started one with
    /// [`Provider::refetch_for_kid_in_background`] just before and now waits for it.
    /// [`KidRefetch::NotNow`] when none is under way.
    pub fn refetch_under_way(&self, kid: &str) -> KidRefetch {
        let refetches = self
            .keys
            .refetches
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self
            .keys
            .current()
            .keys()
            .iter()
            .any(|k| k.kid() == Some(kid))
        {
            return KidRefetch::Known;
        }
        match &refetches.in_flight {
            Some(in_flight) => KidRefetch::Pending(RefetchDone(in_flight.clone())),
            None => KidRefetch::NotNow,
        }
    }

    /// Refetches the JWKS for an unknown `kid`, at most once per configured interval; a
    /// caller that meets a refetch under way waits for its end instead of starting another.
    /// The current keys keep verifying while the provider answers.
    async fn refetch_keys(&self, kid: &str, now: OffsetDateTime) -> Result<Arc<KeySet>, OidcError> {
        let unknown = || {
            OidcError::from(TokenError::UnknownKey {
                kid: kid.to_owned(),
            })
        };
        match self.keys.claim(kid, now, &self.config) {
            Claim::Known(keys) => Ok(keys),
            Claim::RateLimited => Err(unknown()),
            Claim::Follow(in_flight) => {
                RefetchDone(in_flight).wait().await;
                let current = self.keys.current();
                if current.keys().iter().any(|k| k.kid() == Some(kid)) {
                    Ok(current)
                } else {
                    Err(unknown())
                }
            }
            Claim::Lead(leading) => self.fetch_leading(leading, kid).await,
        }
    }

    /// The fetch of the refetch `leading` stands for; its waiters are released when it ends.
    async fn fetch_leading(&self, leading: Leading, kid: &str) -> Result<Arc<KeySet>, OidcError> {
        let keys = fetch_keys(&self.http, &self.config, &self.jwks_uri).await?;
        tracing::info!(provider = %self.config.name, kid, keys = keys.len(), "JWKS refetched");
        let keys = self.keys.replace(keys);
        drop(leading);
        Ok(keys)
    }
}

fn seconds(duration: std::time::Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

async fn fetch_metadata(
    http: &HttpClient,
    config: &ProviderConfig,
) -> Result<CoreProviderMetadata, OidcError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        config.issuer.trim_end_matches('/')
    );
    let body = http.get_ok(&url, "application/json").await?;
    let metadata: CoreProviderMetadata =
        serde_json::from_slice(&body).map_err(|e| OidcError::Discovery {
            issuer: config.issuer.clone(),
            problem: e.to_string(),
        })?;
    if metadata.issuer().as_str() != config.issuer {
        return Err(OidcError::IssuerMismatch {
            configured: config.issuer.clone(),
            discovered: metadata.issuer().to_string(),
        });
    }
    let supports_code = metadata
        .response_types_supported()
        .iter()
        .any(|types| types.iter().map(|t| t.as_ref()).eq(["code"]));
    if !supports_code {
        return Err(OidcError::Discovery {
            issuer: config.issuer.clone(),
            problem: "response type \"code\" is not supported".to_owned(),
        });
    }
    Ok(metadata)
}

async fn fetch_keys(
    http: &HttpClient,
    config: &ProviderConfig,
    jwks_uri: &str,
) -> Result<KeySet, OidcError> {
    let body = http
        .get_ok(jwks_uri, "application/jwk-set+json, application/json")
        .await?;
    KeySet::from_jwks(&body, &config.allowed_algorithms).map_err(|source| OidcError::Jwks {
        issuer: config.issuer.clone(),
        source,
    })
}

fn build_client(
    config: &ProviderConfig,
    metadata: &CoreProviderMetadata,
) -> Result<OidcClient, OidcError> {
    let discovery_error = |problem: &str| OidcError::Discovery {
        issuer: config.issuer.clone(),
        problem: problem.to_owned(),
    };
    let token_url = metadata
        .token_endpoint()
        .cloned()
        .ok_or_else(|| discovery_error("no token_endpoint"))?;
    let issuer = IssuerUrl::new(config.issuer.clone())
        .map_err(|_| discovery_error("issuer is not a URL"))?;
    let redirect = RedirectUrl::new(config.redirect_uri.clone())
        .map_err(|_| discovery_error("redirect_uri is not a URL"))?;
    let client = CoreClient::new(
        ClientId::new(config.client_id.clone()),
        issuer,
        CoreJsonWebKeySet::default(),
    )
    .set_auth_uri(metadata.authorization_endpoint().clone())
    .set_token_uri(token_url)
    .set_redirect_uri(redirect)
    .set_auth_type(client_auth(config, metadata)?);
    Ok(match &config.client_secret {
        Some(secret) => {
            client.set_client_secret(openidconnect::ClientSecret::new(secret.expose().to_owned()))
        }
        None => client,
    })
}

/// client_secret_basic when offered (the default when the document lists nothing), else
/// client_secret_post; a public client sends its id in the body.
fn client_auth(
    config: &ProviderConfig,
    metadata: &CoreProviderMetadata,
) -> Result<AuthType, OidcError> {
    if config.client_secret.is_none() {
        return Ok(AuthType::RequestBody);
    }
    let offered = metadata.token_endpoint_auth_methods_supported();
    let offers = |method: &CoreClientAuthMethod| offered.is_none_or(|list| list.contains(method));
    if offers(&CoreClientAuthMethod::ClientSecretBasic) {
        Ok(AuthType::BasicAuth)
    } else if offers(&CoreClientAuthMethod::ClientSecretPost) {
        Ok(AuthType::RequestBody)
    } else {
        Err(OidcError::UnsupportedClientAuth {
            offered: offered
                .into_iter()
                .flatten()
                .map(|m| m.as_ref().to_owned())
                .collect(),
        })
    }
}

fn token_request_error<RE: std::error::Error + 'static>(
    error: RequestTokenError<
        RE,
        openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>,
    >,
) -> OidcError
where
    OidcError: From<RE>,
{
    match error {
        RequestTokenError::ServerResponse(response) => OidcError::TokenEndpoint {
            error: response.error().as_ref().to_owned(),
            description: response.error_description().cloned(),
        },
        RequestTokenError::Request(e) => OidcError::from(e),
        RequestTokenError::Parse(e, _) => OidcError::TokenResponse(e.to_string()),
        RequestTokenError::Other(problem) => OidcError::TokenResponse(problem),
    }
}
