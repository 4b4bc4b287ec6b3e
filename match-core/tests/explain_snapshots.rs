//! insta snapshots of `--explain` ([`match_core::mapping::explain_model`])
//! for two MLPerf Tiny models (ResNet-8 and the Deep AutoEncoder) on gap9
//! and on diana. Skipped when ../shared is absent, unless
//! MATCH_REQUIRE_SHARED=1.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The MLPerf Tiny folder, or `None` (skip) when absent and not required.
fn mlperf_tiny() -> Option<PathBuf> {
    let dir = root().join("../shared/models/mlperf-tiny");
    if dir.is_dir() {
        Some(dir)
    } else if std::env::var("MATCH_REQUIRE_SHARED").is_ok_and(|v| v == "1") {
        panic!("{} is absent and MATCH_REQUIRE_SHARED=1", dir.display());
    } else {
        eprintln!("skipping: {} is absent", dir.display());
        None
    }
}

fn explain(model: &str, target: &str) -> Option<String> {
    let path = mlperf_tiny()?.join(model);
    let graph = match_core::frontend::load(&path, &Default::default()).unwrap_or_else(|e| panic!("{e:#}"));
    let hw = match_dsl::load(&root().join("targets").join(format!("{target}.hwm")))
        .unwrap_or_else(|e| panic!("{e:#}"));
    Some(match_core::mapping::explain_model(&graph, &hw).unwrap_or_else(|e| panic!("{e:#}")))
}

#[test]
fn explain_resnet8_gap9() {
    let Some(text) = explain("pretrainedResnet_quant.tflite", "gap9") else { return };
    insta::assert_snapshot!("explain_resnet8_gap9", text);
}

#[test]
fn explain_resnet8_diana() {
    let Some(text) = explain("pretrainedResnet_quant.tflite", "diana") else { return };
    insta::assert_snapshot!("explain_resnet8_diana", text);
}

#[test]
fn explain_autoencoder_gap9() {
    let Some(text) = explain("ad01_int8.tflite", "gap9") else { return };
    insta::assert_snapshot!("explain_autoencoder_gap9", text);
}

#[test]
fn explain_autoencoder_diana() {
    let Some(text) = explain("ad01_int8.tflite", "diana") else { return };
    insta::assert_snapshot!("explain_autoencoder_diana", text);
}
