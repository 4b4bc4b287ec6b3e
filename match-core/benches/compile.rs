//! Compile time of the MLPerf Tiny models for the `host` target
//! (`cargo bench -p match-core --bench compile`; goal: under 200 ms each in
//! a release build): per model the time of each stage of the pipeline of
//! `compile::compile_file` measured separately — import (`frontend::load`),
//! map (`mapping::map`), plan (`plan::plan` plus the memory check) and emit
//! (`emit::emit` into a temporary folder, files written) — and of the whole,
//! best and median of several runs each. Prints figures; a benchmark asserts
//! nothing.

use match_core::compile::{self, CompileOptions};
use match_core::emit::{self, EmitOptions};
use match_core::frontend::{self, ImportOptions};
use match_core::{mapping, plan};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const RUNS: usize = 11;

fn models(root: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(root.join("../shared/models/mlperf-tiny")) else { return Vec::new() };
    let mut v: Vec<PathBuf> =
        rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "tflite")).collect();
    v.sort();
    v
}

fn stats(mut xs: Vec<Duration>) -> (f64, f64) {
    xs.sort();
    (xs[0].as_secs_f64() * 1e3, xs[xs.len() / 2].as_secs_f64() * 1e3)
}

#[derive(Default)]
struct Times {
    import: Vec<Duration>,
    map: Vec<Duration>,
    plan: Vec<Duration>,
    emit: Vec<Duration>,
    total: Vec<Duration>,
}

fn main() -> anyhow::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let paths = models(&root);
    if paths.is_empty() {
        println!("../shared/models/mlperf-tiny not found: nothing to compile");
        return Ok(());
    }
    let hw = match_dsl::load(&root.join("targets/host.hwm")).map_err(|e| anyhow::anyhow!("{e}"))?;
    let platform_dir = Some(root.join("targets/host"));
    let import = ImportOptions::default();
    let tmp = std::env::temp_dir().join(format!("match-bench-compile-{}", std::process::id()));

    println!("host target, {RUNS} runs each; min / median in ms");
    println!(
        "{:<30} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}",
        "model", "import", "map", "plan", "emit", "sum of stages", "compile_file"
    );
    for path in &paths {
        let name = compile::model_name(path);
        let out_dir = tmp.join(&name);
        let mut t = Times::default();
        let mut failed = None;
        for _ in 0..RUNS {
            let _ = std::fs::remove_dir_all(&out_dir);
            let t0 = Instant::now();
            let graph = match frontend::load(path, &import) {
                Ok(g) => g,
                Err(e) => {
                    failed = Some(format!("{e:#}"));
                    break;
                }
            };
            let t1 = Instant::now();
            let mapping = mapping::map(&graph, &hw)?;
            let t2 = Instant::now();
            let order = mapping.node_order();
            let plan = plan::plan(&graph, &order)?;
            compile::check_fits(&graph, &hw, &plan, &name)?;
            let t3 = Instant::now();
            let options = EmitOptions {
                model_name: name.clone(),
                out_dir: out_dir.clone(),
                platform_dir: platform_dir.clone(),
            };
            emit::emit(&graph, &hw, &mapping, &plan, &options)?;
            let t4 = Instant::now();
            t.import.push(t1 - t0);
            t.map.push(t2 - t1);
            t.plan.push(t3 - t2);
            t.emit.push(t4 - t3);

            // The whole pipeline in one call, as `matchc compile` runs it.
            let _ = std::fs::remove_dir_all(&out_dir);
            let options = CompileOptions {
                out_dir: out_dir.clone(),
                model_name: None,
                platform_dir: platform_dir.clone(),
            };
            let t5 = Instant::now();
            compile::compile_file(path, &import, &hw, &options)?;
            t.total.push(t5.elapsed());
        }
        let file = path.file_name().and_then(|s| s.to_str()).unwrap_or("?");
        if let Some(e) = failed {
            println!("{file}: {e}");
            continue;
        }
        let sum: Vec<Duration> =
            (0..t.import.len()).map(|i| t.import[i] + t.map[i] + t.plan[i] + t.emit[i]).collect();
        let cell = |xs: Vec<Duration>| {
            let (min, med) = stats(xs);
            format!("{min:>6.2} / {med:>6.2}")
        };
        println!(
            "{file:<30} {:>15} {:>15} {:>15} {:>15} {:>15} {:>15}",
            cell(t.import),
            cell(t.map),
            cell(t.plan),
            cell(t.emit),
            cell(sum),
            cell(t.total)
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}
