//! End to end on the accelerator targets, in emulation: every MLPerf Tiny
//! model, its logits copy and every match-onnx model of the golden
//! manifest, compiled for gap9 and for diana, built with AddressSanitizer
//! and UBSan at -O1 against the platforms' host emulation (which checks
//! every DMA and tile access, targets/<t>/README.md), and run on every
//! golden case:
//!
//! - compiled as by default, the outputs equal bit for bit the reference
//!   interpreter on the graph as compiled (the graph lowered for the
//!   target, `Compiled::graph`), and the emulation's counters equal the
//!   cost model's prediction on every layer;
//! - compiled with `--exact`, the outputs equal the golden vectors (from
//!   TFLite Micro / onnxruntime) bit for bit. When the default compilation
//!   is already exact on every layer, or the exact one emits the same C,
//!   the build and run are shared; else the exact build is plain -O1.
//!
//! Models that do not fit a target's memories are reported and skipped.

use match_core::compile::{self, CompileOptions, Compiled};
use match_core::frontend::ImportOptions;
use match_core::ir::{Data, Graph};
use match_core::schedule::Objective;
use match_tests::golden::{diff, manifest, within, Entry};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

const FAMILIES: &[&str] = &["mlperf-tiny/", "mlperf-tiny-logits/", "match-onnx/"];
const TARGETS: &[&str] = &["gap9", "diana"];
const SANITIZED: &str = "-std=c99 -O1 -Wall -Wextra -Werror -fno-omit-frame-pointer \
                         -fsanitize=address,undefined -fno-sanitize-recover=all";
const PLAIN: &str = "-std=c99 -O1 -Wall -Wextra -Werror";

fn work_dir(parts: &[&str]) -> PathBuf {
    let mut d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("e2e_accel");
    for p in parts {
        d = d.join(p.replace(['/', '\\'], "__"));
    }
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the work folder");
    d
}

/// The emitted C of a project (model and weights), to tell whether two
/// compilations emitted the same code.
fn emitted(dir: &Path, name: &str) -> String {
    let read = |f: String| std::fs::read_to_string(dir.join(f)).unwrap_or_default();
    read(format!("{name}.c")) + &read(format!("{name}_weights.c"))
}

enum Outcome {
    Checked { cases: usize, shared: bool },
    DoesNotFit(String),
}

fn compile_for(
    graph: &Graph,
    hw: &match_core::HwModel,
    platform: Option<PathBuf>,
    dir: &Path,
    name: &str,
    exact: bool,
) -> anyhow::Result<Compiled> {
    let options = CompileOptions {
        out_dir: dir.to_path_buf(),
        model_name: Some(name.to_string()),
        platform_dir: platform,
    };
    compile::compile_graph_exact(graph, hw, &options, Objective::Latency, exact)
}

/// Compiles, builds and runs one model on one target; the errors found.
fn check(e: &Entry, target: &str) -> Result<Outcome, String> {
    let root = match_tests::repo_root();
    let (hw, platform) = match_targets::resolve(target).map_err(|err| err.to_string())?;
    let import = ImportOptions { fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)) };
    let graph = match_core::frontend::load(&root.join(&e.model), &import)
        .map_err(|err| format!("{}: {err:#}", e.id))?;
    let name = compile::model_name(&root.join(&e.model));
    let dir = work_dir(&[target, &e.id]);
    let cases = e.all_case_inputs();
    let label = format!("{} on {target}", e.id);
    let t0 = std::time::Instant::now();
    let mut phases = Vec::new();
    let mut phase = |what: &str| phases.push(format!("{what} {:.1}", t0.elapsed().as_secs_f64()));

    // As compiled by default: the interpreter on the lowered graph, and the counters.
    let default_dir = dir.join("default");
    let compiled = match compile_for(&graph, &hw, platform.clone(), &default_dir, &name, false) {
        Ok(c) => c,
        Err(err) if format!("{err:#}").contains("does not fit target") => {
            return Ok(Outcome::DoesNotFit(format!("{err:#}")));
        }
        Err(err) => return Err(format!("{label}: compile failed: {err:#}")),
    };
    phase("compiled");
    let bin = compile::build(
        &default_dir,
        &compiled.model_name,
        &[("CC", "gcc"), ("CFLAGS", SANITIZED), ("BUILD", "build-asan")],
    )
    .map_err(|err| format!("{label}: {err:#}"))?;
    phase("built");
    let (got, table) = compile::run_binary_counters(&bin, &graph, &cases, &dir.join("io"))
        .map_err(|err| format!("{label}: {err:#}"))?;
    phase("ran");
    let mut errors = Vec::new();
    for (c, (inputs, outs)) in cases.iter().zip(&got).enumerate() {
        let want = match_core::interp::run(&compiled.graph, inputs)
            .map_err(|err| format!("{label} case {c}: interpreter on the lowered graph failed: {err:#}"))?;
        for (j, (g, w)) in outs.iter().zip(&want).enumerate() {
            if let Some(d) = diff(g, w) {
                errors.push(format!(
                    "{label} case {c} output {j} vs the interpreter on the lowered graph: {d}"
                ));
            }
        }
    }
    phase("interpreted");
    for m in compile::counters_mismatches(&compiled.report.counters, &table) {
        errors.push(format!("{label}: counters: {m}"));
    }

    // With --exact: the golden vectors. When the default compilation is
    // exact on every layer (no converted requantization), `--exact` has
    // nothing to change and the run above is shared; else the exact
    // compilation is built and run too (shared when it emits the same C).
    let all_exact = compiled.exactness.iter().all(|x| x.max_lsb == 0);
    let (exact_got, shared): (Vec<Vec<Data>>, bool) = if all_exact {
        (got, true)
    } else {
        let exact_dir = dir.join("exact");
        let exact = compile_for(&graph, &hw, platform, &exact_dir, &name, true)
            .map_err(|err| format!("{label}: compile --exact failed: {err:#}"))?;
        phase("compiled exact");
        if emitted(&default_dir, &compiled.model_name) == emitted(&exact_dir, &exact.model_name) {
            (got, true)
        } else {
            let bin = compile::build(&exact_dir, &exact.model_name, &[("CC", "gcc"), ("CFLAGS", PLAIN)])
                .map_err(|err| format!("{label} --exact: {err:#}"))?;
            let outs = compile::run_binary(&bin, &graph, &cases, &dir.join("io-exact"))
                .map_err(|err| format!("{label} --exact: {err:#}"))?;
            (outs, false)
        }
    };
    for (c, outs) in exact_got.iter().enumerate() {
        for (j, g) in outs.iter().enumerate() {
            let want = e.case_output(c, j);
            if e.exact {
                if let Some(d) = diff(g, &want) {
                    errors.push(format!("{label} --exact case {c} output {j} vs the golden: {d}"));
                }
            } else if !within(g, &want, e.atol) {
                errors.push(format!("{label} --exact case {c} output {j}: beyond atol {}", e.atol));
            }
        }
    }
    phase("exact done");
    eprintln!("{label}: {}", phases.join(", "));
    if errors.is_empty() {
        Ok(Outcome::Checked { cases: cases.len(), shared })
    } else {
        Err(errors.join("\n"))
    }
}

#[test]
fn accelerator_targets_in_emulation_are_bit_exact() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let m = manifest();
    let entries: Vec<&Entry> =
        m.models.iter().filter(|e| FAMILIES.iter().any(|f| e.id.starts_with(f))).collect();
    assert_eq!(entries.len(), 12, "5 MLPerf Tiny models, 4 logits copies, 3 match-onnx models");
    let jobs: Vec<(&Entry, &str)> =
        TARGETS.iter().flat_map(|&t| entries.iter().map(move |&e| (e, t))).collect();
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let done = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(&(e, target)) = jobs.get(i) else { break };
                let start = std::time::Instant::now();
                let result = check(e, target);
                eprintln!("{} on {target}: {:.1} s", e.id, start.elapsed().as_secs_f64());
                match result {
                    Ok(o) => done.lock().unwrap().push((e.id.clone(), target, o)),
                    Err(msg) => failures.lock().unwrap().push(msg),
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n"));
    let done = done.into_inner().unwrap();
    let mut checked = 0;
    for (id, target, o) in &done {
        match o {
            Outcome::Checked { cases, shared } => {
                checked += 1;
                eprintln!(
                    "{id} on {target}: {cases} cases bit-exact{}",
                    if *shared { " (exact build shared)" } else { "" }
                );
            }
            Outcome::DoesNotFit(why) => eprintln!("{id} on {target}: skipped: {why}"),
        }
    }
    // Every model fits both targets (VWW on diana too, since the early
    // memory check stopped counting the int32 accumulators a fused layer
    // never stores): any skip is a failure, so no model drops out silently.
    let skipped: Vec<String> = done
        .iter()
        .filter(|(_, _, o)| matches!(o, Outcome::DoesNotFit(_)))
        .map(|(id, t, _)| format!("{id} on {t}"))
        .collect();
    assert!(skipped.is_empty(), "models that do not fit: {skipped:?}");
    assert_eq!(checked, jobs.len(), "every (model, target) pair is checked");
}
