//! Weights in the external memory (docs/l3-weights.md): gap9 with its L2
//! shrunk so that a golden model's weights no longer fit beside the
//! activation arena. The compiler must place the largest weights in L3,
//! copy each layer's block into an L2 staging buffer with the target's L3
//! DMA before the layer needs it, and stay bit-exact with the interpreter (ASan
//! and UBSan on); the emulation's L3 counters must equal the predicted
//! ones. With L2 too small even for that, the error names the layer and by
//! how much. The shipped targets' MLPerf Tiny models place nothing in L3
//! (gap9, diana, and siracusa, which has an external L3 for weights too).
//! Both ways of staging run: prefetch (two staging buffers, the next
//! block moving while the layers before it run) and the serial fallback;
//! the emulation catches a prefetched block read before its wait, and an
//! L3 command longer than the DMA's max. siracusa with L2 cut stages too.

use match_core::compile::{self, CompileOptions};
use match_dsl::HwModel;
use match_tests::golden::{diff, entry};
use std::path::{Path, PathBuf};

fn tmp(parts: &[&str]) -> PathBuf {
    let mut d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("l3_weights");
    for p in parts {
        d = d.join(p.replace(['/', '\\'], "__"));
    }
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the work folder");
    d
}

/// gap9 with `L2` of `bytes` usable, and the L3 DMA's commands limited to
/// `l3_max` bytes when given.
fn gap9_with_l2(bytes: u64, l3_max: Option<u64>) -> (HwModel, Option<PathBuf>) {
    let (mut hw, platform) = match_targets::resolve("gap9").expect("gap9");
    let l2 = hw.memories.iter_mut().find(|m| m.name == "L2").expect("gap9 has L2");
    l2.size = bytes + l2.reserve;
    if l3_max.is_some() {
        let dma = hw.dmas.iter_mut().find(|d| d.from == "L3").expect("gap9 has an L3 DMA");
        dma.max_bytes = l3_max;
    }
    (hw, platform)
}

fn compile(
    g: &match_core::ir::Graph,
    hw: &HwModel,
    platform: Option<PathBuf>,
    dir: &Path,
    name: &str,
) -> anyhow::Result<compile::Compiled> {
    let options = CompileOptions {
        out_dir: dir.join("project"),
        model_name: Some(name.to_string()),
        platform_dir: platform,
    };
    compile::compile_graph(g, hw, &options)
}

/// The per-layer sections of an `--explain` text, in layer order.
fn explain_sections(text: &str) -> Vec<&str> {
    let mut starts: Vec<usize> = text.match_indices("\nlayer ").map(|(i, _)| i + 1).collect();
    let end = text.find("\ntotal: ").unwrap_or(text.len());
    starts.push(end);
    starts.windows(2).map(|w| &text[w[0]..w[1]]).collect()
}

/// What [`staged_run`] measured.
struct Staged {
    /// Bytes staged per run, layers staged, cycles added to the estimate.
    bytes: u64,
    layers: usize,
    cycles: f64,
    /// The units of the staged layers.
    units: Vec<String>,
    /// Double-buffered, and the transfer cycles hidden behind layers.
    prefetch: bool,
    hidden: f64,
    /// Two staging buffers would fit L2 with the chosen placement.
    two_buffers_fit: bool,
    /// The compilation, its generated project and the inputs and outputs
    /// it ran on.
    compiled: compile::Compiled,
    project: PathBuf,
    inputs: Vec<Vec<match_core::ir::Data>>,
    work: PathBuf,
}

/// The sanitizer flags of the builds.
const ASAN_FLAGS: &str =
    "-std=c99 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all";

/// Compiles `id` for gap9 with L2 cut to the arena plus half the weights,
/// runs it under the sanitizers and checks outputs, counters and the
/// report.
fn staged_run(id: &str, l2_past_arena: Option<usize>, l3_max: Option<u64>) -> Staged {
    let e = entry(id);
    let g = e.load();
    let name = "l3_model";
    let tag = format!("{l2_past_arena:?}");
    // The shipped target: everything in L2.
    let (hw, platform) = match_targets::resolve("gap9").expect("gap9");
    let base = compile(&g, &hw, platform, &tmp(&[id, &tag, "base"]), name).expect("compiles for gap9");
    assert!(base.report.staging.is_none(), "{id}: gap9 stages nothing");
    let l2 = (base.report.ram_bytes + l2_past_arena.unwrap_or(base.report.weight_bytes / 2)) as u64;
    let (small, platform) = gap9_with_l2(l2, l3_max);
    let dir = tmp(&[id, &tag, "small"]);
    let c = compile(&g, &small, platform, &dir, name)
        .unwrap_or_else(|err| panic!("{id} with L2 = {l2} B: {err:#}"));
    let st = c.report.staging.as_ref().expect("weights placed in L3");
    assert_eq!(st.memory, "L3");
    assert_eq!(st.layers.len(), c.mapping.layers.len());
    assert!(
        c.report.ram_bytes + st.resident_bytes <= l2 as usize,
        "{id}: the arena, the staging buffer ({} B) and the resident weights ({} B) fit L2 ({l2} B)",
        st.buffer_bytes,
        st.resident_bytes
    );
    let staged: Vec<_> = st.layers.iter().enumerate().filter(|(_, s)| s.bytes > 0).collect();
    assert!(!staged.is_empty());
    // Serial: each layer copies its block into the one buffer. Prefetch:
    // the k-th staged layer's block goes into buffer k % 2, its transfer
    // started by the previous staged layer (the first: by layer 0).
    let largest =
        |k: usize| staged.iter().skip(k).step_by(2).map(|(_, s)| s.bytes as usize).max().unwrap_or(0);
    for (k, &(li, s)) in staged.iter().enumerate() {
        if st.prefetch {
            let from = if k == 0 { 0 } else { staged[k - 1].0 };
            assert_eq!((s.started_in, s.buffer), (from, k % 2), "{id} layer {li}: prefetched");
            assert_eq!(s.buffer_offset, if k % 2 == 0 { 0 } else { largest(0).div_ceil(16) * 16 });
        } else {
            assert_eq!((s.started_in, s.buffer, s.buffer_offset), (li, 0, 0), "{id} layer {li}: serial");
        }
    }
    let buffers =
        if st.prefetch { largest(0).div_ceil(16) * 16 + largest(1) } else { largest(0).max(largest(1)) };
    assert_eq!(st.buffer_bytes, buffers, "{id}: the staging buffers");
    // Whether two buffers would fit beside the arena with this placement.
    let two = largest(0).div_ceil(16) * 16 + largest(1);
    let two_buffers_fit = c.report.ram_bytes - st.buffer_bytes + st.resident_bytes + two <= l2 as usize;
    assert!(!st.prefetch || two_buffers_fit, "{id}: prefetched, so two buffers fit");
    // The estimate of each staged layer gained the part of its transfer
    // (setup plus bytes over bandwidth per command, the DMA of gap9.hwm)
    // not hidden behind the estimates of the layers it runs behind.
    let dma = small.dma("L3", "L2").expect("L3 DMA");
    let mem_energy = |m: &str| small.memory(m).and_then(|m| m.energy_per_byte).unwrap_or(0.0);
    let (mut added, mut hidden) = (0.0, 0.0);
    for &(li, s) in &staged {
        let want = s.commands as f64 * dma.setup as f64
            + s.commands as f64 * dma.overhead_for(1) as f64
            + s.bytes as f64 / dma.bandwidth;
        assert!((s.cycles - want).abs() < 1e-6, "{id} layer {li}: {} cycles, want {want}", s.cycles);
        // The same mapping as on gap9 (L2's size does not change the L2->L1
        // schedules): the layer's estimate is the old one plus the transfer.
        assert_eq!(base.mapping.layers[li].unit, c.mapping.layers[li].unit);
        let before = base.mapping.layers[li].schedule.as_ref().expect("scheduled");
        let after = c.mapping.layers[li].schedule.as_ref().expect("scheduled");
        let energy =
            s.bytes as f64 * (dma.energy_per_byte.unwrap_or(0.0) + mem_energy("L3") + mem_energy("L2"));
        assert!((after.energy_pj - before.energy_pj - energy).abs() < 1e-3, "{id} layer {li}: energy");
        let (before, after) = (before.cycles, after.cycles);
        let behind: f64 = (s.started_in..li)
            .map(|j| base.mapping.layers[j].schedule.as_ref().map_or(0.0, |s| s.cycles.total))
            .sum();
        let charged = (s.cycles - behind).max(0.0);
        assert!((s.charged_cycles - charged).abs() < 1e-6, "{id} layer {li}: charged {charged}");
        assert!((s.hidden_cycles + s.charged_cycles - s.cycles).abs() < 1e-6, "{id} layer {li}: hidden");
        assert!((after.total - before.total - charged).abs() < 1e-6, "{id} layer {li}: total");
        assert!((after.transfer - before.transfer - charged).abs() < 1e-6, "{id} layer {li}: transfer");
        let max = dma.max_bytes.unwrap_or(u64::MAX);
        assert_eq!(s.commands, s.bytes.div_ceil(max), "{id} layer {li}: commands split at max");
        added += charged;
        hidden += s.hidden_cycles;
    }
    // The emulation counts each transfer in the layer that starts it.
    for (li, counters) in c.report.counters.iter().enumerate() {
        let started = staged.iter().filter(|(_, s)| s.started_in == li);
        assert_eq!(counters.dma_l3, started.clone().map(|(_, s)| s.commands).sum::<u64>(), "{id} layer {li}");
        assert_eq!(counters.dma_l3_bytes, started.map(|(_, s)| s.bytes).sum::<u64>(), "{id} layer {li}");
    }
    // `--explain` says it, on the staged layers only.
    let text = compile::explain(&small, &c);
    let sections = explain_sections(&text);
    assert_eq!(sections.len(), st.layers.len(), "{id}: one explain section per layer");
    for (li, (section, s)) in sections.iter().zip(&st.layers).enumerate() {
        let lines: Vec<&str> = section.lines().filter(|l| l.contains(" staged from ")).collect();
        let starts: Vec<&str> = section.lines().filter(|l| l.starts_with("  prefetch: ")).collect();
        let started: Vec<usize> =
            staged.iter().filter(|&&(k, s)| s.started_in == li && k != li).map(|&(k, _)| k).collect();
        assert_eq!(starts.len(), started.len(), "{id} layer {li}: the prefetches it starts\n{section}");
        for (line, k) in starts.iter().zip(&started) {
            let b = &st.layers[*k];
            let want = format!(
                "  prefetch: starts the weights of layer {k} ({} B) from L3 into L2 staging buffer {} of 2 while it runs",
                b.bytes,
                b.buffer + 1
            );
            assert_eq!(*line, want, "{id} layer {li}");
        }
        if s.bytes == 0 {
            assert!(lines.is_empty(), "{id} layer {li}: nothing staged, yet\n{section}");
            continue;
        }
        let commands = format!("{} DMA command{}", s.commands, if s.commands == 1 { "" } else { "s" });
        let want = if !st.prefetch {
            format!(
                "  weights: {} B staged from L3 into the L2 staging buffer before the layer: {commands}, +{:.0} cycles",
                s.bytes, s.charged_cycles
            )
        } else if s.started_in == li {
            format!(
                "  weights: {} B staged from L3 into L2 staging buffer {} of 2 before the layer: {commands}, +{:.0} cycles",
                s.bytes,
                s.buffer + 1,
                s.charged_cycles
            )
        } else {
            format!(
                "  weights: {} B staged from L3 into L2 staging buffer {} of 2, prefetched since layer {}: {commands}, {:.0} cycles, {:.0} hidden behind {}, +{:.0} cycles",
                s.bytes,
                s.buffer + 1,
                s.started_in,
                s.cycles,
                s.hidden_cycles,
                if s.started_in + 1 == li { format!("layer {}", s.started_in) } else { format!("layers {}..{}", s.started_in, li - 1) },
                s.charged_cycles
            )
        };
        assert_eq!(lines, [want.as_str()], "{id} layer {li}:\n{section}");
    }
    // The report shows it.
    let json = compile::report_json(&g, &small, &c, id);
    let staged_json = json["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter(|l| l.get("weights_staged").is_some())
        .count();
    assert_eq!(staged_json, staged.len());
    for &(li, s) in &staged {
        let w = &json["layers"][li]["weights_staged"];
        assert_eq!(w["prefetch"].as_bool(), Some(st.prefetch), "{id} layer {li}");
        assert_eq!(w["started_in"].as_u64(), Some(s.started_in as u64), "{id} layer {li}");
        assert_eq!(w["charged_cycles"].as_f64(), Some(s.charged_cycles), "{id} layer {li}");
        assert_eq!(w["cycles"].as_f64(), Some(s.cycles), "{id} layer {li}");
    }
    assert_eq!(json["memory"]["L3"].as_u64(), Some(st.image_bytes as u64));
    // The code: built with the sanitizers, bit-exact, counters as predicted.
    let flags = ASAN_FLAGS;
    let project = dir.join("project");
    let src = std::fs::read_to_string(project.join(format!("{name}.c"))).expect("model source");
    assert!(src.contains("gap9_l3_dma_start(l3_model_wstage + 0, l3_model_l3 + "), "the L3 DMA in the code");
    let bin = compile::build(&project, name, &[("CC", "gcc"), ("CFLAGS", flags), ("BUILD", "build-asan")])
        .unwrap_or_else(|err| panic!("{id}: {err:#}"));
    let inputs = vec![e.case_inputs(0)];
    let want = match_core::interp::run(&c.graph, &inputs[0]).expect("interpreter");
    let (outs, table) =
        compile::run_binary_counters(&bin, &c.graph, &inputs, &dir.join("io")).expect("runs with counters");
    let bad = compile::counters_mismatches(&c.report.counters, &table);
    assert!(bad.is_empty(), "{id}: counters differ:\n{}", bad.join("\n"));
    let l3_bytes: u64 = table.layers.iter().map(|l| l.dma_l3_bytes).sum();
    let predicted: u64 = staged.iter().map(|(_, s)| s.bytes).sum();
    assert_eq!(l3_bytes, predicted, "{id}: L3 bytes counted");
    for (j, (got, w)) in outs[0].iter().zip(&want).enumerate() {
        if let Some(d) = diff(got, w) {
            panic!("{id}: output {j}: {d}");
        }
    }
    eprintln!(
        "{id}: L2 {l2} B; {} (two buffers fit: {two_buffers_fit}); {} of {} layers staged, {predicted} B over {} L3 command(s), +{added:.0} cycles ({hidden:.0} hidden); staging buffer(s) {} B, L3 image {} B, {} B of weights left in L2; bit-exact, counters equal",
        if st.prefetch { "prefetch" } else { "serial" },
        staged.len(),
        st.layers.len(),
        table.layers.iter().map(|l| l.dma_l3).sum::<u64>(),
        st.buffer_bytes,
        st.image_bytes,
        st.resident_bytes
    );
    let units = staged.iter().map(|&(li, _)| c.mapping.layers[li].unit.clone()).collect();
    let layers = staged.len();
    let prefetch = st.prefetch;
    Staged {
        prefetch,
        two_buffers_fit,
        hidden,
        bytes: predicted,
        layers,
        cycles: added,
        units,
        compiled: c,
        project,
        inputs,
        work: dir.join("io"),
    }
}

/// Builds `project` again into `build` with `edit` applied to its file
/// `file`, runs it on `r`'s inputs and returns the run's error.
fn run_edited(r: &Staged, file: &str, build: &str, edit: impl Fn(&str) -> String) -> String {
    let path = r.project.join(file);
    let text = std::fs::read_to_string(&path).expect("the generated file");
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit changes {file}");
    std::fs::write(&path, edited).expect("write the edit");
    let name = &r.compiled.model_name;
    let bin = compile::build(&r.project, name, &[("CC", "gcc"), ("CFLAGS", ASAN_FLAGS), ("BUILD", build)]);
    std::fs::write(&path, text).expect("undo the edit");
    let bin = bin.unwrap_or_else(|err| panic!("{err:#}"));
    match compile::run_binary(&bin, &r.compiled.graph, &r.inputs, &r.work.join(build)) {
        Ok(_) => panic!("the run with {file} edited succeeded"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn vww_weights_staged_from_l3() {
    let r = staged_run("mlperf-tiny/vww_96_int8", None, None);
    assert!(r.bytes > 0 && r.layers > 0 && r.cycles > 0.0);
    // Two buffers fit beside the arena: the transfers run behind the
    // layers before, and part of their cycles is hidden.
    assert!(r.prefetch && r.hidden > 0.0, "prefetched");
    // The wait before a prefetched layer is what makes its block valid:
    // the emulation copies at the wait and poisons the block until then,
    // so the layer reading it without the wait fails.
    let wait = "    gap9_l3_dma_wait(0);\n";
    let err = run_edited(&r, &format!("{}.c", r.compiled.model_name), "build-nowait", |t| {
        let at = t.find(": wait for them (").expect("a prefetched layer");
        let at = at + t[at..].find(wait).expect("its wait");
        format!("{}{}", &t[..at], &t[at + wait.len()..])
    });
    assert!(
        err.contains("the destination of a pending DMA command (missing wait?)")
            || err.contains("AddressSanitizer error in layer"),
        "{err}"
    );
}

#[test]
fn ad01_weights_staged_from_l3() {
    let r = staged_run("mlperf-tiny/ad01_int8", None, None);
    assert!(r.bytes > 0 && r.layers > 0 && r.cycles > 0.0);
}

#[test]
fn tight_l2_stages_host_layers() {
    // L2 just past the arena and the largest layer's weights (ResNet-8's
    // 36864 B convolution): nearly every array goes to L3, the FC's final
    // dense layer too, whose host kernel reads its staged weights directly
    // from the staging buffer. (AD01, used before, has no FC layer left
    // since its bottleneck dense moved to the cluster for residency.)
    // The L3 DMA limited to 5000 B per command: blocks split.
    let r = staged_run("mlperf-tiny/pretrainedResnet_quant", Some(40_000), Some(5000));
    assert!(r.units.iter().any(|u| u == "fc"), "a host layer staged: {:?}", r.units);
    // Two staging buffers do not fit beside the arena, even with every
    // array in L3: the serial single buffer.
    assert!(!r.prefetch && !r.two_buffers_fit, "serial: two buffers do not fit");
    assert!(r.bytes > 5000 * r.layers as u64, "some block takes several commands");
    // The emulated L3 DMA holds the code to the .hwm's max: the run above
    // passed with 5000 B, and the same code's 5000 B commands are refused
    // when the emulation is told 4999 B.
    let define = "#define MATCH_DMA_L3_L2_MAX_BYTES 5000u\n";
    let err = run_edited(&r, "match_memories.h", "build-max", |t| {
        assert!(t.contains(define), "match_memories.h gives the max:\n{t}");
        t.replace(define, "#define MATCH_DMA_L3_L2_MAX_BYTES 4999u\n")
    });
    assert!(
        err.contains("gap9_l3_dma_start (L3 <-> L2): a command of 5000 B, more than the DMA's 4999 B"),
        "{err}"
    );
}

#[test]
fn too_small_even_with_l3_names_the_layer() {
    let e = entry("mlperf-tiny/vww_96_int8");
    let g = e.load();
    let (hw, platform) = match_targets::resolve("gap9").expect("gap9");
    let base = compile(&g, &hw, platform, &tmp(&["too-small", "base"]), "l3_model").expect("compiles");
    // Room for the arena and 16 bytes: no layer's weights fit.
    let (small, platform) = gap9_with_l2(base.report.ram_bytes as u64 + 16, None);
    let err = match compile(&g, &small, platform, &tmp(&["too-small", "small"]), "l3_model") {
        Ok(_) => panic!("compiled with L2 too small"),
        Err(e) => e,
    };
    let msg = format!("{err:#}");
    assert!(msg.contains("even with its weights in `L3`"), "{msg}");
    assert!(msg.contains("staging buffer for layer `"), "{msg}");
    assert!(msg.contains("B short"), "{msg}");
    eprintln!("{msg}");
}

#[test]
fn shipped_targets_stage_nothing() {
    for target in ["gap9", "diana", "siracusa"] {
        let (hw, platform) = match_targets::resolve(target).expect("shipped target");
        for id in [
            "mlperf-tiny/vww_96_int8",
            "mlperf-tiny/pretrainedResnet_quant",
            "mlperf-tiny/ad01_int8",
            "mlperf-tiny/kws_ref_model",
        ] {
            let g = entry(id).load();
            let dir = tmp(&["shipped", target, id]);
            let c = compile(&g, &hw, platform.clone(), &dir, "m").expect("compiles");
            assert!(c.report.staging.is_none(), "{target} {id}: nothing in L3");
            assert!(c.report.counters.iter().all(|c| c.dma_l3 == 0 && c.dma_l3_bytes == 0));
            let src = std::fs::read_to_string(dir.join("project/m.c")).expect("source");
            assert!(!src.contains("_wstage"), "{target} {id}: no staging buffer");
            // `--explain` is the mapping's alone, as in the snapshots.
            let plain = match_core::mapping::explain_with(&c.graph, &hw, &c.mapping, &c.exactness);
            assert_eq!(compile::explain(&hw, &c), plain, "{target} {id}: --explain unchanged");
        }
    }
}

#[test]
fn resnet8_and_kws_weights_staged_from_l3() {
    // Residual additions (ResNet-8) and depthwise layers (DS-CNN KWS).
    // With L2 past the arena cut to half the weights, ResNet-8's two
    // buffers do not fit (serial) and KWS's do (prefetch); with 60000 B,
    // ResNet-8's fit too.
    for (id, past, prefetch) in [
        ("mlperf-tiny/pretrainedResnet_quant", None, false),
        ("mlperf-tiny/kws_ref_model", None, true),
        ("mlperf-tiny/pretrainedResnet_quant", Some(60_000), true),
    ] {
        let r = staged_run(id, past, None);
        assert!(r.bytes > 0 && r.layers > 0 && r.cycles > 0.0, "{id}");
        assert_eq!((r.prefetch, r.two_buffers_fit), (prefetch, prefetch), "{id} {past:?}");
    }
}

#[test]
fn siracusa_weights_staged_from_l3() {
    // siracusa's own emulation (not match_emu) with L2 cut to the arena
    // plus half the weights: bit-exact, L3 counters as predicted, with
    // prefetch (VWW, KWS, AD01) and serial (ResNet-8).
    let mut modes = Vec::new();
    for id in [
        "mlperf-tiny/vww_96_int8",
        "mlperf-tiny/kws_ref_model",
        "mlperf-tiny/ad01_int8",
        "mlperf-tiny/pretrainedResnet_quant",
    ] {
        let e = entry(id);
        let g = e.load();
        let (hw, platform) = match_targets::resolve("siracusa").expect("siracusa");
        let base =
            compile(&g, &hw, platform.clone(), &tmp(&["siracusa", id, "base"]), "m").expect("compiles");
        let mut small = hw.clone();
        let l2 = small.memories.iter_mut().find(|m| m.name == "L2").expect("siracusa has L2");
        l2.size = (base.report.ram_bytes + base.report.weight_bytes / 2) as u64 + l2.reserve;
        let dir = tmp(&["siracusa", id, "small"]);
        let c = compile(&g, &small, platform, &dir, "m").unwrap_or_else(|err| panic!("{id}: {err:#}"));
        let st = c.report.staging.as_ref().expect("weights placed in L3");
        modes.push(st.prefetch);
        let vars = [("CC", "gcc"), ("CFLAGS", ASAN_FLAGS), ("BUILD", "build-asan")];
        let bin =
            compile::build(&dir.join("project"), "m", &vars).unwrap_or_else(|err| panic!("{id}: {err:#}"));
        let inputs = vec![e.case_inputs(0)];
        let (outs, table) = compile::run_binary_counters(&bin, &c.graph, &inputs, &dir.join("io"))
            .unwrap_or_else(|err| panic!("{id}: {err:#}"));
        let bad = compile::counters_mismatches(&c.report.counters, &table);
        assert!(bad.is_empty(), "{id}: counters differ:\n{}", bad.join("\n"));
        assert!(table.layers.iter().any(|l| l.dma_l3_bytes > 0), "{id}: L3 transfers counted");
        let want = match_core::interp::run(&c.graph, &inputs[0]).expect("interpreter");
        for (j, (got, w)) in outs[0].iter().zip(&want).enumerate() {
            if let Some(d) = diff(got, w) {
                panic!("{id}: output {j}: {d}");
            }
        }
    }
    assert_eq!(modes, [true, true, true, false], "prefetch per model");
}
