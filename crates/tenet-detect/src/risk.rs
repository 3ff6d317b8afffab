//! Risk scores per subject: 0–100, raised by alerts, halving every half-life.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::Subject;
use crate::lru::Lru;

/// Reasons remembered per subject, most recent last.
const REASONS_KEPT: usize = 4;
/// Longest reason kept, in characters.
const REASON_CHARS: usize = 200;

/// What the gateway should do about a subject's risk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskAction {
    /// Below every threshold.
    Allow,
    /// At or above the re-authenticate threshold.
    Reauthenticate,
    /// At or above the cut-off threshold.
    CutOff,
}

/// A subject's current risk and what raised it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RiskReport {
    /// The decayed score, 0–100.
    pub score: u8,
    /// What the thresholds say.
    pub action: RiskAction,
    /// The last reasons it was raised for (rule ids or the reasons given to `raise`), oldest
    /// first.
    pub reasons: Vec<String>,
}

#[derive(Debug)]
struct Score {
    value: f64,
    at_ms: i64,
    reasons: VecDeque<String>,
}

/// The scores of all subjects, bounded.
#[derive(Debug)]
pub(crate) struct RiskTable {
    scores: Lru<Subject, Score>,
    half_life_ms: f64,
}

impl RiskTable {
    pub(crate) fn new(cap: usize, half_life_secs: u64) -> Self {
        Self {
            scores: Lru::new(cap),
            // Validated to be at least one second and at most a year.
            half_life_ms: (half_life_secs.max(1) as f64) * 1000.0,
        }
    }

    fn decayed(&self, score: &Score, now_ms: i64) -> f64 {
        let elapsed = now_ms.saturating_sub(score.at_ms).max(0) as f64;
        score.value * (-elapsed / self.half_life_ms).exp2()
    }

    /// The score of `subject` at `now_ms`, rounded.
    pub(crate) fn score(&self, subject: &Subject, now_ms: i64) -> u8 {
        self.scores
            .peek(subject)
            .map_or(0, |s| to_points(self.decayed(s, now_ms)))
    }

    /// The score and the reasons behind it.
    pub(crate) fn reasons(&self, subject: &Subject) -> Vec<String> {
        self.scores
            .peek(subject)
            .map(|s| s.reasons.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Add `amount` to the decayed score (capped at 100); returns the score before and after.
    pub(crate) fn raise(
        &mut self,
        subject: &Subject,
        amount: u8,
        reason: &str,
        now_ms: i64,
    ) -> (u8, u8) {
        let before = self.scores.peek(subject).map(|s| self.decayed(s, now_ms));
        let value = (before.unwrap_or(0.0) + f64::from(amount)).min(100.0);
        let reason: String = reason.chars().take(REASON_CHARS).collect();
        match self.scores.get_mut(subject) {
            Some(score) => {
                score.value = value;
                score.at_ms = score.at_ms.max(now_ms);
                if score.reasons.len() >= REASONS_KEPT {
                    score.reasons.pop_front();
                }
                score.reasons.push_back(reason);
            }
            None => {
                self.scores.insert(
                    subject.clone(),
                    Score {
                        value,
                        at_ms: now_ms,
                        reasons: VecDeque::from([reason]),
                    },
                );
            }
        }
        (to_points(before.unwrap_or(0.0)), to_points(value))
    }

    pub(crate) fn len(&self) -> usize {
        self.scores.len()
    }
}

fn to_points(value: f64) -> u8 {
    // Clamped to 0..=100 first, so the cast cannot truncate.
    value.round().clamp(0.0, 100.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(name: &str) -> Subject {
        Subject::Principal(name.into())
    }

    #[test]
    fn halves_every_half_life() {
        let mut t = RiskTable::new(10, 60);
        assert_eq!(t.raise(&p("a"), 80, "x", 0), (0, 80));
        assert_eq!(t.score(&p("a"), 60_000), 40);
        assert_eq!(t.score(&p("a"), 120_000), 20);
        assert_eq!(t.raise(&p("a"), 10, "y", 120_000), (20, 30));
        assert_eq!(t.reasons(&p("a")), vec!["x", "y"]);
    }

    #[test]
    fn caps_at_100_and_ignores_a_clock_stepping_back() {
        let mut t = RiskTable::new(10, 60);
        t.raise(&p("a"), 90, "x", 10_000);
        assert_eq!(t.raise(&p("a"), 90, "x", 10_000), (90, 100));
        assert_eq!(t.score(&p("a"), 0), 100);
    }

    #[test]
    fn bounded_by_its_cap() {
        let mut t = RiskTable::new(3, 60);
        for i in 0..10 {
            t.raise(&p(&i.to_string()), 10, "x", 0);
        }
        assert_eq!(t.len(), 3);
        assert_eq!(t.score(&p("0"), 0), 0);
        assert_eq!(t.score(&p("9"), 0), 10);
    }
}
