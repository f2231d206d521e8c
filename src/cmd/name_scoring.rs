//! How `bench gpt4tools` and `eval` choose tool names, resolved once from
//! their decoding flags: token by token, whole-name scoring, or whole-name
//! scoring plus a trained tool selector's log-probabilities (issue 29),
//! whose "no call" may also veto a call in JSON registries, or require one.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use loragen::setup::{HomeDir, Setup};
use loragen_agent::agent::{NameDecision, NamePolicy, SelectorParams, WholeNames};
use loragen_agent::selector::{weights_sha256, CompiledTools, EdgeSelector, Selector};
use loragen_generator::features::{Cloud, FeatureCache, MetaSource};
use loragen_generator::selector::compile_tools;
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
    /// The margin of the best tool over "no call" above which a call is
    /// required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub require: Option<f64>,
}

/// A loaded selector: its query side on the edge, and each registry's
/// tools compiled by its tool side (once per system part).
struct Loaded {
    edge: EdgeSelector,
    features: FeatureCache,
    cloud: Cloud,
    compiled: HashMap<String, CompiledTools>,
    params: SelectorParams,
    setting: SelectorSetting,
}

/// The name choice of every query of a run.
pub struct NameScoring {
    whole_names: bool,
    selector: Option<Loaded>,
}

/// The longest prompt the selector reads, in tokens.
pub const SELECTOR_CONTEXT: u32 = 4096;

impl NameScoring {
    /// Name scoring as `decoding` asks, with the selector `models` resolve
    /// (`--selector`, `LORAGEN_SELECTOR` or the shipped one) when whole
    /// names are scored.
    pub fn new(decoding: &DecodingArgs, models: &Setup) -> anyhow::Result<Self> {
        let whole_names = decoding.constrained && decoding.whole_names;
        let selector = match (whole_names, models.selector()) {
            (true, Some(located)) => {
                let params = decoding.selection.params()?;
                let selector = Selector::load(&located.dir)?;
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
                    params,
                    setting: SelectorSetting {
                        sha256: weights_sha256(&located.dir)?,
                        dir: located.dir,
                        weight: params.weight,
                        keep: params.keep,
                        veto: params.veto,
                        require: params.require,
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
    /// log-probability; with a veto margin "no call" ahead of the best tool
    /// by more than it vetoes a call, and with a require margin the best
    /// tool ahead of "no call" by more than it requires one. In compiled
    /// mode `artifact` is
    /// the registry's compiled adapter, whose selector part gives the
    /// tools' embeddings; otherwise they are compiled here.
    pub fn decide(
        &mut self,
        system: &str,
        prompt: &str,
        names: Vec<String>,
        artifact: Option<&Path>,
    ) -> anyhow::Result<NameDecision> {
        if !self.whole_names {
            return Ok(NameDecision::default());
        }
        let Some(s) = self.selector.as_mut() else {
            return Ok(WholeNames.decide(prompt, &names)?);
        };
        let tools = match s.compiled.entry(system.to_owned()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(match artifact {
                // A compiled artifact carries its registry's tools.
                Some(adapter) => CompiledTools::from_artifact(
                    adapter,
                    &s.setting.sha256,
                    s.edge.selector().config().out_dim,
                )?,
                None => compile_tools(s.edge.selector(), system, &s.features, &mut s.cloud)?,
            }),
        };
        Ok(s.params.decide(&mut s.edge, tools, prompt, &names)?)
    }
}
