//! PostgreSQL: audit of login roles, attributes, ownership and grants read from the catalogues.
