//! Property tests of the hand-written parsers: no input makes them panic,
//! and what they accept round-trips where a text form exists.

#![allow(clippy::unwrap_used)]

use portpolicy::blacklist::{self, Blacklist};
use portpolicy::config::Config;
use portpolicy::portset::PortSet;
use portpolicy::services::Services;
use portpolicy::{nfsconf, portreserve};
use proptest::prelude::*;

fn texty() -> impl Strategy<Value = String> {
    // Lines built from the characters these formats care about.
    proptest::collection::vec("[0-9a-z#/=\\[\\] \\t.,-]{0,20}", 0..12).prop_map(|l| l.join("\n"))
}

proptest! {
    #[test]
    fn parsers_never_panic(text in texty(), raw in any::<String>()) {
        for t in [&text, &raw] {
            let _ = Services::parse(t);
            let _ = Blacklist::parse(t);
            let _ = portreserve::parse(t);
            let _ = nfsconf::parse(t);
            let _ = PortSet::parse_list(t);
            let _ = Config::from_files(&[("/x.toml", t.as_str())]);
        }
    }

    #[test]
    fn port_lists_round_trip(ports in proptest::collection::vec(any::<u16>(), 0..50)) {
        let mut set = PortSet::new();
        for p in &ports {
            set.insert(*p);
        }
        let text = set.to_string();
        prop_assert_eq!(PortSet::parse_list(&text).unwrap(), set);
    }

    #[test]
    fn managed_block_keeps_admin_lines(
        admin in proptest::collection::vec(0u16..2000, 0..10),
        ours in proptest::collection::vec(512u16..1024, 0..10),
    ) {
        let text: String = admin.iter().map(|p| format!("{p} # admin\n")).collect();
        let set = PortSet::from_ranges(ours.iter().map(|p| portpolicy::portset::PortRange::single(*p)));
        let new = blacklist::with_managed_block(&text, &set);
        let parsed = Blacklist::parse(&new).unwrap();
        prop_assert_eq!(parsed.admin.iter().map(|e| e.port).collect::<Vec<_>>(), admin);
        prop_assert_eq!(parsed.managed.iter().map(|e| e.port).collect::<Vec<_>>(), set.iter().collect::<Vec<_>>());
        prop_assert_eq!(blacklist::with_managed_block(&new, &set), new.clone());
        prop_assert_eq!(blacklist::with_managed_block(&new, &PortSet::new()), text);
    }
}
