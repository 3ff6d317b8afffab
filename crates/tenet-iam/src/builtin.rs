//! What Tenet knows about a few well-known, high-impact AWS managed policies, so that a
//! principal with one attached is assessed even when the dump does not carry the policy's
//! document (`get-account-authorization-details` omits unattached or filtered policies, and
//! Terraform only names them by ARN).
//!
//! These are facts (effect, actions, resources) as AWS documents them, held as data, not the
//! policy documents themselves. Every statement is an Allow on every resource.

use std::sync::LazyLock;

use serde_json::{Value, json};

use crate::account::Doc;
use crate::policy::Policy;

/// One statement of a known policy: Allow on `*` of these actions (or of every action except
/// these, for `NotAction`).
struct Fact {
    not_action: bool,
    actions: &'static [&'static str],
}

/// A known AWS managed policy: its name (the part after `policy/`) and its statements.
struct Known {
    name: &'static str,
    facts: &'static [Fact],
}

const KNOWN: &[Known] = &[
    Known {
        name: "AdministratorAccess",
        facts: &[Fact {
            not_action: false,
            actions: &["*"],
        }],
    },
    Known {
        name: "PowerUserAccess",
        facts: &[
            Fact {
                not_action: true,
                actions: &["iam:*", "organizations:*", "account:*"],
            },
            Fact {
                not_action: false,
                actions: &[
                    "account:GetAccountInformation",
                    "account:GetPrimaryEmail",
                    "account:ListRegions",
                    "iam:CreateServiceLinkedRole",
                    "iam:DeleteServiceLinkedRole",
                    "iam:ListRoles",
                    "organizations:DescribeOrganization",
                ],
            },
        ],
    },
    Known {
        name: "IAMFullAccess",
        facts: &[Fact {
            not_action: false,
            actions: &[
                "iam:*",
                "organizations:DescribeAccount",
                "organizations:DescribeOrganization",
                "organizations:DescribeOrganizationalUnit",
                "organizations:DescribePolicy",
                "organizations:ListChildren",
                "organizations:ListParents",
                "organizations:ListPoliciesForTarget",
                "organizations:ListRoots",
                "organizations:ListPolicies",
                "organizations:ListTargetsForPolicy",
            ],
        }],
    },
    Known {
        name: "AmazonS3FullAccess",
        facts: &[Fact {
            not_action: false,
            actions: &["s3:*", "s3-object-lambda:*"],
        }],
    },
];

/// A known policy compiled into a document the analyses can use.
#[derive(Debug)]
pub(crate) struct Builtin {
    /// The policy's name (`AdministratorAccess`).
    pub(crate) name: &'static str,
    /// The document, marked as AWS managed; its subject is the policy's ARN in the `aws`
    /// partition.
    pub(crate) doc: Doc,
}

static BUILTINS: LazyLock<Vec<Builtin>> = LazyLock::new(|| {
    KNOWN
        .iter()
        .filter_map(|k| {
            let statements: Vec<Value> = k
                .facts
                .iter()
                .map(|f| {
                    let key = if f.not_action { "NotAction" } else { "Action" };
                    json!({"Effect": "Allow", key: f.actions, "Resource": "*"})
                })
                .collect();
            let arn = format!("arn:aws:iam::aws:policy/{}", k.name);
            let document = json!({"Version": "2012-10-17", "Statement": statements});
            // INVARIANT: the facts above form valid documents (the crate's tests check it);
            // one that did not would only leave its policy unresolved.
            let policy = Policy::from_value(&arn, &document).ok()?;
            Some(Builtin {
                name: k.name,
                doc: Doc {
                    file: String::new(),
                    pointer: String::new(),
                    line: None,
                    subject: arn,
                    policy,
                    standalone: false,
                    trust: false,
                    aws_managed: true,
                },
            })
        })
        .collect()
});

/// The known AWS managed policy an attached-policy reference names: an ARN
/// `arn:<partition>:iam::aws:policy/<Name>` in any AWS partition. A bare name is not
/// enough, since a customer-managed policy may carry the same name.
pub(crate) fn lookup(reference: &str) -> Option<&'static Builtin> {
    let rest = reference.strip_prefix("arn:")?;
    let (partition, rest) = rest.split_once(':')?;
    if !partition.starts_with("aws") {
        return None;
    }
    let name = rest.strip_prefix("iam::aws:policy/")?;
    BUILTINS.iter().find(|b| b.name == name)
}

/// How findings say where a document came from.
pub(crate) fn provenance(b: &Builtin) -> String {
    format!(
        "the document of {} was not in the input: it was taken from Tenet's built-in \
         knowledge of the AWS managed policy {}",
        b.doc.subject, b.name
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_known_policy_compiles_cleanly() {
        assert_eq!(BUILTINS.len(), KNOWN.len());
        for b in BUILTINS.iter() {
            assert!(
                b.doc.policy.issues.is_empty(),
                "{}: {:?}",
                b.name,
                b.doc.policy
            );
            assert_eq!(b.doc.policy.statements.len(), {
                KNOWN.iter().find(|k| k.name == b.name).unwrap().facts.len()
            });
        }
    }

    #[test]
    fn lookups() {
        assert!(lookup("arn:aws:iam::aws:policy/AdministratorAccess").is_some());
        assert!(lookup("arn:aws-us-gov:iam::aws:policy/PowerUserAccess").is_some());
        assert!(lookup("AdministratorAccess").is_none());
        assert!(lookup("arn:aws:iam::111122223333:policy/AdministratorAccess").is_none());
        assert!(lookup("arn:aws:iam::aws:policy/job-function/AdministratorAccess").is_none());
        assert!(lookup("arn:aws:iam::aws:policy/ReadOnlyAccess").is_none());
    }

    /// The facts agree with the documents MAMIP publishes for these policies.
    #[test]
    fn facts_match_mamip() {
        for b in BUILTINS.iter() {
            let path = concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/corpus/mamip/policies/"
            );
            let text =
                std::fs::read_to_string(format!("{path}{}", b.name)).expect("MAMIP corpus present");
            let v: Value = serde_json::from_str(&text).unwrap();
            let mamip = Policy::from_value(b.name, &v["PolicyVersion"]["Document"]).unwrap();
            let ours = &b.doc.policy;
            assert_eq!(mamip.statements.len(), ours.statements.len(), "{}", b.name);
            for (m, o) in mamip.statements.iter().zip(&ours.statements) {
                assert_eq!(m.effect, o.effect, "{}", b.name);
                assert_eq!(m.action, o.action, "{}", b.name);
                assert_eq!(m.resource, o.resource, "{}", b.name);
                assert!(m.conditions.is_empty(), "{}", b.name);
            }
        }
    }
}
