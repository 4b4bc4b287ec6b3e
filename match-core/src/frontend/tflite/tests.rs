//! Importer tests: the MLPerf Tiny models (when `../shared` is present),
//! hand-built flatbuffers, and corrupt input that must never panic.

use super::import;
use crate::ir::{DType, Graph, Op, Requant};
use flatbuffers::{FlatBufferBuilder, WIPOffset};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Node counts by pattern name.
fn counts(g: &Graph) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    for n in g.nodes.node_indices() {
        *m.entry(g.nodes[n].op.pattern_name()).or_insert(0) += 1;
    }
    m
}

fn shared_dir(sub: &str) -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/models").join(sub);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("MATCH_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!("{} is missing and MATCH_REQUIRE_SHARED=1", dir.display());
    }
    eprintln!("skipping: {} not found", dir.display());
    None
}

fn models(sub: &str) -> Vec<(String, Vec<u8>)> {
    let Some(dir) = shared_dir(sub) else { return Vec::new() };
    let mut out = Vec::new();
    for e in std::fs::read_dir(&dir).expect("model folder") {
        let p = e.expect("entry").path();
        if p.extension().and_then(|e| e.to_str()) == Some("tflite") {
            let name = p.file_name().and_then(|n| n.to_str()).expect("name").to_string();
            out.push((name, std::fs::read(&p).expect("read model")));
        }
    }
    out.sort();
    out
}

/// (conv2d incl. depthwise, depthwise, add, avgpool, dense, softmax) of
/// each model, from the model README's operator table.
fn expected(name: &str) -> Option<([usize; 6], Vec<usize>, Vec<usize>)> {
    let base = name.trim_end_matches(".tflite").trim_end_matches("_logits");
    let logits = name.contains("_logits");
    let sm = usize::from(!logits);
    Some(match base {
        "pretrainedResnet_quant" => ([9, 0, 3, 1, 1, sm], vec![1, 32, 32, 3], vec![1, 10]),
        "vww_96_int8" => ([27, 13, 0, 1, 1, sm], vec![1, 96, 96, 3], vec![1, 2]),
        "kws_ref_model" => ([9, 4, 0, 1, 1, sm], vec![1, 49, 10, 1], vec![1, 12]),
        "ad01_int8" => ([0, 0, 0, 0, 10, 0], vec![1, 640], vec![1, 640]),
        "str_ww_ref_model" => ([8, 4, 0, 0, 1, sm], vec![1, 30, 1, 40], vec![1, 3]),
        _ => return None,
    })
}

fn check_model(name: &str, bytes: &[u8]) {
    let g = import(bytes).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let c = counts(&g);
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    let depthwise =
        g.nodes.node_weights().filter(|n| matches!(&n.op, Op::Conv2d { groups, .. } if *groups > 1)).count();
    let (want, input, output) = expected(name).unwrap_or_else(|| panic!("{name}: no expectations"));
    let got = [get("conv2d"), depthwise, get("add"), get("avgpool"), get("dense"), get("softmax")];
    assert_eq!(got, want, "{name}: conv2d, depthwise, add, avgpool, dense, softmax; all: {c:?}");
    // Every accumulating node is followed by a requantization.
    assert_eq!(get("requant"), get("conv2d") + get("dense"), "{name}: {c:?}");
    assert_eq!(g.inputs.len(), 1);
    assert_eq!(g.outputs.len(), 1);
    assert_eq!(g.tensor(g.inputs[0]).shape, input, "{name} input");
    assert_eq!(g.tensor(g.outputs[0]).shape, output, "{name} output");
    assert_eq!(g.tensor(g.inputs[0]).dtype, DType::I8);
    assert!(g.topo_order().is_some(), "{name}: cycle");
    for n in g.nodes.node_weights() {
        assert!(n.name.starts_with('#'), "{name}: node name {}", n.name);
        match &n.op {
            Op::Conv2d { groups, w_zp, .. } => {
                let w = g.tensor(n.inputs[1]);
                let x = g.tensor(n.inputs[0]);
                assert_eq!(w.shape.len(), 4);
                assert_eq!(w.shape[3] * groups, x.shape[3], "{name} {}: OHWI", n.name);
                assert!(w_zp.len() == 1 || w_zp.len() == w.shape[0]);
                assert_eq!(g.tensor(n.outputs[0]).dtype, DType::I32);
            }
            Op::Requantize { requant: Requant::FixedPoint { multiplier, shift }, .. } => {
                assert_eq!(multiplier.len(), shift.len());
                assert!(multiplier.iter().all(|&m| m == 0 || m >= 1 << 30), "{name}: {multiplier:?}");
            }
            _ => {}
        }
    }
}

#[test]
fn imports_mlperf_tiny() {
    let all = models("mlperf-tiny");
    if !all.is_empty() {
        assert_eq!(all.len(), 5);
    }
    for (name, bytes) in &all {
        check_model(name, bytes);
    }
}

#[test]
fn imports_mlperf_tiny_logits() {
    let all = models("mlperf-tiny-logits");
    if !all.is_empty() {
        assert_eq!(all.len(), 4);
    }
    for (name, bytes) in &all {
        check_model(name, bytes);
    }
}

#[test]
fn resnet_details() {
    let Some((_, bytes)) = models("mlperf-tiny").into_iter().find(|(n, _)| n.starts_with("pretrainedResnet"))
    else {
        return;
    };
    let g = import(&bytes).expect("import");
    let first = g.nodes.node_weights().find(|n| n.name.starts_with("#0 CONV_2D")).expect("first conv");
    let Op::Conv2d { stride, pad, groups, x_zp, .. } = &first.op else { panic!("not a conv") };
    assert_eq!((*stride, *pad, *groups), ([1, 1], [1, 1, 1, 1], 1));
    assert_eq!(*x_zp, g.tensor(first.inputs[0]).quant.as_ref().expect("quant").zp());
    // Strided SAME 3x3 on 32: pad (0, 1) on each axis.
    let strided = g.nodes.node_weights().find(|n| n.name.starts_with("#4 CONV_2D")).expect("conv 4");
    let Op::Conv2d { stride, pad, .. } = &strided.op else { panic!("not a conv") };
    assert_eq!((*stride, *pad), ([2, 2], [0, 0, 1, 1]));
    // The ADDs carry TFLite's parameters and a fused ReLU.
    let adds: Vec<_> = g.nodes.node_weights().filter(|n| matches!(n.op, Op::Add { .. })).collect();
    assert_eq!(adds.len(), 3);
    for a in adds {
        let Op::Add { kind: crate::ir::AddKind::TfLite(p) } = &a.op else { panic!("kind") };
        assert_eq!(p.left_shift, 20);
        assert!(p.in_shift.iter().all(|&s| s <= 0) && p.out_shift <= 0);
    }
    let pool = g.nodes.node_weights().find(|n| matches!(n.op, Op::AvgPool { .. })).expect("pool");
    assert_eq!(
        pool.op,
        Op::AvgPool { kernel: [8, 8], stride: [8, 8], pad: [0; 4], count_include_pad: false }
    );
}

#[test]
fn depthwise_weights_become_ohwi() {
    let Some((_, bytes)) = models("mlperf-tiny").into_iter().find(|(n, _)| n.starts_with("kws")) else {
        return;
    };
    let g = import(&bytes).expect("import");
    let dw = g.nodes.node_weights().find(|n| n.name.starts_with("#1 DEPTHWISE_CONV_2D")).expect("dw");
    let w = g.tensor(dw.inputs[1]);
    assert_eq!(w.shape, vec![64, 3, 3, 1]);
    let Op::Conv2d { groups, .. } = dw.op else { panic!("conv") };
    assert_eq!(groups, 64);
    assert_eq!(w.quant.as_ref().expect("quant").axis, 0);
}

// ---- hand-built models -------------------------------------------------

/// A tensor of a hand-built model.
struct T {
    shape: Vec<i32>,
    ty: i8,
    data: Vec<u8>,
    scale: Vec<f32>,
    zp: Vec<i64>,
    qdim: i32,
}

fn t(shape: &[i32], ty: i8, scale: f32, zp: i64) -> T {
    T { shape: shape.to_vec(), ty, data: Vec::new(), scale: vec![scale], zp: vec![zp], qdim: 0 }
}

/// An operator: builtin code, inputs, outputs, options (type id, scalar
/// fields as (field id, i32 value)).
struct O {
    code: i32,
    inputs: Vec<i32>,
    outputs: Vec<i32>,
    options: (u8, Vec<(u16, i32)>),
}

/// Serializes a one-subgraph model.
fn build(tensors: &[T], ops: &[O], inputs: &[i32], outputs: &[i32]) -> Vec<u8> {
    let slot = |id: u16| 4 + 2 * id;
    let mut fbb = FlatBufferBuilder::new();
    let mut buffers = Vec::new();
    let empty = fbb.start_table();
    buffers.push(fbb.end_table(empty));
    let mut tensor_offsets = Vec::new();
    for (i, x) in tensors.iter().enumerate() {
        let buffer = if x.data.is_empty() {
            0
        } else {
            let data = fbb.create_vector(&x.data);
            let b = fbb.start_table();
            fbb.push_slot_always(slot(0), data);
            buffers.push(fbb.end_table(b));
            buffers.len() as u32 - 1
        };
        let shape = fbb.create_vector(&x.shape);
        let name = fbb.create_string(&format!("t{i}"));
        let quant = if x.scale.is_empty() {
            None
        } else {
            let s = fbb.create_vector(&x.scale);
            let z = fbb.create_vector(&x.zp);
            let q = fbb.start_table();
            fbb.push_slot_always(slot(2), s);
            fbb.push_slot_always(slot(3), z);
            fbb.push_slot::<i32>(slot(6), x.qdim, 0);
            Some(fbb.end_table(q))
        };
        let tt = fbb.start_table();
        fbb.push_slot_always(slot(0), shape);
        fbb.push_slot::<i8>(slot(1), x.ty, 0);
        fbb.push_slot::<u32>(slot(2), buffer, 0);
        fbb.push_slot_always(slot(3), name);
        if let Some(q) = quant {
            fbb.push_slot_always(slot(4), q);
        }
        tensor_offsets.push(fbb.end_table(tt));
    }
    let mut codes: Vec<i32> = ops.iter().map(|o| o.code).collect();
    codes.sort();
    codes.dedup();
    let code_offsets: Vec<WIPOffset<_>> = codes
        .iter()
        .map(|&c| {
            let oc = fbb.start_table();
            fbb.push_slot::<i8>(slot(0), c.min(127) as i8, 0);
            fbb.push_slot::<i32>(slot(3), c, 0);
            fbb.end_table(oc)
        })
        .collect();
    let mut op_offsets = Vec::new();
    for o in ops {
        let opts = if o.options.0 != 0 {
            let ot = fbb.start_table();
            for &(id, v) in &o.options.1 {
                fbb.push_slot_always::<i32>(slot(id), v);
            }
            Some(fbb.end_table(ot))
        } else {
            None
        };
        let ins = fbb.create_vector(&o.inputs);
        let outs = fbb.create_vector(&o.outputs);
        let idx = codes.iter().position(|&c| c == o.code).expect("code") as u32;
        let ot = fbb.start_table();
        fbb.push_slot::<u32>(slot(0), idx, 0);
        fbb.push_slot_always(slot(1), ins);
        fbb.push_slot_always(slot(2), outs);
        if let Some(opts) = opts {
            fbb.push_slot::<u8>(slot(3), o.options.0, 0);
            fbb.push_slot_always(slot(4), opts);
        }
        op_offsets.push(fbb.end_table(ot));
    }
    let tv = fbb.create_vector(&tensor_offsets);
    let iv = fbb.create_vector(inputs);
    let ov = fbb.create_vector(outputs);
    let opv = fbb.create_vector(&op_offsets);
    let sg = fbb.start_table();
    fbb.push_slot_always(slot(0), tv);
    fbb.push_slot_always(slot(1), iv);
    fbb.push_slot_always(slot(2), ov);
    fbb.push_slot_always(slot(3), opv);
    let sg = fbb.end_table(sg);
    let sgv = fbb.create_vector(&[sg]);
    let cv = fbb.create_vector(&code_offsets);
    let bv = fbb.create_vector(&buffers);
    let m = fbb.start_table();
    fbb.push_slot::<u32>(slot(0), 3, 0);
    fbb.push_slot_always(slot(1), cv);
    fbb.push_slot_always(slot(2), sgv);
    fbb.push_slot_always(slot(4), bv);
    let m = fbb.end_table(m);
    fbb.finish(m, Some("TFL3"));
    fbb.finished_data().to_vec()
}

const INT8: i8 = 9;
const INT32: i8 = 2;
const FLOAT32: i8 = 0;

/// FULLY_CONNECTED 4 -> 3 with a fused ReLU.
pub(super) fn tiny_fc() -> Vec<u8> {
    let mut w = t(&[3, 4], INT8, 0.25, 0);
    w.data = (0..12u8).collect();
    let mut b = t(&[3], INT32, 0.125, 0);
    b.data = [1i32, -2, 3].iter().flat_map(|v| v.to_le_bytes()).collect();
    let tensors = [t(&[1, 4], INT8, 0.5, -1), w, b, t(&[1, 3], INT8, 1.0, 2)];
    let ops = [O { code: 9, inputs: vec![0, 1, 2], outputs: vec![3], options: (8, vec![(0, 1)]) }];
    build(&tensors, &ops, &[0], &[3])
}

/// DEPTHWISE_CONV_2D 3x3 SAME on 1x4x4x2, depth multiplier 2.
pub(super) fn tiny_depthwise() -> Vec<u8> {
    let mut w = t(&[1, 3, 3, 4], INT8, 0.1, 0);
    w.data = (0..36u8).collect();
    w.scale = vec![0.1, 0.2, 0.3, 0.4];
    w.zp = vec![0; 4];
    w.qdim = 3;
    let tensors = [t(&[1, 4, 4, 2], INT8, 0.5, 0), w, t(&[1, 4, 4, 4], INT8, 0.25, -5)];
    // padding SAME(0), stride 1x1, depth_multiplier 2, activation RELU6.
    let opts = vec![(0, 0), (1, 1), (2, 1), (3, 2), (4, 3)];
    let ops = [O { code: 4, inputs: vec![0, 1, -1], outputs: vec![2], options: (2, opts) }];
    build(&tensors, &ops, &[0], &[2])
}

#[test]
fn hand_built_fully_connected() {
    let g = import(&tiny_fc()).expect("import");
    let c = counts(&g);
    assert_eq!(c.get("dense"), Some(&1));
    assert_eq!(c.get("bias"), Some(&1));
    assert_eq!(c.get("requant"), Some(&1));
    assert_eq!(c.get("clip"), Some(&1));
    for n in g.nodes.node_weights() {
        match &n.op {
            Op::Dense { x_zp, w_zp } => assert_eq!((*x_zp, w_zp.as_slice()), (-1, &[0][..])),
            // 0.5 * 0.25 / 1.0 = 0.125 = 0.5 * 2^-2.
            Op::Requantize { requant, out_zp } => {
                assert_eq!(*requant, Requant::FixedPoint { multiplier: vec![1 << 30], shift: vec![-2] });
                assert_eq!(*out_zp, 2);
            }
            Op::Clip { min, max } => assert_eq!((*min, *max), (2, 127)),
            _ => {}
        }
    }
    assert!(g.nodes.node_weights().any(|n| n.name == "#0 FULLY_CONNECTED (t3)"));
}

#[test]
fn hand_built_depthwise() {
    let g = import(&tiny_depthwise()).expect("import");
    let conv = g.nodes.node_weights().find(|n| matches!(n.op, Op::Conv2d { .. })).expect("conv");
    let Op::Conv2d { groups, pad, .. } = &conv.op else { unreachable!() };
    assert_eq!((*groups, *pad), (2, [1, 1, 1, 1]));
    let w = g.tensor(conv.inputs[1]);
    assert_eq!(w.shape, vec![4, 3, 3, 1]);
    // OHWI[k][fy][fx] = original[fy][fx][k] = (fy * 3 + fx) * 4 + k.
    let crate::ir::Data::I8(d) = w.data.as_ref().expect("data") else { panic!("i8") };
    assert_eq!(d[0..3], [0, 4, 8]);
    assert_eq!(d[9..12], [1, 5, 9]);
    let rq = g.nodes.node_weights().find(|n| matches!(n.op, Op::Requantize { .. })).expect("requant");
    let Op::Requantize { requant: Requant::FixedPoint { multiplier, shift }, .. } = &rq.op else { panic!() };
    assert_eq!(multiplier.len(), 4);
    // Channel 0: 0.5 * 0.1 / 0.25, in double from the f32 scales.
    let want = super::quantize_multiplier(0.5f32 as f64 * 0.1f32 as f64 / 0.25f32 as f64).unwrap();
    assert_eq!((multiplier[0], shift[0]), want);
    // RELU6 on zp -5, scale 0.25: [-5, -5 + 24].
    let clip = g.nodes.node_weights().find(|n| matches!(n.op, Op::Clip { .. })).expect("clip");
    assert_eq!(clip.op, Op::Clip { min: -5, max: 19 });
}

#[test]
fn float_model_is_rejected() {
    let mut w = t(&[3, 4], FLOAT32, 0.0, 0);
    w.scale.clear();
    w.zp.clear();
    w.data = vec![0; 48];
    let mut x = t(&[1, 4], FLOAT32, 0.0, 0);
    x.scale.clear();
    let mut y = t(&[1, 3], FLOAT32, 0.0, 0);
    y.scale.clear();
    let ops = [O { code: 9, inputs: vec![0, 1, -1], outputs: vec![2], options: (8, vec![]) }];
    let e = format!("{:#}", import(&build(&[x, w, y], &ops, &[0], &[2])).unwrap_err());
    assert!(e.contains("quantized integer"), "{e}");
    assert!(e.contains("operator #0 FULLY_CONNECTED (t2)"), "{e}");
}

#[test]
fn unsupported_operator_is_named() {
    // MUL (18).
    let tensors = [t(&[1, 4], INT8, 0.5, 0), t(&[1, 4], INT8, 0.5, 0), t(&[1, 4], INT8, 0.5, 0)];
    let ops = [O { code: 18, inputs: vec![0, 1], outputs: vec![2], options: (0, vec![]) }];
    let e = format!("{:#}", import(&build(&tensors, &ops, &[0, 1], &[2])).unwrap_err());
    assert!(e.contains("operator #0 MUL (t2)"), "{e}");
    assert!(e.contains("unsupported operator MUL") && e.contains("CONV_2D"), "{e}");
}

#[test]
fn absurd_shapes_are_errors() {
    let tensors = [t(&[65536, 65536, 2], INT8, 0.5, 0), t(&[65536, 65536, 2], INT8, 0.5, 0)];
    let ops = [O { code: 19, inputs: vec![0], outputs: vec![1], options: (0, vec![]) }];
    let e = format!("{:#}", import(&build(&tensors, &ops, &[0], &[1])).unwrap_err());
    assert!(e.contains("2^31"), "{e}");
    let tensors = [t(&[1, -1], INT8, 0.5, 0), t(&[1, 4], INT8, 0.5, 0)];
    assert!(import(&build(&tensors, &ops, &[0], &[1])).is_err());
}

#[test]
fn wrong_magic_and_short_files() {
    let mut m = tiny_fc();
    m[4..8].copy_from_slice(b"TFL2");
    let e = format!("{:#}", import(&m).unwrap_err());
    assert!(e.contains("TFL3"), "{e}");
    for n in 0..8 {
        assert!(import(&vec![0u8; n]).is_err());
    }
    assert!(import(b"\x10\0\0\0TFL3\0\0\0\0\0\0\0\0").is_err());
}

/// Imports without panicking (errors are fine).
fn no_panic(bytes: &[u8], what: &str) {
    let r = std::panic::catch_unwind(|| {
        let _ = import(bytes);
    });
    assert!(r.is_ok(), "panic on {what}");
}

fn corruption_sources() -> Vec<(String, Vec<u8>)> {
    let mut v = vec![("tiny_fc".to_string(), tiny_fc()), ("tiny_depthwise".to_string(), tiny_depthwise())];
    if let Some((n, b)) = models("mlperf-tiny").into_iter().find(|(n, _)| n.starts_with("kws")) {
        v.push((n, b));
    }
    v
}

#[test]
fn truncation_never_panics() {
    for (name, bytes) in corruption_sources() {
        let step = (bytes.len() / 400).max(1);
        let mut len = 0;
        while len < bytes.len() {
            no_panic(&bytes[..len], &format!("{name} truncated to {len}"));
            len += step;
        }
    }
}

#[test]
fn flipped_bytes_never_panic() {
    // A fixed xorshift sequence: deterministic, no dependency.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for (name, bytes) in corruption_sources() {
        let small = bytes.len() < 4096;
        // Every offset of the small models (several values), samples of the
        // large one.
        let trials = if small { bytes.len() * 3 } else { 1500 };
        for i in 0..trials {
            let off = if small { i / 3 } else { (next() % bytes.len() as u64) as usize };
            let mut b = bytes.clone();
            let val = [0xff, 0x80, (next() & 0xff) as u8][i % 3];
            b[off] ^= val.max(1);
            no_panic(&b, &format!("{name} byte {off} ^ {val:#x}"));
        }
        // Multi-byte smears in the metadata.
        for _ in 0..200 {
            let mut b = bytes.clone();
            let off = (next() % bytes.len() as u64) as usize;
            for x in b.iter_mut().skip(off).take(4) {
                *x = (next() & 0xff) as u8;
            }
            no_panic(&b, &format!("{name} smear at {off}"));
        }
    }
}

/// Writes the fuzz seeds (run by hand: `cargo test -p match-core
/// write_fuzz_seeds -- --ignored`).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/tflite_import");
    std::fs::create_dir_all(&dir).expect("corpus dir");
    let fc = tiny_fc();
    let dw = tiny_depthwise();
    let seeds: Vec<(&str, Vec<u8>)> = vec![
        ("tiny_fc.tflite", fc.clone()),
        ("tiny_depthwise.tflite", dw),
        ("header_only.bin", fc[..8].to_vec()),
        ("truncated_fc.bin", fc[..fc.len() / 2].to_vec()),
        ("wrong_magic.bin", [&fc[..4], b"TFL2", &fc[8..]].concat()),
    ];
    for (name, bytes) in seeds {
        assert!(bytes.len() < 1024, "{name} is {} bytes", bytes.len());
        std::fs::write(dir.join(name), bytes).expect("write seed");
    }
}
