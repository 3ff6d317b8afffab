//! Refusals of requests made without a session (the provider's callback, device enrolment and
//! posture reports): anyone can send those, so their ledger events are limited per source.
//! Within the limit each refusal is one event. Past it the client is answered 429, the
//! refusal is logged (a warning when the source goes over, then at debug) and counted, and
//! once the window has ended one `throttled` event says how many refusals from that source
//! were not recorded one by one, so the ledger stays bounded and loses nothing silently.
//!
//! Many sources (an IPv6 /48 holds 65,536 /64s) could still add up to any number of events,
//! so these events, one by one and per-source summaries alike, are also limited across all
//! sources: [`REFUSAL_EVENTS_OVERALL`] per window. Past that a refusal gets its usual answer
//! (or 429 past its source's limit) and is counted, with its source, into one `throttled`
//! event for the window, recorded once it has ended; a warning says when the limit is hit.

use std::net::IpAddr;

use time::format_description::well_known::Rfc3339;

use super::*;
use tenet_throttle::{MANY_KEYS, Overflow, Share, Spill, Tally};

/// Refusals of requests without a session recorded one by one, per source and window.
pub(super) const REFUSALS_PER_SOURCE: u32 = 50;
/// The window of [`REFUSALS_PER_SOURCE`].
pub(super) const REFUSAL_WINDOW: time::Duration = time::Duration::minutes(10);

/// Refusal events recorded across all sources per [`REFUSAL_WINDOW`]: refusals one by one
/// and sources' summaries alike. Past it, one summary of the window.
pub(super) const REFUSAL_EVENTS_OVERALL: u32 = 1_000;

/// The activity of the ledger event summarising a source's refusals past the limit.
const THROTTLED: &str = "throttled";

/// The source a refusal is counted against: the address for IPv4, its /64 for IPv6.
pub(super) use tenet_throttle::source_of;

impl SignIn {
    /// Records the refusal of a request made without a session and returns the answer to
    /// send: `refused` within the source's limit, or 429 past it (the event is then counted
    /// for the window's summary instead of being recorded).
    pub(super) async fn record_refusal(
        &self,
        req: &AuthRequest,
        event: AuthenticationEvent,
        refused: Answer,
    ) -> Answer {
        let source = source_of(req.source_ip);
        let activity = event.activity.as_str();
        let reason = event.reason.as_str();
        let until = match self.refusals_per_source.tally(&source, req.now) {
            Tally::Within => {
                match self.refusals_overall.take(&source, 1, req.now) {
                    Share::Within => {
                        info!(%source, activity, reason, "sign-in request refused");
                        self.record(req.now, event).await;
                    }
                    Share::Over { first } => {
                        overall_limit_reached(first);
                        debug!(%source, activity, reason,
                            "sign-in request refused, not recorded one by one (all sources)");
                    }
                }
                return refused;
            }
            Tally::Over { first, until } => {
                if first {
                    warn!(
                        %source,
                        limit = REFUSALS_PER_SOURCE,
                        window_secs = REFUSAL_WINDOW.whole_seconds(),
                        "too many refused sign-in requests from one source; further refusals \
                         are answered 429 and summarised in the ledger when the window ends"
                    );
                }
                debug!(%source, activity, reason, "sign-in request refused, not recorded one by one");
                until
            }
        };
        let retry_after = (until - req.now).whole_seconds().max(1);
        let mut answer = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_refusals",
            "too many refused requests from this address; try again later",
        );
        if let Ok(value) = http::HeaderValue::from_str(&retry_after.to_string()) {
            answer.headers_mut().insert(header::RETRY_AFTER, value);
        }
        answer
    }

    /// Records one `throttled` ledger event for each source whose refusals went past the
    /// limit in a window that ended by `now`, saying how many were not recorded one by one;
    /// with `all` (at shutdown) also for windows still open. Returns how many were recorded.
    /// The gateway calls this periodically.
    ///
    /// Sources' summaries count toward [`REFUSAL_EVENTS_OVERALL`]: past it, a source's
    /// refusals are counted into the window's summary across all sources instead, which is
    /// recorded once that window has ended (or with `all`).
    pub async fn record_refusal_summaries(&self, now: OffsetDateTime, all: bool) -> usize {
        let mut recorded = 0;
        for overflow in self.refusals_per_source.take_overflows(now, all) {
            let over = u64::from(overflow.over);
            if overflow.key == MANY_KEYS {
                let windows = u64::from(overflow.windows);
                self.refusals_overall.spill_unnamed(over, windows, now);
                continue;
            }
            if let Share::Over { first } = self.refusals_overall.take(&overflow.key, over, now) {
                overall_limit_reached(first);
                continue;
            }
            info!(
                source = %overflow.key,
                refusals = overflow.over,
                "refusals past the limit summarised in the ledger"
            );
            if self.record(now, summary(&overflow)).await {
                recorded += 1;
            }
        }
        for spill in self.refusals_overall.take_spills(now, all) {
            let (sources, _) = spill.keys();
            info!(
                refusals = spill.events,
                sources, "refusals past the limit across all sources summarised in the ledger"
            );
            if self.record(now, overall_summary(&spill)).await {
                recorded += 1;
            }
        }
        recorded
    }
}

/// Says, at warn for the first time in a window, that refusals from all sources together went
/// past [`REFUSAL_EVENTS_OVERALL`].
fn overall_limit_reached(first: bool) {
    if first {
        warn!(
            limit = REFUSAL_EVENTS_OVERALL,
            window_secs = REFUSAL_WINDOW.whole_seconds(),
            "too many refused sign-in requests from all sources together; further refusals are \
             summarised in one ledger event when the window ends"
        );
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

/// The `throttled` event of one window of all sources together.
fn overall_summary(spill: &Spill) -> AuthenticationEvent {
    let (sources, exact) = spill.keys();
    let sources = match (sources, exact) {
        (1, true) => "1 source".to_owned(),
        (n, true) => format!("{n} sources"),
        (n, false) => format!("at most {n} sources"),
    };
    AuthenticationEvent {
        activity: THROTTLED.into(),
        user: "unknown".into(),
        provider: None,
        factor: None,
        success: false,
        reason: format!(
            "refusals_not_recorded: {} refused requests from {sources} between {} and {} were \
             not recorded one by one or in a summary of their source (limit \
             {REFUSAL_EVENTS_OVERALL} refusal events from all sources per {} minutes); each got \
             its refusal, or 429 past its source's limit",
            spill.events,
            rfc3339(spill.start),
            rfc3339(spill.end),
            REFUSAL_WINDOW.whole_minutes(),
        ),
        source_ip: IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
        device: None,
        request_id: None,
    }
}

/// The `throttled` event of one source's window (sources that did not fit are folded into
/// the [`overall_summary`] instead).
fn summary(overflow: &Overflow) -> AuthenticationEvent {
    let source_ip = overflow
        .key
        .parse::<IpAddr>()
        .or_else(|_| overflow.key.parse::<ipnet::IpNet>().map(|n| n.addr()))
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    AuthenticationEvent {
        activity: THROTTLED.into(),
        user: "unknown".into(),
        provider: None,
        factor: None,
        success: false,
        reason: format!(
            "refusals_not_recorded: {} refused requests from {} between {} and {} were \
             answered 429 and not recorded one by one (limit {REFUSALS_PER_SOURCE} per {} \
             minutes)",
            overflow.over,
            overflow.key,
            rfc3339(overflow.start),
            rfc3339(overflow.end),
            REFUSAL_WINDOW.whole_minutes(),
        ),
        source_ip,
        device: None,
        request_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_addresses_for_ipv4_and_slash_64s_for_ipv6() {
        let source = |text: &str| source_of(text.parse().unwrap());
        assert_eq!(source("203.0.113.9"), "203.0.113.9");
        assert_eq!(source("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(source("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(source("2001:db8:1:2::ffff"), "2001:db8:1:2::/64");
    }

    #[test]
    fn the_summary_names_the_source_the_count_and_the_window() {
        let start = time::macros::datetime!(2026-12-01 09:00 UTC);
        let overflow = Overflow {
            key: "2001:db8:1:2::/64".into(),
            start,
            end: start + REFUSAL_WINDOW,
            first_over: start + time::Duration::minutes(1),
            last: start + time::Duration::minutes(3),
            over: 7,
            windows: 1,
        };
        let event = summary(&overflow);
        assert_eq!(event.activity, "throttled");
        assert!(!event.success);
        assert_eq!(event.source_ip, "2001:db8:1:2::".parse::<IpAddr>().unwrap());
        assert_eq!(
            event.reason,
            "refusals_not_recorded: 7 refused requests from 2001:db8:1:2::/64 between \
             2026-12-01T09:00:00Z and 2026-12-01T09:10:00Z were answered 429 and not recorded \
             one by one (limit 50 per 10 minutes)"
        );
    }

    #[test]
    fn the_overall_summary_names_the_count_the_sources_and_the_window() {
        let start = time::macros::datetime!(2026-12-01 09:00 UTC);
        let pool = tenet_throttle::Pool::new(0, REFUSAL_WINDOW);
        pool.take("203.0.113.9", 1, start);
        pool.take("2001:db8:1:2::/64", 5, start);
        pool.take("203.0.113.9", 1, start);
        let spills = pool.take_spills(start + REFUSAL_WINDOW, false);
        let event = overall_summary(&spills[0]);
        assert_eq!(event.activity, "throttled");
        assert!(!event.success);
        assert!(event.source_ip.is_unspecified());
        assert_eq!(
            event.reason,
            "refusals_not_recorded: 7 refused requests from 2 sources between \
             2026-12-01T09:00:00Z and 2026-12-01T09:10:00Z were not recorded one by one or in a \
             summary of their source (limit 1000 refusal events from all sources per 10 \
             minutes); each got its refusal, or 429 past its source's limit"
        );
    }
}
