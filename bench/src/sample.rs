//! What one repetition of one row measured (counts, latencies, the
//! server's memory and both sides' CPU), and the monitor that samples the
//! server's `/proc/PID/status` and `/proc/PID/stat` while a row runs.
//! Reads `/proc`; no network I/O.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Counts and latencies a load client gathers.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Replies that were right (xid and result).
    pub ok: u64,
    /// Replies that were wrong, undecodable, or transport errors.
    pub errors: u64,
    /// Calls given up after the timeout.
    pub timeouts: u64,
    /// Latency of every good reply (and of every timeout, counted as the
    /// timeout), in microseconds.
    pub lat_us: Vec<u32>,
    /// Free text (e.g. how often the non-reading client was dropped).
    pub note: String,
    /// Seconds the client measured for (its calls only, not the setup
    /// around them); 0 when unknown.
    pub secs: f64,
    /// The same client's rate without the disturbance, measured just
    /// before (stress rows).
    pub paired_normal: Option<f64>,
}

impl Tally {
    pub fn merge(&mut self, other: Tally) {
        self.ok += other.ok;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
        self.lat_us.extend(other.lat_us);
        if !other.note.is_empty() {
            self.note = other.note;
        }
        self.secs = self.secs.max(other.secs);
    }

    pub fn latency(&mut self, since: Instant) {
        let us = since.elapsed().as_micros();
        self.lat_us.push(u32::try_from(us).unwrap_or(u32::MAX));
    }
}

/// One repetition as reported.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Rep {
    /// Calls per second, or seconds for timed rows.
    pub value: f64,
    pub ok: u64,
    pub errors: u64,
    pub timeouts: u64,
    pub p50_us: u32,
    pub p99_us: u32,
    /// Largest VmRSS seen while the repetition ran (KiB).
    pub rss_max_kb: u64,
    /// VmHWM at its end (KiB): the peak since the server started.
    pub hwm_kb: u64,
    /// Server CPU use during the repetition (percent of one CPU).
    pub server_cpu: f64,
    /// Load generator CPU use (percent of one CPU).
    pub gen_cpu: f64,
    pub note: String,
    /// Rate of the same client without the disturbance, measured just
    /// before this repetition (stress rows only).
    #[serde(default)]
    pub paired_normal: Option<f64>,
}

/// The `q` quantile (0..=1) of `v`, sorting it.
pub fn quantile(v: &mut [u32], q: f64) -> u32 {
    if v.is_empty() {
        return 0;
    }
    v.sort_unstable();
    let idx = ((v.len() - 1) as f64 * q).round() as usize;
    v[idx.min(v.len() - 1)]
}

/// The median of `v` (the mean of the middle two for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return f64::NAN;
    }
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// A `/proc/PID/status` field in KiB.
fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// utime + stime of a process in clock ticks (`/proc/PID/stat` fields 14
/// and 15, counted after the parenthesised command name).
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Clock ticks per second of `/proc` CPU times (USER_HZ, 100 on Linux).
const TICKS_PER_SEC: f64 = 100.0;

/// Samples the server while a repetition runs.
#[derive(Debug)]
pub struct Monitor {
    pid: Option<u32>,
    stop: Arc<AtomicBool>,
    rss_max: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
    server_ticks: Option<u64>,
    gen_ticks: Option<u64>,
}

impl Monitor {
    pub fn start(pid: Option<u32>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let rss_max = Arc::new(AtomicU64::new(0));
        let thread = pid.map(|pid| {
            let (stop, rss_max) = (stop.clone(), rss_max.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if let Some(kb) = status_kb(pid, "VmRSS:") {
                        rss_max.fetch_max(kb, Ordering::Relaxed);
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        });
        Self {
            pid,
            stop,
            rss_max,
            thread,
            started: Instant::now(),
            server_ticks: pid.and_then(|p| cpu_ticks(&p.to_string())),
            gen_ticks: cpu_ticks("self"),
        }
    }

    /// Stops sampling and fills the memory and CPU fields of `rep`.
    pub fn finish(mut self, rep: &mut Rep) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-6);
        let pct = |before: Option<u64>, now: Option<u64>| match (before, now) {
            (Some(b), Some(n)) => n.saturating_sub(b) as f64 / TICKS_PER_SEC / secs * 100.0,
            _ => f64::NAN,
        };
        if let Some(pid) = self.pid {
            if let Some(kb) = status_kb(pid, "VmRSS:") {
                self.rss_max.fetch_max(kb, Ordering::Relaxed);
            }
            rep.hwm_kb = status_kb(pid, "VmHWM:").unwrap_or(0);
            rep.server_cpu = pct(self.server_ticks, cpu_ticks(&pid.to_string()));
        }
        rep.rss_max_kb = self.rss_max.load(Ordering::Relaxed);
        rep.gen_cpu = pct(self.gen_ticks, cpu_ticks("self"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_median() {
        let mut v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&mut v, 0.99), 99);
        assert_eq!(quantile(&mut v, 0.5), 51);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn own_process_is_readable() {
        assert!(cpu_ticks("self").is_some());
        assert!(status_kb(std::process::id(), "VmRSS:").unwrap_or(0) > 0);
    }
}
