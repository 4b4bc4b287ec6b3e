//! Split input channels end to end: the innermost C loop with its int32
//! accumulator (cost.rs `Problem::c_splittable`, emit/tiled.rs).
//!
//! - ResNet-8 (MLPerf Tiny) with every tiled convolution (groups 1) and
//!   dense layer forced to split C in three, on host-tiled (the portable
//!   kernels, whose unit claims `partial_sums`) and on gap9's cluster tiles
//!   (forced: the split runs the portable kernels, and the emulation's DMA
//!   counters must equal [`match_core::cost::predict_counters`]); the
//!   generated code must stay bit-exact with the interpreter.
//! - A convolution and a dense layer whose smallest tile with whole C does
//!   not fit host-tiled's 16 KiB L1 (refused by the tiled unit before the
//!   split): the search now maps them there with C split, and they run
//!   bit-exact.

use match_core::compile::{self, CompileOptions};
use match_core::emit::tiled;
use match_core::ir::{DType, Data, Graph, Op, Quant};
use match_tests::e2e::{emit_build_check, fresh_dir, lowered_golden, SANITIZED_CFLAGS};
use match_tests::fixtures::{c, fixed_requant, i8s, n, t, values};
use match_tests::golden::diff;
use std::path::{Path, PathBuf};

fn tmp(parts: &[&str]) -> PathBuf {
    fresh_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "c_split", parts)
}

/// Compiles ResNet-8 for `target` with every tiled convolution (groups 1)
/// and dense layer's C tile forced to `ceil(C / 3)` where the tile buffers
/// fit; runs the golden case, checks outputs (and counters where the
/// platform counts). Returns (convolutions, dense layers) forced.
fn forced(target: &str) -> (usize, usize) {
    let (e, hw, platform, lowered) = lowered_golden("mlperf-tiny/pretrainedResnet_quant", target);
    let g = &lowered.graph;
    let mut mapping = lowered.mapping.clone();
    let (mut convs, mut dense) = (0, 0);
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
                    convs += 1;
                } else {
                    dense += 1;
                }
            }
            _ => mapping.layers[i].schedule = Some(s),
        }
    }
    let dir = tmp(&[target]);
    let name = "resnet_csplit";
    let inputs = vec![e.case_inputs(0)];
    let project = emit_build_check(g, &hw, &mapping, platform, &dir, name, &inputs, target);
    let model_c = std::fs::read_to_string(project.join(format!("{name}.c"))).expect("model .c");
    assert!(model_c.contains("mk_conv2d_acc("), "{target}: no accumulating convolution emitted");
    eprintln!("{target}: {convs} convolutions and {dense} dense layers forced to split C, bit-exact");
    (convs, dense)
}

#[test]
fn forced_c_split_is_bit_exact_and_counted() {
    if match_tests::shared_models().is_none() {
        return;
    }
    for target in ["host-tiled", "gap9"] {
        let (convs, dense) = forced(target);
        assert!(convs > 0, "{target}: no convolution forced");
        if target == "host-tiled" {
            assert!(dense > 0, "{target}: no dense layer forced");
        }
    }
}

/// A 3x3 convolution of 1200 input channels (its smallest whole-C tile:
/// a 3x3x1200 input window and 10800 B of weights, over 16 KiB) and a
/// dense layer of 20000 inputs, each with bias, per-channel requantization
/// and ReLU.
fn too_wide() -> Graph {
    let mut g = Graph::default();
    let (cin, k) = (1200usize, 6usize);
    let x = t(&mut g, "x", &[1, 5, 5, cin], DType::I8);
    g.tensor_mut(x).quant = Some(Quant::per_tensor(0.05, -3));
    let w = c(&mut g, "w", &[k, 3, 3, cin], i8s(1, k * 9 * cin));
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
    n(&mut g, "conv", conv, &[x, w], &[acc]);
    n(&mut g, "conv", Op::BiasAdd, &[acc, b], &[biased]);
    n(&mut g, "conv", Op::Requantize { requant: fixed_requant(k, 3), out_zp: -5 }, &[biased], &[q]);
    n(&mut g, "conv", Op::Clip { min: -5, max: 127 }, &[q], &[y]);
    let (dc, dk) = (20000usize, 3usize);
    let x2 = t(&mut g, "x2", &[1, dc], DType::I8);
    g.tensor_mut(x2).quant = Some(Quant::per_tensor(0.05, 2));
    let w2 = c(&mut g, "w2", &[dk, dc], i8s(5, dk * dc));
    let b2 =
        c(&mut g, "b2", &[dk], Data::I32(values(6, dk, -500, 500).into_iter().map(|v| v as i32).collect()));
    let a2 = t(&mut g, "a2", &[1, dk], DType::I32);
    let bb2 = t(&mut g, "bb2", &[1, dk], DType::I32);
    let q2 = t(&mut g, "q2", &[1, dk], DType::I8);
    n(&mut g, "fc", Op::Dense { x_zp: 2, w_zp: vec![0] }, &[x2, w2], &[a2]);
    n(&mut g, "fc", Op::BiasAdd, &[a2, b2], &[bb2]);
    n(&mut g, "fc", Op::Requantize { requant: fixed_requant(dk, 7), out_zp: 1 }, &[bb2], &[q2]);
    g.inputs = vec![x, x2];
    g.outputs = vec![y, q2];
    g
}

#[test]
fn layers_too_wide_for_whole_c_map_with_split_c_and_match() {
    let name = "too_wide";
    let mut graph = too_wide();
    match_core::passes::prepare(&mut graph).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let (hw, platform) = match_targets::resolve("host-tiled").expect("host-tiled");
    let dir = tmp(&[name]);
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
            assert_eq!(s.unit, "tiled_cpu", "{}: {s:?}", layer.name);
            let whole = if matches!(op, Op::Dense { .. }) { 20000 } else { 1200 };
            assert!(s.tile.c < whole, "{}: C not split: {s:?}", layer.name);
            assert!(s.acc_bytes > 0);
            let lines = match_core::schedule::describe(s).join("\n");
            assert!(lines.contains("C split into tiles of"), "{lines}");
            split += 1;
        }
    }
    assert_eq!(split, 2);
    let model_c = std::fs::read_to_string(options.out_dir.join(format!("{name}.c"))).expect("model .c");
    assert_eq!(model_c.matches("    mt_run(&L);").count(), 2, "both layers tiled");
    let bin = compile::build(
        &options.out_dir,
        &compiled.model_name,
        &[("CC", "gcc"), ("CFLAGS", SANITIZED_CFLAGS), ("BUILD", "build-asan")],
    )
    .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let sets: Vec<Vec<Data>> = (0..2u64)
        .map(|s| {
            graph
                .inputs
                .iter()
                .map(|&t| {
                    let t = graph.tensor(t);
                    let (lo, hi) = t.dtype.int_range().expect("integer inputs");
                    Data::from_i64(t.dtype, &values(100 + s, t.elements(), lo, hi))
                })
                .collect()
        })
        .collect();
    let got =
        compile::run_binary(&bin, &graph, &sets, &dir.join("io")).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    for (s, (inputs, outs)) in sets.iter().zip(&got).enumerate() {
        let want = match_core::interp::run(&graph, inputs).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        for (j, (g, w)) in outs.iter().zip(&want).enumerate() {
            if let Some(d) = diff(g, w) {
                panic!("{name} set {s} output {j}: {d}");
            }
        }
    }
}
