//! `conv2d` (grouped, strided, dilated, explicitly padded; NHWC x OHWI),
//! `dense` and `matmul` (batched, numpy-broadcast batch axes): the raw int32 accumulator of `(x - x_zp) * (w - w_zp[k])`,
//! accumulated in 32 bits with wrap-around as TFLite's and onnxruntime's
//! int32 accumulators do. Padding reads as `x_zp`, i.e. contributes nothing.

use super::eltwise::{broadcast_index, broadcast_shape};
use super::{per_channel, to_i32, Ctx};
use crate::ir::{DType, Data, Tensor};
use anyhow::{bail, ensure};

/// Output extent of a convolution or pooling window along one axis, `None`
/// when the window does not fit.
pub(crate) fn conv_out_dim(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pads: usize,
) -> Option<usize> {
    if stride == 0 || dilation == 0 || kernel == 0 {
        return None;
    }
    let span = dilation * (kernel - 1) + 1;
    let padded = input + pads;
    (padded >= span).then(|| (padded - span) / stride + 1)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn conv2d(
    ctx: &Ctx,
    out: &Tensor,
    stride: [usize; 2],
    dilation: [usize; 2],
    pad: [usize; 4],
    groups: usize,
    x_zp: i64,
    w_zp: &[i64],
) -> anyhow::Result<Data> {
    let (xt, wt) = (ctx.ins[0], ctx.ins[1]);
    ensure!(xt.shape.len() == 4, "input '{}' must be NHWC (rank 4), is {:?}", xt.name, xt.shape);
    ensure!(wt.shape.len() == 4, "weights '{}' must be OHWI (rank 4), are {:?}", wt.name, wt.shape);
    let [n, h, w, c] = [xt.shape[0], xt.shape[1], xt.shape[2], xt.shape[3]];
    let [k, fy, fx, cg] = [wt.shape[0], wt.shape[1], wt.shape[2], wt.shape[3]];
    ensure!(
        groups >= 1 && c % groups == 0 && k % groups == 0,
        "groups {groups} does not divide C={c} and K={k}"
    );
    ensure!(
        cg == c / groups,
        "weights {:?} need C/groups = {} input channels per group",
        wt.shape,
        c / groups
    );
    let (Some(oh), Some(ow)) = (
        conv_out_dim(h, fy, stride[0], dilation[0], pad[0] + pad[2]),
        conv_out_dim(w, fx, stride[1], dilation[1], pad[1] + pad[3]),
    ) else {
        bail!("the {fy}x{fx} window does not fit the {h}x{w} input")
    };
    ensure!(
        out.shape == [n, oh, ow, k],
        "output '{}' is declared {:?}, computed {:?}",
        out.name,
        out.shape,
        [n, oh, ow, k]
    );
    ensure!(out.dtype == DType::I32, "output '{}' must be i32 (the accumulator), is {}", out.name, out.dtype);
    let w_zp = per_channel("w_zp", w_zp, k, 0)?;
    let x_zp = i32::try_from(x_zp)?;
    let xs: Vec<i32> = to_i32(ctx.inputs[0])?.into_iter().map(|v| v.wrapping_sub(x_zp)).collect();
    let mut ws = to_i32(ctx.inputs[1])?;
    let per_k = fy * fx * cg;
    for (kk, chunk) in ws.chunks_mut(per_k.max(1)).enumerate() {
        let zp = i32::try_from(w_zp[kk])?;
        chunk.iter_mut().for_each(|v| *v = v.wrapping_sub(zp));
    }
    let kg = k / groups;
    let mut acc = vec![0i32; n * oh * ow * k];
    let mut o = 0;
    for b in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for kk in 0..k {
                    let c0 = (kk / kg) * cg;
                    let wk = &ws[kk * per_k..(kk + 1) * per_k];
                    let mut sum = 0i32;
                    for ky in 0..fy {
                        let iy = (oy * stride[0] + ky * dilation[0]) as isize - pad[0] as isize;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        for kx in 0..fx {
                            let ix = (ox * stride[1] + kx * dilation[1]) as isize - pad[1] as isize;
                            if ix < 0 || ix >= w as isize {
                                continue;
                            }
                            let base = ((b * h + iy as usize) * w + ix as usize) * c + c0;
                            let xrow = &xs[base..base + cg];
                            let wrow = &wk[(ky * fx + kx) * cg..(ky * fx + kx + 1) * cg];
                            for (&xv, &wv) in xrow.iter().zip(wrow) {
                                sum = sum.wrapping_add(xv.wrapping_mul(wv));
                            }
                        }
                    }
                    acc[o] = sum;
                    o += 1;
                }
            }
        }
    }
    Ok(Data::I32(acc))
}

pub(super) fn dense(ctx: &Ctx, out: &Tensor, x_zp: i64, w_zp: &[i64]) -> anyhow::Result<Data> {
    let (xt, wt) = (ctx.ins[0], ctx.ins[1]);
    ensure!(wt.shape.len() == 2, "weights '{}' must be (K, C), are {:?}", wt.name, wt.shape);
    let (k, c) = (wt.shape[0], wt.shape[1]);
    ensure!(
        xt.shape.last() == Some(&c),
        "input '{}' {:?} must end with C = {c} (weights {:?})",
        xt.name,
        xt.shape,
        wt.shape
    );
    let rows = xt.elements() / c.max(1);
    let mut expect = xt.shape.clone();
    *expect.last_mut().expect("rank checked") = k;
    ensure!(out.shape == expect, "output '{}' is declared {:?}, computed {:?}", out.name, out.shape, expect);
    ensure!(out.dtype == DType::I32, "output '{}' must be i32 (the accumulator), is {}", out.name, out.dtype);
    let w_zp = per_channel("w_zp", w_zp, k, 0)?;
    let x_zp = i32::try_from(x_zp)?;
    let xs: Vec<i32> = to_i32(ctx.inputs[0])?.into_iter().map(|v| v.wrapping_sub(x_zp)).collect();
    let mut ws = to_i32(ctx.inputs[1])?;
    for (kk, chunk) in ws.chunks_mut(c.max(1)).enumerate() {
        let zp = i32::try_from(w_zp[kk])?;
        chunk.iter_mut().for_each(|v| *v = v.wrapping_sub(zp));
    }
    let mut acc = Vec::with_capacity(rows * k);
    for r in 0..rows {
        let xrow = &xs[r * c..(r + 1) * c];
        for kk in 0..k {
            let wrow = &ws[kk * c..(kk + 1) * c];
            acc.push(xrow.iter().zip(wrow).fold(0i32, |s, (&a, &b)| s.wrapping_add(a.wrapping_mul(b))));
        }
    }
    Ok(Data::I32(acc))
}

/// The output shape of `a (..., M, K) x b (..., K, N)`, or why it has none.
pub(crate) fn matmul_shape(a: &[usize], b: &[usize]) -> anyhow::Result<Vec<usize>> {
    ensure!(a.len() >= 2 && b.len() >= 2, "matmul needs inputs of rank 2 or more, got {a:?} and {b:?}");
    let (m, k) = (a[a.len() - 2], a[a.len() - 1]);
    let (k2, n) = (b[b.len() - 2], b[b.len() - 1]);
    ensure!(k == k2, "inner dimensions differ: {a:?} x {b:?}");
    let Some(mut batch) = broadcast_shape(&a[..a.len() - 2], &b[..b.len() - 2]) else {
        bail!("batch axes of {a:?} and {b:?} do not broadcast")
    };
    batch.extend([m, n]);
    Ok(batch)
}

pub(super) fn matmul(ctx: &Ctx, out: &Tensor, a_zp: i64, b_zp: &[i64]) -> anyhow::Result<Data> {
    let (at, bt) = (ctx.ins[0], ctx.ins[1]);
    let shape = matmul_shape(&at.shape, &bt.shape)?;
    ensure!(out.shape == shape, "output '{}' is declared {:?}, computed {:?}", out.name, out.shape, shape);
    ensure!(out.dtype == DType::I32, "output '{}' must be i32 (the accumulator), is {}", out.name, out.dtype);
    let (ra, rb) = (at.shape.len(), bt.shape.len());
    let (m, k, n) = (at.shape[ra - 2], at.shape[ra - 1], bt.shape[rb - 1]);
    let b_zp = per_channel("b_zp", b_zp, n, 0)?;
    let a_zp = i32::try_from(a_zp)?;
    let a: Vec<i32> = to_i32(ctx.inputs[0])?.into_iter().map(|v| v.wrapping_sub(a_zp)).collect();
    let mut b = to_i32(ctx.inputs[1])?;
    for (i, v) in b.iter_mut().enumerate() {
        *v = v.wrapping_sub(i32::try_from(b_zp[i % n.max(1)])?);
    }
    // Batch index of each operand, by broadcasting matrix indices.
    let batch = &shape[..shape.len() - 2];
    let ia = broadcast_index(&at.shape[..ra - 2], batch)?;
    let ib = broadcast_index(&bt.shape[..rb - 2], batch)?;
    let mut acc = Vec::with_capacity(out.elements());
    for (&ba, &bb) in ia.iter().zip(&ib) {
        let am = &a[ba * m * k..(ba + 1) * m * k];
        let bm = &b[bb * k * n..(bb + 1) * k * n];
        for i in 0..m {
            for j in 0..n {
                let mut s = 0i32;
                for kk in 0..k {
                    s = s.wrapping_add(am[i * k + kk].wrapping_mul(bm[kk * n + j]));
                }
                acc.push(s);
            }
        }
    }
    Ok(Data::I32(acc))
}
