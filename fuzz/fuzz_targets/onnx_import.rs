//! Fuzzes the ONNX importer on arbitrary bytes: decoding, dialect
//! recognition and graph building must return an error, never panic, and
//! stay within memory bounded by the input size.

#![no_main]

use libfuzzer_sys::fuzz_target;
use match_core::frontend::{onnx, ImportOptions};

fuzz_target!(|data: &[u8]| {
    let _ = onnx::import(data, &ImportOptions::default());
});
