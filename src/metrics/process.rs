//! Process metrics (`process_resident_memory_bytes`, `process_cpu_seconds_total`,
//! `process_open_fds`), read from `/proc/self` at scrape time. Linux only: elsewhere the
//! series are absent.

use prometheus_client::registry::Registry;

pub fn register(registry: &mut Registry) {
    #[cfg(target_os = "linux")]
    registry.register_collector(Box::new(linux::ProcessCollector));
    #[cfg(not(target_os = "linux"))]
    let _ = registry;
}

#[cfg(target_os = "linux")]
mod linux {
    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;

    #[derive(Debug)]
    pub struct ProcessCollector;

    impl Collector for ProcessCollector {
        fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
            // A value that cannot be read (a restricted /proc) is left out, not reported as 0.
            if let Some(seconds) = cpu_seconds() {
                let counter = ConstCounter::new(seconds);
                counter.encode(encoder.encode_descriptor(
                    "process_cpu_seconds",
                    "User and system CPU time spent, in seconds.",
                    None,
                    counter.metric_type(),
                )?)?;
            }
            if let Some(bytes) = resident_memory_bytes() {
                let gauge = ConstGauge::new(bytes);
                gauge.encode(encoder.encode_descriptor(
                    "process_resident_memory_bytes",
                    "Resident memory size, in bytes.",
                    None,
                    gauge.metric_type(),
                )?)?;
            }
            if let Some(fds) = open_fds() {
                let gauge = ConstGauge::new(fds);
                gauge.encode(encoder.encode_descriptor(
                    "process_open_fds",
                    "Open file descriptors.",
                    None,
                    gauge.metric_type(),
                )?)?;
            }
            Ok(())
        }
    }

    /// utime + stime (fields 14 and 15 of `/proc/self/stat`, in clock ticks).
    fn cpu_seconds() -> Option<f64> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // The command name (field 2) may hold spaces and parentheses: count from its end.
        let after_name = &stat[stat.rfind(')')? + 2..];
        let mut fields = after_name.split(' ').skip(11);
        let utime: u64 = fields.next()?.parse().ok()?;
        let stime: u64 = fields.next()?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
    }

    fn resident_memory_bytes() -> Option<i64> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let kib: i64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .trim()
            .strip_suffix("kB")?
            .trim()
            .parse()
            .ok()?;
        Some(kib * 1024)
    }

    fn open_fds() -> Option<i64> {
        Some(std::fs::read_dir("/proc/self/fd").ok()?.count() as i64)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn reads_this_process() {
            assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
            assert!(resident_memory_bytes().is_some_and(|b| b > 0));
            assert!(open_fds().is_some_and(|n| n >= 3));
        }
    }
}
