//! Kubernetes: NetworkPolicy semantics, reachability, default-deny generation, RBAC findings.
