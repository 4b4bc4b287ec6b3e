//! Graph passes run after import, in this order:
//!
//! 1. structure: tensor ids in range, one producer per tensor, every node
//!    input produced, a graph input or a constant, no cycle;
//! 2. shape and type inference in topological order: each node's output
//!    shape and type follow from its inputs; an importer's declared shape is
//!    checked (an empty declared shape is filled in), a mismatch is an error
//!    naming the node; quantization is carried through data-movement ops;
//! 3. constant folding: a node whose inputs are all constants is evaluated
//!    by the interpreter's own kernels and its output becomes a constant;
//! 4. dead-node removal: nodes none of whose outputs reach a graph output;
//! 5. `rebuild_edges`.
//!
//! Everything iterates in node-index or topological order, so the result is
//! deterministic.

use crate::interp::{self, conv_out_dim};
use crate::ir::{DType, Data, Graph, NodeId, Op, OpNode, Quant, TensorId};
use anyhow::{anyhow, bail, ensure, Context};

/// Shape and quantization inference, constant folding, dead-node removal.
/// The longest row an 8-bit softmax takes (its sum of exponentials is a
/// Q12.19 number below 4096).
pub const MAX_SOFTMAX_ROW: usize = 4095;

pub fn prepare(graph: &mut Graph) -> anyhow::Result<()> {
    graph.rebuild_edges();
    check_structure(graph)?;
    infer(graph)?;
    fold_constants(graph)?;
    remove_dead_nodes(graph);
    graph.rebuild_edges();
    Ok(())
}

fn describe(node: &OpNode) -> String {
    format!("node '{}' ({})", node.name, node.op.pattern_name())
}

fn check_structure(graph: &Graph) -> anyhow::Result<()> {
    let nt = graph.tensors.len();
    for &t in graph.inputs.iter().chain(&graph.outputs) {
        ensure!(t.0 < nt, "graph input/output tensor #{} does not exist", t.0);
    }
    let mut producer: Vec<Option<NodeId>> = vec![None; nt];
    for n in graph.nodes.node_indices() {
        let node = &graph.nodes[n];
        for &t in node.inputs.iter().chain(&node.outputs) {
            ensure!(t.0 < nt, "{}: tensor #{} does not exist", describe(node), t.0);
        }
        ensure!(!node.outputs.is_empty(), "{}: no output", describe(node));
        for &t in &node.outputs {
            let tensor = graph.tensor(t);
            if let Some(p) = producer[t.0] {
                bail!(
                    "{}: tensor '{}' is also produced by {}",
                    describe(node),
                    tensor.name,
                    describe(&graph.nodes[p])
                );
            }
            ensure!(!tensor.is_const(), "{}: output '{}' is a constant", describe(node), tensor.name);
            ensure!(
                !graph.inputs.contains(&t),
                "{}: output '{}' is a graph input",
                describe(node),
                tensor.name
            );
            producer[t.0] = Some(n);
        }
    }
    let sourced =
        |t: TensorId| producer[t.0].is_some() || graph.tensor(t).is_const() || graph.inputs.contains(&t);
    for n in graph.nodes.node_indices() {
        let node = &graph.nodes[n];
        for &t in &node.inputs {
            ensure!(
                sourced(t),
                "{}: input '{}' is not produced by any node, nor a graph input or constant",
                describe(node),
                graph.tensor(t).name
            );
        }
    }
    for &t in &graph.outputs {
        ensure!(sourced(t), "graph output '{}' is not produced by any node", graph.tensor(t).name);
    }
    graph.topo_order().ok_or_else(|| anyhow!("the graph has a cycle"))?;
    Ok(())
}

/// What a node's inputs say about its (first) output.
struct Inferred {
    shape: Option<Vec<usize>>,
    dtype: Option<DType>,
    /// Quantization to carry over when the output has none.
    quant: Option<Quant>,
}

fn infer(graph: &mut Graph) -> anyhow::Result<()> {
    let order = graph.topo_order().ok_or_else(|| anyhow!("the graph has a cycle"))?;
    for n in order {
        let node = graph.nodes[n].clone();
        let inf = infer_node(graph, &node).with_context(|| describe(&node))?;
        let out = graph.tensor_mut(node.outputs[0]);
        if let Some(shape) = inf.shape {
            if out.shape.is_empty() && !shape.is_empty() {
                out.shape = shape;
            } else if out.shape != shape {
                bail!(
                    "{}: output '{}' is declared {}{:?}, but its inputs give {:?}",
                    describe(&node),
                    out.name,
                    out.dtype,
                    out.shape,
                    shape
                );
            }
        }
        if let Some(dt) = inf.dtype {
            ensure!(
                out.dtype == dt,
                "{}: output '{}' is declared {}, but the operator produces {}",
                describe(&node),
                out.name,
                out.dtype,
                dt
            );
        }
        if out.quant.is_none() {
            out.quant = inf.quant;
        }
    }
    Ok(())
}

fn infer_node(graph: &Graph, node: &OpNode) -> anyhow::Result<Inferred> {
    let ins: Vec<_> = node.inputs.iter().map(|&t| graph.tensor(t)).collect();
    let out = graph.tensor(node.outputs[0]);
    let arity = |lo: usize, hi: usize| -> anyhow::Result<()> {
        ensure!((lo..=hi).contains(&ins.len()), "expected {lo}..={hi} inputs, got {}", ins.len());
        Ok(())
    };
    let x = |i: usize| ins[i];
    let same = |shape: Option<Vec<usize>>, dtype: Option<DType>| Inferred { shape, dtype, quant: None };
    let carry = |shape: Vec<usize>| Inferred {
        shape: Some(shape),
        dtype: Some(ins[0].dtype),
        quant: ins[0].quant.clone(),
    };
    let nhwc = |i: usize| -> anyhow::Result<[usize; 4]> {
        let s = &ins[i].shape;
        ensure!(s.len() == 4, "input '{}' must be NHWC (rank 4), is {:?}", ins[i].name, s);
        Ok([s[0], s[1], s[2], s[3]])
    };
    let window = |h: usize, w: usize, k: [usize; 2], s: [usize; 2], d: [usize; 2], p: [usize; 4]| match (
        conv_out_dim(h, k[0], s[0], d[0], p[0] + p[2]),
        conv_out_dim(w, k[1], s[1], d[1], p[1] + p[3]),
    ) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err(anyhow!("the {}x{} window does not fit the {h}x{w} input", k[0], k[1])),
    };
    Ok(match &node.op {
        Op::Conv2d { stride, dilation, pad, groups, w_zp, .. } => {
            arity(2, 2)?;
            let [n, h, w, c] = nhwc(0)?;
            let ws = &x(1).shape;
            ensure!(ws.len() == 4, "weights '{}' must be OHWI (rank 4), are {:?}", x(1).name, ws);
            ensure!(
                *groups >= 1 && c % groups == 0 && ws[0] % groups == 0,
                "groups {groups} does not divide C={c} and K={}",
                ws[0]
            );
            ensure!(ws[3] * groups == c, "weights {:?} do not fit C={c} with groups={groups}", ws);
            ensure!(
                w_zp.len() <= 1 || w_zp.len() == ws[0],
                "{} weight zero points for K={}",
                w_zp.len(),
                ws[0]
            );
            let (oh, ow) = window(h, w, [ws[1], ws[2]], *stride, *dilation, *pad)?;
            same(Some(vec![n, oh, ow, ws[0]]), Some(DType::I32))
        }
        Op::Dense { w_zp, .. } => {
            arity(2, 2)?;
            let ws = &x(1).shape;
            ensure!(ws.len() == 2, "weights '{}' must be (K, C), are {:?}", x(1).name, ws);
            ensure!(
                x(0).shape.last() == Some(&ws[1]),
                "input {:?} does not end with C={}",
                x(0).shape,
                ws[1]
            );
            ensure!(
                w_zp.len() <= 1 || w_zp.len() == ws[0],
                "{} weight zero points for K={}",
                w_zp.len(),
                ws[0]
            );
            let mut s = x(0).shape.clone();
            *s.last_mut().expect("checked") = ws[0];
            same(Some(s), Some(DType::I32))
        }
        Op::BiasAdd => {
            arity(2, 2)?;
            let c = x(0).shape.last().copied().unwrap_or(1);
            ensure!(
                x(1).elements() == c || x(1).elements() == 1,
                "bias '{}' has {} values for {c} channels",
                x(1).name,
                x(1).elements()
            );
            same(Some(x(0).shape.clone()), None)
        }
        Op::Requantize { requant, .. } => {
            arity(1, 1)?;
            ensure!(out.dtype != DType::F32, "a requantize must output an integer type");
            let c = x(0).shape.last().copied().unwrap_or(1);
            let lens: Vec<usize> = match requant {
                crate::ir::Requant::FixedPoint { multiplier, shift } => vec![multiplier.len(), shift.len()],
                crate::ir::Requant::ScaleShift { scale, bias, .. } => vec![scale.len(), bias.len()],
                crate::ir::Requant::Float { scale } => vec![scale.len()],
                crate::ir::Requant::Adc { k, l, .. } => vec![k.len(), l.len()],
            };
            for l in lens {
                ensure!(l <= 1 || l == c, "{l} requantization parameters for {c} channels");
            }
            same(Some(x(0).shape.clone()), None)
        }
        Op::Clip { min, max } => {
            arity(1, 1)?;
            ensure!(min <= max, "min {min} > max {max}");
            Inferred { shape: Some(x(0).shape.clone()), dtype: None, quant: x(0).quant.clone() }
        }
        Op::Cast => {
            arity(1, 1)?;
            Inferred { shape: Some(x(0).shape.clone()), dtype: None, quant: x(0).quant.clone() }
        }
        Op::Quantize => {
            arity(1, 1)?;
            ensure!(x(0).dtype == DType::F32, "quantize takes f32, not {}", x(0).dtype);
            ensure!(out.quant.is_some(), "output '{}' has no quantization", out.name);
            same(Some(x(0).shape.clone()), None)
        }
        Op::Dequantize => {
            arity(1, 1)?;
            ensure!(x(0).quant.is_some(), "input '{}' has no quantization", x(0).name);
            same(Some(x(0).shape.clone()), Some(DType::F32))
        }
        Op::Add { .. } => {
            arity(2, 2)?;
            let s = interp::broadcast_shape(&x(0).shape, &x(1).shape)
                .ok_or_else(|| anyhow!("inputs {:?} and {:?} do not broadcast", x(0).shape, x(1).shape))?;
            same(Some(s), None)
        }
        Op::AvgPool { kernel, stride, pad, .. } | Op::MaxPool { kernel, stride, pad } => {
            arity(1, 1)?;
            let [n, h, w, c] = nhwc(0)?;
            let (oh, ow) = window(h, w, *kernel, *stride, [1, 1], *pad)?;
            carry(vec![n, oh, ow, c])
        }
        Op::GlobalAvgPool => {
            arity(1, 1)?;
            let [n, _, _, c] = nhwc(0)?;
            carry(vec![n, 1, 1, c])
        }
        Op::Pad { pads, .. } => {
            arity(1, 1)?;
            ensure!(
                pads.len() == x(0).shape.len(),
                "{} pads for a rank-{} input",
                pads.len(),
                x(0).shape.len()
            );
            carry(x(0).shape.iter().zip(pads).map(|(&d, p)| d + p[0] + p[1]).collect())
        }
        Op::Reshape => {
            arity(1, 2)?;
            ensure!(
                out.elements() == x(0).elements() && !(out.shape.is_empty() && x(0).elements() != 1),
                "output '{}' {:?} and input {:?} differ in size",
                out.name,
                out.shape,
                x(0).shape
            );
            Inferred { shape: None, dtype: Some(x(0).dtype), quant: x(0).quant.clone() }
        }
        Op::Transpose { perm } => {
            arity(1, 1)?;
            let rank = x(0).shape.len();
            let mut seen = vec![false; rank];
            ensure!(perm.len() == rank, "perm {perm:?} for a rank-{rank} input");
            for &p in perm {
                ensure!(p < rank && !seen[p], "perm {perm:?} is not a permutation");
                seen[p] = true;
            }
            let mut inf = carry(perm.iter().map(|&p| x(0).shape[p]).collect());
            // A per-channel axis moves with its data.
            if let Some(q) = &mut inf.quant {
                if q.is_per_channel() {
                    q.axis = perm.iter().position(|&p| p == q.axis).unwrap_or(q.axis);
                }
            }
            inf
        }
        Op::Concat { axis } => {
            arity(1, usize::MAX)?;
            let first = &x(0).shape;
            ensure!(*axis < first.len(), "axis {axis} is out of range for {first:?}");
            let mut s = first.clone();
            s[*axis] = 0;
            for t in &ins {
                ensure!(
                    t.dtype == x(0).dtype,
                    "input '{}' is {}, the first is {}",
                    t.name,
                    t.dtype,
                    x(0).dtype
                );
                let ok = t.shape.len() == first.len()
                    && t.shape.iter().zip(first).enumerate().all(|(i, (a, b))| i == *axis || a == b);
                ensure!(ok, "input '{}' {:?} does not match {:?} off axis {axis}", t.name, t.shape, first);
                s[*axis] += t.shape[*axis];
            }
            carry(s)
        }
        Op::Softmax { .. } => {
            arity(1, 1)?;
            // TFLite's 8-bit softmax sums a row's exponentials (each at most
            // 1.0) in Q12.19: past 4095 elements the sum can overflow.
            let depth = x(0).shape.last().copied().unwrap_or(1);
            ensure!(
                !matches!(x(0).dtype, DType::I8 | DType::U8) || depth <= MAX_SOFTMAX_ROW,
                "softmax rows of {depth} elements: the 8-bit softmax sums a row in Q12.19, which holds at most {MAX_SOFTMAX_ROW} of them"
            );
            same(Some(x(0).shape.clone()), None)
        }
        Op::MatMul { b_zp, .. } => {
            arity(2, 2)?;
            let s = interp::matmul_shape(&x(0).shape, &x(1).shape)?;
            let n = s[s.len() - 1];
            ensure!(b_zp.len() <= 1 || b_zp.len() == n, "{} zero points for N={n}", b_zp.len());
            same(Some(s), Some(DType::I32))
        }
        Op::GlobalSumPool { .. } => {
            arity(1, 1)?;
            let [n, _, _, c] = nhwc(0)?;
            same(Some(vec![n, 1, 1, c]), Some(DType::I32))
        }
        Op::QLinearAvgPool { kernel, stride, pad, .. } => {
            arity(1, 1)?;
            let [n, h, w, c] = nhwc(0)?;
            let (oh, ow) = window(h, w, *kernel, *stride, [1, 1], *pad)?;
            same(Some(vec![n, oh, ow, c]), None)
        }
        #[allow(unreachable_patterns)]
        other => bail!("no shape inference for {}", other.pattern_name()),
    })
}

fn fold_constants(graph: &mut Graph) -> anyhow::Result<()> {
    let order = graph.topo_order().ok_or_else(|| anyhow!("the graph has a cycle"))?;
    for n in order {
        let node = &graph.nodes[n];
        if node.inputs.is_empty() || !node.inputs.iter().all(|&t| graph.tensor(t).is_const()) {
            continue;
        }
        let outs = {
            let ins: Vec<&Data> =
                node.inputs.iter().map(|&t| graph.tensor(t).data.as_ref().expect("constant")).collect();
            interp::eval_node(graph, node, &ins).context("while folding constants")?
        };
        let node = graph.nodes.remove_node(n).expect("node exists");
        for (t, d) in node.outputs.into_iter().zip(outs) {
            graph.tensor_mut(t).data = Some(d);
        }
    }
    Ok(())
}

fn remove_dead_nodes(graph: &mut Graph) {
    let mut producer: Vec<Option<NodeId>> = vec![None; graph.tensors.len()];
    for n in graph.nodes.node_indices() {
        for &t in &graph.nodes[n].outputs {
            producer[t.0] = Some(n);
        }
    }
    let mut live = std::collections::BTreeSet::new();
    let mut stack: Vec<NodeId> = graph.outputs.iter().filter_map(|t| producer[t.0]).collect();
    while let Some(n) = stack.pop() {
        if live.insert(n) {
            stack.extend(graph.nodes[n].inputs.iter().filter_map(|t| producer[t.0]));
        }
    }
    let dead: Vec<NodeId> = graph.nodes.node_indices().filter(|n| !live.contains(n)).collect();
    for n in dead {
        graph.nodes.remove_node(n);
    }
}

#[cfg(test)]
mod tests {
    use super::prepare;
    use crate::dump::dump;
    use crate::interp::{run, tests::Builder};
    use crate::ir::*;

    #[test]
    fn folds_constant_weights_and_removes_dead_nodes() {
        let mut b = Builder::default();
        let x = b.input("x", &[1, 2, 2, 2], DType::I8, None);
        // Weights arrive as (K, C) for a 1x1 conv and get transposed and
        // reshaped into OHWI: both nodes fold.
        let wc = b.konst("w_ck", &[2, 2], Data::I8(vec![1, 2, 3, 4]));
        let wt = b.node("w_t", Op::Transpose { perm: vec![1, 0] }, &[wc], &[2, 2], DType::I8);
        let w = b.node("w_r", Op::Reshape, &[wt], &[2, 1, 1, 2], DType::I8);
        let conv =
            Op::Conv2d { stride: [1, 1], dilation: [1, 1], pad: [0; 4], groups: 1, x_zp: 0, w_zp: vec![0] };
        let acc = b.node("conv", conv, &[x, w], &[1, 2, 2, 2], DType::I32);
        // A dead branch.
        let _dead = b.node("unused", Op::Clip { min: 0, max: 10 }, &[acc], &[1, 2, 2, 2], DType::I32);
        let y = b.node("relu", Op::Clip { min: 0, max: 1000 }, &[acc], &[1, 2, 2, 2], DType::I32);
        let mut g = b.finish(&[y]);
        let before = run(&g, &[Data::I8(vec![1, 1, 2, -1, 0, 0, -3, 3])]).unwrap();
        prepare(&mut g).unwrap();
        assert_eq!(g.nodes.node_count(), 2);
        let wt = g.tensors.iter().find(|t| t.name == "w_r_out").unwrap();
        assert_eq!(wt.data, Some(Data::I8(vec![1, 3, 2, 4])));
        let after = run(&g, &[Data::I8(vec![1, 1, 2, -1, 0, 0, -3, 3])]).unwrap();
        assert_eq!(before, after);
        // (1,1) . (1,3) = 4, (1,1) . (2,4) = 6; (2,-1) -> -1 -> 0, 0; 0, 0; (-3,3) -> 6, 6.
        assert_eq!(after, vec![Data::I32(vec![4, 6, 0, 0, 0, 0, 6, 6])]);
        insta::assert_snapshot!("folded", dump(&g));
    }

    #[test]
    fn folds_everything_to_a_constant_output() {
        let mut b = Builder::default();
        let c = b.konst("c", &[3], Data::I32(vec![-300, 5, 300]));
        let y = b.node("clip", Op::Clip { min: -128, max: 127 }, &[c], &[3], DType::I8);
        let mut g = b.finish(&[y]);
        prepare(&mut g).unwrap();
        assert_eq!(g.nodes.node_count(), 0);
        assert_eq!(run(&g, &[]).unwrap(), vec![Data::I8(vec![-128, 5, 127])]);
    }

    #[test]
    fn infers_missing_shapes_and_quant() {
        let mut b = Builder::default();
        let x = b.input("x", &[1, 4, 4, 3], DType::I8, Some(Quant::per_tensor(0.5, 3)));
        let p =
            b.node("pool", Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] }, &[x], &[], DType::I8);
        let t = b.node("t", Op::Transpose { perm: vec![0, 3, 1, 2] }, &[p], &[], DType::I8);
        let mut g = b.finish(&[t]);
        prepare(&mut g).unwrap();
        assert_eq!(g.tensor(p).shape, [1, 2, 2, 3]);
        assert_eq!(g.tensor(t).shape, [1, 3, 2, 2]);
        assert_eq!(g.tensor(t).quant, Some(Quant::per_tensor(0.5, 3)));
    }

    #[test]
    fn reports_mismatches_naming_the_node() {
        let mut b = Builder::default();
        let x = b.input("x", &[1, 4, 4, 3], DType::I8, None);
        let w = b.konst("w", &[8, 3, 3, 3], Data::I8(vec![0; 216]));
        let conv =
            Op::Conv2d { stride: [2, 2], dilation: [1, 1], pad: [0; 4], groups: 1, x_zp: 0, w_zp: vec![0] };
        let y = b.node("Conv_7", conv, &[x, w], &[1, 2, 2, 8], DType::I32);
        let mut g = b.finish(&[y]);
        let e = format!("{:#}", prepare(&mut g).unwrap_err());
        assert!(e.contains("Conv_7") && e.contains("[1, 1, 1, 8]"), "{e}");

        let mut b = Builder::default();
        let x = b.input("x", &[1, 4], DType::I8, None);
        let y = b.node("Deq", Op::Dequantize, &[x], &[1, 4], DType::F32);
        let mut g = b.finish(&[y]);
        let e = format!("{:#}", prepare(&mut g).unwrap_err());
        assert!(e.contains("Deq") && e.contains("no quantization"), "{e}");

        let mut b = Builder::default();
        let x = b.input("x", &[1, 4], DType::I8, None);
        let ghost = b.tensor("ghost", &[1, 4], DType::I8, None);
        let y = b.node("Add_1", Op::Add { kind: AddKind::Integer }, &[x, ghost], &[1, 4], DType::I8);
        let mut g = b.finish(&[y]);
        let e = format!("{:#}", prepare(&mut g).unwrap_err());
        assert!(e.contains("Add_1") && e.contains("'ghost'"), "{e}");
    }

    #[test]
    fn prepare_is_deterministic() {
        let build = || {
            let mut b = Builder::default();
            let x = b.input("x", &[1, 2], DType::I8, None);
            let c = b.konst("c", &[2], Data::I8(vec![1, 2]));
            let c2 = b.node("neg", Op::Cast, &[c], &[2], DType::I32);
            let xi = b.node("xi", Op::Cast, &[x], &[1, 2], DType::I32);
            let y = b.node("add", Op::Add { kind: AddKind::Integer }, &[xi, c2], &[1, 2], DType::I32);
            let mut g = b.finish(&[y]);
            prepare(&mut g).unwrap();
            dump(&g)
        };
        assert_eq!(build(), build());
    }
}
