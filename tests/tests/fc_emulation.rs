//! Layers that GAP9's mapper gives to the fabric controller (targets/gap9.hwm:
//! the `fc` unit's offload rules for dense layers, additions and poolings)
//! run the portable kernels untiled from L2. Small layers of each kind,
//! compiled for the shipped gap9 with all its rules, must land on the FC,
//! call no unit kernel, build with `-fsanitize=address,undefined` against
//! the platform's emulation, and equal the reference interpreter on the
//! lowered graph bit for bit.

use match_core::compile::{self, CompileOptions};
use match_core::ir::{AddKind, AddParams, DType, Data, Graph, Op, Requant, TensorId};
use match_core::schedule::Objective;
use match_tests::fixtures::{c, n, t, values};
use std::path::PathBuf;

const CFLAGS: &str = "-std=c99 -O1 -g -Wall -Wextra -Werror -fno-omit-frame-pointer \
                      -fsanitize=address,undefined -fno-sanitize-recover=all";

/// x i8 (1, 24) -> dense (12 outputs) -> bias -> per-channel fixed point -> ReLU.
fn dense() -> Graph {
    let (cin, k) = (24, 12);
    let mut g = Graph::default();
    let x = t(&mut g, "x", &[1, cin], DType::I8);
    let w = c(&mut g, "w", &[k, cin], Data::from_i64(DType::I8, &values(1, k * cin, -128, 127)));
    let b = c(&mut g, "b", &[k], Data::from_i64(DType::I32, &values(2, k, -3000, 3000)));
    let acc = t(&mut g, "acc", &[1, k], DType::I32);
    let biased = t(&mut g, "biased", &[1, k], DType::I32);
    let rq = t(&mut g, "rq", &[1, k], DType::I8);
    let y = t(&mut g, "y", &[1, k], DType::I8);
    n(&mut g, "dense", Op::Dense { x_zp: -3, w_zp: vec![0] }, &[x, w], &[acc]);
    n(&mut g, "bias", Op::BiasAdd, &[acc, b], &[biased]);
    let multiplier: Vec<i32> = values(3, k, 1 << 29, (1 << 31) - 1).into_iter().map(|v| v as i32).collect();
    let shift = vec![-9; k];
    let requant = Requant::FixedPoint { multiplier, shift };
    n(&mut g, "requant", Op::Requantize { requant, out_zp: -128 }, &[biased], &[rq]);
    n(&mut g, "relu", Op::Clip { min: -128, max: 127 }, &[rq], &[y]);
    finish(g, &[x], y)
}

/// Two i8 (1, 4, 3, 5) inputs, TFLite addition.
fn add() -> Graph {
    let shape = [1, 4, 3, 5];
    let mut g = Graph::default();
    let a = t(&mut g, "a", &shape, DType::I8);
    let b = t(&mut g, "b", &shape, DType::I8);
    let y = t(&mut g, "y", &shape, DType::I8);
    let params = AddParams {
        left_shift: 20,
        in_zp: [4, -2],
        in_multiplier: [1_500_000_000, 1_200_000_000],
        in_shift: [-1, -2],
        out_multiplier: 1_800_000_000,
        out_shift: -19,
        out_zp: 3,
    };
    n(&mut g, "add", Op::Add { kind: AddKind::TfLite(params) }, &[a, b], &[y]);
    finish(g, &[a, b], y)
}

/// i8 (1, 7, 6, 4), 3x3 max pooling, stride 2, padding 1.
fn pool() -> Graph {
    let mut g = Graph::default();
    let x = t(&mut g, "x", &[1, 7, 6, 4], DType::I8);
    let y = t(&mut g, "y", &[1, 4, 3, 4], DType::I8);
    n(&mut g, "pool", Op::MaxPool { kernel: [3, 3], stride: [2, 2], pad: [1, 1, 1, 1] }, &[x], &[y]);
    finish(g, &[x], y)
}

fn finish(mut g: Graph, inputs: &[TensorId], y: TensorId) -> Graph {
    g.inputs = inputs.to_vec();
    g.outputs = vec![y];
    g.rebuild_edges();
    g
}

/// Compiles `graph` for gap9, checks that every layer is on the FC, builds
/// under the sanitizers, runs 3 input sets and compares with the interpreter.
fn check(label: &str, graph: &Graph) -> Result<(), String> {
    let (hw, platform) = match_targets::resolve("gap9").map_err(|e| format!("{e}"))?;
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fc_emulation").join(label);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let options =
        CompileOptions { out_dir: tmp.join("project"), model_name: Some("m".into()), platform_dir: platform };
    let compiled = compile::compile_graph_exact(graph, &hw, &options, Objective::Latency, false)
        .map_err(|e| format!("{label}: compile: {e:#}"))?;
    for l in &compiled.mapping.layers {
        if l.unit != "fc" {
            return Err(format!("{label}: {} on {} ({:?}), not on the FC", l.name, l.unit, l.kernel));
        }
    }
    if !compiled.mapping.layers.iter().any(|l| l.pattern.is_some()) {
        return Err(format!("{label}: no layer taken by an FC offload rule"));
    }
    let model_c = std::fs::read_to_string(options.out_dir.join("m.c")).map_err(|e| e.to_string())?;
    for kernel in ["cluster_", "ne16_", "fc_linear(", "fc_add(", "fc_pool("] {
        if model_c.contains(kernel) {
            return Err(format!("{label}: the code names `{kernel}`: FC layers run the portable kernels"));
        }
    }
    let bin = compile::build(&options.out_dir, "m", &[("CC", "gcc"), ("CFLAGS", CFLAGS)])
        .map_err(|e| format!("{label}: {e:#}"))?;
    let sets: Vec<Vec<Data>> = (0..3u64)
        .map(|s| {
            compiled
                .graph
                .inputs
                .iter()
                .enumerate()
                .map(|(i, &id)| {
                    let x = compiled.graph.tensor(id);
                    Data::from_i64(x.dtype, &values(100 * s + i as u64, x.elements(), -128, 127))
                })
                .collect()
        })
        .collect();
    let got = compile::run_binary(&bin, &compiled.graph, &sets, &tmp.join("io"))
        .map_err(|e| format!("{label}: run: {e:#}"))?;
    for (i, (set, out)) in sets.iter().zip(&got).enumerate() {
        let want =
            match_core::interp::run(&compiled.graph, set).map_err(|e| format!("{label}: interp: {e:#}"))?;
        if *out != want {
            return Err(format!("{label}: input set {i}: the FC's code differs from the interpreter"));
        }
    }
    Ok(())
}

#[test]
fn small_dense_add_and_pool_layers_run_on_the_fc_bit_exact() {
    let failures: Vec<String> = [("dense", dense()), ("add", add()), ("pool", pool())]
        .iter()
        .filter_map(|(l, g)| check(l, g).err())
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
