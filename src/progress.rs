//! Progress of long work. On a terminal it is a bar; in a log (stderr not
//! a terminal, as under `nohup`), where a bar draws nothing, it is a line
//! at most every [`LOG_EVERY`] and one at the end, so a background run's
//! log says how far it is.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How often a log line is written when there is no terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// When the last log line was written, and when and where the first
/// update found the bar (a resumed run's rate counts only this run's work).
#[derive(Clone, Copy)]
struct LogState {
    last: Instant,
    first: Instant,
    start: u64,
}

/// A bar of `unit`s (steps, items, blocks) under a label.
pub struct Progress {
    bar: ProgressBar,
    label: String,
    unit: &'static str,
    started: Instant,
    /// Log mode only.
    log: Mutex<Option<LogState>>,
}

impl Progress {
    /// A bar labelled `label`, counting `unit`s; its length is set by
    /// [`Progress::set_total`] when it is known.
    pub fn new(label: impl Into<String>, unit: &'static str) -> Self {
        let label = label.into();
        let bar = ProgressBar::new(0);
        let template = format!(
            "{{prefix}} {{bar:30}} {{pos}}/{{len}} {unit}, {{msg}} ({{elapsed}}, eta {{eta}})"
        );
        bar.set_style(
            ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix(label.clone());
        Progress {
            bar,
            label,
            unit,
            started: Instant::now(),
            log: Mutex::new(None),
        }
    }

    pub fn set_total(&self, total: u64) {
        self.bar.set_length(total);
    }

    pub fn set_position(&self, done: u64) {
        self.bar.set_position(done);
        self.log_line(false);
    }

    pub fn inc(&self, n: u64) {
        self.bar.inc(n);
        self.log_line(false);
    }

    pub fn set_message(&self, message: impl Into<String>) {
        self.bar.set_message(message.into());
    }

    /// A line above the bar (or in the log).
    pub fn println(&self, line: impl AsRef<str>) {
        if self.bar.is_hidden() {
            eprintln!("{}", line.as_ref());
        } else {
            self.bar.println(line.as_ref());
        }
    }

    /// Clears the bar; in a log, writes the last line.
    pub fn finish(&self) {
        self.log_line(true);
        self.bar.finish_and_clear();
    }

    fn log_line(&self, last: bool) {
        if self.bar.is_hidden() {
            if let Some(line) = self.line_at(Instant::now(), last) {
                eprintln!("{line}");
            }
        }
    }

    /// The log line due at `now`, if one is.
    fn line_at(&self, now: Instant, last: bool) -> Option<String> {
        let mut log = self.log.lock().ok()?;
        let (done, total) = (self.bar.position(), self.bar.length().unwrap_or(0));
        let state = match *log {
            Some(state) if last || now.duration_since(state.last) >= LOG_EVERY => state,
            Some(_) => return None,
            // The first update starts the clock: short work writes only
            // its last line, and work that found nothing to do none.
            None if last && total == 0 => return None,
            None if last => LogState {
                last: now,
                first: self.started,
                start: 0,
            },
            None => {
                *log = Some(LogState {
                    last: now,
                    first: now,
                    start: done,
                });
                return None;
            }
        };
        *log = Some(LogState { last: now, ..state });
        let elapsed = now.duration_since(self.started).as_secs_f64();
        let rate_s = now.duration_since(state.first).as_secs_f64();
        let left = if done > state.start && total > done {
            format!(
                ", about {:.0} s left",
                rate_s * (total - done) as f64 / (done - state.start) as f64
            )
        } else {
            String::new()
        };
        let message = self.bar.message();
        let message = if message.is_empty() {
            String::new()
        } else {
            format!(", {message}")
        };
        Some(format!(
            "{}: {done}/{total} {}{message} ({elapsed:.0} s{left})",
            self.label, self.unit
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_gets_a_line_a_period_and_one_at_the_end_with_this_runs_rate() {
        let p = Progress::new("train", "steps");
        p.set_total(100);
        let t0 = p.started;
        // A resumed run: the first update finds the bar at 40.
        p.bar.set_position(40);
        assert_eq!(p.line_at(t0, false), None);
        p.bar.set_position(50);
        p.set_message("loss 0.5");
        assert_eq!(p.line_at(t0 + Duration::from_secs(30), false), None);
        // 20 steps in 60 s since the first update: 40 left take 120 s.
        p.bar.set_position(60);
        assert_eq!(
            p.line_at(t0 + LOG_EVERY, false).as_deref(),
            Some("train: 60/100 steps, loss 0.5 (60 s, about 120 s left)")
        );
        p.bar.set_position(61);
        assert_eq!(
            p.line_at(t0 + LOG_EVERY + Duration::from_secs(1), false),
            None
        );
        p.bar.set_position(100);
        assert_eq!(
            p.line_at(t0 + Duration::from_secs(200), true).as_deref(),
            Some("train: 100/100 steps, loss 0.5 (200 s)")
        );
    }

    #[test]
    fn short_work_writes_only_its_last_line_and_no_work_none() {
        let idle = Progress::new("cloud features", "blocks");
        assert_eq!(idle.line_at(idle.started, true), None);

        let p = Progress::new("eval", "queries");
        p.set_total(3);
        p.bar.set_position(3);
        assert_eq!(
            p.line_at(p.started, true).as_deref(),
            Some("eval: 3/3 queries (0 s)")
        );
    }
}
