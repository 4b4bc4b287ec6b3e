//! The QDQ dialect: QuantizeLinear/DequantizeLinear around float operators
//! (onnxruntime `quantize_static(..., QuantFormat.QDQ)`, per-channel
//! weights with `axis`).
//!
//! DequantizeLinear does not emit a node: it records a pending value
//! ([`Val::Deq`]). A float operator whose inputs are pending values and
//! whose output reaches a QuantizeLinear (possibly through Relu/Clip) is
//! rewritten into integer IR, with the arithmetic onnxruntime uses after its
//! QDQ fusion turns the group into QLinearConv / QLinearMatMul / QLinearAdd
//! / QLinearGlobalAveragePool:
//!
//! - Conv, MatMul, Gemm: int32 accumulator of `(x - x_zp) * (w - w_zp)`,
//!   plus the int32 bias as stored (`DQ(bias)` of int32 data, scale
//!   x_scale * w_scale, zero point 0), then MlasRequantizeOutput:
//!   `round_half_even(f32(acc) * scale[c])`, `scale[c] = x_scale * w_scale[c]
//!   / y_scale` computed in f32 left to right, clamped, plus y_zp
//!   ([`conv::output_scales`]).
//! - Relu or Clip between the operator and Q becomes a Clip in the quantized
//!   domain; a y zero point at the bottom of its range (ReLU folded into the
//!   quantization range by quantize_static) also gets a Clip over the whole
//!   range, so targets see the usual `requant >> clip` chain.
//! - Add: [`AddKind::Float`] with both input and the output parameters.
//! - GlobalAveragePool: [`Op::GlobalSumPool`] then Requantize Float with
//!   `x_scale / (y_scale * (H * W) as f32)` (MLAS
//!   CheckQLinearGlobalAveragePoolScaleAndSize).
//! - MaxPool and the layout operators pass pending values through.
//!
//! A QuantizeLinear of a float graph input stays a Quantize node, and a
//! pending value reaching a graph output becomes a Dequantize node.

use super::common::{pair_layout, quantized_bounds};
use super::conv::{self, output_scales};
use super::{nhwc_axis, Ctx, Val, N};
use crate::ir::{AddKind, DType, Data, Op, Quant, Requant, TensorId};
use anyhow::{bail, Context, Result};

pub fn dequantize(ctx: &mut Ctx, n: &N) -> Result<()> {
    let x = n.req_input(0)?;
    let (q, nhwc) = match ctx.val(x)? {
        Val::T { id, nhwc } => (id, nhwc),
        Val::Deq { .. } => bail!("DequantizeLinear of a dequantized value"),
    };
    let dt = ctx.tensor(q).dtype;
    if dt == DType::F32 {
        bail!("DequantizeLinear of a float tensor");
    }
    let rank = ctx.tensor(q).shape.len();
    let (quant, zdt) = ctx.qparams(n, rank, dt)?;
    if zdt != dt {
        bail!("zero point type {zdt} differs from the input type {dt}");
    }
    if quant.is_per_channel() {
        let shape = ctx.onnx_shape(q, nhwc);
        if shape.get(quant.axis) != Some(&quant.scale.len()) {
            bail!("{} scales along axis {} of {shape:?}", quant.scale.len(), quant.axis);
        }
    }
    ctx.vals.insert(n.output(0)?.to_string(), Val::Deq { q, nhwc, quant });
    Ok(())
}

/// Saturating round-half-even quantization of a float constant (MLAS
/// MlasQuantizeLinear order: x / scale, round, + zp, clamp).
fn quantize_data(v: &[f32], shape: &[usize], quant: &Quant, dt: DType) -> Result<Data> {
    let (lo, hi) = dt.int_range().context("integer type")?;
    let inner: usize = shape.iter().skip(quant.axis + 1).product();
    let out: Vec<i64> = v
        .iter()
        .enumerate()
        .map(|(i, &x)| {
            let c = if quant.is_per_channel() { (i / inner.max(1)) % quant.scale.len() } else { 0 };
            let r = (x / quant.scale[c]).round_ties_even();
            let r = if r.is_nan() { 0.0 } else { r as f64 };
            (r + quant.zero_point[c] as f64).clamp(lo as f64, hi as f64) as i64
        })
        .collect();
    Ok(Data::from_i64(dt, &out))
}

pub fn quantize(ctx: &mut Ctx, n: &N) -> Result<()> {
    let x = n.req_input(0)?;
    let out = n.output(0)?;
    let v = ctx.val(x)?;
    let rank = match &v {
        Val::T { id, .. } => ctx.tensor(*id).shape.len(),
        Val::Deq { q, .. } => ctx.tensor(*q).shape.len(),
    };
    let (quant, dt) = ctx.qparams(n, rank, DType::U8)?;
    if matches!(dt, DType::F32 | DType::I64) {
        bail!("QuantizeLinear to {dt} is not supported");
    }
    match v {
        Val::Deq { q, nhwc, quant: qin } => {
            if qin == quant && ctx.tensor(q).dtype == dt {
                ctx.vals.insert(out.to_string(), Val::T { id: q, nhwc });
                return Ok(());
            }
            let (f, nhwc) = ctx.float_or_int(&Val::Deq { q, nhwc, quant: qin }, &format!("{x}:float"))?;
            emit_quantize(ctx, n, f, nhwc, quant, dt, out)
        }
        Val::T { id, nhwc } => {
            let t = ctx.tensor(id).clone();
            if t.dtype != DType::F32 {
                bail!("QuantizeLinear of a {} tensor (expected float)", t.dtype);
            }
            if let (Some(Data::F32(v)), false) = (&t.data, nhwc) {
                let d = quantize_data(v, &t.shape, &quant, dt)?;
                let id = ctx.add_const(out, t.shape.clone(), d);
                ctx.vals.insert(out.to_string(), Val::T { id, nhwc: false });
                return Ok(());
            }
            emit_quantize(ctx, n, id, nhwc, quant, dt, out)
        }
    }
}

fn emit_quantize(
    ctx: &mut Ctx,
    n: &N,
    f: TensorId,
    nhwc: bool,
    mut quant: Quant,
    dt: DType,
    out: &str,
) -> Result<()> {
    let shape = ctx.tensor(f).shape.clone();
    if quant.is_per_channel() {
        let os = ctx.onnx_shape(f, nhwc);
        if os.get(quant.axis) != Some(&quant.scale.len()) {
            bail!("{} scales along axis {} of {os:?}", quant.scale.len(), quant.axis);
        }
        if nhwc {
            quant.axis = nhwc_axis(quant.axis, shape.len());
        }
    }
    let o = ctx.emit1(&n.name, Op::Quantize, vec![f], out, shape, dt);
    ctx.g.tensor_mut(o).quant = Some(quant);
    ctx.vals.insert(out.to_string(), Val::T { id: o, nhwc });
    Ok(())
}

/// A pending (dequantized) input: the quantized tensor and its parameters.
fn deq(ctx: &Ctx, name: &str) -> Result<(TensorId, bool, Quant)> {
    match ctx.val(name)? {
        Val::Deq { q, nhwc, quant } => Ok((q, nhwc, quant)),
        Val::T { .. } => {
            bail!("input `{name}` is not the output of a DequantizeLinear (mixed float and QDQ)")
        }
    }
}

/// Where a fused operator's float output is quantized.
pub struct QOut {
    quant: Quant,
    dt: DType,
    name: String,
    clip: Option<(i64, i64)>,
}

/// Follows `out` through an optional Relu/Clip to its QuantizeLinear, and
/// marks those nodes done.
fn find_q(ctx: &mut Ctx, out: &str) -> Result<QOut> {
    let mut cur = out.to_string();
    let mut bounds: Option<(Option<f64>, Option<f64>)> = None;
    let mut used = vec![];
    loop {
        let Some(ci) = ctx.sole_consumer(&cur) else {
            bail!(
                "the float result `{cur}` is not quantized by a single QuantizeLinear: the compiler takes \
                 quantized integer models (every QDQ operator's output must feed a QuantizeLinear)"
            );
        };
        let c = ctx.node(ci);
        match c.op() {
            "Relu" if bounds.is_none() => bounds = Some((Some(0.0), None)),
            "Clip" if bounds.is_none() => {
                let b = |k: usize, attr: &str| -> Result<Option<f64>> {
                    match c.input(k) {
                        Some(nm) => {
                            Ok(Some(*ctx.const_floats(nm)?.first().context("empty Clip bound")? as f64))
                        }
                        None => Ok(c.attr_f(attr).map(|f| f as f64)),
                    }
                };
                bounds = Some((b(1, "min")?, b(2, "max")?));
            }
            "QuantizeLinear" => {
                let (quant, dt) = ctx.qparams(&c, 1, DType::U8)?;
                if quant.is_per_channel() {
                    bail!("per-channel output quantization is not supported");
                }
                let (qmin, qmax) =
                    dt.int_range().filter(|_| dt != DType::I64).context("QuantizeLinear type")?;
                let zp = quant.zp();
                let clip = match bounds {
                    Some((lo, hi)) => Some(quantized_bounds(lo, hi, quant.scale[0], zp, qmin, qmax)),
                    None if zp == qmin => Some((qmin, qmax)),
                    None => None,
                };
                used.push(ci);
                for u in used {
                    ctx.done[u] = true;
                }
                return Ok(QOut { quant, dt, name: c.output(0)?.to_string(), clip });
            }
            op => bail!("the float result `{cur}` feeds {op} (node `{}`), not a QuantizeLinear", c.name),
        }
        used.push(ci);
        cur = c.output(0)?.to_string();
    }
}

/// Emits Requantize (+ Clip) for a fused operator and binds the Q output.
fn finish(ctx: &mut Ctx, n: &N, acc: TensorId, scale: Vec<f32>, y: QOut, nhwc: bool) -> Result<()> {
    let rq = Requant::Float { scale };
    let zp = y.quant.zp();
    let t = match y.clip {
        Some((lo, hi)) => {
            let r = conv::requantize(ctx, n, acc, rq, zp, y.dt, &format!("{}:requant", y.name));
            conv::clip(ctx, n, r, lo, hi, &y.name)
        }
        None => conv::requantize(ctx, n, acc, rq, zp, y.dt, &y.name),
    };
    ctx.g.tensor_mut(t).quant = Some(y.quant);
    ctx.vals.insert(y.name, Val::T { id: t, nhwc });
    Ok(())
}

/// Bias of a QDQ operator: `DQ(int32 data)` (its scale is x_scale *
/// w_scale by construction; onnxruntime's QLinearConv takes the int32 data).
fn bias(ctx: &Ctx, name: &str) -> Result<Vec<i64>> {
    let (q, _, quant) = deq(ctx, name)?;
    if quant.zero_point.iter().any(|&z| z != 0) {
        bail!("bias `{name}` has a non-zero zero point");
    }
    let t = ctx.tensor(q);
    match &t.data {
        Some(d @ Data::I32(_)) => Ok(d.to_i64()),
        _ => bail!("bias `{name}` must be a constant int32 tensor"),
    }
}

pub fn conv(ctx: &mut Ctx, n: &N) -> Result<()> {
    let (x, xn, xq) = deq(ctx, n.req_input(0)?)?;
    let (w, _, wq) = deq(ctx, n.req_input(1)?)?;
    if xq.is_per_channel() {
        bail!("per-channel activation quantization is not supported");
    }
    let wt = ctx.tensor(w).clone();
    let wd = wt.data.clone().context("Conv weights must be constant")?;
    if wq.is_per_channel() && wq.axis != 0 {
        bail!("per-channel weights must be quantized along axis 0");
    }
    let y = find_q(ctx, n.output(0)?)?;
    let x = ctx.nhwc_of(x, xn, &n.name)?;
    let (acc, k) =
        conv::conv2d(ctx, n, x, &wt.shape, wd, xq.zp(), wq.zero_point.clone(), &format!("{}:acc", y.name))?;
    let acc = match n.input(2) {
        Some(b) => {
            let b = bias(ctx, b)?;
            conv::bias_add(ctx, n, acc, b, k, &format!("{}:bias", y.name))?
        }
        None => acc,
    };
    let scale =
        output_scales(xq.scale[0], &conv::broadcast(wq.scale.clone(), k, "weight scale")?, y.quant.scale[0]);
    finish(ctx, n, acc, scale, y, true)
}

pub fn matmul(ctx: &mut Ctx, n: &N) -> Result<()> {
    let (a, an, aq) = deq(ctx, n.req_input(0)?)?;
    let (b, bn, bq) = deq(ctx, n.req_input(1)?)?;
    if aq.is_per_channel() {
        bail!("per-channel activation quantization is not supported");
    }
    let gemm = n.op() == "Gemm";
    let trans_b = gemm && n.attr_i("transB", 0) != 0;
    if gemm
        && (n.attr_i("transA", 0) != 0
            || n.attr_f("alpha").unwrap_or(1.0) != 1.0
            || n.attr_f("beta").unwrap_or(1.0) != 1.0)
    {
        bail!("Gemm with transA, alpha or beta other than 1 is not supported");
    }
    let y = find_q(ctx, n.output(0)?)?;
    let a = ctx.onnx_of(a, an, &n.name);
    let bt = ctx.tensor(b).clone();
    let acc_name = format!("{}:acc", y.name);
    let (acc, k) = match &bt.data {
        Some(d) if bt.shape.len() == 2 => {
            let col_axis = if trans_b { 0 } else { 1 };
            if bq.is_per_channel() && bq.axis != col_axis {
                bail!("per-channel weights must be quantized along the output axis {col_axis}");
            }
            conv::dense(ctx, n, a, &bt.shape, d.clone(), trans_b, aq.zp(), bq.zero_point.clone(), &acc_name)?
        }
        _ => {
            if trans_b || bq.is_per_channel() && bq.axis + 1 != bt.shape.len() {
                bail!("MatMul with transposed or per-row quantized B needs constant 2-D B");
            }
            let b = ctx.onnx_of(b, bn, &n.name);
            conv::matmul(ctx, n, a, b, aq.zp(), bq.zero_point.clone(), &acc_name)?
        }
    };
    let acc = match n.input(2) {
        Some(c) => {
            let b = bias(ctx, c)?;
            conv::bias_add(ctx, n, acc, b, k, &format!("{}:bias", y.name))?
        }
        None => acc,
    };
    let scale =
        output_scales(aq.scale[0], &conv::broadcast(bq.scale.clone(), k, "weight scale")?, y.quant.scale[0]);
    finish(ctx, n, acc, scale, y, false)
}

/// `DQ(a) + DQ(b) -> Q(y)`: AddKind::Float.
pub fn add(ctx: &mut Ctx, n: &N) -> Result<()> {
    let (a, an, aq) = deq(ctx, n.req_input(0)?)?;
    let (b, bn, bq) = deq(ctx, n.req_input(1)?)?;
    if aq.is_per_channel() || bq.is_per_channel() {
        bail!("per-channel quantized Add is not supported");
    }
    let y = find_q(ctx, n.output(0)?)?;
    float_add(ctx, n, (a, an, aq), (b, bn, bq), y)
}

fn float_add(
    ctx: &mut Ctx,
    n: &N,
    a: (TensorId, bool, Quant),
    b: (TensorId, bool, Quant),
    y: QOut,
) -> Result<()> {
    let (ta, tb, nhwc) = pair_layout(ctx, n, (a.0, a.1), (b.0, b.1))?;
    let (ta, tb, aq, bq) = if ctx.tensor(ta).is_const() && !ctx.tensor(tb).is_const() {
        (tb, ta, b.2, a.2)
    } else {
        (ta, tb, a.2, b.2)
    };
    let shape = super::common::check_add_shapes(ctx, ta, tb)?;
    let kind = AddKind::Float {
        a_scale: aq.scale[0],
        a_zp: aq.zp(),
        b_scale: bq.scale[0],
        b_zp: bq.zp(),
        y_scale: y.quant.scale[0],
        y_zp: y.quant.zp(),
    };
    let t = match y.clip {
        Some((lo, hi)) if (lo, hi) != y.dt.int_range().unwrap_or((lo, hi)) => {
            let s =
                ctx.emit1(&n.name, Op::Add { kind }, vec![ta, tb], &format!("{}:sum", y.name), shape, y.dt);
            conv::clip(ctx, n, s, lo, hi, &y.name)
        }
        _ => ctx.emit1(&n.name, Op::Add { kind }, vec![ta, tb], &y.name, shape, y.dt),
    };
    ctx.g.tensor_mut(t).quant = Some(y.quant);
    ctx.vals.insert(y.name, Val::T { id: t, nhwc });
    Ok(())
}

/// Used by QLinearAdd.
pub fn qlinear_add(
    ctx: &mut Ctx,
    n: &N,
    a: (TensorId, bool, Quant),
    b: (TensorId, bool, Quant),
    yq: Quant,
    dt: DType,
) -> Result<()> {
    let y = QOut { quant: yq, dt, name: n.output(0)?.to_string(), clip: None };
    float_add(ctx, n, a, b, y)
}

/// GlobalSumPool + Requantize Float (onnxruntime QLinearGlobalAveragePool).
pub fn global_avg(ctx: &mut Ctx, n: &N, x: TensorId, xq: &Quant, y: QOut) -> Result<()> {
    let s = ctx.tensor(x).shape.clone();
    let hw = s[1].saturating_mul(s[2]);
    if hw == 0 || hw >= 1 << 24 {
        bail!("GlobalAveragePool over {hw} elements");
    }
    let acc = ctx.emit1(
        &n.name,
        Op::GlobalSumPool { x_zp: xq.zp() },
        vec![x],
        &format!("{}:sum", y.name),
        vec![s[0], 1, 1, s[3]],
        DType::I32,
    );
    let scale = xq.scale[0] / (y.quant.scale[0] * hw as f32);
    finish(ctx, n, acc, vec![scale], y, true)
}

/// GlobalAveragePool (GlobalSumPool + Requantize) or AveragePool
/// (QLinearAvgPool) on a pending QDQ value.
pub fn avgpool(ctx: &mut Ctx, n: &N) -> Result<()> {
    let xname = n.req_input(0)?;
    let (x, xn, xq) = match ctx.val(xname)? {
        Val::Deq { q, nhwc, quant } => (q, nhwc, quant),
        Val::T { .. } => bail!("{} is supported on dequantized (QDQ) inputs only", n.op()),
    };
    if xq.is_per_channel() {
        bail!("per-channel activation quantization is not supported");
    }
    let x = ctx.nhwc_of(x, xn, &n.name)?;
    let y = find_q(ctx, n.output(0)?)?;
    if n.op() == "AveragePool" {
        return qlinear_avgpool(ctx, n, x, &xq, y);
    }
    global_avg(ctx, n, x, &xq, y)
}

/// QLinearAvgPool (+ Clip when the Q follows a Relu/Clip).
pub fn qlinear_avgpool(ctx: &mut Ctx, n: &N, x: TensorId, xq: &Quant, y: QOut) -> Result<()> {
    let s = ctx.tensor(x).shape.clone();
    let w = conv::window(n, [s[1], s[2]], None, true)?;
    if w.dilation != [1, 1] {
        bail!("dilated AveragePool is not supported");
    }
    let op = Op::QLinearAvgPool {
        kernel: w.kernel,
        stride: w.stride,
        pad: w.pad,
        count_include_pad: n.attr_i("count_include_pad", 0) != 0,
        x_scale: xq.scale[0],
        x_zp: xq.zp(),
        y_scale: y.quant.scale[0],
        y_zp: y.quant.zp(),
    };
    let shape = vec![s[0], w.out[0], w.out[1], s[3]];
    let t = match y.clip {
        Some((lo, hi)) if Some((lo, hi)) != y.dt.int_range() => {
            let p = ctx.emit1(&n.name, op, vec![x], &format!("{}:pool", y.name), shape, y.dt);
            conv::clip(ctx, n, p, lo, hi, &y.name)
        }
        _ => ctx.emit1(&n.name, op, vec![x], &y.name, shape, y.dt),
    };
    ctx.g.tensor_mut(t).quant = Some(y.quant);
    ctx.vals.insert(y.name, Val::T { id: t, nhwc: true });
    Ok(())
}

/// The output of a QOperator node (no Relu/Clip look-ahead).
pub fn qout(name: &str, quant: Quant, dt: DType) -> Result<QOut> {
    Ok(QOut { quant, dt, name: name.to_string(), clip: None })
}

/// Requantize for a QOperator node; a y zero point at the bottom of its
/// range adds the full-range Clip, as for QDQ.
pub fn finish_pub(
    ctx: &mut Ctx,
    n: &N,
    acc: TensorId,
    scale: Vec<f32>,
    mut y: QOut,
    nhwc: bool,
) -> Result<()> {
    let (qmin, qmax) = y.dt.int_range().context("output type")?;
    if y.quant.zp() == qmin {
        y.clip = Some((qmin, qmax));
    }
    finish(ctx, n, acc, scale, y, nhwc)
}
