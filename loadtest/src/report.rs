//! The run report: a human summary, JSON with stable field names, and a Markdown table row for
//! BENCHMARKS.md.

use crate::generator::worker::Stats;
use crate::generator::{Length, Mode, RunConfig};
use crate::histogram::LatencySummary;
use crate::procstat::{Machine, Usage};
use crate::schedule::LATE_THRESHOLD;
use crate::status::StatusCounts;
use serde::Serialize;
use std::fmt::Write as _;
use std::time::Duration;

/// The JSON schema name; bumped when a field changes meaning or disappears.
pub const SCHEMA: &str = "warden-loadtest/report/v1";

/// What was asked for.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settings {
    pub url: String,
    /// `open_loop` or `closed_loop`.
    pub mode: &'static str,
    /// `1.1` or `2`.
    pub http: &'static str,
    /// Open loop: the intended rate.
    pub target_rps: Option<f64>,
    pub connections: usize,
    /// HTTP/2: TCP connections the streams share.
    pub h2_connections: Option<usize>,
    pub threads: usize,
    pub warmup_s: f64,
    pub duration_s: Option<f64>,
    pub requests: Option<u64>,
    pub timeout_s: f64,
    pub expect_status: String,
    /// Distinct rotated Authorization/Cookie values (0: none).
    pub tokens: usize,
}

impl Settings {
    /// The settings of `cfg`, run on `threads` threads.
    pub fn of(cfg: &RunConfig, threads: usize) -> Self {
        let (duration_s, requests) = match cfg.length {
            Length::Duration(d) => (Some(d.as_secs_f64()), None),
            Length::Requests(n) => (None, Some(n)),
        };
        Self {
            url: cfg.target.url.clone(),
            mode: match cfg.mode {
                Mode::Open { .. } => "open_loop",
                Mode::Closed => "closed_loop",
            },
            http: if cfg.target.http2 { "2" } else { "1.1" },
            target_rps: match cfg.mode {
                Mode::Open { rate } => Some(rate),
                Mode::Closed => None,
            },
            connections: cfg.connections,
            h2_connections: cfg.target.http2.then_some(cfg.h2_connections),
            threads,
            warmup_s: cfg.warmup.as_secs_f64(),
            duration_s,
            requests,
            timeout_s: cfg.timeout.as_secs_f64(),
            expect_status: cfg.expect.to_string(),
            tokens: cfg.target.token_count(),
        }
    }
}

/// Open loop: requests that left more than 1 ms after their intended time.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Late {
    pub count: u64,
    pub threshold_us: u64,
    pub max_us: u64,
}

/// Failed requests by kind, and their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Errors {
    pub connect: u64,
    pub timeout: u64,
    pub request: u64,
    pub unexpected_status: u64,
    pub total: u64,
}

/// The result of one run. Field names are stable (see [`SCHEMA`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub label: Option<String>,
    pub settings: Settings,
    /// From the end of warm-up to the last measured response.
    pub elapsed_s: f64,
    /// Measured requests: responses plus requests that got none.
    pub requests: u64,
    /// Measured requests that got a complete response (any status).
    pub responses: u64,
    /// Responses per second over `elapsed_s`.
    pub rps: f64,
    pub warmup_requests: u64,
    /// Latency of responses, µs; open loop: from each request's intended send time.
    pub latency_us: LatencySummary,
    pub late: Option<Late>,
    pub status: StatusCounts,
    pub errors: Errors,
    /// Each watched process (`--pid`), then their sum when there are several.
    pub processes: Vec<Usage>,
    pub processes_total: Option<Usage>,
    /// How busy the whole machine was in the window (absent where `/proc/stat` is not).
    pub machine: Option<Machine>,
}

impl Report {
    /// Builds the report of a finished run.
    pub fn new(
        settings: Settings,
        stats: &Stats,
        elapsed: Duration,
        processes: Vec<Usage>,
    ) -> Self {
        let requests = stats.tally.requests();
        let responses = stats.tally.responses();
        let secs = elapsed.as_secs_f64();
        let e = stats.tally.errors;
        let late = (settings.mode == "open_loop").then(|| Late {
            count: stats.late,
            threshold_us: LATE_THRESHOLD.as_micros() as u64,
            max_us: stats.max_late.as_micros() as u64,
        });
        let processes_total = (processes.len() > 1).then(|| Usage::total(&processes, requests));
        Self {
            schema: SCHEMA,
            label: None,
            settings,
            elapsed_s: secs,
            requests,
            responses,
            rps: if secs > 0.0 {
                responses as f64 / secs
            } else {
                0.0
            },
            warmup_requests: stats.warmup,
            latency_us: stats.latency.summary(),
            late,
            status: stats.tally.status,
            errors: Errors {
                connect: e.connect,
                timeout: e.timeout,
                request: e.request,
                unexpected_status: e.unexpected_status,
                total: e.total(),
            },
            processes,
            processes_total,
            machine: None,
        }
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        // Plain data with string keys: serializing cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The summary printed on stdout.
    pub fn human(&self) -> String {
        let s = &self.settings;
        let mut o = String::new();
        let pacing = match s.target_rps {
            Some(r) => format!("open loop at {r} rps"),
            None => "closed loop".to_string(),
        };
        let h2 = s
            .h2_connections
            .map(|c| format!(" over {c} TCP connection(s)"))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "{}{}: {pacing}, HTTP/{}, {} connection(s){h2}, {} thread(s)",
            self.label
                .as_deref()
                .map(|l| format!("[{l}] "))
                .unwrap_or_default(),
            s.url,
            s.http,
            s.connections,
            s.threads
        );
        let _ = writeln!(
            o,
            "  measured   {:.2} s after {:.2} s warm-up ({} warm-up requests not counted)",
            self.elapsed_s, s.warmup_s, self.warmup_requests
        );
        let _ = writeln!(
            o,
            "  requests   {}   responses {}   rps {:.1}",
            self.requests, self.responses, self.rps
        );
        let l = &self.latency_us;
        let _ = writeln!(
            o,
            "  latency    p50 {}  p90 {}  p99 {}  p99.9 {}  max {}  mean {:.0}  (µs)",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean
        );
        if let Some(late) = &self.late {
            let _ = writeln!(
                o,
                "  late       {} sent more than {} µs after their intended time (worst {} µs)",
                late.count, late.threshold_us, late.max_us
            );
        }
        let st = &self.status;
        let _ = writeln!(
            o,
            "  status     1xx {}  2xx {}  3xx {}  4xx {}  5xx {}",
            st.s1xx, st.s2xx, st.s3xx, st.s4xx, st.s5xx
        );
        let e = &self.errors;
        let _ = writeln!(
            o,
            "  errors     {} (connect {}, timeout {}, request {}, unexpected status {}; expected {})",
            e.total, e.connect, e.timeout, e.request, e.unexpected_status, s.expect_status
        );
        for u in self.processes.iter().chain(&self.processes_total) {
            let who = match (&u.name, u.pid) {
                (Some(n), 0) => n.clone(),
                (Some(n), pid) => format!("{n} (pid {pid})"),
                (None, pid) => format!("pid {pid}"),
            };
            let _ = writeln!(
                o,
                "  {who}: cpu {:.1} µs/request ({:.3} s)  rss {:.1} MiB  peak {:.1} MiB",
                u.cpu_us_per_request,
                u.cpu_us as f64 / 1e6,
                u.rss_kib as f64 / 1024.0,
                u.hwm_kib as f64 / 1024.0
            );
        }
        if let Some(m) = &self.machine {
            let _ = writeln!(
                o,
                "  machine    {} CPUs, {:.0}% busy, {:.1}% stolen by the hypervisor; this generator {:.1} µs/request",
                m.cpus,
                m.busy * 100.0,
                m.steal * 100.0,
                m.generator_cpu_us_per_request
            );
            if m.busy > Machine::SATURATED {
                let _ = writeln!(
                    o,
                    "  note       the machine was over {:.0}% busy: latency percentiles are mostly \
                     queueing for a CPU; run the generator elsewhere or at a lower rate",
                    Machine::SATURATED * 100.0
                );
            }
        }
        o
    }

    /// The Markdown table header that [`Report::markdown_row`] rows fit under.
    pub fn markdown_header() -> &'static str {
        "| run | mode | rps | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | errors | CPU µs/req | RSS MiB | machine busy |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    }

    /// One Markdown table row; CPU and RSS are the sum over the watched processes.
    pub fn markdown_row(&self) -> String {
        let s = &self.settings;
        let mode = match s.target_rps {
            Some(r) => format!("open {r} rps, {} conn", s.connections),
            None => format!("closed, {} conn", s.connections),
        };
        let mode = if s.http == "2" {
            format!("{mode}, h2")
        } else {
            mode
        };
        let usage = self.processes_total.as_ref().or(self.processes.first());
        let (cpu, rss) = match usage {
            Some(u) => (
                format!("{:.1}", u.cpu_us_per_request),
                format!("{:.1}", u.rss_kib as f64 / 1024.0),
            ),
            None => ("–".into(), "–".into()),
        };
        let busy = self
            .machine
            .as_ref()
            .map_or("–".into(), |m| format!("{:.0}%", m.busy * 100.0));
        let l = &self.latency_us;
        format!(
            "| {} | {mode} | {:.0} | {} | {} | {} | {} | {} | {} | {cpu} | {rss} | {busy} |\n",
            self.label.as_deref().unwrap_or(&s.url),
            self.rps,
            l.p50,
            l.p90,
            l.p99,
            l.p999,
            l.max,
            self.errors.total
        )
    }

    /// Appends this run to a Markdown file: the header first when the file is new or empty.
    pub fn append_markdown(&self, path: &std::path::Path) -> std::io::Result<()> {
        use std::io::Write;
        let fresh = std::fs::metadata(path).map_or(true, |m| m.len() == 0);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        if fresh {
            f.write_all(Self::markdown_header().as_bytes())?;
        }
        f.write_all(self.markdown_row().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{ExpectStatus, Outcome};

    fn sample() -> Report {
        let settings = Settings {
            url: "http://127.0.0.1:8080/".into(),
            mode: "open_loop",
            http: "1.1",
            target_rps: Some(1000.0),
            connections: 10,
            h2_connections: None,
            threads: 1,
            warmup_s: 1.0,
            duration_s: Some(2.0),
            requests: None,
            timeout_s: 10.0,
            expect_status: "2xx".into(),
            tokens: 0,
        };
        let mut stats = Stats::default();
        let expect = ExpectStatus::default();
        for i in 1..=1000u64 {
            stats.latency.record(Duration::from_micros(i));
            stats.tally.add(Outcome::Response(200), &expect);
        }
        stats.tally.add(Outcome::Timeout, &expect);
        stats.late = 3;
        let u = Usage {
            pid: 42,
            name: Some("warden".into()),
            cpu_us: 20_000,
            cpu_us_per_request: 20.0,
            rss_kib: 10_240,
            hwm_kib: 12_000,
        };
        Report::new(settings, &stats, Duration::from_secs(2), vec![u])
    }

    #[test]
    fn json_has_the_stable_field_names() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["requests"], 1001);
        assert_eq!(v["responses"], 1000);
        assert_eq!(v["rps"], 500.0);
        assert_eq!(v["latency_us"]["p99"], 990);
        assert_eq!(v["latency_us"]["p999"], 999);
        assert_eq!(v["status"]["2xx"], 1000);
        assert_eq!(v["errors"]["timeout"], 1);
        assert_eq!(v["errors"]["total"], 1);
        assert_eq!(v["late"]["count"], 3);
        assert_eq!(v["processes"][0]["cpu_us_per_request"], 20.0);
        assert!(v["processes_total"].is_null());
        assert!(v["machine"].is_null());
        assert_eq!(v["settings"]["mode"], "open_loop");
    }

    #[test]
    fn markdown_rows_fit_the_header() {
        let r = sample();
        let row = r.markdown_row();
        let header_cols = Report::markdown_header()
            .lines()
            .next()
            .unwrap()
            .matches('|')
            .count();
        assert_eq!(row.matches('|').count(), header_cols);
        assert!(row.starts_with("| http://127.0.0.1:8080/ | open 1000 rps, 10 conn | 500 | 500 |"));
        assert!(row.contains("| 20.0 | 10.0 | – |"), "{row}");
    }

    #[test]
    fn a_busy_machine_is_reported_and_flagged() {
        let mut r = sample();
        assert!(!r.human().contains("machine"));
        let calm = Machine {
            cpus: 2,
            busy: 0.5,
            steal: 0.01,
            generator_cpu_us_per_request: 12.5,
        };
        r.machine = Some(calm.clone());
        let text = r.human();
        assert!(text.contains("2 CPUs, 50% busy, 1.0% stolen"), "{text}");
        assert!(text.contains("this generator 12.5 µs/request"), "{text}");
        assert!(!text.contains("queueing"), "{text}");
        assert!(r.markdown_row().contains("| 50% |"));
        r.machine = Some(Machine { busy: 0.93, ..calm });
        assert!(r.human().contains("queueing for a CPU"));
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["machine"]["busy"], 0.93);
        assert_eq!(v["machine"]["cpus"], 2);
    }

    #[test]
    fn markdown_file_gets_one_header_then_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.md");
        let r = sample();
        r.append_markdown(&path).unwrap();
        r.append_markdown(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.matches("| run |").count(), 1);
        assert_eq!(text.lines().count(), 4);
    }

    #[test]
    fn the_human_summary_names_every_figure() {
        let h = sample().human();
        for needle in [
            "rps 500.0",
            "p99.9 999",
            "late       3",
            "2xx 1000",
            "timeout 1",
            "warden (pid 42)",
        ] {
            assert!(h.contains(needle), "{needle} missing in\n{h}");
        }
    }
}
