//! Memory planning: static offsets of every activation in one arena, from
//! liveness over the execution order.
//!
//! # Liveness
//!
//! Step `s` is the `s`-th node of `order`. A tensor lives from the step of its
//! producer to the step of its last consumer, both included (a node's inputs
//! and outputs are live together). Graph inputs live from step 0; graph
//! outputs live to the last step. A produced tensor nobody reads lives only at
//! its producer's step. Constants are not in the arena, nor are the
//! tensors [`plan_without`] is told no code stores there (a tiled layer's
//! intermediate results, which live in its tile buffers), nor the outputs
//! of [`Op::Spill`] nodes, which get their own bytes in the external
//! memory's arena ([`Plan::external`]; docs/l3-activations.md).
//!
//! # Aliasing (tensors that share bytes)
//!
//! - **Reshape** is free: its output has the offset of its input (the same
//!   bytes), and the two are planned as one buffer whose lifetime is the union
//!   of theirs. The emitter emits no code for a Reshape. (A Reshape of a
//!   constant, which `prepare` folds away, would get its own buffer and need
//!   a copy.)
//! - **In place**: the output of one of the operators below may be given the
//!   offset of one of its inputs (output pointer == input pointer) when that
//!   input's buffer (with everything aliasing it) is not read after the node
//!   and the input is not a graph output. The planner decides; the emitter
//!   recognizes it as `offsets[output] == offsets[input]`, which never happens
//!   otherwise (an input and an output of a node are live together, so
//!   distinct buffers never overlap). The ops that **may** run in place, and
//!   the input whose buffer they may take ([`in_place_inputs`]):
//!
//!   | op | input | condition |
//!   |---|---|---|
//!   | `Clip` | x (0) | |
//!   | `BiasAdd` | acc (0) | |
//!   | `Requantize` | acc (0) | |
//!   | `Cast` | x (0) | |
//!   | `Quantize` | x (0) | |
//!   | `Add` | a (0) or b (1) | that input has as many elements as the output (not broadcast) |
//!
//!   and for all of them: the input has exactly as many elements as the
//!   output, and the output's element size is **at most** the input's
//!   (narrowing, e.g. int32 accumulator -> int8, is allowed; widening, e.g.
//!   `Dequantize` or a widening `Cast`, never runs in place).
//!
//!   **Contract for the C kernels of these ops**: with `out == in`, the
//!   kernel must walk the elements in increasing index order and load element
//!   `i` of every input (all of its bytes) before it stores element `i` of the
//!   output; `in` and `out` must not be declared `restrict`. (Blockwise SIMD is
//!   fine if each block is loaded before it is stored.) Then a narrowing store
//!   of element `i` ends at byte `(i + 1) * out_size <= (i + 1) * in_size`,
//!   so it never clobbers an input element not yet read. `Add`'s other input
//!   (broadcast or not) is a different buffer and is only read.
//!   Every other op (convolutions, dense, pools, pad, transpose, concat,
//!   softmax, dequantize, ...) always gets an output disjoint from its inputs.
//!
//! Consequence, as in TFLite Micro: a graph input does not survive a run (its
//! bytes are reused once it is dead, possibly in place), and a graph output
//! may occupy bytes that held a graph input.
//!
//! # Placement
//!
//! Buffers (a tensor with the reshapes of it) are sized in 16-byte units and
//! placed at 16-byte-aligned offsets; two buffers live at a common step never
//! share a byte, except an in-place handoff: a legal (input, output) pair of
//! the table above, whose lifetimes meet only at that node's step, may have
//! the **same** offset (never a partial overlap). Whether a handoff is taken
//! is decided during placement, per node: taking every one is not always
//! best (an int32 accumulator narrowed in place pins its int8 result at its
//! own start, which can split the free space the next layer needs).
//!
//! Greedy placement in several orders of the buffers (size descending like
//! TFLite Micro's greedy planner, lifetime start, lifetime length, size x
//! lifetime, lifetime end), each with first-fit (lowest free offset),
//! best-fit (tightest free gap) and in-place-first (the input's offset when
//! free, else first-fit); then a bounded local search (swaps and moves in
//! the best order, from a fixed seed) while the arena is above the aligned
//! lower bound. The smallest arena wins; ties go to the first tried, so the
//! plan is deterministic.
//!
//! [`Plan::lower_bound`] is the largest, over the steps, of the live bytes
//! (unaligned): every live buffer counts once, and an in-place handoff at
//! that step counts once (the larger of the two), as if every legal in-place
//! reuse were taken. No plan with these aliasing rules can go below it.

use crate::ir::{Graph, NodeId, Op, TensorId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

#[derive(Clone, Debug, PartialEq, Default)]
pub struct Plan {
    /// Byte offset in the arena of every non-constant tensor (graph inputs
    /// and outputs included). Tensors that alias another (free reshapes)
    /// share its offset.
    pub offsets: BTreeMap<TensorId, usize>,
    /// Arena size: the planned peak.
    pub arena_bytes: usize,
    /// Largest sum of live bytes at any step: no plan can do better.
    pub lower_bound: usize,
    /// Byte offset in the external memory's activation arena of every
    /// spilled tensor (the output of an [`Op::Spill`], added by
    /// [`crate::spill`]); these have no place in `offsets`. Each has its own
    /// bytes (16-byte aligned, in order of first spill): the external
    /// memory is large and these are few.
    pub external: BTreeMap<TensorId, usize>,
    /// Bytes of that arena (0: nothing spilled).
    pub external_bytes: usize,
}

/// Offsets and buffer sizes are multiples of this.
pub const ALIGN: usize = 16;

/// Local-search budget: orderings tried after the fixed heuristics, unless
/// the arena already equals the aligned lower bound.
const SEARCH_ITERATIONS: usize = 400;

/// The inputs (indices into `graph.nodes[node].inputs`) whose buffer the
/// node's output may take, in order of preference; empty for ops that never
/// run in place. See the module documentation for the kernels' contract.
pub fn in_place_inputs(graph: &Graph, node: NodeId) -> Vec<usize> {
    let n = &graph.nodes[node];
    let candidates: &[usize] = match n.op {
        Op::Clip { .. } | Op::BiasAdd | Op::Requantize { .. } | Op::Cast | Op::Quantize => &[0],
        Op::Add { .. } => &[0, 1],
        _ => &[],
    };
    let [out] = n.outputs[..] else { return Vec::new() };
    let out = graph.tensor(out);
    candidates
        .iter()
        .copied()
        .filter(|&i| {
            n.inputs.get(i).is_some_and(|&t| {
                let t = graph.tensor(t);
                !t.is_const() && t.elements() == out.elements() && out.dtype.size() <= t.dtype.size()
            })
        })
        .collect()
}

/// A reshape group: tensors holding the same bytes, one buffer, live over
/// `[start, end]` (steps).
#[derive(Clone, Debug)]
struct Buffer {
    tensors: Vec<TensorId>,
    start: usize,
    end: usize,
    /// Bytes (for the lower bound).
    bytes: usize,
    /// Aligned bytes (for placement).
    size: usize,
}

/// What placement works on.
#[derive(Clone, Debug)]
struct Problem {
    buffers: Vec<Buffer>,
    /// Per buffer, the buffers that may take exactly its offset (legal
    /// in-place handoffs, either direction).
    partners: Vec<Vec<usize>>,
    /// The handoffs: (step, input buffer, output buffer).
    handoffs: Vec<(usize, usize, usize)>,
    steps: usize,
}

/// Plans the arena for executing `order` (every node once).
pub fn plan(graph: &Graph, order: &[NodeId]) -> anyhow::Result<Plan> {
    plan_without(graph, order, &Fused::default())
}

/// The layers the emitter tiles, as the planner must see them
/// (`emit::fused_layers`): their code runs the whole chain of nodes on
/// tiles, reading inputs and writing outputs over the layer's whole span.
#[derive(Clone, Debug, Default)]
pub struct Fused {
    /// Tensors produced and read only inside one such layer: they live in
    /// its tile buffers and get no arena place.
    pub inside: BTreeSet<TensorId>,
    /// Each such layer's nodes: its inputs live to its last node, its
    /// outputs from its first, so no output is placed over an input the
    /// tiles still read.
    pub layers: Vec<Vec<NodeId>>,
}

/// [`plan`] for code that fuses the layers of `fused` ([`Fused`]).
pub fn plan_without(graph: &Graph, order: &[NodeId], fused: &Fused) -> anyhow::Result<Plan> {
    let inside = &fused.inside;
    let problem = problem(graph, order, fused)?;
    let lower_bound = load(&problem, |b| b.bytes);
    let (offsets, arena_bytes) = place(&problem, load(&problem, |b| b.size));
    debug_assert!(check(&problem, &offsets).is_ok(), "{:?}", check(&problem, &offsets));
    let mut plan = Plan { offsets: BTreeMap::new(), arena_bytes, lower_bound, ..Default::default() };
    for &n in order {
        if let (Op::Spill, [y]) = (&graph.nodes[n].op, &graph.nodes[n].outputs[..]) {
            plan.external.insert(*y, plan.external_bytes);
            plan.external_bytes += round_up(graph.tensor(*y).bytes());
        }
    }
    for (b, &off) in problem.buffers.iter().zip(&offsets) {
        for &t in &b.tensors {
            plan.offsets.insert(t, off);
        }
    }
    // Tensors no step touches (unused, not graph inputs or outputs) hold no
    // bytes but still get an offset, as the interface promises.
    for (i, t) in graph.tensors.iter().enumerate() {
        if !t.is_const() && !plan.external.contains_key(&TensorId(i)) && !inside.contains(&TensorId(i)) {
            plan.offsets.entry(TensorId(i)).or_insert(0);
        }
    }
    Ok(plan)
}

fn round_up(x: usize) -> usize {
    x.max(1).div_ceil(ALIGN) * ALIGN
}

/// Liveness, reshape groups and the legal in-place handoffs.
fn problem(graph: &Graph, order: &[NodeId], fused: &Fused) -> anyhow::Result<Problem> {
    let nt = graph.tensors.len();
    let mut step_of: HashMap<NodeId, usize> = HashMap::with_capacity(order.len());
    for (s, &n) in order.iter().enumerate() {
        anyhow::ensure!(
            graph.nodes.contains_node(n),
            "plan: node {} of the order is not in the graph",
            n.index()
        );
        anyhow::ensure!(
            step_of.insert(n, s).is_none(),
            "plan: node `{}` appears twice in the order",
            graph.nodes[n].name
        );
    }
    anyhow::ensure!(
        step_of.len() == graph.nodes.node_count(),
        "plan: the order has {} nodes, the graph {}",
        step_of.len(),
        graph.nodes.node_count()
    );
    for &t in graph.inputs.iter().chain(&graph.outputs) {
        anyhow::ensure!(t.0 < nt, "plan: graph input/output tensor {} does not exist", t.0);
    }

    // Liveness.
    let mut start: Vec<Option<usize>> = vec![None; nt];
    let mut end: Vec<Option<usize>> = vec![None; nt];
    for &t in &graph.inputs {
        if !graph.tensor(t).is_const() {
            start[t.0] = Some(0);
            end[t.0] = Some(0);
        }
    }
    for (s, &n) in order.iter().enumerate() {
        let node = &graph.nodes[n];
        for &t in &node.inputs {
            anyhow::ensure!(t.0 < nt, "plan: node `{}` reads tensor {} which does not exist", node.name, t.0);
            if graph.tensor(t).is_const() {
                continue;
            }
            anyhow::ensure!(
                start[t.0].is_some(),
                "plan: node `{}` (step {s}) reads `{}` before it is produced",
                node.name,
                graph.tensor(t).name
            );
            end[t.0] = Some(end[t.0].map_or(s, |e| e.max(s)));
        }
        for &t in &node.outputs {
            anyhow::ensure!(
                t.0 < nt,
                "plan: node `{}` writes tensor {} which does not exist",
                node.name,
                t.0
            );
            anyhow::ensure!(
                !graph.tensor(t).is_const(),
                "plan: node `{}` writes the constant `{}`",
                node.name,
                graph.tensor(t).name
            );
            anyhow::ensure!(
                start[t.0].is_none(),
                "plan: `{}` is produced twice (or is a graph input)",
                graph.tensor(t).name
            );
            start[t.0] = Some(s);
            end[t.0] = Some(s);
        }
    }
    // A spilled tensor lives in the external memory, not in the arena; a
    // tiled layer's intermediate results live in its tile buffers.
    for layer in &fused.layers {
        let steps: Vec<usize> = layer.iter().filter_map(|n| step_of.get(n).copied()).collect();
        let (Some(&first), Some(&last)) = (steps.iter().min(), steps.iter().max()) else { continue };
        for &n in layer {
            let node = &graph.nodes[n];
            for &t in &node.inputs {
                if let Some(e) = end[t.0].as_mut() {
                    *e = (*e).max(last);
                }
            }
            for &t in &node.outputs {
                if let Some(s) = start[t.0].as_mut() {
                    *s = (*s).min(first);
                }
            }
        }
    }
    for &t in &fused.inside {
        if t.0 < nt && !graph.outputs.contains(&t) {
            start[t.0] = None;
            end[t.0] = None;
        }
    }
    for &n in order {
        let node = &graph.nodes[n];
        if let (Op::Spill, [y]) = (&node.op, &node.outputs[..]) {
            anyhow::ensure!(
                !graph.outputs.contains(y),
                "plan: the spilled `{}` is a graph output",
                graph.tensor(*y).name
            );
            start[y.0] = None;
            end[y.0] = None;
        }
    }
    let last = order.len().saturating_sub(1);
    for &t in &graph.outputs {
        if graph.tensor(t).is_const() {
            continue;
        }
        anyhow::ensure!(
            start[t.0].is_some(),
            "plan: graph output `{}` is never produced",
            graph.tensor(t).name
        );
        end[t.0] = Some(last);
    }

    // Reshape groups (union-find; the smallest tensor id is the root).
    let mut parent: Vec<usize> = (0..nt).collect();
    fn find(parent: &mut [usize], mut x: usize) -> usize {
        while parent[x] != x {
            parent[x] = parent[parent[x]];
            x = parent[x];
        }
        x
    }
    for &n in order {
        let node = &graph.nodes[n];
        if let (Op::Reshape, [x], [y]) = (&node.op, &node.inputs[..], &node.outputs[..]) {
            if !graph.tensor(*x).is_const() {
                anyhow::ensure!(
                    graph.tensor(*x).bytes() == graph.tensor(*y).bytes(),
                    "plan: reshape `{}` changes the size ({} -> {} bytes)",
                    node.name,
                    graph.tensor(*x).bytes(),
                    graph.tensor(*y).bytes()
                );
                let (a, b) = (find(&mut parent, x.0), find(&mut parent, y.0));
                parent[a.max(b)] = a.min(b);
            }
        }
    }
    let mut groups: BTreeMap<usize, Vec<TensorId>> = BTreeMap::new();
    for (t, s) in start.iter().enumerate() {
        if s.is_some() {
            groups.entry(find(&mut parent, t)).or_default().push(TensorId(t));
        }
    }
    let mut buffer_of: HashMap<usize, usize> = HashMap::with_capacity(groups.len());
    let mut buffers = Vec::with_capacity(groups.len());
    for (root, tensors) in groups {
        buffer_of.insert(root, buffers.len());
        let s = tensors.iter().filter_map(|t| start[t.0]).min().unwrap_or(0);
        let e = tensors.iter().filter_map(|t| end[t.0]).max().unwrap_or(0);
        let bytes = tensors.iter().map(|t| graph.tensor(*t).bytes()).max().unwrap_or(0);
        buffers.push(Buffer { tensors, start: s, end: e, bytes, size: round_up(bytes) });
    }
    // A graph output is read after the last step: never overwritten.
    let mut pinned = vec![false; buffers.len()];
    for &t in &graph.outputs {
        if let Some(&b) = buffer_of.get(&find(&mut parent, t.0)) {
            pinned[b] = true;
        }
    }

    // Handoffs: the input's buffer dies at the node, the output's is born.
    let mut handoffs = BTreeSet::new();
    for (s, &n) in order.iter().enumerate() {
        let node = &graph.nodes[n];
        let [y] = node.outputs[..] else { continue };
        // Tensors without a place (in the external memory, or in a tiled
        // layer's tile buffers) take no part in handoffs.
        let Some(&by) = buffer_of.get(&find(&mut parent, y.0)) else { continue };
        for i in in_place_inputs(graph, n) {
            let Some(&bx) = buffer_of.get(&find(&mut parent, node.inputs[i].0)) else { continue };
            if bx != by && !pinned[bx] && buffers[bx].end == s && buffers[by].start == s {
                handoffs.insert((s, bx, by));
            }
        }
    }
    let mut partners = vec![Vec::new(); buffers.len()];
    for &(_, x, y) in &handoffs {
        partners[x].push(y);
        partners[y].push(x);
    }
    Ok(Problem { buffers, partners, handoffs: handoffs.into_iter().collect(), steps: order.len() })
}

/// The largest live total over the steps, each buffer counting `size(b)`
/// and the best handoff of each step counted once.
fn load(p: &Problem, size: impl Fn(&Buffer) -> usize) -> usize {
    let mut total = vec![0usize; p.steps.max(1)];
    for b in &p.buffers {
        for t in &mut total[b.start..=b.end] {
            *t += size(b);
        }
    }
    let mut saved = vec![0usize; p.steps.max(1)];
    for &(s, x, y) in &p.handoffs {
        saved[s] = saved[s].max(size(&p.buffers[x]).min(size(&p.buffers[y])));
    }
    total.iter().zip(&saved).map(|(t, s)| t - s).max().unwrap_or(0)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Fit {
    /// The lowest free offset.
    First,
    /// The start of the tightest free gap (the open top last).
    Best,
    /// A placed in-place partner's offset if free, else the lowest.
    InPlace,
}

/// Places the buffers in the sequence `seq`; returns offsets (indexed like
/// the buffers) and the arena size.
fn place_sequence(
    p: &Problem,
    seq: &[usize],
    fit: Fit,
    forbidden: &mut Vec<(usize, usize)>,
) -> (Vec<usize>, usize) {
    let mut offsets = vec![usize::MAX; p.buffers.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(seq.len());
    let mut arena = 0usize;
    for &bi in seq {
        let b = &p.buffers[bi];
        // Offsets x with [x, x + size) meeting a placed buffer live at a
        // common step: lo <= x < hi, on the 16-byte grid. A partner's own
        // offset is allowed.
        forbidden.clear();
        for &pi in &placed {
            let q = &p.buffers[pi];
            if q.end < b.start || q.start > b.end {
                continue;
            }
            let (lo, hi) = (offsets[pi], offsets[pi] + q.size);
            let from = (lo + ALIGN).saturating_sub(b.size);
            if p.partners[bi].contains(&pi) {
                forbidden.push((from, lo));
                forbidden.push((lo + ALIGN, hi));
            } else {
                forbidden.push((from, hi));
            }
        }
        forbidden.sort_unstable();
        let free = |x: usize| forbidden.iter().all(|&(lo, hi)| x < lo || x >= hi);
        let first = || {
            let mut x = 0;
            for &(lo, hi) in forbidden.iter() {
                if x < lo {
                    break;
                }
                x = x.max(hi);
            }
            x
        };
        let x = match fit {
            Fit::First => first(),
            Fit::InPlace => p.partners[bi]
                .iter()
                .map(|&q| offsets[q])
                .find(|&o| o != usize::MAX && free(o))
                .unwrap_or_else(first),
            Fit::Best => {
                let mut best: Option<(usize, usize)> = None; // (gap, x)
                let mut x = 0;
                for &(lo, hi) in forbidden.iter() {
                    if x < lo && best.is_none_or(|(g, _)| lo - x < g) {
                        best = Some((lo - x, x));
                    }
                    x = x.max(hi);
                }
                best.map_or(x, |(_, x)| x)
            }
        };
        offsets[bi] = x;
        placed.push(bi);
        arena = arena.max(x + b.size);
    }
    (offsets, arena)
}

/// Tiny deterministic generator for the local search.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Tries the heuristics and keeps the smallest arena (ties: the first
/// tried): offsets (indexed like the buffers) and arena size.
fn place(p: &Problem, aligned_bound: usize) -> (Vec<usize>, usize) {
    let bs = &p.buffers;
    let n = bs.len();
    let ids: Vec<usize> = (0..n).collect();
    let life = |b: &Buffer| b.end - b.start + 1;
    let mut orders: Vec<Vec<usize>> = Vec::new();
    let mut by = |key: &dyn Fn(&Buffer, &Buffer) -> std::cmp::Ordering| {
        let mut v = ids.clone();
        v.sort_by(|&a, &b| key(&bs[a], &bs[b]).then(a.cmp(&b)));
        orders.push(v);
    };
    by(&|a, b| b.size.cmp(&a.size).then(a.start.cmp(&b.start)));
    by(&|a, b| a.start.cmp(&b.start).then(b.size.cmp(&a.size)));
    by(&|a, b| life(b).cmp(&life(a)).then(b.size.cmp(&a.size)));
    by(&|a, b| (b.size * life(b)).cmp(&(a.size * life(a))));
    by(&|a, b| b.end.cmp(&a.end).then(b.size.cmp(&a.size)));

    let mut scratch = Vec::new();
    let mut best: Option<(usize, Vec<usize>, Vec<usize>, Fit)> = None; // (arena, offsets, seq, fit)
    'orders: for seq in &orders {
        for fit in [Fit::First, Fit::Best, Fit::InPlace] {
            let (offsets, arena) = place_sequence(p, seq, fit, &mut scratch);
            if best.as_ref().is_none_or(|(a, ..)| arena < *a) {
                best = Some((arena, offsets, seq.clone(), fit));
            }
            if arena <= aligned_bound {
                break 'orders;
            }
        }
    }
    let Some((mut best_arena, mut best_offsets, mut best_seq, fit)) = best else { return (Vec::new(), 0) };
    // Local search: swap two buffers of the sequence or move one earlier;
    // keep the change when the arena does not grow.
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let mut iterations = 0;
    while n > 1 && best_arena > aligned_bound && iterations < SEARCH_ITERATIONS {
        iterations += 1;
        let mut seq = best_seq.clone();
        let (i, j) = (rng.below(n), rng.below(n));
        if rng.next() & 1 == 0 {
            seq.swap(i, j);
        } else {
            let x = seq.remove(i.max(j));
            seq.insert(i.min(j), x);
        }
        let (offsets, arena) = place_sequence(p, &seq, fit, &mut scratch);
        if arena <= best_arena {
            best_arena = arena;
            best_offsets = offsets;
            best_seq = seq;
        }
    }
    (best_offsets, best_arena)
}

/// Offsets aligned; two buffers live at a common step share no byte, unless
/// they are in-place partners at the same offset.
fn check(p: &Problem, offsets: &[usize]) -> Result<(), String> {
    for (i, a) in p.buffers.iter().enumerate() {
        if !offsets[i].is_multiple_of(ALIGN) {
            return Err(format!("buffer {i} at unaligned offset {}", offsets[i]));
        }
        for (j, b) in p.buffers.iter().enumerate().skip(i + 1) {
            if a.end < b.start || b.end < a.start {
                continue;
            }
            let (x, y) = (offsets[i], offsets[j]);
            if x < y + b.size && y < x + a.size && !(x == y && p.partners[i].contains(&j)) {
                return Err(format!(
                    "tensors {:?} and {:?} are live together and overlap",
                    a.tensors, b.tensors
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::tests::Builder;
    use crate::ir::{AddKind, DType, Data, Graph, Op, Requant};
    use std::path::Path;

    fn requant() -> Op {
        Op::Requantize {
            requant: Requant::FixedPoint { multiplier: vec![1 << 30], shift: vec![0] },
            out_zp: 0,
        }
    }
    fn conv() -> Op {
        Op::Conv2d { stride: [1, 1], dilation: [1, 1], pad: [1, 1, 1, 1], groups: 1, x_zp: 0, w_zp: vec![0] }
    }
    fn clip() -> Op {
        Op::Clip { min: -128, max: 127 }
    }
    fn add() -> Op {
        Op::Add { kind: AddKind::Integer }
    }

    /// Checks a plan against the graph, independently of the planner:
    /// every activation has an aligned offset inside the arena; the arena is
    /// at least the lower bound; two tensors live at a common step share no
    /// byte unless they alias (a reshape, or an in-place op whose output has
    /// its input's offset); every shared offset between a node's input and
    /// output is a reshape or a legal in-place op; and a simulation of the
    /// run, tagging each byte with the value it holds, finds every input
    /// intact when read and every graph output intact at the end.
    fn validate(g: &Graph, order: &[NodeId], p: &Plan) {
        let nt = g.tensors.len();
        for (i, t) in g.tensors.iter().enumerate() {
            if t.is_const() {
                assert!(!p.offsets.contains_key(&TensorId(i)), "constant {} has an offset", t.name);
                continue;
            }
            let off = *p.offsets.get(&TensorId(i)).unwrap_or_else(|| panic!("{} has no offset", t.name));
            assert_eq!(off % ALIGN, 0, "{} unaligned", t.name);
            assert!(off + t.bytes() <= p.arena_bytes, "{} outside the arena", t.name);
        }
        assert!(p.arena_bytes >= p.lower_bound, "arena {} < lower bound {}", p.arena_bytes, p.lower_bound);
        let off = |t: TensorId| p.offsets[&t];

        // Same data: reshape groups.
        let mut parent: Vec<usize> = (0..nt).collect();
        fn find(p: &mut [usize], mut x: usize) -> usize {
            while p[x] != x {
                x = p[x];
            }
            x
        }
        // In place, as the emitter sees it: (step, input, output).
        let mut in_place: Vec<(usize, usize, usize)> = Vec::new();
        for (s, &n) in order.iter().enumerate() {
            let node = &g.nodes[n];
            for (i, &x) in node.inputs.iter().enumerate() {
                if g.tensor(x).is_const() {
                    continue;
                }
                for &y in &node.outputs {
                    if matches!(node.op, Op::Reshape) {
                        assert_eq!(off(x), off(y), "reshape {} is not free", node.name);
                        let (a, b) = (find(&mut parent, x.0), find(&mut parent, y.0));
                        parent[a.max(b)] = a.min(b);
                    } else if off(x) == off(y) {
                        let legal = in_place_inputs(g, n).contains(&i);
                        assert!(legal, "node {} ({:?}) has output at its input's offset", node.name, node.op);
                        assert!(g.tensor(y).bytes() <= g.tensor(x).bytes());
                        in_place.push((s, x.0, y.0));
                    }
                }
            }
        }

        // Independent liveness; graph outputs are read after the last step.
        let mut life: Vec<Option<(usize, usize)>> = vec![None; nt];
        for &t in &g.inputs {
            life[t.0] = Some((0, 0));
        }
        for (s, &n) in order.iter().enumerate() {
            for &t in &g.nodes[n].inputs {
                if let Some((a, _)) = life[t.0] {
                    life[t.0] = Some((a, s));
                }
            }
            for &t in &g.nodes[n].outputs {
                life[t.0] = Some((s, s));
            }
        }
        for &t in &g.outputs {
            if let Some((a, _)) = life[t.0] {
                life[t.0] = Some((a, order.len()));
            }
        }
        // Lifetime of each reshape group.
        let mut class_life: Vec<Option<(usize, usize)>> = vec![None; nt];
        for (t, l) in life.iter().enumerate() {
            if let Some((a, e)) = *l {
                let r = find(&mut parent, t);
                class_life[r] = Some(class_life[r].map_or((a, e), |(a0, e0)| (a0.min(a), e0.max(e))));
            }
        }
        // A handoff from group cx to group cy at step s is legal overlap when
        // cx is dead after s and cy born at s.
        let handoff = |parent: &mut [usize], a: usize, b: usize| {
            let (ca, cb) = (find(parent, a), find(parent, b));
            in_place.iter().any(|&(s, x, y)| {
                let (cx, cy) = (find(parent, x), find(parent, y));
                ((cx, cy) == (ca, cb) || (cx, cy) == (cb, ca))
                    && class_life[cx].is_some_and(|l| l.1 == s)
                    && class_life[cy].is_some_and(|l| l.0 == s)
            })
        };
        let live: Vec<(usize, (usize, usize))> = (0..nt).filter_map(|t| life[t].map(|l| (t, l))).collect();
        for (k, &(a, (sa, ea))) in live.iter().enumerate() {
            for &(b, (sb, eb)) in &live[k + 1..] {
                if ea < sb || eb < sa {
                    continue;
                }
                let (oa, ob) = (off(TensorId(a)), off(TensorId(b)));
                let (za, zb) = (g.tensors[a].bytes(), g.tensors[b].bytes());
                if oa < ob + zb && ob < oa + za {
                    let same = find(&mut parent, a) == find(&mut parent, b);
                    assert!(
                        same || handoff(&mut parent, a, b),
                        "{} and {} are live together and overlap",
                        g.tensors[a].name,
                        g.tensors[b].name
                    );
                }
            }
        }

        // Simulation.
        let mut value: Vec<u32> = (0..nt as u32).collect();
        for &n in order {
            let node = &g.nodes[n];
            if let (Op::Reshape, [x], [y]) = (&node.op, &node.inputs[..], &node.outputs[..]) {
                if !g.tensor(*x).is_const() {
                    value[y.0] = value[x.0];
                }
            }
        }
        let mut arena = vec![u32::MAX; p.arena_bytes];
        let write = |arena: &mut Vec<u32>, t: TensorId| {
            let o = off(t);
            arena[o..o + g.tensor(t).bytes()].fill(value[t.0]);
        };
        let intact = |arena: &Vec<u32>, t: TensorId| {
            let o = off(t);
            arena[o..o + g.tensor(t).bytes()].iter().all(|&v| v == value[t.0])
        };
        for &t in &g.inputs {
            write(&mut arena, t);
        }
        for &n in order {
            let node = &g.nodes[n];
            for &t in &node.inputs {
                if !g.tensor(t).is_const() {
                    assert!(
                        intact(&arena, t),
                        "{} clobbered before {} reads it",
                        g.tensor(t).name,
                        node.name
                    );
                }
            }
            for &t in &node.outputs {
                write(&mut arena, t);
            }
        }
        for &t in &g.outputs {
            assert!(intact(&arena, t), "graph output {} clobbered", g.tensor(t).name);
        }
    }

    fn plan_checked(g: &Graph) -> Plan {
        let order = g.topo_order().expect("acyclic");
        let p = plan(g, &order).expect("plans");
        validate(g, &order, &p);
        p
    }

    #[test]
    fn conv_chain_runs_in_place_and_reshape_is_free() {
        let mut b = Builder::default();
        let x = b.input("x", &[1, 8, 8, 4], DType::I8, None); // 256 B
        let w = b.konst("w", &[8, 3, 3, 4], Data::I8(vec![1; 288]));
        let bias = b.konst("bias", &[8], Data::I32(vec![0; 8]));
        let acc = b.node("conv", conv(), &[x, w], &[1, 8, 8, 8], DType::I32); // 2048 B
        let acc2 = b.node("bias", Op::BiasAdd, &[acc, bias], &[1, 8, 8, 8], DType::I32);
        let q = b.node("requant", requant(), &[acc2], &[1, 8, 8, 8], DType::I8); // 512 B
        let r = b.node("relu", clip(), &[q], &[1, 8, 8, 8], DType::I8);
        let flat = b.node("flatten", Op::Reshape, &[r], &[1, 512], DType::I8);
        let w2 = b.konst("w2", &[10, 512], Data::I8(vec![1; 5120]));
        let acc3 = b.node("dense", Op::Dense { x_zp: 0, w_zp: vec![0] }, &[flat, w2], &[1, 10], DType::I32);
        let y = b.node("requant2", requant(), &[acc3], &[1, 10], DType::I8);
        let g = b.finish(&[y]);
        let p = plan_checked(&g);
        // Reshape is free; the bias add and the narrowing requantize must run
        // in place for the arena to reach the bound (2048 + 2048 and 2048 +
        // 512 bytes otherwise).
        assert_eq!(p.offsets[&flat], p.offsets[&r]);
        assert_eq!(p.offsets[&acc2], p.offsets[&acc]);
        assert_eq!(p.offsets[&q], p.offsets[&acc]);
        assert_ne!(p.offsets[&x], p.offsets[&acc]);
        // Peak at the conv: input 256 + accumulator 2048.
        assert_eq!(p.lower_bound, 256 + 2048);
        assert_eq!(p.arena_bytes, 256 + 2048);
        let _ = y;
    }

    #[test]
    fn no_in_place_while_the_input_is_still_read() {
        let mut b = Builder::default();
        let x = b.input("x", &[64], DType::I8, None);
        let c = b.node("clip", clip(), &[x], &[64], DType::I8); // x read again below
        let s = b.node("add", add(), &[x, c], &[64], DType::I8); // both die here
        let g = b.finish(&[s]);
        let p = plan_checked(&g);
        assert_ne!(p.offsets[&c], p.offsets[&x]);
        assert!(p.offsets[&s] == p.offsets[&x] || p.offsets[&s] == p.offsets[&c]);
        assert_eq!(p.lower_bound, 128);
        assert_eq!(p.arena_bytes, 128);
    }

    #[test]
    fn graph_outputs_and_reshaped_inputs_are_not_overwritten() {
        let mut b = Builder::default();
        let x = b.input("x", &[4, 16], DType::I8, None);
        let y = b.node("out1", clip(), &[x], &[4, 16], DType::I8);
        let z = b.node("clip2", clip(), &[y], &[4, 16], DType::I8); // y is an output
        let v = b.node("view", Op::Reshape, &[z], &[64], DType::I8);
        let w = b.node("clip3", clip(), &[v], &[64], DType::I8); // z still read below
        let s = b.node("add", add(), &[z, w], &[4, 16], DType::I8);
        let g = b.finish(&[y, s]);
        let p = plan_checked(&g);
        assert_ne!(p.offsets[&z], p.offsets[&y], "y is a graph output");
        assert_eq!(p.offsets[&v], p.offsets[&z]);
        assert_ne!(p.offsets[&w], p.offsets[&v], "z is read after clip3");
    }

    #[test]
    fn widening_never_in_place() {
        let mut b = Builder::default();
        let x = b.input("x", &[32], DType::I8, None);
        let wide = b.node("cast", Op::Cast, &[x], &[32], DType::I32);
        let f = b.node("deq", Op::Dequantize, &[wide], &[32], DType::F32);
        let g = b.finish(&[f]);
        let order = g.topo_order().unwrap();
        assert!(in_place_inputs(&g, order[0]).is_empty());
        assert!(in_place_inputs(&g, order[1]).is_empty());
        let p = plan_checked(&g);
        assert_ne!(p.offsets[&wide], p.offsets[&x]);
        assert_ne!(p.offsets[&f], p.offsets[&wide]);
        assert_eq!(p.lower_bound, 256);
    }

    #[test]
    fn narrowing_quantize_and_add_run_in_place_when_it_pays() {
        let mut b = Builder::default();
        let x = b.input("x", &[4, 64], DType::F32, None); // 1024 B
        let row = b.input("row", &[64], DType::I8, None); // 64 B
        let q = b.node("q", Op::Quantize, &[x], &[4, 64], DType::I8); // 256 B
        let s = b.node("add", add(), &[q, row], &[4, 64], DType::I8);
        let g = b.finish(&[s]);
        let order = g.topo_order().unwrap();
        assert_eq!(in_place_inputs(&g, order[1]), vec![0], "never over the broadcast input");
        let p = plan_checked(&g);
        assert_eq!(p.lower_bound, 1024 + 64);
        assert_eq!(p.arena_bytes, 1024 + 64);
        assert_eq!(p.offsets[&q], p.offsets[&x]);
        // The add fits beside q in the bytes x freed, or on q.
        assert_ne!(p.offsets[&s], p.offsets[&row]);
    }

    #[test]
    fn bad_orders_are_errors() {
        let mut b = Builder::default();
        let x = b.input("x", &[8], DType::I8, None);
        let c = b.node("c1", clip(), &[x], &[8], DType::I8);
        let d = b.node("c2", clip(), &[c], &[8], DType::I8);
        let g = b.finish(&[d]);
        let order = g.topo_order().unwrap();
        let rev: Vec<NodeId> = order.iter().rev().copied().collect();
        assert!(plan(&g, &rev).unwrap_err().to_string().contains("before it is produced"));
        assert!(plan(&g, &order[..1]).is_err());
        assert!(plan(&g, &[order[0], order[0]]).is_err());
        assert!(plan(&g, &order).is_ok());
    }

    #[test]
    fn empty_and_identity_graphs() {
        let p = plan(&Graph::default(), &[]).unwrap();
        assert_eq!((p.arena_bytes, p.lower_bound), (0, 0));
        let mut b = Builder::default();
        let x = b.input("x", &[5], DType::I8, None);
        let g = b.finish(&[x]);
        let p = plan_checked(&g);
        assert_eq!((p.arena_bytes, p.lower_bound), (16, 5));
    }

    /// Deterministic pseudo-random generator for the property test.
    struct Rng(u64);
    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 33) as usize) % n
        }
    }

    /// A random DAG of the ops the planner treats differently: in-place
    /// candidates (narrowing and not), reshapes, multi-input ops, broadcast
    /// adds, graph outputs in the middle, unused results.
    fn random_graph(rng: &mut Rng) -> Graph {
        let mut b = Builder::default();
        let dtypes = [DType::I8, DType::I16, DType::I32];
        let mut acts: Vec<TensorId> = Vec::new();
        for i in 0..1 + rng.below(2) {
            let e = 1 + rng.below(300);
            acts.push(b.input(&format!("in{i}"), &[e], dtypes[rng.below(3)], None));
        }
        let nodes = 1 + rng.below(25);
        for k in 0..nodes {
            // Prefer recent tensors: chains, with some long skips.
            let pick = |rng: &mut Rng, acts: &[TensorId]| acts[acts.len() - 1 - rng.below(acts.len().min(4))];
            let x = if rng.below(5) == 0 { acts[rng.below(acts.len())] } else { pick(rng, &acts) };
            let (e, dt) = (b.g.tensor(x).elements(), b.g.tensor(x).dtype);
            let name = format!("n{k}");
            let y = match rng.below(8) {
                0 => b.node(&name, clip(), &[x], &[e], dt),
                1 => b.node(&name, requant(), &[x], &[e], dtypes[rng.below(3)]),
                2 => b.node(&name, Op::Cast, &[x], &[e], dtypes[rng.below(3)]),
                3 => b.node(&name, Op::Reshape, &[x], &[1, e], dt),
                4 => {
                    let z = pick(rng, &acts);
                    let ez = b.g.tensor(z).elements();
                    let (a, c) = if rng.below(2) == 0 { (x, z) } else { (z, x) };
                    let ea = e.max(ez);
                    let a = if b.g.tensor(a).elements() == ea { a } else { c };
                    b.node(&name, add(), &[a, c], &[ea], dt)
                }
                5 => {
                    let z = pick(rng, &acts);
                    let ez = b.g.tensor(z).elements();
                    b.node(&name, Op::Concat { axis: 0 }, &[x, z], &[e + ez], dt)
                }
                _ => {
                    let w = b.konst(&format!("w{k}"), &[1], Data::I8(vec![1]));
                    b.node(&name, conv(), &[x, w], &[1 + rng.below(400)], dtypes[rng.below(3)])
                }
            };
            acts.push(y);
        }
        let mut outs = vec![*acts.last().unwrap()];
        for _ in 0..rng.below(3) {
            let t = acts[rng.below(acts.len())];
            if !outs.contains(&t) {
                outs.push(t);
            }
        }
        b.finish(&outs)
    }

    /// A random topological order (not only `topo_order`'s).
    fn random_order(g: &Graph, rng: &mut Rng) -> Vec<NodeId> {
        let mut produced: Vec<bool> = (0..g.tensors.len())
            .map(|t| g.tensors[t].is_const() || g.inputs.contains(&TensorId(t)))
            .collect();
        let mut left: Vec<NodeId> = g.nodes.node_indices().collect();
        let mut order = Vec::new();
        while !left.is_empty() {
            let ready: Vec<usize> =
                (0..left.len()).filter(|&i| g.nodes[left[i]].inputs.iter().all(|t| produced[t.0])).collect();
            let n = left.remove(ready[rng.below(ready.len())]);
            for t in &g.nodes[n].outputs {
                produced[t.0] = true;
            }
            order.push(n);
        }
        order
    }

    #[test]
    fn property_random_graphs_never_overlap_live_tensors() {
        let mut rng = Rng(7);
        let mut in_place = 0;
        for _ in 0..400 {
            let g = random_graph(&mut rng);
            for order in [g.topo_order().unwrap(), random_order(&g, &mut rng)] {
                let p = plan(&g, &order).unwrap();
                validate(&g, &order, &p);
                assert_eq!(p, plan(&g, &order).unwrap(), "deterministic");
                in_place += g
                    .nodes
                    .node_indices()
                    .filter(|&n| {
                        let node = &g.nodes[n];
                        !matches!(node.op, Op::Reshape)
                            && node
                                .inputs
                                .iter()
                                .any(|&x| p.offsets.get(&x) == p.offsets.get(&node.outputs[0]))
                    })
                    .count();
            }
        }
        assert!(in_place > 100, "the generator exercises in-place reuse ({in_place})");
    }

    #[derive(serde::Deserialize)]
    struct Entry {
        id: String,
        model: String,
        fold_inputs_from: Option<String>,
    }

    #[test]
    fn golden_and_shared_models() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let text = std::fs::read_to_string(root.join("tests/golden/manifest.json")).expect("manifest");
        #[derive(serde::Deserialize)]
        struct Manifest {
            models: Vec<Entry>,
        }
        let m: Manifest = serde_json::from_str(&text).expect("manifest parses");
        let shared = root.join("../shared/models").is_dir();
        if !shared && std::env::var("MATCH_REQUIRE_SHARED").as_deref() == Ok("1") {
            panic!("../shared/models is missing and MATCH_REQUIRE_SHARED=1");
        }
        let mut planned = 0;
        for e in &m.models {
            if e.model.starts_with("../shared/") && !shared {
                eprintln!("skipping {}: ../shared/models not found", e.id);
                continue;
            }
            let options = crate::frontend::ImportOptions {
                fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)),
            };
            let g = crate::frontend::load(&root.join(&e.model), &options)
                .unwrap_or_else(|err| panic!("{}: {err:#}", e.id));
            let p = plan_checked(&g);
            assert!(p.lower_bound > 0, "{}", e.id);
            planned += 1;
        }
        assert!(planned >= 8, "planned {planned} models");
    }
}
