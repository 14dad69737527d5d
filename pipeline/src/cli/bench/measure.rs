//! What a benchmark run measured, and how: CPU time and peak RSS of this process from `/proc/self`, exact
//! latency quantiles from every alert's own latency.

use std::fmt;

use serde::Serialize;

/// Linux's `USER_HZ`: the unit of CPU times in `/proc/<pid>/stat`, 100 on every architecture Rust targets
/// (the kernel ABI fixes it, whatever the kernel's internal HZ).
const USER_HZ: f64 = 100.0;

/// CPU time used so far (user + system, all threads) and the peak resident set.
pub(super) struct Usage {
    pub(super) cpu_seconds: f64,
    pub(super) peak_rss_bytes: u64,
}

impl Usage {
    /// Zeros where `/proc` is not there (not Linux): the report then says 0, not something invented.
    pub(super) fn now() -> Usage {
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        // Fields after the command name (which may hold spaces), in parentheses: utime is the 14th field
        // of the line, stime the 15th.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let cpu_seconds = (ticks(11) + ticks(12)) as f64 / USER_HZ;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let peak_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0);
        Usage {
            cpu_seconds,
            peak_rss_bytes: peak_kib * 1024,
        }
    }
}

/// End-to-end latency quantiles (seconds) over every alert of the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latencies {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Latencies {
    /// Nearest-rank quantiles of the samples.
    pub fn from_samples(mut samples: Vec<f64>) -> Latencies {
        if samples.is_empty() {
            return Latencies::default();
        }
        samples.sort_by(f64::total_cmp);
        let rank = |q: f64| {
            samples[((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1]
        };
        Latencies {
            count: samples.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        }
    }
}

/// The figures of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Records taken from the source (decoded or dead-lettered).
    pub events: u64,
    pub bytes: u64,
    pub hunts: usize,
    pub alerts: u64,
    pub dead_letters: u64,
    /// Wall time from starting the pipeline to its end (everything acknowledged).
    pub seconds: f64,
    pub latency: Latencies,
    /// CPU time of the process during the run (all threads).
    pub cpu_seconds: f64,
    /// Peak resident set of the process (VmHWM).
    pub peak_rss_bytes: u64,
}

impl Report {
    pub fn events_per_second(&self) -> f64 {
        self.events as f64 / self.seconds.max(f64::MIN_POSITIVE)
    }

    pub fn megabytes_per_second(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.seconds.max(f64::MIN_POSITIVE)
    }

    pub fn cpu_seconds_per_million(&self) -> f64 {
        self.cpu_seconds / (self.events.max(1) as f64 / 1e6)
    }

    /// One JSON object with the derived figures too (for scripts).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).expect("a report serialises");
        v["events_per_second"] = self.events_per_second().into();
        v["megabytes_per_second"] = self.megabytes_per_second().into();
        v["cpu_seconds_per_million_events"] = self.cpu_seconds_per_million().into();
        v
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |s: f64| s * 1e3;
        writeln!(
            f,
            "events           {} ({:.1} MB) through {} hunt(s) in {:.3} s",
            self.events,
            self.bytes as f64 / 1e6,
            self.hunts,
            self.seconds
        )?;
        writeln!(
            f,
            "throughput       {:.0} events/s, {:.1} MB/s",
            self.events_per_second(),
            self.megabytes_per_second()
        )?;
        writeln!(
            f,
            "alerts           {} (dead letters {})",
            self.alerts, self.dead_letters
        )?;
        writeln!(
            f,
            "latency          p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (received → delivered, {} alerts)",
            ms(self.latency.p50),
            ms(self.latency.p99),
            ms(self.latency.max),
            self.latency.count
        )?;
        writeln!(
            f,
            "peak RSS         {:.1} MiB",
            self.peak_rss_bytes as f64 / (1024.0 * 1024.0)
        )?;
        write!(
            f,
            "CPU              {:.2} s ({:.2} s per million events)",
            self.cpu_seconds,
            self.cpu_seconds_per_million()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_quantiles() {
        let l = Latencies::from_samples((1..=100).rev().map(f64::from).collect());
        assert_eq!((l.count, l.p50, l.p99, l.max), (100, 50.0, 99.0, 100.0));
        assert_eq!(Latencies::from_samples(vec![]).count, 0);
    }

    #[test]
    fn this_process_has_cpu_time_and_a_resident_set() {
        let u = Usage::now();
        assert!(u.peak_rss_bytes > 1 << 20);
        assert!(u.cpu_seconds >= 0.0);
    }
}
