//! Textual IR dump for snapshot tests and `--explain`-style debugging: one
//! line per graph input, per constant a node reads, per node (topological
//! order) and per graph output. Constants are summarized (type, shape,
//! quantization, a hash of the bytes and the first values), never dumped in
//! full, so the text stays short and stable.
//!
//! ```text
//! input  %0 "x": i8[1,8,8,3] q=0.5@-1
//! const  %1 "w": i8[4,3,3,3] fnv=1f2e3d4c5b6a7988 [1, -2, 3, 0, 5, 6, 7, 8, ...]
//! %2 "acc": i32[1,8,8,4] = conv2d(%0: i8[1,8,8,3], %1: const i8[4,3,3,3]) stride=1x1 dil=1x1 pad=1,1,1,1 groups=1 x_zp=-1 w_zp=0   // #0 "conv"
//! output %5 "y": i8[1,8,8,4]
//! ```

use crate::ir::{AddKind, Data, Graph, Op, Quant, Requant, Tensor, TensorId};
use std::collections::BTreeSet;
use std::fmt::{Debug, Write};

/// How many values of a vector or constant are shown.
const SHOWN: usize = 8;

pub fn dump(graph: &Graph) -> String {
    let mut s = String::new();
    let order = graph.topo_order().unwrap_or_else(|| graph.nodes.node_indices().collect());
    for &t in &graph.inputs {
        let _ = writeln!(s, "input  {}", decl(graph, t));
    }
    let consts: BTreeSet<TensorId> = order
        .iter()
        .flat_map(|&n| graph.nodes[n].inputs.iter().copied())
        .chain(graph.outputs.iter().copied())
        .filter(|&t| graph.tensor(t).is_const())
        .collect();
    for &t in &consts {
        let data = graph.tensor(t).data.as_ref().expect("constant");
        let _ =
            writeln!(s, "const  {} fnv={:016x} {}", decl(graph, t), fnv1a(&data.to_le_bytes()), values(data));
    }
    for &n in &order {
        let node = &graph.nodes[n];
        let outs: Vec<String> = node.outputs.iter().map(|&t| decl(graph, t)).collect();
        let args: Vec<String> = node
            .inputs
            .iter()
            .map(|&t| {
                let x = graph.tensor(t);
                let c = if x.is_const() { "const " } else { "" };
                format!("%{}: {c}{}", t.0, ty(x))
            })
            .collect();
        let attrs = attrs(&node.op);
        let sep = if attrs.is_empty() { "" } else { " " };
        let _ = writeln!(
            s,
            "{} = {}({}){sep}{attrs}   // #{} {:?}",
            outs.join(", "),
            node.op.pattern_name(),
            args.join(", "),
            n.index(),
            node.name
        );
    }
    for &t in &graph.outputs {
        let _ = writeln!(s, "output {}", decl(graph, t));
    }
    s
}

/// `%id "name": i8[1,2,3] q=...`
fn decl(graph: &Graph, t: TensorId) -> String {
    let x = graph.tensor(t);
    let q = x.quant.as_ref().map(|q| format!(" q={}", quant(q))).unwrap_or_default();
    format!("%{} {:?}: {}{q}", t.0, x.name, ty(x))
}

fn ty(t: &Tensor) -> String {
    let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
    format!("{}[{}]", t.dtype, dims.join(","))
}

fn quant(q: &Quant) -> String {
    let zp =
        if q.zero_point.iter().all(|&z| z == q.zp()) { q.zp().to_string() } else { short(&q.zero_point) };
    if q.is_per_channel() {
        format!("{}@{zp} axis={}", short(&q.scale), q.axis)
    } else {
        format!("{:?}@{zp}", q.scale.first().copied().unwrap_or(0.0))
    }
}

/// `[a, b, c]`, or the first values and the count.
fn short<T: Debug>(v: &[T]) -> String {
    if v.len() == 1 {
        return format!("{:?}", v[0]);
    }
    let shown: Vec<String> = v.iter().take(SHOWN).map(|x| format!("{x:?}")).collect();
    if v.len() > SHOWN {
        format!("[{}, ... ({})]", shown.join(", "), v.len())
    } else {
        format!("[{}]", shown.join(", "))
    }
}

fn values(d: &Data) -> String {
    match d {
        Data::I8(v) => short_all(v),
        Data::U8(v) => short_all(v),
        Data::I16(v) => short_all(v),
        Data::I32(v) => short_all(v),
        Data::I64(v) => short_all(v),
        Data::F32(v) => short_all(v),
    }
}

/// Like [`short`], but a single value is still bracketed.
fn short_all<T: Debug>(v: &[T]) -> String {
    if v.len() == 1 {
        format!("[{:?}]", v[0])
    } else {
        short(v)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

fn attrs(op: &Op) -> String {
    let hw = |v: [usize; 2]| format!("{}x{}", v[0], v[1]);
    let pad = |p: [usize; 4]| format!("{},{},{},{}", p[0], p[1], p[2], p[3]);
    match op {
        Op::Conv2d { stride, dilation, pad: p, groups, x_zp, w_zp } => format!(
            "stride={} dil={} pad={} groups={groups} x_zp={x_zp} w_zp={}",
            hw(*stride),
            hw(*dilation),
            pad(*p),
            zps(w_zp)
        ),
        Op::Dense { x_zp, w_zp } => format!("x_zp={x_zp} w_zp={}", zps(w_zp)),
        Op::BiasAdd | Op::GlobalAvgPool | Op::Reshape | Op::Quantize | Op::Dequantize | Op::Cast => String::new(),
        Op::Requantize { requant, out_zp } => match requant {
            Requant::FixedPoint { multiplier, shift } => {
                format!("fixed_point multiplier={} shift={} out_zp={out_zp}", short(multiplier), short(shift))
            }
            Requant::ScaleShift { scale, bias, shift } => {
                format!("scale_shift scale={} bias={} shift={shift} out_zp={out_zp}", short(scale), short(bias))
            }
            Requant::Float { scale } => format!("float scale={} out_zp={out_zp}", short(scale)),
            Requant::Adc { gain, bits, k, l, shift } => format!(
                "adc gain={gain} bits={bits} k={} l={} shift={shift} out_zp={out_zp}",
                short(k),
                short(l)
            ),
        },
        Op::Clip { min, max } => format!("min={min} max={max}"),
        Op::Add { kind } => match kind {
            AddKind::Integer => "integer".to_string(),
            AddKind::Wrapping => "wrapping".to_string(),
            AddKind::TfLite(p) => format!(
                "tflite left_shift={} in_zp={:?} in_multiplier={:?} in_shift={:?} out_multiplier={} out_shift={} out_zp={}",
                p.left_shift, p.in_zp, p.in_multiplier, p.in_shift, p.out_multiplier, p.out_shift, p.out_zp
            ),
            AddKind::Float { a_scale, a_zp, b_scale, b_zp, y_scale, y_zp } => {
                format!("float a={a_scale:?}@{a_zp} b={b_scale:?}@{b_zp} y={y_scale:?}@{y_zp}")
            }
        },
        Op::AvgPool { kernel, stride, pad: p, count_include_pad } => format!(
            "kernel={} stride={} pad={}{}",
            hw(*kernel),
            hw(*stride),
            pad(*p),
            if *count_include_pad { " count_include_pad" } else { "" }
        ),
        Op::MaxPool { kernel, stride, pad: p } => {
            format!("kernel={} stride={} pad={}", hw(*kernel), hw(*stride), pad(*p))
        }
        Op::Pad { pads, value } => {
            let p: Vec<String> = pads.iter().map(|[a, b]| format!("{a},{b}")).collect();
            format!("pads=[{}] value={value}", p.join(" "))
        }
        Op::Transpose { perm } => format!("perm={perm:?}"),
        Op::Concat { axis } => format!("axis={axis}"),
        Op::Softmax { beta, input_scale, input_zp } => {
            format!("beta={beta:?} input_scale={input_scale:?} input_zp={input_zp}")
        }
        Op::MatMul { a_zp, b_zp } => format!("a_zp={a_zp} b_zp={}", zps(b_zp)),
        Op::GlobalSumPool { x_zp } => format!("x_zp={x_zp}"),
        Op::QLinearAvgPool { kernel, stride, pad: p, count_include_pad, x_scale, x_zp, y_scale, y_zp } => format!(
            "kernel={} stride={} pad={}{} x={x_scale:?}@{x_zp} y={y_scale:?}@{y_zp}",
            hw(*kernel),
            hw(*stride),
            pad(*p),
            if *count_include_pad { " count_include_pad" } else { "" }
        ),
        #[allow(unreachable_patterns)]
        other => format!("{other:?}"),
    }
}

/// Zero points: one value when they are all equal.
fn zps(v: &[i64]) -> String {
    match v.first() {
        None => "0".to_string(),
        Some(&z) if v.iter().all(|&x| x == z) => z.to_string(),
        _ => short(v),
    }
}
