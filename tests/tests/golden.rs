//! The reference interpreter against the real runtimes: every case of
//! every model in tests/golden/manifest.json (made by tools/make_golden.py
//! with TFLite Micro or onnxruntime) must match bit for bit.

use match_core::ir::Data;
use match_tests::golden::{manifest, Entry};

/// Runs one manifest entry; `None` when its model lives in ../shared and
/// that folder is absent (and not required).
fn check_entry(e: &Entry) -> Option<usize> {
    let root = match_tests::repo_root();
    if e.model.starts_with("../shared/") {
        match_tests::shared_models()?;
    }
    let model = root.join(&e.model);
    let options = match_core::frontend::ImportOptions {
        fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)),
    };
    let graph = match match_core::frontend::load(&model, &options) {
        Ok(g) => g,
        Err(err) => panic!("{}: import failed: {err:#}", e.id),
    };
    for case in 0..e.cases {
        let inputs = e.case_inputs(case);
        let got = match match_core::interp::run(&graph, &inputs) {
            Ok(o) => o,
            Err(err) => panic!("{} case {case}: interpreter failed: {err:#}", e.id),
        };
        assert_eq!(got.len(), e.outputs.len(), "{}: output count", e.id);
        for (j, got) in got.iter().enumerate() {
            let want = e.case_output(case, j);
            if e.exact {
                if *got != want {
                    // Compare as text of each element so that f32 outputs show their values.
                    let show = |d: &Data| -> Vec<String> {
                        match d {
                            Data::F32(v) => v.iter().map(|x| x.to_string()).collect(),
                            other => other.to_i64().iter().map(|x| x.to_string()).collect(),
                        }
                    };
                    let (g, w) = (show(got), show(&want));
                    let diffs = g.iter().zip(&w).filter(|(a, b)| a != b).count();
                    let first = g.iter().zip(&w).position(|(a, b)| a != b);
                    panic!(
                        "{} case {case} output {j}: {diffs} of {} elements differ; first at {first:?}: got {:?}, want {:?}",
                        e.id,
                        w.len(),
                        first.map(|i| &g[i]),
                        first.map(|i| &w[i])
                    );
                }
            } else {
                let (Data::F32(g), Data::F32(w)) = (got, &want) else {
                    panic!("{}: inexact comparison is for f32 outputs", e.id)
                };
                for (a, b) in g.iter().zip(w) {
                    assert!(((a - b) as f64).abs() <= e.atol, "{} case {case}: {a} vs {b}", e.id);
                }
            }
        }
    }
    Some(e.cases)
}

#[test]
fn interpreter_is_bit_exact_with_the_real_runtimes() {
    let m = manifest();
    let mut failures = Vec::new();
    let mut cases = 0;
    for e in &m.models {
        match std::panic::catch_unwind(|| check_entry(e)) {
            Ok(Some(n)) => cases += n,
            Ok(None) => {}
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {msg}", e.id));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} models failed:\n{}",
        failures.len(),
        m.models.len(),
        failures.join("\n")
    );
    eprintln!("{cases} golden cases bit-exact over {} models", m.models.len());
}
