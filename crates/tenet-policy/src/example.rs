//! The example policy set that `tenet init` writes for a new deployment.

/// The example policies for a deployment whose trust domain is `trust_domain`: the shop
/// frontend (`spiffe://<trust_domain>/ns/shop/sa/frontend`) may GET and HEAD the `catalog`
/// route under `/products`, and no one reaches a path under `/admin`. Commented, and valid
/// against [`crate::TENET_SCHEMA`].
pub fn example_policies(trust_domain: &str) -> String {
    let frontend = cedar_string(&format!("spiffe://{trust_domain}/ns/shop/sa/frontend"));
    let domain = cedar_string(trust_domain);
    format!(
        r#"// Tenet policies, in the Cedar policy language (https://www.cedarpolicy.com).
//
// Every request through the gateway is denied unless a `permit` policy matches it and no
// `forbid` policy does. The schema the policies are checked against is in tenet.cedarschema.
// `tenet policy check` validates this directory; the gateway reloads it on change and keeps
// the previous set when the new one does not validate.
//
// - principal: Tenet::Workload::"<SPIFFE ID>" (a caller with an X509-SVID), a member of
//   Tenet::TrustDomain::"<trust domain>"; Tenet::User::"<provider>:<subject>" (a person
//   signed in on a people route), a member of each Tenet::Group::"<group>" the provider
//   asserted, with `email`, `name`, `provider`, `subject`; or Tenet::Anonymous::"anonymous".
// - action: the HTTP method, e.g. Tenet::Action::"GET"; groups Tenet::Action::"read"
//   (GET, HEAD, OPTIONS) and Tenet::Action::"write" (POST, PUT, PATCH, DELETE).
// - resource: Tenet::Route::"<route name>", in Tenet::Service::"<service name>", with
//   `host` and `path` (the normalised path that is forwarded).
// - context: source_ip, tls {{ version, sni, alpn, mtls, client_serial }},
//   time {{ unix, hour_utc, weekday }}, protocol, risk (0-100),
//   session {{ authenticated, factors, phishing_resistant, user_verified, age_secs,
//   mfa_age_secs }} and device {{ id, enrolled, compliant, posture_age_secs, os, os_version,
//   disk_encrypted, firewall, screen_lock, endpoint_protection }} (people; defaults for
//   workloads). user_verified: a WebAuthn sign-in verified the person with a PIN or
//   biometric (a security key may sign in without it; TOTP and recovery codes never do).
//
// @id("...") names a policy in decisions and logs; ids must be unique.

// The shop frontend may read the product catalogue.
@id("shop-frontend-reads-catalog")
permit (
  principal == Tenet::Workload::{frontend},
  action in [Tenet::Action::"GET", Tenet::Action::"HEAD"],
  resource == Tenet::Route::"catalog"
)
when {{ resource.path == "/products" || resource.path like "/products/*" }};

// No one reaches an admin path through the gateway, whatever another policy permits.
@id("no-admin-paths")
forbid (principal, action, resource)
when {{ resource.path like "/admin*" }};

// More examples (remove the // to use them):
//
// Every workload of this trust domain may read the shop service, over mTLS only:
// @id("trust-domain-reads-shop")
// permit (
//   principal in Tenet::TrustDomain::{domain},
//   action in Tenet::Action::"read",
//   resource in Tenet::Service::"shop"
// )
// when {{ context.tls.mtls }};
//
// The payroll service needs a passkey or security key sign-in with a PIN or biometric:
// @id("payroll-needs-verified-people")
// forbid (principal, action, resource in Tenet::Service::"payroll")
// unless {{ context.session.phishing_resistant && context.session.user_verified }};
//
// Callers with a high risk score are stopped everywhere:
// @id("high-risk-denied")
// forbid (principal, action, resource)
// when {{ context.risk >= 80 }};
"#
    )
}

/// `value` as a Cedar string literal, quotes included.
fn cedar_string(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
