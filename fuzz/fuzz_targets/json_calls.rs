//! Run with: scripts/fuzz.sh json_calls 600 (docs/reliability.md)
//!
//! The JSON call parser must be total, and every call it returns names a
//! function; a call whose arguments are not a JSON object says so.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loragen_gpt4tools::generic::parse_calls;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_calls(data);
    assert!(parsed.calls.len() <= 1);
    for call in &parsed.calls {
        assert!(!call.name.is_empty() && call.name == call.name.trim());
        if call.arguments.is_empty() && parsed.problem.is_none() {
            // An empty object is a clean call with no arguments.
            assert!(String::from_utf8_lossy(data).contains('{'));
        }
    }
    if parsed.calls.is_empty() && parsed.problem.is_none() {
        // No call and no problem means an answer.
        assert!(String::from_utf8_lossy(data).contains("AI:"));
    }
});
