//! Sets of port numbers and their text forms. Pure, no I/O.
//!
//! The kernel's list syntax (`net.ipv4.ip_local_reserved_ports`, see the
//! kernel's ip-sysctl documentation: "comma separated list of ranges")
//! is `631,1000-1010`; the same syntax is used for pools and exclusions
//! in the config and in output.

use std::fmt;

const WORDS: usize = 65536 / 64;

/// A set of port numbers 0-65535 (a 8 KiB bitmap).
#[derive(Clone, PartialEq, Eq)]
pub struct PortSet {
    bits: Box<[u64; WORDS]>,
}

/// An inclusive range of ports, `first <= last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    /// The first port of the range.
    pub first: u16,
    /// The last port of the range (inclusive).
    pub last: u16,
}

impl PortRange {
    /// A range; the bounds are swapped if given the wrong way round.
    pub fn new(a: u16, b: u16) -> PortRange {
        PortRange {
            first: a.min(b),
            last: a.max(b),
        }
    }

    /// A single port.
    pub fn single(port: u16) -> PortRange {
        PortRange::new(port, port)
    }

    /// Whether the range holds `port`.
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    /// How many ports the range holds.
    pub fn len(&self) -> usize {
        usize::from(self.last.saturating_sub(self.first)) + 1
    }

    /// A range is never empty; present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Parse `N` or `N-M`.
    pub fn parse(text: &str) -> Result<PortRange, PortListError> {
        let bad = || PortListError(text.to_string());
        let text = text.trim();
        match text.split_once('-') {
            Some((a, b)) => {
                let a = crate::services::parse_port(a.trim()).ok_or_else(bad)?;
                let b = crate::services::parse_port(b.trim()).ok_or_else(bad)?;
                if a > b {
                    return Err(bad());
                }
                Ok(PortRange::new(a, b))
            }
            None => crate::services::parse_port(text)
                .map(PortRange::single)
                .ok_or_else(bad),
        }
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// A port list item that is not `N` or `N-M` with N <= M <= 65535.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a port or a range of ports (N or N-M, 0-65535)")]
pub struct PortListError(pub String);

impl Default for PortSet {
    fn default() -> Self {
        PortSet::new()
    }
}

impl PortSet {
    /// The empty set.
    pub fn new() -> PortSet {
        PortSet {
            bits: Box::new([0; WORDS]),
        }
    }

    /// A set holding every port of the ranges.
    pub fn from_ranges<I: IntoIterator<Item = PortRange>>(ranges: I) -> PortSet {
        let mut set = PortSet::new();
        for r in ranges {
            set.insert_range(r);
        }
        set
    }

    /// Parse the kernel's list syntax: `631,1000-1010`; blanks around
    /// items are allowed, an empty text is the empty set.
    pub fn parse_list(text: &str) -> Result<PortSet, PortListError> {
        let mut set = PortSet::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            set.insert_range(PortRange::parse(item)?);
        }
        Ok(set)
    }

    /// Add one port; true if it was not there.
    pub fn insert(&mut self, port: u16) -> bool {
        let (w, b) = slot(port);
        let was = self.bits[w] & b != 0;
        self.bits[w] |= b;
        !was
    }

    /// Remove one port; true if it was there.
    pub fn remove(&mut self, port: u16) -> bool {
        let (w, b) = slot(port);
        let was = self.bits[w] & b != 0;
        self.bits[w] &= !b;
        was
    }

    /// Add every port of a range.
    pub fn insert_range(&mut self, range: PortRange) {
        for p in range.first..=range.last {
            self.insert(p);
        }
    }

    /// Remove every port of a range.
    pub fn remove_range(&mut self, range: PortRange) {
        for p in range.first..=range.last {
            self.remove(p);
        }
    }

    /// Whether the set holds `port`.
    pub fn contains(&self, port: u16) -> bool {
        let (w, b) = slot(port);
        self.bits[w] & b != 0
    }

    /// Number of ports in the set.
    pub fn len(&self) -> usize {
        self.bits.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// The ports in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.bits
            .iter()
            .enumerate()
            .filter(|(_, w)| **w != 0)
            .flat_map(|(i, w)| {
                (0..64u32)
                    .filter(move |b| w & (1u64 << b) != 0)
                    .filter_map(move |b| u16::try_from(i * 64 + b as usize).ok())
            })
    }

    /// Ports in both sets.
    pub fn intersection(&self, other: &PortSet) -> PortSet {
        let mut out = self.clone();
        for (a, b) in out.bits.iter_mut().zip(other.bits.iter()) {
            *a &= *b;
        }
        out
    }

    /// Ports in either set.
    pub fn union(&self, other: &PortSet) -> PortSet {
        let mut out = self.clone();
        for (a, b) in out.bits.iter_mut().zip(other.bits.iter()) {
            *a |= *b;
        }
        out
    }

    /// Ports in `self` but not in `other`.
    pub fn difference(&self, other: &PortSet) -> PortSet {
        let mut out = self.clone();
        for (a, b) in out.bits.iter_mut().zip(other.bits.iter()) {
            *a &= !*b;
        }
        out
    }

    /// The set as maximal ascending ranges.
    pub fn ranges(&self) -> Vec<PortRange> {
        let mut out: Vec<PortRange> = Vec::new();
        for p in self.iter() {
            match out.last_mut() {
                Some(r) if u32::from(r.last) + 1 == u32::from(p) => r.last = p,
                _ => out.push(PortRange::single(p)),
            }
        }
        out
    }
}

fn slot(port: u16) -> (usize, u64) {
    (usize::from(port) / 64, 1u64 << (port % 64))
}

impl fmt::Display for PortSet {
    /// The kernel's list syntax, `631,1000-1010`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortSet({self})")
    }
}

impl serde::Serialize for PortSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl serde::Serialize for PortRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_list_round_trip() {
        let s = PortSet::parse_list(" 631, 1000-1002,999 ,65535").unwrap();
        assert_eq!(s.to_string(), "631,999-1002,65535");
        assert_eq!(s.len(), 6);
        assert!(PortSet::parse_list("").unwrap().is_empty());
        assert_eq!(PortSet::parse_list("5-3"), Err(PortListError("5-3".into())));
        assert!(PortSet::parse_list("70000").is_err());
        assert!(PortSet::parse_list("a").is_err());
    }

    #[test]
    fn set_operations() {
        let a = PortSet::parse_list("1-10").unwrap();
        let b = PortSet::parse_list("5-15").unwrap();
        assert_eq!(a.intersection(&b).to_string(), "5-10");
        assert_eq!(a.union(&b).to_string(), "1-15");
        assert_eq!(a.difference(&b).to_string(), "1-4");
    }
}
