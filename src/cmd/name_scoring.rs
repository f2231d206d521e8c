//! How `bench gpt4tools` and `eval` choose tool names, resolved once from
//! their decoding flags: token by token, whole-name scoring, or whole-name
//! scoring plus a trained tool selector's log-probabilities (issue 29).

use std::collections::HashMap;
use std::path::PathBuf;

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
    /// log-probability.
    pub fn name_choice(
        &mut self,
        system: &str,
        prompt: &str,
        names: Vec<String>,
    ) -> anyhow::Result<Option<NameChoice>> {
        if !self.whole_names {
            return Ok(None);
        }
        let Some(s) = self.selector.as_mut() else {
            return Ok(Some(NameChoice::react(names)));
        };
        let tools = match s.compiled.get(system) {
            Some(tools) => tools,
            None => {
                let tools = compile_tools(s.edge.selector(), system, &s.features, &mut s.cloud)?;
                s.compiled.entry(system.to_owned()).or_insert(tools)
            }
        };
        let log_probs = s.edge.log_probs(tools, prompt)?;
        let prior = names
            .iter()
            .map(|n| {
                let i = tools.names.iter().position(|t| t == n).ok_or_else(|| {
                    anyhow::anyhow!("the tool {n} is not in the registry the selector compiled")
                })?;
                Ok(s.setting.weight * f64::from(log_probs[i]))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Some(
            NameChoice::react(names)
                .with_prior(prior)
                .with_keep(s.setting.keep),
        ))
    }
}
