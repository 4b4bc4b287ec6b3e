//! Fuzzes the whole `.hwm` front end on arbitrary bytes: parse, check,
//! render diagnostics, format, and evaluate every expression of a model
//! that checks. None of it may panic or hang.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match_dsl::fuzz_one(data);
});
