//! Split input channels end to end: the innermost C loop with its int32
//! accumulator (cost/ `Problem::c_splittable`, emit/tiled.rs).
//!
//! - ResNet-8 (MLPerf Tiny) with every tiled convolution (groups 1) and
//!   dense layer forced to split C in three: on host-tiled (the portable
//!   kernels, whose unit claims `partial_sums`) and on gap9, where the
//!   cluster's layers (gap9.hwm's cluster claims `partial_sums`) run the
//!   cluster's own kernels with the accumulator and first / last C tile in
//!   their job (`mk_job_t.acc`), both the emulation's (gap9_units.c) and
//!   the device adapter's under the PMSIS / pulp-nnx doubles
//!   (gap9_device_units.c), while NE16's (no `partial_sums`) run the
//!   portable kernels. The generated code must stay bit-exact with the
//!   interpreter under ASan / UBSan, and gap9's DMA counters must equal
//!   [`match_core::cost::predict_counters`].
//! - A convolution and a dense layer whose smallest tile with whole C does
//!   not fit the compute memory (host-tiled's 16 KiB L1; gap9's 120000 B
//!   of L1, where NE16 does not fit either): the search maps them to the
//!   tiled unit (host-tiled's tiled CPU, gap9's cluster) with C split, and
//!   they run bit-exact (gap9: under both kernel builds, counters equal).

use match_core::compile::{self, CompileOptions};
use match_core::emit::tiled;
use match_core::ir::{DType, Data, Graph, Op, Quant, Requant};
use match_tests::e2e::{
    emit_build_check_with, fresh_dir, gap9_device_double_vars, lowered_golden, SANITIZED_CFLAGS,
};
use match_tests::fixtures::{c, fixed_requant, i8s, input_sets, n, t, values};
use match_tests::golden::diff;
use std::path::{Path, PathBuf};

fn tmp(parts: &[&str]) -> PathBuf {
    fresh_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "c_split", parts)
}

/// How a project's unit kernels are built: the target's emulation, or
/// (gap9) the device adapter's over the PMSIS and pulp-nnx doubles; both
/// sanitized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernels {
    Emulation,
    Device,
}

/// The make variables of a build of `name` in `project`.
fn build_vars(kernels: Kernels, project: &Path, name: &str) -> Vec<(&'static str, String)> {
    let mut v = vec![("CC", "gcc".to_string())];
    match kernels {
        Kernels::Emulation => {
            v.push(("CFLAGS", SANITIZED_CFLAGS.to_string()));
            v.push(("BUILD", "build-asan".to_string()));
        }
        Kernels::Device => {
            v.extend(gap9_device_double_vars(project, name));
            v.push(("BUILD", "build-device".to_string()));
        }
    }
    v
}

/// Layers forced to split C: convolutions, dense layers, and how many of
/// them run their unit's kernel (the rest, the portable kernels).
#[derive(Debug, Default)]
struct Forced {
    convs: usize,
    dense: usize,
    on_unit_kernel: usize,
}

/// Compiles ResNet-8 for `target` with every tiled convolution (groups 1)
/// and dense layer's C tile forced to `ceil(C / 3)` where the tile buffers
/// fit; builds it with `kernels`, runs the golden case, checks outputs
/// (and counters where the platform counts).
fn forced(target: &str, kernels: Kernels) -> Forced {
    let (e, hw, platform, lowered) = lowered_golden("mlperf-tiny/pretrainedResnet_quant", target);
    let g = &lowered.graph;
    let mut mapping = lowered.mapping.clone();
    let mut forced = Forced::default();
    // The platform's headers: a layer calls its unit kernel when they declare it.
    let headers: Vec<String> = platform
        .iter()
        .flat_map(|d| std::fs::read_dir(d).expect("platform folder"))
        .map(|e| e.expect("platform entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "h"))
        .map(|p| std::fs::read_to_string(p).expect("platform header"))
        .collect();
    for i in 0..mapping.layers.len() {
        let layer = &mapping.layers[i];
        let Some(s) = layer.schedule.clone() else { continue };
        let op = &g.nodes[layer.nodes[0]].op;
        let is_conv = matches!(op, Op::Conv2d { groups: 1, .. });
        if s.from == s.to || !(is_conv || matches!(op, Op::Dense { .. })) || s.tile.c < 2 {
            continue;
        }
        let mut f = s.clone();
        f.tile.c = (s.tile.c + 2) / 3;
        mapping.layers[i].schedule = Some(f);
        match tiled::plan_layer(g, &hw, &mapping.layers[i]) {
            Ok(t) if t.c_split() => {
                if is_conv {
                    forced.convs += 1;
                } else {
                    forced.dense += 1;
                }
                forced.on_unit_kernel +=
                    usize::from(t.call.as_deref().is_some_and(|c| tiled::platform_has_call(&headers, c)));
            }
            _ => mapping.layers[i].schedule = Some(s),
        }
    }
    let label = format!("{kernels:?}").to_lowercase();
    let dir = tmp(&[target, &label]);
    let name = "resnet_csplit";
    let inputs = vec![e.case_inputs(0)];
    let what = format!("{target} ({label})");
    let vars = |project: &Path| build_vars(kernels, project, name);
    let project = emit_build_check_with(g, &hw, &mapping, platform, &dir, name, &inputs, &what, &vars);
    let model_c = std::fs::read_to_string(project.join(format!("{name}.c"))).expect("model .c");
    if forced.on_unit_kernel < forced.convs + forced.dense {
        assert!(model_c.contains("mk_conv2d_acc("), "{what}: no accumulating portable convolution emitted");
    }
    if forced.on_unit_kernel > 0 {
        assert!(model_c.contains("    j.acc = (int32_t *)"), "{what}: no split job emitted");
    }
    eprintln!("{what}: {forced:?} forced to split C, bit-exact");
    forced
}

#[test]
fn forced_c_split_is_bit_exact_and_counted() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let f = forced("host-tiled", Kernels::Emulation);
    assert!(f.convs > 0 && f.dense > 0, "host-tiled: {f:?}");
    assert_eq!(f.on_unit_kernel, 0, "host-tiled's tiled CPU has no unit kernels");
    for kernels in [Kernels::Emulation, Kernels::Device] {
        let f = forced("gap9", kernels);
        // Convolutions on the cluster (its own kernels) and on NE16 (the
        // portable ones).
        assert!(f.on_unit_kernel > 0, "gap9: no split on the cluster's kernels: {f:?}");
        assert!(f.on_unit_kernel < f.convs + f.dense, "gap9: no split on the portable kernels: {f:?}");
    }
}

/// A layer too wide for whole C: the input channels and output channels
/// of a 3x3 convolution on a 5x5 input, and of a dense layer.
struct Wide {
    conv_c: usize,
    conv_k: usize,
    dense_c: usize,
    dense_k: usize,
}

/// A TFLite-style per-channel fixed-point requantization whose right
/// shifts (8 to 10) keep the sums of these wide layers mostly in range.
fn wide_requant(k: usize, seed: u64) -> Requant {
    let m = values(seed, k, 1 << 30, (1 << 31) - 1).into_iter().map(|v| v as i32).collect();
    let s = values(seed + 1, k, -10, -8).into_iter().map(|v| v as i32).collect();
    Requant::FixedPoint { multiplier: m, shift: s }
}

/// A 3x3 convolution and a dense layer of `w`'s channels, each with bias,
/// per-channel requantization (and ReLU on the convolution); small weights
/// (-3..3) on gap9's so that the outputs are mostly unsaturated.
fn too_wide(w: &Wide, small: bool) -> Graph {
    let mut g = Graph::default();
    let weights = |seed: u64, n: usize| {
        if small {
            Data::from_i64(DType::I8, &values(seed, n, -3, 3))
        } else {
            i8s(seed, n)
        }
    };
    let rq = |k: usize, seed: u64| if small { wide_requant(k, seed) } else { fixed_requant(k, seed) };
    let (cin, k) = (w.conv_c, w.conv_k);
    let x = t(&mut g, "x", &[1, 5, 5, cin], DType::I8);
    g.tensor_mut(x).quant = Some(Quant::per_tensor(0.05, -3));
    let wt = c(&mut g, "w", &[k, 3, 3, cin], weights(1, k * 9 * cin));
    let b = c(&mut g, "b", &[k], Data::I32(values(2, k, -500, 500).into_iter().map(|v| v as i32).collect()));
    let acc = t(&mut g, "acc", &[1, 5, 5, k], DType::I32);
    let biased = t(&mut g, "biased", &[1, 5, 5, k], DType::I32);
    let q = t(&mut g, "q", &[1, 5, 5, k], DType::I8);
    let y = t(&mut g, "y", &[1, 5, 5, k], DType::I8);
    let conv = Op::Conv2d {
        stride: [1, 1],
        dilation: [1, 1],
        pad: [1, 1, 1, 1],
        groups: 1,
        x_zp: -3,
        w_zp: vec![0],
    };
    n(&mut g, "conv", conv, &[x, wt], &[acc]);
    n(&mut g, "conv", Op::BiasAdd, &[acc, b], &[biased]);
    n(&mut g, "conv", Op::Requantize { requant: rq(k, 3), out_zp: -5 }, &[biased], &[q]);
    n(&mut g, "conv", Op::Clip { min: -5, max: 127 }, &[q], &[y]);
    let (dc, dk) = (w.dense_c, w.dense_k);
    let x2 = t(&mut g, "x2", &[1, dc], DType::I8);
    g.tensor_mut(x2).quant = Some(Quant::per_tensor(0.05, 2));
    let w2 = c(&mut g, "w2", &[dk, dc], weights(5, dk * dc));
    let b2 =
        c(&mut g, "b2", &[dk], Data::I32(values(6, dk, -500, 500).into_iter().map(|v| v as i32).collect()));
    let a2 = t(&mut g, "a2", &[1, dk], DType::I32);
    let bb2 = t(&mut g, "bb2", &[1, dk], DType::I32);
    let q2 = t(&mut g, "q2", &[1, dk], DType::I8);
    n(&mut g, "fc", Op::Dense { x_zp: 2, w_zp: vec![0] }, &[x2, w2], &[a2]);
    n(&mut g, "fc", Op::BiasAdd, &[a2, b2], &[bb2]);
    n(&mut g, "fc", Op::Requantize { requant: rq(dk, 7), out_zp: 1 }, &[bb2], &[q2]);
    g.inputs = vec![x, x2];
    g.outputs = vec![y, q2];
    g
}

/// Compiles [`too_wide`] for `target`: both layers must map to `unit`
/// with C split and call `kernels_called` (none: the portable kernels);
/// then each build of `builds` runs two input sets bit-exact with the
/// interpreter (and, where the platform counts, counters as predicted).
fn check_too_wide(target: &str, unit: &str, w: &Wide, kernels_called: &[&str], builds: &[Kernels]) {
    let name = "too_wide";
    let mut graph = too_wide(w, target == "gap9");
    match_core::passes::prepare(&mut graph).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let (hw, platform) = match_targets::resolve(target).expect(target);
    let dir = tmp(&[name, target]);
    let options = CompileOptions {
        out_dir: dir.join("project"),
        model_name: Some(name.to_string()),
        platform_dir: platform,
    };
    let compiled = compile::compile_graph(&graph, &hw, &options).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    // Both layers on the tiled unit, with C split (whole C does not fit).
    let mut split = 0;
    for layer in &compiled.mapping.layers {
        let s = layer.schedule.as_ref().expect("scheduled");
        let op = &compiled.graph.nodes[layer.nodes[0]].op;
        if matches!(op, Op::Conv2d { .. } | Op::Dense { .. }) {
            assert_eq!(s.unit, unit, "{target} {}: {s:?}", layer.name);
            let whole = if matches!(op, Op::Dense { .. }) { w.dense_c } else { w.conv_c };
            assert!((s.tile.c as usize) < whole, "{target} {}: C not split: {s:?}", layer.name);
            assert!(s.acc_bytes > 0);
            let lines = match_core::schedule::describe(s).join("\n");
            assert!(lines.contains("C split into tiles of"), "{lines}");
            split += 1;
        }
    }
    assert_eq!(split, 2, "{target}");
    let model_c = std::fs::read_to_string(options.out_dir.join(format!("{name}.c"))).expect("model .c");
    assert_eq!(model_c.matches("    mt_run(&L);").count(), 2, "{target}: both layers tiled");
    for k in kernels_called {
        assert!(model_c.contains(&format!("    {k}(&j);")), "{target}: {k} not called");
    }
    if !kernels_called.is_empty() {
        assert_eq!(model_c.matches("    j.acc = (int32_t *)").count(), 2, "{target}: split jobs");
    }
    let sets = input_sets(&graph, 2);
    for &kernels in builds {
        let label = format!("{kernels:?}").to_lowercase();
        let vars = build_vars(kernels, &options.out_dir, &compiled.model_name);
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let bin = compile::build(&options.out_dir, &compiled.model_name, &vars)
            .unwrap_or_else(|e| panic!("{target} {name} ({label}): {e:#}"));
        let io = dir.join(format!("io-{label}"));
        let got = if compile::platform_counts(&hw) {
            let (got, table) = compile::run_binary_counters(&bin, &compiled.graph, &sets, &io)
                .unwrap_or_else(|e| panic!("{target} {name} ({label}): {e:#}"));
            let bad = compile::counters_mismatches(&compiled.report.counters, &table);
            assert!(bad.is_empty(), "{target} ({label}): counters differ:\n{}", bad.join("\n"));
            got
        } else {
            compile::run_binary(&bin, &compiled.graph, &sets, &io)
                .unwrap_or_else(|e| panic!("{target} {name} ({label}): {e:#}"))
        };
        for (s, (inputs, outs)) in sets.iter().zip(&got).enumerate() {
            // The model's own arithmetic (the lowering keeps these layers
            // exact on both targets) and the graph as compiled.
            for reference in [&graph, &compiled.graph] {
                let want =
                    match_core::interp::run(reference, inputs).unwrap_or_else(|e| panic!("{name}: {e:#}"));
                for (j, (g, w)) in outs.iter().zip(&want).enumerate() {
                    if let Some(d) = diff(g, w) {
                        panic!("{target} {name} ({label}) set {s} output {j}: {d}");
                    }
                }
            }
        }
        eprintln!("{target} {name} ({label}): both layers split C on {unit}, bit-exact");
    }
}

/// host-tiled: a 3x3 convolution of 1200 input channels (its smallest
/// whole-C tile: a 3x3x1200 input window and 10800 B of weights, over
/// 16 KiB) and a dense layer of 20000 inputs.
#[test]
fn layers_too_wide_for_whole_c_map_with_split_c_and_match() {
    let w = Wide { conv_c: 1200, conv_k: 6, dense_c: 20000, dense_k: 3 };
    check_too_wide("host-tiled", "tiled_cpu", &w, &[], &[Kernels::Emulation]);
}

/// gap9: a 3x3 convolution of 8000 input channels (whole C on the cluster
/// needs 2 * 8 * 9 * 8000 B of im2col buffers alone, and on NE16 a 72000 B
/// input window plus 72000 B of encoded weights per output channel: over
/// the 120000 B of L1 on both) and a dense layer of 64000 inputs (a whole
/// weight row and the input: 128000 B), both on the cluster with C split,
/// through the emulation's and the device adapter's cluster kernels.
#[test]
fn layers_too_wide_for_gap9_l1_split_c_on_the_cluster_and_match() {
    let w = Wide { conv_c: 8000, conv_k: 4, dense_c: 64000, dense_k: 2 };
    check_too_wide(
        "gap9",
        "cluster",
        &w,
        &["cluster_conv", "cluster_linear"],
        &[Kernels::Emulation, Kernels::Device],
    );
}
