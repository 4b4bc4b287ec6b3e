//! Lowering for a target (requantization per unit): with `--exact` the
//! lowered graph keeps the reference runtime's semantics on every golden
//! model; the match-onnx models' convolutions offload to NE16 exactly; the
//! exactness report of the keyword-spotting model is reviewed as snapshots.

use match_core::frontend::{self, ImportOptions};
use match_core::lower::{self, ExactKind, Lowered};
use match_core::schedule::Objective;
use match_tests::golden::{diff, manifest, Entry};
use std::fmt::Write as _;

fn target(name: &str) -> match_core::HwModel {
    match_targets::resolve(name).unwrap_or_else(|e| panic!("{e}")).0
}

fn load(e: &Entry) -> match_core::ir::Graph {
    let root = match_tests::repo_root();
    let import = ImportOptions { fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)) };
    frontend::load(&root.join(&e.model), &import).unwrap_or_else(|err| panic!("{}: {err:#}", e.id))
}

fn lower(e: &Entry, t: &str, exact: bool) -> Lowered {
    let g = load(e);
    lower::lower_for_target(&g, &target(t), Objective::Latency, exact)
        .unwrap_or_else(|err| panic!("{} on {t}: {err:#}", e.id))
}

fn entries(prefix: &str) -> Vec<Entry> {
    manifest().models.into_iter().filter(|e| e.id.starts_with(prefix)).collect()
}

#[test]
fn with_exact_every_mlperf_model_lowered_for_gap9_and_diana_equals_the_golden_vectors() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let mut models = entries("mlperf-tiny/");
    models.extend(entries("mlperf-tiny-logits/"));
    assert!(models.len() >= 9, "{} MLPerf Tiny entries", models.len());
    let mut failures = Vec::new();
    for e in &models {
        for t in ["gap9", "diana"] {
            let l = lower(e, t, true);
            assert!(
                l.exactness.iter().all(|x| x.max_lsb == 0 && x.kind != ExactKind::Converted),
                "{} on {t}: {:?}",
                e.id,
                l.exactness
            );
            for c in 0..e.cases {
                let got = match_core::interp::run(&l.graph, &e.case_inputs(c))
                    .unwrap_or_else(|err| panic!("{} on {t}: {err:#}", e.id));
                for (j, out) in got.iter().enumerate() {
                    if let Some(d) = diff(out, &e.case_output(c, j)) {
                        failures.push(format!("{} on {t} case {c} output {j}: {d}", e.id));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn match_onnx_convolutions_offload_to_ne16_exactly() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let models = entries("match-onnx/");
    assert_eq!(models.len(), 3);
    for e in &models {
        for exact in [false, true] {
            let l = lower(e, "gap9", exact);
            let mut convs = 0;
            for (layer, x) in l.mapping.layers.iter().zip(&l.exactness) {
                let n = &l.graph.nodes[layer.nodes[0]];
                if !matches!(n.op, match_core::ir::Op::Conv2d { .. }) {
                    continue;
                }
                // Every convolution NE16's rules accept, pointwise or
                // depthwise: the model's scale-shift fits NE16 (depthwise
                // scales above 255 in its 32-bit scale mode), so it runs
                // there exactly. Only a shape NE16 lacks keeps a convolution
                // off it (keyword_spotting's 10x4 input layer), never its
                // arithmetic.
                let what = format!("{} {} (exact {exact}): {}", e.id, layer.name, x.reason);
                assert_eq!((x.kind, x.max_lsb), (ExactKind::Exact, 0), "{what}");
                if layer.unit == "ne16" {
                    convs += 1;
                    assert!(x.reason.starts_with("ne16: scale_shift -> "), "{what}");
                } else {
                    let ne16: Vec<&str> = layer
                        .rejections
                        .iter()
                        .filter(|r| r.unit == "ne16")
                        .map(|r| r.reason.as_str())
                        .collect();
                    assert!(!ne16.is_empty(), "{what}: NE16 was not considered");
                    assert!(
                        ne16.iter()
                            .all(|r| r.contains("kernel") || r.contains("depthwise") || r.contains("groups")),
                        "{what}: NE16 refused it for {ne16:?}"
                    );
                }
            }
            assert!(e.id.contains("anomaly") || convs > 0, "{}: no convolution on NE16", e.id);
            // Every layer is exact: the lowered graph computes the golden vectors.
            assert!(l.exactness.iter().all(|x| x.max_lsb == 0 && x.kind != ExactKind::Converted), "{}", e.id);
            for c in 0..e.cases {
                let got = match_core::interp::run(&l.graph, &e.case_inputs(c)).unwrap();
                for (j, out) in got.iter().enumerate() {
                    assert_eq!(diff(out, &e.case_output(c, j)), None, "{} case {c}", e.id);
                }
            }
        }
    }
}

/// The exactness part of the report, one line per layer.
fn exactness_text(e: &Entry, t: &str, exact: bool) -> String {
    let l = lower(e, t, exact);
    let mut s = String::new();
    for (layer, x) in l.mapping.layers.iter().zip(&l.exactness) {
        let _ = writeln!(
            s,
            "{:<14} {:<8} {:<9} {:>3}  {}",
            layer.name,
            layer.unit,
            x.kind.name(),
            x.max_lsb,
            x.reason
        );
    }
    s
}

#[test]
fn kws_exactness_on_gap9_and_diana() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let kws = entries("mlperf-tiny/kws_ref_model").remove(0);
    for t in ["gap9", "diana"] {
        for exact in [false, true] {
            let name = format!("kws_exactness_{t}{}", if exact { "_exact" } else { "" });
            insta::assert_snapshot!(name, exactness_text(&kws, t, exact));
        }
    }
}

#[test]
fn the_report_carries_each_layers_exactness() {
    if match_tests::shared_models().is_none() {
        return;
    }
    use match_core::compile::{self, CompileOptions};
    let kws = entries("mlperf-tiny/kws_ref_model").remove(0);
    let g = load(&kws);
    let (hw, platform) = match_targets::resolve("gap9").unwrap();
    let dir = std::env::temp_dir().join(format!("match-lowering-report-{}", std::process::id()));
    let options =
        CompileOptions { out_dir: dir.clone(), model_name: Some("kws".into()), platform_dir: platform };
    for exact in [false, true] {
        let c = compile::compile_graph_exact(&g, &hw, &options, Objective::Latency, exact).unwrap();
        let json = compile::report_json(&g, &hw, &c, "kws_ref_model.tflite");
        let layers = json["layers"].as_array().unwrap();
        assert_eq!(layers.len(), c.mapping.layers.len());
        let kinds: Vec<(&str, &str, u64)> = layers
            .iter()
            .map(|l| {
                let x = &l["exactness"];
                assert!(x["reason"].as_str().is_some_and(|r| !r.is_empty()), "{l}");
                (l["unit"].as_str().unwrap(), x["kind"].as_str().unwrap(), x["max_lsb"].as_u64().unwrap())
            })
            .collect();
        if exact {
            assert!(kinds.iter().all(|k| k.1 != "converted" && k.2 == 0), "{kinds:?}");
            assert!(kinds.iter().any(|k| k.1 == "moved" && k.0 == "cluster"), "{kinds:?}");
        } else {
            // TFLite's double rounding: 1 LSB even with NE16's 32-bit scales.
            assert!(kinds.contains(&("ne16", "converted", 1)), "{kinds:?}");
            assert!(kinds.iter().all(|k| k.1 != "moved"), "{kinds:?}");
        }
        // The emitted project is for the lowered graph the compilation holds.
        assert_eq!(c.graph.inputs.len(), g.inputs.len());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Compiles `e` for `t`, builds it, runs its cases in emulation and compares
/// with the interpreter on the lowered graph (DESIGN.md's contract).
fn emulated_equals_lowered_interp(e: &Entry, t: &str, exact: bool) {
    use match_core::compile::{self, CompileOptions};
    let g = load(e);
    let (hw, platform) = match_targets::resolve(t).unwrap();
    let dir = match_tests::repo_root()
        .join("target/tmp/lowering")
        .join(format!("{}-{t}-{exact}", e.id.replace('/', "__")));
    let _ = std::fs::remove_dir_all(&dir);
    let options = CompileOptions { out_dir: dir.join("project"), model_name: None, platform_dir: platform };
    let c = compile::compile_graph_exact(&g, &hw, &options, Objective::Latency, exact)
        .unwrap_or_else(|err| panic!("{} on {t}: {err:#}", e.id));
    let bin = compile::build(&options.out_dir, &c.model_name, &[]).unwrap_or_else(|err| panic!("{err:#}"));
    let cases = e.all_case_inputs();
    let got = compile::run_binary(&bin, &c.graph, &cases, &dir.join("io")).unwrap();
    for (k, (inputs, outs)) in cases.iter().zip(&got).enumerate() {
        let want = match_core::interp::run(&c.graph, inputs).unwrap();
        for (j, (o, w)) in outs.iter().zip(&want).enumerate() {
            assert_eq!(diff(o, w), None, "{} on {t} case {k} output {j}", e.id);
            if exact {
                assert_eq!(diff(o, &e.case_output(k, j)), None, "{} on {t} --exact case {k}: golden", e.id);
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn converted_layers_run_in_emulation_as_the_lowered_graph_says() {
    // The ternary model exercises DIANA's analog ADC chain (generated, no
    // ../shared needed).
    let ternary = entries("generated/intdialect_ternary").remove(0);
    let l = lower(&ternary, "diana", false);
    assert!(l.mapping.layers.iter().any(|x| x.unit == "analog"), "the analog array takes a layer");
    emulated_equals_lowered_interp(&ternary, "diana", false);
    emulated_equals_lowered_interp(&ternary, "diana", true);
    if match_tests::shared_models().is_none() {
        return;
    }
    // TFLite int8 on NE16 (fixed point converted to scale-shift, signed
    // inputs made unsigned by their producers).
    let kws = entries("mlperf-tiny/kws_ref_model").remove(0);
    emulated_equals_lowered_interp(&kws, "gap9", false);
    emulated_equals_lowered_interp(&kws, "gap9", true);
}

/// The memory check run before mapping is a lower bound: it never refuses a
/// model whose plan (lowered, mapped, planned) fits the target. VWW on diana
/// was refused by an earlier version that counted the int32 accumulators
/// fused layers never store.
#[test]
fn the_early_memory_check_never_refuses_a_model_whose_plan_fits() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let models = manifest().models;
    let mut planned = 0;
    for t in ["host", "host-tiled", "gap9", "diana", "siracusa"] {
        let hw = target(t);
        for e in &models {
            let g = load(e);
            let early = match_core::compile::check_fits_early(&g, &hw, "m");
            let Ok(l) = lower::lower_for_target(&g, &hw, Objective::Latency, false) else { continue };
            let order = l.mapping.node_order();
            let plan =
                match_core::plan::plan(&l.graph, &order).unwrap_or_else(|err| panic!("{}: {err:#}", e.id));
            let fits = match_core::compile::check_fits(&l.graph, &hw, &plan, "m");
            planned += 1;
            if fits.is_ok() {
                assert!(
                    early.is_ok(),
                    "{} on {t}: the plan fits but the early check refuses: {:#}",
                    e.id,
                    early.unwrap_err()
                );
            }
        }
    }
    assert!(planned >= 60, "{planned} (model, target) pairs planned");
}
