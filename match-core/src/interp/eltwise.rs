//! Element-wise `add` with numpy broadcasting of both inputs to the output.
//!
//! - `AddKind::Integer`: `a + b` in 32 bits (wrapping), saturated to the
//!   output type.
//! - `AddKind::Wrapping`: `a + b` modulo 2^bits of the output type (ONNX
//!   `Add` on 8-bit tensors, as numpy and onnxruntime compute it).
//! - `AddKind::TfLite`: TFLite's int8 `AddFunc`: each input offset by its zero
//!   point, shifted left by `left_shift`, scaled by
//!   `MultiplyByQuantizedMultiplierSmallerThanOneExp`, summed, scaled by the
//!   output multiplier, `+ out_zp`, clamped to the output type.
//! - `AddKind::Float`: onnxruntime's portable `QLinearAdd` order:
//!   `va = a_scale * (a - a_zp)`, `vb = b_scale * (b - b_zp)` in f32,
//!   `vc = (va + vb) / y_scale`, clamp to `[qmin - y_zp, qmax - y_zp]`, then
//!   `nearbyint(vc + y_zp)` (round half to even *after* adding the zero
//!   point). Note: onnxruntime's SSE2/AVX2/NEON kernels compute QLinearAdd in
//!   fixed point (XNNPACK-style multipliers with a 13..31 bit shift) instead
//!   and can differ from this by one unit in rare ties.

use super::{from_i64, strides, to_i32, Ctx};
use crate::interp::fixedpoint::multiply_by_quantized_multiplier;
use crate::ir::{AddKind, DType, Data, Tensor};
use anyhow::{anyhow, bail, ensure};

/// For each output element, the index of the element of an input of shape
/// `shape` broadcast (numpy rules, right-aligned) to `out`.
pub(crate) fn broadcast_index(shape: &[usize], out: &[usize]) -> anyhow::Result<Vec<usize>> {
    ensure!(shape.len() <= out.len(), "{shape:?} does not broadcast to {out:?}");
    let off = out.len() - shape.len();
    let in_strides = strides(shape);
    let mut st = vec![0usize; out.len()];
    for (i, &d) in shape.iter().enumerate() {
        let o = out[off + i];
        if d == o {
            st[off + i] = in_strides[i];
        } else if d != 1 {
            bail!("{shape:?} does not broadcast to {out:?}");
        }
    }
    let total: usize = out.iter().product();
    let mut idx = Vec::with_capacity(total);
    let mut counter = vec![0usize; out.len()];
    let mut cur = 0usize;
    for _ in 0..total {
        idx.push(cur);
        for ax in (0..out.len()).rev() {
            counter[ax] += 1;
            cur += st[ax];
            if counter[ax] < out[ax] {
                break;
            }
            cur -= st[ax] * counter[ax];
            counter[ax] = 0;
        }
    }
    Ok(idx)
}

/// The numpy broadcast of two shapes.
pub(crate) fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for (i, o) in out.iter_mut().enumerate() {
        let da = if i + a.len() >= n { a[i + a.len() - n] } else { 1 };
        let db = if i + b.len() >= n { b[i + b.len() - n] } else { 1 };
        *o = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return None,
        };
    }
    Some(out)
}

pub(super) fn add(ctx: &Ctx, out: &Tensor, kind: &AddKind) -> anyhow::Result<Data> {
    let (at, bt) = (ctx.ins[0], ctx.ins[1]);
    let shape = broadcast_shape(&at.shape, &bt.shape)
        .ok_or_else(|| anyhow!("inputs {:?} and {:?} do not broadcast", at.shape, bt.shape))?;
    ensure!(
        shape.iter().product::<usize>() == out.elements(),
        "output '{}' is declared {:?}, computed {:?}",
        out.name,
        out.shape,
        shape
    );
    let ia = broadcast_index(&at.shape, &shape)?;
    let ib = broadcast_index(&bt.shape, &shape)?;
    if let (Data::F32(a), Data::F32(b)) = (ctx.inputs[0], ctx.inputs[1]) {
        ensure!(out.dtype == DType::F32, "an f32 add must output f32");
        return Ok(Data::F32(ia.iter().zip(&ib).map(|(&i, &j)| a[i] + b[j]).collect()));
    }
    let (lo, hi) =
        out.dtype.int_range().ok_or_else(|| anyhow!("output '{}' must be an integer type", out.name))?;
    let a = to_i32(ctx.inputs[0])?;
    let b = to_i32(ctx.inputs[1])?;
    let pairs = ia.iter().zip(&ib).map(|(&i, &j)| (a[i], b[j]));
    let v: Vec<i64> = match kind {
        AddKind::Integer => pairs.map(|(x, y)| x.wrapping_add(y) as i64).collect(),
        AddKind::Wrapping => {
            let dt = out.dtype;
            pairs
                .map(|(x, y)| {
                    let s = x.wrapping_add(y);
                    match dt {
                        DType::I8 => s as i8 as i64,
                        DType::U8 => s as u8 as i64,
                        DType::I16 => s as i16 as i64,
                        _ => s as i64,
                    }
                })
                .collect()
        }
        AddKind::TfLite(p) => {
            let zp0 = i32::try_from(p.in_zp[0])?;
            let zp1 = i32::try_from(p.in_zp[1])?;
            let ls = 1i32.wrapping_shl(p.left_shift as u32);
            pairs
                .map(|(x, y)| {
                    let x = x.wrapping_sub(zp0).wrapping_mul(ls);
                    let y = y.wrapping_sub(zp1).wrapping_mul(ls);
                    let sx = multiply_by_quantized_multiplier(x, p.in_multiplier[0], p.in_shift[0]);
                    let sy = multiply_by_quantized_multiplier(y, p.in_multiplier[1], p.in_shift[1]);
                    let raw =
                        multiply_by_quantized_multiplier(sx.wrapping_add(sy), p.out_multiplier, p.out_shift);
                    (raw as i64 + p.out_zp).clamp(lo, hi)
                })
                .collect()
        }
        AddKind::Float { a_scale, a_zp, b_scale, b_zp, y_scale, y_zp } => {
            let (flo, fhi) = ((lo - y_zp) as f32, (hi - y_zp) as f32);
            pairs
                .map(|(x, y)| {
                    let va = a_scale * (x as i64 - a_zp) as i32 as f32;
                    let vb = b_scale * (y as i64 - b_zp) as i32 as f32;
                    let vc = (va + vb) / y_scale;
                    let vc = if vc.is_nan() { flo } else { vc.max(flo).min(fhi) };
                    ((vc + *y_zp as f32).round_ties_even() as i64).clamp(lo, hi)
                })
                .collect()
        }
    };
    from_i64(out.dtype, &v)
}
