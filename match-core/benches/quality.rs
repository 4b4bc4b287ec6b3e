//! The quality of the schedules and a calibration of the cost model
//! (`cargo bench -p match-core --bench quality`), on the five MLPerf Tiny
//! models mapped with [`match_core::mapping::map`] for gap9 and diana:
//! 1. quality: per target, the mean over the layers with a schedule of
//!    estimate / `bound_cycles` (goal: at most 1.2), and the mean of
//!    estimate / `roofline_cycles` per layer class (conv, depthwise,
//!    pointwise, dense; no pass mark);
//! 2. calibration: the estimated GAP9 latency of each model (total cycles at
//!    370 MHz) over GreenWaves' published MLPerf Tiny v1.0 latency on GAP9
//!    at 370 MHz (../shared/DESIGN.md). A calibration figure, not a pass
//!    mark: GreenWaves' toolchain is not ours.
//!
//! Prints figures; a benchmark asserts nothing.

use match_core::mapping::{self, Mapping};
use match_dsl::layer::{Layer, OpKind};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The class of a layer for the roofline table.
fn class(l: &Layer) -> &'static str {
    match l.op {
        OpKind::Conv if l.groups > 1 && l.groups == l.c => "depthwise",
        OpKind::Conv if l.groups == 1 && l.fy == 1 && l.fx == 1 => "pointwise",
        OpKind::Conv => "conv",
        OpKind::Dense => "dense",
        OpKind::Add => "add",
        OpKind::Pool => "pool",
        OpKind::Other => "other",
    }
}

/// GreenWaves' MLPerf Tiny v1.0 latency on GAP9 at 370 MHz, in ms.
fn published_ms(model: &str) -> Option<(&'static str, f64)> {
    match model {
        "pretrainedResnet_quant.tflite" => Some(("ResNet-8", 0.616)),
        "vww_96_int8.tflite" => Some(("MobileNetV1 VWW", 1.125)),
        "kws_ref_model.tflite" => Some(("DS-CNN KWS", 0.476)),
        "ad01_int8.tflite" => Some(("Deep AutoEncoder", 0.176)),
        _ => None,
    }
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

fn main() {
    let dir = root().join("../shared/models/mlperf-tiny");
    let mut models: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    models.retain(|p| p.extension().is_some_and(|e| e == "tflite"));
    models.sort();
    if models.is_empty() {
        println!("skipping: {} is absent", dir.display());
        return;
    }
    let graphs: Vec<_> = models
        .iter()
        .map(|m| match_core::frontend::load(m, &Default::default()).expect("model loads"))
        .collect();
    let name = |m: &Path| m.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_string();

    println!("quality: estimate / bound_cycles (goal: mean <= 1.2) and estimate / roofline_cycles");
    let mut gap9: Vec<(String, Mapping, u64)> = Vec::new();
    for t in ["gap9", "diana"] {
        let hw = match_dsl::load(&root().join("targets").join(format!("{t}.hwm"))).expect("target");
        let mut to_bound = Vec::new();
        let mut worst = (0.0, String::new());
        // class -> (estimate / roofline ratios, estimate / bound ratios)
        let mut per_class: BTreeMap<&'static str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
        for (m, g) in models.iter().zip(&graphs) {
            let mapping = mapping::map(g, &hw).expect("maps");
            for layer in &mapping.layers {
                let Some(s) = &layer.schedule else { continue };
                let nodes: Vec<_> =
                    layer.nodes.iter().copied().filter(|&n| g.nodes.node_weight(n).is_some()).collect();
                if nodes.is_empty() {
                    continue;
                }
                let c = class(&mapping::layer_of(g, &nodes));
                let entry = per_class.entry(c).or_default();
                if s.bound_cycles > 0.0 {
                    let r = s.cycles.total / s.bound_cycles;
                    to_bound.push(r);
                    entry.1.push(r);
                    if r > worst.0 {
                        worst = (r, format!("{} {} on {}", name(m), layer.name, layer.unit));
                    }
                }
                if s.roofline_cycles > 0.0 {
                    entry.0.push(s.cycles.total / s.roofline_cycles);
                }
            }
            if t == "gap9" {
                gap9.push((name(m), mapping, hw.clock_hz));
            }
        }
        let m = mean(&to_bound);
        let mut sorted = to_bound.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
        let over = sorted.iter().filter(|&&r| r > 1.2).count();
        println!(
            "\n{t}: mean estimate / bound_cycles over {} layers: {m:.3} ({}; goal <= 1.2)",
            to_bound.len(),
            if m <= 1.2 { "met" } else { "NOT met" }
        );
        println!("  median {median:.3}; {over} layers above 1.2");
        println!("  worst: {:.3} ({})", worst.0, worst.1);
        println!("  {:<10} {:>6} {:>14} {:>14}", "class", "layers", "est/roofline", "est/bound");
        for (c, (roof, bound)) in &per_class {
            println!(
                "  {c:<10} {:>6} {:>14.3} {:>14.3}",
                roof.len().max(bound.len()),
                mean(roof),
                mean(bound)
            );
        }
    }

    println!("\ncalibration (not a pass mark): estimated GAP9 latency at 370 MHz / GreenWaves' published MLPerf Tiny v1.0 latency");
    println!(
        "{:<30} {:<18} {:>12} {:>10} {:>10} {:>12}",
        "model", "", "cycles", "est ms", "pub ms", "calibration"
    );
    for (m, mapping, clock) in &gap9 {
        let cycles: f64 =
            mapping.layers.iter().filter_map(|l| l.schedule.as_ref()).map(|s| s.cycles.total).sum();
        if *clock != 370_000_000 {
            println!("  (gap9.hwm clock is {clock} Hz; the calibration uses 370 MHz)");
        }
        let est_ms = cycles / 370e6 * 1e3;
        match published_ms(m) {
            Some((label, ms)) => {
                println!("{m:<30} {label:<18} {cycles:>12.0} {est_ms:>10.3} {ms:>10.3} {:>12.2}", est_ms / ms)
            }
            None => println!(
                "{m:<30} {:<18} {cycles:>12.0} {est_ms:>10.3} {:>10} {:>12}",
                "(none published)", "-", "-"
            ),
        }
    }
}
