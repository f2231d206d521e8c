//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use loragen_agent::agent::SelectorParams;
use loragen_agent::store::ModelChoice;

#[derive(Debug, Parser)]
#[command(
    name = "loragen",
    version,
    about = "Tool-using agents on small edge models with generated LoRA adapters"
)]
pub struct Cli {
    #[command(flatten)]
    pub models: ModelArgs,

    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// Where the default models come from.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Use this GGUF file as the edge model instead of the cached default.
    #[arg(long, global = true, env = "LORAGEN_EDGE_MODEL", value_name = "PATH")]
    pub edge_model: Option<PathBuf>,

    /// Use this GGUF file as the cloud model instead of the cached default.
    #[arg(long, global = true, env = "LORAGEN_CLOUD_MODEL", value_name = "PATH")]
    pub cloud_model: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fetch, list, verify and locate the default models.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Complete a prompt with a model.
    Generate(GenerateArgs),
    /// Chat with the agent on the edge model and the GPT4Tools tools.
    Repl(ReplArgs),
    /// Print performance figures and run benchmarks.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Build, check and describe corpora.
    #[command(subcommand)]
    Data(DataCommand),
    /// Run and score tool-calling queries in loragen's generic format (e.g. converted BFCL).
    Eval(EvalArgs),
    /// Run the unseen-tools suite (development or report-only sets) with one learner: one table.
    Suite(SuiteArgs),
    /// Export LoRA adapters for llama.cpp and merge them into edge models.
    #[command(subcommand)]
    Adapter(AdapterCommand),
    /// Train the LoRA generator.
    #[command(subcommand)]
    Train(TrainCommand),
    /// Compile a tool registry into a LoRA adapter for the edge model with a trained generator.
    Compile(CompileArgs),
    /// Serve an OpenAI-compatible chat endpoint whose tools are compiled, and/or the generator.
    Serve(ServeArgs),
    /// Inspect the tools of the built-in registry and of MCP servers.
    #[command(subcommand)]
    Tools(ToolsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ToolsCommand {
    /// Print every tool, where it comes from, whether it can run, and its schema.
    List(ToolSourceArgs),
}

/// Where a command's tools come from.
#[derive(Debug, Clone, Args)]
pub struct ToolSourceArgs {
    /// A built-in registry: `gpt4tools` (the 23 GPT4Tools tools). The
    /// default when no --mcp-config is given.
    #[arg(long)]
    pub registry: Option<String>,
    /// A JSON file `{"mcpServers": {NAME: {"command", "args", "env"} or {"url"}}}`
    /// as desktop MCP clients use: the servers are started and their tools
    /// join (see docs/mcp.md).
    #[arg(long, value_name = "FILE")]
    pub mcp_config: Option<PathBuf>,
}

/// Which routes a server offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeRole {
    /// Chat completions on the edge model.
    Edge,
    /// Compiles of tool lists into adapters.
    Cloud,
    /// Both, in one process.
    Both,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[arg(long, value_enum, default_value = "both")]
    pub role: ServeRole,
    /// The generator: a checkpoint directory (compiles in this process), or
    /// for the edge role the URL of a cloud role (`http://host:port`).
    /// Default: $LORAGEN_GENERATOR, else the shipped one.
    #[arg(long, value_name = "DIR|URL")]
    pub generator: Option<String>,
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// 0 picks a free port (printed at start).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Requests that may wait for the edge model; more get 503.
    #[arg(long, default_value_t = 8)]
    pub queue: usize,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
    /// Most tools one request may carry.
    #[arg(long, default_value_t = 128)]
    pub max_tools: usize,
    /// Most parallel calls in one message.
    #[arg(long, default_value_t = 8)]
    pub max_calls: usize,
    /// The model id clients name (`GET /v1/models`).
    #[arg(long, default_value = "loragen-edge")]
    pub model_id: String,
    /// The edge model's context in tokens: a conversation longer than it
    /// gets 400, a reply that reaches it ends with `finish_reason` "length".
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..))]
    pub ctx: u32,
    /// An `mcpServers` file: its servers' tools are offered to chat
    /// requests that carry no tools (compiled at start-up, listed at `GET
    /// /v1/tools`); the calls go back to the client, as with any tools.
    #[arg(long, value_name = "FILE")]
    pub mcp_config: Option<PathBuf>,
    /// Edge role: score every offered tool's whole name at `Action:` and
    /// force the best, with the tool selector's prior and "no call" veto
    /// when there is a selector (compiled artifacts must carry its part).
    #[arg(long)]
    pub whole_names: bool,
    #[command(flatten)]
    pub selection: SelectorArgs,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true).args(["registry", "mcp_config", "system_file"])))]
pub struct CompileArgs {
    /// A built-in registry: `gpt4tools` (the 23 GPT4Tools tools).
    #[arg(long)]
    pub registry: Option<String>,
    /// An `mcpServers` JSON file: the servers' tools are compiled (with
    /// --registry's, if given too).
    #[arg(long, value_name = "FILE")]
    pub mcp_config: Option<PathBuf>,
    /// A file holding the system part to compile (persona, tool lines, protocol rules).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["registry", "mcp_config"])]
    pub system_file: Option<PathBuf>,
    /// The generator: a checkpoint or snapshot directory of `loragen train
    /// generator` (default: $LORAGEN_GENERATOR, else the shipped one).
    #[arg(long, visible_alias = "generator", value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// The tool selector whose part the artifact carries: a directory of
    /// `loragen train selector` (default: $LORAGEN_SELECTOR, else the
    /// shipped one if there is one, else none).
    #[arg(long, value_name = "DIR")]
    pub selector: Option<PathBuf>,
    /// Where to write the GGUF adapter; its manifest goes beside it as <OUT>.manifest.json.
    #[arg(short, long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// Train the generator (meta tokens, routers, experts) on a GPT4Tools-format corpus; resumes from --out.
    Generator(TrainGeneratorArgs),
    /// Write a trained generator as the shipped checkpoint: f16 weights
    /// (BatchNorm statistics f32), config.json, its training log and the
    /// commands that trained it.
    Ship(TrainShipArgs),
    /// Train a plain LoRA baseline (one fixed LoRA, r = 16) on the same data with the same trainer.
    Lora(TrainLoraArgs),
    /// Train the compiled tool selector (base edge model's query state
    /// against each tool's cloud features) and report how often it ranks a
    /// right tool first on the development sets.
    Selector(TrainSelectorArgs),
}

#[derive(Debug, Args)]
pub struct TrainSelectorArgs {
    /// A GPT4Tools-format training file (e.g. data/gpt4tools/train.json).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Only the first N items of --data.
    #[arg(long, value_name = "N", default_value_t = 6000)]
    pub limit: usize,
    /// Leave out every item whose system part lists this tool (repeatable).
    #[arg(long, value_name = "TOOL")]
    pub hold_out: Vec<String>,
    /// Also train on the allowed BFCL train split in this directory, and
    /// report on its validation split.
    #[arg(long, value_name = "DIR")]
    pub bfcl: Option<PathBuf>,
    /// Also train on the call and no-call queries of a set in the generic
    /// format, `DIR/tools.json` and `DIR/queries.jsonl` (repeatable; e.g.
    /// generator/data/mcp-style, MCP-style servers written for this).
    #[arg(long, value_name = "DIR")]
    pub generic_set: Vec<PathBuf>,
    /// The share of tool mentions in training registries whose name is
    /// masked in the block the tool side reads, so that it learns from
    /// descriptions (drawn by --seed; reports are never masked).
    #[arg(long, value_name = "SHARE", default_value_t = 0.0, value_parser = share)]
    pub mask_names: f64,
    /// A GPT4Tools-format file to report on: its items that list a
    /// --hold-out tool (e.g. data/gpt4tools/val_seen.json).
    #[arg(long, value_name = "FILE")]
    pub validate: Option<PathBuf>,
    /// Run directory: model.safetensors, config.json, train.jsonl, report.json.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 2000)]
    pub steps: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Tools of the whole pool added to each example's softmax.
    #[arg(long, default_value_t = 32)]
    pub negatives: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct TrainGeneratorArgs {
    #[command(flatten)]
    pub run: TrainArgs,
    /// Experts per layer.
    #[arg(long, default_value_t = 8)]
    pub experts: usize,
    /// Active experts per registry and layer.
    #[arg(long, default_value_t = 2)]
    pub top_k: usize,
    /// Sample the kept experts in training with Gumbel noise at this
    /// temperature (the gating ablation); KeepTop-K without noise when absent.
    #[arg(long, value_name = "TAU")]
    pub gumbel_tau: Option<f64>,
    /// Weight of the load-balancing (coefficient of variation) loss; 0 turns
    /// it off (the CV-loss ablation).
    #[arg(long, default_value_t = 0.01, value_name = "W")]
    pub cv_weight: f64,
    /// Generate each layer's LoRA factors directly from its meta token,
    /// through a map factorised at this width, instead of mixing experts
    /// (the paper's Table 9 contrast; about 11 M parameters at 64).
    #[arg(long, value_name = "WIDTH", conflicts_with_all = ["warm_start", "gumbel_tau"])]
    pub direct_head: Option<usize>,
    /// Start every expert at this plain LoRA checkpoint or snapshot (from
    /// `loragen train lora`, same rank) plus a little noise, so training
    /// starts from the baseline. Only for a fresh run.
    #[arg(long, value_name = "DIR")]
    pub warm_start: Option<PathBuf>,
    /// The warm start's noise, relative to each factor's standard deviation.
    #[arg(long, default_value_t = 0.01, requires = "warm_start")]
    pub warm_start_noise: f64,
    /// Where the meta tokens come from: `cross-attention` over every token
    /// of the system part (ours), or `cloud-tokens`, the cloud's states at
    /// literal meta-token strings after it, projected (the paper's
    /// variant, the ablation).
    #[arg(long, default_value = "cross-attention", value_name = "SOURCE")]
    pub meta_source: loragen_generator::model::MetaSource,
}

#[derive(Debug, Args)]
pub struct TrainShipArgs {
    /// A generator snapshot of a run (`<run>/snapshots/step-N`).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The run's training log (default: `train.jsonl` of the snapshot's run).
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// The script or file holding the exact commands that trained it.
    #[arg(long, value_name = "FILE")]
    pub command: PathBuf,
    /// Where to write it (default: the checkout's generator/checkpoints/default).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("tools").required(true).args(["with_tools", "without_tools"])))]
pub struct TrainLoraArgs {
    #[command(flatten)]
    pub run: TrainArgs,
    /// Keep the system part (the tool definitions) in the prompts.
    #[arg(long)]
    pub with_tools: bool,
    /// Drop the system part, as compiled mode does.
    #[arg(long)]
    pub without_tools: bool,
}

/// What every training run takes.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// A GPT4Tools-format training file (e.g. data/gpt4tools/train.json).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Run directory: checkpoint/, train.jsonl, snapshots/. An existing checkpoint with the same settings is resumed.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Optimiser steps in all.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Stop (with a checkpoint) after this step, the learning-rate schedule
    /// still being that of --steps; a later run without it goes on. For
    /// short sweeps that share a long run's schedule.
    #[arg(long, value_name = "STEP")]
    pub stop_after: Option<usize>,
    /// Examples per step (at least 2: the generator's BatchNorm).
    #[arg(long, default_value_t = 4)]
    pub batch: usize,
    /// Peak learning rate.
    #[arg(long, default_value_t = 5e-4)]
    pub lr: f64,
    /// Warm-up steps.
    #[arg(long, default_value_t = 50)]
    pub warmup: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Steps between checkpoints.
    #[arg(long, default_value_t = 25)]
    pub checkpoint_every: usize,
    /// Also keep the weights of step 0 and of every Nth step in snapshots/step-N, for validation curves (0: never).
    #[arg(long, default_value_t = 250)]
    pub snapshot_every: usize,
    /// Longest example in edge tokens; longer ones are left out.
    #[arg(long, default_value_t = 256)]
    pub max_seq: usize,
    /// Only the first N items of --data.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Leave out every item whose system part lists this tool (repeatable),
    /// so that its definition and its calls stay unseen in training.
    #[arg(long, value_name = "TOOL")]
    pub hold_out: Vec<String>,
    /// Only the items of the first N distinct system parts (in data
    /// order), e.g. for `--meta-source cloud-tokens`, whose features cost a
    /// full cloud pass per system part.
    #[arg(long, value_name = "N")]
    pub system_parts: Option<usize>,
    /// Also train on the allowed BFCL train split in this directory
    /// (`train_tools.json`, `train_queries.jsonl` from `loragen data bfcl`),
    /// as JSON-protocol targets (rules in docs/generator.md).
    #[arg(long, value_name = "DIR")]
    pub bfcl: Option<PathBuf>,
    /// Times each BFCL item is repeated in the mix (its share grows with it).
    #[arg(long, default_value_t = 1, requires = "bfcl")]
    pub bfcl_repeat: usize,
}

#[derive(Debug, Subcommand)]
pub enum AdapterCommand {
    /// Write a LoRA checkpoint (lora.safetensors + lora.json) as a llama.cpp GGUF adapter.
    Export(AdapterExportArgs),
    /// Write a copy of a model with a GGUF adapter merged into its weights.
    Merge(AdapterMergeArgs),
}

#[derive(Debug, Args)]
pub struct AdapterExportArgs {
    /// The checkpoint directory (holds lora.safetensors and lora.json).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: PathBuf,
    /// The GGUF adapter to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct AdapterMergeArgs {
    /// The GGUF LoRA adapter to merge.
    #[arg(long, value_name = "FILE")]
    pub adapter: PathBuf,
    /// The model to merge into: edge, cloud or a GGUF path.
    #[arg(long, default_value = "edge")]
    pub model: ModelChoice,
    /// The merged GGUF model to write.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Storage of the merged tensors: q8_0 (decodes at the base model's speed), f16 (a little closer to the adapter path, ~5% slower) or f32; every other tensor keeps its bytes.
    #[arg(long = "type", default_value = "q8_0")]
    pub tensor_type: loragen_generator::merge::MergedType,
    /// Adapter scale, as llama.cpp's `--lora-scaled`.
    #[arg(long, default_value_t = 1.0)]
    pub scale: f32,
}

/// How `bench gpt4tools`, `eval` and `suite` decode: the call grammar, and
/// the unseen-tools suite's training-free gains and names-only controls
/// (docs/unseen-tools.md). Resolved once into grammar and generation
/// parameters.
#[derive(Debug, Clone, Default, Args)]
pub struct DecodingArgs {
    /// Constrain each message with the call grammar of the offered tools.
    #[arg(long)]
    pub constrained: bool,
    /// With --constrained: each free-text field as its tool's description
    /// states it, a path without commas or spaces.
    #[arg(long, requires = "constrained")]
    pub field_aware: bool,
    /// With --constrained: at `Action:` score every offered tool's name by
    /// the edge model's mean log-probability per token, in one batch, and
    /// force the best.
    #[arg(long, requires = "constrained")]
    pub whole_names: bool,
    #[command(flatten)]
    pub selection: SelectorArgs,
    /// A names-only control, in a mode without the definitions: one line
    /// before the prompt with the tool names (`names`) or the names with
    /// their argument keys (`keys`).
    #[arg(long, value_name = "HINT")]
    pub name_hint: Option<loragen_protocol::render::NameHint>,
}

/// A trained tool selector and how its scores enter whole-name scoring
/// (issue 29), for commands that also take `--whole-names`.
#[derive(Debug, Clone, Args)]
pub struct SelectorArgs {
    /// With --whole-names: add a trained tool selector's log-probability
    /// of each name (`loragen train selector --out DIR`) to its score
    /// (default: $LORAGEN_SELECTOR, else a shipped one if there is one).
    /// A compiled artifact must carry its part.
    #[arg(long, value_name = "DIR", requires = "whole_names")]
    pub selector: Option<PathBuf>,
    /// The selector's weight against the edge model's mean log-probability.
    #[arg(long, default_value_t = 1.0, requires = "selector")]
    pub selector_weight: f64,
    /// Only the K names the selector ranks highest are candidates; 1
    /// forces its choice.
    #[arg(long, value_name = "K", requires = "selector")]
    pub selector_keep: Option<usize>,
    /// In JSON registries: when the selector scores "no call" more than
    /// MARGIN above the best tool (a difference of log-probabilities), the
    /// message answers without a call.
    #[arg(
        long,
        value_name = "MARGIN",
        requires = "selector",
        allow_negative_numbers = true
    )]
    pub selector_veto: Option<f64>,
    /// When the selector scores the best tool more than MARGIN above "no
    /// call", the message must call a tool; 0 follows the selector's own
    /// ranking.
    #[arg(
        long,
        value_name = "MARGIN",
        requires = "selector",
        allow_negative_numbers = true
    )]
    pub selector_require: Option<f64>,
}

impl Default for SelectorArgs {
    fn default() -> Self {
        let params = SelectorParams::default();
        SelectorArgs {
            selector: None,
            selector_weight: params.weight,
            selector_keep: params.keep,
            selector_veto: params.veto,
            selector_require: params.require,
        }
    }
}

impl SelectorArgs {
    /// The selector's parameters, validated.
    pub fn params(&self) -> loragen_agent::Result<SelectorParams> {
        let params = SelectorParams::default()
            .with_weight(self.selector_weight)
            .with_keep(self.selector_keep)
            .with_veto(self.selector_veto)
            .with_require(self.selector_require);
        params.validate()?;
        Ok(params)
    }
}

impl DecodingArgs {
    /// The grammar's parameters for up to `max_calls` calls a message.
    pub fn grammar_params(&self, max_calls: usize) -> loragen_agent::grammar::GrammarParams {
        loragen_agent::grammar::GrammarParams::default()
            .with_max_calls(max_calls)
            .with_field_aware(self.field_aware)
    }

    /// A name hint is a control for a mode without the definitions
    /// (`definitions`: whether `mode` shows them).
    pub fn check_name_hint(
        &self,
        definitions: bool,
        mode: impl std::fmt::Display,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.name_hint.is_none() || !definitions,
            "--name-hint is a control for a mode without the definitions, not {mode}"
        );
        Ok(())
    }

    /// The names-only control's line for `specs`, if asked for.
    pub fn names_line(&self, specs: &[loragen_protocol::ToolSpec]) -> Option<String> {
        self.name_hint
            .map(|hint| loragen_protocol::render::tool_names_line(specs, hint))
    }
}

/// A group of the unseen-tools suite's sets (docs/unseen-tools.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteGroup {
    /// The development sets, for choices: BFCL validation and the
    /// GPT4Tools items listing a tool of `corpus::HELD_OUT_DEV`.
    Dev,
    /// The report-only sets, run once at the end of a part: the unseen-tool
    /// calls of test_unseen, the BFCL reserved files and the MCP fixture.
    Report,
}

#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Which sets.
    #[arg(long, value_enum)]
    pub sets: SuiteGroup,
    /// in-context, compiled or lora (with --adapter).
    #[arg(long, default_value = "in-context")]
    pub mode: loragen_protocol::Mode,
    /// Compiled mode: the generator that compiles each registry (default:
    /// $LORAGEN_GENERATOR, else the shipped one). On the GPT4Tools held-out
    /// set, give a generator trained without those tools.
    #[arg(long, value_name = "DIR")]
    pub generator: Option<PathBuf>,
    /// A fixed GGUF LoRA adapter: the plain LoRA in mode lora, or one
    /// adapter for every registry in mode compiled.
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
    /// Where `loragen data gpt4tools` wrote the corpus.
    #[arg(long, value_name = "DIR", default_value = "data/gpt4tools")]
    pub gpt4tools: PathBuf,
    /// Where `loragen data bfcl` wrote BFCL (with --reserved for the
    /// report-only sets).
    #[arg(long, value_name = "DIR", default_value = "data/bfcl")]
    pub bfcl: PathBuf,
    #[command(flatten)]
    pub decoding: DecodingArgs,
    /// Only the first N items of each set (a smoke run).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Run directory: one place per set and suite.md.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// A frozen set of the unseen-tools suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteSet {
    /// 44 requests over the pinned time and filesystem servers' 16 tools.
    Mcp,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("tool_source").required(true).args(["tools", "mcp_config", "suite"])))]
pub struct EvalArgs {
    /// JSON array of tool specs (name, description, JSON Schema parameters, optional id).
    #[arg(long, value_name = "FILE")]
    pub tools: Option<PathBuf>,
    /// Take the tools from the servers of this `mcpServers` file instead
    /// (queries name them by their registry names).
    #[arg(long, value_name = "FILE")]
    pub mcp_config: Option<PathBuf>,
    /// JSON lines of queries (id, messages, tools, expect, answers).
    #[arg(long, value_name = "FILE", required_unless_present = "suite")]
    pub queries: Option<PathBuf>,
    /// A frozen set of the unseen-tools suite in place of a tool source
    /// and --queries: `mcp`, the MCP fixture (docs/unseen-tools.md).
    #[arg(long, value_enum, conflicts_with = "queries")]
    pub suite: Option<SuiteSet>,
    /// in-context or in-context-cached (tool specs in the prompt), compiled or lora (none; give --adapter).
    #[arg(long, default_value = "in-context")]
    pub mode: loragen_protocol::Mode,
    /// A GGUF LoRA adapter for the edge model.
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
    /// Compiled mode with a generator checkpoint: each query's tools are
    /// compiled (through the compile cache) into the adapter it runs with.
    #[arg(long, value_name = "DIR")]
    pub generator: Option<PathBuf>,
    /// Predicted calls, one JSON object per line; an existing file is resumed.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// Only the first N queries.
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub decoding: DecodingArgs,
    /// Most calls one message may make under --constrained (parallel calls).
    #[arg(long, default_value_t = 8)]
    pub max_calls: usize,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Records of another mode on the same queries (another run's --out):
    /// the summary then sets them side by side, per category, with the
    /// accuracy difference, compression and speed-up.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// After the summary, the failures by stage (no call, call count,
    /// function, arguments, a call where none is due) and N of them in
    /// full, taken in turn from each stage. With a finished --out it only
    /// reads the records.
    #[arg(long, value_name = "N")]
    pub failures: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Build the loragen GPT4Tools corpus: train, val_seen and test_unseen.
    Gpt4tools(DataGpt4toolsArgs),
    /// Check GPT4Tools files: protocol, listed tools, arities, leaks.
    Check(DataCheckArgs),
    /// Items per tool, share of negatives and token lengths of GPT4Tools files.
    Stats(DataStatsArgs),
    /// Convert the allowed BFCL files (fetched from PyPI) to loragen's generic format.
    Bfcl(DataBfclArgs),
}

#[derive(Debug, Args)]
pub struct DataGpt4toolsArgs {
    /// Directory for train.json, val_seen.json and test_unseen.json.
    #[arg(long, default_value = "data/gpt4tools")]
    pub out: PathBuf,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value_t = 24_000)]
    pub train: usize,
    #[arg(long, default_value_t = 600)]
    pub val_seen: usize,
    #[arg(long, default_value_t = 652)]
    pub test_unseen: usize,
    /// Share of general requests that need no tool.
    #[arg(long, default_value_t = 0.2)]
    pub negative_share: f64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SplitArg {
    /// train when the file name contains "train", else eval.
    Auto,
    /// Leaks of unseen tools or held-out templates are errors.
    Train,
    /// Leaks are counted, not errors.
    Eval,
}

#[derive(Debug, Args)]
pub struct DataCheckArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "auto")]
    pub split: SplitArg,
    /// How many problems to print per file.
    #[arg(long, default_value_t = 20)]
    pub show: usize,
}

#[derive(Debug, Args)]
pub struct DataStatsArgs {
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DataBfclArgs {
    /// Directory for the converted files.
    #[arg(long, default_value = "data/bfcl")]
    pub out: PathBuf,
    /// Read the bfcl-eval wheel from this file instead of fetching it.
    #[arg(long, value_name = "WHEEL")]
    pub wheel: Option<PathBuf>,
    /// Share of function sets held out for validation.
    #[arg(long, default_value_t = 0.15)]
    pub val_share: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Also convert the reserved held-out files (evaluation only).
    #[arg(long)]
    pub reserved: bool,
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// Download, assemble and verify the default models (a no-op when present).
    Fetch {
        /// Which models: edge, cloud or all.
        #[arg(default_value = "all", value_parser = ["edge", "cloud", "all"])]
        which: String,
    },
    /// Show the default models and their state in the cache.
    List,
    /// Re-hash the cached models; a corrupted file is deleted.
    Verify,
    /// Print the path of a model (edge, cloud, or a GGUF path to check).
    Path {
        #[arg(default_value = "edge")]
        model: ModelChoice,
    },
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The prompt text.
    #[arg(
        long,
        conflicts_with = "prompt_file",
        required_unless_present = "prompt_file"
    )]
    pub prompt: Option<String>,
    /// Read the prompt from this file.
    #[arg(long, value_name = "FILE")]
    pub prompt_file: Option<PathBuf>,
    /// edge, cloud, or a path to a GGUF file.
    #[arg(long, default_value = "edge")]
    pub model: ModelChoice,
    /// A GGUF LoRA adapter to apply.
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
    /// Scale of the adapter.
    #[arg(long, default_value_t = 1.0, requires = "adapter")]
    pub adapter_scale: f32,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// A GBNF grammar file (root rule `root`) to constrain the output.
    #[arg(long, value_name = "FILE")]
    pub grammar: Option<PathBuf>,
    /// Stop before this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Sample with this temperature instead of greedy decoding.
    #[arg(long)]
    pub temperature: Option<f32>,
    #[arg(long, default_value_t = 0.95, requires = "temperature")]
    pub top_p: f32,
    #[arg(long, default_value_t = 42, requires = "temperature")]
    pub seed: u32,
    /// Threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Context size in tokens.
    #[arg(long, default_value_t = 4096)]
    pub ctx: u32,
    /// Print timings to stderr.
    #[arg(long)]
    pub stats: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Prefill and decode speed of both default models against bare llama-cpp-2.
    Runtime(BenchRuntimeArgs),
    /// The GPT4Tools benchmark: SR_t, SR_act, SR_args, SR, IoU and latency per mode.
    Gpt4tools(BenchGpt4toolsArgs),
    /// The results page (e.g. docs/results.md) and its chart, one row per run of `bench gpt4tools`.
    Report(BenchReportArgs),
    /// The edge model: LoRA training-step throughput in candle, decode speed of base, adapter and merged models.
    Edge(BenchEdgeArgs),
    /// JSON function calling with and without the compact call grammar, side by side: time, schema validity, accuracy.
    Calls(BenchCallsArgs),
    /// Compile time of the GPT4Tools registry, cold and warm, against a bare cloud prefill of the same text.
    Compile(BenchCompileArgs),
    /// The agent on the 23-tool GPT4Tools registry, as the REPL runs it: prompt tokens and time to first token per mode, against cold in context.
    Agent(BenchAgentArgs),
    /// Two GPT4Tools runs over the same items: each metric's difference with a paired-bootstrap 95% interval.
    Compare(BenchCompareArgs),
    /// Where a run's items went wrong, by stage (no call, wrong tool, wrong arguments, a call where none is due), with N of them in full.
    Failures(BenchFailuresArgs),
    /// The arms of an ablation in one table: SR on all items, on those listing a held-out tool and on its calls, each against the first arm.
    Ablation(BenchAblationArgs),
    /// A training run's curves: loss from train.jsonl and validation SR from DIR/val/step-N, charted as SVG and PNG.
    Curve(BenchCurveArgs),
}

#[derive(Debug, Args)]
pub struct BenchCallsArgs {
    /// JSON array of tool specs (the generic format, e.g. data/bfcl/val_tools.json).
    #[arg(long, value_name = "FILE")]
    pub tools: PathBuf,
    /// JSON lines of queries (e.g. data/bfcl/val_queries.jsonl).
    #[arg(long, value_name = "FILE")]
    pub queries: PathBuf,
    /// The first N queries.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[arg(long, default_value_t = 256)]
    pub max_tokens: usize,
    /// Most calls one message may make under the grammar.
    #[arg(long, default_value_t = 8)]
    pub max_calls: usize,
    /// Also write the figures as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BenchCompileArgs {
    /// A generator checkpoint or snapshot directory (default:
    /// $LORAGEN_GENERATOR, else the shipped one).
    #[arg(long, visible_alias = "generator", value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
}

#[derive(Debug, Args)]
pub struct BenchAgentArgs {
    /// in-context, in-context-cached or compiled (repeatable; default all
    /// three). The first is the baseline of the ratios.
    #[arg(long)]
    pub mode: Vec<loragen_protocol::Mode>,
    /// Compiled mode: the generator that compiles the registry (default:
    /// $LORAGEN_GENERATOR, else the shipped one).
    #[arg(long, value_name = "DIR", conflicts_with = "adapter")]
    pub generator: Option<PathBuf>,
    /// Compiled mode: an adapter compiled from the registry before.
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
    /// Rounds over the 8 requests; each makes every mode's agent afresh.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// Threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct BenchReportArgs {
    /// NAME=DIR or NAME=DIR#MODE: a run directory of `bench gpt4tools`
    /// (and which of its modes, when it holds several); one row each, in
    /// this order.
    #[arg(long, required = true, value_name = "NAME=DIR[#MODE]")]
    pub run: Vec<String>,
    /// The row compression and speed-up compare with (default: the first).
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// The runs' data file, if it moved since they ran.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// The page to write; its chart goes beside it as <stem>-chart.svg/png.
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: PathBuf,
    #[arg(long, default_value = "GPT4Tools results")]
    pub title: String,
}

#[derive(Debug, Args)]
pub struct BenchCompareArgs {
    /// Run directory A (the baseline).
    #[arg(long, value_name = "DIR")]
    pub a: PathBuf,
    /// Run directory B.
    #[arg(long, value_name = "DIR")]
    pub b: PathBuf,
    /// A's mode, when its records hold several.
    #[arg(long)]
    pub mode_a: Option<loragen_protocol::Mode>,
    /// B's mode, when its records hold several.
    #[arg(long)]
    pub mode_b: Option<loragen_protocol::Mode>,
    /// Only the items whose reference answer calls this tool (repeatable),
    /// e.g. the tools a run held out of its training data.
    #[arg(long, value_name = "TOOL")]
    pub calling: Vec<String>,
    #[arg(long, default_value_t = loragen_gpt4tools::paired::RESAMPLES)]
    pub resamples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct BenchFailuresArgs {
    /// A `bench gpt4tools` run directory.
    #[arg(long, value_name = "DIR")]
    pub run: PathBuf,
    /// Its mode, when its records hold several.
    #[arg(long)]
    pub mode: Option<loragen_protocol::Mode>,
    /// Only the items whose reference answer calls this tool (repeatable),
    /// e.g. the tools a learner was trained without.
    #[arg(long, value_name = "TOOL")]
    pub calling: Vec<String>,
    /// Failures shown in full, taken in turn from each stage.
    #[arg(short, default_value_t = 10)]
    pub n: usize,
}

#[derive(Debug, Args)]
pub struct BenchAblationArgs {
    /// NAME=DIR: a `bench gpt4tools` run of one arm; repeat, the reference
    /// arm first. The table uses the items every arm scored.
    #[arg(long, required = true, value_name = "NAME=DIR")]
    pub arm: Vec<String>,
    /// A tool the arms were trained without (repeatable): adds the items
    /// that list one and the items whose answer calls one.
    #[arg(long, value_name = "TOOL")]
    pub held_out: Vec<String>,
    /// Also write the table to this file (Markdown).
    #[arg(long, short = 'o', value_name = "FILE")]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = loragen_gpt4tools::paired::RESAMPLES)]
    pub resamples: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct BenchCurveArgs {
    /// NAME=DIR: a training run directory (train.jsonl, val/step-N/); repeat for several runs.
    #[arg(long, required = true)]
    pub run: Vec<String>,
    /// Where to write the chart: OUT.svg and OUT.png.
    #[arg(long, short = 'o', value_name = "OUT")]
    pub out: PathBuf,
    /// Steps averaged per point of the loss curve.
    #[arg(long, default_value_t = 25)]
    pub window: usize,
    #[arg(long, default_value = "Training loss and validation SR")]
    pub title: String,
    /// Seed of the bootstrap resampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct BenchEdgeArgs {
    /// Sequence lengths of the training steps.
    #[arg(long, value_delimiter = ',', default_value = "128,256")]
    pub seq: Vec<usize>,
    /// Batch sizes of the training steps.
    #[arg(long, value_delimiter = ',', default_value = "1,4")]
    pub batch: Vec<usize>,
    /// Timed training steps per shape (after one warm-up step); the median is reported.
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Positions per sequence that carry a loss (the last ones), and so get logits.
    #[arg(long, default_value_t = 32)]
    pub loss_tokens: usize,
    /// LoRA rank, for training and for the random adapter of the decode runs.
    #[arg(long, default_value_t = 16)]
    pub rank: usize,
    /// Training paths: `shared` (one LoRA for the batch) and `generated` (per-element deltas mixed from an expert pool by KeepTop-K gates).
    #[arg(long, value_delimiter = ',', default_value = "shared,generated")]
    pub path: Vec<TrainPath>,
    /// Experts per layer in the generated path.
    #[arg(long, default_value_t = 8)]
    pub experts: usize,
    /// Active experts per element in the generated path.
    #[arg(long, default_value_t = 2)]
    pub top_k: usize,
    /// Also time each path with deltas on the top N layers only, the lower layers' outputs computed once and cached (0: skip).
    #[arg(long, default_value_t = 9)]
    pub upper_layers: usize,
    /// Sizes of the random adapters' ΔW relative to W, for the agreement table; the first one is also timed.
    #[arg(long, value_delimiter = ',', default_value = "0.01,0.1")]
    pub relative: Vec<f32>,
    /// Tokens to decode per measurement.
    #[arg(long, default_value_t = 128)]
    pub decode_tokens: usize,
    /// Rounds of the four decode variants, each round in a rotated order; medians are reported.
    #[arg(long, default_value_t = 11)]
    pub rounds: usize,
    /// Threads for llama.cpp (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Skip the training-step part.
    #[arg(long)]
    pub no_train: bool,
    /// Skip the decode part.
    #[arg(long)]
    pub no_decode: bool,
    /// Keep the adapter and merged models here (default: a temporary directory).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// How the LoRA deltas of a training step are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TrainPath {
    Shared,
    Generated,
}

impl std::fmt::Display for TrainPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TrainPath::Shared => "shared",
            TrainPath::Generated => "generated",
        })
    }
}

#[derive(Debug, Args)]
pub struct BenchGpt4toolsArgs {
    /// A GPT4Tools JSON file (official or built by `loragen data gpt4tools`).
    #[arg(long, value_name = "FILE", required_unless_present = "rescore")]
    pub data: Option<PathBuf>,
    /// Score the stored predictions of the run in --out again with the current scorer, without generating.
    #[arg(long, requires = "out")]
    pub rescore: bool,
    /// in-context, in-context-cached, compiled or lora (repeatable; default in-context).
    #[arg(long)]
    pub mode: Vec<loragen_protocol::Mode>,
    /// Only the items whose system part lists this tool (repeatable; applied before --limit):
    /// validation on tools a run held out with `train --hold-out`.
    #[arg(long, value_name = "TOOL")]
    pub listing: Vec<String>,
    /// Only the first N items.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Run directory (records.jsonl, report, chart); default runs/gpt4tools/<data name>.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Compiled mode: the generated GGUF LoRA adapter.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["merged_model", "generator"])]
    pub adapter: Option<PathBuf>,
    /// Compiled mode: a generator checkpoint; each item's system part is compiled into its own adapter.
    #[arg(long, value_name = "DIR", conflicts_with = "merged_model")]
    pub generator: Option<PathBuf>,
    /// Compiled mode: an edge model with the generated adapter merged in.
    #[arg(long, value_name = "FILE")]
    pub merged_model: Option<PathBuf>,
    /// Lora mode: a plain LoRA baseline adapter.
    #[arg(long, value_name = "FILE")]
    pub lora_adapter: Option<PathBuf>,
    /// The definitions control (compiled mode with a generator): each
    /// item's adapter is compiled from the system part of a partner item
    /// that lists none of its tools, drawn with this seed; the item keeps
    /// its own prompt, grammar and ground truth.
    #[arg(long, value_name = "SEED")]
    pub partner_seed: Option<u64>,
    /// Lora mode: keep the system part in the prompt.
    #[arg(long)]
    pub lora_with_system: bool,
    /// New tokens per item at most.
    #[arg(long, default_value_t = 96)]
    pub max_tokens: usize,
    #[command(flatten)]
    pub decoding: DecodingArgs,
    /// With --constrained: feed the spans the grammar forces in one batched
    /// decode instead of sampling them (jump-forward decoding).
    #[arg(long, requires = "constrained")]
    pub jump_forward: bool,
    /// Threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct BenchRuntimeArgs {
    /// Threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Tokens to decode per measurement.
    #[arg(long, default_value_t = 64)]
    pub decode_tokens: usize,
    /// Back-to-back repetitions per measurement; medians are reported.
    #[arg(long, default_value_t = 5)]
    pub repeat: usize,
    /// Only these models (edge, cloud or a GGUF path); default both.
    #[arg(long)]
    pub model: Vec<ModelChoice>,
    /// Also write the figures as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplArgs {
    /// in-context or in-context-cached (tool definitions in the prompt), compiled or lora (none; use with --adapter).
    #[arg(long, default_value = "in-context")]
    pub mode: loragen_protocol::Mode,
    /// edge, cloud, or a path to a GGUF file.
    #[arg(long, default_value = "edge")]
    pub model: ModelChoice,
    /// A GGUF LoRA adapter to apply (a compiled one is checked against its manifest).
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
    #[command(flatten)]
    pub tools: ToolSourceArgs,
    /// Compile the registry with this generator and apply the result,
    /// instead of --adapter: a checkpoint directory (through the compile
    /// cache) or the URL of a cloud role (`loragen serve`, `http://host:port`).
    #[arg(long, value_name = "DIR|URL")]
    pub generator: Option<String>,
    /// Model messages per turn.
    #[arg(long, default_value_t = 5)]
    pub max_steps: usize,
    /// Constrain tool names and arguments with the call grammar in every
    /// mode (always on in compiled and lora modes).
    #[arg(long)]
    pub constrained: bool,
    /// The model's context in tokens; a conversation that outgrows it needs
    /// `:reset`.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u32).range(16..))]
    pub ctx: u32,
    /// In constrained messages, score every tool's whole name at `Action:`
    /// and force the best, with the tool selector's prior when there is one.
    #[arg(long)]
    pub whole_names: bool,
    #[command(flatten)]
    pub selection: SelectorArgs,
}

/// A share: a number in [0, 1].
fn share(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        Ok(v) => Err(format!("{v} is not a share in [0, 1]")),
        Err(e) => Err(format!("{text:?} is not a number ({e})")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// clap's own checks of every command: flags that `requires` another
    /// (the selector's, flattened into several commands) name one that
    /// exists there.
    #[test]
    fn every_command_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    /// The `loragen ...` lines of the shell blocks in README.md and docs/,
    /// continuations joined, each with its optional `[...]` parts dropped,
    /// the first of `a|b` alternatives taken and anything after a pipe,
    /// redirect or comment cut: (file, line) pairs.
    fn documented_commands() -> Vec<(String, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = vec![root.join("README.md")];
        let mut docs: Vec<_> = std::fs::read_dir(root.join("docs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .collect();
        docs.sort();
        files.extend(docs);
        let mut commands = Vec::new();
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let name = file.strip_prefix(root).unwrap().display().to_string();
            for block in text.split("```sh\n").skip(1) {
                let block = block.split("```").next().unwrap().replace("\\\n", " ");
                for line in block.lines() {
                    let line = line.trim();
                    // Environment assignments before the command.
                    let line = line
                        .split_whitespace()
                        .skip_while(|w| w.contains('=') && !w.starts_with('-'))
                        .collect::<Vec<_>>()
                        .join(" ");
                    if line.starts_with("loragen ") && !line.contains("[@]") {
                        commands.push((name.clone(), line));
                    }
                }
            }
        }
        commands
    }

    /// A documented line as arguments: optional parts dropped, split as a
    /// shell would (quotes honoured, `#` comments dropped), cut at a pipe,
    /// redirect or `&&`, and the first of `a|b` alternatives kept.
    fn arguments(line: &str) -> Vec<String> {
        let mut text = line.to_owned();
        while let Some(open) = text.rfind('[') {
            let Some(close) = text[open..].find(']') else {
                break;
            };
            text.replace_range(open..open + close + 1, "");
        }
        shlex::split(&text)
            .unwrap_or_default()
            .into_iter()
            .take_while(|w| !matches!(w.as_str(), "|" | ">" | ">>" | "&&" | ";"))
            .filter(|w| w != "...")
            .map(|w| match w.split_once('|') {
                Some((first, _)) if !w.contains(' ') => first.to_owned(),
                _ => w,
            })
            .collect()
    }

    /// Every command the docs show parses with today's flags: a renamed
    /// or removed flag fails here, naming the file and the line.
    #[test]
    fn every_documented_command_parses() {
        let commands = documented_commands();
        assert!(commands.len() > 50, "{} commands found", commands.len());
        let failures: Vec<String> = commands
            .iter()
            .filter_map(|(file, line)| {
                Cli::try_parse_from(arguments(line)).err().map(|e| {
                    format!(
                        "{file}: {line}\n  {}",
                        e.to_string().lines().next().unwrap_or("")
                    )
                })
            })
            .collect();
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn documented_lines_become_arguments() {
        assert_eq!(
            arguments("loragen repl [--mode in-context|compiled] --out 'a b' | tee log"),
            ["loragen", "repl", "--out", "a b"]
        );
        assert_eq!(
            arguments("loragen models fetch edge|cloud # why"),
            ["loragen", "models", "fetch", "edge"]
        );
    }

    #[test]
    fn a_share_is_a_number_in_zero_to_one() {
        assert_eq!(share("0.25"), Ok(0.25));
        assert_eq!(share("1"), Ok(1.0));
        assert!(share("1.5").unwrap_err().contains("not a share"));
        assert!(share("-0.1").is_err() && share("NaN").is_err());
        assert!(share("half").unwrap_err().contains("not a number"));
    }
}
