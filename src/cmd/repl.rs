//! `loragen repl`: an interactive agent on the edge model.

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use console::style;
use loragen_agent::agent::{
    Agent, AgentConfig, AgentFinish, Event, NameDecision, NamePolicy, Outcome,
};
use loragen_agent::runtime::{AdapterHost, Session, SessionParams};
use loragen_protocol::Mode;
use rustyline::error::ReadlineError;

use loragen::setup::{dir_or_url, Setup};
use loragen_protocol::render::system_prompt;

use super::name_scoring::NameScoring;
use super::GIVEN_ADAPTER;
use crate::cli::{DecodingArgs, ReplArgs};
use loragen_agent::toolset::Toolset;

/// Longest line the REPL hands to the model.
const MAX_INPUT_CHARS: usize = 8_000;

/// What a turn that ran into the model's context says: one line, and the
/// REPL goes on.
const CONTEXT_FULL: &str = "context full: :reset or shorter input";

const HELP: &str = ":tools  list tools | :mode in-context|in-context-cached|compiled|lora | :compile  compile the tools again (compiled mode or --generator) | :image PATH  share an image | :stats | :reset | :quit";

/// The one line shown when a mode without definitions in context has no
/// adapter to carry them.
fn missing_adapter_warning(mode: Mode, has_adapter: bool) -> Option<String> {
    (!mode.definitions_in_context() && !has_adapter).then(|| {
        format!(
            "warning: {mode} mode without an adapter: the model sees neither the tool definitions nor an adapter; \
             restart with --mode compiled (compiles the tools with --generator DIR|URL, LORAGEN_GENERATOR or the shipped generator), --adapter FILE (a GGUF LoRA adapter, e.g. from `loragen adapter export`) or use --mode in-context"
        )
    })
}

/// Where the REPL's adapter comes from.
enum AdapterPlan {
    None,
    /// `--adapter FILE`.
    Given(PathBuf),
    /// Compiled from the registry: `--generator URL` (a cloud role), else
    /// the generator the setup resolves (`--generator DIR`,
    /// `LORAGEN_GENERATOR`, the shipped one).
    Compile {
        url: Option<String>,
    },
}

/// Compiles the REPL's tools into `host` through a fresh source (the
/// checkpoint may have moved on since the last compile) and returns the
/// host's key for the adapter and the artifact's file.
fn compile_registry(
    models: &Setup,
    url: Option<&str>,
    toolset: &Toolset,
    host: &mut AdapterHost,
) -> anyhow::Result<(String, PathBuf)> {
    let system = system_prompt(&toolset.specs());
    let source = models.adapter_source(url)?;
    let what = match url {
        Some(url) => url.to_owned(),
        None => {
            let g = models.generator()?;
            format!("the {} generator {}", g.origin, g.dir.display())
        }
    };
    let spinner = indicatif::ProgressBar::new_spinner().with_message(format!(
        "compiling the {}-tool registry with {what}",
        toolset.registry.len(),
    ));
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    let mut cache = models.adapter_cache(source);
    // A recompile replaces what the host holds for this registry.
    host.release(&loragen_protocol::render::fingerprint(&system));
    let ensured = cache.ensure(host, &system)?;
    spinner.finish_with_message(format!(
        "compiled the registry{} into {}",
        if ensured.on_disk {
            " (kept from before)"
        } else {
            ""
        },
        cache.path_of(&ensured.key).display()
    ));
    let path = cache.path_of(&ensured.key);
    Ok((ensured.key, path))
}

/// The REPL's name policy (`--whole-names`): name scoring as `eval`
/// resolves it, over the REPL's registry, the selector's tools taken from
/// the compiled artifact when there is one.
struct ReplNames {
    scoring: NameScoring,
    system: String,
    artifact: Option<PathBuf>,
}

impl NamePolicy for ReplNames {
    fn decide(&mut self, prompt: &str, names: &[String]) -> loragen_agent::Result<NameDecision> {
        self.scoring
            .decide(
                &self.system,
                prompt,
                names.to_vec(),
                self.artifact.as_deref(),
            )
            .map_err(|e| loragen_agent::Error::NamePolicy(e.into()))
    }
}

/// How a conversation with one agent ended.
enum Exit {
    Quit,
    /// `:compile`: compile the registry again and go on with the new adapter.
    Recompile,
}

pub fn run(args: ReplArgs, models: Setup) -> anyhow::Result<()> {
    let (dir, url) = dir_or_url(args.generator.as_deref());
    let models = models
        .with_generator(dir)
        .with_selector(args.selection.selector.clone());
    let path = models.model(&args.model)?;
    // The model outlives each agent: `:compile` ends the agent (its
    // session borrows the model), loads the new adapter into the model,
    // and starts a new agent with the old one's memory and mode.
    let toolset = Toolset::load(
        args.tools.registry.as_deref(),
        args.tools.mcp_config.as_deref(),
        false,
    )?;
    for warning in toolset.warnings() {
        eprintln!("{}", style(format!("warning: {warning}")).yellow());
    }
    let mut host = models.host(&args.model)?;
    // An explicit adapter wins; compiled mode needs no flag (the default
    // generator compiles the registry).
    let plan = match (&args.generator, &args.adapter) {
        (Some(_), Some(_)) => anyhow::bail!("give --adapter or --generator, not both"),
        (None, Some(adapter)) => AdapterPlan::Given(adapter.clone()),
        (Some(_), None) => AdapterPlan::Compile { url },
        (None, None) if args.mode == Mode::Compiled => AdapterPlan::Compile { url: None },
        (None, None) => AdapterPlan::None,
    };
    // The adapter's host key, and the compiled artifact's file (whose
    // selector part --whole-names reads).
    let (mut adapter, artifact) = match &plan {
        AdapterPlan::None => (None, None),
        AdapterPlan::Given(file) => {
            host.hold_adapter(GIVEN_ADAPTER, file)?;
            let compiled = args.mode == Mode::Compiled;
            (
                Some(GIVEN_ADAPTER.to_owned()),
                compiled.then(|| file.clone()),
            )
        }
        AdapterPlan::Compile { url } => {
            let (key, path) = compile_registry(&models, url.as_deref(), &toolset, &mut host)?;
            (Some(key), Some(path))
        }
    };
    let mut names: Option<Box<dyn NamePolicy>> = if args.whole_names {
        let decoding = DecodingArgs {
            constrained: true,
            whole_names: true,
            selection: args.selection.clone(),
            ..DecodingArgs::default()
        };
        Some(Box::new(ReplNames {
            scoring: NameScoring::new(&decoding, &models)?,
            system: system_prompt(&toolset.specs()),
            artifact,
        }))
    } else {
        None
    };
    let tools = Arc::clone(&toolset.registry);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut editor = rustyline::DefaultEditor::new()?;
    // Ctrl-C during generation stops the turn, not the REPL. Installed
    // after the editor, which otherwise keeps SIGINT for itself; while a
    // line is being read the terminal is raw and Ctrl-C arrives as a key.
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    let history = Some(models.home().join("repl_history"));
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    println!(
        "loragen agent on {} ({} mode). {HELP}",
        path.display(),
        args.mode
    );
    let mut mode = args.mode;
    let mut memory: Vec<(String, String)> = Vec::new();
    loop {
        let session_params = SessionParams::default().with_n_ctx(args.ctx);
        let session = host.session_with(&session_params, adapter.as_deref())?;
        let config = AgentConfig::for_mode(mode).with_max_steps(args.max_steps);
        let config = config
            .clone()
            .with_constrained(config.constrained || args.constrained);
        let mut agent = Agent::new(session, Arc::clone(&tools), config)?;
        if let Some(policy) = names.take() {
            agent = agent.with_name_policy(policy);
        }
        for (human, ai) in &memory {
            agent.remember(human.clone(), ai.clone());
        }
        if let Some(warning) = missing_adapter_warning(mode, adapter.is_some()) {
            eprintln!("{}", style(warning).yellow());
        }
        let chat = Chat {
            runtime: &runtime,
            toolset: &toolset,
            interrupted: &interrupted,
            has_adapter: adapter.is_some(),
            can_compile: matches!(plan, AdapterPlan::Compile { .. }),
            constrained: args.constrained,
            interactive: std::io::stdin().is_terminal(),
        };
        let exit = chat.converse(&mut agent, &mut editor)?;
        mode = agent.config().mode;
        memory = agent.memory().to_vec();
        names = agent.take_name_policy();
        match exit {
            Exit::Quit => break,
            Exit::Recompile => {
                drop(agent);
                if let AdapterPlan::Compile { url } = &plan {
                    match compile_registry(&models, url.as_deref(), &toolset, &mut host) {
                        // The same registry: the artifact's file is the same.
                        Ok((key, _)) => adapter = Some(key),
                        Err(e) => eprintln!("{}", style(format!("compile failed: {e:#}")).red()),
                    }
                }
            }
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    if let Some(servers) = toolset.servers {
        servers.shutdown();
    }
    Ok(())
}

/// What one conversation needs besides its agent.
struct Chat<'a> {
    runtime: &'a tokio::runtime::Runtime,
    toolset: &'a Toolset,
    interrupted: &'a AtomicBool,
    has_adapter: bool,
    can_compile: bool,
    /// `--constrained`: the grammar stays on whatever the mode.
    constrained: bool,
    /// Whether input comes from a terminal.
    interactive: bool,
}

impl Chat<'_> {
    /// Reads lines and runs turns until `:quit`, end of input or `:compile`.
    fn converse(
        &self,
        agent: &mut Agent<Session<'_>>,
        editor: &mut rustyline::DefaultEditor,
    ) -> anyhow::Result<Exit> {
        let mut last: Option<Outcome> = None;
        loop {
            let line = match editor.readline(&format!("{} ", style("you>").green().bold())) {
                Ok(line) => line,
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => return Ok(Exit::Quit),
                Err(ReadlineError::Io(e)) if e.kind() == std::io::ErrorKind::InvalidData => {
                    eprintln!("input is not valid UTF-8; try again");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            // Piped input is not echoed by a terminal: print it, so a
            // transcript shows what was asked.
            if !self.interactive {
                println!("{} {line}", style("you>").green().bold());
            }
            let _ = editor.add_history_entry(line);
            if line.chars().count() > MAX_INPUT_CHARS {
                eprintln!(
                    "input of {} characters is too long (limit {MAX_INPUT_CHARS})",
                    line.chars().count()
                );
                continue;
            }
            match line
                .split_once(' ')
                .map_or((line, ""), |(c, rest)| (c, rest.trim()))
            {
                (":quit" | ":q", _) => return Ok(Exit::Quit),
                (":help", _) => println!("{HELP}"),
                (":compile", _) if self.can_compile => return Ok(Exit::Recompile),
                (":compile", _) => eprintln!(
                    "no generator to compile with: restart with --generator DIR|URL (a generator checkpoint or a cloud role)"
                ),
                (":tools", _) => print!("{}", super::tools::describe(self.toolset, false)),
                (":reset", _) => {
                    agent.reset();
                    agent.model_mut().clear_cache();
                    println!("conversation cleared");
                }
                (":stats", _) => print_stats(agent, last.as_ref()),
                (":mode", mode) => match mode.parse::<Mode>() {
                    Ok(mode) => {
                        agent.set_mode(mode);
                        if self.constrained {
                            agent.set_constrained(true);
                        }
                        if let Some(warning) = missing_adapter_warning(mode, self.has_adapter) {
                            eprintln!("{}", style(warning).yellow());
                        }
                        println!(
                            "mode {mode}, constrained decoding {}",
                            agent.config().constrained
                        );
                    }
                    Err(e) => eprintln!("{e}"),
                },
                (":image", path) if !path.is_empty() => {
                    if let Err(why) = check_image(Path::new(path)) {
                        eprintln!("{}", style(format!(":image {path}: {why}")).red());
                        continue;
                    }
                    agent.remember(
                        format!("Provide an image named {path}. Description: an image shared by the user. Understand the image using tools."),
                        "Received.",
                    );
                    println!("image {path} added to the conversation");
                }
                (cmd, _) if cmd.starts_with(':') => eprintln!("unknown command {cmd}; {HELP}"),
                _ => {
                    self.interrupted.store(false, Ordering::SeqCst);
                    let outcome = match self.runtime.block_on(
                        agent.run(line, &mut |event| show(event, self.interrupted)),
                    ) {
                        Ok(outcome) => outcome,
                        Err(e) if e.context_limit().is_some() => {
                            eprintln!("{}", style(CONTEXT_FULL).yellow());
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    };
                    println!();
                    if outcome.finish == AgentFinish::ContextFull {
                        eprintln!("{}", style(CONTEXT_FULL).yellow());
                    } else if outcome.answer.is_none() {
                        println!(
                            "{}",
                            style(format!("(turn ended: {:?})", outcome.finish)).yellow()
                        );
                    }
                    last = Some(outcome);
                }
            }
        }
    }
}

/// Why `path` cannot be shared as an image, if it cannot: it must be a
/// readable file in a format the image tools decode (PNG or JPEG).
fn check_image(path: &Path) -> Result<(), String> {
    if !path.is_file() {
        return Err("no such file".into());
    }
    // The format by content, not by the file's name.
    let mut head = [0u8; 32];
    let n = std::fs::File::open(path)
        .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
        .map_err(|e| format!("cannot read it ({e})"))?;
    match image::guess_format(&head[..n]) {
        Ok(image::ImageFormat::Png | image::ImageFormat::Jpeg) => Ok(()),
        Ok(other) => Err(format!("{other:?} images are not supported (PNG or JPEG)")),
        Err(_) => Err("not an image (PNG or JPEG)".into()),
    }
}

/// Prints one event; asks to stop once Ctrl-C was pressed.
fn show(event: &Event, interrupted: &AtomicBool) -> ControlFlow<()> {
    use std::io::Write;
    match event {
        // The model's message streams as it is written, and is shown only
        // so: the parsed thought, action and answer would repeat it.
        Event::Text(t) => {
            print!("{t}");
            let _ = std::io::stdout().flush();
        }
        Event::Thought(_) | Event::Action { .. } => {}
        Event::Observation { text, failed } => {
            let label = if *failed {
                style("observation (error):").red().bold()
            } else {
                style("observation:").magenta().bold()
            };
            println!("{label} {text}");
        }
        Event::Answer(_) => println!(),
        Event::StepDone { .. } => {}
    }
    if interrupted.load(Ordering::SeqCst) {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

fn print_stats(agent: &Agent<Session<'_>>, last: Option<&Outcome>) {
    println!("tokens in the KV cache: {}", agent.model().cached_tokens());
    let Some(outcome) = last else {
        println!("no turn yet");
        return;
    };
    for (i, step) in outcome.steps.iter().enumerate() {
        println!(
            "step {}: {} | tool {:.1} ms",
            i + 1,
            step.stats,
            step.tool_ms
        );
    }
}
