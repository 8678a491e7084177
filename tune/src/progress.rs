//! The live progress view: counts by status, best so far, a bounded table of trials.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Most trial rows shown in the table.
pub const MAX_ROWS: usize = 20;

/// One row of the trial table.
#[derive(Clone, Debug, PartialEq)]
pub struct TrialLine {
    /// Trial id.
    pub trial_id: String,
    /// Status.
    pub status: &'static str,
    /// Iterations reported.
    pub iteration: u64,
    /// Last value of the experiment's metric.
    pub metric: Option<f64>,
    /// Short `key=value` summary of the config.
    pub config: String,
}

/// A snapshot of the experiment for display.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// Experiment name.
    pub name: String,
    /// Seconds since the run started.
    pub elapsed_s: f64,
    /// Trials by status.
    pub counts: BTreeMap<&'static str, usize>,
    /// The objective's name.
    pub metric: Option<String>,
    /// Best trial so far: id, metric value, config summary.
    pub best: Option<(String, f64, String)>,
    /// Up to `MAX_ROWS` rows: running trials first, then the most recent.
    pub rows: Vec<TrialLine>,
    /// Trials not shown.
    pub hidden: usize,
    /// Results recorded in this run.
    pub results: u64,
}

/// Formats a number compactly for tables: five decimals, or scientific notation when tiny or huge.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 || (1e-2..1e6).contains(&x.abs()) {
        let s = format!("{x:.5}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    } else {
        format!("{x:.3e}")
    }
}

impl Progress {
    /// One status line: counts and best.
    pub fn status_line(&self) -> String {
        let counts: Vec<String> =
            self.counts.iter().filter(|(_, n)| **n > 0).map(|(s, n)| format!("{n} {s}")).collect();
        let mut line = format!(
            "[{}] {:.1}s, {} trials ({}), {} results",
            self.name,
            self.elapsed_s,
            self.counts.values().sum::<usize>(),
            if counts.is_empty() { "none yet".into() } else { counts.join(", ") },
            self.results
        );
        if let (Some(m), Some((id, v, cfg))) = (&self.metric, &self.best) {
            line.push_str(&format!(" | best {m}={} ({id}: {cfg})", fmt_num(*v)));
        }
        line
    }

    /// The status line and the trial table.
    pub fn render(&self, table: bool) -> String {
        let mut out = self.status_line();
        out.push('\n');
        if table && !self.rows.is_empty() {
            let metric = self.metric.as_deref().unwrap_or("metric");
            let w = self.rows.iter().map(|r| r.trial_id.len()).max().unwrap_or(8).max(8);
            out.push_str(&format!("  {:<w$}  {:<10}  {:>5}  {:>12}  config\n", "trial", "status", "iter", metric));
            for r in &self.rows {
                let m = r.metric.map(fmt_num).unwrap_or_default();
                out.push_str(&format!(
                    "  {:<w$}  {:<10}  {:>5}  {:>12}  {}\n",
                    r.trial_id, r.status, r.iteration, m, r.config
                ));
            }
            if self.hidden > 0 {
                out.push_str(&format!("  ... {} more trials\n", self.hidden));
            }
        }
        out
    }
}

/// Prints progress to stdout: redrawn in place on a terminal, plain lines otherwise.
pub struct Printer {
    tty: bool,
    verbose: u8,
    last: Option<Instant>,
    drawn_lines: usize,
}

impl Printer {
    /// A printer for this process's stdout at the given verbosity (0 prints nothing).
    pub fn new(verbose: u8) -> Self {
        Printer { tty: std::io::stdout().is_terminal(), verbose, last: None, drawn_lines: 0 }
    }

    /// Prints one result as a line (verbosity 3 only).
    pub fn result(&mut self, trial_id: &str, result: &serde_json::Map<String, serde_json::Value>) {
        if self.verbose < 3 {
            return;
        }
        let mut out = std::io::stdout().lock();
        if self.tty && self.drawn_lines > 0 {
            let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn_lines);
            self.drawn_lines = 0;
        }
        let _ = writeln!(out, "{trial_id} {}", serde_json::Value::Object(result.clone()));
    }

    /// Shows a snapshot if enough time has passed (always when `last`).
    pub fn show(&mut self, p: &Progress, last: bool) {
        if self.verbose == 0 {
            return;
        }
        let every = if self.tty { Duration::from_millis(250) } else { Duration::from_secs(10) };
        if !last && self.last.is_some_and(|t| t.elapsed() < every) {
            return;
        }
        self.last = Some(Instant::now());
        let text = if self.tty || last { p.render(self.verbose >= 2) } else { p.status_line() + "\n" };
        let mut out = std::io::stdout().lock();
        if self.tty && self.drawn_lines > 0 {
            let _ = write!(out, "\x1b[{}A\x1b[J", self.drawn_lines);
        }
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
        self.drawn_lines = if self.tty && !last { text.lines().count() } else { 0 };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_best_and_rows() {
        let mut p = Progress {
            name: "q".into(),
            elapsed_s: 1.25,
            metric: Some("loss".into()),
            results: 7,
            ..Default::default()
        };
        p.counts.insert("RUNNING", 2);
        p.counts.insert("TERMINATED", 3);
        p.best = Some(("ab_00001".into(), 0.0123, "lr=0.1".into()));
        p.rows.push(TrialLine {
            trial_id: "ab_00001".into(),
            status: "RUNNING",
            iteration: 4,
            metric: Some(0.5),
            config: "lr=0.1".into(),
        });
        p.hidden = 2;
        let s = p.render(true);
        assert!(
            s.starts_with(
                "[q] 1.2s, 5 trials (2 RUNNING, 3 TERMINATED), 7 results | best loss=0.0123 (ab_00001: lr=0.1)\n"
            ),
            "{s}"
        );
        assert!(s.contains("ab_00001  RUNNING"), "{s}");
        assert!(s.contains("... 2 more trials"));
        assert_eq!(fmt_num(1234567.0), "1.235e6");
        assert_eq!(fmt_num(0.00123), "1.230e-3");
        assert_eq!(fmt_num(0.5), "0.5");
    }
}
