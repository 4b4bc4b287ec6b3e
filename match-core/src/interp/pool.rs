//! Pooling over NHWC: `avgpool`, `maxpool`, `globalavgpool`,
//! `globalsumpool` and `qlinear_avgpool`.
//!
//! Averages follow TFLite's integer `AveragePool`: the raw quantized values
//! (input and output quantization are equal) are summed in 32 bits and
//! divided by the count of valid elements rounding half away from zero,
//! `acc > 0 ? (acc + n/2) / n : (acc - n/2) / n` with C's truncating
//! division. With `count_include_pad` the divisor is the full window and each
//! padded element contributes the input zero point (real zero). The max
//! ignores padded elements.
//!
//! `globalsumpool` is the int32 part of onnxruntime's
//! `MlasQLinearGlobalAveragePool` (sum, plus `-x_zp * H * W`, wrapping);
//! `qlinear_avgpool` is its `QLinearAveragePool` in f32, in the order the IR
//! documents.

use super::{conv_out_dim, from_i64, to_i32, Ctx};
use crate::ir::{Data, Tensor};
use anyhow::{anyhow, bail, ensure};

/// TFLite's rounded division of a sum by a positive count.
pub(crate) fn rounded_div(acc: i32, n: i32) -> i32 {
    if acc > 0 {
        acc.wrapping_add(n / 2) / n
    } else {
        acc.wrapping_sub(n / 2) / n
    }
}

fn dims(ctx: &Ctx) -> anyhow::Result<[usize; 4]> {
    let t = ctx.ins[0];
    ensure!(t.shape.len() == 4, "input '{}' must be NHWC (rank 4), is {:?}", t.name, t.shape);
    Ok([t.shape[0], t.shape[1], t.shape[2], t.shape[3]])
}

fn out_hw(
    ctx: &Ctx,
    out: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4],
) -> anyhow::Result<[usize; 2]> {
    let [n, h, w, c] = dims(ctx)?;
    let (Some(oh), Some(ow)) = (
        conv_out_dim(h, kernel[0], stride[0], 1, pad[0] + pad[2]),
        conv_out_dim(w, kernel[1], stride[1], 1, pad[1] + pad[3]),
    ) else {
        bail!("the {}x{} window does not fit the {h}x{w} input", kernel[0], kernel[1])
    };
    ensure!(
        out.shape == [n, oh, ow, c],
        "output '{}' is declared {:?}, computed {:?}",
        out.name,
        out.shape,
        [n, oh, ow, c]
    );
    Ok([oh, ow])
}

/// Calls `f(output index, [valid input indices])` for every output element.
fn windows(
    [n, h, w, c]: [usize; 4],
    [oh, ow]: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4],
    mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>),
) {
    let mut o = 0;
    for b in 0..n {
        for oy in 0..oh {
            let y0 = (oy * stride[0]) as isize - pad[0] as isize;
            let ys = y0.max(0) as usize..((y0 + kernel[0] as isize).min(h as isize)).max(0) as usize;
            for ox in 0..ow {
                let x0 = (ox * stride[1]) as isize - pad[1] as isize;
                let xs = x0.max(0) as usize..((x0 + kernel[1] as isize).min(w as isize)).max(0) as usize;
                for ch in 0..c {
                    let mut it =
                        ys.clone().flat_map(|y| xs.clone().map(move |x| ((b * h + y) * w + x) * c + ch));
                    f(o, &mut it);
                    o += 1;
                }
            }
        }
    }
}

pub(super) fn avg_pool(
    ctx: &Ctx,
    out: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4],
    count_include_pad: bool,
) -> anyhow::Result<Data> {
    let d = dims(ctx)?;
    let ohw = out_hw(ctx, out, kernel, stride, pad)?;
    let x = to_i32(ctx.inputs[0])?;
    let zp = ctx.ins[0].quant.as_ref().map_or(0, |q| q.zp()) as i32;
    let full = (kernel[0] * kernel[1]) as i32;
    let mut v = vec![0i64; out.elements()];
    let mut empty = false;
    windows(d, ohw, kernel, stride, pad, |o, it| {
        let (mut acc, mut count) = (0i32, 0i32);
        for i in it {
            acc = acc.wrapping_add(x[i]);
            count += 1;
        }
        if count_include_pad {
            acc = acc.wrapping_add(zp.wrapping_mul(full - count));
            count = full;
        }
        if count == 0 {
            empty = true;
            return;
        }
        v[o] = rounded_div(acc, count) as i64;
    });
    if empty {
        bail!("a pooling window covers only padding");
    }
    from_i64(out.dtype, &v)
}

pub(super) fn max_pool(
    ctx: &Ctx,
    out: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4],
) -> anyhow::Result<Data> {
    let d = dims(ctx)?;
    let ohw = out_hw(ctx, out, kernel, stride, pad)?;
    let x = ctx.inputs[0].to_i64();
    if let Data::F32(xf) = ctx.inputs[0] {
        let mut v = vec![f32::NEG_INFINITY; out.elements()];
        windows(d, ohw, kernel, stride, pad, |o, it| {
            v[o] = it.map(|i| xf[i]).fold(f32::NEG_INFINITY, f32::max);
        });
        return Ok(Data::F32(v));
    }
    let (lo, _) =
        out.dtype.int_range().ok_or_else(|| anyhow!("output '{}' must be an integer type", out.name))?;
    let mut v = vec![lo; out.elements()];
    windows(d, ohw, kernel, stride, pad, |o, it| {
        v[o] = it.map(|i| x[i]).max().unwrap_or(lo);
    });
    from_i64(out.dtype, &v)
}

pub(super) fn global_avg_pool(ctx: &Ctx, out: &Tensor) -> anyhow::Result<Data> {
    let [n, h, w, c] = dims(ctx)?;
    ensure!(
        out.shape == [n, 1, 1, c],
        "output '{}' is declared {:?}, computed {:?}",
        out.name,
        out.shape,
        [n, 1, 1, c]
    );
    ensure!(h * w > 0, "empty input");
    let x = to_i32(ctx.inputs[0])?;
    let mut v = Vec::with_capacity(n * c);
    for b in 0..n {
        for ch in 0..c {
            let mut acc = 0i32;
            for p in 0..h * w {
                acc = acc.wrapping_add(x[(b * h * w + p) * c + ch]);
            }
            v.push(rounded_div(acc, (h * w) as i32) as i64);
        }
    }
    from_i64(out.dtype, &v)
}

pub(super) fn global_sum_pool(ctx: &Ctx, out: &Tensor, x_zp: i64) -> anyhow::Result<Data> {
    let [n, h, w, c] = dims(ctx)?;
    ensure!(
        out.shape == [n, 1, 1, c],
        "output '{}' is declared {:?}, computed {:?}",
        out.name,
        out.shape,
        [n, 1, 1, c]
    );
    ensure!(out.dtype == crate::ir::DType::I32, "output '{}' must be i32, is {}", out.name, out.dtype);
    let x = to_i32(ctx.inputs[0])?;
    let bias = (i32::try_from(x_zp)?).wrapping_mul((h * w) as i32).wrapping_neg();
    let mut v = Vec::with_capacity(n * c);
    for b in 0..n {
        for ch in 0..c {
            let mut acc = bias;
            for p in 0..h * w {
                acc = acc.wrapping_add(x[(b * h * w + p) * c + ch]);
            }
            v.push(acc);
        }
    }
    Ok(Data::I32(v))
}

/// The quantization parameters of a `qlinear_avgpool`.
pub(super) struct QLinearAvg {
    pub x_scale: f32,
    pub x_zp: i64,
    pub y_scale: f32,
    pub y_zp: i64,
}

pub(super) fn qlinear_avg_pool(
    ctx: &Ctx,
    out: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4],
    count_include_pad: bool,
    q: QLinearAvg,
) -> anyhow::Result<Data> {
    let d = dims(ctx)?;
    let ohw = out_hw(ctx, out, kernel, stride, pad)?;
    let (lo, hi) =
        out.dtype.int_range().ok_or_else(|| anyhow!("output '{}' must be an integer type", out.name))?;
    let x = to_i32(ctx.inputs[0])?;
    let x_zp = i32::try_from(q.x_zp)?;
    let full = (kernel[0] * kernel[1]) as f32;
    let mut v = vec![0i64; out.elements()];
    let mut empty = false;
    windows(d, ohw, kernel, stride, pad, |o, it| {
        let (mut acc, mut count) = (0f32, 0usize);
        for i in it {
            acc += q.x_scale * x[i].wrapping_sub(x_zp) as f32;
            count += 1;
        }
        if count == 0 && !count_include_pad {
            empty = true;
            return;
        }
        let avg = acc / if count_include_pad { full } else { count as f32 };
        let r = (avg / q.y_scale + q.y_zp as f32).round_ties_even();
        v[o] = if r.is_nan() { lo } else { (r as i64).clamp(lo, hi) };
    });
    if empty {
        bail!("a pooling window covers only padding");
    }
    from_i64(out.dtype, &v)
}
