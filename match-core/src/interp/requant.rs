//! `bias`, `requantize` (TFLite fixed point, integer-dialect scale and shift,
//! onnxruntime float), `clip`, `cast`, `quantize` and `dequantize`.
//!
//! Runtime semantics (checked against the sources):
//! - `Requant::FixedPoint` is TFLite's `MultiplyByQuantizedMultiplier` with
//!   double rounding (TFLite Micro's default build), then `+ out_zp`, clamped.
//! - `Requant::Float` is onnxruntime's `MlasRequantizeOutput`, the same in its
//!   scalar, SSE2 and NEON forms: `float(acc) * scale` in f32 (int32 -> f32
//!   rounds to nearest even), clamp to `[qmin - zp, qmax - zp]`, round half
//!   to even, `+ zp`. The scale `x_scale * w_scale[c] / y_scale` is computed by
//!   the importer in f32, in that order, as `QLinearConv` does.
//! - `Quantize` is `MlasQuantizeLinear`: `x / scale` (a division, not a
//!   multiplication by the reciprocal), clamp to `[qmin - zp, qmax - zp]`,
//!   round half to even, `+ zp`; NaN becomes `qmin` as the SSE max does.
//! - `Dequantize` is onnxruntime's `(f32)(q - zp) * scale` in f32.
//! - `bias` adds in 32 bits with wrap-around (TFLite's and MLAS's int32 add).

use super::{from_i64, per_channel, strides, to_i32, to_i64, Ctx};
use crate::interp::fixedpoint::multiply_by_quantized_multiplier;
use crate::ir::{DType, Data, Quant, Requant, Tensor};
use anyhow::{anyhow, bail, ensure};

/// The number of channels (last axis) of `t`, at least 1.
fn last_axis(t: &Tensor) -> usize {
    t.shape.last().copied().unwrap_or(1).max(1)
}

pub(super) fn bias_add(ctx: &Ctx, out: &Tensor) -> anyhow::Result<Data> {
    let (at, bt) = (ctx.ins[0], ctx.ins[1]);
    ensure!(
        out.shape == at.shape,
        "output '{}' is declared {:?}, input is {:?}",
        out.name,
        out.shape,
        at.shape
    );
    let c = last_axis(at);
    ensure!(
        bt.elements() == c || bt.elements() == 1,
        "bias '{}' has {} values for {c} channels",
        bt.name,
        bt.elements()
    );
    let bias = to_i64(ctx.inputs[1])?;
    let bias = per_channel("bias", &bias, c, 0)?;
    if out.dtype == DType::I32 {
        let acc = to_i32(ctx.inputs[0])?;
        let b32: Vec<i32> = bias.iter().map(|&b| b as i32).collect();
        let v = acc.iter().enumerate().map(|(i, &a)| a.wrapping_add(b32[i % c])).collect();
        return Ok(Data::I32(v));
    }
    let acc = to_i64(ctx.inputs[0])?;
    let v: Vec<i64> = acc.iter().enumerate().map(|(i, &a)| a.saturating_add(bias[i % c])).collect();
    from_i64(out.dtype, &v)
}

pub(super) fn requantize(ctx: &Ctx, out: &Tensor, requant: &Requant, out_zp: i64) -> anyhow::Result<Data> {
    let at = ctx.ins[0];
    ensure!(
        out.shape == at.shape,
        "output '{}' is declared {:?}, input is {:?}",
        out.name,
        out.shape,
        at.shape
    );
    let (lo, hi) =
        out.dtype.int_range().ok_or_else(|| anyhow!("output '{}' must be an integer type", out.name))?;
    let c = last_axis(at);
    let acc = to_i64(ctx.inputs[0])?;
    let v: Vec<i64> = match requant {
        Requant::FixedPoint { multiplier, shift } => {
            let m = per_channel("multiplier", multiplier, c, 0)?;
            let s = per_channel("shift", shift, c, 0)?;
            acc.iter()
                .enumerate()
                .map(|(i, &a)| {
                    let a =
                        i32::try_from(a).map_err(|_| anyhow!("accumulator {a} does not fit in 32 bits"))?;
                    let ch = i % c;
                    Ok((multiply_by_quantized_multiplier(a, m[ch], s[ch]) as i64 + out_zp).clamp(lo, hi))
                })
                .collect::<anyhow::Result<_>>()?
        }
        Requant::ScaleShift { scale, bias, shift } => {
            ensure!(*shift < 64, "shift {shift} is out of range");
            let sc = per_channel("scale", scale, c, 1)?;
            let bi = per_channel("bias", bias, c, 0)?;
            acc.iter()
                .enumerate()
                .map(|(i, &a)| {
                    let ch = i % c;
                    let v = a.wrapping_mul(sc[ch]).wrapping_add(bi[ch]) >> shift;
                    v.saturating_add(out_zp).clamp(lo, hi)
                })
                .collect()
        }
        Requant::Float { scale } => {
            let sc = per_channel("scale", scale, c, 1.0)?;
            acc.iter()
                .enumerate()
                .map(|(i, &a)| {
                    let f = a as f32 * sc[i % c];
                    round_even_clamped(f, out_zp, lo, hi)
                })
                .collect()
        }
        Requant::Adc { gain, bits, k, l, shift } => {
            ensure!(*gain >= 1, "ADC gain {gain} must be at least 1");
            ensure!((1..=31).contains(bits), "ADC bits {bits} out of range");
            ensure!(*shift < 64, "shift {shift} is out of range");
            let kk = per_channel("k", k, c, 1)?;
            let ll = per_channel("l", l, c, 0)?;
            acc.iter()
                .enumerate()
                .map(|(i, &a)| adc_value(a, *gain, *bits, kk[i % c], ll[i % c], *shift, out_zp, lo, hi))
                .collect()
        }
    };
    from_i64(out.dtype, &v)
}

/// One output of `Requant::Adc`: the ADC's floor division and clip, the
/// per-channel affine step with its floor shift, `+ out_zp`, saturation.
#[allow(clippy::too_many_arguments)]
pub(crate) fn adc_value(
    a: i64,
    gain: i64,
    bits: u32,
    k: i64,
    l: i64,
    shift: u32,
    out_zp: i64,
    lo: i64,
    hi: i64,
) -> i64 {
    let half = 1i64 << (bits - 1);
    let y = a.div_euclid(gain).clamp(-half, half - 1);
    let t = k.wrapping_mul(y).wrapping_add(l) >> shift;
    t.saturating_add(out_zp).clamp(lo, hi)
}

/// One output of `requantize` for accumulator `a` on channel `ch`: the
/// interpreter's own arithmetic, for the lowering's exactness analysis.
/// `None` when the accumulator does not fit the form (FixedPoint takes
/// 32-bit values) or a parameter is out of range.
pub(crate) fn requant_value(
    requant: &Requant,
    a: i64,
    ch: usize,
    out_zp: i64,
    lo: i64,
    hi: i64,
) -> Option<i64> {
    let pick = |v: &[i64], d: i64| -> i64 { v.get(ch).or(v.first()).copied().unwrap_or(d) };
    Some(match requant {
        Requant::FixedPoint { multiplier, shift } => {
            let m = multiplier.get(ch).or(multiplier.first()).copied().unwrap_or(0);
            let s = shift.get(ch).or(shift.first()).copied().unwrap_or(0);
            let a = i32::try_from(a).ok()?;
            (multiply_by_quantized_multiplier(a, m, s) as i64 + out_zp).clamp(lo, hi)
        }
        Requant::ScaleShift { scale, bias, shift } => {
            if *shift >= 64 {
                return None;
            }
            let v = a.wrapping_mul(pick(scale, 1)).wrapping_add(pick(bias, 0)) >> shift;
            v.saturating_add(out_zp).clamp(lo, hi)
        }
        Requant::Float { scale } => {
            let s = scale.get(ch).or(scale.first()).copied().unwrap_or(1.0);
            round_even_clamped(a as f32 * s, out_zp, lo, hi)
        }
        Requant::Adc { gain, bits, k, l, shift } => {
            if *gain < 1 || !(1..=31).contains(bits) || *shift >= 64 {
                return None;
            }
            adc_value(a, *gain, *bits, pick(k, 1), pick(l, 0), *shift, out_zp, lo, hi)
        }
    })
}

/// MLAS's float-to-quantized step: clamp `f` to `[lo - zp, hi - zp]` (NaN
/// becomes `lo - zp`), round half to even, add `zp`.
fn round_even_clamped(f: f32, zp: i64, lo: i64, hi: i64) -> i64 {
    let (flo, fhi) = ((lo - zp) as f32, (hi - zp) as f32);
    let f = if f.is_nan() { flo } else { f.max(flo).min(fhi) };
    (f.round_ties_even() as i64 + zp).clamp(lo, hi)
}

pub(super) fn clip(ctx: &Ctx, out: &Tensor, min: i64, max: i64) -> anyhow::Result<Data> {
    let at = ctx.ins[0];
    ensure!(
        out.shape == at.shape,
        "output '{}' is declared {:?}, input is {:?}",
        out.name,
        out.shape,
        at.shape
    );
    ensure!(min <= max, "min {min} > max {max}");
    if let Data::F32(v) = ctx.inputs[0] {
        ensure!(out.dtype == DType::F32, "a clip of f32 must output f32");
        return Ok(Data::F32(v.iter().map(|&x| x.max(min as f32).min(max as f32)).collect()));
    }
    let v: Vec<i64> = to_i64(ctx.inputs[0])?.into_iter().map(|x| x.clamp(min, max)).collect();
    from_i64(out.dtype, &v)
}

/// Integer to integer with saturation; integer to f32 exactly as `as`; f32 to
/// integer truncating toward zero, saturating (NaN to 0).
pub(super) fn cast(ctx: &Ctx, out: &Tensor) -> anyhow::Result<Data> {
    let at = ctx.ins[0];
    ensure!(
        out.elements() == at.elements(),
        "output '{}' {:?} and input {:?} differ in size",
        out.name,
        out.shape,
        at.shape
    );
    match (ctx.inputs[0], out.dtype) {
        (Data::F32(v), DType::F32) => Ok(Data::F32(v.clone())),
        (Data::F32(v), dt) => {
            let (lo, hi) = dt.int_range().expect("integer type");
            let w: Vec<i64> = v.iter().map(|&x| (x.trunc() as i64).clamp(lo, hi)).collect();
            from_i64(dt, &w)
        }
        (d, DType::F32) => Ok(Data::F32(d.to_i64().into_iter().map(|x| x as f32).collect())),
        (d, dt) => from_i64(dt, &d.to_i64()),
    }
}

/// For element `i` of a tensor of `shape`, the index of its channel along
/// `q.axis` (0 for per-tensor quantization).
fn channel_of(q: &Quant, shape: &[usize]) -> anyhow::Result<impl Fn(usize) -> usize> {
    let per_channel = q.scale.len() > 1 || q.zero_point.len() > 1;
    let (stride, dim) = if per_channel {
        ensure!(q.axis < shape.len(), "quantization axis {} is out of range for {:?}", q.axis, shape);
        let dim = shape[q.axis];
        ensure!(
            q.scale.len() == dim && (q.zero_point.len() == dim || q.zero_point.len() <= 1),
            "per-channel quantization has {} scales and {} zero points for {dim} channels",
            q.scale.len(),
            q.zero_point.len()
        );
        (strides(shape)[q.axis], dim)
    } else {
        (1, 1)
    };
    Ok(move |i: usize| (i / stride) % dim)
}

fn zp_at(q: &Quant, ch: usize) -> i64 {
    match q.zero_point.len() {
        0 => 0,
        1 => q.zero_point[0],
        _ => q.zero_point[ch],
    }
}

pub(super) fn quantize(ctx: &Ctx, out: &Tensor) -> anyhow::Result<Data> {
    let Data::F32(x) = ctx.inputs[0] else { bail!("quantize takes an f32 input") };
    ensure!(out.elements() == x.len(), "output '{}' {:?} and input differ in size", out.name, out.shape);
    let q = out.quant.as_ref().ok_or_else(|| anyhow!("output '{}' has no quantization", out.name))?;
    ensure!(!q.scale.is_empty(), "output '{}' has no scale", out.name);
    let (lo, hi) =
        out.dtype.int_range().ok_or_else(|| anyhow!("output '{}' must be an integer type", out.name))?;
    let ch = channel_of(q, &out.shape)?;
    let v: Vec<i64> = x
        .iter()
        .enumerate()
        .map(|(i, &f)| {
            let c = ch(i);
            round_even_clamped(f / q.scale[c.min(q.scale.len() - 1)], zp_at(q, c), lo, hi)
        })
        .collect();
    from_i64(out.dtype, &v)
}

pub(super) fn dequantize(ctx: &Ctx, out: &Tensor) -> anyhow::Result<Data> {
    let at = ctx.ins[0];
    ensure!(out.dtype == DType::F32, "output '{}' must be f32", out.name);
    ensure!(
        out.elements() == at.elements(),
        "output '{}' {:?} and input differ in size",
        out.name,
        out.shape
    );
    let q = at.quant.as_ref().ok_or_else(|| anyhow!("input '{}' has no quantization", at.name))?;
    ensure!(!q.scale.is_empty(), "input '{}' has no scale", at.name);
    let ch = channel_of(q, &at.shape)?;
    let x = to_i64(ctx.inputs[0])?;
    let v = x
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            let c = ch(i);
            (v - zp_at(q, c)) as i32 as f32 * q.scale[c.min(q.scale.len() - 1)]
        })
        .collect();
    Ok(Data::F32(v))
}
