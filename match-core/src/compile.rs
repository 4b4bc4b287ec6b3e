//! The compile pipeline: load -> map -> plan -> memory check -> emit, and
//! building and running the emitted project on the host (`make`, `cc`).

use crate::emit::{self, EmitOptions, EmitReport};
use crate::frontend::{self, ImportOptions};
use crate::ir::{Data, Graph, NodeId, Op, TensorId};
use crate::lower::{self, Exactness, Lowered};
use crate::mapping::{self, Mapping};
use crate::plan::{self, Plan};
use crate::schedule::Objective;
use anyhow::{anyhow, bail, Context};
use match_dsl::HwModel;
use serde_json::{json, Value};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where and how to emit.
#[derive(Clone, Debug)]
pub struct CompileOptions {
    pub out_dir: PathBuf,
    /// The C prefix; the model file's stem when `None`.
    pub model_name: Option<String>,
    /// The target's platform folder (from `match_targets::resolve`).
    pub platform_dir: Option<PathBuf>,
}

/// The result of a compilation.
#[derive(Clone, Debug)]
pub struct Compiled {
    /// The C prefix of the emitted files (`<name>.h`, `build/<name>`).
    pub model_name: String,
    /// The graph lowered for the target ([`lower::lower_for_target`]): what
    /// the emitted C computes, bit for bit, and what `mapping` and `plan`
    /// index. The imported graph itself on targets whose units implement
    /// every requantization form.
    pub graph: Graph,
    /// Per layer of `mapping`, whether it keeps the model's arithmetic.
    pub exactness: Vec<Exactness>,
    pub mapping: Mapping,
    pub plan: Plan,
    pub report: EmitReport,
    /// Activations spilled to the external memory ([`crate::spill`]).
    pub spilled: Vec<crate::spill::Spilled>,
}

/// The C prefix for a model file: its stem as a C identifier.
pub fn model_name(path: &Path) -> String {
    emit::c_identifier(&path.file_stem().and_then(|s| s.to_str()).unwrap_or("model").to_lowercase())
}

/// Imports `model` and compiles it.
pub fn compile_file(
    model: &Path,
    import: &ImportOptions,
    hw: &HwModel,
    options: &CompileOptions,
) -> anyhow::Result<(Graph, Compiled)> {
    let graph = frontend::load(model, import)?;
    let mut options = options.clone();
    if options.model_name.is_none() {
        options.model_name = Some(model_name(model));
    }
    let compiled = compile_graph(&graph, hw, &options)?;
    Ok((graph, compiled))
}

/// Maps, plans, checks the memory and emits an imported graph (units
/// chosen for the lowest latency).
pub fn compile_graph(graph: &Graph, hw: &HwModel, options: &CompileOptions) -> anyhow::Result<Compiled> {
    compile_graph_with(graph, hw, options, Objective::Latency)
}

/// [`compile_graph`] with the mapping's objective (`--optimize`).
pub fn compile_graph_with(
    graph: &Graph,
    hw: &HwModel,
    options: &CompileOptions,
    objective: Objective,
) -> anyhow::Result<Compiled> {
    compile_graph_exact(graph, hw, options, objective, false)
}

/// [`compile_graph_with`], keeping every layer bit-exact with the model's
/// arithmetic when `exact` (`--exact`): lowers the graph for the target
/// ([`lower::lower_for_target`]), then plans, checks and emits the lowered
/// graph.
pub fn compile_graph_exact(
    graph: &Graph,
    hw: &HwModel,
    options: &CompileOptions,
    objective: Objective,
    exact: bool,
) -> anyhow::Result<Compiled> {
    let name = emit::c_identifier(options.model_name.as_deref().unwrap_or("model"));
    check_fits_early(graph, hw, &name)?;
    let Lowered { graph: mut lowered, mut mapping, mut exactness } =
        lower::lower_for_target(graph, hw, objective, exact)?;
    let fused = emit::fused_layers(&lowered, hw, &mapping, options.platform_dir.as_deref())?;
    let layers_before: Vec<Vec<NodeId>> = mapping.layers.iter().map(|l| l.nodes.clone()).collect();
    let emit_options = EmitOptions {
        model_name: name.clone(),
        out_dir: options.out_dir.clone(),
        platform_dir: options.platform_dir.clone(),
    };
    // Spill activations until the arena fits its budget; when the emitter
    // then finds the home memory short (the weights' staging buffer, known
    // only once they are encoded), lower the budget by the shortfall and
    // spill again, while that frees arena bytes.
    let spilling = crate::spill::external_activations_memory(hw).is_some();
    let mut budget = arena_budget(&lowered, hw, &mapping);
    let (plan, report) = loop {
        if let Some(b) = budget.filter(|_| spilling) {
            crate::spill::spill_to_fit(&mut lowered, hw, &mut mapping, b, objective, &fused)?;
        }
        let plan = plan::plan_without(&lowered, &mapping.node_order(), &fused)?;
        check_fits(&lowered, hw, &plan, &name)?;
        match emit::emit(&lowered, hw, &mapping, &plan, &emit_options) {
            Ok(report) => break (plan, report),
            Err(e) => {
                let lower = e
                    .downcast_ref::<emit::HomeMemoryShort>()
                    .map(|s| plan.arena_bytes.saturating_sub(s.short))
                    .filter(|&b| spilling && budget.is_some_and(|old| b < old));
                match lower {
                    Some(b) => budget = Some(b),
                    None => return Err(e),
                }
            }
        }
    };
    let spilled = crate::spill::spills_of(&lowered, &mapping);
    if !spilled.is_empty() {
        exactness = layer_exactness_after_spilling(&layers_before, exactness, &mapping);
    }
    // A staged layer's estimate gains the part of its weights' transfer
    // that is not hidden behind the layers before it (all of it when the
    // copy is serial), and its energy.
    if let Some(st) = &report.staging {
        for (layer, s) in mapping.layers.iter_mut().zip(&st.layers) {
            if let Some(sch) = layer.schedule.as_mut().filter(|_| s.bytes > 0) {
                sch.cycles.transfer += s.charged_cycles;
                sch.cycles.total += s.charged_cycles;
                sch.energy_pj += s.energy_pj;
            }
        }
    }
    Ok(Compiled { model_name: name, graph: lowered.clone(), exactness, mapping, plan, report, spilled })
}

/// The arena's budget in the home memory: what it has usable, less the
/// weights when they must stay there too (no external weight memory), or
/// else less the largest layer's weights (each layer's weights are in the
/// home memory while it runs, resident or staged: docs/l3-weights.md).
fn arena_budget(graph: &Graph, hw: &HwModel, mapping: &Mapping) -> Option<usize> {
    let unit = hw.host_unit();
    let arena_mem = hw.memory(&unit.compute_in)?;
    let weights_mem = unit.weights_in.as_deref().and_then(|m| hw.memory(m)).unwrap_or(arena_mem);
    let usable = arena_mem.usable() as usize;
    if arena_mem.name != weights_mem.name {
        return Some(usable);
    }
    if emit::external_weights_memory(hw).is_none() {
        return Some(usable.saturating_sub(weight_bytes(graph)));
    }
    let largest =
        mapping.layers.iter().map(|l| const_bytes(graph, l.nodes.iter().copied())).max().unwrap_or(0);
    Some(usable.saturating_sub(largest))
}

/// The exactness of each layer once spill and fill layers are inserted
/// (those copy bytes: exact); `before` holds the layers' nodes as
/// `exactness` was computed for them.
fn layer_exactness_after_spilling(
    before: &[Vec<NodeId>],
    exactness: Vec<Exactness>,
    mapping: &Mapping,
) -> Vec<Exactness> {
    let old: HashMap<&[NodeId], Exactness> = before.iter().map(|n| n.as_slice()).zip(exactness).collect();
    mapping
        .layers
        .iter()
        .map(|l| {
            old.get(l.nodes.as_slice()).cloned().unwrap_or_else(|| Exactness {
                kind: lower::ExactKind::Exact,
                max_lsb: 0,
                reason: "no requantization".into(),
            })
        })
        .collect()
}

/// The `--explain` text of a compilation: the mapping's
/// ([`mapping::explain_with`]), and per layer whose weights are staged from
/// the external memory, a line with the bytes, DMA commands and cycles
/// added (docs/l3-weights.md).
pub fn explain(hw: &HwModel, compiled: &Compiled) -> String {
    let mut notes: Vec<Vec<String>> = match &compiled.report.staging {
        Some(st) => (0..compiled.mapping.layers.len()).map(|li| st.describe(li)).collect(),
        None => vec![Vec::new(); compiled.mapping.layers.len()],
    };
    let ext = crate::spill::external_activations_memory(hw).map_or("", |(m, _)| m.name.as_str());
    for s in &compiled.spilled {
        if let Some(n) = notes.get_mut(s.spill_layer) {
            n.push(format!(
                "spill: '{}' ({} B) to {ext} until layer {}: the arena does not hold it while it waits",
                s.tensor, s.bytes, s.fill_layer
            ));
        }
        if let Some(n) = notes.get_mut(s.fill_layer) {
            n.push(format!(
                "fill: '{}' ({} B) back from {ext}, spilled at layer {}",
                s.tensor, s.bytes, s.spill_layer
            ));
        }
    }
    mapping::explain_with_notes(&compiled.graph, hw, &compiled.mapping, &compiled.exactness, &notes)
}

/// Bytes of the constants the nodes read.
pub fn weight_bytes(graph: &Graph) -> usize {
    const_bytes(graph, graph.nodes.node_indices())
}

/// Bytes of the constants `nodes` read, each counted once.
fn const_bytes(graph: &Graph, nodes: impl Iterator<Item = NodeId>) -> usize {
    let consts: BTreeSet<TensorId> = nodes
        .flat_map(|n| graph.nodes[n].inputs.iter().copied())
        .filter(|&t| graph.tensor(t).is_const())
        .collect();
    consts.iter().map(|&t| graph.tensor(t).bytes()).sum()
}

/// Before any mapping or search, a lower bound of every plan's arena: a
/// node's activation inputs are live at once, and so is each of its
/// outputs. Tensors a plan may never hold are left out, so the bound stays
/// one: a tensor inside a possible fused layer (its producer and its only
/// reader are adjacent operators of one of the target's patterns, as for
/// the int32 accumulator between a conv and its requantization), and a
/// second name for the same bytes (a reshape's output, an in-place
/// output), and a tensor that inter-layer residency may keep in another
/// unit's compute memory (not a graph input or output, and no larger than
/// the largest such memory). Weights are not counted: their encoded size depends on the unit
/// ([`check_fits`] counts them after planning). A model past the bound is
/// refused at once, naming the node and tensor, instead of after a
/// schedule search over layers that cannot fit anyway.
pub fn check_fits_early(graph: &Graph, hw: &HwModel, model: &str) -> anyhow::Result<()> {
    let unit = hw.host_unit();
    let Some(arena_mem) = hw.memory(&unit.compute_in) else { return Ok(()) };
    let fusable = fusable_tensors(graph, hw);
    // Reshape groups share bytes: one representative per group.
    let mut root: Vec<usize> = (0..graph.tensors.len()).collect();
    fn find(root: &mut [usize], t: usize) -> usize {
        let mut r = t;
        while root[r] != r {
            r = root[r];
        }
        root[t] = r;
        r
    }
    for n in graph.nodes.node_indices() {
        let node = &graph.nodes[n];
        if let (Op::Reshape, [x], [y]) = (&node.op, &node.inputs[..], &node.outputs[..]) {
            let (a, b) = (find(&mut root, x.0), find(&mut root, y.0));
            root[a.max(b)] = a.min(b);
        }
    }
    // The largest memory another unit computes in: a tensor no larger may
    // be handed between two of its layers there, never reaching the arena.
    let keepable = hw
        .units
        .iter()
        .filter(|u| u.compute_in != arena_mem.name)
        .filter_map(|u| hw.memory(&u.compute_in))
        .map(|m| m.usable() as usize)
        .max()
        .unwrap_or(0);
    let kept = |t: &TensorId| {
        !graph.inputs.contains(t) && !graph.outputs.contains(t) && graph.tensor(*t).bytes() <= keepable
    };
    let counted = |t: &TensorId| !graph.tensor(*t).is_const() && !fusable.contains(t) && !kept(t);
    for n in graph.nodes.node_indices() {
        let node = &graph.nodes[n];
        let mut inputs: Vec<TensorId> = node.inputs.iter().filter(|t| counted(t)).copied().collect();
        inputs.sort_by_key(|t| find(&mut root, t.0));
        inputs.dedup_by_key(|t| find(&mut root, t.0));
        let in_bytes: u64 = inputs.iter().map(|&t| graph.tensor(t).bytes() as u64).sum();
        let largest_out =
            node.outputs.iter().filter(|t| counted(t)).map(|&t| graph.tensor(t)).max_by_key(|t| t.bytes());
        let out_bytes = largest_out.map_or(0, |t| t.bytes() as u64);
        let need = in_bytes.max(out_bytes);
        if need > arena_mem.usable() {
            let (what, largest) = if in_bytes >= out_bytes {
                let t = inputs.iter().map(|&t| graph.tensor(t)).max_by_key(|t| t.bytes());
                ("its activation inputs at once", t)
            } else {
                ("its output", largest_out)
            };
            bail!(
                "model `{model}` does not fit target `{}`: node `{}` ({}) needs {what} ({need} B; the largest is `{}`, {} B), but memory `{}` has {} B usable: at least {} B short",
                hw.name,
                node.name,
                node.op.pattern_name(),
                largest.map_or("", |t| t.name.as_str()),
                largest.map_or(0, |t| t.bytes()),
                arena_mem.name,
                arena_mem.usable(),
                need - arena_mem.usable()
            );
        }
    }
    Ok(())
}

/// Tensors a fused layer may keep out of memory: the single output of a
/// node read only by the next operator of some pattern chain of `hw` (its
/// first input), and not a graph output.
fn fusable_tensors(graph: &Graph, hw: &HwModel) -> HashSet<TensorId> {
    // A pattern's `relu`/`relu6` match clip nodes.
    let op_name = |s: &str| if s == "relu" || s == "relu6" { "clip".to_string() } else { s.to_string() };
    let adjacent: HashSet<(String, String)> = hw
        .patterns
        .iter()
        .flat_map(|p| p.body.sequences())
        .flat_map(|seq| seq.windows(2).map(|w| (op_name(&w[0]), op_name(&w[1]))).collect::<Vec<_>>())
        .collect();
    let mut readers: HashMap<TensorId, Vec<NodeId>> = HashMap::new();
    for n in graph.nodes.node_indices() {
        for &t in &graph.nodes[n].inputs {
            readers.entry(t).or_default().push(n);
        }
    }
    let outputs: HashSet<TensorId> = graph.outputs.iter().copied().collect();
    let mut fusable = HashSet::new();
    for n in graph.nodes.node_indices() {
        let node = &graph.nodes[n];
        let [out] = node.outputs[..] else { continue };
        if outputs.contains(&out) {
            continue;
        }
        let Some([next]) = readers.get(&out).map(Vec::as_slice) else { continue };
        let next = &graph.nodes[*next];
        if next.inputs.first() == Some(&out)
            && adjacent.contains(&(node.op.pattern_name().to_string(), next.op.pattern_name().to_string()))
        {
            fusable.insert(out);
        }
    }
    fusable
}

/// The activation arena goes to the host unit's `compute_in` memory, the
/// weights to its `weights_in` memory (the same one when it has none):
/// both must fit the memories' usable sizes. Weights that do not fit
/// beside the arena are left to the emitter when the target has an
/// external weight memory ([`emit::external_weights_memory`]; it stages
/// them, docs/l3-weights.md).
pub fn check_fits(graph: &Graph, hw: &HwModel, plan: &Plan, model: &str) -> anyhow::Result<()> {
    let unit = hw.host_unit();
    let arena_mem = hw
        .memory(&unit.compute_in)
        .ok_or_else(|| anyhow!("target `{}`: unit `{}` computes in an unknown memory", hw.name, unit.name))?;
    let weights_mem = unit.weights_in.as_deref().and_then(|m| hw.memory(m)).unwrap_or(arena_mem);
    let arena = plan.arena_bytes as u64;
    let weights = weight_bytes(graph) as u64;
    let largest = plan
        .offsets
        .keys()
        .map(|&t| graph.tensor(t))
        .max_by_key(|t| t.bytes())
        .map(|t| format!("; its largest tensor is `{}` ({} B)", t.name, t.bytes()))
        .unwrap_or_default();
    let short = |need: u64, what: String, mem: &match_dsl::model::Memory| -> anyhow::Result<()> {
        if need > mem.usable() {
            bail!(
                "model `{model}` does not fit target `{}`: {what} = {need} B, but memory `{}` has {} B usable: {} B short",
                hw.name,
                mem.name,
                mem.usable(),
                need - mem.usable()
            );
        }
        Ok(())
    };
    // Weights that do not fit beside the arena go to the target's external
    // weight memory when it has one: the emitter places them and checks
    // the staging buffer (emit::WeightStaging).
    let external = emit::external_weights_memory(hw).is_some();
    if arena_mem.name == weights_mem.name && external && arena + weights > arena_mem.usable() {
        short(arena, format!("the activation arena{largest}"), arena_mem)
    } else if arena_mem.name == weights_mem.name {
        short(
            arena + weights,
            format!("the activation arena ({arena} B{largest}) plus the weights ({weights} B)"),
            arena_mem,
        )
    } else {
        short(arena, format!("the activation arena{largest}"), arena_mem)?;
        short(weights, "the weights".to_string(), weights_mem)
    }
}

/// Runs `make` in an emitted project with extra variables (`CC=clang`,
/// `CFLAGS=...`, `BUILD=dir`); returns the binary `<BUILD>/<model>`
/// (default `build/<model>`).
pub fn build(dir: &Path, model_name: &str, vars: &[(&str, &str)]) -> anyhow::Result<PathBuf> {
    let mut cmd = Command::new("make");
    cmd.arg("-s").arg("-C").arg(dir);
    for (k, v) in vars {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.env_remove("MAKEFLAGS").env_remove("MFLAGS");
    let out = cmd.output().map_err(|e| anyhow!("cannot run make (is it installed?): {e}"))?;
    if !out.status.success() {
        bail!(
            "building {} failed ({}):\n{}{}",
            dir.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // The Makefile's BUILD folder (default `build`).
    let build = vars.iter().rev().find(|(k, _)| *k == "BUILD").map_or("build", |(_, v)| *v);
    let bin = dir.join(build).join(model_name);
    if !bin.is_file() {
        bail!("make succeeded but {} does not exist", bin.display());
    }
    Ok(bin)
}

/// Runs a built model binary on several input sets in one invocation:
/// writes the raw tensor files into `work`, returns the outputs per set.
pub fn run_binary(
    bin: &Path,
    graph: &Graph,
    sets: &[Vec<Data>],
    work: &Path,
) -> anyhow::Result<Vec<Vec<Data>>> {
    run_binary_env(bin, graph, sets, work, &[])
}

/// [`run_binary`] with counters: the binary of a target whose platform
/// counts (see [`platform_counts`]) writes its counters table to a file
/// (`MATCH_COUNTERS`), which is parsed. Counters are sums over the sets.
pub fn run_binary_counters(
    bin: &Path,
    graph: &Graph,
    sets: &[Vec<Data>],
    work: &Path,
) -> anyhow::Result<(Vec<Vec<Data>>, CountersTable)> {
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let path = work.join("counters.txt");
    let _ = std::fs::remove_file(&path);
    let outs = run_binary_env(bin, graph, sets, work, &[("MATCH_COUNTERS", path.as_os_str())])?;
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("{} wrote no counters to {}", bin.display(), path.display()))?;
    Ok((outs, parse_counters(&text)?))
}

fn run_binary_env(
    bin: &Path,
    graph: &Graph,
    sets: &[Vec<Data>],
    work: &Path,
    env: &[(&str, &std::ffi::OsStr)],
) -> anyhow::Result<Vec<Vec<Data>>> {
    std::fs::create_dir_all(work).with_context(|| format!("cannot create {}", work.display()))?;
    let mut cmd = Command::new(bin);
    cmd.env_remove("MATCH_COUNTERS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut outs = Vec::new();
    for (s, inputs) in sets.iter().enumerate() {
        if inputs.len() != graph.inputs.len() {
            bail!("the model takes {} input(s), {} given", graph.inputs.len(), inputs.len());
        }
        for (i, (d, &t)) in inputs.iter().zip(&graph.inputs).enumerate() {
            let t = graph.tensor(t);
            if d.dtype() != t.dtype || d.len() != t.elements() {
                bail!("input {i} '{}': expected {} elements of {}", t.name, t.elements(), t.dtype);
            }
            let path = work.join(format!("in_{s}_{i}.bin"));
            std::fs::write(&path, d.to_le_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            cmd.arg(&path);
        }
        let mut set_outs = Vec::new();
        for j in 0..graph.outputs.len() {
            let path = work.join(format!("out_{s}_{j}.bin"));
            let _ = std::fs::remove_file(&path);
            cmd.arg(&path);
            set_outs.push(path);
        }
        outs.push(set_outs);
    }
    let out = cmd.output().map_err(|e| anyhow!("cannot run {}: {e}", bin.display()))?;
    if !out.status.success() {
        bail!(
            "{} failed ({}):\n{}{}",
            bin.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    outs.iter()
        .map(|paths| {
            paths
                .iter()
                .zip(&graph.outputs)
                .map(|(p, &t)| {
                    let t = graph.tensor(t);
                    let bytes = std::fs::read(p).with_context(|| format!("cannot read {}", p.display()))?;
                    Data::from_le_bytes(t.dtype, &bytes).filter(|d| d.len() == t.elements()).ok_or_else(
                        || anyhow!("{}: {} bytes for output '{}'", p.display(), bytes.len(), t.name),
                    )
                })
                .collect()
        })
        .collect()
}

/// Whether the platform of `hw` counts per layer: its `api` block binds the
/// `layer` role (the generated code then reports each layer to the
/// platform) and names a header. The shipped gap9 and diana emulations do.
pub fn platform_counts(hw: &HwModel) -> bool {
    hw.api("header").is_some() && hw.api("layer").is_some()
}

/// One row of an emulation's counters table (targets/gap9/README.md).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LayerCounters {
    /// The layer's index in the mapping and its C name.
    pub index: usize,
    pub name: String,
    /// The cost model's estimate (as the generated code passed it).
    pub cycles: u64,
    /// DMA commands and bytes into the compute memories, back from them,
    /// and over an L3 DMA.
    pub dma_in: u64,
    pub dma_in_bytes: u64,
    pub dma_out: u64,
    pub dma_out_bytes: u64,
    pub dma_l3: u64,
    pub dma_l3_bytes: u64,
    /// Tile calls of the tiled driver, and calls of the unit kernels.
    pub calls: u64,
    pub kernels: u64,
}

/// A parsed counters table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountersTable {
    pub target: String,
    /// Runs (input sets) the counts are summed over.
    pub runs: u64,
    pub layers: Vec<LayerCounters>,
}

/// Parses the table the emulations print (`# match counters v1: target T,
/// runs N ...`, a column header, one line per layer).
pub fn parse_counters(text: &str) -> anyhow::Result<CountersTable> {
    let mut lines = text.lines();
    let head = lines.next().unwrap_or_default();
    let rest = head
        .strip_prefix("# match counters v1: target ")
        .ok_or_else(|| anyhow!("not a counters table (first line `{head}`)"))?;
    let (target, runs) = rest.split_once(", runs ").ok_or_else(|| anyhow!("bad counters header `{head}`"))?;
    let runs = runs.split_whitespace().next().and_then(|r| r.parse().ok()).unwrap_or(0);
    let columns = lines.next().unwrap_or_default();
    if !columns.starts_with("layer") {
        bail!("bad counters column header `{columns}`");
    }
    let mut layers = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 11 {
            bail!("bad counters line `{line}`");
        }
        let n = |i: usize| f[i].parse::<u64>().map_err(|_| anyhow!("bad number `{}` in `{line}`", f[i]));
        layers.push(LayerCounters {
            index: n(0)? as usize,
            name: f[1].to_string(),
            cycles: n(2)?,
            dma_in: n(3)?,
            dma_in_bytes: n(4)?,
            dma_out: n(5)?,
            dma_out_bytes: n(6)?,
            dma_l3: n(7)?,
            dma_l3_bytes: n(8)?,
            calls: n(9)?,
            kernels: n(10)?,
        });
    }
    Ok(CountersTable { target: target.to_string(), runs, layers })
}

/// The differences between measured counters and the cost model's
/// prediction ([`EmitReport::counters`], one entry per layer and run):
/// empty when DMA commands and bytes in each direction and tile calls
/// agree on every layer.
pub fn counters_mismatches(predicted: &[crate::cost::Counters], table: &CountersTable) -> Vec<String> {
    let mut out = Vec::new();
    let runs = table.runs.max(1);
    if table.layers.len() != predicted.len() {
        out.push(format!("{} layers counted, {} predicted", table.layers.len(), predicted.len()));
    }
    for (l, p) in table.layers.iter().zip(predicted) {
        let pairs = [
            ("dma_in", l.dma_in, p.dma_in),
            ("in_bytes", l.dma_in_bytes, p.dma_in_bytes),
            ("dma_out", l.dma_out, p.dma_out),
            ("out_bytes", l.dma_out_bytes, p.dma_out_bytes),
            ("calls", l.calls, p.calls),
            ("dma_l3", l.dma_l3, p.dma_l3),
            ("l3_bytes", l.dma_l3_bytes, p.dma_l3_bytes),
        ];
        for (what, got, want) in pairs {
            if got != want * runs {
                out.push(format!("layer {} {}: {what} {got}, predicted {}", l.index, l.name, want * runs));
            }
        }
    }
    out
}

/// DESIGN.md's `--report` JSON (version 1) of a compiled model: per layer
/// the unit, pattern, MACs, estimated cycles split, both bounds and the
/// schedule's tiles; totals; bytes used per memory (the home memory: the
/// activation arena plus the weights; a unit's compute memory: its largest
/// schedule footprint). Each layer's `exactness` is the lowering's:
/// `exact`, `converted` (with `max_lsb`, the bound over the layer's whole
/// accumulator range) or `moved` (with `--exact`), and the reason.
///
/// `graph` is the imported graph; the layers are read from the lowered
/// graph the compilation holds (`compiled.graph`), which the mapping indexes.
pub fn report_json(graph: &Graph, hw: &HwModel, compiled: &Compiled, model: &str) -> Value {
    debug_assert_eq!(graph.inputs.len(), compiled.graph.inputs.len());
    let graph = &compiled.graph;
    let mut layers = Vec::new();
    let (mut total_cycles, mut total_macs) = (0.0, 0u64);
    let mut memory: std::collections::BTreeMap<String, u64> = std::collections::BTreeMap::new();
    let host = hw.host_unit();
    let home = host.compute_in.clone();
    let home_weights = host.weights_in.clone().unwrap_or_else(|| home.clone());
    *memory.entry(home.clone()).or_default() += compiled.plan.arena_bytes as u64;
    match &compiled.report.staging {
        // Weights staged from the external memory: the home memory holds
        // the rest and the staging buffer.
        Some(st) => {
            *memory.entry(home_weights).or_default() += (st.resident_bytes + st.buffer_bytes) as u64;
            *memory.entry(st.memory.clone()).or_default() += st.image_bytes as u64;
        }
        None => *memory.entry(home_weights).or_default() += weight_bytes(graph) as u64,
    }
    // Activations spilled to the external memory (crate::spill).
    if let Some((ext, _)) =
        crate::spill::external_activations_memory(hw).filter(|_| compiled.plan.external_bytes > 0)
    {
        *memory.entry(ext.name.clone()).or_default() += compiled.plan.external_bytes as u64;
    }
    for (i, layer) in compiled.mapping.layers.iter().enumerate() {
        let macs = mapping::layer_macs(graph, &layer.nodes);
        total_macs += macs;
        let op = graph.nodes[layer.nodes[0]].op.pattern_name();
        let (cycles, bound, roofline, tiles) = match &layer.schedule {
            Some(s) => {
                total_cycles += s.cycles.total;
                if s.from != s.to {
                    let unit = hw.unit(&s.unit);
                    let m = memory.entry(s.to.clone()).or_default();
                    *m = (*m).max(s.footprint);
                    if let Some(w) = unit.and_then(|u| u.weights_in.clone()) {
                        let m = memory.entry(w).or_default();
                        *m = (*m).max(s.weights_footprint);
                    }
                }
                let t = &s.tile;
                let tiles = json!({
                    "from": s.from, "to": s.to,
                    "K": t.k, "C": t.c, "OY": t.oy, "OX": t.ox, "FY": t.fy, "FX": t.fx,
                    "order": s.order.iter().map(|l| l.name()).collect::<Vec<_>>(),
                    "buffering": {"input": s.buffering.input, "weights": s.buffering.weights, "output": s.buffering.output},
                    "resident": s.resident,
                    "calls": s.calls,
                    "bytes": s.footprint,
                    "energy_pj": s.energy_pj,
                });
                // Inter-layer residency (mapping::apply_residency), when any.
                let mut tiles = tiles;
                if let Some(obj) = tiles.as_object_mut() {
                    if let Some(n) = s.input_from {
                        obj.insert("input_resident_from".into(), json!(n));
                    }
                    if let Some(m) = s.output_to {
                        obj.insert("output_kept_for".into(), json!(m));
                    }
                }
                (
                    serde_json::to_value(s.cycles).unwrap_or(Value::Null),
                    s.bound_cycles,
                    s.roofline_cycles,
                    tiles,
                )
            }
            None => (
                json!({"total": 0, "compute": 0, "transfer": 0, "overhead": 0, "stall": 0}),
                0.0,
                0.0,
                Value::Null,
            ),
        };
        let mut extra = serde_json::Map::new();
        if let Some(s) =
            compiled.report.staging.as_ref().and_then(|st| st.layers.get(i)).filter(|s| s.bytes > 0)
        {
            extra.insert(
                "weights_staged".to_string(),
                json!({
                    "memory": compiled.report.staging.as_ref().map(|st| st.memory.clone()),
                    "bytes": s.bytes,
                    "commands": s.commands,
                    "cycles": s.cycles,
                    "energy_pj": s.energy_pj,
                    "prefetch": compiled.report.staging.as_ref().is_some_and(|st| st.prefetch),
                    "started_in": s.started_in,
                    "hidden_cycles": s.hidden_cycles,
                    "charged_cycles": s.charged_cycles,
                }),
            );
        }
        let mut entry = json!({
            "name": layer.name,
            "op": op,
            "unit": layer.unit,
            "pattern": layer.pattern,
            "macs": macs,
            "cycles": cycles,
            "bound_cycles": bound,
            "roofline_cycles": roofline,
            "tiles": tiles,
            "exactness": match compiled.exactness.get(i) {
                Some(e) => json!({"kind": e.kind.name(), "max_lsb": e.max_lsb, "reason": e.reason}),
                None => json!({"kind": "exact", "max_lsb": 0, "reason": "no requantization"}),
            },
        });
        if let Some(obj) = entry.as_object_mut() {
            obj.extend(extra);
        }
        layers.push(entry);
    }
    json!({
        "version": 1,
        "model": model,
        "target": hw.name,
        "layers": layers,
        "totals": {
            "cycles": total_cycles,
            "ms": total_cycles / hw.clock_hz as f64 * 1e3,
            "macs": total_macs,
        },
        "memory": memory,
    })
}
