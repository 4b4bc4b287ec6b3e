//! CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED: the raw int32
//! accumulator (`Conv2d` / `Dense`), then `BiasAdd`, `Requantize`
//! (per-channel fixed point) and `Clip` for a fused activation.

use super::quant::{activation_name, activation_range, conv_multiplier};
use super::{require_quantized, Ctx, OpInfo, TensorInfo};
use crate::ir::{DType, Data, Op, Quant, Requant, TensorId};
use anyhow::{bail, ensure, Context, Result};

/// TFLite `ComputeOutSize` and `ComputePaddingWithOffset`: the output size
/// and the (before, after) padding of one spatial axis. `same` is
/// `Padding.SAME`; VALID is the other value.
pub(super) fn out_size_and_pad(
    same: bool,
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Result<(usize, [usize; 2])> {
    ensure!(stride >= 1 && dilation >= 1 && kernel >= 1, "stride, dilation and kernel size must be positive");
    let (input, kernel, stride, dilation) = (input as i64, kernel as i64, stride as i64, dilation as i64);
    let effective = (kernel - 1) * dilation + 1;
    let out = if same { (input + stride - 1) / stride } else { (input + stride - effective) / stride };
    ensure!(out >= 1, "a kernel of {effective} (dilated) does not fit the input of {input}");
    let total = ((out - 1) * stride + effective - input).max(0);
    let before = total / 2;
    Ok((out as usize, [before as usize, (total - before) as usize]))
}

/// Reads the padding code of a convolution or pooling.
pub(super) fn padding_is_same(code: i8) -> Result<bool> {
    match code {
        0 => Ok(true),
        1 => Ok(false),
        other => bail!("unknown padding {other}"),
    }
}

/// A positive option value as usize.
pub(super) fn positive(what: &str, v: i32) -> Result<usize> {
    ensure!(v >= 1, "{what} is {v}, must be at least 1");
    Ok(v as usize)
}

/// The requantization, bias and activation tail shared by every
/// accumulating operator: `acc` (int32, last axis K) -> [BiasAdd] ->
/// Requantize -> [Clip] -> `y`.
struct Tail<'i> {
    x: &'i TensorInfo,
    w: &'i TensorInfo,
    bias: Option<i32>,
    y_idx: i32,
    activation: i8,
    k: usize,
}

fn emit_tail(ctx: &mut Ctx, info: &OpInfo, acc: TensorId, tail: Tail) -> Result<()> {
    let Tail { x, w, bias, y_idx, activation, k } = tail;
    let y = ctx.info(y_idx)?;
    require_quantized("output", &y)?;
    ensure!(y.dtype == x.dtype, "output type {} differs from input type {}", y.dtype, x.dtype);
    let (x_scale, _) = x.per_tensor()?;
    let (y_scale, y_zp) = y.per_tensor()?;
    let wq = w.quant.as_ref().context("filter has no quantization parameters")?;
    let acc_shape = ctx.graph.tensor(acc).shape.clone();
    ensure!(acc_shape == y.shape, "output shape {:?} differs from the computed shape {acc_shape:?}", y.shape);

    let mut cur = acc;
    if let Some(b) = bias {
        let bi = ctx.info(b)?;
        ensure!(bi.data.is_some(), "bias {} is not a constant", bi.name);
        ensure!(bi.dtype == DType::I32, "bias {} has type {}, expected int32", bi.name, bi.dtype);
        ensure!(bi.elements() == k, "bias {} has {} values for {k} output channels", bi.name, bi.elements());
        let bid = ctx.read(b)?;
        let out = ctx.temp(format!("{}/bias", y.name), acc_shape.clone(), DType::I32, None);
        ctx.node(info.part("bias"), Op::BiasAdd, vec![cur, bid], vec![out]);
        cur = out;
    }

    let mut multiplier = Vec::with_capacity(wq.scale.len());
    let mut shift = Vec::with_capacity(wq.scale.len());
    for (c, &ws) in wq.scale.iter().enumerate() {
        super::quant::check_scale(&format!("filter channel {c}"), ws)?;
        let (m, s) = conv_multiplier(x_scale, ws, y_scale).with_context(|| format!("output channel {c}"))?;
        multiplier.push(m);
        shift.push(s);
    }
    let range = activation_range(activation, y.dtype, y_scale, y_zp)
        .with_context(|| format!("fused activation {}", activation_name(activation)))?;
    let y_id = ctx.write(y_idx)?;
    let requant = Op::Requantize { requant: Requant::FixedPoint { multiplier, shift }, out_zp: y_zp };
    match range {
        None => ctx.node(info.part("requant"), requant, vec![cur], vec![y_id]),
        Some((min, max)) => {
            let q = ctx.temp(format!("{}/requant", y.name), acc_shape, y.dtype, y.quant.clone());
            ctx.node(info.part("requant"), requant, vec![cur], vec![q]);
            ctx.node(info.part("clip"), Op::Clip { min, max }, vec![q], vec![y_id]);
        }
    }
    Ok(())
}

/// The accumulator's quantization: input scale times filter scale.
fn acc_quant(x_scale: f32, w: &Quant) -> Quant {
    Quant {
        scale: w.scale.iter().map(|&s| x_scale * s).collect(),
        zero_point: vec![0; w.scale.len()],
        axis: 3,
    }
}

/// The constant filter of a compute operator.
fn filter(ctx: &Ctx, info: &OpInfo, x: &TensorInfo) -> Result<TensorInfo> {
    let w = ctx.info(info.input(1)?)?;
    require_quantized("filter", &w)?;
    ensure!(w.data.is_some(), "filter {} is not a constant", w.name);
    ensure!(
        w.dtype == x.dtype || w.dtype == DType::I8,
        "filter type {} with input type {}",
        w.dtype,
        x.dtype
    );
    Ok(w)
}

/// CONV_2D (`depthwise == false`) or DEPTHWISE_CONV_2D.
pub(super) fn conv2d(ctx: &mut Ctx, info: &OpInfo, depthwise: bool) -> Result<()> {
    let x = ctx.info(info.input(0)?)?;
    require_quantized("input", &x)?;
    ensure!(x.shape.len() == 4, "input {} has shape {:?}, expected NHWC", x.name, x.shape);
    let w = filter(ctx, info, &x)?;
    ensure!(w.shape.len() == 4, "filter {} has shape {:?}, expected 4 dimensions", w.name, w.shape);
    let (n, h, wd, c) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
    let (padding, stride, dilation, activation, k, fy, fx, groups);
    if depthwise {
        let o = info.op.depthwise_options().context("DepthwiseConv2DOptions missing")?;
        ensure!(
            w.shape[0] == 1,
            "depthwise filter {} has shape {:?}, expected (1, FY, FX, K)",
            w.name,
            w.shape
        );
        (fy, fx, k) = (w.shape[1], w.shape[2], w.shape[3]);
        let mult = positive("depth_multiplier", o.depth_multiplier())?;
        ensure!(
            c.checked_mul(mult) == Some(k),
            "{k} output channels, but {c} input channels x depth multiplier {mult}"
        );
        groups = c;
        padding = padding_is_same(o.padding())?;
        stride = [positive("stride_h", o.stride_h())?, positive("stride_w", o.stride_w())?];
        dilation =
            [positive("dilation_h", o.dilation_h_factor())?, positive("dilation_w", o.dilation_w_factor())?];
        activation = o.fused_activation_function();
    } else {
        let o = info.op.conv2d_options().context("Conv2DOptions missing")?;
        (k, fy, fx) = (w.shape[0], w.shape[1], w.shape[2]);
        let cw = w.shape[3];
        ensure!(c % cw == 0, "input has {c} channels, the filter {cw}: not a grouped convolution");
        groups = c / cw;
        ensure!(k % groups == 0, "{k} output channels do not split into {groups} groups");
        padding = padding_is_same(o.padding())?;
        stride = [positive("stride_h", o.stride_h())?, positive("stride_w", o.stride_w())?];
        dilation =
            [positive("dilation_h", o.dilation_h_factor())?, positive("dilation_w", o.dilation_w_factor())?];
        activation = o.fused_activation_function();
    }
    let wq = w.quant.clone().context("filter has no quantization parameters")?;
    let quant_axis = if depthwise { 3 } else { 0 };
    ensure!(
        !wq.is_per_channel() || wq.axis == quant_axis,
        "filter quantized along dimension {}, expected {quant_axis}",
        wq.axis
    );
    let (oh, pad_h) = out_size_and_pad(padding, h, fy, stride[0], dilation[0]).context("height")?;
    let (ow, pad_w) = out_size_and_pad(padding, wd, fx, stride[1], dilation[1]).context("width")?;
    let (x_scale, x_zp) = x.per_tensor()?;

    let x_id = ctx.read(info.input(0)?)?;
    let w_id = if depthwise {
        // (1, FY, FX, K) -> OHWI (K, FY, FX, 1).
        let data = w.data.as_ref().context("filter data")?.to_i64();
        let mut t = vec![0i64; data.len()];
        for (p, v) in data.iter().enumerate() {
            let (pos, kk) = (p / k, p % k);
            t[kk * fy * fx + pos] = *v;
        }
        let q = Quant { axis: 0, ..wq.clone() };
        ctx.constant(format!("{}/ohwi", w.name), vec![k, fy, fx, 1], Some(q), Data::from_i64(w.dtype, &t))
    } else {
        ctx.read(info.input(1)?)?
    };
    let y_idx = info.output()?;
    let y_name = ctx.info(y_idx)?.name;
    let acc_shape = vec![n, oh, ow, k];
    let acc = ctx.temp(format!("{y_name}/acc"), acc_shape, DType::I32, Some(acc_quant(x_scale, &wq)));
    let op = Op::Conv2d {
        stride,
        dilation,
        pad: [pad_h[0], pad_w[0], pad_h[1], pad_w[1]],
        groups,
        x_zp,
        w_zp: wq.zero_point.clone(),
    };
    ctx.node(info.name.clone(), op, vec![x_id, w_id], vec![acc]);
    let tail = Tail { x: &x, w: &w, bias: info.optional_input(2), y_idx, activation, k };
    emit_tail(ctx, info, acc, tail)
}

/// FULLY_CONNECTED: input reshaped to (N, C) unless `keep_num_dims`.
pub(super) fn fully_connected(ctx: &mut Ctx, info: &OpInfo) -> Result<()> {
    let o = info.op.fully_connected_options().context("FullyConnectedOptions missing")?;
    ensure!(o.weights_format() == 0, "weights format {} is not supported (only DEFAULT)", o.weights_format());
    let x = ctx.info(info.input(0)?)?;
    require_quantized("input", &x)?;
    let w = filter(ctx, info, &x)?;
    ensure!(w.shape.len() == 2, "weights {} have shape {:?}, expected (K, C)", w.name, w.shape);
    let (k, c) = (w.shape[0], w.shape[1]);
    let wq = w.quant.clone().context("weights have no quantization parameters")?;
    ensure!(
        !wq.is_per_channel() || wq.axis == 0,
        "weights quantized along dimension {}, expected 0",
        wq.axis
    );
    let (x_scale, x_zp) = x.per_tensor()?;
    ensure!(x.elements() % c == 0, "input shape {:?} does not flatten to rows of {c}", x.shape);

    let mut x_id = ctx.read(info.input(0)?)?;
    let keep = o.keep_num_dims();
    let acc_shape = if keep {
        ensure!(
            x.shape.last() == Some(&c),
            "keep_num_dims: the input's last axis {:?} is not {c}",
            x.shape.last()
        );
        let mut s = x.shape.clone();
        *s.last_mut().expect("non-empty") = k;
        s
    } else {
        let rows = x.elements() / c;
        if x.shape != [rows, c] {
            let r = ctx.temp(format!("{}/2d", x.name), vec![rows, c], x.dtype, x.quant.clone());
            ctx.node(info.part("reshape"), Op::Reshape, vec![x_id], vec![r]);
            x_id = r;
        }
        vec![rows, k]
    };
    let w_id = ctx.read(info.input(1)?)?;
    let y_idx = info.output()?;
    let y_name = ctx.info(y_idx)?.name;
    let mut aq = acc_quant(x_scale, &wq);
    aq.axis = acc_shape.len() - 1;
    let acc = ctx.temp(format!("{y_name}/acc"), acc_shape, DType::I32, Some(aq));
    let op = Op::Dense { x_zp, w_zp: wq.zero_point.clone() };
    ctx.node(info.name.clone(), op, vec![x_id, w_id], vec![acc]);
    let activation = o.fused_activation_function();
    let tail = Tail { x: &x, w: &w, bias: info.optional_input(2), y_idx, activation, k };
    emit_tail(ctx, info, acc, tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tflite_padding() {
        // SAME, stride 1, 3x3: out = in, pad 1 each side.
        assert_eq!(out_size_and_pad(true, 32, 3, 1, 1).unwrap(), (32, [1, 1]));
        // SAME, stride 2, 3x3 on 32: out 16, total = 15*2 + 3 - 32 = 1 -> (0, 1).
        assert_eq!(out_size_and_pad(true, 32, 3, 2, 1).unwrap(), (16, [0, 1]));
        // SAME, stride 2, 3x3 on 96 -> 48, total 1.
        assert_eq!(out_size_and_pad(true, 96, 3, 2, 1).unwrap(), (48, [0, 1]));
        // SAME, 10x4 kernel stride 2 on 49: out 25, total = 48 + 10 - 49 = 9 -> (4, 5).
        assert_eq!(out_size_and_pad(true, 49, 10, 2, 1).unwrap(), (25, [4, 5]));
        // VALID: out = (in - k + s) / s, no padding.
        assert_eq!(out_size_and_pad(false, 30, 3, 1, 1).unwrap(), (28, [0, 0]));
        assert_eq!(out_size_and_pad(false, 8, 8, 8, 1).unwrap(), (1, [0, 0]));
        // Dilation 2, 3x3 SAME: effective 5, pad 2 each side.
        assert_eq!(out_size_and_pad(true, 10, 3, 1, 2).unwrap(), (10, [2, 2]));
        assert!(out_size_and_pad(false, 2, 3, 1, 1).is_err());
        assert!(out_size_and_pad(true, 2, 3, 0, 1).is_err());
    }
}
