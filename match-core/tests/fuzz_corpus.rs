//! Replays the committed cargo-fuzz corpora of both importers (and their
//! crash regressions) through the same calls the fuzz targets make: no
//! input may panic.

use std::path::Path;

fn replay(target: &str, run: impl Fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in [format!("corpus/{target}"), format!("regressions/{target}")] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for entry in entries.flatten() {
            run(&std::fs::read(entry.path()).expect("read corpus file"));
            n += 1;
        }
    }
    assert!(n > 0, "no corpus for {target}");
}

#[test]
fn replay_tflite_corpus() {
    replay("tflite_import", |data| {
        if let Ok(mut g) = match_core::frontend::tflite::import(data) {
            let _ = match_core::passes::prepare(&mut g);
        }
    });
}

#[test]
fn replay_onnx_corpus() {
    replay("onnx_import", |data| {
        let options = match_core::frontend::ImportOptions::default();
        if let Ok(mut g) = match_core::frontend::onnx::import(data, &options) {
            let _ = match_core::passes::prepare(&mut g);
        }
    });
}
