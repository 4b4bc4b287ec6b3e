//! The golden data in `tests/golden/`: the manifest (`manifest.json`, made
//! by tools/make_golden.py) and each case's raw little-endian input and
//! output files, plus the bit-for-bit comparison the end-to-end tests share.

use match_core::ir::{DType, Data};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `tests/golden/manifest.json`.
#[derive(Deserialize)]
pub struct Manifest {
    pub version: u32,
    pub models: Vec<Entry>,
}

/// The dtype and shape of one model input or output.
#[derive(Deserialize)]
pub struct TensorSpec {
    pub dtype: String,
    pub shape: Vec<usize>,
}

/// One model of the manifest and its cases.
#[derive(Deserialize)]
pub struct Entry {
    pub id: String,
    pub model: String,
    pub fold_inputs_from: Option<String>,
    pub inputs: Vec<TensorSpec>,
    pub outputs: Vec<TensorSpec>,
    pub cases: usize,
    #[serde(default = "yes")]
    pub exact: bool,
    #[serde(default)]
    pub atol: f64,
}

fn yes() -> bool {
    true
}

/// The [`DType`] a manifest dtype name stands for; panics on an unknown one.
pub fn dtype(s: &str) -> DType {
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

/// Reads one raw tensor file; panics when it is unreadable or its size does
/// not match `spec`.
pub fn read(path: &Path, spec: &TensorSpec) -> Data {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        bytes.len(),
        spec.shape.iter().product::<usize>() * dtype(&spec.dtype).size(),
        "{}: size does not match the manifest",
        path.display()
    );
    Data::from_le_bytes(dtype(&spec.dtype), &bytes).expect("length checked")
}

/// Reads and checks `tests/golden/manifest.json` (version 1); panics if it
/// cannot.
pub fn manifest() -> Manifest {
    let path = crate::repo_root().join("tests/golden/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let m: Manifest = serde_json::from_str(&text).expect("manifest.json parses");
    assert_eq!(m.version, 1);
    m
}

/// The manifest's model `id`; panics when it has none.
pub fn entry(id: &str) -> Entry {
    manifest().models.into_iter().find(|e| e.id == id).unwrap_or_else(|| panic!("{id} in the manifest"))
}

impl Entry {
    /// Imports the entry's model (with its folded inputs, if any); panics
    /// naming the entry when it does not load.
    pub fn load(&self) -> match_core::ir::Graph {
        let root = crate::repo_root();
        let import = match_core::frontend::ImportOptions {
            fold_inputs_from: self.fold_inputs_from.as_ref().map(|d| root.join(d)),
        };
        match_core::frontend::load(&root.join(&self.model), &import)
            .unwrap_or_else(|err| panic!("{}: {err:#}", self.id))
    }

    /// `tests/golden/<id>/case_<case>`.
    pub fn case_dir(&self, case: usize) -> PathBuf {
        crate::repo_root().join("tests/golden").join(&self.id).join(format!("case_{case}"))
    }

    /// The inputs of one case.
    pub fn case_inputs(&self, case: usize) -> Vec<Data> {
        let dir = self.case_dir(case);
        self.inputs.iter().enumerate().map(|(i, s)| read(&dir.join(format!("input_{i}.bin")), s)).collect()
    }

    /// The inputs of every case.
    pub fn all_case_inputs(&self) -> Vec<Vec<Data>> {
        (0..self.cases).map(|c| self.case_inputs(c)).collect()
    }

    /// The golden output `output` of one case.
    pub fn case_output(&self, case: usize, output: usize) -> Data {
        read(&self.case_dir(case).join(format!("output_{output}.bin")), &self.outputs[output])
    }
}

fn show(d: &Data) -> Vec<String> {
    match d {
        Data::F32(v) => v.iter().map(|x| format!("{x:?}")).collect(),
        other => other.to_i64().iter().map(|x| x.to_string()).collect(),
    }
}

/// Why `got` differs from `want` bit for bit, if it does.
pub fn diff(got: &Data, want: &Data) -> Option<String> {
    if got.dtype() == want.dtype() && got.to_le_bytes() == want.to_le_bytes() {
        return None;
    }
    let (g, w) = (show(got), show(want));
    let n = g.iter().zip(&w).filter(|(a, b)| a != b).count();
    let first = g.iter().zip(&w).position(|(a, b)| a != b);
    Some(format!(
        "{n} of {} elements differ; first at {first:?}: got {:?}, want {:?}",
        w.len(),
        first.map(|i| &g[i]),
        first.map(|i| &w[i])
    ))
}

/// Whether `got` is within `atol` of `want` element by element (f32), or
/// equal (other dtypes).
pub fn within(got: &Data, want: &Data, atol: f64) -> bool {
    match (got, want) {
        (Data::F32(a), Data::F32(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| ((*x as f64) - (*y as f64)).abs() <= atol)
        }
        _ => got == want,
    }
}
