//! How `bench gpt4tools` and `eval` choose tool names, resolved once from
//! their decoding flags: token by token, whole-name scoring, or whole-name
//! scoring plus a trained tool selector's log-probabilities (issue 29),
//! whose "no call" may also veto a call in JSON registries.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use loragen::setup::{HomeDir, Setup};
use loragen_agent::runtime::NameChoice;
use loragen_agent::selector::{CompiledTools, EdgeSelector, Selector, MODEL_FILE};
use loragen_generator::features::{Cloud, FeatureCache, MetaSource};
use loragen_generator::selector::compile_tools;
use loragen_protocol::digest::sha256_file;
use serde::{Deserialize, Serialize};

use crate::cli::DecodingArgs;

/// The selector a run used, as its records' settings name it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectorSetting {
    pub dir: PathBuf,
    /// sha256 of its `model.safetensors`.
    pub sha256: String,
    pub weight: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<usize>,
    /// The margin of "no call" over the best tool above which a call is
    /// vetoed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub veto: Option<f64>,
}

/// What name scoring decided for one query.
#[derive(Debug, Default)]
pub struct NameDecision {
    /// How the name at `Action:` is chosen; `None` decodes it token by
    /// token.
    pub name_choice: Option<NameChoice>,
    /// The selector vetoes a call: the message must answer without one.
    pub veto: bool,
    /// What the selector's pass took, when it ran.
    pub selector_ms: Option<f64>,
    /// "No call"'s log-probability less the best offered tool's, when the
    /// selector ran: what a veto margin is compared with.
    pub none_margin: Option<f64>,
}

/// A loaded selector: its query side on the edge, and each registry's
/// tools compiled by its tool side (once per system part).
struct Loaded {
    edge: EdgeSelector,
    features: FeatureCache,
    cloud: Cloud,
    compiled: HashMap<String, CompiledTools>,
    setting: SelectorSetting,
}

/// The name choice of every query of a run.
pub struct NameScoring {
    whole_names: bool,
    selector: Option<Loaded>,
}

/// The longest prompt the selector reads, in tokens.
const SELECTOR_CONTEXT: u32 = 4096;

impl NameScoring {
    pub fn new(decoding: &DecodingArgs, models: &Setup) -> anyhow::Result<Self> {
        let whole_names = decoding.constrained && decoding.whole_names;
        let selector = match &decoding.selector {
            Some(dir) if whole_names => {
                let selector = Selector::load(dir)?;
                let edge = EdgeSelector::load(&models.edge()?.path, selector, SELECTOR_CONTEXT)?;
                let cloud = models.cloud()?;
                Some(Loaded {
                    edge,
                    features: FeatureCache::new(
                        &models.dir(HomeDir::Features),
                        &cloud.sha256,
                        MetaSource::CrossAttention,
                        0,
                    ),
                    cloud: Cloud::new(&cloud.path),
                    compiled: HashMap::new(),
                    setting: SelectorSetting {
                        dir: dir.clone(),
                        sha256: sha256_file(&dir.join(MODEL_FILE))?,
                        weight: decoding.selector_weight,
                        keep: decoding.selector_keep,
                        veto: decoding.selector_veto,
                    },
                })
            }
            _ => None,
        };
        Ok(NameScoring {
            whole_names,
            selector,
        })
    }

    /// The selector's setting, for the run's records.
    pub fn setting(&self) -> Option<&SelectorSetting> {
        self.selector.as_ref().map(|s| &s.setting)
    }

    /// Whole-name scoring over `names` for the query `prompt`, whose tools
    /// `system` defines; with a selector, each name's prior is its weighted
    /// log-probability, and with a veto margin "no call" ahead of the best
    /// tool by more than it vetoes a call.
    pub fn decide(
        &mut self,
        system: &str,
        prompt: &str,
        names: Vec<String>,
    ) -> anyhow::Result<NameDecision> {
        if !self.whole_names {
            return Ok(NameDecision::default());
        }
        let Some(s) = self.selector.as_mut() else {
            return Ok(NameDecision {
                name_choice: Some(NameChoice::react(names)),
                ..NameDecision::default()
            });
        };
        let tools = match s.compiled.get(system) {
            Some(tools) => tools,
            None => {
                let tools = compile_tools(s.edge.selector(), system, &s.features, &mut s.cloud)?;
                s.compiled.entry(system.to_owned()).or_insert(tools)
            }
        };
        let started = Instant::now();
        let log_probs = s.edge.log_probs(tools, prompt)?;
        let selector_ms = started.elapsed().as_secs_f64() * 1e3;
        let prior = names
            .iter()
            .map(|n| {
                let i = tools.names.iter().position(|t| t == n).ok_or_else(|| {
                    anyhow::anyhow!("the tool {n} is not in the registry the selector compiled")
                })?;
                Ok(f64::from(log_probs[i]))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        // The last log-probability is "no call"'s.
        let none = log_probs
            .last()
            .map_or(f64::NEG_INFINITY, |&p| f64::from(p));
        let best = prior.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let none_margin = none - best;
        let veto = s.setting.veto.is_some_and(|margin| none_margin > margin);
        let weight = s.setting.weight;
        Ok(NameDecision {
            name_choice: Some(
                NameChoice::react(names)
                    .with_prior(prior.into_iter().map(|p| weight * p).collect())
                    .with_keep(s.setting.keep),
            ),
            veto,
            selector_ms: Some(selector_ms),
            none_margin: Some(none_margin),
        })
    }
}
