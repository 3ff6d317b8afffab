//! Authorization decisions and their explanations.

use serde::{Deserialize, Serialize};

use crate::near_miss::NearMiss;

/// The outcome of authorizing one request. Default deny: only a matching permit policy, with no
/// matching forbid policy and no evaluation error, allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    /// At least one permit policy matched and no forbid policy matched.
    Allow {
        /// Ids of the permit policies that matched, sorted.
        policies: Vec<String>,
    },
    /// The request is denied.
    Deny {
        /// Ids of the forbid policies that matched, sorted; empty when no permit matched
        /// (default deny) or when an error denied the request.
        policies: Vec<String>,
        /// Why evaluation failed, when it did (fail closed): a policy that errored, an unknown
        /// method, a request that could not be built. Empty otherwise.
        errors: Vec<String>,
    },
}

impl Decision {
    /// Whether the request may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow { .. })
    }

    /// The ids of the determining policies: the matching permits of an allow, or the matching
    /// forbids of a deny (empty for a default deny).
    pub fn reasons(&self) -> &[String] {
        match self {
            Self::Allow { policies } | Self::Deny { policies, .. } => policies,
        }
    }

    /// The evaluation errors that denied the request (always empty for an allow).
    pub fn errors(&self) -> &[String] {
        match self {
            Self::Allow { .. } => &[],
            Self::Deny { errors, .. } => errors,
        }
    }

    /// A deny that no policy determined: an error stopped evaluation.
    pub(crate) fn failed(error: String) -> Self {
        Self::Deny {
            policies: Vec::new(),
            errors: vec![error],
        }
    }
}

/// A decision together with what produced it, for `tenet policy explain` and for tests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    /// The decision, as [`crate::PolicySnapshot::authorize`] returns it.
    pub decision: Decision,
    /// Ids of the policies whose evaluation errored, sorted (their messages are in the
    /// decision's errors).
    pub errored_policies: Vec<String>,
    /// How many policies were evaluated after the scope index dropped the ones whose
    /// principal or resource scope cannot match.
    pub policies_evaluated: usize,
    /// For a default deny (no permit matched, nothing errored): the permit policies that came
    /// closest and what each lacked, closest first, at most five. Empty for any other
    /// decision. Operator information: never sent to the caller.
    #[serde(default)]
    pub near_misses: Vec<NearMiss>,
}

impl Explanation {
    pub(crate) fn failed(error: String) -> Self {
        Self {
            decision: Decision::failed(error),
            errored_policies: Vec::new(),
            policies_evaluated: 0,
            near_misses: Vec::new(),
        }
    }

    /// Whether the request was denied because no permit matched, with no forbid matching and
    /// nothing erroring.
    pub fn is_default_deny(&self) -> bool {
        matches!(&self.decision, Decision::Deny { policies, errors }
            if policies.is_empty() && errors.is_empty())
    }
}
