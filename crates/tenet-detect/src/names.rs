//! Service, route and policy names interned as small ids, so that per-principal baselines
//! hold integers instead of copies of the same strings.

use std::collections::HashMap;

/// An interned name.
pub(crate) type NameId = u32;

/// A bounded table of names. The names come from Tenet's own configuration (routes,
/// services, policy ids and hashes), so the cap is a guard, not an expected limit; once it is
/// reached, unknown names get no id and the analytics that need one skip them.
#[derive(Debug)]
pub(crate) struct Names {
    ids: HashMap<Box<str>, NameId>,
    names: Vec<Box<str>>,
    cap: usize,
}

impl Names {
    pub(crate) fn new(cap: usize) -> Self {
        Self {
            ids: HashMap::new(),
            names: Vec::new(),
            cap: cap.min(NameId::MAX as usize),
        }
    }

    /// The id of `name`, interning it when there is room.
    pub(crate) fn intern(&mut self, name: &str) -> Option<NameId> {
        if let Some(&id) = self.ids.get(name) {
            return Some(id);
        }
        if self.names.len() >= self.cap {
            return None;
        }
        let id = NameId::try_from(self.names.len()).ok()?;
        self.names.push(name.into());
        self.ids.insert(name.into(), id);
        Some(id)
    }

    /// The name behind `id`.
    pub(crate) fn name(&self, id: NameId) -> &str {
        self.names.get(id as usize).map_or("?", |n| n)
    }

    /// Up to `max` names of `ids`, sorted, for explanations.
    pub(crate) fn list(&self, ids: impl IntoIterator<Item = NameId>, max: usize) -> Vec<String> {
        let mut out: Vec<String> = ids
            .into_iter()
            .map(|id| self.name(id).to_string())
            .collect();
        out.sort_unstable();
        out.truncate(max);
        out
    }

    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_up_to_the_cap() {
        let mut names = Names::new(2);
        let a = names.intern("a").unwrap();
        assert_eq!(names.intern("a"), Some(a));
        let b = names.intern("b").unwrap();
        assert_ne!(a, b);
        assert_eq!(names.intern("c"), None);
        assert_eq!(names.name(b), "b");
        assert_eq!(names.list([b, a], 1), vec!["a"]);
        assert_eq!(names.len(), 2);
    }
}
