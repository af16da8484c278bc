//! An insertion-ordered slab: a doubly linked list threaded through a
//! `Vec`, so that appending, prepending and removing by id are O(1) and
//! iteration follows list order (the order C rpcbind's linked lists keep,
//! which DUMP shows). No I/O.

/// The id of an entry; stable until the entry is removed. 32 bits: the
/// links of every node are ids, and a table of 2^32 entries (hundreds of
/// GB) is out of reach anyway.
pub(crate) type Id = u32;

#[derive(Clone, Debug)]
struct Node<T> {
    value: T,
    prev: Option<Id>,
    next: Option<Id>,
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
                let id = Id::try_from(self.slots.len()).ok()?;
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
            prev,
            next: None,
        })?;
        match prev.and_then(|p| self.node_mut(p)) {
            Some(p) => p.next = Some(id),
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
            prev: None,
            next,
        })?;
        match next.and_then(|n| self.node_mut(n)) {
            Some(n) => n.prev = Some(id),
            None => self.tail = Some(id),
        }
        self.head = Some(id);
        Some(id)
    }

    /// Removes the entry `id`, if present.
    pub(crate) fn remove(&mut self, id: Id) -> Option<T> {
        let node = self.slots.get_mut(id as usize)?.take()?;
        match node.prev.and_then(|p| self.node_mut(p)) {
            Some(p) => p.next = node.next,
            None => self.head = node.next,
        }
        match node.next.and_then(|n| self.node_mut(n)) {
            Some(n) => n.prev = node.prev,
            None => self.tail = node.prev,
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
        self.cursor = node.next;
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
}
