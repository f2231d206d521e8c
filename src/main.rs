//! The `loragen` command-line program.

mod cli;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: cli::Cli) -> anyhow::Result<()> {
    let models = cli.models;
    match cli.command {
        cli::Command::Models(cmd) => cmd::models::run(cmd, &models),
        cli::Command::Generate(args) => cmd::generate::run(args, &models),
        cli::Command::Repl(args) => cmd::repl::run(args, &models),
        cli::Command::Bench(cli::BenchCommand::Runtime(args)) => {
            cmd::bench_runtime::run(args, &models)
        }
        cli::Command::Bench(cli::BenchCommand::Gpt4tools(args)) => {
            cmd::bench_gpt4tools::run(args, &models)
        }
        cli::Command::Data(cmd) => cmd::data::run(cmd, &models),
        cli::Command::Eval(args) => cmd::eval::run(args, &models),
        cli::Command::Adapter(cmd) => cmd::adapter::run(cmd, &models),
        cli::Command::Bench(cli::BenchCommand::Edge(args)) => cmd::bench_edge::run(args, &models),
    }
}

fn init_tracing(verbose: u8) {
    // llama.cpp's own log lines arrive through tracing; keep them quiet
    // unless asked for with -v or RUST_LOG.
    let default = match verbose {
        0 => "warn,llama-cpp-2=error",
        1 => "info,llama-cpp-2=warn",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
