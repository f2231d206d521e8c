//! Run with: scripts/fuzz.sh react_parser 600 (docs/reliability.md)
//!
//! The ReAct output parser must be total: any bytes give a step or a typed
//! error, never a panic. A parsed call must also be well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loragen_tools::protocol::{OutputParser, ReactParser, Step};

fuzz_target!(|data: &[u8]| {
    if let Ok(Step::Call { action, input }) = ReactParser.parse(data) {
        assert!(!action.is_empty() && action == action.trim());
        assert_eq!(input, input.trim());
    }
});
