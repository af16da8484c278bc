//! Tables: one run's rows with every repetition and the median, and two
//! runs side by side with the ratio ours/reference per row and the
//! targets of issue 8 checked. Prints to stdout; no other I/O.

use serde::{Deserialize, Serialize};

use crate::sample::{median, Rep};

/// One row: its repetitions and their median value.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RowResult {
    pub id: String,
    /// "calls/s" (higher is better) or "s" (lower is better).
    pub unit: String,
    pub reps: Vec<Rep>,
    pub median: f64,
}

impl RowResult {
    pub fn new(id: &str, unit: &str, reps: Vec<Rep>) -> Self {
        let values: Vec<f64> = reps.iter().map(|r| r.value).collect();
        Self {
            id: id.to_owned(),
            unit: unit.to_owned(),
            median: median(&values),
            reps,
        }
    }

    fn sum(&self, f: impl Fn(&Rep) -> u64) -> u64 {
        self.reps.iter().map(f).sum()
    }

    fn max(&self, f: impl Fn(&Rep) -> u64) -> u64 {
        self.reps.iter().map(f).max().unwrap_or(0)
    }

    fn median_of(&self, f: impl Fn(&Rep) -> f64) -> f64 {
        median(&self.reps.iter().map(f).collect::<Vec<_>>())
    }
}

/// A whole run, as `run --out` writes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Run {
    pub label: String,
    pub duration: f64,
    pub reps: usize,
    pub rows: Vec<RowResult>,
}

fn value(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        "-".into()
    } else if unit == "s" {
        format!("{v:.2}s")
    } else if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else {
        format!("{v:.0}")
    }
}

fn mib(kb: u64) -> String {
    format!("{:.1}", kb as f64 / 1024.0)
}

/// Prints one run: each repetition, the median, counts, latency, memory.
pub fn print_run(label: &str, rows: &[RowResult]) {
    println!("## {label}\n");
    println!("| row | reps | median | ok | err | t/o | p50 us | p99 us | RSS max MiB | HWM MiB | srv cpu% | gen cpu% | note |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let reps: Vec<String> = r.reps.iter().map(|p| value(p.value, &r.unit)).collect();
        let mut note = r.reps.last().map(|p| p.note.clone()).unwrap_or_default();
        let normal: Vec<String> = r
            .reps
            .iter()
            .filter_map(|p| p.paired_normal.map(|n| value(n, &r.unit)))
            .collect();
        if !normal.is_empty() {
            note = format!("undisturbed just before: {}; {note}", normal.join(" / "));
        }
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} | {:.0} | {} | {} | {:.0} | {:.0} | {} |",
            r.id,
            reps.join(" / "),
            value(r.median, &r.unit),
            r.sum(|p| p.ok),
            r.sum(|p| p.errors),
            r.sum(|p| p.timeouts),
            r.median_of(|p| f64::from(p.p50_us)),
            r.median_of(|p| f64::from(p.p99_us)),
            mib(r.max(|p| p.rss_max_kb)),
            mib(r.max(|p| p.hwm_kb)),
            r.median_of(|p| p.server_cpu),
            r.median_of(|p| p.gen_cpu),
            note
        );
    }
    println!();
}

/// ours/reference for rates, reference/ours for times: above 1 is better.
fn ratio(ours: &RowResult, reference: &RowResult) -> f64 {
    if ours.unit == "s" {
        reference.median / ours.median
    } else {
        ours.median / reference.median
    }
}

/// Prints two runs side by side, then the targets of issue 8.
pub fn print_compare(ours: &Run, reference: &Run) {
    println!(
        "## {} vs {} ({} reps x {} s)\n",
        ours.label, reference.label, ours.reps, ours.duration
    );
    println!("Ratio: ours/C for rates, C/ours for times (above 1: ours is better). Errors are wrong replies + transport errors; t/o = timeouts.\n");
    println!("| row | {o} reps | {o} median | {c} reps | {c} median | ratio | err+t/o {o} / {c} | p99 us {o} / {c} | RSS max MiB {o} / {c} |", o = ours.label, c = reference.label);
    println!("|---|---|---|---|---|---|---|---|---|");
    for r in &ours.rows {
        let Some(c) = reference.rows.iter().find(|c| c.id == r.id) else {
            continue;
        };
        let reps = |x: &RowResult| {
            x.reps
                .iter()
                .map(|p| value(p.value, &x.unit))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let bad = |x: &RowResult| x.sum(|p| p.errors + p.timeouts);
        let p99 = |x: &RowResult| x.median_of(|p| f64::from(p.p99_us));
        println!(
            "| {} | {} | {} | {} | {} | **{:.2}** | {} / {} | {:.0} / {:.0} | {} / {} |",
            r.id,
            reps(r),
            value(r.median, &r.unit),
            reps(c),
            value(c.median, &c.unit),
            ratio(r, c),
            bad(r),
            bad(c),
            p99(r),
            p99(c),
            mib(r.max(|p| p.rss_max_kb)),
            mib(c.max(|p| p.rss_max_kb)),
        );
    }
    println!();
    print_targets(ours, reference);
}

fn find<'a>(run: &'a Run, id: &str) -> Option<&'a RowResult> {
    run.rows.iter().find(|r| r.id == id)
}

/// The targets of issue 8, each with the figures it was judged on.
fn print_targets(ours: &Run, reference: &Run) {
    println!("### Targets (issue 8)\n");
    println!("| target | figures | met |");
    println!("|---|---|---|");
    let line = |name: &str, figures: String, met: Option<bool>| {
        let m = match met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "n/a",
        };
        println!("| {name} | {figures} | {m} |");
    };
    for (id, want) in [
        ("base/getport-udp-32", 3.0),
        ("base/getport-tcp-16", 2.0),
        ("base/getaddr-udp-32", 5.0),
        ("base/getport-udp-1", 1.0),
    ] {
        let r = find(ours, id)
            .zip(find(reference, id))
            .map(|(o, c)| ratio(o, c));
        line(
            &format!("{id} >= {want}x C"),
            r.map_or("-".into(), |r| format!("{r:.2}x")),
            r.map(|r| r >= want),
        );
    }
    for kind in ["getport-udp-32", "getport-tcp-16"] {
        let big = ours
            .rows
            .iter()
            .filter(|r| r.id.ends_with(kind) && r.id.starts_with('n'));
        let small = find(ours, &format!("n10/{kind}"));
        for b in big {
            if let Some(s) = small.filter(|s| s.id != b.id) {
                let rel = b.median / s.median;
                line(
                    &format!("{} within 15% of n10", b.id),
                    format!("{:.0}% of n10", rel * 100.0),
                    Some(rel >= 0.85),
                );
            }
        }
    }
    if let Some(l) = ours.rows.iter().rfind(|r| r.id.starts_with("load/")) {
        line(
            &format!("{} under 1 s", l.id),
            value(l.median, "s"),
            Some(l.median < 1.0),
        );
    }
    for r in ours.rows.iter().filter(|r| r.id.starts_with("stress/")) {
        let p99 = r.median_of(|p| f64::from(p.p99_us));
        // Each repetition against the same client measured just before
        // it, undisturbed, so the machine's drift cancels out.
        let rel = r.median_of(|p| p.paired_normal.map_or(f64::NAN, |n| p.value / n));
        let nonreader = r.id.contains("nonreader");
        let floor = if nonreader { 0.8 } else { 0.9 };
        let met = rel >= floor && (!nonreader || p99 < 5000.0);
        line(
            &format!(
                "{} keeps >= {:.0}% of its undisturbed rate{}",
                r.id,
                floor * 100.0,
                if nonreader { ", p99 < 5 ms" } else { "" }
            ),
            format!("{:.0}%, p99 {p99:.0} us", rel * 100.0),
            (!rel.is_nan()).then_some(met),
        );
    }
    let worse: Vec<String> = ours
        .rows
        .iter()
        .filter_map(|r| {
            let c = find(reference, &r.id)?;
            let (o, c) = (r.max(|p| p.rss_max_kb), c.max(|p| p.rss_max_kb));
            (o > c).then(|| format!("{} ({} > {})", r.id, mib(o), mib(c)))
        })
        .collect();
    line(
        "peak RSS never above C's in the same row",
        if worse.is_empty() {
            "all rows".into()
        } else {
            worse.join(", ")
        },
        Some(worse.is_empty()),
    );
    println!();
}
