//! The MCU check: generated C built for a 32-bit microcontroller core
//! (rv32imc, ilp32) with Debian's `gcc-riscv64-unknown-elf`, freestanding
//! (no libc at all: `tools/rv32/` has the start file, system-call I/O and
//! the string functions), `-Werror`, and run under `qemu-riscv32`
//! (Debian's `qemu-user`) on the golden cases: bit-exact. Reports `.text`
//! and `.rodata` sizes, the deepest stack frame (`-fstack-usage`) and the
//! stack high-water mark measured at run time (crt0.S paints its stack).
//!
//! Without the cross compiler or qemu the tests say so and skip; with
//! `MATCH_REQUIRE_RV32=1` (set by `.ci/run`) that is a failure instead.
//! Run with `--nocapture` to see the figures.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Flags every C file is built with (the MCU check).
const CFLAGS: &[&str] = &[
    "-march=rv32imc",
    "-mabi=ilp32",
    "-ffreestanding",
    "-nostdlib",
    "-std=c99",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fstack-usage",
    "-ffunction-sections",
    "-fdata-sections",
];

/// MLPerf Tiny models (ids in tests/golden/manifest.json) checked on rv32.
const MODELS: &[&str] = &[
    "mlperf-tiny/ad01_int8",
    "mlperf-tiny/kws_ref_model",
    "mlperf-tiny/pretrainedResnet_quant",
    "mlperf-tiny/vww_96_int8",
    "mlperf-tiny/str_ww_ref_model",
];

struct Toolchain {
    gcc: String,
    qemu: String,
}

fn found(program: &str, arg: &str) -> bool {
    Command::new(program).arg(arg).output().is_ok_and(|o| o.status.success())
}

/// The cross compiler and qemu, or `None` (after saying why) when absent
/// and not required.
fn toolchain() -> Option<Toolchain> {
    let gcc = "riscv64-unknown-elf-gcc".to_string();
    let qemu = ["qemu-riscv32", "qemu-riscv32-static"].into_iter().find(|q| found(q, "--version"));
    let mut missing = Vec::new();
    if !found(&gcc, "--version") {
        missing.push("riscv64-unknown-elf-gcc (Debian: gcc-riscv64-unknown-elf)");
    }
    if qemu.is_none() {
        missing.push("qemu-riscv32 (Debian: qemu-user)");
    }
    if missing.is_empty() {
        return Some(Toolchain { gcc, qemu: qemu.expect("checked").to_string() });
    }
    if std::env::var("MATCH_REQUIRE_RV32").is_ok_and(|v| v == "1") {
        panic!("MATCH_REQUIRE_RV32=1 but not found: {}", missing.join(", "));
    }
    eprintln!(
        "skipping the rv32 check: not found: {} (set MATCH_REQUIRE_RV32=1 to fail instead)",
        missing.join(", ")
    );
    None
}

fn rv32_dir() -> PathBuf {
    match_tests::repo_root().join("tools/rv32")
}

/// A fresh scratch folder under Cargo's per-test temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("rv32").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!(
            "{cmd:?} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// What a cross build produced.
struct Build {
    elf: PathBuf,
    /// The frame of every linked function from the `.su` files, deepest
    /// first: (bytes, qualifier, "file:line:col:function").
    frames: Vec<(u64, String, String)>,
}

/// Compiles each source to its own object (so that each `.su` lands beside
/// it) with [`CFLAGS`] and `defines`, then links them with crt0.S, rv32.ld
/// and libgcc, nothing else.
fn cross_build(
    tc: &Toolchain,
    sources: &[PathBuf],
    includes: &[PathBuf],
    defines: &[String],
    dir: &Path,
    name: &str,
) -> Build {
    let obj_dir = dir.join("obj");
    std::fs::create_dir_all(&obj_dir).expect("create obj dir");
    let mut children = Vec::new();
    let mut objects = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let stem = src.file_stem().and_then(|s| s.to_str()).unwrap_or("src");
        let obj = obj_dir.join(format!("{i:02}_{stem}.o"));
        let mut cmd = Command::new(&tc.gcc);
        cmd.args(CFLAGS).args(defines);
        for inc in includes {
            cmd.arg("-I").arg(inc);
        }
        cmd.arg("-c").arg(src).arg("-o").arg(&obj);
        let child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn();
        let child = child.unwrap_or_else(|e| panic!("cannot run {}: {e}", tc.gcc));
        children.push((src.clone(), child));
        objects.push(obj);
    }
    let mut errors = String::new();
    for (src, child) in children {
        let out = child.wait_with_output().expect("wait for the compiler");
        if !out.status.success() {
            errors.push_str(&format!(
                "--- {} ---\n{}{}",
                src.display(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(errors.is_empty(), "rv32 compile failed ({}):\n{errors}", CFLAGS.join(" "));

    let elf = dir.join(format!("{name}.elf"));
    let mut link = Command::new(&tc.gcc);
    link.args([
        "-march=rv32imc",
        "-mabi=ilp32",
        "-nostdlib",
        "-nostartfiles",
        "-static",
        "-Wl,--gc-sections",
    ]);
    link.arg("-T").arg(rv32_dir().join("rv32.ld"));
    link.arg(rv32_dir().join("crt0.S")).args(&objects).arg("-lgcc").arg("-o").arg(&elf);
    run(&mut link);

    let mut frames = Vec::new();
    for obj in &objects {
        let su = obj.with_extension("su");
        let text = std::fs::read_to_string(&su).unwrap_or_else(|e| panic!("{}: {e}", su.display()));
        for line in text.lines() {
            let mut parts = line.split('\t');
            let (Some(at), Some(bytes), Some(kind)) = (parts.next(), parts.next(), parts.next()) else {
                panic!("{}: unexpected line {line:?}", su.display());
            };
            let bytes: u64 =
                bytes.parse().unwrap_or_else(|_| panic!("{}: bad size in {line:?}", su.display()));
            // "dir/file.c:line:col:function" -> "file.c:line:col:function"
            let at = at.rsplit('/').next().unwrap_or(at);
            frames.push((bytes, kind.to_string(), at.to_string()));
        }
    }
    // Only functions the linker kept (--gc-sections drops unused kernels).
    let (_, functions) = elf_info(&elf);
    frames.retain(|f| f.2.rsplit(':').next().is_some_and(|name| functions.contains(name)));
    frames.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.2.cmp(&b.2)));
    assert!(!frames.is_empty(), "{}: no stack usage for any linked function", elf.display());
    Build { elf, frames }
}

/// Section sizes of a 32-bit little-endian ELF, by name, and the names of
/// the functions it contains (from its symbol table).
fn elf_info(elf: &Path) -> (BTreeMap<String, u64>, BTreeSet<String>) {
    let b = std::fs::read(elf).unwrap_or_else(|e| panic!("{}: {e}", elf.display()));
    assert!(
        b.len() > 52 && &b[..4] == b"\x7fELF" && b[4] == 1 && b[5] == 1,
        "{}: not ELF32 LE",
        elf.display()
    );
    let u16_at = |o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as usize;
    let c_str = |at: usize| {
        let end = b[at..].iter().position(|&c| c == 0).expect("string ends");
        String::from_utf8_lossy(&b[at..at + end]).into_owned()
    };
    let (shoff, shentsize, shnum, shstrndx) = (u32_at(0x20), u16_at(0x2e), u16_at(0x30), u16_at(0x32));
    let header = |i: usize| shoff + i * shentsize;
    let shstrtab = u32_at(header(shstrndx) + 16);
    let mut sizes = BTreeMap::new();
    let mut functions = BTreeSet::new();
    for i in 1..shnum {
        let h = header(i);
        *sizes.entry(c_str(shstrtab + u32_at(h))).or_insert(0) += u32_at(h + 20) as u64;
        if u32_at(h + 4) == 2 {
            // SHT_SYMTAB: 16-byte entries; names in the section sh_link names.
            let (off, size, strtab) = (u32_at(h + 16), u32_at(h + 20), u32_at(header(u32_at(h + 24)) + 16));
            for sym in (off..off + size).step_by(16) {
                if b[sym + 12] & 0xf == 2 {
                    functions.insert(c_str(strtab + u32_at(sym)));
                }
            }
        }
    }
    (sizes, functions)
}

/// `.text`, `.rodata`, `.data`, `.bss` (small-data sections included; the
/// start file's stack not counted in `.bss`).
struct Sizes {
    text: u64,
    rodata: u64,
    data: u64,
    bss: u64,
}

fn sizes(elf: &Path, stack: u64) -> Sizes {
    let (s, _) = elf_info(elf);
    let sum = |names: &[&str]| names.iter().map(|n| s.get(*n).copied().unwrap_or(0)).sum::<u64>();
    Sizes {
        text: sum(&[".text"]),
        rodata: sum(&[".rodata", ".srodata"]),
        data: sum(&[".data", ".sdata"]),
        bss: sum(&[".bss", ".sbss"]).saturating_sub(stack),
    }
}

/// Stack bytes crt0.S reserves (its RV32_STACK_SIZE default).
const STACK_SIZE: u64 = 65536;

/// Runs under qemu; returns stderr. Panics on a non-zero exit.
fn qemu(tc: &Toolchain, elf: &Path, args: &[&Path]) -> String {
    let out = run(Command::new(&tc.qemu).arg(elf).args(args));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The stack high-water mark a program printed ("stack high-water N bytes").
fn high_water(stderr: &str) -> Option<u64> {
    let rest = &stderr[stderr.find("stack high-water ")? + "stack high-water ".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

// ---- the toolchain itself, without the compiler under test ----

/// What tools/rv32/selftest.c computes (kept in step with it).
fn selftest_expected(input: &[i8]) -> Vec<u8> {
    fn srdhm(a: i32, b: i32) -> i32 {
        if a == b && a == i32::MIN {
            return i32::MAX;
        }
        let ab = a as i64 * b as i64;
        let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
        ((ab + nudge) / (1i64 << 31)) as i32
    }
    fn rdpot(x: i32, e: u32) -> i32 {
        let mask = ((1i64 << e) - 1) as i32;
        let rem = x & mask;
        let threshold = (mask >> 1) + i32::from(x < 0);
        (x >> e) + i32::from(rem > threshold)
    }
    let mut words = [0i32; 24];
    let mut out = Vec::new();
    for (i, &v) in input.iter().enumerate() {
        let x = v as i32 * 1000003 + i as i32 * 7919 - 500000;
        let sq = x as i64 * (x - 3) as i64;
        let q = rdpot(srdhm(x, 1518500250), (i % 8) as u32);
        let r = ((sq / 12345) % 1000000007) as i32;
        words[i % 24] = words[i % 24].wrapping_add(q);
        out.extend_from_slice(&(q + words[(i + 5) % 24] % 3).to_le_bytes());
        out.extend_from_slice(&r.to_le_bytes());
    }
    out
}

#[test]
fn toolchain_selftest_runs_bit_exact() {
    let Some(tc) = toolchain() else { return };
    let dir = scratch("selftest");
    let src = rv32_dir();
    let sources = [src.join("selftest.c"), src.join("rv32_sys.c")];
    let build = cross_build(&tc, &sources, &[src], &[], &dir, "selftest");
    // Deterministic bytes covering the int8 range (an LCG).
    let mut seed = 0x2545_f491u32;
    let input: Vec<i8> = (0..256)
        .map(|_| {
            seed = seed.wrapping_mul(1664525).wrapping_add(1013904223);
            (seed >> 24) as u8 as i8
        })
        .collect();
    let (inp, outp) = (dir.join("in.bin"), dir.join("out.bin"));
    std::fs::write(&inp, input.iter().map(|&v| v as u8).collect::<Vec<_>>()).expect("write input");
    let stderr = qemu(&tc, &build.elf, &[&inp, &outp]);
    let got = std::fs::read(&outp).expect("selftest wrote its output");
    assert!(got == selftest_expected(&input), "selftest output differs from the Rust computation");
    let s = sizes(&build.elf, STACK_SIZE);
    eprintln!(
        "rv32 selftest: .text {} B, .rodata {} B, deepest frame {} B ({}), stack high-water {} B",
        s.text,
        s.rodata,
        build.frames[0].0,
        build.frames[0].2,
        high_water(&stderr).map_or("?".to_string(), |h| h.to_string())
    );
}

// ---- generated C for MLPerf Tiny models ----

#[derive(Deserialize)]
struct Manifest {
    models: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    id: String,
    model: String,
    inputs: Vec<serde_json::Value>,
    outputs: Vec<serde_json::Value>,
    cases: usize,
}

fn manifest() -> Manifest {
    let path = match_tests::repo_root().join("tests/golden/manifest.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest.json parses")
}

/// Generated C for `model` on the host target in `out` (what
/// `matchc compile MODEL --target host -o OUT` writes); returns the C
/// identifier prefix of the model.
fn compile(model: &Path, out: &Path) -> String {
    let (hw, platform_dir) = match_targets::resolve("host").expect("the host target resolves");
    let options =
        match_core::compile::CompileOptions { out_dir: out.to_path_buf(), model_name: None, platform_dir };
    let import = match_core::frontend::ImportOptions::default();
    match match_core::compile::compile_file(model, &import, &hw, &options) {
        Ok((_, compiled)) => compiled.model_name,
        Err(e) => panic!("{}: compile failed: {e:#}", model.display()),
    }
}

struct ModelReport {
    id: String,
    cases: usize,
    sizes: Sizes,
    frame: (u64, String, String),
    high_water: Option<u64>,
}

fn check_model(tc: &Toolchain, e: &Entry) -> ModelReport {
    let root = match_tests::repo_root();
    let short = e.id.rsplit('/').next().expect("id");
    let dir = scratch(short);
    let gen = dir.join("gen");
    let name = compile(&root.join(&e.model), &gen);
    // Everything the generated Makefile builds except main.c; ours instead.
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&gen)
        .expect("generated folder")
        .map(|f| f.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "c") && p.file_name().is_some_and(|n| n != "main.c"))
        .collect();
    sources.sort();
    let rv = rv32_dir();
    sources.push(rv.join("main_rv32.c"));
    sources.push(rv.join("rv32_sys.c"));
    let defines = [
        "-DMATCH_FREESTANDING".to_string(),
        format!("-DMATCH_MODEL={name}"),
        format!("-DMATCH_MODEL_UPPER={}", name.to_uppercase()),
        format!("-DMATCH_MODEL_HEADER=\"{name}.h\""),
    ];
    let build = cross_build(tc, &sources, &[gen.clone(), rv], &defines, &dir, short);

    // Every case in one run (main_rv32.c takes several sets, like main.c).
    let golden = root.join("tests/golden").join(&e.id);
    let mut args = Vec::new();
    let mut checks = Vec::new();
    for case in 0..e.cases {
        let case_dir = golden.join(format!("case_{case}"));
        args.extend((0..e.inputs.len()).map(|i| case_dir.join(format!("input_{i}.bin"))));
        for j in 0..e.outputs.len() {
            let got = dir.join(format!("out_{case}_{j}.bin"));
            args.push(got.clone());
            checks.push((case, j, got, case_dir.join(format!("output_{j}.bin"))));
        }
    }
    let args: Vec<&Path> = args.iter().map(PathBuf::as_path).collect();
    let stderr = qemu(tc, &build.elf, &args);
    for (case, j, got, want) in checks {
        let (g, w) = (std::fs::read(&got).expect("output written"), std::fs::read(&want).expect("golden"));
        if g != w {
            let first = g.iter().zip(&w).position(|(a, b)| a != b);
            panic!(
                "{} case {case} output {j}: rv32 differs from the golden ({} vs {} bytes; first difference at {first:?})",
                e.id,
                g.len(),
                w.len()
            );
        }
    }
    ModelReport {
        id: e.id.clone(),
        cases: e.cases,
        sizes: sizes(&build.elf, STACK_SIZE),
        frame: build.frames[0].clone(),
        high_water: high_water(&stderr),
    }
}

#[test]
fn mlperf_tiny_models_run_bit_exact_on_rv32() {
    let Some(tc) = toolchain() else { return };
    if match_tests::shared_models().is_none() {
        return;
    }
    let m = manifest();
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for id in MODELS {
        let e = m.models.iter().find(|e| e.id == *id).unwrap_or_else(|| panic!("{id} not in the manifest"));
        // One model's failure does not hide the others' results.
        let r = match std::panic::catch_unwind(|| check_model(&tc, e)) {
            Ok(r) => r,
            Err(p) => {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{id}: {msg}"));
                continue;
            }
        };
        eprintln!(
            "rv32 {}: {} cases bit-exact; .text {} B, .rodata {} B, .data {} B, .bss {} B; \
             deepest stack frame {} B ({}, {}); stack high-water {} B",
            r.id,
            r.cases,
            r.sizes.text,
            r.sizes.rodata,
            r.sizes.data,
            r.sizes.bss,
            r.frame.0,
            r.frame.2,
            r.frame.1,
            r.high_water.map_or("?".to_string(), |h| h.to_string())
        );
        reports.push(r);
    }
    let summary: Vec<String> = reports
        .iter()
        .map(|r| {
            format!(
                "{} .text {} .rodata {} frame {} stack {}",
                r.id.rsplit('/').next().unwrap_or(&r.id),
                r.sizes.text,
                r.sizes.rodata,
                r.frame.0,
                r.high_water.map_or("?".to_string(), |h| h.to_string())
            )
        })
        .collect();
    eprintln!("rv32 summary: {}", summary.join("; "));
    assert!(
        failures.is_empty(),
        "{} of {} models failed on rv32:\n{}",
        failures.len(),
        MODELS.len(),
        failures.join("\n")
    );
}
