//! Data movement: `pad`, `reshape`, `transpose`, `concat`. Any element type;
//! the output type equals the input type.

use super::{strides, Ctx};
use crate::ir::{DType, Data, Tensor};
use anyhow::{bail, ensure};

/// Applies `f` to the vector inside `d`, keeping the variant.
macro_rules! map_data {
    ($d:expr, |$v:ident| $body:expr) => {
        match $d {
            Data::I8($v) => Data::I8($body),
            Data::U8($v) => Data::U8($body),
            Data::I16($v) => Data::I16($body),
            Data::I32($v) => Data::I32($body),
            Data::I64($v) => Data::I64($body),
            Data::F32($v) => Data::F32($body),
        }
    };
}

fn same_type(ctx: &Ctx, out: &Tensor) -> anyhow::Result<()> {
    for t in &ctx.ins[..1] {
        ensure!(
            t.dtype == out.dtype,
            "output '{}' is {} but input '{}' is {}",
            out.name,
            out.dtype,
            t.name,
            t.dtype
        );
    }
    Ok(())
}

/// The pad value in the element type (saturating for integers).
fn fill<T: Copy>(value: i64, dtype: DType, conv: impl Fn(i64) -> T) -> T {
    let v = match dtype.int_range() {
        Some((lo, hi)) => value.clamp(lo, hi),
        None => value,
    };
    conv(v)
}

pub(super) fn pad(ctx: &Ctx, out: &Tensor, pads: &[[usize; 2]], value: i64) -> anyhow::Result<Data> {
    same_type(ctx, out)?;
    let shape = &ctx.ins[0].shape;
    ensure!(pads.len() == shape.len(), "{} pads for a rank-{} input", pads.len(), shape.len());
    let oshape: Vec<usize> = shape.iter().zip(pads).map(|(&d, p)| d + p[0] + p[1]).collect();
    ensure!(out.shape == oshape, "output '{}' is declared {:?}, computed {:?}", out.name, out.shape, oshape);
    let ostr = strides(&oshape);
    // Output offset of each input element, walking the input in order.
    let n = ctx.ins[0].elements();
    let mut dst = Vec::with_capacity(n);
    let mut counter = vec![0usize; shape.len()];
    for _ in 0..n {
        dst.push(counter.iter().zip(pads).zip(&ostr).map(|((&c, p), &s)| (c + p[0]) * s).sum::<usize>());
        for ax in (0..shape.len()).rev() {
            counter[ax] += 1;
            if counter[ax] < shape[ax] {
                break;
            }
            counter[ax] = 0;
        }
    }
    let total = out.elements();
    let dt = out.dtype;
    Ok(map_data!(ctx.inputs[0], |v| {
        let mut o = vec![fill(value, dt, |x| x as _); total];
        for (i, &d) in dst.iter().enumerate() {
            o[d] = v[i];
        }
        o
    }))
}

pub(super) fn reshape(ctx: &Ctx, out: &Tensor) -> anyhow::Result<Data> {
    same_type(ctx, out)?;
    ensure!(
        out.elements() == ctx.ins[0].elements(),
        "output '{}' {:?} and input {:?} differ in size",
        out.name,
        out.shape,
        ctx.ins[0].shape
    );
    Ok(ctx.inputs[0].clone())
}

pub(super) fn transpose(ctx: &Ctx, out: &Tensor, perm: &[usize]) -> anyhow::Result<Data> {
    same_type(ctx, out)?;
    let shape = &ctx.ins[0].shape;
    let mut seen = vec![false; shape.len()];
    ensure!(perm.len() == shape.len(), "perm {perm:?} for a rank-{} input", shape.len());
    for &p in perm {
        ensure!(p < shape.len() && !seen[p], "perm {perm:?} is not a permutation");
        seen[p] = true;
    }
    let oshape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    ensure!(out.shape == oshape, "output '{}' is declared {:?}, computed {:?}", out.name, out.shape, oshape);
    let istr = strides(shape);
    let src_str: Vec<usize> = perm.iter().map(|&p| istr[p]).collect();
    let total = out.elements();
    let mut src = Vec::with_capacity(total);
    let mut counter = vec![0usize; oshape.len()];
    let mut cur = 0usize;
    for _ in 0..total {
        src.push(cur);
        for ax in (0..oshape.len()).rev() {
            counter[ax] += 1;
            cur += src_str[ax];
            if counter[ax] < oshape[ax] {
                break;
            }
            cur -= src_str[ax] * counter[ax];
            counter[ax] = 0;
        }
    }
    Ok(map_data!(ctx.inputs[0], |v| src.iter().map(|&i| v[i]).collect()))
}

pub(super) fn concat(ctx: &Ctx, out: &Tensor, axis: usize) -> anyhow::Result<Data> {
    let first = ctx.ins[0];
    ensure!(axis < first.shape.len(), "axis {axis} is out of range for {:?}", first.shape);
    let mut oshape = first.shape.clone();
    oshape[axis] = 0;
    for t in &ctx.ins {
        ensure!(t.dtype == out.dtype, "input '{}' is {} but the output is {}", t.name, t.dtype, out.dtype);
        let ok = t.shape.len() == first.shape.len()
            && t.shape.iter().zip(&first.shape).enumerate().all(|(i, (a, b))| i == axis || a == b);
        ensure!(ok, "input '{}' {:?} does not match {:?} off axis {axis}", t.name, t.shape, first.shape);
        oshape[axis] += t.shape[axis];
    }
    ensure!(out.shape == oshape, "output '{}' is declared {:?}, computed {:?}", out.name, out.shape, oshape);
    let outer: usize = first.shape[..axis].iter().product();
    let inner: usize = first.shape[axis + 1..].iter().product();
    macro_rules! cat {
        ($variant:ident) => {{
            let mut o = Vec::with_capacity(out.elements());
            for r in 0..outer {
                for (t, d) in ctx.ins.iter().zip(ctx.inputs) {
                    let Data::$variant(v) = d else { bail!("mixed input types") };
                    let chunk = t.shape[axis] * inner;
                    o.extend_from_slice(&v[r * chunk..(r + 1) * chunk]);
                }
            }
            Data::$variant(o)
        }};
    }
    Ok(match ctx.inputs[0] {
        Data::I8(_) => cat!(I8),
        Data::U8(_) => cat!(U8),
        Data::I16(_) => cat!(I16),
        Data::I32(_) => cat!(I32),
        Data::I64(_) => cat!(I64),
        Data::F32(_) => cat!(F32),
    })
}
