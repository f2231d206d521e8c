//! `data check`: a GPT4Tools file is well formed for training or testing.
//! Every output parses under the protocol, every called tool is listed in
//! its item's system part with the right number of arguments, and a
//! training file shows neither an unseen tool nor a held-out template.

use std::collections::BTreeMap;

use loragen_protocol::react::{
    Call, OutputParser, ReactParser, Step, NEW_INPUT, PREVIOUS_CONVERSATION,
};
use regex::RegexSet;

use crate::corpus::{all_tools, arity_of, Pools};
use crate::dataset::Item;
use crate::error::{Error, Result};
use crate::extract::Extracted;

/// What the file is for; leaks are errors only in a training file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SplitKind {
    Train,
    Eval,
}

/// The outcome of checking one file.
#[derive(Debug, Clone, Default)]
pub struct CheckReport {
    pub items: usize,
    /// `(item id, problem)`, in file order.
    pub problems: Vec<(String, String)>,
    /// Items that list one of the 8 unseen tools.
    pub unseen_tool_items: usize,
    /// Items whose request comes from a held-out template.
    pub held_out_template_items: usize,
    /// Called tools whose arity loragen does not know, with call counts.
    pub unknown_arity: BTreeMap<String, usize>,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Recognises requests made from held-out templates.
#[derive(Debug)]
pub struct HeldOutMatcher {
    set: RegexSet,
    templates: Vec<String>,
}

impl HeldOutMatcher {
    pub fn new(pools: &Pools) -> Result<Self> {
        let mut templates = Vec::new();
        for tool in all_tools() {
            templates.extend(pools.tool_templates(tool.info.name, tool.unseen)?.held_out);
        }
        let patterns: Vec<String> = templates.iter().map(|t| template_regex(t)).collect();
        let set = RegexSet::new(&patterns)
            .map_err(|e| Error::Config(format!("held-out template pattern: {e}")))?;
        Ok(HeldOutMatcher { set, templates })
    }

    /// The first held-out template `request` could have come from.
    pub fn matching(&self, request: &str) -> Option<&str> {
        self.set
            .matches(request)
            .iter()
            .next()
            .map(|i| self.templates[i].as_str())
    }
}

/// A template as an anchored, case-insensitive pattern; slots match any
/// non-empty text on the line.
fn template_regex(template: &str) -> String {
    let mut pattern = regex::escape(template);
    for slot in crate::corpus::pools::SLOTS {
        pattern = pattern.replace(&regex::escape(slot), "[^\\n]+?");
    }
    format!("(?i)^{pattern}$")
}

/// Checks `items`; see the module docs for the rules.
pub fn check(items: &[Item], kind: SplitKind) -> Result<CheckReport> {
    let matcher = HeldOutMatcher::new(&Pools::load()?)?;
    let unseen: Vec<&str> = all_tools()
        .iter()
        .filter(|t| t.unseen)
        .map(|t| t.info.name)
        .collect();
    let mut report = CheckReport {
        items: items.len(),
        ..CheckReport::default()
    };
    for item in items {
        let mut problem = |detail: String| report.problems.push((item.id.clone(), detail));
        if !item.instruction.contains(PREVIOUS_CONVERSATION) {
            problem(format!("the instruction has no `{PREVIOUS_CONVERSATION}`"));
        }
        if item.request().is_none() {
            problem(format!("the instruction has no `{NEW_INPUT}` line"));
        }
        let listed = item.listed_tools();
        if listed.is_empty() {
            problem("the system part lists no tools".into());
        }
        match ReactParser.parse(item.output.as_bytes()) {
            Err(e) => problem(format!("the output does not parse: {e}")),
            Ok(Step::Answer { .. }) => {}
            Ok(Step::Calls(calls)) => {
                for Call { action, input } in calls {
                    if !listed.contains(&action.as_str()) {
                        problem(format!(
                            "the output calls `{action}`, which the system part does not list"
                        ));
                    }
                    match arity_of(&action) {
                        Some(arity) if input.split(',').count() != arity => problem(format!(
                            "`{action}` takes {arity} argument(s) but the output gives {}",
                            input.split(',').count()
                        )),
                        Some(_) => {}
                        None => *report.unknown_arity.entry(action.clone()).or_default() += 1,
                    }
                }
            }
        }
        // Calls already made in the partial trace must be listed too.
        for name in Extracted::from_text(item.rest()).actions {
            if !listed.contains(&name.as_str()) {
                problem(format!(
                    "the trace calls `{name}`, which the system part does not list"
                ));
            }
        }
        let shows_unseen = listed.iter().any(|t| unseen.contains(t));
        let held_out = item.request().and_then(|r| matcher.matching(r));
        report.unseen_tool_items += usize::from(shows_unseen);
        report.held_out_template_items += usize::from(held_out.is_some());
        if kind == SplitKind::Train && shows_unseen {
            problem("a training item lists an unseen tool".into());
        }
        if let (SplitKind::Train, Some(template)) = (kind, held_out) {
            let request = item.request().unwrap_or_default();
            problem(format!(
                "the training request `{request}` fits the held-out template `{template}`"
            ));
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_patterns_match_filled_requests_only() {
        let re = regex::Regex::new(&template_regex("Crop the {object} from this image.")).unwrap();
        assert!(re.is_match("Crop the red car from this image."));
        assert!(!re.is_match("Please crop the red car from this image."));
        assert!(!re.is_match("Crop the  from this image"));
    }
}
