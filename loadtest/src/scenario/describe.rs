//! The plan as `scenario FILE --dry-run` prints it: what would start, what load each phase
//! sends, what churn ticks when, what is asserted, and which drivers are missing.

use super::driver::Registry;
use super::plan::PhasePlan;
use super::spec::{ProcessKind, ProcessSpec};
use super::Scenario;
use crate::generator::{Length, Mode};
use std::fmt::Write as _;

/// The human description of `scenario`, with driver availability from `registry`.
pub fn describe(scenario: &Scenario, registry: &Registry) -> String {
    let p = &scenario.plan;
    let mut o = String::new();
    let _ = writeln!(o, "scenario {} ({})", p.name, scenario.path.display());
    if !p.description.trim().is_empty() {
        for line in p.description.trim().lines() {
            let _ = writeln!(o, "  {line}");
        }
    }
    let _ = writeln!(
        o,
        "\nprocesses (started in order, each ready before the next; stopped in reverse):"
    );
    if p.processes.is_empty() {
        let _ = writeln!(o, "  none: the target is already running");
    }
    for (i, s) in p.processes.iter().enumerate() {
        let _ = writeln!(o, "  {}. {}", i + 1, process(s, registry));
    }
    let _ = writeln!(o, "\nphases:");
    for (i, ph) in p.phases.iter().enumerate() {
        let _ = writeln!(o, "  {}. {}", i + 1, phase(ph));
    }
    let _ = writeln!(o, "\nchurn:");
    if p.churn.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for c in &p.churn {
        let during = if c.phases.is_empty() {
            "every measured phase".to_string()
        } else {
            c.phases.join(", ")
        };
        let mut line = format!("  - {} every {} during {during}", c.action.name(), c.every);
        if let Some(proc_name) = &c.process {
            let _ = write!(line, " on {proc_name}");
        }
        if !c.params.is_empty() {
            let params: Vec<String> = c.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let _ = write!(line, " ({})", params.join(", "));
        }
        if !registry.has_churn(c.action) {
            line.push_str(" [no driver registered]");
        }
        let _ = writeln!(o, "{line}");
    }
    let _ = writeln!(o, "\nassertions:");
    let a = &p.assertions;
    let mut any = false;
    let mut say = |s: String| {
        any = true;
        let _ = writeln!(o, "  - {s}");
    };
    if let Some(n) = a.max_5xx {
        say(format!("at most {n} responses with a 5xx status"));
    }
    if let Some(n) = a.max_errors {
        say(format!(
            "at most {n} failed requests (no response or an unexpected status)"
        ));
    }
    if a.no_success_after_revoke {
        say("no request with a revoked session succeeds after the revocation".into());
    }
    if a.decisions_follow_policy {
        say("every decision follows the policy in force".into());
    }
    if let Some(d) = a.recovery_within {
        say(format!(
            "expected responses again within {d} of each disruption"
        ));
    }
    if a.no_false_401 {
        say("no valid credential is answered 401".into());
    }
    if !any {
        let _ = writeln!(o, "  none");
    }
    let figures: Vec<&str> = p.report.iter().map(|f| f.name()).collect();
    let _ = writeln!(o, "\nreport: {}", figures.join(", "));
    let missing = registry.missing(p);
    if missing.is_empty() {
        let _ = writeln!(o, "\nevery driver this scenario needs is available");
    } else {
        let _ = writeln!(o, "\nno driver yet for: {}", missing.join("; "));
    }
    o
}

fn process(s: &ProcessSpec, registry: &Registry) -> String {
    let mut line = format!("{} [{}]", s.name, s.kind.name());
    if !s.command.is_empty() {
        let _ = write!(line, " `{}`", s.command.join(" "));
    }
    if let Some(c) = &s.conf {
        let _ = write!(line, " conf {}", c.display());
    }
    if let Some(l) = &s.listen {
        let _ = write!(line, " on {l}");
    }
    if let Some(t) = s.threads {
        let _ = write!(line, ", {t} thread(s)");
    }
    if !s.args.is_empty() {
        let _ = write!(line, ", args `{}`", s.args.join(" "));
    }
    if !s.env.is_empty() {
        let keys: Vec<&str> = s.env.keys().map(String::as_str).collect();
        let _ = write!(line, ", env {}", keys.join(" "));
    }
    match (&s.ready, s.kind) {
        (Some(u), _) => {
            let _ = write!(
                line,
                "; ready when {u} answers 2xx (within {})",
                s.ready_timeout
            );
        }
        (None, ProcessKind::Upstream) => {
            let _ = write!(
                line,
                "; ready when it answers 2xx (within {})",
                s.ready_timeout
            );
        }
        (None, _) => line.push_str("; no readiness check"),
    }
    if s.measure {
        line.push_str("; CPU and memory measured");
    }
    if !registry.has_process(s.kind) {
        line.push_str(" [no driver registered]");
    }
    line
}

fn phase(p: &PhasePlan) -> String {
    let mut line = p.name.clone();
    if p.warmup {
        line.push_str(" (warm-up, not measured)");
    }
    let pacing = match p.mode {
        Mode::Open { rate } => format!("open loop at {rate} rps"),
        Mode::Closed => "closed loop".to_string(),
    };
    let length = match p.length {
        Length::Duration(d) => format!("for {:?}", d),
        Length::Requests(n) => format!("for {n} requests"),
    };
    let http = if p.http2 {
        format!("HTTP/2 over {} connection(s)", p.h2_connections)
    } else {
        "HTTP/1.1".to_string()
    };
    let _ = write!(
        line,
        ": {pacing} {length}, {} connection(s), {} thread(s), {http} → GET {}",
        p.connections, p.threads, p.url
    );
    if !p.headers.is_empty() {
        let names: Vec<&str> = p.headers.iter().map(|(n, _)| n.as_str()).collect();
        let _ = write!(line, "; headers {}", names.join(", "));
    }
    if let Some((file, header)) = &p.tokens {
        let _ = write!(line, "; {header} rotated from {}", file.display());
    }
    let _ = write!(line, "; expect {}; timeout {:?}", p.expect, p.timeout);
    line
}
