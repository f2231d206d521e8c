//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use loragen_agent::store::ModelChoice;

#[derive(Debug, Parser)]
#[command(name = "loragen", version, about = "Tool-using agents on small edge models with generated LoRA adapters")]
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
    /// Print performance figures.
    #[command(subcommand)]
    Bench(BenchCommand),
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
    #[arg(long, conflicts_with = "prompt_file", required_unless_present = "prompt_file")]
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
    /// in-context (tool definitions in the prompt) or compiled (none; use with --adapter).
    #[arg(long, default_value = "in-context")]
    pub mode: loragen_agent::agent::Mode,
    /// edge, cloud, or a path to a GGUF file.
    #[arg(long, default_value = "edge")]
    pub model: ModelChoice,
    /// A GGUF LoRA adapter to apply.
    #[arg(long, value_name = "FILE")]
    pub adapter: Option<PathBuf>,
    /// Model messages per turn.
    #[arg(long, default_value_t = 5)]
    pub max_steps: usize,
}
