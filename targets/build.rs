//! Discovers every shipped target: each `targets/*.hwm` file becomes one
//! entry of a table written to `$OUT_DIR/shipped.rs` (name, source through
//! `include_str!`, platform folder), so adding a target is adding a file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    println!("cargo:rerun-if-changed={}", dir.display());
    println!("cargo:rerun-if-changed=build.rs");

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the targets folder is readable")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "hwm"))
        .collect();
    // By name (stem), so that `host` sorts before `host-tiled`.
    files.sort_by_key(|p| p.file_stem().map(|s| s.to_os_string()));

    // Typed Rust for every target, checked at compile time by include_hwm!.
    let mut typed = String::new();
    for path in &files {
        let name = path.file_stem().and_then(|s| s.to_str()).expect("target file names are UTF-8");
        let mut module: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .collect();
        if module.starts_with(|c: char| c.is_ascii_digit()) {
            module.insert_str(0, "t_");
        }
        let file = path.file_name().and_then(|s| s.to_str()).expect("target file names are UTF-8");
        writeln!(typed, "/// `targets/{file}` as typed Rust.\npub mod {module} {{ match_macros::include_hwm!({file:?}); }}")
            .expect("writing to a String cannot fail");
    }

    let mut out = String::new();
    out.push_str("/// Every shipped target, sorted by name: (name, source, platform folder\n");
    out.push_str("/// relative to the targets folder, as the file's `platform` names it).\n");
    out.push_str("pub(crate) static SHIPPED: &[(&str, &str, Option<&str>)] = &[\n");
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_stem().and_then(|s| s.to_str()).expect("target file names are UTF-8");
        let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let platform = match platform_of(&source) {
            Some(p) => format!("Some({p:?})"),
            None => "None".to_string(),
        };
        let abs = absolute(path);
        writeln!(out, "    ({name:?}, include_str!({:?}), {platform}),", abs.display().to_string())
            .expect("writing to a String cannot fail");
    }
    out.push_str("];\n");

    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    std::fs::write(out_dir.join("shipped.rs"), out).expect("OUT_DIR is writable");
    std::fs::write(out_dir.join("typed.rs"), typed).expect("OUT_DIR is writable");
}

fn absolute(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// The string after the first `platform` key at the start of a line, with
/// comments ignored. A light scan: the checked model is the authority, and
/// the crate's tests compare the two.
fn platform_of(source: &str) -> Option<String> {
    let mut in_block_comment = false;
    for raw in source.lines() {
        let mut line = String::new();
        let mut rest = raw;
        loop {
            if in_block_comment {
                match rest.find("*/") {
                    Some(i) => {
                        rest = &rest[i + 2..];
                        in_block_comment = false;
                    }
                    None => break,
                }
            } else {
                let block = rest.find("/*");
                let line_c = rest.find("//");
                match (block, line_c) {
                    (Some(b), Some(l)) if l < b => {
                        line.push_str(&rest[..l]);
                        break;
                    }
                    (None, Some(l)) => {
                        line.push_str(&rest[..l]);
                        break;
                    }
                    (Some(b), _) => {
                        line.push_str(&rest[..b]);
                        rest = &rest[b + 2..];
                        in_block_comment = true;
                    }
                    (None, None) => {
                        line.push_str(rest);
                        break;
                    }
                }
            }
        }
        for stmt in line.split(';') {
            let stmt = stmt.trim();
            let Some(after) = stmt.strip_prefix("platform") else { continue };
            let after = after.trim_start();
            if let Some(s) = after.strip_prefix('"') {
                if let Some(end) = s.find('"') {
                    return Some(s[..end].to_string());
                }
            }
        }
    }
    None
}
