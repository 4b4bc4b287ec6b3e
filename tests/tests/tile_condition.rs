//! gap9's NE16 rules restrict their tiles (`tile_condition`): in the
//! 2x2-strided mode the driver halves a tile's output strides, so every
//! tile's output channels x output bytes must be even. The schedules
//! chosen for ResNet-8's strided convolutions when they go to NE16 (the
//! cluster's convolution rules removed) meet it and run bit-exact, and the
//! emulated NE16 refuses a tile that does not: a schedule
//! forced to an odd K tile (31 + 1 of 32 channels) builds and fails at the
//! kernel with the constraint named, where before the emulation ran it.

use match_core::compile;
use match_core::cost::Problem;
use match_core::ir::Op;
use match_core::mapping;
use match_core::schedule::Objective;
use match_tests::e2e::{emit_build_check, fresh_dir, lowered_golden, SANITIZED_CFLAGS};
use std::path::Path;

#[test]
fn ne16_strided_tiles_have_even_output_bytes() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let (e, hw, platform, _) = lowered_golden("mlperf-tiny/pretrainedResnet_quant", "gap9");
    // The cluster wins ResNet-8's strided convolutions on the shipped
    // target: without its convolution rules they go to NE16.
    let mut ne16_only = hw.clone();
    ne16_only.offloads.retain(|o| !(o.unit == "cluster" && o.pattern.starts_with("conv")));
    let root = match_tests::repo_root();
    let graph = match_core::frontend::load(&root.join(&e.model), &Default::default()).expect("loads");
    let lowered =
        match_core::lower::lower_for_target(&graph, &ne16_only, Objective::Latency, false).expect("lowers");
    let g = &lowered.graph;
    let mut mapping = lowered.mapping.clone();
    let mut strided = Vec::new();
    for (i, layer) in mapping.layers.iter().enumerate() {
        let Some(s) = &layer.schedule else { continue };
        let Op::Conv2d { stride, .. } = &g.nodes[layer.nodes[0]].op else { continue };
        if layer.unit != "ne16" || stride[0] != 2 || s.from == s.to {
            continue;
        }
        // The chosen K tile and the remainder, by hand.
        let (k, t) = (mapping::layer_of(g, &layer.nodes).k, s.tile.k);
        let last = k - (k - 1) / t * t;
        assert!(t.min(k) % 2 == 0 && last % 2 == 0, "{}: K tiles {t} and {last}", layer.name);
        strided.push(i);
    }
    assert!(!strided.is_empty(), "ResNet-8 has strided convolutions on NE16");
    let inputs = vec![e.case_inputs(0)];
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    // The chosen schedules run bit-exact, counters as predicted.
    let dir = fresh_dir(tmp, "tile_condition", &["chosen"]);
    emit_build_check(g, &ne16_only, &mapping, platform.clone(), &dir, "strided", &inputs, "NE16 strided");

    // Force the first one to K tiles of 31 and 1: the rule refuses it...
    let i = strided[0];
    let layer = &mapping.layers[i];
    let rule = ne16_only.offloads.iter().find(|o| {
        Some(&o.pattern) == layer.pattern.as_ref()
            && o.unit == layer.unit
            && Some(&o.kernel) == layer.kernel.as_ref()
    });
    let ml = mapping::layer_of(g, &layer.nodes);
    assert_eq!(ml.k, 32, "{}", layer.name);
    let p = Problem::new(&ne16_only, ne16_only.unit("ne16").unwrap(), rule, ml).unwrap();
    let mut s = layer.schedule.clone().unwrap();
    let why = p.tile_refusal([31, s.tile.oy, s.tile.ox]).unwrap().expect("an odd K tile is refused");
    assert!(why.contains("K * out_bits / 8 % 2 == 0"), "{why}");
    // ...and the emulated NE16 refuses to run it.
    s.tile.k = 31;
    mapping.layers[i].schedule = Some(s);
    let dir = fresh_dir(tmp, "tile_condition", &["odd"]);
    let plan = match_core::plan::plan(g, &mapping.node_order()).expect("plans");
    let options = match_core::emit::EmitOptions {
        model_name: "odd".to_string(),
        out_dir: dir.join("project"),
        platform_dir: platform,
    };
    match_core::emit::emit(g, &ne16_only, &mapping, &plan, &options).expect("emits");
    let vars = [("CC", "gcc"), ("CFLAGS", SANITIZED_CFLAGS), ("BUILD", "build-asan")];
    let bin = compile::build(&options.out_dir, "odd", &vars).expect("builds");
    let err = compile::run_binary(&bin, g, &inputs, &dir.join("io"))
        .expect_err("the emulated NE16 refuses an odd strided tile");
    assert!(format!("{err:#}").contains("odd number of output bytes per pixel"), "{err:#}");
}
