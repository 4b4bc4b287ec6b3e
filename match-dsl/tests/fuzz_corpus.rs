//! Replays the committed cargo-fuzz corpus (fuzz/corpus/hwm_parser) and
//! the crash regressions (fuzz/regressions/hwm_parser) through the same
//! entry point the fuzzer uses: nothing may panic.

use std::path::Path;

#[test]
fn replay_fuzz_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut n = 0;
    for dir in ["corpus/hwm_parser", "regressions/hwm_parser"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else { continue };
        for entry in entries.flatten() {
            let data = std::fs::read(entry.path()).expect("read corpus file");
            match_dsl::fuzz_one(&data);
            n += 1;
        }
    }
    assert!(n > 0, "no fuzz corpus found under {}", root.display());
}
