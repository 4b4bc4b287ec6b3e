//! The schedule search (`cargo bench -p match-core --bench search`):
//! 1. on small layers of a test target with a tiny L1, the search over the
//!    issue's candidate tile sizes against brute force over every tile size
//!    1..D (no pruning): the cost gap (what the candidate set gives up) and
//!    the times;
//! 2. the time to map (match, search every accepting unit, choose) the five
//!    MLPerf Tiny models for gap9 and diana as `matchc compile` maps them
//!    ([`match_core::lower::lower_for_target`]: requantization converted
//!    per unit where needed, then mapped; goal: well under 1 s in total).
//!
//! Prints figures; a benchmark asserts nothing.

use match_core::cost::Problem;
use match_core::schedule::{self, Objective};
use match_dsl::layer::Layer;
use match_dsl::HwModel;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tiny() -> HwModel {
    let src = "target t {\n clock 100 MHz\n memory L2 { size 1000000 B }\n memory L1 { size 1500 B; double_buffer }\n dma L2 <-> L1 { bandwidth 4 B/cycle; setup 20 cycles; dims 2; max 256 B; overhead 1d 0 cycles, 2d 2 cycles; start \"s\"; wait \"w\" }\n unit cpu { host; macs 1/cycle; compute_in L2 }\n unit acc { spatial K 4, OX 2; macs 8/cycle; compute_in L1; call_overhead 30 cycles; scratch s = 2 * K }\n pattern conv = conv2d\n offload conv to acc call \"k\"\n}\n";
    match_dsl::check(src, "t.hwm").unwrap_or_else(|d| panic!("{d}"))
}

fn main() {
    let hw = tiny();
    let unit = hw.unit("acc").expect("unit");
    let offload = hw.offloads.first();
    let layers = [
        ("conv 8x4 6x6 3x3", Layer::conv(8, 4, 6, 6, 3, 3, 1, 1)),
        ("conv 6x3 5x7 3x3 s2", Layer::conv(6, 3, 5, 7, 3, 3, 2, 1)),
        ("conv 12x2 4x5 1x1", Layer::conv(12, 2, 4, 5, 1, 1, 1, 0)),
        ("conv 16x8 10x10 3x3", Layer::conv(16, 8, 10, 10, 3, 3, 1, 1)),
        ("depthwise 6 5x5 3x3", Layer::depthwise(6, 5, 5, 3, 3, 1, 1)),
        ("depthwise 24 12x12 3x3", Layer::depthwise(24, 12, 12, 3, 3, 1, 1)),
        ("dense 10x16", Layer::dense(10, 16)),
        ("dense 40x64", Layer::dense(40, 64)),
        ("add 5 3x4", Layer::add(5, 3, 4)),
        ("pool 4 3x3 2x2", Layer::pool(4, 3, 3, 2, 2, 2, 0)),
    ];
    println!("search vs brute force (every tile size 1..D, no pruning), L1 1500 B:");
    println!(
        "{:<26} {:>10} {:>10} {:>8} {:>10} {:>10}",
        "layer", "search", "brute", "gap", "t_search", "t_brute"
    );
    let mut gaps = Vec::new();
    for (name, layer) in layers {
        let p = Problem::new(&hw, unit, offload, layer).expect("problem");
        let t0 = Instant::now();
        let fast = schedule::search(&p, Objective::Latency);
        let t_fast = t0.elapsed();
        let t0 = Instant::now();
        let slow = schedule::search_in(&p, Objective::Latency, true, false);
        let t_slow = t0.elapsed();
        match (fast, slow) {
            (Ok(f), Ok(s)) => {
                let gap = f.cycles.total / s.cycles.total - 1.0;
                gaps.push(gap);
                println!(
                    "{name:<26} {:>10.0} {:>10.0} {:>7.2}% {:>8.2}ms {:>8.2}ms",
                    f.cycles.total,
                    s.cycles.total,
                    100.0 * gap,
                    t_fast.as_secs_f64() * 1e3,
                    t_slow.as_secs_f64() * 1e3
                );
            }
            (f, s) => println!("{name:<26} no schedule: {:?} / {:?}", f.err(), s.err()),
        }
    }
    let mean = gaps.iter().sum::<f64>() / gaps.len().max(1) as f64;
    let max = gaps.iter().copied().fold(0.0, f64::max);
    println!("gap: mean {:.2}%, max {:.2}%", 100.0 * mean, 100.0 * max);

    let dir = root().join("../shared/models/mlperf-tiny");
    let mut models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    models.retain(|p| p.extension().is_some_and(|e| e == "tflite"));
    models.sort();
    if models.is_empty() {
        println!("skipping the MLPerf Tiny timing: {} is absent", dir.display());
        return;
    }
    let graphs: Vec<_> = models
        .iter()
        .map(|m| match_core::frontend::load(m, &Default::default()).expect("model loads"))
        .collect();
    println!("\nlowering and mapping as matchc compile (match + search + unit choice), median of 5 runs:");
    let mut total = 0.0;
    for t in ["gap9", "diana"] {
        let hw = match_dsl::load(&root().join("targets").join(format!("{t}.hwm"))).expect("target");
        for (m, g) in models.iter().zip(&graphs) {
            let mut times: Vec<f64> = (0..5)
                .map(|_| {
                    let t0 = Instant::now();
                    let lowered = match_core::lower::lower_for_target(g, &hw, Objective::Latency, false)
                        .expect("lowers and maps");
                    std::hint::black_box(lowered);
                    t0.elapsed().as_secs_f64()
                })
                .collect();
            times.sort_by(f64::total_cmp);
            let mapping = match_core::lower::lower_for_target(g, &hw, Objective::Latency, false)
                .expect("lowers and maps")
                .mapping;
            let cycles: f64 =
                mapping.layers.iter().filter_map(|l| l.schedule.as_ref()).map(|s| s.cycles.total).sum();
            let bound: f64 =
                mapping.layers.iter().filter_map(|l| l.schedule.as_ref()).map(|s| s.bound_cycles).sum();
            total += times[2];
            println!(
                "{t:<6} {:<28} {:>8.1} ms  {:>4} layers  est {:>10.0} cycles ({:.3} ms), bound {:>10.0}",
                m.file_name().and_then(|n| n.to_str()).unwrap_or("?"),
                times[2] * 1e3,
                mapping.layers.len(),
                cycles,
                cycles / hw.clock_hz as f64 * 1e3,
                bound
            );
        }
    }
    println!("total mapping time: {:.1} ms (goal: under 1000 ms)", total * 1e3);
}
