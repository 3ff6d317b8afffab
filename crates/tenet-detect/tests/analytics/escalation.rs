//! Privilege escalation: new rights after a policy change, unusual admin actions.

use tenet_detect::{Level, Subject, rules};
use time::Duration;

use crate::support::*;

#[test]
fn policy_change_then_new_right_fires_only_for_the_new_right() {
    let mut a = analytics();
    let p = spiffe("web");
    a.declare_policy_set("h1", ["allow-orders", "forbid-admin"]);
    feed(&mut a, &policy_loaded("h1", 2, T0));
    let read = Req::new(&p, "orders").policy("h1", &["allow-orders"]);
    assert!(feed(&mut a, &read.at(T0 + Duration::minutes(1))).is_empty());

    let change = T0 + Duration::hours(1);
    a.declare_policy_set("h2", ["allow-orders", "forbid-admin", "allow-admin"]);
    assert!(feed(&mut a, &policy_loaded("h2", 3, change)).is_empty());

    // Near miss: the same right under the new set.
    let read = Req::new(&p, "orders").policy("h2", &["allow-orders"]);
    let alerts = feed(&mut a, &read.at(change + Duration::minutes(1)));
    assert!(
        of(&alerts, rules::PRIVILEGE_ESCALATION).is_empty(),
        "{alerts:#?}"
    );

    let admin = Req::new(&p, "orders")
        .route("orders-admin")
        .method("POST")
        .path("/admin/refund")
        .policy("h2", &["allow-admin"]);
    let alerts = feed(&mut a, &admin.at(change + Duration::minutes(2)));
    let esc = of(&alerts, rules::PRIVILEGE_ESCALATION);
    assert_eq!(esc.len(), 1, "{alerts:#?}");
    assert_eq!(esc[0].level, Level::High);
    assert_eq!(esc[0].subject, Subject::Principal(p.clone()));
    assert_eq!(
        esc[0].explanation,
        format!(
            "{p} was allowed POST orders.example.test/admin/refund by policy \"allow-admin\", \
             which was not in the policy set in force before the change from h1 to h2 at \
             2026-03-02T01:00:00Z (previous set: 2 policy ids, as declared by the policy engine)"
        )
    );
    assert_eq!(esc[0].evidence["previous_policy_hash"], "h1");

    // Once per principal and policy.
    let again = feed(&mut a, &admin.at(change + Duration::minutes(3)));
    assert!(of(&again, rules::PRIVILEGE_ESCALATION).is_empty());
}

#[test]
fn new_right_is_inferred_from_observed_decisions_when_sets_are_not_declared() {
    let mut a = analytics();
    let p = spiffe("web");
    feed(&mut a, &policy_loaded("h1", 2, T0));
    for (i, policy) in ["allow-orders", "allow-catalog"].iter().enumerate() {
        let req = Req::new(&p, "orders").policy("h1", &[policy]);
        feed(&mut a, &req.at(T0 + Duration::minutes(i as i64)));
    }
    let change = T0 + Duration::hours(1);
    feed(&mut a, &policy_loaded("h2", 3, change));
    let known = Req::new(&p, "orders").policy("h2", &["allow-catalog"]);
    assert!(feed(&mut a, &known.at(change + Duration::minutes(1))).is_empty());

    let new = Req::new(&p, "orders").policy("h2", &["allow-everything"]);
    let alerts = feed(&mut a, &new.at(change + Duration::minutes(2)));
    let esc = of(&alerts, rules::PRIVILEGE_ESCALATION);
    assert_eq!(esc.len(), 1, "{alerts:#?}");
    assert_eq!(esc[0].level, Level::Medium);
    assert!(
        esc[0]
            .explanation
            .ends_with("(previous set: inferred from the decisions observed under earlier sets)"),
        "{}",
        esc[0].explanation
    );
}

#[test]
fn new_policy_used_after_the_window_is_not_reported() {
    let mut a = analytics();
    let p = spiffe("web");
    a.declare_policy_set("h1", ["allow-orders"]);
    feed(&mut a, &policy_loaded("h1", 1, T0));
    a.declare_policy_set("h2", ["allow-orders", "allow-admin"]);
    feed(&mut a, &policy_loaded("h2", 2, T0 + Duration::hours(1)));
    let admin = Req::new(&p, "orders").policy("h2", &["allow-admin"]);
    let alerts = feed(&mut a, &admin.at(T0 + Duration::days(3)));
    assert!(of(&alerts, rules::PRIVILEGE_ESCALATION).is_empty());
}

#[test]
fn route_denied_before_the_change_and_allowed_after_fires() {
    let mut a = analytics();
    let p = spiffe("web");
    let other = spiffe("batch");
    let refund = |who: &str| Req::new(who, "orders").route("refunds").method("POST");
    feed(&mut a, &policy_loaded("h1", 1, T0));
    feed(
        &mut a,
        &refund(&p)
            .policy("h1", &[])
            .denied()
            .at(T0 + Duration::minutes(5)),
    );

    feed(&mut a, &policy_loaded("h2", 1, T0 + Duration::hours(1)));
    let after = T0 + Duration::hours(2);
    // Near miss: a principal that was never denied the route.
    let alerts = feed(
        &mut a,
        &refund(&other).policy("h2", &["allow-orders"]).at(after),
    );
    assert!(
        of(&alerts, rules::PRIVILEGE_ESCALATION).is_empty(),
        "{alerts:#?}"
    );

    let alerts = feed(
        &mut a,
        &refund(&p).policy("h2", &["allow-orders"]).at(after),
    );
    let esc = of(&alerts, rules::PRIVILEGE_ESCALATION);
    assert_eq!(esc.len(), 1, "{alerts:#?}");
    assert_eq!(
        esc[0].explanation,
        format!(
            "{p} was allowed POST on route \"refunds\" (/) under policy set h2 by \
             [allow-orders], after being denied it under policy set h1 at 2026-03-02T00:05:00Z"
        )
    );
}

/// The denied-then-allowed alerts among `alerts`.
fn denied_then_allowed(alerts: &[tenet_detect::Alert]) -> usize {
    of(alerts, rules::PRIVILEGE_ESCALATION)
        .iter()
        .filter(|a| a.evidence["kind"] == "denied_then_allowed")
        .count()
}

/// A forbid added while the person's device became compliant: the permit that now allows
/// the route was in the old set too, so the context changed, not the rights.
#[test]
fn route_allowed_after_a_change_by_a_policy_that_was_there_before_does_not_fire() {
    let mut a = analytics();
    let p = spiffe("web");
    let refund = |hash: &str| {
        Req::new(&p, "orders")
            .route("refunds")
            .method("POST")
            .policy(hash, &[])
    };
    a.declare_policy_set("h1", ["allow-refunds-compliant"]);
    feed(&mut a, &policy_loaded("h1", 1, T0));
    feed(&mut a, &refund("h1").denied().at(T0 + Duration::minutes(5)));

    a.declare_policy_set("h2", ["allow-refunds-compliant", "forbid-when-risky"]);
    feed(&mut a, &policy_loaded("h2", 2, T0 + Duration::hours(1)));
    let allowed = refund("h2").policy("h2", &["allow-refunds-compliant"]);
    let alerts = feed(&mut a, &allowed.at(T0 + Duration::hours(2)));
    assert!(
        of(&alerts, rules::PRIVILEGE_ESCALATION).is_empty(),
        "{alerts:#?}"
    );

    // The same with the policies' versions declared: the permit says the same in both.
    let mut a = analytics();
    a.declare_policy_versions("h1", [("allow-refunds-compliant", "v1")]);
    feed(&mut a, &policy_loaded("h1", 1, T0));
    feed(&mut a, &refund("h1").denied().at(T0 + Duration::minutes(5)));
    let h2 = [
        ("allow-refunds-compliant", "v1"),
        ("forbid-when-risky", "v7"),
    ];
    a.declare_policy_versions("h2", h2);
    feed(&mut a, &policy_loaded("h2", 2, T0 + Duration::hours(1)));
    let alerts = feed(&mut a, &allowed.at(T0 + Duration::hours(2)));
    assert!(
        of(&alerts, rules::PRIVILEGE_ESCALATION).is_empty(),
        "{alerts:#?}"
    );
}

/// A new permit, a forbid taken away or a permit edited is what allows a route denied before
/// the change.
#[test]
fn route_allowed_after_a_change_by_a_new_or_edited_permit_or_without_its_forbid_fires() {
    let mut a = analytics();
    let p = spiffe("web");
    let refund = || Req::new(&p, "orders").route("refunds").method("POST");
    a.declare_policy_set("h1", ["allow-orders"]);
    feed(&mut a, &policy_loaded("h1", 1, T0));
    feed(
        &mut a,
        &refund()
            .policy("h1", &[])
            .denied()
            .at(T0 + Duration::minutes(5)),
    );
    a.declare_policy_set("h2", ["allow-orders", "allow-refunds"]);
    feed(&mut a, &policy_loaded("h2", 2, T0 + Duration::hours(1)));
    let alerts = feed(
        &mut a,
        &refund()
            .policy("h2", &["allow-refunds"])
            .at(T0 + Duration::hours(2)),
    );
    assert_eq!(denied_then_allowed(&alerts), 1, "{alerts:#?}");
    // The permit is also new in the set: one escalation, shown both ways, in one alert.
    let esc = of(&alerts, rules::PRIVILEGE_ESCALATION);
    assert_eq!(esc.len(), 1, "{alerts:#?}");
    assert_eq!(esc[0].level, Level::High);
    assert_eq!(
        esc[0].evidence["also"][0]["kind"], "new_policy",
        "{:#}",
        esc[0].evidence
    );
    assert_eq!(esc[0].evidence["also"][0]["policy"], "allow-refunds");
    assert!(
        esc[0]
            .explanation
            .contains("after being denied it under policy set h1")
            && esc[0].explanation.contains(
                "; also, spiffe://example.org/web was allowed POST orders.example.test/ by \
                 policy \"allow-refunds\", which was not in the policy set"
            ),
        "{}",
        esc[0].explanation
    );

    let mut a = analytics();
    a.declare_policy_set("h1", ["allow-orders", "forbid-refunds"]);
    feed(&mut a, &policy_loaded("h1", 2, T0));
    let denied = refund().denied().policy("h1", &["forbid-refunds"]);
    feed(&mut a, &denied.at(T0 + Duration::minutes(5)));
    a.declare_policy_set("h2", ["allow-orders"]);
    feed(&mut a, &policy_loaded("h2", 1, T0 + Duration::hours(1)));
    let alerts = feed(
        &mut a,
        &refund()
            .policy("h2", &["allow-orders"])
            .at(T0 + Duration::hours(2)),
    );
    assert_eq!(denied_then_allowed(&alerts), 1, "{alerts:#?}");

    // A permit edited under the same id (its condition loosened).
    let mut a = analytics();
    a.declare_policy_versions("h1", [("allow-orders", "v1")]);
    feed(&mut a, &policy_loaded("h1", 1, T0));
    let denied = refund().policy("h1", &[]).denied();
    feed(&mut a, &denied.at(T0 + Duration::minutes(5)));
    a.declare_policy_versions("h2", [("allow-orders", "v2")]);
    feed(&mut a, &policy_loaded("h2", 1, T0 + Duration::hours(1)));
    let allowed = refund().policy("h2", &["allow-orders"]);
    let alerts = feed(&mut a, &allowed.at(T0 + Duration::hours(2)));
    assert_eq!(denied_then_allowed(&alerts), 1, "{alerts:#?}");
}

#[test]
fn route_denied_and_allowed_under_the_same_set_does_not_fire() {
    let mut a = analytics();
    let p = spiffe("web");
    let refund = Req::new(&p, "orders").route("refunds").method("POST");
    feed(&mut a, &refund.clone().policy("h1", &[]).denied().at(T0));
    let alerts = feed(
        &mut a,
        &refund
            .policy("h1", &["allow-orders"])
            .at(T0 + Duration::minutes(1)),
    );
    assert!(
        of(&alerts, rules::PRIVILEGE_ESCALATION).is_empty(),
        "{alerts:#?}"
    );
}

#[test]
fn admin_action_by_an_unusual_principal_fires_and_the_usual_admin_does_not() {
    let mut a = analytics();
    for day in 0..2 {
        let e = admin("local-cli", "policy.reload", true, T0 + Duration::days(day));
        assert!(feed(&mut a, &e).is_empty());
    }
    let after = T0 + Duration::days(2);
    assert!(feed(&mut a, &admin("local-cli", "svid.issue", true, after)).is_empty());

    let w = spiffe("web");
    let alerts = feed(
        &mut a,
        &admin(&w, "GET /v1/status", false, after + Duration::minutes(1)),
    );
    let unusual = of(&alerts, rules::UNUSUAL_ADMIN);
    assert_eq!(unusual.len(), 1, "{alerts:#?}");
    assert_eq!(unusual[0].level, Level::Medium);
    assert_eq!(
        unusual[0].explanation,
        format!(
            "{w} attempted admin operation \"GET /v1/status\" (failed: forbidden: not the admin \
             credential); it has never performed an admin action successfully; actors that \
             usually do: local-cli"
        )
    );
}

#[test]
fn admin_actions_while_learning_do_not_fire() {
    let mut a = analytics();
    let alerts = feed(&mut a, &admin(&spiffe("ops"), "policy.reload", true, T0));
    assert!(alerts.is_empty());
    let alerts = feed(
        &mut a,
        &admin(
            &spiffe("web"),
            "policy.reload",
            false,
            T0 + Duration::hours(1),
        ),
    );
    assert!(alerts.is_empty());
}
