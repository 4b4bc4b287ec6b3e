//! The device adapters (targets/gap9/device/, targets/diana/device/): the
//! generated C of a model, with the adapter's sources in place of the host
//! emulation, compiled for rv32imc (ilp32) with Debian's
//! `gcc-riscv64-unknown-elf` against our stub SDK headers
//! (tests/sdk-stubs/), `-std=c99 -Wall -Wextra -Werror`; then the objects'
//! symbols: everything the generated code and the adapter call is defined
//! by them or declared by the stub SDK (nothing of the emulation is left),
//! and the adapter defines every function the platform headers declare. A
//! host-gcc syntax pass checks the adapter's sources alone.
//!
//! GAP9's adapter also runs against test doubles (tests/device-mock/): its
//! DMA splitting on rv32 under qemu, its unit kernels in a host build,
//! bit-exact with the emulation. DIANA's is checked for types and symbols,
//! and its HWME copies run against a double of the copy engines as DORY's
//! Diana backend programs them (addresses, units, 4-bank rows); the
//! register-level meaning of its runtime's kernel arguments is not public,
//! so a double of those would only test our own reading. Both are untested
//! on silicon (their READMEs say so). Without the cross compiler the tests
//! say so and skip; with `MATCH_REQUIRE_RV32=1` (set by `.ci/run`) that is
//! a failure.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const GCC: &str = "riscv64-unknown-elf-gcc";
const NM: &str = "riscv64-unknown-elf-nm";

/// The MCU flags (tests/tests/rv32.rs), compile only: the SDK is
/// declared, not implemented, so nothing links.
const CFLAGS: &[&str] =
    &["-march=rv32imc", "-mabi=ilp32", "-ffreestanding", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror"];

/// The public API names HARDWARE.md lists for the GAP SDK and pulp-nnx
/// ("GAP9 memories, cluster, API names"); the stubs must declare each.
const GAP9_API: &[&str] = &[
    "pi_cluster_conf_init",
    "pi_open_from_conf",
    "pi_cluster_open",
    "pi_cluster_task",
    "pi_cluster_send_task_to_cl",
    "pi_cl_team_fork",
    "pi_cl_team_barrier",
    "pi_core_id",
    "pi_cl_l1_malloc",
    "pi_cl_l1_free",
    "pi_l2_malloc",
    "pi_cl_dma_cmd",
    "pi_cl_dma_cmd_2d",
    "pi_cl_dma_cmd_wait",
    "pi_cl_dma_wait",
    "PI_CL_DMA_DIR_LOC2EXT",
    "PI_CL_DMA_DIR_EXT2LOC",
    "pi_ram_read",
    "pi_ram_write",
    "pi_ram_read_2d",
    "pi_ram_write_2d",
    "pi_ram_read_async",
    "pi_ram_write_async",
    "pi_cl_ram_read",
    "pi_cl_ram_write",
    "pi_cl_ram_read_wait",
    "pi_cl_ram_write_wait",
    "ne16_nnx_init",
    "ne16_task_init",
    "ne16_task_set_op_to_conv",
    "ne16_task_set_bits",
    "ne16_task_set_norm_quant",
    "ne16_task_set_weight_offset",
    "ne16_task_set_dims",
    "ne16_task_set_addr_conv",
    "ne16_nnx_dispatch_wait",
    "ne16_nnx_dispatch",
    "ne16_nnx_resolve_wait",
];

/// What GCC may call on its own (struct copies, clearing): the SDK's libc.
const LIBC: &[&str] = &["memcpy", "memset", "memmove", "memcmp"];

/// One target's device build: its models (in-repo, tests/golden/models) and
/// the folders of its stub SDK headers.
struct Device {
    target: &'static str,
    models: &'static [&'static str],
    stub_dirs: &'static [&'static str],
}

const GAP9: Device = Device {
    target: "gap9",
    // NE16 (conv, depthwise) and the cluster (pooling); resnet8: additions.
    models: &["tests/golden/models/intdialect_kws.onnx", "tests/golden/models/resnet8_qdq.onnx"],
    stub_dirs: &["tests/sdk-stubs/gap9", "tests/sdk-stubs/gap9/pulp-nnx"],
};

const DIANA: Device = Device {
    target: "diana",
    // The digital array, and the analog core (ternary weights).
    models: &["tests/golden/models/intdialect_kws.onnx", "tests/golden/models/intdialect_ternary.onnx"],
    stub_dirs: &["tests/sdk-stubs/diana"],
};

/// Whether the cross compiler is there; panics when it is required and not.
fn cross_available() -> bool {
    let ok = |p: &str| Command::new(p).arg("--version").output().is_ok_and(|o| o.status.success());
    if ok(GCC) && ok(NM) {
        return true;
    }
    if std::env::var("MATCH_REQUIRE_RV32").is_ok_and(|v| v == "1") {
        panic!("MATCH_REQUIRE_RV32=1 but {GCC} / {NM} not found (Debian: gcc-riscv64-unknown-elf)");
    }
    eprintln!(
        "skipping the device adapter check: {GCC} not found (set MATCH_REQUIRE_RV32=1 to fail instead)"
    );
    false
}

fn root() -> PathBuf {
    match_tests::repo_root()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("device_adapter").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir
}

/// The `.c` files of a folder, sorted.
fn c_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| f.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "c"))
        .collect();
    v.sort();
    v
}

fn file_name(p: &Path) -> String {
    p.file_name().and_then(|n| n.to_str()).expect("file name").to_string()
}

/// The project `matchc compile MODEL --target T -o OUT` writes; returns the
/// model's C prefix.
fn compile_model(target: &str, model: &Path, out: &Path) -> String {
    let (hw, platform_dir) = match_targets::resolve(target).expect("a shipped target");
    let options =
        match_core::compile::CompileOptions { out_dir: out.to_path_buf(), model_name: None, platform_dir };
    let import = match_core::frontend::ImportOptions::default();
    match match_core::compile::compile_file(model, &import, &hw, &options) {
        Ok((_, compiled)) => compiled.model_name,
        Err(e) => panic!("{}: compile for {target} failed: {e:#}", model.display()),
    }
}

/// Compiles `sources` (in parallel) to objects in `obj`; panics with every
/// compiler error.
fn compile_all(compiler: &str, flags: &[String], sources: &[PathBuf], obj: &Path) -> Vec<PathBuf> {
    std::fs::create_dir_all(obj).expect("object folder");
    let mut children = Vec::new();
    let mut objects = Vec::new();
    for (i, src) in sources.iter().enumerate() {
        let o = obj.join(format!("{i:02}_{}.o", src.file_stem().and_then(|s| s.to_str()).unwrap_or("src")));
        let child = Command::new(compiler)
            .args(flags)
            .arg("-c")
            .arg(src)
            .arg("-o")
            .arg(&o)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {compiler}: {e}"));
        children.push((src.clone(), child));
        objects.push(o);
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
    assert!(errors.is_empty(), "{compiler} {} failed:\n{errors}", flags.join(" "));
    objects
}

/// (defined, undefined) global symbols of the objects.
fn symbols(objects: &[PathBuf]) -> (BTreeSet<String>, BTreeSet<String>) {
    let out = Command::new(NM).args(objects).output().unwrap_or_else(|e| panic!("cannot run {NM}: {e}"));
    assert!(out.status.success(), "{NM} failed: {}", String::from_utf8_lossy(&out.stderr));
    let (mut def, mut und) = (BTreeSet::new(), BTreeSet::new());
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["U", name] => {
                und.insert(name.to_string());
            }
            [_, kind, name] if kind.chars().all(|c| c.is_ascii_uppercase()) => {
                def.insert(name.to_string());
            }
            _ => {}
        }
    }
    (def, und)
}

/// The C identifiers of a text (names of functions, types, constants).
fn identifiers(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_'))
        .map(str::to_string)
        .collect()
}

/// C text without its comments (so that a name only mentioned in a comment
/// does not count as declared).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |e| &r[e + 2..]);
            out.push(' ');
        } else if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |e| &r[e..]);
        } else {
            let c = rest.chars().next().expect("not empty");
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// Every header under the stub folders, concatenated, comments removed.
fn stub_text(dev: &Device) -> String {
    fn walk(d: &Path, out: &mut String) {
        for e in std::fs::read_dir(d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.expect("dir entry").path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "h") {
                out.push_str(&std::fs::read_to_string(&p).expect("read a stub header"));
            }
        }
    }
    let mut s = String::new();
    walk(&root().join(dev.stub_dirs[0]), &mut s);
    strip_comments(&s)
}

/// The functions a platform header declares at top level: the name before
/// the first `(` of each declaration line (`type name(...`).
fn declared_functions(header: &str) -> Vec<String> {
    let mut v = Vec::new();
    for line in header.lines() {
        let starts_decl = line.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && !line.starts_with("typedef")
            && !line.starts_with("struct")
            && !line.starts_with("enum");
        let Some(paren) = line.find('(') else { continue };
        if !starts_decl {
            continue;
        }
        let before = &line[..paren];
        let name: String =
            before.chars().rev().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect::<String>();
        let name: String = name.chars().rev().collect();
        if !name.is_empty() {
            v.push(name);
        }
    }
    v
}

/// The device build of `model` for `dev`: generated sources minus main.c
/// and the emulation (the platform folder's top-level .c files), plus the
/// adapter's sources; cross-compiled; symbols checked. Returns the number
/// of objects.
fn check_device_build(dev: &Device, model: &str) -> usize {
    let root = root();
    let stem = Path::new(model).file_stem().and_then(|s| s.to_str()).expect("model stem");
    let dir = scratch(&format!("{}_{stem}", dev.target));
    let gen = dir.join("gen");
    let name = compile_model(dev.target, &root.join(model), &gen);

    let platform = root.join("targets").join(dev.target);
    let emulation: BTreeSet<String> = c_files(&platform).iter().map(|p| file_name(p)).collect();
    assert!(!emulation.is_empty(), "{}: no emulation sources to replace", platform.display());
    let device_dir = platform.join("device");
    let device_sources = c_files(&device_dir);
    let mut sources: Vec<PathBuf> = c_files(&gen)
        .into_iter()
        .filter(|p| {
            let n = file_name(p);
            n != "main.c" && !emulation.contains(&n)
        })
        .collect();
    let generated = sources.len();
    assert!(generated >= 3, "{}: expected the model, its weights and the kernels", gen.display());
    sources.extend(device_sources.iter().cloned());

    let mut flags: Vec<String> = CFLAGS.iter().map(|s| s.to_string()).collect();
    flags.push(format!("-I{}", device_dir.display()));
    flags.push(format!("-I{}", gen.display()));
    for s in dev.stub_dirs {
        flags.push(format!("-I{}", root.join(s).display()));
    }
    flags.push(format!("-DMATCH_MODEL={name}"));
    flags.push(format!("-DMATCH_MODEL_UPPER={}", name.to_uppercase()));
    flags.push(format!("-DMATCH_MODEL_HEADER=\"{name}.h\""));
    let objects = compile_all(GCC, &flags, &sources, &dir.join("obj"));

    // Symbols: what the generated code and the adapter call is theirs or
    // the SDK's.
    let (def, und) = symbols(&objects);
    let sdk = identifiers(&stub_text(dev));
    let missing: Vec<&String> = und
        .iter()
        .filter(|s| {
            !def.contains(*s) && !s.starts_with("__") && !sdk.contains(*s) && !LIBC.contains(&s.as_str())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} on {}: called but neither defined by the generated code and the adapter nor declared by the stub SDK: {missing:?}",
        model,
        dev.target
    );
    let emu: Vec<&String> = und.iter().chain(&def).filter(|s| s.contains("_emu_")).collect();
    assert!(emu.is_empty(), "{model} on {}: emulation symbols in the device build: {emu:?}", dev.target);
    // The generated code calls the platform; the adapter must provide it.
    let (gen_def, gen_und) = symbols(&objects[..generated]);
    let (dev_def, _) = symbols(&objects[generated..]);
    let platform_calls: Vec<&String> =
        gen_und.iter().filter(|s| !gen_def.contains(*s) && s.starts_with(dev.target)).collect();
    assert!(
        !platform_calls.is_empty(),
        "{model} on {}: the generated code calls no platform function",
        dev.target
    );
    for s in &platform_calls {
        assert!(dev_def.contains(*s), "{model} on {}: the adapter does not define {s}", dev.target);
    }
    // Every function the platform and units headers declare (but the
    // emulation's hooks) is defined by the adapter.
    for h in [format!("{}_platform.h", dev.target), format!("{}_units.h", dev.target)] {
        let text = std::fs::read_to_string(platform.join(&h)).unwrap_or_else(|e| panic!("{h}: {e}"));
        let declared = declared_functions(&text);
        assert!(!declared.is_empty(), "{h}: no declarations found");
        for f in declared.iter().filter(|f| !f.contains("_emu_")) {
            assert!(
                dev_def.contains(f),
                "{h} declares {f}; the {} device adapter does not define it",
                dev.target
            );
        }
    }
    eprintln!(
        "device build {model} on {}: {} generated + {} adapter sources, {} SDK symbols used",
        dev.target,
        generated,
        device_sources.len(),
        und.iter().filter(|s| sdk.contains(*s) && !def.contains(*s)).count()
    );
    objects.len()
}

#[test]
fn gap9_stubs_declare_the_api_names_of_hardware_md() {
    let stubs = identifiers(&stub_text(&GAP9));
    let absent: Vec<&&str> = GAP9_API.iter().filter(|n| !stubs.contains(**n)).collect();
    assert!(absent.is_empty(), "HARDWARE.md names the stub SDK does not declare: {absent:?}");
    // And the adapter uses them: the cluster, its DMA, the external RAM and NE16.
    let adapter: String = c_files(&root().join("targets/gap9/device"))
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read an adapter source"))
        .collect();
    let used = identifiers(&strip_comments(&adapter));
    for n in [
        "pi_cluster_send_task_to_cl",
        "pi_cl_team_fork",
        "pi_cl_dma_cmd_2d",
        "PI_CL_DMA_DIR_EXT2LOC",
        "PI_CL_DMA_DIR_LOC2EXT",
        "pi_cl_ram_read",
        "pi_cl_ram_write",
        "ne16_task_set_weight_offset",
        "ne16_task_set_norm_quant",
        "ne16_task_set_dims",
        "ne16_task_set_addr_conv",
        "ne16_nnx_dispatch",
        "ne16_nnx_resolve_wait",
    ] {
        assert!(used.contains(n), "the GAP9 adapter does not call {n}");
    }
    // Multi-line 2-D RAM copies deliver garbage on GAP9 silicon (Deeploy's
    // GAP9 L3 DMA, found on hardware): the adapter moves rows as 1-D copies.
    for n in ["pi_cl_ram_read_2d", "pi_cl_ram_write_2d", "pi_cl_ram_copy_2d"] {
        assert!(!used.contains(n), "the GAP9 adapter calls {n}");
    }
}

#[test]
fn gap9_device_build_cross_compiles_and_is_complete() {
    if !cross_available() {
        return;
    }
    for m in GAP9.models {
        check_device_build(&GAP9, m);
    }
}

#[test]
fn diana_device_build_cross_compiles_and_is_complete() {
    if !cross_available() {
        return;
    }
    for m in DIANA.models {
        check_device_build(&DIANA, m);
    }
}

/// The adapters' sources alone, with the host's gcc: another compiler's
/// view of the same types.
#[test]
fn adapters_pass_a_host_gcc_syntax_check() {
    let root = root();
    if !Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: no host gcc");
        return;
    }
    for dev in [&GAP9, &DIANA] {
        let platform = root.join("targets").join(dev.target);
        let core_c = root.join("match-core/src/emit/c");
        // A model header for <t>_main.c: one generated project.
        let dir = scratch(&format!("host_{}", dev.target));
        let name = compile_model(dev.target, &root.join(dev.models[0]), &dir.join("gen"));
        for src in c_files(&platform.join("device")) {
            let mut cmd = Command::new("gcc");
            cmd.args(["-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only"])
                .arg(format!("-I{}", platform.join("device").display()))
                .arg(format!("-I{}", platform.display()))
                .arg(format!("-I{}", core_c.display()))
                .arg(format!("-I{}", dir.join("gen").display()));
            for s in dev.stub_dirs {
                cmd.arg(format!("-I{}", root.join(s).display()));
            }
            cmd.arg(format!("-DMATCH_MODEL={name}"))
                .arg(format!("-DMATCH_MODEL_UPPER={}", name.to_uppercase()))
                .arg(format!("-DMATCH_MODEL_HEADER=\"{name}.h\""))
                .arg(&src);
            let out = cmd.output().expect("run gcc");
            assert!(
                out.status.success(),
                "gcc -fsyntax-only {}:\n{}",
                src.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// The symbol check can fail: a build without one adapter source leaves
/// platform functions undefined, which the check must see.
#[test]
fn an_incomplete_adapter_is_caught() {
    if !cross_available() {
        return;
    }
    let root = root();
    let dir = scratch("incomplete");
    let name = compile_model("gap9", &root.join(GAP9.models[0]), &dir.join("gen"));
    let device_dir = root.join("targets/gap9/device");
    let mut sources: Vec<PathBuf> =
        c_files(&dir.join("gen")).into_iter().filter(|p| file_name(p) == format!("{name}.c")).collect();
    sources.extend(c_files(&device_dir).into_iter().filter(|p| file_name(p) != "gap9_device_units.c"));
    let mut flags: Vec<String> = CFLAGS.iter().map(|s| s.to_string()).collect();
    flags.push(format!("-I{}", device_dir.display()));
    flags.push(format!("-I{}", dir.join("gen").display()));
    for s in GAP9.stub_dirs {
        flags.push(format!("-I{}", root.join(s).display()));
    }
    flags.extend([
        format!("-DMATCH_MODEL={name}"),
        format!("-DMATCH_MODEL_UPPER={}", name.to_uppercase()),
        format!("-DMATCH_MODEL_HEADER=\"{name}.h\""),
    ]);
    let objects = compile_all(GCC, &flags, &sources, &dir.join("obj"));
    let (def, und) = symbols(&objects);
    let sdk = identifiers(&stub_text(&GAP9));
    let missing: BTreeSet<&String> =
        und.iter().filter(|s| !def.contains(*s) && !s.starts_with("__") && !sdk.contains(*s)).collect();
    assert!(
        missing.iter().any(|s| s.starts_with("ne16_conv") || s.starts_with("cluster_")),
        "without gap9_device_units.c the unit kernels should be missing, got {missing:?}"
    );
}

/// The GAP9 adapter's unit kernels run on the host: the generated project
/// built with the cluster and NE16 kernels of targets/gap9/device/ in place
/// of the emulation's (arenas, DMA and checks stay the emulation's), PMSIS's
/// fork and pulp-nnx's NE16 calls replaced by test doubles
/// (tests/device-mock/: the fork runs the workers in reverse order; the NE16
/// double computes at dispatch what the driver's arguments mean), with
/// AddressSanitizer and UBSan. Its outputs must equal the emulation build's,
/// bit for bit, on the golden cases (the emulation's own checks against the
/// interpreter are tests/tests/emulation.rs's). This checks the work split
/// over the 8 workers (items of pixels x output channels, pooling row
/// slices with the padding moved) and the NE16 programming (addresses,
/// byte strides, padding, weight offset, scales, biases, shift, ReLU, the
/// 2x2-strided mode) against the driver's contract.
#[test]
fn gap9_unit_kernels_run_bit_exact_under_pmsis_and_ne16_doubles() {
    let root = root();
    if !Command::new("make").arg("--version").output().is_ok_and(|o| o.status.success()) {
        eprintln!("skipping: no make");
        return;
    }
    let manifest = match_tests::golden::manifest();
    let mut checked = 0;
    // MATCH's anomaly detection model stores its weights u8: on the cluster
    // they run as i8 with a weight zero point of z - 128 (lower.rs).
    let mut ids = vec!["generated/resnet8_qdq", "generated/dscnn_qdq", "generated/intdialect_kws"];
    if match_tests::shared_models().is_some() {
        ids.push("match-onnx/anomaly_detection");
    }
    for id in ids {
        let e = manifest.models.iter().find(|e| e.id == id).unwrap_or_else(|| panic!("{id} in the manifest"));
        let dir = scratch(&format!("mock_{}", id.replace('/', "__")));
        let (hw, platform_dir) = match_targets::resolve("gap9").expect("gap9 resolves");
        let gen = dir.join("gen");
        let options =
            match_core::compile::CompileOptions { out_dir: gen.clone(), model_name: None, platform_dir };
        let import = match_core::frontend::ImportOptions {
            fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)),
        };
        let (graph, compiled) =
            match_core::compile::compile_file(&root.join(&e.model), &import, &hw, &options)
                .unwrap_or_else(|err| panic!("{id}: compile failed: {err:#}"));
        let name = compiled.model_name;
        let model_c = std::fs::read_to_string(gen.join(format!("{name}.c"))).expect("the model's C");
        assert!(model_c.contains("cluster_") || model_c.contains("ne16_"), "{id}: no unit kernel to check");
        // The device's unit kernels (cluster and NE16) with the doubles,
        // everything else (arenas, DMA, checks) from the emulation.
        let device_vars = match_tests::e2e::gap9_device_double_vars(&gen, &name);
        let cases = e.all_case_inputs();
        let mut outs = Vec::new();
        for (label, vars) in [("emulation", vec![]), ("device", device_vars.clone())] {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            // A clean build per variant (different sources and flags).
            let _ = std::fs::remove_dir_all(gen.join("build"));
            let built = match_core::compile::build(&gen, &name, &vars)
                .unwrap_or_else(|err| panic!("{id} [{label}]: build failed: {err:#}"));
            let bin = dir.join(format!("{name}_{label}"));
            std::fs::copy(&built, &bin).expect("copy the binary");
            let got = match_core::compile::run_binary(&bin, &graph, &cases, &dir.join(label))
                .unwrap_or_else(|err| panic!("{id} [{label}]: run failed: {err:#}"));
            outs.push(got);
        }
        for (c, (dev, emu)) in outs[1].iter().zip(&outs[0]).enumerate() {
            for (j, (got, want)) in dev.iter().zip(emu).enumerate() {
                if let Some(d) = match_tests::golden::diff(got, want) {
                    panic!("{id} case {c} output {j}: device unit kernels vs the emulation's: {d}");
                }
            }
            assert_eq!(dev.len(), e.outputs.len(), "{id} case {c}: outputs");
        }
        checked += cases.len();
    }
    eprintln!("device unit kernels: {checked} cases bit-exact with the emulation");
}

/// The GAP9 adapter's DMA splitting, run: tests/device-mock/gap9_dma_check.c
/// drives gap9_dma_start / gap9_l3_dma_start with random strided transfers
/// against a double of the cluster DMA and external RAM calls that checks what
/// PMSIS requires of each command and copies at the wait; built for rv32
/// (32-bit addresses, as the PMSIS calls take them) with tools/rv32 and run
/// under qemu-riscv32.
#[test]
fn gap9_dma_commands_run_under_a_pmsis_double() {
    let root = root();
    let mock = root.join("tests/device-mock");
    let include = mock.join("gap9_dma_windows.h").display().to_string();
    run_rv32_check(
        "dma_check",
        &["-include", &include],
        &[
            root.join("targets/gap9"),
            root.join("targets/gap9/device"),
            root.join("match-core/src/emit/c"),
            root.join("tests/sdk-stubs/gap9"),
            root.join("tests/sdk-stubs/gap9/pulp-nnx"),
        ],
        &[root.join("targets/gap9/device/gap9_device.c"), mock.join("gap9_dma_check.c")],
        "commands checked",
    );
}

/// The DIANA adapter's HWME copies, run: tests/device-mock/diana_hwme_check.c
/// moves random buffers (beyond the adapter's 32 KiB chunks) through
/// diana_device_copy into a double of the digital and analog copy engines
/// (DORY's Diana backend's reading of their registers: 16-byte words, and
/// 64-byte rows of the 4-bank analog engine) and checks where the data lands
/// and that it comes back; rv32 under qemu-riscv32, as the GAP9 DMA check.
#[test]
fn diana_hwme_copies_run_under_a_double() {
    let root = root();
    run_rv32_check(
        "hwme_check",
        &[],
        &[
            root.join("targets/diana"),
            root.join("targets/diana/device"),
            root.join("match-core/src/emit/c"),
            root.join("tests/sdk-stubs/diana"),
        ],
        &[
            root.join("targets/diana/device/diana_device.c"),
            root.join("tests/device-mock/diana_hwme_check.c"),
        ],
        "HWME jobs checked",
    );
}

/// Builds `sources` (with tools/rv32's start-up and system calls) for rv32
/// against the include folders, runs the program under qemu-riscv32 and
/// checks it succeeds and prints `expect`. Skips without the cross tools.
fn run_rv32_check(name: &str, extra_flags: &[&str], includes: &[PathBuf], sources: &[PathBuf], expect: &str) {
    if !cross_available() {
        return;
    }
    let qemu = ["qemu-riscv32", "qemu-riscv32-static"]
        .into_iter()
        .find(|q| Command::new(q).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(qemu) = qemu else {
        if std::env::var("MATCH_REQUIRE_RV32").is_ok_and(|v| v == "1") {
            panic!("MATCH_REQUIRE_RV32=1 but qemu-riscv32 not found (Debian: qemu-user)");
        }
        eprintln!("skipping {name}: qemu-riscv32 not found");
        return;
    };
    let rv32 = root().join("tools/rv32");
    let dir = scratch(name);
    let mut flags: Vec<String> = CFLAGS.iter().map(|s| s.to_string()).collect();
    flags.extend(["-nostdlib".to_string(), "-ffunction-sections".to_string(), "-fdata-sections".to_string()]);
    flags.extend(extra_flags.iter().map(|s| s.to_string()));
    for d in includes.iter().chain([&rv32]) {
        flags.push(format!("-I{}", d.display()));
    }
    let mut all: Vec<PathBuf> = sources.to_vec();
    all.push(rv32.join("rv32_sys.c"));
    let objects = compile_all(GCC, &flags, &all, &dir.join("obj"));
    let elf = dir.join(format!("{name}.elf"));
    let link = Command::new(GCC)
        .args(["-march=rv32imc", "-mabi=ilp32", "-nostdlib", "-nostartfiles", "-static", "-Wl,--gc-sections"])
        .arg("-T")
        .arg(rv32.join("rv32.ld"))
        .arg(rv32.join("crt0.S"))
        .args(&objects)
        .arg("-lgcc")
        .arg("-o")
        .arg(&elf)
        .output()
        .expect("run the linker");
    assert!(link.status.success(), "link failed:\n{}", String::from_utf8_lossy(&link.stderr));
    let run = Command::new(qemu).arg(&elf).output().expect("run qemu");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{name} failed ({}):\n{stderr}", run.status);
    assert!(stderr.contains(expect), "unexpected output:\n{stderr}");
    eprintln!("{}", stderr.trim());
}
