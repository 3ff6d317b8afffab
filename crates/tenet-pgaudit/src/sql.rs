//! Building the remediation SQL: identifier quoting and table-scoped grant statements.

use std::collections::{BTreeMap, BTreeSet};

/// Privileges an application role normally needs on a table.
pub(crate) const DML: [&str; 4] = ["SELECT", "INSERT", "UPDATE", "DELETE"];

/// Table privileges no application role needs: they let it empty the table, pin it with
/// foreign keys, run code on every write, or (PostgreSQL 17) vacuum, lock and reindex it.
pub(crate) const BEYOND_DML: [&str; 4] = ["TRUNCATE", "REFERENCES", "TRIGGER", "MAINTAIN"];

/// PostgreSQL's `quote_ident` for names the server did not quote for us (new role names,
/// predefined roles): bare when the name is a plain lowercase identifier, otherwise in double
/// quotes with embedded quotes doubled. Reserved words that are plain identifiers are quoted
/// too; quoting more than needed never changes the meaning.
pub(crate) fn quote_ident(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain && !RESERVED.contains(&name) {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// Reserved (and type/function-name) keywords that must be quoted as role names.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "column",
    "constraint",
    "create",
    "current_catalog",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "from",
    "grant",
    "group",
    "having",
    "in",
    "initially",
    "intersect",
    "into",
    "lateral",
    "leading",
    "limit",
    "localtime",
    "localtimestamp",
    "not",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "placing",
    "primary",
    "references",
    "returning",
    "select",
    "session_user",
    "some",
    "symmetric",
    "system_user",
    "table",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "when",
    "where",
    "window",
    "with",
    "public",
    "none",
];

/// Orders privileges the way `GRANT` statements are usually written.
fn privilege_rank(privilege: &str) -> usize {
    const ORDER: [&str; 9] = [
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "TRUNCATE",
        "REFERENCES",
        "TRIGGER",
        "MAINTAIN",
        "USAGE",
    ];
    ORDER
        .iter()
        .position(|p| *p == privilege)
        .unwrap_or(ORDER.len())
}

/// The privileges as a `GRANT` list, in the usual order.
pub(crate) fn privilege_list<'a>(privileges: impl IntoIterator<Item = &'a str>) -> String {
    let mut list: Vec<&str> = privileges.into_iter().collect();
    list.sort_by_key(|p| (privilege_rank(p), p.to_string()));
    list.dedup();
    list.join(", ")
}

/// `GRANT <privileges> ON <object_keyword> a, b TO grantee;`, one statement per distinct
/// privilege set, objects in a stable order. `objects` maps quoted object names to the
/// privileges to grant on each; objects with nothing to grant are left out.
pub(crate) fn grant_statements(
    object_keyword: &str,
    objects: &BTreeMap<String, BTreeSet<String>>,
    grantee_quoted: &str,
) -> Vec<String> {
    let mut by_set: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    for (object, privileges) in objects {
        if privileges.is_empty() {
            continue;
        }
        let list = privilege_list(privileges.iter().map(String::as_str));
        by_set.entry(list).or_default().push(object);
    }
    by_set
        .into_iter()
        .map(|(list, objects)| {
            format!(
                "GRANT {list} ON {object_keyword} {} TO {grantee_quoted};",
                objects.join(", ")
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_postgres() {
        assert_eq!(quote_ident("app"), "app");
        assert_eq!(quote_ident("app_2$"), "app_2$");
        assert_eq!(quote_ident("App"), "\"App\"");
        assert_eq!(quote_ident("order items"), "\"order items\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(quote_ident("user"), "\"user\"");
        assert_eq!(quote_ident("1abc"), "\"1abc\"");
        assert_eq!(quote_ident(""), "\"\"");
    }

    #[test]
    fn grants_group_by_privilege_set() {
        let mut objects = BTreeMap::new();
        let dml: BTreeSet<String> = DML.iter().map(|s| s.to_string()).collect();
        objects.insert("s.b".to_owned(), dml.clone());
        objects.insert("s.a".to_owned(), dml);
        objects.insert("s.c".to_owned(), BTreeSet::from(["SELECT".to_owned()]));
        objects.insert("s.d".to_owned(), BTreeSet::new());
        assert_eq!(
            grant_statements("TABLE", &objects, "app"),
            vec![
                "GRANT SELECT ON TABLE s.c TO app;".to_owned(),
                "GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE s.a, s.b TO app;".to_owned(),
            ]
        );
    }
}
