//! End to end on `host-tiled`: every golden model compiled for the test
//! target whose second unit computes from a 16 KiB L1 fed by a DMA, so that
//! its convolutions, dense layers, poolings and additions run tiled (tile
//! loops, DMA start / wait, double buffering; the DMA copies at wait). The
//! emitted C is built with gcc (and once with ASan + UBSan) and compared bit
//! for bit with the golden outputs and the interpreter.
//!
//! Property tests: for every chosen schedule of every golden model on
//! host-tiled, gap9 and diana, the tile nest the emitter generates
//! ([`match_core::emit::tiled::Nest`], the enumeration the generated
//! `_tile` functions mirror) writes every output element exactly once, and
//! every step's buffers fit the compute memory. An insta snapshot pins the
//! C of one small tiled fixture.

use match_core::compile::{self, CompileOptions};
use match_core::emit::tiled;
use match_core::frontend::ImportOptions;
use match_core::ir::{DType, Data, Graph, Op, Quant};
use match_tests::e2e::Suite;
use match_tests::fixtures::{c, fixed_requant, i8s, input_sets, n, t, values};
use match_tests::golden::{diff, manifest, Entry};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Layers emitted tiled by the golden-model tests (summed over models).
static TILED_LAYERS: AtomicUsize = AtomicUsize::new(0);

fn tiled_target() -> (match_core::HwModel, Option<PathBuf>) {
    match_targets::resolve("host-tiled").expect("the host-tiled target resolves")
}

/// The shared end-to-end driver, for target `host-tiled`.
fn suite() -> Suite<'static> {
    Suite {
        target: "host-tiled",
        tmp: Path::new(env!("CARGO_TARGET_TMPDIR")),
        name: "e2e_tiled",
        inspect_c: &count_tiled_layers,
    }
}

/// Counts the tiled layers of an emitted model.
fn count_tiled_layers(model_c: &str) {
    TILED_LAYERS.fetch_add(model_c.matches("    mt_run(&L);").count(), Ordering::SeqCst);
}

#[test]
fn every_golden_model_on_host_tiled_is_bit_exact() {
    let m = manifest();
    let entries: Vec<&Entry> = m.models.iter().collect();
    let (models, cases) = suite().check_all(&entries, "gcc", &[("CC", "gcc")]);
    let tiled = TILED_LAYERS.load(Ordering::SeqCst);
    eprintln!("{models} models, {cases} cases bit-exact on host-tiled ({tiled} layers tiled)");
    assert!(models > 0);
    assert!(tiled >= models, "only {tiled} tiled layers in {models} models");
}

const SELECTED: &[&str] = &[
    "mlperf-tiny/kws_ref_model",
    "mlperf-tiny/pretrainedResnet_quant",
    "mlperf-tiny/ad01_int8",
    "generated/resnet8_qdq",
    "generated/dscnn_qop",
    "generated/intdialect_kws",
    "examples/example_int8",
];

#[test]
fn sanitized_tiled_build_is_clean_and_bit_exact() {
    let m = manifest();
    let v: Vec<&Entry> = m.models.iter().filter(|e| SELECTED.contains(&e.id.as_str())).collect();
    assert!(v.len() >= 4, "the selected models are missing from the manifest");
    let flags = "-std=c99 -O1 -g -Wall -Wextra -Werror -fno-omit-frame-pointer \
                 -fsanitize=address,undefined -fno-sanitize-recover=all";
    let (models, cases) = suite().check_all(&v, "asan-ubsan", &[("CC", "gcc"), ("CFLAGS", flags)]);
    eprintln!("{models} models, {cases} cases clean under ASan + UBSan on host-tiled");
    assert!(models >= 3);
}

/// Every golden model that imports (and, for shared ones, is present).
fn golden_graphs() -> Vec<(String, Graph)> {
    let root = match_tests::repo_root();
    let mut out = Vec::new();
    for e in manifest().models {
        if e.model.starts_with("../shared/") && match_tests::shared_models().is_none() {
            continue;
        }
        let import = ImportOptions { fold_inputs_from: e.fold_inputs_from.as_ref().map(|d| root.join(d)) };
        let g = match_core::frontend::load(&root.join(&e.model), &import)
            .unwrap_or_else(|err| panic!("{}: {err:#}", e.id));
        out.push((e.id, g));
    }
    out
}

#[test]
fn every_tiling_writes_each_output_once_and_fits() {
    let graphs = golden_graphs();
    let mut checked = 0;
    let mut fallbacks = 0;
    for target in ["host-tiled", "gap9", "diana"] {
        let (hw, _) = match_targets::resolve(target).expect("shipped target");
        for (id, g) in &graphs {
            let Ok(mapping) = match_core::mapping::map(g, &hw) else { continue };
            for layer in &mapping.layers {
                let Some(s) = &layer.schedule else { continue };
                // Every chosen schedule fits its memories.
                let to = hw.memory(&s.to).expect("compute memory");
                if s.from != s.to {
                    let w_mem = hw.unit(&s.unit).and_then(|u| u.weights_in.clone());
                    let w_cap = w_mem.as_deref().and_then(|m| hw.memory(m)).map_or(u64::MAX, |m| m.usable());
                    assert!(s.footprint <= to.usable(), "{target} {id} {}: {s:?}", layer.name);
                    assert!(s.weights_footprint <= w_cap, "{target} {id} {}", layer.name);
                }
                let t = match tiled::plan_layer(g, &hw, layer) {
                    Ok(t) => t,
                    Err(why) => {
                        // On host-tiled every tiled schedule is emitted tiled,
                        // except the documented fallbacks: batched or
                        // broadcasting additions (the tile loops cover K, OY, OX).
                        if target == "host-tiled" && s.from != s.to {
                            assert!(
                                why == "batch" || why.starts_with("broadcasting"),
                                "{id} {}: a tiled schedule the emitter does not tile: {why}",
                                layer.name
                            );
                            fallbacks += 1;
                        }
                        continue;
                    }
                };
                let n = &t.nest;
                let [dk, dy, dx] = n.ext;
                let mut seen = vec![0u8; (dk * dy * dx) as usize];
                let steps = n.walk(t.input_follows_k);
                assert_eq!(steps.len() as i64, n.steps());
                for st in &steps {
                    // A split C stores each output tile once, after its last C tile.
                    for k in (st.k.0..st.k.0 + st.k.1).filter(|_| st.store) {
                        for y in st.oy.0..st.oy.0 + st.oy.1 {
                            for x in st.ox.0..st.ox.0 + st.ox.1 {
                                seen[((y * dx + x) * dk + k) as usize] += 1;
                            }
                        }
                    }
                    let (i, w, o, a) = t.step_bytes(st);
                    let l = &t.layout;
                    assert!(
                        i <= l.input_bytes && w <= l.weight_bytes && o <= l.output_bytes && a <= l.acc_bytes
                    );
                    // The output box stays inside the tensor.
                    let (full, at, ext) = t.output_box(st);
                    for d in 0..3 {
                        assert!(at[d] >= 0 && ext[d] >= 1 && at[d] + ext[d] <= full[d], "{id}: {st:?}");
                    }
                }
                assert!(
                    seen.iter().all(|&c| c == 1),
                    "{target} {id} {}: not written exactly once",
                    layer.name
                );
                // The buffers fit the compute memory, and within the
                // schedule's own footprint (which the search checked).
                assert!(t.layout.total <= to.usable(), "{target} {id} {}", layer.name);
                // host-tiled counts the portable kernels' int32 accumulator
                // as unit scratch (with 32 B of alignment slack); gap9 and
                // diana count their own scratch instead, so there the
                // buffers without the accumulator must fit the schedule's
                // footprint up to the 4-byte alignment of each buffer.
                let own = s.footprint + s.weights_footprint;
                if target == "host-tiled" {
                    assert!(t.layout.total <= own, "{target} {id} {}: {:?} vs {own}", layer.name, t.layout);
                } else {
                    let acc = t.layout.acc_bytes.div_ceil(tiled::ALIGN) * tiled::ALIGN;
                    let slack = 6 * tiled::ALIGN;
                    assert!(
                        t.layout.total - acc <= own + slack,
                        "{target} {id} {}: {:?} vs {own}",
                        layer.name,
                        t.layout
                    );
                }
                // The first step loads everything; later steps reload an
                // operand only when its coordinates change.
                assert!(steps[0].load_input && steps[0].load_weights);
                checked += 1;
            }
        }
    }
    eprintln!("{checked} tiled schedules checked; {fallbacks} emitted untiled on host-tiled");
    assert!(checked > 0);
}

// ------------------------------------------------------------ fixtures

/// A conv with remainder tiles on every loop, bias and per-channel requant,
/// then a max pool with padding: both tiled on host-tiled.
fn fixture_tiled() -> Graph {
    let mut g = Graph::default();
    let x = t(&mut g, "x", &[1, 23, 21, 8], DType::I8);
    g.tensor_mut(x).quant = Some(Quant::per_tensor(0.05, -3));
    let w = c(&mut g, "w", &[37, 3, 3, 8], i8s(1, 37 * 72));
    let b =
        c(&mut g, "b", &[37], Data::I32(values(2, 37, -500, 500).into_iter().map(|v| v as i32).collect()));
    let acc = t(&mut g, "acc", &[1, 23, 21, 37], DType::I32);
    let biased = t(&mut g, "biased", &[1, 23, 21, 37], DType::I32);
    let q = t(&mut g, "q", &[1, 23, 21, 37], DType::I8);
    let y = t(&mut g, "y", &[1, 23, 21, 37], DType::I8);
    let p = t(&mut g, "p", &[1, 12, 11, 37], DType::I8);
    let conv = Op::Conv2d {
        stride: [1, 1],
        dilation: [1, 1],
        pad: [1, 1, 1, 1],
        groups: 1,
        x_zp: -3,
        w_zp: vec![0],
    };
    n(&mut g, "conv", conv, &[x, w], &[acc]);
    n(&mut g, "conv", Op::BiasAdd, &[acc, b], &[biased]);
    n(&mut g, "conv", Op::Requantize { requant: fixed_requant(37, 3), out_zp: -5 }, &[biased], &[q]);
    n(&mut g, "relu", Op::Clip { min: -5, max: 127 }, &[q], &[y]);
    n(&mut g, "pool", Op::MaxPool { kernel: [3, 3], stride: [2, 2], pad: [1, 1, 1, 1] }, &[y], &[p]);
    g.inputs = vec![x];
    g.outputs = vec![p];
    g
}

#[test]
fn fixture_tiled_emits_and_matches() {
    let name = "fx_tiled";
    let mut graph = fixture_tiled();
    match_core::passes::prepare(&mut graph).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let (hw, platform) = tiled_target();
    let dir = suite().work_dir(&["fixtures", name]);
    let options = CompileOptions {
        out_dir: dir.join("project"),
        model_name: Some(name.to_string()),
        platform_dir: platform,
    };
    let compiled = compile::compile_graph(&graph, &hw, &options).unwrap_or_else(|e| panic!("{name}: {e:#}"));
    let model_c = std::fs::read_to_string(options.out_dir.join(format!("{name}.c"))).expect("model .c");
    assert_eq!(model_c.matches("    mt_run(&L);").count(), 2, "both layers tiled");
    insta::assert_snapshot!(format!("{name}_c"), model_c);
    for (label, vars) in [
        ("gcc", vec![("CC", "gcc")]),
        (
            "asan",
            vec![
                ("CC", "gcc"),
                ("CFLAGS", "-std=c99 -O1 -g -Wall -Wextra -Werror -fsanitize=address,undefined -fno-sanitize-recover=all"),
                ("BUILD", "build-asan"),
            ],
        ),
    ] {
        let bin = compile::build(&options.out_dir, &compiled.model_name, &vars).unwrap_or_else(|e| panic!("{name} {label}: {e:#}"));
        let sets = input_sets(&graph, 3);
        let got = compile::run_binary(&bin, &graph, &sets, &dir.join(format!("io-{label}")))
            .unwrap_or_else(|e| panic!("{name}: {e:#}"));
        for (s, (inputs, outs)) in sets.iter().zip(&got).enumerate() {
            let want = match_core::interp::run(&graph, inputs).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            for (j, (g, w)) in outs.iter().zip(&want).enumerate() {
                if let Some(d) = diff(g, w) {
                    panic!("{name} [{label}] set {s} output {j}: {d}");
                }
            }
        }
    }
}
