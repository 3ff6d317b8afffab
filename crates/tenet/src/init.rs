//! `tenet init`: a new deployment directory with configuration, policies, CA, the admin
//! credential and the ledger's checkpoint keys.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use tenet_event::{AdminEvent, EventKind};
use tenet_identity::{CertificateAuthority, TrustDomain};
use time::OffsetDateTime;

use crate::config;

/// Lifetime of the admin credential `tenet init` writes.
pub const ADMIN_CREDENTIAL_TTL: Duration = Duration::from_secs(30 * 86_400);

/// Create a deployment in `dir` for `trust_domain`.
pub fn run(dir: &Path, trust_domain: &str, force: bool, now: OffsetDateTime) -> Result<()> {
    let td = TrustDomain::parse(trust_domain)
        .map_err(|e| anyhow!("--trust-domain {trust_domain:?}: {e}"))?;
    let config_path = dir.join("tenet.toml");
    if config_path.exists() && !force {
        bail!(
            "{} already exists: this is a deployment; use --force to replace it (the CA and \
             admin credential are regenerated, existing SVIDs stop verifying)",
            config_path.display()
        );
    }
    if !force && dir.join("data/ca").exists() {
        bail!(
            "{} holds a CA but no tenet.toml: refusing to mix a new configuration with it; \
             use --force to replace the CA too",
            dir.join("data/ca").display()
        );
    }
    // The example route's host is derived from the trust domain; check it before writing.
    tenet_request::canonical_host(&example_host(&td), 443).map_err(|e| {
        anyhow!("--trust-domain {trust_domain:?} cannot name the example route's host: {e}")
    })?;
    // Re-initialising replaces the CA: hold the ledger throughout, so that this fails before
    // changing anything while a deployment runs, and the replacement is recorded.
    let old_ledger = dir.join("data/ledger");
    let held = if force && old_ledger.is_dir() {
        Some(crate::ledger::hold(&old_ledger)?)
    } else {
        None
    };
    make_dir(dir, 0o755)?;
    make_dir(&dir.join("policies"), 0o755)?;
    make_dir(&dir.join("data"), 0o700)?;

    write_file(&config_path, config_template(&td).as_bytes(), 0o644)?;
    write_file(
        &dir.join("policies/tenet.cedarschema"),
        tenet_policy::TENET_SCHEMA.as_bytes(),
        0o644,
    )?;
    write_file(
        &dir.join("policies/example.cedar"),
        tenet_policy::example_policies(td.as_str()).as_bytes(),
        0o644,
    )?;
    tenet_policy::PolicySnapshot::load_dir(&dir.join("policies"))
        .map_err(|e| anyhow!("the example policies do not validate: {e}"))?;

    let config = config::load(Some(&config_path))?;
    if force {
        // --force replaces the CA and the admin credential; the event ledger and its keys are
        // kept, so its history still verifies.
        for old in [config.ca_dir(), config.admin_dir()] {
            if old.exists() {
                std::fs::remove_dir_all(&old)
                    .with_context(|| format!("removing {}", old.display()))?;
            }
        }
    }
    let ca = CertificateAuthority::generate(&td, now).context("generating the CA")?;
    make_dir(&config.ca_dir(), 0o700)?;
    ca.save(&config.ca_dir()).context("writing the CA")?;
    let admin = ca
        .issue_x509_svid(&config.admin_id()?, ADMIN_CREDENTIAL_TTL, now)
        .context("issuing the admin credential")?;
    make_dir(&config.admin_dir(), 0o700)?;
    admin
        .write_files(&config.admin_dir(), &ca.bundle())
        .context("writing the admin credential")?;
    crate::ledger::create_keys(&config)?;
    let event = AdminEvent {
        actor: "cli".into(),
        operation: if force {
            "deployment.reinit"
        } else {
            "deployment.init"
        }
        .into(),
        success: true,
        detail: format!(
            "trust domain {td}; new CA, admin credential {}",
            config.admin_id()?
        ),
    };
    crate::ledger::record_directly(&config, held, EventKind::Admin(event))?;
    Ok(())
}

pub fn make_dir(path: &Path, mode: u32) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(mode)
        .create(path)
        .with_context(|| format!("creating {}", path.display()))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("writing {}", path.display()))
}

fn example_host(td: &TrustDomain) -> String {
    format!("catalog.{td}")
}

fn config_template(td: &TrustDomain) -> String {
    let host = example_host(td);
    format!(
        r#"# Tenet deployment configuration. Paths are relative to this file.

[deployment]
# The SPIFFE trust domain of every identity this deployment issues.
trust_domain = "{td}"
# CA keys, the admin credential, the event ledger (data/ledger) and its checkpoint signing
# key (data/ledger-key), all owner-only; data/ledger.vkey is the public verifier key.
data_dir = "data"
# Cedar policies (*.cedar), validated against the Tenet schema; reloaded when they change.
policy_dir = "policies"
# Lifetime of the gateway's own SVID; it is renewed at half of its lifetime.
svid_ttl = "1h"
# Clock skew tolerated on peer certificates (accepted with a warning).
clock_skew = "60s"
# How long a forwarded request's body may go without a byte while the upstream waits for it
# (1s to 1h); a longer gap cancels the upstream request and the client gets 408.
request_body_idle_timeout = "30s"
# Most connections one source (an address, or an IPv6 /64) may hold open at once, in its TLS
# handshake, idle or busy; past it its new connections are dropped at once. By default half
# of the connection limit (which `tenet up` logs at start). Behind a load balancer that hides
# the clients' addresses every connection comes from the balancer: raise it to the connection
# limit there. Not set here: half. For example, to let one address hold at most 100:
# max_connections_per_source = 100

[events]
# Every event goes into the tamper-evident ledger in data/ledger; a checkpoint (a signed tree
# head) is signed at least every second while events arrive, and on shutdown. A request is
# answered only after its event is written, so a crash of the process (kill -9) loses no
# answered request's event whatever this says. It says when the records are also forced to
# stable storage (fdatasync), which matters for a power loss or kernel crash:
#   "interval" every 100 ms while events arrive, on a thread of its own, so no request waits
#              for the disk ("1s", "250ms": another interval, 10ms to 1h); a power loss can lose the
#              acknowledged events of the last interval, never those a checkpoint covers
#   "batch"    every group commit, before any event in it is acknowledged: nothing
#              acknowledged is lost to a power loss, and every request waits for the disk's
#              fdatasync (milliseconds on many disks)
#   "never"    leave it to the operating system (checkpoints still sync what they cover)
# Each checkpoint syncs everything it covers, whatever the setting. The admin API's
# /v1/status shows how many entries are known durable.
sync = "interval"
# Refused handshakes, request heads, HTTP/2 connections and malformed requests are recorded
# one by one up to this many per source (an address, or an IPv6 /64), stage and listener
# each minute. Past it they are still refused, counted and logged at debug, and one
# "throttled" event per source and minute says how many were held back, so that one host
# cannot fill the ledger. Authorization decisions are never held back.
refusals_per_source = 100
# The same across all sources together, summaries included; past it one summary of the
# minute.
refusals_overall = 2000

[admin]
# The admin API (mTLS; only the admin credential in data/admin is accepted).
listen = "127.0.0.1:8444"
# Workloads (SPIFFE IDs of this trust domain) that may read the ledger's checkpoints and
# proofs, and nothing else: witnesses and auditors following the log.
# witnesses = ["spiffe://{td}/ns/audit/sa/witness"]

# A gateway listener. client_auth = "required" demands an X.509-SVID from every caller.
[[listeners]]
name = "main"
listen = "127.0.0.1:8443"
client_auth = "required"
# SNI names served; empty means the hosts of this listener's routes.
server_names = []

# A route: requests for host + path_prefix on the listener belong to the service. The Cedar
# resource is Tenet::Route::"<name>" in Tenet::Service::"<service>".
[[routes]]
name = "catalog"
service = "catalog"
listener = "main"
host = "{host}"
path_prefix = "/"
upstream = "http://127.0.0.1:8080"
# For an mTLS upstream: upstream = "https://..." and the SPIFFE ID it must present.
# upstream_spiffe_id = "spiffe://{td}/ns/shop/sa/catalog"
# "auto" (HTTP/1.1, or HTTP/2 by ALPN over TLS) or "http2" (h2c, for gRPC without TLS).
upstream_protocol = "auto"

[detect]
# Behavioural analytics over every event (and Sigma rules when `rules` names a file or
# folder); detections raise the principal's risk (policies see context.risk).
enabled = true
# rules = "rules"
# Response playbooks (YAML) in this folder; none when it is missing.
playbooks = "playbooks"
# How long a principal whose risk crosses the cut-off threshold is revoked, or "off".
cut_off = "15m"

# People in browsers: a route with `people = true` signs them in at an OpenID Connect
# provider, then asks for a passkey, and keeps a server-side session re-checked on every
# request. Uncomment and adapt (the listener for people takes client_auth = "optional", so
# enrolled devices can present their certificates).
#
# [[listeners]]
# name = "people"
# listen = "127.0.0.1:9443"
# client_auth = "optional"
#
# [[routes]]
# name = "wiki"
# service = "wiki"
# listener = "people"
# host = "wiki.{td}"
# upstream = "http://127.0.0.1:8090"
# people = true
#
# [people]
# rp_id = "{td}"                               # WebAuthn relying party
# origins = ["https://wiki.{td}:9443"]
# require_webauthn = true
# admin_groups = ["admins"]                    # always need a passkey
# idle_timeout = "30m"
# absolute_timeout = "12h"
# second_factor_timeout = "10m"                # a sign-in without its passkey yet ends then
# posture_action = "end"                       # a device losing compliance: "end" or "step_up"
# step_up_on_network_change = true            # another /24 or /64: confirm with the passkey
# risk_step_up = 50                            # detection risk that asks for the passkey again
# risk_end = 80                                # ... and that ends the session
# max_travel_kmh = 1000                        # faster between [[people.sites]] ends the session
# sign_ins_per_source = 300                    # sign-ins an address (IPv6 /64) may start in 10 min
# bearer_audience = "wiki-api"                 # accept the provider's access tokens for API calls
# bearer_kind = "typ:at+jwt"                   # ... of this kind (or "token_use:access")
# bearer_key_wait = "3s"                       # ... whose new signing key is awaited this long
# discovery_retry_max = "60s"                  # a provider down at start: retried 1s, 2s, ... up to this
#
# [people.posture]
# max_age_secs = 86400
# require_disk_encryption = true
#
# [[people.sites]]                             # where networks are, for impossible travel
# network = "198.51.100.0/24"
# name = "paris-office"
# latitude = 48.86
# longitude = 2.35
#
# [people.posture] also takes require_firewall, require_screen_lock,
# require_endpoint_protection, require_mdm_compliant and min_os_versions = {{ debian = "12" }}.
#
# [[people.providers]]
# name = "corp"
# issuer = "https://login.{td}"               # discovery at /.well-known/openid-configuration
# client_id = "tenet"
# client_secret_file = "secrets/corp"          # none: a public client (PKCE only)
# redirect_uri = "https://wiki.{td}:9443/.tenet/auth/callback"
# ca_file = "login-ca.pem"                     # an extra root for the provider's TLS
# groups_claim = "groups"                      # the ID-token claim that lists groups
# scopes = ["openid", "email", "profile"]
# jwks_refetch_interval = "30s"                # unknown key ids: keys refetched at most this often
#
# The people commands (tenet device token|list|revoke|import, tenet session list|revoke)
# talk to the running deployment's admin API: start `tenet up` first.
"#
    )
}
