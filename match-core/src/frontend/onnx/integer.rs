//! The integer ONNX dialect of DORY, NEMO, QuantLab and MATCH
//! (../shared/models/match-onnx): each layer is
//! `Conv|MatMul -> Cast(int32) -> Mul(scale) -> Add(bias) -> Div(2^s) ->
//! Floor -> Clip(0, 255) -> Cast(uint8)`, recognized as
//! Conv2d/Dense (w_zp 0, uint8 weights kept unsigned) +
//! Requantize ScaleShift { scale, bias, shift } + Clip. Semantics (DESIGN.md,
//! "Quantization and exactness"): the Cast to int32 marks the accumulator
//! type (accumulate in 32 bits, never in the 8-bit input type); Div by a
//! power of two then Floor is an arithmetic shift right; Clip then Cast
//! narrows. A last layer without requantization (`MatMul -> Cast(int32) ->
//! Add(bias)`) outputs the raw accumulator plus bias; a float-declared graph
//! output gets a Cast to f32 (see `Ctx::finish_outputs`).
//!
//! A float-declared input holding integers (anomaly_detection: input 0..255,
//! first weights float32 holding -128..127) is cast to an integer type at
//! import: the graph input stays f32, followed by a Cast node, and the
//! weights become integer constants.

use super::conv;
use super::{tensor, Ctx, Val, N};
use crate::ir::{DType, Data, Requant, TensorId};
use anyhow::{bail, Context, Result};

/// Weights of an integer-dialect layer: integer data, or float data holding
/// integers (converted to i8 or u8 by range).
fn int_weights(ctx: &Ctx, name: &str) -> Result<(Vec<usize>, Data)> {
    let (shape, d) = ctx.const_of(name)?;
    match d {
        Data::F32(v) => {
            if v.iter().any(|f| f.fract() != 0.0 || !f.is_finite()) {
                bail!(
                    "weights `{name}` are float with fractional values: this is a float model; the compiler \
                     takes quantized integer models"
                );
            }
            let (lo, hi) = v.iter().fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
            let ints: Vec<i64> = v.iter().map(|&f| f as i64).collect();
            let dt = if lo >= -128.0 && hi <= 127.0 {
                DType::I8
            } else if lo >= 0.0 && hi <= 255.0 {
                DType::U8
            } else {
                bail!("float weights `{name}` hold integers outside the 8-bit ranges ({lo}..{hi})");
            };
            Ok((shape, Data::from_i64(dt, &ints)))
        }
        d => Ok((shape, d)),
    }
}

/// The activation input: integer, or a float-declared tensor holding
/// integers, cast to u8 (uint8 activations, 0..255).
fn int_input(ctx: &mut Ctx, n: &N, name: &str) -> Result<(TensorId, bool)> {
    match ctx.val(name)? {
        Val::T { id, nhwc } if ctx.tensor(id).dtype == DType::F32 => {
            if ctx.tensor(id).is_const() {
                bail!("input `{name}` is a constant");
            }
            let out = format!("{name}:u8");
            Ok((conv::cast(ctx, n, id, DType::U8, &out), nhwc))
        }
        Val::T { id, nhwc } => Ok((id, nhwc)),
        Val::Deq { .. } => {
            bail!("input `{name}` is dequantized: mixing QDQ and the integer dialect is not supported")
        }
    }
}

pub fn conv(ctx: &mut Ctx, i: usize, n: &N) -> Result<()> {
    let (x, nhwc) = int_input(ctx, n, n.req_input(0)?)?;
    let x = ctx.nhwc_of(x, nhwc, &n.name)?;
    let (ws, w) = int_weights(ctx, n.req_input(1)?)?;
    let out = n.output(0)?;
    let (acc, k) = conv::conv2d(ctx, n, x, &ws, w, 0, vec![0], &format!("{out}:acc"))?;
    let acc = match n.input(2) {
        Some(b) => {
            let bias = ctx.const_ints(b)?;
            conv::bias_add(ctx, n, acc, bias, k, &format!("{out}:bias"))?
        }
        None => acc,
    };
    chain(ctx, i, n, acc, true, k, 4)
}

pub fn matmul(ctx: &mut Ctx, i: usize, n: &N) -> Result<()> {
    let (a, nhwc) = int_input(ctx, n, n.req_input(0)?)?;
    let a = ctx.onnx_of(a, nhwc, &n.name);
    let out = n.output(0)?;
    let rank = ctx.tensor(a).shape.len();
    let trans_b = n.op() == "Gemm" && n.attr_i("transB", 0) != 0;
    if n.op() == "Gemm" {
        if n.attr_i("transA", 0) != 0 {
            bail!("Gemm with transA is not supported");
        }
        if n.attr_f("alpha").unwrap_or(1.0) != 1.0 || n.attr_f("beta").unwrap_or(1.0) != 1.0 {
            bail!("Gemm with alpha or beta other than 1 is not supported");
        }
    }
    let b = n.req_input(1)?;
    let (acc, k) = match ctx.const_of(b) {
        Ok((bs, _)) if bs.len() == 2 => {
            let (bs, bd) = int_weights(ctx, b)?;
            conv::dense(ctx, n, a, &bs, bd, trans_b, 0, vec![0], &format!("{out}:acc"))?
        }
        _ => {
            if trans_b {
                bail!("Gemm with transB needs constant 2-D weights");
            }
            let (bt, bn) = int_input(ctx, n, b)?;
            let bt = ctx.onnx_of(bt, bn, &n.name);
            conv::matmul(ctx, n, a, bt, 0, vec![0], &format!("{out}:acc"))?
        }
    };
    let acc = match n.input(2) {
        Some(c) => {
            let bias = ctx.const_ints(c)?;
            conv::bias_add(ctx, n, acc, bias, k, &format!("{out}:bias"))?
        }
        None => acc,
    };
    chain(ctx, i, n, acc, false, k, rank)
}

/// A constant per-channel operand of Mul/Add in the chain: a scalar, or a
/// tensor whose only non-unit axis is the channel axis (1 of NCHW, the last
/// otherwise).
fn per_channel(ctx: &Ctx, name: &str, k: usize, nchw: bool) -> Result<Vec<i64>> {
    let (shape, d) = ctx.const_of(name)?;
    let vals = match &d {
        Data::F32(v) => {
            if v.iter().any(|f| f.fract() != 0.0) {
                bail!("constant `{name}` is not integer-valued");
            }
            v.iter().map(|&f| f as i64).collect()
        }
        d => d.to_i64(),
    };
    let non_unit: Vec<usize> = (0..shape.len()).filter(|&a| shape[a] != 1).collect();
    let ok = match non_unit.as_slice() {
        [] => true,
        [a] => shape[*a] == k && if nchw { shape.len() == 4 && *a == 1 } else { *a == shape.len() - 1 },
        _ => false,
    };
    if !ok {
        bail!("constant `{name}` of shape {shape:?} is not per-channel for {k} channels");
    }
    conv::broadcast(vals, k, "per-channel")
}

/// The other input of a binary node whose one input is `cur`.
fn other<'a>(n: &N<'a>, cur: &str) -> Result<&'a str> {
    let (a, b) = (n.req_input(0)?, n.req_input(1)?);
    Ok(if a == cur { b } else { a })
}

/// Walks the requantization chain after an accumulator and emits it.
/// `rank` is the ONNX rank of the accumulator (4: channel axis 1).
fn chain(
    ctx: &mut Ctx,
    start: usize,
    n0: &N,
    acc: TensorId,
    nhwc: bool,
    k: usize,
    rank: usize,
) -> Result<()> {
    #[derive(PartialEq, PartialOrd, Clone, Copy)]
    enum Stage {
        Acc,
        Mul,
        Add,
        Div,
        Floor,
        Clip,
    }
    let nchw = rank == 4;
    let mut cur = n0.output(0)?.to_string();
    let mut stage = Stage::Acc;
    let (mut scale, mut bias, mut shift) = (None::<Vec<i64>>, None::<Vec<i64>>, None::<u32>);
    let mut clip = None::<(i64, i64)>;
    let mut narrow = None::<DType>;
    let _ = start;
    while let Some(ci) = ctx.sole_consumer(&cur) {
        let n = ctx.node(ci);
        let step = (|| -> Result<bool> {
            match n.op() {
                "Cast" => {
                    let to = tensor::dtype(n.attr("to").context("Cast without `to`")?.i as i32)?;
                    match to {
                        DType::I32 | DType::I64 if stage == Stage::Acc => {}
                        DType::U8 | DType::I8 | DType::I16 if stage > Stage::Acc => {
                            narrow = Some(to);
                        }
                        _ => return Ok(false),
                    }
                }
                "Mul" if stage < Stage::Mul => {
                    scale = Some(per_channel(ctx, other(&n, &cur)?, k, nchw)?);
                    stage = Stage::Mul;
                }
                "Add" if stage < Stage::Add => {
                    bias = Some(per_channel(ctx, other(&n, &cur)?, k, nchw)?);
                    stage = Stage::Add;
                }
                "Div" if stage < Stage::Div && n.input(0) == Some(cur.as_str()) => {
                    let d = per_channel(ctx, n.req_input(1)?, k, nchw)?;
                    let d0 = d[0];
                    if d.iter().any(|&v| v != d0) || d0 <= 0 || (d0 & (d0 - 1)) != 0 {
                        bail!("Div by {d0}: only a power of two is supported (shift right)");
                    }
                    shift = Some(d0.trailing_zeros());
                    stage = Stage::Div;
                }
                "Floor" if stage == Stage::Div => stage = Stage::Floor,
                "Clip" if stage < Stage::Clip && stage > Stage::Acc => {
                    let bound = |k: usize, attr: &str| -> Result<Option<i64>> {
                        if let Some(name) = n.input(k) {
                            let (_, d) = ctx.const_of(name)?;
                            let v = match d {
                                Data::F32(v) => v.first().map(|f| f.round() as i64),
                                d => d.to_i64().first().copied(),
                            };
                            return v.map(Some).context("empty Clip bound");
                        }
                        Ok(n.attr_f(attr).map(|f| f.round() as i64))
                    };
                    let lo = bound(1, "min")?.unwrap_or(i32::MIN as i64);
                    let hi = bound(2, "max")?.unwrap_or(i32::MAX as i64);
                    clip = Some((lo, hi));
                    stage = Stage::Clip;
                }
                _ => return Ok(false),
            }
            Ok(true)
        })()
        .with_context(|| format!("node `{}` ({})", n.name, n.op()))?;
        if !step {
            break;
        }
        ctx.done[ci] = true;
        cur = n.output(0)?.to_string();
        if narrow.is_some() {
            break;
        }
    }
    // Emit.
    let mut t = acc;
    let requant = scale.is_some() || shift.is_some();
    let tail = |ctx: &Ctx, t: TensorId| ctx.tensor(t).name.clone();
    let _ = tail;
    if requant {
        let dt = match (narrow, clip) {
            (Some(d), _) => d,
            (None, _) => DType::I32,
        };
        let rq = Requant::ScaleShift {
            scale: scale.unwrap_or_else(|| vec![1; k]),
            bias: bias.take().unwrap_or_else(|| vec![0; k]),
            shift: shift.unwrap_or(0),
        };
        let name = if clip.is_some() { format!("{cur}:requant") } else { cur.clone() };
        t = conv::requantize(ctx, n0, t, rq, 0, dt, &name);
    } else if let Some(b) = bias.take() {
        let name = if clip.is_some() || narrow.is_some() { format!("{cur}:bias") } else { cur.clone() };
        t = conv::bias_add(ctx, n0, t, b, k, &name)?;
    }
    if let Some((lo, hi)) = clip {
        let name = if narrow.is_some() && ctx.tensor(t).dtype != narrow.unwrap_or(DType::I32) {
            format!("{cur}:clip")
        } else {
            cur.clone()
        };
        t = conv::clip(ctx, n0, t, lo, hi, &name);
    }
    if let Some(d) = narrow {
        if ctx.tensor(t).dtype != d {
            t = conv::cast(ctx, n0, t, d, &cur);
        }
    }
    if ctx.tensor(t).name != cur {
        ctx.rename(t, &cur);
    }
    ctx.vals.insert(cur, Val::T { id: t, nhwc });
    Ok(())
}
