//! Privilege escalation: rights used for the first time after a policy change, and admin
//! actions by principals that do not usually perform them.

use std::collections::{HashMap, HashSet, VecDeque};

use crate::lru::Lru;
use crate::names::NameId;

/// Policy changes remembered.
const CHANGES_KEPT: usize = 16;
/// (principal, policy id, change) keys already reported.
const REPORTED_KEPT: usize = 10_000;

/// A change of the policy set in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Change {
    pub(crate) from: Option<NameId>,
    pub(crate) to: NameId,
    pub(crate) at_ms: i64,
}

/// A policy id that allowed a request although it was not in the previous set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewRight {
    pub(crate) policy: NameId,
    pub(crate) change: Change,
    /// Whether the previous set's ids were declared (exact) rather than inferred from the
    /// decisions observed under earlier sets.
    pub(crate) declared: bool,
    /// How many ids the previous set is known to have.
    pub(crate) previous_ids: usize,
}

#[derive(Debug, Default)]
struct PolicySet {
    ids: HashSet<NameId>,
    declared: bool,
    /// A digest of what each policy says, when the policy engine declared them.
    versions: HashMap<NameId, Box<str>>,
}

/// The policy sets seen, their ids, and the changes between them.
#[derive(Debug)]
pub(crate) struct Policies {
    current: Option<NameId>,
    changes: VecDeque<Change>,
    sets: Lru<NameId, PolicySet>,
    /// Reported once per principal, policy and change (the set it led to and when): a right
    /// taken away and granted again is a new change, used anew.
    reported: Lru<(Box<str>, NameId, NameId, i64), ()>,
    max_ids: usize,
}

impl Policies {
    pub(crate) fn new(max_sets: usize, max_ids: usize) -> Self {
        Self {
            current: None,
            changes: VecDeque::new(),
            sets: Lru::new(max_sets),
            reported: Lru::new(REPORTED_KEPT),
            max_ids,
        }
    }

    /// The exact policy ids of the set with `hash` (from the policy engine).
    pub(crate) fn declare(&mut self, hash: NameId, ids: HashSet<NameId>) {
        let ids = ids.into_iter().take(self.max_ids).collect();
        self.sets.insert(
            hash,
            PolicySet {
                ids,
                declared: true,
                versions: HashMap::new(),
            },
        );
    }

    /// The exact policy ids of the set with `hash`, each with a digest of what it says.
    pub(crate) fn declare_versions(&mut self, hash: NameId, versions: Vec<(NameId, Box<str>)>) {
        let versions: HashMap<NameId, Box<str>> = versions.into_iter().take(self.max_ids).collect();
        self.sets.insert(
            hash,
            PolicySet {
                ids: versions.keys().copied().collect(),
                declared: true,
                versions,
            },
        );
    }

    /// The set with `hash` is now in force.
    pub(crate) fn activate(&mut self, hash: NameId, now_ms: i64) {
        if self.current == Some(hash) {
            return;
        }
        if self.changes.len() >= CHANGES_KEPT {
            self.changes.pop_front();
        }
        self.changes.push_back(Change {
            from: self.current,
            to: hash,
            at_ms: now_ms,
        });
        self.current = Some(hash);
        if !self.sets.contains(&hash) {
            self.sets.insert(hash, PolicySet::default());
        }
    }

    /// A decision made under the set `hash` by the policies `reasons`. For an allow, the
    /// policy ids that were not in the set in force before the latest change to `hash`
    /// (within `window_ms`) and were not reported yet for this principal.
    pub(crate) fn decision(
        &mut self,
        principal: &str,
        hash: NameId,
        reasons: &[NameId],
        allowed: bool,
        now_ms: i64,
        window_ms: i64,
    ) -> Vec<NewRight> {
        // A set never announced by a policy event is a change all the same.
        let announced = self.changes.iter().any(|c| c.to == hash);
        if !announced && !self.sets.contains(&hash) {
            self.activate(hash, now_ms);
        }

        let mut found = Vec::new();
        let change = self
            .changes
            .iter()
            .rev()
            .find(|c| c.to == hash)
            .filter(|c| now_ms.saturating_sub(c.at_ms) <= window_ms)
            .copied();
        if let (true, Some(change), Some(from)) = (allowed, change, change.and_then(|c| c.from)) {
            for &policy in reasons {
                let Some((known, declared, previous_ids)) = self.known_before(from, hash, policy)
                else {
                    continue;
                };
                if known {
                    continue;
                }
                let key = (Box::<str>::from(principal), policy, hash, change.at_ms);
                if self.reported.contains(&key) {
                    continue;
                }
                self.reported.insert(key, ());
                found.push(NewRight {
                    policy,
                    change,
                    declared,
                    previous_ids,
                });
            }
        }

        if let Some(set) = self.sets.get_mut(&hash)
            && !set.declared
        {
            for &policy in reasons {
                if set.ids.len() < self.max_ids {
                    set.ids.insert(policy);
                }
            }
        }
        found
    }

    /// Whether an allow under the set `after`, of a request denied under `before`, is owed
    /// to the change between the sets rather than to the request's context (a device that
    /// became compliant, a risk that fell): a policy that `allowing` names was not in
    /// `before` or says something else there, or a policy that `denying` names (a forbid) is
    /// no longer in `after`. A
    /// policy that was only added elsewhere, such as a forbid, grants nothing. `None` when
    /// nothing is known about the policies of the sets (no judgement is possible).
    pub(crate) fn attributable(
        &self,
        before: NameId,
        after: NameId,
        allowing: &[NameId],
        denying: &[NameId],
    ) -> Option<bool> {
        let mut unknown = false;
        for &policy in allowing {
            match self.known_before(before, after, policy) {
                Some((false, _, _)) => return Some(true),
                Some((true, _, _)) if self.edited(before, after, policy) => return Some(true),
                Some((true, _, _)) => {}
                None => unknown = true,
            }
        }
        match self.sets.peek(&after) {
            Some(set) if set.declared => {
                if denying.iter().any(|forbid| !set.ids.contains(forbid)) {
                    return Some(true);
                }
            }
            _ => unknown |= !denying.is_empty(),
        }
        (!unknown).then_some(false)
    }

    /// Whether both sets' declared versions of `policy` differ.
    fn edited(&self, before: NameId, after: NameId, policy: NameId) -> bool {
        let version = |hash| self.sets.peek(&hash)?.versions.get(&policy);
        matches!((version(before), version(after)), (Some(a), Some(b)) if a != b)
    }

    /// Whether `policy` was in the set `from`: exactly when that set was declared, otherwise
    /// whether any other set was seen deciding with it. `None` when nothing is known about
    /// the earlier sets (no judgement is possible). Also says whether the answer is exact and
    /// how many ids the earlier set is known to have.
    fn known_before(
        &self,
        from: NameId,
        to: NameId,
        policy: NameId,
    ) -> Option<(bool, bool, usize)> {
        if let Some(set) = self.sets.peek(&from)
            && set.declared
        {
            return Some((set.ids.contains(&policy), true, set.ids.len()));
        }
        let earlier = self.sets.iter().filter(|(hash, _)| **hash != to);
        let mut ids = 0;
        let mut known = false;
        for (_, set) in earlier {
            ids += set.ids.len();
            known |= set.ids.contains(&policy);
        }
        let previous = self.sets.peek(&from).map_or(0, |s| s.ids.len());
        (ids > 0).then_some((known, false, previous))
    }

    pub(crate) fn len(&self) -> usize {
        self.sets.len()
    }
}

#[derive(Debug, Default)]
struct Actor {
    successes: u32,
    alerted_at: Option<i64>,
}

/// An admin action by an actor with no successful admin action before.
#[derive(Debug)]
pub(crate) struct UnusualAdmin {
    /// Actors that usually perform admin actions, sorted, at most eight.
    pub(crate) usual: Vec<String>,
    /// Failed attempts the actor made before.
    pub(crate) earlier_attempts: bool,
}

/// Who performs admin actions.
#[derive(Debug)]
pub(crate) struct Admins {
    actors: Lru<Box<str>, Actor>,
}

impl Admins {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            actors: Lru::new(cap),
        }
    }

    /// Record an admin action. When `judge` (the learning period is over) and the actor has
    /// never succeeded at one, report it (at most once per cooldown). A success makes the
    /// actor usual; failures never do.
    pub(crate) fn observe(
        &mut self,
        actor: &str,
        success: bool,
        judge: bool,
        now_ms: i64,
        cooldown_ms: i64,
    ) -> Option<UnusualAdmin> {
        if !self.actors.contains(actor) {
            self.actors.insert(actor.into(), Actor::default());
        }
        let usual = self.usual(actor);
        let entry = self.actors.get_mut(actor)?;
        let earlier_attempts = entry.alerted_at.is_some();
        let unusual = judge
            && entry.successes == 0
            && (success
                || entry
                    .alerted_at
                    .is_none_or(|at| now_ms.saturating_sub(at) >= cooldown_ms));
        if success {
            entry.successes = entry.successes.saturating_add(1);
        }
        if !unusual {
            return None;
        }
        entry.alerted_at = Some(now_ms);
        Some(UnusualAdmin {
            usual,
            earlier_attempts,
        })
    }

    fn usual(&self, except: &str) -> Vec<String> {
        let mut usual: Vec<String> = self
            .actors
            .iter()
            .filter(|(name, a)| a.successes > 0 && &***name != except)
            .map(|(name, _)| name.to_string())
            .take(64)
            .collect();
        usual.sort_unstable();
        usual.truncate(8);
        usual
    }

    pub(crate) fn len(&self) -> usize {
        self.actors.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_set_reports_only_policies_not_in_it() {
        let mut p = Policies::new(4, 100);
        p.declare(1, HashSet::from([10, 11]));
        p.activate(1, 0);
        p.declare(2, HashSet::from([10, 11, 12]));
        p.activate(2, 1000);
        assert!(p.decision("a", 2, &[10], true, 2000, 10_000).is_empty());
        let found = p.decision("a", 2, &[12], true, 2000, 10_000);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].policy, 12);
        assert!(found[0].declared);
        assert_eq!(found[0].change.from, Some(1));
        // Reported once per principal.
        assert!(p.decision("a", 2, &[12], true, 3000, 10_000).is_empty());
        assert_eq!(p.decision("b", 2, &[12], true, 3000, 10_000).len(), 1);
        // Not after the window.
        assert!(p.decision("c", 2, &[12], true, 20_000, 10_000).is_empty());
        // Not for denials.
        assert!(p.decision("d", 2, &[12], false, 3000, 10_000).is_empty());
    }

    #[test]
    fn a_right_granted_again_after_being_taken_away_is_reported_again() {
        let mut p = Policies::new(4, 100);
        p.declare(1, HashSet::from([10]));
        p.declare(2, HashSet::from([10, 12]));
        p.activate(1, 0);
        p.activate(2, 1000);
        assert_eq!(p.decision("a", 2, &[12], true, 1500, 10_000).len(), 1);
        assert!(p.decision("a", 2, &[12], true, 1600, 10_000).is_empty());
        // Revert, then the same grant again: a new change, reported once more.
        p.activate(1, 2000);
        p.activate(2, 3000);
        let again = p.decision("a", 2, &[12], true, 3500, 10_000);
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].change.at_ms, 3000);
        assert!(p.decision("a", 2, &[12], true, 3600, 10_000).is_empty());
    }

    #[test]
    fn inferred_from_earlier_decisions_and_silent_without_any() {
        let mut p = Policies::new(4, 100);
        p.activate(1, 0);
        p.activate(2, 1000);
        assert!(
            p.decision("a", 2, &[12], true, 2000, 10_000).is_empty(),
            "nothing known"
        );

        let mut p = Policies::new(4, 100);
        p.decision("a", 1, &[10], true, 0, 10_000);
        // An unannounced set is a change too.
        assert!(p.decision("a", 2, &[10], true, 1000, 10_000).is_empty());
        let found = p.decision("a", 2, &[12], true, 1000, 10_000);
        assert_eq!(found.len(), 1);
        assert!(!found[0].declared);
    }

    #[test]
    fn admin_actors_learn_and_unusual_ones_are_reported() {
        let mut a = Admins::new(10);
        assert!(a.observe("root", true, false, 0, 100).is_none());
        assert!(a.observe("root", true, true, 10, 100).is_none());
        let seen = a.observe("w", false, true, 20, 100).unwrap();
        assert_eq!(seen.usual, vec!["root"]);
        assert!(a.observe("w", false, true, 30, 100).is_none(), "cooldown");
        assert!(a.observe("w", false, true, 130, 100).is_some());
        assert!(
            a.observe("w", true, true, 140, 100).is_some(),
            "a success always reports"
        );
        assert!(a.observe("w", true, true, 150, 100).is_none(), "now usual");
    }
}
