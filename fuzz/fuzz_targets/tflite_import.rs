//! Fuzzes the TFLite importer on arbitrary bytes: the flatbuffer verifier,
//! the hand-written schema accessors and every operator's lowering. Errors
//! are expected; panics, hangs and unbounded allocation are bugs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = match_core::frontend::tflite::import(data);
});
