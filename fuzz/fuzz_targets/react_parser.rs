//! Run with: scripts/fuzz.sh react_parser 600 (docs/reliability.md)
//!
//! The ReAct and JSON-calls output parsers must be total: any bytes give a step or a typed
//! error, never a panic. A parsed call must also be well-formed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loragen_protocol::react::{JsonCallsParser, OutputParser, ReactParser, Step};

fuzz_target!(|data: &[u8]| {
    if let Ok(Step::Calls(calls)) = ReactParser.parse(data) {
        assert_eq!(calls.len(), 1);
    }
    for parser in [&ReactParser as &dyn OutputParser, &JsonCallsParser] {
        if let Ok(Step::Calls(calls)) = parser.parse(data) {
            assert!(!calls.is_empty());
            for call in calls {
                assert!(!call.action.is_empty() && call.action == call.action.trim());
                assert_eq!(call.input, call.input.trim());
            }
        }
    }
});
