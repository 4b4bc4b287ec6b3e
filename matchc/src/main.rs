//! `matchc`: the command-line program. See DESIGN.md's command-line
//! contract: exit 0 on success, 1 when the input is wrong or does not fit
//! (the message names the file, node or tensor), 2 on usage errors.

mod inspect;
mod summary;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "matchc",
    version,
    about = "Deploys quantized neural networks onto heterogeneous microcontrollers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Checks a .hwm hardware model: prints a summary, or every error.
    Check {
        /// A .hwm file, or the name of a shipped target.
        file: String,
    },
    /// Prints a model's layers, shapes, MACs, parameters and quantization.
    Inspect {
        /// A .tflite or .onnx file.
        model: PathBuf,
        /// ONNX node tests: fold every input but the first from this test-data folder.
        #[arg(long, value_name = "DIR")]
        fold_inputs_from: Option<PathBuf>,
    },
    /// Runs a model: on the reference interpreter (--interp), or compiled for a target.
    Run {
        model: PathBuf,
        /// Run the reference interpreter: on the imported graph, or with --target on the graph
        /// lowered for that target (what the generated C computes).
        #[arg(long, required_unless_present = "target")]
        interp: bool,
        /// A shipped target's name or a path to a .hwm file.
        #[arg(long)]
        target: Option<String>,
        /// Raw input tensor file, once per model input, in order.
        #[arg(long = "input", required = true)]
        inputs: Vec<PathBuf>,
        /// Raw output tensor file, once per model output, in order.
        #[arg(long = "output", required = true)]
        outputs: Vec<PathBuf>,
        /// Keep every layer bit-exact with the input format's runtime: a layer stays on a unit
        /// only if converting it into the unit's requantization form is exact.
        #[arg(long)]
        exact: bool,
        /// Print per-layer counters of the target's emulation (DMA commands and bytes, kernel
        /// calls, modeled cycles) and whether they equal the cost model's prediction. Only for
        /// targets whose platform counts (gap9, diana).
        #[arg(long)]
        counters: bool,
        /// ONNX node tests: fold every input but the first from this test-data folder.
        #[arg(long, value_name = "DIR")]
        fold_inputs_from: Option<PathBuf>,
    },
    /// Compiles a model for a target into a self-contained C99 project.
    Compile {
        /// A .tflite or .onnx file.
        model: PathBuf,
        /// A shipped target's name or a path to a .hwm file.
        #[arg(long)]
        target: String,
        /// The output folder (created if needed).
        #[arg(short = 'o', long = "output-dir", value_name = "DIR")]
        out_dir: PathBuf,
        /// Keep every layer bit-exact with the input format's runtime: a layer stays on a unit
        /// only if converting it into the unit's requantization form is exact; otherwise it
        /// moves to a unit that implements the form, and the report says why.
        #[arg(long)]
        exact: bool,
        /// Print, per layer, the pattern and unit chosen and why others were rejected.
        #[arg(long)]
        explain: bool,
        /// Write a JSON report of the layers, cycles and memory.
        #[arg(long, value_name = "FILE.json")]
        report: Option<PathBuf>,
        /// What the mapping minimizes.
        #[arg(long, value_name = "latency|energy", default_value = "latency")]
        optimize: String,
        /// ONNX node tests: fold every input but the first from this test-data folder.
        #[arg(long, value_name = "DIR")]
        fold_inputs_from: Option<PathBuf>,
    },
    /// Prints a .hwm file in canonical form.
    Fmt {
        file: PathBuf,
        /// Print nothing; exit 1 if the file is not in canonical form.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(message) => {
            eprint!("{message}");
            if !message.ends_with('\n') {
                eprintln!();
            }
            ExitCode::from(1)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    match command {
        Command::Check { file } => {
            let (model, _platform) = match_targets::resolve(&file).map_err(|e| e.to_string())?;
            print!("{}", summary::summary(&model));
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { model, fold_inputs_from } => {
            let graph = import(&model, fold_inputs_from)?;
            print!("{}", inspect::inspect(&graph));
            Ok(ExitCode::SUCCESS)
        }
        Command::Run { model, interp, target, inputs, outputs, exact, counters, fold_inputs_from } => {
            if counters {
                if let Some(why) = counters_usage(target.as_deref(), interp) {
                    eprintln!("error: {why}");
                    return Ok(ExitCode::from(2));
                }
            }
            if let Some(t) = &target {
                // Validate the target first so that a wrong name is reported as such.
                let (hw, platform) = match_targets::resolve(t).map_err(|e| e.to_string())?;
                let graph = import(&model, fold_inputs_from)?;
                if !interp {
                    run_compiled(
                        &model,
                        &graph,
                        &hw,
                        platform,
                        &inputs,
                        &outputs,
                        RunFlags { exact, counters },
                    )?;
                    return Ok(ExitCode::SUCCESS);
                }
                // The interpreter on the graph lowered for the target.
                let lowered = match_core::lower::lower_for_target(
                    &graph,
                    &hw,
                    match_core::schedule::Objective::Latency,
                    exact,
                )
                .map_err(|e| format!("{}: {e:#}", model.display()))?;
                run_interp(&lowered.graph, &inputs, &outputs)?;
                return Ok(ExitCode::SUCCESS);
            }
            let graph = import(&model, fold_inputs_from)?;
            run_interp(&graph, &inputs, &outputs)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Compile { model, target, out_dir, exact, explain, report, optimize, fold_inputs_from } => {
            if optimize != "latency" && optimize != "energy" {
                eprintln!("error: --optimize takes `latency` or `energy`, not `{optimize}`");
                return Ok(ExitCode::from(2));
            }
            let objective = if optimize == "energy" {
                match_core::schedule::Objective::Energy
            } else {
                match_core::schedule::Objective::Latency
            };
            let (hw, platform) = match_targets::resolve(&target).map_err(|e| e.to_string())?;
            let graph = import(&model, fold_inputs_from)?;
            let options = match_core::compile::CompileOptions {
                out_dir: out_dir.clone(),
                model_name: Some(match_core::compile::model_name(&model)),
                platform_dir: platform,
            };
            let compiled = match_core::compile::compile_graph_exact(&graph, &hw, &options, objective, exact)
                .map_err(|e| format!("{}: {e:#}", model.display()))?;
            if let Some(path) = &report {
                let name = model.file_name().and_then(|n| n.to_str()).unwrap_or("model");
                let json = match_core::compile::report_json(&graph, &hw, &compiled, name);
                let text = format!("{json:#}\n");
                std::fs::write(path, text).map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
            }
            if explain {
                print!("{}", match_core::compile::explain(&hw, &compiled));
            }
            let r = &compiled.report;
            println!("compiled {} for target `{}` into {}", model.display(), hw.name, out_dir.display());
            println!("  layers:  {}", compiled.mapping.layers.len());
            println!("  code:    {} B of C source", r.code_bytes);
            println!("  weights: {} B", r.weight_bytes);
            println!("  RAM:     {} B activation arena", r.ram_bytes);
            if !compiled.spilled.is_empty() {
                // Activations that wait in the external memory (docs/l3-activations.md).
                let memory =
                    match_core::spill::external_activations_memory(&hw).map_or("", |(m, _)| m.name.as_str());
                println!(
                    "  spilled: {} tensor(s) waiting in {memory}, {} B there",
                    compiled.spilled.len(),
                    compiled.plan.external_bytes
                );
            }
            println!("  build:   make -C {}  (binary: build/{})", out_dir.display(), compiled.model_name);
            Ok(ExitCode::SUCCESS)
        }
        Command::Fmt { file, check } => {
            let shown = file.display().to_string();
            let source = std::fs::read_to_string(&file).map_err(|e| format!("{shown}: cannot read: {e}"))?;
            let formatted = match_dsl::format(&source, &shown).map_err(|d| d.render())?;
            if check {
                if formatted == source {
                    Ok(ExitCode::SUCCESS)
                } else {
                    eprintln!("{shown}: not in canonical form (run `matchc fmt {shown}`)");
                    Ok(ExitCode::from(1))
                }
            } else {
                print!("{formatted}");
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

fn import(
    model: &std::path::Path,
    fold_inputs_from: Option<PathBuf>,
) -> Result<match_core::ir::Graph, String> {
    let options = match_core::frontend::ImportOptions { fold_inputs_from };
    match_core::frontend::load(model, &options).map_err(|e| format!("{e:#}"))
}

/// Reads the raw input files of `graph`, checking their sizes.
fn read_inputs(
    graph: &match_core::ir::Graph,
    inputs: &[PathBuf],
    outputs: &[PathBuf],
) -> Result<Vec<match_core::ir::Data>, String> {
    use match_core::ir::Data;
    if inputs.len() != graph.inputs.len() {
        return Err(format!("the model has {} input(s); {} --input given", graph.inputs.len(), inputs.len()));
    }
    if outputs.len() != graph.outputs.len() {
        return Err(format!(
            "the model has {} output(s); {} --output given",
            graph.outputs.len(),
            outputs.len()
        ));
    }
    let mut data = Vec::with_capacity(inputs.len());
    for (path, &t) in inputs.iter().zip(&graph.inputs) {
        let t = graph.tensor(t);
        let shown = path.display();
        let bytes = std::fs::read(path).map_err(|e| format!("{shown}: cannot read: {e}"))?;
        let expected = t.bytes();
        if bytes.len() != expected {
            return Err(format!(
                "{shown}: input `{}` is {} {:?} = {expected} bytes, the file has {}",
                t.name,
                t.dtype,
                t.shape,
                bytes.len()
            ));
        }
        data.push(Data::from_le_bytes(t.dtype, &bytes).ok_or_else(|| format!("{shown}: bad length"))?);
    }
    Ok(data)
}

/// Compiles for the target into a temporary folder, builds with make and
/// the system C compiler, runs the binary, writes the outputs.
fn run_compiled(
    model: &std::path::Path,
    graph: &match_core::ir::Graph,
    hw: &match_core::HwModel,
    platform: Option<PathBuf>,
    inputs: &[PathBuf],
    outputs: &[PathBuf],
    RunFlags { exact, counters }: RunFlags,
) -> Result<(), String> {
    let data = read_inputs(graph, inputs, outputs)?;
    let stamp =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("matchc-run-{}-{stamp}", std::process::id()));
    let result = (|| -> Result<(), String> {
        let options = match_core::compile::CompileOptions {
            out_dir: dir.join("project"),
            model_name: Some(match_core::compile::model_name(model)),
            platform_dir: platform,
        };
        let compiled = match_core::compile::compile_graph_exact(
            graph,
            hw,
            &options,
            match_core::schedule::Objective::Latency,
            exact,
        )
        .map_err(|e| format!("{}: {e:#}", model.display()))?;
        let bin = match_core::compile::build(&options.out_dir, &compiled.model_name, &[])
            .map_err(|e| format!("{e:#}"))?;
        let results = if counters {
            let (results, table) =
                match_core::compile::run_binary_counters(&bin, graph, &[data], &dir.join("io"))
                    .map_err(|e| format!("{e:#}"))?;
            print_counters(&compiled.report.counters, &table);
            results
        } else {
            match_core::compile::run_binary(&bin, graph, &[data], &dir.join("io"))
                .map_err(|e| format!("{e:#}"))?
        };
        for (path, r) in outputs.iter().zip(&results[0]) {
            std::fs::write(path, r.to_le_bytes())
                .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `run`'s switches for a compiled model: `--exact`, `--counters`.
struct RunFlags {
    exact: bool,
    counters: bool,
}

/// Why `run --counters` cannot count with these options, if it cannot.
fn counters_usage(target: Option<&str>, interp: bool) -> Option<String> {
    let t = match target {
        None => return Some("--counters needs --target: the interpreter counts nothing".into()),
        Some(_) if interp => {
            return Some("--counters counts the compiled code; it does not go with --interp".into())
        }
        Some(t) => t,
    };
    match match_targets::resolve(t) {
        Ok((hw, _)) if !match_core::compile::platform_counts(&hw) => Some(format!(
            "target `{}` has no counters: its platform does not count (its api block binds no `layer` role; gap9 and diana do)",
            hw.name
        )),
        _ => None,
    }
}

/// The emulation's counters table on standard output, then whether it
/// equals the cost model's prediction.
fn print_counters(predicted: &[match_core::cost::Counters], table: &match_core::compile::CountersTable) {
    println!("# match counters v1: target {}, runs {}", table.target, table.runs);
    println!(
        "{:<5} {:<32} {:>12} {:>8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>8} {:>8}",
        "layer",
        "name",
        "cycles",
        "dma_in",
        "in_bytes",
        "dma_out",
        "out_bytes",
        "dma_l3",
        "l3_bytes",
        "calls",
        "kernels"
    );
    for l in &table.layers {
        println!(
            "{:<5} {:<32} {:>12} {:>8} {:>10} {:>8} {:>10} {:>8} {:>10} {:>8} {:>8}",
            l.index,
            l.name,
            l.cycles,
            l.dma_in,
            l.dma_in_bytes,
            l.dma_out,
            l.dma_out_bytes,
            l.dma_l3,
            l.dma_l3_bytes,
            l.calls,
            l.kernels
        );
    }
    let bad = match_core::compile::counters_mismatches(predicted, table);
    if bad.is_empty() {
        println!("# DMA commands, bytes and calls equal the cost model's prediction on every layer");
    } else {
        for b in bad {
            println!("# differs from the cost model: {b}");
        }
    }
}

/// Reads the raw input files, runs the interpreter, writes the outputs.
fn run_interp(graph: &match_core::ir::Graph, inputs: &[PathBuf], outputs: &[PathBuf]) -> Result<(), String> {
    let data = read_inputs(graph, inputs, outputs)?;
    let results = match_core::interp::run(graph, &data).map_err(|e| format!("{e:#}"))?;
    for (path, r) in outputs.iter().zip(results) {
        std::fs::write(path, r.to_le_bytes())
            .map_err(|e| format!("{}: cannot write: {e}", path.display()))?;
    }
    Ok(())
}
