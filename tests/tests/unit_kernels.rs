//! The accelerators' unit kernels (targets/gap9/gap9_units.c,
//! targets/diana/diana_units.c), each in its own arithmetic, checked bit for
//! bit against the reference interpreter on the graph lowered for the target.
//!
//! Per unit: random small layers (several seeds, padding and stride
//! variants, odd channel counts) in the unit's canonical form, compiled for
//! gap9 / diana through `compile.rs` with the offload rules of competing
//! units removed (so the layer lands on the unit under test), built with
//! `-fsanitize=address,undefined`, run, and compared with
//! `interp(lowered graph)`. Each case also checks that the emitted code calls
//! the unit's kernel (`NAME(&j)`), so a case cannot pass on the portable path.
//!
//! Also here: the NE16 weight layout of `layout.rs` (with gap9.hwm's ne16
//! rules) against the vectors of the independent NumPy script
//! tools/ne16_weights.py, byte for byte.

use match_core::compile::{self, CompileOptions};
use match_core::ir::{AddKind, AddParams, DType, Data, Graph, Op, OpNode, Quant, Requant, Tensor, TensorId};
use match_core::layout::{self, Weights};
use match_core::schedule::Objective;
use match_core::HwModel;
use match_tests::gen::Rng;
use std::path::PathBuf;

const CFLAGS: &str = "-std=c99 -O1 -g -Wall -Wextra -Werror -fno-omit-frame-pointer \
                      -fsanitize=address,undefined -fno-sanitize-recover=all";

// ------------------------------------------------------------- NE16 layout

#[test]
fn ne16_layout_matches_the_numpy_vectors() {
    let path = match_tests::repo_root().join("tests/vectors/ne16/weights.json");
    let text =
        std::fs::read_to_string(&path).expect("tests/vectors/ne16/weights.json (tools/ne16_weights.py)");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let (hw, _) = match_targets::resolve("gap9").expect("gap9");
    let rule = |call: &str| {
        let o = hw.offloads.iter().find(|o| o.kernel == call).expect("an ne16 rule");
        hw.offload_weight_layout(o).to_vec()
    };
    let (conv, dw) = (rule("ne16_conv"), rule("ne16_depthwise"));
    let mut n = 0;
    for case in v["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().unwrap();
        let s: Vec<usize> =
            case["shape_kchw"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
        let data: Vec<i64> =
            case["weights"].as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect();
        let w = Weights { k: s[0], c: s[1], fy: s[2], fx: s[3], bits: 8, data };
        let steps = if case["depthwise"].as_bool().unwrap() { &dw } else { &conv };
        let got = layout::encode(steps, &w, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        let hex: String = got.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            case["encoded_hex"].as_str().unwrap(),
            "{name}: NE16 weight bytes differ from the NumPy vector"
        );
        assert_eq!(got.len(), layout::encoded_size(steps, s[0], s[1], s[2], s[3], 8).unwrap(), "{name}");
        n += 1;
    }
    assert!(n >= 7, "{n} vectors");
}

// ---------------------------------------------------------------- graphs

/// A one-layer graph under construction.
struct B {
    g: Graph,
}

impl B {
    fn new() -> B {
        B { g: Graph::default() }
    }
    fn tensor(&mut self, name: &str, shape: &[usize], dtype: DType, data: Option<Data>) -> TensorId {
        let quant = Some(Quant::per_tensor(1.0, 0));
        self.g.add_tensor(Tensor { name: name.into(), shape: shape.to_vec(), dtype, quant, data })
    }
    fn input(&mut self, shape: &[usize], dtype: DType) -> TensorId {
        let t = self.tensor("x", shape, dtype, None);
        self.g.inputs.push(t);
        t
    }
    fn node(&mut self, name: &str, op: Op, inputs: &[TensorId], shape: &[usize], dtype: DType) -> TensorId {
        let out = self.tensor(&format!("{name}_out"), shape, dtype, None);
        self.g.add_node(OpNode { name: name.into(), op, inputs: inputs.to_vec(), outputs: vec![out] });
        out
    }
    fn finish(mut self, out: TensorId) -> Graph {
        self.g.outputs.push(out);
        self.g.rebuild_edges();
        self.g
    }
}

/// How a case's chain requantizes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Rq {
    /// NE16's own: scale 0..255, bias, shift; u8 (ReLU) or i8 output.
    ScaleShift { u8_out: bool },
    /// NE16's 32-bit scale mode: odd scales above 255 (no halving makes
    /// them 8-bit exactly), bias, shift.
    WideScaleShift { u8_out: bool },
    /// TFLite's fixed point (converted by the lowering where the unit needs it).
    Fixed,
    /// DIANA digital's own: bias and shift (scale 1), i8 output.
    Shift { relu: bool },
    /// None: the int32 accumulator out (with a bias).
    Acc,
}

#[derive(Clone, Debug)]
struct Conv {
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    f: usize,
    stride: usize,
    pad: [usize; 4],
    dw: bool,
    x: DType,
    /// Input values within this range (7-bit for the analog core).
    x_range: (i64, i64),
    ternary: bool,
    rq: Rq,
}

fn out_dim(i: usize, f: usize, s: usize, a: usize, b: usize) -> usize {
    (i + a + b - f) / s + 1
}

/// Bits of the largest |accumulator| of a conv/dense layer.
fn acc_bits(taps: usize, xmax: i64, wmax: i64) -> u32 {
    let m = (taps as i64 * xmax * wmax).max(1);
    64 - m.leading_zeros()
}

/// A graph of one conv (or dense when `dense`) layer in the given form.
fn conv_graph(rng: &mut Rng, p: &Conv, dense: bool) -> Graph {
    let mut b = B::new();
    let (oh, ow) = if dense {
        (1, 1)
    } else {
        (out_dim(p.h, p.f, p.stride, p.pad[0], p.pad[2]), out_dim(p.w, p.f, p.stride, p.pad[1], p.pad[3]))
    };
    let xshape: Vec<usize> = if dense { vec![p.h, p.c] } else { vec![1, p.h, p.w, p.c] };
    let mut x = b.input(&xshape, p.x);
    if p.x_range != p.x.int_range().unwrap() {
        // The producer's clip states the input's range (the analog core's 7 bits).
        x = b.node("in_clip", Op::Clip { min: p.x_range.0, max: p.x_range.1 }, &[x], &xshape, p.x);
    }
    let cg = if p.dw { 1 } else { p.c };
    let taps = cg * p.f * p.f;
    let wshape: Vec<usize> = if dense { vec![p.k, p.c] } else { vec![p.k, p.f, p.f, cg] };
    let wn: usize = wshape.iter().product();
    let wv: Vec<i8> = (0..wn)
        .map(|_| if p.ternary { rng.range(-1, 1) as i8 } else { rng.range(-128, 127) as i8 })
        .collect();
    let wt = b.tensor("w", &wshape, DType::I8, Some(Data::I8(wv)));
    let accshape: Vec<usize> = if dense { vec![p.h, p.k] } else { vec![1, oh, ow, p.k] };
    let op = if dense {
        Op::Dense { x_zp: 0, w_zp: vec![0] }
    } else {
        Op::Conv2d {
            stride: [p.stride; 2],
            dilation: [1, 1],
            pad: p.pad,
            groups: if p.dw { p.c } else { 1 },
            x_zp: 0,
            w_zp: vec![0],
        }
    };
    let acc = b.node("conv", op, &[x, wt], &accshape, DType::I32);
    let xmax = p.x_range.0.abs().max(p.x_range.1.abs());
    let bits = acc_bits(taps, xmax, if p.ternary { 1 } else { 128 });
    let k = p.k;
    let out = match p.rq {
        Rq::Acc => {
            let bias: Vec<i32> = (0..k).map(|_| rng.range(-1000, 1000) as i32).collect();
            let bt = b.tensor("bias", &[k], DType::I32, Some(Data::I32(bias)));
            b.node("bias", Op::BiasAdd, &[acc, bt], &accshape, DType::I32)
        }
        Rq::ScaleShift { u8_out } | Rq::WideScaleShift { u8_out } => {
            // |acc * scale + bias| < 2^30: NE16 computes it in 32 bits.
            let wide = matches!(p.rq, Rq::WideScaleShift { .. });
            let smax = if wide {
                ((1i64 << 30) >> bits).clamp(257, 1 << 20)
            } else {
                ((1i64 << 30) >> bits).clamp(1, 255)
            };
            let scale: Vec<i64> =
                (0..k).map(|_| if wide { rng.range(256, smax) | 1 } else { rng.range(0, smax) }).collect();
            let bias: Vec<i64> = (0..k).map(|_| rng.range(-(1 << 12), 1 << 12)).collect();
            let shift = (bits as i64 + 64 - (smax as u64).leading_zeros() as i64 - 9).clamp(0, 31) as u32;
            let (dt, lo, hi) = if u8_out { (DType::U8, 0, 255) } else { (DType::I8, -128, 127) };
            let q = b.node(
                "requant",
                Op::Requantize { requant: Requant::ScaleShift { scale, bias, shift }, out_zp: 0 },
                &[acc],
                &accshape,
                dt,
            );
            b.node("clip", Op::Clip { min: lo, max: hi }, &[q], &accshape, dt)
        }
        Rq::Shift { relu } => {
            let bias: Vec<i64> = (0..k).map(|_| rng.range(-(1 << 10), 1 << 10)).collect();
            let shift = (bits as i64 - 8).clamp(0, 31) as u32;
            let q = b.node(
                "requant",
                Op::Requantize { requant: Requant::ScaleShift { scale: vec![1], bias, shift }, out_zp: 0 },
                &[acc],
                &accshape,
                DType::I8,
            );
            b.node(
                "clip",
                Op::Clip { min: if relu { 0 } else { -128 }, max: 127 },
                &[q],
                &accshape,
                DType::I8,
            )
        }
        Rq::Fixed => {
            let bias: Vec<i32> = (0..k).map(|_| rng.range(-5000, 5000) as i32).collect();
            let bt = b.tensor("bias", &[k], DType::I32, Some(Data::I32(bias)));
            let acc = b.node("bias", Op::BiasAdd, &[acc, bt], &accshape, DType::I32);
            let multiplier: Vec<i32> = (0..k).map(|_| rng.range(1 << 30, (1 << 31) - 1) as i32).collect();
            let shift = vec![-((bits as i32) - 8).max(0)];
            let zp = rng.range(-10, 10);
            let q = b.node(
                "requant",
                Op::Requantize { requant: Requant::FixedPoint { multiplier, shift }, out_zp: zp },
                &[acc],
                &accshape,
                DType::I8,
            );
            b.node("clip", Op::Clip { min: zp.max(-128), max: 127 }, &[q], &accshape, DType::I8)
        }
    };
    b.finish(out)
}

/// Random input data within `range` for every graph input.
fn inputs(g: &Graph, rng: &mut Rng, range: (i64, i64)) -> Vec<Data> {
    g.inputs
        .iter()
        .map(|&t| {
            let t = g.tensor(t);
            let v: Vec<i64> = (0..t.elements()).map(|_| rng.range(range.0, range.1)).collect();
            Data::from_i64(t.dtype, &v)
        })
        .collect()
}

/// One case: a graph, the target with only some offload rules kept, the
/// unit kernel the emitted code must call, and the input range.
struct Case {
    label: String,
    graph: Graph,
    hw: HwModel,
    platform: Option<PathBuf>,
    call: &'static str,
    range: (i64, i64),
    seed: u64,
}

fn target(name: &str, keep: &dyn Fn(&str) -> bool) -> (HwModel, Option<PathBuf>) {
    let (mut hw, platform) = match_targets::resolve(name).expect("shipped target");
    hw.offloads.retain(|o| keep(&o.unit));
    (hw, platform)
}

/// `hw` with `memory` cut to `usable` bytes: small tiles, several per loop
/// (K tiles of encoded weights, border tiles with their own padding).
fn small(mut hw: HwModel, memory: &str, usable: u64) -> HwModel {
    let m = hw.memories.iter_mut().find(|m| m.name == memory).expect("memory");
    m.size = m.reserve + usable;
    hw
}

/// Compiles, builds (ASan + UBSan), runs 3 input sets, compares with the
/// interpreter on the lowered graph.
fn check(case: &Case) -> Result<(), String> {
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("unit_kernels").join(&case.label);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let options = CompileOptions {
        out_dir: tmp.join("project"),
        model_name: Some("m".into()),
        platform_dir: case.platform.clone(),
    };
    let compiled = compile::compile_graph_exact(&case.graph, &case.hw, &options, Objective::Latency, false)
        .map_err(|e| format!("{}: compile: {e:#}", case.label))?;
    let model_c = std::fs::read_to_string(options.out_dir.join("m.c")).map_err(|e| e.to_string())?;
    if !model_c.contains(&format!("{}(&j);", case.call)) {
        let units: Vec<String> = compiled
            .mapping
            .layers
            .iter()
            .map(|l| format!("{} on {} ({:?})", l.name, l.unit, l.kernel))
            .collect();
        return Err(format!("{}: the code does not call {} ({})", case.label, case.call, units.join("; ")));
    }
    let bin = compile::build(&options.out_dir, "m", &[("CC", "gcc"), ("CFLAGS", CFLAGS)])
        .map_err(|e| format!("{}: {e:#}", case.label))?;
    let mut rng = Rng::new(case.seed ^ 0xabcd);
    let sets: Vec<Vec<Data>> = (0..3).map(|_| inputs(&compiled.graph, &mut rng, case.range)).collect();
    let got = compile::run_binary(&bin, &compiled.graph, &sets, &tmp.join("io"))
        .map_err(|e| format!("{}: run: {e:#}", case.label))?;
    for (i, (set, out)) in sets.iter().zip(&got).enumerate() {
        let want = match_core::interp::run(&compiled.graph, set)
            .map_err(|e| format!("{}: interp: {e:#}", case.label))?;
        if *out != want {
            return Err(format!(
                "{}: input set {i}: the emulated unit differs from the interpreter",
                case.label
            ));
        }
    }
    Ok(())
}

/// Runs the cases on two threads; panics with every failure.
fn run_all(cases: Vec<Case>) -> usize {
    let n = cases.len();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(c) = cases.get(i) else { break };
                if let Err(e) = check(c) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let f = failures.into_inner().unwrap();
    assert!(f.is_empty(), "{} of {n} case(s) failed:\n{}", f.len(), f.join("\n"));
    n
}

/// Padding variants: none, symmetric 1, asymmetric.
fn pads(rng: &mut Rng, f: usize) -> [usize; 4] {
    if f == 1 {
        return [0; 4];
    }
    match rng.below(3) {
        0 => [0; 4],
        1 => [1; 4],
        _ => [1, 0, 2, 1],
    }
}

// ------------------------------------------------------------------ GAP9

#[test]
fn ne16_conv_and_depthwise_match_the_interpreter() {
    let mut cases = Vec::new();
    for seed in 0..6u64 {
        let mut rng = Rng::new(seed);
        let dw = seed % 3 == 2;
        let f = if dw || rng.chance(0.5) { 3 } else { 1 };
        let c = if dw { rng.usize(3, 21) } else { rng.pick(&[3, 5, 16, 19]) };
        let p = Conv {
            h: rng.usize(4, 9),
            w: rng.usize(4, 9),
            c,
            k: if dw { c } else { rng.usize(2, 9) * 2 },
            f,
            stride: rng.usize(1, 2),
            pad: pads(&mut rng, f),
            dw,
            x: DType::U8,
            x_range: (0, 255),
            ternary: false,
            rq: if seed == 4 { Rq::Acc } else { Rq::ScaleShift { u8_out: seed % 2 == 0 } },
        };
        let (hw, platform) = target("gap9", &|u| u != "cluster");
        let hw = if seed % 2 == 1 { small(hw, "L1", 1600) } else { hw };
        let graph = conv_graph(&mut rng, &p, false);
        let call = if dw { "ne16_depthwise" } else { "ne16_conv" };
        cases.push(Case { label: format!("ne16_{seed}"), graph, hw, platform, call, range: (0, 255), seed });
    }
    let n = run_all(cases);
    eprintln!("{n} NE16 cases bit-exact");
}

#[test]
fn ne16_runs_scales_above_255_in_its_32_bit_mode() {
    let mut cases = Vec::new();
    for seed in 0..2u64 {
        let mut rng = Rng::new(40 + seed);
        // Few taps keep acc * scale within 32 bits for scales above 255.
        let dw = seed == 0;
        let c = if dw { rng.usize(3, 21) } else { rng.pick(&[3, 5]) };
        let p = Conv {
            h: rng.usize(4, 9),
            w: rng.usize(4, 9),
            c,
            k: if dw { c } else { rng.usize(2, 9) * 2 },
            f: if dw { 3 } else { 1 },
            stride: 1,
            pad: if dw { [1; 4] } else { [0; 4] },
            dw,
            x: DType::U8,
            x_range: (0, 255),
            ternary: false,
            rq: Rq::WideScaleShift { u8_out: seed == 0 },
        };
        let (hw, platform) = target("gap9", &|u| u != "cluster");
        let graph = conv_graph(&mut rng, &p, false);
        // The lowering keeps the scales (exact only in the 32-bit mode).
        let l = match_core::lower::lower_for_target(&graph, &hw, Objective::Latency, false).unwrap();
        let (layer, x) = l.mapping.layers.iter().zip(&l.exactness).find(|(l, _)| l.unit == "ne16").unwrap();
        assert_eq!(x.max_lsb, 0, "seed {seed} {}: {}", layer.name, x.reason);
        let wide = l.graph.nodes.node_weights().any(|n| {
            matches!(&n.op, Op::Requantize { requant: Requant::ScaleShift { scale, .. }, .. } if scale.iter().any(|&s| s > 255))
        });
        assert!(wide, "seed {seed}: no scale above 255 left after lowering");
        let call = if dw { "ne16_depthwise" } else { "ne16_conv" };
        cases.push(Case {
            label: format!("ne16_wide_{seed}"),
            graph,
            hw,
            platform,
            call,
            range: (0, 255),
            seed,
        });
    }
    let n = run_all(cases);
    eprintln!("{n} NE16 32-bit scale cases bit-exact");
}

#[test]
fn cluster_kernels_match_the_interpreter() {
    let mut cases = Vec::new();
    // Only the cluster's rules: the FC's would win these small layers.
    let cluster_only = |u: &str| u == "cluster";
    for seed in 0..4u64 {
        let mut rng = Rng::new(100 + seed);
        let kind = seed % 4;
        let (dw, f) = match kind {
            0 => (false, 3),
            1 => (false, 1),
            2 => (true, 3),
            _ => (false, 3),
        };
        let c = rng.pick(&[3, 7, 12]);
        let p = Conv {
            h: rng.usize(5, 9),
            w: rng.usize(5, 9),
            c,
            k: if dw { c } else { rng.usize(3, 11) },
            f,
            stride: rng.usize(1, 2),
            pad: pads(&mut rng, f),
            dw,
            x: DType::I8,
            x_range: (-128, 127),
            ternary: false,
            rq: if kind == 3 { Rq::ScaleShift { u8_out: false } } else { Rq::Fixed },
        };
        let graph = if kind == 3 {
            let q = Conv { x: DType::U8, x_range: (0, 255), ..p.clone() };
            conv_graph(&mut rng, &q, false)
        } else {
            conv_graph(&mut rng, &p, false)
        };
        let range = if kind == 3 { (0, 255) } else { (-128, 127) };
        let call = match kind {
            1 => "cluster_pointwise",
            2 => "cluster_depthwise",
            _ => "cluster_conv",
        };
        let (hw, platform) = target("gap9", &cluster_only);
        let hw = if seed % 2 == 1 { small(hw, "L1", 2000) } else { hw };
        cases.push(Case { label: format!("cluster_{seed}"), graph, hw, platform, call, range, seed });
    }
    // Dense (fixed point) and the accumulator form.
    for seed in 0..2u64 {
        let mut rng = Rng::new(200 + seed);
        let p = Conv {
            h: rng.usize(1, 3),
            w: 1,
            c: rng.usize(5, 40),
            k: rng.usize(3, 20),
            f: 1,
            stride: 1,
            pad: [0; 4],
            dw: false,
            x: DType::I8,
            x_range: (-128, 127),
            ternary: false,
            rq: if seed == 0 { Rq::Fixed } else { Rq::Acc },
        };
        let graph = conv_graph(&mut rng, &p, true);
        let (hw, platform) = target("gap9", &cluster_only);
        let call = if seed == 0 { "cluster_linear" } else { "cluster_linear_acc" };
        cases.push(Case {
            label: format!("cluster_dense_{seed}"),
            graph,
            hw,
            platform,
            call,
            range: (-128, 127),
            seed,
        });
    }
    // Addition (TFLite) and pooling.
    {
        let mut rng = Rng::new(300);
        let mut b = B::new();
        let shape = [1, 6, 5, 7];
        let x = b.input(&shape, DType::I8);
        let y = b.input(&shape, DType::I8);
        let params = AddParams {
            left_shift: 20,
            in_zp: [rng.range(-5, 5), rng.range(-5, 5)],
            in_multiplier: [1_500_000_000, 1_200_000_000],
            in_shift: [-1, -2],
            out_multiplier: 1_800_000_000,
            out_shift: -19,
            out_zp: 3,
        };
        let s = b.node("add", Op::Add { kind: AddKind::TfLite(params) }, &[x, y], &shape, DType::I8);
        let graph = b.finish(s);
        let (hw, platform) = target("gap9", &cluster_only);
        cases.push(Case {
            label: "cluster_add".into(),
            graph,
            hw,
            platform,
            call: "cluster_add",
            range: (-128, 127),
            seed: 300,
        });
        let mut b = B::new();
        let x = b.input(&[1, 9, 7, 5], DType::I8);
        let pool = Op::MaxPool { kernel: [3, 3], stride: [2, 2], pad: [1, 1, 1, 1] };
        let s = b.node("pool", pool, &[x], &[1, 5, 4, 5], DType::I8);
        let graph = b.finish(s);
        let (hw, platform) = target("gap9", &cluster_only);
        cases.push(Case {
            label: "cluster_pool".into(),
            graph,
            hw,
            platform,
            call: "cluster_pool",
            range: (-128, 127),
            seed: 301,
        });
    }
    let n = run_all(cases);
    eprintln!("{n} cluster cases bit-exact");
}

// ----------------------------------------------------------------- DIANA

#[test]
fn diana_digital_kernels_match_the_interpreter() {
    let mut cases = Vec::new();
    for seed in 0..5u64 {
        let mut rng = Rng::new(400 + seed);
        let dw = seed % 3 == 1;
        let f = rng.pick(&[1, 3, 5]);
        let pad = [(f - 1) / 2; 4]; // "same" padding only
        let c = rng.pick(&[3, 8, 17]);
        let p = Conv {
            h: rng.usize(5, 9),
            w: rng.usize(5, 9),
            c,
            k: if dw { c } else { rng.usize(3, 20) },
            f,
            stride: rng.usize(1, 2),
            pad,
            dw,
            x: DType::I8,
            x_range: (-128, 127),
            ternary: false,
            rq: Rq::Shift { relu: seed % 2 == 0 },
        };
        let graph = conv_graph(&mut rng, &p, false);
        let (hw, platform) = target("diana", &|u| u != "analog");
        let hw = if seed % 2 == 1 { small(small(hw, "L1", 1500), "WD", 1200) } else { hw };
        let call = if dw { "diana_digital_depthwise" } else { "diana_digital_conv" };
        cases.push(Case {
            label: format!("digital_{seed}"),
            graph,
            hw,
            platform,
            call,
            range: (-128, 127),
            seed,
        });
    }
    for seed in 0..2u64 {
        let mut rng = Rng::new(500 + seed);
        let p = Conv {
            h: rng.usize(1, 2),
            w: 1,
            c: rng.pick(&[10, 16, 33]),
            k: rng.usize(5, 24),
            f: 1,
            stride: 1,
            pad: [0; 4],
            dw: false,
            x: DType::I8,
            x_range: (-128, 127),
            ternary: false,
            rq: Rq::Shift { relu: seed == 1 },
        };
        let graph = conv_graph(&mut rng, &p, true);
        let (hw, platform) = target("diana", &|u| u != "analog");
        cases.push(Case {
            label: format!("digital_dense_{seed}"),
            graph,
            hw,
            platform,
            call: "diana_digital_dense",
            range: (-128, 127),
            seed,
        });
    }
    {
        let mut b = B::new();
        let shape = [1, 6, 4, 9];
        let x = b.input(&shape, DType::I8);
        let y = b.input(&shape, DType::I8);
        let s = b.node("add", Op::Add { kind: AddKind::Integer }, &[x, y], &shape, DType::I8);
        let s = b.node("relu", Op::Clip { min: 0, max: 127 }, &[s], &shape, DType::I8);
        let graph = b.finish(s);
        let (hw, platform) = target("diana", &|u| u != "analog");
        cases.push(Case {
            label: "digital_add".into(),
            graph,
            hw,
            platform,
            call: "diana_digital_add",
            range: (-128, 127),
            seed: 600,
        });
    }
    let n = run_all(cases);
    eprintln!("{n} DIANA digital cases bit-exact");
}

#[test]
fn diana_analog_kernels_match_the_interpreter() {
    let mut cases = Vec::new();
    for seed in 0..4u64 {
        let mut rng = Rng::new(700 + seed);
        let dense = seed == 3;
        let f = if dense { 1 } else { rng.pick(&[1, 3]) };
        let p = Conv {
            h: if dense { 2 } else { rng.usize(4, 8) },
            w: if dense { 1 } else { rng.usize(4, 8) },
            c: rng.pick(&[3, 9, 30]),
            k: rng.usize(3, 40),
            f,
            stride: if dense { 1 } else { rng.usize(1, 2) },
            pad: if dense { [0; 4] } else { pads(&mut rng, f) },
            dw: false,
            x: DType::I8,
            x_range: (-64, 63),
            ternary: true,
            rq: Rq::Fixed,
        };
        let graph = conv_graph(&mut rng, &p, dense);
        let (hw, platform) = target("diana", &|u| u != "digital");
        let hw = if seed == 1 { small(hw, "L1", 1500) } else { hw };
        let call = if dense { "diana_analog_dense" } else { "diana_analog_conv" };
        cases.push(Case {
            label: format!("analog_{seed}"),
            graph,
            hw,
            platform,
            call,
            range: (-128, 127),
            seed,
        });
    }
    let n = run_all(cases);
    eprintln!("{n} DIANA analog cases bit-exact");
}
