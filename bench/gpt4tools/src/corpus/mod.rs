//! The loragen GPT4Tools corpus: the same format and construction rules as
//! the upstream benchmark (2 to 5 tools per prompt, prerequisite chains,
//! random image paths, the image turn, negatives, cutting at a random
//! assistant turn, deduplication), with our own tools, wording and
//! templates. Deterministic given the seed.

pub mod catalog;
mod episode;
mod negatives;
pub mod pools;

use std::collections::HashSet;

use rand::seq::{IndexedRandom, SliceRandom};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use catalog::{all_tools, arity_of, CorpusTool, Output, Slot, HELD_OUT_DEV, UNSEEN_TOOLS};
pub use pools::{Pools, HELD_OUT_PER_TOOL};

use crate::dataset::Item;
use crate::error::{Error, Result};
use episode::{image_path, tool_episode, Episode};
use loragen_protocol::react::answer_message;

/// Sizes and shares of the three splits.
#[derive(Debug, Clone, PartialEq)]
pub struct CorpusConfig {
    pub seed: u64,
    pub train: usize,
    pub val_seen: usize,
    pub test_unseen: usize,
    /// Share of tool-free general requests in every split.
    pub negative_share: f64,
    /// Share of `test_unseen` items whose episode uses an unseen tool.
    pub unseen_share: f64,
}

impl Default for CorpusConfig {
    fn default() -> Self {
        CorpusConfig {
            seed: 0,
            train: 24_000,
            val_seen: 600,
            test_unseen: 652,
            negative_share: 0.2,
            unseen_share: 0.5,
        }
    }
}

impl CorpusConfig {
    #[must_use]
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    #[must_use]
    pub fn with_sizes(mut self, train: usize, val_seen: usize, test_unseen: usize) -> Self {
        (self.train, self.val_seen, self.test_unseen) = (train, val_seen, test_unseen);
        self
    }

    #[must_use]
    pub fn with_negative_share(mut self, share: f64) -> Self {
        self.negative_share = share;
        self
    }

    pub fn validate(&self) -> Result<()> {
        let share = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::Config(format!(
                    "{name} must be within 0..=1, got {v}"
                )))
            }
        };
        share("negative share", self.negative_share)?;
        share("unseen share", self.unseen_share)?;
        if self.negative_share + self.unseen_share > 1.0 {
            return Err(Error::Config(
                "negative share + unseen share exceed 1".into(),
            ));
        }
        if self.train == 0 && self.val_seen == 0 && self.test_unseen == 0 {
            return Err(Error::Config("all splits are empty".into()));
        }
        Ok(())
    }
}

/// The three splits.
#[derive(Debug, Clone, Default)]
pub struct Corpus {
    pub train: Vec<Item>,
    pub val_seen: Vec<Item>,
    pub test_unseen: Vec<Item>,
}

/// What one split may use.
struct SplitPlan {
    /// Tools that episodes target, with their template pool.
    targets: Vec<(CorpusTool, Vec<String>)>,
    /// Tools that may appear in the prompt's list.
    listable: Vec<CorpusTool>,
}

/// Builds the corpus. Instructions are unique across all splits.
pub fn build(config: &CorpusConfig) -> Result<Corpus> {
    config.validate()?;
    let pools = Pools::load()?;
    let tools = all_tools();
    let seen: Vec<CorpusTool> = tools.iter().filter(|t| !t.unseen).copied().collect();
    let unseen: Vec<CorpusTool> = tools.iter().filter(|t| t.unseen).copied().collect();
    let with_pool =
        |list: &[CorpusTool], held_out: bool| -> Result<Vec<(CorpusTool, Vec<String>)>> {
            list.iter()
                .map(|t| {
                    let pool = pools.tool_templates(t.info.name, t.unseen)?;
                    Ok((*t, if held_out { pool.held_out } else { pool.train }))
                })
                .collect()
        };
    let train_plan = SplitPlan {
        targets: with_pool(&seen, false)?,
        listable: seen.clone(),
    };
    let val_plan = SplitPlan {
        targets: with_pool(&seen, true)?,
        listable: seen.clone(),
    };
    let unseen_plan = SplitPlan {
        targets: with_pool(&unseen, true)?,
        listable: tools.clone(),
    };
    let seen_test_plan = SplitPlan {
        targets: with_pool(&seen, true)?,
        listable: tools.clone(),
    };

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let mut taken = HashSet::new();
    let mut builder = SplitBuilder {
        rng: &mut rng,
        pools: &pools,
        taken: &mut taken,
        tools: &tools,
    };

    let negatives = |n: usize| (n as f64 * config.negative_share).round() as usize;
    let train = builder.split(
        &[(&train_plan, config.train - negatives(config.train))],
        negatives(config.train),
        &train_plan.listable,
    );
    let val_seen = builder.split(
        &[(&val_plan, config.val_seen - negatives(config.val_seen))],
        negatives(config.val_seen),
        &val_plan.listable,
    );
    let n = config.test_unseen;
    let n_unseen = (n as f64 * config.unseen_share).round() as usize;
    let n_neg = negatives(n);
    let test_unseen = builder.split(
        &[
            (&unseen_plan, n_unseen),
            (&seen_test_plan, n.saturating_sub(n_unseen + n_neg)),
        ],
        n_neg,
        &tools,
    );
    Ok(Corpus {
        train,
        val_seen,
        test_unseen,
    })
}

struct SplitBuilder<'a> {
    rng: &'a mut ChaCha8Rng,
    pools: &'a Pools,
    taken: &'a mut HashSet<String>,
    tools: &'a [CorpusTool],
}

impl SplitBuilder<'_> {
    /// `n` items from each plan plus `negatives` tool-free items, shuffled
    /// and numbered. Duplicates of any earlier instruction are redrawn.
    fn split(
        &mut self,
        plans: &[(&SplitPlan, usize)],
        negatives: usize,
        listable: &[CorpusTool],
    ) -> Vec<Item> {
        let mut items = Vec::new();
        for (plan, n) in plans {
            let mut kept = 0;
            while kept < *n {
                let item = self.tool_item(plan);
                if self.keep(&mut items, item) {
                    kept += 1;
                }
            }
        }
        let mut done = 0;
        while done < negatives {
            let item = self.negative_item(listable);
            if self.keep(&mut items, item) {
                done += 1;
            }
        }
        items.shuffle(self.rng);
        for (i, item) in items.iter_mut().enumerate() {
            item.id = i.to_string();
        }
        items
    }

    fn keep(&mut self, items: &mut Vec<Item>, item: Item) -> bool {
        if self.taken.insert(item.instruction.clone()) {
            items.push(item);
            true
        } else {
            false
        }
    }

    fn tool_item(&mut self, plan: &SplitPlan) -> Item {
        let (tool, templates) = &plan.targets[self.rng.random_range(0..plan.targets.len())];
        let template = templates.choose(self.rng).cloned().unwrap_or_default();
        let prerequisite = tool
            .prerequisite
            .and_then(|p| self.tools.iter().find(|t| t.info.name == p))
            .copied();
        let mut required = vec![*tool];
        required.extend(prerequisite);
        let system = self.system(&required, &plan.listable);
        let episode = tool_episode(
            self.rng,
            self.pools,
            tool,
            prerequisite.as_ref(),
            &template,
            system,
        );
        let k = self.rng.random_range(0..episode.turns.len());
        episode.cut(k)
    }

    fn negative_item(&mut self, listable: &[CorpusTool]) -> Item {
        let system = self.system(&[], listable);
        let (request, reply) = negatives::negative(self.rng, self.pools);
        let image = self.rng.random_bool(0.3).then(|| {
            let caption = self
                .pools
                .captions
                .choose(self.rng)
                .map(|c| c.text.clone())
                .unwrap_or_default();
            (image_path(self.rng), caption)
        });
        let episode = Episode {
            system,
            image,
            request,
            turns: vec![episode::Turn {
                message: answer_message(&reply),
                observation: None,
            }],
        };
        episode.cut(0)
    }

    /// A shuffled list of 2 to 5 tools holding `required`, rendered.
    fn system(&mut self, required: &[CorpusTool], listable: &[CorpusTool]) -> String {
        let n = self.rng.random_range(2..=5).max(required.len());
        let mut chosen: Vec<CorpusTool> = required.to_vec();
        let mut others: Vec<&CorpusTool> = listable
            .iter()
            .filter(|t| !required.iter().any(|r| r.info.name == t.info.name))
            .collect();
        others.shuffle(self.rng);
        chosen.extend(others.into_iter().take(n - required.len()).copied());
        chosen.shuffle(self.rng);
        let infos: Vec<_> = chosen.iter().map(|t| t.info).collect();
        loragen_protocol::gpt4tools::render_system_prompt(&infos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{check, SplitKind};

    fn small(seed: u64) -> Corpus {
        build(
            &CorpusConfig::default()
                .with_seed(seed)
                .with_sizes(600, 120, 200),
        )
        .unwrap()
    }

    #[test]
    fn same_seed_same_corpus_and_another_seed_differs() {
        let (a, b, c) = (small(3), small(3), small(4));
        assert_eq!(a.train, b.train);
        assert_eq!(a.test_unseen, b.test_unseen);
        assert_ne!(a.train, c.train);
    }

    #[test]
    fn splits_have_their_sizes_shares_and_pass_the_checks() {
        let corpus = small(1);
        assert_eq!(
            (
                corpus.train.len(),
                corpus.val_seen.len(),
                corpus.test_unseen.len()
            ),
            (600, 120, 200)
        );
        let train = check(&corpus.train, SplitKind::Train).unwrap();
        let reqs: Vec<_> = train
            .problems
            .iter()
            .map(|(id, _)| {
                corpus.train[id.parse::<usize>().unwrap()]
                    .request()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(
            train.is_ok(),
            "{:?} {reqs:?}",
            &train.problems[..train.problems.len().min(5)]
        );
        assert_eq!(
            (train.unseen_tool_items, train.held_out_template_items),
            (0, 0)
        );
        for split in [&corpus.val_seen, &corpus.test_unseen] {
            let report = check(split, SplitKind::Eval).unwrap();
            assert!(
                report.is_ok(),
                "{:?}",
                &report.problems[..report.problems.len().min(5)]
            );
            assert!(report.unknown_arity.is_empty());
        }
        let stats = crate::stats::stats(&corpus.test_unseen, &|s| s.len());
        assert!(
            (0.15..=0.25).contains(&stats.negative_share),
            "{}",
            stats.negative_share
        );
        assert!(stats.tools_per_prompt.keys().all(|n| (2..=5).contains(n)));
        let unseen_calls: usize = UNSEEN_TOOLS
            .iter()
            .filter_map(|t| stats.per_output.get(t.info.name))
            .sum();
        assert!(unseen_calls > 40, "{unseen_calls}");
    }

    #[test]
    fn every_template_names_the_arguments_its_tool_needs() {
        let pools = Pools::load().unwrap();
        for tool in all_tools() {
            for template in &pools.templates[tool.info.name] {
                for slot in tool.slots {
                    let needed = match slot {
                        Slot::Image => continue,
                        Slot::Object => "{object}",
                        Slot::Replacement => "{replacement}",
                        Slot::Prompt => "{prompt}",
                        Slot::Question => "{question}",
                        Slot::Instruction => "{instruction}",
                    };
                    assert!(
                        template.contains(needed),
                        "{}: `{template}` lacks {needed}",
                        tool.info.name
                    );
                }
            }
        }
    }
}
