//! CPU time and memory of other processes (the gateway, an upstream) from `/proc`: utime + stime
//! from `/proc/PID/stat`, VmRSS and VmHWM from `/proc/PID/status`; and how busy the whole
//! machine was, from `/proc/stat`. Linux only.

use serde::Serialize;
use std::time::Duration;

/// A process's counters at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// User + system CPU time so far.
    pub cpu: Duration,
    /// Resident set size, KiB.
    pub rss_kib: u64,
    /// Peak resident set size so far, KiB.
    pub hwm_kib: u64,
}

/// Why a process could not be sampled.
#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("cannot read /proc/{pid}/{file} (has the process exited?): {error}")]
    Read {
        pid: u32,
        file: &'static str,
        error: std::io::Error,
    },
    #[error("unexpected /proc/{pid}/{file} format: {what}")]
    Format {
        pid: u32,
        file: &'static str,
        what: &'static str,
    },
}

/// CPU ticks (utime, stime) from the text of `/proc/PID/stat`.
///
/// The command name (field 2) is in parentheses and may itself hold spaces and `)`, so fields
/// are counted from the last `)`.
pub fn parse_stat(text: &str) -> Result<(u64, u64), &'static str> {
    let close = text.rfind(')').ok_or("no `)` after the command name")?;
    // After the name: state is field 3, utime field 14, stime field 15.
    let mut fields = text[close + 1..].split_ascii_whitespace().skip(11);
    let mut next = || -> Result<u64, &'static str> {
        fields
            .next()
            .ok_or("too few fields")?
            .parse()
            .map_err(|_| "utime/stime are not numbers")
    };
    Ok((next()?, next()?))
}

/// VmRSS and VmHWM (KiB) from the text of `/proc/PID/status`; 0 where absent (a kernel thread
/// or a zombie has no memory lines).
pub fn parse_status(text: &str) -> Result<(u64, u64), &'static str> {
    let mut rss = 0;
    let mut hwm = 0;
    for line in text.lines() {
        let slot = if let Some(v) = line.strip_prefix("VmRSS:") {
            (&mut rss, v)
        } else if let Some(v) = line.strip_prefix("VmHWM:") {
            (&mut hwm, v)
        } else {
            continue;
        };
        let number = slot.1.trim().trim_end_matches("kB").trim();
        *slot.0 = number.parse().map_err(|_| "VmRSS/VmHWM are not numbers")?;
    }
    Ok((rss, hwm))
}

/// Clock ticks per second, the unit of `/proc/PID/stat` CPU times (`sysconf(_SC_CLK_TCK)`);
/// 100, Linux's value on every common architecture, if it cannot be read.
pub fn clock_ticks_per_second() -> u64 {
    match nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK) {
        Ok(Some(t)) if t > 0 => t as u64,
        _ => 100,
    }
}

/// Reads the counters of process `pid` now.
pub fn sample(pid: u32) -> Result<Sample, ProcError> {
    let read =
        |file: &'static str| {
            std::fs::read_to_string(format!("/proc/{pid}/{file}"))
                .map_err(|error| ProcError::Read { pid, file, error })
        };
    let (utime, stime) = parse_stat(&read("stat")?).map_err(|what| ProcError::Format {
        pid,
        file: "stat",
        what,
    })?;
    let (rss_kib, hwm_kib) = parse_status(&read("status")?).map_err(|what| ProcError::Format {
        pid,
        file: "status",
        what,
    })?;
    let ticks = clock_ticks_per_second();
    let total = utime + stime;
    let cpu = Duration::from_secs(total / ticks)
        + Duration::from_nanos((total % ticks) * 1_000_000_000 / ticks);
    Ok(Sample {
        cpu,
        rss_kib,
        hwm_kib,
    })
}

/// What one process used during the measured window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Usage {
    pub pid: u32,
    /// A name for the report (`warden`, `upstream`), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// CPU time used in the window, µs (resolution: one clock tick, usually 10 ms).
    pub cpu_us: u64,
    /// `cpu_us` divided by the requests measured.
    pub cpu_us_per_request: f64,
    /// RSS at the end of the window, KiB.
    pub rss_kib: u64,
    /// Peak RSS of the process's life so far, KiB.
    pub hwm_kib: u64,
}

impl Usage {
    /// Usage between two samples of one process, shared out over `requests`.
    pub fn between(pid: u32, start: &Sample, end: &Sample, requests: u64) -> Self {
        let cpu_us = end.cpu.saturating_sub(start.cpu).as_micros() as u64;
        Self {
            pid,
            name: None,
            cpu_us,
            cpu_us_per_request: per_request(cpu_us, requests),
            rss_kib: end.rss_kib,
            hwm_kib: end.hwm_kib,
        }
    }

    /// The sum over several processes (gateway + upstream); the pid is 0.
    pub fn total(all: &[Usage], requests: u64) -> Self {
        let cpu_us = all.iter().map(|u| u.cpu_us).sum();
        Self {
            pid: 0,
            name: Some("total".into()),
            cpu_us,
            cpu_us_per_request: per_request(cpu_us, requests),
            rss_kib: all.iter().map(|u| u.rss_kib).sum(),
            hwm_kib: all.iter().map(|u| u.hwm_kib).sum(),
        }
    }
}

/// The machine's CPU time counters at one moment, in clock ticks summed over all CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineSample {
    /// Time spent running anything: user, nice, system, irq, softirq.
    pub busy: u64,
    /// Time a virtual CPU was ready but the hypervisor ran something else.
    pub steal: u64,
    /// Everything: busy, idle, iowait, steal.
    pub total: u64,
    /// The CPUs those counters cover (`cpuN` lines): the whole machine's, not the ones this
    /// process may run on, which `taskset` narrows.
    pub cpus: usize,
}

/// The aggregate `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq steal,
/// then guest times, which are already counted in user and nice.
pub fn parse_proc_stat(text: &str) -> Result<MachineSample, &'static str> {
    let line = text
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or("no aggregate `cpu` line")?;
    let mut f = [0u64; 8];
    let mut fields = line.split_ascii_whitespace().skip(1);
    for (i, slot) in f.iter_mut().enumerate() {
        // Kernels before 2.6.11 have no steal column; before 2.6.0, no iowait, irq, softirq.
        match fields.next() {
            Some(v) => *slot = v.parse().map_err(|_| "CPU times are not numbers")?,
            None if i >= 4 => break,
            None => return Err("too few CPU time fields"),
        }
    }
    let [user, nice, system, idle, iowait, irq, softirq, steal] = f;
    let busy = user + nice + system + irq + softirq;
    let cpus = text
        .lines()
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    Ok(MachineSample {
        busy,
        steal,
        total: busy + idle + iowait + steal,
        cpus,
    })
}

/// Reads the machine's CPU counters now; `None` where `/proc/stat` is missing or unreadable,
/// since the machine's load is context for a report, not part of it.
pub fn machine_sample() -> Option<MachineSample> {
    parse_proc_stat(&std::fs::read_to_string("/proc/stat").ok()?).ok()
}

/// How busy the whole machine was during the measured window: on a machine shared by the
/// generator, the gateway and the upstream, a tail latency measured above about 80% busy is
/// mostly queueing for a CPU, and says little about the gateway.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// Logical CPUs.
    pub cpus: usize,
    /// Share of all CPU time that was busy, 0 to 1.
    pub busy: f64,
    /// Share of all CPU time taken by the hypervisor from this virtual machine, 0 to 1.
    pub steal: f64,
    /// This generator's own CPU time, µs per measured request.
    pub generator_cpu_us_per_request: f64,
}

impl Machine {
    pub fn between(start: &MachineSample, end: &MachineSample, generator: &Usage) -> Self {
        let total = end.total.saturating_sub(start.total);
        let share = |a: u64, b: u64| {
            if total == 0 {
                0.0
            } else {
                b.saturating_sub(a) as f64 / total as f64
            }
        };
        Self {
            cpus: end.cpus,
            busy: share(start.busy, end.busy),
            steal: share(start.steal, end.steal),
            generator_cpu_us_per_request: generator.cpu_us_per_request,
        }
    }

    /// Above this, latency percentiles are dominated by waiting for a CPU.
    pub const SATURATED: f64 = 0.8;
}

fn per_request(cpu_us: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        cpu_us as f64 / requests as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = "1234 (we ird) name)) S 1 1234 1234 0 -1 4194560 5 0 0 0 \
                    731 42 0 0 20 0 1 0 100 1000 200";
        assert_eq!(parse_stat(line), Ok((731, 42)));
        assert!(parse_stat("1234 (x) S 1 2").is_err());
        assert!(parse_stat("garbage").is_err());
    }

    #[test]
    fn status_memory_lines_are_read_in_kib() {
        let text = "Name:\tcat\nVmPeak:\t  9000 kB\nVmHWM:\t    2048 kB\nVmRSS:\t    1536 kB\n";
        assert_eq!(parse_status(text), Ok((1536, 2048)));
        assert_eq!(parse_status("Name:\tkthreadd\n"), Ok((0, 0)));
        assert!(parse_status("VmRSS:\tlots kB\n").is_err());
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_iowait_and_guest() {
        let text = "cpu  100 10 50 800 20 5 15 7 30 0\ncpu0 50 5 25 400 10 2 7 3 15 0\nintr 1\n";
        let m = parse_proc_stat(text).unwrap();
        assert_eq!(m.busy, 100 + 10 + 50 + 5 + 15);
        assert_eq!(m.steal, 7);
        assert_eq!(m.total, 180 + 800 + 20 + 7);
        assert_eq!(m.cpus, 1, "cpu0 is the only per-CPU line");
        // An old kernel without steal.
        assert_eq!(parse_proc_stat("cpu 1 2 3 4 5 6 7\n").unwrap().steal, 0);
        assert!(parse_proc_stat("cpu 1 2 3\n").is_err());
        assert!(parse_proc_stat("cpu0 1 2 3 4 5 6 7 8\n").is_err());
        let later = MachineSample {
            busy: m.busy + 150,
            steal: m.steal + 10,
            total: m.total + 200,
            cpus: 2,
        };
        let g = Usage::between(
            1,
            &Sample {
                cpu: Duration::ZERO,
                rss_kib: 0,
                hwm_kib: 0,
            },
            &Sample {
                cpu: Duration::from_millis(5),
                rss_kib: 0,
                hwm_kib: 0,
            },
            1000,
        );
        let share = Machine::between(&m, &later, &g);
        assert_eq!(share.cpus, 2);
        assert_eq!(share.busy, 0.75);
        assert_eq!(share.steal, 0.05);
        assert_eq!(share.generator_cpu_us_per_request, 5.0);
        assert!(machine_sample().unwrap().total > 0);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time_that_does_not_go_back() {
        let me = std::process::id();
        let first = sample(me).unwrap();
        // Burn a little CPU so the counters have something to show.
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        let second = sample(me).unwrap();
        assert!(first.rss_kib > 0);
        assert!(second.hwm_kib >= second.rss_kib);
        assert!(second.cpu >= first.cpu);
        let usage = Usage::between(me, &first, &second, 10);
        assert_eq!(usage.cpu_us, (second.cpu - first.cpu).as_micros() as u64);
        assert_eq!(usage.rss_kib, second.rss_kib);
    }

    #[test]
    fn a_missing_process_is_a_read_error() {
        // Pids are at most 2^22 on Linux.
        assert!(matches!(sample(u32::MAX), Err(ProcError::Read { .. })));
    }

    #[test]
    fn totals_add_up_and_share_over_requests() {
        let a = Usage::between(
            1,
            &Sample {
                cpu: Duration::ZERO,
                rss_kib: 0,
                hwm_kib: 0,
            },
            &Sample {
                cpu: Duration::from_millis(30),
                rss_kib: 100,
                hwm_kib: 150,
            },
            1000,
        );
        let b = Usage {
            pid: 2,
            cpu_us: 10_000,
            rss_kib: 50,
            hwm_kib: 60,
            ..a.clone()
        };
        assert_eq!(a.cpu_us_per_request, 30.0);
        let t = Usage::total(&[a, b], 1000);
        assert_eq!((t.cpu_us, t.rss_kib, t.hwm_kib), (40_000, 150, 210));
        assert_eq!(t.cpu_us_per_request, 40.0);
    }
}
