//! The distinct netids and owners of the registry's entries, each stored
//! once and named by a 4-byte id in the entries; a name leaves the table
//! with the last entry that uses it (a count per name). No I/O.

use std::collections::HashMap;
use std::sync::Arc;

/// The id of a name in a [`Names`] table.
pub(super) type NameId = u32;

/// One name and how many entry fields use it.
#[derive(Clone, Debug)]
struct Name {
    /// `Arc`: the owned [`Registration`](super::Registration)s built for
    /// the change log share it instead of copying it.
    text: Arc<str>,
    uses: u32,
}

/// The names table; see the module documentation.
#[derive(Clone, Debug, Default)]
pub(super) struct Names {
    slots: Vec<Option<Name>>,
    free: Vec<NameId>,
    ids: HashMap<Arc<str>, NameId>,
}

impl Names {
    /// The id of `name`, counting one more use (added if new). `None`
    /// only when the table holds 2^32 names, or one name 2^32 uses, which
    /// needs more entries than a list can hold.
    pub(super) fn acquire(&mut self, name: &str) -> Option<NameId> {
        if let Some(&id) = self.ids.get(name) {
            let slot = self.slots.get_mut(id as usize)?.as_mut()?;
            slot.uses = slot.uses.checked_add(1)?;
            return Some(id);
        }
        let text: Arc<str> = Arc::from(name);
        let entry = Name {
            text: Arc::clone(&text),
            uses: 1,
        };
        let id = match self.free.pop() {
            Some(id) => {
                *self.slots.get_mut(id as usize)? = Some(entry);
                id
            }
            None => {
                let id = NameId::try_from(self.slots.len()).ok()?;
                self.slots.push(Some(entry));
                id
            }
        };
        self.ids.insert(text, id);
        Some(id)
    }

    /// One use of `id` fewer; the name goes with its last use.
    pub(super) fn release(&mut self, id: NameId) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        let Some(name) = slot.as_mut() else {
            return;
        };
        name.uses -= 1;
        if name.uses == 0 {
            if let Some(name) = slot.take() {
                self.ids.remove(&name.text);
                self.free.push(id);
            }
        }
    }

    /// The text of `id`. Every id an entry holds is in the table (it holds
    /// a use of it), so the empty string is never seen.
    pub(super) fn text(&self, id: NameId) -> &str {
        self.shared(id).map_or("", |t| t)
    }

    /// The shared text of `id`.
    pub(super) fn shared(&self, id: NameId) -> Option<&Arc<str>> {
        self.slots.get(id as usize)?.as_ref().map(|n| &n.text)
    }

    /// The number of distinct names.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.ids.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_uses_and_reuses_ids() {
        let mut n = Names::default();
        let a = n.acquire("udp").unwrap();
        let b = n.acquire("1000").unwrap();
        assert_eq!(n.acquire("udp"), Some(a));
        assert_eq!((n.text(a), n.text(b), n.len()), ("udp", "1000", 2));
        n.release(a);
        assert_eq!(n.text(a), "udp", "one use left");
        n.release(a);
        assert_eq!(n.len(), 1);
        assert_eq!(n.acquire("tcp"), Some(a), "the freed id again");
        assert_eq!(n.text(a), "tcp");
    }
}
