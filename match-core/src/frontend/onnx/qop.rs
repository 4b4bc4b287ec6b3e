//! The QOperator dialect: QLinearConv, QLinearMatMul, ConvInteger,
//! MatMulInteger, and the com.microsoft QLinearAdd, QGemm and
//! QLinearGlobalAveragePool. Scales and zero points must be constants
//! (initializers, or folded node-test inputs).
//!
//! onnxruntime arithmetic reproduced (see [`super::conv::output_scales`]):
//! QLinearConv and QLinearMatMul compute the int32 accumulator of
//! `(x - x_zp) * (w - w_zp)` (plus the int32 bias), then MlasRequantizeOutput
//! with `scale = x_scale * w_scale[c] / y_scale` (f32, left to right):
//! `round_half_even(f32(acc) * scale)` clamped to the output range, plus
//! y_zp. ConvInteger and MatMulInteger output the raw int32 accumulator.

use super::conv::{self, output_scales};
use super::qdq;
use super::{Ctx, Val, N};
use crate::ir::{DType, Quant};
use anyhow::{bail, Context, Result};

/// Per-tensor or per-channel (scale, zero point) from inputs `s` and `z`.
fn params(ctx: &Ctx, n: &N, s: usize, z: usize) -> Result<(Vec<f32>, Vec<i64>, Option<DType>)> {
    let scale = ctx.const_floats(n.req_input(s)?)?;
    let (zp, dt) = match n.input(z) {
        Some(name) => {
            let (_, d) = ctx.const_of(name)?;
            (d.to_i64(), Some(d.dtype()))
        }
        None => (vec![0; scale.len()], None),
    };
    if scale.is_empty() || scale.len() != zp.len() && zp.len() != 1 {
        bail!("scale and zero point of inputs {s}, {z} do not match");
    }
    if scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        bail!("scales must be finite and positive");
    }
    Ok((scale, zp, dt))
}

fn scalar_zp(zp: &[i64], what: &str) -> Result<i64> {
    match zp {
        [z] => Ok(*z),
        _ if zp.iter().all(|&z| z == zp[0]) && !zp.is_empty() => Ok(zp[0]),
        _ => bail!("{what} zero point must be per tensor"),
    }
}

fn zps(ctx: &Ctx, n: &N, k: usize) -> Result<Vec<i64>> {
    match n.input(k) {
        Some(z) => ctx.const_ints(z),
        None => Ok(vec![0]),
    }
}

pub fn qlinear_conv(ctx: &mut Ctx, n: &N) -> Result<()> {
    let (x, xn) = ctx.int_act(n.req_input(0)?)?;
    let (xs, xz, _) = params(ctx, n, 1, 2)?;
    let (ws, wz, _) = params(ctx, n, 4, 5)?;
    let (ys, yz, ydt) = params(ctx, n, 6, 7)?;
    let (wshape, wd) = ctx.const_of(n.req_input(3)?)?;
    let x = ctx.nhwc_of(x, xn, &n.name)?;
    let out = n.output(0)?;
    let ydt = ydt.unwrap_or(ctx.tensor(x).dtype);
    let (acc, k) = conv::conv2d(ctx, n, x, &wshape, wd, scalar_zp(&xz, "x")?, wz, &format!("{out}:acc"))?;
    let acc = match n.input(8) {
        Some(b) => {
            let b = ctx.const_ints(b)?;
            conv::bias_add(ctx, n, acc, b, k, &format!("{out}:bias"))?
        }
        None => acc,
    };
    let scale = output_scales(xs[0], &conv::broadcast(ws, k, "weight scale")?, ys[0]);
    let y = qdq::qout(out, Quant::per_tensor(ys[0], scalar_zp(&yz, "y")?), ydt)?;
    qdq::finish_pub(ctx, n, acc, scale, y, true)
}

/// Dense when B is a constant 2-D matrix, MatMul otherwise.
#[allow(clippy::too_many_arguments)]
fn mm(
    ctx: &mut Ctx,
    n: &N,
    a_name: &str,
    b_name: &str,
    a_zp: i64,
    b_zp: Vec<i64>,
    trans_b: bool,
    out: &str,
) -> Result<(crate::ir::TensorId, usize)> {
    let (a, an) = ctx.int_act(a_name)?;
    let a = ctx.onnx_of(a, an, &n.name);
    match ctx.const_of(b_name) {
        Ok((bs, bd)) if bs.len() == 2 => conv::dense(ctx, n, a, &bs, bd, trans_b, a_zp, b_zp, out),
        _ => {
            if trans_b {
                bail!("transB needs a constant 2-D B");
            }
            let (b, bn) = match ctx.val(b_name)? {
                Val::T { id, nhwc } => (id, nhwc),
                Val::Deq { .. } => bail!("input `{b_name}` is dequantized"),
            };
            let b = ctx.onnx_of(b, bn, &n.name);
            conv::matmul(ctx, n, a, b, a_zp, b_zp, out)
        }
    }
}

pub fn qlinear_matmul(ctx: &mut Ctx, n: &N) -> Result<()> {
    let (as_, az, _) = params(ctx, n, 1, 2)?;
    let (bs, bz, _) = params(ctx, n, 4, 5)?;
    let (ys, yz, ydt) = params(ctx, n, 6, 7)?;
    let out = n.output(0)?;
    let (acc, k) =
        mm(ctx, n, n.req_input(0)?, n.req_input(3)?, scalar_zp(&az, "a")?, bz, false, &format!("{out}:acc"))?;
    let ydt = match ydt {
        Some(d) => d,
        None => {
            let a = ctx.int_act(n.req_input(0)?)?.0;
            ctx.tensor(a).dtype
        }
    };
    let scale = output_scales(as_[0], &conv::broadcast(bs, k, "B scale")?, ys[0]);
    let y = qdq::qout(out, Quant::per_tensor(ys[0], scalar_zp(&yz, "y")?), ydt)?;
    qdq::finish_pub(ctx, n, acc, scale, y, false)
}

pub fn conv_integer(ctx: &mut Ctx, n: &N) -> Result<()> {
    let (x, xn) = ctx.int_act(n.req_input(0)?)?;
    let (wshape, wd) = ctx.const_of(n.req_input(1)?)?;
    let x_zp = scalar_zp(&zps(ctx, n, 2)?, "x")?;
    let w_zp = zps(ctx, n, 3)?;
    let x = ctx.nhwc_of(x, xn, &n.name)?;
    let out = n.output(0)?;
    let (acc, _) = conv::conv2d(ctx, n, x, &wshape, wd, x_zp, w_zp, out)?;
    ctx.vals.insert(out.to_string(), Val::T { id: acc, nhwc: true });
    Ok(())
}

pub fn matmul_integer(ctx: &mut Ctx, n: &N) -> Result<()> {
    let a_zp = scalar_zp(&zps(ctx, n, 2)?, "A")?;
    let b_zp = zps(ctx, n, 3)?;
    let out = n.output(0)?;
    let (acc, _) = mm(ctx, n, n.req_input(0)?, n.req_input(1)?, a_zp, b_zp, false, out)?;
    ctx.vals.insert(out.to_string(), Val::T { id: acc, nhwc: false });
    Ok(())
}

/// com.microsoft QLinearAdd(A, A_scale, A_zp, B, B_scale, B_zp, C_scale, C_zp).
pub fn qlinear_add(ctx: &mut Ctx, n: &N) -> Result<()> {
    let (a, an) = ctx.int_act(n.req_input(0)?)?;
    let (b, bn) = ctx.int_act(n.req_input(3)?)?;
    let (as_, az, _) = params(ctx, n, 1, 2)?;
    let (bs, bz, _) = params(ctx, n, 4, 5)?;
    let (cs, cz, _) = params(ctx, n, 6, 7)?;
    let dt = ctx.tensor(a).dtype;
    let aq = Quant::per_tensor(as_[0], scalar_zp(&az, "A")?);
    let bq = Quant::per_tensor(bs[0], scalar_zp(&bz, "B")?);
    let cq = Quant::per_tensor(cs[0], scalar_zp(&cz, "C")?);
    qdq::qlinear_add(ctx, n, (a, an, aq), (b, bn, bq), cq, dt)
}

/// com.microsoft QGemm(A, a_scale, a_zp, B, b_scale, b_zp, C, y_scale, y_zp).
pub fn qgemm(ctx: &mut Ctx, n: &N) -> Result<()> {
    if n.attr_i("transA", 0) != 0 || n.attr_f("alpha").unwrap_or(1.0) != 1.0 {
        bail!("QGemm with transA or alpha other than 1 is not supported");
    }
    let trans_b = n.attr_i("transB", 0) != 0;
    let (as_, az, _) = params(ctx, n, 1, 2)?;
    let (bs, bz, _) = params(ctx, n, 4, 5)?;
    let out = n.output(0)?;
    let (acc, k) = mm(
        ctx,
        n,
        n.req_input(0)?,
        n.req_input(3)?,
        scalar_zp(&az, "a")?,
        bz,
        trans_b,
        &format!("{out}:acc"),
    )?;
    let acc = match n.input(6) {
        Some(c) => {
            let b = ctx.const_ints(c).context("QGemm bias C must be an int32 constant")?;
            conv::bias_add(ctx, n, acc, b, k, &format!("{out}:bias"))?
        }
        None => acc,
    };
    if n.input(7).is_none() {
        bail!("QGemm with a float output (no y_scale) is not supported");
    }
    let (ys, yz, ydt) = params(ctx, n, 7, 8)?;
    let ydt = match ydt {
        Some(d) => d,
        None => {
            let a = ctx.int_act(n.req_input(0)?)?.0;
            ctx.tensor(a).dtype
        }
    };
    let scale = output_scales(as_[0], &conv::broadcast(bs, k, "B scale")?, ys[0]);
    let y = qdq::qout(out, Quant::per_tensor(ys[0], scalar_zp(&yz, "y")?), ydt)?;
    qdq::finish_pub(ctx, n, acc, scale, y, false)
}

/// com.microsoft QLinearGlobalAveragePool(X, x_scale, x_zp, y_scale, y_zp).
pub fn qlinear_global_average_pool(ctx: &mut Ctx, n: &N) -> Result<()> {
    let (x, xn) = ctx.int_act(n.req_input(0)?)?;
    let (xs, xz, _) = params(ctx, n, 1, 2)?;
    let (ys, yz, _) = params(ctx, n, 3, 4)?;
    if n.attr_i("channels_last", 0) != 0 {
        bail!("channels_last QLinearGlobalAveragePool is not supported");
    }
    let x = ctx.nhwc_of(x, xn, &n.name)?;
    let dt = ctx.tensor(x).dtype;
    let xq = Quant::per_tensor(xs[0], scalar_zp(&xz, "x")?);
    let y = qdq::qout(n.output(0)?, Quant::per_tensor(ys[0], scalar_zp(&yz, "y")?), dt)?;
    qdq::global_avg(ctx, n, x, &xq, y)
}

/// com.microsoft QLinearAveragePool(X, x_scale, x_zp, y_scale, y_zp).
pub fn qlinear_average_pool(ctx: &mut Ctx, n: &N) -> Result<()> {
    let (x, xn) = ctx.int_act(n.req_input(0)?)?;
    let (xs, xz, _) = params(ctx, n, 1, 2)?;
    let (ys, yz, _) = params(ctx, n, 3, 4)?;
    if n.attr_i("channels_last", 0) != 0 {
        bail!("channels_last QLinearAveragePool is not supported");
    }
    let x = ctx.nhwc_of(x, xn, &n.name)?;
    let dt = ctx.tensor(x).dtype;
    let xq = Quant::per_tensor(xs[0], scalar_zp(&xz, "x")?);
    let y = qdq::qout(n.output(0)?, Quant::per_tensor(ys[0], scalar_zp(&yz, "y")?), dt)?;
    qdq::qlinear_avgpool(ctx, n, x, &xq, y)
}
