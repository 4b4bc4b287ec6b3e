//! Pattern matching: groups the graph's nodes into layers, each run by one
//! unit as one call.
//!
//! The target's `offload` rules compile into chain matchers over the IR:
//!
//! - A rule's pattern stands for its operator sequences
//!   ([`PatternExpr::sequences`](match_dsl::model::PatternExpr::sequences)).
//!   A sequence matches a chain of nodes `n1 -> n2 -> ... -> nk` when node
//!   `i` is operator `i` (by [`Op::pattern_name`]; an IR clip that is a plain
//!   ReLU in the quantized domain also answers to `relu`) and every
//!   intermediate link is single-input-chain: `n{i}` has one output tensor,
//!   that tensor is not a graph output, `n{i+1}` is its only consumer and
//!   reads it as its first input.
//! - Longest match first: at each uncovered node, in a topological order of
//!   the graph, the candidates are every (rule, sequence) pair sorted by
//!   sequence length (longest first), ties broken by rule order (file
//!   order). The first candidate that matches the chain and that the rule
//!   accepts fixes the layer's nodes; the shorter candidates are then not
//!   tried. Among the rules of that length that accept the same nodes, the
//!   cost model picks the unit ([`map_with`]).
//! - A rule accepts a layer when its `where` condition holds on the
//!   [`Layer`] built from the matched nodes ([`HwModel::check_offload`]) and
//!   its unit implements the layer's data types (`inputs`, `weights`,
//!   `outputs`; empty means any) and requantization form (`requant`).
//!   Forms are not converted here (a later stage may convert them): a unit
//!   that lacks the layer's form rejects it.
//! - A node no rule takes runs alone as a generic kernel on the host unit
//!   (pattern and kernel `None`). Operators that no `.hwm` pattern can name
//!   (transpose, cast, matmul, globalsumpool, qlinear_avgpool) always do.
//! - Every candidate that matched the chain but was rejected before the
//!   accepted one is recorded on the layer ([`MappedLayer::rejections`]),
//!   with the failing constraint as written in the file, for `--explain`.
//!
//! Layers come out in a deterministic topological order of the grouped
//! graph, named `l{index:02}_{first op}`.

use crate::cost::Problem;
use crate::ir::{AddKind, DType, Graph, NodeId, Op, Requant, Tensor, TensorId};
use crate::lower::{self, Converter};
use crate::schedule::{self, Objective, Schedule};
use match_dsl::layer::{Layer, OpKind};
use match_dsl::model::{DType as HwType, LayoutStep, Offload, RequantForm};
use match_dsl::{HwModel, Verdict};
use petgraph::Direction;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write;

/// Why a unit did not take a layer (for `--explain`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rejection {
    pub unit: String,
    pub pattern: String,
    /// The constraint that failed, as written in the .hwm, or another reason
    /// (e.g. "input type i8 not among u8": the unit's declared inputs).
    pub reason: String,
}

/// A group of nodes run as one call on one unit.
#[derive(Clone, Debug, PartialEq)]
pub struct MappedLayer {
    /// A C-identifier-safe name, unique in the model (e.g. `l03_conv`).
    pub name: String,
    /// The nodes of the layer, in execution order.
    pub nodes: Vec<NodeId>,
    /// The pattern that matched; `None` for a node run as a generic kernel.
    pub pattern: Option<String>,
    pub unit: String,
    /// The offload rule's C kernel name, if a rule matched.
    pub kernel: Option<String>,
    pub rejections: Vec<Rejection>,
    /// The chosen unit's best schedule and its estimated cost; `None` when
    /// the cost model could not cost the layer (the reason is in
    /// `rejections` or the layer has no accepting unit that schedules).
    pub schedule: Option<Schedule>,
    /// Every accepting (unit, kernel) and its cost under the objective,
    /// in rule order (for `--explain`).
    pub alternatives: Vec<(String, String, f64)>,
}

/// Every node of the graph covered exactly once, layers in execution order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Mapping {
    pub layers: Vec<MappedLayer>,
}

impl Mapping {
    /// The nodes in execution order.
    pub fn node_order(&self) -> Vec<NodeId> {
        self.layers.iter().flat_map(|l| l.nodes.iter().copied()).collect()
    }
}

/// One (rule, sequence) pair a node may start.
struct Candidate<'a> {
    rule: usize,
    offload: &'a Offload,
    seq: Vec<String>,
}

/// Every (rule, sequence) pair, longest sequence first, then rule order.
fn candidates(hw: &HwModel) -> Vec<Candidate<'_>> {
    let mut out = Vec::new();
    for (rule, offload) in hw.offloads.iter().enumerate() {
        let Some(pattern) = hw.pattern(&offload.pattern) else { continue };
        for seq in pattern.body.sequences() {
            if !seq.is_empty() {
                out.push(Candidate { rule, offload, seq });
            }
        }
    }
    // Stable: equal lengths keep rule order (and a rule's own order).
    out.sort_by_key(|c| std::cmp::Reverse(c.seq.len()));
    out
}

/// Groups the graph's nodes into layers and picks a unit for each, for the
/// lowest latency ([`map_with`]).
pub fn map(graph: &Graph, hw: &HwModel) -> anyhow::Result<Mapping> {
    map_with(graph, hw, Objective::Latency)
}

/// The activation layout of a layer's kernel, normalized: no `order` step
/// means the model's own HWC.
fn act_layout(hw: &HwModel, offload: Option<&Offload>, unit: &str) -> Vec<LayoutStep> {
    let steps: Vec<LayoutStep> = match offload {
        Some(o) => hw.offload_activation_layout(o).to_vec(),
        None => hw.unit(unit).map(|u| u.activation_layout.clone()).unwrap_or_default(),
    };
    if steps.iter().any(|s| matches!(s, LayoutStep::Order(_))) {
        steps
    } else {
        let mut v = vec![LayoutStep::Order(vec!["H".into(), "W".into(), "C".into()])];
        v.extend(steps);
        v
    }
}

/// The activation layout a layer on `unit` works in: the unit's own
/// ([`act_layout`]), or, on a unit with `activation_layout any`, the layout
/// its main input arrives in, unless one of its operators depends on the
/// element order (a reshape is free only in the model's own order). Such a
/// layer also writes its output in the layout its first fixed-layout
/// consumer wants (its kernels index the output as freely as the input), so
/// that consumer pays no conversion either (see `map_inner`).
fn layer_layout(
    hw: &HwModel,
    offload: Option<&Offload>,
    unit: &str,
    graph: &Graph,
    nodes: &[NodeId],
    input_layout: Option<&Vec<LayoutStep>>,
) -> Vec<LayoutStep> {
    match input_layout {
        Some(l) if layout_flexible(hw, unit, graph, nodes) => l.clone(),
        _ => act_layout(hw, offload, unit),
    }
}

/// Whether a layer of `nodes` on `unit` reads and writes any activation
/// layout: the unit states `activation_layout any` and no operator of the
/// layer depends on the element order (a reshape runs no code).
fn layout_flexible(hw: &HwModel, unit: &str, graph: &Graph, nodes: &[NodeId]) -> bool {
    hw.unit(unit).is_some_and(|u| u.any_layout)
        && !nodes.iter().any(|&n| matches!(graph.nodes[n].op, Op::Reshape))
}

/// Cycles of converting an activation of `bytes` between two layouts: the
/// host reads and writes each byte once, one byte per cycle each (a simple,
/// documented stand-in; targets state no conversion cost yet).
pub fn conversion_cycles(bytes: usize) -> f64 {
    2.0 * bytes as f64
}

/// The layer a generic host kernel runs: its own shape, with one operation
/// per output element for operators without MACs.
fn generic_layer(graph: &Graph, nodes: &[NodeId]) -> Layer {
    let mut l = layer_of(graph, nodes);
    if l.op == OpKind::Other {
        l.c = 1;
        l.groups = 1;
        l.fy = 1;
        l.fx = 1;
    }
    l
}

/// The best schedule of the layer of `nodes` on `unit` through `offload`;
/// `scale_bits`, when given, is the scale width the unit's conversion of
/// the layer will program (the model's own requantization may differ).
fn cost_of(
    graph: &Graph,
    hw: &HwModel,
    offload: Option<&Offload>,
    unit: &str,
    nodes: &[NodeId],
    objective: Objective,
    scale_bits: Option<i64>,
) -> Result<Schedule, String> {
    let u = hw.unit(unit).ok_or_else(|| format!("no unit named `{unit}`"))?;
    let mut layer = if offload.is_some() { layer_of(graph, nodes) } else { generic_layer(graph, nodes) };
    if let Some(b) = scale_bits {
        layer.scale_bits = b;
    }
    let p = Problem::new(hw, u, offload, layer)?;
    let mut s = schedule::search(&p, objective)?;
    if nodes.iter().all(|&n| matches!(graph.nodes[n].op, Op::Reshape)) {
        // A reshape aliases its input (plan.rs): no code runs, nothing to
        // cost (a layout conversion before it is added by the caller).
        s.cycles = crate::cost::Cycles::default();
        s.energy_pj = 0.0;
        s.bound_cycles = 0.0;
        s.roofline_cycles = 0.0;
    }
    Ok(s)
}

/// Groups the graph's nodes into layers and picks a unit for each.
///
/// Grouping: longest match first (see the module). Among the rules that
/// accept the same chain of nodes, the cost model chooses: each accepting
/// unit's best schedule ([`schedule::search`]) plus the cost of converting
/// the layer's main input when its producer's activation layout differs
/// ([`conversion_cycles`]; layers are chosen greedily in execution order),
/// lowest latency (or energy) wins; ties keep file order.
pub fn map_with(graph: &Graph, hw: &HwModel, objective: Objective) -> anyhow::Result<Mapping> {
    map_inner(graph, hw, objective, None)
}

/// [`map_with`] where a unit may also take a layer that `conv` can convert
/// into its form (only exactly, with `exact`): see [`crate::lower`].
pub fn map_converting(
    graph: &Graph,
    hw: &HwModel,
    objective: Objective,
    conv: &Converter,
    exact: bool,
) -> anyhow::Result<Mapping> {
    map_inner(graph, hw, objective, Some((conv, exact)))
}

fn map_inner(
    graph: &Graph,
    hw: &HwModel,
    objective: Objective,
    conv: Option<(&Converter, bool)>,
) -> anyhow::Result<Mapping> {
    let order = graph.topo_order().ok_or_else(|| anyhow::anyhow!("the graph has a cycle"))?;
    let host = hw.host_unit().name.clone();
    let cands = candidates(hw);
    let mut consumers: HashMap<TensorId, Vec<NodeId>> = HashMap::new();
    for n in graph.nodes.node_indices() {
        let mut seen = HashSet::new();
        for &t in &graph.nodes[n].inputs {
            if seen.insert(t) {
                consumers.entry(t).or_default().push(n);
            }
        }
    }
    let outputs: HashSet<TensorId> = graph.outputs.iter().copied().collect();
    let chains = Chains { graph, consumers: &consumers, outputs: &outputs };
    let mut producer: HashMap<TensorId, NodeId> = HashMap::new();
    for n in graph.nodes.node_indices() {
        for &t in &graph.nodes[n].outputs {
            producer.insert(t, n);
        }
    }
    let memo = Memo::compute(graph, hw, &cands, &chains, &order, objective, conv);
    let mut group_of_node: HashMap<NodeId, usize> = HashMap::new();
    let mut layouts: Vec<Vec<LayoutStep>> = Vec::new();
    // Per group: its kernels can write any layout (`activation_layout any`,
    // no reshape), and whether a fixed-layout consumer has fixed it.
    let mut flexible: Vec<bool> = Vec::new();
    let mut claimed: Vec<bool> = Vec::new();

    // Grouping, in the graph's topological order of first nodes.
    let mut covered: HashSet<NodeId> = HashSet::new();
    let mut groups: Vec<MappedLayer> = Vec::new();
    for &n in &order {
        if covered.contains(&n) {
            continue;
        }
        let mut rejections: Vec<Rejection> = Vec::new();
        let mut tried: HashSet<(usize, Vec<NodeId>)> = HashSet::new();
        // Every accepting candidate over the first accepted chain.
        let mut accepted: Vec<(&Candidate, Vec<NodeId>)> = Vec::new();
        for cand in &cands {
            if accepted.first().is_some_and(|(c, _)| c.seq.len() != cand.seq.len()) {
                break;
            }
            let Some(nodes) = chains.matches(n, &cand.seq, &covered) else { continue };
            if accepted.first().is_some_and(|(_, first)| *first != nodes) {
                continue;
            }
            if !tried.insert((cand.rule, nodes.clone())) {
                continue;
            }
            match memo.check(cand, &nodes, || check(hw, cand.offload, graph, &nodes, conv)) {
                None => accepted.push((cand, nodes)),
                Some(reason) => {
                    let r = Rejection {
                        unit: cand.offload.unit.clone(),
                        pattern: cand.offload.pattern.clone(),
                        reason,
                    };
                    if !rejections.contains(&r) {
                        rejections.push(r);
                    }
                }
            }
        }
        // The layout the main input arrives in, and the layer producing it.
        let producer_group = graph.nodes[n]
            .inputs
            .first()
            .and_then(|t| producer.get(t))
            .and_then(|p| group_of_node.get(p))
            .copied();
        let input_layout = producer_group.map(|g| layouts[g].clone());
        // A producer whose kernels take any layout and whose output layout
        // no fixed-layout consumer has claimed yet writes it in the layout
        // this layer wants: no conversion.
        let producer_adapts = producer_group.is_some_and(|g| flexible[g] && !claimed[g]);
        let input_bytes = graph.nodes[n].inputs.first().map(|&t| graph.tensor(t).bytes()).unwrap_or(0);
        let with_conversion = |mut s: Schedule, layout: &Vec<LayoutStep>| {
            if !producer_adapts && input_layout.as_ref().is_some_and(|l| l != layout) {
                let c = conversion_cycles(input_bytes);
                s.conversion_cycles = c;
                s.cycles.overhead += c;
                s.cycles.total += c;
            }
            s
        };
        let mut alternatives = Vec::new();
        let mut best: Option<(usize, Schedule, (f64, f64))> = None;
        for (i, (cand, nodes)) in accepted.iter().enumerate() {
            let layout =
                layer_layout(hw, Some(cand.offload), &cand.offload.unit, graph, nodes, input_layout.as_ref());
            // A converted layer is costed with the scale width it will get.
            let plan = conv.and_then(|(c, _)| c.plan(&cand.offload.unit, nodes).ok());
            let scale_bits =
                plan.as_ref().and_then(|p| p.requant.as_ref()).map(|(r, _)| lower::scale_width(r));
            let best_schedule = memo.schedule(cand, nodes, || {
                cost_of(graph, hw, Some(cand.offload), &cand.offload.unit, nodes, objective, scale_bits)
            });
            match best_schedule {
                Ok(s) => {
                    let mut s = with_conversion(s, &layout);
                    // A converted layer whose signed input must first be made
                    // unsigned by a separate sign-flip layer pays for it here
                    // (the lowering costs that layer on its own afterwards).
                    let flip = plan.as_ref().is_some_and(|p| {
                        p.flip_input && !lower::producer_can_emit_u8(graph, graph.nodes[n].inputs[0])
                    });
                    if flip {
                        let c = conversion_cycles(input_bytes);
                        s.cycles.overhead += c;
                        s.cycles.total += c;
                    }
                    let key = s.key(objective);
                    alternatives.push((cand.offload.unit.clone(), cand.offload.kernel.clone(), key.0));
                    if best.as_ref().is_none_or(|(_, _, b)| key < *b) {
                        best = Some((i, s, key));
                    }
                }
                Err(reason) => rejections.push(Rejection {
                    unit: cand.offload.unit.clone(),
                    pattern: cand.offload.pattern.clone(),
                    reason: format!("no schedule: {reason}"),
                }),
            }
        }
        let layer = match (best, accepted.first()) {
            (Some((i, s, _)), _) => {
                let (cand, nodes) = &accepted[i];
                MappedLayer {
                    name: String::new(),
                    nodes: nodes.clone(),
                    pattern: Some(cand.offload.pattern.clone()),
                    unit: cand.offload.unit.clone(),
                    kernel: Some(cand.offload.kernel.clone()),
                    rejections,
                    schedule: Some(s),
                    alternatives,
                }
            }
            // Nothing could be costed: the first accepting rule, uncosted.
            (None, Some((cand, nodes))) => MappedLayer {
                name: String::new(),
                nodes: nodes.clone(),
                pattern: Some(cand.offload.pattern.clone()),
                unit: cand.offload.unit.clone(),
                kernel: Some(cand.offload.kernel.clone()),
                rejections,
                schedule: None,
                alternatives,
            },
            (None, None) => {
                let layout = layer_layout(hw, None, &host, graph, &[n], input_layout.as_ref());
                let schedule = cost_of(graph, hw, None, &host, &[n], objective, None)
                    .ok()
                    .map(|s| with_conversion(s, &layout));
                MappedLayer {
                    name: String::new(),
                    nodes: vec![n],
                    pattern: None,
                    unit: host.clone(),
                    kernel: None,
                    rejections,
                    schedule,
                    alternatives,
                }
            }
        };
        let chosen_offload = hw.offloads.iter().find(|o| {
            Some(&o.pattern) == layer.pattern.as_ref()
                && o.unit == layer.unit
                && Some(&o.kernel) == layer.kernel.as_ref()
        });
        let layout =
            layer_layout(hw, chosen_offload, &layer.unit, graph, &layer.nodes, input_layout.as_ref());
        let is_flexible = layout_flexible(hw, &layer.unit, graph, &layer.nodes);
        if let Some(g) = producer_group.filter(|_| producer_adapts && !is_flexible) {
            // A fixed-layout consumer claims the adaptable producer's output.
            layouts[g] = layout.clone();
            claimed[g] = true;
        }
        layouts.push(layout);
        flexible.push(is_flexible);
        claimed.push(false);
        for &m in &layer.nodes {
            group_of_node.insert(m, groups.len());
        }
        covered.extend(layer.nodes.iter().copied());
        groups.push(layer);
    }

    // A topological order of the grouped graph (Kahn), ties broken by the
    // position of the group's first node: a later node of a chain may read
    // a tensor produced after the chain's first node.
    let mut group_of: HashMap<NodeId, usize> = HashMap::new();
    for (g, layer) in groups.iter().enumerate() {
        for &n in &layer.nodes {
            group_of.insert(n, g);
        }
    }
    let mut succs: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); groups.len()];
    let mut indegree = vec![0usize; groups.len()];
    for (g, layer) in groups.iter().enumerate() {
        let preds: BTreeSet<usize> = layer
            .nodes
            .iter()
            .flat_map(|&n| graph.nodes.neighbors_directed(n, Direction::Incoming))
            .filter_map(|p| group_of.get(&p).copied())
            .filter(|&p| p != g)
            .collect();
        indegree[g] = preds.len();
        for p in preds {
            succs[p].insert(g);
        }
    }
    let mut ready: BTreeSet<usize> = (0..groups.len()).filter(|&g| indegree[g] == 0).collect();
    let mut emitted = Vec::with_capacity(groups.len());
    while let Some(g) = ready.pop_first() {
        emitted.push(g);
        for &s in &succs[g] {
            indegree[s] -= 1;
            if indegree[s] == 0 {
                ready.insert(s);
            }
        }
    }
    if emitted.len() != groups.len() {
        anyhow::bail!("grouping the graph into layers made a cycle (a bug in matching)");
    }
    let mut slots: Vec<Option<MappedLayer>> = groups.into_iter().map(Some).collect();
    let layers = emitted.into_iter().map(|g| slots[g].take().expect("each group is emitted once")).collect();
    let mut mapping = Mapping { layers };
    name_layers(graph, &mut mapping);
    Ok(mapping)
}

/// Names the layers `l{index:02}_{first op}` in their order.
pub fn name_layers(graph: &Graph, mapping: &mut Mapping) {
    for (i, layer) in mapping.layers.iter_mut().enumerate() {
        let first = layer.nodes[0];
        layer.name = format!("l{i:02}_{}", graph.nodes[first].op.pattern_name());
    }
}

/// A node run alone as a generic kernel on the host unit, costed.
pub fn generic_layer_for(graph: &Graph, hw: &HwModel, n: NodeId, objective: Objective) -> MappedLayer {
    let host = hw.host_unit().name.clone();
    MappedLayer {
        name: String::new(),
        nodes: vec![n],
        pattern: None,
        unit: host.clone(),
        kernel: None,
        rejections: Vec::new(),
        schedule: cost_of(graph, hw, None, &host, &[n], objective, None).ok(),
        alternatives: Vec::new(),
    }
}

/// Costs a layer again on its (rewritten) nodes, keeping its unit and rule
/// and the layout-conversion cycles its schedule carried.
pub fn recost(graph: &Graph, hw: &HwModel, layer: &mut MappedLayer, objective: Objective) {
    let offload = hw.offloads.iter().find(|o| {
        Some(&o.pattern) == layer.pattern.as_ref()
            && o.unit == layer.unit
            && Some(&o.kernel) == layer.kernel.as_ref()
    });
    let layer_nodes = layer.nodes.clone();
    let Ok(mut s) = cost_of(graph, hw, offload, &layer.unit, &layer_nodes, objective, None) else { return };
    if let Some(old) = &layer.schedule {
        let c = old.conversion_cycles;
        s.conversion_cycles = c;
        s.cycles.overhead += c;
        s.cycles.total += c;
    }
    layer.schedule = Some(s);
}

/// The cost problem of a mapped layer on its unit, left at its schedule's
/// C tile (`None` when the layer has no schedule or no longer costs).
fn problem_of<'a>(graph: &Graph, hw: &'a HwModel, layer: &MappedLayer) -> Option<Problem<'a>> {
    let s = layer.schedule.as_ref()?;
    let unit = hw.unit(&layer.unit)?;
    let offload = hw.offloads.iter().find(|o| {
        Some(&o.pattern) == layer.pattern.as_ref()
            && o.unit == layer.unit
            && Some(&o.kernel) == layer.kernel.as_ref()
    });
    let l =
        if offload.is_some() { layer_of(graph, &layer.nodes) } else { generic_layer(graph, &layer.nodes) };
    let p = Problem::new(hw, unit, offload, l).ok()?;
    if p.c_splittable() {
        p.set_c_tile(s.tile.c);
    }
    Some(p)
}

/// A layer's schedule as one tile (whole K, C, OY, OX), every operand
/// single-buffered (one step overlaps nothing), the window fetched, with
/// its estimate under inter-layer residency `(input, output)`
/// ([`Problem::set_resident_io`]) and the layout-conversion cycles its
/// schedule carried; `None` when the layer is untiled, or one tile does
/// not fit, fails the rule's `tile_condition` or does not cost.
fn single_tile(
    graph: &Graph,
    hw: &HwModel,
    layer: &MappedLayer,
    input: bool,
    output: bool,
) -> Option<Schedule> {
    let s = layer.schedule.as_ref()?;
    if s.from == s.to {
        return None;
    }
    let p = problem_of(graph, hw, layer)?;
    if p.untiled() {
        return None;
    }
    p.set_c_tile(0);
    let [k, oy, ox] = p.extents();
    let tile = [k, oy, ox];
    // The rule's tile_condition holds on the one tile too.
    if p.tile_refusal(tile).ok()?.is_some() {
        return None;
    }
    let buf = crate::cost::Buffering::default();
    let f = p.footprint(tile, buf).ok()?;
    if !p.fits(f) {
        return None;
    }
    let order = [crate::cost::Loop::K, crate::cost::Loop::OY, crate::cost::Loop::OX];
    p.set_resident_io(input, output);
    let e = p.evaluate_in(tile, order, buf, crate::cost::Fetch::Window).ok()?;
    let mut n = s.clone();
    n.tile.k = k;
    n.tile.c = if p.channelwise { k } else { p.c_tile() };
    n.tile.oy = oy;
    n.tile.ox = ox;
    n.order = order.to_vec();
    n.buffering = buf;
    n.fetch = crate::cost::Fetch::Window;
    n.resident = None;
    n.calls = e.calls;
    n.cycles = e.cycles;
    n.cycles.overhead += s.conversion_cycles;
    n.cycles.total += s.conversion_cycles;
    n.energy_pj = e.energy_pj;
    n.footprint = f.act;
    n.weights_footprint = f.weights;
    n.acc_bytes = 0;
    n.input_from = None;
    n.output_to = None;
    Some(n)
}

/// Inter-layer residency of activations in the compute memory: a pass
/// over the mapped layers in execution order, after mapping (units are
/// not revisited). For each layer P and the next layer Q past any
/// code-less reshapes (`passes_through`: consecutive layers, or a reshape
/// such as a flattening between them) it considers P and Q each as one
/// tile (`single_tile`: whole K, C, OY and OX, single-buffered), P keeping its output in the compute memory and Q
/// reading it there as its input. The link is made when the conditions
/// of [`crate::emit::tiled::link_resident`] hold on the emitter's plans of
/// those schedules (the same home and compute memory and DMA; Q's first
/// operator reads P's output, or its reshape with the same bytes, its only
/// reader and not a graph output, as its only input or as one of an
/// addition's two (which loads the other), whole; no layout
/// conversion on the way; Q's buffers laid around P's output buffer plus
/// Q's scratch fit the usable bytes) and the two estimates together
/// beat the schedules they replace under `objective` (a layer the search
/// split to overlap its transfers may be cheaper as one tile once its
/// input load or output store is gone). Then P's schedule gets
/// `output_to`, Q's `input_from`, and each estimate drops exactly the
/// transfers it no longer makes (P's write-back, Q's load of that input)
/// and their stalls ([`Problem::set_resident_io`]); everything else is the
/// one-tile schedule's own cost. Their bounds (`bound_cycles`,
/// `roofline_cycles`) no longer count those bytes as compulsory traffic.
/// Chains are greedy: a P linked from its predecessor stays one tile and
/// keeps its input resident.
/// Every target where the conditions hold gets it; no switch.
pub fn apply_residency(graph: &Graph, hw: &HwModel, mapping: &mut Mapping, objective: Objective) {
    use crate::emit::tiled;
    let n = mapping.layers.len();
    // The plan of each layer already linked as a consumer (relaid).
    let mut relaid: Vec<Option<tiled::TiledLayer>> = vec![None; n];
    for i in 0..n.saturating_sub(1) {
        // The consumer: the next layer past any code-less reshapes.
        let j = (i + 1..n).find(|&k| !passes_through(graph, &mapping.layers[k])).unwrap_or(n);
        if j == n {
            continue;
        }
        let (pl, ql) = (&mapping.layers[i], &mapping.layers[j]);
        let (Some(ps), Some(qs)) = (pl.schedule.as_ref(), ql.schedule.as_ref()) else { continue };
        if ps.from == ps.to || qs.from != ps.from || qs.to != ps.to {
            continue;
        }
        let p_from = ps.input_from;
        let p_in = p_from.is_some();
        let (Some(p_new), Some(q_new)) =
            (single_tile(graph, hw, pl, p_in, true), single_tile(graph, hw, ql, true, false))
        else {
            continue;
        };
        let (old_p, old_q) = (ps.key(objective), qs.key(objective));
        let (new_p, new_q) = (p_new.key(objective), q_new.key(objective));
        let old = (old_p.0 + old_q.0, old_p.1 + old_q.1);
        let new = (new_p.0 + new_q.0, new_p.1 + new_q.1);
        if new >= old {
            continue;
        }
        let mut pc = pl.clone();
        pc.schedule = Some(p_new);
        let mut qc = ql.clone();
        qc.schedule = Some(q_new);
        let p_plan = match (&relaid[i], p_in) {
            (Some(t), true) => Some(t.clone()),
            _ => tiled::plan_layer(graph, hw, &pc).ok(),
        };
        let (Some(pt), Ok(mut qt)) = (p_plan, tiled::plan_layer(graph, hw, &qc)) else { continue };
        let scratch = problem_of(graph, hw, &qc).and_then(|p| {
            let [k, oy, ox] = p.extents();
            p.scratch(k, oy, ox).ok()
        });
        let Some(scratch) = scratch else { continue };
        let between = &mapping.layers[i + 1..j];
        let Ok((layout, slot)) = tiled::link_resident(graph, hw, &pc, &pt, between, &qc, &qt, scratch) else {
            continue;
        };
        qt.input_resident = true;
        qt.resident_input = slot;
        qt.layout = layout;
        relaid[j] = Some(qt);
        if let Some(s) = pc.schedule.as_mut() {
            s.input_from = p_from;
            s.output_to = Some(j);
        }
        if let Some(s) = qc.schedule.as_mut() {
            s.input_from = Some(i);
        }
        mapping.layers[i] = pc;
        mapping.layers[j] = qc;
    }
    // The bounds of the linked layers: their resident input or kept
    // output is no compulsory traffic (cost/ `Problem::bounds`).
    for layer in mapping.layers.iter_mut() {
        let Some(s) = layer.schedule.as_ref() else { continue };
        let (input, output) = (s.input_from.is_some(), s.output_to.is_some());
        if !input && !output {
            continue;
        }
        let Some(p) = problem_of(graph, hw, layer) else { continue };
        p.set_resident_io(input, output);
        if let (Ok((roofline, bound)), Some(s)) = (p.bounds(), layer.schedule.as_mut()) {
            s.roofline_cycles = roofline;
            s.bound_cycles = bound;
        }
    }
}

/// Whether a layer runs no code: every node a reshape (the memory plan
/// aliases its output to its input) and nothing tiled. A resident link
/// passes through such layers ([`crate::emit::tiled::link_resident`]).
fn passes_through(graph: &Graph, layer: &MappedLayer) -> bool {
    !layer.nodes.is_empty()
        && layer.nodes.iter().all(|&n| matches!(graph.nodes[n].op, Op::Reshape))
        && layer.schedule.as_ref().is_none_or(|s| s.from == s.to)
}

/// [`apply_residency`], with the unit of an untiled layer revisited: the
/// unit selection costs each layer alone, so a layer on a unit that
/// computes where the tensors live (e.g. gap9's fabric controller) between
/// two tiled layers breaks their chain even when a tiled unit, linked to
/// both, would lower the model's total. For each such layer (one of its
/// neighbours tiled, looking past code-less reshapes; no layout
/// conversion) and each other unit that accepted it
/// ([`MappedLayer::alternatives`]) whose arithmetic is general (so the layer needs no requantization conversion: `check` on the
/// lowered graph without one) and whose activation layout is the same
/// fixed one (so no conversion anywhere changes), the mapping with the
/// layer moved there is scheduled and passed through [`apply_residency`];
/// it is kept when its total under `objective` is strictly lower. Greedy,
/// in execution order. Returns the indices of the moved layers.
pub fn apply_residency_moving_units(
    graph: &Graph,
    hw: &HwModel,
    mapping: &mut Mapping,
    objective: Objective,
) -> Vec<usize> {
    let total = |m: &Mapping| {
        m.layers.iter().filter_map(|l| l.schedule.as_ref()).fold((0.0, 0.0), |(a, b), s| {
            let k = s.key(objective);
            (a + k.0, b + k.1)
        })
    };
    let mut pre = mapping.clone();
    apply_residency(graph, hw, mapping, objective);
    let mut best = total(mapping);
    let mut moved = Vec::new();
    for i in 0..pre.layers.len() {
        let l = pre.layers[i].clone();
        let (Some(s), Some(pattern)) = (l.schedule.as_ref(), l.pattern.as_ref()) else { continue };
        if s.from != s.to || s.conversion_cycles > 0.0 || layout_flexible(hw, &l.unit, graph, &l.nodes) {
            continue;
        }
        let tiled =
            |j: usize| pre.layers.get(j).and_then(|m| m.schedule.as_ref()).is_some_and(|t| t.from != t.to);
        // Its neighbours past code-less reshapes, which a link passes through.
        let before = (0..i).rev().find(|&k| !passes_through(graph, &pre.layers[k]));
        let after = (i + 1..pre.layers.len()).find(|&k| !passes_through(graph, &pre.layers[k]));
        if !(before.is_some_and(tiled) || after.is_some_and(tiled)) {
            continue;
        }
        let rule_of = |unit: &str, kernel: &str| {
            hw.offloads.iter().find(|o| &o.pattern == pattern && o.unit == unit && o.kernel == kernel)
        };
        let old_layout = act_layout(hw, rule_of(&l.unit, l.kernel.as_deref().unwrap_or("")), &l.unit);
        for (unit, kernel, _) in &l.alternatives {
            let Some(u) = hw.unit(unit).filter(|_| *unit != l.unit) else { continue };
            let Some(rule) = rule_of(unit, kernel) else { continue };
            if lower::arith(u) != lower::Arith::General
                || layout_flexible(hw, unit, graph, &l.nodes)
                || act_layout(hw, Some(rule), unit) != old_layout
                || check(hw, rule, graph, &l.nodes, None).is_some()
            {
                continue;
            }
            let Ok(schedule) = cost_of(graph, hw, Some(rule), unit, &l.nodes, objective, None) else {
                continue;
            };
            let mut trial_pre = pre.clone();
            let t = &mut trial_pre.layers[i];
            (t.unit, t.kernel, t.schedule) = (unit.clone(), Some(kernel.clone()), Some(schedule));
            let mut trial = trial_pre.clone();
            apply_residency(graph, hw, &mut trial, objective);
            let t = total(&trial);
            if t < best {
                (best, pre, *mapping) = (t, trial_pre, trial);
                moved.push(i);
                break;
            }
        }
    }
    moved
}

/// What the grouping of [`map_inner`] will ask, worked out beforehand on
/// every core ([`crate::par`]): each rule's check of each chain it matches
/// from each node, and the best schedule of each chain a node's longest
/// accepted match gives (the expensive parts: requantization analysis and
/// schedule search). Computed on the graph with nothing covered yet, a
/// superset of what the grouping asks; a question outside it is answered
/// when asked. Every answer is a pure function of its question, so the
/// mapping is the same whatever the number of threads.
struct Memo {
    checks: HashMap<(usize, Vec<NodeId>), Option<String>>,
    schedules: HashMap<(usize, Vec<NodeId>), Result<Schedule, String>>,
}

impl Memo {
    fn compute(
        graph: &Graph,
        hw: &HwModel,
        cands: &[Candidate],
        chains: &Chains,
        order: &[NodeId],
        objective: Objective,
        conv: Option<(&Converter, bool)>,
    ) -> Memo {
        let nothing = HashSet::new();
        // Per node, its candidates' chains in candidate order.
        let mut questions: Vec<(usize, Vec<NodeId>)> = Vec::new();
        let mut seen = HashSet::new();
        let mut per_node: Vec<Vec<(usize, Vec<NodeId>)>> = Vec::new();
        for &n in order {
            let mut here = Vec::new();
            for (i, cand) in cands.iter().enumerate() {
                if let Some(nodes) = chains.matches(n, &cand.seq, &nothing) {
                    if seen.insert((cand.rule, nodes.clone())) {
                        questions.push((i, nodes.clone()));
                    }
                    here.push((i, nodes));
                }
            }
            per_node.push(here);
        }
        let verdicts =
            crate::par::map(&questions, |(i, nodes)| check(hw, cands[*i].offload, graph, nodes, conv));
        let checks: HashMap<(usize, Vec<NodeId>), Option<String>> =
            questions.into_iter().zip(verdicts).map(|((i, nodes), v)| ((cands[i].rule, nodes), v)).collect();
        // As the grouping does: the accepted candidates of the longest
        // accepted chain from each node.
        let mut searches: Vec<(usize, Vec<NodeId>)> = Vec::new();
        let mut asked = HashSet::new();
        for here in per_node {
            let mut first: Option<(usize, Vec<NodeId>)> = None;
            for (i, nodes) in here {
                let cand = &cands[i];
                if first.as_ref().is_some_and(|(len, _)| *len != cand.seq.len()) {
                    break;
                }
                if first.as_ref().is_some_and(|(_, f)| *f != nodes) {
                    continue;
                }
                if checks.get(&(cand.rule, nodes.clone())).is_some_and(|v| v.is_none()) {
                    first.get_or_insert((cand.seq.len(), nodes.clone()));
                    if asked.insert((cand.rule, nodes.clone())) {
                        searches.push((i, nodes));
                    }
                }
            }
        }
        let found = crate::par::map(&searches, |(i, nodes)| {
            let cand = &cands[*i];
            let scale_bits = conv
                .and_then(|(c, _)| c.plan(&cand.offload.unit, nodes).ok())
                .and_then(|p| p.requant.map(|(r, _)| lower::scale_width(&r)));
            cost_of(graph, hw, Some(cand.offload), &cand.offload.unit, nodes, objective, scale_bits)
        });
        let schedules =
            searches.into_iter().zip(found).map(|((i, nodes), s)| ((cands[i].rule, nodes), s)).collect();
        Memo { checks, schedules }
    }

    fn check(
        &self,
        cand: &Candidate,
        nodes: &[NodeId],
        ask: impl FnOnce() -> Option<String>,
    ) -> Option<String> {
        match self.checks.get(&(cand.rule, nodes.to_vec())) {
            Some(v) => v.clone(),
            None => ask(),
        }
    }

    fn schedule(
        &self,
        cand: &Candidate,
        nodes: &[NodeId],
        ask: impl FnOnce() -> Result<Schedule, String>,
    ) -> Result<Schedule, String> {
        match self.schedules.get(&(cand.rule, nodes.to_vec())) {
            Some(s) => s.clone(),
            None => ask(),
        }
    }
}

/// The structural part of matching.
struct Chains<'a> {
    graph: &'a Graph,
    consumers: &'a HashMap<TensorId, Vec<NodeId>>,
    outputs: &'a HashSet<TensorId>,
}

impl Chains<'_> {
    /// The nodes of `seq` matched along the single-input chain from `start`.
    fn matches(&self, start: NodeId, seq: &[String], covered: &HashSet<NodeId>) -> Option<Vec<NodeId>> {
        let mut nodes = Vec::with_capacity(seq.len());
        let mut cur = start;
        for (i, op) in seq.iter().enumerate() {
            if covered.contains(&cur) || !op_matches(self.graph, cur, op) {
                return None;
            }
            nodes.push(cur);
            if i + 1 == seq.len() {
                break;
            }
            let node = &self.graph.nodes[cur];
            let [out] = node.outputs[..] else { return None };
            if self.outputs.contains(&out) {
                return None;
            }
            let [next] = self.consumers.get(&out).map(Vec::as_slice).unwrap_or(&[])[..] else {
                return None;
            };
            if self.graph.nodes[next].inputs.first() != Some(&out) {
                return None;
            }
            cur = next;
        }
        Some(nodes)
    }
}

/// Whether node `n` is the pattern operator `op`.
fn op_matches(graph: &Graph, n: NodeId, op: &str) -> bool {
    let node = &graph.nodes[n];
    node.op.pattern_name() == op || (op == "relu" && is_plain_relu(graph, n))
}

/// The zero point of a tensor (0 without quantization).
fn zero_point(t: &Tensor) -> i64 {
    t.quant.as_ref().map(|q| q.zp()).unwrap_or(0)
}

/// A clip from the real zero up to the type's largest value: a ReLU.
fn is_plain_relu(graph: &Graph, n: NodeId) -> bool {
    let node = &graph.nodes[n];
    let Op::Clip { min, max } = node.op else { return false };
    let Some(&out) = node.outputs.first() else { return false };
    let t = graph.tensor(out);
    let top = t.dtype.int_range().map(|(_, hi)| hi).unwrap_or(i64::MAX);
    min == zero_point(t) && max >= top
}

/// A clip that removes negative real values (ReLU, ReLU6, fused activations).
fn clips_at_zero(graph: &Graph, n: NodeId) -> bool {
    let node = &graph.nodes[n];
    let Op::Clip { min, .. } = node.op else { return false };
    node.outputs.first().is_some_and(|&t| min >= zero_point(graph.tensor(t)))
}

fn bits(d: DType) -> i64 {
    8 * d.size() as i64
}

/// The `.hwm` type of an IR type; floats have none.
fn hw_type(d: DType) -> Option<HwType> {
    Some(match d {
        DType::I8 => HwType::Signed(8),
        DType::U8 => HwType::Unsigned(8),
        DType::I16 => HwType::Signed(16),
        DType::I32 => HwType::Signed(32),
        DType::I64 => HwType::Signed(64),
        DType::F32 => return None,
    })
}

/// (N, H, W, C) of an activation: NHWC, or (N, C), or (..., C).
fn act_dims(shape: &[usize]) -> [i64; 4] {
    let s: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
    match s.len() {
        0 => [1, 1, 1, 1],
        1 => [1, 1, 1, s[0]],
        2 => [s[0], 1, 1, s[1]],
        3 => [s[0], 1, s[1], s[2]],
        k => [s[0], s[1..k - 2].iter().product(), s[k - 2], s[k - 1]],
    }
}

/// The first input of `n` (the activation, for every operator a pattern can name).
fn main_input(graph: &Graph, n: NodeId) -> Option<&Tensor> {
    let node = &graph.nodes[n];
    node.inputs.first().map(|&t| graph.tensor(t))
}

/// The layer that constraints see: the first node's shape and attributes,
/// the chain's bias, activation and requantization, the types of the
/// first node's input and weights and of the last node's output.
pub fn layer_of(graph: &Graph, nodes: &[NodeId]) -> Layer {
    let first = nodes[0];
    let last = *nodes.last().expect("a layer has nodes");
    let node = &graph.nodes[first];
    let x = main_input(graph, first);
    let out0 = node.outputs.first().map(|&t| graph.tensor(t));
    let [n, iy, ix, c] = x.map(|t| act_dims(&t.shape)).unwrap_or([1; 4]);
    let [_, oy, ox, k] = out0.map(|t| act_dims(&t.shape)).unwrap_or([1; 4]);
    let weights = || node.inputs.get(1).map(|&t| graph.tensor(t));
    let final_out = graph.nodes[last].outputs.first().map(|&t| graph.tensor(t).dtype);
    let mut l = Layer {
        op: OpKind::Other,
        n,
        k,
        c,
        oy,
        ox,
        iy,
        ix,
        fy: 1,
        fx: 1,
        sy: 1,
        sx: 1,
        dy: 1,
        dx: 1,
        pad_top: 0,
        pad_bottom: 0,
        pad_left: 0,
        pad_right: 0,
        groups: 1,
        in_bits: x.map(|t| bits(t.dtype)).unwrap_or(0),
        w_bits: 0,
        out_bits: final_out.map(bits).unwrap_or(0),
        has_bias: nodes.iter().any(|&m| matches!(graph.nodes[m].op, Op::BiasAdd)),
        has_relu: nodes.iter().any(|&m| clips_at_zero(graph, m)),
        has_requant: nodes.iter().any(|&m| matches!(graph.nodes[m].op, Op::Requantize { .. })),
        scale_bits: nodes
            .iter()
            .find_map(|&m| match &graph.nodes[m].op {
                Op::Requantize { requant, .. } => Some(lower::scale_width(requant)),
                Op::Add { kind: AddKind::TfLite(_) | AddKind::Float { .. } } => Some(32),
                _ => None,
            })
            .unwrap_or(0),
    };
    let set_window = |l: &mut Layer, kernel: [usize; 2], stride: [usize; 2], pad: [usize; 4]| {
        l.fy = kernel[0] as i64;
        l.fx = kernel[1] as i64;
        l.sy = stride[0] as i64;
        l.sx = stride[1] as i64;
        l.pad_top = pad[0] as i64;
        l.pad_left = pad[1] as i64;
        l.pad_bottom = pad[2] as i64;
        l.pad_right = pad[3] as i64;
    };
    match &node.op {
        Op::Conv2d { stride, dilation, pad, groups, .. } => {
            l.op = OpKind::Conv;
            if let Some(w) = weights() {
                // OHWI: (K, FY, FX, C / groups).
                let dim = |i: usize| w.shape.get(i).copied().unwrap_or(1);
                set_window(&mut l, [dim(1), dim(2)], *stride, *pad);
                l.w_bits = bits(w.dtype);
            }
            l.dy = dilation[0] as i64;
            l.dx = dilation[1] as i64;
            l.groups = *groups as i64;
        }
        Op::Dense { .. } => {
            l.op = OpKind::Dense;
            // (.., C) -> (.., K): the leading axes are the batch.
            let x_shape = x.map(|t| t.shape.as_slice()).unwrap_or(&[]);
            l.n = x_shape.iter().rev().skip(1).product::<usize>() as i64;
            l.c = x_shape.last().copied().unwrap_or(1) as i64;
            l.k = out0.and_then(|t| t.shape.last().copied()).unwrap_or(1) as i64;
            (l.iy, l.ix, l.oy, l.ox) = (1, 1, 1, 1);
            l.w_bits = weights().map(|w| bits(w.dtype)).unwrap_or(0);
        }
        Op::Add { kind } => {
            l.op = OpKind::Add;
            l.groups = l.k;
            l.c = l.k;
            l.has_requant |= matches!(kind, AddKind::TfLite(_) | AddKind::Float { .. });
        }
        Op::AvgPool { kernel, stride, pad, .. } | Op::MaxPool { kernel, stride, pad } => {
            l.op = OpKind::Pool;
            set_window(&mut l, *kernel, *stride, *pad);
            l.groups = l.c;
        }
        Op::GlobalAvgPool => {
            l.op = OpKind::Pool;
            (l.fy, l.fx) = (l.iy, l.ix);
            l.groups = l.c;
        }
        _ => {}
    }
    l
}

/// The requantization form of a layer: its requantize node's, or the
/// rescaling of an addition.
fn requant_form(graph: &Graph, nodes: &[NodeId]) -> Option<(RequantForm, bool)> {
    nodes.iter().find_map(|&n| match &graph.nodes[n].op {
        Op::Requantize { requant, .. } => Some(match requant {
            Requant::FixedPoint { .. } => (RequantForm::FixedPoint, false),
            // `(acc * 1 + 0) >> s` is also the shift-only form.
            Requant::ScaleShift { scale, bias, .. } => {
                (RequantForm::ScaleShift, scale.iter().all(|&s| s == 1) && bias.iter().all(|&b| b == 0))
            }
            Requant::Float { .. } => (RequantForm::Float, false),
            Requant::Adc { .. } => (RequantForm::Adc, false),
        }),
        Op::Add { kind: AddKind::TfLite(_) } => Some((RequantForm::FixedPoint, false)),
        Op::Add { kind: AddKind::Float { .. } } => Some((RequantForm::Float, false)),
        _ => None,
    })
}

fn type_list(ts: &[HwType]) -> String {
    ts.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
}

/// `None` if `offload` accepts the layer of `nodes`; else why not: the
/// first false conjunct of its condition, or every unit capability the
/// layer lacks (types, requantization form), joined by "; ".
///
/// With `conv`, a unit whose arithmetic is not general ([`lower::arith`])
/// takes a convolution or dense chain when the lowering can convert it into
/// the unit's form (exactly, when `exact`): its `where` condition sees the
/// converted bit widths (ternary weights, 7-bit inputs), and the reason of a
/// refusal is the conversion's.
fn check(
    hw: &HwModel,
    offload: &Offload,
    graph: &Graph,
    nodes: &[NodeId],
    conv: Option<(&Converter, bool)>,
) -> Option<String> {
    let mut layer = layer_of(graph, nodes);
    let Some(unit) = hw.unit(&offload.unit) else {
        return Some(format!("no unit named `{}`", offload.unit));
    };
    let converting = conv.filter(|_| {
        lower::arith(unit) != lower::Arith::General
            && matches!(graph.nodes[nodes[0]].op, Op::Conv2d { .. } | Op::Dense { .. })
    });
    if let Some((conv, _)) = converting {
        let (in_bits, w_bits) = lower::converted_bits(graph, unit, nodes);
        layer.in_bits = in_bits.unwrap_or(layer.in_bits);
        layer.w_bits = w_bits.unwrap_or(layer.w_bits);
        // ... and the scale width the conversion programs.
        if let Some((r, _)) = conv.plan(&unit.name, nodes).ok().and_then(|p| p.requant) {
            layer.scale_bits = lower::scale_width(&r);
        }
    }
    match hw.check_offload(offload, &layer) {
        Ok(Verdict::Accepted) => {}
        Ok(Verdict::Rejected { constraint }) => return Some(constraint),
        Err(e) => return Some(format!("cannot evaluate the condition: {e}")),
    }
    if let Some((conv, exact)) = converting {
        // Conversions keep the output type: it must be the unit's.
        let last = &graph.nodes[*nodes.last().expect("a layer has nodes")];
        for &t in &last.outputs {
            let d = graph.tensor(t).dtype;
            if !unit.outputs.is_empty() && !hw_type(d).is_some_and(|t| unit.outputs.contains(&t)) {
                return Some(format!("output type {d} not among {}", type_list(&unit.outputs)));
            }
        }
        return match conv.plan(&unit.name, nodes) {
            Ok(p) if exact && p.max_lsb > 0 => Some(format!("--exact: {}", p.describe())),
            Ok(_) => None,
            Err(reason) => Some(format!("cannot convert: {reason}")),
        };
    }
    let mut reasons = Vec::new();
    let mut check_type = |what: &str, d: DType, allowed: &[HwType]| {
        if !allowed.is_empty() && !hw_type(d).is_some_and(|t| allowed.contains(&t)) {
            reasons.push(format!("{what} type {d} not among {}", type_list(allowed)));
        }
    };
    let first = &graph.nodes[nodes[0]];
    let mut seen = HashSet::new();
    for (i, &t) in first.inputs.iter().enumerate() {
        let x = graph.tensor(t);
        let weight = i == 1 && matches!(first.op, Op::Conv2d { .. } | Op::Dense { .. });
        if weight {
            check_type("weight", x.dtype, &unit.weights);
        } else if !x.is_const() && seen.insert(x.dtype) {
            check_type("input", x.dtype, &unit.inputs);
        }
    }
    let last = &graph.nodes[*nodes.last().expect("a layer has nodes")];
    for &t in &last.outputs {
        check_type("output", graph.tensor(t).dtype, &unit.outputs);
    }
    if let Some((form, pure_shift)) = requant_form(graph, nodes) {
        let ok = unit.requant.is_empty()
            || unit.requant.contains(&form)
            || (pure_shift && unit.requant.contains(&RequantForm::Shift));
        if !ok {
            let forms: Vec<&str> = unit.requant.iter().map(|f| f.name()).collect();
            reasons.push(format!("requantization {} not among {}", form.name(), forms.join(", ")));
        }
    }
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

/// Multiply-accumulates of a layer's nodes.
pub fn layer_macs(graph: &Graph, nodes: &[NodeId]) -> u64 {
    nodes.iter().map(|&n| node_macs(graph, n)).sum()
}

/// Multiply-accumulates of one node.
fn node_macs(graph: &Graph, n: NodeId) -> u64 {
    let node = &graph.nodes[n];
    let out = node.outputs.first().map(|&t| graph.tensor(t).elements() as u64).unwrap_or(0);
    let input = |i: usize| node.inputs.get(i).map(|&t| graph.tensor(t));
    match &node.op {
        // OHWI: each output element takes FY * FX * C / groups MACs.
        Op::Conv2d { .. } => input(1).map(|w| out * w.shape.iter().skip(1).product::<usize>() as u64),
        Op::Dense { .. } => input(1).map(|w| out * w.shape.get(1).copied().unwrap_or(1) as u64),
        Op::MatMul { .. } => input(0).map(|a| out * a.shape.last().copied().unwrap_or(1) as u64),
        _ => None,
    }
    .unwrap_or(0)
}

fn shape(t: &Tensor) -> String {
    let dims: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
    format!("{}[{}]", t.dtype, dims.join("x"))
}

/// The layer's activation inputs (read from outside it) and its outputs.
fn layer_tensors(graph: &Graph, nodes: &[NodeId]) -> (Vec<TensorId>, Vec<TensorId>) {
    let inside: HashSet<TensorId> =
        nodes.iter().flat_map(|&n| graph.nodes[n].outputs.iter().copied()).collect();
    let mut ins = Vec::new();
    for &n in nodes {
        for &t in &graph.nodes[n].inputs {
            if !inside.contains(&t) && !graph.tensor(t).is_const() && !ins.contains(&t) {
                ins.push(t);
            }
        }
    }
    let outs = nodes.last().map(|&n| graph.nodes[n].outputs.clone()).unwrap_or_default();
    (ins, outs)
}

/// The `--explain` text: per layer, the pattern and unit, and for each unit
/// that rejected it, the constraint that failed.
pub fn explain(graph: &Graph, hw: &HwModel, mapping: &Mapping) -> String {
    explain_with(graph, hw, mapping, &[])
}

/// [`explain`] of a lowered graph, with each layer's exactness (one per
/// layer, or none).
pub fn explain_with(
    graph: &Graph,
    hw: &HwModel,
    mapping: &Mapping,
    exactness: &[lower::Exactness],
) -> String {
    explain_with_notes(graph, hw, mapping, exactness, &[])
}

/// [`explain_with`] with lines the compilation adds per layer after its
/// schedule (`notes[i]` for layer `i`; none past the end), e.g. its weights
/// staged from an external memory (`compile::explain`).
pub fn explain_with_notes(
    graph: &Graph,
    hw: &HwModel,
    mapping: &Mapping,
    exactness: &[lower::Exactness],
    notes: &[Vec<String>],
) -> String {
    let mut s = String::new();
    let host = hw.host_unit().name.as_str();
    let node_count: usize = mapping.layers.iter().map(|l| l.nodes.len()).sum();
    let _ = writeln!(
        s,
        "target {}: {} layers for {} operators; host unit {host}",
        hw.name,
        mapping.layers.len(),
        node_count
    );
    let _ = writeln!(
        s,
        "schedule (estimated): cost model of the .hwm, per layer; the emitted code follows each tiled schedule where the target's platform provides its DMA functions (else it runs untiled and says so)"
    );
    // unit -> (layers, MACs), in the file's unit order.
    let mut per_unit: BTreeMap<usize, (String, usize, u64)> = BTreeMap::new();
    for (i, layer) in mapping.layers.iter().enumerate() {
        let nodes: Vec<NodeId> =
            layer.nodes.iter().copied().filter(|&n| graph.nodes.node_weight(n).is_some()).collect();
        let macs: u64 = nodes.iter().map(|&n| node_macs(graph, n)).sum();
        let rank = hw.units.iter().position(|u| u.name == layer.unit).unwrap_or(usize::MAX);
        let entry = per_unit.entry(rank).or_insert_with(|| (layer.unit.clone(), 0, 0));
        entry.1 += 1;
        entry.2 += macs;

        let _ = writeln!(s);
        let _ = writeln!(s, "layer {i}: {}", layer.name);
        match (&layer.pattern, &layer.kernel) {
            (Some(p), Some(k)) => {
                let _ = writeln!(s, "  pattern {p} on {}, kernel {k}", layer.unit);
            }
            (Some(p), None) => {
                let _ = writeln!(s, "  pattern {p} on {}", layer.unit);
            }
            (None, _) if layer.unit == host => {
                let _ = writeln!(s, "  generic on {host}");
            }
            (None, _) => {
                let _ = writeln!(s, "  generic on {}", layer.unit);
            }
        }
        let width = nodes.iter().map(|&n| graph.nodes[n].op.pattern_name().len()).max().unwrap_or(0);
        // Later nodes of a chain usually carry the first node's source name
        // (ONNX) or that name with a suffix (TFLite's ".bias"): shown as
        // nothing, or `+ "suffix"`.
        let first_name = nodes.first().map(|&n| graph.nodes[n].name.as_str()).unwrap_or("");
        for (j, &n) in nodes.iter().enumerate() {
            let node = &graph.nodes[n];
            let label = if j == 0 { "  nodes:  " } else { "          " };
            let name = match node.name.strip_prefix(first_name) {
                Some("") if j > 0 => String::new(),
                Some(suffix) if j > 0 => format!(" + {suffix:?}"),
                _ => format!(" {:?}", node.name),
            };
            let _ = writeln!(s, "{label}{:<width$}  node {}{name}", node.op.pattern_name(), n.index());
        }
        let (ins, outs) = layer_tensors(graph, &nodes);
        let list =
            |ts: &[TensorId]| ts.iter().map(|&t| shape(graph.tensor(t))).collect::<Vec<_>>().join(", ");
        let _ = writeln!(s, "  shapes: {} -> {}", list(&ins), list(&outs));
        let _ = writeln!(s, "  MACs:   {macs}");
        if let Some(e) = exactness.get(i) {
            let bound = if e.max_lsb > 0 { format!(" (up to {} LSB)", e.max_lsb) } else { String::new() };
            let _ = writeln!(s, "  exactness: {}{bound}: {}", e.kind.name(), e.reason);
        }
        for r in &layer.rejections {
            let _ = writeln!(s, "  {} rejected ({}): {}", r.unit, r.pattern, r.reason);
        }
        if layer.alternatives.len() > 1 {
            let alts: Vec<String> =
                layer.alternatives.iter().map(|(u, k, c)| format!("{u} ({k}) {c:.0}")).collect();
            let _ = writeln!(s, "  considered: {}", alts.join(", "));
            // A unit other than the cheapest alone: moved there for
            // inter-layer residency (apply_residency_moving_units).
            let own = layer
                .alternatives
                .iter()
                .find(|(u, k, _)| *u == layer.unit && Some(k) == layer.kernel.as_ref());
            let cheapest = layer.alternatives.iter().min_by(|a, b| a.2.total_cmp(&b.2));
            let linked =
                layer.schedule.as_ref().is_some_and(|x| x.input_from.is_some() || x.output_to.is_some());
            if let (Some(own), Some(cheapest), true) = (own, cheapest, linked) {
                if cheapest.2 < own.2 {
                    let _ = writeln!(
                        s,
                        "  on {} rather than {} ({:.0} alone): linked to its neighbours in L1, the model's total is lower",
                        layer.unit, cheapest.0, cheapest.2
                    );
                }
            }
        }
        match &layer.schedule {
            Some(sched) => {
                for line in schedule::describe(sched) {
                    let _ = writeln!(s, "  {line}");
                }
            }
            None => {
                let _ = writeln!(s, "  schedule: none (not costed)");
            }
        }
        // An addition with one input resident still loads the other.
        let first_op = layer.nodes.first().map(|&n| &graph.nodes[n]);
        if let (Some(sched), Some(node)) = (&layer.schedule, first_op) {
            if let (Some(p), Op::Add { .. }) = (sched.input_from, &node.op) {
                let _ = writeln!(
                    s,
                    "  its other input is loaded from {} (only layer {p}'s output is resident)",
                    sched.from
                );
            }
        }
        // A reshape a resident link passes through (apply_residency).
        let link = mapping.layers[..i].iter().enumerate().find_map(|(p, l)| {
            let j = l.schedule.as_ref()?.output_to?;
            (j > i).then_some((p, j))
        });
        if let Some((p, j)) = link {
            let to = mapping.layers[p].schedule.as_ref().map_or("", |x| x.to.as_str());
            let _ = writeln!(s, "  runs no code: layer {p}'s output stays in {to} through it for layer {j}");
        }
        for line in notes.get(i).into_iter().flatten() {
            let _ = writeln!(s, "  {line}");
        }
    }
    let _ = writeln!(s);
    let total: u64 = per_unit.values().map(|(_, _, m)| m).sum();
    let _ = writeln!(s, "total: {total} MACs");
    let cycles: f64 = mapping.layers.iter().filter_map(|l| l.schedule.as_ref()).map(|x| x.cycles.total).sum();
    let _ = writeln!(
        s,
        "estimated: {cycles:.0} cycles, {:.3} ms at {} MHz",
        cycles / hw.clock_hz as f64 * 1e3,
        hw.clock_hz as f64 / 1e6
    );
    for (name, layers, macs) in per_unit.values() {
        let _ = writeln!(s, "  {name}: {layers} layers, {macs} MACs");
    }
    s
}

/// Maps `graph` for `hw` and explains the result (`matchc compile --explain`).
pub fn explain_model(graph: &Graph, hw: &HwModel) -> anyhow::Result<String> {
    let mut mapping = map(graph, hw)?;
    apply_residency_moving_units(graph, hw, &mut mapping, Objective::Latency);
    Ok(explain(graph, hw, &mapping))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::interp::tests::Builder;
    use crate::ir::{Data, Quant};
    use std::path::{Path, PathBuf};

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    fn target(name: &str) -> HwModel {
        let path = root().join("targets").join(format!("{name}.hwm"));
        match_dsl::load(&path).unwrap_or_else(|e| panic!("{e}"))
    }

    fn conv_op(groups: usize, pad: usize) -> Op {
        Op::Conv2d { stride: [1, 1], dilation: [1, 1], pad: [pad; 4], groups, x_zp: 0, w_zp: vec![0] }
    }

    fn fixed_point(k: usize) -> Op {
        Op::Requantize {
            requant: Requant::FixedPoint { multiplier: vec![1 << 30; k], shift: vec![-3; k] },
            out_zp: -128,
        }
    }

    fn scale_shift(k: usize) -> Op {
        Op::Requantize {
            requant: Requant::ScaleShift { scale: vec![3; k], bias: vec![0; k], shift: 4 },
            out_zp: 0,
        }
    }

    /// conv(3x3, pad 1) -> bias -> `requant` -> clip, on a 1x8x8xC `dtype`
    /// input with K outputs (depthwise when `depthwise`).
    fn conv_chain(
        b: &mut Builder,
        x: TensorId,
        c: usize,
        k: usize,
        depthwise: bool,
        requant: Op,
    ) -> TensorId {
        let groups = if depthwise { c } else { 1 };
        let cin = c / groups;
        let w = b.konst("w", &[k, 3, 3, cin], Data::I8(vec![1; k * 9 * cin]));
        let bias = b.konst("b", &[k], Data::I32(vec![0; k]));
        let acc = b.node("conv", conv_op(groups, 1), &[x, w], &[1, 8, 8, k], DType::I32);
        let acc = b.node("bias", Op::BiasAdd, &[acc, bias], &[1, 8, 8, k], DType::I32);
        let out_ty = if matches!(requant, Op::Requantize { out_zp: 0, .. }) { DType::U8 } else { DType::I8 };
        let q = b.node("requant", requant, &[acc], &[1, 8, 8, k], out_ty);
        let (lo, hi) = out_ty.int_range().unwrap();
        b.node("clip", Op::Clip { min: lo, max: hi }, &[q], &[1, 8, 8, k], out_ty)
    }

    fn ops(g: &Graph, layer: &MappedLayer) -> Vec<&'static str> {
        layer.nodes.iter().map(|&n| g.nodes[n].op.pattern_name()).collect()
    }

    #[test]
    fn conv_bias_requant_clip_is_one_layer_on_host() {
        let mut b = Builder::default();
        let x = b.input("x", &[1, 8, 8, 4], DType::I8, None);
        let y = conv_chain(&mut b, x, 4, 8, false, fixed_point(8));
        let g = b.finish(&[y]);
        let m = map(&g, &target("host")).unwrap();
        assert_eq!(m.layers.len(), 1);
        let l = &m.layers[0];
        assert_eq!(ops(&g, l), ["conv2d", "bias", "requant", "clip"]);
        assert_eq!(l.name, "l00_conv2d");
        assert_eq!(l.pattern.as_deref(), Some("conv"));
        assert_eq!(l.unit, "cpu");
        assert_eq!(l.kernel.as_deref(), Some("host_conv2d"));
        assert!(l.rejections.is_empty());
        let layer = layer_of(&g, &l.nodes);
        assert_eq!((layer.k, layer.c, layer.oy, layer.ox, layer.fy, layer.fx), (8, 4, 8, 8, 3, 3));
        assert_eq!(
            (layer.pad_top, layer.groups, layer.in_bits, layer.w_bits, layer.out_bits),
            (1, 1, 8, 8, 8)
        );
        assert!(layer.has_bias && layer.has_requant && !layer.has_relu);
        assert_eq!(layer.macs(), 8 * 8 * 8 * 9 * 4);
    }

    #[test]
    fn conv_without_requant_runs_as_generic_kernels() {
        let mut b = Builder::default();
        let x = b.input("x", &[1, 8, 8, 4], DType::I8, None);
        let w = b.konst("w", &[8, 1, 1, 4], Data::I8(vec![1; 32]));
        let bias = b.konst("b", &[8], Data::I32(vec![0; 8]));
        let acc = b.node("conv", conv_op(1, 0), &[x, w], &[1, 8, 8, 8], DType::I32);
        let y = b.node("bias", Op::BiasAdd, &[acc, bias], &[1, 8, 8, 8], DType::I32);
        let g = b.finish(&[y]);
        let host = target("host");
        let m = map(&g, &host).unwrap();
        assert_eq!(m.layers.len(), 2);
        for (l, op) in m.layers.iter().zip(["conv2d", "bias"]) {
            assert_eq!(ops(&g, l), [op]);
            assert_eq!((l.pattern.as_deref(), l.kernel.as_deref(), l.unit.as_str()), (None, None, "cpu"));
        }
        assert_eq!(m.layers[1].name, "l01_bias");
        // GAP9 has conv_acc: the cluster takes the int32-output pair.
        let m = map(&g, &target("gap9")).unwrap();
        assert_eq!(m.layers.len(), 1);
        assert_eq!(m.layers[0].pattern.as_deref(), Some("conv_acc"));
        assert_eq!(m.layers[0].unit, "cluster");
        assert_eq!(m.layers[0].kernel.as_deref(), Some("cluster_conv_acc"));
        let ne16 = &m.layers[0].rejections[0];
        assert_eq!((ne16.unit.as_str(), ne16.pattern.as_str()), ("ne16", "conv_acc"));
        assert_eq!(ne16.reason, "depthwise");
        assert_eq!(m.layers[0].rejections[1].reason, "input type i8 not among u8");
    }

    #[test]
    fn depthwise_chain_goes_to_ne16_when_types_and_requant_fit() {
        // u8 input, scale-shift requantization: NE16's own arithmetic, so
        // NE16 accepts; the cost model then picks the cheaper unit. On this
        // small layer that is the cluster: DORY's NE16 model gives 9 jobs of
        // 233 cycles, the cluster's default model 9216 MACs / 32 (its
        // nominal peak: the target states no depthwise efficiency).
        let mut b = Builder::default();
        let x = b.input("x", &[1, 8, 8, 16], DType::U8, None);
        let y = conv_chain(&mut b, x, 16, 16, true, scale_shift(16));
        let g = b.finish(&[y]);
        let m = map(&g, &target("gap9")).unwrap();
        assert_eq!(m.layers.len(), 1);
        let l = &m.layers[0];
        assert_eq!(ops(&g, l), ["conv2d", "bias", "requant", "clip"]);
        let alts: Vec<(&str, &str)> =
            l.alternatives.iter().map(|(u, k, _)| (u.as_str(), k.as_str())).collect();
        assert_eq!(alts, [("ne16", "ne16_depthwise"), ("cluster", "cluster_depthwise")]);
        let best = l.alternatives.iter().map(|a| a.2).fold(f64::INFINITY, f64::min);
        assert_eq!(l.schedule.as_ref().unwrap().cycles.total, best);
        let gap9 = target("gap9");
        let ne16 =
            cost_of(&g, &gap9, Some(&gap9.offloads[0]), "ne16", &l.nodes, Objective::Latency, None).unwrap();
        assert_eq!((ne16.cycles.compute, ne16.cycles.overhead), (9.0 * 233.0, 550.0));
        assert_eq!(l.alternatives[0].2, ne16.cycles.total);
        assert_eq!((l.unit.as_str(), l.kernel.as_deref()), ("cluster", Some("cluster_depthwise")));
        let layer = layer_of(&g, &l.nodes);
        assert!(layer.is_depthwise() && layer.has_relu);
        assert_eq!((layer.groups, layer.k, layer.c), (16, 16, 16));

        // i8 input, TFLite fixed-point requantization: NE16 says why not,
        // the cluster takes it.
        let mut b = Builder::default();
        let x = b.input("x", &[1, 8, 8, 16], DType::I8, Some(Quant::per_tensor(0.5, -128)));
        let y = conv_chain(&mut b, x, 16, 16, true, fixed_point(16));
        let g = b.finish(&[y]);
        let m = map(&g, &target("gap9")).unwrap();
        let l = &m.layers[0];
        assert_eq!((l.unit.as_str(), l.kernel.as_deref()), ("cluster", Some("cluster_depthwise")));
        // Both NE16 conv rules say why not: the depthwise one on the unit's
        // capabilities, the other on its condition.
        let reject =
            |reason: &str| Rejection { unit: "ne16".into(), pattern: "conv".into(), reason: reason.into() };
        // Rules after the accepted one over the same nodes are tried too
        // (for the cost model's choice): the cluster's pointwise rule.
        assert_eq!(
            l.rejections[..2],
            [
                reject("input type i8 not among u8; requantization fixed_point not among scale_shift"),
                reject("groups == 1"),
            ]
        );
        assert_eq!(
            l.rejections[2],
            Rejection { unit: "cluster".into(), pattern: "conv".into(), reason: "groups == 1".into() }
        );
        let text = explain(&g, &target("gap9"), &m);
        assert!(text.contains("  ne16 rejected (conv): input type i8 not among u8; requantization fixed_point not among scale_shift\n"), "{text}");
    }

    #[test]
    fn a_second_consumer_stops_fusion() {
        // x -> conv1 -> bias -> requant r1 -> clip c1 -> conv2 -> bias -> requant r2
        // and add(r2, r1) -> clip: r1 has two consumers (clip and add).
        let mut b = Builder::default();
        let x = b.input("x", &[1, 8, 8, 8], DType::I8, None);
        let w1 = b.konst("w1", &[8, 1, 1, 8], Data::I8(vec![1; 64]));
        let b1 = b.konst("b1", &[8], Data::I32(vec![0; 8]));
        let a1 = b.node("conv1", conv_op(1, 0), &[x, w1], &[1, 8, 8, 8], DType::I32);
        let a1 = b.node("bias1", Op::BiasAdd, &[a1, b1], &[1, 8, 8, 8], DType::I32);
        let r1 = b.node("requant1", fixed_point(8), &[a1], &[1, 8, 8, 8], DType::I8);
        let c1 = b.node("relu1", Op::Clip { min: -128, max: 127 }, &[r1], &[1, 8, 8, 8], DType::I8);
        let w2 = b.konst("w2", &[8, 1, 1, 8], Data::I8(vec![1; 64]));
        let a2 = b.node("conv2", conv_op(1, 0), &[c1, w2], &[1, 8, 8, 8], DType::I32);
        let r2 = b.node("requant2", fixed_point(8), &[a2], &[1, 8, 8, 8], DType::I8);
        let s = b.node("add", Op::Add { kind: AddKind::Integer }, &[r2, r1], &[1, 8, 8, 8], DType::I8);
        let y = b.node("relu2", Op::Clip { min: 0, max: 127 }, &[s], &[1, 8, 8, 8], DType::I8);
        let g = b.finish(&[y]);

        let m = map(&g, &target("host")).unwrap();
        let got: Vec<Vec<&str>> = m.layers.iter().map(|l| ops(&g, l)).collect();
        assert_eq!(
            got,
            [
                vec!["conv2d", "bias", "requant"],
                vec!["clip"],
                vec!["conv2d", "requant"],
                vec!["add"],
                vec!["clip"]
            ]
        );
        let names: Vec<&str> = m.layers.iter().map(|l| l.name.as_str()).collect();
        assert_eq!(names, ["l00_conv2d", "l01_clip", "l02_conv2d", "l03_add", "l04_clip"]);
        assert_eq!(m.layers[0].pattern.as_deref(), Some("conv"));
        assert_eq!(m.layers[1].pattern, None);

        // GAP9 fuses the addition with its activation (eltwise); this one
        // (512 elements) costs less on the fabric controller than the
        // cluster's call and DMA setups.
        let m = map(&g, &target("gap9")).unwrap();
        let last = m.layers.last().unwrap();
        assert_eq!(ops(&g, last), ["add", "clip"]);
        assert_eq!((last.pattern.as_deref(), last.unit.as_str()), (Some("eltwise"), "fc"));
        check_invariants(&g, &target("gap9"), &m, "residual");
    }

    #[test]
    fn a_graph_output_stops_fusion() {
        let mut b = Builder::default();
        let x = b.input("x", &[1, 8, 8, 4], DType::I8, None);
        let w = b.konst("w", &[8, 1, 1, 4], Data::I8(vec![1; 32]));
        let acc = b.node("conv", conv_op(1, 0), &[x, w], &[1, 8, 8, 8], DType::I32);
        let q = b.node("requant", fixed_point(8), &[acc], &[1, 8, 8, 8], DType::I8);
        let y = b.node("clip", Op::Clip { min: -100, max: 100 }, &[q], &[1, 8, 8, 8], DType::I8);
        let g = b.finish(&[q, y]);
        let m = map(&g, &target("host")).unwrap();
        let got: Vec<Vec<&str>> = m.layers.iter().map(|l| ops(&g, l)).collect();
        assert_eq!(got, [vec!["conv2d", "requant"], vec!["clip"]]);
    }

    #[test]
    fn diana_digital_takes_shift_only_requantization() {
        let mut b = Builder::default();
        let x = b.input("x", &[1, 8, 8, 16], DType::I8, None);
        let shift = Op::Requantize {
            requant: Requant::ScaleShift { scale: vec![1; 16], bias: vec![0; 16], shift: 7 },
            out_zp: 0,
        };
        let w = b.konst("w", &[16, 3, 3, 16], Data::I8(vec![1; 16 * 9 * 16]));
        let acc = b.node("conv", conv_op(1, 1), &[x, w], &[1, 8, 8, 16], DType::I32);
        let q = b.node("requant", shift, &[acc], &[1, 8, 8, 16], DType::I8);
        let g = b.finish(&[q]);
        let m = map(&g, &target("diana")).unwrap();
        assert_eq!(m.layers.len(), 1);
        assert_eq!(
            (m.layers[0].unit.as_str(), m.layers[0].kernel.as_deref()),
            ("digital", Some("diana_digital_conv"))
        );
        assert_eq!(m.layers[0].rejections[0].reason, "depthwise");
    }

    /// DIANA's CPU states `activation_layout any`: a layer it runs between
    /// two digital-array layers keeps the arrays' CHW layout, so neither it
    /// nor the next array layer pays a conversion, and a CPU layer reading
    /// the network's HWC input writes CHW for the array layer after it; a
    /// reshape of CHW data still converts. Without the property, every
    /// change of layout pays 2 cycles per byte of the input.
    #[test]
    fn a_unit_taking_any_layout_needs_no_conversion() {
        let shift = || Op::Requantize {
            requant: Requant::ScaleShift { scale: vec![1; 16], bias: vec![0; 16], shift: 7 },
            out_zp: 0,
        };
        let mut b = Builder::default();
        let x0 = b.input("x", &[1, 16, 16, 16], DType::I8, None);
        let pool0 = Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] };
        let x = b.node("pool0", pool0, &[x0], &[1, 8, 8, 16], DType::I8);
        let w1 = b.konst("w1", &[16, 3, 3, 16], Data::I8(vec![1; 16 * 9 * 16]));
        let a1 = b.node("conv1", conv_op(1, 1), &[x, w1], &[1, 8, 8, 16], DType::I32);
        let q1 = b.node("requant1", shift(), &[a1], &[1, 8, 8, 16], DType::I8);
        let pool = Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] };
        let p = b.node("pool", pool, &[q1], &[1, 4, 4, 16], DType::I8);
        let w2 = b.konst("w2", &[16, 3, 3, 16], Data::I8(vec![1; 16 * 9 * 16]));
        let a2 = b.node("conv2", conv_op(1, 1), &[p, w2], &[1, 4, 4, 16], DType::I32);
        let q2 = b.node("requant2", shift(), &[a2], &[1, 4, 4, 16], DType::I8);
        let r = b.node("flatten", Op::Reshape, &[q2], &[1, 256], DType::I8);
        let g = b.finish(&[r]);
        let conversions = |hw: &HwModel| -> Vec<(String, f64)> {
            let m = map(&g, hw).unwrap();
            m.layers
                .iter()
                .map(|l| (l.unit.clone(), l.schedule.as_ref().unwrap().conversion_cycles))
                .collect()
        };
        let diana = target("diana");
        assert!(diana.unit("cpu").unwrap().any_layout);
        let units = |v: &[(String, f64)]| v.iter().map(|(u, _)| u.clone()).collect::<Vec<_>>();
        let with_any = conversions(&diana);
        assert_eq!(units(&with_any), ["cpu", "digital", "cpu", "digital", "cpu"]);
        // Only the reshape converts: its 256 input bytes, 2 cycles each.
        let cycles: Vec<f64> = with_any.iter().map(|(_, c)| *c).collect();
        assert_eq!(cycles, [0.0, 0.0, 0.0, 0.0, 512.0]);
        let mut fixed = diana.clone();
        fixed.units.iter_mut().for_each(|u| u.any_layout = false);
        let without = conversions(&fixed);
        assert_eq!(units(&without), units(&with_any));
        // The first conv reads 1024 HWC bytes, the pool 1024 CHW bytes, the
        // second conv 256 HWC bytes, the reshape 256 CHW bytes.
        let cycles: Vec<f64> = without.iter().map(|(_, c)| *c).collect();
        assert_eq!(cycles, [0.0, 2048.0, 2048.0, 512.0, 512.0]);
    }

    /// Coverage and order invariants of a mapping.
    fn check_invariants(g: &Graph, hw: &HwModel, m: &Mapping, what: &str) {
        let order = m.node_order();
        let all: BTreeSet<NodeId> = g.nodes.node_indices().collect();
        assert_eq!(order.len(), all.len(), "{what} on {}: every node exactly once", hw.name);
        assert_eq!(order.iter().copied().collect::<BTreeSet<_>>(), all, "{what} on {}", hw.name);
        let pos: HashMap<NodeId, usize> = order.iter().enumerate().map(|(i, &n)| (n, i)).collect();
        for &n in &order {
            for p in g.nodes.neighbors_directed(n, Direction::Incoming) {
                assert!(pos[&p] < pos[&n], "{what} on {}: node {} before its producer", hw.name, n.index());
            }
        }
        let mut names = HashSet::new();
        for (i, l) in m.layers.iter().enumerate() {
            assert!(!l.nodes.is_empty());
            assert!(names.insert(l.name.clone()), "{what}: duplicate name {}", l.name);
            assert!(l.name.starts_with(&format!("l{i:02}_")), "{}", l.name);
            assert!(
                l.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{what}: {} is not a C identifier",
                l.name
            );
            assert!(hw.unit(&l.unit).is_some(), "{what}: unknown unit {}", l.unit);
            match (&l.pattern, &l.kernel) {
                (None, None) => {
                    assert_eq!(l.nodes.len(), 1);
                    assert_eq!(l.unit, hw.host_unit().name);
                }
                (Some(p), Some(k)) => {
                    let rule = hw
                        .offloads
                        .iter()
                        .find(|o| o.pattern == *p && o.unit == l.unit && o.kernel == *k)
                        .unwrap_or_else(|| panic!("{what}: no rule {p} to {} call {k}", l.unit));
                    let seqs = hw.pattern(&rule.pattern).unwrap().body.sequences();
                    let got: Vec<String> = ops(g, l).iter().map(|s| s.to_string()).collect();
                    assert!(
                        seqs.iter().any(|s| s.len() == got.len()
                            && l.nodes.iter().zip(s).all(|(&n, op)| op_matches(g, n, op))),
                        "{what}: {} does not spell {p}: {got:?}",
                        l.name
                    );
                    // A chain: each later node reads the previous one's output first.
                    for w in l.nodes.windows(2) {
                        assert_eq!(g.nodes[w[1]].inputs[0], g.nodes[w[0]].outputs[0]);
                        assert!(!g.outputs.contains(&g.nodes[w[0]].outputs[0]));
                    }
                }
                other => panic!("{what}: pattern and kernel disagree: {other:?}"),
            }
        }
    }

    fn require_shared() -> bool {
        std::env::var("MATCH_REQUIRE_SHARED").is_ok_and(|v| v == "1")
    }

    /// The shared folder, or `None` (skip) when absent and not required.
    fn shared() -> Option<PathBuf> {
        let dir = root().join("../shared/models");
        if dir.is_dir() {
            Some(dir)
        } else if require_shared() {
            panic!("{} is absent and MATCH_REQUIRE_SHARED=1", dir.display());
        } else {
            eprintln!("skipping: {} is absent", dir.display());
            None
        }
    }

    fn files_with(dir: &Path, ext: &str) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == ext));
        v.sort();
        v
    }

    #[test]
    fn every_model_maps_with_every_node_once_in_order() {
        let mut models: Vec<(PathBuf, crate::frontend::ImportOptions)> = Vec::new();
        let plain = |p: PathBuf| (p, crate::frontend::ImportOptions::default());
        models.extend(files_with(&root().join("tests/golden/models"), "onnx").into_iter().map(plain));
        models.push(plain(root().join("examples/example_int8.onnx")));
        if let Some(shared) = shared() {
            for sub in ["mlperf-tiny", "mlperf-tiny-logits"] {
                models.extend(files_with(&shared.join(sub), "tflite").into_iter().map(plain));
            }
            models.extend(files_with(&shared.join("match-onnx"), "onnx").into_iter().map(plain));
            let mut nodes: Vec<PathBuf> = std::fs::read_dir(shared.join("onnx-node"))
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_dir()).collect())
                .unwrap_or_default();
            nodes.sort();
            for dir in nodes {
                let options =
                    crate::frontend::ImportOptions { fold_inputs_from: Some(dir.join("test_data_set_0")) };
                models.push((dir.join("model.onnx"), options));
            }
        }
        assert!(models.len() >= 7);
        let targets: Vec<HwModel> = ["host", "gap9", "diana"].into_iter().map(target).collect();
        for (path, options) in &models {
            let g = crate::frontend::load(path, options).unwrap_or_else(|e| panic!("{e:#}"));
            let what = path.display().to_string();
            for hw in &targets {
                let m = map(&g, hw).unwrap_or_else(|e| panic!("{what} on {}: {e:#}", hw.name));
                check_invariants(&g, hw, &m, &what);
                assert_eq!(map(&g, hw).unwrap(), m, "{what}: deterministic");
                let text = explain(&g, hw, &m);
                for (i, l) in m.layers.iter().enumerate() {
                    assert!(
                        text.contains(&format!("layer {i}: {}\n", l.name)),
                        "{what}: explain lacks {}",
                        l.name
                    );
                }
            }
        }
    }

    fn explain_file(path: &Path, target_name: &str) -> String {
        let g = crate::frontend::load(path, &Default::default()).unwrap_or_else(|e| panic!("{e:#}"));
        explain_model(&g, &target(target_name)).unwrap()
    }

    #[test]
    fn explain_kws_on_host_and_gap9() {
        let Some(shared) = shared() else { return };
        let kws = shared.join("mlperf-tiny/kws_ref_model.tflite");
        let host = explain_file(&kws, "host");
        insta::assert_snapshot!("explain_kws_host", host);
        let gap9 = explain_file(&kws, "gap9");
        assert!(gap9.contains("requantization fixed_point not among scale_shift"), "{gap9}");
        insta::assert_snapshot!("explain_kws_gap9", gap9);
    }

    #[test]
    fn explain_example_on_diana() {
        let text = explain_file(&root().join("examples/example_int8.onnx"), "diana");
        insta::assert_snapshot!("explain_example_int8_diana", text);
    }
}
