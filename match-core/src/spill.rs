//! Activations in the external memory (docs/l3-activations.md): when the
//! activation arena does not fit the home memory, tensors that stay alive
//! across layers that do not read them are spilled to the target's
//! external memory after they are produced and filled back before the
//! layer that reads them next.
//!
//! The pass rewrites the lowered graph and its mapping: a spill is a
//! [`Op::Spill`] node (home -> external) in a layer of its own right after
//! the tensor's producer, and a [`Op::Fill`] node (external -> a new
//! tensor in the home memory) in a layer of its own before the first
//! later reader, whose reads (and every later one) move to the new
//! tensor. Both are the same bytes, so the interpreter and the reference
//! runtimes agree with the rewritten graph; the planner places a spill's
//! output in the external arena ([`crate::plan::Plan::external`]), and the
//! emitter moves it with the external memory's DMA (`emit/ops.rs`).
//!
//! The choice, repeated while the planned arena is over the budget: the
//! step where the most bytes are live; among the tensors live there that
//! no layer between their last use before it and their next use after it
//! reads, the largest (ties: the first created). A tensor read again later
//! may be spilled again (its filled copy is a new tensor). The pass stops
//! when the arena fits, or when no tensor qualifies; the memory check then
//! reports what is short, as without spilling.

use crate::ir::{Graph, NodeId, Op, OpNode, TensorId};
use crate::mapping::{self, MappedLayer, Mapping};
use crate::plan;
use crate::schedule::Objective;
use match_dsl::model::{Dma, Memory, TensorClass};
use match_dsl::HwModel;
use std::collections::HashMap;

/// The target's memory for activations that do not fit the home memory:
/// an `external` memory that holds inputs and outputs, other than the host
/// unit's compute memory, with a DMA to it (the first in file order).
pub fn external_activations_memory(hw: &HwModel) -> Option<(&Memory, &Dma)> {
    let home = &hw.host_unit().compute_in;
    hw.memories
        .iter()
        .filter(|m| {
            m.external
                && &m.name != home
                && m.may_hold(TensorClass::Inputs)
                && m.may_hold(TensorClass::Outputs)
        })
        .find_map(|m| hw.dma(&m.name, home).map(|d| (m, d)))
}

/// One spill the pass made, for `--explain`: the tensor, its bytes, and
/// the layers (indices in the final mapping) that copy it out and back.
#[derive(Clone, Debug, PartialEq)]
pub struct Spilled {
    pub tensor: String,
    pub bytes: usize,
    pub spill_layer: usize,
    pub fill_layer: usize,
}

/// Spills activations until the planned arena is at most `budget` bytes
/// (see the module), or no tensor qualifies. Returns how many it spilled
/// ([`spills_of`] lists them); none when the target has no external memory
/// for activations or the arena already fits.
pub fn spill_to_fit(
    graph: &mut Graph,
    hw: &HwModel,
    mapping: &mut Mapping,
    budget: usize,
    objective: Objective,
    fused: &plan::Fused,
) -> anyhow::Result<usize> {
    let Some((ext, dma)) = external_activations_memory(hw) else { return Ok(0) };
    let start = (graph.clone(), mapping.clone());
    let mut arena = plan::plan_without(graph, &mapping.node_order(), fused)?.arena_bytes;
    let first = arena;
    let mut count = 0;
    // Each round removes one tensor from the arena at the peak, or stops.
    for _ in 0..4 * graph.tensors.len().max(1) {
        if arena <= budget {
            break;
        }
        let Some((t, after, before)) = choose(graph, mapping, &fused.inside) else { break };
        rewrite(graph, hw, mapping, t, after, before, objective, ext, dma);
        count += 1;
        arena = plan::plan_without(graph, &mapping.node_order(), fused)?.arena_bytes;
    }
    // Spills that saved nothing (the peak is a layer's own working set)
    // would only cost transfers: undo them.
    if arena >= first && count > 0 {
        (*graph, *mapping) = start;
        count = 0;
    }
    Ok(count)
}

/// The spills in a rewritten graph and its mapping: per [`Op::Spill`]
/// node, the tensor it copies, and the layers of it and of its fill.
pub fn spills_of(graph: &Graph, mapping: &Mapping) -> Vec<Spilled> {
    let layer_of = layer_of_node(mapping);
    let mut out = Vec::new();
    for (li, l) in mapping.layers.iter().enumerate() {
        for &n in &l.nodes {
            let node = &graph.nodes[n];
            let (Op::Spill, [x], [y]) = (&node.op, &node.inputs[..], &node.outputs[..]) else { continue };
            let fill = graph
                .nodes
                .node_indices()
                .find(|&m| matches!(graph.nodes[m].op, Op::Fill) && graph.nodes[m].inputs.first() == Some(y));
            out.push(Spilled {
                tensor: graph.tensor(*x).name.clone(),
                bytes: graph.tensor(*x).bytes(),
                spill_layer: li,
                fill_layer: fill.and_then(|f| layer_of.get(&f).copied()).unwrap_or(li),
            });
        }
    }
    out
}

/// The layer of every node.
fn layer_of_node(mapping: &Mapping) -> HashMap<NodeId, usize> {
    mapping.layers.iter().enumerate().flat_map(|(li, l)| l.nodes.iter().map(move |&n| (n, li))).collect()
}

/// The tensor to spill, the layer after which its spill goes (its
/// producer's; `None` for a graph input: before the first layer) and the
/// layer before which it is filled (its next reader after the peak).
fn choose(
    graph: &Graph,
    mapping: &Mapping,
    inside: &std::collections::BTreeSet<TensorId>,
) -> Option<(TensorId, Option<usize>, usize)> {
    let layer_of = layer_of_node(mapping);
    let nl = mapping.layers.len();
    // Per tensor: producer layer (None: graph input) and reader layers.
    let mut producer: HashMap<TensorId, Option<usize>> = HashMap::new();
    let mut readers: HashMap<TensorId, Vec<usize>> = HashMap::new();
    for &t in &graph.inputs {
        producer.insert(t, None);
    }
    let mut external = std::collections::HashSet::new();
    for n in graph.nodes.node_indices() {
        let node = &graph.nodes[n];
        let li = *layer_of.get(&n)?;
        for &t in &node.outputs {
            producer.insert(t, Some(li));
            if matches!(node.op, Op::Spill) {
                external.insert(t);
            }
        }
        for &t in node.inputs.iter().filter(|&&t| !graph.tensor(t).is_const()) {
            readers.entry(t).or_default().push(li);
        }
    }
    // Live bytes between layers: a tensor is live from its producer layer
    // to its last reader (graph outputs to the end); a reshape's output
    // shares its input's bytes and is not counted again.
    let counted = |t: TensorId| {
        !external.contains(&t)
            && !inside.contains(&t)
            && graph.producer(t).is_none_or(|p| !matches!(graph.nodes[p].op, Op::Reshape))
    };
    let mut live = vec![0usize; nl];
    let span = |t: TensorId| -> Option<(usize, usize)> {
        let p = producer.get(&t).copied()?;
        let last = if graph.outputs.contains(&t) {
            nl.saturating_sub(1)
        } else {
            readers.get(&t).and_then(|r| r.iter().max().copied()).unwrap_or(p.unwrap_or(0))
        };
        Some((p.unwrap_or(0), last))
    };
    for (&t, _) in producer.iter().filter(|&(&t, _)| counted(t)) {
        if let Some((a, b)) = span(t) {
            for l in live.iter_mut().take(b + 1).skip(a) {
                *l += graph.tensor(t).bytes();
            }
        }
    }
    let peak = (0..nl).max_by_key(|&l| (live[l], std::cmp::Reverse(l)))?;
    let mut best: Option<(usize, TensorId, Option<usize>, usize)> = None;
    for (&t, &p) in &producer {
        if !counted(t) || graph.outputs.contains(&t) || graph.tensor(t).bytes() == 0 {
            continue;
        }
        let Some(r) = readers.get(&t) else { continue };
        // The spill must see the tensor whole in the home memory: produced
        // as a layer's result, not an intermediate inside a fused layer.
        if p.is_some_and(|p| r.contains(&p)) {
            continue;
        }
        let before_peak = r.iter().copied().filter(|&l| l < peak).max().or(p);
        let Some(next) = r.iter().copied().filter(|&l| l > peak).min() else { continue };
        // Idle at the peak: no reader at it, and a gap around it.
        if r.contains(&peak) || before_peak.is_some_and(|b| b >= peak) || p == Some(peak) {
            continue;
        }
        let key = (graph.tensor(t).bytes(), t, p, next);
        if best.is_none_or(|b| (key.0, std::cmp::Reverse(key.1)) > (b.0, std::cmp::Reverse(b.1))) {
            best = Some(key);
        }
    }
    best.map(|(_, t, p, next)| (t, p, next))
}

/// Inserts the spill layer after layer `after` (before layer 0 when
/// `None`) and the fill layer before layer `before`, moves the reads of
/// `t` from `before` on to the filled tensor, and renumbers the layers.
#[allow(clippy::too_many_arguments)]
fn rewrite(
    graph: &mut Graph,
    hw: &HwModel,
    mapping: &mut Mapping,
    t: TensorId,
    after: Option<usize>,
    before: usize,
    objective: Objective,
    ext: &Memory,
    dma: &Dma,
) {
    let orig = graph.tensor(t).clone();
    let mut outside = orig.clone();
    outside.name = format!("{}.{}", orig.name, ext.name);
    let t_ext = graph.add_tensor(outside);
    let mut back = orig.clone();
    back.name = format!("{}.filled", orig.name);
    let t_back = graph.add_tensor(back);
    // Every read from layer `before` on moves to the filled copy.
    let later: Vec<NodeId> = mapping.layers[before..].iter().flat_map(|l| l.nodes.iter().copied()).collect();
    for n in later {
        for input in graph.nodes[n].inputs.iter_mut().filter(|i| **i == t) {
            *input = t_back;
        }
    }
    let spill = graph.add_node(OpNode {
        name: format!("{}/spill", orig.name),
        op: Op::Spill,
        inputs: vec![t],
        outputs: vec![t_ext],
    });
    let fill = graph.add_node(OpNode {
        name: format!("{}/fill", orig.name),
        op: Op::Fill,
        inputs: vec![t_ext],
        outputs: vec![t_back],
    });
    graph.rebuild_edges();
    // The fill goes before a chain of layers linked in the compute memory
    // (residency, which may pass through code-less reshapes), never inside
    // one: while some link from layer k to layer m >= fill_at starts
    // before it, it moves to k.
    let mut fill_at = before;
    while let Some(k) = (0..fill_at).find(|&k| {
        mapping.layers[k].schedule.as_ref().and_then(|s| s.output_to).is_some_and(|m| m >= fill_at)
    }) {
        fill_at = k;
    }
    let spill_at = after.map_or(0, |a| a + 1);
    let fill_at = fill_at.max(spill_at);
    let layer = |n: NodeId| -> MappedLayer {
        let mut l = mapping::generic_layer_for(graph, hw, n, objective);
        l.schedule = l.schedule.map(|mut s| {
            transfer_cost(&mut s, dma, ext, hw, graph.tensor(t).bytes());
            s
        });
        l
    };
    let (spill_layer, fill_layer) = (layer(spill), layer(fill));
    insert_layer(mapping, fill_at, fill_layer);
    insert_layer(mapping, spill_at, spill_layer);
    for (i, l) in mapping.layers.iter_mut().enumerate() {
        l.name = format!("l{i:02}_{}", graph.nodes[l.nodes[0]].op.pattern_name());
    }
}

/// Inserts `layer` at index `at`, shifting the residency links' layer
/// indices past it.
fn insert_layer(mapping: &mut Mapping, at: usize, layer: MappedLayer) {
    for l in &mut mapping.layers {
        if let Some(s) = l.schedule.as_mut() {
            for i in [&mut s.input_from, &mut s.output_to].into_iter().flatten() {
                *i += usize::from(*i >= at);
            }
        }
    }
    mapping.layers.insert(at, layer);
}

/// A spill's or fill's estimate: the external DMA moving `bytes` as 1-D
/// commands of at most its `max` (as the emitter issues them), serial; its
/// energy, per byte the DMA's and both memories'.
fn transfer_cost(s: &mut crate::schedule::Schedule, dma: &Dma, ext: &Memory, hw: &HwModel, bytes: usize) {
    let len = bytes as i64;
    let cycles = crate::cost::dma_cycles(dma, &[len], &[len], 1.0);
    let home = hw.memory(&hw.host_unit().compute_in).and_then(|m| m.energy_per_byte).unwrap_or(0.0);
    s.cycles = crate::cost::Cycles { total: cycles, transfer: cycles, ..Default::default() };
    s.energy_pj =
        bytes as f64 * (dma.energy_per_byte.unwrap_or(0.0) + ext.energy_per_byte.unwrap_or(0.0) + home);
    s.macs = 0;
    s.calls = 0;
    s.bound_cycles = bytes as f64 / dma.bandwidth;
    s.roofline_cycles = s.bound_cycles;
}

/// The DMA commands a spill or fill of `bytes` issues.
pub fn commands(dma: &Dma, bytes: u64) -> u64 {
    let mut n = 0;
    crate::cost::split_command(crate::cost::dma_max(dma), bytes, 1, 1, &mut |_| n += 1);
    n
}
