//! Snapshots of the IR the importers make of real models (the textual dump
//! of `match_core::dump`): one TFLite model per operator mix, one model per
//! ONNX dialect. Review every change to these before accepting it.

use match_core::frontend::{load, ImportOptions};

fn dump(rel: &str) -> Option<String> {
    let root = match_tests::repo_root();
    if rel.starts_with("../shared/") {
        match_tests::shared_models()?;
    }
    let g = match load(&root.join(rel), &ImportOptions::default()) {
        Ok(g) => g,
        Err(e) => panic!("{rel}: {e:#}"),
    };
    Some(match_core::dump::dump(&g))
}

macro_rules! snap {
    ($name:ident, $path:expr) => {
        #[test]
        fn $name() {
            if let Some(text) = dump($path) {
                insta::assert_snapshot!(stringify!($name), text);
            }
        }
    };
}

snap!(tflite_ad01, "../shared/models/mlperf-tiny/ad01_int8.tflite");
snap!(tflite_kws, "../shared/models/mlperf-tiny/kws_ref_model.tflite");
snap!(tflite_resnet8, "../shared/models/mlperf-tiny/pretrainedResnet_quant.tflite");
snap!(onnx_integer_dialect_kws, "../shared/models/match-onnx/keyword_spotting.onnx");
snap!(onnx_qdq_example, "examples/example_int8.onnx");
snap!(onnx_qoperator_dscnn, "tests/golden/models/dscnn_qop.onnx");
