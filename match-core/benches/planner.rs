//! The memory planner on the MLPerf Tiny models (`cargo bench -p match-core
//! --bench planner`): per model the planned arena, the lower bound (largest
//! sum of live bytes at any step, with the planner's aliasing), their ratio
//! (goal: within 5 %), the planning time (median of several runs), and the
//! smallest arena TFLite Micro runs the model in, from
//! `tools/tflm_arena.json` (made by `tools/tflm_arena.py`). TFLite Micro's
//! arena also holds its bookkeeping (the "tail"); its "head" is its own
//! activation plan (plus kernel scratch), the closer comparison. The
//! `fused` columns plan the same model with each conv / dense and its bias,
//! requantize and clip as one node (no int32 accumulator in the arena), as
//! TFLite Micro runs it: the like-for-like comparison with its head. The
//! `gap9` columns are the arena of the model compiled for gap9 (`matchc
//! compile`, its platform folder): tiled layers keep their intermediate
//! results and the outputs they hand to the next layer in L1, so the arena
//! holds only what crosses L2. Prints figures; a benchmark asserts nothing.

use match_core::ir::{Graph, Op};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

#[derive(serde::Deserialize)]
struct Tflm {
    runtime: String,
    models: BTreeMap<String, TflmModel>,
}

#[derive(serde::Deserialize)]
struct TflmModel {
    arena_min: usize,
    head: usize,
    tail: usize,
}

/// The graph as a fusing back end would run it: each conv / dense / matmul
/// with the bias, requantize and clip nodes that follow it (single consumer,
/// not a graph output) becomes one node writing the chain's last tensor, so
/// the int32 accumulators never reach the arena (as in TFLite Micro).
fn fuse_layers(graph: &Graph) -> Graph {
    let mut g = graph.clone();
    let order = g.topo_order().expect("acyclic");
    for n in order {
        if !g.nodes.contains_node(n)
            || !matches!(g.nodes[n].op, Op::Conv2d { .. } | Op::Dense { .. } | Op::MatMul { .. })
        {
            continue;
        }
        while let [t] = g.nodes[n].outputs[..] {
            let consumers = g.consumers(t);
            let [c] = consumers[..] else { break };
            let fusable = matches!(g.nodes[c].op, Op::BiasAdd | Op::Requantize { .. } | Op::Clip { .. });
            if !fusable || g.outputs.contains(&t) || g.nodes[c].inputs[0] != t {
                break;
            }
            let out = g.nodes[c].outputs.clone();
            g.nodes.remove_node(c);
            g.nodes[n].outputs = out;
        }
    }
    g.rebuild_edges();
    g
}

fn models(root: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(root.join("../shared/models/mlperf-tiny")) else { return Vec::new() };
    let mut v: Vec<PathBuf> =
        rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "tflite")).collect();
    v.sort();
    v
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tflm: Option<Tflm> = std::fs::read_to_string(root.join("tools/tflm_arena.json"))
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok());
    let paths = models(&root);
    if paths.is_empty() {
        println!("../shared/models/mlperf-tiny not found: nothing to plan");
        return;
    }
    let gap9 = match_dsl::load(&root.join("targets/gap9.hwm")).expect("targets/gap9.hwm");
    let gap9_platform = root.join("targets/gap9");
    let out = std::env::temp_dir().join("match-planner-bench");
    println!(
        "{:<24} {:>5} {:>9} {:>9} {:>7} {:>9} | {:>9} {:>8} {:>8} {:>9} {:>9} | {:>8} {:>8} {:>7} {:>9} | {:>8} {:>9}",
        "model",
        "nodes",
        "arena",
        "bound",
        "ratio",
        "plan med",
        "tflm min",
        "head",
        "tail",
        "ar/tflm",
        "ar/head",
        "fused",
        "f.bound",
        "f.ratio",
        "fu/head",
        "gap9",
        "g9/head"
    );
    let mut worst: f64 = 0.0;
    for path in paths {
        let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("?").to_string();
        let graph = match match_core::frontend::load(&path, &Default::default()) {
            Ok(g) => g,
            Err(e) => {
                println!("{name}: {e:#}");
                continue;
            }
        };
        let order = graph.topo_order().expect("acyclic");
        let mut times: Vec<Duration> = Vec::new();
        let mut plan = None;
        for _ in 0..21 {
            let t = Instant::now();
            let p = match_core::plan::plan(&graph, &order).expect("plans");
            times.push(t.elapsed());
            plan = Some(p);
        }
        times.sort();
        let plan = plan.expect("planned");
        let ratio = plan.arena_bytes as f64 / plan.lower_bound.max(1) as f64;
        worst = worst.max(ratio);
        let fused = fuse_layers(&graph);
        let fused = match_core::plan::plan(&fused, &fused.topo_order().expect("acyclic")).expect("plans");
        worst = worst.max(fused.arena_bytes as f64 / fused.lower_bound.max(1) as f64);
        let options = match_core::compile::CompileOptions {
            out_dir: out.join(&name),
            model_name: None,
            platform_dir: Some(gap9_platform.clone()),
        };
        let compiled =
            match_core::compile::compile_graph(&graph, &gap9, &options).expect("compiles for gap9");
        let g9 = compiled.plan.arena_bytes;
        let (tmin, head, tail, r_min, r_head, f_head, g_head) =
            match tflm.as_ref().and_then(|t| t.models.get(&name)) {
                Some(m) => (
                    m.arena_min.to_string(),
                    m.head.to_string(),
                    m.tail.to_string(),
                    format!("{:.3}", plan.arena_bytes as f64 / m.arena_min as f64),
                    format!("{:.3}", plan.arena_bytes as f64 / m.head as f64),
                    format!("{:.3}", fused.arena_bytes as f64 / m.head as f64),
                    format!("{:.3}", g9 as f64 / m.head as f64),
                ),
                None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
            };
        println!(
            "{name:<24} {:>5} {:>9} {:>9} {:>7.4} {:>6.2} ms | {tmin:>9} {head:>8} {tail:>8} {r_min:>9} {r_head:>9} | {:>8} {:>8} {:>7.4} {f_head:>9} | {g9:>8} {g_head:>9}",
            order.len(),
            plan.arena_bytes,
            plan.lower_bound,
            ratio,
            times[times.len() / 2].as_secs_f64() * 1e3,
            fused.arena_bytes,
            fused.lower_bound,
            fused.arena_bytes as f64 / fused.lower_bound.max(1) as f64,
        );
    }
    println!("worst arena / lower bound (both columns): {worst:.4} (goal <= 1.05)");
    match tflm {
        Some(t) => println!("TFLite Micro figures: tools/tflm_arena.json ({})", t.runtime),
        None => println!("tools/tflm_arena.json missing or unreadable: run tools/tflm_arena.py"),
    }
}
