//! Import time of the real models (`cargo bench -p match-core --bench import`):
//! parse, lower to the IR, and prepare (inference, folding, dead-node
//! removal), best and median of several runs each, plus the reference
//! interpreter's time per inference on the same graph. Prints figures; a
//! benchmark asserts nothing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn models() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut v = Vec::new();
    for dir in
        ["../shared/models/mlperf-tiny", "../shared/models/match-onnx", "tests/golden/models", "examples"]
    {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else { continue };
        let mut files: Vec<PathBuf> = rd
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "tflite" || e == "onnx"))
            .collect();
        files.sort();
        v.extend(files);
    }
    v
}

fn stats(mut xs: Vec<Duration>) -> (Duration, Duration) {
    xs.sort();
    (xs[0], xs[xs.len() / 2])
}

fn main() {
    let options = match_core::frontend::ImportOptions::default();
    println!("{:<44} {:>9} {:>11} {:>11} {:>12}", "model", "bytes", "import min", "import med", "interp med");
    for path in models() {
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let mut times = Vec::new();
        let mut graph = None;
        for _ in 0..15 {
            let t = Instant::now();
            match match_core::frontend::load(&path, &options) {
                Ok(g) => graph = Some(g),
                Err(e) => {
                    println!("{}: {e:#}", path.display());
                    break;
                }
            }
            times.push(t.elapsed());
        }
        let Some(graph) = graph else { continue };
        let (min, med) = stats(times);
        let inputs: Vec<match_core::ir::Data> = graph
            .inputs
            .iter()
            .map(|&t| {
                let t = graph.tensor(t);
                match_core::ir::Data::from_i64(t.dtype, &vec![0; t.elements()])
            })
            .collect();
        let mut runs = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            let _ = match_core::interp::run(&graph, &inputs);
            runs.push(t.elapsed());
        }
        let (_, run_med) = stats(runs);
        let name = path.file_name().and_then(|s| s.to_str()).unwrap_or("?");
        println!(
            "{name:<44} {size:>9} {:>8.2} ms {:>8.2} ms {:>9.2} ms",
            min.as_secs_f64() * 1e3,
            med.as_secs_f64() * 1e3,
            run_med.as_secs_f64() * 1e3
        );
    }
}
