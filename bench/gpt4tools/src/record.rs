//! Per-item benchmark records, appended to a JSONL file as they are made,
//! so a stopped run keeps everything it finished and resumes after it.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metrics::ItemScores;

/// How the edge model sees an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The full instruction, computed from scratch for every item.
    InContext,
    /// The full instruction, reusing the KV cache of the shared prefix.
    InContextCached,
    /// The system part removed; a generated adapter or merged model.
    Compiled,
    /// A plain LoRA baseline adapter.
    Lora,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::InContext, Mode::InContextCached, Mode::Compiled, Mode::Lora];

    pub fn name(self) -> &'static str {
        match self {
            Mode::InContext => "in-context",
            Mode::InContextCached => "in-context-cached",
            Mode::Compiled => "compiled",
            Mode::Lora => "lora",
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Mode::ALL.into_iter().find(|m| m.name() == s).ok_or_else(|| {
            let names: Vec<&str> = Mode::ALL.iter().map(|m| m.name()).collect();
            format!("unknown mode `{s}`; expected one of {}", names.join(", "))
        })
    }
}

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
}

impl Record {
    /// Model time for the item: prefill plus decode.
    pub fn latency_ms(&self) -> f64 {
        self.prefill_ms + self.decode_ms
    }
}

/// The records file of one run.
#[derive(Debug)]
pub struct RecordLog {
    path: PathBuf,
    records: Vec<Record>,
    done: HashSet<(Mode, String)>,
}

impl RecordLog {
    /// Opens `path`, reading what an earlier run finished. A last line cut
    /// short by a kill is dropped (and the file truncated to the last full
    /// record); any other unreadable line is an error.
    pub fn open(path: &Path) -> Result<Self> {
        let mut log = RecordLog { path: path.to_owned(), records: Vec::new(), done: HashSet::new() };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(log),
            Err(e) => return Err(Error::io(path, e)),
        };
        let lines: Vec<String> =
            std::io::BufReader::new(file).lines().collect::<std::io::Result<_>>().map_err(|e| Error::io(path, e))?;
        let mut good_bytes = 0;
        for (i, line) in lines.iter().enumerate() {
            if line.trim().is_empty() {
                good_bytes += line.len() + 1;
                continue;
            }
            match serde_json::from_str::<Record>(line) {
                Ok(record) => {
                    good_bytes += line.len() + 1;
                    log.push(record);
                }
                Err(_) if i + 1 == lines.len() => {
                    tracing::warn!("{}: dropping a partial last record", path.display());
                    let f = std::fs::OpenOptions::new().write(true).open(path).map_err(|e| Error::io(path, e))?;
                    f.set_len(good_bytes as u64).map_err(|e| Error::io(path, e))?;
                }
                Err(e) => return Err(Error::Record { path: path.to_owned(), line: i + 1, detail: e.to_string() }),
            }
        }
        Ok(log)
    }

    fn push(&mut self, record: Record) {
        self.done.insert((record.mode, record.id.clone()));
        self.records.push(record);
    }

    pub fn is_done(&self, mode: Mode, id: &str) -> bool {
        self.done.contains(&(mode, id.to_owned()))
    }

    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Appends one record and flushes it to disk before returning.
    pub fn append(&mut self, record: Record) -> Result<()> {
        let mut line = serde_json::to_string(&record).map_err(|e| Error::Record {
            path: self.path.clone(),
            line: self.records.len() + 1,
            detail: e.to_string(),
        })?;
        line.push('\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        f.write_all(line.as_bytes()).and_then(|()| f.sync_data()).map_err(|e| Error::io(&self.path, e))?;
        self.push(record);
        Ok(())
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
        }
    }

    #[test]
    fn a_reopened_log_resumes_and_drops_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        let mut log = RecordLog::open(&path).unwrap();
        log.append(record("a")).unwrap();
        log.append(record("b")).unwrap();
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"id\": \"c\", \"mo").unwrap();
        let mut log = RecordLog::open(&path).unwrap();
        assert_eq!(log.records().len(), 2);
        assert!(log.is_done(Mode::InContext, "b") && !log.is_done(Mode::InContextCached, "b"));
        log.append(record("c")).unwrap();
        assert_eq!(RecordLog::open(&path).unwrap().records().len(), 3);
    }

    #[test]
    fn a_corrupt_middle_line_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.jsonl");
        std::fs::write(&path, format!("nonsense\n{}\n", serde_json::to_string(&record("a")).unwrap())).unwrap();
        let err = RecordLog::open(&path).unwrap_err().to_string();
        assert!(err.contains("record 1"), "{err}");
    }

    #[test]
    fn modes_parse_by_name() {
        assert_eq!("in-context-cached".parse::<Mode>().unwrap(), Mode::InContextCached);
        assert!("fast".parse::<Mode>().unwrap_err().contains("in-context"));
    }
}
