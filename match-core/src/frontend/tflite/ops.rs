//! The other operators: ADD, pooling, RESHAPE/SQUEEZE, PAD, CONCATENATION,
//! SOFTMAX, QUANTIZE, DEQUANTIZE and standalone ReLUs.

use super::conv::{out_size_and_pad, padding_is_same, positive};
use super::quant::{activation_name, activation_range, add_params, quantize_multiplier};
use super::{require_quantized, Ctx, OpInfo, TensorInfo};
use crate::ir::{AddKind, DType, Data, Op, Requant, TensorId};
use anyhow::{ensure, Context, Result};

/// Emits `op` from `inputs` into output tensor `y_idx`, followed by a Clip
/// for a fused activation (`Clip` only when the activation is not NONE).
fn with_activation(
    ctx: &mut Ctx,
    info: &OpInfo,
    op: Op,
    inputs: Vec<TensorId>,
    y_idx: i32,
    activation: i8,
) -> Result<()> {
    let y = ctx.info(y_idx)?;
    let (scale, zp) = y.per_tensor()?;
    let range = activation_range(activation, y.dtype, scale, zp)
        .with_context(|| format!("fused activation {}", activation_name(activation)))?;
    let y_id = ctx.write(y_idx)?;
    match range {
        None => ctx.node(info.name.clone(), op, inputs, vec![y_id]),
        Some((min, max)) => {
            let t = ctx.temp(format!("{}/pre_act", y.name), y.shape.clone(), y.dtype, y.quant.clone());
            ctx.node(info.name.clone(), op, inputs, vec![t]);
            ctx.node(info.part("clip"), Op::Clip { min, max }, vec![t], vec![y_id]);
        }
    }
    Ok(())
}

/// Whether `b` broadcasts over the leading axes of `a` (equal trailing
/// axes after dropping `b`'s leading ones).
fn broadcasts_into(b: &[usize], a: &[usize]) -> bool {
    let first = b.iter().position(|&d| d != 1).unwrap_or(b.len());
    let b = &b[first..];
    b.len() <= a.len() && a[a.len() - b.len()..] == *b
}

/// ADD (int8/uint8): TFLite's rescaled addition, then the fused activation.
pub(super) fn add(ctx: &mut Ctx, info: &OpInfo) -> Result<()> {
    let o = info.op.add_options().context("AddOptions missing")?;
    let (mut ai, mut bi) = (info.input(0)?, info.input(1)?);
    let (mut a, mut b) = (ctx.info(ai)?, ctx.info(bi)?);
    require_quantized("first input", &a)?;
    require_quantized("second input", &b)?;
    let y = ctx.info(info.output()?)?;
    require_quantized("output", &y)?;
    ensure!(
        a.dtype == b.dtype && a.dtype == y.dtype,
        "input types {} and {} with output {}",
        a.dtype,
        b.dtype,
        y.dtype
    );
    if a.shape != b.shape && !broadcasts_into(&b.shape, &a.shape) {
        ensure!(
            broadcasts_into(&a.shape, &b.shape),
            "shapes {:?} and {:?}: only equal shapes or broadcasting over leading axes are supported",
            a.shape,
            b.shape
        );
        // ADD commutes: the broadcast operand goes second.
        std::mem::swap(&mut a, &mut b);
        std::mem::swap(&mut ai, &mut bi);
    }
    ensure!(y.shape == a.shape, "output shape {:?}, expected {:?}", y.shape, a.shape);
    let (sa, za) = a.per_tensor()?;
    let (sb, zb) = b.per_tensor()?;
    let (sy, zy) = y.per_tensor()?;
    let params = add_params([sa, sb], [za, zb], sy, zy)?;
    let inputs = vec![ctx.read(ai)?, ctx.read(bi)?];
    let op = Op::Add { kind: AddKind::TfLite(params) };
    with_activation(ctx, info, op, inputs, info.output()?, o.fused_activation_function())
}

/// AVERAGE_POOL_2D (`average`) or MAX_POOL_2D. TFLite pools without
/// rescaling: the output is read with the input's quantization.
pub(super) fn pool(ctx: &mut Ctx, info: &OpInfo, average: bool) -> Result<()> {
    let o = info.op.pool2d_options().context("Pool2DOptions missing")?;
    let x = ctx.info(info.input(0)?)?;
    require_quantized("input", &x)?;
    ensure!(x.shape.len() == 4, "input {} has shape {:?}, expected NHWC", x.name, x.shape);
    let y_idx = info.output()?;
    let y = ctx.info(y_idx)?;
    ensure!(y.dtype == x.dtype, "output type {} differs from input type {}", y.dtype, x.dtype);
    let same = padding_is_same(o.padding())?;
    let kernel = [positive("filter_height", o.filter_height())?, positive("filter_width", o.filter_width())?];
    let stride = [positive("stride_h", o.stride_h())?, positive("stride_w", o.stride_w())?];
    let (oh, ph) = out_size_and_pad(same, x.shape[1], kernel[0], stride[0], 1).context("height")?;
    let (ow, pw) = out_size_and_pad(same, x.shape[2], kernel[1], stride[1], 1).context("width")?;
    let expected = vec![x.shape[0], oh, ow, x.shape[3]];
    ensure!(y.shape == expected, "output shape {:?}, expected {expected:?}", y.shape);
    let pad = [ph[0], pw[0], ph[1], pw[1]];
    let op = if average {
        Op::AvgPool { kernel, stride, pad, count_include_pad: false }
    } else {
        Op::MaxPool { kernel, stride, pad }
    };
    let x_id = ctx.read(info.input(0)?)?;
    with_activation(ctx, info, op, vec![x_id], y_idx, o.fused_activation_function())
}

/// RESHAPE and SQUEEZE: the output tensor's declared shape, same elements.
pub(super) fn reshape(ctx: &mut Ctx, info: &OpInfo) -> Result<()> {
    let x = ctx.info(info.input(0)?)?;
    let y_idx = info.output()?;
    let y = ctx.info(y_idx)?;
    ensure!(x.dtype == y.dtype, "output type {} differs from input type {}", y.dtype, x.dtype);
    ensure!(
        x.elements() == y.elements(),
        "input shape {:?} and output shape {:?} differ in size",
        x.shape,
        y.shape
    );
    let x_id = ctx.read(info.input(0)?)?;
    let y_id = ctx.write(y_idx)?;
    ctx.node(info.name.clone(), Op::Reshape, vec![x_id], vec![y_id]);
    Ok(())
}

/// A small constant integer tensor's values.
fn const_ints(t: &TensorInfo) -> Result<Vec<i64>> {
    let d = t.data.as_ref().with_context(|| format!("{} must be a constant", t.name))?;
    ensure!(
        matches!(d.dtype(), DType::I32 | DType::I64),
        "{} has type {}, expected int32",
        t.name,
        d.dtype()
    );
    Ok(d.to_i64())
}

/// PAD (pad value: the output zero point) and PADV2 (its constant input).
pub(super) fn pad(ctx: &mut Ctx, info: &OpInfo) -> Result<()> {
    let x = ctx.info(info.input(0)?)?;
    require_quantized("input", &x)?;
    let p = ctx.info(info.input(1)?)?;
    let pads = const_ints(&p)?;
    let rank = x.shape.len();
    ensure!(pads.len() == 2 * rank, "{} paddings for rank {rank}", pads.len());
    let y_idx = info.output()?;
    let y = ctx.info(y_idx)?;
    ensure!(y.dtype == x.dtype, "output type {} differs from input type {}", y.dtype, x.dtype);
    let mut pairs = Vec::with_capacity(rank);
    let mut expected = Vec::with_capacity(rank);
    for (axis, pair) in pads.chunks_exact(2).enumerate() {
        ensure!(
            pair[0] >= 0 && pair[1] >= 0 && pair[0] < 1 << 31 && pair[1] < 1 << 31,
            "padding {pair:?} on axis {axis}"
        );
        let (before, after) = (pair[0] as usize, pair[1] as usize);
        pairs.push([before, after]);
        expected.push(x.shape[axis] + before + after);
    }
    ensure!(y.shape == expected, "output shape {:?}, expected {expected:?}", y.shape);
    let value = match info.optional_input(2) {
        Some(v) => {
            let v = ctx.info(v)?;
            let d = v.data.as_ref().context("PADV2 constant value must be a constant")?;
            ensure!(
                d.len() == 1 && d.dtype() == x.dtype,
                "PADV2 constant value must be one {} value",
                x.dtype
            );
            d.to_i64()[0]
        }
        None => y.per_tensor()?.1,
    };
    let x_id = ctx.read(info.input(0)?)?;
    let y_id = ctx.write(y_idx)?;
    ctx.node(info.name.clone(), Op::Pad { pads: pairs, value }, vec![x_id], vec![y_id]);
    Ok(())
}

/// CONCATENATION: TFLite Micro copies int8 values without rescaling.
pub(super) fn concatenation(ctx: &mut Ctx, info: &OpInfo) -> Result<()> {
    let o = info.op.concatenation_options().context("ConcatenationOptions missing")?;
    let y_idx = info.output()?;
    let y = ctx.info(y_idx)?;
    require_quantized("output", &y)?;
    let rank = y.shape.len() as i64;
    let axis = o.axis() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    ensure!((0..rank).contains(&axis), "axis {} out of range for rank {rank}", o.axis());
    let axis = axis as usize;
    ensure!(!info.inputs.is_empty(), "no inputs");
    let mut ids = Vec::new();
    let mut total = 0usize;
    for k in 0..info.inputs.len() {
        let t = ctx.info(info.input(k)?)?;
        ensure!(t.dtype == y.dtype, "input {k} type {} differs from the output's {}", t.dtype, y.dtype);
        ensure!(t.shape.len() == y.shape.len(), "input {k} rank {} differs from the output's", t.shape.len());
        for (d, (&a, &b)) in t.shape.iter().zip(&y.shape).enumerate() {
            ensure!(d == axis || a == b, "input {k} shape {:?} does not fit output {:?}", t.shape, y.shape);
        }
        total += t.shape[axis];
        ids.push(ctx.read(info.input(k)?)?);
    }
    ensure!(
        total == y.shape[axis],
        "inputs sum to {total} along axis {axis}, the output has {}",
        y.shape[axis]
    );
    with_activation(ctx, info, Op::Concat { axis }, ids, y_idx, o.fused_activation_function())
}

/// SOFTMAX (int8 or uint8 output with TFLite's fixed output quantization).
pub(super) fn softmax(ctx: &mut Ctx, info: &OpInfo) -> Result<()> {
    let o = info.op.softmax_options().context("SoftmaxOptions missing")?;
    let x = ctx.info(info.input(0)?)?;
    require_quantized("input", &x)?;
    let y_idx = info.output()?;
    let y = ctx.info(y_idx)?;
    require_quantized("output", &y)?;
    ensure!(y.shape == x.shape, "output shape {:?} differs from input {:?}", y.shape, x.shape);
    let (x_scale, x_zp) = x.per_tensor()?;
    let (y_scale, y_zp) = y.per_tensor()?;
    let want_zp = if y.dtype == DType::I8 { -128 } else { 0 };
    ensure!(y.dtype == x.dtype, "output type {} differs from input type {}", y.dtype, x.dtype);
    ensure!(
        y_zp == want_zp && (y_scale - 1.0 / 256.0).abs() <= 0.001 / 256.0,
        "output quantization (scale {y_scale}, zero point {y_zp}) must be 1/256, {want_zp}"
    );
    let beta = o.beta();
    ensure!(beta.is_finite() && beta > 0.0, "beta {beta} must be positive");
    let x_id = ctx.read(info.input(0)?)?;
    let y_id = ctx.write(y_idx)?;
    ctx.node(
        info.name.clone(),
        Op::Softmax { beta, input_scale: x_scale, input_zp: x_zp },
        vec![x_id],
        vec![y_id],
    );
    Ok(())
}

/// `x - zp` in int32 (an integer Add of a constant), then a fixed-point
/// requantization by `scale_ratio` to the output: TFLite's `Requantize`
/// (QUANTIZE between integer types) and `ReluQuantized`.
fn rescale(ctx: &mut Ctx, info: &OpInfo, x: &TensorInfo, y: &TensorInfo, out: TensorId) -> Result<()> {
    let (xs, xz) = x.per_tensor()?;
    let (ys, yz) = y.per_tensor()?;
    let (multiplier, shift) = quantize_multiplier(xs as f64 / ys as f64)?;
    let neg_zp = i32::try_from(-xz).context("zero point out of range")?;
    // One value, broadcast (numpy rules) over every element.
    let neg = ctx.constant(format!("{}/neg_zp", x.name), vec![1], None, Data::I32(vec![neg_zp]));
    let x_id = ctx.read(info.input(0)?)?;
    let centered = ctx.temp(format!("{}/centered", y.name), x.shape.clone(), DType::I32, None);
    ctx.node(info.part("offset"), Op::Add { kind: AddKind::Integer }, vec![x_id, neg], vec![centered]);
    let op = Op::Requantize {
        requant: Requant::FixedPoint { multiplier: vec![multiplier], shift: vec![shift] },
        out_zp: yz,
    };
    ctx.node(info.name.clone(), op, vec![centered], vec![out]);
    Ok(())
}

/// QUANTIZE: float -> integer (`Quantize`), or integer -> integer
/// requantization.
pub(super) fn quantize(ctx: &mut Ctx, info: &OpInfo) -> Result<()> {
    let x = ctx.info(info.input(0)?)?;
    let y_idx = info.output()?;
    let y = ctx.info(y_idx)?;
    require_quantized("output", &y)?;
    ensure!(y.shape == x.shape, "output shape {:?} differs from input {:?}", y.shape, x.shape);
    y.per_tensor()?;
    if x.dtype == DType::F32 {
        let x_id = ctx.read(info.input(0)?)?;
        let y_id = ctx.write(y_idx)?;
        ctx.node(info.name.clone(), Op::Quantize, vec![x_id], vec![y_id]);
        return Ok(());
    }
    require_quantized("input", &x)?;
    let y_id = ctx.write(y_idx)?;
    rescale(ctx, info, &x, &y, y_id)
}

/// DEQUANTIZE: integer -> float.
pub(super) fn dequantize(ctx: &mut Ctx, info: &OpInfo) -> Result<()> {
    let x = ctx.info(info.input(0)?)?;
    require_quantized("input", &x)?;
    x.per_tensor()?;
    let y_idx = info.output()?;
    let y = ctx.info(y_idx)?;
    ensure!(y.dtype == DType::F32, "output type {} (expected float32)", y.dtype);
    ensure!(y.shape == x.shape, "output shape {:?} differs from input {:?}", y.shape, x.shape);
    let x_id = ctx.read(info.input(0)?)?;
    let y_id = ctx.write(y_idx)?;
    ctx.node(info.name.clone(), Op::Dequantize, vec![x_id], vec![y_id]);
    Ok(())
}

/// Standalone RELU / RELU6 / RELU_N1_TO_1 (TFLite Micro `ReluQuantized`):
/// a Clip when input and output quantization are equal (the multiplier is
/// then exactly one), else a rescale followed by the Clip.
pub(super) fn relu(ctx: &mut Ctx, info: &OpInfo, activation: i8) -> Result<()> {
    let x = ctx.info(info.input(0)?)?;
    require_quantized("input", &x)?;
    let y_idx = info.output()?;
    let y = ctx.info(y_idx)?;
    require_quantized("output", &y)?;
    ensure!(y.dtype == x.dtype, "output type {} differs from input type {}", y.dtype, x.dtype);
    ensure!(y.shape == x.shape, "output shape {:?} differs from input {:?}", y.shape, x.shape);
    let (xs, xz) = x.per_tensor()?;
    let (ys, yz) = y.per_tensor()?;
    let (min, max) = activation_range(activation, y.dtype, ys, yz)?.context("activation range")?;
    let clip = Op::Clip { min, max };
    if xs == ys && xz == yz {
        let x_id = ctx.read(info.input(0)?)?;
        let y_id = ctx.write(y_idx)?;
        ctx.node(info.name.clone(), clip, vec![x_id], vec![y_id]);
        return Ok(());
    }
    let t = ctx.temp(format!("{}/rescaled", y.name), y.shape.clone(), y.dtype, y.quant.clone());
    rescale(ctx, info, &x, &y, t)?;
    let y_id = ctx.write(y_idx)?;
    ctx.node(info.part("clip"), clip, vec![t], vec![y_id]);
    Ok(())
}
