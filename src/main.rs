//! The `loragen` command-line program.

mod cli;
mod cmd;
mod progress;

use std::process::ExitCode;

use clap::Parser;

/// Training allocates and frees gigabytes of temporaries a step (candle
/// makes a fresh buffer for every op). glibc's malloc, and mimalloc with its
/// default purge delay, hand large freed blocks back to the kernel, so every
/// step faulted in and zeroed ~3.7 GB of fresh pages: 28% of its CPU time
/// was in the kernel. mimalloc with purging off keeps them for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v3's `mi_option_t` (`mimalloc.h`;
/// libmimalloc-sys 0.1.49 has no constant for it, hence its pinned version).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Turns mimalloc's purging off, unless `MIMALLOC_PURGE_DELAY` is set.
#[allow(unsafe_code)]
fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: mi_option_set stores an integer in mimalloc's option
        // table; it takes no pointers and may be called at any time.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
    }
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = cli::Cli::parse();
    init_tracing(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: many errors
/// already quote their source in their own message, and `{:#}` would
/// print it again.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}

fn run(cli: cli::Cli) -> anyhow::Result<()> {
    // Read once, here: a bad value stops the program before any work.
    loragen::agent::runtime::env_threads()?;
    // Models and the generator are resolved through one value, once.
    let models =
        loragen::setup::Setup::from_env(cli.models.edge_model, cli.models.cloud_model, None)?;
    match cli.command {
        cli::Command::Models(cmd) => cmd::models::run(cmd, &models),
        cli::Command::Generate(args) => cmd::generate::run(args, &models),
        cli::Command::Repl(args) => cmd::repl::run(args, models),
        cli::Command::Bench(cli::BenchCommand::Runtime(args)) => {
            cmd::bench_runtime::run(args, &models)
        }
        cli::Command::Bench(cli::BenchCommand::Gpt4tools(args)) => {
            cmd::bench_gpt4tools::run(args, models)
        }
        cli::Command::Data(cmd) => cmd::data::run(cmd, &models),
        cli::Command::Eval(args) => cmd::eval::run(args, models),
        cli::Command::Suite(args) => cmd::suite::run(args, models),
        cli::Command::Adapter(cmd) => cmd::adapter::run(cmd, &models),
        cli::Command::Bench(cli::BenchCommand::Edge(args)) => cmd::bench_edge::run(args, &models),
        cli::Command::Bench(cli::BenchCommand::Calls(args)) => {
            cmd::bench_calls::run(&args, &models)
        }
        cli::Command::Bench(cli::BenchCommand::Compile(args)) => {
            cmd::bench_compile::run(&args, models)
        }
        cli::Command::Bench(cli::BenchCommand::Agent(args)) => cmd::bench_agent::run(&args, models),
        cli::Command::Bench(cli::BenchCommand::Compare(args)) => cmd::bench_curve::compare(&args),
        cli::Command::Bench(cli::BenchCommand::Ablation(args)) => cmd::bench_ablation::run(&args),
        cli::Command::Bench(cli::BenchCommand::Failures(args)) => cmd::bench_failures::run(&args),
        cli::Command::Bench(cli::BenchCommand::Report(args)) => cmd::bench_report::run(&args),
        cli::Command::Bench(cli::BenchCommand::Curve(args)) => cmd::bench_curve::curve(&args),
        cli::Command::Train(cmd) => cmd::train::run(cmd, &models),
        cli::Command::Compile(args) => cmd::compile::run(args, models),
        cli::Command::Serve(args) => cmd::serve::run(args, models),
        cli::Command::Tools(cli::ToolsCommand::List(args)) => cmd::tools::list(&args),
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
    // Spans report their time when they close: with RUST_LOG=loragen=debug
    // a slow request or turn shows where its time went.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}

#[cfg(test)]
mod tests {
    use super::one_line;

    #[test]
    fn each_cause_is_printed_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let quoted = loragen::protocol::atomic::WriteError {
            path: "out/x.json".into(),
            source: io,
        };
        let err = anyhow::Error::new(quoted).context("eval settings");
        assert_eq!(
            one_line(&err),
            "eval settings: cannot write out/x.json: no such file"
        );
        let plain = anyhow::anyhow!("the cause").context("the context");
        assert_eq!(one_line(&plain), "the context: the cause");
    }
}
