//! An insertion-ordered slab: a doubly linked list threaded through a
//! `Vec`, so that appending, prepending and removing by id are O(1) and
//! iteration follows list order (the order C rpcbind's linked lists keep,
//! which DUMP shows). No I/O.

use std::num::NonZeroU32;

/// The id of an entry; stable until the entry is removed. Below
/// [`MAX_IDS`]: the registry's groups keep an id or a side-slab slot in
/// one `u32` and tell them apart by the top bit.
pub(crate) type Id = u32;

/// One more than the largest id a list hands out (2^31 entries: tens of
/// GB of slots, out of reach anyway).
pub(crate) const MAX_IDS: u32 = 1 << 31;

/// A link to a neighbour: the id plus one, or `u32::MAX` for none. Four
/// bytes where `Option<Id>` takes eight, and it leaves 0 free, so a free
/// slot (`Option<Node<T>>::None`) costs no discriminant either.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Link(NonZeroU32);

impl Link {
    const NONE: Link = Link(NonZeroU32::MAX);

    /// `id` is below [`MAX_IDS`], so `id + 1` is neither 0 nor the
    /// `NONE` marker.
    fn to(id: Id) -> Link {
        NonZeroU32::new(id.wrapping_add(1))
            .filter(|_| id < MAX_IDS)
            .map_or(Link::NONE, Link)
    }

    fn get(self) -> Option<Id> {
        (self != Link::NONE).then(|| self.0.get() - 1)
    }
}

#[derive(Clone, Debug)]
struct Node<T> {
    value: T,
    prev: Link,
    next: Link,
}

/// A linked list in a slab.
#[derive(Clone, Debug)]
pub(crate) struct OrderedList<T> {
    slots: Vec<Option<Node<T>>>,
    free: Vec<Id>,
    head: Option<Id>,
    tail: Option<Id>,
    len: usize,
}

impl<T> Default for OrderedList<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            head: None,
            tail: None,
            len: 0,
        }
    }
}

impl<T> OrderedList<T> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// A free slot for `node`; `None` (nothing stored) once every id is
    /// taken.
    fn alloc(&mut self, node: Node<T>) -> Option<Id> {
        let id = match self.free.pop() {
            Some(id) => {
                *self.slots.get_mut(id as usize)? = Some(node);
                id
            }
            None => {
                let id = Id::try_from(self.slots.len())
                    .ok()
                    .filter(|&id| id < MAX_IDS)?;
                self.slots.push(Some(node));
                id
            }
        };
        self.len += 1;
        Some(id)
    }

    fn node_mut(&mut self, id: Id) -> Option<&mut Node<T>> {
        self.slots.get_mut(id as usize).and_then(Option::as_mut)
    }

    /// Appends `value` at the end of the list (`None`: the list is full).
    pub(crate) fn push_back(&mut self, value: T) -> Option<Id> {
        let prev = self.tail;
        let id = self.alloc(Node {
            value,
            prev: prev.map_or(Link::NONE, Link::to),
            next: Link::NONE,
        })?;
        match prev.and_then(|p| self.node_mut(p)) {
            Some(p) => p.next = Link::to(id),
            None => self.head = Some(id),
        }
        self.tail = Some(id);
        Some(id)
    }

    /// Inserts `value` at the head of the list (`None`: the list is full).
    pub(crate) fn push_front(&mut self, value: T) -> Option<Id> {
        let next = self.head;
        let id = self.alloc(Node {
            value,
            prev: Link::NONE,
            next: next.map_or(Link::NONE, Link::to),
        })?;
        match next.and_then(|n| self.node_mut(n)) {
            Some(n) => n.prev = Link::to(id),
            None => self.tail = Some(id),
        }
        self.head = Some(id);
        Some(id)
    }

    /// Removes the entry `id`, if present.
    pub(crate) fn remove(&mut self, id: Id) -> Option<T> {
        let node = self.slots.get_mut(id as usize)?.take()?;
        let (prev, next) = (node.prev.get(), node.next.get());
        match prev.and_then(|p| self.node_mut(p)) {
            Some(p) => p.next = node.next,
            None => self.head = next,
        }
        match next.and_then(|n| self.node_mut(n)) {
            Some(n) => n.prev = node.prev,
            None => self.tail = prev,
        }
        self.free.push(id);
        self.len -= 1;
        Some(node.value)
    }

    pub(crate) fn get(&self, id: Id) -> Option<&T> {
        self.slots.get(id as usize)?.as_ref().map(|n| &n.value)
    }

    /// The entries in list order.
    pub(crate) fn iter(&self) -> Iter<'_, T> {
        Iter {
            list: self,
            cursor: self.head,
        }
    }
}

/// Iterator over an [`OrderedList`] in list order.
#[derive(Debug)]
pub(crate) struct Iter<'a, T> {
    list: &'a OrderedList<T>,
    cursor: Option<Id>,
}

impl<'a, T> Iterator for Iter<'a, T> {
    type Item = &'a T;

    fn next(&mut self) -> Option<&'a T> {
        let node = self.list.slots.get(self.cursor? as usize)?.as_ref()?;
        self.cursor = node.next.get();
        Some(&node.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_through_prepend_append_and_removal() {
        let mut l = OrderedList::default();
        let b = l.push_back("b").unwrap();
        let a = l.push_front("a").unwrap();
        let c = l.push_back("c").unwrap();
        assert_eq!(l.iter().copied().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(l.remove(b), Some("b"));
        assert_eq!(l.remove(b), None);
        assert_eq!(l.iter().copied().collect::<Vec<_>>(), ["a", "c"]);
        l.remove(a);
        l.remove(c);
        assert_eq!(l.len(), 0);
        assert_eq!(l.iter().count(), 0);
        l.push_back("d");
        assert_eq!(l.iter().copied().collect::<Vec<_>>(), ["d"]);
    }

    #[test]
    fn links_cost_four_bytes_and_a_free_slot_nothing() {
        assert_eq!(Link::to(0).get(), Some(0));
        assert_eq!(Link::to(MAX_IDS - 1).get(), Some(MAX_IDS - 1));
        assert_eq!(Link::to(MAX_IDS).get(), None);
        assert_eq!(Link::NONE.get(), None);
        assert_eq!(std::mem::size_of::<Option<Node<[u32; 4]>>>(), 24);
    }
}
