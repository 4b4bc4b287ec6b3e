//! Differential testing: a generated network compiled for a target, built
//! with AddressSanitizer and UBSan, run on random inputs and compared bit
//! for bit with the reference interpreter; failures shrunk and saved as
//! regression fixtures (`tests/regressions/`).

use crate::gen::{self, DerivedTarget, Flavor, GenOptions, Grouping, LayerOp, Operand, Recipe, TargetRecipe};
use crate::golden::diff;
use anyhow::{anyhow, Context};
use match_core::compile::{self, CompileOptions};
use match_core::ir::Data;
use match_core::HwModel;
use serde::{Deserialize, Serialize};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};

/// The C flags of every differential build.
pub const SANITIZE_CFLAGS: &str = "-std=c99 -O1 -g -Wall -Wextra -Werror -fno-omit-frame-pointer \
                                   -fsanitize=address,undefined -fno-sanitize-recover=all";

/// Which target a case compiles for.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TargetSpec {
    Shipped(String),
    Random(TargetRecipe),
    /// gap9-like or diana-like: a shipped target with random parameters,
    /// run on its emulation platform.
    Derived(DerivedTarget),
}

impl TargetSpec {
    pub fn label(&self) -> String {
        match self {
            TargetSpec::Shipped(n) => n.clone(),
            TargetSpec::Random(t) => t.name.clone(),
            TargetSpec::Derived(t) => t.name.clone(),
        }
    }
    /// The `.hwm` text of a generated target.
    pub fn hwm_text(&self) -> Option<anyhow::Result<String>> {
        match self {
            TargetSpec::Shipped(_) => None,
            TargetSpec::Random(t) => Some(Ok(t.to_hwm())),
            TargetSpec::Derived(t) => Some(t.to_hwm()),
        }
    }
    /// The checked model and its platform folder, without writing files (a
    /// derived target's platform is the shipped folder).
    pub fn resolve(&self) -> anyhow::Result<(HwModel, Option<PathBuf>)> {
        match self {
            TargetSpec::Shipped(n) => match_targets::resolve(n).map_err(|e| anyhow!("{e}")),
            TargetSpec::Random(_) | TargetSpec::Derived(_) => {
                let text = self.hwm_text().expect("generated")?;
                let name = self.label();
                let hw = match_dsl::check(&text, &format!("{name}.hwm"))
                    .map_err(|d| anyhow!("the generated target does not check:\n{d}\n{text}"))?;
                let platform = match self {
                    TargetSpec::Derived(t) => match_targets::resolve(&t.base).map_err(|e| anyhow!("{e}"))?.1,
                    _ => None,
                };
                Ok((hw, platform))
            }
        }
    }
    /// As [`TargetSpec::resolve`], but a derived target is written to
    /// `<work>/target/<name>.hwm` with the shipped platform folder copied
    /// next to it, and loaded from there (its `platform` resolved relative
    /// to the file, as users' targets are).
    pub fn resolve_in(&self, work: &Path) -> anyhow::Result<(HwModel, Option<PathBuf>)> {
        let TargetSpec::Derived(t) = self else { return self.resolve() };
        let dir = work.join("target");
        let _ = std::fs::remove_dir_all(&dir);
        let shipped = match_targets::resolve(&t.base)
            .map_err(|e| anyhow!("{e}"))?
            .1
            .with_context(|| format!("{} has no platform folder", t.base))?;
        let copy = dir.join(&t.base);
        std::fs::create_dir_all(&copy)?;
        for e in std::fs::read_dir(&shipped)? {
            let p = e?.path();
            if p.is_file() {
                std::fs::copy(&p, copy.join(p.file_name().unwrap_or_default()))?;
            }
        }
        let hwm = dir.join(format!("{}.hwm", t.name));
        std::fs::write(&hwm, t.to_hwm()?)?;
        let (hw, platform) =
            match_targets::resolve(&hwm.display().to_string()).map_err(|e| anyhow!("{e}"))?;
        anyhow::ensure!(
            platform.as_deref() == Some(copy.as_path()),
            "the platform folder resolved to {platform:?}"
        );
        Ok((hw, platform))
    }
}

/// One differential case.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    pub recipe: Recipe,
    pub target: TargetSpec,
    /// Seed of the random inputs.
    pub input_seed: u64,
}

/// The result of a case.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Pass,
    /// The target is too small for the model: the expected error.
    DoesNotFit,
    /// The recipe does not build a valid graph (only while shrinking).
    Invalid(String),
    Fail {
        kind: FailKind,
        message: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FailKind {
    /// The compiler refused or panicked (other than "does not fit").
    Compile,
    /// The generated C did not build.
    Build,
    /// The binary crashed or a sanitizer fired.
    Run,
    /// The interpreter failed on a graph the passes accepted.
    Interp,
    /// Outputs differ.
    Mismatch,
}

/// Input sets per case.
const SETS: u64 = 3;

/// A worker: one build folder, reused for every case it runs. The kernel
/// library (the same text in every project) is compiled once per worker and
/// linked into each build through the Makefile's `SRCS` and `LDLIBS`
/// variables.
pub struct Worker {
    pub dir: PathBuf,
    pub cflags: String,
    kernels: std::sync::OnceLock<Result<PathBuf, String>>,
}

fn catch<T>(what: &str, f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(anyhow!("{what} panicked: {msg}"))
        }
    }
}

impl Worker {
    pub fn new(dir: PathBuf) -> Worker {
        Worker { dir, cflags: SANITIZE_CFLAGS.to_string(), kernels: std::sync::OnceLock::new() }
    }

    /// `match_kernels.o`, built once with the worker's flags.
    fn kernels(&self) -> anyhow::Result<PathBuf> {
        self.kernels
            .get_or_init(|| {
                let d = self.dir.join("kernels");
                std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
                std::fs::write(d.join("match_kernels.c"), match_core::emit::KERNELS_C)
                    .map_err(|e| e.to_string())?;
                std::fs::write(d.join("match_kernels.h"), match_core::emit::KERNELS_H)
                    .map_err(|e| e.to_string())?;
                let obj = d.join("match_kernels.o");
                let out = std::process::Command::new("gcc")
                    .args(self.cflags.split_whitespace())
                    .arg("-c")
                    .arg("-o")
                    .arg(&obj)
                    .arg(d.join("match_kernels.c"))
                    .output()
                    .map_err(|e| format!("cannot run gcc: {e}"))?;
                if !out.status.success() {
                    return Err(format!(
                        "the kernel library does not build:\n{}",
                        String::from_utf8_lossy(&out.stderr)
                    ));
                }
                Ok(obj)
            })
            .clone()
            .map_err(|e| anyhow!(e))
    }

    /// Builds an emitted project with the sanitizer flags, linking the
    /// worker's kernel object instead of recompiling the library.
    fn build(&self, project: &Path, model: &str) -> anyhow::Result<PathBuf> {
        let kernels = self.kernels()?;
        let emitted = std::fs::read_to_string(project.join("match_kernels.c")).unwrap_or_default();
        anyhow::ensure!(
            emitted == match_core::emit::KERNELS_C,
            "the emitted match_kernels.c is not the library"
        );
        let mut srcs = vec![format!("{model}.c"), format!("{model}_weights.c")];
        let mut platform: Vec<String> = std::fs::read_dir(project)?
            .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            // match_emu.c is included by the platform file, not compiled alone.
            .filter(|n| {
                n.ends_with(".c")
                    && !srcs.contains(n)
                    && !["match_kernels.c", "match_emu.c", "main.c"].contains(&n.as_str())
            })
            .collect();
        platform.sort();
        srcs.extend(platform);
        let srcs = srcs.join(" ");
        let kernels = kernels.display().to_string();
        compile::build(
            project,
            model,
            &[("CC", "gcc"), ("CFLAGS", &self.cflags), ("SRCS", &srcs), ("LDLIBS", &kernels)],
        )
    }

    /// Runs several recipes for one target as one model (one build, one
    /// run). Returns one outcome per recipe; when the batch as a whole fails
    /// (not a per-output mismatch), each recipe is rerun alone to find the
    /// culprit.
    pub fn check_batch(&self, cases: &[&Case]) -> Vec<Outcome> {
        self.check_batch_units(cases).into_iter().map(|(o, _)| o).collect()
    }

    /// [`Worker::check_batch`], with per case the units that ran its layers
    /// (see [`Worker::check_units`]).
    pub fn check_batch_units(&self, cases: &[&Case]) -> Vec<(Outcome, Ran)> {
        if cases.len() == 1 {
            return vec![self.check_units(cases[0])];
        }
        let counts: Vec<usize> = cases.iter().map(|c| c.recipe.outputs.len()).collect();
        match self.run(cases) {
            Ok((per_output, ran)) => {
                let mut out = Vec::new();
                let mut i = 0;
                for ((c, &n), ran) in cases.iter().zip(&counts).zip(ran) {
                    let mine: Vec<&Option<String>> = per_output[i..i + n].iter().collect();
                    i += n;
                    let errs: Vec<String> = mine.iter().filter_map(|e| e.as_ref().cloned()).collect();
                    if errs.is_empty() {
                        out.push((Outcome::Pass, ran));
                    } else {
                        // Confirm alone (a batch may fail for another's reason).
                        out.push(self.check_units(c));
                    }
                }
                out
            }
            Err(_) => cases.iter().map(|c| self.check_units(c)).collect(),
        }
    }

    /// One case.
    pub fn check(&self, case: &Case) -> Outcome {
        self.check_units(case).0
    }

    /// One case, and the units that ran its layers.
    pub fn check_units(&self, case: &Case) -> (Outcome, Ran) {
        match self.run(&[case]) {
            Ok((per_output, mut ran)) => {
                let errs: Vec<String> = per_output.into_iter().flatten().collect();
                let ran = ran.pop().unwrap_or_default();
                if errs.is_empty() {
                    (Outcome::Pass, ran)
                } else {
                    (Outcome::Fail { kind: FailKind::Mismatch, message: errs.join("\n") }, ran)
                }
            }
            Err(e) => (e, Ran::default()),
        }
    }

    /// Compiles, builds and runs; per graph output, the mismatch if any,
    /// and per case the units that ran its layers. The cases must share one
    /// target.
    fn run(&self, cases: &[&Case]) -> Result<(Vec<Option<String>>, Vec<Ran>), Outcome> {
        let target = &cases[0].target;
        let recipes: Vec<&Recipe> = cases.iter().map(|c| &c.recipe).collect();
        let graph = match catch("build", || gen::build_many(&recipes)) {
            Ok(g) => g,
            Err(e) => return Err(Outcome::Invalid(format!("{e:#}"))),
        };
        let fail = |kind, e: anyhow::Error| Outcome::Fail { kind, message: format!("{e:#}") };
        let (hw, platform) = target.resolve_in(&self.dir).map_err(|e| fail(FailKind::Compile, e))?;
        let project = self.dir.join("project");
        let _ = std::fs::remove_dir_all(&project);
        let options = CompileOptions {
            out_dir: project.clone(),
            model_name: Some("net".into()),
            platform_dir: platform,
        };
        let compiled = match catch("compile", || compile::compile_graph(&graph, &hw, &options)) {
            Ok(c) => c,
            Err(e) => {
                let msg = format!("{e:#}");
                if msg.contains("does not fit target") {
                    return Err(Outcome::DoesNotFit);
                }
                return Err(Outcome::Fail { kind: FailKind::Compile, message: msg });
            }
        };
        let bin = self.build(&project, &compiled.model_name).map_err(|e| fail(FailKind::Build, e))?;
        let sets: Vec<Vec<Data>> = (0..SETS)
            .map(|s| {
                cases
                    .iter()
                    .flat_map(|c| gen::random_inputs(&c.recipe, c.input_seed.wrapping_add(s)))
                    .collect()
            })
            .collect();
        // The contract: the C equals the interpreter on the graph as
        // compiled (lowered for the target), not the imported graph.
        let lowered = &compiled.graph;
        anyhow_ensure_io(&graph, lowered).map_err(|e| fail(FailKind::Compile, e))?;
        // An emulation that counts says which units' kernels really ran;
        // otherwise the mapping says which units the layers went to.
        let (got, counters) = if compile::platform_counts(&hw) {
            let (got, table) = compile::run_binary_counters(&bin, lowered, &sets, &self.dir.join("io"))
                .map_err(|e| fail(FailKind::Run, e))?;
            (got, Some(table))
        } else {
            let got = compile::run_binary(&bin, lowered, &sets, &self.dir.join("io"))
                .map_err(|e| fail(FailKind::Run, e))?;
            (got, None)
        };
        let mut ran = vec![Ran::default(); cases.len()];
        for (li, layer) in compiled.mapping.layers.iter().enumerate() {
            let called = match &counters {
                Some(t) => t.layers.iter().any(|l| l.index == li && l.kernels > 0),
                None => true,
            };
            if !called {
                continue;
            }
            let owner = layer
                .nodes
                .first()
                .and_then(|&n| node_owner(&lowered.nodes[n].name))
                .filter(|_| cases.len() > 1)
                .unwrap_or(0);
            if let Some(r) = ran.get_mut(owner) {
                r.units.insert(layer.unit.clone());
                // A layer whose search split C (its int32 accumulator lives
                // across the C tiles): so campaigns report that path too.
                if layer.schedule.as_ref().is_some_and(|s| s.acc_bytes > 0) {
                    r.units.insert(format!("{}(C split)", layer.unit));
                }
            }
        }
        for n in lowered.nodes.node_indices() {
            if !matches!(lowered.nodes[n].op, match_core::ir::Op::Spill) {
                continue;
            }
            let owner = node_owner(&lowered.nodes[n].name).filter(|_| cases.len() > 1).unwrap_or(0);
            if let Some(r) = ran.get_mut(owner) {
                r.spills += 1;
            }
        }
        let mut per_output = vec![None; lowered.outputs.len()];
        for (s, (inputs, outs)) in sets.iter().zip(&got).enumerate() {
            let want = catch("interp", || match_core::interp::run(lowered, inputs))
                .map_err(|e| fail(FailKind::Interp, e))?;
            for (j, (g, w)) in outs.iter().zip(&want).enumerate() {
                if let Some(d) = diff(g, w) {
                    if per_output[j].is_none() {
                        per_output[j] = Some(format!("set {s} output {j}: {d}"));
                    }
                }
            }
        }
        Ok((per_output, ran))
    }
}

/// The network of a batch that a node belongs to: batched networks' node
/// names start with `n<i>_`.
fn node_owner(name: &str) -> Option<usize> {
    name.strip_prefix('n')?.split('_').next()?.parse::<usize>().ok()
}

/// The units that ran a case's layers: kernel calls counted by the
/// emulation (gap9, diana and targets derived from them), or the mapping's
/// units on targets without counters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Ran {
    pub units: std::collections::BTreeSet<String>,
    /// Tensors the compiler spilled to the external memory (`Op::Spill`
    /// nodes of the case's network in the compiled graph).
    pub spills: usize,
}

/// The lowered graph keeps the imported graph's inputs and outputs (the
/// random inputs are made for the imported one).
fn anyhow_ensure_io(imported: &match_core::ir::Graph, lowered: &match_core::ir::Graph) -> anyhow::Result<()> {
    let sig = |g: &match_core::ir::Graph, ids: &[match_core::ir::TensorId]| -> Vec<String> {
        ids.iter().map(|t| format!("{:?}", (&g.tensors[t.0].shape, &g.tensors[t.0].dtype))).collect()
    };
    anyhow::ensure!(
        sig(imported, &imported.inputs) == sig(lowered, &lowered.inputs)
            && sig(imported, &imported.outputs) == sig(lowered, &lowered.outputs),
        "lowering changed the graph's inputs or outputs"
    );
    Ok(())
}

// ------------------------------------------------------------ shrinking

fn fails_like(o: &Outcome, kind: FailKind) -> bool {
    matches!(o, Outcome::Fail { kind: k, .. } if *k == kind)
}

/// Removes layer `i`: its readers read its source instead.
fn remove_layer(r: &Recipe, i: usize) -> Recipe {
    let ni = r.inputs.len();
    let v = ni + i;
    let src = r.layers[i].src;
    let remap = |x: usize| {
        if x == v {
            if src > v {
                src - 1
            } else {
                src
            }
        } else if x > v {
            x - 1
        } else {
            x
        }
    };
    let mut layers = r.layers.clone();
    layers.remove(i);
    for l in &mut layers {
        l.src = remap(l.src);
        if let LayerOp::Add { other: Operand::Value(o), .. } = &mut l.op {
            *o = remap(*o);
        }
    }
    let mut outputs: Vec<usize> = r.outputs.iter().map(|&o| remap(o)).filter(|&o| o >= ni).collect();
    outputs.sort();
    outputs.dedup();
    if outputs.is_empty() && !layers.is_empty() {
        outputs.push(ni + layers.len() - 1);
    }
    Recipe { inputs: r.inputs.clone(), layers, outputs }
}

/// Drops trailing layers no output reads.
fn prune(r: &Recipe) -> Recipe {
    let ni = r.inputs.len();
    let mut r = r.clone();
    loop {
        let Some(last) = r.layers.len().checked_sub(1) else { return r };
        let v = ni + last;
        let read = r.outputs.contains(&v)
            || r.layers.iter().any(|l| {
                l.src == v || matches!(l.op, LayerOp::Add { other: Operand::Value(o), .. } if o == v)
            });
        if read {
            return r;
        }
        r.layers.pop();
    }
}

/// Smaller variants of a recipe, most aggressive first.
fn recipe_candidates(r: &Recipe) -> Vec<Recipe> {
    let mut out = Vec::new();
    // Fewer outputs.
    if r.outputs.len() > 1 {
        for i in 0..r.outputs.len() {
            let mut c = r.clone();
            c.outputs.remove(i);
            out.push(prune(&c));
        }
    }
    // Fewer layers.
    for i in (0..r.layers.len()).rev() {
        if r.layers.len() > 1 {
            out.push(prune(&remove_layer(r, i)));
        }
    }
    // An unread second input.
    if r.inputs.len() > 1 {
        let v = r.inputs.len() - 1;
        let read = r
            .layers
            .iter()
            .any(|l| l.src == v || matches!(l.op, LayerOp::Add { other: Operand::Value(o), .. } if o == v));
        if !read {
            let mut c = r.clone();
            c.inputs.pop();
            for l in &mut c.layers {
                l.src -= usize::from(l.src > v);
                if let LayerOp::Add { other: Operand::Value(o), .. } = &mut l.op {
                    *o -= usize::from(*o > v);
                }
            }
            c.outputs.iter_mut().for_each(|o| *o -= usize::from(*o > v));
            out.push(c);
        }
    }
    // Smaller inputs.
    for (ii, inp) in r.inputs.iter().enumerate() {
        for axis in 1..inp.shape.len() {
            let d = inp.shape[axis];
            for nd in [1, d / 2, d - 1] {
                if nd >= 1 && nd < d {
                    let mut c = r.clone();
                    c.inputs[ii].shape[axis] = nd;
                    out.push(c);
                }
            }
        }
    }
    // Simpler layers.
    for (i, l) in r.layers.iter().enumerate() {
        let mut push = |op: LayerOp| {
            let mut c = r.clone();
            c.layers[i].op = op;
            out.push(c);
        };
        match &l.op {
            LayerOp::Conv { grouping, out_c, kernel, stride, dilation, pad, weights, bias, rq } => {
                let base = l.op.clone();
                let with = |f: &dyn Fn(&mut LayerOp)| {
                    let mut o = base.clone();
                    f(&mut o);
                    o
                };
                for nc in [1, out_c / 2, out_c.saturating_sub(1)] {
                    if nc >= 1 && nc < *out_c {
                        push(with(&|o| {
                            if let LayerOp::Conv { out_c, .. } = o {
                                *out_c = nc
                            }
                        }));
                    }
                }
                if *grouping != Grouping::Full {
                    push(with(&|o| {
                        if let LayerOp::Conv { grouping, .. } = o {
                            *grouping = Grouping::Full
                        }
                    }));
                }
                if *kernel != [1, 1] {
                    push(with(&|o| {
                        if let LayerOp::Conv { kernel, pad, .. } = o {
                            *kernel = [1, 1];
                            *pad = [0; 4];
                        }
                    }));
                }
                if *stride != [1, 1] {
                    push(with(&|o| {
                        if let LayerOp::Conv { stride, .. } = o {
                            *stride = [1, 1]
                        }
                    }));
                }
                if *dilation != [1, 1] {
                    push(with(&|o| {
                        if let LayerOp::Conv { dilation, .. } = o {
                            *dilation = [1, 1]
                        }
                    }));
                }
                if *pad != [0; 4] {
                    push(with(&|o| {
                        if let LayerOp::Conv { pad, .. } = o {
                            *pad = [0; 4]
                        }
                    }));
                }
                if *weights != gen::WeightKind::I8 {
                    push(with(&|o| {
                        if let LayerOp::Conv { weights, .. } = o {
                            *weights = gen::WeightKind::I8
                        }
                    }));
                }
                if *bias {
                    push(with(&|o| {
                        if let LayerOp::Conv { bias, .. } = o {
                            *bias = false
                        }
                    }));
                }
                if rq.as_ref().is_some_and(|q| q.act != gen::Activation::None) {
                    push(with(&|o| {
                        if let LayerOp::Conv { rq: Some(q), .. } = o {
                            q.act = gen::Activation::None
                        }
                    }));
                }
            }
            LayerOp::Dense { out_c, weights, .. } => {
                if *weights != gen::WeightKind::I8 {
                    let mut o = l.op.clone();
                    if let LayerOp::Dense { weights, .. } = &mut o {
                        *weights = gen::WeightKind::I8;
                    }
                    push(o);
                }
                for nc in [1, out_c / 2] {
                    if nc >= 1 && nc < *out_c {
                        let mut o = l.op.clone();
                        if let LayerOp::Dense { out_c, .. } = &mut o {
                            *out_c = nc;
                        }
                        push(o);
                    }
                }
            }
            LayerOp::AvgPool { .. } | LayerOp::MaxPool { .. } => push(LayerOp::GlobalAvgPool),
            _ => {}
        }
    }
    out
}

fn target_candidates(t: &TargetSpec) -> Vec<TargetSpec> {
    if let TargetSpec::Derived(d) = t {
        // Closer to the shipped target: one more unit gone, or one edit undone.
        let mut out = Vec::new();
        let units: &[&str] = if d.base == "gap9" { &["cluster", "ne16"] } else { &["digital", "analog"] };
        for u in units {
            if !d.drop_units.iter().any(|x| x == u) {
                let mut c = d.clone();
                c.drop_units.push(u.to_string());
                out.push(TargetSpec::Derived(c));
            }
        }
        for i in 0..d.edits.len() {
            let mut c = d.clone();
            c.edits.remove(i);
            out.push(TargetSpec::Derived(c));
        }
        return out;
    }
    let TargetSpec::Random(t) = t else { return Vec::new() };
    let mut out = Vec::new();
    let mut push = |f: &dyn Fn(&mut TargetRecipe)| {
        let mut c = t.clone();
        f(&mut c);
        if &c != t {
            out.push(TargetSpec::Random(c));
        }
    };
    push(&|c| {
        c.cluster = None;
        c.ne16 = None;
        c.digital = None;
        c.l1 = None;
    });
    push(&|c| c.cluster = None);
    push(&|c| c.ne16 = None);
    push(&|c| c.digital = None);
    push(&|c| {
        if c.cluster.is_none() && c.ne16.is_none() && c.digital.is_none() {
            c.l1 = None
        }
    });
    out
}

/// Shrinks a failing case while it fails the same way; returns the
/// smallest case and how many candidates were tried.
pub fn shrink(worker: &Worker, case: &Case, kind: FailKind, budget: usize) -> (Case, usize) {
    let mut best = case.clone();
    let mut tried = 0;
    'outer: loop {
        let mut cands: Vec<Case> = target_candidates(&best.target)
            .into_iter()
            .map(|target| Case { target, ..best.clone() })
            .collect();
        cands.extend(
            recipe_candidates(&best.recipe).into_iter().map(|recipe| Case { recipe, ..best.clone() }),
        );
        for c in cands {
            if tried >= budget {
                break 'outer;
            }
            if gen::build(&c.recipe).is_err() {
                continue;
            }
            tried += 1;
            if fails_like(&worker.check(&c), kind) {
                best = c;
                continue 'outer;
            }
        }
        break;
    }
    (best, tried)
}

// ------------------------------------------------------------ regressions

/// A saved regression: the shrunk case and what it did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Regression {
    pub case: Case,
    pub kind: FailKind,
    pub message: String,
}

pub fn regressions_dir() -> PathBuf {
    crate::repo_root().join("tests/regressions")
}

/// Writes `<dir>/<name>.json` (and `<name>.hwm` for a random target).
pub fn save_regression(dir: &Path, name: &str, reg: &Regression) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(reg)? + "\n")?;
    if let Some(text) = reg.case.target.hwm_text() {
        std::fs::write(dir.join(format!("{name}.hwm")), text?)?;
    }
    Ok(path)
}

/// Every saved regression, by file name.
pub fn load_regressions(dir: &Path) -> anyhow::Result<Vec<(String, Regression)>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(out) };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.extension().and_then(|e| e.to_str()) == Some("json") {
            let text = std::fs::read_to_string(&p)?;
            let reg: Regression =
                serde_json::from_str(&text).with_context(|| format!("{} does not parse", p.display()))?;
            out.push((p.file_name().unwrap_or_default().to_string_lossy().into_owned(), reg));
        }
    }
    Ok(out)
}

// ------------------------------------------------------------ campaigns

/// The target of case `i` of a campaign: host, gap9, diana (shipped,
/// emulated), a generic random target, a random gap9-like and a random
/// diana-like target, in turn.
pub fn campaign_target(seed: u64, i: u64) -> TargetSpec {
    let tseed = seed.wrapping_mul(31).wrapping_add(i);
    match i % 6 {
        0 => TargetSpec::Shipped("host".into()),
        1 => TargetSpec::Shipped("gap9".into()),
        2 => TargetSpec::Shipped("diana".into()),
        3 => TargetSpec::Random(gen::generate_target(tseed)),
        4 => TargetSpec::Derived(gen::generate_derived_target(tseed, "gap9")),
        _ => TargetSpec::Derived(gen::generate_derived_target(tseed, "diana")),
    }
}

/// Whether batch `i` of campaign `seed` (a gap9-like one: [`campaign_target`]
/// kind 4) is a spilling batch, two in five of them: networks with long
/// skip connections ([`gen::generate_long_skip`]) on the gap9-like target
/// with its L2 cut for each network by [`Worker::spill_target`], each built
/// alone. The other batches' targets and networks are as before.
pub fn spill_batch(seed: u64, i: u64) -> bool {
    i % 6 == 4 && gen::Rng::new(seed.wrapping_mul(31).wrapping_add(i) ^ 0x05b1_11ed).below(5) < 2
}

impl Worker {
    /// `base` (gap9-like) with its home memory L2 cut so that the batch of
    /// `recipes` compiles only by spilling activations to L3 (or staging
    /// weights there): a probe compile with 4 MB of L2 gives the arena `A`
    /// and the largest layer's weights `W` (in L2 while the layer runs);
    /// `hi`, the first of `W + A`, `2W + A`, `2(W + A)` that compiles; a
    /// bisection between `W + A / 8` and `hi` the least L2 that still
    /// compiles, `min`; the result has `min + pick^3 * (hi - min)` bytes
    /// (`pick` in `[0, 1)`). When the probe does not compile (an L1 too
    /// small for a layer), `base` as it is.
    pub fn spill_target(&self, recipes: &[&Recipe], base: &DerivedTarget, pick: f64) -> DerivedTarget {
        let with_l2 = |usable: usize| {
            let mut t = base.clone();
            t.edits.retain(|(item, key, _)| !(item == "memory L2" && key == "size"));
            t.edits.push(("memory L2".into(), "size".into(), Some(format!("{usable} B"))));
            t.name = format!("{}sp", base.name);
            t
        };
        let Ok(graph) = catch("build", || gen::build_many(recipes)) else { return base.clone() };
        let compiles = |t: &DerivedTarget| -> Option<compile::Compiled> {
            let (hw, platform) = TargetSpec::Derived(t.clone()).resolve().ok()?;
            let options = CompileOptions {
                out_dir: self.dir.join("probe"),
                model_name: Some("net".into()),
                platform_dir: platform,
            };
            catch("compile", || compile::compile_graph(&graph, &hw, &options)).ok()
        };
        let Some(probe) = compiles(&with_l2(4_000_000)) else { return base.clone() };
        let arena = probe.plan.arena_bytes;
        let weights = largest_layer_weights(&probe);
        // The weights' staging may want a second layer's weights beside
        // the arena (prefetch): the first of these that compiles.
        let Some(hi) = [weights + arena, 2 * weights + arena, 2 * (weights + arena)]
            .into_iter()
            .find(|&b| compiles(&with_l2(b)).is_some())
        else {
            return base.clone();
        };
        let (mut fail, mut ok) = (weights + arena / 8, hi);
        if compiles(&with_l2(fail)).is_some() {
            ok = fail;
        } else {
            while ok - fail > (arena / 64).max(16) {
                let mid = fail + (ok - fail) / 2;
                if compiles(&with_l2(mid)).is_some() {
                    ok = mid;
                } else {
                    fail = mid;
                }
            }
        }
        // Mostly near the least: the fewer bytes, the more spills.
        with_l2(ok + ((hi - ok) as f64 * pick.powi(3)) as usize)
    }
}

/// The bytes of the constants of a compiled graph's layer with the most.
fn largest_layer_weights(c: &compile::Compiled) -> usize {
    let g = &c.graph;
    c.mapping
        .layers
        .iter()
        .map(|l| {
            let consts: std::collections::BTreeSet<_> = l
                .nodes
                .iter()
                .flat_map(|&n| g.nodes[n].inputs.iter().copied())
                .filter(|&t| g.tensor(t).is_const())
                .collect();
            consts.iter().map(|&t| g.tensor(t).bytes()).sum::<usize>()
        })
        .max()
        .unwrap_or(0)
}

/// A target's kind: its shipped name, `random`, or `<base>-like`.
pub fn target_kind(target: &TargetSpec) -> String {
    match target {
        TargetSpec::Shipped(n) => n.clone(),
        TargetSpec::Random(_) => "random".to_string(),
        TargetSpec::Derived(t) => format!("{}-like", t.base),
    }
}

/// The flavour of network for a target, so that its units see layers they take.
pub fn flavor_for(target: &TargetSpec, rng: &mut gen::Rng) -> Flavor {
    let options: &[Flavor] = match target {
        TargetSpec::Shipped(n) if n == "gap9" => &[Flavor::Any, Flavor::TfLite, Flavor::IntegerDialect],
        TargetSpec::Derived(t) if t.base == "gap9" => &[Flavor::Any, Flavor::TfLite, Flavor::IntegerDialect],
        TargetSpec::Shipped(n) if n == "diana" => &[Flavor::Any, Flavor::ShiftOnly, Flavor::ShiftOnly],
        TargetSpec::Derived(_) => &[Flavor::Any, Flavor::ShiftOnly, Flavor::ShiftOnly],
        TargetSpec::Shipped(_) => &[Flavor::Any, Flavor::TfLite],
        TargetSpec::Random(_) => &[Flavor::Any, Flavor::TfLite, Flavor::IntegerDialect, Flavor::ShiftOnly],
    };
    rng.pick(options)
}

/// Totals of a campaign.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub cases: usize,
    pub passed: usize,
    pub does_not_fit: usize,
    pub invalid: usize,
    pub failures: Vec<(Case, FailKind, String)>,
    /// Passing cases per `<target kind>:<unit>` that ran at least one of
    /// their layers on that unit (see [`target_kind`]).
    pub ran: std::collections::BTreeMap<String, usize>,
    /// Cases of spilling batches ([`spill_batch`]).
    pub long_skip: usize,
    /// Passing cases whose compiled graph spilled a tensor to the external
    /// memory.
    pub spilled: usize,
}

impl Stats {
    pub fn merge(&mut self, o: Stats) {
        self.cases += o.cases;
        self.passed += o.passed;
        self.does_not_fit += o.does_not_fit;
        self.invalid += o.invalid;
        self.failures.extend(o.failures);
        self.long_skip += o.long_skip;
        self.spilled += o.spilled;
        for (k, n) in o.ran {
            *self.ran.entry(k).or_default() += n;
        }
    }
}

/// Runs cases `[start, end)` of the campaign `seed` in batches of `batch`
/// networks per build (one target per batch), spilling batches
/// ([`spill_batch`]) included.
pub fn run_range(worker: &Worker, seed: u64, start: u64, end: u64, batch: u64) -> Stats {
    run_range_with(worker, seed, start, end, batch, true)
}

/// [`run_range`]; with `spilling` false, the batches [`spill_batch`] picks
/// are ordinary gap9-like batches (the campaign as it was before them).
pub fn run_range_with(worker: &Worker, seed: u64, start: u64, end: u64, batch: u64, spilling: bool) -> Stats {
    let mut stats = Stats::default();
    let opt = GenOptions::default();
    let mut b = start;
    while b < end {
        let n = batch.min(end - b);
        let target = campaign_target(seed, b / batch.max(1));
        let spilling = spilling && spill_batch(seed, b / batch.max(1));
        let mut rng = gen::Rng::new(seed ^ b.wrapping_mul(0x9e37));
        let mut cases: Vec<Case> = (b..b + n)
            .map(|i| {
                let flavor = flavor_for(&target, &mut rng);
                let rseed = seed.wrapping_mul(1_000_003).wrapping_add(i);
                Case {
                    recipe: if spilling {
                        gen::generate_long_skip(rseed, flavor)
                    } else {
                        gen::generate(rseed, flavor, &opt)
                    },
                    target: target.clone(),
                    input_seed: seed ^ (i << 8),
                }
            })
            .collect();
        let outcomes = if let (true, TargetSpec::Derived(base)) = (spilling, &target) {
            // One network per build, its L2 cut for it alone: in a batch,
            // one spill would often make room for every network.
            stats.long_skip += cases.len();
            cases
                .iter_mut()
                .map(|c| {
                    c.target = TargetSpec::Derived(worker.spill_target(&[&c.recipe], base, rng.f64()));
                    worker.check_units(c)
                })
                .collect()
        } else {
            let refs: Vec<&Case> = cases.iter().collect();
            worker.check_batch_units(&refs)
        };
        for (c, (o, ran)) in cases.into_iter().zip(outcomes) {
            stats.cases += 1;
            match o {
                Outcome::Pass => {
                    stats.passed += 1;
                    stats.spilled += usize::from(ran.spills > 0);
                    for u in ran.units {
                        *stats.ran.entry(format!("{}:{u}", target_kind(&c.target))).or_default() += 1;
                    }
                }
                Outcome::DoesNotFit => stats.does_not_fit += 1,
                Outcome::Invalid(_) => stats.invalid += 1,
                Outcome::Fail { kind, message } => stats.failures.push((c, kind, message)),
            }
        }
        b += n;
    }
    stats
}
