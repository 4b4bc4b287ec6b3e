//! Turns every fixture in `tests/pass/` and `tests/fail/` into its own test
//! function, so a new case is a new file and each shows up by name.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut code = String::new();
    for kind in ["pass", "fail"] {
        let dir = Path::new(&manifest).join("tests").join(kind);
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "hwm"));
        files.sort();
        for path in files {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("case");
            let ident: String = stem
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
                .collect();
            let _ = writeln!(
                code,
                "#[test]\nfn {kind}_{ident}() {{ run_{kind}({:?}, {:?}); }}",
                stem,
                path.display().to_string()
            );
        }
    }
    std::fs::write(Path::new(&out).join("fixtures.rs"), code).expect("write generated fixture tests");
}
