//! Run with: RUSTC_BOOTSTRAP=1 cargo fuzz run react_parser -- -max_total_time=600
//!
//! The ReAct output parser must be total: any bytes give a step or a typed
//! error, never a panic. A parsed call must also be well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loragen_agent::protocol::{OutputParser, ReactParser, Step};

fuzz_target!(|data: &[u8]| {
    if let Ok(Step::Call { action, .. }) = ReactParser.parse(data) {
        assert!(!action.is_empty() && action == action.trim());
    }
});
