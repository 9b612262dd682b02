//! Gauges written straight into the Prometheus text at each scrape, outside the recorder: what
//! is read from the store (so a removed tenant's series disappear with it, and none are shown
//! while the store is down), the build, and this process's resources read from `/proc`.

use std::fmt::Write as _;

/// One gauge family: its samples, each with its labels.
pub struct Gauge {
    name: &'static str,
    help: &'static str,
    samples: Vec<(Vec<(&'static str, String)>, f64)>,
}

impl Gauge {
    pub fn new(name: &'static str, help: &'static str) -> Self {
        Self {
            name,
            help,
            samples: Vec::new(),
        }
    }

    pub fn sample(&mut self, labels: Vec<(&'static str, String)>, value: f64) -> &mut Self {
        self.samples.push((labels, value));
        self
    }

    /// Appends the family in the text format (nothing when it has no sample).
    pub fn write(&self, out: &mut String) {
        if self.samples.is_empty() {
            return;
        }
        let _ = writeln!(out, "# HELP {} {}", self.name, self.help);
        let _ = writeln!(out, "# TYPE {} gauge", self.name);
        for (labels, value) in &self.samples {
            out.push_str(self.name);
            if !labels.is_empty() {
                let pairs: Vec<String> = labels
                    .iter()
                    .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
                    .collect();
                let _ = write!(out, "{{{}}}", pairs.join(","));
            }
            let _ = writeln!(out, " {value}");
        }
    }
}

/// A label value in the text format: backslash, quote and newline escaped.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `optsync_build_info{version,commit} 1`.
pub fn build_info(out: &mut String) {
    Gauge::new(
        "optsync_build_info",
        "The version and git commit of this build (always 1).",
    )
    .sample(
        vec![
            ("version", env!("CARGO_PKG_VERSION").to_string()),
            ("commit", env!("OPTSYNC_GIT_COMMIT").to_string()),
        ],
        1.0,
    )
    .write(out);
}

/// Resident memory, open files and CPU time of this process (Linux; nothing elsewhere).
pub fn process(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    if let Some(kb) = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
    {
        Gauge::new(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        )
        .sample(vec![], kb * 1024.0)
        .write(out);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        Gauge::new("process_open_fds", "Number of open file descriptors.")
            .sample(vec![], fds.count() as f64)
            .write(out);
    }
    if let Some(secs) = cpu_seconds() {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.\n\
             # TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {secs}"
        );
    }
}

/// User and system time from `/proc/self/stat`, in clock ticks of 1/100 s (USER_HZ, 100 on
/// every Linux architecture this runs on).
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name (field 2) may hold spaces; the fields after its ')' are plain.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauges_are_written_in_the_text_format() {
        let mut out = String::new();
        Gauge::new("x_jobs", "Jobs.")
            .sample(vec![("app", "a\"b\\c".into())], 3.0)
            .write(&mut out);
        assert_eq!(
            out,
            "# HELP x_jobs Jobs.\n# TYPE x_jobs gauge\nx_jobs{app=\"a\\\"b\\\\c\"} 3\n"
        );
        let mut empty = String::new();
        Gauge::new("x_none", "None.").write(&mut empty);
        assert!(empty.is_empty());
    }

    #[test]
    fn this_process_is_measured() {
        let mut out = String::new();
        process(&mut out);
        for name in [
            "process_resident_memory_bytes ",
            "process_open_fds ",
            "process_cpu_seconds_total ",
        ] {
            assert!(out.contains(name), "{out}");
        }
    }
}
