//! Shared driver of the end-to-end tests: compile a golden model for a
//! target, build the emitted C with make, run every case, and compare bit
//! for bit with the golden outputs and the reference interpreter.

use crate::golden::{diff, within, Entry};
use match_core::compile::{self, CompileOptions};
use match_core::frontend::ImportOptions;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Where and for what one suite runs.
pub struct Suite<'a> {
    /// A shipped target's name.
    pub target: &'a str,
    /// The test's temporary folder (`CARGO_TARGET_TMPDIR`) and a subfolder name.
    pub tmp: &'a Path,
    pub name: &'a str,
    /// Called with the emitted `<model>.c` of every compiled model.
    pub inspect_c: &'a (dyn Fn(&str) + Sync),
}

impl Suite<'_> {
    /// A fresh folder under the suite's temporary directory.
    pub fn work_dir(&self, parts: &[&str]) -> PathBuf {
        let mut d = self.tmp.join(self.name);
        for p in parts {
            d = d.join(p.replace(['/', '\\'], "__"));
        }
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("create the work folder");
        d
    }

    /// Compiles, builds and runs one manifest entry with the given make
    /// variables; `Ok(None)` when its model is in an absent ../shared.
    pub fn check_entry(
        &self,
        e: &Entry,
        label: &str,
        vars: &[(&str, &str)],
    ) -> Result<Option<usize>, String> {
        let root = crate::repo_root();
        if e.model.starts_with("../shared/") && crate::shared_models().is_none() {
            return Ok(None);
        }
        let (hw, platform) = match_targets::resolve(self.target).map_err(|err| err.to_string())?;
        let dir = self.work_dir(&[label, &e.id]);
        let import = ImportOptions { fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)) };
        let options =
            CompileOptions { out_dir: dir.join("project"), model_name: None, platform_dir: platform };
        let (graph, compiled) = compile::compile_file(&root.join(&e.model), &import, &hw, &options)
            .map_err(|err| format!("{}: compile failed: {err:#}", e.id))?;
        let model_c = std::fs::read_to_string(options.out_dir.join(format!("{}.c", compiled.model_name)))
            .map_err(|err| format!("{}: {err}", e.id))?;
        (self.inspect_c)(&model_c);
        let bin = compile::build(&options.out_dir, &compiled.model_name, vars)
            .map_err(|err| format!("{} [{label}]: {err:#}", e.id))?;
        let cases = e.all_case_inputs();
        let got = compile::run_binary(&bin, &graph, &cases, &dir.join("io"))
            .map_err(|err| format!("{} [{label}]: {err:#}", e.id))?;
        let mut errors = Vec::new();
        for (c, (inputs, outs)) in cases.iter().zip(&got).enumerate() {
            // The graph as compiled (lowered for the target): what the C
            // must equal bit for bit on every target.
            let interp = match_core::interp::run(&compiled.graph, inputs)
                .map_err(|err| format!("{} case {c}: interpreter failed: {err:#}", e.id))?;
            for j in 0..e.outputs.len() {
                if let Some(d) = diff(&outs[j], &interp[j]) {
                    errors.push(format!("{} [{label}] case {c} output {j} vs the interpreter: {d}", e.id));
                }
                let want = e.case_output(c, j);
                if e.exact {
                    if let Some(d) = diff(&outs[j], &want) {
                        errors.push(format!("{} [{label}] case {c} output {j} vs the golden: {d}", e.id));
                    }
                } else if !within(&outs[j], &want, e.atol) {
                    errors.push(format!("{} [{label}] case {c} output {j}: beyond atol {}", e.id, e.atol));
                }
            }
        }
        if errors.is_empty() {
            Ok(Some(e.cases))
        } else {
            Err(errors.join("\n"))
        }
    }

    /// Runs `check_entry` over `entries` on a few threads; panics with every
    /// failure. Returns (models, cases) checked.
    pub fn check_all(&self, entries: &[&Entry], label: &str, vars: &[(&str, &str)]) -> (usize, usize) {
        let next = AtomicUsize::new(0);
        let failures = Mutex::new(Vec::new());
        let done = Mutex::new((0usize, 0usize));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 8);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(e) = entries.get(i) else { break };
                    let start = std::time::Instant::now();
                    let result = self.check_entry(e, label, vars);
                    eprintln!("{label} {}: {:.1} s", e.id, start.elapsed().as_secs_f64());
                    match result {
                        Ok(Some(cases)) => {
                            let mut d = done.lock().unwrap();
                            d.0 += 1;
                            d.1 += cases;
                        }
                        Ok(None) => {}
                        Err(msg) => failures.lock().unwrap().push(msg),
                    }
                });
            }
        });
        let failures = failures.into_inner().unwrap();
        assert!(failures.is_empty(), "{} model(s) failed:\n{}", failures.len(), failures.join("\n"));
        done.into_inner().unwrap()
    }
}

/// The C flags of the sanitized builds: C99, every warning an error,
/// AddressSanitizer and UBSan without recovery.
pub const SANITIZED_CFLAGS: &str =
    "-std=c99 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all";

/// Emits `mapping` (e.g. with schedules a test forced) of the lowered graph
/// `g` for `hw` into `dir/project` as `name`, builds it with
/// [`SANITIZED_CFLAGS`], runs `inputs`, and checks the outputs against the
/// interpreter on `g` and, on a platform that counts, the emulation's
/// counters against the emitter's report; `what` names the run in
/// failures. Returns the project folder.
#[allow(clippy::too_many_arguments)]
pub fn emit_build_check(
    g: &match_core::ir::Graph,
    hw: &match_dsl::HwModel,
    mapping: &match_core::mapping::Mapping,
    platform: Option<PathBuf>,
    dir: &Path,
    name: &str,
    inputs: &[Vec<match_core::ir::Data>],
    what: &str,
) -> PathBuf {
    let sanitized = |_: &Path| {
        vec![
            ("CC", "gcc".to_string()),
            ("CFLAGS", SANITIZED_CFLAGS.to_string()),
            ("BUILD", "build-asan".to_string()),
        ]
    };
    emit_build_check_with(g, hw, mapping, platform, dir, name, inputs, what, &sanitized)
}

/// [`emit_build_check`] built with the make variables `vars` returns for
/// the emitted project folder (e.g. [`gap9_device_double_vars`]).
#[allow(clippy::too_many_arguments)]
pub fn emit_build_check_with(
    g: &match_core::ir::Graph,
    hw: &match_dsl::HwModel,
    mapping: &match_core::mapping::Mapping,
    platform: Option<PathBuf>,
    dir: &Path,
    name: &str,
    inputs: &[Vec<match_core::ir::Data>],
    what: &str,
    vars: &dyn Fn(&Path) -> Vec<(&'static str, String)>,
) -> PathBuf {
    let plan = match_core::plan::plan(g, &mapping.node_order()).expect("plans");
    let options = match_core::emit::EmitOptions {
        model_name: name.to_string(),
        out_dir: dir.join("project"),
        platform_dir: platform,
    };
    let report = match_core::emit::emit(g, hw, mapping, &plan, &options).expect("emits");
    let vars = vars(&options.out_dir);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let bin = compile::build(&options.out_dir, name, &vars).unwrap_or_else(|err| panic!("{what}: {err:#}"));
    let outs = if compile::platform_counts(hw) {
        let (outs, table) =
            compile::run_binary_counters(&bin, g, inputs, &dir.join("io")).expect("runs with counters");
        let bad = compile::counters_mismatches(&report.counters, &table);
        assert!(bad.is_empty(), "{what}: counters differ:\n{}", bad.join("\n"));
        outs
    } else {
        compile::run_binary(&bin, g, inputs, &dir.join("io")).expect("runs")
    };
    for (case, (got_case, inp)) in outs.iter().zip(inputs).enumerate() {
        let want = match_core::interp::run(g, inp).expect("interpreter");
        for (j, (got, w)) in got_case.iter().zip(&want).enumerate() {
            if let Some(d) = diff(got, w) {
                panic!("{what}: case {case} output {j}: {d}");
            }
        }
    }
    options.out_dir
}

/// Make variables that build a gap9 project with the device adapter's
/// unit kernels (cluster jobs and NE16 programming,
/// targets/gap9/device/gap9_device_units.c) over the PMSIS and pulp-nnx
/// doubles of tests/device-mock, everything else (arenas, DMA, checks) from
/// the emulation, sanitized; writes the two wrapper sources into `project`.
pub fn gap9_device_double_vars(project: &Path, name: &str) -> Vec<(&'static str, String)> {
    let root = crate::repo_root();
    std::fs::write(project.join("dev_units.c"), "#include \"gap9_device_units.c\"\n").expect("write");
    std::fs::write(
        project.join("dev_mock.c"),
        "#include \"gap9_cluster_mock.c\"\n#include \"gap9_ne16_double.c\"\n",
    )
    .expect("write");
    let srcs = format!("{name}.c {name}_weights.c match_kernels.c gap9_platform.c dev_units.c dev_mock.c");
    let cppflags = format!(
        "-I{} -I{} -I{} -I{}",
        root.join("targets/gap9/device").display(),
        root.join("tests/sdk-stubs/gap9").display(),
        root.join("tests/sdk-stubs/gap9/pulp-nnx").display(),
        root.join("tests/device-mock").display()
    );
    vec![
        ("SRCS", srcs),
        ("CPPFLAGS", cppflags),
        ("CFLAGS", SANITIZED_CFLAGS.to_string()),
        ("LDFLAGS", "-fsanitize=address,undefined -fno-sanitize-recover=all".to_string()),
    ]
}

/// A fresh folder `<CARGO_TARGET_TMPDIR of the caller>/<test>/<parts...>`.
pub fn fresh_dir(tmp: &Path, test: &str, parts: &[&str]) -> PathBuf {
    let mut d = tmp.join(test);
    for p in parts {
        d = d.join(p.replace(['/', '\\'], "__"));
    }
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the work folder");
    d
}

/// A golden manifest entry loaded and lowered and mapped for a shipped
/// `target` as `matchc compile` does: the entry, the target with its
/// platform folder, and the lowered graph with its mapping (tests then
/// force schedules on it).
pub fn lowered_golden(
    id: &str,
    target: &str,
) -> (crate::golden::Entry, match_dsl::HwModel, Option<PathBuf>, match_core::lower::Lowered) {
    let root = crate::repo_root();
    let e = crate::golden::manifest()
        .models
        .into_iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("{id} in the manifest"));
    let (hw, platform) = match_targets::resolve(target).expect("shipped target");
    let import = ImportOptions { fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)) };
    let graph = match_core::frontend::load(&root.join(&e.model), &import).expect("the model loads");
    let lowered =
        match_core::lower::lower_for_target(&graph, &hw, match_core::schedule::Objective::Latency, false)
            .expect("lowers");
    (e, hw, platform, lowered)
}
