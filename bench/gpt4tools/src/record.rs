//! Per-item benchmark records, appended to a JSONL file as they are made,
//! so a stopped run keeps everything it finished and resumes after it.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::ItemScores;
use loragen_protocol::Mode;

/// One scored prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub mode: Mode,
    pub prediction: String,
    pub scores: ItemScores,
    pub prompt_tokens: usize,
    pub reused_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub decode_tokens: usize,
    /// Peak resident memory of the process during this mode so far, MiB.
    pub peak_rss_mib: f64,
    /// Making this item's registry adapter (compile or load), on the first
    /// item of each registry in compiled mode with a generator; absent in
    /// records made before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_ms: Option<f64>,
    /// The tool selector's pass over the prompt, when one ran (`--selector`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector_ms: Option<f64>,
    /// The selector's "no call" log-probability less the best listed
    /// tool's, when it ran: a require margin `m` makes the message call
    /// when this is below `-m`, so one run tells every margin's reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub none_margin: Option<f64>,
}

impl Record {
    /// Model time for the item: prefill plus decode, and the tool
    /// selector's pass when one ran.
    pub fn latency_ms(&self) -> f64 {
        self.prefill_ms + self.decode_ms + self.selector_ms.unwrap_or(0.0)
    }
}

/// A record of a run, kept in a [`RecordLog`] under a unique key.
pub trait Keyed: Serialize + DeserializeOwned {
    type Key: Eq + std::hash::Hash;
    fn key(&self) -> Self::Key;

    /// What a record read from disk must satisfy beyond its types.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

impl Keyed for Record {
    type Key = (Mode, String);
    fn key(&self) -> Self::Key {
        (self.mode, self.id.clone())
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.reused_tokens > self.prompt_tokens {
            return Err(format!(
                "reused_tokens {} exceeds prompt_tokens {}",
                self.reused_tokens, self.prompt_tokens
            ));
        }
        let times = [
            ("prefill_ms", self.prefill_ms),
            ("decode_ms", self.decode_ms),
            ("peak_rss_mib", self.peak_rss_mib),
        ];
        if let Some((name, v)) = times.iter().find(|(_, v)| !(v.is_finite() && *v >= 0.0)) {
            return Err(format!(
                "{name} is {v}; it must be a finite non-negative number"
            ));
        }
        let s = &self.scores;
        let scores = [s.thought_acc, s.action_acc, s.action_args_acc, s.acc, s.iou];
        if scores.iter().any(|v| !(0.0..=1.0).contains(v)) {
            return Err(format!("scores {scores:?} lie outside [0, 1]"));
        }
        Ok(())
    }
}

/// The records file of one run, shared by `bench gpt4tools` and `eval`:
/// one JSON line per finished item, each flushed before the next starts.
#[derive(Debug)]
pub struct RecordLog<R: Keyed = Record> {
    path: PathBuf,
    records: Vec<R>,
    done: HashSet<R::Key>,
}

impl<R: Keyed> RecordLog<R> {
    /// Opens `path`, reading what an earlier run finished. A last line cut
    /// short by a kill is dropped and the file truncated to the last full
    /// record, so the next append starts on a line of its own; any other
    /// unreadable line is an error naming the file and the line.
    pub fn open(path: &Path) -> Result<Self> {
        let mut log = RecordLog {
            path: path.to_owned(),
            records: Vec::new(),
            done: HashSet::new(),
        };
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(log),
            Err(e) => return Err(Error::io(path, e)),
        };
        let mut good_bytes = 0;
        for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
            // Each record is written with its newline in one call, so only
            // a last line without one can be the remains of a kill, even if
            // what is there happens to parse.
            if !line.ends_with(b"\n") {
                tracing::warn!("{}: dropping a partial last record", path.display());
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)
                    .map_err(|e| Error::io(path, e))?;
                f.set_len(good_bytes as u64)
                    .map_err(|e| Error::io(path, e))?;
                break;
            }
            let text = std::str::from_utf8(line).map_err(|e| Error::Record {
                path: path.to_owned(),
                line: i + 1,
                detail: e.to_string(),
            })?;
            good_bytes += line.len();
            if text.trim().is_empty() {
                continue;
            }
            let record = serde_json::from_str::<R>(text)
                .map_err(|e| e.to_string())
                .and_then(|r| r.check().map(|()| r))
                .map_err(|detail| Error::Record {
                    path: path.to_owned(),
                    line: i + 1,
                    detail,
                })?;
            log.push(record);
        }
        Ok(log)
    }

    fn push(&mut self, record: R) {
        self.done.insert(record.key());
        self.records.push(record);
    }

    pub fn is_done(&self, key: &R::Key) -> bool {
        self.done.contains(key)
    }

    pub fn records(&self) -> &[R] {
        &self.records
    }

    /// Replaces every record with `records`, rewriting the file atomically
    /// (used to rescore a run).
    pub fn replace_all(&mut self, records: Vec<R>) -> Result<()> {
        let mut text = String::new();
        for (i, r) in records.iter().enumerate() {
            text.push_str(&self.line(r, i + 1)?);
        }
        loragen_protocol::atomic::write_atomic(&self.path, text.as_bytes())?;
        self.records.clear();
        self.done.clear();
        for r in records {
            self.push(r);
        }
        Ok(())
    }

    /// Appends one record and flushes it to disk before returning.
    pub fn append(&mut self, record: R) -> Result<()> {
        let line = self.line(&record, self.records.len() + 1)?;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| Error::io(&self.path, e))?;
        self.push(record);
        Ok(())
    }

    /// `record` as the JSON line it is stored as (line number `at`).
    fn line(&self, record: &R, at: usize) -> Result<String> {
        let mut line = serde_json::to_string(record).map_err(|e| Error::Record {
            path: self.path.clone(),
            line: at,
            detail: e.to_string(),
        })?;
        line.push('\n');
        Ok(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str) -> Record {
        Record {
            id: id.into(),
            mode: Mode::InContext,
            prediction: "p".into(),
            scores: ItemScores::default(),
            prompt_tokens: 10,
            reused_tokens: 0,
            prefill_ms: 1.0,
            decode_ms: 2.0,
            decode_tokens: 3,
            peak_rss_mib: 4.0,
            adapter_ms: None,
            selector_ms: None,
            none_margin: None,
        }
    }

    #[test]
    fn a_reopened_log_resumes_and_drops_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut log: RecordLog = RecordLog::open(&path).unwrap();
        log.append(record("a")).unwrap();
        log.append(record("b")).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"id\": \"c\", \"mo")
            .unwrap();
        let mut log: RecordLog = RecordLog::open(&path).unwrap();
        assert_eq!(log.records().len(), 2);
        assert!(
            log.is_done(&(Mode::InContext, "b".into()))
                && !log.is_done(&(Mode::InContextCached, "b".into()))
        );
        log.append(record("c")).unwrap();
        assert_eq!(RecordLog::<Record>::open(&path).unwrap().records().len(), 3);
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(
            &path,
            format!(
                "nonsense\n{}\n",
                serde_json::to_string(&record("a")).unwrap()
            ),
        )
        .unwrap();
        let err = RecordLog::<Record>::open(&path).unwrap_err().to_string();
        assert!(err.contains("record 1"), "{err}");
    }

    #[test]
    fn a_complete_looking_last_line_without_newline_is_torn() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let a = serde_json::to_string(&record("a")).unwrap();
        let b = serde_json::to_string(&record("b")).unwrap();
        std::fs::write(&path, format!("{a}\n{b}")).unwrap();
        let mut log: RecordLog = RecordLog::open(&path).unwrap();
        assert_eq!(log.records().len(), 1);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), format!("{a}\n"));
        log.append(record("b")).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{a}\n{b}\n")
        );
    }

    #[test]
    fn garbage_and_invalid_utf8_lines_are_errors_naming_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let a = serde_json::to_string(&record("a")).unwrap();
        let impossible = serde_json::to_string(&Record {
            reused_tokens: 11,
            ..record("x")
        })
        .unwrap();
        for bad in [
            &b"\xff\xfe garbage"[..],
            b"{\"id\": 3}",
            b"[1, 2]",
            impossible.as_bytes(),
        ] {
            let mut bytes = format!("{a}\n").into_bytes();
            bytes.extend_from_slice(bad);
            bytes.extend_from_slice(format!("\n{a}\n").as_bytes());
            std::fs::write(&path, bytes).unwrap();
            let err = RecordLog::<Record>::open(&path).unwrap_err().to_string();
            assert!(err.contains("r.jsonl") && err.contains("record 2"), "{err}");
        }
    }
}
