//! Benchmark of the allocation service (issue 7): our rpcbind in a private
//! namespace, one client (the `portalloc` crate) allocating pool ports
//! over one local connection. Prints allocations per second, the handoff
//! latency (request sent to descriptor received) p50/p99, and the
//! daemon's resident memory before and with N leases (default 10,000;
//! `alloc_bench N`). The client closes each socket at once; the daemon's
//! lease sweep is set to an hour, so it keeps all N. Root only.
//!
//! `alloc_bench N CLIENTS` spreads them over CLIENTS connections at once.
//!
//! cargo build --release -p rpcbind -p portpolicy && cargo run --release -p e2e --example alloc_bench

use e2e::{require_root, Impl, Namespace, Rpcbind};
use portalloc::{AllocRequest, Client, Family, Socktype};
use std::time::{Duration, Instant};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn main() {
    if !require_root("alloc_bench") {
        return;
    }
    let arg = |i: usize, default: usize| {
        std::env::args()
            .nth(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or(default)
    };
    let (n, clients) = (arg(1, 10_000), arg(2, 1).max(1));
    let ns = Namespace::new();
    let config = "mode = \"high\"\nhigh_range = \"10000-29999\"\n";
    std::fs::write(ns.host_path("/run/bench-policy.toml"), config).expect("policy");
    let daemon = Rpcbind::start(
        &ns,
        Impl::Ours,
        &[
            "--policy-config",
            "/run/bench-policy.toml",
            "--alloc-state",
            "/run/portalloc/pa.state",
            // The client closes its sockets: no lease sweep during the run.
            "--alloc-sweep",
            "3600000",
        ],
    );
    let pid = daemon.process.pid();
    let rss_before = rss_kib(pid);
    // Threads started in the namespace's thread are in its netns too.
    let (elapsed, mut lat) = ns.in_netns(move || {
        let start = Instant::now();
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                let count = n / clients + usize::from(c < n % clients);
                std::thread::spawn(move || allocate(count))
            })
            .collect();
        let lat: Vec<Duration> = workers
            .into_iter()
            .flat_map(|w| w.join().expect("client thread"))
            .collect();
        (start.elapsed(), lat)
    });
    let rss_after = rss_kib(pid);
    let size = |p: &str| std::fs::metadata(ns.host_path(p)).map_or(0, |m| m.len());
    let state = size("/run/portalloc/pa.state");
    let journal = size("/run/portalloc/pa.state.journal");
    // Each change is a journal record; the snapshot is rewritten when the
    // journal outgrows it: the first and last thousand show whether the
    // cost grows with the leases.
    let median = |v: &[Duration]| {
        let mut v = v.to_vec();
        v.sort();
        v[v.len() / 2]
    };
    let k = lat.len().min(1000);
    let (early, late) = (median(&lat[..k]), median(&lat[lat.len() - k..]));
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!("leases: {n}, clients: {clients} (one connection each)");
    println!(
        "allocations/s: {:.0} ({:.2} s in all)",
        n as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    );
    println!(
        "handoff latency: p50 {:?} p99 {:?} max {:?}",
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
    println!("p50 of the first {k}: {early:?}, of the last {k}: {late:?}");
    println!("daemon RSS: {rss_before} KiB before, {rss_after} KiB with {n} leases");
    println!("state: snapshot {state} bytes, journal {journal} bytes");
}

/// `count` allocations over one connection; the latency of each.
fn allocate(count: usize) -> Vec<Duration> {
    let mut client = Client::connect().expect("connect");
    client
        .set_timeout(Duration::from_secs(30))
        .expect("timeout");
    let req = AllocRequest::pool(Family::Inet, Socktype::Stream);
    let mut lat = Vec::with_capacity(count);
    for i in 0..count {
        let t = Instant::now();
        let grant = client
            .alloc(&req)
            .unwrap_or_else(|e| panic!("alloc {i}: {e}"));
        lat.push(t.elapsed());
        drop(grant.fd);
    }
    lat
}
