//! The zero-trust maturity score: CISA ZTMM v2 pillars and cross-cutting capabilities, a stage
//! per function computed from observed facts, each with its evidence, and the 90-day roadmap.
//!
//! The rubric (which facts each stage of each function needs) is data in this module and is
//! written out for people in `docs/maturity-rubric.md`; a test keeps the two in step.
//! Missing evidence counts against: a function reaches a stage only when every fact that
//! stage requires (and every fact of the stages below) was observed.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use tenet_finding::Severity;

use crate::report::Report;

/// A maturity stage of CISA ZTMM v2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// Manual, static, perimeter-based.
    Traditional,
    /// Starting automation and identity-based controls.
    Initial,
    /// Centralised, cross-pillar, policy-driven.
    Advanced,
    /// Fully automated, dynamic, continuous.
    Optimal,
}

impl Stage {
    /// 1 for traditional up to 4 for optimal.
    pub fn points(self) -> u32 {
        match self {
            Stage::Traditional => 1,
            Stage::Initial => 2,
            Stage::Advanced => 3,
            Stage::Optimal => 4,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Stage::Traditional => "traditional",
            Stage::Initial => "initial",
            Stage::Advanced => "advanced",
            Stage::Optimal => "optimal",
        }
    }
}

/// One observed fact and where it was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// What was seen, in words.
    pub detail: String,
    /// Where: a file, a command, a report.
    pub source: String,
}

/// Every fact the rubric knows, with what it means.
pub const FACTS: &[(&str, &str)] = &[
    (
        "identity.workload-ca",
        "a deployment CA issues X.509-SVIDs to workloads",
    ),
    (
        "identity.short-lived-svids",
        "workload SVIDs live one hour or less",
    ),
    (
        "identity.mtls-required",
        "every workload listener requires a client SVID",
    ),
    (
        "identity.user-sso",
        "people sign in through an enterprise OpenID Connect provider",
    ),
    (
        "identity.phishing-resistant-mfa",
        "people prove themselves with WebAuthn (passkeys or security keys)",
    ),
    (
        "identity.continuous-reauth",
        "sessions are re-evaluated on every request",
    ),
    (
        "devices.enrolment",
        "devices are enrolled with their own key and certificate",
    ),
    (
        "devices.posture",
        "device posture is reported and required by policy",
    ),
    (
        "networks.identity-aware-proxy",
        "services are reached through Tenet's identity-aware gateway",
    ),
    (
        "networks.encrypted-upstreams",
        "the gateway reaches every upstream over mTLS",
    ),
    (
        "networks.default-deny-k8s",
        "assessed Kubernetes namespaces have default-deny ingress and egress",
    ),
    (
        "networks.no-public-admin-ports",
        "assessed security groups expose no admin or database port to the internet",
    ),
    (
        "apps.per-request-authz",
        "every request is authorized against a validated Cedar policy set",
    ),
    (
        "apps.no-unconditional-permit",
        "no policy permits every principal, action and resource",
    ),
    (
        "apps.identity-assertion",
        "upstreams receive a signed identity assertion per request",
    ),
    (
        "data.iam-least-privilege",
        "assessed IAM policies have no admin-equivalent or privilege-escalation grant",
    ),
    (
        "data.db-least-privilege",
        "assessed database login roles have no superuser, ownership or blanket grants",
    ),
    (
        "visibility.decision-events",
        "every decision is recorded as an event",
    ),
    (
        "visibility.tamper-evident-log",
        "the event log has signed checkpoints and verifies",
    ),
    (
        "visibility.detections",
        "detection rules and behavioural baselines watch the event stream",
    ),
    (
        "visibility.sustained-operation",
        "the deployment has been deciding real requests over time, not just configured",
    ),
    (
        "automation.policy-reload",
        "policy changes apply without restart, keeping the last good set",
    ),
    (
        "automation.auto-containment",
        "playbooks contain a compromised identity automatically",
    ),
    (
        "governance.policy-validated",
        "the policy set validates against the schema",
    ),
    (
        "governance.config-audited",
        "IAM, network and database configuration was audited",
    ),
];

/// A function of a pillar and the facts each stage needs.
struct Function {
    pillar: &'static str,
    name: &'static str,
    initial: &'static [&'static str],
    advanced: &'static [&'static str],
    optimal: &'static [&'static str],
}

/// The rubric. Pillars and functions follow CISA ZTMM v2; the facts are what Tenet can
/// observe of them.
const RUBRIC: &[Function] = &[
    Function {
        pillar: "identity",
        name: "authentication",
        initial: &["identity.workload-ca", "identity.mtls-required"],
        advanced: &["identity.user-sso", "identity.phishing-resistant-mfa"],
        optimal: &[
            "identity.continuous-reauth",
            "visibility.sustained-operation",
        ],
    },
    Function {
        pillar: "identity",
        name: "identity lifecycle",
        initial: &["identity.workload-ca"],
        advanced: &["identity.short-lived-svids"],
        optimal: &[
            "automation.auto-containment",
            "visibility.sustained-operation",
        ],
    },
    Function {
        pillar: "devices",
        name: "asset and compliance",
        initial: &["devices.enrolment"],
        advanced: &["devices.posture"],
        optimal: &[
            "identity.continuous-reauth",
            "visibility.sustained-operation",
        ],
    },
    Function {
        pillar: "networks",
        name: "segmentation",
        initial: &["networks.identity-aware-proxy|networks.default-deny-k8s"],
        advanced: &[
            "networks.identity-aware-proxy",
            "networks.default-deny-k8s",
            "networks.no-public-admin-ports",
        ],
        optimal: &["apps.per-request-authz", "visibility.sustained-operation"],
    },
    Function {
        pillar: "networks",
        name: "traffic encryption",
        initial: &["identity.mtls-required"],
        advanced: &["networks.encrypted-upstreams"],
        optimal: &[
            "identity.short-lived-svids",
            "visibility.sustained-operation",
        ],
    },
    Function {
        pillar: "applications and workloads",
        name: "access authorization",
        initial: &["apps.per-request-authz"],
        advanced: &["apps.no-unconditional-permit", "apps.identity-assertion"],
        optimal: &["visibility.detections", "visibility.sustained-operation"],
    },
    Function {
        pillar: "applications and workloads",
        name: "workload identity",
        initial: &["identity.workload-ca"],
        advanced: &["identity.mtls-required", "identity.short-lived-svids"],
        optimal: &["apps.identity-assertion", "visibility.sustained-operation"],
    },
    Function {
        pillar: "data",
        name: "data access",
        initial: &["governance.config-audited"],
        advanced: &["data.iam-least-privilege", "data.db-least-privilege"],
        optimal: &[
            "apps.per-request-authz",
            "visibility.detections",
            "visibility.sustained-operation",
        ],
    },
    Function {
        pillar: "cross-cutting",
        name: "visibility and analytics",
        initial: &["visibility.decision-events"],
        advanced: &["visibility.tamper-evident-log"],
        optimal: &["visibility.detections", "visibility.sustained-operation"],
    },
    Function {
        pillar: "cross-cutting",
        name: "automation and orchestration",
        initial: &["automation.policy-reload"],
        advanced: &["governance.policy-validated"],
        optimal: &[
            "automation.auto-containment",
            "visibility.sustained-operation",
        ],
    },
    Function {
        pillar: "cross-cutting",
        name: "governance",
        initial: &["governance.policy-validated|governance.config-audited"],
        advanced: &["governance.policy-validated", "governance.config-audited"],
        optimal: &[
            "data.iam-least-privilege",
            "networks.default-deny-k8s",
            "visibility.sustained-operation",
        ],
    },
];

/// The 90-day roadmap: the steps in order, each done when all its facts were observed.
const ROADMAP: &[(&str, &str, &[&str])] = &[
    (
        "days 1-30",
        "issue SVIDs to every workload and require mTLS",
        &["identity.workload-ca", "identity.mtls-required"],
    ),
    (
        "days 1-30",
        "put services behind the gateway with default-deny Cedar policies",
        &[
            "networks.identity-aware-proxy",
            "apps.per-request-authz",
            "apps.no-unconditional-permit",
        ],
    ),
    (
        "days 1-30",
        "record every decision in the tamper-evident ledger",
        &[
            "visibility.decision-events",
            "visibility.tamper-evident-log",
        ],
    ),
    (
        "days 31-60",
        "federate people to the enterprise IdP with passkeys",
        &["identity.user-sso", "identity.phishing-resistant-mfa"],
    ),
    (
        "days 31-60",
        "enrol devices and require healthy posture",
        &["devices.enrolment", "devices.posture"],
    ),
    (
        "days 31-60",
        "reach upstreams over mTLS only and pass identity assertions",
        &["networks.encrypted-upstreams", "apps.identity-assertion"],
    ),
    (
        "days 31-60",
        "turn on detections and containment playbooks",
        &["visibility.detections", "automation.auto-containment"],
    ),
    (
        "days 61-90",
        "audit IAM policies and remove wildcards and escalation paths",
        &["governance.config-audited", "data.iam-least-privilege"],
    ),
    (
        "days 61-90",
        "give applications table-level database rights only",
        &["data.db-least-privilege"],
    ),
    (
        "days 61-90",
        "default-deny Kubernetes networks and close public admin ports",
        &[
            "networks.default-deny-k8s",
            "networks.no-public-admin-ports",
        ],
    ),
    (
        "days 61-90",
        "re-evaluate sessions continuously",
        &["identity.continuous-reauth"],
    ),
];

/// Kubernetes findings that mean a namespace or workload lacks default deny.
const NOT_DEFAULT_DENY: &[&str] = &[
    "k8s.no-default-deny",
    "k8s.namespace-without-network-policy",
    "k8s.workload-not-isolated",
];

/// One assessment check: the analysis, the fact it decides, the evidence when clean, and
/// which findings fail it.
type Check<'a> = (
    &'a str,
    &'a str,
    &'a str,
    &'a dyn Fn(&tenet_finding::Finding) -> bool,
);

/// Facts observed, by id, and facts that were checked and found wanting. A fact seen by
/// several sources (several assessment reports) keeps the evidence of each, ordered by
/// source and detail so that the order of the reports does not change the output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// Observed facts.
    pub observed: BTreeMap<String, Vec<Evidence>>,
    /// Facts an assessment checked and found not to hold, with what failed them.
    pub failed: BTreeMap<String, Vec<Evidence>>,
}

/// Adds `e` to a fact's evidence, keeping it sorted (source, then detail) and without
/// repeats.
fn add_evidence(list: &mut Vec<Evidence>, e: Evidence) {
    let key = |x: &Evidence| (x.source.clone(), x.detail.clone());
    if let Err(at) = list.binary_search_by_key(&key(&e), key) {
        list.insert(at, e);
    }
}

impl Facts {
    /// Records a fact. Unknown ids are refused so a typo cannot silently score.
    pub fn observe(
        &mut self,
        id: &str,
        detail: impl Into<String>,
        source: impl Into<String>,
    ) -> Result<(), UnknownFact> {
        if !FACTS.iter().any(|(f, _)| *f == id) {
            return Err(UnknownFact(id.to_owned()));
        }
        add_evidence(
            self.observed.entry(id.to_owned()).or_default(),
            Evidence {
                detail: detail.into(),
                source: source.into(),
            },
        );
        Ok(())
    }

    /// Records that a fact was checked and does not hold (unless another source observed it).
    pub fn fail(
        &mut self,
        id: &str,
        detail: impl Into<String>,
        source: impl Into<String>,
    ) -> Result<(), UnknownFact> {
        if !FACTS.iter().any(|(f, _)| *f == id) {
            return Err(UnknownFact(id.to_owned()));
        }
        add_evidence(
            self.failed.entry(id.to_owned()).or_default(),
            Evidence {
                detail: detail.into(),
                source: source.into(),
            },
        );
        Ok(())
    }

    /// Whether a requirement holds: a fact id, or alternatives `a|b` of which one suffices.
    /// A fact that some assessment found wanting does not hold.
    pub fn has(&self, requirement: &str) -> bool {
        requirement
            .split('|')
            .any(|id| self.observed.contains_key(id) && !self.failed.contains_key(id))
    }

    /// Adds the facts an assessment report shows (`source` names the report file).
    pub fn observe_report(&mut self, report: &Report, source: &str) -> Result<(), UnknownFact> {
        let ran = |a: &str| report.analyses.iter().any(|x| x == a);
        let bad = |prefix: &str, at_least: Severity| {
            report
                .findings
                .iter()
                .filter(|f| f.rule.starts_with(prefix) && f.severity >= at_least)
                .count()
        };

        // What failed a fact: the count and the most frequent rules.
        let failing = |pred: &dyn Fn(&tenet_finding::Finding) -> bool| -> Option<String> {
            let mut by_rule: BTreeMap<&str, usize> = BTreeMap::new();
            for f in report.findings.iter().filter(|f| pred(f)) {
                *by_rule.entry(f.rule.as_str()).or_default() += 1;
            }
            if by_rule.is_empty() {
                return None;
            }
            let total: usize = by_rule.values().sum();
            let mut rules: Vec<(&str, usize)> = by_rule.into_iter().collect();
            rules.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let top: Vec<String> = rules
                .iter()
                .take(4)
                .map(|(r, n)| format!("{r} x{n}"))
                .collect();
            Some(format!("{total} finding(s): {}", top.join(", ")))
        };
        let checks: [Check<'_>; 4] = [
            (
                "iam",
                "data.iam-least-privilege",
                "IAM assessed: no critical finding, no privilege escalation",
                // Escalation findings are high, not critical, yet the fact (and the roadmap
                // step it completes) promises there are none.
                &|f| {
                    f.rule.starts_with("iam.")
                        && (f.severity >= Severity::Critical
                            || f.rule == "iam.privilege-escalation")
                },
            ),
            (
                "pg",
                "data.db-least-privilege",
                "PostgreSQL assessed: no high or critical finding",
                &|f| f.rule.starts_with("pg.") && f.severity >= Severity::High,
            ),
            (
                "k8s",
                "networks.default-deny-k8s",
                "Kubernetes assessed: every namespace has default deny",
                &|f| NOT_DEFAULT_DENY.iter().any(|r| f.rule.starts_with(r)),
            ),
            (
                "secgroup",
                "networks.no-public-admin-ports",
                "security groups assessed: no critical exposure",
                &|f| f.rule.starts_with("sg.") && f.severity >= Severity::Critical,
            ),
        ];
        let mut failed_facts: Vec<&str> = Vec::new();
        for (analysis, fact, clean, pred) in checks {
            // Inputs of this kind that were skipped as invalid: the check did not see them.
            let invalid = report
                .invalid
                .get(analysis)
                .filter(|inputs| !inputs.is_empty())
                .map(|inputs| {
                    let shown: Vec<&str> = inputs.iter().take(3).map(String::as_str).collect();
                    let more = inputs.len().saturating_sub(shown.len());
                    format!(
                        "{} input(s) that may hold what the {analysis} analysis checks were \
                         skipped as invalid, so it is incomplete: {}{}",
                        inputs.len(),
                        shown.join(", "),
                        if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        }
                    )
                });
            if !ran(analysis) {
                if let Some(detail) = invalid {
                    self.fail(fact, detail, source)?;
                }
                continue;
            }
            let failed = match (failing(pred), invalid) {
                (None, None) => None,
                (Some(d), None) | (None, Some(d)) => Some(d),
                (Some(findings), Some(invalid)) => Some(format!("{findings}; {invalid}")),
            };
            match failed {
                None => self.observe(fact, clean, source)?,
                Some(detail) => {
                    self.observe(fact, format!("{analysis} assessed"), source)?;
                    self.fail(fact, detail, source)?;
                    failed_facts.push(fact);
                }
            }
        }
        let _ = bad;
        // An audit counts once what it checked passes: a report that fails a fact does not
        // earn governance credit (else a report full of failures would raise the score of
        // the functions it fails).
        if !report.analyses.is_empty() {
            let audited = format!(
                "assessment of {} input(s) ({})",
                report.inputs.len(),
                report.analyses.join(", ")
            );
            self.observe("governance.config-audited", &audited, source)?;
            if !failed_facts.is_empty() {
                self.fail(
                    "governance.config-audited",
                    format!(
                        "{audited} found {} failing: an audit counts once its findings are fixed",
                        failed_facts.join(", ")
                    ),
                    source,
                )?;
            }
        }
        Ok(())
    }
}

/// A fact id the rubric does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown maturity fact {0:?}")]
pub struct UnknownFact(pub String);

/// The stage of one function with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionScore {
    /// CISA ZTMM pillar, or `cross-cutting`.
    pub pillar: String,
    /// The function.
    pub function: String,
    /// The stage reached.
    pub stage: Stage,
    /// The observed facts that support the stage.
    pub evidence: Vec<(String, Evidence)>,
    /// Facts the next stage needs that were not observed (`a|b`: either).
    pub missing: Vec<String>,
    /// Of those, the ones an assessment checked and found wanting, with what failed them.
    pub failed: Vec<(String, Evidence)>,
}

/// One roadmap step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The phase (`days 1-30`, ...).
    pub phase: String,
    /// What to do.
    pub step: String,
    /// Whether every fact of the step was observed.
    pub done: bool,
    /// The facts it still needs.
    pub missing: Vec<String>,
    /// Of those, the ones an assessment found wanting.
    pub failing: Vec<String>,
}

/// The whole score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scorecard {
    /// Per function.
    pub functions: Vec<FunctionScore>,
    /// Per pillar: the mean stage points (1.0 to 4.0), rounded to two decimals.
    pub pillars: BTreeMap<String, f64>,
    /// Overall: the mean of all functions' points, 1.0 to 4.0, two decimals.
    pub overall: f64,
    /// The roadmap in order.
    pub roadmap: Vec<Step>,
    /// The first three steps not done.
    pub next: Vec<String>,
}

/// Scores `facts` against the rubric.
pub fn score(facts: &Facts) -> Scorecard {
    let mut functions = Vec::new();
    for f in RUBRIC {
        let mut stage = Stage::Traditional;
        let mut missing = Vec::new();
        for (next, needs) in [
            (Stage::Initial, f.initial),
            (Stage::Advanced, f.advanced),
            (Stage::Optimal, f.optimal),
        ] {
            let lacking: Vec<String> = needs
                .iter()
                .filter(|n| !facts.has(n))
                .map(|n| (*n).to_owned())
                .collect();
            if lacking.is_empty() {
                stage = next;
            } else {
                missing = lacking;
                break;
            }
        }
        // Evidence: the facts of the stages reached (the next stage's are in `missing`).
        let reached: &[&[&str]] = match stage {
            Stage::Traditional => &[],
            Stage::Initial => &[f.initial],
            Stage::Advanced => &[f.initial, f.advanced],
            Stage::Optimal => &[f.initial, f.advanced, f.optimal],
        };
        let mut evidence: Vec<(String, Evidence)> = Vec::new();
        for requirement in reached.iter().flat_map(|ids| ids.iter()) {
            for id in requirement.split('|') {
                if let Some(list) = facts.observed.get(id)
                    && !facts.failed.contains_key(id)
                    && !evidence.iter().any(|(x, _)| x == id)
                {
                    evidence.extend(list.iter().map(|e| (id.to_owned(), e.clone())));
                }
            }
        }
        let failed = failed_of(facts, &missing);
        functions.push(FunctionScore {
            pillar: f.pillar.to_owned(),
            function: f.name.to_owned(),
            stage,
            evidence,
            missing,
            failed,
        });
    }
    let mut sums: BTreeMap<String, (u32, u32)> = BTreeMap::new();
    for f in &functions {
        let e = sums.entry(f.pillar.clone()).or_default();
        e.0 += f.stage.points();
        e.1 += 1;
    }
    let pillars = sums
        .into_iter()
        .map(|(p, (sum, n))| (p, round2(f64::from(sum) / f64::from(n.max(1)))))
        .collect();
    let total: u32 = functions.iter().map(|f| f.stage.points()).sum();
    let count = u32::try_from(functions.len()).unwrap_or(1).max(1);
    let overall = round2(f64::from(total) / f64::from(count));
    let roadmap: Vec<Step> = ROADMAP
        .iter()
        .map(|(phase, step, needs)| {
            let missing: Vec<String> = needs
                .iter()
                .filter(|n| !facts.has(n))
                .map(|n| (*n).to_owned())
                .collect();
            let mut failing: Vec<String> = failed_of(facts, &missing)
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            failing.dedup();
            Step {
                phase: (*phase).to_owned(),
                step: (*step).to_owned(),
                done: missing.is_empty(),
                missing,
                failing,
            }
        })
        .collect();
    let next = roadmap
        .iter()
        .filter(|s| !s.done)
        .take(3)
        .map(|s| s.step.clone())
        .collect();
    Scorecard {
        functions,
        pillars,
        overall,
        roadmap,
        next,
    }
}

/// The failed facts among `requirements` (each may be `a|b`).
fn failed_of(facts: &Facts, requirements: &[String]) -> Vec<(String, Evidence)> {
    let mut out = Vec::new();
    for r in requirements {
        for id in r.split('|') {
            if let Some(list) = facts.failed.get(id) {
                out.extend(list.iter().map(|e| (id.to_owned(), e.clone())));
            }
        }
    }
    out
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn describe(fact: &str) -> &'static str {
    FACTS
        .iter()
        .find(|(f, _)| *f == fact)
        .map(|(_, d)| *d)
        .unwrap_or("")
}

impl Scorecard {
    /// The readable scorecard.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Zero-trust maturity (CISA ZTMM v2): {:.2} of 4.00",
            self.overall
        );
        let _ = writeln!(
            out,
            "  stages: 1 traditional, 2 initial, 3 advanced, 4 optimal\n"
        );
        let mut pillar = "";
        for f in &self.functions {
            if f.pillar != pillar {
                pillar = &f.pillar;
                let points = self.pillars.get(pillar).copied().unwrap_or(0.0);
                let _ = writeln!(out, "{} ({points:.2})", pillar.to_uppercase());
            }
            let _ = writeln!(out, "  {:<30} {}", f.function, f.stage.name());
            for (id, e) in &f.evidence {
                let _ = writeln!(out, "      + {id}: {} [{}]", e.detail, e.source);
            }
            for (id, e) in &f.failed {
                let _ = writeln!(out, "      ! failed  {id}: {} [{}]", e.detail, e.source);
            }
            for id in &f.missing {
                if f.failed.iter().any(|(x, _)| x == id) {
                    continue;
                }
                if id.contains('|') {
                    let _ = writeln!(
                        out,
                        "      - missing {} (none observed)",
                        id.split('|').collect::<Vec<_>>().join(" or ")
                    );
                } else {
                    let _ = writeln!(out, "      - missing {id}: {} (not observed)", describe(id));
                }
            }
        }
        let _ = writeln!(out, "\n90-DAY ROADMAP");
        for s in &self.roadmap {
            let mark = if s.done {
                "x"
            } else if s.failing.is_empty() {
                " "
            } else {
                "!"
            };
            let _ = writeln!(out, "  [{mark}] {:<11} {}", s.phase, s.step);
            if !s.failing.is_empty() {
                let _ = writeln!(out, "                  failing: {}", s.failing.join(", "));
            }
        }
        if self.next.is_empty() {
            let _ = writeln!(out, "\nEvery roadmap step is done.");
        } else {
            let _ = writeln!(out, "\nNEXT");
            for (i, s) in self.next.iter().enumerate() {
                let _ = writeln!(out, "  {}. {s}", i + 1);
            }
        }
        out
    }

    /// The rubric as Markdown (the body of `docs/maturity-rubric.md` is checked against it).
    pub fn rubric_markdown() -> String {
        let mut out = String::new();
        let _ = writeln!(out, "| pillar | function | initial | advanced | optimal |");
        let _ = writeln!(out, "|---|---|---|---|---|");
        for f in RUBRIC {
            let cell = |ids: &[&str]| {
                ids.iter()
                    .map(|req| {
                        req.split('|')
                            .map(|i| format!("`{i}`"))
                            .collect::<Vec<_>>()
                            .join(" or ")
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} |",
                f.pillar,
                f.name,
                cell(f.initial),
                cell(f.advanced),
                cell(f.optimal)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_observed_is_traditional_everywhere() {
        let card = score(&Facts::default());
        assert!(card.functions.iter().all(|f| f.stage == Stage::Traditional));
        assert_eq!(card.overall, 1.0);
        assert_eq!(card.next.len(), 3);
        assert_eq!(
            card.next[0],
            "issue SVIDs to every workload and require mTLS"
        );
    }

    #[test]
    fn stages_need_every_lower_stage() {
        let mut facts = Facts::default();
        // Advanced facts without the initial ones do not count.
        facts.observe("identity.user-sso", "d", "s").unwrap();
        facts
            .observe("identity.phishing-resistant-mfa", "d", "s")
            .unwrap();
        let card = score(&facts);
        let auth = card
            .functions
            .iter()
            .find(|f| f.function == "authentication")
            .unwrap();
        assert_eq!(auth.stage, Stage::Traditional);
        assert_eq!(
            auth.missing,
            vec!["identity.workload-ca", "identity.mtls-required"]
        );
        facts.observe("identity.workload-ca", "d", "s").unwrap();
        facts.observe("identity.mtls-required", "d", "s").unwrap();
        let card = score(&facts);
        let auth = card
            .functions
            .iter()
            .find(|f| f.function == "authentication")
            .unwrap();
        assert_eq!(auth.stage, Stage::Advanced);
        assert_eq!(
            auth.missing,
            vec![
                "identity.continuous-reauth",
                "visibility.sustained-operation"
            ]
        );
        assert_eq!(auth.evidence.len(), 4);
        let lifecycle = card
            .functions
            .iter()
            .find(|f| f.function == "identity lifecycle")
            .unwrap();
        assert_eq!(lifecycle.stage, Stage::Initial);
        assert_eq!(lifecycle.evidence.len(), 1);
    }

    #[test]
    fn failed_facts_are_shown_with_what_failed_them() {
        use tenet_finding::{Finding, Location};
        let report = Report {
            version: crate::report::REPORT_VERSION,
            inputs: vec!["a.json".into()],
            analyses: vec!["iam".into(), "k8s".into()],
            findings: vec![
                Finding::new(
                    "iam.admin-equivalent",
                    Severity::Critical,
                    "p",
                    Location::file("a.json"),
                    "t",
                    "d",
                ),
                Finding::new(
                    "iam.admin-equivalent",
                    Severity::Critical,
                    "q",
                    Location::file("a.json"),
                    "t",
                    "d",
                ),
            ],
            skipped: vec![],
            connections: vec![],
            invalid: BTreeMap::new(),
        };
        let mut facts = Facts::default();
        facts.observe_report(&report, "r.json").unwrap();
        assert!(!facts.has("data.iam-least-privilege"));
        assert!(facts.has("networks.default-deny-k8s"));
        let card = score(&facts);
        let data = card
            .functions
            .iter()
            .find(|f| f.function == "data access")
            .unwrap();
        // The failing report earns no audit credit: data access stays traditional.
        assert_eq!(data.stage, Stage::Traditional);
        assert_eq!(data.failed.len(), 1);
        assert_eq!(data.failed[0].0, "governance.config-audited");
        assert_eq!(
            facts.failed["data.iam-least-privilege"][0].detail,
            "2 finding(s): iam.admin-equivalent x2"
        );
        let seg = card
            .functions
            .iter()
            .find(|f| f.function == "segmentation")
            .unwrap();
        assert_eq!(
            seg.stage,
            Stage::Initial,
            "default deny alone reaches initial"
        );
        let text = card.to_text();
        assert!(
            text.contains(
                "! failed  governance.config-audited: assessment of 1 input(s) (iam, k8s) \
                 found data.iam-least-privilege failing"
            ),
            "{text}"
        );
        assert!(
            text.contains("[!] days 61-90  audit IAM policies"),
            "{text}"
        );
    }

    /// A finding of `rule` in an IAM file, for the reports below.
    fn iam_finding(rule: &str, severity: tenet_finding::Severity) -> tenet_finding::Finding {
        use tenet_finding::{Finding, Location};
        Finding::new(rule, severity, "p", Location::file("a.json"), "t", "d")
    }

    /// An IAM assessment report of one file with these findings.
    fn iam_report(findings: Vec<tenet_finding::Finding>) -> Report {
        Report {
            version: crate::report::REPORT_VERSION,
            inputs: vec!["a.json".into()],
            analyses: vec!["iam".into()],
            findings,
            skipped: vec![],
            connections: vec![],
            invalid: BTreeMap::new(),
        }
    }

    #[test]
    fn a_privilege_escalation_fails_iam_least_privilege() {
        let (finding, report) = (iam_finding, iam_report);
        let mut facts = Facts::default();
        facts
            .observe_report(
                &report(vec![
                    finding("iam.privilege-escalation", Severity::High),
                    finding("iam.resource-star", Severity::High),
                ]),
                "r.json",
            )
            .unwrap();
        assert!(!facts.has("data.iam-least-privilege"));
        assert_eq!(
            facts.failed["data.iam-least-privilege"][0].detail,
            "1 finding(s): iam.privilege-escalation x1"
        );
        let text = score(&facts).to_text();
        assert!(
            text.contains("[!] days 61-90  audit IAM policies"),
            "{text}"
        );

        // High findings that are not escalation leave the fact standing.
        let mut facts = Facts::default();
        facts
            .observe_report(
                &report(vec![finding("iam.resource-star", Severity::High)]),
                "r.json",
            )
            .unwrap();
        assert!(facts.has("data.iam-least-privilege"));
    }

    /// Every deployment fact a freshly initialised deployment shows by its defaults.
    const FRESH_DEPLOYMENT: &[&str] = &[
        "identity.workload-ca",
        "identity.short-lived-svids",
        "identity.mtls-required",
        "networks.identity-aware-proxy",
        "apps.per-request-authz",
        "apps.no-unconditional-permit",
        "apps.identity-assertion",
        "visibility.decision-events",
        "visibility.tamper-evident-log",
        "visibility.detections",
        "automation.policy-reload",
        "automation.auto-containment",
        "governance.policy-validated",
    ];

    fn fresh() -> Facts {
        let mut facts = Facts::default();
        for id in FRESH_DEPLOYMENT {
            facts.observe(id, "d", "tenet.toml").unwrap();
        }
        facts
    }

    /// Configuration alone does not make a function optimal: every optimal stage needs the
    /// deployment to have been operated over time.
    #[test]
    fn a_fresh_deployment_is_optimal_nowhere() {
        let card = score(&fresh());
        let optimal: Vec<&str> = card
            .functions
            .iter()
            .filter(|f| f.stage == Stage::Optimal)
            .map(|f| f.function.as_str())
            .collect();
        assert!(optimal.is_empty(), "{optimal:?}");
        let mut facts = fresh();
        facts
            .observe("visibility.sustained-operation", "7 days", "ledger")
            .unwrap();
        let card = score(&facts);
        let visibility = card
            .functions
            .iter()
            .find(|f| f.function == "visibility and analytics")
            .unwrap();
        assert_eq!(visibility.stage, Stage::Optimal);
    }

    /// A report full of failures never raises the stage of any function, with or without
    /// an earlier clean report; a clean report does raise governance and data access.
    #[test]
    fn a_failing_report_never_raises_a_function() {
        let (finding, report) = (iam_finding, iam_report);
        let failing = report(
            (0..93)
                .map(|_| finding("iam.privilege-escalation", Severity::High))
                .chain([finding("iam.admin-equivalent", Severity::Critical)])
                .collect(),
        );
        let clean = report(vec![finding("iam.resource-star", Severity::Medium)]);
        let stages = |facts: &Facts| -> Vec<Stage> {
            score(facts).functions.iter().map(|f| f.stage).collect()
        };
        for base in [fresh(), Facts::default(), {
            let mut f = fresh();
            f.observe_report(&clean, "clean.json").unwrap();
            f
        }] {
            let before = stages(&base);
            let overall = score(&base).overall;
            let mut after = base.clone();
            after.observe_report(&failing, "failing.json").unwrap();
            for (b, a) in before.iter().zip(stages(&after)) {
                assert!(a <= *b, "{b:?} -> {a:?}");
            }
            assert!(score(&after).overall <= overall);
        }
        let mut facts = fresh();
        let before = score(&facts).overall;
        facts.observe_report(&clean, "clean.json").unwrap();
        assert!(facts.has("governance.config-audited"));
        assert!(score(&facts).overall > before);
    }

    /// A report whose skipped inputs include invalid manifests does not earn the fact those
    /// manifests bear on: it is listed as failed, with the inputs.
    #[test]
    fn invalid_inputs_count_against_their_facts() {
        let mut report = Report {
            version: crate::report::REPORT_VERSION,
            inputs: vec!["k8s/ok.yaml".into()],
            analyses: vec!["k8s".into()],
            ..Report::default()
        };
        report.mark_invalid(&["k8s"], "k8s/broken.yaml");
        report.normalise();
        let mut facts = Facts::default();
        facts.observe_report(&report, "r.json").unwrap();
        assert!(!facts.has("networks.default-deny-k8s"));
        let failed = &facts.failed["networks.default-deny-k8s"][0];
        assert!(
            failed.detail.contains("k8s/broken.yaml"),
            "{}",
            failed.detail
        );
        let text = score(&facts).to_text();
        assert!(
            text.contains("! failed  networks.default-deny-k8s: 1 input(s)"),
            "{text}"
        );

        // Only invalid inputs of that kind: not assessed, and said why.
        let mut report = Report {
            version: crate::report::REPORT_VERSION,
            ..Report::default()
        };
        report.mark_invalid(&["k8s"], "k8s/broken.yaml");
        let mut facts = Facts::default();
        facts.observe_report(&report, "r.json").unwrap();
        assert!(facts.failed.contains_key("networks.default-deny-k8s"));
    }

    /// Every report that supports a fact is its evidence, in an order that does not depend
    /// on the order the reports were given.
    #[test]
    fn every_supporting_report_is_evidence() {
        let report = Report {
            version: crate::report::REPORT_VERSION,
            inputs: vec!["k8s/a.yaml".into()],
            analyses: vec!["k8s".into()],
            ..Report::default()
        };
        let card = |order: [&str; 2]| {
            let mut facts = Facts::default();
            for source in order {
                facts.observe_report(&report, source).unwrap();
            }
            score(&facts)
        };
        let a = card(["b.json", "a.json"]);
        assert_eq!(a, card(["a.json", "b.json"]));
        let seg = a
            .functions
            .iter()
            .find(|f| f.function == "segmentation")
            .unwrap();
        let sources: Vec<&str> = seg
            .evidence
            .iter()
            .filter(|(id, _)| id == "networks.default-deny-k8s")
            .map(|(_, e)| e.source.as_str())
            .collect();
        assert_eq!(sources, ["a.json", "b.json"]);
    }

    #[test]
    fn unknown_facts_are_refused() {
        let mut facts = Facts::default();
        assert!(facts.observe("identity.typo", "d", "s").is_err());
    }

    #[test]
    fn every_rubric_fact_is_known() {
        for f in RUBRIC {
            for req in f.initial.iter().chain(f.advanced).chain(f.optimal) {
                for id in req.split('|') {
                    assert!(FACTS.iter().any(|(k, _)| *k == id), "{id}");
                }
            }
        }
        for (_, _, needs) in ROADMAP {
            for id in *needs {
                assert!(FACTS.iter().any(|(k, _)| k == id), "{id}");
            }
        }
    }

    #[test]
    fn all_facts_reach_optimal_and_text_is_stable() {
        let mut facts = Facts::default();
        for (id, _) in FACTS {
            facts.observe(id, "seen", "test").unwrap();
        }
        let card = score(&facts);
        assert!(card.functions.iter().all(|f| f.stage == Stage::Optimal));
        assert_eq!(card.overall, 4.0);
        assert!(card.next.is_empty());
        assert_eq!(card.to_text(), score(&facts).to_text());
    }
}
