//! Inter-layer residency end to end (mapping::apply_residency,
//! emit/tiled.rs `link_resident`): where a tiled layer runs as one tile and
//! the next layer (or the one after code-less reshapes of the output)
//! reads exactly its output bytes in one tile from the same compute
//! memory, the producer keeps its output buffer (no store, the platform's
//! `keep`) and the consumer reads it in place (no load).
//!
//! - An addition with one input resident (both input orders) loads only
//!   the other, bit-exact; not once the producer's `keep` is removed.
//!   ResNet-8 on gap9 links all three of its additions; `add(b, a)` of
//!   `AddKind::swapped` equals `add(a, b)` for every kind.
//! - Through a reshape: a convolution, a flattening and a dense layer on
//!   gap9 link across the reshape, which keeps the bytes again; bit-exact,
//!   and not once the reshape's `keep` is removed. A layout conversion on
//!   the way (at the reshape or the consumer) refuses the link.
//! - The MLPerf Tiny models on gap9 (residency applies to all
//!   five), on diana (the autoencoder's dense chain on the digital array)
//!   and on host-tiled run bit-exact with the interpreter on the lowered graph
//!   under ASan / UBSan, and gap9's and diana's DMA counters equal
//!   [`match_core::cost::predict_counters`] (which drops exactly the
//!   skipped loads and stores).
//! - The emulation scrubs every tile buffer at a layer's end except what
//!   the layer declared live (`gap9_keep`): the same project with the
//!   `keep` calls removed, or with a consumer's input buffer moved off the
//!   producer's output buffer, computes on the scrub pattern and is no
//!   longer bit-exact (the test fails if it still is).
//! - The buffer plan replayed: every tensor a layer reads resident was
//!   written by its producer's kernel in that same buffer, no layer in
//!   between is tiled (only reshapes, which run no code) and no other
//!   buffer of the consumer overlaps it.

use match_core::compile;
use match_core::emit::tiled::{self, TiledLayer};
use match_core::schedule::Objective;
use match_tests::e2e::{
    emit_build_check, emit_build_check_with, fresh_dir, gap9_device_double_vars, lowered_golden,
    SANITIZED_CFLAGS,
};
use match_tests::golden::diff;
use std::path::{Path, PathBuf};

fn tmp(parts: &[&str]) -> PathBuf {
    fresh_dir(Path::new(env!("CARGO_TARGET_TMPDIR")), "residency", parts)
}

/// The links of a mapping: (producer index, consumer index), the layers
/// between them code-less reshapes.
fn links(mapping: &match_core::mapping::Mapping) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    for (i, l) in mapping.layers.iter().enumerate() {
        if let Some(s) = &l.schedule {
            if let Some(j) = s.output_to {
                assert!(j > i, "{}: output kept for an earlier layer", l.name);
                let q = mapping.layers[j].schedule.as_ref().expect("scheduled consumer");
                assert_eq!(q.input_from, Some(i), "{}: the link is one-sided", l.name);
                for m in &mapping.layers[i + 1..j] {
                    assert!(m.name.ends_with("_reshape"), "{}: {} between a link", l.name, m.name);
                    assert!(m.schedule.as_ref().is_none_or(|s| s.from == s.to), "{}: tiled", m.name);
                }
                v.push((i, j));
            }
            if let Some(p) = s.input_from {
                let ps = mapping.layers[p].schedule.as_ref().expect("scheduled producer");
                assert_eq!(ps.output_to, Some(i), "{}: the link is one-sided", l.name);
            }
        }
    }
    v
}

/// Replays the emitted buffer plan: for each link, the producer's
/// single step writes its whole output into its output buffer (slot 0,
/// the only one a single step uses), stores nothing, no layer between
/// them is tiled (the reshapes run no code), and the consumer's single
/// step reads its input from exactly that buffer, loads nothing (an
/// addition: only its other input, into the second half of its input
/// buffer, which starts at that buffer), and none of its other buffers
/// overlaps its input.
fn replay(plans: &[Option<TiledLayer>], linked: &[(usize, usize)]) {
    let overlap = |a: u64, an: u64, b: u64, bn: u64| an > 0 && bn > 0 && a < b + bn && b < a + an;
    for &(i, j) in linked {
        let p = plans[i].as_ref().expect("a tiled producer");
        let q = plans[j].as_ref().expect("a tiled consumer");
        assert!(plans[i + 1..j].iter().all(Option::is_none), "link {i}: a tiled layer between");
        assert!(p.output_kept && q.input_resident, "link {i}: plans not marked");
        let ps = p.nest.walk(p.input_follows_k);
        let qs = q.nest.walk(q.input_follows_k);
        assert_eq!((ps.len(), qs.len()), (1, 1), "link {i}: not single steps");
        assert!(ps[0].store, "link {i}: the producer's step does not complete its output");
        assert!(p.transfers(&ps[0]).iter().all(|x| x.to_compute), "link {i}: the producer stores");
        let (buf, bytes) = (p.layout.output[0], p.layout.output_bytes);
        // 1 input, or an addition's 2.
        let n_in = q.layout.input_bytes / bytes;
        assert!(n_in == 1 || (n_in == 2 && q.resident_input < 2), "link {i}: {n_in} inputs");
        let loads = q.transfers(&qs[0]).iter().filter(|x| x.channel == tiled::CH_IN).count() as u64;
        assert_eq!(loads, n_in - 1, "link {i}: the consumer loads its resident input");
        // An addition's other input right after the resident one.
        assert_eq!(q.layout.input, [buf, buf], "link {i}: the consumer reads another buffer");
        assert_eq!(q.layout.input_bytes, n_in * bytes, "link {i}: sizes differ");
        let bytes = n_in * bytes;
        let l = &q.layout;
        let mut others = vec![(l.acc, l.acc_bytes)];
        if q.weights_memory.is_none() {
            others.extend(l.weights.iter().map(|&o| (o, l.weight_bytes)));
        }
        others.extend(l.output.iter().map(|&o| (o, l.output_bytes)));
        for (o, n) in others {
            assert!(
                !overlap(o, n, buf, bytes),
                "link {i}: a consumer buffer at {o} ({n} B) overlaps its input"
            );
        }
        assert!(l.total >= buf + bytes, "link {i}: the arena size misses the kept buffer");
    }
}

/// Compiles golden model `id` for `target`, checks that residency applies
/// (`expect_links`), replays the plan, and runs it bit-exact with counters.
/// Returns the project folder and the number of links.
fn run(id: &str, target: &str, expect_links: bool) -> Option<(PathBuf, usize, match_core::lower::Lowered)> {
    match_tests::shared_models()?;
    let (e, hw, platform, lowered) = lowered_golden(id, target);
    let g = &lowered.graph;
    let linked = links(&lowered.mapping);
    if expect_links {
        assert!(!linked.is_empty(), "{id} on {target}: no layer kept resident");
    }
    let plans =
        match_core::emit::emitted_tiling(g, &hw, &lowered.mapping, platform.as_deref()).expect("plans");
    replay(&plans, &linked);
    let dir = tmp(&[target, id]);
    let name = "res".to_string();
    let inputs = vec![e.case_inputs(0)];
    let what = format!("{id} on {target}");
    let project = emit_build_check(g, &hw, &lowered.mapping, platform, &dir, &name, &inputs, &what);
    eprintln!("{id} on {target}: {} link(s), bit-exact, counters equal", linked.len());
    Some((project, linked.len(), lowered))
}

#[test]
fn resident_chains_are_bit_exact_and_counted_on_gap9() {
    // The links per model. None passes through a reshape: the dense layer
    // after each classifier's flattening (KWS, VWW, ResNet-8, str_ww) is
    // cheaper on the fabric controller (e.g. KWS: 782 cycles against 1790
    // on the cluster) than the store and load a link would save. ResNet-8:
    // 3 + its 3 additions (the convolution before each keeps its output for
    // the addition, which loads the other branch; in the first block that
    // is the addition's `b`, computed as add(b, a)).
    for (id, count) in [
        ("mlperf-tiny/ad01_int8", 7),
        ("mlperf-tiny/pretrainedResnet_quant", 6),
        ("mlperf-tiny/str_ww_ref_model", 7),
        ("mlperf-tiny/kws_ref_model", 9),
        ("mlperf-tiny/vww_96_int8", 23),
    ] {
        let Some((_, n, lowered)) = run(id, "gap9", true) else { return };
        assert_eq!(n, count, "{id} on gap9: links");
        if id.contains("kws") || id.contains("ad01") || id.contains("Resnet") {
            // The device adapter's unit kernels (cluster jobs, NE16 through
            // the pulp-nnx double) on the resident buffers, counters equal.
            let (e, hw, platform, _) = lowered_golden(id, "gap9");
            let dir = tmp(&["gap9-device", id]);
            let vars = |p: &Path| {
                let mut v = vec![("CC", "gcc".to_string()), ("BUILD", "build-device".to_string())];
                v.extend(gap9_device_double_vars(p, "res"));
                v
            };
            let what = format!("{id} on gap9, device unit kernels");
            let inputs = vec![e.case_inputs(0)];
            emit_build_check_with(
                &lowered.graph,
                &hw,
                &lowered.mapping,
                platform,
                &dir,
                "res",
                &inputs,
                &what,
                &vars,
            );
        }
    }
}

#[test]
fn resident_chains_are_bit_exact_and_counted_on_diana() {
    // The autoencoder's dense chain on the digital array (its weights in
    // their own memory, WD): the other models' tiled layers are split.
    let _ = run("mlperf-tiny/ad01_int8", "diana", true);
}

#[test]
fn resident_chains_are_bit_exact_on_host_tiled() {
    for id in ["mlperf-tiny/ad01_int8", "mlperf-tiny/pretrainedResnet_quant"] {
        if run(id, "host-tiled", false).is_none() {
            return;
        }
    }
}

/// Builds the (edited) project in `dir` and tells whether its output is
/// still bit-exact with the interpreter.
fn still_exact(project: &Path, lowered: &match_core::lower::Lowered, id: &str, work: &Path) -> bool {
    let e = match_tests::golden::manifest().models.into_iter().find(|e| e.id == id).expect("entry");
    let inputs = vec![e.case_inputs(0)];
    let vars = [("CC", "gcc"), ("CFLAGS", SANITIZED_CFLAGS), ("BUILD", "build-broken")];
    let bin = compile::build(project, "res", &vars).expect("the edited project builds");
    let Ok(outs) = compile::run_binary(&bin, &lowered.graph, &inputs, work) else { return false };
    let want = match_core::interp::run(&lowered.graph, &inputs[0]).expect("interpreter");
    outs[0].iter().zip(&want).all(|(got, w)| diff(got, w).is_none())
}

#[test]
fn skipping_the_load_without_keeping_the_buffer_fails() {
    let id = "mlperf-tiny/ad01_int8";
    let Some((project, n, lowered)) = run(id, "gap9", true) else { return };
    assert!(n > 0);
    let c_file = project.join("res.c");
    let text = std::fs::read_to_string(&c_file).expect("generated C");
    // 1. The producers do not declare their output buffers live.
    let no_keep: String =
        text.lines().filter(|l| !l.contains("gap9_keep(")).map(|l| format!("{l}\n")).collect();
    assert_ne!(no_keep, text, "no keep call in the generated code");
    std::fs::write(&c_file, &no_keep).expect("write");
    assert!(
        !still_exact(&project, &lowered, id, &project.join("io-nokeep")),
        "the consumers read their input although no producer kept it"
    );
    // 2. A consumer's input buffer moved off its producer's output buffer
    // (the first resident consumer's in_buf slots point 4 bytes further).
    let mut moved = String::new();
    let mut done = false;
    for line in text.lines() {
        if !done && line.contains("mt_layer_t L = {1, ") && line.contains("_tile, NULL, ") {
            let start = line.find("}, {").map(|_| ()).and(line.find(", 0, {")).expect("the in_buf slots");
            let rest = &line[start + 4..];
            let end = rest.find('}').expect("slot end");
            let slots = rest[..end].replace(" + ", " + 4 + ");
            moved.push_str(&format!("{}{}{}\n", &line[..start + 4], slots, &rest[end..]));
            done = true;
        } else {
            moved.push_str(line);
            moved.push('\n');
        }
    }
    assert!(done, "no resident consumer in the generated code");
    std::fs::write(&c_file, &moved).expect("write");
    assert!(
        !still_exact(&project, &lowered, id, &project.join("io-moved")),
        "a consumer reading off its producer's buffer is still bit-exact"
    );
}

/// A chain of three small convolutions (3x3, depthwise 3x3, 1x1), each
/// with bias and per-channel requantization, whose tensors all fit
/// host-tiled's 16 KiB of L1 in one tile: the portable kernels' path
/// (`mk_conv2d` on the tile buffers) with resident inputs.
fn small_chain() -> match_core::ir::Graph {
    use match_core::ir::{DType, Data, Graph, Op, Quant};
    use match_tests::fixtures::{c, fixed_requant, i8s, n, t, values};
    let mut g = Graph::default();
    let x = t(&mut g, "x", &[1, 6, 6, 8], DType::I8);
    g.tensor_mut(x).quant = Some(Quant::per_tensor(0.05, -3));
    let mut cur = x;
    for (i, (k, f, groups)) in [(8usize, 3usize, 1usize), (8, 3, 8), (4, 1, 1)].into_iter().enumerate() {
        let cin = 8;
        let wt = c(
            &mut g,
            &format!("w{i}"),
            &[k, f, f, cin / groups],
            i8s(10 + i as u64, k * f * f * cin / groups),
        );
        let b = c(
            &mut g,
            &format!("b{i}"),
            &[k],
            Data::I32(values(20 + i as u64, k, -500, 500).into_iter().map(|v| v as i32).collect()),
        );
        let acc = t(&mut g, &format!("acc{i}"), &[1, 6, 6, k], DType::I32);
        let biased = t(&mut g, &format!("biased{i}"), &[1, 6, 6, k], DType::I32);
        let y = t(&mut g, &format!("y{i}"), &[1, 6, 6, k], DType::I8);
        g.tensor_mut(y).quant = Some(Quant::per_tensor(0.05, -3));
        let p = f / 2;
        let conv = Op::Conv2d {
            stride: [1, 1],
            dilation: [1, 1],
            pad: [p, p, p, p],
            groups,
            x_zp: -3,
            w_zp: vec![0],
        };
        let name = format!("conv{i}");
        n(&mut g, &name, conv, &[cur, wt], &[acc]);
        n(&mut g, &name, Op::BiasAdd, &[acc, b], &[biased]);
        n(
            &mut g,
            &name,
            Op::Requantize { requant: fixed_requant(k, 30 + i as u64), out_zp: -3 },
            &[biased],
            &[y],
        );
        cur = y;
    }
    g.inputs = vec![x];
    g.outputs = vec![cur];
    g
}

#[test]
fn a_small_chain_is_resident_and_bit_exact_on_host_tiled() {
    let mut graph = small_chain();
    match_core::passes::prepare(&mut graph).expect("prepares");
    let (hw, platform) = match_targets::resolve("host-tiled").expect("host-tiled");
    let lowered =
        match_core::lower::lower_for_target(&graph, &hw, Objective::Latency, false).expect("lowers");
    let linked = links(&lowered.mapping);
    assert_eq!(linked, [(0, 1), (1, 2)], "the three convolutions form one resident chain");
    let plans = match_core::emit::emitted_tiling(&lowered.graph, &hw, &lowered.mapping, platform.as_deref())
        .expect("plans");
    replay(&plans, &linked);
    let dir = tmp(&["host-tiled", "small_chain"]);
    let inputs = match_tests::fixtures::input_sets(&lowered.graph, 3);
    let project = emit_build_check(
        &lowered.graph,
        &hw,
        &lowered.mapping,
        platform,
        &dir,
        "res",
        &inputs,
        "small chain",
    );
    let text = std::fs::read_to_string(project.join("res.c")).expect("generated C");
    assert_eq!(text.matches("_tile, NULL, ").count(), 2, "two consumers without an input load");
}

/// A 1x1 convolution (16 -> 16 channels on 4x4 pixels), a flattening
/// reshape of its 256 B output and a dense layer (256 -> 64), each with
/// bias and per-channel requantization: on gap9 both run on the cluster
/// (the dense layer's 16 K MACs are cheaper there than on the fabric
/// controller) and everything fits L1 in one tile.
fn flatten_chain() -> match_core::ir::Graph {
    use match_core::ir::{DType, Data, Graph, Op, Quant};
    use match_tests::fixtures::{c, fixed_requant, i8s, n, t, values};
    let mut g = Graph::default();
    let x = t(&mut g, "x", &[1, 4, 4, 16], DType::I8);
    g.tensor_mut(x).quant = Some(Quant::per_tensor(0.05, -3));
    let bias = |g: &mut Graph, name: &str, k: usize, seed: u64| {
        let v = values(seed, k, -500, 500).into_iter().map(|v| v as i32).collect();
        c(g, name, &[k], Data::I32(v))
    };
    let w0 = c(&mut g, "w0", &[16, 1, 1, 16], i8s(10, 16 * 16));
    let b0 = bias(&mut g, "b0", 16, 20);
    let acc0 = t(&mut g, "acc0", &[1, 4, 4, 16], DType::I32);
    let biased0 = t(&mut g, "biased0", &[1, 4, 4, 16], DType::I32);
    let y = t(&mut g, "y", &[1, 4, 4, 16], DType::I8);
    g.tensor_mut(y).quant = Some(Quant::per_tensor(0.05, -3));
    let conv = Op::Conv2d {
        stride: [1, 1],
        dilation: [1, 1],
        pad: [0, 0, 0, 0],
        groups: 1,
        x_zp: -3,
        w_zp: vec![0],
    };
    n(&mut g, "conv", conv, &[x, w0], &[acc0]);
    n(&mut g, "conv", Op::BiasAdd, &[acc0, b0], &[biased0]);
    n(&mut g, "conv", Op::Requantize { requant: fixed_requant(16, 30), out_zp: -3 }, &[biased0], &[y]);
    let flat = t(&mut g, "flat", &[1, 256], DType::I8);
    g.tensor_mut(flat).quant = Some(Quant::per_tensor(0.05, -3));
    n(&mut g, "flatten", Op::Reshape, &[y], &[flat]);
    let w1 = c(&mut g, "w1", &[64, 256], i8s(11, 64 * 256));
    let b1 = bias(&mut g, "b1", 64, 21);
    let acc1 = t(&mut g, "acc1", &[1, 64], DType::I32);
    let biased1 = t(&mut g, "biased1", &[1, 64], DType::I32);
    let out = t(&mut g, "out", &[1, 64], DType::I8);
    g.tensor_mut(out).quant = Some(Quant::per_tensor(0.05, -3));
    n(&mut g, "dense", Op::Dense { x_zp: -3, w_zp: vec![0] }, &[flat, w1], &[acc1]);
    n(&mut g, "dense", Op::BiasAdd, &[acc1, b1], &[biased1]);
    n(&mut g, "dense", Op::Requantize { requant: fixed_requant(64, 31), out_zp: -3 }, &[biased1], &[out]);
    g.inputs = vec![x];
    g.outputs = vec![out];
    g
}

/// The flattening chain lowered and mapped for gap9 as `matchc compile` does.
fn flatten_chain_on_gap9() -> (match_dsl::HwModel, Option<PathBuf>, match_core::lower::Lowered) {
    let mut graph = flatten_chain();
    match_core::passes::prepare(&mut graph).expect("prepares");
    let (hw, platform) = match_targets::resolve("gap9").expect("gap9");
    let lowered =
        match_core::lower::lower_for_target(&graph, &hw, Objective::Latency, false).expect("lowers");
    (hw, platform, lowered)
}

/// A link through a reshape: the convolution keeps its output in L1, the
/// reshape runs no code but declares the kept bytes as its buffer and
/// keeps them again (the emulation scrubs what a layer does not keep),
/// and the dense layer reads them in place, bit-exact with counters equal.
/// Without the reshape's `keep` the dense layer computes on the scrub
/// pattern and the output is no longer bit-exact.
#[test]
fn a_link_through_a_reshape_is_bit_exact_on_gap9() {
    let (hw, platform, lowered) = flatten_chain_on_gap9();
    let names: Vec<&str> = lowered.mapping.layers.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["l00_conv2d", "l01_reshape", "l02_dense"]);
    assert_eq!(links(&lowered.mapping), [(0, 2)], "the convolution is linked to the dense layer");
    let explained = match_core::mapping::explain(&lowered.graph, &hw, &lowered.mapping);
    for line in [
        "output kept in L1 for layer 2: no write-back",
        "runs no code: layer 0's output stays in L1 through it for layer 2",
        "input resident in L1 from layer 0 (its output buffer): no input load",
    ] {
        assert!(explained.contains(line), "{line}:\n{explained}");
    }
    let plans = match_core::emit::emitted_tiling(&lowered.graph, &hw, &lowered.mapping, platform.as_deref())
        .expect("plans");
    replay(&plans, &[(0, 2)]);
    let dir = tmp(&["gap9", "flatten_chain"]);
    let inputs = match_tests::fixtures::input_sets(&lowered.graph, 3);
    let what = "flatten chain on gap9";
    let project =
        emit_build_check(&lowered.graph, &hw, &lowered.mapping, platform, &dir, "res", &inputs, what);
    let c_file = project.join("res.c");
    let text = std::fs::read_to_string(&c_file).expect("generated C");
    assert_eq!(text.matches("_tile, NULL, ").count(), 1, "one consumer without an input load");
    // The reshape's function without its keep call.
    let mut in_reshape = false;
    let mut broken = String::new();
    for line in text.lines() {
        in_reshape = (in_reshape || line.starts_with("static void l01_reshape(")) && line != "}";
        if !(in_reshape && line.contains("gap9_keep(")) {
            broken.push_str(line);
            broken.push('\n');
        }
    }
    assert!(broken.len() < text.len(), "no keep call in the reshape's function");
    std::fs::write(&c_file, &broken).expect("write");
    let (bin, work) = (project.clone(), project.join("io-nokeep"));
    let vars = [("CC", "gcc"), ("CFLAGS", SANITIZED_CFLAGS), ("BUILD", "build-broken")];
    let bin = compile::build(&bin, "res", &vars).expect("the edited project builds");
    let exact = compile::run_binary(&bin, &lowered.graph, &inputs, &work).is_ok_and(|outs| {
        outs.iter().zip(&inputs).all(|(got, inp)| {
            let want = match_core::interp::run(&lowered.graph, inp).expect("interpreter");
            got.iter().zip(&want).all(|(g, w)| diff(g, w).is_none())
        })
    });
    assert!(!exact, "the dense layer read its input although the reshape did not keep it");
}

/// KWS on gap9's cluster alone (the offload rules of NE16 and of the
/// fabric controller removed, the "cluster only" configuration of
/// docs/results.md): its classifier's dense layer runs on the cluster,
/// and the average pool before the flattening keeps its output for it
/// (the shipped file runs the dense layer on the fabric controller: no
/// link). Bit-exact, counters equal.
#[test]
fn kws_links_through_its_flattening_on_the_gap9_cluster() {
    let id = "mlperf-tiny/kws_ref_model";
    if match_tests::shared_models().is_none() {
        return;
    }
    let (e, hw, platform, _) = lowered_golden(id, "gap9");
    let mut cluster = hw.clone();
    cluster.offloads.retain(|o| o.unit == "cluster");
    let root = match_tests::repo_root();
    let graph = match_core::frontend::load(&root.join(&e.model), &Default::default()).expect("loads");
    let lowered =
        match_core::lower::lower_for_target(&graph, &cluster, Objective::Latency, false).expect("lowers");
    let m = &lowered.mapping;
    let linked = links(m);
    let through: Vec<(usize, usize)> = linked.iter().copied().filter(|&(i, j)| j > i + 1).collect();
    assert_eq!(through.len(), 1, "{linked:?}");
    let (i, j) = through[0];
    assert_eq!((m.layers[i].name.as_str(), m.layers[j].name.as_str()), ("l09_avgpool", "l11_dense"));
    assert_eq!(linked.len(), 10, "{linked:?}");
    let plans =
        match_core::emit::emitted_tiling(&lowered.graph, &cluster, m, platform.as_deref()).expect("plans");
    replay(&plans, &linked);
    let dir = tmp(&["gap9-cluster", id]);
    let inputs = vec![e.case_inputs(0)];
    emit_build_check(&lowered.graph, &cluster, m, platform, &dir, "res", &inputs, "kws on the gap9 cluster");
}

/// A 1x1 convolution (16 -> 16 channels on 16x16 pixels, bias and
/// per-channel requantization) and a TFLite addition of its output and of
/// the graph's input (which the convolution also reads): `add(y, x)` with
/// `y_first`, else `add(x, y)`.
fn residual(y_first: bool) -> match_core::ir::Graph {
    use match_core::ir::{AddKind, AddParams, DType, Data, Graph, Op, Quant};
    use match_tests::fixtures::{c, fixed_requant, i8s, n, t, values};
    let mut g = Graph::default();
    let shape = [1, 16, 16, 16];
    let x = t(&mut g, "x", &shape, DType::I8);
    g.tensor_mut(x).quant = Some(Quant::per_tensor(0.05, -3));
    let w = c(&mut g, "w", &[16, 1, 1, 16], i8s(12, 16 * 16));
    let b =
        c(&mut g, "b", &[16], Data::I32(values(22, 16, -500, 500).into_iter().map(|v| v as i32).collect()));
    let acc = t(&mut g, "acc", &shape, DType::I32);
    let biased = t(&mut g, "biased", &shape, DType::I32);
    let y = t(&mut g, "y", &shape, DType::I8);
    g.tensor_mut(y).quant = Some(Quant::per_tensor(0.05, -3));
    let conv = Op::Conv2d {
        stride: [1, 1],
        dilation: [1, 1],
        pad: [0, 0, 0, 0],
        groups: 1,
        x_zp: -3,
        w_zp: vec![0],
    };
    n(&mut g, "conv", conv, &[x, w], &[acc]);
    n(&mut g, "conv", Op::BiasAdd, &[acc, b], &[biased]);
    n(&mut g, "conv", Op::Requantize { requant: fixed_requant(16, 32), out_zp: -3 }, &[biased], &[y]);
    let out = t(&mut g, "out", &shape, DType::I8);
    g.tensor_mut(out).quant = Some(Quant::per_tensor(0.1, 2));
    let params = AddParams {
        left_shift: 20,
        in_zp: [-3, -3],
        in_multiplier: [1_500_000_000, 1_200_000_000],
        in_shift: [-1, -2],
        out_multiplier: 1_800_000_000,
        out_shift: -19,
        out_zp: 2,
    };
    let inputs = if y_first { [y, x] } else { [x, y] };
    n(&mut g, "add", Op::Add { kind: AddKind::TfLite(params) }, &inputs, &[out]);
    g.inputs = vec![x];
    g.outputs = vec![out];
    g
}

/// An addition with one input resident: the convolution keeps its output
/// for it, the addition loads only the graph's input, into the second half
/// of its input buffer (the resident input is the first: with `b`
/// resident the addition runs as add(b, a) with its inputs' parameters
/// exchanged); bit-exact with counters equal on gap9, in both input
/// orders. Without the convolution's `keep` the addition computes on the
/// scrub pattern and is no longer bit-exact.
#[test]
fn an_addition_reads_one_input_resident_on_gap9() {
    for y_first in [true, false] {
        let mut graph = residual(y_first);
        match_core::passes::prepare(&mut graph).expect("prepares");
        let (hw, platform) = match_targets::resolve("gap9").expect("gap9");
        let lowered =
            match_core::lower::lower_for_target(&graph, &hw, Objective::Latency, false).expect("lowers");
        let m = &lowered.mapping;
        let units: Vec<&str> = m.layers.iter().map(|l| l.unit.as_str()).collect();
        assert_eq!(links(m), [(0, 1)], "y_first {y_first}: {units:?}");
        let plans =
            match_core::emit::emitted_tiling(&lowered.graph, &hw, m, platform.as_deref()).expect("plans");
        replay(&plans, &[(0, 1)]);
        let q = plans[1].as_ref().expect("a tiled addition");
        assert_eq!(q.resident_input, usize::from(!y_first), "the resident input is y");
        let explained = match_core::mapping::explain(&lowered.graph, &hw, m);
        assert!(explained.contains("its other input is loaded from L2 (only layer 0's output is resident)"));
        let dir = tmp(&["gap9", if y_first { "add_y_x" } else { "add_x_y" }]);
        let inputs = match_tests::fixtures::input_sets(&lowered.graph, 3);
        let what = format!("residual add, y first: {y_first}");
        let project = emit_build_check(&lowered.graph, &hw, m, platform, &dir, "res", &inputs, &what);
        let c_file = project.join("res.c");
        let text = std::fs::read_to_string(&c_file).expect("generated C");
        assert_eq!(text.contains("computed as add(b, a)"), !y_first, "the operands in buffer order");
        let loads = text.lines().filter(|l| l.contains("mt_box(1, buf") && l.contains("MT_CH_IN")).count();
        assert_eq!(loads, 2, "the convolution's load and the addition's one load");
        let no_keep: String =
            text.lines().filter(|l| !l.contains("gap9_keep(")).map(|l| format!("{l}\n")).collect();
        assert_ne!(no_keep, text, "no keep call");
        std::fs::write(&c_file, &no_keep).expect("write");
        let vars = [("CC", "gcc"), ("CFLAGS", SANITIZED_CFLAGS), ("BUILD", "build-broken")];
        let bin = compile::build(&project, "res", &vars).expect("the edited project builds");
        let exact = compile::run_binary(&bin, &lowered.graph, &inputs, &project.join("io-nokeep")).is_ok_and(
            |outs| {
                outs.iter().zip(&inputs).all(|(got, inp)| {
                    let want = match_core::interp::run(&lowered.graph, inp).expect("interpreter");
                    got.iter().zip(&want).all(|(g, w)| diff(g, w).is_none())
                })
            },
        );
        assert!(!exact, "y_first {y_first}: the addition read y although the convolution did not keep it");
    }
}

/// `AddKind::swapped`: add(b, a) of the swapped kind is add(a, b), element
/// for element, for every kind of addition (the interpreter on both).
#[test]
fn a_swapped_addition_equals_the_addition() {
    use match_core::ir::{AddKind, AddParams, DType, Graph, Op};
    use match_tests::fixtures::{input_sets, n, t};
    let tflite = AddParams {
        left_shift: 20,
        in_zp: [4, -2],
        in_multiplier: [1_500_000_000, 1_200_000_000],
        in_shift: [-1, -2],
        out_multiplier: 1_800_000_000,
        out_shift: -19,
        out_zp: 3,
    };
    let float = AddKind::Float { a_scale: 0.1, a_zp: 4, b_scale: 0.05, b_zp: -1, y_scale: 0.13, y_zp: 3 };
    for kind in [AddKind::Integer, AddKind::Wrapping, AddKind::TfLite(tflite), float] {
        let mut g = Graph::default();
        let a = t(&mut g, "a", &[1, 4, 4, 8], DType::I8);
        let b = t(&mut g, "b", &[1, 4, 4, 8], DType::I8);
        let (y, z) = (t(&mut g, "y", &[1, 4, 4, 8], DType::I8), t(&mut g, "z", &[1, 4, 4, 8], DType::I8));
        n(&mut g, "ab", Op::Add { kind: kind.clone() }, &[a, b], &[y]);
        n(&mut g, "ba", Op::Add { kind: kind.swapped() }, &[b, a], &[z]);
        g.inputs = vec![a, b];
        g.outputs = vec![y, z];
        for inputs in input_sets(&g, 4) {
            let out = match_core::interp::run(&g, &inputs).expect("interpreter");
            assert_eq!(out[0], out[1], "{kind:?}");
        }
    }
}

/// The layouts on the way: a reshape is free only in the model's own
/// element order, so a link through one is refused when the mapping puts a
/// layout conversion before the reshape (the producer's unit writes
/// another order, e.g. CHW) or before the consumer.
#[test]
fn a_link_through_a_reshape_is_refused_across_a_layout_conversion() {
    let (hw, _, lowered) = flatten_chain_on_gap9();
    let g = &lowered.graph;
    // The mapping before residency.
    let mapped = match_core::mapping::map_with(g, &hw, Objective::Latency).expect("maps");
    let mut plain = mapped.clone();
    match_core::mapping::apply_residency(g, &hw, &mut plain, Objective::Latency);
    assert_eq!(links(&plain), [(0, 2)], "linked without a conversion");
    // A conversion charged at the reshape, then at the dense layer.
    for converted in [1, 2] {
        let mut mapping = mapped.clone();
        let s = mapping.layers[converted].schedule.as_mut().expect("scheduled");
        s.conversion_cycles = 512.0;
        s.cycles.overhead += 512.0;
        s.cycles.total += 512.0;
        match_core::mapping::apply_residency(g, &hw, &mut mapping, Objective::Latency);
        assert_eq!(links(&mapping), [], "linked across a conversion at layer {converted}");
    }
}

#[test]
fn explain_and_report_name_the_links() {
    let Some(models) = match_tests::shared_models() else { return };
    let model = models.join("mlperf-tiny/kws_ref_model.tflite");
    let (hw, platform) = match_targets::resolve("gap9").expect("gap9");
    let options = compile::CompileOptions {
        out_dir: tmp(&["report", "kws"]).join("project"),
        model_name: None,
        platform_dir: platform,
    };
    let (graph, compiled) =
        compile::compile_file(&model, &Default::default(), &hw, &options).expect("compiles");
    let text = compile::explain(&hw, &compiled);
    assert!(text.contains("output kept in L1 for layer 1: no write-back"), "{text}");
    assert!(text.contains("input resident in L1 from layer 0 (its output buffer): no input load"), "{text}");
    let report = compile::report_json(&graph, &hw, &compiled, "kws_ref_model.tflite");
    let l1 = &report["layers"][1]["tiles"];
    assert_eq!((l1["input_resident_from"].as_u64(), l1["output_kept_for"].as_u64()), (Some(0), Some(2)));
    // A layer without residency has neither field (the version-1 fields unchanged).
    let last = report["layers"].as_array().expect("layers").iter().rev().find(|l| l["tiles"].is_object());
    let t = &last.expect("a scheduled layer")["tiles"];
    assert!(t.get("input_resident_from").is_none() || t["input_resident_from"].is_u64());
    for key in ["from", "to", "K", "C", "OY", "OX", "order", "buffering", "calls", "bytes"] {
        assert!(l1.get(key).is_some(), "tiles.{key}");
    }
}

/// The unit selection costs layers alone: on gap9, AD01's 128 -> 8
/// bottleneck dense layer is cheapest on the fabric controller (964 cycles
/// against 1837 on the cluster), which breaks the cluster chain around it.
/// The residency pass moves it to the cluster when the chain then lowers
/// the model's total, so the shipped target is not beaten by its own
/// cluster-only configuration (as it was: 52485 against 51844 cycles).
#[test]
fn a_layer_moves_to_the_cluster_when_the_chain_wins() {
    if match_tests::shared_models().is_none() {
        return;
    }
    let (_, hw, _, lowered) = lowered_golden("mlperf-tiny/ad01_int8", "gap9");
    let total = |m: &match_core::mapping::Mapping| -> f64 {
        m.layers.iter().filter_map(|l| l.schedule.as_ref()).map(|s| s.cycles.total).sum()
    };
    let moved = lowered
        .mapping
        .layers
        .iter()
        .find(|l| l.unit == "cluster" && l.alternatives.iter().any(|a| a.0 == "fc" && a.2 < 1000.0))
        .expect("the bottleneck layer on the cluster");
    let s = moved.schedule.as_ref().unwrap();
    assert!(s.input_from.is_some() && s.output_to.is_some(), "{s:?}");
    // Against the cluster-only configuration (NE16's rules removed).
    let mut cluster_only = hw.clone();
    cluster_only.offloads.retain(|o| o.unit != "ne16");
    let root = match_tests::repo_root();
    let e =
        match_tests::golden::manifest().models.into_iter().find(|e| e.id == "mlperf-tiny/ad01_int8").unwrap();
    let graph = match_core::frontend::load(&root.join(&e.model), &Default::default()).unwrap();
    let only = match_core::lower::lower_for_target(&graph, &cluster_only, Objective::Latency, false).unwrap();
    assert!(
        total(&lowered.mapping) <= total(&only.mapping),
        "{} > {}",
        total(&lowered.mapping),
        total(&only.mapping)
    );
    // Every layer's exactness names the unit it runs on.
    for (l, x) in lowered.mapping.layers.iter().zip(&lowered.exactness) {
        assert!(
            !x.reason.contains("implements") || x.reason.starts_with(&l.unit),
            "{}: {}",
            l.name,
            x.reason
        );
    }
}
