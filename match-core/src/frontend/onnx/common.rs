//! Operators shared by every dialect: Constant, integer Add (wrapping),
//! MaxPool, Flatten/Reshape/Squeeze/Unsqueeze, Transpose, Relu/Clip, Cast.
//! Layout-only operators and MaxPool pass a pending QDQ value through
//! (they commute with dequantization), so `DQ -> MaxPool -> Q` needs no
//! float arithmetic.

use super::conv::{self, window};
use super::{tensor, Ctx, Val, N};
use crate::ir::{AddKind, DType, Data, Op, TensorId};
use anyhow::{bail, Context, Result};

pub fn constant(ctx: &mut Ctx, n: &N) -> Result<()> {
    let out = n.output(0)?;
    let t = n.attr("value").and_then(|a| a.t.as_ref());
    let c = if let Some(t) = t {
        tensor::decode(t)?
    } else if let Some(a) = n.attr("value_float") {
        tensor::Const { shape: vec![], data: Data::F32(vec![a.f]) }
    } else if let Some(a) = n.attr("value_int") {
        tensor::Const { shape: vec![], data: Data::I64(vec![a.i]) }
    } else if let Some(a) = n.attr("value_ints") {
        tensor::Const { shape: vec![a.ints.len()], data: Data::I64(a.ints.clone()) }
    } else if let Some(a) = n.attr("value_floats") {
        tensor::Const { shape: vec![a.floats.len()], data: Data::F32(a.floats.clone()) }
    } else {
        bail!("Constant without a supported value attribute");
    };
    let id = ctx.add_const(out, c.shape, c.data);
    ctx.vals.insert(out.to_string(), Val::T { id, nhwc: false });
    Ok(())
}

/// Brings two tensors to one layout: NHWC when either is NHWC.
fn same_layout(
    ctx: &mut Ctx,
    n: &N,
    a: (TensorId, bool),
    b: (TensorId, bool),
) -> Result<(TensorId, TensorId, bool)> {
    if a.1 == b.1 {
        return Ok((a.0, b.0, a.1));
    }
    let a2 = ctx.nhwc_of(a.0, a.1, &n.name)?;
    let b2 = ctx.nhwc_of(b.0, b.1, &n.name)?;
    Ok((a2, b2, true))
}

/// Brings two values to one layout (public for QDQ Add).
pub fn pair_layout(
    ctx: &mut Ctx,
    n: &N,
    a: (TensorId, bool),
    b: (TensorId, bool),
) -> Result<(TensorId, TensorId, bool)> {
    let (sa, sb) = (ctx.tensor(a.0).shape.clone(), ctx.tensor(b.0).shape.clone());
    if sa.len() != sb.len() && (a.1 || b.1) {
        // Only same-rank operands can be permuted consistently.
        let a2 = ctx.onnx_of(a.0, a.1, &n.name);
        let b2 = ctx.onnx_of(b.0, b.1, &n.name);
        return Ok((a2, b2, false));
    }
    same_layout(ctx, n, a, b)
}

/// Checks that `b` broadcasts over `a` as the IR's Add allows (b's shape a
/// suffix of a's, or equal).
pub fn check_add_shapes(ctx: &Ctx, a: TensorId, b: TensorId) -> Result<Vec<usize>> {
    let (sa, sb) = (&ctx.tensor(a).shape, &ctx.tensor(b).shape);
    let core: Vec<usize> = sb.iter().copied().skip_while(|&d| d == 1).collect();
    let ok = sa == sb || (core.len() <= sa.len() && sa[sa.len() - core.len()..] == core[..]);
    if !ok {
        bail!(
            "Add of {sa:?} and {sb:?}: only equal shapes or b broadcast over a's leading axes are supported"
        );
    }
    Ok(sa.clone())
}

/// Integer Add of two same-type tensors: wraps around (ONNX/numpy).
pub fn add(ctx: &mut Ctx, n: &N) -> Result<()> {
    let (a, b) = (ctx.int_act(n.req_input(0)?)?, ctx.int_act(n.req_input(1)?)?);
    let (a, b, nhwc) = pair_layout(ctx, n, a, b)?;
    let (da, db) = (ctx.tensor(a).dtype, ctx.tensor(b).dtype);
    if da != db {
        bail!("Add of {da} and {db}");
    }
    let (a, b) = if ctx.tensor(a).is_const() && !ctx.tensor(b).is_const() { (b, a) } else { (a, b) };
    let shape = check_add_shapes(ctx, a, b)?;
    let out = n.output(0)?;
    let o = ctx.emit1(&n.name, Op::Add { kind: AddKind::Wrapping }, vec![a, b], out, shape, da);
    ctx.vals.insert(out.to_string(), Val::T { id: o, nhwc });
    Ok(())
}

pub fn maxpool(ctx: &mut Ctx, n: &N) -> Result<()> {
    let x = n.req_input(0)?;
    let v = ctx.val(x)?;
    let (id, nhwc) = match &v {
        Val::T { id, nhwc } => (*id, *nhwc),
        Val::Deq { q, nhwc, .. } => (*q, *nhwc),
    };
    if ctx.tensor(id).dtype == DType::F32 {
        bail!("MaxPool on a float tensor: the compiler takes quantized integer models");
    }
    if n.p.output.len() > 1 && n.output(1).is_ok() {
        bail!("MaxPool's Indices output is not supported");
    }
    if n.attr_i("storage_order", 0) != 0 {
        bail!("storage_order 1 is not supported");
    }
    let x = ctx.nhwc_of(id, nhwc, &n.name)?;
    let s = ctx.tensor(x).shape.clone();
    let w = window(n, [s[1], s[2]], None, true)?;
    if w.dilation != [1, 1] {
        bail!("dilated MaxPool is not supported");
    }
    let out = n.output(0)?;
    let op = Op::MaxPool { kernel: w.kernel, stride: w.stride, pad: w.pad };
    let o = ctx.emit1(&n.name, op, vec![x], out, vec![s[0], w.out[0], w.out[1], s[3]], ctx.tensor(x).dtype);
    let nv = match v {
        Val::Deq { quant, .. } => Val::Deq { q: o, nhwc: true, quant },
        Val::T { .. } => Val::T { id: o, nhwc: true },
    };
    ctx.vals.insert(out.to_string(), nv);
    Ok(())
}

/// Flatten, Reshape, Squeeze, Unsqueeze: a Reshape in ONNX element order.
pub fn reshape(ctx: &mut Ctx, n: &N) -> Result<()> {
    let v = ctx.val(n.req_input(0)?)?;
    let (id, nhwc, quant) = match v {
        Val::T { id, nhwc } => (id, nhwc, None),
        Val::Deq { q, nhwc, quant } => {
            if quant.is_per_channel() {
                bail!("reshaping a per-channel quantized value is not supported");
            }
            (q, nhwc, Some(quant))
        }
    };
    let ishape = ctx.onnx_shape(id, nhwc);
    let total = tensor::count(&ishape);
    let shape: Vec<usize> = match n.op() {
        "Flatten" => {
            let axis = super::normalize_axis(n.attr_i("axis", 1), ishape.len() + 1)?;
            vec![tensor::count(&ishape[..axis]), tensor::count(&ishape[axis..])]
        }
        "Reshape" => {
            let spec = ctx.const_ints(n.req_input(1)?)?;
            let allow_zero = n.attr_i("allowzero", 0) != 0;
            let mut out = Vec::with_capacity(spec.len());
            let mut infer = None;
            for (i, &d) in spec.iter().enumerate() {
                match d {
                    0 if !allow_zero => {
                        out.push(*ishape.get(i).context("Reshape: 0 copies a missing dimension")?)
                    }
                    -1 if infer.is_none() => {
                        infer = Some(i);
                        out.push(1);
                    }
                    d if d >= 0 => out.push(
                        usize::try_from(d)
                            .ok()
                            .filter(|&d| d <= tensor::MAX_ELEMENTS)
                            .context("dimension")?,
                    ),
                    d => bail!("Reshape: invalid dimension {d}"),
                }
            }
            if let Some(i) = infer {
                let rest = tensor::count(&out);
                if rest == 0 || !total.is_multiple_of(rest) {
                    bail!("Reshape {spec:?} of {ishape:?}: cannot infer -1");
                }
                out[i] = total / rest;
            }
            out
        }
        "Squeeze" | "Unsqueeze" => {
            let axes: Vec<i64> = match (n.attr_ints("axes"), n.input(1)) {
                (Some(a), _) => a.to_vec(),
                (None, Some(a)) => ctx.const_ints(a)?,
                (None, None) if n.op() == "Squeeze" => {
                    (0..ishape.len() as i64).filter(|&i| ishape[i as usize] == 1).collect()
                }
                _ => bail!("Unsqueeze without axes"),
            };
            if n.op() == "Squeeze" {
                let axes: Vec<usize> =
                    axes.iter().map(|&a| super::normalize_axis(a, ishape.len())).collect::<Result<_>>()?;
                ishape.iter().enumerate().filter(|(i, _)| !axes.contains(i)).map(|(_, &d)| d).collect()
            } else {
                let rank = ishape.len() + axes.len();
                let axes: Vec<usize> =
                    axes.iter().map(|&a| super::normalize_axis(a, rank)).collect::<Result<_>>()?;
                let mut it = ishape.iter();
                (0..rank)
                    .map(|i| if axes.contains(&i) { 1 } else { it.next().copied().unwrap_or(1) })
                    .collect()
            }
        }
        op => bail!("unexpected {op}"),
    };
    if tensor::count(&shape) != total {
        bail!("cannot reshape {ishape:?} to {shape:?}");
    }
    let x = ctx.onnx_of(id, nhwc, &n.name);
    let out = n.output(0)?;
    let dt = ctx.tensor(x).dtype;
    let o = if let Some(d) = ctx.tensor(x).data.clone() {
        ctx.add_const(out, shape, d)
    } else {
        ctx.emit1(&n.name, Op::Reshape, vec![x], out, shape, dt)
    };
    let nv = match quant {
        Some(quant) => Val::Deq { q: o, nhwc: false, quant },
        None => Val::T { id: o, nhwc: false },
    };
    ctx.vals.insert(out.to_string(), nv);
    Ok(())
}

pub fn transpose(ctx: &mut Ctx, n: &N) -> Result<()> {
    let v = ctx.val(n.req_input(0)?)?;
    let (id, nhwc, quant) = match v {
        Val::T { id, nhwc } => (id, nhwc, None),
        Val::Deq { q, nhwc, quant } if !quant.is_per_channel() => (q, nhwc, Some(quant)),
        Val::Deq { .. } => bail!("transposing a per-channel quantized value is not supported"),
    };
    let x = ctx.onnx_of(id, nhwc, &n.name);
    let rank = ctx.tensor(x).shape.len();
    let perm: Vec<usize> = match n.attr_ints("perm") {
        Some(p) => p.iter().map(|&a| super::normalize_axis(a, rank)).collect::<Result<_>>()?,
        None => (0..rank).rev().collect(),
    };
    let mut seen = vec![false; rank];
    for &p in &perm {
        if seen[p] {
            bail!("perm {perm:?} is not a permutation");
        }
        seen[p] = true;
    }
    if perm.len() != rank {
        bail!("perm {perm:?} for rank {rank}");
    }
    let out = n.output(0)?;
    let o = ctx.transpose(x, &perm, out, &n.name);
    let nv = match quant {
        Some(quant) => Val::Deq { q: o, nhwc: false, quant },
        None => Val::T { id: o, nhwc: false },
    };
    ctx.vals.insert(out.to_string(), nv);
    Ok(())
}

/// Bound of a Clip: input k (a constant) or the opset-6 attribute.
fn clip_bound(ctx: &Ctx, n: &N, k: usize, attr: &str) -> Result<Option<f64>> {
    if let Some(name) = n.input(k) {
        let (_, d) = ctx.const_of(name)?;
        if d.len() != 1 {
            bail!("Clip bound `{name}` must be a scalar");
        }
        return Ok(Some(match d {
            Data::F32(v) => v[0] as f64,
            d => d.to_i64()[0] as f64,
        }));
    }
    Ok(n.attr_f(attr).map(|f| f as f64))
}

/// Relu and Clip on an integer tensor, or on a pending QDQ value (clipped in
/// the quantized domain: `clamp(q, round(min / s) + zp, round(max / s) + zp)`,
/// which equals clipping the float and quantizing with the same parameters).
pub fn clip(ctx: &mut Ctx, n: &N) -> Result<()> {
    let v = ctx.val(n.req_input(0)?)?;
    let (lo, hi) = if n.op() == "Relu" {
        (Some(0.0), None)
    } else {
        (clip_bound(ctx, n, 1, "min")?, clip_bound(ctx, n, 2, "max")?)
    };
    let out = n.output(0)?;
    match v {
        Val::T { id, nhwc } => {
            let dt = ctx.tensor(id).dtype;
            let (tmin, tmax) = dt
                .int_range()
                .context("Clip/Relu on a float tensor: the compiler takes quantized integer models")?;
            let to_int = |b: Option<f64>, d: i64| -> i64 {
                b.map(|f| if f.is_nan() { d } else { f.ceil().clamp(tmin as f64, tmax as f64) as i64 })
                    .unwrap_or(d)
            };
            let min = to_int(lo, tmin);
            let max = hi
                .map(|f| if f.is_nan() { tmax } else { f.floor().clamp(tmin as f64, tmax as f64) as i64 })
                .unwrap_or(tmax);
            let o = conv::clip(ctx, n, id, min, max, out);
            ctx.vals.insert(out.to_string(), Val::T { id: o, nhwc });
        }
        Val::Deq { q, nhwc, quant } => {
            if quant.is_per_channel() {
                bail!("Clip of a per-channel quantized value is not supported");
            }
            let (qmin, qmax) = ctx.tensor(q).dtype.int_range().context("quantized type")?;
            let (min, max) = quantized_bounds(lo, hi, quant.scale[0], quant.zp(), qmin, qmax);
            let o = conv::clip(ctx, n, q, min, max, out);
            ctx.vals.insert(out.to_string(), Val::Deq { q: o, nhwc, quant });
        }
    }
    Ok(())
}

/// Float clip bounds in the quantized domain of (scale, zp), within
/// [qmin, qmax].
pub fn quantized_bounds(
    lo: Option<f64>,
    hi: Option<f64>,
    scale: f32,
    zp: i64,
    qmin: i64,
    qmax: i64,
) -> (i64, i64) {
    let q = |f: f64| -> i64 {
        let v = (f as f32 / scale).round_ties_even() as f64 + zp as f64;
        v.clamp(qmin as f64, qmax as f64) as i64
    };
    (lo.map(q).unwrap_or(qmin), hi.map(q).unwrap_or(qmax))
}

pub fn cast(ctx: &mut Ctx, n: &N) -> Result<()> {
    let to = n.attr("to").context("Cast without `to`")?.i as i32;
    let dt = tensor::dtype(to)?;
    let (id, nhwc) = match ctx.val(n.req_input(0)?)? {
        Val::T { id, nhwc } => (id, nhwc),
        Val::Deq { .. } => bail!("Cast of a dequantized value is not supported"),
    };
    let out = n.output(0)?;
    let t = ctx.tensor(id).clone();
    let o = if t.dtype == dt {
        id
    } else if let Some(d) = &t.data {
        let data = match (d, dt) {
            (Data::F32(v), dt) => Data::from_i64(
                dt,
                &v.iter().map(|&f| if f.is_nan() { 0 } else { f.trunc() as i64 }).collect::<Vec<_>>(),
            ),
            (d, DType::F32) => Data::F32(d.to_i64().iter().map(|&v| v as f32).collect()),
            (d, dt) => Data::from_i64(dt, &d.to_i64()),
        };
        ctx.add_const(out, t.shape.clone(), data)
    } else {
        conv::cast(ctx, n, id, dt, out)
    };
    ctx.vals.insert(out.to_string(), Val::T { id: o, nhwc });
    Ok(())
}
