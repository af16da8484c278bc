//! Ids grouped under one key of the registry's indexes, in list order,
//! sized for the common case of one id per key: a key costs 4 bytes of
//! value, and only a key with several ids owns a `Vec` (in a side slab).
//! No I/O.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::hash::Hash;

use super::{Id, MAX_IDS};

/// The ids under one key in one `u32`: the id itself (list ids are below
/// [`MAX_IDS`], 2^31), or, with the top bit set, the slot of the side slab
/// holding two or more (there are fewer such groups than ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ids(u32);

/// The variants of [`Ids`], unpacked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unpacked {
    One(Id),
    Many(u32),
}

impl Ids {
    /// `None` for an id at or above [`MAX_IDS`], which lists never hand out.
    fn one(id: Id) -> Option<Ids> {
        (id < MAX_IDS).then_some(Ids(id))
    }

    fn many(slot: u32) -> Option<Ids> {
        (slot < MAX_IDS).then_some(Ids(slot | MAX_IDS))
    }

    fn unpack(self) -> Unpacked {
        if self.0 & MAX_IDS == 0 {
            Unpacked::One(self.0)
        } else {
            Unpacked::Many(self.0 & !MAX_IDS)
        }
    }
}

/// Ids grouped under one key, kept in list order.
#[derive(Clone, Debug)]
pub(super) struct Groups<K> {
    map: HashMap<K, Ids>,
    /// The groups of two or more ids; `free` lists the unused slots.
    many: Vec<Vec<Id>>,
    free: Vec<u32>,
}

impl<K> Default for Groups<K> {
    fn default() -> Self {
        Self {
            map: HashMap::new(),
            many: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<K: Hash + Eq> Groups<K> {
    /// The ids under `key` in list order, if any.
    pub(super) fn get(&self, key: &K) -> Option<&[Id]> {
        let ids = self.map.get(key)?;
        match ids.unpack() {
            // The id is the whole `u32`: borrow it as a one-id slice.
            Unpacked::One(_) => Some(std::slice::from_ref(&ids.0)),
            Unpacked::Many(slot) => self.many.get(slot as usize).map(Vec::as_slice),
        }
    }

    /// Whether no key holds an id.
    pub(super) fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    fn new_slot(&mut self, ids: Vec<Id>) -> Option<u32> {
        if let Some(slot) = self.free.pop() {
            *self.many.get_mut(slot as usize)? = ids;
            return Some(slot);
        }
        // Fewer groups than list entries, whose ids are below 2^31.
        let slot = u32::try_from(self.many.len())
            .ok()
            .filter(|&s| s < MAX_IDS)?;
        self.many.push(ids);
        Some(slot)
    }

    fn free_slot(&mut self, slot: u32) {
        if let Some(v) = self.many.get_mut(slot as usize) {
            *v = Vec::new();
            self.free.push(slot);
        }
    }
}

/// Adds `id` under `key`, first (`front`) or last.
pub(super) fn group_add<K: Hash + Eq>(g: &mut Groups<K>, key: K, id: Id, front: bool) {
    let ids = match g.map.get(&key) {
        None => {
            if let Some(one) = Ids::one(id) {
                g.map.insert(key, one);
            }
            return;
        }
        Some(&ids) => ids,
    };
    match ids.unpack() {
        Unpacked::One(old) => {
            let pair = if front { vec![id, old] } else { vec![old, id] };
            if let Some(many) = g.new_slot(pair).and_then(Ids::many) {
                g.map.insert(key, many);
            }
        }
        Unpacked::Many(slot) => {
            if let Some(v) = g.many.get_mut(slot as usize) {
                if front {
                    v.insert(0, id);
                } else {
                    v.push(id);
                }
            }
        }
    }
}

/// Removes `id` from under `key`; the key goes with its last id.
pub(super) fn group_remove<K: Hash + Eq>(g: &mut Groups<K>, key: K, id: Id) {
    let Entry::Occupied(mut e) = g.map.entry(key) else {
        return;
    };
    match e.get().unpack() {
        Unpacked::One(x) if x == id => {
            e.remove();
        }
        Unpacked::One(_) => {}
        Unpacked::Many(slot) => {
            let Some(v) = g.many.get_mut(slot as usize) else {
                return;
            };
            v.retain(|&x| x != id);
            match v[..] {
                [] => {
                    e.remove();
                }
                [one] => match Ids::one(one) {
                    Some(one) => {
                        e.insert(one);
                    }
                    None => return,
                },
                _ => return,
            }
            g.free_slot(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_list_order_and_drops_empty_keys() {
        let mut g: Groups<u32> = Groups::default();
        group_add(&mut g, 1, 10, false);
        group_add(&mut g, 1, 11, false);
        group_add(&mut g, 1, 9, true);
        group_add(&mut g, 2, 20, false);
        assert_eq!(g.get(&1), Some(&[9, 10, 11][..]));
        group_remove(&mut g, 1, 10);
        assert_eq!(g.get(&1), Some(&[9, 11][..]));
        group_remove(&mut g, 1, 9);
        assert_eq!(g.map[&1].unpack(), Unpacked::One(11));
        assert_eq!(g.free, [0], "the slot of key 1 is free again");
        group_add(&mut g, 2, 21, true);
        assert_eq!(g.get(&2), Some(&[21, 20][..]));
        assert_eq!(g.free, [] as [u32; 0], "and reused");
        group_remove(&mut g, 1, 11);
        assert_eq!(g.get(&1), None);
        assert_eq!(std::mem::size_of::<Ids>(), 4);
        assert_eq!(Ids::many(3).map(Ids::unpack), Some(Unpacked::Many(3)));
        assert_eq!(Ids::one(MAX_IDS), None);
    }
}
