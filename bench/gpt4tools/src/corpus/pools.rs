//! The word pools of the corpus: request templates per tool, captions with
//! their objects, picture descriptions, questions, edits, replacements and
//! the material of the negatives. They live in `data/*.txt`, compiled in.

use std::collections::BTreeMap;

use crate::error::{Error, Result};

/// How many templates at the end of each training tool's block are held
/// out for `val_seen` and `test_unseen`.
pub const HELD_OUT_PER_TOOL: usize = 8;

/// Templates of one tool, split into the train and held-out pools.
#[derive(Debug, Clone, Default)]
pub struct ToolTemplates {
    pub train: Vec<String>,
    pub held_out: Vec<String>,
}

/// A caption and the objects visible in its picture.
#[derive(Debug, Clone)]
pub struct Caption {
    pub text: String,
    pub objects: Vec<String>,
}

/// A question about a picture and the answers it may get.
#[derive(Debug, Clone)]
pub struct Question {
    pub text: String,
    pub answers: Vec<String>,
}

/// Everything the builder draws from.
#[derive(Debug, Clone)]
pub struct Pools {
    /// Raw blocks by tool name, in file order.
    pub templates: BTreeMap<String, Vec<String>>,
    pub captions: Vec<Caption>,
    pub prompts: Vec<String>,
    pub questions: Vec<Question>,
    pub edits: Vec<String>,
    pub replacements: Vec<String>,
    pub definitions: Vec<(String, String)>,
    pub writing: Vec<(String, String)>,
}

const TEMPLATES: &str = include_str!("../../data/templates.txt");
const CAPTIONS: &str = include_str!("../../data/captions.txt");
const PROMPTS: &str = include_str!("../../data/prompts.txt");
const QUESTIONS: &str = include_str!("../../data/questions.txt");
const EDITS: &str = include_str!("../../data/edits.txt");
const REPLACEMENTS: &str = include_str!("../../data/replacements.txt");
const DEFINITIONS: &str = include_str!("../../data/definitions.txt");
const WRITING: &str = include_str!("../../data/writing.txt");

/// Slot names a template may use.
pub const SLOTS: [&str; 6] = [
    "{object}",
    "{replacement}",
    "{prompt}",
    "{question}",
    "{instruction}",
    "{image}",
];

impl Pools {
    /// Parses the compiled-in data files.
    pub fn load() -> Result<Self> {
        Ok(Pools {
            templates: parse_templates(TEMPLATES)?,
            captions: pairs("captions.txt", CAPTIONS)?
                .into_iter()
                .map(|(text, objects)| Caption {
                    text,
                    objects: split_list(&objects),
                })
                .collect(),
            prompts: comma_free("prompts.txt", PROMPTS)?,
            questions: pairs("questions.txt", QUESTIONS)?
                .into_iter()
                .map(|(text, answers)| Question {
                    text,
                    answers: split_list(&answers),
                })
                .collect(),
            edits: comma_free("edits.txt", EDITS)?,
            replacements: comma_free("replacements.txt", REPLACEMENTS)?,
            definitions: pairs("definitions.txt", DEFINITIONS)?,
            writing: pairs("writing.txt", WRITING)?,
        })
    }

    /// The train/held-out split of one tool's templates. Unseen tools have
    /// no train templates at all.
    pub fn tool_templates(&self, name: &str, unseen: bool) -> Result<ToolTemplates> {
        let all = self.templates.get(name).ok_or_else(|| Error::CorpusData {
            file: "templates.txt",
            line: 0,
            detail: format!("no templates for tool `{name}`"),
        })?;
        if unseen {
            return Ok(ToolTemplates {
                train: Vec::new(),
                held_out: all.clone(),
            });
        }
        let cut = all.len().saturating_sub(HELD_OUT_PER_TOOL);
        Ok(ToolTemplates {
            train: all[..cut].to_vec(),
            held_out: all[cut..].to_vec(),
        })
    }
}

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
}

fn parse_templates(text: &str) -> Result<BTreeMap<String, Vec<String>>> {
    let mut blocks: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (line, l) in lines(text) {
        if let Some(name) = l.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = Some(name.to_owned());
            blocks.entry(name.to_owned()).or_default();
            continue;
        }
        let Some(tool) = &current else {
            return Err(Error::CorpusData {
                file: "templates.txt",
                line,
                detail: "template before any [Tool Name]".into(),
            });
        };
        let mut rest = l.to_owned();
        for slot in SLOTS {
            rest = rest.replace(slot, "");
        }
        if rest.contains('{') || rest.contains('}') {
            return Err(Error::CorpusData {
                file: "templates.txt",
                line,
                detail: format!("unknown slot in `{l}`"),
            });
        }
        blocks.entry(tool.clone()).or_default().push(l.to_owned());
    }
    Ok(blocks)
}

fn pairs(file: &'static str, text: &str) -> Result<Vec<(String, String)>> {
    lines(text)
        .map(|(line, l)| match l.split_once('|') {
            Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() => {
                Ok((a.trim().to_owned(), b.trim().to_owned()))
            }
            _ => Err(Error::CorpusData {
                file,
                line,
                detail: "expected `left | right`".into(),
            }),
        })
        .collect()
}

/// Values that become tool arguments must not contain the separator.
fn comma_free(file: &'static str, text: &str) -> Result<Vec<String>> {
    lines(text)
        .map(|(line, l)| {
            if l.contains(',') {
                Err(Error::CorpusData {
                    file,
                    line,
                    detail: "argument values may not contain a comma".into(),
                })
            } else {
                Ok(l.to_owned())
            }
        })
        .collect()
}

fn split_list(s: &str) -> Vec<String> {
    s.split(';')
        .map(|x| x.trim().to_owned())
        .filter(|x| !x.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::catalog::all_tools;

    #[test]
    fn every_tool_has_at_least_25_templates_and_pools_are_full() {
        let pools = Pools::load().unwrap();
        for t in all_tools() {
            let n = pools.templates.get(t.info.name).map_or(0, Vec::len);
            assert!(n >= 25, "{} has {n} templates", t.info.name);
        }
        assert_eq!(pools.templates.len(), 31, "a block names an unknown tool");
        assert!(pools.captions.len() >= 200);
        assert!(pools
            .captions
            .iter()
            .all(|c| !c.objects.is_empty() && c.objects.iter().all(|o| !o.contains(','))));
        assert!(pools.questions.iter().all(|q| !q.text.contains(',')));
        assert!(pools.prompts.len() >= 100);
    }

    #[test]
    fn held_out_templates_are_the_tail_and_unseen_tools_have_no_train_pool() {
        let pools = Pools::load().unwrap();
        let seen = pools.tool_templates("Segment the Image", false).unwrap();
        assert_eq!(seen.held_out.len(), HELD_OUT_PER_TOOL);
        assert!(seen.train.iter().all(|t| !seen.held_out.contains(t)));
        let unseen = pools
            .tool_templates("Count Objects In Image", true)
            .unwrap();
        assert!(unseen.train.is_empty());
    }
}
