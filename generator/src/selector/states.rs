//! The selector's inputs, computed once and cached: the base edge model's
//! query inputs per prompt ([`QueryStates`]) and the tool inputs from the
//! cloud features of each tool block.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use loragen_agent::runtime::{Model, SessionParams};
use loragen_agent::selector::{query_input, tool_input, CompiledTools, Selector};

use super::data::{tool_blocks, SelectorItem};
use crate::error::{Error, Result};
use crate::features::{Cloud, FeatureCache, RegistryFeatures, TextTensors};

/// Part of the cache key: how the query input is read off the prompt.
const QUERY_READER: &str = "query-v1";

/// The base edge model's query inputs ([`query_input`]), cached on disk
/// under `<root>/<edge sha256>/query-v1/`, one file per prompt and request.
#[derive(Debug, Clone)]
pub struct QueryStates {
    store: TextTensors,
    edge: PathBuf,
}

impl QueryStates {
    /// The cache under `root` (usually `$LORAGEN_HOME/edge-states`) for
    /// the edge model at `edge`, whose file has `edge_sha256`.
    pub fn new(root: &Path, edge: &Path, edge_sha256: &str) -> Self {
        QueryStates {
            store: TextTensors::new(root.join(edge_sha256).join(QUERY_READER)),
            edge: edge.to_path_buf(),
        }
    }

    fn key(item: &SelectorItem) -> String {
        format!(
            "{}..{}\n{}",
            item.request.start, item.request.end, item.prompt
        )
    }

    /// The query inputs of `items` (items, 2 * n_embd), from the cache or
    /// from the edge model (loaded only if something is missing; each new
    /// input is cached at once). `progress` gets (done, to compute).
    pub fn inputs(
        &self,
        items: &[SelectorItem],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Tensor> {
        let mut rows: Vec<Option<Tensor>> = items
            .iter()
            .map(|i| self.store.get(&Self::key(i)))
            .collect::<Result<_>>()?;
        let missing: Vec<usize> = (0..items.len()).filter(|&i| rows[i].is_none()).collect();
        if !missing.is_empty() {
            let model = Model::load(&self.edge)?;
            let longest = missing
                .iter()
                .map(|&i| model.tokenize(&items[i].prompt, true).len())
                .max()
                .unwrap_or(0);
            let mut session = model.session(
                SessionParams::default()
                    .with_embeddings(true)
                    .with_n_ctx((longest as u32 + 16).max(64)),
            )?;
            for (done, &i) in missing.iter().enumerate() {
                let _span = tracing::info_span!("query_state", item = %items[i].id).entered();
                let input = query_input(&mut session, &items[i].prompt, items[i].request.clone())?;
                let row = Tensor::from_vec(input, (1, 2 * model.n_embd()), &Device::Cpu)?;
                self.store.store(&Self::key(&items[i]), &row)?;
                // As the cache gives it back (f16), so a rerun fits the
                // same numbers.
                rows[i] = Some(row.to_dtype(DType::F16)?.to_dtype(DType::F32)?);
                progress(done + 1, missing.len());
            }
        }
        let rows: Vec<Tensor> = rows.into_iter().flatten().collect();
        if rows.len() != items.len() {
            return Err(Error::Config("a query input went missing".into()));
        }
        Ok(Tensor::cat(&rows, 0)?)
    }
}

/// The tool inputs ([`tool_input`]) of every distinct block of `items`, by
/// block text, from `features` (which must cover every registry).
pub fn tool_inputs(
    items: &[SelectorItem],
    features: &RegistryFeatures,
) -> Result<HashMap<String, Tensor>> {
    let mut out = HashMap::new();
    for tool in items.iter().flat_map(|i| &i.tools) {
        if out.contains_key(&tool.block) {
            continue;
        }
        let states = features.unit(&tool.block).ok_or_else(|| {
            Error::Config(format!("no cloud features for the tool {}", tool.name))
        })?;
        out.insert(tool.block.clone(), tool_input(states)?);
    }
    Ok(out)
}

/// `system`'s tools embedded by `selector`'s tool tower, in registry
/// order, from the cloud features of their blocks (encoded now when not
/// cached).
pub fn compile_tools(
    selector: &Selector,
    system: &str,
    cache: &FeatureCache,
    cloud: &mut Cloud,
) -> Result<CompiledTools> {
    let tools = tool_blocks(system);
    if tools.is_empty() {
        return Err(Error::Config(
            "the system part lists no tools to select from".into(),
        ));
    }
    let (features, _) = cache.features(tools.iter().map(|t| t.block.as_str()), cloud)?;
    let inputs = tools
        .iter()
        .map(|t| {
            let states = features.unit(&t.block).ok_or_else(|| {
                Error::Config(format!("no cloud features for the tool {}", t.name))
            })?;
            Ok(tool_input(states)?.unsqueeze(0)?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CompiledTools {
        names: tools.into_iter().map(|t| t.name).collect(),
        embeddings: selector.embed_tools(&Tensor::cat(&inputs, 0)?)?,
    })
}
