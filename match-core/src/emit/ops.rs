//! Per-operator code: one block per node, calling a kernel of
//! `match_kernels.c` with the node's parameters, computed here at compile
//! time exactly as the interpreter computes them at run time.

use super::{c_i32, c_i64, comment, f32_bits, mk_dt, Cx};
use crate::interp::fixedpoint::{calculate_input_radius, preprocess_softmax_scaling};
use crate::ir::{AddKind, DType, Op, OpNode, Quant, Requant, Tensor};
use anyhow::{anyhow, bail, ensure};
use std::fmt::Write as _;

/// The external DMA's channel for spills and fills: not 0, which weight
/// staging's prefetch keeps busy across layers.
pub(crate) const SPILL_CHANNEL: i32 = 1;

/// The C block running `node`.
pub(super) fn node(cx: &mut Cx, node: &OpNode) -> anyhow::Result<String> {
    let g = cx.graph;
    let ins: Vec<&Tensor> = node.inputs.iter().map(|&t| g.tensor(t)).collect();
    let out_id = *node.outputs.first().ok_or_else(|| anyhow!("the node has no output"))?;
    let out = g.tensor(out_id);
    let mut s = String::new();
    let desc: Vec<String> = ins.iter().map(|t| format!("{}{:?} {}", t.name, t.shape, t.dtype)).collect();
    let _ = writeln!(
        s,
        "    /* {} '{}': {} -> {}{:?} {} */\n    {{",
        node.op.pattern_name(),
        comment(&node.name),
        comment(&desc.join(", ")),
        comment(&out.name),
        out.shape,
        out.dtype
    );
    let need = |n: usize| -> anyhow::Result<()> {
        ensure!(ins.len() >= n, "expected {n} input(s), got {}", ins.len());
        Ok(())
    };
    // A spill's output is in the external memory, not in the arena; a
    // reshape of an output kept in the compute memory (inter-layer
    // residency) has no arena place either, and no code.
    if matches!(node.op, Op::Reshape) && cx.offset(out_id).is_none() && cx.offset(node.inputs[0]).is_none() {
        s.push_str("        /* free: the tensor stays in the compute memory between the layers */\n    }\n");
        return Ok(s);
    }
    let y = if matches!(node.op, Op::Spill) { String::new() } else { cx.arena(out_id)? };
    let ydt = mk_dt(out.dtype);
    match &node.op {
        Op::Conv2d { stride, dilation, pad, groups, x_zp, w_zp } => {
            need(2)?;
            let (xt, wt) = (ins[0], ins[1]);
            ensure!(
                xt.shape.len() == 4 && wt.shape.len() == 4 && out.shape.len() == 4,
                "conv2d needs rank-4 tensors"
            );
            ensure!(out.dtype == DType::I32, "conv2d outputs i32");
            let k = wt.shape[0];
            ensure!(*groups >= 1 && xt.shape[3] % groups == 0 && k % groups == 0, "bad groups {groups}");
            let wzp = per_channel_i32("w_zp", w_zp, k, 0)?;
            let wzp = cx.array_i32("w_zp", &wzp);
            let x = cx.ptr(node.inputs[0])?;
            let w = cx.ptr(node.inputs[1])?;
            let v = [
                xt.shape[0],
                xt.shape[1],
                xt.shape[2],
                xt.shape[3],
                k,
                wt.shape[1],
                wt.shape[2],
                out.shape[1],
                out.shape[2],
                stride[0],
                stride[1],
                dilation[0],
                dilation[1],
                pad[0],
                pad[1],
                *groups,
            ];
            let v: Vec<String> = v.iter().map(|d| d.to_string()).collect();
            let _ = writeln!(
                s,
                "        static const mk_conv_t p = {{{}, {}, {wzp}}};\n        mk_conv2d({x}, {}, {w}, {}, {y}, &p);",
                v.join(", "),
                i32c(*x_zp)?,
                mk_dt(xt.dtype),
                mk_dt(wt.dtype)
            );
        }
        Op::Dense { x_zp, w_zp } => {
            need(2)?;
            let (xt, wt) = (ins[0], ins[1]);
            ensure!(wt.shape.len() == 2, "dense weights must be (K, C)");
            let (k, c) = (wt.shape[0], wt.shape[1]);
            let rows = xt.elements() / c.max(1);
            let wzp = per_channel_i32("w_zp", w_zp, k, 0)?;
            let wzp = cx.array_i32("w_zp", &wzp);
            let x = cx.ptr(node.inputs[0])?;
            let w = cx.ptr(node.inputs[1])?;
            let _ = writeln!(
                s,
                "        mk_dense({x}, {}, {w}, {}, {y}, {rows}, {c}, {k}, {}, {wzp});",
                mk_dt(xt.dtype),
                mk_dt(wt.dtype),
                i32c(*x_zp)?
            );
        }
        Op::MatMul { a_zp, b_zp } => {
            need(2)?;
            let (at, bt) = (ins[0], ins[1]);
            let shape = crate::interp::matmul_shape(&at.shape, &bt.shape)?;
            let (ra, rb) = (at.shape.len(), bt.shape.len());
            let (m, kk, n) = (at.shape[ra - 2], at.shape[ra - 1], bt.shape[rb - 1]);
            let batch = &shape[..shape.len() - 2];
            let ia: Vec<i32> =
                broadcast_index(&at.shape[..ra - 2], batch)?.iter().map(|&i| i as i32).collect();
            let ib: Vec<i32> =
                broadcast_index(&bt.shape[..rb - 2], batch)?.iter().map(|&i| i as i32).collect();
            let bzp = per_channel_i32("b_zp", b_zp, n, 0)?;
            let bzp = cx.array_i32("b_zp", &bzp);
            let ian = cx.array_i32("batch_a", &ia);
            let ibn = cx.array_i32("batch_b", &ib);
            let a = cx.ptr(node.inputs[0])?;
            let b = cx.ptr(node.inputs[1])?;
            let _ = writeln!(
                s,
                "        mk_matmul({a}, {}, {b}, {}, {y}, {}, {ian}, {ibn}, {m}, {kk}, {n}, {}, {bzp});",
                mk_dt(at.dtype),
                mk_dt(bt.dtype),
                ia.len(),
                i32c(*a_zp)?
            );
        }
        Op::BiasAdd => {
            need(2)?;
            let (at, bt) = (ins[0], ins[1]);
            let c = last_axis(at);
            let nb = bt.elements();
            ensure!(nb == c || nb == 1, "bias '{}' has {nb} values for {c} channels", bt.name);
            let a = cx.ptr(node.inputs[0])?;
            let b = cx.ptr(node.inputs[1])?;
            let _ = writeln!(
                s,
                "        mk_bias_add({a}, {}, {b}, {}, {nb}, {y}, {ydt}, {}, {c});",
                mk_dt(at.dtype),
                mk_dt(bt.dtype),
                at.elements()
            );
        }
        Op::Requantize { requant, out_zp } => {
            need(1)?;
            let at = ins[0];
            ensure!(out.dtype != DType::F32, "requantize must output an integer type");
            let c = last_axis(at);
            let mut adc = "0, 0, 0, 0".to_string();
            let (init, n) = match requant {
                Requant::FixedPoint { multiplier, shift } => {
                    let n = entries(multiplier.len().max(shift.len()), c)?;
                    let m = per_channel_i32x("multiplier", multiplier, n, 0)?;
                    let sh = per_channel_i32x("shift", shift, n, 0)?;
                    let m = cx.array_i32("multiplier", &m);
                    let sh = cx.array_i32("shift", &sh);
                    (format!("MK_RQ_FIXED, {n}, {m}, {sh}, 0, 0, 0, 0"), n)
                }
                Requant::Adc { gain, bits, k, l, shift } => {
                    ensure!(
                        *shift < 64 && *gain >= 1 && (1..=31).contains(bits),
                        "ADC parameters out of range"
                    );
                    let n = entries(k.len().max(l.len()), c)?;
                    let kk = cx.array_i64("adc_k", &per_channel_x("k", k, n, 1)?);
                    let ll = cx.array_i64("adc_l", &per_channel_x("l", l, n, 0)?);
                    adc = format!("{}, {bits}, {kk}, {ll}", c_i64(*gain));
                    (format!("MK_RQ_ADC, {n}, 0, 0, 0, 0, {shift}, 0"), n)
                }
                Requant::ScaleShift { scale, bias, shift } => {
                    ensure!(*shift < 64, "shift {shift} is out of range");
                    let n = entries(scale.len().max(bias.len()), c)?;
                    let sc = per_channel_x("scale", scale, n, 1)?;
                    let bi = per_channel_x("bias", bias, n, 0)?;
                    let sc = cx.array_i64("scale", &sc);
                    let bi = cx.array_i64("bias", &bi);
                    (format!("MK_RQ_SCALE_SHIFT, {n}, 0, 0, {sc}, {bi}, {shift}, 0"), n)
                }
                Requant::Float { scale } => {
                    let n = entries(scale.len(), c)?;
                    let sc = per_channel_x("scale", scale, n, 1.0)?;
                    let sc = cx.array_f32_bits("scale", &sc);
                    (format!("MK_RQ_FLOAT, {n}, 0, 0, 0, 0, 0, {sc}"), n)
                }
            };
            let _ = n;
            let a = cx.ptr(node.inputs[0])?;
            let _ = writeln!(
                s,
                "        static const mk_requant_t rq = {{{init}, {}, {adc}}};\n        mk_requantize({a}, {}, {y}, {ydt}, {}, {c}, &rq);",
                c_i64(*out_zp),
                mk_dt(at.dtype),
                at.elements()
            );
        }
        Op::Clip { min, max } => {
            need(1)?;
            ensure!(min <= max, "min {min} > max {max}");
            let a = cx.ptr(node.inputs[0])?;
            let _ = writeln!(
                s,
                "        mk_clip({a}, {}, {y}, {ydt}, {}, {}, {});",
                mk_dt(ins[0].dtype),
                ins[0].elements(),
                c_i64(*min),
                c_i64(*max)
            );
        }
        Op::Cast => {
            need(1)?;
            let a = cx.ptr(node.inputs[0])?;
            let _ =
                writeln!(s, "        mk_cast({a}, {}, {y}, {ydt}, {});", mk_dt(ins[0].dtype), out.elements());
        }
        Op::Quantize => {
            need(1)?;
            ensure!(ins[0].dtype == DType::F32, "quantize takes an f32 input");
            let q = out.quant.as_ref().ok_or_else(|| anyhow!("output '{}' has no quantization", out.name))?;
            let (stride, dim, sc, zp) = channel_params(q, &out.shape)?;
            let sc = cx.array_f32_bits("scale", &sc);
            let zp = cx.array_i64("zero_point", &zp);
            let a = cx.ptr(node.inputs[0])?;
            let _ = writeln!(
                s,
                "        mk_quantize({a}, {y}, {ydt}, {}, {stride}, {dim}, {sc}, {zp});",
                out.elements()
            );
        }
        Op::Dequantize => {
            need(1)?;
            let at = ins[0];
            ensure!(out.dtype == DType::F32, "dequantize outputs f32");
            let q = at.quant.as_ref().ok_or_else(|| anyhow!("input '{}' has no quantization", at.name))?;
            let (stride, dim, sc, zp) = channel_params(q, &at.shape)?;
            let sc = cx.array_f32_bits("scale", &sc);
            let zp = cx.array_i64("zero_point", &zp);
            let a = cx.ptr(node.inputs[0])?;
            let _ = writeln!(
                s,
                "        mk_dequantize({a}, {}, {y}, {}, {stride}, {dim}, {sc}, {zp});",
                mk_dt(at.dtype),
                out.elements()
            );
        }
        Op::Add { kind } => {
            need(2)?;
            let (at, bt) = (ins[0], ins[1]);
            let shape = crate::interp::broadcast_shape(&at.shape, &bt.shape)
                .ok_or_else(|| anyhow!("inputs {:?} and {:?} do not broadcast", at.shape, bt.shape))?;
            let shape = if shape.is_empty() { vec![1] } else { shape };
            ensure!(shape.len() <= 8, "rank {} is above the kernels' 8", shape.len());
            let sa = broadcast_strides(&at.shape, &shape);
            let sb = broadcast_strides(&bt.shape, &shape);
            let sh = cx.array_i32("shape", &to_i32s(&shape)?);
            let sa = cx.array_i32("strides_a", &sa);
            let sb = cx.array_i32("strides_b", &sb);
            let head = format!("{}, {sh}, {sa}, {sb}", shape.len());
            let init = format!("{}, {head}, {}", add_kind(kind), add_tail(kind)?);
            let a = cx.ptr(node.inputs[0])?;
            let b = cx.ptr(node.inputs[1])?;
            let _ = writeln!(
                s,
                "        static const mk_add_t p = {{{init}}};\n        mk_add({a}, {}, {b}, {}, {y}, {ydt}, &p);",
                mk_dt(at.dtype),
                mk_dt(bt.dtype)
            );
        }
        Op::AvgPool { kernel, stride, pad, count_include_pad } => {
            need(1)?;
            let p = pool(ins[0], out, *kernel, *stride, *pad, *count_include_pad)?;
            let zp = ins[0].quant.as_ref().map_or(0, |q| q.zp());
            let a = cx.ptr(node.inputs[0])?;
            let _ = writeln!(
                s,
                "        static const mk_pool_t p = {{{p}}};\n        mk_avg_pool({a}, {}, {y}, {ydt}, &p, {});",
                mk_dt(ins[0].dtype),
                i32c(zp)?
            );
        }
        Op::MaxPool { kernel, stride, pad } => {
            need(1)?;
            let p = pool(ins[0], out, *kernel, *stride, *pad, false)?;
            let a = cx.ptr(node.inputs[0])?;
            let _ = writeln!(
                s,
                "        static const mk_pool_t p = {{{p}}};\n        mk_max_pool({a}, {}, {y}, {ydt}, &p);",
                mk_dt(ins[0].dtype)
            );
        }
        Op::GlobalAvgPool | Op::GlobalSumPool { .. } => {
            need(1)?;
            let xt = ins[0];
            ensure!(xt.shape.len() == 4, "input '{}' must be NHWC", xt.name);
            let [n, h, w, c] = [xt.shape[0], xt.shape[1], xt.shape[2], xt.shape[3]];
            let a = cx.ptr(node.inputs[0])?;
            if let Op::GlobalSumPool { x_zp } = &node.op {
                ensure!(out.dtype == DType::I32, "globalsumpool outputs i32");
                let _ = writeln!(
                    s,
                    "        mk_global_sum_pool({a}, {}, {y}, {n}, {}, {c}, {});",
                    mk_dt(xt.dtype),
                    h * w,
                    i32c(*x_zp)?
                );
            } else {
                let _ = writeln!(
                    s,
                    "        mk_global_avg_pool({a}, {}, {y}, {ydt}, {n}, {}, {c});",
                    mk_dt(xt.dtype),
                    h * w
                );
            }
        }
        Op::QLinearAvgPool { kernel, stride, pad, count_include_pad, x_scale, x_zp, y_scale, y_zp } => {
            need(1)?;
            ensure!(out.dtype != DType::F32, "qlinear_avgpool outputs an integer type");
            let p = pool(ins[0], out, *kernel, *stride, *pad, *count_include_pad)?;
            let a = cx.ptr(node.inputs[0])?;
            let _ = writeln!(
                s,
                "        static const mk_pool_t p = {{{p}}};\n        mk_qlinear_avg_pool({a}, {}, {y}, {ydt}, &p, {}, {}, {}, {});",
                mk_dt(ins[0].dtype),
                f32_bits(*x_scale),
                i32c(*x_zp)?,
                f32_bits(*y_scale),
                c_i64(*y_zp)
            );
        }
        Op::Pad { pads, value } => {
            need(1)?;
            let xt = ins[0];
            ensure!(pads.len() == xt.shape.len(), "{} pads for a rank-{} input", pads.len(), xt.shape.len());
            ensure!(!xt.shape.is_empty() && xt.shape.len() <= 8, "pad needs a rank of 1 to 8");
            ensure!(xt.dtype == out.dtype, "pad keeps the element type");
            let ostr = strides(&out.shape);
            let before: Vec<usize> = pads.iter().map(|p| p[0]).collect();
            let ish = cx.array_i32("in_shape", &to_i32s(&xt.shape)?);
            let ost = cx.array_i32("out_strides", &to_i32s(&ostr)?);
            let bef = cx.array_i32("pad_before", &to_i32s(&before)?);
            let a = cx.ptr(node.inputs[0])?;
            let _ = writeln!(
                s,
                "        mk_pad({a}, {y}, {ydt}, {}, {ish}, {ost}, {bef}, {}, {});",
                xt.shape.len(),
                out.elements(),
                c_i64(*value)
            );
        }
        Op::Reshape => {
            need(1)?;
            ensure!(ins[0].bytes() == out.bytes(), "reshape changes the size");
            if cx.offset(node.inputs[0]) == cx.offset(out_id) {
                let _ = writeln!(s, "        /* free: the output aliases the input */");
            } else {
                let a = cx.ptr(node.inputs[0])?;
                let _ = writeln!(s, "        mk_copy({y}, {a}, {});", out.bytes());
            }
        }
        Op::Transpose { perm } => {
            need(1)?;
            let xt = ins[0];
            ensure!(perm.len() == xt.shape.len() && !perm.is_empty() && perm.len() <= 8, "bad perm {perm:?}");
            let istr = strides(&xt.shape);
            let src: Vec<usize> = perm.iter().map(|&p| istr[p]).collect();
            let osh = cx.array_i32("out_shape", &to_i32s(&out.shape)?);
            let src = cx.array_i32("src_strides", &to_i32s(&src)?);
            let a = cx.ptr(node.inputs[0])?;
            let _ = writeln!(
                s,
                "        mk_transpose({a}, {y}, {}, {}, {osh}, {src});",
                out.dtype.size(),
                perm.len()
            );
        }
        Op::Concat { axis } => {
            need(1)?;
            let axis = *axis;
            ensure!(axis < out.shape.len(), "axis {axis} out of range");
            let es = out.dtype.size();
            let outer: usize = out.shape[..axis].iter().product();
            let inner: usize = out.shape[axis + 1..].iter().product();
            let row = out.shape[axis] * inner * es;
            let mut off = 0;
            for (i, t) in ins.iter().enumerate() {
                ensure!(
                    t.dtype == out.dtype,
                    "input '{}' is {} but the output is {}",
                    t.name,
                    t.dtype,
                    out.dtype
                );
                let chunk = t.shape[axis] * inner * es;
                let a = cx.ptr(node.inputs[i])?;
                let _ = writeln!(s, "        mk_concat_part({a}, {y}, {outer}, {chunk}, {row}, {off});");
                off += chunk;
            }
        }
        Op::Softmax { beta, input_scale, input_zp: _ } => {
            need(1)?;
            let at = ins[0];
            ensure!(matches!(at.dtype, DType::I8 | DType::U8), "softmax input must be i8 or u8");
            ensure!(
                matches!(out.dtype, DType::I8 | DType::U8 | DType::I16),
                "softmax output must be i8, u8 or i16"
            );
            let (mult, left) = preprocess_softmax_scaling(*beta as f64, *input_scale as f64, 5);
            let diff_min = -calculate_input_radius(5, left, 31);
            let depth = at.shape.last().copied().unwrap_or(1).max(1);
            let rows = at.elements() / depth;
            let a = cx.ptr(node.inputs[0])?;
            let _ = writeln!(
                s,
                "        mk_softmax({a}, {}, {y}, {ydt}, {rows}, {depth}, {}, {}, {});",
                mk_dt(at.dtype),
                c_i32(mult),
                c_i32(left),
                c_i32(diff_min)
            );
        }
        Op::Spill | Op::Fill => {
            need(1)?;
            ensure!(ins[0].bytes() == out.bytes(), "{} changes the size", node.op.pattern_name());
            let ext =
                cx.external.clone().ok_or_else(|| anyhow!("no external memory for spilled activations"))?;
            let spill = matches!(node.op, Op::Spill);
            let (t_ext, t_home) = if spill { (out_id, node.inputs[0]) } else { (node.inputs[0], out_id) };
            let at = *cx.plan.external.get(&t_ext).ok_or_else(|| {
                anyhow!("tensor '{}' has no place in the external memory", g.tensor(t_ext).name)
            })?;
            let home = cx.arena(t_home)?;
            let bytes = out.bytes() as u64;
            let mut off = 0u64;
            let mut starts = String::new();
            let mut n = 0u64;
            crate::cost::split_command(crate::cost::dma_max(&ext.dma), bytes, 1, 1, &mut |cmd| {
                let run = cmd.bytes();
                let (dst, src) = if spill {
                    (format!("{} + {}", ext.arena, at as u64 + off), format!("(uint8_t *){home} + {off}"))
                } else {
                    (format!("(uint8_t *){home} + {off}"), format!("{} + {}", ext.arena, at as u64 + off))
                };
                let _ = writeln!(
                    starts,
                    "        {}({dst}, {src}, {run}u, 1u, {run}u, {run}u, 1u, 0u, 0u, {SPILL_CHANNEL});",
                    ext.dma.start
                );
                off += run;
                n += 1;
            });
            let _ = writeln!(
                s,
                "        /* {} {} at offset {at} of {} ({bytes} B, {n} command(s)), then wait. */",
                if spill { "to" } else { "from" },
                comment(&ext.memory),
                ext.arena
            );
            s.push_str(&starts);
            let _ = writeln!(s, "        {}({SPILL_CHANNEL});", ext.dma.wait);
        }
        #[allow(unreachable_patterns)]
        other => bail!("the C emitter has no kernel for {}", other.pattern_name()),
    }
    s.push_str("    }\n");
    Ok(s)
}

/// The kind of an `mk_add_t`.
pub(super) fn add_kind(kind: &AddKind) -> &'static str {
    match kind {
        AddKind::Integer => "MK_ADD_INTEGER",
        AddKind::Wrapping => "MK_ADD_WRAPPING",
        AddKind::TfLite(_) => "MK_ADD_TFLITE",
        AddKind::Float { .. } => "MK_ADD_FLOAT",
    }
}

/// The fields of an `mk_add_t` after its shape and strides.
pub(super) fn add_tail(kind: &AddKind) -> anyhow::Result<String> {
    Ok(match kind {
        AddKind::Integer | AddKind::Wrapping => NO_ADD_PARAMS.to_string(),
        AddKind::TfLite(p) => {
            format!(
                "{}, {}, {}, {}, {}, {}, {}, {}, {}, {}",
                c_i32(p.left_shift),
                i32c(p.in_zp[0])?,
                i32c(p.in_zp[1])?,
                c_i32(p.in_multiplier[0]),
                c_i32(p.in_shift[0]),
                c_i32(p.in_multiplier[1]),
                c_i32(p.in_shift[1]),
                c_i32(p.out_multiplier),
                c_i32(p.out_shift),
                c_i64(p.out_zp)
            ) + ", 0, 0, 0, 0, 0, 0"
        }
        AddKind::Float { a_scale, a_zp, b_scale, b_zp, y_scale, y_zp } => format!(
            "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, {}, {}, {}, {}, {}, {}",
            f32_bits(*a_scale),
            f32_bits(*b_scale),
            f32_bits(*y_scale),
            c_i64(*a_zp),
            c_i64(*b_zp),
            c_i64(*y_zp)
        ),
    })
}

/// The unused fields of an integer `mk_add_t` (initialized for -Wextra).
const NO_ADD_PARAMS: &str = "0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0";

pub(super) fn i32c(v: i64) -> anyhow::Result<String> {
    Ok(c_i32(i32::try_from(v).map_err(|_| anyhow!("value {v} does not fit in 32 bits"))?))
}

fn to_i32s(v: &[usize]) -> anyhow::Result<Vec<i32>> {
    v.iter()
        .map(|&x| i32::try_from(x).map_err(|_| anyhow!("dimension {x} does not fit in 32 bits")))
        .collect()
}

fn last_axis(t: &Tensor) -> usize {
    t.shape.last().copied().unwrap_or(1).max(1)
}

/// How many entries a per-channel parameter array gets: 1, or one per channel.
pub(super) fn entries(len: usize, channels: usize) -> anyhow::Result<usize> {
    match len {
        0 | 1 => Ok(1),
        n if n == channels => Ok(n),
        n => bail!("a per-channel parameter has {n} entries for {channels} channels"),
    }
}

/// `interp::per_channel` into exactly `n` entries.
pub(super) fn per_channel_x<T: Copy>(what: &str, v: &[T], n: usize, default: T) -> anyhow::Result<Vec<T>> {
    match v.len() {
        0 => Ok(vec![default; n]),
        1 => Ok(vec![v[0]; n]),
        m if m == n => Ok(v.to_vec()),
        m => bail!("{what} has {m} entries for {n} channels"),
    }
}

pub(super) fn per_channel_i32x(what: &str, v: &[i32], n: usize, default: i32) -> anyhow::Result<Vec<i32>> {
    per_channel_x(what, v, n, default)
}

/// A per-channel zero point as `n` int32 entries.
pub(super) fn per_channel_i32(what: &str, v: &[i64], n: usize, default: i64) -> anyhow::Result<Vec<i32>> {
    per_channel_x(what, v, n, default)?
        .into_iter()
        .map(|x| i32::try_from(x).map_err(|_| anyhow!("{what} {x} does not fit in 32 bits")))
        .collect()
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Element strides of `shape` broadcast (right-aligned) to `out`: 0 on
/// broadcast axes.
fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<i32> {
    let st = strides(shape);
    let off = out.len().saturating_sub(shape.len());
    (0..out.len())
        .map(|i| {
            if i < off {
                0
            } else {
                let d = shape[i - off];
                if d == out[i] && d != 1 {
                    st[i - off] as i32
                } else {
                    0
                }
            }
        })
        .collect()
}

/// For each index of the batch shape `out`, the flat batch index of an
/// operand of batch shape `shape` (numpy broadcasting).
fn broadcast_index(shape: &[usize], out: &[usize]) -> anyhow::Result<Vec<usize>> {
    ensure!(shape.len() <= out.len(), "{shape:?} does not broadcast to {out:?}");
    let st = broadcast_strides(shape, out);
    let total: usize = out.iter().product();
    let mut idx = Vec::with_capacity(total);
    let mut counter = vec![0usize; out.len()];
    let mut cur = 0usize;
    for _ in 0..total {
        idx.push(cur);
        for ax in (0..out.len()).rev() {
            counter[ax] += 1;
            cur += st[ax] as usize;
            if counter[ax] < out[ax] {
                break;
            }
            cur -= st[ax] as usize * counter[ax];
            counter[ax] = 0;
        }
    }
    Ok(idx)
}

/// The `mk_pool_t` initializer.
fn pool(
    xt: &Tensor,
    out: &Tensor,
    kernel: [usize; 2],
    stride: [usize; 2],
    pad: [usize; 4],
    count_include_pad: bool,
) -> anyhow::Result<String> {
    ensure!(xt.shape.len() == 4 && out.shape.len() == 4, "pooling needs NHWC tensors");
    let v = [
        xt.shape[0],
        xt.shape[1],
        xt.shape[2],
        xt.shape[3],
        out.shape[1],
        out.shape[2],
        kernel[0],
        kernel[1],
        stride[0],
        stride[1],
        pad[0],
        pad[1],
    ];
    let v: Vec<String> = to_i32s(&v)?.iter().map(|d| d.to_string()).collect();
    Ok(format!("{}, {}", v.join(", "), i32::from(count_include_pad)))
}

/// Quantize / dequantize channel parameters: (stride, dim, scales, zero
/// points), as `interp::requant::channel_of` and `zp_at` pick them.
fn channel_params(q: &Quant, shape: &[usize]) -> anyhow::Result<(usize, usize, Vec<f32>, Vec<i64>)> {
    ensure!(!q.scale.is_empty(), "the quantization has no scale");
    let per_channel = q.scale.len() > 1 || q.zero_point.len() > 1;
    let (stride, dim) = if per_channel {
        ensure!(q.axis < shape.len(), "quantization axis {} is out of range for {:?}", q.axis, shape);
        (strides(shape)[q.axis], shape[q.axis])
    } else {
        (1, 1)
    };
    let scale = (0..dim).map(|c| q.scale[c.min(q.scale.len() - 1)]).collect();
    let zp = (0..dim)
        .map(|c| match q.zero_point.len() {
            0 => 0,
            1 => q.zero_point[0],
            _ => q.zero_point[c.min(q.zero_point.len() - 1)],
        })
        .collect();
    Ok((stride.max(1), dim.max(1), scale, zp))
}
