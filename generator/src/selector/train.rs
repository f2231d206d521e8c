//! Fitting the selector: a softmax over each example's registry, random
//! tools from the whole pool and "no call", on cached inputs; and scoring
//! how often it ranks a right answer first.

use std::collections::{BTreeSet, HashMap};

use candle_core::{DType, Device, Tensor, D};
use candle_nn::VarMap;
use loragen_agent::selector::{Selector, SelectorConfig};
use rand::seq::IndexedRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::data::{SelectorItem, Target};
use crate::error::{Error, Result};
use crate::train::{batch_of, seeded_var_builder, AdamW, AdamWParams, TrainConfig};

/// Examples as indices into the inputs: the queries' rows and the
/// distinct tools' rows.
#[derive(Debug, Clone)]
pub struct SelectorSet {
    /// (examples, 2 * query_dim).
    pub queries: Tensor,
    /// (tools, 2 * tool_dim): every distinct tool block.
    pub tools: Tensor,
    pub tool_names: Vec<String>,
    pub examples: Vec<SetExample>,
}

/// One example's registry (rows of [`SelectorSet::tools`]) and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetExample {
    pub registry: Vec<usize>,
    /// The registry's tools a right answer calls; empty for no call.
    pub answers: Vec<usize>,
}

impl SelectorSet {
    /// `items` with their query inputs (a row each, in order) and the
    /// tool inputs by block text.
    pub fn new(
        items: &[SelectorItem],
        queries: Tensor,
        tool_inputs: &HashMap<String, Tensor>,
    ) -> Result<Self> {
        let mut rows: HashMap<&str, usize> = HashMap::new();
        let mut tools = Vec::new();
        let mut tool_names = Vec::new();
        let mut examples = Vec::with_capacity(items.len());
        for item in items {
            let mut registry = Vec::with_capacity(item.tools.len());
            for tool in &item.tools {
                let row = match rows.get(tool.block.as_str()) {
                    Some(&row) => row,
                    None => {
                        let input = tool_inputs.get(&tool.block).ok_or_else(|| {
                            Error::Config(format!("no tool input for {}", tool.name))
                        })?;
                        tools.push(input.unsqueeze(0)?);
                        tool_names.push(tool.name.clone());
                        rows.insert(&tool.block, tools.len() - 1);
                        tools.len() - 1
                    }
                };
                registry.push(row);
            }
            let answers = match &item.target {
                Target::NoCall => Vec::new(),
                Target::Tools(names) => registry
                    .iter()
                    .copied()
                    .filter(|&r| names.contains(&tool_names[r]))
                    .collect(),
            };
            if matches!(item.target, Target::Tools(_)) && answers.is_empty() {
                return Err(Error::Config(format!(
                    "item {}: it calls a tool its registry does not list",
                    item.id
                )));
            }
            examples.push(SetExample { registry, answers });
        }
        if queries.dim(0)? != items.len() {
            return Err(Error::Config(format!(
                "{} query inputs for {} items",
                queries.dim(0)?,
                items.len()
            )));
        }
        Ok(SelectorSet {
            queries,
            tools: Tensor::cat(&tools, 0)?,
            tool_names,
            examples,
        })
    }
}

/// How the selector is fitted: the optimiser's settings (`batch` examples a
/// step) and how many tools of the whole pool join each softmax.
///
/// # Examples
///
/// ```
/// use loragen_generator::selector::SelectorTraining;
///
/// let t = SelectorTraining::default().with_negatives(8);
/// assert_eq!(t.negatives, 8);
/// assert_eq!(t.train.batch, 64);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SelectorTraining {
    pub train: TrainConfig,
    /// Random tools from the pool added to each example's candidates.
    pub negatives: usize,
}

impl Default for SelectorTraining {
    fn default() -> Self {
        SelectorTraining {
            train: TrainConfig::default()
                .with_steps(2000)
                .with_batch(64)
                .with_lr(1e-3)
                .with_warmup(100),
            negatives: 32,
        }
    }
}

impl SelectorTraining {
    #[must_use]
    pub fn with_train(mut self, train: TrainConfig) -> Self {
        self.train = train;
        self
    }

    #[must_use]
    pub fn with_negatives(mut self, n: usize) -> Self {
        self.negatives = n;
        self
    }
}

/// A value far below any score: a candidate that is not one.
const MASKED: f64 = -1e4;

/// One step's candidates: the distinct tool rows, and per example an
/// additive mask over them plus "no call" (last) for the candidates and
/// one for the right answers.
fn candidates(
    set: &SelectorSet,
    batch: &[usize],
    negatives: usize,
    rng: &mut ChaCha8Rng,
) -> Result<(Vec<u32>, Tensor, Tensor)> {
    let pool: Vec<usize> = (0..set.tool_names.len()).collect();
    let per_example: Vec<Vec<usize>> = batch
        .iter()
        .map(|&e| {
            let ex = &set.examples[e];
            let taken: BTreeSet<&str> = ex
                .answers
                .iter()
                .map(|&r| set.tool_names[r].as_str())
                .collect();
            let mut rows = ex.registry.clone();
            rows.extend(
                pool.choose_multiple(rng, negatives)
                    .copied()
                    .filter(|&r| !taken.contains(set.tool_names[r].as_str())),
            );
            rows
        })
        .collect();
    let distinct: Vec<usize> = per_example
        .iter()
        .flatten()
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let column: HashMap<usize, usize> = distinct.iter().enumerate().map(|(c, &r)| (r, c)).collect();
    let width = distinct.len() + 1;
    let mut allowed = vec![MASKED as f32; batch.len() * width];
    let mut right = vec![MASKED as f32; batch.len() * width];
    for (b, (&e, rows)) in batch.iter().zip(&per_example).enumerate() {
        for r in rows {
            allowed[b * width + column[r]] = 0.0;
        }
        allowed[b * width + width - 1] = 0.0;
        let answers = &set.examples[e].answers;
        if answers.is_empty() {
            right[b * width + width - 1] = 0.0;
        }
        for r in answers {
            right[b * width + column[r]] = 0.0;
        }
    }
    let rows = distinct.iter().map(|&r| r as u32).collect();
    let shape = (batch.len(), width);
    Ok((
        rows,
        Tensor::from_vec(allowed, shape, &Device::Cpu)?,
        Tensor::from_vec(right, shape, &Device::Cpu)?,
    ))
}

/// Scores (examples, tools + 1) of `queries` against the rows `tools` of
/// the set's tools and "no call", last.
fn score(
    selector: &Selector,
    set: &SelectorSet,
    queries: &Tensor,
    tools: &[u32],
) -> Result<Tensor> {
    let rows = Tensor::from_slice(tools, tools.len(), &Device::Cpu)?;
    let tools = selector.embed_tools(&set.tools.index_select(&rows, 0)?)?;
    let all = Tensor::cat(&[&tools, &selector.none()?], 0)?;
    selector
        .scores(&selector.embed_queries(queries)?, &all)
        .map_err(Error::from)
}

/// Fits a selector of `cfg` on `set`; `log` gets each step's number and
/// mean loss.
pub fn fit(
    set: &SelectorSet,
    cfg: &SelectorConfig,
    training: &SelectorTraining,
    mut log: impl FnMut(usize, f32),
) -> Result<(VarMap, Selector)> {
    let t = &training.train;
    t.validate()?;
    if set.examples.is_empty() {
        return Err(Error::Config("no selector examples to fit".into()));
    }
    let vars = VarMap::new();
    let selector = Selector::new(
        cfg,
        seeded_var_builder(&vars, t.seed, DType::F32, &Device::Cpu),
    )?;
    let named: Vec<_> = vars
        .data()
        .lock()
        .map_err(|_| Error::Config("the variables' lock is poisoned".into()))?
        .iter()
        .map(|(n, v)| (n.clone(), v.clone()))
        .collect();
    let mut opt = AdamW::new(
        named,
        AdamWParams {
            lr: t.lr,
            weight_decay: t.weight_decay,
            ..AdamWParams::default()
        },
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(t.seed);
    for step in 0..t.steps {
        let _span = tracing::info_span!("selector_step", step).entered();
        let batch = batch_of(step, t.batch, set.examples.len(), t.seed);
        let (rows, allowed, right) = candidates(set, &batch, training.negatives, &mut rng)?;
        let ids: Vec<u32> = batch.iter().map(|&e| e as u32).collect();
        let queries = set
            .queries
            .index_select(&Tensor::from_slice(&ids, ids.len(), &Device::Cpu)?, 0)?;
        let scores = score(&selector, set, &queries, &rows)?;
        let all = (&scores + &allowed)?.log_sum_exp(D::Minus1)?;
        let good = (&scores + &right)?.log_sum_exp(D::Minus1)?;
        let loss = (all - good)?.mean_all()?;
        let mut grads = loss.backward()?;
        opt.clip(&mut grads, t.clip)?;
        opt.params.lr = t.lr_at(step);
        opt.step(&grads)?;
        log(step + 1, loss.to_scalar::<f32>()?);
    }
    Ok((vars, selector))
}

/// What the selector makes of one example.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    /// Whether the registry's first-ranked tool is a right one; `None` for
    /// an example that calls nothing.
    pub right_first: Option<bool>,
    /// "No call"'s score less the best tool's: where a veto at a margin
    /// below it says no call.
    pub none_margin: f32,
}

/// Ranks each example's registry of `set`, and "no call" against it.
pub fn rank(selector: &Selector, set: &SelectorSet) -> Result<Vec<Ranked>> {
    let all_rows: Vec<u32> = (0..set.tool_names.len() as u32).collect();
    let scores = score(selector, set, &set.queries, &all_rows)?.to_vec2::<f32>()?;
    let none = all_rows.len();
    Ok(set
        .examples
        .iter()
        .zip(&scores)
        .map(|(ex, row)| {
            let best = ex
                .registry
                .iter()
                .copied()
                .max_by(|&a, &b| row[a].total_cmp(&row[b]));
            Ranked {
                right_first: (!ex.answers.is_empty())
                    .then(|| best.is_some_and(|b| ex.answers.contains(&b))),
                none_margin: row[none] - best.map_or(f32::NEG_INFINITY, |b| row[b]),
            }
        })
        .collect())
}

/// How often the selector ranks a right answer first, and what a veto of
/// calls at a margin does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    /// Examples that call a tool, and those whose first-ranked tool of the
    /// registry is a right one.
    pub calls: usize,
    pub calls_right: usize,
    /// Those calls the veto stops.
    pub calls_vetoed: usize,
    /// Examples that call nothing, and those the veto catches.
    pub no_calls: usize,
    pub no_calls_right: usize,
}

impl Selection {
    /// The counts of `ranked` under a veto of every call whose "no call"
    /// margin exceeds `margin`.
    pub fn at(ranked: &[Ranked], margin: f32) -> Self {
        let mut out = Selection::default();
        for r in ranked {
            let vetoed = usize::from(r.none_margin > margin);
            match r.right_first {
                None => {
                    out.no_calls += 1;
                    out.no_calls_right += vetoed;
                }
                Some(right) => {
                    out.calls += 1;
                    out.calls_right += usize::from(right);
                    out.calls_vetoed += vetoed;
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// `n` tools whose inputs are one-hot; each query's input is the
    /// one-hot of its answer, or of slot `n` for a no-call query; each
    /// registry holds 3 tools, the answer among them.
    fn toy(n: usize) -> SelectorSet {
        let dim = n + 1;
        let mut tools = vec![0f32; n * 2 * dim];
        for t in 0..n {
            tools[t * 2 * dim + t] = 1.0;
        }
        let mut queries = vec![0f32; 4 * n * 2 * dim];
        let mut examples = Vec::new();
        for e in 0..4 * n {
            let answer = e % (n + 1);
            queries[e * 2 * dim + answer] = 1.0;
            let mut registry: Vec<usize> = (0..3).map(|k| (e + k) % n).collect();
            let answers = if answer < n {
                if !registry.contains(&answer) {
                    registry[0] = answer;
                }
                vec![answer]
            } else {
                Vec::new()
            };
            examples.push(SetExample { registry, answers });
        }
        SelectorSet {
            queries: Tensor::from_vec(queries, (4 * n, 2 * dim), &Device::Cpu).unwrap(),
            tools: Tensor::from_vec(tools, (n, 2 * dim), &Device::Cpu).unwrap(),
            tool_names: (0..n).map(|t| format!("tool{t}")).collect(),
            examples,
        }
    }

    #[test]
    fn candidates_keep_the_registry_and_no_call_and_never_draw_an_answer_s_name() {
        let mut set = toy(12);
        // Two blocks of one name, as BFCL has: drawing the other would
        // offer the right name as a wrong answer.
        set.tool_names[11] = "tool0".into();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let batch: Vec<usize> = (0..set.examples.len()).collect();
        // Drawing the whole pool makes every candidate set known.
        let (rows, allowed, right) = candidates(&set, &batch, 12, &mut rng).unwrap();
        let (allowed, right) = (
            allowed.to_vec2::<f32>().unwrap(),
            right.to_vec2::<f32>().unwrap(),
        );
        let col = |r: usize| rows.iter().position(|&x| x as usize == r).unwrap();
        for (b, &e) in batch.iter().enumerate() {
            let ex = &set.examples[e];
            let names: Vec<&str> = ex
                .answers
                .iter()
                .map(|&r| set.tool_names[r].as_str())
                .collect();
            for r in 0..12 {
                let expected =
                    ex.registry.contains(&r) || !names.contains(&set.tool_names[r].as_str());
                assert_eq!(allowed[b][col(r)] == 0.0, expected, "example {e}, tool {r}");
            }
            assert_eq!(
                *allowed[b].last().unwrap(),
                0.0,
                "no call is always a candidate"
            );
            let rights: Vec<usize> = (0..right[b].len())
                .filter(|&c| right[b][c] == 0.0)
                .collect();
            if ex.answers.is_empty() {
                assert_eq!(rights, vec![rows.len()]);
            } else {
                assert_eq!(
                    rights,
                    ex.answers.iter().map(|&r| col(r)).collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn fitting_learns_a_separable_toy_set_and_evaluation_counts_it() {
        let set = toy(10);
        let cfg = SelectorConfig::default()
            .with_query_dim(11)
            .with_tool_dim(11)
            .with_hidden(32)
            .with_out_dim(16);
        let vars = VarMap::new();
        let untrained =
            Selector::new(&cfg, seeded_var_builder(&vars, 0, DType::F32, &Device::Cpu)).unwrap();
        let before = Selection::at(&rank(&untrained, &set).unwrap(), 0.0);

        let training = SelectorTraining::default().with_negatives(4).with_train(
            TrainConfig::default()
                .with_steps(300)
                .with_batch(8)
                .with_lr(1e-2)
                .with_warmup(10),
        );
        let mut losses = Vec::new();
        let (_, selector) = fit(&set, &cfg, &training, |_, l| losses.push(l)).unwrap();
        let ranked = rank(&selector, &set).unwrap();
        let after = Selection::at(&ranked, 0.0);
        assert_eq!((after.calls, after.no_calls), (37, 3));
        assert_eq!(after.calls_right, after.calls, "{after:?}");
        assert_eq!(after.no_calls_right, after.no_calls, "{after:?}");
        assert!(
            before.calls_right + before.no_calls_right < 40,
            "{before:?}"
        );
        assert!(losses[losses.len() - 1] < 0.1 * losses[0], "{losses:?}");
        // A veto at a margin above every "no call" score stops nothing.
        let top = ranked
            .iter()
            .map(|r| r.none_margin)
            .fold(f32::MIN, f32::max);
        let lenient = Selection::at(&ranked, top);
        assert_eq!((lenient.calls_vetoed, lenient.no_calls_right), (0, 0));
        assert_eq!(lenient.calls_right, after.calls_right);
    }

    #[test]
    fn a_saved_selector_loads_with_the_same_scores() {
        let set = toy(6);
        let cfg = SelectorConfig::default()
            .with_query_dim(7)
            .with_tool_dim(7)
            .with_hidden(8)
            .with_out_dim(4);
        let training = SelectorTraining::default()
            .with_negatives(2)
            .with_train(TrainConfig::default().with_steps(5).with_batch(4));
        let (vars, selector) = fit(&set, &cfg, &training, |_, _| {}).unwrap();
        let dir = tempfile::tempdir().unwrap();
        vars.save(dir.path().join(loragen_agent::selector::MODEL_FILE))
            .unwrap();
        std::fs::write(
            dir.path().join(loragen_agent::selector::CONFIG_FILE),
            serde_json::to_vec(&serde_json::json!({"selector": cfg, "steps": 5})).unwrap(),
        )
        .unwrap();
        let loaded = Selector::load(dir.path()).unwrap();
        let rows: Vec<u32> = (0..6).collect();
        let scores = |s: &Selector| {
            score(s, &set, &set.queries, &rows)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap()
        };
        assert_eq!(scores(&selector), scores(&loaded));

        std::fs::write(dir.path().join(loragen_agent::selector::CONFIG_FILE), b"{}").unwrap();
        let err = Selector::load(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("config.json") && err.contains("selector"),
            "{err}"
        );
    }
}
