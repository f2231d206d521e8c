//! `loragen generate`: complete a prompt with a model.

use std::io::Write;
use std::ops::ControlFlow;

use anyhow::Context;
use loragen_agent::runtime::{GenerateParams, Sampling, SessionParams};

use crate::cli::GenerateArgs;
use loragen::setup::Setup;

pub fn run(args: GenerateArgs, models: &Setup) -> anyhow::Result<()> {
    let prompt = match (&args.prompt, &args.prompt_file) {
        (Some(text), _) => text.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read prompt file {}", file.display()))?,
        (None, None) => anyhow::bail!("give --prompt or --prompt-file"),
    };
    let grammar = match &args.grammar {
        Some(file) => Some(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read grammar file {}", file.display()))?,
        ),
        None => None,
    };
    let sampling = match args.temperature {
        Some(temperature) => Sampling::Random {
            temperature,
            top_p: args.top_p,
            seed: args.seed,
        },
        None => Sampling::Greedy,
    };
    let params = GenerateParams::default()
        .with_max_tokens(args.max_tokens)
        .with_sampling(sampling)
        .with_stop(args.stop.clone())
        .with_grammar(grammar);

    let path = models.model(&args.model)?;
    // Through the host, so a compiled adapter's manifest is checked
    // against the model like everywhere else.
    let mut host = models.host(&args.model)?;
    let mut adapter = args
        .adapter
        .as_ref()
        .map(|p| host.load_adapter(p).map(|(adapter, _)| adapter))
        .transpose()?;
    let mut session_params = SessionParams::default().with_n_ctx(args.ctx);
    if let Some(threads) = args.threads {
        session_params = session_params.with_threads(threads);
    }
    let model = host.model()?;
    let mut session = model.session(session_params)?;
    if let Some(adapter) = adapter.as_mut() {
        session.set_adapter(adapter, args.adapter_scale)?;
    }

    let mut stdout = std::io::stdout().lock();
    let completion = session.generate_streaming(&prompt, &params, |piece| {
        // A closed pipe (e.g. `| head`) ends generation instead of failing.
        match stdout
            .write_all(piece.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => ControlFlow::Continue(()),
            Err(_) => ControlFlow::Break(()),
        }
    })?;
    let _ = writeln!(stdout);
    if args.stats {
        eprintln!("model: {} ({})", path.display(), model.arch());
        eprintln!("finish: {:?}", completion.finish);
        eprintln!("{}", completion.stats);
    }
    Ok(())
}
