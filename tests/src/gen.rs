//! Seeded random networks and random targets for differential testing.
//!
//! A network is described by a [`Recipe`]: a serde-serializable list of
//! layers, each reading earlier values by index, with the few numbers that
//! shape its arithmetic (kernel, stride, padding, quantization kinds, a gain
//! and a seed for its constants). [`build`] turns a recipe into an IR
//! [`Graph`] whose quantization parameters are computed the way the
//! importers compute them (TFLite's `QuantizeMultiplier` and `PrepareAdd`,
//! onnxruntime's f32 scales, the integer dialect's scale and shift). A
//! recipe that does not describe a valid network (as shrinking may make) is
//! an `Err` from [`build`], never a panic.
//!
//! A target is a [`TargetRecipe`], written as `.hwm` text by
//! [`TargetRecipe::to_hwm`] and checked by `match_dsl::check`, or a
//! [`DerivedTarget`]: a shipped target with an emulation platform (gap9,
//! diana) with random parameters and units removed.

use anyhow::{ensure, Context};
use match_core::frontend::tflite::quant;
use match_core::ir::{AddKind, DType, Data, Graph, Op, OpNode, Quant, Requant, Tensor, TensorId};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

// ------------------------------------------------------------------ PRNG

/// splitmix64: small, fast, and the same on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, n)` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1) as u64) as i64
    }
    pub fn usize(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as i64, hi as i64) as usize
    }
    /// Uniform in `[0, 1)`.
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }
    /// Log-uniform in `[lo, hi]`.
    pub fn log_uniform(&mut self, lo: f64, hi: f64) -> f64 {
        (lo.ln() + self.f64() * (hi.ln() - lo.ln())).exp()
    }
    pub fn pick<T: Clone>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize].clone()
    }
    /// A child seed.
    pub fn seed(&mut self) -> u64 {
        self.next_u64()
    }
}

// ---------------------------------------------------------------- recipe

/// An 8-bit activation type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Act8 {
    I8,
    U8,
}

impl Act8 {
    pub fn dtype(self) -> DType {
        match self {
            Act8::I8 => DType::I8,
            Act8::U8 => DType::U8,
        }
    }
}

/// How a conv or dense output is requantized.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum RequantKind {
    /// TFLite: per-channel (or per-tensor) fixed-point multipliers.
    FixedPoint { per_channel: bool },
    /// ONNX QLinear / QDQ: f32 scales.
    Float { per_channel: bool },
    /// Integer dialect: `(acc * scale + bias) >> shift`, the scales
    /// `extra_bits` wide.
    ScaleShift { extra_bits: u32 },
    /// `(acc * 1 + 0) >> shift` (DIANA's digital array).
    Shift,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    None,
    Relu,
    Relu6,
    /// A clip to `[min, max]` in the quantized output domain (intersected
    /// with the type's range): `[-64, 63]` makes the output provably 7-bit,
    /// as DIANA's analog array wants its inputs.
    Clip {
        min: i64,
        max: i64,
    },
}

/// The tail of a conv or dense layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Requantizer {
    pub kind: RequantKind,
    pub out: Act8,
    pub out_zp: i64,
    /// Output scale (in real units).
    pub out_scale: f32,
    /// Multiplies the nominal multiplier: < 1 under-uses the range, > 1 saturates.
    pub gain: f32,
    pub act: Activation,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Grouping {
    Full,
    /// `groups == C`, `K = C * multiplier`.
    Depthwise {
        multiplier: usize,
    },
    Groups(usize),
}

/// Weight element type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeightKind {
    /// Symmetric int8 (`w_zp = 0`).
    I8,
    /// uint8 with zero points (per channel when `per_channel`).
    U8 { per_channel: bool },
    /// int8 holding only {-1, 0, +1} (`w_zp = 0`): DIANA's analog array.
    Ternary,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AddMode {
    TfLite,
    Integer,
    Float,
}

/// The second operand of an add.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operand {
    Value(usize),
    /// A constant of shape `[C]`, broadcast.
    Const,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReshapeKind {
    /// `(1, N)`.
    Flatten,
    /// `(1, 1, 1, N)`.
    ToNhwc,
    /// `(1, H * W, 1, C)` of NHWC.
    Pixels,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LayerOp {
    Conv {
        grouping: Grouping,
        /// Output channels for `Full` and `Groups`.
        out_c: usize,
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        /// top, left, bottom, right
        pad: [usize; 4],
        weights: WeightKind,
        bias: bool,
        /// `None`: the int32 accumulator is the layer's output.
        rq: Option<Requantizer>,
    },
    Dense {
        out_c: usize,
        weights: WeightKind,
        bias: bool,
        rq: Option<Requantizer>,
    },
    Add {
        other: Operand,
        mode: AddMode,
        out_zp: i64,
        out_scale: f32,
        act: Activation,
    },
    AvgPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
        count_include_pad: bool,
    },
    MaxPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
    },
    GlobalAvgPool,
    Reshape(ReshapeKind),
    /// A clip on its own (quantized domain), e.g. to `[-64, 63]` before a
    /// ternary layer so its input is provably 7-bit.
    Clip {
        min: i64,
        max: i64,
    },
    Softmax {
        beta: f32,
        out: Act8,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LayerSpec {
    /// The value read (inputs first, then layer outputs in order).
    pub src: usize,
    pub op: LayerOp,
    /// Seed of the layer's constants.
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSpec {
    pub shape: Vec<usize>,
    pub dtype: Act8,
    pub scale: f32,
    pub zp: i64,
}

/// A network: inputs, layers, and which values are graph outputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub inputs: Vec<InputSpec>,
    pub layers: Vec<LayerSpec>,
    pub outputs: Vec<usize>,
}

impl Recipe {
    /// A one-line summary (`conv3x3/s2 -> add -> softmax`).
    pub fn summary(&self) -> String {
        let ops: Vec<String> = self
            .layers
            .iter()
            .map(|l| match &l.op {
                LayerOp::Conv { grouping, kernel, stride, weights, .. } => {
                    let g = match grouping {
                        Grouping::Full => "",
                        Grouping::Depthwise { .. } => "dw",
                        Grouping::Groups(_) => "g",
                    };
                    let t = if *weights == WeightKind::Ternary { "t" } else { "" };
                    format!("{t}{g}conv{}x{}/s{}", kernel[0], kernel[1], stride[0])
                }
                LayerOp::Dense { weights, .. } => {
                    if *weights == WeightKind::Ternary {
                        "tdense".into()
                    } else {
                        "dense".into()
                    }
                }
                LayerOp::Clip { min, max } => format!("clip[{min},{max}]"),
                LayerOp::Add { .. } => "add".into(),
                LayerOp::AvgPool { .. } => "avgpool".into(),
                LayerOp::MaxPool { .. } => "maxpool".into(),
                LayerOp::GlobalAvgPool => "gap".into(),
                LayerOp::Reshape(_) => "reshape".into(),
                LayerOp::Softmax { .. } => "softmax".into(),
            })
            .collect();
        format!("{:?} {}", self.inputs.iter().map(|i| &i.shape).collect::<Vec<_>>(), ops.join(" -> "))
    }
}

// ---------------------------------------------------------------- build

/// A value while building: its tensor and real-valued quantization.
#[derive(Clone, Debug)]
struct Val {
    t: TensorId,
    shape: Vec<usize>,
    dtype: DType,
    scale: f32,
    zp: i64,
}

struct Builder<'a> {
    g: &'a mut Graph,
    prefix: String,
    count: usize,
}

impl Builder<'_> {
    fn name(&mut self, what: &str) -> String {
        self.count += 1;
        format!("{}{what}_{}", self.prefix, self.count)
    }
    fn tensor(&mut self, what: &str, shape: &[usize], dtype: DType, q: Option<(f32, i64)>) -> TensorId {
        let name = self.name(what);
        self.g.add_tensor(Tensor {
            name,
            shape: shape.to_vec(),
            dtype,
            quant: q.map(|(s, z)| Quant::per_tensor(s, z)),
            data: None,
        })
    }
    fn konst(&mut self, what: &str, shape: &[usize], data: Data) -> TensorId {
        let name = self.name(what);
        let dtype = data.dtype();
        self.g.add_tensor(Tensor { name, shape: shape.to_vec(), dtype, quant: None, data: Some(data) })
    }
    fn node(&mut self, what: &str, op: Op, inputs: &[TensorId], outputs: &[TensorId]) {
        let name = self.name(what);
        self.g.add_node(OpNode { name, op, inputs: inputs.to_vec(), outputs: outputs.to_vec() });
    }
}

/// Builds `recipe` into a fresh graph and runs `passes::prepare` on it.
pub fn build(recipe: &Recipe) -> anyhow::Result<Graph> {
    build_many(&[recipe])
}

/// Builds several recipes side by side into one graph (their inputs and
/// outputs concatenated in order), prepared. Returns the graph; the outputs
/// of recipe `i` are the next `recipes[i].outputs.len()` graph outputs.
pub fn build_many(recipes: &[&Recipe]) -> anyhow::Result<Graph> {
    let mut g = Graph::default();
    for (i, r) in recipes.iter().enumerate() {
        let prefix = if recipes.len() == 1 { String::new() } else { format!("n{i}_") };
        build_into(&mut g, r, &prefix).with_context(|| format!("network {i}"))?;
    }
    match_core::passes::prepare(&mut g).context("passes::prepare rejected the generated graph")?;
    Ok(g)
}

fn type_range(d: DType) -> (i64, i64) {
    d.int_range().expect("integer type")
}

fn check_zp(d: DType, zp: i64) -> anyhow::Result<()> {
    let (lo, hi) = type_range(d);
    ensure!((lo..=hi).contains(&zp), "zero point {zp} outside {d}");
    Ok(())
}

fn window_out(h: usize, k: usize, s: usize, d: usize, p0: usize, p1: usize) -> anyhow::Result<usize> {
    let eff = d * (k - 1) + 1;
    ensure!(k >= 1 && s >= 1 && d >= 1, "empty window");
    ensure!(h + p0 + p1 >= eff, "window {k} (dilation {d}) does not fit {h} + {p0} + {p1}");
    Ok((h + p0 + p1 - eff) / s + 1)
}

fn build_into(g: &mut Graph, recipe: &Recipe, prefix: &str) -> anyhow::Result<()> {
    ensure!(!recipe.inputs.is_empty(), "no inputs");
    let mut b = Builder { g, prefix: prefix.to_string(), count: 0 };
    let mut vals: Vec<Val> = Vec::new();
    for inp in &recipe.inputs {
        ensure!(!inp.shape.is_empty() && inp.shape.iter().all(|&d| d > 0), "bad input shape");
        ensure!(inp.scale > 0.0, "bad input scale");
        let dtype = inp.dtype.dtype();
        check_zp(dtype, inp.zp)?;
        let t = b.tensor("x", &inp.shape, dtype, Some((inp.scale, inp.zp)));
        b.g.inputs.push(t);
        vals.push(Val { t, shape: inp.shape.clone(), dtype, scale: inp.scale, zp: inp.zp });
    }
    for (li, layer) in recipe.layers.iter().enumerate() {
        let v = build_layer(&mut b, &vals, layer).with_context(|| format!("layer {li}"))?;
        vals.push(v);
    }
    ensure!(!recipe.outputs.is_empty(), "no outputs");
    for &o in &recipe.outputs {
        let v = vals.get(o).with_context(|| format!("output {o} does not exist"))?;
        ensure!(o >= recipe.inputs.len(), "an input is not an output");
        ensure!(!b.g.outputs.contains(&v.t), "output {o} listed twice");
        b.g.outputs.push(v.t);
    }
    Ok(())
}

fn weights_data(rng: &mut Rng, kind: WeightKind, count: usize, k: usize) -> (Data, Vec<i64>) {
    match kind {
        WeightKind::I8 => {
            let lim = rng.pick(&[127i64, 127, 64, 8]);
            (Data::I8((0..count).map(|_| rng.range(-lim, lim) as i8).collect()), vec![0])
        }
        WeightKind::U8 { per_channel } => {
            let data = Data::U8((0..count).map(|_| rng.range(0, 255) as u8).collect());
            let zps = if per_channel { (0..k).map(|_| rng.range(100, 156)).collect() } else { vec![128] };
            (data, zps)
        }
        WeightKind::Ternary => {
            // Sometimes sparse, as trained ternary layers are.
            let zero = rng.pick(&[0.2, 0.33, 0.6]);
            let data = (0..count).map(|_| if rng.chance(zero) { 0 } else { rng.pick(&[-1i8, 1]) }).collect();
            (Data::I8(data), vec![0])
        }
    }
}

/// The clip of an activation in the quantized output domain.
fn act_range(act: Activation, d: DType, scale: f32, zp: i64) -> Option<(i64, i64)> {
    let (lo, hi) = type_range(d);
    match act {
        Activation::None => None,
        Activation::Relu => Some((zp.max(lo), hi)),
        Activation::Relu6 => {
            let top = zp + (6.0f32 / scale).round() as i64;
            Some((zp.max(lo), top.clamp(zp.max(lo), hi)))
        }
        Activation::Clip { min, max } => Some((min.max(lo), max.min(hi))),
    }
}

/// conv / dense tail: bias, requantize, activation. `fan` is the MACs per
/// output; `w_scale` the per-channel weight scales.
#[allow(clippy::too_many_arguments)]
fn tail(
    b: &mut Builder,
    rng: &mut Rng,
    acc: TensorId,
    shape: &[usize],
    x: &Val,
    w_scale: &[f32],
    bias: bool,
    rq: &Option<Requantizer>,
) -> anyhow::Result<Val> {
    let k = *shape.last().expect("rank >= 1");
    let mut cur = acc;
    if bias {
        let lim = rng.pick(&[20_000i64, 2_000, 100]);
        let bdata = Data::I32((0..k).map(|_| rng.range(-lim, lim) as i32).collect());
        let bt = b.konst("bias", &[k], bdata);
        let out = b.tensor("biased", shape, DType::I32, None);
        b.node("bias", Op::BiasAdd, &[cur, bt], &[out]);
        cur = out;
    }
    let Some(rq) = rq else {
        return Ok(Val { t: cur, shape: shape.to_vec(), dtype: DType::I32, scale: 1.0, zp: 0 });
    };
    let od = rq.out.dtype();
    check_zp(od, rq.out_zp)?;
    ensure!(rq.out_scale > 0.0 && rq.gain > 0.0, "bad requantizer scales");
    let reals: Vec<f64> = w_scale.iter().map(|&w| x.scale as f64 * w as f64 / rq.out_scale as f64).collect();
    let requant = match &rq.kind {
        RequantKind::FixedPoint { per_channel } => {
            let n = if *per_channel { k } else { 1 };
            let mut m = Vec::new();
            let mut s = Vec::new();
            for &w in &w_scale[..n] {
                let (mm, ss) = quant::conv_multiplier(x.scale, w, rq.out_scale)?;
                m.push(mm);
                s.push(ss);
            }
            Requant::FixedPoint { multiplier: m, shift: s }
        }
        RequantKind::Float { per_channel } => {
            let n = if *per_channel { k } else { 1 };
            Requant::Float { scale: w_scale[..n].iter().map(|&w| x.scale * w / rq.out_scale).collect() }
        }
        RequantKind::ScaleShift { extra_bits } => {
            let max = reals.iter().cloned().fold(0.0, f64::max);
            let shift = ((-max.log2()).floor() as i64 + *extra_bits as i64).clamp(0, 40) as u32;
            let scale: Vec<i64> =
                reals.iter().map(|r| ((r * 2f64.powi(shift as i32)).round() as i64).max(1)).collect();
            let half = if shift > 0 { 1i64 << (shift - 1) } else { 0 };
            let bias: Vec<i64> = (0..k).map(|_| half + rng.range(-half / 4, half / 4)).collect();
            Requant::ScaleShift { scale, bias, shift }
        }
        RequantKind::Shift => {
            let max = reals.iter().cloned().fold(0.0, f64::max);
            let shift = ((-max.log2()).round() as i64).clamp(0, 31) as u32;
            Requant::ScaleShift { scale: vec![1; k], bias: vec![0; k], shift }
        }
    };
    let q = b.tensor("q", shape, od, Some((rq.out_scale, rq.out_zp)));
    b.node("requant", Op::Requantize { requant, out_zp: rq.out_zp }, &[cur], &[q]);
    let mut out = q;
    if let Some((min, max)) = act_range(rq.act, od, rq.out_scale, rq.out_zp) {
        ensure!(min <= max, "empty activation clip");
        let y = b.tensor("act", shape, od, Some((rq.out_scale, rq.out_zp)));
        b.node("clip", Op::Clip { min, max }, &[q], &[y]);
        out = y;
    }
    Ok(Val { t: out, shape: shape.to_vec(), dtype: od, scale: rq.out_scale, zp: rq.out_zp })
}

/// Per-channel weight scales that keep the output near the middle of its
/// range for uniform inputs: acc ~ 60 * 70 * sqrt(fan) (ternary weights on
/// 7-bit inputs: ~ 40 * sqrt(fan)), times `gain`.
fn weight_scales(
    rng: &mut Rng,
    k: usize,
    fan: usize,
    x: &Val,
    rq: &Option<Requantizer>,
    weights: WeightKind,
) -> Vec<f32> {
    let (out_scale, gain) = rq.as_ref().map_or((1.0, 1.0), |r| (r.out_scale, r.gain));
    let typical = if weights == WeightKind::Ternary { 40.0 } else { 4200.0 };
    let nominal = out_scale as f64 * 30.0 / (x.scale as f64 * typical * (fan as f64).sqrt()) * gain as f64;
    (0..k).map(|_| (nominal * rng.log_uniform(0.5, 2.0)) as f32).collect()
}

fn is8(v: &Val) -> bool {
    matches!(v.dtype, DType::I8 | DType::U8)
}

fn build_layer(b: &mut Builder, vals: &[Val], layer: &LayerSpec) -> anyhow::Result<Val> {
    let x = vals.get(layer.src).with_context(|| format!("source {} does not exist", layer.src))?.clone();
    let mut rng = Rng::new(layer.seed);
    match &layer.op {
        LayerOp::Conv { grouping, out_c, kernel, stride, dilation, pad, weights, bias, rq } => {
            ensure!(is8(&x) && x.shape.len() == 4, "conv needs an 8-bit NHWC input");
            let [n, h, w, c] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
            let (groups, k) = match *grouping {
                Grouping::Full => (1, *out_c),
                Grouping::Depthwise { multiplier } => (c, c * multiplier),
                Grouping::Groups(gr) => (gr, *out_c),
            };
            ensure!(k >= 1 && groups >= 1 && c % groups == 0 && k % groups == 0, "bad groups");
            let oh = window_out(h, kernel[0], stride[0], dilation[0], pad[0], pad[2])?;
            let ow = window_out(w, kernel[1], stride[1], dilation[1], pad[1], pad[3])?;
            let cg = c / groups;
            let count = k * kernel[0] * kernel[1] * cg;
            let (wd, w_zp) = weights_data(&mut rng, *weights, count, k);
            let wt = b.konst("w", &[k, kernel[0], kernel[1], cg], wd);
            let shape = [n, oh, ow, k];
            let acc = b.tensor("acc", &shape, DType::I32, None);
            let op = Op::Conv2d { stride: *stride, dilation: *dilation, pad: *pad, groups, x_zp: x.zp, w_zp };
            b.node("conv", op, &[x.t, wt], &[acc]);
            let ws = weight_scales(&mut rng, k, kernel[0] * kernel[1] * cg, &x, rq, *weights);
            tail(b, &mut rng, acc, &shape, &x, &ws, *bias, rq)
        }
        LayerOp::Dense { out_c, weights, bias, rq } => {
            ensure!(is8(&x), "dense needs an 8-bit input");
            let c = *x.shape.last().expect("rank >= 1");
            let k = *out_c;
            ensure!(k >= 1, "no output channels");
            let (wd, w_zp) = weights_data(&mut rng, *weights, k * c, k);
            let wt = b.konst("w", &[k, c], wd);
            let mut shape = x.shape.clone();
            *shape.last_mut().expect("rank >= 1") = k;
            let acc = b.tensor("acc", &shape, DType::I32, None);
            b.node("dense", Op::Dense { x_zp: x.zp, w_zp }, &[x.t, wt], &[acc]);
            let ws = weight_scales(&mut rng, k, c, &x, rq, *weights);
            tail(b, &mut rng, acc, &shape, &x, &ws, *bias, rq)
        }
        LayerOp::Add { other, mode, out_zp, out_scale, act } => {
            ensure!(is8(&x), "add needs 8-bit inputs");
            let y = match *other {
                Operand::Value(i) => {
                    let y = vals.get(i).with_context(|| format!("operand {i} does not exist"))?.clone();
                    ensure!(y.shape == x.shape && y.dtype == x.dtype, "add operands differ");
                    y
                }
                Operand::Const => {
                    let c = *x.shape.last().expect("rank >= 1");
                    let (lo, hi) = type_range(x.dtype);
                    let d = Data::from_i64(x.dtype, &(0..c).map(|_| rng.range(lo, hi)).collect::<Vec<_>>());
                    let t = b.konst("k", &[c], d);
                    let zp = rng.range(lo.max(-20), hi.min(140));
                    let scale = x.scale * rng.log_uniform(0.3, 3.0) as f32;
                    Val { t, shape: vec![c], dtype: x.dtype, scale, zp }
                }
            };
            let od = x.dtype;
            check_zp(od, *out_zp)?;
            ensure!(*out_scale > 0.0, "bad scale");
            let kind = match mode {
                AddMode::TfLite => {
                    AddKind::TfLite(quant::add_params([x.scale, y.scale], [x.zp, y.zp], *out_scale, *out_zp)?)
                }
                AddMode::Integer => AddKind::Integer,
                AddMode::Float => AddKind::Float {
                    a_scale: x.scale,
                    a_zp: x.zp,
                    b_scale: y.scale,
                    b_zp: y.zp,
                    y_scale: *out_scale,
                    y_zp: *out_zp,
                },
            };
            let (scale, zp) = match mode {
                AddMode::Integer => (x.scale, x.zp),
                _ => (*out_scale, *out_zp),
            };
            let s = b.tensor("sum", &x.shape, od, Some((scale, zp)));
            b.node("add", Op::Add { kind }, &[x.t, y.t], &[s]);
            let mut out = s;
            if let Some((min, max)) = act_range(*act, od, scale, zp) {
                ensure!(min <= max, "empty activation clip");
                let a = b.tensor("act", &x.shape, od, Some((scale, zp)));
                b.node("clip", Op::Clip { min, max }, &[s], &[a]);
                out = a;
            }
            Ok(Val { t: out, shape: x.shape.clone(), dtype: od, scale, zp })
        }
        LayerOp::AvgPool { kernel, stride, pad, .. } | LayerOp::MaxPool { kernel, stride, pad } => {
            ensure!(is8(&x) && x.shape.len() == 4, "pooling needs an 8-bit NHWC input");
            ensure!(pad[0] < kernel[0] && pad[2] < kernel[0], "pad >= kernel");
            ensure!(pad[1] < kernel[1] && pad[3] < kernel[1], "pad >= kernel");
            let oh = window_out(x.shape[1], kernel[0], stride[0], 1, pad[0], pad[2])?;
            let ow = window_out(x.shape[2], kernel[1], stride[1], 1, pad[1], pad[3])?;
            let shape = [x.shape[0], oh, ow, x.shape[3]];
            let op = match &layer.op {
                LayerOp::AvgPool { count_include_pad, .. } => Op::AvgPool {
                    kernel: *kernel,
                    stride: *stride,
                    pad: *pad,
                    count_include_pad: *count_include_pad,
                },
                _ => Op::MaxPool { kernel: *kernel, stride: *stride, pad: *pad },
            };
            let y = b.tensor("pool", &shape, x.dtype, Some((x.scale, x.zp)));
            b.node("pool", op, &[x.t], &[y]);
            Ok(Val { t: y, shape: shape.to_vec(), ..x })
        }
        LayerOp::Clip { min, max } => {
            ensure!(is8(&x), "clip of an 8-bit value");
            let (lo, hi) = type_range(x.dtype);
            let (min, max) = ((*min).max(lo), (*max).min(hi));
            ensure!(min <= max, "empty clip");
            let y = b.tensor("clip", &x.shape, x.dtype, Some((x.scale, x.zp)));
            b.node("clip", Op::Clip { min, max }, &[x.t], &[y]);
            Ok(Val { t: y, ..x })
        }
        LayerOp::GlobalAvgPool => {
            ensure!(is8(&x) && x.shape.len() == 4, "global pooling needs an 8-bit NHWC input");
            let shape = [x.shape[0], 1, 1, x.shape[3]];
            let y = b.tensor("gap", &shape, x.dtype, Some((x.scale, x.zp)));
            b.node("gap", Op::GlobalAvgPool, &[x.t], &[y]);
            Ok(Val { t: y, shape: shape.to_vec(), ..x })
        }
        LayerOp::Reshape(kind) => {
            ensure!(is8(&x), "reshape of an 8-bit value");
            let n: usize = x.shape.iter().product();
            let shape = match kind {
                ReshapeKind::Flatten => vec![1, n],
                ReshapeKind::ToNhwc => vec![1, 1, 1, n],
                ReshapeKind::Pixels => {
                    ensure!(x.shape.len() == 4, "pixels of NHWC");
                    vec![x.shape[0], x.shape[1] * x.shape[2], 1, x.shape[3]]
                }
            };
            let y = b.tensor("reshape", &shape, x.dtype, Some((x.scale, x.zp)));
            b.node("reshape", Op::Reshape, &[x.t], &[y]);
            Ok(Val { t: y, shape, ..x })
        }
        LayerOp::Softmax { beta, out } => {
            ensure!(is8(&x), "softmax needs an 8-bit input");
            ensure!(*beta > 0.0, "bad beta");
            let od = out.dtype();
            let zp = if od == DType::I8 { -128 } else { 0 };
            let scale = 1.0 / 256.0;
            let y = b.tensor("softmax", &x.shape, od, Some((scale, zp)));
            let op = Op::Softmax { beta: *beta, input_scale: x.scale, input_zp: x.zp };
            b.node("softmax", op, &[x.t], &[y]);
            Ok(Val { t: y, shape: x.shape.clone(), dtype: od, scale, zp })
        }
    }
}

/// Random inputs for a recipe's inputs: uniform over each input type, or
/// (one time in three) over a narrow band around the zero point.
pub fn random_inputs(recipe: &Recipe, seed: u64) -> Vec<Data> {
    let mut rng = Rng::new(seed);
    recipe
        .inputs
        .iter()
        .map(|inp| {
            let d = inp.dtype.dtype();
            let (lo, hi) = type_range(d);
            let (lo, hi) =
                if rng.chance(0.33) { ((inp.zp - 20).max(lo), (inp.zp + 20).min(hi)) } else { (lo, hi) };
            let n: usize = inp.shape.iter().product();
            Data::from_i64(d, &(0..n).map(|_| rng.range(lo, hi)).collect::<Vec<_>>())
        })
        .collect()
}

// ------------------------------------------------------------ generator

/// Flavours of a generated network, so that shipped targets see layers
/// their units accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// Anything.
    Any,
    /// TFLite-like: int8, fixed point.
    TfLite,
    /// Integer dialect, u8 inputs, scale-shift (NE16-friendly).
    IntegerDialect,
    /// int8, shift-only requantization, "same" padding (DIANA digital).
    ShiftOnly,
}

/// Generation knobs.
#[derive(Clone, Debug)]
pub struct GenOptions {
    pub max_layers: usize,
    pub max_hw: usize,
    pub max_c: usize,
}

impl Default for GenOptions {
    fn default() -> GenOptions {
        GenOptions { max_layers: 7, max_hw: 24, max_c: 48 }
    }
}

struct GenVal {
    shape: Vec<usize>,
    dtype: Option<Act8>,
    scale: f32,
    zp: i64,
    /// The value's provable range when a clip produces it.
    range: Option<(i64, i64)>,
}

/// Appends `spec` when the recipe still builds with it, tracking the new
/// value's shape, type and range by building it alone. Whether it did.
fn push_layer(
    inputs: &[InputSpec],
    layers: &mut Vec<LayerSpec>,
    vals: &mut Vec<GenVal>,
    outputs: &mut Vec<usize>,
    spec: LayerSpec,
) -> bool {
    let trial = Recipe {
        inputs: inputs.to_vec(),
        layers: [layers.clone(), vec![spec.clone()]].concat(),
        outputs: vec![vals.len()],
    };
    let mut g = Graph::default();
    if build_into(&mut g, &trial, "").is_err() {
        return false;
    }
    let tid = *g.outputs.last().expect("an output");
    let t = g.tensor(tid);
    let dt = match t.dtype {
        DType::I8 => Some(Act8::I8),
        DType::U8 => Some(Act8::U8),
        _ => None,
    };
    let q = t.quant.clone().unwrap_or(Quant::per_tensor(1.0, 0));
    let clipped = g.producer(tid).is_some_and(|p| matches!(g.nodes[p].op, Op::Clip { .. }));
    let range = if clipped { match_core::lower::value_range(&g, tid) } else { None };
    if dt.is_none() {
        outputs.push(vals.len());
    }
    vals.push(GenVal { shape: t.shape.clone(), dtype: dt, scale: q.scale[0], zp: q.zp(), range });
    layers.push(spec);
    true
}

fn pick_zp(rng: &mut Rng, d: Act8) -> i64 {
    match d {
        Act8::I8 => {
            let opts = [0, -128, rng.range(-20, 20), rng.range(-128, 127)];
            rng.pick(&opts)
        }
        Act8::U8 => {
            let opts = [0, 128, rng.range(100, 156), rng.range(0, 255)];
            rng.pick(&opts)
        }
    }
}

fn pick_requant(rng: &mut Rng, flavor: Flavor, in_d: Act8) -> Requantizer {
    let kind = match flavor {
        Flavor::TfLite => RequantKind::FixedPoint { per_channel: rng.chance(0.8) },
        Flavor::IntegerDialect => RequantKind::ScaleShift { extra_bits: rng.range(1, 16) as u32 },
        Flavor::ShiftOnly => RequantKind::Shift,
        Flavor::Any => match rng.below(5) {
            0 | 1 => RequantKind::FixedPoint { per_channel: rng.chance(0.7) },
            2 => RequantKind::Float { per_channel: rng.chance(0.7) },
            3 => RequantKind::ScaleShift { extra_bits: rng.range(1, 16) as u32 },
            _ => RequantKind::Shift,
        },
    };
    let out = match flavor {
        Flavor::TfLite | Flavor::ShiftOnly => Act8::I8,
        Flavor::IntegerDialect => {
            if rng.chance(0.8) {
                Act8::U8
            } else {
                Act8::I8
            }
        }
        Flavor::Any => {
            if rng.chance(0.7) {
                in_d
            } else {
                rng.pick(&[Act8::I8, Act8::U8])
            }
        }
    };
    let out_zp = match (flavor, &kind) {
        (Flavor::ShiftOnly, _) | (_, RequantKind::Shift) if rng.chance(0.7) => 0,
        _ => pick_zp(rng, out),
    };
    let act = rng.pick(&[Activation::None, Activation::Relu, Activation::Relu, Activation::Relu6]);
    // Sometimes a 7-bit output, which a ternary layer can read directly.
    let act = if out == Act8::I8 && rng.chance(0.15) { Activation::Clip { min: -64, max: 63 } } else { act };
    Requantizer {
        kind,
        out,
        out_zp,
        out_scale: rng.log_uniform(0.01, 0.2) as f32,
        gain: rng.log_uniform(0.25, 4.0) as f32,
        act,
    }
}

fn pick_weights(rng: &mut Rng, flavor: Flavor) -> WeightKind {
    match flavor {
        Flavor::Any if rng.chance(0.25) => WeightKind::U8 { per_channel: rng.chance(0.5) },
        _ => WeightKind::I8,
    }
}

/// A random network.
pub fn generate(seed: u64, flavor: Flavor, opt: &GenOptions) -> Recipe {
    let mut rng = Rng::new(seed);
    let dtype = match flavor {
        Flavor::TfLite | Flavor::ShiftOnly => Act8::I8,
        Flavor::IntegerDialect => Act8::U8,
        Flavor::Any => rng.pick(&[Act8::I8, Act8::U8]),
    };
    let h = rng.usize(1, opt.max_hw);
    let w = if rng.chance(0.6) { h } else { rng.usize(1, opt.max_hw) };
    let cmax = if rng.chance(0.5) { 8.min(opt.max_c) } else { opt.max_c };
    let c = rng.usize(1, cmax);
    let input_shape = if rng.chance(0.1) { vec![1, rng.usize(1, 64)] } else { vec![1, h, w, c] };
    let input = InputSpec {
        shape: input_shape,
        dtype,
        scale: rng.log_uniform(0.005, 0.1) as f32,
        zp: pick_zp(&mut rng, dtype),
    };
    let mut inputs = vec![input.clone()];
    // Sometimes a second input of the same shape (an add can read it).
    if input.shape.len() == 4 && rng.chance(0.15) {
        let scale = rng.log_uniform(0.005, 0.1) as f32;
        inputs.push(InputSpec { shape: input.shape.clone(), dtype, scale, zp: pick_zp(&mut rng, dtype) });
    }
    let mut vals: Vec<GenVal> = inputs
        .iter()
        .map(|i| GenVal { shape: i.shape.clone(), dtype: Some(dtype), scale: i.scale, zp: i.zp, range: None })
        .collect();
    let mut layers: Vec<LayerSpec> = Vec::new();
    let mut outputs: Vec<usize> = Vec::new();
    let n_layers = rng.usize(1, opt.max_layers);
    // Some networks have ternary layers (DIANA's analog array), each reading
    // a value clipped to the array's 7-bit inputs; most of DIANA's.
    let ternary_nets = if flavor == Flavor::ShiftOnly { 0.85 } else { 0.5 };
    let ternary_p = if rng.chance(ternary_nets) { 0.45 } else { 0.0 };
    let mut attempts = 0;
    while layers.len() < n_layers && attempts < 200 {
        attempts += 1;
        // Mostly the latest value (chains), sometimes an earlier one (DAGs).
        let usable: Vec<usize> = (0..vals.len()).filter(|&i| vals[i].dtype.is_some()).collect();
        let Some(&last) = usable.last() else { break };
        let src = if rng.chance(0.75) { last } else { rng.pick(&usable) };
        let x = &vals[src];
        let xd = x.dtype.expect("usable");
        let four = x.shape.len() == 4;
        if xd == Act8::I8 && rng.chance(ternary_p) {
            // A ternary layer, after a clip to [-64, 63] unless its input is
            // already provably within.
            let mut src = src;
            if !vals[src].range.is_some_and(|(lo, hi)| lo >= -64 && hi <= 63) {
                let clip = LayerSpec { src, op: LayerOp::Clip { min: -64, max: 63 }, seed: rng.seed() };
                if !push_layer(&inputs, &mut layers, &mut vals, &mut outputs, clip) {
                    continue;
                }
                src = vals.len() - 1;
            }
            if let Some(op) = gen_ternary(&mut rng, flavor, &vals[src], opt) {
                let spec = LayerSpec { src, op, seed: rng.seed() };
                push_layer(&inputs, &mut layers, &mut vals, &mut outputs, spec);
            }
            continue;
        }
        let macs_budget = 400_000usize;
        let choice = rng.below(100);
        let op = if four && choice < 45 {
            gen_conv(&mut rng, flavor, x, opt, macs_budget)
        } else if choice < 55 || (!four && choice < 70) {
            gen_dense(&mut rng, flavor, x, opt)
        } else if choice < 70 {
            gen_add(&mut rng, flavor, &vals, src)
        } else if four && choice < 85 {
            gen_pool(&mut rng, x)
        } else if choice < 92 {
            let kinds: &[ReshapeKind] = if four {
                &[ReshapeKind::Flatten, ReshapeKind::ToNhwc, ReshapeKind::Pixels]
            } else {
                &[ReshapeKind::ToNhwc]
            };
            Some(LayerOp::Reshape(rng.pick(kinds)))
        } else if matches!(flavor, Flavor::Any | Flavor::TfLite)
            && x.shape.last().is_some_and(|&d| d <= match_core::passes::MAX_SOFTMAX_ROW)
        {
            // Rows up to the Q12.19 sum's limit; rows whose sum reaches 512
            // take the exact 64-bit division (TFLite's kernel is undefined
            // there), which the interpreter and the C must agree on.
            let out = if xd == Act8::U8 && rng.chance(0.5) { Act8::U8 } else { Act8::I8 };
            Some(LayerOp::Softmax { beta: rng.pick(&[1.0f32, 1.0, 0.5, 2.0]), out })
        } else {
            None
        };
        let Some(op) = op else { continue };
        let spec = LayerSpec { src, op, seed: rng.seed() };
        push_layer(&inputs, &mut layers, &mut vals, &mut outputs, spec);
    }
    if layers.is_empty() {
        // Always at least one layer.
        layers.push(LayerSpec { src: 0, op: LayerOp::Reshape(ReshapeKind::ToNhwc), seed: 0 });
        vals.push(GenVal { shape: vec![], dtype: Some(dtype), scale: 1.0, zp: 0, range: None });
    }
    let last = vals.len() - 1;
    if !outputs.contains(&last) {
        outputs.push(last);
    }
    // Sometimes an intermediate value is an output too.
    if vals.len() > inputs.len() + 2 && rng.chance(0.2) {
        let i = rng.usize(inputs.len(), vals.len() - 2);
        if !outputs.contains(&i) {
            outputs.push(i);
        }
    }
    outputs.sort();
    Recipe { inputs, layers, outputs }
}

/// A network with a long skip connection, for the external-memory
/// (spilling) cases: a stem convolution whose output `v` is read again by
/// an addition two to five shape-keeping layers later (convolutions with
/// "same" padding, depthwise convolutions, 3x3 max poolings), the last of
/// which returns to `v`'s channels and type; sometimes a second skip over
/// the first's sum, and a pooled dense head. Activations of a few to some
/// tens of kB, so that `v` waits while the layers between hold the arena.
pub fn generate_long_skip(seed: u64, flavor: Flavor) -> Recipe {
    let mut rng = Rng::new(seed ^ 0x10f6_5c19);
    let dtype = match flavor {
        Flavor::TfLite | Flavor::ShiftOnly => Act8::I8,
        Flavor::IntegerDialect => Act8::U8,
        Flavor::Any => rng.pick(&[Act8::I8, Act8::U8]),
    };
    let h = rng.usize(20, 48);
    let w = if rng.chance(0.7) { h } else { rng.usize(20, 48) };
    let input = InputSpec {
        shape: vec![1, h, w, rng.usize(1, 16)],
        dtype,
        scale: rng.log_uniform(0.005, 0.1) as f32,
        zp: pick_zp(&mut rng, dtype),
    };
    let inputs = vec![input.clone()];
    let mut vals = vec![GenVal {
        shape: input.shape.clone(),
        dtype: Some(dtype),
        scale: input.scale,
        zp: input.zp,
        range: None,
    }];
    let mut layers: Vec<LayerSpec> = Vec::new();
    let mut outputs: Vec<usize> = Vec::new();
    // Multiply-accumulates per layer at most (the sanitized emulation's time).
    const MACS: usize = 6_000_000;
    let same_conv = |rng: &mut Rng, x: &GenVal, out_c: Option<usize>, out: Option<Act8>| -> Option<LayerOp> {
        let xd = x.dtype?;
        let c = x.shape[3];
        let k = rng.pick(&[1usize, 3, 3]);
        let depthwise = out_c.is_none() && k == 3 && rng.chance(0.3);
        let room = (MACS / (x.shape[1] * x.shape[2] * k * k * c).max(1)).max(1);
        let out_c = out_c.unwrap_or_else(|| rng.usize(4, 48).min(room));
        let mut rq = pick_requant(rng, flavor, xd);
        if let Some(d) = out {
            rq.out = d;
            if rq.out_zp < type_range(d.dtype()).0 || rq.out_zp > type_range(d.dtype()).1 {
                rq.out_zp = 0;
            }
        }
        let p = (k - 1) / 2;
        Some(LayerOp::Conv {
            grouping: if depthwise { Grouping::Depthwise { multiplier: 1 } } else { Grouping::Full },
            out_c,
            kernel: [k, k],
            stride: [1, 1],
            dilation: [1, 1],
            pad: [p; 4],
            weights: pick_weights(rng, flavor),
            bias: rng.chance(0.8),
            rq: Some(rq),
        })
    };
    let skips = if rng.chance(0.3) { 2 } else { 1 };
    for _ in 0..skips {
        // The skipped value: a stem convolution's output.
        let stem_c = rng.usize(4, 32);
        let src = vals.len() - 1;
        let Some(op) = same_conv(&mut rng, &vals[src], Some(stem_c), None) else { break };
        if !push_layer(&inputs, &mut layers, &mut vals, &mut outputs, LayerSpec { src, op, seed: rng.seed() })
        {
            break;
        }
        let skip = vals.len() - 1;
        let (skip_c, skip_d) = (vals[skip].shape[3], vals[skip].dtype);
        let body = rng.usize(2, 5);
        for j in 0..body {
            let src = vals.len() - 1;
            let last = j + 1 == body;
            let op = if last {
                same_conv(&mut rng, &vals[src], Some(skip_c), skip_d)
            } else if rng.chance(0.15) {
                Some(LayerOp::MaxPool { kernel: [3, 3], stride: [1, 1], pad: [1; 4] })
            } else {
                same_conv(&mut rng, &vals[src], None, None)
            };
            let Some(op) = op else { continue };
            push_layer(
                &inputs,
                &mut layers,
                &mut vals,
                &mut outputs,
                LayerSpec { src, op, seed: rng.seed() },
            );
        }
        let src = vals.len() - 1;
        if vals[src].shape != vals[skip].shape || vals[src].dtype != skip_d {
            break;
        }
        // The join: the skipped value read again, several layers later.
        let mut add = gen_add(&mut rng, flavor, &vals, src);
        if let Some(LayerOp::Add { other, .. }) = add.as_mut() {
            *other = Operand::Value(skip);
        }
        let Some(op) = add else { break };
        push_layer(&inputs, &mut layers, &mut vals, &mut outputs, LayerSpec { src, op, seed: rng.seed() });
    }
    if rng.chance(0.5) {
        // A classifier head.
        let src = vals.len() - 1;
        if push_layer(
            &inputs,
            &mut layers,
            &mut vals,
            &mut outputs,
            LayerSpec { src, op: LayerOp::GlobalAvgPool, seed: rng.seed() },
        ) {
            let src = vals.len() - 1;
            if let Some(op) = gen_dense(&mut rng, flavor, &vals[src], &GenOptions::default()) {
                push_layer(
                    &inputs,
                    &mut layers,
                    &mut vals,
                    &mut outputs,
                    LayerSpec { src, op, seed: rng.seed() },
                );
            }
        }
    }
    if layers.is_empty() {
        return generate(seed, flavor, &GenOptions::default());
    }
    let last = vals.len() - 1;
    if !outputs.contains(&last) {
        outputs.push(last);
    }
    outputs.sort();
    Recipe { inputs, layers, outputs }
}

fn gen_conv(rng: &mut Rng, flavor: Flavor, x: &GenVal, opt: &GenOptions, budget: usize) -> Option<LayerOp> {
    let [_, h, w, c] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    let xd = x.dtype?;
    let grouping = match rng.below(10) {
        0..=5 => Grouping::Full,
        6..=8 => Grouping::Depthwise { multiplier: if rng.chance(0.8) { 1 } else { 2 } },
        _ => {
            let divisors: Vec<usize> = (2..=c).filter(|g| c % g == 0).collect();
            if divisors.is_empty() {
                Grouping::Full
            } else {
                Grouping::Groups(rng.pick(&divisors))
            }
        }
    };
    let shift_only = flavor == Flavor::ShiftOnly;
    let integer = flavor == Flavor::IntegerDialect;
    let square = rng.chance(0.8) || shift_only;
    let ky = rng.usize(1, 5);
    // NE16 takes 1x1 and 3x3 kernels.
    let ky = if integer && rng.chance(0.7) { rng.pick(&[1, 3]) } else { ky };
    let kx = if square { ky } else { rng.usize(1, 5) };
    let (ky, kx) = if shift_only { (ky | 1, ky | 1) } else { (ky, kx) };
    let sy = rng.usize(1, 2);
    let stride = if rng.chance(0.85) { [sy, sy] } else { [sy, 3 - sy] };
    let dil =
        if !shift_only && flavor == Flavor::Any && rng.chance(0.15) { [2, rng.usize(1, 2)] } else { [1, 1] };
    let pad = if shift_only || rng.chance(0.5) {
        // "same"-style, symmetric when the kernel is odd.
        let py = dil[0] * (ky - 1);
        let px = dil[1] * (kx - 1);
        [py / 2, px / 2, py - py / 2, px - px / 2]
    } else if rng.chance(0.5) {
        [0; 4]
    } else {
        [rng.usize(0, ky - 1), rng.usize(0, kx - 1), rng.usize(0, ky - 1), rng.usize(0, kx - 1)]
    };
    let out_c = match grouping {
        Grouping::Groups(g) => g * rng.usize(1, (opt.max_c / g).max(1)),
        // Wider layers, where NE16 beats the cluster.
        _ if integer && rng.chance(0.5) => rng.usize(opt.max_c / 2, opt.max_c),
        _ => rng.usize(1, opt.max_c),
    };
    let k = match grouping {
        Grouping::Depthwise { multiplier } => c * multiplier,
        _ => out_c,
    };
    let cg = match grouping {
        Grouping::Full => c,
        Grouping::Depthwise { .. } => 1,
        Grouping::Groups(g) => c / g,
    };
    let oh = window_out(h, ky, stride[0], dil[0], pad[0], pad[2]).ok()?;
    let ow = window_out(w, kx, stride[1], dil[1], pad[1], pad[3]).ok()?;
    if oh * ow * k * ky * kx * cg > budget || k > 96 {
        return None;
    }
    let rq =
        if rng.chance(0.05) && flavor == Flavor::Any { None } else { Some(pick_requant(rng, flavor, xd)) };
    Some(LayerOp::Conv {
        grouping,
        out_c,
        kernel: [ky, kx],
        stride,
        dilation: dil,
        pad,
        weights: pick_weights(rng, flavor),
        bias: rng.chance(0.8),
        rq,
    })
}

/// A ternary conv or dense layer shaped so that DIANA's analog array can
/// take it (groups 1, no dilation, stride 1 or 2, `C * FY * FX <= 1152`
/// mostly, no padding unless the input zero point is 0).
fn gen_ternary(rng: &mut Rng, flavor: Flavor, x: &GenVal, opt: &GenOptions) -> Option<LayerOp> {
    let xd = x.dtype?;
    let c = *x.shape.last()?;
    let rq = Some(pick_requant(rng, flavor, xd));
    let bias = rng.chance(0.8);
    let weights = WeightKind::Ternary;
    if x.shape.len() != 4 || rng.chance(0.15) {
        if c > 1152 || x.shape.iter().product::<usize>() * opt.max_c > 600_000 {
            return None;
        }
        return Some(LayerOp::Dense { out_c: rng.usize(1, opt.max_c), weights, bias, rq });
    }
    let [h, w] = [x.shape[1], x.shape[2]];
    // Mostly shapes DIANA's digital array refuses (even kernels, no "same"
    // padding), where the analog array is the only accelerator; the digital
    // array is cheaper for the others.
    let ky = rng.pick(&[1, 2, 2, 2, 3, 3, 4, 5]);
    let kx = if rng.chance(0.85) { ky } else { rng.usize(1, 3) };
    let s = rng.usize(1, 2);
    let stride = if rng.chance(0.85) { [s, s] } else { [s, 3 - s] };
    let pad = if x.zp == 0 && rng.chance(0.2) {
        let (py, px) = (ky - 1, kx - 1);
        [py / 2, px / 2, py - py / 2, px - px / 2]
    } else {
        [0; 4]
    };
    let out_c = rng.usize(1, opt.max_c);
    let oh = window_out(h, ky, stride[0], 1, pad[0], pad[2]).ok()?;
    let ow = window_out(w, kx, stride[1], 1, pad[1], pad[3]).ok()?;
    if oh * ow * out_c * ky * kx * c > 400_000 || (c * ky * kx > 1152 && rng.chance(0.8)) {
        return None;
    }
    Some(LayerOp::Conv {
        grouping: Grouping::Full,
        out_c,
        kernel: [ky, kx],
        stride,
        dilation: [1, 1],
        pad,
        weights,
        bias,
        rq,
    })
}

fn gen_dense(rng: &mut Rng, flavor: Flavor, x: &GenVal, opt: &GenOptions) -> Option<LayerOp> {
    let xd = x.dtype?;
    let elems: usize = x.shape.iter().product();
    let c = *x.shape.last()?;
    if elems * opt.max_c > 600_000 || c > 4096 {
        return None;
    }
    let rq =
        if rng.chance(0.05) && flavor == Flavor::Any { None } else { Some(pick_requant(rng, flavor, xd)) };
    Some(LayerOp::Dense {
        out_c: rng.usize(1, opt.max_c),
        weights: pick_weights(rng, flavor),
        bias: rng.chance(0.8),
        rq,
    })
}

fn gen_add(rng: &mut Rng, flavor: Flavor, vals: &[GenVal], src: usize) -> Option<LayerOp> {
    let x = &vals[src];
    let xd = x.dtype?;
    let same: Vec<usize> = (0..vals.len())
        .filter(|&i| i != src && vals[i].dtype == Some(xd) && vals[i].shape == x.shape)
        .collect();
    let other = if !same.is_empty() && rng.chance(0.8) {
        Operand::Value(rng.pick(&same))
    } else if rng.chance(0.5) {
        Operand::Const
    } else {
        Operand::Value(src)
    };
    let mode = match flavor {
        Flavor::TfLite => AddMode::TfLite,
        Flavor::IntegerDialect | Flavor::ShiftOnly => AddMode::Integer,
        Flavor::Any => rng.pick(&[AddMode::TfLite, AddMode::TfLite, AddMode::Integer, AddMode::Float]),
    };
    let other_scale = match other {
        Operand::Value(i) => vals[i].scale,
        Operand::Const => x.scale,
    };
    Some(LayerOp::Add {
        other,
        mode,
        out_zp: pick_zp(rng, xd),
        out_scale: (x.scale.max(other_scale) as f64 * rng.log_uniform(0.7, 3.0)) as f32,
        act: rng.pick(&[Activation::None, Activation::None, Activation::Relu]),
    })
}

fn gen_pool(rng: &mut Rng, x: &GenVal) -> Option<LayerOp> {
    let [_, h, w, _] = [x.shape[0], x.shape[1], x.shape[2], x.shape[3]];
    if rng.chance(0.2) {
        return Some(LayerOp::GlobalAvgPool);
    }
    let ky = rng.usize(1, 4.min(h + 1));
    let kx = if rng.chance(0.8) { ky } else { rng.usize(1, 4.min(w + 1)) };
    let s = rng.usize(1, 3);
    let stride = [s, if rng.chance(0.8) { s } else { rng.usize(1, 3) }];
    let pad = if rng.chance(0.5) {
        [0; 4]
    } else {
        [rng.usize(0, ky - 1), rng.usize(0, kx - 1), rng.usize(0, ky - 1), rng.usize(0, kx - 1)]
    };
    window_out(h, ky, stride[0], 1, pad[0], pad[2]).ok()?;
    window_out(w, kx, stride[1], 1, pad[1], pad[3]).ok()?;
    Some(if rng.chance(0.5) {
        LayerOp::AvgPool { kernel: [ky, kx], stride, pad, count_include_pad: rng.chance(0.3) }
    } else {
        LayerOp::MaxPool { kernel: [ky, kx], stride, pad }
    })
}

// -------------------------------------------------------------- targets

/// A memory the units compute in (an L1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct L1Spec {
    pub size: u64,
    pub reserve: u64,
    pub double_buffer: bool,
    pub bandwidth: u32,
    pub setup: u32,
    pub dims: u32,
    /// DMA max transfer in bytes, if limited.
    pub max: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub cores: u32,
    pub macs: u32,
    pub call_overhead: u32,
    pub requant: Vec<String>,
    pub hwc: bool,
    /// `partial_sums`: the search may split C (the portable kernels run it).
    #[serde(default)]
    pub partial_sums: bool,
    /// `partial_sums R/cycle`: the accumulator's access rate (None: bare flag).
    #[serde(default)]
    pub partial_sum_rate: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ne16Spec {
    pub spatial_k: u32,
    pub spatial_c: u32,
    pub macs: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DigitalSpec {
    pub spatial_k: u32,
    pub spatial_ox: u32,
    pub macs: u32,
    pub weight_mem: u64,
}

/// A random target: a host unit in one memory, and optionally an L1 with
/// cluster-like, NE16-like and DIANA-digital-like units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetRecipe {
    pub name: String,
    pub clock_mhz: u32,
    pub home_size: u64,
    pub home_reserve: u64,
    pub host_macs: u32,
    pub host_requant: Vec<String>,
    /// The host states `activation_layout any`.
    #[serde(default)]
    pub host_any_layout: bool,
    pub l1: Option<L1Spec>,
    pub cluster: Option<ClusterSpec>,
    pub ne16: Option<Ne16Spec>,
    pub digital: Option<DigitalSpec>,
}

/// A random target.
pub fn generate_target(seed: u64) -> TargetRecipe {
    let mut rng = Rng::new(seed ^ 0x7a7a);
    let home_size = rng.log_uniform(2048.0, 4.0 * 1024.0 * 1024.0) as u64;
    let home_reserve = if rng.chance(0.3) { rng.below(home_size / 4 + 1) } else { 0 };
    let all_rq = ["fixed_point", "scale_shift", "shift", "float"];
    let host_requant: Vec<String> = if rng.chance(0.7) {
        all_rq.iter().map(|s| s.to_string()).collect()
    } else {
        all_rq.iter().filter(|_| rng.chance(0.5)).map(|s| s.to_string()).collect()
    };
    let l1 = rng.chance(0.8).then(|| {
        // Mostly enough for a tile of these small layers, sometimes not.
        let size = if rng.chance(0.2) {
            rng.log_uniform(512.0, 4096.0)
        } else {
            rng.log_uniform(8192.0, 512.0 * 1024.0)
        };
        let size = size as u64;
        L1Spec {
            size,
            reserve: if rng.chance(0.3) { rng.below(size / 2 + 1) } else { 0 },
            double_buffer: rng.chance(0.5),
            bandwidth: rng.pick(&[1, 2, 4, 8, 16, 64]),
            setup: rng.range(0, 500) as u32,
            dims: rng.range(1, 3) as u32,
            max: rng.chance(0.3).then(|| rng.log_uniform(256.0, 65535.0) as u64),
        }
    });
    let (cluster, ne16, digital) = if l1.is_some() {
        let cluster = rng.chance(0.6).then(|| ClusterSpec {
            cores: rng.range(1, 16) as u32,
            macs: rng.range(1, 64) as u32,
            call_overhead: rng.range(0, 1000) as u32,
            requant: {
                let v: Vec<String> =
                    all_rq.iter().filter(|_| rng.chance(0.6)).map(|s| s.to_string()).collect();
                if v.is_empty() {
                    vec!["fixed_point".into()]
                } else {
                    v
                }
            },
            hwc: rng.chance(0.7),
            partial_sums: false,
            partial_sum_rate: None,
        });
        let ne16 = rng.chance(0.5).then(|| Ne16Spec {
            spatial_k: rng.pick(&[1, 4, 8, 16, 32, 64]),
            spatial_c: rng.pick(&[1, 8, 16, 32]),
            macs: rng.range(8, 512) as u32,
        });
        let digital = rng.chance(0.5).then(|| DigitalSpec {
            spatial_k: rng.pick(&[1, 4, 16, 32]),
            spatial_ox: rng.pick(&[1, 4, 16]),
            macs: rng.range(16, 1024) as u32,
            weight_mem: rng.log_uniform(512.0, 256.0 * 1024.0) as u64,
        });
        (cluster, ne16, digital)
    } else {
        (None, None, None)
    };
    // Properties added later draw from their own stream, so that every
    // earlier draw (and each seed's target) stays what it was.
    let mut later = Rng::new(seed ^ 0x5eed_c0de);
    let mut cluster = cluster;
    if let Some(c) = &mut cluster {
        c.partial_sums = later.chance(0.5);
    }
    let host_any_layout = later.chance(0.5);
    if let Some(c) = &mut cluster {
        if c.partial_sums && later.chance(0.5) {
            c.partial_sum_rate = Some(later.range(1, 16) as u32);
        }
    }
    TargetRecipe {
        name: format!("rnd{}", seed % 100_000),
        clock_mhz: rng.range(10, 1000) as u32,
        home_size,
        home_reserve,
        host_macs: rng.range(1, 8) as u32,
        host_requant,
        host_any_layout,
        l1,
        cluster,
        ne16,
        digital,
    }
}

impl TargetRecipe {
    /// The `.hwm` text.
    pub fn to_hwm(&self) -> String {
        let mut s = String::new();
        let w = &mut s;
        let _ = writeln!(w, "// Generated by match-tests' random-target generator.\ntarget {} {{", self.name);
        let _ = writeln!(w, "    clock {} MHz", self.clock_mhz);
        let _ = writeln!(
            w,
            "    memory L2 {{\n        size {} B\n        reserve {} B\n    }}",
            self.home_size, self.home_reserve
        );
        if let Some(l1) = &self.l1 {
            let _ =
                writeln!(w, "    memory L1 {{\n        size {} B\n        reserve {} B", l1.size, l1.reserve);
            if l1.double_buffer {
                let _ = writeln!(w, "        double_buffer");
            }
            let _ = writeln!(w, "    }}");
            let _ = writeln!(
                w,
                "    dma L2 <-> L1 {{\n        bandwidth {} B/cycle\n        setup {} cycles\n        dims {}",
                l1.bandwidth, l1.setup, l1.dims
            );
            if let Some(m) = l1.max {
                let _ = writeln!(w, "        max {m} B");
            }
            let _ = writeln!(w, "        start \"dma_start\"\n        wait \"dma_wait\"\n    }}");
        }
        if let Some(d) = &self.digital {
            let _ = writeln!(
                w,
                "    memory WD {{\n        size {} B\n        holds weights\n    }}",
                d.weight_mem
            );
            let _ = writeln!(
                w,
                "    dma L2 -> WD {{\n        bandwidth 4 B/cycle\n        setup 70 cycles\n        dims 1\n        start \"dma_start\"\n        wait \"dma_wait\"\n    }}"
            );
        }
        let _ = writeln!(
            w,
            "    unit cpu {{\n        host\n        cores 1\n        macs {}/cycle\n        compute_in L2\n        inputs i8, u8\n        weights i8, u8\n        outputs i8, u8, i32",
            self.host_macs
        );
        if !self.host_requant.is_empty() {
            let _ = writeln!(w, "        requant {}", self.host_requant.join(", "));
        }
        if self.host_any_layout {
            let _ = writeln!(w, "        activation_layout any");
        }
        let _ = writeln!(w, "    }}");
        if let Some(c) = &self.cluster {
            let _ = writeln!(
                w,
                "    unit cluster {{\n        cores {}\n        macs {}/cycle\n        compute_in L1\n        call_overhead {} cycles",
                c.cores, c.macs, c.call_overhead
            );
            let _ = writeln!(
                w,
                "        scratch im2col = if depthwise then {} * (FY * (IX + PL + PR) + FY) else if FY * FX == 1 then 0 else 2 * {} * FY * FX * C",
                c.cores, c.cores
            );
            let _ = writeln!(w, "        scratch bias = if has_bias then 4 * K else 0");
            let _ = writeln!(
                w,
                "        inputs i8, u8\n        weights i8\n        outputs i8, u8, i32\n        requant {}",
                c.requant.join(", ")
            );
            if c.hwc {
                let _ = writeln!(w, "        activation_layout order(H, W, C)");
            } else {
                let _ = writeln!(w, "        activation_layout order(C, H, W)");
            }
            match (c.partial_sums, c.partial_sum_rate) {
                (true, Some(r)) => {
                    let _ = writeln!(w, "        partial_sums {r}/cycle");
                }
                (true, None) => {
                    let _ = writeln!(w, "        partial_sums");
                }
                _ => {}
            }
            let _ = writeln!(w, "    }}");
        }
        if let Some(n) = &self.ne16 {
            let _ = writeln!(
                w,
                "    unit ne16 {{\n        spatial K {}, C {}\n        macs {}/cycle\n        compute_in L1\n        call_overhead 550 cycles\n        inputs u8\n        weights i8\n        outputs i8, u8, i32\n        requant scale_shift\n        activation_layout order(H, W, C)\n        weight_layout offset(128), pad(C, 16), split(C, 16, Ci), bitplanes(8), order(K, C, B, FY, FX, Ci), pack(8)\n    }}",
                n.spatial_k, n.spatial_c, n.macs
            );
        }
        if let Some(d) = &self.digital {
            let _ = writeln!(
                w,
                "    unit digital {{\n        spatial K {}, OX {}\n        macs {}/cycle\n        compute_in L1\n        weights_in WD\n        inputs i8\n        weights i8\n        outputs i8\n        requant shift\n        activation_layout order(C, H, W), reverse_bytes(4)\n        weight_layout pad(K, 16), split(K, 16, Ko), order(K, C, FY, FX, Ko), reverse_bytes(4), append_bias(16)\n        cycles = ceil(K / {}) * OY * ceil(OX / {}) * (C / groups * FY * FX + 23)\n    }}",
                d.spatial_k, d.spatial_ox, d.macs, d.spatial_k, d.spatial_ox
            );
        }
        let _ = writeln!(
            w,
            "    pattern act = relu | relu6 | clip\n    pattern conv = conv2d >> bias? >> requant >> act?\n    pattern conv_acc = conv2d >> bias?\n    pattern fc_layer = dense >> bias? >> requant >> act?\n    pattern eltwise = add >> act?\n    pattern pool = avgpool | maxpool | globalavgpool"
        );
        if let Some(n) = &self.ne16 {
            let _ = n;
            let _ = writeln!(
                w,
                "    offload conv to ne16 where depthwise and kernel == 3x3 and stride in {{1x1, 2x2}} and pad <= 2 and dilation == 1x1 and in_bits == 8 and w_bits == 8 call \"ne16_depthwise\" weight_layout swap(K, C), offset(128), pad(C, 16), split(C, 16, Ci), bitplanes(8), order(K, C, B, FY, FX, Ci), pack(8)"
            );
            let _ = writeln!(
                w,
                "    offload conv to ne16 where groups == 1 and kernel in {{1x1, 3x3}} and stride in {{1x1, 2x2}} and pad <= 2 and dilation == 1x1 and in_bits == 8 and w_bits == 8 call \"ne16_conv\"\n    offload conv_acc to ne16 where groups == 1 and kernel in {{1x1, 3x3}} and dilation == 1x1 and in_bits == 8 call \"ne16_conv_acc\""
            );
        }
        if self.digital.is_some() {
            let _ = writeln!(
                w,
                "    offload conv to digital where groups == 1 and kernel in {{1x1, 3x3, 5x5, 7x7}} and stride in {{1x1, 2x2}} and 2 * PT == FY - 1 and PB == PT and 2 * PL == FX - 1 and PR == PL and dilation == 1x1 and in_bits == 8 and w_bits == 8 call \"digital_conv\"\n    offload fc_layer to digital where in_bits == 8 and w_bits == 8 call \"digital_dense\" weight_layout pad(K, 16), pad(C, 16), split(K, 16, Ko), split(C, 16, Ci), order(K, C, Ko, Ci, FY, FX), reverse_bytes(4), append_bias(16)\n    offload eltwise to digital where in_bits == 8 and out_bits == 8 call \"digital_add\" cycles = ceil(K / 16) * OY * ceil(OX / 16)"
            );
        }
        if self.cluster.is_some() {
            let _ = writeln!(
                w,
                "    offload conv to cluster where depthwise and dilation == 1x1 and in_bits == 8 and w_bits == 8 call \"cluster_depthwise\"\n    offload conv to cluster where groups == 1 and dilation == 1x1 and in_bits == 8 and w_bits == 8 call \"cluster_conv\"\n    offload conv_acc to cluster where (groups == 1 or depthwise) and dilation == 1x1 call \"cluster_conv_acc\"\n    offload fc_layer to cluster where in_bits == 8 and w_bits == 8 call \"cluster_linear\"\n    offload eltwise to cluster call \"cluster_add\"\n    offload pool to cluster call \"cluster_pool\""
            );
        }
        let _ = writeln!(w, "    offload conv to cpu call \"host_conv2d\"\n    offload fc_layer to cpu call \"host_dense\"\n}}");
        s
    }
}

// ------------------------------------------------- targets derived from gap9/diana

/// A random target derived from a shipped one whose platform folder
/// emulates its units (gap9, diana): the shipped `.hwm` text with some
/// units (and their offload rules) removed and some parameter lines
/// replaced. Its `platform "<base>"` is resolved next to the written file,
/// where the shipped folder is copied.
///
/// The emulation's arenas have the usable sizes of the written `.hwm`
/// (matchc's `match_memories.h`), so memory sizes vary both ways, from a
/// few kB to several times the shipped sizes; the DMA limits are the
/// platform C's, so DMA `dims`/`max` are at most the platform's;
/// bandwidths, setups, call overheads, spatial unrolling, MAC rates,
/// double buffering and which accelerators exist vary freely.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DerivedTarget {
    pub name: String,
    /// The shipped target: `gap9` or `diana`.
    pub base: String,
    /// Accelerators removed (their `unit` block and `offload ... to` rules).
    pub drop_units: Vec<String>,
    /// `(item, key, value)`: in the item whose header starts with `item`
    /// (`memory L1`, `dma L2 <-> L1`, `unit ne16`), the line `key ...`
    /// becomes `key value`, or goes when `value` is `None`.
    pub edits: Vec<(String, String, Option<String>)>,
}

/// A gap9-like or diana-like target (`base`), seeded.
pub fn generate_derived_target(seed: u64, base: &str) -> DerivedTarget {
    let mut rng = Rng::new(seed ^ 0xd15e_a5ed);
    let mut edits: Vec<(String, String, Option<String>)> = Vec::new();
    let mut set = |item: &str, key: &str, value: Option<String>| edits.push((item.into(), key.into(), value));
    let mut drop_units = Vec::new();
    let bw = [1u32, 2, 4, 8, 16, 32];
    match base {
        "gap9" => {
            // Shipped: L2 1536000 B, L1 131072 B (120000 B usable).
            set("memory L2", "size", Some(format!("{} B", rng.log_uniform(48_000.0, 4_000_000.0) as u64)));
            // L1 usable (size - the 11072 B reserve).
            let usable = if rng.chance(0.25) {
                rng.log_uniform(1024.0, 8192.0)
            } else {
                rng.log_uniform(8192.0, 512_000.0)
            } as u64;
            set("memory L1", "size", Some(format!("{} B", usable + 11_072)));
            if rng.chance(0.3) {
                set("memory L1", "double_buffer", None);
            }
            set("dma L2 <-> L1", "bandwidth", Some(format!("{} B/cycle", rng.pick(&bw))));
            set("dma L2 <-> L1", "setup", Some(format!("{} cycles", rng.range(0, 1000))));
            let dims = rng.range(1, 3);
            set("dma L2 <-> L1", "dims", Some(dims.to_string()));
            // Per-dimension overheads only up to `dims` (the validator's rule).
            let ov: Vec<String> = (1..=dims).map(|d| format!("{d}d {} cycles", rng.range(0, 20))).collect();
            set("dma L2 <-> L1", "overhead", Some(ov.join(", ")));
            let max = if rng.chance(0.5) { 65_535 } else { rng.log_uniform(64.0, 65_535.0) as u64 };
            set("dma L2 <-> L1", "max", Some(format!("{max} B")));
            set("unit fc", "macs", Some(format!("{}/cycle", rng.range(1, 8))));
            if rng.chance(0.25) {
                drop_units.push("cluster".to_string());
            } else {
                set("unit cluster", "cores", Some(rng.range(1, 8).to_string()));
                set("unit cluster", "macs", Some(format!("{}/cycle", rng.range(1, 64))));
                set("unit cluster", "call_overhead", Some(format!("{} cycles", rng.range(0, 2000))));
            }
            if rng.chance(0.3) {
                drop_units.push("ne16".to_string());
            } else {
                let (k, c) = (rng.pick(&[8, 16, 32, 64]), rng.pick(&[8, 16, 32]));
                set("unit ne16", "spatial", Some(format!("K {k}, C {c}")));
                set("unit ne16", "macs", Some(format!("{}/cycle", rng.range(16, 512))));
                set("unit ne16", "call_overhead", Some(format!("{} cycles", rng.range(0, 2000))));
            }
        }
        _ => {
            // Shipped: L2 512000 B, L1 256000 B, WD 64000 B, WA 147456 B.
            set("memory L2", "size", Some(format!("{} B", rng.log_uniform(32_000.0, 2_000_000.0) as u64)));
            let l1 = if rng.chance(0.25) {
                rng.log_uniform(1024.0, 8192.0)
            } else {
                rng.log_uniform(8192.0, 768_000.0)
            };
            set("memory L1", "size", Some(format!("{} B", l1 as u64)));
            set("memory WD", "size", Some(format!("{} B", rng.log_uniform(2048.0, 256_000.0) as u64)));
            set("memory WA", "size", Some(format!("{} B", rng.log_uniform(8192.0, 589_824.0) as u64)));
            if rng.chance(0.3) {
                set("memory L1", "double_buffer", None);
            }
            for dma in ["dma L2 <-> L1", "dma L2 -> WD", "dma L2 -> WA"] {
                set(dma, "bandwidth", Some(format!("{} B/cycle", rng.pick(&bw))));
                set(dma, "setup", Some(format!("{} cycles", rng.range(0, 500))));
            }
            set("unit cpu", "macs", Some(format!("{}/cycle", rng.range(1, 4))));
            if rng.chance(0.25) {
                drop_units.push("digital".to_string());
            } else {
                let (k, ox) = (rng.pick(&[4, 8, 16, 32]), rng.pick(&[4, 8, 16]));
                set("unit digital", "spatial", Some(format!("K {k}, OX {ox}")));
                set("unit digital", "macs", Some(format!("{}/cycle", k * ox)));
            }
            if rng.chance(0.3) {
                drop_units.push("analog".to_string());
            }
        }
    }
    let short = if base == "gap9" { "g9" } else { "dn" };
    DerivedTarget { name: format!("{short}rnd{}", seed % 100_000), base: base.to_string(), drop_units, edits }
}

/// Whether trimmed line `t` starts with the word sequence `head`.
fn starts_with_words(t: &str, head: &str) -> bool {
    t.strip_prefix(head).is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '{', '\t']))
}

impl DerivedTarget {
    /// The `.hwm` text: the shipped text with the edits applied. An edit
    /// that finds no line (the shipped file changed) is an error.
    pub fn to_hwm(&self) -> anyhow::Result<String> {
        let src =
            match_targets::source(&self.base).with_context(|| format!("no shipped target {}", self.base))?;
        // Split the target body into items: a new item starts at depth 1
        // with a keyword; it runs to the next one.
        const KEYS: [&str; 10] =
            ["memory", "dma", "unit", "def", "pattern", "offload", "api", "clock", "platform", "target"];
        let mut items: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
        let mut depth = 0i32;
        for line in src.lines() {
            let code = line.split("//").next().unwrap_or("");
            let t = line.trim();
            let first = t.split_whitespace().next().unwrap_or("");
            if depth <= 1 && KEYS.contains(&first) {
                let head = t.split('{').next().unwrap_or("").split("//").next().unwrap_or("").trim();
                items.push((head.to_string(), Vec::new()));
            } else if depth == 1 && t == "}" {
                items.push((String::new(), Vec::new()));
            }
            items.last_mut().expect("an item").1.push(line.to_string());
            depth += code.matches('{').count() as i32 - code.matches('}').count() as i32;
        }
        let mut used = vec![false; self.edits.len()];
        let mut out =
            format!("// Generated by match-tests: targets/{}.hwm with random parameters.\n", self.base);
        for (head, lines) in &items {
            let dropped = self.drop_units.iter().any(|u| {
                starts_with_words(head, &format!("unit {u}"))
                    || (head.starts_with("offload ")
                        && head.split_whitespace().nth(3).is_some_and(|w| w == u.as_str()))
            });
            if dropped {
                continue;
            }
            for line in lines {
                let t = line.trim();
                if starts_with_words(head, "target") && t.starts_with("target ") {
                    let _ = writeln!(out, "target {} {{", self.name);
                    continue;
                }
                let hit = self.edits.iter().position(|(item, key, _)| {
                    starts_with_words(head, item) && starts_with_words(t, key) && !head.is_empty()
                });
                match hit {
                    Some(i) => {
                        used[i] = true;
                        if let Some(v) = &self.edits[i].2 {
                            let _ = writeln!(out, "        {} {v}", self.edits[i].1);
                        }
                    }
                    None => {
                        let _ = writeln!(out, "{line}");
                    }
                }
            }
        }
        for (i, (item, key, _)) in self.edits.iter().enumerate() {
            let item_dropped = self.drop_units.iter().any(|u| item == &format!("unit {u}"));
            ensure!(used[i] || item_dropped, "targets/{}.hwm has no `{key}` in `{item}`", self.base);
        }
        Ok(out)
    }
}
