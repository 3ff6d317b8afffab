//! The principals' profiles within one memory cap, with learned baselines protected.
//!
//! Principals still learning may use any free room, but when the cap is reached a new
//! principal evicts the least recently seen *learning* one. Established baselines take at
//! most four fifths of the cap and are evicted only by other established baselines (pushed
//! back to the learning side first). A flood of new identities or of identities that never
//! finish learning therefore cannot wipe the baselines already learned, which would put
//! their principals back into a silent learning period.

use crate::lru::Lru;
use crate::profile::Profile;

#[derive(Debug)]
pub(crate) struct Principals {
    learning: Lru<Box<str>, Profile>,
    established: Lru<Box<str>, Profile>,
    cap: usize,
}

impl Principals {
    pub(crate) fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        let reserve = (cap / 5).max(1);
        Self {
            learning: Lru::new(cap),
            established: Lru::new(cap.saturating_sub(reserve).max(1)),
            cap,
        }
    }

    /// The profile of `principal`, created when new, and whether it was established.
    pub(crate) fn get_or_insert(
        &mut self,
        principal: &str,
        now_ms: i64,
    ) -> Option<(&mut Profile, bool)> {
        if self.established.contains(principal) {
            return self.established.get_mut(principal).map(|p| (p, true));
        }
        if !self.learning.contains(principal) {
            if self.len() >= self.cap && self.learning.pop_oldest().is_none() {
                self.established.pop_oldest();
            }
            self.learning.insert(principal.into(), Profile::new(now_ms));
        }
        self.learning.get_mut(principal).map(|p| (p, false))
    }

    /// Move `principal` to the established side once its learning period is over.
    pub(crate) fn promote(&mut self, principal: &str) {
        if !self
            .learning
            .peek(principal)
            .is_some_and(Profile::established)
        {
            return;
        }
        // INVARIANT: the total does not change: one leaves the learning side, and whatever
        // the established side pushes out goes back to it.
        if let Some(profile) = self.learning.remove(principal)
            && let Some((key, demoted)) = self.established.insert(principal.into(), profile)
        {
            self.learning.insert(key, demoted);
        }
    }

    /// The profile of `principal`, if it has one.
    pub(crate) fn get_mut(&mut self, principal: &str) -> Option<&mut Profile> {
        if self.established.contains(principal) {
            return self.established.get_mut(principal);
        }
        self.learning.get_mut(principal)
    }

    pub(crate) fn peek(&self, principal: &str) -> Option<&Profile> {
        self.established
            .peek(principal)
            .or_else(|| self.learning.peek(principal))
    }

    /// Every profile: established ones first, each side from the most to the least recently
    /// seen.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&str, &Profile)> {
        self.established
            .iter()
            .chain(self.learning.iter())
            .map(|(k, v)| (&**k, v))
    }

    /// How many established baselines the cap keeps.
    pub(crate) fn established_cap(&self) -> usize {
        self.cap.saturating_sub((self.cap / 5).max(1)).max(1)
    }

    /// Put a restored profile back, as the most recently seen on its side, within the caps.
    pub(crate) fn restore(&mut self, principal: &str, profile: Profile) {
        self.learning.remove(principal);
        self.established.remove(principal);
        if profile.established() {
            if let Some((key, demoted)) = self.established.insert(principal.into(), profile) {
                if self.len() >= self.cap {
                    self.learning.pop_oldest();
                }
                self.learning.insert(key, demoted);
            }
            return;
        }
        if self.len() >= self.cap && self.learning.pop_oldest().is_none() {
            self.established.pop_oldest();
        }
        self.learning.insert(principal.into(), profile);
    }

    pub(crate) fn len(&self) -> usize {
        self.learning.len() + self.established.len()
    }

    pub(crate) fn learning(&self) -> usize {
        self.learning.len()
    }
}
