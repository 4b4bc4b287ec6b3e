//! `matchc inspect`: what the importer made of a model, layer by layer:
//! operator, shapes, MACs, parameters and quantization.

use match_core::ir::{Graph, Op, Tensor};
use std::fmt::Write as _;

fn shape(t: &Tensor) -> String {
    format!("{}[{}]", t.dtype, t.shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x"))
}

fn quant(t: &Tensor) -> String {
    match &t.quant {
        None => String::new(),
        Some(q) if q.is_per_channel() => format!(" q(per-channel x{}, axis {})", q.scale.len(), q.axis),
        Some(q) => format!(" q(scale {:.6e}, zp {})", q.scale[0], q.zp()),
    }
}

/// Multiply-accumulates of one node.
pub fn macs(g: &Graph, op: &Op, inputs: &[usize], outputs: &[usize]) -> u64 {
    let out = |i: usize| g.tensors[outputs[i]].elements() as u64;
    match op {
        Op::Conv2d { .. } => {
            // OHWI weights: each output element takes FY * FX * C/groups MACs.
            let w = &g.tensors[inputs[1]];
            out(0) * w.shape.iter().skip(1).product::<usize>() as u64
        }
        Op::Dense { .. } => {
            let w = &g.tensors[inputs[1]];
            out(0) * w.shape.get(1).copied().unwrap_or(1) as u64
        }
        _ => 0,
    }
}

pub fn inspect(g: &Graph) -> String {
    let mut s = String::new();
    for (i, &t) in g.inputs.iter().enumerate() {
        let t = g.tensor(t);
        let _ = writeln!(s, "input  {i}: {} {}{}", t.name, shape(t), quant(t));
    }
    for (i, &t) in g.outputs.iter().enumerate() {
        let t = g.tensor(t);
        let _ = writeln!(s, "output {i}: {} {}{}", t.name, shape(t), quant(t));
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "{:<4} {:<14} {:<24} {:<24} {:>12} {:>9}  name",
        "#", "op", "input", "output", "MACs", "params"
    );
    let order = g.topo_order().unwrap_or_default();
    let (mut total_macs, mut total_params) = (0u64, 0u64);
    for (i, &n) in order.iter().enumerate() {
        let node = &g.nodes[n];
        let ins: Vec<usize> = node.inputs.iter().map(|t| t.0).collect();
        let outs: Vec<usize> = node.outputs.iter().map(|t| t.0).collect();
        let macs = macs(g, &node.op, &ins, &outs);
        let params: u64 = node
            .inputs
            .iter()
            .map(|&t| g.tensor(t))
            .filter(|t| t.is_const())
            .map(|t| t.elements() as u64)
            .sum();
        total_macs += macs;
        total_params += params;
        let first_act = node.inputs.iter().map(|&t| g.tensor(t)).find(|t| !t.is_const());
        let out = node.outputs.first().map(|&t| g.tensor(t));
        let _ = writeln!(
            s,
            "{:<4} {:<14} {:<24} {:<24} {:>12} {:>9}  {}{}",
            i,
            node.op.pattern_name(),
            first_act.map(shape).unwrap_or_else(|| "-".into()),
            out.map(shape).unwrap_or_else(|| "-".into()),
            macs,
            params,
            node.name,
            out.map(quant).unwrap_or_default(),
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "{} operators, {} MACs, {} parameters", order.len(), total_macs, total_params);
    s
}
