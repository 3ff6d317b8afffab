//! Reading roles, memberships, ownership and privileges from the PostgreSQL catalogues.
//!
//! Every name is read together with its `quote_ident` form from the server itself, so the
//! remediation SQL quotes identifiers exactly as PostgreSQL would.

use tokio_postgres::{Client, Row};

/// A grantee in an ACL: a role or `PUBLIC` (grantee oid 0).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Grantee {
    /// Every role, present and future.
    Public,
    /// A named role.
    Role(String),
}

impl Grantee {
    fn from_column(name: String) -> Self {
        if name.is_empty() {
            Grantee::Public
        } else {
            Grantee::Role(name)
        }
    }
}

/// One role from `pg_roles` (predefined `pg_*` roles are not listed).
#[derive(Debug, Clone, Default)]
pub(crate) struct Role {
    pub name: String,
    pub quoted: String,
    /// The bootstrap superuser (oid 10), the cluster's maintenance account.
    pub bootstrap: bool,
    pub superuser: bool,
    pub create_role: bool,
    pub create_db: bool,
    pub bypass_rls: bool,
    pub can_login: bool,
    pub replication: bool,
}

/// A membership, direct or inherited through other roles.
#[derive(Debug, Clone)]
pub(crate) struct Membership {
    pub member: String,
    pub granted: String,
    /// The role through which `member` holds `granted`, or `granted` when it is direct:
    /// this is what `REVOKE ... FROM member` must name.
    pub direct_group: String,
    pub direct_group_quoted: String,
}

/// The kinds of relation the audit looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum RelKind {
    Table,
    View,
    MaterializedView,
    ForeignTable,
    Sequence,
}

impl RelKind {
    fn from_relkind(kind: &str) -> Option<Self> {
        match kind {
            "r" | "p" => Some(RelKind::Table),
            "v" => Some(RelKind::View),
            "m" => Some(RelKind::MaterializedView),
            "f" => Some(RelKind::ForeignTable),
            "S" => Some(RelKind::Sequence),
            _ => None,
        }
    }

    /// The keyword `ALTER <kind> ... OWNER TO` takes.
    pub fn alter_keyword(self) -> &'static str {
        match self {
            RelKind::Table => "TABLE",
            RelKind::View => "VIEW",
            RelKind::MaterializedView => "MATERIALIZED VIEW",
            RelKind::ForeignTable => "FOREIGN TABLE",
            RelKind::Sequence => "SEQUENCE",
        }
    }
}

/// A relation in a non-system schema.
#[derive(Debug, Clone)]
pub(crate) struct Relation {
    /// `schema.name` unquoted, for reading.
    pub display: String,
    /// `schema.name` quoted, for SQL.
    pub quoted: String,
    pub schema_quoted: String,
    pub kind: RelKind,
    pub owner: String,
    pub row_security: bool,
    pub force_row_security: bool,
}

/// One privilege on one relation, granted to someone other than its owner.
#[derive(Debug, Clone)]
pub(crate) struct RelationGrant {
    /// Index into [`Catalog::relations`].
    pub relation: usize,
    pub grantee: Grantee,
    pub privilege: String,
}

/// A privilege on a schema granted to someone other than its owner.
#[derive(Debug, Clone)]
pub(crate) struct SchemaGrant {
    pub schema: String,
    pub schema_quoted: String,
    pub grantee: Grantee,
    pub privilege: String,
}

/// A `SECURITY DEFINER` routine that `PUBLIC` may execute.
#[derive(Debug, Clone)]
pub(crate) struct PublicDefinerRoutine {
    /// `schema.name(argument types)`, quoted, usable after `ON ROUTINE`.
    pub signature: String,
    pub owner: String,
}

/// A privilege on the current database granted to `PUBLIC`.
#[derive(Debug, Clone)]
pub(crate) struct DatabaseGrant {
    pub database: String,
    pub database_quoted: String,
    pub privilege: String,
}

/// One entry of `pg_default_acl`.
#[derive(Debug, Clone)]
pub(crate) struct DefaultGrant {
    pub role: String,
    pub role_quoted: String,
    /// Empty for defaults that apply in every schema.
    pub schema: String,
    pub schema_quoted: String,
    /// `r` tables, `S` sequences, `f` functions, `T` types, `n` schemas.
    pub object_type: String,
    pub grantee: Grantee,
    pub grantee_quoted: String,
    pub privilege: String,
}

/// What the audit read from one database.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    pub roles: Vec<Role>,
    pub memberships: Vec<Membership>,
    pub relations: Vec<Relation>,
    pub relation_grants: Vec<RelationGrant>,
    pub schema_grants: Vec<SchemaGrant>,
    pub definer_routines: Vec<PublicDefinerRoutine>,
    pub database_grants: Vec<DatabaseGrant>,
    pub default_grants: Vec<DefaultGrant>,
}

/// A catalogue query failed; `query` names which.
#[derive(Debug)]
pub(crate) struct QueryError {
    pub query: &'static str,
    pub source: tokio_postgres::Error,
}

/// Schemas that belong to PostgreSQL itself.
const USER_SCHEMA: &str =
    "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp_)'";

const ROLES: &str = "SELECT r.rolname::text, quote_ident(r.rolname), r.oid = 10, r.rolsuper, \
     r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolcanlogin, r.rolreplication \
     FROM pg_roles r WHERE r.rolname !~ '^pg_' ORDER BY 1";

// Transitive closure of pg_auth_members; `via` is the member's direct group on the path.
const MEMBERSHIPS: &str = "WITH RECURSIVE m(member, roleid, via) AS ( \
       SELECT member, roleid, roleid FROM pg_auth_members \
       UNION \
       SELECT m.member, a.roleid, m.via FROM m JOIN pg_auth_members a ON a.member = m.roleid) \
     SELECT pg_get_userbyid(member)::text, pg_get_userbyid(roleid)::text, \
       pg_get_userbyid(via)::text, quote_ident(pg_get_userbyid(via)) FROM m ORDER BY 1, 2, 3";

fn relations_query() -> String {
    format!(
        "SELECT c.oid::bigint, n.nspname::text, c.relname::text, quote_ident(n.nspname), \
           quote_ident(c.relname), c.relkind::text, pg_get_userbyid(c.relowner)::text, \
           c.relrowsecurity, c.relforcerowsecurity \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {USER_SCHEMA} ORDER BY 2, 3"
    )
}

fn relation_grants_query() -> String {
    format!(
        "SELECT c.oid::bigint, CASE WHEN x.grantee = 0 THEN '' \
           ELSE pg_get_userbyid(x.grantee)::text END, x.privilege_type \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) x \
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND {USER_SCHEMA} \
           AND x.grantee <> c.relowner ORDER BY 1, 2, 3"
    )
}

fn schema_grants_query() -> String {
    format!(
        "SELECT n.nspname::text, quote_ident(n.nspname), CASE WHEN x.grantee = 0 THEN '' \
           ELSE pg_get_userbyid(x.grantee)::text END, x.privilege_type \
         FROM pg_namespace n, aclexplode(coalesce(n.nspacl, acldefault('n', n.nspowner))) x \
         WHERE {USER_SCHEMA} AND x.grantee <> n.nspowner ORDER BY 1, 3, 4"
    )
}

// Routines are executable by PUBLIC by default; only SECURITY DEFINER ones run with their
// owner's rights, so only those are read.
fn definer_routines_query() -> String {
    format!(
        "SELECT quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || \
           pg_get_function_identity_arguments(p.oid) || ')', pg_get_userbyid(p.proowner)::text \
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, \
           aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x \
         WHERE p.prosecdef AND x.grantee = 0 AND x.privilege_type = 'EXECUTE' AND {USER_SCHEMA} \
         ORDER BY 1"
    )
}

const DATABASE_GRANTS: &str = "SELECT d.datname::text, quote_ident(d.datname), x.privilege_type \
     FROM pg_database d, aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) x \
     WHERE d.datname = current_database() AND x.grantee = 0 ORDER BY 3";

const DEFAULT_GRANTS: &str = "SELECT pg_get_userbyid(d.defaclrole)::text, \
       quote_ident(pg_get_userbyid(d.defaclrole)), coalesce(n.nspname::text, ''), \
       coalesce(quote_ident(n.nspname), ''), d.defaclobjtype::text, \
       CASE WHEN x.grantee = 0 THEN '' ELSE pg_get_userbyid(x.grantee)::text END, \
       CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(x.grantee)) END, \
       x.privilege_type \
     FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace, \
       aclexplode(d.defaclacl) x \
     WHERE x.grantee <> d.defaclrole ORDER BY 1, 3, 5, 6, 8";

async fn query(client: &Client, name: &'static str, sql: &str) -> Result<Vec<Row>, QueryError> {
    client.query(sql, &[]).await.map_err(|source| QueryError {
        query: name,
        source,
    })
}

fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    name: &'static str,
    index: usize,
) -> Result<T, QueryError> {
    row.try_get(index).map_err(|source| QueryError {
        query: name,
        source,
    })
}

impl Catalog {
    /// Reads everything the rules need, in one read-only transaction so the snapshot is
    /// consistent.
    pub(crate) async fn read(client: &mut Client) -> Result<Catalog, QueryError> {
        let begin = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
        client
            .batch_execute(begin)
            .await
            .map_err(|source| QueryError {
                query: "begin",
                source,
            })?;
        let mut catalog = Catalog::default();
        catalog.read_roles(client).await?;
        catalog.read_relations(client).await?;
        catalog.read_objects(client).await?;
        client
            .batch_execute("COMMIT")
            .await
            .map_err(|source| QueryError {
                query: "commit",
                source,
            })?;
        Ok(catalog)
    }

    async fn read_roles(&mut self, client: &Client) -> Result<(), QueryError> {
        for row in query(client, "roles", ROLES).await? {
            self.roles.push(Role {
                name: get(&row, "roles", 0)?,
                quoted: get(&row, "roles", 1)?,
                bootstrap: get(&row, "roles", 2)?,
                superuser: get(&row, "roles", 3)?,
                create_role: get(&row, "roles", 4)?,
                create_db: get(&row, "roles", 5)?,
                bypass_rls: get(&row, "roles", 6)?,
                can_login: get(&row, "roles", 7)?,
                replication: get(&row, "roles", 8)?,
            });
        }
        for row in query(client, "memberships", MEMBERSHIPS).await? {
            self.memberships.push(Membership {
                member: get(&row, "memberships", 0)?,
                granted: get(&row, "memberships", 1)?,
                direct_group: get(&row, "memberships", 2)?,
                direct_group_quoted: get(&row, "memberships", 3)?,
            });
        }
        Ok(())
    }

    async fn read_relations(&mut self, client: &Client) -> Result<(), QueryError> {
        let mut by_oid = std::collections::HashMap::new();
        for row in query(client, "relations", &relations_query()).await? {
            let kind: String = get(&row, "relations", 5)?;
            let Some(kind) = RelKind::from_relkind(&kind) else {
                continue;
            };
            let oid: i64 = get(&row, "relations", 0)?;
            let schema: String = get(&row, "relations", 1)?;
            let name: String = get(&row, "relations", 2)?;
            let schema_quoted: String = get(&row, "relations", 3)?;
            let name_quoted: String = get(&row, "relations", 4)?;
            by_oid.insert(oid, self.relations.len());
            self.relations.push(Relation {
                display: format!("{schema}.{name}"),
                quoted: format!("{schema_quoted}.{name_quoted}"),
                schema_quoted,
                kind,
                owner: get(&row, "relations", 6)?,
                row_security: get(&row, "relations", 7)?,
                force_row_security: get(&row, "relations", 8)?,
            });
        }
        for row in query(client, "relation grants", &relation_grants_query()).await? {
            let oid: i64 = get(&row, "relation grants", 0)?;
            let Some(&relation) = by_oid.get(&oid) else {
                continue;
            };
            self.relation_grants.push(RelationGrant {
                relation,
                grantee: Grantee::from_column(get(&row, "relation grants", 1)?),
                privilege: get(&row, "relation grants", 2)?,
            });
        }
        Ok(())
    }

    async fn read_objects(&mut self, client: &Client) -> Result<(), QueryError> {
        for row in query(client, "schema grants", &schema_grants_query()).await? {
            self.schema_grants.push(SchemaGrant {
                schema: get(&row, "schema grants", 0)?,
                schema_quoted: get(&row, "schema grants", 1)?,
                grantee: Grantee::from_column(get(&row, "schema grants", 2)?),
                privilege: get(&row, "schema grants", 3)?,
            });
        }
        let routines = definer_routines_query();
        for row in query(client, "routines", &routines).await? {
            self.definer_routines.push(PublicDefinerRoutine {
                signature: get(&row, "routines", 0)?,
                owner: get(&row, "routines", 1)?,
            });
        }
        for row in query(client, "database grants", DATABASE_GRANTS).await? {
            self.database_grants.push(DatabaseGrant {
                database: get(&row, "database grants", 0)?,
                database_quoted: get(&row, "database grants", 1)?,
                privilege: get(&row, "database grants", 2)?,
            });
        }
        for row in query(client, "default privileges", DEFAULT_GRANTS).await? {
            let q = "default privileges";
            self.default_grants.push(DefaultGrant {
                role: get(&row, q, 0)?,
                role_quoted: get(&row, q, 1)?,
                schema: get(&row, q, 2)?,
                schema_quoted: get(&row, q, 3)?,
                object_type: get(&row, q, 4)?,
                grantee: Grantee::from_column(get(&row, q, 5)?),
                grantee_quoted: get(&row, q, 6)?,
                privilege: get(&row, q, 7)?,
            });
        }
        Ok(())
    }
}
