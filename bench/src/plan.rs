//! The plan of one run: which rows, in which order, on which table size,
//! and how each repetition is timed and sampled. Does socket I/O through
//! the clients.
//!
//! Order: the base rows (only the server's own registrations); the stress
//! rows on that same table; then the scaling rows from the smallest table
//! up, loading through the local socket before each size (timed: the
//! `load/N` rows). Growing only, so each phase's memory is its own.

use std::time::{Duration, Instant};

use crate::report::RowResult;
use crate::sample::{quantile, Monitor, Rep, Tally};
use crate::stream::{self, LocalClient};
use crate::stress::{self, NonReader};
use crate::wire::{self, Call, BENCH_PROG, BENCH_VERS, CHURN_PROG};
use crate::RunArgs;

/// PMAP's own program, version and port: what the base lookups ask for.
const PMAP: (u32, u32, u32) = (100_000, 2, 111);
/// Distinct lookups cycled through by the scaling rows.
const POOL: usize = 512;
/// Calls in flight while loading or unloading through the local socket.
const LOAD_WINDOW: usize = 32;

struct Runner<'a> {
    args: &'a RunArgs,
    rows: Vec<RowResult>,
}

/// Runs every selected row against the server.
pub fn run(args: &RunArgs) -> anyhow::Result<Vec<RowResult>> {
    let mut r = Runner {
        args,
        rows: Vec::new(),
    };
    r.base_rows();
    r.stress_rows();
    let mut scales = args.scales.clone();
    scales.sort_unstable();
    scales.dedup();
    let wanted = |n: &u32| args.wants(&format!("n{n}/")) || args.wants(&format!("load/{n}"));
    let Some(top) = scales.iter().copied().filter(wanted).max() else {
        return Ok(r.rows);
    };
    let mut loaded = 0;
    let mut load_secs = 0.0;
    for n in scales.into_iter().filter(|&n| n <= top) {
        load_secs += r.load_step(loaded, n, load_secs)?;
        loaded = n;
        r.scale_rows(n);
    }
    Ok(r.rows)
}

fn getport_pool(n: u32) -> Vec<Call> {
    if n == 0 {
        return vec![wire::getport(PMAP.0, PMAP.1, PMAP.2)];
    }
    pick(n)
        .map(|i| wire::getport(BENCH_PROG + i, BENCH_VERS, wire::port_of(i)))
        .collect()
}

fn getaddr_pool(n: u32) -> Vec<Call> {
    if n == 0 {
        return vec![wire::getaddr(PMAP.0, 3, PMAP.2)];
    }
    pick(n)
        .map(|i| wire::getaddr(BENCH_PROG + i, BENCH_VERS, wire::port_of(i)))
        .collect()
}

/// `POOL` registrations spread over `0..n` (a fixed xorshift sequence, so
/// every server gets the same lookups).
fn pick(n: u32) -> impl Iterator<Item = u32> {
    let mut x: u32 = 0x9e37_79b9;
    (0..POOL.min(n as usize * 4)).map(move |_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x % n
    })
}

fn framed(pool: Vec<Call>) -> Vec<Call> {
    pool.into_iter().map(Call::framed).collect()
}

impl Runner<'_> {
    fn lookup_rows(&mut self, prefix: &str, n: u32, extra_udp1: bool) {
        let a = self.args;
        let (udp, dur, to) = (a.udp(), a.dur(), a.timeout());
        let gp = getport_pool(n);
        if extra_udp1 {
            self.row(&format!("{prefix}/getport-udp-1"), "calls/s", || {
                crate::udp::run(udp, 1, dur, to, &gp)
            });
        }
        self.row(&format!("{prefix}/getport-udp-32"), "calls/s", || {
            crate::udp::run(udp, 32, dur, to, &gp)
        });
        let gpf = framed(gp.clone());
        self.row(&format!("{prefix}/getport-tcp-16"), "calls/s", || {
            stream::tcp_conns(udp, 16, dur, to, &gpf)
        });
        let ga = getaddr_pool(n);
        self.row(&format!("{prefix}/getaddr-udp-32"), "calls/s", || {
            crate::udp::run(udp, 32, dur, to, &ga)
        });
        let dump = vec![wire::dump(n as usize).framed()];
        self.row(&format!("{prefix}/dump-tcp"), "calls/s", || {
            stream::tcp_conns(udp, 1, dur, to, &dump)
        });
        let path = a.local.clone();
        self.row(&format!("{prefix}/churn-local"), "calls/s", || {
            let set = wire::set(CHURN_PROG, 4242).framed();
            let unset = wire::unset(CHURN_PROG).framed();
            Ok(stream::churn(&path, dur, to, set, unset))
        });
    }

    fn base_rows(&mut self) {
        self.lookup_rows("base", 0, true);
    }

    fn scale_rows(&mut self, n: u32) {
        self.lookup_rows(&format!("n{n}"), n, false);
    }

    /// Loads registrations `from..to` and records the row `load/{to}`:
    /// the time to load all `to` from empty, i.e. `before` (the earlier
    /// steps) plus this step. The lookups run between steps do not change
    /// the table, so the sum is the time of one load of `to`. One
    /// repetition: loading again would need the table emptied first.
    fn load_step(&mut self, from: u32, to: u32, before: f64) -> anyhow::Result<f64> {
        let id = format!("load/{to}");
        let mon = Monitor::start(self.args.pid);
        let start = Instant::now();
        let bad = load(self.args, from..to)?;
        let secs = start.elapsed().as_secs_f64();
        let mut rep = Rep {
            value: before + secs,
            ok: u64::from(to - from) - bad,
            errors: bad,
            note: format!("this step {from}..{to}: {secs:.3} s"),
            ..Rep::default()
        };
        mon.finish(&mut rep);
        eprintln!("{id}: {:.3} s in all, {bad} wrong replies", rep.value);
        self.rows.push(RowResult::new(&id, "s", vec![rep]));
        Ok(secs)
    }

    /// The stress rows, on the base table (before any loading, so that
    /// their memory figures are their own).
    fn stress_rows(&mut self) {
        let a = self.args;
        let (udp, dur, to) = (a.udp(), a.dur(), a.timeout());
        let gp = getport_pool(0);
        self.row("stress/udp-1-nonreader", "calls/s", || {
            let normal = crate::udp::run(udp, 1, dur, to, &gp)?;
            let bad = NonReader::start(udp, wire::getport(PMAP.0, PMAP.1, PMAP.2).framed());
            bad.wait_blocked(Duration::from_secs(5));
            let mut t = crate::udp::run(udp, 1, dur, to, &gp);
            let st = bad.stop();
            if let Ok(t) = &mut t {
                t.paired_normal = Some(rate(&normal));
                t.note = format!(
                    "non-reader: {} connects, {} dropped, {} KiB written",
                    st.connects,
                    st.dropped,
                    st.bytes_written / 1024
                );
            }
            t
        });
        let idle_n = a.idle;
        let gpf = framed(gp.clone());
        for (id, tcp) in [
            (format!("stress/udp-1-idle{idle_n}"), false),
            (format!("stress/tcp-16-idle{idle_n}"), true),
        ] {
            self.row(&id, "calls/s", || {
                let measure = || {
                    if tcp {
                        stream::tcp_conns(udp, 16, dur, to, &gpf)
                    } else {
                        crate::udp::run(udp, 1, dur, to, &gp)
                    }
                };
                let normal = measure()?;
                let idle = stress::open_idle(udp, idle_n);
                let mut t = measure();
                let open = stress::still_open(&idle);
                if let Ok(t) = &mut t {
                    t.paired_normal = Some(rate(&normal));
                    t.note = format!("{} idle opened, {open} still open", idle.len());
                }
                t
            });
        }
    }

    /// Runs the selected row `reps` times.
    fn row(&mut self, id: &str, unit: &str, mut f: impl FnMut() -> anyhow::Result<Tally>) {
        if !self.args.wants(id) {
            return;
        }
        let mut reps = Vec::new();
        for i in 0..self.args.reps {
            let mon = Monitor::start(self.args.pid);
            let start = Instant::now();
            let tally = f();
            let secs = start.elapsed().as_secs_f64();
            let mut rep = to_rep(tally, secs);
            mon.finish(&mut rep);
            eprintln!(
                "{id} rep {}: {:.0} {unit}, {} ok, {} errors, {} timeouts, p99 {} us {}",
                i + 1,
                rep.value,
                rep.ok,
                rep.errors,
                rep.timeouts,
                rep.p99_us,
                rep.note
            );
            reps.push(rep);
        }
        self.rows.push(RowResult::new(id, unit, reps));
    }
}

fn to_rep(tally: anyhow::Result<Tally>, secs: f64) -> Rep {
    match tally {
        Ok(mut t) => Rep {
            value: t.ok as f64 / if t.secs > 0.0 { t.secs } else { secs }.max(1e-6),
            paired_normal: t.paired_normal,
            ok: t.ok,
            errors: t.errors,
            timeouts: t.timeouts,
            p50_us: quantile(&mut t.lat_us, 0.5),
            p99_us: quantile(&mut t.lat_us, 0.99),
            note: t.note,
            ..Rep::default()
        },
        Err(e) => Rep {
            value: 0.0,
            errors: 1,
            note: format!("failed: {e:#}"),
            ..Rep::default()
        },
    }
}

fn rate(t: &Tally) -> f64 {
    t.ok as f64 / t.secs.max(1e-6)
}

/// SETs registrations `range` through the local socket; returns how many
/// replies were not TRUE.
fn load(args: &RunArgs, range: std::ops::Range<u32>) -> anyhow::Result<u64> {
    let mut c = LocalClient::connect(&args.local, Duration::from_secs(30))?;
    let mut calls: Vec<Call> = range
        .map(|i| wire::set(BENCH_PROG + i, wire::port_of(i)).framed())
        .collect();
    Ok(c.pipeline(&mut calls, LOAD_WINDOW)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::median;

    #[test]
    fn picks_stay_in_range_and_repeat_per_run() {
        let a: Vec<u32> = pick(1000).collect();
        assert_eq!(a.len(), POOL);
        assert!(a.iter().all(|&i| i < 1000));
        assert_eq!(a, pick(1000).collect::<Vec<_>>());
        assert_eq!(pick(10).count(), 40);
    }

    #[test]
    fn median_of_reps_used_for_rows() {
        let r = RowResult::new(
            "x",
            "calls/s",
            vec![
                Rep {
                    value: 3.0,
                    ..Rep::default()
                },
                Rep {
                    value: 1.0,
                    ..Rep::default()
                },
                Rep {
                    value: 2.0,
                    ..Rep::default()
                },
            ],
        );
        assert_eq!(r.median, median(&[1.0, 2.0, 3.0]));
    }
}
