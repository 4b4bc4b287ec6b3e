//! Over-fetch end to end: the tiled convolutions of ResNet-8 (MLPerf Tiny)
//! forced to move their input tiles as whole rows (with the output columns
//! split, so that windows start inside the row) or as whole planes, on
//! gap9 (cluster and NE16 jobs), diana (digital array jobs) and host-tiled
//! (portable kernels). The generated code must stay bit-exact with the
//! interpreter on the lowered graph, and on gap9 and diana the emulation's
//! DMA counters must equal [`match_core::cost::predict_counters`], which
//! counts the boxes the cost model charges. On gap9 the device adapter's
//! unit kernels (under the PMSIS and pulp-nnx doubles) run it too.

use match_core::compile;
use match_core::cost::Fetch;
use match_core::emit::tiled;
use match_core::ir::Op;
use match_tests::e2e::{emit_build_check, fresh_dir, gap9_device_double_vars, lowered_golden};
use match_tests::golden::diff;
use std::path::{Path, PathBuf};

fn tmp(parts: &[&str]) -> PathBuf {
    fresh_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "over_fetch", parts)
}

/// Compiles ResNet-8 for `target` with every tiled convolution's fetch
/// forced to `fetch` (and, with `split`, its output columns in two tiles),
/// where the tile buffers still fit; runs it on the golden case and checks
/// outputs and counters. Returns how many layers were forced.
fn forced(target: &str, fetch: Fetch, split: bool) -> usize {
    let (e, hw, platform, lowered) = lowered_golden("mlperf-tiny/pretrainedResnet_quant", target);
    let g = &lowered.graph;
    let mut mapping = lowered.mapping.clone();
    let mut n = 0;
    for i in 0..mapping.layers.len() {
        let layer = &mapping.layers[i];
        let Some(s) = layer.schedule.clone() else { continue };
        if s.from == s.to || !matches!(g.nodes[layer.nodes[0]].op, Op::Conv2d { .. }) {
            continue;
        }
        let mut f = s.clone();
        f.fetch = fetch;
        if split && f.tile.ox > 1 {
            f.tile.ox = (f.tile.ox + 1) / 2;
        }
        mapping.layers[i].schedule = Some(f);
        if tiled::plan_layer(g, &hw, &mapping.layers[i]).is_ok() {
            n += 1;
        } else {
            mapping.layers[i].schedule = Some(s);
        }
    }
    let dir = tmp(&[target, &format!("{fetch:?}-{split}")]);
    let name = "resnet_fetch".to_string();
    let inputs = vec![e.case_inputs(0)];
    let what = format!("{target} {fetch:?} split {split}");
    let project = emit_build_check(g, &hw, &mapping, platform, &dir, &name, &inputs, &what);
    let want = match_core::interp::run(g, &inputs[0]).expect("interpreter");
    if target == "gap9" {
        // The device adapter's unit kernels (cluster jobs, NE16 programmed
        // through the pulp-nnx double, whose strided mode steps subtiles by
        // the programmed byte strides) must read the window inside its box
        // too.
        let mut vars = gap9_device_double_vars(&project, &name);
        vars.extend([("CC", "gcc".to_string()), ("BUILD", "build-device".to_string())]);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let dev = compile::build(&project, &name, &vars)
            .unwrap_or_else(|err| panic!("{target} device units: {err:#}"));
        let dev_outs =
            compile::run_binary(&dev, g, &inputs, &dir.join("io-device")).expect("device units run");
        for (j, (got, w)) in dev_outs[0].iter().zip(&want).enumerate() {
            if let Some(d) = diff(got, w) {
                panic!("{target} {fetch:?} split {split}: device unit kernels, output {j}: {d}");
            }
        }
    }
    eprintln!("{target}: {n} convolutions forced to {fetch:?} (split {split}), bit-exact");
    n
}

#[test]
fn forced_over_fetch_is_bit_exact_and_counted() {
    if match_tests::shared_models().is_none() {
        return;
    }
    for target in ["gap9", "diana", "host-tiled"] {
        let rows = forced(target, Fetch::Rows, true);
        let planes = forced(target, Fetch::Planes, false);
        assert!(rows > 0 && planes > 0, "{target}: {rows} and {planes} layers forced");
    }
}
