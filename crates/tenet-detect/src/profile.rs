//! One principal's learned behaviour and the analytics that compare each request with it:
//! novelty of services and routes, fan-out, request rate, hours, source networks, and routes
//! it was denied.
//!
//! The baseline (services, routes, hours, networks) learns only from requests that were
//! allowed and raised no detection, so that an attacker's probes never become "usual".

use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;

use serde_json::json;
use tenet_event::{AccessEvent, Disposition};
use time::OffsetDateTime;

use crate::config::AnalyticsConfig;
use crate::escalation::Policies;
use crate::names::{NameId, Names};
use crate::persist::{SavedPrincipal, SavedRate};
use crate::rate::Rate;
use crate::window::{Burst, FanOut};
use crate::{Alert, Level, Subject, rules};

/// Names shown in an explanation before "...".
const SHOWN: usize = 8;

/// What the analytics need to judge one request, besides the principal's profile.
pub(crate) struct Context<'a> {
    pub(crate) config: &'a AnalyticsConfig,
    pub(crate) names: &'a Names,
    /// The policy sets seen, to tell a right granted by a policy change from one that
    /// follows from the request's context.
    pub(crate) policies: &'a Policies,
    pub(crate) principal: &'a str,
    pub(crate) now: OffsetDateTime,
    pub(crate) now_ms: i64,
}

impl Context<'_> {
    fn alert(
        &self,
        rule: &str,
        level: Level,
        explanation: String,
        evidence: serde_json::Value,
    ) -> Alert {
        Alert {
            rule: rule.to_string(),
            level,
            subject: Subject::Principal(self.principal.to_string()),
            explanation,
            evidence,
            at: self.now,
        }
    }
}

/// The request, with its names interned.
pub(crate) struct Request<'a> {
    pub(crate) event: &'a AccessEvent,
    pub(crate) service: Option<NameId>,
    pub(crate) route: Option<NameId>,
    pub(crate) policy_hash: Option<NameId>,
    pub(crate) method: Method,
    /// The policies that determined the decision (for an allow, those that allowed it).
    pub(crate) reasons: Vec<NameId>,
}

impl Request<'_> {
    fn allowed(&self) -> bool {
        self.event.disposition == Disposition::Allowed
    }

    fn outcome(&self) -> &'static str {
        if self.allowed() { "allowed" } else { "denied" }
    }
}

/// The HTTP method, folded to the standard ones so that an attacker's invented methods
/// cannot grow a principal's memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Connect,
    Trace,
    Other,
}

impl Method {
    pub(crate) fn of(method: &str) -> Self {
        match method {
            "GET" => Self::Get,
            "HEAD" => Self::Head,
            "POST" => Self::Post,
            "PUT" => Self::Put,
            "PATCH" => Self::Patch,
            "DELETE" => Self::Delete,
            "OPTIONS" => Self::Options,
            "CONNECT" => Self::Connect,
            "TRACE" => Self::Trace,
            _ => Self::Other,
        }
    }
}

/// A source network: an address masked to the configured prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Network {
    V4(u32, u8),
    V6(u128, u8),
}

impl Network {
    pub(crate) fn of(ip: IpAddr, v4_len: u8, v6_len: u8) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(v4_len.min(32)))
                    .unwrap_or(0);
                Self::V4(u32::from(v4) & mask, v4_len)
            }
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(v6_len.min(128)))
                    .unwrap_or(0);
                Self::V6(u128::from(v6) & mask, v6_len)
            }
        }
    }
}

impl Network {
    /// `addr/len` as written by [`fmt::Display`], when `len` is the configured prefix length
    /// of its family.
    fn parse(text: &str, v4_len: u8, v6_len: u8) -> Option<Self> {
        let (addr, len) = text.split_once('/')?;
        let ip: IpAddr = addr.parse().ok()?;
        let len: u8 = len.parse().ok()?;
        let network = Self::of(ip, v4_len, v6_len);
        let wanted = match network {
            Self::V4(_, l) | Self::V6(_, l) => l,
        };
        (len == wanted).then_some(network)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4(bits, len) => write!(f, "{}/{len}", std::net::Ipv4Addr::from(*bits)),
            Self::V6(bits, len) => write!(f, "{}/{len}", std::net::Ipv6Addr::from(*bits)),
        }
    }
}

/// A route the principal was denied, under which policy set, and by which policies (none
/// for a default deny).
#[derive(Debug, Clone)]
struct Denial {
    route: NameId,
    method: Method,
    policy_hash: NameId,
    reasons: Box<[NameId]>,
    at_ms: i64,
}

/// The denying policies remembered per denial.
const DENIAL_REASONS_KEPT: usize = 8;

/// A set of names with a cap; once the cap is reached the set is "saturated" and novelty on
/// that dimension stops meaning anything.
#[derive(Debug, Default)]
struct Known {
    ids: Vec<NameId>,
    saturated: bool,
}

impl Known {
    fn contains(&self, id: NameId) -> bool {
        self.ids.contains(&id)
    }

    fn learn(&mut self, id: NameId, cap: u32) {
        if self.contains(id) {
            return;
        }
        if self.ids.len() >= cap as usize {
            self.saturated = true;
        } else {
            self.ids.push(id);
        }
    }
}

/// Everything learned about one principal.
#[derive(Debug)]
pub(crate) struct Profile {
    first_seen_ms: i64,
    events: u32,
    established: bool,
    services: Known,
    /// Route ids learned, per service: (service, route).
    routes: Vec<(NameId, NameId)>,
    routes_saturated: bool,
    fan_out: FanOut,
    peak_fan_out: u32,
    rate: Rate,
    hours: [u32; 24],
    networks: Vec<Network>,
    networks_saturated: bool,
    denials: VecDeque<Denial>,
    pub(crate) failures: Burst,
}

impl Profile {
    pub(crate) fn new(now_ms: i64) -> Self {
        Self {
            first_seen_ms: now_ms,
            events: 0,
            established: false,
            services: Known::default(),
            routes: Vec::new(),
            routes_saturated: false,
            fan_out: FanOut::default(),
            peak_fan_out: 0,
            rate: Rate::default(),
            hours: [0; 24],
            networks: Vec::new(),
            networks_saturated: false,
            denials: VecDeque::new(),
            failures: Burst::default(),
        }
    }

    /// Whether the learning period is over (it stays over once it is).
    pub(crate) fn established(&self) -> bool {
        self.established
    }

    fn update_established(&mut self, ctx: &Context<'_>) {
        let period_ms = secs_to_ms(ctx.config.learning.period_secs);
        self.established = self.established
            || (self.events >= ctx.config.learning.min_events
                && ctx.now_ms.saturating_sub(self.first_seen_ms) >= period_ms);
    }

    /// Judge one request against the profile. What it learns from the request (services,
    /// routes, hours, networks) is added by [`Profile::learn`], and only for a request that
    /// was allowed and raised no detection: an attacker's probes, denied or detected, never
    /// become part of the baseline, and the same move is flagged again.
    pub(crate) fn observe(&mut self, ctx: &Context<'_>, req: &Request<'_>, out: &mut Vec<Alert>) {
        self.events = self.events.saturating_add(1);
        self.update_established(ctx);

        if let Some(service) = req.service {
            self.novelty(ctx, req, service, out);
            self.fan_out(ctx, service, out);
        }
        if let Some(seen) = self
            .rate
            .record(ctx.now_ms, &ctx.config.rate, self.established)
        {
            let c = &ctx.config.rate;
            out.push(ctx.alert(
                rules::RATE_ANOMALY,
                Level::Medium,
                format!(
                    "{} made {} requests in the current {} s bucket; its baseline is \
                     {:.1} ± {:.1} per bucket (EWMA over {} active buckets); threshold {:.1} \
                     (mean + {}σ, at least {})",
                    ctx.principal,
                    seen.count,
                    c.bucket_secs,
                    seen.mean,
                    seen.deviation,
                    seen.buckets,
                    seen.threshold,
                    c.sigmas,
                    c.min_requests
                ),
                json!({"requests": seen.count, "bucket_secs": c.bucket_secs,
                       "baseline_mean": seen.mean, "baseline_deviation": seen.deviation,
                       "baseline_buckets": seen.buckets, "threshold": seen.threshold}),
            ));
        }
        self.hour(ctx, out);
        self.network(ctx, req.event.source_ip, out);
        self.denials(ctx, req, out);
    }

    /// A service (or a route of a known service) outside the learned baseline.
    fn novelty(
        &mut self,
        ctx: &Context<'_>,
        req: &Request<'_>,
        service: NameId,
        out: &mut Vec<Alert>,
    ) {
        let judge = self.established;
        let learned_days = ctx.now_ms.saturating_sub(self.first_seen_ms) / 86_400_000;
        let e = req.event;

        let new_service = !self.services.contains(service);
        if new_service && judge && !self.services.saturated {
            let known = ctx.names.list(self.services.ids.iter().copied(), SHOWN);
            let name = ctx.names.name(service);
            out.push(ctx.alert(
                rules::LATERAL_MOVEMENT,
                if req.allowed() {
                    Level::High
                } else {
                    Level::Medium
                },
                format!(
                    "{} reached service \"{name}\" ({} {} {}, {}), outside its baseline of \
                     {} services learned over {learned_days} days: {}",
                    ctx.principal,
                    e.action,
                    e.host,
                    e.path,
                    req.outcome(),
                    self.services.ids.len(),
                    known.join(", ")
                ),
                json!({"kind": "new_service", "service": name, "method": e.action,
                       "host": e.host, "path": e.path, "outcome": req.outcome(),
                       "baseline_services": known,
                       "baseline_size": self.services.ids.len(),
                       "learned_days": learned_days}),
            ));
        }

        let Some(route) = req.route else { return };
        if self.routes.contains(&(service, route)) {
            return;
        }
        // A new route of a service the principal already used (a new service already fired).
        if judge && !self.routes_saturated && !new_service {
            let known = ctx.names.list(
                self.routes
                    .iter()
                    .filter(|(s, _)| *s == service)
                    .map(|(_, r)| *r),
                SHOWN,
            );
            let (route_name, service_name) = (ctx.names.name(route), ctx.names.name(service));
            out.push(ctx.alert(
                rules::LATERAL_MOVEMENT,
                Level::Low,
                format!(
                    "{} used route \"{route_name}\" of service \"{service_name}\" for the first \
                     time ({} {}, {}); routes it used there: {}",
                    ctx.principal,
                    e.action,
                    e.path,
                    req.outcome(),
                    known.join(", ")
                ),
                json!({"kind": "new_route", "service": service_name, "route": route_name,
                       "method": e.action, "path": e.path, "outcome": req.outcome(),
                       "baseline_routes": known}),
            ));
        }
    }

    /// Add an allowed request that raised no detection to the baseline: its service and
    /// route, its hour and its source network.
    pub(crate) fn learn(&mut self, ctx: &Context<'_>, req: &Request<'_>) {
        if !req.allowed() {
            return;
        }
        let cap = ctx.config.lateral.max_baseline_items;
        if let Some(service) = req.service {
            self.services.learn(service, cap);
            if let Some(route) = req.route
                && !self.routes.contains(&(service, route))
            {
                if self.routes.len() >= cap as usize {
                    self.routes_saturated = true;
                } else {
                    self.routes.push((service, route));
                }
            }
        }
        let hour = usize::from(ctx.now.to_offset(time::UtcOffset::UTC).hour());
        if let Some(n) = self.hours.get_mut(hour) {
            *n = n.saturating_add(1);
        }
        let c = &ctx.config.habits;
        let network = Network::of(req.event.source_ip, c.ipv4_prefix, c.ipv6_prefix);
        if !self.networks.contains(&network) {
            if self.networks.len() >= c.max_networks as usize {
                self.networks_saturated = true;
            } else {
                self.networks.push(network);
            }
        }
    }

    /// Many distinct services in a short window, more than the principal's peak.
    fn fan_out(&mut self, ctx: &Context<'_>, service: NameId, out: &mut Vec<Alert>) {
        let c = &ctx.config.lateral;
        let window_ms = secs_to_ms(c.fan_out_window_secs);
        let cap = c.max_baseline_items as usize;
        let distinct = u32::try_from(self.fan_out.record(service, ctx.now_ms, window_ms, cap))
            .unwrap_or(u32::MAX);
        // More than ever before (the peak is learned while establishing the baseline), and
        // at least the configured number.
        let threshold = c.fan_out_services.max(self.peak_fan_out.saturating_add(1));
        let previous_peak = self.peak_fan_out;
        if !self.established {
            self.peak_fan_out = self.peak_fan_out.max(distinct);
        }
        if distinct < threshold || !self.fan_out.may_alert(ctx.now_ms, window_ms) {
            return;
        }
        let services = ctx.names.list(self.fan_out.services(), usize::MAX);
        out.push(ctx.alert(
            rules::SERVICE_FAN_OUT,
            Level::High,
            format!(
                "{} reached {distinct} distinct services within {} s (threshold {threshold}: \
                 at least {} and above its previous peak of {previous_peak}): {}",
                ctx.principal,
                c.fan_out_window_secs,
                c.fan_out_services,
                services.join(", ")
            ),
            json!({"distinct_services": distinct, "window_secs": c.fan_out_window_secs,
                   "threshold": threshold, "previous_peak": previous_peak,
                   "services": services}),
        ));
    }

    /// Activity at an hour (UTC) at which the principal was never active, give or take the
    /// tolerance.
    fn hour(&self, ctx: &Context<'_>, out: &mut Vec<Alert>) {
        let hour = usize::from(ctx.now.to_offset(time::UtcOffset::UTC).hour());
        let c = &ctx.config.habits;
        if self.established && c.hours {
            let tolerance = usize::from(c.hour_tolerance);
            let usual = (24 - tolerance..=24 + tolerance)
                .any(|offset| self.hours.get((hour + offset) % 24).is_some_and(|n| *n > 0));
            if !usual {
                let hours = hour_ranges(&self.hours);
                out.push(ctx.alert(
                    rules::UNUSUAL_HOUR,
                    Level::Low,
                    format!(
                        "{} was active at {hour:02}:00–{:02}:00 UTC, outside its usual hours \
                         (UTC, ± {tolerance} h): {hours}",
                        ctx.principal,
                        (hour + 1) % 24
                    ),
                    json!({"hour_utc": hour, "usual_hours_utc": hours,
                           "tolerance_hours": tolerance}),
                ));
            }
        }
    }

    /// A source network never seen for the principal.
    fn network(&self, ctx: &Context<'_>, ip: IpAddr, out: &mut Vec<Alert>) {
        let c = &ctx.config.habits;
        let network = Network::of(ip, c.ipv4_prefix, c.ipv6_prefix);
        if self.networks.contains(&network) {
            return;
        }
        if self.established && c.networks && !self.networks_saturated {
            let known: Vec<String> = self
                .networks
                .iter()
                .take(SHOWN)
                .map(ToString::to_string)
                .collect();
            out.push(ctx.alert(
                rules::NEW_SOURCE_NETWORK,
                Level::Medium,
                format!(
                    "{} connected from {ip} in {network}, a network never seen for it; known \
                     networks: {}",
                    ctx.principal,
                    known.join(", ")
                ),
                json!({"source_ip": ip.to_string(), "network": network.to_string(),
                       "known_networks": known}),
            ));
        }
    }

    /// Remember denied routes; an allow of a route denied under an earlier policy set is a
    /// right the principal did not have, when the change of set explains it.
    fn denials(&mut self, ctx: &Context<'_>, req: &Request<'_>, out: &mut Vec<Alert>) {
        let (Some(route), Some(hash)) = (req.route, req.policy_hash) else {
            return;
        };
        let found = self
            .denials
            .iter()
            .position(|d| d.route == route && d.method == req.method);
        if !req.allowed() {
            let denial = Denial {
                route,
                method: req.method,
                policy_hash: hash,
                reasons: req
                    .reasons
                    .iter()
                    .take(DENIAL_REASONS_KEPT)
                    .copied()
                    .collect(),
                at_ms: ctx.now_ms,
            };
            match found.and_then(|i| self.denials.get_mut(i)) {
                Some(d) => *d = denial,
                None => {
                    if self.denials.len() >= ctx.config.lateral.max_baseline_items as usize {
                        self.denials.pop_front();
                    }
                    self.denials.push_back(denial);
                }
            }
            return;
        }
        let Some(denial) = found.and_then(|i| self.denials.remove(i)) else {
            return;
        };
        if denial.policy_hash == hash {
            // Allowed under the same set: a context-dependent policy, not a new right.
            return;
        }
        // Allowed by policies that were there before, with the denying ones still there: the
        // request's context changed, not the rights. Flagged when nothing is known of the sets.
        let attributable =
            ctx.policies
                .attributable(denial.policy_hash, hash, &req.reasons, &denial.reasons);
        if attributable == Some(false) {
            return;
        }
        let e = req.event;
        let (route_name, before, after) = (
            ctx.names.name(route),
            ctx.names.name(denial.policy_hash),
            ctx.names.name(hash),
        );
        let denied_at =
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(denial.at_ms) * 1_000_000)
                .ok()
                .and_then(|t| {
                    t.format(&time::format_description::well_known::Rfc3339)
                        .ok()
                })
                .unwrap_or_default();
        out.push(ctx.alert(
            rules::PRIVILEGE_ESCALATION,
            Level::High,
            format!(
                "{} was allowed {} on route \"{route_name}\" ({}) under policy set {after} by \
                 [{}], after being denied it under policy set {before} at {denied_at}",
                ctx.principal,
                e.action,
                e.path,
                e.reasons.join(", ")
            ),
            json!({"kind": "denied_then_allowed", "route": route_name, "method": e.action,
                   "path": e.path, "policy_hash": after, "previous_policy_hash": before,
                   "denied_at": denied_at, "reasons": e.reasons}),
        ));
    }
}

impl Profile {
    /// The learned baseline in a stable form: names as strings, networks as `addr/len`.
    /// Transient windows (fan-out, failures, denials, the current rate bucket) are not kept.
    pub(crate) fn save(&self, principal: &str, names: &Names) -> SavedPrincipal {
        let (mean, var, buckets) = self.rate.baseline();
        SavedPrincipal {
            principal: principal.to_string(),
            first_seen_ms: self.first_seen_ms,
            events: self.events,
            established: self.established,
            services: self
                .services
                .ids
                .iter()
                .map(|id| names.name(*id).to_string())
                .collect(),
            services_saturated: self.services.saturated,
            routes: self
                .routes
                .iter()
                .map(|(s, r)| (names.name(*s).to_string(), names.name(*r).to_string()))
                .collect(),
            routes_saturated: self.routes_saturated,
            peak_fan_out: self.peak_fan_out,
            hours: self.hours.to_vec(),
            networks: self.networks.iter().map(ToString::to_string).collect(),
            networks_saturated: self.networks_saturated,
            rate: SavedRate { mean, var, buckets },
        }
    }

    /// A profile restored from `saved`, within the configured caps: names that no longer
    /// fit the name table, items past the per-principal caps and networks of another prefix
    /// length than the one configured are dropped.
    pub(crate) fn restore(
        saved: &SavedPrincipal,
        names: &mut Names,
        config: &AnalyticsConfig,
    ) -> Self {
        let mut profile = Self::new(saved.first_seen_ms);
        profile.events = saved.events;
        profile.established = saved.established;
        let cap = config.lateral.max_baseline_items as usize;
        for service in saved.services.iter().take(cap) {
            if let Some(id) = names.intern(service)
                && !profile.services.contains(id)
            {
                profile.services.ids.push(id);
            }
        }
        profile.services.saturated =
            saved.services_saturated || saved.services.len() > profile.services.ids.len();
        for (service, route) in saved.routes.iter().take(cap) {
            if let (Some(s), Some(r)) = (names.intern(service), names.intern(route))
                && !profile.routes.contains(&(s, r))
            {
                profile.routes.push((s, r));
            }
        }
        profile.routes_saturated =
            saved.routes_saturated || saved.routes.len() > profile.routes.len();
        profile.peak_fan_out = saved.peak_fan_out;
        for (slot, n) in profile.hours.iter_mut().zip(saved.hours.iter()) {
            *slot = *n;
        }
        let c = &config.habits;
        for network in saved.networks.iter().take(c.max_networks as usize) {
            if let Some(network) = Network::parse(network, c.ipv4_prefix, c.ipv6_prefix)
                && !profile.networks.contains(&network)
            {
                profile.networks.push(network);
            }
        }
        profile.networks_saturated =
            saved.networks_saturated || saved.networks.len() > c.max_networks as usize;
        profile.rate = Rate::restored(saved.rate.mean, saved.rate.var, saved.rate.buckets);
        profile
    }
}

/// Hours with activity as ranges, e.g. `08:00–18:00, 22:00–23:00`.
fn hour_ranges(hours: &[u32; 24]) -> String {
    let mut ranges = Vec::new();
    let mut start = None;
    for h in 0..=24 {
        let active = hours.get(h).is_some_and(|n| *n > 0);
        match (active, start) {
            (true, None) => start = Some(h),
            (false, Some(s)) => {
                ranges.push(format!("{s:02}:00–{:02}:00", h % 24));
                start = None;
            }
            _ => {}
        }
    }
    if ranges.is_empty() {
        "none".into()
    } else {
        ranges.join(", ")
    }
}

/// Seconds (validated to at most a year) as milliseconds.
pub(crate) fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_mask_to_their_prefix() {
        let a = Network::of("10.1.2.3".parse().unwrap(), 24, 64);
        assert_eq!(a.to_string(), "10.1.2.0/24");
        assert_eq!(a, Network::of("::ffff:10.1.2.200".parse().unwrap(), 24, 64));
        let b = Network::of("2001:db8:1:2:3:4:5:6".parse().unwrap(), 24, 64);
        assert_eq!(b.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            Network::of("1.2.3.4".parse().unwrap(), 32, 64).to_string(),
            "1.2.3.4/32"
        );
    }

    #[test]
    fn hour_ranges_are_readable() {
        let mut hours = [0; 24];
        hours[8..18].fill(1);
        hours[23] = 2;
        assert_eq!(hour_ranges(&hours), "08:00–18:00, 23:00–00:00");
        assert_eq!(hour_ranges(&[0; 24]), "none");
    }

    #[test]
    fn methods_fold_to_a_closed_set() {
        assert_eq!(Method::of("GET"), Method::Get);
        assert_eq!(Method::of("BREW"), Method::Other);
        assert_eq!(Method::of("get"), Method::Other);
    }
}
