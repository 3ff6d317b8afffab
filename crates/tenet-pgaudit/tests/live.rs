//! Audits the machine's real PostgreSQL (127.0.0.1:5432, trust auth) with roles, a schema and
//! tables this test creates under a random suffix and always drops again.
//!
//! The test fails, and does not skip, when PostgreSQL cannot be reached.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use tenet_finding::{Finding, Severity};

const ADMIN: &str = "host=127.0.0.1 port=5432 user=postgres dbname=test";
/// The audited URL carries a password (ignored under trust auth) to prove it is never shown.
const AUDIT_URL: &str = "postgres://postgres:not-shown-anywhere@127.0.0.1:5432/test";

/// Drops everything the test created, even when an assertion fails.
struct Fixture {
    client: postgres::Client,
    prefix: String,
    roles: Vec<&'static str>,
}

impl Fixture {
    fn new(roles: Vec<&'static str>) -> Fixture {
        let client = postgres::Client::connect(ADMIN, postgres::NoTls).unwrap_or_else(|e| {
            panic!("PostgreSQL on 127.0.0.1:5432 (database test) is required: {e}")
        });
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let prefix = format!("tenet_t{:x}{:x}", std::process::id(), nanos);
        Fixture {
            client,
            prefix,
            roles,
        }
    }

    fn schema(&self) -> String {
        self.prefix.clone()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let schema = self.schema();
        let mut sql = format!("DROP SCHEMA IF EXISTS {schema} CASCADE;");
        for role in &self.roles {
            let role = format!("{}_{role}", self.prefix);
            sql.push_str(&format!(
                "DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
                 EXECUTE 'DROP OWNED BY {role} CASCADE'; EXECUTE 'DROP ROLE {role}'; END IF; \
                 END $$;"
            ));
        }
        if let Err(e) = self.client.batch_execute(&sql) {
            eprintln!("cleanup of {} failed: {e}", self.prefix);
        }
    }
}

fn assess() -> Vec<Finding> {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime
        .block_on(tenet_pgaudit::assess_url(AUDIT_URL))
        .unwrap_or_else(|e| panic!("audit failed: {e}"));
    assert!(outcome.skipped.is_empty());
    outcome.findings
}

fn mine<'a>(findings: &'a [Finding], prefix: &str) -> Vec<&'a Finding> {
    findings
        .iter()
        .filter(|f| {
            f.subject.contains(prefix)
                || f.location
                    .pointer
                    .as_deref()
                    .is_some_and(|p| p.contains(prefix))
        })
        .collect()
}

fn find<'a>(findings: &[&'a Finding], rule: &str, subject: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.rule == rule && f.subject == subject)
        .unwrap_or_else(|| panic!("no {rule} for {subject}"))
}

#[test]
fn audits_roles_ownership_and_grants_of_a_real_database() {
    let roles = vec![
        "owner",
        "super",
        "creator",
        "bypass",
        "tableowner",
        "all",
        "writer",
        "grp",
        "via",
        "clean",
    ];
    let mut fx = Fixture::new(roles);
    let p = fx.prefix.clone();
    let s = fx.schema();
    let setup = format!(
        "CREATE ROLE {p}_owner NOLOGIN;
         CREATE ROLE {p}_super LOGIN SUPERUSER;
         CREATE ROLE {p}_creator LOGIN CREATEROLE;
         CREATE ROLE {p}_bypass LOGIN BYPASSRLS;
         CREATE ROLE {p}_tableowner LOGIN;
         CREATE ROLE {p}_all LOGIN;
         CREATE ROLE {p}_writer LOGIN;
         CREATE ROLE {p}_grp NOLOGIN SUPERUSER;
         CREATE ROLE {p}_via LOGIN;
         CREATE ROLE {p}_clean LOGIN;
         GRANT {p}_grp TO {p}_via;
         GRANT pg_write_all_data TO {p}_writer;
         CREATE SCHEMA {s} AUTHORIZATION {p}_owner;
         GRANT CREATE ON SCHEMA {s} TO PUBLIC;
         GRANT USAGE ON SCHEMA {s} TO {p}_clean, {p}_all, {p}_tableowner;
         CREATE TABLE {s}.accounts (id int PRIMARY KEY, holder text);
         ALTER TABLE {s}.accounts OWNER TO {p}_owner;
         ALTER TABLE {s}.accounts ENABLE ROW LEVEL SECURITY;
         CREATE TABLE {s}.\"Order Items\" (id int);
         ALTER TABLE {s}.\"Order Items\" OWNER TO {p}_owner;
         CREATE TABLE {s}.ledger (id serial PRIMARY KEY);
         ALTER TABLE {s}.ledger ENABLE ROW LEVEL SECURITY;
         ALTER TABLE {s}.ledger OWNER TO {p}_tableowner;
         GRANT ALL ON {s}.accounts, {s}.\"Order Items\" TO {p}_all;
         GRANT SELECT, INSERT ON {s}.accounts TO {p}_clean;
         GRANT SELECT, UPDATE ON {s}.\"Order Items\" TO PUBLIC;
         CREATE FUNCTION {s}.whoami(n int) RETURNS text SECURITY DEFINER LANGUAGE sql
           AS 'SELECT current_user::text';
         ALTER FUNCTION {s}.whoami(int) OWNER TO {p}_owner;
         ALTER DEFAULT PRIVILEGES FOR ROLE {p}_owner IN SCHEMA {s}
           GRANT SELECT ON TABLES TO PUBLIC;"
    );
    fx.client.batch_execute(&setup).unwrap();

    let all = assess();
    let findings = mine(&all, &p);
    let got: BTreeSet<(String, Severity, String)> = findings
        .iter()
        .map(|f| (f.rule.clone(), f.severity, f.subject.clone()))
        .collect();
    let want: BTreeSet<(String, Severity, String)> = [
        ("pg.superuser", Severity::Critical, format!("{p}_super")),
        (
            "pg.superuser-membership",
            Severity::Critical,
            format!("{p}_via"),
        ),
        ("pg.createrole", Severity::High, format!("{p}_creator")),
        ("pg.bypassrls", Severity::High, format!("{p}_bypass")),
        ("pg.owns-tables", Severity::High, format!("{p}_tableowner")),
        ("pg.all-privileges", Severity::Medium, format!("{p}_all")),
        (
            "pg.powerful-role-membership",
            Severity::High,
            format!("{p}_writer"),
        ),
        (
            "pg.public-grant",
            Severity::High,
            format!("{s}.Order Items"),
        ),
        ("pg.public-schema-create", Severity::High, s.clone()),
        (
            "pg.public-definer-routine",
            Severity::High,
            format!("{s}.whoami(n integer)"),
        ),
        (
            "pg.default-privileges",
            Severity::Medium,
            format!("{p}_owner"),
        ),
    ]
    .into_iter()
    .map(|(r, sev, subj)| (r.to_owned(), sev, subj))
    .collect();
    assert_eq!(got, want, "findings for this test's objects");

    // The least-privilege role has nothing; the password is nowhere.
    assert!(findings.iter().all(|f| f.subject != format!("{p}_clean")));
    for f in &all {
        assert_eq!(f.location.file, "postgres://postgres@127.0.0.1:5432/test");
        let text = serde_json::to_string(f).unwrap();
        assert!(!text.contains("not-shown-anywhere"));
    }
    // The maintenance superuser this test connects as is reported separately.
    assert!(
        all.iter()
            .any(|f| f.rule == "pg.superuser-login" && f.severity == Severity::Medium)
    );

    let excess = find(&findings, "pg.all-privileges", &format!("{p}_all"));
    assert!(excess.title.contains("ALL PRIVILEGES"), "{}", excess.title);
    assert_eq!(
        excess.remediation.as_deref().unwrap(),
        format!(
            "REVOKE ALL ON TABLE {s}.\"Order Items\", {s}.accounts FROM {p}_all;\n\
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {s}.\"Order Items\", {s}.accounts \
             TO {p}_all;"
        )
    );

    let owns = find(&findings, "pg.owns-tables", &format!("{p}_tableowner"));
    assert_eq!(
        owns.remediation.as_deref().unwrap(),
        format!(
            "CREATE ROLE {p}_tableowner_owner NOLOGIN;  -- owns the objects; nobody logs in as it\n\
             ALTER TABLE {s}.ledger OWNER TO {p}_tableowner_owner;\n\
             ALTER SEQUENCE {s}.ledger_id_seq OWNER TO {p}_tableowner_owner;\n\
             GRANT USAGE ON SCHEMA {s} TO {p}_tableowner;\n\
             GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {s}.ledger TO {p}_tableowner;\n\
             GRANT SELECT, USAGE ON SEQUENCE {s}.ledger_id_seq TO {p}_tableowner;"
        )
    );
    assert_eq!(
        owns.location.pointer.as_deref(),
        Some(format!("role {p}_tableowner").as_str())
    );

    let bypass = find(&findings, "pg.bypassrls", &format!("{p}_bypass"));
    let rls = bypass.evidence["rls_tables"].as_array().unwrap();
    assert!(rls.iter().any(|t| t == &format!("{s}.accounts")));

    let routine = find(
        &findings,
        "pg.public-definer-routine",
        &format!("{s}.whoami(n integer)"),
    );
    assert!(
        routine
            .remediation
            .as_deref()
            .unwrap()
            .starts_with(&format!(
                "REVOKE EXECUTE ON ROUTINE {s}.whoami(n integer) FROM PUBLIC;"
            ))
    );

    let super_fix = find(&findings, "pg.superuser", &format!("{p}_super"));
    assert!(
        super_fix
            .remediation
            .as_deref()
            .unwrap()
            .starts_with(&format!("ALTER ROLE {p}_super NOSUPERUSER;"))
    );
    let via = find(&findings, "pg.superuser-membership", &format!("{p}_via"));
    assert_eq!(
        via.remediation.as_deref(),
        Some(format!("REVOKE {p}_grp FROM {p}_via;").as_str())
    );
}
