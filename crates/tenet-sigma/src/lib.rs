//! Sigma rules for Tenet: an established engine behind Tenet's interface, field mappings for Tenet, CloudTrail, Kubernetes audit and Okta, offline hunting.
