//! PostgreSQL audit: login roles, their attributes and memberships, ownership of the tables
//! they use, and broad or `PUBLIC` grants, read from the catalogues of a live database.
//!
//! [`assess_url`] connects with a `postgres://` URL, reads `pg_roles`, `pg_auth_members`
//! (memberships are followed transitively), the ACLs of relations, schemas, routines and the
//! database (`aclexplode`, `PUBLIC` being grantee 0), `pg_default_acl` and the row-level
//! security flags in one read-only snapshot, and turns them into `pg.*` findings. Each finding
//! carries the SQL that fixes it: `ALTER ROLE ... NOSUPERUSER`, ownership moved to a non-login
//! role, and `REVOKE ALL` followed by table-scoped `GRANT SELECT, INSERT, UPDATE, DELETE`
//! statements built from the privileges the role holds now. Identifiers in that SQL are quoted
//! by the server's own `quote_ident`.
//!
//! Which tables a role "uses" is taken from its current grants and ownership; statement
//! statistics (`pg_stat_statements`) are not consulted.
//!
//! The password never leaves this crate: findings and errors name the URL with the password
//! (and any `password=` parameter) removed.
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod catalog;
mod rules;
mod sql;

use std::str::FromStr;
use std::time::Duration;

use tenet_finding::Outcome;
use tokio_postgres::NoTls;
use tokio_postgres::config::SslMode;

/// How long establishing the connection may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long reading the catalogues may take.
pub const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a database could not be audited.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgAuditError {
    /// The URL is not a `postgres://` or `postgresql://` URL tokio-postgres accepts.
    #[error("invalid PostgreSQL URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL without password, or `<unparsable>`.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL asks for TLS (`sslmode=require`, `verify-ca`, `verify-full`), which this build
    /// does not offer; connecting in plaintext instead would break the caller's requirement.
    #[error("{url}: sslmode={mode} needs TLS, which this audit does not support yet")]
    TlsUnsupported {
        /// The URL without password.
        url: String,
        /// The requested mode.
        mode: String,
    },
    /// The server refused or could not be reached.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// The URL without password.
        url: String,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// A catalogue query failed (for example, a role without access to the catalogues).
    #[error("reading the catalogues of {url} failed in the {query} query: {source}")]
    Query {
        /// The URL without password.
        url: String,
        /// Which query.
        query: &'static str,
        /// The driver's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// Connecting or reading took longer than allowed.
    #[error("{url}: {what} timed out after {} s", after.as_secs())]
    Timeout {
        /// The URL without password.
        url: String,
        /// `connecting` or `reading the catalogues`.
        what: &'static str,
        /// The limit that was reached.
        after: Duration,
    },
}

/// A parsed target: the driver configuration and the URL safe to print.
struct Target {
    config: tokio_postgres::Config,
    redacted: String,
}

/// The URL with its password and any `password` query parameter removed: what findings and
/// errors name as the location.
pub fn redact_url(url: &str) -> Result<String, PgAuditError> {
    let mut parsed = url::Url::parse(url).map_err(|e| PgAuditError::InvalidUrl {
        url: "<unparsable>".to_owned(),
        reason: e.to_string(),
    })?;
    let _ = parsed.set_password(None);
    let pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .filter(|(k, _)| k != "password")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    if pairs.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    Ok(parsed.to_string())
}

fn parse_target(url: &str) -> Result<Target, PgAuditError> {
    let redacted = redact_url(url)?;
    let invalid = |reason: String| PgAuditError::InvalidUrl {
        url: redacted.clone(),
        reason,
    };
    let mut parsed = url::Url::parse(url).map_err(|e| invalid(e.to_string()))?;
    if !matches!(parsed.scheme(), "postgres" | "postgresql") {
        return Err(invalid(format!(
            "scheme {:?} is not postgres or postgresql",
            parsed.scheme()
        )));
    }

    // sslmode is handled here: the driver knows fewer modes than libpq.
    let mut mode = "prefer".to_owned();
    let rest: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == "sslmode" {
                mode = v.into_owned();
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if rest.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(rest);
    }
    let ssl_mode = match mode.as_str() {
        "disable" | "allow" => SslMode::Disable,
        "prefer" => SslMode::Prefer,
        "require" | "verify-ca" | "verify-full" => {
            return Err(PgAuditError::TlsUnsupported {
                url: redacted,
                mode,
            });
        }
        other => return Err(invalid(format!("unknown sslmode {other:?}"))),
    };

    let mut config =
        tokio_postgres::Config::from_str(parsed.as_str()).map_err(|e| invalid(e.to_string()))?;
    config.ssl_mode(ssl_mode);
    config.connect_timeout(CONNECT_TIMEOUT);
    if config.get_application_name().is_none() {
        config.application_name("tenet-pgaudit");
    }
    Ok(Target { config, redacted })
}

/// Connects to the database named by `url`, reads its catalogues and returns the `pg.*`
/// findings. Locations name the URL without password and the catalogue object (`role app`,
/// `table s.t`, `schema s`, ...).
pub async fn assess_url(url: &str) -> Result<Outcome, PgAuditError> {
    let target = parse_target(url)?;
    let redacted = target.redacted.clone();
    let connect = tokio::time::timeout(CONNECT_TIMEOUT, target.config.connect(NoTls));
    let (mut client, connection) = connect
        .await
        .map_err(|_| PgAuditError::Timeout {
            url: redacted.clone(),
            what: "connecting",
            after: CONNECT_TIMEOUT,
        })?
        .map_err(|source| PgAuditError::Connect {
            url: redacted.clone(),
            source,
        })?;
    // The connection future drives the socket; it ends when `client` is dropped.
    let driver = tokio::spawn(connection);

    let read = tokio::time::timeout(READ_TIMEOUT, catalog::Catalog::read(&mut client)).await;
    drop(client);
    let _ = driver.await;
    let catalog = read
        .map_err(|_| PgAuditError::Timeout {
            url: redacted.clone(),
            what: "reading the catalogues",
            after: READ_TIMEOUT,
        })?
        .map_err(|e| PgAuditError::Query {
            url: redacted.clone(),
            query: e.query,
            source: e.source,
        })?;

    Ok(Outcome {
        findings: rules::assess(&catalog, &redacted),
        skipped: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_removes_passwords() {
        let r = redact_url("postgres://app:s3cr%40t@db.example:5433/shop?sslmode=disable").unwrap();
        assert_eq!(r, "postgres://app@db.example:5433/shop?sslmode=disable");
        let r = redact_url("postgresql://app@h/db?password=s3cret&application_name=x").unwrap();
        assert_eq!(r, "postgresql://app@h/db?application_name=x");
        assert!(
            !redact_url("postgres://a:pw@h/d?password=pw")
                .unwrap()
                .contains("pw")
        );
    }

    #[test]
    fn bad_urls_are_typed_errors_without_password() {
        let err = parse_target("mysql://root:hunter2@h/db").err().unwrap();
        let text = err.to_string();
        assert!(text.contains("mysql://root@h/db"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");

        let err = parse_target("not a url").err().unwrap();
        assert!(matches!(err, PgAuditError::InvalidUrl { .. }));

        let err = parse_target("postgres://u:hunter2@h/db?sslmode=verify-full")
            .err()
            .unwrap();
        assert!(matches!(err, PgAuditError::TlsUnsupported { .. }));
        assert!(!err.to_string().contains("hunter2"));

        let err = parse_target("postgres://u@h/db?sslmode=sometimes")
            .err()
            .unwrap();
        assert!(err.to_string().contains("sometimes"));
    }

    #[test]
    fn accepted_url_keeps_user_database_and_other_options() {
        let t = parse_target("postgres://app:pw@127.0.0.1:5433/shop?sslmode=disable").unwrap();
        assert_eq!(t.config.get_user(), Some("app"));
        assert_eq!(t.config.get_dbname(), Some("shop"));
        assert_eq!(t.config.get_password(), Some(&b"pw"[..]));
        assert_eq!(t.config.get_ports(), &[5433]);
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        assert_eq!(
            t.redacted,
            "postgres://app@127.0.0.1:5433/shop?sslmode=disable"
        );
    }

    #[tokio::test]
    async fn refused_connection_names_the_url_not_the_password() {
        // Port 1 on loopback: nothing listens there.
        let err = assess_url("postgres://u:hunter2@127.0.0.1:1/db")
            .await
            .err()
            .unwrap();
        let text = err.to_string();
        assert!(matches!(err, PgAuditError::Connect { .. }), "{text}");
        assert!(text.contains("postgres://u@127.0.0.1:1/db"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }
}
