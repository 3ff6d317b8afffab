//! People's sessions for Tenet's gateway (the PEP): server-side sessions with idle and
//! absolute timeouts, login transactions bound to the browser, strict cookie handling,
//! same-origin redirect checks, and continuous re-evaluation of a session on every request.
//!
//! The crate is independent of the OIDC and WebAuthn clients: the person and their factors
//! are plain strings, and the pending OIDC login is an opaque payload.
//!
//! A request's path through it: [`parse_cookie_headers`] → [`SessionStore::lookup`] →
//! [`evaluate`] → [`SessionStore::apply_verdict`] → [`SessionStore::touch`].
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod cookie;
mod evaluate;
mod login;
mod persist;
mod redirect;
mod session;
mod sites;
mod store;
mod token;

pub use cookie::{
    CookieError, CookieJar, LOGIN_COOKIE, MAX_COOKIE_BYTES, MAX_COOKIE_PAIRS, SESSION_COOKIE,
    login_clear_cookie, login_set_cookie, parse_cookie_headers, session_clear_cookie,
    session_set_cookie,
};
pub use evaluate::{PostureAction, PostureSummary, Rules, RulesError, Signals, Verdict, evaluate};
pub use login::{
    CompletedLogin, LOGIN_TTL, LoginError, LoginStarted, LoginTransactions, MAX_STATE_LEN,
};
pub use persist::{EndCause, StoreFileError};
pub use redirect::{AllowedDomain, MAX_RETURN_TO_LEN, RedirectError, RedirectPolicy, ReturnTo};
pub use session::{
    FactorUse, NewSession, Origin, Reason, ReasonCode, Session, SessionState, UserIdentity,
    network_of,
};
pub use sites::{Site, SiteError, SiteTable, distance_km};
pub use store::{SessionError, SessionLimits, SessionStore, UserSelector};
pub use token::{Handle, TOKEN_BYTES, TOKEN_TEXT_LEN, Token};
