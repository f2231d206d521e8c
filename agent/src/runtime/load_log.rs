//! llama.cpp says why a load failed only in its log; the Rust binding
//! returns a bare failure. While a model or adapter loads, the log events
//! of this thread are therefore also collected, so that the error can name
//! the problem (a wrong tensor shape, an adapter for another model, ...).

use std::sync::Mutex;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Dispatch, Event, Level, Metadata, Subscriber};

/// Runs `load` while collecting the error-level log lines it produces on
/// this thread. Every event still reaches the subscriber that was in force.
pub(crate) fn with_error_lines<T>(load: impl FnOnce() -> T) -> (T, Vec<String>) {
    let capture = std::sync::Arc::new(Capture {
        lines: Mutex::new(Vec::new()),
        forward: tracing::dispatcher::get_default(Dispatch::clone),
    });
    let out = tracing::subscriber::with_default(CaptureRef(capture.clone()), load);
    let lines = capture
        .lines
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    (out, lines)
}

/// The collected lines as one detail, or `fallback` when llama.cpp said
/// nothing at error level.
pub(crate) fn detail(lines: &[String], fallback: impl std::fmt::Display) -> String {
    if lines.is_empty() {
        fallback.to_string()
    } else {
        lines.join("; ")
    }
}

struct Capture {
    lines: Mutex<Vec<String>>,
    forward: Dispatch,
}

struct CaptureRef(std::sync::Arc<Capture>);

struct Message(Option<String>);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = Some(value.trim().to_owned());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" && self.0.is_none() {
            self.0 = Some(format!("{value:?}").trim().to_owned());
        }
    }
}

impl Subscriber for CaptureRef {
    // Whatever the subscriber in force wants, plus errors: llama-cpp-2
    // buffers and joins log pieces by what is enabled, so enabling more
    // than that would change what it sends on.
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() == Level::ERROR || self.0.forward.enabled(metadata)
    }

    // Spans opened during a load are not tracked; only events matter here.
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::ERROR {
            let mut message = Message(None);
            event.record(&mut message);
            if let (Some(text), Ok(mut lines)) = (message.0, self.0.lines.lock()) {
                lines.push(text);
            }
        }
        if self.0.forward.enabled(event.metadata()) {
            self.0.forward.event(event);
        }
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_lines_are_collected_and_others_ignored() {
        let ((), lines) = with_error_lines(|| {
            tracing::info!("loading");
            tracing::error!("check_tensor_dims: tensor 'x' has wrong shape");
        });
        assert_eq!(lines, ["check_tensor_dims: tensor 'x' has wrong shape"]);
        assert_eq!(detail(&lines, "null result"), lines[0]);
        assert_eq!(detail(&[], "null result"), "null result");
    }
}
