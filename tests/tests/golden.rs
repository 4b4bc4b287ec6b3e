//! The reference interpreter against the real runtimes: every case of
//! every model in tests/golden/manifest.json (made by tools/make_golden.py
//! with TFLite Micro or onnxruntime) must match bit for bit.

use match_core::ir::{DType, Data};
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Deserialize)]
struct Manifest {
    version: u32,
    models: Vec<Entry>,
}

#[derive(Deserialize)]
struct TensorSpec {
    dtype: String,
    shape: Vec<usize>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    model: String,
    fold_inputs_from: Option<String>,
    inputs: Vec<TensorSpec>,
    outputs: Vec<TensorSpec>,
    cases: usize,
    #[serde(default = "yes")]
    exact: bool,
    #[serde(default)]
    atol: f64,
}

fn yes() -> bool {
    true
}

fn dtype(s: &str) -> DType {
    match s {
        "i8" => DType::I8,
        "u8" => DType::U8,
        "i16" => DType::I16,
        "i32" => DType::I32,
        "i64" => DType::I64,
        "f32" => DType::F32,
        other => panic!("unknown dtype {other} in the manifest"),
    }
}

fn read(path: &Path, spec: &TensorSpec) -> Data {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        bytes.len(),
        spec.shape.iter().product::<usize>() * dtype(&spec.dtype).size(),
        "{}: size does not match the manifest",
        path.display()
    );
    Data::from_le_bytes(dtype(&spec.dtype), &bytes).expect("length checked")
}

fn manifest() -> Manifest {
    let path = match_tests::repo_root().join("tests/golden/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let m: Manifest = serde_json::from_str(&text).expect("manifest.json parses");
    assert_eq!(m.version, 1);
    m
}

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
    let dir: PathBuf = root.join("tests/golden").join(&e.id);
    for case in 0..e.cases {
        let case_dir = dir.join(format!("case_{case}"));
        let inputs: Vec<Data> = e
            .inputs
            .iter()
            .enumerate()
            .map(|(i, s)| read(&case_dir.join(format!("input_{i}.bin")), s))
            .collect();
        let got = match match_core::interp::run(&graph, &inputs) {
            Ok(o) => o,
            Err(err) => panic!("{} case {case}: interpreter failed: {err:#}", e.id),
        };
        assert_eq!(got.len(), e.outputs.len(), "{}: output count", e.id);
        for (j, spec) in e.outputs.iter().enumerate() {
            let want = read(&case_dir.join(format!("output_{j}.bin")), spec);
            if e.exact {
                if got[j] != want {
                    // Compare as text of each element so that f32 outputs show their values.
                    let show = |d: &Data| -> Vec<String> {
                        match d {
                            Data::F32(v) => v.iter().map(|x| x.to_string()).collect(),
                            other => other.to_i64().iter().map(|x| x.to_string()).collect(),
                        }
                    };
                    let (g, w) = (show(&got[j]), show(&want));
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
                let (Data::F32(g), Data::F32(w)) = (&got[j], &want) else {
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
