//! The C emitter: a self-contained C99 project per model and target.
//!
//! Files written to [`EmitOptions::out_dir`]:
//! - `<model>.h`: `int <model>_run(const <in_t> *input_0, .., <out_t> *output_0, ..)`
//!   and the sizes and quantization of the inputs and outputs as macros;
//! - `<model>.c`: the activation arena, one function per mapped layer (in
//!   the mapping's order) calling the portable kernels on arena offsets of
//!   the plan, and `<model>_run`;
//! - `<model>_weights.c`: every constant (weights, biases, per-channel
//!   requantization parameters) as a const, aligned array;
//! - `match_kernels.h` / `match_kernels.c`: the portable kernel library
//!   (embedded in this crate), bit-exact with the reference interpreter;
//! - the target's platform files (copied from its platform folder);
//! - `main.c` (the only file with file I/O; compiled out with
//!   `-DMATCH_NO_MAIN`) and a `Makefile` building `build/<model>`.

mod ops;
pub mod tiled;

use crate::ir::{DType, Data, Graph, TensorId};
use crate::mapping::Mapping;
use crate::plan::Plan;
use anyhow::{anyhow, bail, Context};
use match_dsl::HwModel;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The portable kernel library, written into every project.
pub const KERNELS_H: &str = include_str!("c/match_kernels.h");
pub const KERNELS_C: &str = include_str!("c/match_kernels.c");

#[derive(Clone, Debug)]
pub struct EmitOptions {
    /// The C identifier prefix: `<model>_run`, `<model>.h`, ...
    pub model_name: String,
    pub out_dir: PathBuf,
    /// The target's platform folder (C files to copy), if it has one.
    pub platform_dir: Option<PathBuf>,
}

/// What `matchc compile` prints.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmitReport {
    /// Bytes of generated and library C source.
    pub code_bytes: usize,
    /// Bytes of constant weight data.
    pub weight_bytes: usize,
    /// Bytes of the activation arena.
    pub ram_bytes: usize,
    /// Per layer of the mapping, what the target's emulation counts when
    /// it runs this code, as the cost model predicts it
    /// ([`crate::cost::predict_counters`] on the layer's emitted tiling).
    pub counters: Vec<crate::cost::Counters>,
}

/// The generated sources, before they are written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Project {
    /// (file name, contents), in writing order.
    pub files: Vec<(String, String)>,
    /// Platform files to copy: (file name, source path).
    pub platform_files: Vec<(String, PathBuf)>,
    pub report: EmitReport,
}

/// A C identifier made of `name`: letters, digits and `_`, not starting
/// with a digit, never empty.
pub fn c_identifier(name: &str) -> String {
    let mut s: String = name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with(|c: char| c.is_ascii_digit()) {
        s.insert(0, '_');
    }
    s
}

/// Generates and writes the project.
pub fn emit(
    graph: &Graph,
    hw: &HwModel,
    mapping: &Mapping,
    plan: &Plan,
    options: &EmitOptions,
) -> anyhow::Result<EmitReport> {
    let project = generate(graph, hw, mapping, plan, options)?;
    write(&project, &options.out_dir)?;
    Ok(project.report)
}

/// Writes a generated project into `dir` (created if needed).
pub fn write(project: &Project, dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| anyhow!("cannot create the output folder {}: {e}", dir.display()))?;
    for (name, text) in &project.files {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    }
    for (name, src) in &project.platform_files {
        let path = dir.join(name);
        std::fs::copy(src, &path)
            .map_err(|e| anyhow!("cannot copy {} to {}: {e}", src.display(), path.display()))?;
    }
    Ok(())
}

/// Generates the project's files without writing them.
pub fn generate(
    graph: &Graph,
    hw: &HwModel,
    mapping: &Mapping,
    plan: &Plan,
    options: &EmitOptions,
) -> anyhow::Result<Project> {
    let p = c_identifier(&options.model_name);
    let mut cx = Cx::new(graph, plan, &p);
    check_plan(graph, plan)?;

    // Platform files and API.
    let platform_files = platform_files(options.platform_dir.as_deref())?;
    let api_header_name = api_header(hw, &platform_files);
    // Platform services the generated code calls, when the header is there.
    let api_fn = |role: &str| api_header_name.as_ref().and(hw.api(role)).map(str::to_string);
    let layer_fn = api_fn("layer");
    let buffer_fn = api_fn("buffer");
    let tile_fn = api_fn("tile");
    let alloc = api_fn("malloc").zip(api_fn("free"));
    // Tiled layers: where the schedule tiles and the platform provides the DMA.
    let tiled_plans = emitted_tiling_in(graph, hw, mapping, &platform_files);
    let l1_arena = tiled::arena_of(&tiled_plans)?;
    let l1_name = format!("{p}_l1");
    let mut tiled_c = String::new();
    let mut stage_bytes = 0usize;

    // Layer functions.
    let mut layers_c = String::new();
    let mut calls = String::new();
    let mut seen_names = HashMap::new();
    for (li, layer) in mapping.layers.iter().enumerate() {
        let mut fname = c_identifier(&layer.name);
        let n = seen_names.entry(fname.clone()).or_insert(0usize);
        *n += 1;
        if *n > 1 {
            fname = format!("{fname}_{n}");
        }
        cx.layer = fname.clone();
        let mut body = String::new();
        let tiled_layer = tiled_plans.get(li).and_then(|t| t.as_ref());
        if let Some(t) = tiled_layer {
            let (funcs, code, staged) = tiled::layer(&mut cx, graph, &layer.nodes, t, &fname, &l1_name)
                .with_context(|| format!("layer {}: tiled code", layer.name))?;
            tiled_c.push_str(&funcs);
            stage_bytes = stage_bytes.max(staged);
            body.push_str(&code);
        } else {
            for &node in &layer.nodes {
                let node = &graph.nodes[node];
                let code = ops::node(&mut cx, node).with_context(|| {
                    format!("layer {}: node '{}' ({})", layer.name, node.name, node.op.pattern_name())
                })?;
                body.push_str(&code);
            }
        }
        let mut what = match (&layer.pattern, &layer.kernel) {
            (Some(pat), Some(k)) => format!("pattern {pat} on {} (target kernel {k})", layer.unit),
            (Some(pat), None) => format!("pattern {pat} on {}", layer.unit),
            _ => format!("on {}", layer.unit),
        };
        if let Some(s) = layer.schedule.as_ref().filter(|s| s.from != s.to) {
            if tiled_layer.is_some() {
                let order: Vec<&str> = s.order.iter().map(|l| l.name()).collect();
                let b = |x: bool| if x { "double" } else { "single" };
                what.push_str(&format!(
                    "; tiled {}->{}: K {} OY {} OX {}, order {}, buffering input {}, weights {}, output {}",
                    s.from,
                    s.to,
                    s.tile.k,
                    s.tile.oy,
                    s.tile.ox,
                    order.join(", "),
                    b(s.buffering.input),
                    b(s.buffering.weights),
                    b(s.buffering.output)
                ));
            } else {
                let why = match tiled::plan_layer(graph, hw, layer) {
                    Err(e) => e,
                    Ok(_) => "the platform folder provides no DMA functions".to_string(),
                };
                what.push_str(&format!(
                    "; schedule tiles {}->{} but this code is untiled ({why})",
                    s.from, s.to
                ));
            }
        }
        // The platform's view of the layer: its name and modeled cycles,
        // then the tile buffers it may touch in the compute memories.
        let mut hooks = String::new();
        if let Some(f) = &layer_fn {
            let cycles = layer.schedule.as_ref().map_or(0.0, |s| s.cycles.total).max(0.0).round() as u64;
            let _ = writeln!(hooks, "    {f}({li}, \"{fname}\", UINT64_C({cycles}));");
        }
        if let (Some(f), Some(t)) = (&buffer_fn, tiled_layer) {
            let l = &t.layout;
            let mut seen = Vec::new();
            // Weight tiles in the unit's own weight memory live in its arena.
            let w_base =
                t.weights_memory.as_ref().map_or(l1_name.clone(), |(m, _)| tiled::weights_arena(&p, m));
            for (base, offs, bytes) in [
                (&l1_name, l.input, l.input_bytes),
                (&w_base, l.weights, l.weight_bytes),
                (&l1_name, l.output, l.output_bytes),
                (&l1_name, [l.acc, l.acc], l.acc_bytes),
            ] {
                for off in offs {
                    if bytes > 0 && !seen.contains(&(base, off)) {
                        seen.push((base, off));
                        let _ = writeln!(hooks, "    {f}({base} + {off}, {bytes}u);");
                    }
                }
            }
        }
        let _ = writeln!(layers_c, "/* {}: {} */", comment(&layer.name), comment(&what));
        let _ = writeln!(layers_c, "static void {fname}(void)\n{{\n{hooks}{body}}}\n");
        let _ = writeln!(calls, "    {fname}();");
    }

    // Inputs and outputs.
    let in_ts: Vec<&crate::ir::Tensor> = graph.inputs.iter().map(|&t| graph.tensor(t)).collect();
    let out_ts: Vec<&crate::ir::Tensor> = graph.outputs.iter().map(|&t| graph.tensor(t)).collect();
    let mut params = Vec::new();
    for (i, t) in in_ts.iter().enumerate() {
        params.push(format!("const {} *input_{i}", ctype(t.dtype)));
    }
    for (i, t) in out_ts.iter().enumerate() {
        params.push(format!("{} *output_{i}", ctype(t.dtype)));
    }
    let signature =
        format!("int {p}_run({})", if params.is_empty() { "void".into() } else { params.join(", ") });
    let mut copy_in = String::new();
    for (i, &t) in graph.inputs.iter().enumerate() {
        if let Some(&off) = plan.offsets.get(&t) {
            let _ =
                writeln!(copy_in, "    mk_copy(MATCH_ARENA({off}), input_{i}, {});", graph.tensor(t).bytes());
        }
    }
    let mut copy_out = String::new();
    for (i, &t) in graph.outputs.iter().enumerate() {
        let src = cx.ptr(t)?;
        let _ = writeln!(copy_out, "    mk_copy(output_{i}, {src}, {});", graph.tensor(t).bytes());
    }

    // Weights (after every node registered its constants).
    let weight_bytes: usize = cx.arrays.iter().map(|a| a.bytes).sum();
    let upper = p.to_uppercase();
    let arena_bytes = plan.arena_bytes.max(1);

    let header = header(&p, &upper, graph, &signature, plan.arena_bytes, weight_bytes);
    let mut model_c = String::new();
    let _ = writeln!(
        model_c,
        "/* {p}.c: generated by matchc for target `{}`. Do not edit. */\n#include <stdint.h>\n{}#include \"match_kernels.h\"\n#include \"{p}.h\"\n{}",
        hw.name,
        if l1_arena.is_some() || alloc.is_some() { "#include <stddef.h>\n" } else { "" },
        match &api_header_name {
            Some(h) if l1_arena.is_some() || layer_fn.is_some() || alloc.is_some() => {
                format!("#include \"{h}\"\n")
            }
            _ => String::new(),
        }
    );
    let _ = writeln!(model_c, "/* Constants, in {p}_weights.c. */");
    for a in &cx.arrays {
        let _ = writeln!(model_c, "extern const {} {}[{}];", a.ctype, a.name, a.len.max(1));
    }
    // With the platform's `malloc` and `free`, every arena is a buffer the
    // platform allocates in its memory at each run (so that its emulation
    // checks sizes and accesses); else a static array.
    let home_mem = hw.host_unit().compute_in.clone();
    let mut allocs: Vec<(String, String, usize)> = Vec::new();
    let arena_decl = |name: &str, mem: &str, bytes: usize, allocs: &mut Vec<(String, String, usize)>| {
        if alloc.is_some() {
            allocs.push((name.to_string(), mem.to_string(), bytes));
            format!(
                "static uint8_t *{name}; /* {bytes} B of {}, from the platform at each run */",
                comment(mem)
            )
        } else {
            format!("static uint8_t {name}[{bytes}] MATCH_ALIGNED(16);")
        }
    };
    let _ = writeln!(
        model_c,
        "\n/* The activation arena: every tensor at its planned offset. */\n{}\n#define MATCH_ARENA(off) ((void *)({p}_arena + (off)))\n",
        arena_decl(&format!("{p}_arena"), &home_mem, arena_bytes, &mut allocs)
    );
    if let Some(f) = &tile_fn {
        if l1_arena.is_some() {
            let _ = writeln!(
                model_c,
                "/* The platform's check of every tile's buffers (mt_run). */\n#define MT_TILE_HOOK(in, w, out) {f}(in, w, out)\n"
            );
        }
    }
    if let Some((mem, bytes)) = &l1_arena {
        let _ = writeln!(
            model_c,
            "/* The {} arena of the tiled layers: their tile buffers at fixed offsets. */\n{}\n",
            comment(mem),
            arena_decl(&l1_name, mem, (*bytes).max(1) as usize, &mut allocs)
        );
        for (wm, bytes) in tiled::weight_arenas(&tiled_plans) {
            let _ = writeln!(
                model_c,
                "/* The {} arena of the weight tiles of units that keep weights there. */\n{}\n",
                comment(&wm),
                arena_decl(&tiled::weights_arena(&p, &wm), &wm, bytes.max(1) as usize, &mut allocs)
            );
        }
        if stage_bytes > 0 {
            let home = hw.memory(&hw.host_unit().compute_in).map_or(u64::MAX, |m| m.usable());
            if (plan.arena_bytes + stage_bytes) as u64 > home {
                bail!(
                    "the staging buffer of the tiled layers ({stage_bytes} B) does not fit beside the arena"
                );
            }
            let _ = writeln!(
                model_c,
                "/* Where tiled layers whose output the plan puts over their input store their tiles. */\n{}\n",
                arena_decl(&format!("{p}_stage"), &home_mem, stage_bytes, &mut allocs)
            );
        }
        let dma = tiled_plans.iter().flatten().map(|t| &t.dma).next().expect("a tiled layer");
        model_c.push_str(&tiled::helpers(dma));
        model_c.push_str(&tiled_c);
    }
    model_c.push_str(&layers_c);
    let (mut get, mut put) = (String::new(), String::new());
    if let Some((malloc, free)) = &alloc {
        for (name, mem, bytes) in &allocs {
            let _ = writeln!(
                get,
                "    {name} = (uint8_t *){malloc}(\"{}\", {bytes}u);\n    if ({name} == NULL) {{\n        return 1;\n    }}",
                comment(mem)
            );
        }
        for (name, mem, bytes) in allocs.iter().rev() {
            let _ = writeln!(put, "    {free}(\"{}\", {name}, {bytes}u);", comment(mem));
        }
    }
    if let Some(f) = &layer_fn {
        // The end of the run: the platform checks that nothing is pending.
        let _ = writeln!(calls, "    {f}(-1, \"\", UINT64_C(0));");
    }
    let _ = writeln!(model_c, "{signature}\n{{\n{get}{copy_in}{calls}{copy_out}{put}    return 0;\n}}");

    let weights_c = weights_file(&p, &cx.arrays);

    let platform_c: Vec<String> =
        platform_files.iter().filter(|(n, _)| n.ends_with(".c")).map(|(n, _)| n.clone()).collect();
    let platform_h: Vec<String> =
        platform_files.iter().filter(|(n, _)| n.ends_with(".h")).map(|(n, _)| n.clone()).collect();
    let api_header = hw.api("header").filter(|h| platform_h.iter().any(|n| n == h)).map(str::to_string);
    let main_c = main_file(&p, &upper, graph, hw, api_header.as_deref());
    let makefile = makefile(&p, hw, &platform_c, &platform_h);

    let files = vec![
        (format!("{p}.h"), header),
        (format!("{p}.c"), model_c),
        (format!("{p}_weights.c"), weights_c),
        ("match_kernels.h".to_string(), KERNELS_H.to_string()),
        ("match_kernels.c".to_string(), KERNELS_C.to_string()),
        ("main.c".to_string(), main_c),
        ("Makefile".to_string(), makefile),
    ];
    let mut code_bytes: usize = files
        .iter()
        .filter(|(n, _)| n != "Makefile" && !n.ends_with("_weights.c"))
        .map(|(_, t)| t.len())
        .sum();
    for (_, src) in &platform_files {
        code_bytes += std::fs::metadata(src).map(|m| m.len() as usize).unwrap_or(0);
    }
    Ok(Project {
        files,
        platform_files,
        report: EmitReport {
            code_bytes,
            weight_bytes,
            ram_bytes: plan.arena_bytes + stage_bytes,
            counters: tiled_plans.iter().map(|t| crate::cost::predict_counters(t.as_ref())).collect(),
        },
    })
}

/// The C and header files of a platform folder, sorted by name.
fn platform_files(dir: Option<&Path>) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut files = Vec::new();
    if let Some(dir) = dir.filter(|d| d.is_dir()) {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| anyhow!("cannot read the platform folder {}: {e}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("c" | "h")))
            .collect();
        entries.sort();
        for e in entries {
            let name = e.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            files.push((name, e));
        }
    }
    Ok(files)
}

/// The `api { header }` of `hw`, when the platform folder has it.
fn api_header(hw: &HwModel, platform_files: &[(String, PathBuf)]) -> Option<String> {
    hw.api("header").filter(|h| platform_files.iter().any(|(n, _)| n == h)).map(str::to_string)
}

/// The tiling of each layer of `mapping` as the emitter emits it for the
/// platform folder `platform_dir`: `Some` where the schedule tiles, the
/// tiled emitter takes the layer and the platform provides the DMA; `None`
/// where the layer's code is untiled.
pub fn emitted_tiling(
    graph: &Graph,
    hw: &HwModel,
    mapping: &Mapping,
    platform_dir: Option<&Path>,
) -> anyhow::Result<Vec<Option<tiled::TiledLayer>>> {
    Ok(emitted_tiling_in(graph, hw, mapping, &platform_files(platform_dir)?))
}

fn emitted_tiling_in(
    graph: &Graph,
    hw: &HwModel,
    mapping: &Mapping,
    platform_files: &[(String, PathBuf)],
) -> Vec<Option<tiled::TiledLayer>> {
    let headers: Vec<String> = platform_files
        .iter()
        .filter(|(n, _)| n.ends_with(".h"))
        .filter_map(|(_, path)| std::fs::read_to_string(path).ok())
        .collect();
    let has_header = api_header(hw, platform_files).is_some();
    tiled::plan_all(graph, hw, mapping, &headers)
        .into_iter()
        .map(|t| {
            t.filter(|t| has_header && tiled::platform_has_dma(&headers, &[(&t.dma.start, &t.dma.wait)]))
        })
        .collect()
}

/// Every planned tensor inside the arena, aligned for its element type.
fn check_plan(graph: &Graph, plan: &Plan) -> anyhow::Result<()> {
    // Only tensors the generated code touches: the plan also gives an
    // offset (0) to tensors no node reads or writes any more (the outputs of
    // nodes `prepare` removed as dead), which hold no bytes.
    let used: std::collections::HashSet<TensorId> = graph
        .nodes
        .node_indices()
        .flat_map(|n| graph.nodes[n].inputs.iter().chain(&graph.nodes[n].outputs).copied())
        .chain(graph.inputs.iter().copied())
        .chain(graph.outputs.iter().copied())
        .collect();
    for (&t, &off) in plan.offsets.iter().filter(|(t, _)| used.contains(t)) {
        let tensor = graph.tensors.get(t.0).ok_or_else(|| anyhow!("the plan names tensor #{}", t.0))?;
        if off + tensor.bytes() > plan.arena_bytes {
            bail!(
                "the plan puts tensor '{}' ({} B) at offset {off}, past the arena of {} B",
                tensor.name,
                tensor.bytes(),
                plan.arena_bytes
            );
        }
        if off % tensor.dtype.size() != 0 {
            bail!(
                "the plan puts tensor '{}' ({}) at offset {off}, not aligned for its type",
                tensor.name,
                tensor.dtype
            );
        }
    }
    Ok(())
}

/// One const array of `<model>_weights.c`.
pub(crate) struct Array {
    pub name: String,
    pub ctype: &'static str,
    pub len: usize,
    pub bytes: usize,
    /// The initializer's values, already as C text.
    pub values: Vec<String>,
    /// What it holds (for the summary).
    pub what: String,
}

/// The emitter's state while it generates the layer functions.
pub(crate) struct Cx<'a> {
    pub graph: &'a Graph,
    pub plan: &'a Plan,
    pub prefix: String,
    pub layer: String,
    pub arrays: Vec<Array>,
    consts: HashMap<TensorId, String>,
    names: HashMap<String, usize>,
}

impl<'a> Cx<'a> {
    fn new(graph: &'a Graph, plan: &'a Plan, prefix: &str) -> Cx<'a> {
        Cx {
            graph,
            plan,
            prefix: prefix.to_string(),
            layer: String::new(),
            arrays: Vec::new(),
            consts: HashMap::new(),
            names: HashMap::new(),
        }
    }

    /// A C expression pointing at tensor `t`: its weight array, or its
    /// place in the arena.
    pub fn ptr(&mut self, t: TensorId) -> anyhow::Result<String> {
        let tensor = self.graph.tensor(t);
        if let Some(data) = &tensor.data {
            if let Some(name) = self.consts.get(&t) {
                return Ok(name.clone());
            }
            let name = format!("{}_w{}", self.prefix, t.0);
            let (ctype, values) = data_values(data);
            let what = format!("'{}' {}{:?}", tensor.name, tensor.dtype, tensor.shape);
            self.push(name.clone(), ctype, values, what);
            self.consts.insert(t, name.clone());
            return Ok(name);
        }
        self.arena(t)
    }

    /// The arena place of activation `t`.
    pub fn arena(&self, t: TensorId) -> anyhow::Result<String> {
        let tensor = self.graph.tensor(t);
        let off = self
            .plan
            .offsets
            .get(&t)
            .ok_or_else(|| anyhow!("tensor '{}' has no place in the memory plan", tensor.name))?;
        Ok(format!("MATCH_ARENA({off})"))
    }

    /// The arena offset of `t`, if planned.
    pub fn offset(&self, t: TensorId) -> Option<usize> {
        if self.graph.tensor(t).is_const() {
            return None;
        }
        self.plan.offsets.get(&t).copied()
    }

    fn push(&mut self, name: String, ctype: &'static str, values: Vec<String>, what: String) {
        let size = match ctype {
            "int8_t" | "uint8_t" => 1,
            "int16_t" => 2,
            "int64_t" => 8,
            _ => 4,
        };
        self.arrays.push(Array { len: values.len(), bytes: values.len() * size, name, ctype, values, what });
    }

    fn param_name(&mut self, hint: &str) -> String {
        let base = format!("{}_{}_{hint}", self.prefix, self.layer);
        let n = self.names.entry(base.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            base
        } else {
            format!("{base}{n}")
        }
    }

    /// A const int32 parameter array; returns its name.
    pub fn array_i32(&mut self, hint: &str, v: &[i32]) -> String {
        let name = self.param_name(hint);
        self.push(name.clone(), "int32_t", v.iter().map(|&x| c_i32(x)).collect(), hint.to_string());
        name
    }

    pub fn array_i64(&mut self, hint: &str, v: &[i64]) -> String {
        let name = self.param_name(hint);
        self.push(name.clone(), "int64_t", v.iter().map(|&x| c_i64(x)).collect(), hint.to_string());
        name
    }

    /// f32 values as their bit patterns.
    pub fn array_f32_bits(&mut self, hint: &str, v: &[f32]) -> String {
        let name = self.param_name(hint);
        self.push(
            name.clone(),
            "uint32_t",
            v.iter().map(|x| f32_bits(*x)).collect(),
            format!("{hint} (f32 bits)"),
        );
        name
    }
}

fn data_values(d: &Data) -> (&'static str, Vec<String>) {
    match d {
        Data::I8(v) => ("int8_t", v.iter().map(|x| x.to_string()).collect()),
        Data::U8(v) => ("uint8_t", v.iter().map(|x| x.to_string()).collect()),
        Data::I16(v) => ("int16_t", v.iter().map(|x| x.to_string()).collect()),
        Data::I32(v) => ("int32_t", v.iter().map(|&x| c_i32(x)).collect()),
        Data::I64(v) => ("int64_t", v.iter().map(|&x| c_i64(x)).collect()),
        Data::F32(v) => ("uint32_t", v.iter().map(|x| f32_bits(*x)).collect()),
    }
}

pub(crate) fn c_i32(v: i32) -> String {
    if v == i32::MIN {
        "(-2147483647 - 1)".to_string()
    } else {
        v.to_string()
    }
}

pub(crate) fn c_i64(v: i64) -> String {
    if v == i64::MIN {
        "(-INT64_C(9223372036854775807) - 1)".to_string()
    } else {
        format!("INT64_C({v})")
    }
}

pub(crate) fn f32_bits(v: f32) -> String {
    format!("0x{:08x}u", v.to_bits())
}

/// The kernel library's type code.
pub(crate) fn mk_dt(d: DType) -> &'static str {
    match d {
        DType::I8 => "MK_I8",
        DType::U8 => "MK_U8",
        DType::I16 => "MK_I16",
        DType::I32 => "MK_I32",
        DType::I64 => "MK_I64",
        DType::F32 => "MK_F32",
    }
}

/// The C type of a tensor file's elements.
pub(crate) fn ctype(d: DType) -> &'static str {
    match d {
        DType::I8 => "int8_t",
        DType::U8 => "uint8_t",
        DType::I16 => "int16_t",
        DType::I32 => "int32_t",
        DType::I64 => "int64_t",
        DType::F32 => "float",
    }
}

/// Text safe inside a C comment.
pub(crate) fn comment(s: &str) -> String {
    s.replace("*/", "* /").replace("/*", "/ *").replace(['\n', '\r'], " ")
}

fn header(p: &str, upper: &str, graph: &Graph, signature: &str, arena: usize, weights: usize) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "/* {p}.h: generated by matchc. Do not edit. */\n#ifndef {upper}_H\n#define {upper}_H\n\n#include <stdint.h>\n"
    );
    let _ = writeln!(h, "#define {upper}_NUM_INPUTS {}", graph.inputs.len());
    let _ = writeln!(h, "#define {upper}_NUM_OUTPUTS {}", graph.outputs.len());
    let _ = writeln!(h, "#define {upper}_ARENA_BYTES {arena}");
    let _ = writeln!(h, "#define {upper}_WEIGHT_BYTES {weights}\n");
    let groups = [("INPUT", &graph.inputs), ("OUTPUT", &graph.outputs)];
    for (kind, ids) in groups {
        for (i, &t) in ids.iter().enumerate() {
            let t = graph.tensor(t);
            let m = format!("{upper}_{kind}_{i}");
            let _ = writeln!(h, "/* {} {}{:?} */", comment(&t.name), t.dtype, t.shape);
            let _ = writeln!(h, "#define {m}_ELEMENTS {}", t.elements());
            let _ = writeln!(h, "#define {m}_BYTES {}", t.bytes());
            let _ = writeln!(h, "#define {m}_TYPE {}", ctype(t.dtype));
            let _ = writeln!(h, "#define {m}_RANK {}", t.shape.len());
            if let Some(q) = t.quant.as_ref().filter(|q| q.scale.len() == 1 && q.scale[0].is_finite()) {
                let _ = writeln!(h, "#define {m}_SCALE {:?}f", q.scale[0]);
                let _ = writeln!(h, "#define {m}_ZERO_POINT {}", q.zp());
            }
            let _ = writeln!(h);
        }
    }
    let _ = writeln!(
        h,
        "/* Runs the model once: inputs and outputs in model order, raw tensors\n * in the model's own layout. Returns 0. */\n{signature};\n\n#endif /* {upper}_H */"
    );
    h
}

fn weights_file(p: &str, arrays: &[Array]) -> String {
    let mut w = String::new();
    let total: usize = arrays.iter().map(|a| a.bytes).sum();
    let _ = writeln!(w, "/* {p}_weights.c: generated by matchc. Do not edit.");
    let _ = writeln!(w, " *\n * {} arrays, {total} bytes:", arrays.len());
    for a in arrays {
        let _ = writeln!(w, " *   {} {}[{}] ({} B): {}", a.ctype, a.name, a.len, a.bytes, comment(&a.what));
    }
    let _ = writeln!(w, " */\n#include <stdint.h>\n#include \"match_kernels.h\"\n");
    for a in arrays {
        let _ = writeln!(w, "const {} {}[{}] MATCH_ALIGNED(16) = {{", a.ctype, a.name, a.len.max(1));
        if a.values.is_empty() {
            let _ = writeln!(w, "    0");
        }
        for chunk in a.values.chunks(16) {
            let _ = writeln!(w, "    {},", chunk.join(", "));
        }
        let _ = writeln!(w, "}};\n");
    }
    w
}

fn main_file(p: &str, upper: &str, graph: &Graph, hw: &HwModel, api_header: Option<&str>) -> String {
    let nin = graph.inputs.len();
    let nout = graph.outputs.len();
    let mut m = String::new();
    let _ = writeln!(
        m,
        "/* main.c: generated by matchc. The only file with file I/O.\n *\n * Usage: {p} IN_0.bin .. OUT_0.bin .. [IN_0.bin .. OUT_0.bin .. ...]\n * Raw little-endian tensor files, in model order; several sets run in turn.\n * Build with -DMATCH_NO_MAIN (or link another main) to leave it out.\n */\n#ifndef MATCH_NO_MAIN\n#include <stdio.h>\n#include <stdint.h>\n#include <string.h>\n#include \"{p}.h\""
    );
    let init = api_header.and(hw.api("init"));
    let deinit = api_header.and(hw.api("deinit"));
    if let Some(h) = api_header {
        let _ = writeln!(m, "#include \"{h}\"");
    }
    let _ = writeln!(
        m,
        r#"
#define NUM_IN {nin}
#define NUM_OUT {nout}

static unsigned char io_bytes[{maxb}];

/* Reads a raw little-endian tensor of `count` elements of `esize` bytes. */
static int read_tensor(const char *path, void *dst, long count, int esize)
{{
    FILE *f = fopen(path, "rb");
    long bytes = count * esize, got, i;
    int c;
    if (f == NULL) {{
        fprintf(stderr, "%s: cannot open\n", path);
        return 1;
    }}
    got = (long)fread(io_bytes, 1, (size_t)bytes, f);
    c = fgetc(f);
    fclose(f);
    if (got != bytes || c != EOF) {{
        fprintf(stderr, "%s: expected %ld bytes\n", path, bytes);
        return 1;
    }}
    for (i = 0; i < count; i++) {{
        uint64_t v = 0;
        int b;
        for (b = esize - 1; b >= 0; b--) {{
            v = (v << 8) | io_bytes[i * esize + b];
        }}
        if (esize == 1) {{
            uint8_t w = (uint8_t)v;
            memcpy((unsigned char *)dst + i, &w, 1);
        }} else if (esize == 2) {{
            uint16_t w = (uint16_t)v;
            memcpy((unsigned char *)dst + i * 2, &w, 2);
        }} else if (esize == 4) {{
            uint32_t w = (uint32_t)v;
            memcpy((unsigned char *)dst + i * 4, &w, 4);
        }} else {{
            memcpy((unsigned char *)dst + i * 8, &v, 8);
        }}
    }}
    return 0;
}}

static int write_tensor(const char *path, const void *src, long count, int esize)
{{
    FILE *f;
    long i;
    for (i = 0; i < count; i++) {{
        uint64_t v = 0;
        int b;
        if (esize == 1) {{
            uint8_t w;
            memcpy(&w, (const unsigned char *)src + i, 1);
            v = w;
        }} else if (esize == 2) {{
            uint16_t w;
            memcpy(&w, (const unsigned char *)src + i * 2, 2);
            v = w;
        }} else if (esize == 4) {{
            uint32_t w;
            memcpy(&w, (const unsigned char *)src + i * 4, 4);
            v = w;
        }} else {{
            memcpy(&v, (const unsigned char *)src + i * 8, 8);
        }}
        for (b = 0; b < esize; b++) {{
            io_bytes[i * esize + b] = (unsigned char)(v >> (8 * b));
        }}
    }}
    f = fopen(path, "wb");
    if (f == NULL) {{
        fprintf(stderr, "%s: cannot create\n", path);
        return 1;
    }}
    if (fwrite(io_bytes, 1, (size_t)(count * esize), f) != (size_t)(count * esize)) {{
        fclose(f);
        fprintf(stderr, "%s: cannot write\n", path);
        return 1;
    }}
    return fclose(f) != 0;
}}
"#,
        maxb = graph
            .inputs
            .iter()
            .chain(&graph.outputs)
            .map(|&t| graph.tensor(t).bytes())
            .max()
            .unwrap_or(1)
            .max(1)
    );
    for (kind, ids) in [("in", &graph.inputs), ("out", &graph.outputs)] {
        for (i, &t) in ids.iter().enumerate() {
            let t = graph.tensor(t);
            let _ = writeln!(m, "static {} {kind}_{i}[{}];", ctype(t.dtype), t.elements().max(1));
        }
    }
    let _ = writeln!(
        m,
        "\nint main(int argc, char **argv)\n{{\n    int set, sets;\n    if (argc < 1 + NUM_IN + NUM_OUT || (argc - 1) % (NUM_IN + NUM_OUT) != 0) {{\n        fprintf(stderr, \"usage: %s IN.bin... OUT.bin... (%d inputs, %d outputs per set)\\n\", argv[0], NUM_IN, NUM_OUT);\n        return 2;\n    }}\n    sets = (argc - 1) / (NUM_IN + NUM_OUT);"
    );
    if let Some(init) = init {
        let _ = writeln!(m, "    {init}();");
    }
    let _ = writeln!(
        m,
        "    for (set = 0; set < sets; set++) {{\n        char **arg = argv + 1 + set * (NUM_IN + NUM_OUT);"
    );
    for (i, &t) in graph.inputs.iter().enumerate() {
        let t = graph.tensor(t);
        let _ = writeln!(
            m,
            "        if (read_tensor(arg[{i}], in_{i}, {upper}_INPUT_{i}_ELEMENTS, {})) {{\n            return 1;\n        }}",
            t.dtype.size()
        );
    }
    let args: Vec<String> =
        (0..nin).map(|i| format!("in_{i}")).chain((0..nout).map(|i| format!("out_{i}"))).collect();
    let _ = writeln!(
        m,
        "        if ({p}_run({}) != 0) {{\n            fprintf(stderr, \"{p}_run failed\\n\");\n            return 1;\n        }}",
        args.join(", ")
    );
    for (i, &t) in graph.outputs.iter().enumerate() {
        let t = graph.tensor(t);
        let _ = writeln!(
            m,
            "        if (write_tensor(arg[NUM_IN + {i}], out_{i}, {upper}_OUTPUT_{i}_ELEMENTS, {})) {{\n            return 1;\n        }}",
            t.dtype.size()
        );
    }
    let _ = writeln!(m, "    }}");
    if let Some(deinit) = deinit {
        let _ = writeln!(m, "    {deinit}();");
    }
    let _ = writeln!(m, "    return 0;\n}}\n#endif /* MATCH_NO_MAIN */");
    m
}

fn makefile(p: &str, hw: &HwModel, platform_c: &[String], platform_h: &[String]) -> String {
    let mut srcs = vec![format!("{p}.c"), format!("{p}_weights.c"), "match_kernels.c".to_string()];
    srcs.extend(platform_c.iter().cloned());
    let mut hdrs = vec![format!("{p}.h"), "match_kernels.h".to_string()];
    hdrs.extend(platform_h.iter().cloned());
    format!(
        r#"# Generated by matchc for model `{p}` on target `{target}`.
#
#   make                      builds $(BUILD)/{p} (default build/{p})
#   make CC=clang CFLAGS=...  another compiler or flags
#   make lib                  the model, kernels and platform as objects
#                             (no main: link your own, or build main.c
#                             with -DMATCH_NO_MAIN)

CC ?= cc
CFLAGS ?= -std=c99 -O2 -Wall -Wextra -Werror
CPPFLAGS ?=
LDFLAGS ?=
LDLIBS ?=
BUILD ?= build
MAIN ?= main.c

SRCS = {srcs}
HDRS = {hdrs}
OBJS = $(SRCS:%.c=$(BUILD)/%.o)

all: $(BUILD)/{p}

$(BUILD)/{p}: $(OBJS) $(MAIN) $(HDRS)
	$(CC) $(CPPFLAGS) $(CFLAGS) -I. -o $@ $(OBJS) $(MAIN) $(LDFLAGS) $(LDLIBS)

lib: $(OBJS)

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(BUILD)
	$(CC) $(CPPFLAGS) $(CFLAGS) -I. -c -o $@ $<

clean:
	rm -rf $(BUILD)

.PHONY: all lib clean
"#,
        target = hw.name,
        srcs = srcs.join(" "),
        hdrs = hdrs.join(" "),
    )
}
