//! `strata`, the command line of the Strata toolkit: `strata train <model>` trains a model on
//! real data and writes a run folder; `strata resume`, `strata sample` and `strata eval` work
//! on a run folder.
//!
//! ```text
//! strata train gpt --steps 2000 --out runs/shakespeare
//! strata resume runs/shakespeare
//! strata sample runs/shakespeare --prompt "ROMEO:" --tokens 300 --temperature 0.8 --top-k 20
//! strata eval runs/shakespeare
//! ```
//!
//! Every failure is reported as one `error: ...` line on stderr with a non-zero exit status.

mod checkpoint;
mod cli;
mod config;
mod fsutil;
mod plot;
mod progress;
mod rundir;
mod tasks;
mod trainer;

use std::io::Write;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::error::ErrorKind;
use clap::Parser;

use crate::cli::{Cli, Command, EvalArgs, ResumeArgs, SampleArgs, TrainArgs};
use crate::config::{ModelKind, RunConfig};
use crate::rundir::{RunDir, RunState};
use crate::trainer::{SampleOptions, Task};

fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let location = info
            .location()
            .map_or(String::new(), |l| format!(" at {l}"));
        eprintln!("error: internal error{location}: {}", one_line(&message));
    }));

    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return clap_error(err),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&format!("{err:#}")));
            ExitCode::FAILURE
        }
    }
}

/// Help and version go out as clap writes them; a usage error becomes one line.
fn clap_error(err: clap::Error) -> ExitCode {
    match err.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = err.print();
            if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            // The message is the text before the usage block, sometimes over several lines
            // (a list of missing arguments).
            let rendered = err.render().to_string();
            let message: Vec<&str> = rendered
                .lines()
                .map(str::trim)
                .take_while(|line| !line.is_empty() && !line.starts_with("Usage:"))
                .collect();
            let message = message.join(" ");
            let message = message.strip_prefix("error: ").unwrap_or(&message);
            eprintln!("error: {message} (see `strata --help`)");
            ExitCode::from(2)
        }
    }
}

/// Joins the lines of a message so that every error is one line.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn run(cli: Cli) -> Result<()> {
    let threads = match &cli.command {
        Command::Train(args) => args.run.threads,
        Command::Resume(args) => args.run.threads,
        Command::Sample(args) => args.threads,
        Command::Eval(args) => args.threads,
    };
    set_threads(threads)?;
    // The command runs on a worker of the pool, so the thread that runs the ops takes part in
    // their parallel kernels (see `strata_tensor::parallel::in_pool`).
    strata_tensor::parallel::in_pool(|| dispatch(cli))
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(args) => train(args),
        Command::Resume(args) => resume(args),
        Command::Sample(args) => sample(args),
        Command::Eval(args) => eval(args),
    }
}

/// Builds rayon's global pool with `threads` workers (default: all cores).
fn set_threads(threads: Option<usize>) -> Result<()> {
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("cannot build the thread pool")?;
    }
    Ok(())
}

fn train(args: TrainArgs) -> Result<()> {
    let model = ModelKind::parse(&args.model)?;
    let flags = args.overrides.to_overrides(args.data.clone());
    let mut config = RunConfig::resolve(
        model,
        tasks::defaults(model),
        args.config.as_deref(),
        &flags,
    )?;
    // An absolute path lets `resume` find the data from any folder; a path that does not
    // exist is left for the model's loader to report, with its hint on how to get the data.
    if let Some(absolute) = config
        .train
        .data
        .as_ref()
        .and_then(|p| p.canonicalize().ok())
    {
        config.train.data = Some(absolute);
    }

    config.train.validate_hyperparameters()?;
    check_applies(&config)?;
    let mut task = tasks::build(&config, None)?;
    config.model_config = task.model_config_json();
    if task.steps_per_epoch().is_none() && config.train.epochs.is_some() {
        bail!("--epochs (train.epochs) applies to lenet and mlp only; {model} trains for --steps");
    }
    config.train.resolve_epochs(task.steps_per_epoch());
    config.train.validate()?;
    // The first files and the step-0 checkpoint go into a temporary folder renamed into place
    // at the end, so a kill in this window leaves no half-made run folder.
    let staged = RunDir::stage(args.out.as_deref(), model)?;
    staged.run().write_config(&config)?;
    task.write_run_files(staged.run())?;
    let state = RunState {
        model,
        step: 0,
        total_steps: config.train.steps,
        seed: config.train.seed,
        best_val_loss: None,
        last_val_loss: None,
        elapsed_secs: 0.0,
        finished: false,
    };
    trainer::save_checkpoint(staged.run(), &state, task.as_ref())?;
    staged.run().write_metrics(&[])?;
    let run = staged.commit()?;

    print_summary(&run, &config, task.as_ref(), "training");
    trainer::train(
        &run,
        &config,
        task.as_mut(),
        state,
        Vec::new(),
        args.run.stop_at,
    )?;
    Ok(())
}

/// Rejects training values that the model would ignore: `eval_iters` is used by the
/// language models only (the others evaluate on a whole, fixed set).
fn check_applies(config: &RunConfig) -> Result<()> {
    let model = config.model;
    let is_lm = matches!(model, ModelKind::Gpt | ModelKind::CharRnn);
    let default_iters = tasks::defaults(model).1.eval_iters;
    if !is_lm && config.train.eval_iters != default_iters {
        bail!(
            "--eval-iters (train.eval_iters) applies to gpt and char-rnn only; {model} \
             evaluates on its whole held-out set"
        );
    }
    Ok(())
}

fn resume(args: ResumeArgs) -> Result<()> {
    let run = RunDir::open(&args.run_dir)?;
    let mut state = trainer::recover(&run)?;
    trainer::check_model_step(&run, &state)?;
    let mut config = run.read_config(Some(state.model))?;
    if let Some(steps) = args.steps {
        if steps < state.step {
            bail!(
                "--steps {steps} is below the checkpoint step {}",
                state.step
            );
        }
        config.train.steps = steps;
        state.total_steps = steps;
        run.write_config(&config)?;
    }
    if state.step >= config.train.steps {
        bail!(
            "{} is finished ({} steps); pass --steps N to train it further",
            run.path().display(),
            state.step
        );
    }

    let mut task = tasks::build(&config, Some(&run))?;
    trainer::load_checkpoint(&run, &state, task.as_mut())?;
    let records = trainer::records_up_to(run.read_metrics()?, state.step);
    run.write_metrics(&records)?;

    print_summary(&run, &config, task.as_ref(), "resuming");
    eprintln!("resuming from step {}/{}", state.step, config.train.steps);
    trainer::train(
        &run,
        &config,
        task.as_mut(),
        state,
        records,
        args.run.stop_at,
    )?;
    Ok(())
}

/// Opens a run folder and loads its model for sampling or evaluation.
fn open_trained(run_dir: &std::path::Path) -> Result<(RunDir, RunConfig, Box<dyn Task>)> {
    let run = RunDir::open(run_dir)?;
    let state = trainer::recover(&run)?;
    trainer::check_model_step(&run, &state)?;
    let config = run.read_config(Some(state.model))?;
    let mut task = tasks::build(&config, Some(&run))?;
    trainer::load_model(&run, &state, task.as_mut())?;
    Ok((run, config, task))
}

fn sample(args: SampleArgs) -> Result<()> {
    check_sampling(&args)?;
    let (_, _, mut task) = open_trained(&args.run_dir)?;
    let options = SampleOptions {
        tokens: args.tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
    };
    // Each character is written and flushed as it is drawn, so a long sample shows progress.
    let mut stdout = std::io::stdout().lock();
    let mut write = |text: &str| -> Result<()> {
        stdout
            .write_all(text.as_bytes())
            .and_then(|()| stdout.flush())
            .context("cannot write to stdout")
    };
    let mut started = false;
    task.sample(&args.prompt, &options, &mut |piece| {
        if !started {
            started = true;
            write(&args.prompt)?;
        }
        write(piece)
    })?;
    if !started {
        write(&args.prompt)?;
    }
    write("\n")
}

/// Checks the sampling flags before the run is opened, naming the flag.
fn check_sampling(args: &SampleArgs) -> Result<()> {
    if !(args.temperature.is_finite() && args.temperature >= 0.0) {
        bail!(
            "--temperature must be finite and >= 0 (0 is greedy), got {}",
            args.temperature
        );
    }
    if args.top_k == Some(0) {
        bail!("--top-k must be at least 1");
    }
    if let Some(p) = args.top_p {
        if !(p > 0.0 && p <= 1.0) {
            bail!("--top-p must be in (0, 1], got {p}");
        }
    }
    Ok(())
}

fn eval(args: EvalArgs) -> Result<()> {
    let (run, config, mut task) = open_trained(&args.run_dir)?;
    let result = task.evaluate()?;
    println!("run: {} ({})", run.path().display(), config.model);
    println!("validation loss: {:.4}", result.loss);
    if let Some(accuracy) = result.accuracy {
        println!("accuracy: {:.2}%", 100.0 * accuracy);
    }
    for line in &result.details {
        println!("{line}");
    }
    Ok(())
}

fn print_summary(run: &RunDir, config: &RunConfig, task: &dyn Task, what: &str) {
    let t = &config.train;
    eprintln!("{what} {} in {}", config.model, run.path().display());
    eprintln!("model: {}", config.model_config);
    let schedule = if t.lr_decay_steps == 0 {
        format!("warm-up {}, then constant", t.warmup_steps)
    } else {
        format!(
            "min {:e}, warm-up {}, decay to step {}",
            t.min_lr, t.warmup_steps, t.lr_decay_steps
        )
    };
    eprintln!(
        "train: {} steps, batch {}, {} lr {:e} ({schedule}), weight decay {}, clip {}, eval \
         every {} x {}",
        t.steps,
        t.batch_size,
        t.optimizer,
        t.lr,
        t.weight_decay,
        t.grad_clip,
        t.eval_interval,
        t.eval_iters
    );
    eprintln!(
        "data: {} | parameters: {} | seed: {} | device: cpu | threads: {}",
        tasks::data_label(config),
        task.num_parameters(),
        t.seed,
        rayon::current_num_threads()
    );
}
