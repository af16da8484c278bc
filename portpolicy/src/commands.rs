//! The subcommands of `portpolicy`: load, compute, print. Does I/O
//! (stdout, and through the library files, /proc and netlink).

use portpolicy::apply::{self, Current, Plan};
use portpolicy::check::{self, Finding, Severity};
use portpolicy::config::{Config, ConfigError, Mode, Protocols};
use portpolicy::holders::{self, Holder};
use portpolicy::load::{self, Kernel, Paths};
use portpolicy::policy::{Policy, Sources};
use portpolicy::portset::{PortRange, PortSet};
use portpolicy::services::Services;
use portpolicy::Protocol;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Print a line to stdout.
macro_rules! say {
    ($($arg:tt)*) => {
        emit(&format!($($arg)*), true)
    };
}

/// Write to stdout; a closed pipe (`portpolicy pool | head`) ends the
/// process quietly, as SIGPIPE would, instead of panicking.
pub(crate) fn emit(text: &str, newline: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let result = out.write_all(text.as_bytes()).and_then(|_| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if result.is_err() {
        std::process::exit(0);
    }
}

/// What every command gets.
#[derive(Debug)]
pub struct Context {
    /// Where files and sysctls are.
    pub paths: Paths,
    /// JSON output.
    pub json: bool,
}

/// How a command ended well: all fine, or problems found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Exit 0.
    Ok,
    /// Exit 1.
    Problems,
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        ExitCode::from(match s {
            Status::Ok => 0,
            Status::Problems => 1,
        })
    }
}

/// A command that could not run: message and exit status.
#[derive(Debug)]
pub struct Failure {
    /// Exit status (1 or 2).
    pub status: u8,
    /// What went wrong.
    pub message: String,
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        Failure {
            status: 2,
            message: e.to_string(),
        }
    }
}

fn io_failure(what: &str, e: std::io::Error) -> Failure {
    Failure {
        status: 1,
        message: format!("{what}: {e}"),
    }
}

struct Loaded {
    config: Config,
    kernel: Kernel,
    sources: Sources,
    policy: Policy,
}

impl Loaded {
    fn services(&self) -> Services {
        self.sources.services.clone().unwrap_or_default()
    }
}

fn load_all(ctx: &Context) -> Result<Loaded, Failure> {
    let (config, kernel, sources, policy) = load::policy(&ctx.paths)?;
    Ok(Loaded {
        config,
        kernel,
        sources,
        policy,
    })
}

pub(crate) fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Failure {
        status: 1,
        message: e.to_string(),
    })?;
    say!("{text}");
    Ok(())
}

fn protocols_text(p: Protocols) -> &'static str {
    match p {
        Protocols::Tcp => "tcp",
        Protocols::Udp => "udp",
        Protocols::Both => "tcp+udp",
    }
}

/// `portpolicy show`.
pub fn show(ctx: &Context) -> Result<Status, Failure> {
    let l = load_all(ctx)?;
    if ctx.json {
        print_json(&serde_json::json!({ "config": l.config, "policy": l.policy }))?;
        return Ok(Status::Ok);
    }
    let p = &l.policy;
    let order: Vec<String> = p.candidates.iter().map(|r| r.to_string()).collect();
    let mode = match p.mode {
        Mode::Privileged => "privileged",
        Mode::High => "high",
    };
    say!(
        "mode: {mode} (candidates in order: {})",
        order.join(", then ")
    );
    match l.config.files.is_empty() {
        true => say!("config: no file, defaults"),
        false => {
            let files: Vec<String> = l
                .config
                .files
                .iter()
                .map(|f| f.display().to_string())
                .collect();
            say!("config: {}", files.join(", "));
        }
    }
    say!("ephemeral range: {}", p.ephemeral);
    for proto in Protocol::ALL {
        say!(
            "pool {proto} ({} ports): {}",
            p.pool(proto).len(),
            p.pool(proto)
        );
    }
    say!(
        "reservations:{}",
        if p.reservations.is_empty() {
            " none"
        } else {
            ""
        }
    );
    for r in &p.reservations {
        let mut who = vec!["root".to_string()];
        who.extend(r.uid.map(|u| format!("uid {u}")));
        who.extend(r.gid.map(|g| format!("gid {g}")));
        who.extend(r.unit.clone().map(|u| format!("unit {u}")));
        say!(
            "  {} {}/{} (claim: {})",
            r.name,
            r.port,
            protocols_text(r.protocols),
            who.join(", ")
        );
    }
    say!("exclusions:");
    for e in &p.exclusions {
        say!(
            "  {:<11} {:<7} {}: {}",
            e.ports.to_string(),
            protocols_text(e.protocols),
            e.source,
            e.detail
        );
    }
    for n in &p.notes {
        say!("note: {n}");
    }
    Ok(Status::Ok)
}

/// `portpolicy pool`.
pub fn pool(ctx: &Context, proto: Protocol) -> Result<Status, Failure> {
    let l = load_all(ctx)?;
    let ports: Vec<u16> = l.policy.pool_in_order(proto).collect();
    if ctx.json {
        print_json(&ports)?;
    } else {
        let mut out = String::new();
        for p in ports {
            out.push_str(&format!("{p}\n"));
        }
        emit(&out, false);
    }
    Ok(Status::Ok)
}

/// `portpolicy why PORT/PROTO`.
pub fn why(ctx: &Context, port: u16, proto: Protocol) -> Result<Status, Failure> {
    let l = load_all(ctx)?;
    let held = holders::holders_of(port, proto)
        .map_err(|e| io_failure("listing sockets (sock_diag)", e))?;
    let services = l.services();
    let p = &l.policy;
    let in_pool = p.pool(proto).contains(port);
    let reasons: Vec<_> = p.reasons(port, proto).collect();
    let wrong: Vec<(String, &Holder)> = held
        .iter()
        .filter_map(|h| check::wrong_holder(p, &services, h).map(|w| (w, h)))
        .collect();
    let status = if wrong.is_empty() {
        Status::Ok
    } else {
        Status::Problems
    };
    if ctx.json {
        print_json(&serde_json::json!({
            "port": port, "protocol": proto, "in_pool": in_pool, "reasons": reasons,
            "reservation": p.reservation(port, proto), "holders": held,
            "wrong_holders": wrong.iter().map(|(w, h)| serde_json::json!({"why": w, "holder": h})).collect::<Vec<_>>(),
        }))?;
        return Ok(status);
    }
    let pool_text = if in_pool {
        "in the pool"
    } else {
        "not in the pool"
    };
    say!("{port}/{proto}: {pool_text} ({} mode)", mode_name(p.mode));
    if let Some(r) = p.reservation(port, proto) {
        say!("  reserved for {:?}", r.name);
    }
    if reasons.is_empty() {
        say!("  named by: no source");
    } else {
        say!("  named by:");
        for e in &reasons {
            say!("    {}: {}", e.source, e.detail);
        }
    }
    if held.is_empty() {
        say!("  held by: nothing (free)");
    } else {
        say!("  held by:");
        for h in &held {
            say!("    {}", check::holder_text(h));
        }
    }
    let mut told: Vec<String> = Vec::new();
    for (what, h) in &wrong {
        let who = holder_name(h);
        if told.contains(&who) {
            continue;
        }
        say!("problem: {port}/{proto} is the {what}, but {who} holds it.");
        told.push(who);
        if let Some(arg) = h.processes.iter().find_map(|p| p.pins(port)) {
            say!(
                "  Its command line names the port ({arg:?}): it was told to take {port}/{proto} \
                 rather than picking it; give it a pool port instead."
            );
        }
        if h.processes.is_empty()
            && h.kernel
                .as_deref()
                .is_some_and(|k| k.contains("NFS client"))
        {
            say!(
                "  The kernel NFS client takes source ports counting down from sunrpc.max_resvport \
                 (default 665-1023) and ignores bindresvport.blacklist: `portpolicy apply` narrows \
                 sunrpc.min_resvport/max_resvport to pool ports where /proc/sys/sunrpc exists, and a \
                 reservation held from boot makes the kernel skip {port}. Remount the share to free it."
            );
        } else if !in_pool {
            say!(
                "  The policy keeps {port}/{proto} out of the pool (sources above): a daemon that takes \
                 its port from the pool, or from bindresvport() once `portpolicy apply` has written \
                 the managed blacklist block, would not have taken it; a reservation for it (held \
                 from boot by the allocation service) would make every other bind fail."
            );
        }
    }
    Ok(status)
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Privileged => "privileged",
        Mode::High => "high",
    }
}

fn holder_name(h: &Holder) -> String {
    match h.processes.first() {
        Some(p) => format!("{} (pid {})", p.command, p.pid),
        None => h.kernel.clone().unwrap_or_else(|| "a kernel socket".into()),
    }
}

fn current(ctx: &Context, l: &Loaded) -> Result<Current, Failure> {
    let paths = &ctx.paths;
    Ok(Current {
        kernel: l.kernel.clone(),
        applied: l.sources.applied.clone(),
        applied_text: load::read_optional(&paths.applied_record())?,
        blacklist: load::read_optional(&paths.host("/etc/bindresvport.blacklist"))?,
        dropin: load::read_optional(&paths.host(&l.config.apply.sysctl_dropin))?,
        nfs_dropin: load::read_optional(&paths.host(portpolicy::nfsconf::DROPIN))?,
        other_sysctl_files: load::sysctl_files(paths)?,
    })
}

/// `portpolicy check`.
pub fn check(ctx: &Context) -> Result<Status, Failure> {
    let l = load_all(ctx)?;
    let held = holders::all_holders().map_err(|e| io_failure("listing sockets (sock_diag)", e))?;
    let plan = apply::plan(&l.config, &l.policy, &current(ctx, &l)?);
    let leases = crate::service::leased_ports();
    let findings: Vec<Finding> =
        check::findings(&l.policy, &l.services(), &held, &plan, leases.as_deref());
    let problems = findings
        .iter()
        .filter(|f| f.severity == Severity::Problem)
        .count();
    if ctx.json {
        print_json(&findings)?;
    } else {
        for f in &findings {
            let tag = match f.severity {
                Severity::Problem => "problem",
                Severity::Note => "note",
            };
            say!("{tag}: {} -- do: {}", f.what, f.todo);
        }
        say!("{problems} problem(s) found");
    }
    Ok(if problems > 0 {
        Status::Problems
    } else {
        Status::Ok
    })
}

/// `portpolicy apply [--dry-run]`.
pub fn apply(ctx: &Context, dry_run: bool) -> Result<Status, Failure> {
    let l = load_all(ctx)?;
    let plan: Plan = apply::plan(&l.config, &l.policy, &current(ctx, &l)?);
    if ctx.json {
        print_json(&serde_json::json!({ "dry_run": dry_run, "plan": plan }))?;
    } else {
        for c in &plan.changes {
            emit(&c.diff(), false);
        }
        for n in &plan.notes {
            say!("note: {n}");
        }
    }
    if plan.changes.is_empty() {
        if !ctx.json {
            say!("nothing to change: the kernel and files already agree with the policy");
        }
        return Ok(Status::Ok);
    }
    if dry_run {
        if !ctx.json {
            say!(
                "dry run: {} change(s) shown, nothing written",
                plan.changes.len()
            );
        }
        return Ok(Status::Ok);
    }
    let paths = &ctx.paths;
    apply::execute(&plan, |p| paths.host(p), |n| paths.sysctl(n))
        .map_err(|e| io_failure("apply stopped", e))?;
    if !ctx.json {
        say!("applied {} change(s)", plan.changes.len());
    }
    Ok(Status::Ok)
}

/// `portpolicy map [RANGE]`.
pub fn map(ctx: &Context, range: PortRange, proto: Protocol) -> Result<Status, Failure> {
    let l = load_all(ctx)?;
    let mut held = PortSet::new();
    match holders::all_holders() {
        Ok(hs) => hs
            .iter()
            .filter(|h| h.socket.protocol == proto && h.socket.state_code != 6)
            .for_each(|h| {
                held.insert(h.socket.local.port());
            }),
        Err(e) => eprintln!("portpolicy: cannot list sockets ({e}): ports in use not shown"),
    }
    let colour = std::io::stdout().is_terminal();
    emit(
        &portpolicy::map::render(&l.policy, proto, range, &held, colour),
        false,
    );
    Ok(Status::Ok)
}
