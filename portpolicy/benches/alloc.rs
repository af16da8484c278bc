//! Cost of the allocator's decisions (no sockets): one ALLOC driven to its
//! grant and released again, with 0 and 10,000 leases already held; the
//! state file written, and parsed, at 10,000 leases.
//! Run: `cargo bench -p portpolicy --bench alloc`.

#![allow(clippy::unwrap_used)]

use portpolicy::alloc::{AllocPolicy, Allocator, Caller, Decision, Settings, State};
use portpolicy::config::Config;
use portpolicy::policy::Sources;
use proto::alloc::{AllocArgs, Family, ReleaseArgs, Socktype};

fn main() {
    divan::main();
}

/// High mode with 15,000 candidate ports, `n` leases held by 100 uids.
fn allocator(n: u32) -> Allocator {
    let text = "mode = \"high\"\nhigh_range = \"2000-16999\"\n[allocation]\nquota = 1000\n";
    let config = Config::from_files(&[("/etc/portpolicy.toml", text)]).unwrap();
    let policy = AllocPolicy::compute(&config, &Sources::default()).unwrap();
    let mut a = Allocator::new(policy, Settings::from_config(&config, Family::Inet6));
    for i in 0..n {
        grant(&mut a, &caller(i));
    }
    a
}

fn caller(i: u32) -> Caller {
    Caller {
        pid: 1000 + i as i32,
        uid: 1000 + i % 100,
        gids: vec![],
        unit: None,
        start_time: None,
    }
}

fn grant(a: &mut Allocator, c: &Caller) -> u64 {
    let args = AllocArgs::pool(Family::Inet, Socktype::Stream);
    let mut d = a.alloc(&args, c);
    loop {
        d = match d {
            Decision::TryBind(b) => a.on_bound(b.attempt, 1),
            Decision::Granted(g) => return g.lease_id,
            Decision::Refused(s) => panic!("{s}"),
        }
    }
}

#[divan::bench(args = [0, 10_000])]
fn alloc_and_release(bencher: divan::Bencher<'_, '_>, n: u32) {
    let mut a = allocator(n);
    let root = Caller {
        uid: 0,
        ..caller(0)
    };
    bencher.bench_local(|| {
        let id = grant(&mut a, &caller(7));
        a.release(&ReleaseArgs::Lease(id), &root).unwrap();
    });
}

/// What the daemon does after each change: the state as bytes.
#[divan::bench]
fn state_to_json_10k(bencher: divan::Bencher<'_, '_>) {
    let a = allocator(10_000);
    bencher.bench_local(|| a.state().to_json().len());
}

/// What the daemon does at start.
#[divan::bench]
fn state_parse_10k(bencher: divan::Bencher<'_, '_>) {
    let bytes = allocator(10_000).state().to_json();
    bencher.bench_local(|| State::parse(&bytes).unwrap());
}
