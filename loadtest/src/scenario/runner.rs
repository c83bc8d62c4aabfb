//! Running a scenario: start the processes in order (each ready before the next), run the
//! phases with their churn ticking alongside, stop everything in reverse, judge the assertions.

use super::driver::{
    Churn, ChurnContext, ChurnEvent, DriverError, Processes, Registry, RunContext, Verdict,
};
use super::plan::PhasePlan;
use super::spec::{ChurnSpec, Figure, Priority};
use super::Scenario;
use crate::generator::{self, Watched};
use crate::readiness;
use crate::report::Report;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use tokio::time::Instant;

/// Why a scenario could not be run to the end.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error(transparent)]
    Driver(#[from] DriverError),
    #[error("{0}: {1}")]
    Ready(String, readiness::ReadyError),
    #[error("phase {0}: {1}")]
    Phase(String, String),
}

/// One phase's figures and the churn applied during it.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    pub name: String,
    pub warmup: bool,
    pub report: Report,
    /// What the churn drivers did, in order (`action: detail` at seconds into the phase).
    pub churn: Vec<String>,
}

/// One assertion's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct AssertionResult {
    pub assertion: String,
    /// `pass`, `fail` or `not_evaluated`.
    pub verdict: &'static str,
    pub detail: String,
}

/// Everything a scenario run produced.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub scenario: String,
    pub phases: Vec<PhaseResult>,
    pub assertions: Vec<AssertionResult>,
    /// Churn ticks that failed.
    pub churn_errors: Vec<String>,
}

impl Outcome {
    /// Whether every assertion passed and no churn action failed. An assertion nobody could
    /// judge does not pass.
    pub fn passed(&self) -> bool {
        self.churn_errors.is_empty() && self.assertions.iter().all(|a| a.verdict == "pass")
    }

    /// The closing table: one row per measured phase, the chosen figures as columns.
    pub fn table(&self, figures: &[Figure]) -> String {
        let mut o = String::from("| phase |");
        for f in figures {
            let _ = write!(o, " {} |", f.name());
        }
        o.push_str("\n|---|");
        o.push_str(&"---:|".repeat(figures.len()));
        o.push('\n');
        for p in self.phases.iter().filter(|p| !p.warmup) {
            let _ = write!(o, "| {} |", p.name);
            for f in figures {
                let _ = write!(o, " {} |", figure(&p.report, *f));
            }
            o.push('\n');
        }
        o
    }
}

/// One figure of a report, as printed.
pub fn figure(r: &Report, f: Figure) -> String {
    let l = &r.latency_us;
    let usage = r.processes_total.as_ref().or(r.processes.first());
    match f {
        Figure::Rps => format!("{:.0}", r.rps),
        Figure::P50 => format!("{} µs", l.p50),
        Figure::P90 => format!("{} µs", l.p90),
        Figure::P99 => format!("{} µs", l.p99),
        Figure::P999 => format!("{} µs", l.p999),
        Figure::Max => format!("{} µs", l.max),
        Figure::Mean => format!("{:.0} µs", l.mean),
        Figure::Errors => r.errors.total.to_string(),
        Figure::Status => {
            let s = &r.status;
            format!("{}/{}/{}/{}", s.s2xx, s.s3xx, s.s4xx, s.s5xx)
        }
        Figure::Late => r.late.map_or("–".into(), |l| l.count.to_string()),
        Figure::CpuPerRequest => {
            usage.map_or("–".into(), |u| format!("{:.1} µs", u.cpu_us_per_request))
        }
        Figure::Rss => usage.map_or("–".into(), |u| {
            format!("{:.1} MiB", u.rss_kib as f64 / 1024.0)
        }),
        Figure::Hwm => usage.map_or("–".into(), |u| {
            format!("{:.1} MiB", u.hwm_kib as f64 / 1024.0)
        }),
    }
}

/// Runs `scenario` with the drivers in `registry`.
pub async fn run(
    scenario: &Scenario,
    registry: &Registry,
    ctx: &RunContext,
) -> Result<Outcome, RunnerError> {
    let plan = &scenario.plan;
    // Every driver exists before anything starts.
    let mut procs = Processes {
        order: Vec::new(),
        by_name: BTreeMap::new(),
    };
    for spec in &plan.processes {
        procs.order.push(spec.name.clone());
        procs
            .by_name
            .insert(spec.name.clone(), registry.process(spec, ctx)?);
    }
    let mut churn = Vec::new();
    for spec in &plan.churn {
        churn.push((spec, registry.churn(spec, ctx)?));
    }

    let result = async {
        start_all(scenario, &mut procs, ctx).await?;
        for (spec, driver) in churn.iter_mut() {
            driver.prepare(ctx).await.map_err(|e| {
                RunnerError::Phase(
                    format!("before the phases ({})", spec.action.name()),
                    e.to_string(),
                )
            })?;
        }
        let mut phases = Vec::new();
        let mut churn_errors = Vec::new();
        for phase in &plan.phases {
            phases.push(
                run_phase(
                    scenario,
                    phase,
                    &mut procs,
                    &mut churn,
                    ctx,
                    &mut churn_errors,
                )
                .await?,
            );
        }
        Ok::<_, RunnerError>((phases, churn_errors))
    }
    .await;
    // Stopped whatever happened, in reverse order.
    let mut stop_errors = Vec::new();
    for name in procs.order.iter().rev() {
        if let Some(p) = procs.by_name.get_mut(name) {
            if let Err(e) = p.stop().await {
                stop_errors.push(e);
            }
        }
    }
    let (phases, churn_errors) = result?;
    if let Some(e) = stop_errors.into_iter().next() {
        return Err(e.into());
    }
    let assertions = judge(plan, &phases, &churn);
    Ok(Outcome {
        scenario: plan.name.clone(),
        phases,
        assertions,
        churn_errors,
    })
}

async fn start_all(
    scenario: &Scenario,
    procs: &mut Processes,
    ctx: &RunContext,
) -> Result<(), RunnerError> {
    for spec in &scenario.plan.processes {
        let Some(p) = procs.by_name.get_mut(&spec.name) else {
            continue;
        };
        p.start(ctx).await?;
        if let Some(url) = spec.ready.clone().or_else(|| p.default_ready()) {
            readiness::wait_ready(&url, spec.ready_timeout.get())
                .await
                .map_err(|e| RunnerError::Ready(spec.name.clone(), e))?;
        }
        if spec.priority == Priority::Background {
            let pid = p
                .pid()
                .ok_or_else(|| DriverError::failed(&spec.name, "no pid to deprioritise"))?;
            to_background(pid).map_err(|e| DriverError::failed(&spec.name, e))?;
        }
        if let Some(place) = &ctx.placement {
            let pid = p
                .pid()
                .ok_or_else(|| DriverError::failed(&spec.name, "no pid to place"))?;
            let cpus = if spec.measure {
                &place.target
            } else {
                &place.load
            };
            pin(pid, cpus).map_err(|e| DriverError::failed(&spec.name, e))?;
        }
    }
    Ok(())
}

/// Every thread of `pid` to `cpus` (threads it starts later inherit it). A process started
/// by this one inherits this one's CPUs, which the CLI sets to the load CPUs first: that covers
/// the upstreams a churn driver restarts.
pub fn pin(pid: u32, cpus: &str) -> Result<(), String> {
    util_linux(
        "taskset",
        &["--all-tasks", "--cpu-list", "--pid", cpus, &pid.to_string()],
        "placing processes on CPUs",
        &format!("taskset --cpu-list {cpus}"),
    )
}

/// Every thread of `pid` to `SCHED_IDLE`.
fn to_background(pid: u32) -> Result<(), String> {
    util_linux(
        "chrt",
        &["--idle", "--all-tasks", "--pid", "0", &pid.to_string()],
        "`priority: background`",
        "chrt --idle",
    )
}

/// Runs a util-linux tool; `feature` names what needs it, `what` prefixes its complaint.
fn util_linux(tool: &str, args: &[&str], feature: &str, what: &str) -> Result<(), String> {
    let out = std::process::Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| format!("{feature} needs {tool} (util-linux): {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn applies(spec: &ChurnSpec, phase: &PhasePlan) -> bool {
    if spec.phases.is_empty() {
        !phase.warmup
    } else {
        spec.phases.contains(&phase.name)
    }
}

async fn run_phase(
    scenario: &Scenario,
    phase: &PhasePlan,
    procs: &mut Processes,
    churn: &mut [(&ChurnSpec, Box<dyn Churn>)],
    ctx: &RunContext,
    churn_errors: &mut Vec<String>,
) -> Result<PhaseResult, RunnerError> {
    let watch: Vec<Watched> = scenario
        .plan
        .processes
        .iter()
        .filter(|s| s.measure)
        .filter_map(|s| {
            let pid = procs.by_name.get(&s.name)?.pid()?;
            Some(Watched {
                pid,
                name: Some(s.name.clone()),
            })
        })
        .collect();
    let label = format!("{}/{}", scenario.plan.name, phase.name);
    let cfg = phase
        .run_config(watch, label.clone())
        .map_err(|e| RunnerError::Phase(phase.name.clone(), e.to_string()))?;
    let started = Instant::now();
    let mut load = tokio::task::spawn_blocking(move || generator::run(&cfg));
    let mut next: Vec<Option<Instant>> = churn
        .iter()
        .map(|(spec, _)| {
            applies(spec, phase).then(|| started + spec.first_after.unwrap_or(spec.every.get()))
        })
        .collect();
    let mut events: Vec<ChurnEvent> = Vec::new();
    let report = loop {
        let wake = next.iter().flatten().min().copied();
        tokio::select! {
            done = &mut load => {
                break done
                    .map_err(|e| RunnerError::Phase(phase.name.clone(), e.to_string()))?
                    .map_err(|e| RunnerError::Phase(phase.name.clone(), e.to_string()))?;
            }
            _ = async { tokio::time::sleep_until(wake.unwrap_or(started)).await }, if wake.is_some() => {
                let now = Instant::now();
                for (i, (spec, driver)) in churn.iter_mut().enumerate() {
                    let Some(at) = next[i] else { continue };
                    if at > now {
                        continue;
                    }
                    next[i] = Some(at + spec.every.get());
                    let mut cctx = ChurnContext { run: ctx, processes: procs, phase: &phase.name };
                    match driver.tick(&mut cctx).await {
                        Ok(ev) => events.push(ev),
                        Err(e) => churn_errors.push(format!("{} in {}: {e}", spec.action.name(), phase.name)),
                    }
                }
            }
        }
    };
    let mut report = report;
    report.label = Some(label);
    let std_start = started.into_std();
    Ok(PhaseResult {
        name: phase.name.clone(),
        warmup: phase.warmup,
        report,
        churn: events
            .iter()
            .map(|e| {
                format!(
                    "{:.3}s {}: {}",
                    e.at.saturating_duration_since(std_start).as_secs_f64(),
                    e.action.name(),
                    e.detail
                )
            })
            .collect(),
    })
}

fn judge(
    plan: &super::plan::Plan,
    phases: &[PhaseResult],
    churn: &[(&ChurnSpec, Box<dyn Churn>)],
) -> Vec<AssertionResult> {
    let measured = || phases.iter().filter(|p| !p.warmup).map(|p| &p.report);
    let a = &plan.assertions;
    let mut out = Vec::new();
    let mut push = |name: &str, v: Verdict| {
        let (verdict, detail) = match v {
            Verdict::Pass => ("pass", String::new()),
            Verdict::Fail(d) => ("fail", d),
            Verdict::NotEvaluated(d) => ("not_evaluated", d),
        };
        out.push(AssertionResult {
            assertion: name.to_string(),
            verdict,
            detail,
        });
    };
    let at_most = |what: &str, n: u64, limit: u64| {
        if n <= limit {
            Verdict::Pass
        } else {
            Verdict::Fail(format!("{n} {what}, at most {limit} allowed"))
        }
    };
    if let Some(limit) = a.max_5xx {
        let n = measured().map(|r| r.status.s5xx).sum();
        push("max_5xx", at_most("5xx responses", n, limit));
    }
    if let Some(limit) = a.max_errors {
        let n = measured().map(|r| r.errors.total).sum();
        push("max_errors", at_most("failed requests", n, limit));
    }
    let mut judged: BTreeMap<&'static str, Verdict> = BTreeMap::new();
    for (_, driver) in churn {
        for (name, v) in driver.judge(a) {
            // A failure anywhere wins over a pass elsewhere.
            let keep = matches!(judged.get(name), Some(Verdict::Fail(_)));
            if !keep {
                judged.insert(name, v);
            }
        }
    }
    let wanted = [
        ("no_success_after_revoke", a.no_success_after_revoke),
        ("decisions_follow_policy", a.decisions_follow_policy),
        ("recovery_within", a.recovery_within.is_some()),
        ("no_false_401", a.no_false_401),
    ];
    for (name, on) in wanted {
        if on {
            let v = judged.remove(name).unwrap_or_else(|| {
                Verdict::NotEvaluated("no registered churn driver judges it".into())
            });
            push(name, v);
        }
    }
    out
}
