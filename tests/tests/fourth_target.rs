//! The fourth target, PULP Siracusa (an 8-core cluster and the N-EUREKA
//! neural engine), added as data only: `targets/siracusa.hwm` and its
//! platform folder `targets/siracusa/`, written by following
//! docs/new-target.md, with no change to the compiler.
//!
//! The proof is in three parts:
//! - the compiler's sources (match-core, match-dsl, matchc, and the Rust of
//!   the targets crate) never name the target: it lives only in its files;
//! - the weight layouts its `.hwm` states as steps encode, through the
//!   compiler's generic layout encoder, exactly the bytes of pulp-nnx's
//!   Neureka weight encoder (restated here independently, step by step);
//! - a copy of the target in a temporary folder, given to the compiler by
//!   path as `--target` would, compiles golden models whose emitted C runs
//!   in the target's host emulation bit-exact with the reference
//!   interpreter on the graph lowered for it, with Neureka taking layers.

use match_core::compile::{self, CompileOptions};
use match_core::frontend::ImportOptions;
use match_core::layout::{self, Weights};
use match_core::HwModel;
use match_dsl::model::LayoutStep;
use match_tests::golden::{diff, manifest, Entry};
use std::path::{Path, PathBuf};

/// The name that must appear only in the target's own files.
const NAME: &str = "siracusa";

fn repo() -> PathBuf {
    match_tests::repo_root()
}

/// Copies `targets/siracusa.hwm` and `targets/siracusa/` into a fresh
/// folder under the test's temporary directory; returns the copied `.hwm`.
fn copy_target(tag: &str) -> PathBuf {
    let dst = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fourth_target").join(tag);
    let _ = std::fs::remove_dir_all(&dst);
    std::fs::create_dir_all(&dst).expect("create the copy's folder");
    let src = repo().join("targets");
    std::fs::copy(src.join(format!("{NAME}.hwm")), dst.join(format!("{NAME}.hwm"))).expect("copy the .hwm");
    copy_dir(&src.join(NAME), &dst.join(NAME));
    dst.join(format!("{NAME}.hwm"))
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create a folder of the copy");
    for e in std::fs::read_dir(from).expect("read the platform folder") {
        let p = e.expect("a folder entry").path();
        let q = to.join(p.file_name().expect("a file name"));
        if p.is_dir() {
            copy_dir(&p, &q);
        } else {
            std::fs::copy(&p, &q).expect("copy a platform file");
        }
    }
}

/// The copied target, resolved by path exactly as `--target PATH` is.
fn resolve_copy(tag: &str) -> (HwModel, Option<PathBuf>) {
    let hwm = copy_target(tag);
    let spec = hwm.to_str().expect("a UTF-8 temporary path");
    assert!(match_targets::is_path(spec), "{spec} reads as a path");
    match_targets::resolve(spec).unwrap_or_else(|e| panic!("{spec}: {e}"))
}

// ------------------------------------------------ the compiler never names it

/// Every file under `dir` (but build output), recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn the_compiler_never_names_the_fourth_target() {
    let root = repo();
    let mut files = Vec::new();
    for d in ["match-core", "match-dsl", "matchc", "targets/src"] {
        files_under(&root.join(d), &mut files);
    }
    files.push(root.join("targets/build.rs"));
    files.push(root.join("targets/Cargo.toml"));
    files.push(root.join("Cargo.toml"));
    let mut scanned = 0;
    let mut hits = Vec::new();
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else { continue };
        scanned += 1;
        if String::from_utf8_lossy(&bytes).to_lowercase().contains(NAME) {
            hits.push(f.strip_prefix(&root).unwrap_or(f).display().to_string());
        }
    }
    assert!(scanned > 50, "only {scanned} compiler files scanned");
    assert!(hits.is_empty(), "the compiler names `{NAME}` in: {}", hits.join(", "));
    // And the target is all there: its file and its platform folder.
    assert!(root.join(format!("targets/{NAME}.hwm")).is_file());
    for f in
        ["siracusa_platform.h", "siracusa_platform.c", "siracusa_units.h", "siracusa_units.c", "README.md"]
    {
        assert!(root.join("targets").join(NAME).join(f).is_file(), "targets/{NAME}/{f} missing");
    }
}

// ----------------------------------------------- Neureka's layouts, as data

/// A row-major array with a shape: just enough of numpy to restate
/// pulp-nnx's encoder (test/Neureka.py `weight_unroll`) one call at a time.
#[derive(Clone, Debug)]
struct Nd {
    shape: Vec<usize>,
    data: Vec<i64>,
}

impl Nd {
    fn strides(shape: &[usize]) -> Vec<usize> {
        let mut s = vec![1; shape.len()];
        for i in (0..shape.len().saturating_sub(1)).rev() {
            s[i] = s[i + 1] * shape[i + 1];
        }
        s
    }

    fn reshape(mut self, shape: &[usize]) -> Nd {
        assert_eq!(shape.iter().product::<usize>(), self.data.len(), "reshape {:?} to {shape:?}", self.shape);
        self.shape = shape.to_vec();
        self
    }

    /// numpy's `transpose(perm)`: output axis i is input axis perm[i].
    fn transpose(&self, perm: &[usize]) -> Nd {
        let shape: Vec<usize> = perm.iter().map(|&p| self.shape[p]).collect();
        let (si, so) = (Nd::strides(&self.shape), Nd::strides(&shape));
        let mut data = vec![0; self.data.len()];
        for (o, v) in data.iter_mut().enumerate() {
            let mut src = 0;
            for (i, &p) in perm.iter().enumerate() {
                src += (o / so[i]) % shape[i] * si[p];
            }
            *v = self.data[src];
        }
        Nd { shape, data }
    }

    /// numpy's `pad` with zeros after the data on axis `axis`, to `to`.
    fn pad_axis(&self, axis: usize, to: usize) -> Nd {
        let mut shape = self.shape.clone();
        shape[axis] = to;
        let (si, so) = (Nd::strides(&self.shape), Nd::strides(&shape));
        let mut data = vec![0; shape.iter().product()];
        for (i, &v) in self.data.iter().enumerate() {
            let mut dst = 0;
            for a in 0..shape.len() {
                dst += (i / si[a]) % self.shape[a] * so[a];
            }
            data[dst] = v;
        }
        Nd { shape, data }
    }

    /// numpy's `unpackbits(axis=-1, count=bits, bitorder="little")` on a
    /// last axis of size 1.
    fn unpack_bits(&self, bits: usize) -> Nd {
        assert_eq!(self.shape.last(), Some(&1));
        let mut shape = self.shape.clone();
        *shape.last_mut().unwrap() = bits;
        let data = self.data.iter().flat_map(|&v| (0..bits).map(move |b| (v >> b) & 1)).collect();
        Nd { shape, data }
    }

    /// numpy's `packbits(axis=-1, bitorder="little")` over rows of 8.
    fn pack_bits(&self) -> Vec<u8> {
        self.data
            .chunks(8)
            .map(|c| c.iter().enumerate().fold(0u8, |b, (j, &v)| b | ((v as u8 & 1) << j)))
            .collect()
    }
}

/// pulp-nnx's Neureka encoder: `w` as (cout, cin, h, w) int8, made unsigned
/// as the test generator does (w + 128), depthwise swapped first.
fn pulp_nnx_encode(w: &Nd, depthwise: bool) -> Vec<u8> {
    const BANDWIDTH: usize = 256;
    let mut w = if depthwise { w.transpose(&[1, 0, 2, 3]) } else { w.clone() };
    for v in &mut w.data {
        *v = (*v + 128) & 0xff;
    }
    let (cout, cin, h, wd) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3]);
    let sub = if h == 3 { 28 } else { 32 };
    let maj = cin.div_ceil(sub);
    let w = w.pad_axis(1, maj * sub);
    let w = w.reshape(&[cout, maj, sub, h * wd, 1]).unpack_bits(8);
    let w = w.transpose(&[0, 1, 4, 3, 2]); // (cout, maj, bits, hw, sub)
    let w = if h == 3 {
        let rows = cout * maj * 8;
        w.reshape(&[rows, h * wd * sub]).pad_axis(1, BANDWIDTH)
    } else {
        w.reshape(&[cout, maj, 8, h * wd, sub / 4, 4])
            .transpose(&[0, 1, 3, 4, 2, 5])
            .reshape(&[cout * maj, BANDWIDTH])
    };
    w.pack_bits()
}

/// A deterministic pseudo-random int8 sequence.
fn int8s(n: usize, seed: u64) -> Vec<i64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 256) as i64 - 128
        })
        .collect()
}

fn rule_layout<'a>(hw: &'a HwModel, kernel: &str) -> &'a [LayoutStep] {
    let o = hw
        .offloads
        .iter()
        .find(|o| o.unit == "neureka" && o.kernel == kernel)
        .unwrap_or_else(|| panic!("no offload rule calls {kernel}"));
    hw.offload_weight_layout(o)
}

#[test]
fn neureka_layouts_stated_as_steps_are_pulp_nnx_layouts() {
    let hw = match_dsl::load(&repo().join(format!("targets/{NAME}.hwm"))).expect("the target checks");
    let mut checked = 0;
    for (kernel, f, depthwise) in
        [("neureka_conv", 3, false), ("neureka_pointwise", 1, false), ("neureka_depthwise", 3, true)]
    {
        let steps = rule_layout(&hw, kernel);
        let shapes: &[(usize, usize)] = if depthwise {
            &[(1, 1), (5, 1), (28, 1), (29, 1), (64, 1), (100, 1)]
        } else {
            &[(1, 1), (3, 5), (32, 28), (33, 29), (16, 32), (8, 33), (40, 64), (7, 100)]
        };
        for (i, &(k, c)) in shapes.iter().enumerate() {
            let data = int8s(k * c * f * f, (i as u64) * 31 + f as u64);
            let nd = Nd { shape: vec![k, c, f, f], data: data.clone() };
            let want = pulp_nnx_encode(&nd, depthwise);
            let got = layout::encode(steps, &Weights { k, c, fy: f, fx: f, bits: 8, data }, None)
                .unwrap_or_else(|e| panic!("{kernel} ({k}, {c}): {e}"));
            assert_eq!(got.len(), want.len(), "{kernel} ({k}, {c}, {f}, {f}): size");
            assert!(
                got == want,
                "{kernel} ({k}, {c}, {f}, {f}): the .hwm's steps differ from pulp-nnx's encoder"
            );
            let size = layout::encoded_size(steps, k, c, f, f, 8).expect("sized");
            assert_eq!(size, want.len(), "{kernel} ({k}, {c}): encoded_size");
            // pulp-nnx's sizes: 3x3 k * ceil(c/28) * 8 bits * 32 B; depthwise
            // ceil(c/28) * 8 * 32 B; 1x1 k * ceil(c/32) * 32 B.
            let formula = match (f, depthwise) {
                (3, true) => k.div_ceil(28) * 8 * 32,
                (3, false) => k * c.div_ceil(28) * 8 * 32,
                _ => k * c.div_ceil(32) * 32,
            };
            assert_eq!(size, formula, "{kernel} ({k}, {c})");
            checked += 1;
        }
    }
    assert_eq!(checked, 22);
}

#[test]
fn neureka_layout_differs_from_ne16() {
    // The point of the exercise: a layout unlike the shipped accelerators'.
    let sir = match_dsl::load(&repo().join(format!("targets/{NAME}.hwm"))).expect("the target checks");
    let gap9 = match_targets::get("gap9").expect("shipped").expect("checks");
    let ne16 = gap9.unit("ne16").expect("gap9 has ne16");
    let data = int8s(32 * 32 * 9, 7);
    let w = Weights { k: 32, c: 32, fy: 3, fx: 3, bits: 8, data };
    let a = layout::encode(&ne16.weight_layout, &w, None).expect("NE16 encodes");
    let b = layout::encode(rule_layout(&sir, "neureka_conv"), &w, None).expect("Neureka encodes");
    assert_ne!(a.len(), b.len(), "NE16 packs 16-channel blocks, Neureka 28-channel blocks in 256-bit words");
}

// ---------------------------------------------- end to end, from the copy

/// Golden models run on the copied target: in-repo ones always, the
/// shared MLPerf Tiny ones when ../shared/models is there.
const MODELS: &[&str] = &[
    "generated/intdialect_kws",
    "examples/example_int8",
    "mlperf-tiny/kws_ref_model",
    "mlperf-tiny/pretrainedResnet_quant",
    "match-onnx/keyword_spotting",
];

struct Outcome {
    id: String,
    cases: usize,
    /// Layers mapped to each unit, and Neureka kernel calls counted by the
    /// emulation.
    neureka_layers: usize,
    cluster_layers: usize,
    neureka_calls: u64,
}

fn run_entry(
    e: &Entry,
    hw: &HwModel,
    platform: &Option<PathBuf>,
    label: &str,
    vars: &[(&str, &str)],
) -> Outcome {
    let root = repo();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("fourth_target")
        .join(label)
        .join(e.id.replace('/', "__"));
    let _ = std::fs::remove_dir_all(&dir);
    let import = ImportOptions { fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)) };
    let options =
        CompileOptions { out_dir: dir.join("project"), model_name: None, platform_dir: platform.clone() };
    let (_, compiled) = compile::compile_file(&root.join(&e.model), &import, hw, &options)
        .unwrap_or_else(|err| panic!("{}: compile failed: {err:#}", e.id));
    let on = |u: &str| compiled.mapping.layers.iter().filter(|l| l.unit == u).count();
    let bin = compile::build(&options.out_dir, &compiled.model_name, vars)
        .unwrap_or_else(|err| panic!("{} [{label}]: {err:#}", e.id));
    let cases = e.all_case_inputs();
    let (got, table) = compile::run_binary_counters(&bin, &compiled.graph, &cases, &dir.join("io"))
        .unwrap_or_else(|err| panic!("{} [{label}]: {err:#}", e.id));
    // The platform's counters: DMA commands, bytes and tile calls as the
    // cost model predicts them, and every Neureka layer computed by the
    // Neureka kernel (tiled, not a fallback).
    assert_eq!(table.target, NAME);
    assert_eq!(table.runs, cases.len() as u64);
    let bad = compile::counters_mismatches(&compiled.report.counters, &table);
    assert!(bad.is_empty(), "{} [{label}]: counters differ from the cost model:\n{}", e.id, bad.join("\n"));
    let mut neureka_calls = 0;
    for (row, layer) in table.layers.iter().zip(&compiled.mapping.layers) {
        assert_eq!(row.name, layer.name, "{}: counter rows follow the mapping", e.id);
        if layer.unit == "neureka" {
            assert!(row.kernels > 0, "{} layer {}: on neureka but no Neureka kernel call", e.id, layer.name);
            neureka_calls += row.kernels;
        }
    }
    for (c, (inputs, outs)) in cases.iter().zip(&got).enumerate() {
        let want = match_core::interp::run(&compiled.graph, inputs)
            .unwrap_or_else(|err| panic!("{} case {c}: interpreter failed: {err:#}", e.id));
        for (j, (g, w)) in outs.iter().zip(&want).enumerate() {
            if let Some(d) = diff(g, w) {
                panic!("{} [{label}] case {c} output {j}: the emulation differs from the interpreter on the lowered graph: {d}", e.id);
            }
        }
    }
    Outcome {
        id: e.id.clone(),
        cases: cases.len(),
        neureka_layers: on("neureka"),
        cluster_layers: on("cluster"),
        neureka_calls,
    }
}

fn have_gcc() -> bool {
    std::process::Command::new("gcc").arg("--version").output().is_ok_and(|o| o.status.success())
}

#[test]
fn a_copied_siracusa_runs_golden_models_bit_exact_with_neureka() {
    if !have_gcc() {
        eprintln!("skipping: no gcc");
        return;
    }
    let (hw, platform) = resolve_copy("e2e");
    assert_eq!(hw.name, NAME);
    assert!(
        platform.as_ref().is_some_and(|p| p.join("siracusa_platform.h").is_file()),
        "platform beside the copy"
    );
    let m = manifest();
    let shared = match_tests::shared_models().is_some();
    let entries: Vec<&Entry> = m
        .models
        .iter()
        .filter(|e| MODELS.contains(&e.id.as_str()))
        .filter(|e| shared || !e.model.starts_with("../shared/"))
        .collect();
    assert!(entries.len() >= 2, "the selected models are missing from the manifest");
    let mut outcomes = Vec::new();
    for e in &entries {
        let o = run_entry(e, &hw, &platform, "gcc", &[("CC", "gcc")]);
        eprintln!(
            "{}: {} cases bit-exact; {} layers on neureka ({} kernel calls), {} on the cluster",
            o.id, o.cases, o.neureka_layers, o.neureka_calls, o.cluster_layers
        );
        outcomes.push(o);
    }
    let neureka: usize = outcomes.iter().map(|o| o.neureka_layers).sum();
    assert!(neureka > 0, "Neureka took no layer of {} models", outcomes.len());
    assert!(outcomes.iter().map(|o| o.neureka_calls).sum::<u64>() > 0, "no Neureka kernel ran");
    assert!(outcomes.iter().any(|o| o.cluster_layers > 0), "the cluster took no layer");
}

const ASAN_FLAGS: &str = "-std=c99 -O1 -g -Wall -Wextra -Werror -fno-omit-frame-pointer \
                          -fsanitize=address,undefined -fno-sanitize-recover=all";

#[test]
fn a_copied_siracusa_is_clean_under_sanitizers() {
    if !have_gcc() {
        eprintln!("skipping: no gcc");
        return;
    }
    let (hw, platform) = resolve_copy("asan");
    let m = manifest();
    let e = m.models.iter().find(|e| e.id == "generated/intdialect_kws").expect("an in-repo model");
    let o = run_entry(e, &hw, &platform, "asan", &[("CC", "gcc"), ("CFLAGS", ASAN_FLAGS)]);
    eprintln!(
        "{}: {} cases bit-exact under ASan + UBSan ({} layers on neureka, {} kernel calls)",
        o.id, o.cases, o.neureka_layers, o.neureka_calls
    );
    assert!(o.neureka_calls > 0, "{}: Neureka ran no kernel under the sanitizers", o.id);
}

// ------------------------------------------ the emulation stops broken code

/// Compiles the in-repo integer-dialect DS-CNN for a copy of the target,
/// lets `patch` break the emitted model C, builds and runs it: returns the
/// failure message, or panics if it ran.
fn run_broken(tag: &str, patch: &dyn Fn(&str) -> String) -> String {
    let (hw, platform) = resolve_copy(tag);
    let root = repo();
    let m = manifest();
    let e = m.models.iter().find(|e| e.id == "generated/intdialect_kws").expect("an in-repo model");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fourth_target").join(tag).join("run");
    let _ = std::fs::remove_dir_all(&dir);
    let options = CompileOptions { out_dir: dir.join("project"), model_name: None, platform_dir: platform };
    let import = ImportOptions { fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)) };
    let (_, compiled) =
        compile::compile_file(&root.join(&e.model), &import, &hw, &options).expect("compiles");
    let c = options.out_dir.join(format!("{}.c", compiled.model_name));
    let text = std::fs::read_to_string(&c).expect("the model's C");
    let broken = patch(&text);
    assert_ne!(broken, text, "the patch changed nothing");
    std::fs::write(&c, broken).expect("write the broken C");
    let bin = compile::build(&options.out_dir, &compiled.model_name, &[("CC", "gcc")]).expect("builds");
    match compile::run_binary(&bin, &compiled.graph, &[e.case_inputs(0)], &dir.join("io")) {
        Ok(_) => panic!("{tag}: the broken code ran to the end"),
        Err(err) => format!("{err:#}"),
    }
}

#[test]
fn a_missing_wait_aborts() {
    if !have_gcc() {
        return;
    }
    let msg = run_broken("missing_wait", &|c| c.replace("siracusa_dma_wait(MT_CH_IN);", "(void)0;"));
    assert!(msg.contains("not yet waited for"), "{msg}");
}

#[test]
fn overlapping_tile_buffers_abort() {
    if !have_gcc() {
        return;
    }
    // The second tile buffer of the first tiled layer moved onto the first.
    let msg = run_broken("overlap", &|c| {
        let lines: Vec<&str> = c.lines().collect();
        let first =
            lines.iter().position(|l| l.trim_start().starts_with("siracusa_buffer(")).expect("a tile buffer");
        let base = lines[first].trim_start().trim_start_matches("siracusa_buffer(");
        let base = &base[..base.find(',').expect("buffer arguments")];
        let next = lines[first + 1].trim_start();
        assert!(next.starts_with("siracusa_buffer("), "{next}");
        let bytes = &next[next.find(',').expect("buffer arguments")..];
        let moved = format!("    siracusa_buffer({base}{bytes}");
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        out[first + 1] = moved;
        out.join("\n") + "\n"
    });
    assert!(msg.contains("tile buffers overlap"), "{msg}");
}

// ------------------------------------------- Neureka's kernels, one by one

/// One hand-made Neureka job: a convolution tile with every part of the
/// chain the driver folds (input and output zero points, BiasAdd, a clip
/// narrower than the output type, unsigned weights as w - 128 with weight
/// zero point -128), in both input signednesses.
struct KCase {
    kernel: &'static str,
    f: usize,
    dw: bool,
    h: usize,
    w: usize,
    c: usize,
    k: usize,
    pad: [usize; 4], // top, bottom, left, right
    x_signed: bool,
    y_signed: bool,
    x_zp: i64,
    out_zp: i64,
    w_zp: i64,
    shift: u32,
    bias: bool,
    clip: Option<(i64, i64)>,
}

fn c_array(ty: &str, name: &str, v: &[i64]) -> String {
    let body: Vec<String> = v.iter().map(i64::to_string).collect();
    format!(
        "static const {ty} {name}[{}] = {{{}}};\n",
        v.len().max(1),
        if v.is_empty() { "0".into() } else { body.join(", ") }
    )
}

/// The C of one case: its data, the job run through the kernel in the
/// emulated L1, and the same layer through the portable reference kernels
/// (conv2d, bias, scale-shift requantization, clip); mismatches counted.
fn kernel_case_c(i: usize, t: &KCase, steps: &[LayoutStep]) -> String {
    let (oh, ow) = (t.h + t.pad[0] + t.pad[1] + 1 - t.f, t.w + t.pad[2] + t.pad[3] + 1 - t.f);
    let cw = if t.dw { 1 } else { t.c };
    let seed = 1000 + i as u64;
    let x: Vec<i64> =
        int8s(t.h * t.w * t.c, seed).into_iter().map(|v| if t.x_signed { v } else { v + 128 }).collect();
    let w = int8s(t.k * cw * t.f * t.f, seed + 1); // (K, C, FY, FX)
    let enc =
        layout::encode(steps, &Weights { k: t.k, c: cw, fy: t.f, fx: t.f, bits: 8, data: w.clone() }, None)
            .expect("encodes");
    let mut ohwi = vec![0; w.len()];
    for o in 0..t.k {
        for ci in 0..cw {
            for p in 0..t.f * t.f {
                ohwi[(o * t.f * t.f + p) * cw + ci] = w[(o * cw + ci) * t.f * t.f + p];
            }
        }
    }
    let scale: Vec<i64> = int8s(t.k, seed + 2).iter().map(|v| (v + 128) % 16).collect();
    let rqb: Vec<i64> = int8s(t.k, seed + 3).iter().map(|v| v * 97).collect();
    let badd: Vec<i64> = int8s(t.k, seed + 4).iter().map(|v| v * 13).collect();
    let (xt, xdt) = if t.x_signed { ("int8_t", "MK_I8") } else { ("uint8_t", "MK_U8") };
    let (yt, ydt) = if t.y_signed { ("int8_t", "MK_I8") } else { ("uint8_t", "MK_U8") };
    let (xb, wb, yb, ab) = (x.len(), enc.len(), oh * ow * t.k, 4 * oh * ow * t.k);
    let al = |n: usize| n.div_ceil(16) * 16;
    let (ox, ow_, oy, oa) = (0, al(xb), al(xb) + al(wb), al(xb) + al(wb) + al(yb));
    let total = oa + al(ab);
    let (lo, hi) = t.clip.unwrap_or(if t.y_signed { (-128, 127) } else { (0, 255) });
    let mut s = String::new();
    s += &c_array(xt, &format!("x_{i}"), &x);
    s += &c_array("int8_t", &format!("w_{i}"), &ohwi);
    s += &c_array("uint8_t", &format!("enc_{i}"), &enc.iter().map(|&b| i64::from(b)).collect::<Vec<_>>());
    s += &c_array("int64_t", &format!("scale_{i}"), &scale);
    s += &c_array("int64_t", &format!("rqb_{i}"), &rqb);
    s += &c_array("int32_t", &format!("badd_{i}"), &badd);
    s += &c_array("int32_t", &format!("wzp_{i}"), &vec![t.w_zp; t.k]);
    s += &format!(
        r#"static int case_{i}(void)
{{
    uint8_t *l1 = (uint8_t *)siracusa_malloc("L1", {total}u);
    uint8_t *x = l1 + {ox}, *w = l1 + {ow_}, *y = l1 + {oy};
    int32_t *acc = (int32_t *)(void *)(l1 + {oa});
    static int32_t racc[{yb}];
    static {yt} ry[{yb}];
    mk_job_t j;
    mk_conv_t p;
    mk_requant_t rq;
    int32_t e, bad = 0;
    siracusa_layer({i}, "case_{i}", UINT64_C(0));
    siracusa_buffer(x, {xb}u);
    siracusa_buffer(w, {wb}u);
    siracusa_buffer(y, {yb}u);
    siracusa_buffer(acc, {ab}u);
    memcpy(x, x_{i}, {xb});
    memcpy(w, enc_{i}, {wb});
    memset(&rq, 0, sizeof rq);
    rq.kind = MK_RQ_SCALE_SHIFT;
    rq.n = {k};
    rq.scale = scale_{i};
    rq.bias = rqb_{i};
    rq.sshift = {shift};
    rq.out_zp = {out_zp};
    memset(&j, 0, sizeof j);
    j.layer = "case_{i}";
    j.op = MK_JOB_CONV;
    j.h = {h}; j.w = {wd}; j.c = {c}; j.k = {k}; j.oh = {oh}; j.ow = {ow};
    j.fy = {f}; j.fx = {f}; j.sy = 1; j.sx = 1; j.dy = 1; j.dx = 1;
    j.pt = {pt}; j.pb = {pb}; j.pl = {pl}; j.pr = {pr};
    j.groups = {groups}; j.depthwise = {dw};
    j.x = x; j.xdt = {xdt}; j.y = y; j.ydt = {ydt};
    j.x_bytes = {xb}u; j.y_bytes = {yb}u;
    j.x_zp = {x_zp}; j.w_zp = wzp_{i};
    j.wt = w; j.wdt = MK_I8; j.w_bytes = {wb}u;
    j.main_ydt = MK_I32;
    j.bias = {bias}; j.bdt = MK_I32; j.bias_n = {k}; j.bias_ydt = MK_I32;
    j.has_rq = 1; j.rq = rq; j.rq_ydt = {ydt};
    j.has_clip = {has_clip}; j.clip_lo = {lo}; j.clip_hi = {hi};
    {kernel}(&j);
    p.n = 1; p.h = {h}; p.w = {wd}; p.c = {c}; p.k = {k}; p.fy = {f}; p.fx = {f}; p.oh = {oh}; p.ow = {ow};
    p.sy = 1; p.sx = 1; p.dy = 1; p.dx = 1; p.pt = {pt}; p.pl = {pl}; p.groups = {groups};
    p.x_zp = {x_zp}; p.w_zp = wzp_{i};
    mk_conv2d(x_{i}, {xdt}, w_{i}, MK_I8, racc, &p);
    if ({has_bias}) {{
        mk_bias_add(racc, MK_I32, badd_{i}, MK_I32, {k}, racc, MK_I32, {yb}, {k});
    }}
    mk_requantize(racc, MK_I32, ry, {ydt}, {yb}, {k}, &rq);
    mk_clip(ry, {ydt}, ry, {ydt}, {yb}, {lo}, {hi});
    for (e = 0; e < {yb}; e++) {{
        if (mk_ld(y, {ydt}, e) != mk_ld(ry, {ydt}, e)) {{
            if (bad++ < 3) {{
                printf("case {i} ({kernel}) element %ld: neureka %ld, reference %ld\n", (long)e,
                       (long)mk_ld(y, {ydt}, e), (long)mk_ld(ry, {ydt}, e));
            }}
        }}
    }}
    siracusa_layer(-1, "", UINT64_C(0));
    siracusa_free("L1", l1, {total}u);
    return bad;
}}
"#,
        wd = t.w,
        h = t.h,
        c = t.c,
        k = t.k,
        f = t.f,
        pt = t.pad[0],
        pb = t.pad[1],
        pl = t.pad[2],
        pr = t.pad[3],
        groups = if t.dw { t.c } else { 1 },
        dw = i32::from(t.dw),
        shift = t.shift,
        out_zp = t.out_zp,
        x_zp = t.x_zp,
        kernel = t.kernel,
        bias = if t.bias { format!("badd_{i}") } else { "NULL".into() },
        has_bias = i32::from(t.bias),
        has_clip = i32::from(t.clip.is_some()),
    );
    s
}

#[test]
fn neureka_kernels_compute_the_reference_arithmetic_from_their_encoding() {
    if !have_gcc() {
        eprintln!("skipping: no gcc");
        return;
    }
    let hwm = copy_target("kernels");
    let (hw, platform) = match_targets::resolve(hwm.to_str().expect("UTF-8")).expect("resolves");
    let platform = platform.expect("a platform folder");
    let k = |kernel, f, dw, (h, w, c, k): (usize, usize, usize, usize), pad| KCase {
        kernel,
        f,
        dw,
        h,
        w,
        c,
        k: if dw { c } else { k },
        pad,
        x_signed: true,
        y_signed: true,
        x_zp: 0,
        out_zp: 0,
        w_zp: 0,
        shift: 6,
        bias: true,
        clip: None,
    };
    let cases = [
        // signed input with zero points on both sides, 28-channel blocks crossed
        KCase { x_zp: -5, out_zp: 3, ..k("neureka_conv", 3, false, (5, 6, 33, 5), [1, 1, 1, 1]) },
        // unsigned in and out (ReLU), uneven padding, a narrower clip
        KCase {
            x_signed: false,
            y_signed: false,
            x_zp: 7,
            clip: Some((10, 200)),
            shift: 5,
            ..k("neureka_conv", 3, false, (4, 5, 28, 3), [2, 0, 1, 2])
        },
        // 1x1 over two 32-channel blocks, output zero point and clip
        KCase {
            out_zp: -4,
            clip: Some((-100, 50)),
            ..k("neureka_pointwise", 1, false, (3, 4, 40, 7), [0; 4])
        },
        // 1x1 with unsigned weights stored as w - 128 (weight zero point -128)
        KCase {
            x_signed: false,
            y_signed: false,
            w_zp: -128,
            bias: false,
            shift: 9,
            ..k("neureka_pointwise", 1, false, (2, 3, 3, 2), [0; 4])
        },
        // depthwise over two 28-channel blocks, input zero point -128
        KCase { x_zp: -128, shift: 7, ..k("neureka_depthwise", 3, true, (4, 4, 30, 0), [1, 1, 1, 1]) },
        // depthwise unsigned, weight zero point, odd padding
        KCase {
            x_signed: false,
            y_signed: false,
            x_zp: 100,
            w_zp: -128,
            shift: 10,
            ..k("neureka_depthwise", 3, true, (3, 5, 5, 0), [0, 2, 2, 0])
        },
        // negative results through the floor shift, no BiasAdd
        KCase { bias: false, shift: 3, x_zp: 20, ..k("neureka_conv", 3, false, (3, 3, 2, 4), [1, 1, 1, 1]) },
    ];
    let mut c = String::from(
        "#include <stdio.h>\n#include <string.h>\n#include <stdint.h>\n#include \"match_kernels.h\"\n#include \"siracusa_platform.h\"\n\n",
    );
    for (i, t) in cases.iter().enumerate() {
        c += &kernel_case_c(i, t, rule_layout(&hw, t.kernel));
    }
    c += "int main(void)\n{\n    int bad = 0;\n    siracusa_init();\n";
    for i in 0..cases.len() {
        c += &format!("    bad += case_{i}();\n");
    }
    c += "    siracusa_deinit();\n    printf(\"%d mismatches\\n\", bad);\n    return bad != 0;\n}\n";

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fourth_target").join("kernels").join("build");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a build folder");
    std::fs::write(dir.join("harness.c"), c).expect("write the harness");
    let kernels = repo().join("match-core/src/emit/c");
    for flags in
        ["-O2", "-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all"]
    {
        let bin = dir.join("harness");
        let out = std::process::Command::new("gcc")
            .args(["-std=c99", "-Wall", "-Wextra", "-Werror"])
            .args(flags.split_whitespace())
            .arg("-I")
            .arg(&kernels)
            .arg("-I")
            .arg(&platform)
            .arg(dir.join("harness.c"))
            .arg(kernels.join("match_kernels.c"))
            .arg(platform.join("siracusa_platform.c"))
            .arg(platform.join("siracusa_units.c"))
            .arg("-o")
            .arg(&bin)
            .output()
            .expect("gcc runs");
        assert!(out.status.success(), "{flags}: {}", String::from_utf8_lossy(&out.stderr));
        let run = std::process::Command::new(&bin).output().expect("the harness runs");
        let text =
            format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
        assert!(run.status.success() && text.contains("0 mismatches"), "{flags}:\n{text}");
    }
}

// ------------------------------------------------- random networks on it

#[test]
fn random_networks_on_a_copied_siracusa_are_bit_exact() {
    use match_tests::gen::{self, Flavor, GenOptions};
    if !have_gcc() {
        eprintln!("skipping: no gcc");
        return;
    }
    // SIRACUSA_RANDOM_CASES / SIRACUSA_RANDOM_SEED run a longer campaign.
    let env = |k: &str, d: u64| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (cases, seed) = (env("SIRACUSA_RANDOM_CASES", 16), env("SIRACUSA_RANDOM_SEED", 0x5ca1_0000));
    let (hw, platform) = resolve_copy("random");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fourth_target").join("random").join("work");
    let flavors = [Flavor::IntegerDialect, Flavor::TfLite, Flavor::Any];
    let recipes: Vec<_> = (0..cases)
        .map(|i| gen::generate(seed + i, flavors[i as usize % flavors.len()], &GenOptions::default()))
        .collect();
    let (mut networks, mut neureka_layers, mut failures) = (0, 0, Vec::new());
    // Four networks per model (one build), compared with the interpreter on
    // the graph lowered for the target, under ASan + UBSan.
    for (b, batch) in recipes.chunks(4).enumerate() {
        let what = || batch.iter().map(|r| r.summary()).collect::<Vec<_>>().join(" | ");
        let refs: Vec<_> = batch.iter().collect();
        let Ok(graph) = gen::build_many(&refs) else { continue };
        let project = dir.join(format!("b{b}"));
        let _ = std::fs::remove_dir_all(&project);
        let options = CompileOptions {
            out_dir: project.clone(),
            model_name: Some("net".into()),
            platform_dir: platform.clone(),
        };
        let compiled = match compile::compile_graph(&graph, &hw, &options) {
            Ok(c) => c,
            Err(e) if format!("{e:#}").contains("does not fit") => continue,
            Err(e) => panic!("{}: compile failed: {e:#}", what()),
        };
        let bin = compile::build(&project, "net", &[("CC", "gcc"), ("CFLAGS", ASAN_FLAGS)])
            .unwrap_or_else(|e| panic!("{}: {e:#}", what()));
        let sets: Vec<Vec<match_core::ir::Data>> = (0..2u64)
            .map(|s| batch.iter().flat_map(|r| gen::random_inputs(r, seed ^ (b as u64 * 16 + s))).collect())
            .collect();
        match compile::run_binary(&bin, &compiled.graph, &sets, &project.join("io")) {
            Err(e) => failures.push(format!("{}: {e:#}", what())),
            Ok(got) => {
                for (inputs, outs) in sets.iter().zip(&got) {
                    let want =
                        match_core::interp::run(&compiled.graph, inputs).expect("the interpreter runs");
                    for (j, (g, w)) in outs.iter().zip(&want).enumerate() {
                        if let Some(d) = diff(g, w) {
                            failures.push(format!("{} output {j}: {d}", what()));
                        }
                    }
                }
            }
        }
        networks += batch.len();
        neureka_layers += compiled.mapping.layers.iter().filter(|l| l.unit == "neureka").count();
    }
    eprintln!("{networks} of {cases} random networks compiled and run ({neureka_layers} layers on neureka)");
    assert!(failures.is_empty(), "{} failure(s):\n{}", failures.len(), failures.join("\n\n"));
    assert!(networks * 2 >= cases as usize, "only {networks} of {cases} random networks ran");
}

// ------------------------------------------------------- --exact, golden

#[test]
fn a_copied_siracusa_with_exact_matches_the_golden_vectors() {
    if !have_gcc() {
        eprintln!("skipping: no gcc");
        return;
    }
    let (hw, platform) = resolve_copy("exact");
    let root = repo();
    let m = manifest();
    let shared = match_tests::shared_models().is_some();
    // The integer-dialect models' requantization fits Neureka exactly: they
    // must still offload to it with --exact.
    let ids = ["generated/intdialect_kws", "match-onnx/keyword_spotting", "mlperf-tiny/kws_ref_model"];
    let mut checked = 0;
    for e in m.models.iter().filter(|e| ids.contains(&e.id.as_str())) {
        if e.model.starts_with("../shared/") && !shared {
            continue;
        }
        assert!(e.exact, "{}: the manifest's golden vectors are exact", e.id);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join("fourth_target")
            .join("exact")
            .join(e.id.replace('/', "__"));
        let _ = std::fs::remove_dir_all(&dir);
        let import = ImportOptions { fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)) };
        let graph = match_core::frontend::load(&root.join(&e.model), &import).expect("imports");
        let options = CompileOptions {
            out_dir: dir.join("project"),
            model_name: Some("net".into()),
            platform_dir: platform.clone(),
        };
        let compiled = compile::compile_graph_exact(
            &graph,
            &hw,
            &options,
            match_core::schedule::Objective::Latency,
            true,
        )
        .unwrap_or_else(|err| panic!("{}: {err:#}", e.id));
        assert!(
            compiled.exactness.iter().all(|x| x.kind != match_core::lower::ExactKind::Converted),
            "{}: --exact left a converted layer",
            e.id
        );
        let neureka = compiled.mapping.layers.iter().filter(|l| l.unit == "neureka").count();
        if e.id.contains("intdialect") || e.id.starts_with("match-onnx/") {
            assert!(neureka > 0, "{}: exact on Neureka, yet no layer offloaded with --exact", e.id);
        }
        let bin =
            compile::build(&options.out_dir, "net", &[("CC", "gcc")]).unwrap_or_else(|err| panic!("{err:#}"));
        let cases = e.all_case_inputs();
        let got = compile::run_binary(&bin, &compiled.graph, &cases, &dir.join("io"))
            .unwrap_or_else(|err| panic!("{err:#}"));
        for (c, outs) in got.iter().enumerate() {
            for (j, g) in outs.iter().enumerate() {
                if let Some(d) = diff(g, &e.case_output(c, j)) {
                    panic!("{} case {c} output {j}: --exact differs from the golden vectors: {d}", e.id);
                }
            }
        }
        eprintln!(
            "{}: {} cases equal to the golden vectors with --exact ({neureka} layers on neureka)",
            e.id,
            cases.len()
        );
        checked += 1;
    }
    assert!(checked >= 1);
}
