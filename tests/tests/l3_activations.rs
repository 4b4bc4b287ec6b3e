//! Activations in the external memory (docs/l3-activations.md): gap9 with
//! its L2 cut below a golden model's activation arena. The compiler must
//! spill the tensors that wait across layers (ResNet-8's skip
//! connections) to L3 with the target's L3 DMA and fill them back before
//! their next reader, plan an arena that fits, and stay bit-exact with the
//! interpreter and the reference runtime's golden outputs (ASan and UBSan
//! on), with the emulation's L3 counters as predicted; the same on
//! siracusa. Past what spilling can save, the memory error names the
//! shortfall as before.

use match_core::compile::{self, CompileOptions};
use match_core::ir::Op;
use match_dsl::HwModel;
use match_tests::gen::{
    self, Act8, Activation, AddMode, Grouping, InputSpec, LayerOp, LayerSpec, Operand, Recipe, RequantKind,
    Requantizer, WeightKind,
};
use match_tests::golden::{diff, entry};
use std::path::{Path, PathBuf};

fn tmp(parts: &[&str]) -> PathBuf {
    let mut d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("l3_activations");
    for p in parts {
        d = d.join(p.replace(['/', '\\'], "__"));
    }
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create the work folder");
    d
}

/// A shipped target with its home memory `L2` cut to `bytes` usable.
fn with_l2(target: &str, bytes: u64) -> (HwModel, Option<PathBuf>) {
    let (mut hw, platform) = match_targets::resolve(target).expect("target");
    let l2 = hw.memories.iter_mut().find(|m| m.name == "L2").expect("an L2");
    l2.size = bytes + l2.reserve;
    (hw, platform)
}

fn compile(
    g: &match_core::ir::Graph,
    hw: &HwModel,
    platform: Option<PathBuf>,
    dir: &Path,
) -> anyhow::Result<compile::Compiled> {
    let options = CompileOptions {
        out_dir: dir.join("project"),
        model_name: Some("spilled".into()),
        platform_dir: platform,
    };
    compile::compile_graph(g, hw, &options)
}

const ASAN_FLAGS: &str =
    "-std=c99 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all";

fn conv(out_c: usize, seed_scale: f32) -> LayerOp {
    LayerOp::Conv {
        grouping: Grouping::Full,
        out_c,
        kernel: [3, 3],
        stride: [1, 1],
        dilation: [1, 1],
        pad: [1, 1, 1, 1],
        weights: WeightKind::I8,
        bias: true,
        rq: Some(Requantizer {
            kind: RequantKind::FixedPoint { per_channel: true },
            out: Act8::I8,
            out_zp: 0,
            out_scale: seed_scale,
            gain: 1.0,
            act: Activation::Relu,
        }),
    }
}

/// A network with a long skip connection: `v1 = conv(x)` waits while three
/// wider convolutions run, then `v5 = v4 + v1`. 48 x 48 pixels: `v1` and
/// `v4` 36 KiB, `v2` and `v3` 72 KiB, too large for one L1 tile, so no
/// layer keeps its output in L1 for the next (residency). Without
/// spilling the arena peaks at `v1 + v2 + v3` = 180 KiB during the third
/// convolution.
/// Bytes of `v1` (48 x 48 x 16).
const V1: usize = 36_864;

fn long_skip() -> Recipe {
    Recipe {
        inputs: vec![InputSpec { shape: vec![1, 48, 48, 8], dtype: Act8::I8, scale: 0.02, zp: 0 }],
        layers: vec![
            LayerSpec { src: 0, op: conv(16, 0.05), seed: 1 },
            LayerSpec { src: 1, op: conv(32, 0.05), seed: 2 },
            LayerSpec { src: 2, op: conv(32, 0.05), seed: 3 },
            LayerSpec { src: 3, op: conv(16, 0.05), seed: 4 },
            LayerSpec {
                src: 4,
                op: LayerOp::Add {
                    other: Operand::Value(1),
                    mode: AddMode::TfLite,
                    out_zp: 0,
                    out_scale: 0.08,
                    act: Activation::None,
                },
                seed: 5,
            },
        ],
        outputs: vec![5],
    }
}

/// Builds the project with the sanitizers and runs it on `inputs`: the
/// outputs, and the emulation's counters checked against the prediction.
fn run(
    c: &compile::Compiled,
    dir: &Path,
    inputs: &[Vec<match_core::ir::Data>],
) -> Vec<Vec<match_core::ir::Data>> {
    let project = dir.join("project");
    let bin = compile::build(
        &project,
        "spilled",
        &[("CC", "gcc"), ("CFLAGS", ASAN_FLAGS), ("BUILD", "build-asan")],
    )
    .unwrap_or_else(|err| panic!("{err:#}"));
    let (outs, table) =
        compile::run_binary_counters(&bin, &c.graph, inputs, &dir.join("io")).expect("runs with counters");
    let bad = compile::counters_mismatches(&c.report.counters, &table);
    assert!(bad.is_empty(), "counters differ:\n{}", bad.join("\n"));
    outs
}

#[test]
fn a_long_skip_waits_in_l3() {
    let recipe = long_skip();
    let g = gen::build(&recipe).expect("the network builds");
    let inputs = vec![gen::random_inputs(&recipe, 11), gen::random_inputs(&recipe, 12)];
    // The shipped gap9: nothing spilled, the arena at its peak.
    let (hw, platform) = match_targets::resolve("gap9").expect("gap9");
    let base = compile(&g, &hw, platform, &tmp(&["skip", "base"])).expect("compiles for gap9");
    assert!(base.spilled.is_empty() && base.plan.external_bytes == 0);
    assert_eq!(base.plan.arena_bytes, 184_320, "v1 + v2 + v3");
    // L2 for the arena without v1 (144 KiB) and the largest layer's
    // weights (the 32 -> 32 convolution's 9216 B and its per-channel
    // arrays), so the weights may go to L3 and v1 must wait there.
    let l2 = 147_456 + 9216 + 3 * 32 * 4 + 2048;
    let (small, platform) = with_l2("gap9", l2);
    let dir = tmp(&["skip", "small"]);
    let c = compile(&g, &small, platform, &dir).unwrap_or_else(|e| panic!("L2 {l2} B: {e:#}"));
    assert_eq!(c.spilled.len(), 1, "{:?}", c.spilled);
    let s = &c.spilled[0];
    assert_eq!(s.bytes, V1);
    assert!(c.plan.arena_bytes <= 147_456, "arena {} B", c.plan.arena_bytes);
    assert_eq!(c.plan.external_bytes, V1);
    // The spill right after v1's producer, the fill right before the add.
    let op = |li: usize| c.graph.nodes[c.mapping.layers[li].nodes[0]].op.clone();
    assert_eq!((op(s.spill_layer), op(s.fill_layer)), (Op::Spill, Op::Fill));
    assert_eq!(s.spill_layer, 1, "after the first convolution");
    assert!(matches!(op(s.fill_layer + 1), Op::Add { .. }), "the add reads the filled copy");
    assert_eq!(c.mapping.layers.len(), base.mapping.layers.len() + 2);
    for (li, l) in c.mapping.layers.iter().enumerate() {
        assert!(l.name.starts_with(&format!("l{li:02}_")), "{}", l.name);
    }
    // Each moves v1 as one L3 command; the estimate is that transfer.
    let dma = small.dma("L3", "L2").expect("the L3 DMA");
    let want = dma.setup as f64 + dma.overhead_for(1) as f64 + V1 as f64 / dma.bandwidth;
    for li in [s.spill_layer, s.fill_layer] {
        let sch = c.mapping.layers[li].schedule.as_ref().expect("costed");
        assert!(
            (sch.cycles.total - want).abs() < 1e-6,
            "layer {li}: {} cycles, want {want}",
            sch.cycles.total
        );
        assert_eq!(
            (c.report.counters[li].dma_l3, c.report.counters[li].dma_l3_bytes),
            (1, V1 as u64),
            "layer {li}"
        );
    }
    // --explain and --report say it.
    let text = compile::explain(&small, &c);
    assert!(
        text.contains(&format!("  spill: '{}' ({V1} B) to L3 until layer {}", s.tensor, s.fill_layer)),
        "{text}"
    );
    assert!(
        text.contains(&format!("  fill: '{}' ({V1} B) back from L3, spilled at layer 1", s.tensor)),
        "{text}"
    );
    let json = compile::report_json(&g, &small, &c, "long_skip");
    assert!(json["memory"]["L3"].as_u64().is_some_and(|b| b >= V1 as u64), "{}", json["memory"]);
    // Bit-exact with the interpreter, on the spilled graph and the original.
    let outs = run(&c, &dir, &inputs);
    for (set, out) in inputs.iter().zip(&outs) {
        let want = match_core::interp::run(&base.graph, set).expect("interpreter");
        let spilled = match_core::interp::run(&c.graph, set).expect("interpreter");
        assert_eq!(want, spilled, "spilling changes no value");
        for (j, (got, w)) in out.iter().zip(&want).enumerate() {
            if let Some(d) = diff(got, w) {
                panic!("output {j}: {d}");
            }
        }
    }
    // The fill's wait is what makes the bytes arrive: without it the
    // emulation refuses the add's read of a pending buffer.
    let project = dir.join("project");
    let src = std::fs::read_to_string(project.join("spilled.c")).expect("the model's C");
    let wait = "gap9_l3_dma_wait(1);";
    let fill_fn =
        src.find(&format!("static void {}(void)", c.mapping.layers[s.fill_layer].name)).expect("the fill");
    let at = fill_fn + src[fill_fn..].find(wait).expect("the fill waits");
    let broken = format!("{}{}", &src[..at], &src[at + wait.len()..]);
    std::fs::write(project.join("spilled.c"), broken).expect("write");
    let bin = compile::build(
        &project,
        "spilled",
        &[("CC", "gcc"), ("CFLAGS", ASAN_FLAGS), ("BUILD", "build-broken")],
    )
    .expect("builds");
    let err = compile::run_binary_counters(&bin, &c.graph, &inputs[..1], &dir.join("io-broken"));
    assert!(err.is_err(), "a fill read before its wait must fail the emulation");
}

#[test]
fn a_layer_too_large_alone_is_still_refused() {
    let recipe = long_skip();
    let g = gen::build(&recipe).expect("the network builds");
    // Below the third convolution's own input and output (144 KiB).
    let (small, platform) = with_l2("gap9", 140 * 1024);
    let err = compile(&g, &small, platform, &tmp(&["skip", "tiny"])).expect_err("does not fit");
    let msg = format!("{err:#}");
    assert!(msg.contains("does not fit target `gap9`") && msg.contains("B short"), "{msg}");
}

/// ResNet-8 on gap9: every tensor inside a tiled layer (the int32
/// accumulators between a convolution and its requantization) lives in the
/// layer's tile buffers, so the arena gives it no place, and neither does
/// an output kept in L1 for the next layer (inter-layer residency, which
/// links each block's second convolution to its addition): the peak is two
/// 16 KiB tensors, not 64 KiB of accumulator beside three of them.
#[test]
fn tiled_intermediates_take_no_arena() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let e = entry("mlperf-tiny/pretrainedResnet_quant");
    let g = e.load();
    let (hw, platform) = match_targets::resolve("gap9").expect("gap9");
    let dir = tmp(&["resnet8"]);
    let c = compile(&g, &hw, platform.clone(), &dir).expect("compiles");
    let fused = match_core::emit::fused_layers(&c.graph, &hw, &c.mapping, platform.as_deref())
        .expect("platform files");
    assert!(!fused.inside.is_empty());
    for t in &fused.inside {
        assert!(!c.plan.offsets.contains_key(t), "'{}' has an arena place", c.graph.tensor(*t).name);
    }
    let all = match_core::plan::plan(&c.graph, &c.mapping.node_order()).expect("plans");
    assert_eq!((c.plan.arena_bytes, all.arena_bytes), (32768, 98304));
    assert_eq!(c.report.ram_bytes, 32768, "no stage buffer: no output over an input the tiles read");
    let inputs = vec![e.case_inputs(0)];
    let outs = run(&c, &dir, &inputs);
    let want = match_core::interp::run(&c.graph, &inputs[0]).expect("interpreter");
    for (j, (got, w)) in outs[0].iter().zip(&want).enumerate() {
        if let Some(d) = diff(got, w) {
            panic!("output {j}: {d}");
        }
    }
}

/// The same on siracusa, whose L3 also holds activations: no target name
/// in the compiler, its own emulation and L3 DMA.
#[test]
fn a_long_skip_waits_in_l3_on_siracusa() {
    let recipe = long_skip();
    let g = gen::build(&recipe).expect("the network builds");
    let inputs = vec![gen::random_inputs(&recipe, 21)];
    let (hw, platform) = match_targets::resolve("siracusa").expect("siracusa");
    let base = compile(&g, &hw, platform, &tmp(&["siracusa", "base"])).expect("compiles for siracusa");
    assert!(base.spilled.is_empty());
    let l2 = (base.plan.arena_bytes - V1) as u64 + 9216 + 3 * 32 * 4 + 2048;
    let (small, platform) = with_l2("siracusa", l2);
    let dir = tmp(&["siracusa", "small"]);
    let c = compile(&g, &small, platform, &dir).unwrap_or_else(|e| panic!("L2 {l2} B: {e:#}"));
    eprintln!(
        "siracusa: base arena {} -> {} spilled {:?}",
        base.plan.arena_bytes, c.plan.arena_bytes, c.spilled
    );
    assert_eq!(c.spilled.len(), 1, "{:?}", c.spilled);
    assert_eq!(c.plan.external_bytes, V1);
    let outs = run(&c, &dir, &inputs);
    let want = match_core::interp::run(&base.graph, &inputs[0]).expect("interpreter");
    for (j, (got, w)) in outs[0].iter().zip(&want).enumerate() {
        if let Some(d) = diff(got, w) {
            panic!("output {j}: {d}");
        }
    }
}
