//! End to end on the host: every golden model compiled for `host`, the
//! emitted C project built with make and the system C compiler, run on
//! every case, and compared bit for bit with the golden outputs (made by
//! TFLite Micro / onnxruntime) and with the reference interpreter.
//!
//! Also: a build with AddressSanitizer and UBSan (gcc), a build with clang
//! when it is installed (required with `MATCH_REQUIRE_CLANG=1`), and insta
//! snapshots of the C emitted for three small hand-built IR networks.

use match_core::compile::{self, CompileOptions};
use match_core::ir::{AddKind, AddParams, DType, Data, Graph, Op, Quant, Requant};
use match_tests::e2e::Suite;
use match_tests::fixtures::{c, fixed_requant, i8s, input_sets, n, t, values};
use match_tests::golden::{diff, manifest, Entry, Manifest};
use std::path::{Path, PathBuf};

fn host() -> (match_core::HwModel, Option<PathBuf>) {
    match_targets::resolve("host").expect("the host target resolves")
}

/// The shared end-to-end driver, for target `host`.
fn suite() -> Suite<'static> {
    Suite {
        target: "host",
        tmp: Path::new(env!("CARGO_TARGET_TMPDIR")),
        name: "e2e_host",
        inspect_c: &no_inspection,
    }
}

/// The host suite looks at nothing in the emitted C.
fn no_inspection(_: &str) {}

#[test]
fn every_golden_model_on_host_is_bit_exact() {
    let m = manifest();
    let entries: Vec<&Entry> = m.models.iter().collect();
    let (models, cases) = suite().check_all(&entries, "gcc", &[("CC", "gcc")]);
    eprintln!("{models} models, {cases} cases bit-exact on host");
    assert!(models > 0);
}

/// Models for the sanitizer and clang builds: a TFLite model with softmax
/// (shared), an ONNX QDQ model, the integer dialect, QOperator, and a few
/// ONNX node tests.
const SELECTED: &[&str] = &[
    "mlperf-tiny/kws_ref_model",
    "mlperf-tiny/pretrainedResnet_quant",
    "generated/resnet8_qdq",
    "generated/dscnn_qop",
    "generated/intdialect_kws",
    "examples/example_int8",
    "match-onnx/anomaly_detection",
    "onnx-node/test_qlinearmatmul_3D_uint8_float32",
    "onnx-node/test_quantizelinear_axis",
];

fn selected(m: &Manifest) -> Vec<&Entry> {
    let v: Vec<&Entry> = m.models.iter().filter(|e| SELECTED.contains(&e.id.as_str())).collect();
    assert!(v.len() >= 4, "the selected models are missing from the manifest");
    v
}

#[test]
fn sanitized_build_is_clean_and_bit_exact() {
    let m = manifest();
    let flags = "-std=c99 -O1 -g -Wall -Wextra -Werror -fno-omit-frame-pointer \
                 -fsanitize=address,undefined -fno-sanitize-recover=all";
    let (models, cases) = suite().check_all(&selected(&m), "asan-ubsan", &[("CC", "gcc"), ("CFLAGS", flags)]);
    eprintln!("{models} models, {cases} cases clean under ASan + UBSan");
    assert!(models >= 3);
}

fn have(cmd: &str) -> bool {
    std::process::Command::new(cmd).arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn clang_build_is_bit_exact() {
    if !have("clang") {
        if std::env::var("MATCH_REQUIRE_CLANG").is_ok_and(|v| v == "1") {
            panic!("MATCH_REQUIRE_CLANG=1 but clang is not on PATH");
        }
        eprintln!("skipping: clang not found (set MATCH_REQUIRE_CLANG=1 to fail instead)");
        return;
    }
    let m = manifest();
    let (models, cases) = suite().check_all(&selected(&m), "clang", &[("CC", "clang")]);
    eprintln!("{models} models, {cases} cases bit-exact with clang");
}

// ------------------------------------------------------------ fixtures

/// conv2d 3x3 stride 2 (TFLite int8, per-channel fixed point) -> ReLU.
fn fixture_conv() -> Graph {
    let mut g = Graph::default();
    let x = t(&mut g, "x", &[1, 8, 8, 3], DType::I8);
    g.tensor_mut(x).quant = Some(Quant::per_tensor(0.05, -3));
    let w = c(&mut g, "w", &[4, 3, 3, 3], i8s(1, 4 * 27));
    let b = c(&mut g, "b", &[4], Data::I32(values(2, 4, -500, 500).into_iter().map(|v| v as i32).collect()));
    let acc = t(&mut g, "acc", &[1, 4, 4, 4], DType::I32);
    let biased = t(&mut g, "biased", &[1, 4, 4, 4], DType::I32);
    let q = t(&mut g, "q", &[1, 4, 4, 4], DType::I8);
    let y = t(&mut g, "y", &[1, 4, 4, 4], DType::I8);
    let conv = Op::Conv2d {
        stride: [2, 2],
        dilation: [1, 1],
        pad: [1, 1, 0, 0],
        groups: 1,
        x_zp: -3,
        w_zp: vec![0],
    };
    n(&mut g, "conv", conv, &[x, w], &[acc]);
    n(&mut g, "conv", Op::BiasAdd, &[acc, b], &[biased]);
    n(&mut g, "conv", Op::Requantize { requant: fixed_requant(4, 3), out_zp: -5 }, &[biased], &[q]);
    n(&mut g, "relu", Op::Clip { min: -5, max: 127 }, &[q], &[y]);
    g.inputs = vec![x];
    g.outputs = vec![y];
    g
}

/// Depthwise 3x3 (u8, float requant) -> pointwise 1x1 (scale-shift) ->
/// global average pool -> dense -> softmax.
fn fixture_dw_pw() -> Graph {
    let mut g = Graph::default();
    let x = t(&mut g, "x", &[1, 6, 6, 4], DType::U8);
    let wd = c(&mut g, "w_dw", &[4, 3, 3, 1], Data::from_i64(DType::U8, &values(4, 36, 0, 255)));
    let a1 = t(&mut g, "dw_acc", &[1, 6, 6, 4], DType::I32);
    let q1 = t(&mut g, "dw_q", &[1, 6, 6, 4], DType::U8);
    let wp = c(&mut g, "w_pw", &[8, 1, 1, 4], i8s(5, 32));
    let a2 = t(&mut g, "pw_acc", &[1, 6, 6, 8], DType::I32);
    let q2 = t(&mut g, "pw_q", &[1, 6, 6, 8], DType::I8);
    let gp = t(&mut g, "pool", &[1, 1, 1, 8], DType::I8);
    g.tensor_mut(q2).quant = Some(Quant::per_tensor(0.1, 2));
    let flat = t(&mut g, "flat", &[1, 8], DType::I8);
    let wf = c(&mut g, "w_fc", &[5, 8], i8s(6, 40));
    let a3 = t(&mut g, "fc_acc", &[1, 5], DType::I32);
    let q3 = t(&mut g, "fc_q", &[1, 5], DType::I8);
    let y = t(&mut g, "y", &[1, 5], DType::I8);
    let dw = Op::Conv2d {
        stride: [1, 1],
        dilation: [1, 1],
        pad: [1, 1, 1, 1],
        groups: 4,
        x_zp: 128,
        w_zp: vec![120, 128, 131, 127],
    };
    n(&mut g, "dw", dw, &[x, wd], &[a1]);
    let scale = vec![0.0021f32, 0.0017, 0.003, 0.0009];
    n(&mut g, "dw", Op::Requantize { requant: Requant::Float { scale }, out_zp: 128 }, &[a1], &[q1]);
    let pw =
        Op::Conv2d { stride: [1, 1], dilation: [1, 1], pad: [0; 4], groups: 1, x_zp: 128, w_zp: vec![0] };
    n(&mut g, "pw", pw, &[q1, wp], &[a2]);
    let ss = Requant::ScaleShift { scale: values(7, 8, 1, 90), bias: values(8, 8, -3000, 3000), shift: 14 };
    n(&mut g, "pw", Op::Requantize { requant: ss, out_zp: 2 }, &[a2], &[q2]);
    n(&mut g, "gap", Op::GlobalAvgPool, &[q2], &[gp]);
    n(&mut g, "flatten", Op::Reshape, &[gp], &[flat]);
    n(&mut g, "fc", Op::Dense { x_zp: 2, w_zp: vec![0] }, &[flat, wf], &[a3]);
    n(&mut g, "fc", Op::Requantize { requant: fixed_requant(1, 9), out_zp: 0 }, &[a3], &[q3]);
    let sm = Op::Softmax { beta: 1.0, input_scale: 0.0625, input_zp: 0 };
    n(&mut g, "softmax", sm, &[q3], &[y]);
    g.inputs = vec![x];
    g.outputs = vec![y];
    g
}

/// Residual block: conv -> max pool, a 1x1 conv branch, TFLite add, then
/// an average pool and a second (float) add with a broadcast constant.
fn fixture_residual() -> Graph {
    let mut g = Graph::default();
    let x = t(&mut g, "x", &[1, 8, 8, 4], DType::I8);
    let w1 = c(&mut g, "w1", &[4, 3, 3, 4], i8s(10, 144));
    let a1 = t(&mut g, "c1_acc", &[1, 8, 8, 4], DType::I32);
    let q1 = t(&mut g, "c1_q", &[1, 8, 8, 4], DType::I8);
    let w2 = c(&mut g, "w2", &[4, 1, 1, 4], i8s(11, 16));
    let a2 = t(&mut g, "c2_acc", &[1, 8, 8, 4], DType::I32);
    let q2 = t(&mut g, "c2_q", &[1, 8, 8, 4], DType::I8);
    let s = t(&mut g, "sum", &[1, 8, 8, 4], DType::I8);
    let mp = t(&mut g, "max", &[1, 4, 4, 4], DType::I8);
    let ap = t(&mut g, "avg", &[1, 2, 2, 4], DType::I8);
    let k = c(&mut g, "k", &[4], Data::I8(vec![-7, 3, 0, 100]));
    let y = t(&mut g, "y", &[1, 2, 2, 4], DType::I8);
    let same = |groups| Op::Conv2d {
        stride: [1, 1],
        dilation: [1, 1],
        pad: [1, 1, 1, 1],
        groups,
        x_zp: 1,
        w_zp: vec![0],
    };
    n(&mut g, "c1", same(1), &[x, w1], &[a1]);
    n(&mut g, "c1", Op::Requantize { requant: fixed_requant(4, 12), out_zp: 1 }, &[a1], &[q1]);
    let pw = Op::Conv2d { stride: [1, 1], dilation: [1, 1], pad: [0; 4], groups: 1, x_zp: 1, w_zp: vec![0] };
    n(&mut g, "c2", pw, &[x, w2], &[a2]);
    n(&mut g, "c2", Op::Requantize { requant: fixed_requant(1, 13), out_zp: -2 }, &[a2], &[q2]);
    let p = AddParams {
        left_shift: 20,
        in_zp: [1, -2],
        in_multiplier: [1623821475, 1126171127],
        in_shift: [-1, -2],
        out_multiplier: 1459366444,
        out_shift: -18,
        out_zp: 4,
    };
    n(&mut g, "add", Op::Add { kind: AddKind::TfLite(p) }, &[q1, q2], &[s]);
    n(&mut g, "maxpool", Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] }, &[s], &[mp]);
    g.tensor_mut(mp).quant = Some(Quant::per_tensor(0.1, 4));
    let avg = Op::AvgPool { kernel: [3, 3], stride: [2, 2], pad: [1, 1, 1, 1], count_include_pad: false };
    n(&mut g, "avgpool", avg, &[mp], &[ap]);
    let fadd = AddKind::Float { a_scale: 0.1, a_zp: 4, b_scale: 0.05, b_zp: -1, y_scale: 0.13, y_zp: 3 };
    n(&mut g, "add2", Op::Add { kind: fadd }, &[ap, k], &[y]);
    g.inputs = vec![x];
    g.outputs = vec![y];
    g
}

/// Compiles a fixture, snapshots the model .c and the weights summary,
/// builds it and checks it against the interpreter on random inputs.
fn check_fixture(name: &str, mut graph: Graph, snapshot: bool) {
    match_core::passes::prepare(&mut graph).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let (hw, platform) = host();
    let dir = suite().work_dir(&["fixtures", name]);
    let options = CompileOptions {
        out_dir: dir.join("project"),
        model_name: Some(name.to_string()),
        platform_dir: platform,
    };
    let compiled = compile::compile_graph(&graph, &hw, &options).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let model_c = std::fs::read_to_string(options.out_dir.join(format!("{name}.c"))).expect("model .c");
    let weights =
        std::fs::read_to_string(options.out_dir.join(format!("{name}_weights.c"))).expect("weights");
    let summary: String =
        weights.lines().take_while(|l| !l.starts_with("#include")).map(|l| format!("{l}\n")).collect();
    if snapshot {
        insta::assert_snapshot!(format!("{name}_c"), model_c);
        insta::assert_snapshot!(format!("{name}_weights_summary"), summary);
    }

    let bin = compile::build(&options.out_dir, &compiled.model_name, &[("CC", "gcc")])
        .unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let sets = input_sets(&graph, 4);
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

#[test]
fn fixture_conv_emits_and_matches() {
    check_fixture("fx_conv", fixture_conv(), true);
}

#[test]
fn fixture_depthwise_pointwise_emits_and_matches() {
    check_fixture("fx_dw_pw", fixture_dw_pw(), true);
}

#[test]
fn fixture_residual_emits_and_matches() {
    check_fixture("fx_residual", fixture_residual(), true);
}

/// The data-movement and boundary kernels no golden model exercises much:
/// pad, transpose, concat with a constant, QLinear average pool, global sum
/// pool, cast, dequantize, per-channel quantize, and two outputs.
fn fixture_misc() -> Graph {
    let mut g = Graph::default();
    let x = t(&mut g, "x", &[1, 4, 4, 3], DType::I8);
    let pd = t(&mut g, "padded", &[1, 5, 6, 3], DType::I8);
    let tr = t(&mut g, "nchw", &[1, 3, 5, 6], DType::I8);
    let k = c(&mut g, "k", &[1, 2, 5, 6], i8s(20, 60));
    let cat = t(&mut g, "cat", &[1, 5, 5, 6], DType::I8);
    let back = t(&mut g, "nhwc", &[1, 5, 6, 5], DType::I8);
    let ap = t(&mut g, "qavg", &[1, 6, 7, 5], DType::U8);
    let sp = t(&mut g, "sum", &[1, 1, 1, 5], DType::I32);
    let cs = t(&mut g, "narrow", &[1, 1, 1, 5], DType::I8);
    g.tensor_mut(cs).quant = Some(Quant::per_tensor(0.37, -4));
    let dq = t(&mut g, "real", &[1, 1, 1, 5], DType::F32);
    let q = t(&mut g, "requantized", &[1, 1, 1, 5], DType::U8);
    g.tensor_mut(q).quant = Some(Quant {
        scale: vec![0.5, 0.25, 1.5, 0.125, 3.0],
        zero_point: vec![128, 120, 0, 255, 7],
        axis: 3,
    });
    let pads = vec![[0, 0], [1, 0], [0, 2], [0, 0]];
    n(&mut g, "pad", Op::Pad { pads, value: -3 }, &[x], &[pd]);
    n(&mut g, "to_nchw", Op::Transpose { perm: vec![0, 3, 1, 2] }, &[pd], &[tr]);
    n(&mut g, "concat", Op::Concat { axis: 1 }, &[tr, k], &[cat]);
    n(&mut g, "to_nhwc", Op::Transpose { perm: vec![0, 2, 3, 1] }, &[cat], &[back]);
    let qavg = Op::QLinearAvgPool {
        kernel: [2, 2],
        stride: [1, 1],
        pad: [1, 1, 1, 1],
        count_include_pad: false,
        x_scale: 0.02,
        x_zp: -1,
        y_scale: 0.013,
        y_zp: 130,
    };
    n(&mut g, "qavg", qavg, &[back], &[ap]);
    n(&mut g, "sumpool", Op::GlobalSumPool { x_zp: 3 }, &[ap], &[sp]);
    n(&mut g, "cast", Op::Cast, &[sp], &[cs]);
    n(&mut g, "dequantize", Op::Dequantize, &[cs], &[dq]);
    n(&mut g, "quantize", Op::Quantize, &[dq], &[q]);
    g.inputs = vec![x];
    g.outputs = vec![q, dq];
    g
}

#[test]
fn fixture_data_movement_and_boundaries_match() {
    check_fixture("fx_misc", fixture_misc(), false);
}

// ------------------------------------------------------------ errors

#[test]
fn a_model_too_big_for_the_target_is_refused_with_the_shortfall() {
    let (hw, _) = host();
    let graph = {
        let mut g = fixture_conv();
        match_core::passes::prepare(&mut g).expect("prepares");
        g
    };
    let text = match_core::HwModel::clone(&hw);
    let mut small = text;
    small.memories.iter_mut().for_each(|m| {
        m.size = 100;
        m.reserve = 0;
    });
    let dir = suite().work_dir(&["errors", "too_big"]);
    let options =
        CompileOptions { out_dir: dir.join("project"), model_name: Some("m".into()), platform_dir: None };
    let err = compile::compile_graph(&graph, &small, &options).expect_err("does not fit");
    let msg = format!("{err:#}");
    assert!(msg.contains("does not fit target `host`"), "{msg}");
    assert!(msg.contains("memory `RAM` has 100 B usable"), "{msg}");
    assert!(msg.contains("B short"), "{msg}");
    assert!(!options.out_dir.exists(), "nothing is written for a model that does not fit");
}

#[test]
fn an_unwritable_output_folder_is_an_error() {
    let (hw, platform) = host();
    let mut graph = fixture_conv();
    match_core::passes::prepare(&mut graph).expect("prepares");
    let dir = suite().work_dir(&["errors", "unwritable"]);
    let file = dir.join("a_file");
    std::fs::write(&file, b"x").expect("write");
    let options =
        CompileOptions { out_dir: file.join("sub"), model_name: Some("m".into()), platform_dir: platform };
    let err = compile::compile_graph(&graph, &hw, &options).expect_err("cannot write");
    assert!(format!("{err:#}").contains("cannot create the output folder"), "{err:#}");
}
