//! Per-layer schedule search times for the ZigZag comparison
//! (`tools/zigzag_compare.py` runs it; see docs/zigzag.md).
//!
//! `ZIGZAG_HWM=T.hwm ZIGZAG_MODELS=a.tflite:b.tflite ZIGZAG_OUT=out.json
//! cargo bench -p match-core --bench zigzag_layers`
//!
//! Maps each model on the target (as `matchc compile` does), then for every
//! layer that an offload rule took, times the search of that layer alone
//! on its chosen unit (`Problem::new` + `schedule::search`, a fresh problem
//! each time so that no cache carries over) and writes, per layer: the
//! model, the layer's name, unit and shape, the estimate and its split, the
//! chosen tiling and the median search time. Without the variables it
//! prints how to run it and exits (so `cargo bench` over the workspace does
//! not fail).

use match_core::cost::Problem;
use match_core::schedule::{self, Objective};
use std::path::PathBuf;
use std::time::Instant;

/// Median seconds of `f` over at least 5 runs and at least ~20 ms.
fn median_time(mut f: impl FnMut()) -> (f64, usize) {
    let mut times = Vec::new();
    let start = Instant::now();
    while times.len() < 5 || (start.elapsed().as_secs_f64() < 0.02 && times.len() < 1000) {
        let t0 = Instant::now();
        f();
        times.push(t0.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    (times[times.len() / 2], times.len())
}

fn main() {
    let (Ok(hwm), Ok(models), Ok(out)) =
        (std::env::var("ZIGZAG_HWM"), std::env::var("ZIGZAG_MODELS"), std::env::var("ZIGZAG_OUT"))
    else {
        println!(
            "zigzag_layers: set ZIGZAG_HWM, ZIGZAG_MODELS and ZIGZAG_OUT (tools/zigzag_compare.py does)"
        );
        return;
    };
    let hw = match_dsl::load(&PathBuf::from(&hwm)).unwrap_or_else(|e| panic!("{hwm}: {e}"));
    let mut rows = Vec::new();
    for model in models.split(':').filter(|m| !m.is_empty()) {
        let graph = match_core::frontend::load(&PathBuf::from(model), &Default::default())
            .unwrap_or_else(|e| panic!("{model}: {e}"));
        let t0 = Instant::now();
        let mapping = match_core::mapping::map(&graph, &hw).unwrap_or_else(|e| panic!("{model}: {e}"));
        let map_seconds = t0.elapsed().as_secs_f64();
        for ml in &mapping.layers {
            let (Some(s), Some(kernel)) = (&ml.schedule, &ml.kernel) else { continue };
            // The rule the mapping chose (as mapping::map_with finds it).
            let Some(offload) = hw.offloads.iter().find(|o| {
                Some(&o.pattern) == ml.pattern.as_ref() && o.unit == ml.unit && &o.kernel == kernel
            }) else {
                continue;
            };
            let unit = hw.unit(&ml.unit).expect("the chosen unit exists");
            let layer = match_core::mapping::layer_of(&graph, &ml.nodes);
            let mut again = None;
            let (seconds, runs) = median_time(|| {
                let p = Problem::new(&hw, unit, Some(offload), layer.clone()).expect("problem");
                again = Some(schedule::search(&p, Objective::Latency));
            });
            let again = again.expect("ran").expect("the mapping found a schedule, so does the search");
            // The layer alone must give the mapping's schedule (less any
            // layout conversion, which the mapping adds).
            let same = (again.cycles.total + s.conversion_cycles - s.cycles.total).abs() < 1e-6;
            rows.push(serde_json::json!({
                "model": model,
                "name": ml.name,
                "unit": ml.unit,
                "kernel": kernel,
                "layer": layer,
                "macs": again.macs,
                "cycles": again.cycles,
                "bound_cycles": again.bound_cycles,
                "roofline_cycles": again.roofline_cycles,
                "tile": again.tile,
                "order": again.order,
                "buffering": again.buffering,
                "calls": again.calls,
                "same_as_mapping": same,
                "search_seconds": seconds,
                "runs": runs,
                "model_map_seconds": map_seconds,
                "model_layers": mapping.layers.len(),
            }));
        }
    }
    let text = serde_json::to_string_pretty(&rows).expect("json");
    std::fs::write(&out, text).unwrap_or_else(|e| panic!("{out}: {e}"));
    println!("zigzag_layers: {} layers written to {out}", rows.len());
}
