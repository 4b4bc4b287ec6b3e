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
