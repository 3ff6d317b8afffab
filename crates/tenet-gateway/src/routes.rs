//! Route matching: canonical host equality and the longest path prefix on a segment boundary.
//!
//! Routing and authorization see the same canonical host and the same normalised path, and
//! both compare them case-sensitively (hosts are lowercased before they get here).

use std::sync::Arc;

use crate::config::RouteSpec;
use crate::forward::Upstream;

/// A route with its ready-to-use upstream client.
pub(crate) struct Route {
    pub spec: RouteSpec,
    pub upstream: Arc<Upstream>,
}

/// The routes of one listener, longest prefix first.
#[derive(Default)]
pub(crate) struct RouteTable {
    routes: Vec<Arc<Route>>,
}

impl RouteTable {
    pub fn new(mut routes: Vec<Arc<Route>>) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.spec.path_prefix.len()));
        Self { routes }
    }

    /// The route for a canonical host and normalised path, if any.
    pub fn find(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        self.routes
            .iter()
            .find(|r| r.spec.host == host && prefix_matches(&r.spec.path_prefix, path))
    }

    /// The hosts served, for the default SNI allow-list.
    pub fn hosts(&self) -> Vec<String> {
        let mut hosts: Vec<String> = self.routes.iter().map(|r| r.spec.host.clone()).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

/// `/api` matches `/api` and `/api/x` but not `/apix`; `/` and `/api/` match as prefixes.
pub(crate) fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        None => false,
        Some(rest) => prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'),
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_matches;

    #[test]
    fn prefixes_match_on_segment_boundaries() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/v1"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(prefix_matches("/api/", "/api/v1"));
        assert!(!prefix_matches("/api/", "/api"));
        assert!(!prefix_matches("/API", "/api"));
    }
}
