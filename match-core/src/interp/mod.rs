//! The reference interpreter: runs a [`Graph`] node by node in topological
//! order with integer-only kernels that reproduce the reference runtimes bit
//! for bit (TFLite Micro's reference kernels for the TFLite forms, onnxruntime
//! for the QLinear / integer-dialect forms). Floating point appears only where
//! the IR says so: `Requant::Float`, `AddKind::Float`, `Quantize` and
//! `Dequantize`.
//!
//! Each operator family has its own module; [`eval_node`] is the single entry
//! the graph passes also use for constant folding.

pub mod fixedpoint;

mod conv;
mod eltwise;
mod pool;
mod requant;
mod shape;
mod softmax;

pub(crate) use conv::conv_out_dim;
pub(crate) use conv::matmul_shape;
pub(crate) use eltwise::broadcast_shape;
pub(crate) use requant::requant_value;

use crate::ir::{DType, Data, Graph, Op, OpNode, Tensor};
use anyhow::{anyhow, bail, Context};

/// Runs `graph` on `inputs` (one per graph input, in order) and returns the
/// graph outputs.
pub fn run(graph: &Graph, inputs: &[Data]) -> anyhow::Result<Vec<Data>> {
    if inputs.len() != graph.inputs.len() {
        bail!("the model takes {} input(s), {} given", graph.inputs.len(), inputs.len());
    }
    let mut values: Vec<Option<Data>> = vec![None; graph.tensors.len()];
    for (k, (&id, data)) in graph.inputs.iter().zip(inputs).enumerate() {
        let t = graph.tensor(id);
        if data.dtype() != t.dtype {
            bail!(
                "input {k} '{}': expected {} elements of type {}, got type {}",
                t.name,
                t.elements(),
                t.dtype,
                data.dtype()
            );
        }
        if data.len() != t.elements() {
            bail!(
                "input {k} '{}': expected {} elements ({}{:?}), got {}",
                t.name,
                t.elements(),
                t.dtype,
                t.shape,
                data.len()
            );
        }
        values[id.0] = Some(data.clone());
    }
    let order = graph.topo_order().ok_or_else(|| anyhow!("the graph has a cycle"))?;
    // Free each intermediate value after its last reader.
    let mut last_use = vec![usize::MAX; graph.tensors.len()];
    for (step, &n) in order.iter().enumerate() {
        for &t in &graph.nodes[n].inputs {
            last_use[t.0] = step;
        }
    }
    for &t in &graph.outputs {
        last_use[t.0] = usize::MAX;
    }
    for (step, &n) in order.iter().enumerate() {
        let node = &graph.nodes[n];
        let outs = {
            let mut ins: Vec<&Data> = Vec::with_capacity(node.inputs.len());
            for &t in &node.inputs {
                let v = match (&values[t.0], &graph.tensor(t).data) {
                    (Some(v), _) => v,
                    (None, Some(c)) => c,
                    (None, None) => bail!(
                        "node '{}' ({}): input tensor '{}' has no value (not produced before it)",
                        node.name,
                        node.op.pattern_name(),
                        graph.tensor(t).name
                    ),
                };
                ins.push(v);
            }
            eval_node(graph, node, &ins)?
        };
        for (&t, v) in node.outputs.iter().zip(outs) {
            values[t.0] = Some(v);
        }
        for &t in &node.inputs {
            if last_use[t.0] == step && !graph.inputs.contains(&t) {
                values[t.0] = None;
            }
        }
    }
    graph
        .outputs
        .iter()
        .map(|&t| {
            values[t.0]
                .clone()
                .or_else(|| graph.tensor(t).data.clone())
                .ok_or_else(|| anyhow!("graph output '{}' was never computed", graph.tensor(t).name))
        })
        .collect()
}

/// Evaluates one node on its input values; the shapes, types and
/// quantization come from the graph's tensors.
pub(crate) fn eval_node(graph: &Graph, node: &OpNode, inputs: &[&Data]) -> anyhow::Result<Vec<Data>> {
    let ctx = Ctx { ins: node.inputs.iter().map(|&t| graph.tensor(t)).collect(), inputs, node };
    let outs: Vec<&Tensor> = node.outputs.iter().map(|&t| graph.tensor(t)).collect();
    eval(&ctx, &outs).with_context(|| format!("node '{}' ({})", node.name, node.op.pattern_name()))
}

/// A node's inputs: their tensors and values.
pub(crate) struct Ctx<'a> {
    pub ins: Vec<&'a Tensor>,
    pub inputs: &'a [&'a Data],
    pub node: &'a OpNode,
}

impl Ctx<'_> {
    /// Checks the input count, and that every value matches its tensor.
    fn expect_inputs(&self, min: usize, max: usize) -> anyhow::Result<()> {
        let n = self.inputs.len();
        if n < min || n > max || self.ins.len() != n {
            if min == max {
                bail!("expected {min} input(s), got {n}");
            }
            bail!("expected {min} to {max} inputs, got {n}");
        }
        for (t, v) in self.ins.iter().zip(self.inputs) {
            if v.dtype() != t.dtype || v.len() != t.elements() {
                bail!(
                    "input '{}' is declared {}{:?} ({} elements) but holds {} elements of {}",
                    t.name,
                    t.dtype,
                    t.shape,
                    t.elements(),
                    v.len(),
                    v.dtype()
                );
            }
        }
        Ok(())
    }
}

fn eval(ctx: &Ctx, outs: &[&Tensor]) -> anyhow::Result<Vec<Data>> {
    let out = *outs.first().ok_or_else(|| anyhow!("the node has no output"))?;
    let single = |d: anyhow::Result<Data>| -> anyhow::Result<Vec<Data>> {
        let d = d?;
        if d.len() != out.elements() {
            bail!("computed {} elements but output '{}' is declared {:?}", d.len(), out.name, out.shape);
        }
        Ok(vec![d])
    };
    match &ctx.node.op {
        Op::Conv2d { stride, dilation, pad, groups, x_zp, w_zp } => {
            ctx.expect_inputs(2, 2)?;
            single(conv::conv2d(ctx, out, *stride, *dilation, *pad, *groups, *x_zp, w_zp))
        }
        Op::Dense { x_zp, w_zp } => {
            ctx.expect_inputs(2, 2)?;
            single(conv::dense(ctx, out, *x_zp, w_zp))
        }
        Op::BiasAdd => {
            ctx.expect_inputs(2, 2)?;
            single(requant::bias_add(ctx, out))
        }
        Op::Requantize { requant, out_zp } => {
            ctx.expect_inputs(1, 1)?;
            single(requant::requantize(ctx, out, requant, *out_zp))
        }
        Op::Clip { min, max } => {
            ctx.expect_inputs(1, 1)?;
            single(requant::clip(ctx, out, *min, *max))
        }
        Op::Cast => {
            ctx.expect_inputs(1, 1)?;
            single(requant::cast(ctx, out))
        }
        Op::Quantize => {
            ctx.expect_inputs(1, 1)?;
            single(requant::quantize(ctx, out))
        }
        Op::Dequantize => {
            ctx.expect_inputs(1, 1)?;
            single(requant::dequantize(ctx, out))
        }
        Op::Add { kind } => {
            ctx.expect_inputs(2, 2)?;
            single(eltwise::add(ctx, out, kind))
        }
        Op::AvgPool { kernel, stride, pad, count_include_pad } => {
            ctx.expect_inputs(1, 1)?;
            single(pool::avg_pool(ctx, out, *kernel, *stride, *pad, *count_include_pad))
        }
        Op::MaxPool { kernel, stride, pad } => {
            ctx.expect_inputs(1, 1)?;
            single(pool::max_pool(ctx, out, *kernel, *stride, *pad))
        }
        Op::GlobalAvgPool => {
            ctx.expect_inputs(1, 1)?;
            single(pool::global_avg_pool(ctx, out))
        }
        Op::Pad { pads, value } => {
            ctx.expect_inputs(1, 1)?;
            single(shape::pad(ctx, out, pads, *value))
        }
        Op::Reshape => {
            // A second input (the target shape) may be present; it is not read.
            ctx.expect_inputs(1, 2)?;
            single(shape::reshape(ctx, out))
        }
        Op::Spill | Op::Fill => {
            // The same bytes, in another memory.
            ctx.expect_inputs(1, 1)?;
            single(shape::reshape(ctx, out))
        }
        Op::Transpose { perm } => {
            ctx.expect_inputs(1, 1)?;
            single(shape::transpose(ctx, out, perm))
        }
        Op::Concat { axis } => {
            ctx.expect_inputs(1, usize::MAX)?;
            single(shape::concat(ctx, out, *axis))
        }
        Op::Softmax { beta, input_scale, input_zp: _ } => {
            ctx.expect_inputs(1, 1)?;
            single(softmax::softmax(ctx, out, *beta, *input_scale))
        }
        Op::MatMul { a_zp, b_zp } => {
            ctx.expect_inputs(2, 2)?;
            single(conv::matmul(ctx, out, *a_zp, b_zp))
        }
        Op::GlobalSumPool { x_zp } => {
            ctx.expect_inputs(1, 1)?;
            single(pool::global_sum_pool(ctx, out, *x_zp))
        }
        Op::QLinearAvgPool { kernel, stride, pad, count_include_pad, x_scale, x_zp, y_scale, y_zp } => {
            ctx.expect_inputs(1, 1)?;
            let q = pool::QLinearAvg { x_scale: *x_scale, x_zp: *x_zp, y_scale: *y_scale, y_zp: *y_zp };
            single(pool::qlinear_avg_pool(ctx, out, *kernel, *stride, *pad, *count_include_pad, q))
        }
        #[allow(unreachable_patterns)]
        other => bail!("the interpreter has no kernel for {}", other.pattern_name()),
    }
}

/// Values of an integer tensor as i32 (i64 values must fit).
pub(crate) fn to_i32(d: &Data) -> anyhow::Result<Vec<i32>> {
    Ok(match d {
        Data::I8(v) => v.iter().map(|&x| x as i32).collect(),
        Data::U8(v) => v.iter().map(|&x| x as i32).collect(),
        Data::I16(v) => v.iter().map(|&x| x as i32).collect(),
        Data::I32(v) => v.clone(),
        Data::I64(v) => v
            .iter()
            .map(|&x| i32::try_from(x).map_err(|_| anyhow!("value {x} does not fit in 32 bits")))
            .collect::<anyhow::Result<_>>()?,
        Data::F32(_) => bail!("expected an integer tensor, got f32"),
    })
}

/// Values of an integer tensor as i64.
pub(crate) fn to_i64(d: &Data) -> anyhow::Result<Vec<i64>> {
    if d.dtype() == DType::F32 {
        bail!("expected an integer tensor, got f32");
    }
    Ok(d.to_i64())
}

/// Integer output of type `dtype`, saturating.
pub(crate) fn from_i64(dtype: DType, v: &[i64]) -> anyhow::Result<Data> {
    if dtype == DType::F32 {
        bail!("expected an integer output type, got f32");
    }
    Ok(Data::from_i64(dtype, v))
}

/// Row-major strides of `shape`.
pub(crate) fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// A per-channel parameter: one value for the tensor, or one per channel.
pub(crate) fn per_channel<T: Copy>(
    what: &str,
    v: &[T],
    channels: usize,
    default: T,
) -> anyhow::Result<Vec<T>> {
    match v.len() {
        0 => Ok(vec![default; channels]),
        1 => Ok(vec![v[0]; channels]),
        n if n == channels => Ok(v.to_vec()),
        n => bail!("{what} has {n} entries for {channels} channels"),
    }
}

#[cfg(test)]
pub(crate) mod tests;
