//! The GPT4Tools evaluation harness of loragen: the reference metrics
//! (SR_t, SR_act, SR_args, SR, IoU), reading official files, building and
//! checking our own corpus, and the benchmark records and report.

pub mod bfcl;
pub mod bleu;
pub mod chart;
pub mod check;
pub mod corpus;
pub mod dataset;
pub mod error;
pub mod extract;
pub mod generic;
pub mod metrics;
pub mod paired;
pub mod record;
pub mod report;
pub mod stats;
pub mod suite;
pub mod table;

pub use dataset::Item;
pub use error::{Error, Result};
pub use loragen_protocol::Mode;
pub use metrics::{score_item, Aggregate, ItemScores};
pub use record::{Record, RecordLog};
pub use report::Report;
