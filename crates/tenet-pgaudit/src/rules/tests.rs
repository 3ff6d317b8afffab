use super::*;
use crate::catalog::{DefaultGrant, Membership, RelationGrant};

fn role(name: &str, login: bool) -> Role {
    Role {
        name: name.to_owned(),
        quoted: quote_ident(name),
        can_login: login,
        ..Role::default()
    }
}

fn table(schema: &str, name: &str, owner: &str) -> Relation {
    Relation {
        display: format!("{schema}.{name}"),
        quoted: format!("{}.{}", quote_ident(schema), quote_ident(name)),
        schema_quoted: quote_ident(schema),
        kind: RelKind::Table,
        owner: owner.to_owned(),
        row_security: false,
        force_row_security: false,
    }
}

fn grant(relation: usize, grantee: &str, privileges: &[&str]) -> Vec<RelationGrant> {
    privileges
        .iter()
        .map(|p| RelationGrant {
            relation,
            grantee: Grantee::Role(grantee.to_owned()),
            privilege: (*p).to_owned(),
        })
        .collect()
}

fn rules_of(findings: &[Finding]) -> Vec<(&str, &str)> {
    findings
        .iter()
        .map(|f| (f.rule.as_str(), f.subject.as_str()))
        .collect()
}

#[test]
fn group_grants_count_for_their_login_members_only() {
    let mut catalog = Catalog {
        roles: vec![
            role("writers", false),
            role("app", true),
            role("unused", false),
        ],
        relations: vec![
            table("shop", "Orders", "owner"),
            table("shop", "items", "owner"),
        ],
        ..Catalog::default()
    };
    catalog.memberships.push(Membership {
        member: "app".into(),
        granted: "writers".into(),
        direct_group: "writers".into(),
        direct_group_quoted: "writers".into(),
    });
    catalog
        .relation_grants
        .extend(grant(0, "writers", &["SELECT", "INSERT", "TRUNCATE"]));
    catalog
        .relation_grants
        .extend(grant(1, "writers", &["SELECT"]));
    catalog
        .relation_grants
        .extend(grant(1, "unused", &["SELECT", "TRIGGER"]));

    let findings = assess(&catalog, "postgres://u@h/db");
    assert_eq!(rules_of(&findings), vec![("pg.all-privileges", "writers")]);
    let f = &findings[0];
    assert_eq!(
        f.title,
        "role \"writers\" has TRUNCATE on 1 tables (held by its members app)"
    );
    assert_eq!(
        f.remediation.as_deref(),
        Some(
            "REVOKE ALL ON TABLE shop.\"Orders\" FROM writers;\n\
             GRANT SELECT, INSERT ON TABLE shop.\"Orders\" TO writers;"
        )
    );
}

#[test]
fn bootstrap_superuser_is_reported_once_at_medium() {
    let mut postgres = role("postgres", true);
    postgres.bootstrap = true;
    postgres.superuser = true;
    postgres.create_role = true;
    postgres.bypass_rls = true;
    let catalog = Catalog {
        roles: vec![postgres],
        relations: vec![table("public", "t", "postgres")],
        ..Catalog::default()
    };
    let findings = assess(&catalog, "x");
    assert_eq!(
        rules_of(&findings),
        vec![("pg.superuser-login", "postgres")]
    );
    assert_eq!(findings[0].severity, Severity::Medium);
}

#[test]
fn superuser_app_role_gets_every_attribute_removed_in_one_statement() {
    let mut app = role("App", true);
    app.superuser = true;
    app.bypass_rls = true;
    app.replication = true;
    let catalog = Catalog {
        roles: vec![app],
        ..Catalog::default()
    };
    let findings = assess(&catalog, "x");
    assert_eq!(rules_of(&findings), vec![("pg.superuser", "App")]);
    assert!(
        findings[0]
            .remediation
            .as_deref()
            .unwrap()
            .starts_with("ALTER ROLE \"App\" NOSUPERUSER NOREPLICATION NOBYPASSRLS;")
    );
}

#[test]
fn default_privileges_keep_dml_and_drop_the_rest() {
    let base = DefaultGrant {
        role: "migrator".into(),
        role_quoted: "migrator".into(),
        schema: "shop".into(),
        schema_quoted: "shop".into(),
        object_type: "r".into(),
        grantee: Grantee::Role("app".into()),
        grantee_quoted: "app".into(),
        privilege: String::new(),
    };
    let mut catalog = Catalog {
        roles: vec![role("migrator", false), role("app", true)],
        ..Catalog::default()
    };
    for p in ["SELECT", "UPDATE", "TRUNCATE", "TRIGGER"] {
        catalog.default_grants.push(DefaultGrant {
            privilege: p.into(),
            ..base.clone()
        });
    }
    // DML only to a role: not a finding.
    catalog.default_grants.push(DefaultGrant {
        role: "other".into(),
        privilege: "SELECT".into(),
        ..base.clone()
    });
    let findings = assess(&catalog, "x");
    assert_eq!(
        rules_of(&findings),
        vec![("pg.default-privileges", "migrator")]
    );
    assert_eq!(
        findings[0].remediation.as_deref(),
        Some(
            "ALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA shop REVOKE ALL ON TABLES \
             FROM app;\nALTER DEFAULT PRIVILEGES FOR ROLE migrator IN SCHEMA shop GRANT SELECT, \
             UPDATE ON TABLES TO app;"
        )
    );
}
