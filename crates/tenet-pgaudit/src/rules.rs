//! The `pg.*` rules: from a [`Catalog`] to findings with table-scoped remediation SQL.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use tenet_finding::{Finding, Location, Severity};

use crate::catalog::{Catalog, Grantee, RelKind, Relation, Role};
use crate::sql::{BEYOND_DML, DML, grant_statements, privilege_list, quote_ident};

/// Runs every rule over one database's catalogue. `file` is the URL without password.
pub(crate) fn assess(catalog: &Catalog, file: &str) -> Vec<Finding> {
    let audit = Audit { catalog, file };
    let mut findings = Vec::new();
    for role in catalog.roles.iter().filter(|r| r.can_login) {
        audit.role_attributes(role, &mut findings);
        if !role.bootstrap {
            audit.memberships(role, &mut findings);
            audit.ownership(role, &mut findings);
        }
    }
    audit.excess_privileges(&mut findings);
    audit.public_relation_grants(&mut findings);
    audit.public_schema_and_database(&mut findings);
    audit.definer_routines(&mut findings);
    audit.default_privileges(&mut findings);
    findings.sort_by(Finding::report_order);
    findings
}

struct Audit<'a> {
    catalog: &'a Catalog,
    file: &'a str,
}

/// How much a membership in a predefined role gives, and why.
fn predefined_role_risk(role: &str) -> Option<(Severity, &'static str)> {
    let risk = match role {
        "pg_execute_server_program" => (
            Severity::Critical,
            "runs programs on the database server as the server's operating-system user",
        ),
        "pg_write_server_files" | "pg_read_server_files" => (
            Severity::Critical,
            "reads or writes files on the database server with the server's rights",
        ),
        "pg_write_all_data" => (
            Severity::High,
            "may INSERT, UPDATE and DELETE in every table of every schema",
        ),
        "pg_read_all_data" => (Severity::High, "may read every table of every schema"),
        "pg_maintain" | "pg_signal_backend" | "pg_create_subscription" => (
            Severity::Medium,
            "may act on other roles' sessions or objects beyond its own tables",
        ),
        _ => return None,
    };
    Some(risk)
}

impl Audit<'_> {
    fn location(&self, pointer: String) -> Location {
        Location::file(self.file).with_pointer(pointer)
    }

    fn role(&self, name: &str) -> Option<&Role> {
        self.catalog.roles.iter().find(|r| r.name == name)
    }

    fn quoted_role(&self, name: &str) -> String {
        self.role(name)
            .map_or_else(|| quote_ident(name), |r| r.quoted.clone())
    }

    /// Login roles that hold `group`, directly or through other roles.
    fn login_members(&self, group: &str) -> Vec<&str> {
        let mut members: Vec<&str> = self
            .catalog
            .memberships
            .iter()
            .filter(|m| m.granted == group)
            .filter(|m| self.role(&m.member).is_some_and(|r| r.can_login))
            .map(|m| m.member.as_str())
            .collect();
        members.sort_unstable();
        members.dedup();
        members
    }

    /// A grantee whose privileges matter: a login role other than the bootstrap superuser,
    /// or a group that login roles belong to.
    fn is_application_grantee(&self, name: &str) -> bool {
        match self.role(name) {
            Some(role) if role.can_login => !role.bootstrap,
            _ => !self.login_members(name).is_empty(),
        }
    }

    fn rls_tables(&self) -> Vec<&str> {
        self.catalog
            .relations
            .iter()
            .filter(|r| r.row_security)
            .map(|r| r.display.as_str())
            .collect()
    }

    fn role_attributes(&self, role: &Role, out: &mut Vec<Finding>) {
        let at = || self.location(format!("role {}", role.name));
        if role.superuser && role.bootstrap {
            out.push(
                Finding::new(
                    "pg.superuser-login",
                    Severity::Medium,
                    &role.name,
                    at(),
                    format!("maintenance superuser \"{}\" can log in", role.name),
                    "The bootstrap superuser has a login. It is a maintenance account, not an \
                     application role, but anyone who reaches it over the network with its \
                     credentials controls the whole cluster, including running programs on the \
                     server.",
                )
                .with_remediation(
                    "Allow it only over the local socket (pg_hba.conf: `local all postgres peer` \
                     and a `reject` line for host connections), or give it a strong secret kept \
                     out of applications; applications connect as their own least-privilege \
                     roles.",
                ),
            );
            return;
        }
        if role.superuser {
            let mut clauses = vec!["NOSUPERUSER"];
            for (on, clause) in [
                (role.create_role, "NOCREATEROLE"),
                (role.create_db, "NOCREATEDB"),
                (role.replication, "NOREPLICATION"),
                (role.bypass_rls, "NOBYPASSRLS"),
            ] {
                if on {
                    clauses.push(clause);
                }
            }
            out.push(
                Finding::new(
                    "pg.superuser",
                    Severity::Critical,
                    &role.name,
                    at(),
                    format!("login role \"{}\" is a superuser", role.name),
                    "An application login role with SUPERUSER bypasses every permission check \
                     and row-level security policy, and can read server files and run programs \
                     on the server: whoever holds its credentials, or injects SQL through the \
                     application, controls the whole cluster.",
                )
                .with_evidence("attributes", json!(clauses))
                .with_remediation(format!(
                    "ALTER ROLE {} {};\n-- then grant only the table privileges it uses (see \
                     the ownership and privilege findings for this role)",
                    role.quoted,
                    clauses.join(" ")
                )),
            );
            return;
        }
        self.attribute_findings(role, out);
    }

    fn attribute_findings(&self, role: &Role, out: &mut Vec<Finding>) {
        let at = || self.location(format!("role {}", role.name));
        if role.create_role {
            out.push(
                Finding::new(
                    "pg.createrole",
                    Severity::High,
                    &role.name,
                    at(),
                    format!("login role \"{}\" has CREATEROLE", role.name),
                    "CREATEROLE lets the role create, alter and drop other roles and grant \
                     memberships: a path to the privileges of other roles.",
                )
                .with_remediation(format!("ALTER ROLE {} NOCREATEROLE;", role.quoted)),
            );
        }
        if role.bypass_rls {
            let tables = self.rls_tables();
            out.push(
                Finding::new(
                    "pg.bypassrls",
                    Severity::High,
                    &role.name,
                    at(),
                    format!("login role \"{}\" has BYPASSRLS", role.name),
                    format!(
                        "BYPASSRLS ignores every row-level security policy{}.",
                        if tables.is_empty() {
                            String::new()
                        } else {
                            format!(", including those of {}", tables.join(", "))
                        }
                    ),
                )
                .with_evidence("rls_tables", json!(tables))
                .with_remediation(format!("ALTER ROLE {} NOBYPASSRLS;", role.quoted)),
            );
        }
        if role.replication {
            out.push(
                Finding::new(
                    "pg.replication",
                    Severity::High,
                    &role.name,
                    at(),
                    format!("login role \"{}\" has REPLICATION", role.name),
                    "REPLICATION lets the role stream the whole cluster's changes and take base \
                     backups, which is every row of every table.",
                )
                .with_remediation(format!("ALTER ROLE {} NOREPLICATION;", role.quoted)),
            );
        }
        if role.create_db {
            out.push(
                Finding::new(
                    "pg.createdb",
                    Severity::Low,
                    &role.name,
                    at(),
                    format!("login role \"{}\" has CREATEDB", role.name),
                    "An application role rarely needs to create databases.",
                )
                .with_remediation(format!("ALTER ROLE {} NOCREATEDB;", role.quoted)),
            );
        }
    }

    fn memberships(&self, role: &Role, out: &mut Vec<Finding>) {
        let at = || self.location(format!("role {}", role.name));
        for m in self
            .catalog
            .memberships
            .iter()
            .filter(|m| m.member == role.name)
        {
            let via = if m.direct_group == m.granted {
                String::new()
            } else {
                format!(" through \"{}\"", m.direct_group)
            };
            let revoke = format!("REVOKE {} FROM {};", m.direct_group_quoted, role.quoted);
            let granted = self.role(&m.granted);
            let (rule, severity, what) = if granted.is_some_and(|g| g.superuser) {
                (
                    "pg.superuser-membership",
                    Severity::Critical,
                    "a superuser role; SET ROLE gives it superuser rights",
                )
            } else if granted.is_some_and(|g| g.create_role) {
                (
                    "pg.createrole",
                    Severity::High,
                    "a role with CREATEROLE; SET ROLE lets it manage roles",
                )
            } else if granted.is_some_and(|g| g.bypass_rls) {
                (
                    "pg.bypassrls",
                    Severity::High,
                    "a role with BYPASSRLS; SET ROLE lets it ignore row-level security",
                )
            } else if let Some((severity, what)) = predefined_role_risk(&m.granted) {
                ("pg.powerful-role-membership", severity, what)
            } else {
                continue;
            };
            out.push(
                Finding::new(
                    rule,
                    severity,
                    &role.name,
                    at(),
                    format!(
                        "login role \"{}\" is a member of \"{}\"{via}",
                        role.name, m.granted
                    ),
                    format!("\"{}\" is {what}.", m.granted),
                )
                .with_evidence("member_of", m.granted.clone())
                .with_evidence("via", m.direct_group.clone())
                .with_remediation(revoke),
            );
        }
    }

    /// Privileges on relations, per relation, that `grantee` holds directly.
    fn grants_of(&self, grantee: &Grantee) -> BTreeMap<usize, BTreeSet<String>> {
        let mut held: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
        for g in self
            .catalog
            .relation_grants
            .iter()
            .filter(|g| &g.grantee == grantee)
        {
            held.entry(g.relation)
                .or_default()
                .insert(g.privilege.clone());
        }
        held
    }

    fn relation(&self, index: usize) -> Option<&Relation> {
        self.catalog.relations.get(index)
    }

    fn ownership(&self, role: &Role, out: &mut Vec<Finding>) {
        let owned: Vec<&Relation> = self
            .catalog
            .relations
            .iter()
            .filter(|r| r.owner == role.name)
            .collect();
        let data: Vec<&&Relation> = owned
            .iter()
            .filter(|r| r.kind != RelKind::Sequence)
            .collect();
        if data.is_empty() {
            return;
        }
        let unforced_rls: Vec<&str> = data
            .iter()
            .filter(|r| r.row_security && !r.force_row_security)
            .map(|r| r.display.as_str())
            .collect();
        let severity = if unforced_rls.is_empty() {
            Severity::Medium
        } else {
            Severity::High
        };
        let names: Vec<&str> = data.iter().map(|r| r.display.as_str()).collect();
        let owner_role = quote_ident(&format!("{}_owner", role.name));

        let mut sql = vec![format!(
            "CREATE ROLE {owner_role} NOLOGIN;  -- owns the objects; nobody logs in as it"
        )];
        for r in &owned {
            sql.push(format!(
                "ALTER {} {} OWNER TO {owner_role};",
                r.kind.alter_keyword(),
                r.quoted
            ));
        }
        let schemas: BTreeSet<&str> = owned.iter().map(|r| r.schema_quoted.as_str()).collect();
        for schema in schemas {
            sql.push(format!(
                "GRANT USAGE ON SCHEMA {schema} TO {};",
                role.quoted
            ));
        }
        let dml: BTreeSet<String> = DML.iter().map(|p| (*p).to_owned()).collect();
        let tables = data
            .iter()
            .map(|r| (r.quoted.clone(), dml.clone()))
            .collect();
        sql.extend(grant_statements("TABLE", &tables, &role.quoted));
        let sequences: BTreeMap<String, BTreeSet<String>> = owned
            .iter()
            .filter(|r| r.kind == RelKind::Sequence)
            .map(|r| {
                let usage = ["USAGE", "SELECT"].map(str::to_owned);
                (r.quoted.clone(), BTreeSet::from(usage))
            })
            .collect();
        sql.extend(grant_statements("SEQUENCE", &sequences, &role.quoted));

        let rls_note = if unforced_rls.is_empty() {
            String::new()
        } else {
            format!(
                " As owner it also bypasses the row-level security of {} (RLS is not FORCEd).",
                unforced_rls.join(", ")
            )
        };
        out.push(
            Finding::new(
                "pg.owns-tables",
                severity,
                &role.name,
                self.location(format!("role {}", role.name)),
                format!(
                    "login role \"{}\" owns {} of the tables it uses",
                    role.name,
                    names.len()
                ),
                format!(
                    "The owner of a table bypasses grants, and can ALTER, DROP and re-GRANT it: a \
                     compromised application can destroy its schema.{rls_note}"
                ),
            )
            .with_evidence("owned", json!(names))
            .with_evidence("rls_bypassed_as_owner", json!(unforced_rls))
            .with_remediation(sql.join("\n")),
        );
    }

    /// `pg.all-privileges`: TRUNCATE, REFERENCES, TRIGGER (MAINTAIN) granted to application
    /// roles, with the table-scoped REVOKE and GRANT that keep only what DML needs.
    fn excess_privileges(&self, out: &mut Vec<Finding>) {
        let grantees: BTreeSet<&String> = self
            .catalog
            .relation_grants
            .iter()
            .filter_map(|g| match &g.grantee {
                Grantee::Role(name) => Some(name),
                Grantee::Public => None,
            })
            .collect();
        for name in grantees {
            if !self.is_application_grantee(name) {
                continue;
            }
            let held = self.grants_of(&Grantee::Role(name.clone()));
            let mut excess: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
            let mut keep: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
            let mut all_privileges = true;
            for (&index, privileges) in &held {
                let Some(rel) = self.relation(index) else {
                    continue;
                };
                if rel.kind == RelKind::Sequence {
                    continue;
                }
                let extra: BTreeSet<&str> = privileges
                    .iter()
                    .map(String::as_str)
                    .filter(|p| BEYOND_DML.contains(p))
                    .collect();
                if extra.is_empty() {
                    continue;
                }
                let table_privileges = ["SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"]
                    .into_iter()
                    .chain(["REFERENCES", "TRIGGER"]);
                all_privileges &= table_privileges.into_iter().all(|p| privileges.contains(p));
                excess.insert(&rel.display, extra);
                let kept = privileges
                    .iter()
                    .filter(|p| DML.contains(&p.as_str()))
                    .cloned()
                    .collect();
                keep.insert(rel.quoted.clone(), kept);
            }
            if excess.is_empty() {
                continue;
            }
            out.push(self.excess_finding(name, &excess, &keep, all_privileges));
        }
    }

    fn excess_finding(
        &self,
        name: &str,
        excess: &BTreeMap<&str, BTreeSet<&str>>,
        keep: &BTreeMap<String, BTreeSet<String>>,
        all_privileges: bool,
    ) -> Finding {
        let quoted = self.quoted_role(name);
        let extra_union: BTreeSet<&str> = excess.values().flatten().copied().collect();
        let what = if all_privileges {
            "ALL PRIVILEGES".to_owned()
        } else {
            privilege_list(extra_union.iter().copied())
        };
        let tables: Vec<&str> = excess.keys().copied().collect();
        let objects: Vec<&str> = keep.keys().map(String::as_str).collect();
        let mut sql = vec![format!(
            "REVOKE ALL ON TABLE {} FROM {quoted};",
            objects.join(", ")
        )];
        sql.extend(grant_statements("TABLE", keep, &quoted));
        let members = self.login_members(name);
        let through = if self.role(name).is_some_and(|r| r.can_login) || members.is_empty() {
            String::new()
        } else {
            format!(" (held by its members {})", members.join(", "))
        };
        Finding::new(
            "pg.all-privileges",
            Severity::Medium,
            name,
            self.location(format!("role {name}")),
            format!(
                "role \"{name}\" has {what} on {} tables{through}",
                tables.len()
            ),
            format!(
                "{} on {} go beyond what an application needs: TRUNCATE empties a table without \
                 row-level checks or DELETE triggers, TRIGGER runs code on other roles' writes, \
                 REFERENCES lets it block deletes with foreign keys.",
                privilege_list(extra_union.iter().copied()),
                tables.join(", ")
            ),
        )
        .with_evidence("tables", json!(tables))
        .with_evidence("excess_privileges", json!(extra_union))
        .with_remediation(sql.join("\n"))
    }

    fn public_relation_grants(&self, out: &mut Vec<Finding>) {
        for (index, privileges) in self.grants_of(&Grantee::Public) {
            let Some(rel) = self.relation(index) else {
                continue;
            };
            let writes = privileges.iter().any(|p| p != "SELECT" && p != "USAGE");
            let severity = if writes {
                Severity::High
            } else {
                Severity::Medium
            };
            let keyword = if rel.kind == RelKind::Sequence {
                "SEQUENCE"
            } else {
                "TABLE"
            };
            let list = privilege_list(privileges.iter().map(String::as_str));
            out.push(
                Finding::new(
                    "pg.public-grant",
                    severity,
                    &rel.display,
                    self.location(format!("{} {}", keyword.to_lowercase(), rel.display)),
                    format!("PUBLIC has {list} on {}", rel.display),
                    "A grant to PUBLIC applies to every role that exists now or is created later, \
                     including roles of other applications.",
                )
                .with_evidence("privileges", json!(privileges))
                .with_remediation(format!(
                    "REVOKE ALL ON {keyword} {} FROM PUBLIC;\n-- then GRANT {list} ON {keyword} \
                     {} TO the roles that need it",
                    rel.quoted, rel.quoted
                )),
            );
        }
    }

    fn public_schema_and_database(&self, out: &mut Vec<Finding>) {
        for g in &self.catalog.schema_grants {
            if g.grantee != Grantee::Public || g.privilege != "CREATE" {
                continue;
            }
            out.push(
                Finding::new(
                    "pg.public-schema-create",
                    Severity::High,
                    &g.schema,
                    self.location(format!("schema {}", g.schema)),
                    format!("PUBLIC may CREATE in schema \"{}\"", g.schema),
                    "Any role can create functions, operators and tables in this schema; objects \
                     placed earlier on another role's search_path run with that role's rights \
                     (CVE-2018-1058).",
                )
                .with_remediation(format!(
                    "REVOKE CREATE ON SCHEMA {} FROM PUBLIC;",
                    g.schema_quoted
                )),
            );
        }
        for g in &self.catalog.database_grants {
            if g.privilege != "CREATE" {
                continue;
            }
            out.push(
                Finding::new(
                    "pg.public-database-create",
                    Severity::Medium,
                    &g.database,
                    self.location(format!("database {}", g.database)),
                    format!("PUBLIC may create schemas in database \"{}\"", g.database),
                    "Any role that can connect can create schemas and objects in this database.",
                )
                .with_remediation(format!(
                    "REVOKE CREATE ON DATABASE {} FROM PUBLIC;",
                    g.database_quoted
                )),
            );
        }
    }

    fn definer_routines(&self, out: &mut Vec<Finding>) {
        for r in &self.catalog.definer_routines {
            out.push(
                Finding::new(
                    "pg.public-definer-routine",
                    Severity::High,
                    &r.signature,
                    self.location(format!("routine {}", r.signature)),
                    format!(
                        "PUBLIC may execute SECURITY DEFINER routine {}",
                        r.signature
                    ),
                    format!(
                        "The routine runs with the rights of its owner \"{}\", and every role may \
                         call it.",
                        r.owner
                    ),
                )
                .with_evidence("owner", r.owner.clone())
                .with_remediation(format!(
                    "REVOKE EXECUTE ON ROUTINE {} FROM PUBLIC;\n-- then GRANT EXECUTE ON ROUTINE \
                     {} TO the roles that need it",
                    r.signature, r.signature
                )),
            );
        }
    }

    fn default_privileges(&self, out: &mut Vec<Finding>) {
        type Key<'k> = (&'k str, &'k str, &'k str, &'k Grantee);
        let mut grouped: BTreeMap<Key<'_>, (BTreeSet<&str>, &crate::catalog::DefaultGrant)> =
            BTreeMap::new();
        for d in &self.catalog.default_grants {
            let key = (
                d.role.as_str(),
                d.schema.as_str(),
                d.object_type.as_str(),
                &d.grantee,
            );
            grouped
                .entry(key)
                .or_insert_with(|| (BTreeSet::new(), d))
                .0
                .insert(d.privilege.as_str());
        }
        for ((_, _, object_type, grantee), (privileges, d)) in grouped {
            let objects = match object_type {
                "r" => "TABLES",
                "S" => "SEQUENCES",
                "n" => "SCHEMAS",
                _ => continue,
            };
            let public = *grantee == Grantee::Public;
            let excess: BTreeSet<&str> = privileges
                .iter()
                .copied()
                .filter(|p| object_type == "r" && BEYOND_DML.contains(p))
                .collect();
            if !public && excess.is_empty() {
                continue;
            }
            out.push(self.default_privilege_finding(d, objects, &privileges, &excess));
        }
    }

    fn default_privilege_finding(
        &self,
        d: &crate::catalog::DefaultGrant,
        objects: &str,
        privileges: &BTreeSet<&str>,
        excess: &BTreeSet<&str>,
    ) -> Finding {
        let scope = if d.schema.is_empty() {
            String::new()
        } else {
            format!(" IN SCHEMA {}", d.schema_quoted)
        };
        let grantee = match &d.grantee {
            Grantee::Public => "PUBLIC".to_owned(),
            Grantee::Role(name) => name.clone(),
        };
        let prefix = format!("ALTER DEFAULT PRIVILEGES FOR ROLE {}{scope}", d.role_quoted);
        let mut sql = vec![format!(
            "{prefix} REVOKE ALL ON {objects} FROM {};",
            d.grantee_quoted
        )];
        let kept: Vec<&str> = privileges
            .iter()
            .copied()
            .filter(|p| !excess.contains(p))
            .collect();
        if d.grantee != Grantee::Public && !kept.is_empty() {
            sql.push(format!(
                "{prefix} GRANT {} ON {objects} TO {};",
                privilege_list(kept),
                d.grantee_quoted
            ));
        }
        let list = privilege_list(privileges.iter().copied());
        let where_ = if d.schema.is_empty() {
            "any schema".to_owned()
        } else {
            format!("schema {}", d.schema)
        };
        Finding::new(
            "pg.default-privileges",
            Severity::Medium,
            &d.role,
            self.location(format!("default privileges of role {} in {where_}", d.role)),
            format!(
                "new {} created by \"{}\" in {where_} are granted {list} to {grantee}",
                objects.to_lowercase(),
                d.role
            ),
            "Default privileges hand these rights out on every future object, so the broad \
             grant comes back after each migration.",
        )
        .with_evidence("grantee", grantee.clone())
        .with_evidence("privileges", json!(privileges))
        .with_remediation(sql.join("\n"))
    }
}

#[cfg(test)]
mod tests;
