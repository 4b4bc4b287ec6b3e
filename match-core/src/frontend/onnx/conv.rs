//! Builders shared by the dialects: Conv2d (OIHW -> OHWI weights, pads and
//! auto_pad), Dense / MatMul, BiasAdd, Requantize, Clip, pooling windows.

use super::{tensor, Ctx, N};
use crate::ir::{DType, Data, Op, Requant, TensorId};
use anyhow::{bail, Context, Result};

/// Window geometry of a 2-D convolution or pool.
#[derive(Clone, Debug)]
pub struct Window {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    /// (top, left, bottom, right)
    pub pad: [usize; 4],
    pub out: [usize; 2],
}

fn pair(n: &N, name: &str, default: usize) -> Result<[usize; 2]> {
    match n.attr_ints(name) {
        None => Ok([default; 2]),
        Some([a, b]) if *a >= 1 && *b >= 1 && *a <= 1 << 20 && *b <= 1 << 20 => {
            Ok([*a as usize, *b as usize])
        }
        Some(v) => bail!("attribute {name} = {v:?}: expected two positive values (2-D only)"),
    }
}

/// Reads kernel_shape (or `kernel` from the weights), strides, dilations,
/// pads / auto_pad and ceil_mode for input spatial size `hw`.
pub fn window(n: &N, hw: [usize; 2], kernel: Option<[usize; 2]>, allow_ceil: bool) -> Result<Window> {
    let kernel = match (n.attr_ints("kernel_shape"), kernel) {
        (Some(_), _) => pair(n, "kernel_shape", 1)?,
        (None, Some(k)) => k,
        (None, None) => bail!("missing attribute kernel_shape"),
    };
    if let (Some(k), true) = (n.attr_ints("kernel_shape"), kernel.contains(&0)) {
        bail!("kernel_shape {k:?}");
    }
    let stride = pair(n, "strides", 1)?;
    let dilation = pair(n, "dilations", 1)?;
    let eff = [(kernel[0] - 1) * dilation[0] + 1, (kernel[1] - 1) * dilation[1] + 1];
    let auto = n.attr_s("auto_pad").unwrap_or_default();
    let mut pad = [0usize; 4];
    match auto.as_str() {
        "" | "NOTSET" => {
            if let Some(p) = n.attr_ints("pads") {
                if p.len() != 4 || p.iter().any(|&v| !(0..=1 << 20).contains(&v)) {
                    bail!("attribute pads = {p:?}: expected four non-negative values");
                }
                // ONNX: (x1_begin, x2_begin, x1_end, x2_end) = (top, left, bottom, right).
                pad = [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize];
            }
        }
        "VALID" => {}
        "SAME_UPPER" | "SAME_LOWER" => {
            for d in 0..2 {
                let out = hw[d].div_ceil(stride[d]);
                let total = ((out.max(1) - 1) * stride[d] + eff[d]).saturating_sub(hw[d]);
                let (b, e) = if auto == "SAME_UPPER" {
                    (total / 2, total - total / 2)
                } else {
                    (total - total / 2, total / 2)
                };
                pad[d] = b;
                pad[d + 2] = e;
            }
        }
        other => bail!("auto_pad {other:?} is not supported"),
    }
    let ceil = n.attr_i("ceil_mode", 0) != 0;
    if ceil && !allow_ceil {
        bail!("ceil_mode is not supported here");
    }
    let mut out = [0usize; 2];
    for d in 0..2 {
        let span = hw[d] + pad[d] + pad[d + 2];
        if span < eff[d] {
            bail!("the window ({} after dilation) is larger than the padded input ({span})", eff[d]);
        }
        let mut o = (span - eff[d]) / stride[d] + 1;
        if ceil && !(span - eff[d]).is_multiple_of(stride[d]) {
            // ceil_mode: one more window, unless it would start in the end padding.
            if o * stride[d] < hw[d] + pad[d] {
                o += 1;
                let need = (o - 1) * stride[d] + eff[d];
                pad[d + 2] += need - span;
            }
        }
        out[d] = o;
    }
    Ok(Window { kernel, stride, dilation, pad, out })
}

/// Emits Conv2d: `x` NHWC (8-bit), `w` OIHW constant contents. Returns the
/// int32 NHWC accumulator and the number of output channels.
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    ctx: &mut Ctx,
    n: &N,
    x: TensorId,
    w_shape: &[usize],
    w: Data,
    x_zp: i64,
    w_zp: Vec<i64>,
    out: &str,
) -> Result<(TensorId, usize)> {
    let xs = ctx.tensor(x).shape.clone();
    if w_shape.len() != 4 {
        bail!("weights of shape {w_shape:?}: only 2-D convolutions (4-D weights) are supported");
    }
    let (k, cg, fy, fx) = (w_shape[0], w_shape[1], w_shape[2], w_shape[3]);
    let groups = n.attr_i("group", 1);
    if groups < 1 || cg == 0 || k == 0 {
        bail!("invalid group {groups} or weights {w_shape:?}");
    }
    let groups = groups as usize;
    if xs[3] != cg.saturating_mul(groups) || k % groups != 0 {
        bail!(
            "input has {} channels but weights {w_shape:?} with group {groups} need {}",
            xs[3],
            cg * groups
        );
    }
    if w_zp.len() != 1 && w_zp.len() != k {
        bail!("{} weight zero points for {k} output channels", w_zp.len());
    }
    let win = window(n, [xs[1], xs[2]], Some([fy, fx]), false)?;
    if win.kernel != [fy, fx] {
        bail!("kernel_shape {:?} differs from the weights {w_shape:?}", win.kernel);
    }
    if w.dtype() == DType::F32 {
        bail!("float weights: the compiler takes quantized integer models");
    }
    let w_ohwi = tensor::transpose(&w, w_shape, &[0, 2, 3, 1]);
    let wid = ctx.add_const(&format!("{out}:w"), vec![k, fy, fx, cg], w_ohwi);
    let op = Op::Conv2d { stride: win.stride, dilation: win.dilation, pad: win.pad, groups, x_zp, w_zp };
    let shape = vec![xs[0], win.out[0], win.out[1], k];
    Ok((ctx.emit1(&n.name, op, vec![x, wid], out, shape, DType::I32), k))
}

/// Emits Dense for `a` (.., C) times constant `b` (C, N) (or (N, C) when
/// `trans_b`). Returns the int32 accumulator and N.
#[allow(clippy::too_many_arguments)]
pub fn dense(
    ctx: &mut Ctx,
    n: &N,
    a: TensorId,
    b_shape: &[usize],
    b: Data,
    trans_b: bool,
    a_zp: i64,
    b_zp: Vec<i64>,
    out: &str,
) -> Result<(TensorId, usize)> {
    let xs = ctx.tensor(a).shape.clone();
    if b_shape.len() != 2 {
        bail!("weights of shape {b_shape:?}: expected 2-D");
    }
    let (c, k) = if trans_b { (b_shape[1], b_shape[0]) } else { (b_shape[0], b_shape[1]) };
    if xs.is_empty() || *xs.last().unwrap_or(&0) != c {
        bail!("input {xs:?} does not match weights {b_shape:?}");
    }
    if b_zp.len() != 1 && b_zp.len() != k {
        bail!("{} weight zero points for {k} columns", b_zp.len());
    }
    if b.dtype() == DType::F32 {
        bail!("float weights: the compiler takes quantized integer models");
    }
    let w = if trans_b { b } else { tensor::transpose(&b, b_shape, &[1, 0]) };
    let wid = ctx.add_const(&format!("{out}:w"), vec![k, c], w);
    let mut shape = xs.clone();
    *shape.last_mut().expect("rank >= 1") = k;
    Ok((ctx.emit1(&n.name, Op::Dense { x_zp: a_zp, w_zp: b_zp }, vec![a, wid], out, shape, DType::I32), k))
}

/// Emits MatMul (batched, both operands tensors). Returns the accumulator
/// and N.
pub fn matmul(
    ctx: &mut Ctx,
    n: &N,
    a: TensorId,
    b: TensorId,
    a_zp: i64,
    b_zp: Vec<i64>,
    out: &str,
) -> Result<(TensorId, usize)> {
    let sa = ctx.tensor(a).shape.clone();
    let sb = ctx.tensor(b).shape.clone();
    if sa.len() < 2 || sb.len() < 2 {
        bail!("MatMul of {sa:?} and {sb:?}: operands of rank 1 are not supported");
    }
    let (m, ka) = (sa[sa.len() - 2], sa[sa.len() - 1]);
    let (kb, nn) = (sb[sb.len() - 2], sb[sb.len() - 1]);
    if ka != kb {
        bail!("MatMul of {sa:?} and {sb:?}: inner dimensions differ");
    }
    if b_zp.len() != 1 && b_zp.len() != nn {
        bail!("{} zero points for {nn} columns", b_zp.len());
    }
    let ba = &sa[..sa.len() - 2];
    let bb = &sb[..sb.len() - 2];
    let rank = ba.len().max(bb.len());
    let mut batch = Vec::with_capacity(rank + 2);
    for i in 0..rank {
        let da = if i + ba.len() >= rank { ba[i + ba.len() - rank] } else { 1 };
        let db = if i + bb.len() >= rank { bb[i + bb.len() - rank] } else { 1 };
        if da != db && da != 1 && db != 1 {
            bail!("MatMul of {sa:?} and {sb:?}: batch dimensions do not broadcast");
        }
        batch.push(da.max(db));
    }
    batch.push(m);
    batch.push(nn);
    if tensor::count(&batch) > tensor::MAX_ELEMENTS {
        bail!("MatMul output {batch:?} is too large");
    }
    Ok((ctx.emit1(&n.name, Op::MatMul { a_zp, b_zp }, vec![a, b], out, batch, DType::I32), nn))
}

/// Emits BiasAdd of int32 `bias` (one per channel, or one broadcast).
pub fn bias_add(
    ctx: &mut Ctx,
    n: &N,
    acc: TensorId,
    bias: Vec<i64>,
    k: usize,
    out: &str,
) -> Result<TensorId> {
    let bias = broadcast(bias, k, "bias")?;
    let vals: Vec<i32> = bias
        .iter()
        .map(|&b| i32::try_from(b).ok().context("bias value out of int32 range"))
        .collect::<Result<_>>()?;
    let bid = ctx.add_const(&format!("{out}:bias"), vec![k], Data::I32(vals));
    let shape = ctx.tensor(acc).shape.clone();
    Ok(ctx.emit1(&n.name, Op::BiasAdd, vec![acc, bid], out, shape, DType::I32))
}

/// Emits Requantize to `dt` with `out_zp`.
pub fn requantize(
    ctx: &mut Ctx,
    n: &N,
    acc: TensorId,
    requant: Requant,
    out_zp: i64,
    dt: DType,
    out: &str,
) -> TensorId {
    let shape = ctx.tensor(acc).shape.clone();
    ctx.emit1(&n.name, Op::Requantize { requant, out_zp }, vec![acc], out, shape, dt)
}

/// Emits Clip with the same type as its input.
pub fn clip(ctx: &mut Ctx, n: &N, x: TensorId, min: i64, max: i64, out: &str) -> TensorId {
    let (shape, dt) = (ctx.tensor(x).shape.clone(), ctx.tensor(x).dtype);
    ctx.emit1(&n.name, Op::Clip { min, max }, vec![x], out, shape, dt)
}

/// Emits Cast to `dt`.
pub fn cast(ctx: &mut Ctx, n: &N, x: TensorId, dt: DType, out: &str) -> TensorId {
    let shape = ctx.tensor(x).shape.clone();
    ctx.emit1(&n.name, Op::Cast, vec![x], out, shape, dt)
}

/// One value per channel from one or `k` values.
pub fn broadcast<T: Copy>(v: Vec<T>, k: usize, what: &str) -> Result<Vec<T>> {
    match v.len() {
        1 => Ok(vec![v[0]; k]),
        l if l == k => Ok(v),
        l => bail!("{l} {what} values for {k} channels"),
    }
}

/// onnxruntime's requantization scale: `x_scale * w_scale[c] / y_scale`,
/// evaluated in f32 left to right (qlinearconv.cc `ComputeOutputScale`,
/// QLinearMatMul likewise), then applied by MlasRequantizeOutput as
/// `round_half_even(f32(acc + bias) * scale)` clamped to the output range
/// (clamping before rounding equals rounding then saturating, the bounds
/// being integers), plus the zero point.
pub fn output_scales(x_scale: f32, w_scale: &[f32], y_scale: f32) -> Vec<f32> {
    w_scale.iter().map(|&ws| x_scale * ws / y_scale).collect()
}
