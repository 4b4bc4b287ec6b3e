//! Model importers: TFLite and ONNX (QDQ, QOperator and the integer
//! dialect) into the graph IR. Every failure names the node and operator.

pub mod onnx;
pub mod tflite;

use crate::ir::Graph;
use std::path::{Path, PathBuf};

/// Options of an import.
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// ONNX node tests: every graph input but the first becomes a constant,
    /// read from `input_N.pb` of this test-data folder, and is folded.
    pub fold_inputs_from: Option<PathBuf>,
}

/// Imports a `.tflite` or `.onnx` file, then runs shape and quantization
/// inference, constant folding and dead-node removal.
pub fn load(path: &Path, options: &ImportOptions) -> anyhow::Result<Graph> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| anyhow::anyhow!("{shown}: cannot read: {e}"))?;
    let mut graph = match path.extension().and_then(|e| e.to_str()) {
        Some("tflite") => tflite::import(&bytes),
        Some("onnx") => onnx::import(&bytes, options),
        _ => Err(anyhow::anyhow!("unknown model format: expected a .tflite or .onnx file")),
    }
    .map_err(|e| e.context(shown.clone()))?;
    crate::passes::prepare(&mut graph).map_err(|e| e.context(shown))?;
    Ok(graph)
}
