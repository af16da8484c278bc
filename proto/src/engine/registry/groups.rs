//! Ids grouped under one key of the registry's indexes, in list order,
//! sized for the common case of one id per key. No I/O.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::Id;

/// The ids under one key, in list order. Almost every key holds one id,
/// which then needs no allocation of its own (16 bytes, not a `Vec`'s 24
/// plus a heap block).
#[derive(Clone, Debug)]
pub(super) enum Ids {
    One(Id),
    Many(Box<[Id]>),
}

impl Ids {
    pub(super) fn as_slice(&self) -> &[Id] {
        match self {
            Ids::One(id) => std::slice::from_ref(id),
            Ids::Many(ids) => ids,
        }
    }
}

impl<'a> IntoIterator for &'a Ids {
    type Item = &'a Id;
    type IntoIter = std::slice::Iter<'a, Id>;

    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

/// Ids grouped under one key, kept in list order.
pub(super) type Groups<K> = HashMap<K, Ids>;

pub(super) fn group_add<K: std::hash::Hash + Eq>(g: &mut Groups<K>, key: K, id: Id, front: bool) {
    match g.entry(key) {
        Entry::Vacant(e) => {
            e.insert(Ids::One(id));
        }
        Entry::Occupied(mut e) => {
            let old = e.get().as_slice();
            let mut ids = Vec::with_capacity(old.len() + 1);
            if front {
                ids.push(id);
                ids.extend_from_slice(old);
            } else {
                ids.extend_from_slice(old);
                ids.push(id);
            }
            e.insert(Ids::Many(ids.into_boxed_slice()));
        }
    }
}

pub(super) fn group_remove<K: std::hash::Hash + Eq>(g: &mut Groups<K>, key: K, id: Id) {
    let Entry::Occupied(mut e) = g.entry(key) else {
        return;
    };
    let rest: Vec<Id> = e.get().into_iter().copied().filter(|&x| x != id).collect();
    match rest[..] {
        [] => {
            e.remove();
        }
        [one] => {
            e.insert(Ids::One(one));
        }
        _ => {
            e.insert(Ids::Many(rest.into_boxed_slice()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_list_order_and_drops_empty_keys() {
        let mut g: Groups<u32> = HashMap::new();
        group_add(&mut g, 1, 10, false);
        group_add(&mut g, 1, 11, false);
        group_add(&mut g, 1, 9, true);
        assert_eq!(g[&1].as_slice(), [9, 10, 11]);
        group_remove(&mut g, 1, 10);
        group_remove(&mut g, 1, 9);
        assert!(matches!(g[&1], Ids::One(11)));
        group_remove(&mut g, 1, 11);
        assert!(g.is_empty());
        assert!(std::mem::size_of::<Ids>() <= 16);
    }
}
