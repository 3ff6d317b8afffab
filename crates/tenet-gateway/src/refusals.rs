//! The ledger events of refused connections and requests, limited per source.
//!
//! Anyone who can reach a listener can make it refuse a handshake, a request head or an
//! HTTP/2 connection, as often as it can open connections; one event each would let a single
//! host grow the ledger by hundreds of events a second. So refusals are recorded one by one
//! up to [`RefusalLimits::per_source`] per stage (`tls`, `http`, `http2`), listener and source
//! (an address, or an IPv6 /64) in each [`REFUSAL_WINDOW`]. Past that a refusal is still
//! answered, counted and logged (at debug, after one warning), and once the window has ended
//! one event of kind [`THROTTLED`] and the same stage says how many were not recorded one by
//! one, from where and when.
//!
//! Many sources could still add up to any number of events, so the events (one by one and
//! per-source summaries alike) are also limited across all sources:
//! [`RefusalLimits::overall`] per window. What goes past that, and the sources' summaries
//! that find it reached, go into one summary across sources (stage `all`) per check.
//!
//! Decisions are not limited: every authorization decision is recorded.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Mutex, PoisonError};

use tenet_event::{Event, EventKind, RejectionEvent, THROTTLED};
use tenet_throttle::{MANY_KEYS, Overflow, Pool, Share, Spill, Tally, Throttle, source_of};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::{debug, info, warn};

use crate::server::Shared;

/// The window of the refusal limits.
pub const REFUSAL_WINDOW: time::Duration = time::Duration::minutes(1);

/// How many refusal events the gateway records one by one per [`REFUSAL_WINDOW`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalLimits {
    /// Per stage, listener and source (an address, or an IPv6 /64). Default: 100.
    pub per_source: u32,
    /// Across all sources, per-source summaries included. Default: 2,000.
    pub overall: u32,
}

impl Default for RefusalLimits {
    fn default() -> Self {
        Self {
            per_source: 100,
            overall: 2_000,
        }
    }
}

/// The limits' state.
#[derive(Debug)]
pub(crate) struct Refusals {
    limits: RefusalLimits,
    per_source: Throttle,
    overall: Pool,
    /// The window of the per-source warnings and how many were logged in it.
    warnings: Mutex<(Option<OffsetDateTime>, u32)>,
}

/// What a refusal is: where it happened and where it came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refused<'a> {
    /// `tls`, `http` or `http2`.
    pub stage: &'a str,
    /// The listener's name.
    pub listener: &'a str,
    /// The client's address.
    pub ip: IpAddr,
}

/// Most warnings per [`REFUSAL_WINDOW`] that a source went over its limit; past them they
/// are logged at debug, so that many sources cannot flood the log either.
const SOURCE_WARNINGS: u32 = 10;

impl Refusals {
    pub(crate) fn new(limits: RefusalLimits) -> Self {
        Self {
            limits,
            per_source: Throttle::summarising(limits.per_source, REFUSAL_WINDOW),
            overall: Pool::new(limits.overall, REFUSAL_WINDOW),
            warnings: Mutex::new((None, 0)),
        }
    }

    /// Counts a refusal at `now` and says whether it is to be recorded one by one (otherwise
    /// it is counted for its window's summary).
    pub(crate) fn admit(&self, refused: Refused<'_>, now: OffsetDateTime) -> bool {
        let source = source_of(refused.ip);
        let key = key(refused.stage, refused.listener, &source);
        let admitted = match self.per_source.tally(&key, now) {
            Tally::Within => match self.overall.take(&source, 1, now) {
                Share::Within => true,
                Share::Over { first } => {
                    self.overall_reached(first);
                    false
                }
            },
            Tally::Over { first, .. } => {
                if first {
                    self.source_over(&source, refused, now);
                }
                false
            }
        };
        if !admitted {
            metrics::counter!("tenet_gateway_refusal_events_held_total", "stage" => stage_label(refused.stage))
                .increment(1);
        }
        admitted
    }

    /// Logs that a source went over its limit: at warn for the first [`SOURCE_WARNINGS`]
    /// sources of a window, then once that more are logged at debug.
    fn source_over(&self, source: &str, refused: Refused<'_>, now: OffsetDateTime) {
        let logged = {
            // INVARIANT: no code path panics while holding the lock.
            let mut warnings = self.warnings.lock().unwrap_or_else(PoisonError::into_inner);
            if warnings.0.is_none_or(|start| now - start >= REFUSAL_WINDOW) {
                *warnings = (Some(now), 0);
            }
            warnings.1 = warnings.1.saturating_add(1);
            warnings.1
        };
        let (stage, listener) = (refused.stage, refused.listener);
        let limit = self.limits.per_source;
        let window_secs = REFUSAL_WINDOW.whole_seconds();
        if logged <= SOURCE_WARNINGS {
            warn!(%source, stage, listener, limit, window_secs,
                "too many refusals from one source; further ones are logged at debug and \
                 summarised in the ledger when the window ends");
        } else {
            if logged == SOURCE_WARNINGS + 1 {
                warn!(
                    sources = SOURCE_WARNINGS,
                    window_secs,
                    "more sources went over their refusal limit in this window; they are \
                     logged at debug"
                );
            }
            debug!(%source, stage, listener, limit, window_secs,
                "too many refusals from one source");
        }
    }

    /// The [`THROTTLED`] events of windows that ended by `now` with refusals held back (with
    /// `all`, at shutdown, also of windows still open). A source's summary counts toward the
    /// overall limit. The summaries that find it reached, and what went past the overall
    /// limit in its windows that ended, are one summary across sources, with the times of the
    /// first and last refusal it stands for.
    pub(crate) fn summaries(&self, now: OffsetDateTime, all: bool) -> Vec<Event> {
        let mut events = Vec::new();
        // What this call could record in no event of its own: one summary across sources.
        let mut across: Option<Spill> = None;
        for overflow in self.per_source.take_overflows(now, all) {
            let span = (overflow.first_over, overflow.last);
            let over = u64::from(overflow.over);
            // MANY_KEYS stands for windows whose sources did not fit in the throttle's table.
            let named = if overflow.key == MANY_KEYS {
                None
            } else {
                parts(&overflow.key)
            };
            let Some(parts) = named else {
                let windows = u64::from(overflow.windows);
                across
                    .get_or_insert_with(|| Spill::new(now, now))
                    .add_unnamed(over, windows, span);
                continue;
            };
            if self.overall.take_if_room(now) {
                events.push(self.summary(&overflow, parts, now));
            } else {
                let (_, _, source) = parts;
                across
                    .get_or_insert_with(|| Spill::new(now, now))
                    .add(source, over, span);
            }
        }
        for spill in self.overall.take_spills(now, all) {
            match across.as_mut() {
                Some(across) => across.merge(spill),
                None => across = Some(spill),
            }
        }
        if let Some(across) = across {
            events.push(self.overall_summary(&across, now));
        }
        events
    }

    fn overall_reached(&self, first: bool) {
        if first {
            warn!(
                limit = self.limits.overall,
                window_secs = REFUSAL_WINDOW.whole_seconds(),
                "too many refusals from all sources together; further ones are summarised in \
                 one ledger event when the window ends"
            );
        }
    }

    /// The summary of one stage, listener and source's window.
    fn summary(
        &self,
        overflow: &Overflow,
        (stage, listener, source): (&str, &str, &str),
        now: OffsetDateTime,
    ) -> Event {
        let source_ip = source
            .parse::<IpAddr>()
            .or_else(|_| source.parse::<ipnet::IpNet>().map(|n| n.addr()))
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        info!(%source, stage, listener, refusals = overflow.over,
            "refusals past the limit summarised in the ledger");
        let detail = format!(
            "refusals_not_recorded: {} refused {} from {source} between {} and {} were not \
             recorded one by one (limit {} per source and {} seconds); each was refused as usual",
            overflow.over,
            what(stage),
            rfc3339(overflow.first_over),
            rfc3339(overflow.last),
            self.limits.per_source,
            REFUSAL_WINDOW.whole_seconds(),
        );
        throttled(now, listener, source_ip, stage, detail)
    }

    /// The summary of the refusals in `across`, from any sources, that were recorded neither
    /// one by one nor in a summary of their source.
    fn overall_summary(&self, across: &Spill, now: OffsetDateTime) -> Event {
        let (sources, exact) = across.keys();
        let sources = sources_text(sources, exact);
        let (first, last) = across.span.unwrap_or((across.start, across.end));
        info!(refusals = across.events, %sources,
            "refusals past the limit across all sources summarised in the ledger");
        let detail = format!(
            "refusals_not_recorded: {} refused connections and requests from {sources} \
             between {} and {} were not recorded one by one or in a summary of their source \
             (limit {} refusal events from all sources per {} seconds); each was refused as \
             usual",
            across.events,
            rfc3339(first),
            rfc3339(last),
            self.limits.overall,
            REFUSAL_WINDOW.whole_seconds(),
        );
        throttled(now, "", IpAddr::V4(Ipv4Addr::UNSPECIFIED), "all", detail)
    }
}

/// "1 source", "3 sources", or "at most 3 sources" when some may be the same.
fn sources_text(sources: u64, exact: bool) -> String {
    match (sources, exact) {
        (1, true) => "1 source".to_owned(),
        (n, true) => format!("{n} sources"),
        (n, false) => format!("at most {n} sources"),
    }
}

/// The stage, listener and source of a throttle [`key`].
fn parts(key: &str) -> Option<(&str, &str, &str)> {
    let (stage, rest) = key.split_once(' ')?;
    let (listener, source) = rest.rsplit_once(' ')?;
    Some((stage, listener, source))
}

/// Records `refusal` in the ledger if its source is within its limit ([`Refusals::admit`]);
/// returns whether it was (otherwise it is counted for its window's summary). Callers log
/// the refusal at info when it was recorded, at debug when not ([`log_refusal`]).
pub(crate) async fn record(shared: &Shared, refusal: RejectionEvent) -> bool {
    let now = shared.clock.now();
    let refused = Refused {
        stage: &refusal.stage,
        listener: &refusal.listener,
        ip: refusal.source_ip,
    };
    if !shared.refusals.admit(refused, now) {
        return false;
    }
    let (stage, kind) = (refusal.stage.clone(), refusal.kind.clone());
    if let Err(e) = shared
        .sink
        .record(Event::new(now, EventKind::Rejection(refusal)))
        .await
    {
        warn!(error = %e, stage, kind, "could not record a refusal");
    }
    true
}

/// Records the summaries of the refusals held back in windows that ended by `now` (with
/// `all`, at shutdown, also in windows still open).
pub(crate) async fn record_summaries(shared: &Shared, all: bool) {
    for event in shared.refusals.summaries(shared.clock.now(), all) {
        if let Err(e) = shared.sink.record(event).await {
            warn!(error = %e, "could not record a summary of refusals");
        }
    }
}

/// Logs a refusal at info when it was recorded one by one, at debug when it was held back
/// for a summary: `log_refusal!(recorded, fields..., "message")`.
macro_rules! log_refusal {
    ($recorded:expr, $($arg:tt)+) => {
        if $recorded {
            tracing::info!($($arg)+);
        } else {
            tracing::debug!($($arg)+);
        }
    };
}
pub(crate) use log_refusal;

/// The throttle key of a stage, listener and source: stage and source hold no space, so the
/// listener's name is what lies between the first and the last.
fn key(stage: &str, listener: &str, source: &str) -> String {
    format!("{stage} {listener} {source}")
}

/// The stage as a metric label (a fixed set).
fn stage_label(stage: &str) -> &'static str {
    match stage {
        "tls" => "tls",
        "http" => "http",
        "http2" => "http2",
        _ => "other",
    }
}

/// What the refusals of `stage` refused, for the summary's sentence.
fn what(stage: &str) -> &'static str {
    match stage {
        "tls" => "TLS handshakes",
        "http" => "HTTP/1.1 requests",
        "http2" => "HTTP/2 connections",
        _ => "connections",
    }
}

/// A summary of refusals of `stage` (`all` across stages).
fn throttled(
    now: OffsetDateTime,
    listener: &str,
    source_ip: IpAddr,
    stage: &str,
    detail: String,
) -> Event {
    Event::new(
        now,
        EventKind::Rejection(RejectionEvent {
            request_id: None,
            listener: listener.to_owned(),
            source_ip,
            source_port: 0,
            stage: stage.to_owned(),
            kind: THROTTLED.into(),
            detail,
            principal: None,
            status: None,
        }),
    )
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-12-06 12:00:00 UTC);

    fn refused(ip: &str) -> Refused<'static> {
        Refused {
            stage: "tls",
            listener: "main gate",
            ip: ip.parse().unwrap(),
        }
    }

    fn rejection(event: &Event) -> &RejectionEvent {
        match &event.kind {
            EventKind::Rejection(r) => r,
            other => panic!("not a rejection: {other:?}"),
        }
    }

    #[test]
    fn a_source_past_its_limit_is_summarised_once_its_window_ends() {
        let limits = RefusalLimits {
            per_source: 3,
            overall: 100,
        };
        let r = Refusals::new(limits);
        let admitted = (0..10)
            .filter(|i| r.admit(refused("192.0.2.7"), T0 + time::Duration::seconds(*i)))
            .count();
        assert_eq!(admitted, 3);
        // Another stage, listener or source has a limit of its own.
        assert!(r.admit(
            Refused {
                stage: "http",
                ..refused("192.0.2.7")
            },
            T0
        ));
        assert!(r.admit(
            Refused {
                listener: "other",
                ..refused("192.0.2.7")
            },
            T0
        ));
        assert!(r.admit(refused("192.0.2.8"), T0));
        // An IPv6 /64 is one source.
        assert_eq!(
            (0..4)
                .filter(|i| r.admit(refused(&format!("2001:db8::{i}")), T0))
                .count(),
            3
        );

        assert!(
            r.summaries(T0 + time::Duration::seconds(59), false)
                .is_empty()
        );
        let ended = T0 + REFUSAL_WINDOW;
        let summaries = r.summaries(ended, false);
        assert_eq!(summaries.len(), 2, "{summaries:?}");
        let v4 = summaries
            .iter()
            .map(rejection)
            .find(|s| s.source_ip == "192.0.2.7".parse::<IpAddr>().unwrap())
            .unwrap();
        assert_eq!(v4.stage, "tls");
        assert_eq!(v4.kind, THROTTLED);
        assert_eq!(v4.listener, "main gate");
        assert!(
            v4.detail.starts_with(
                "refusals_not_recorded: 7 refused TLS handshakes from 192.0.2.7 between \
                 2026-12-06T12:00:03Z and 2026-12-06T12:00:09Z"
            ),
            "{}",
            v4.detail
        );
        assert!(summaries.iter().map(rejection).any(|s| {
            s.source_ip == "2001:db8::".parse::<IpAddr>().unwrap()
                && s.detail
                    .contains(" 1 refused TLS handshakes from 2001:db8::/64 ")
        }));
        // Taken once; the next window starts afresh.
        assert!(r.summaries(ended, true).is_empty());
        assert!(r.admit(refused("192.0.2.7"), ended));
    }

    #[test]
    fn at_shutdown_open_windows_are_summarised_too() {
        let r = Refusals::new(RefusalLimits {
            per_source: 1,
            overall: 100,
        });
        assert!(r.admit(refused("192.0.2.7"), T0));
        assert!(!r.admit(refused("192.0.2.7"), T0 + time::Duration::seconds(2)));
        assert!(r.summaries(T0, false).is_empty());
        let summaries = r.summaries(T0 + time::Duration::seconds(5), true);
        assert_eq!(summaries.len(), 1);
        assert!(
            rejection(&summaries[0])
                .detail
                .contains("between 2026-12-06T12:00:02Z and 2026-12-06T12:00:02Z")
        );
    }

    /// The number of refusals a summary stands for.
    fn held(event: &Event) -> u64 {
        let detail = &rejection(event).detail;
        let count = detail.strip_prefix("refusals_not_recorded: ").unwrap();
        count.split(' ').next().unwrap().parse().unwrap()
    }

    #[test]
    fn many_sources_are_held_to_the_overall_limit_and_nothing_is_lost() {
        let r = Refusals::new(RefusalLimits {
            per_source: 2,
            overall: 10,
        });
        let mut admitted = 0;
        // Sources 10..=59: their keys sort as their numbers do.
        for i in 10..60 {
            let ip = format!("198.51.100.{i}");
            let at = T0 + time::Duration::milliseconds(i);
            for _ in 0..3 {
                admitted += u64::from(r.admit(refused(&ip), at));
            }
        }
        // Sources 10 to 14 took the overall limit; 15 to 59 went past it (90 refusals).
        assert_eq!(admitted, 10);

        // Sources' own summaries: those of 10 to 19 fit in the next window; those of 20 to 59
        // (40 refusals) do not, and are one summary at once with what went past the overall
        // limit, with the times of the refusals they stand for.
        let ended = T0 + REFUSAL_WINDOW + time::Duration::seconds(1);
        let first = r.summaries(ended, false);
        assert_eq!(first.len(), 11, "{first:?}");
        let (all, own): (Vec<_>, Vec<_>) = first.iter().partition(|e| rejection(e).stage == "all");
        assert_eq!(own.len(), 10);
        assert!(
            own.iter()
                .all(|e| held(e) == 1 && rejection(e).stage == "tls")
        );
        assert_eq!(all.len(), 1);
        assert_eq!(rejection(all[0]).kind, THROTTLED);
        assert_eq!(
            rejection(all[0]).detail,
            "refusals_not_recorded: 130 refused connections and requests from 45 sources \
             between 2026-12-06T12:00:00.015Z and 2026-12-06T12:00:00.059Z were not recorded \
             one by one or in a summary of their source (limit 10 refusal events from all \
             sources per 60 seconds); each was refused as usual"
        );
        assert!(r.summaries(T0 + REFUSAL_WINDOW * 3, true).is_empty());

        let summarised: u64 = first.iter().map(held).sum();
        assert_eq!(
            admitted + summarised,
            150,
            "every refusal is recorded or summarised"
        );
    }

    #[test]
    fn a_summary_across_sources_counts_addresses_not_stages() {
        let r = Refusals::new(RefusalLimits {
            per_source: 2,
            overall: 1,
        });
        let tls = refused("192.0.2.7");
        let http = Refused {
            stage: "http",
            ..tls
        };
        assert!(r.admit(tls, T0));
        assert!(!r.admit(tls, T0));
        assert!(!r.admit(http, T0));
        let summaries = r.summaries(T0 + REFUSAL_WINDOW, false);
        assert_eq!(summaries.len(), 1, "{summaries:?}");
        assert!(
            rejection(&summaries[0]).detail.starts_with(
                "refusals_not_recorded: 2 refused connections and requests from 1 source "
            ),
            "{}",
            rejection(&summaries[0]).detail
        );
    }
}
