//! The shipped targets: every one checks; `resolve` finds them by name and
//! by path; the cost expressions of gap9.hwm (NE16, DORY's model) and
//! diana.hwm (digital array, MATCH's model) give the cycles computed by
//! hand from HARDWARE.md's formulas; the offload constraints accept and
//! reject what HARDWARE.md says the units can and cannot run.

use match_dsl::model::{LayoutStep, Offload, Unit};
use match_dsl::{HwModel, Layer, Verdict};
use std::path::PathBuf;

fn model(name: &str) -> HwModel {
    match match_targets::get(name) {
        Some(Ok(m)) => m,
        Some(Err(d)) => panic!("{name} does not check:\n{d}"),
        None => panic!("no shipped target {name}"),
    }
}

fn unit<'a>(m: &'a HwModel, name: &str) -> &'a Unit {
    m.unit(name).unwrap_or_else(|| panic!("{} has no unit {name}", m.name))
}

fn cycles(m: &HwModel, unit_name: &str, layer: &Layer) -> f64 {
    m.call_cycles(unit(m, unit_name), layer)
        .unwrap_or_else(|e| panic!("{unit_name} cycles of {layer:?}: {e:?}"))
        .unwrap_or_else(|| panic!("{unit_name} states no cycles"))
}

/// The first offload of `pattern` to `unit`, in file order.
fn offload<'a>(m: &'a HwModel, pattern: &str, unit: &str) -> &'a Offload {
    m.offloads
        .iter()
        .find(|o| o.pattern == pattern && o.unit == unit)
        .unwrap_or_else(|| panic!("{} has no offload of {pattern} to {unit}", m.name))
}

/// The offload of `pattern` to `unit` calling `kernel`.
fn rule<'a>(m: &'a HwModel, pattern: &str, unit: &str, kernel: &str) -> &'a Offload {
    m.offloads
        .iter()
        .find(|o| o.pattern == pattern && o.unit == unit && o.kernel == kernel)
        .unwrap_or_else(|| panic!("{} has no offload of {pattern} to {unit} calling {kernel}", m.name))
}

/// The kernel `unit` runs `layer` (matched by `pattern`) with: the first
/// rule in file order whose condition holds.
fn chosen<'a>(m: &'a HwModel, pattern: &str, unit: &str, layer: &Layer) -> Option<&'a Offload> {
    m.offloads.iter().filter(|o| o.unit == unit && o.pattern == pattern).find(|o| accepts(m, o, layer))
}

fn accepts(m: &HwModel, o: &Offload, layer: &Layer) -> bool {
    match m.check_offload(o, layer).expect("constraints evaluate") {
        Verdict::Accepted => true,
        Verdict::Rejected { .. } => false,
    }
}

/// The constraint that rejects `layer`, or a panic if it is accepted.
fn rejection(m: &HwModel, o: &Offload, layer: &Layer) -> String {
    match m.check_offload(o, layer).expect("constraints evaluate") {
        Verdict::Accepted => panic!("{} accepts {layer:?}", o.kernel),
        Verdict::Rejected { constraint } => constraint,
    }
}

// ------------------------------------------------------------------ catalog

#[test]
fn the_three_targets_are_shipped() {
    let names: Vec<&str> = match_targets::names().collect();
    for n in ["diana", "gap9", "host"] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "names are sorted");
    assert!(match_targets::source("gap9").is_some_and(|s| s.contains("target gap9")));
    assert!(match_targets::source("nope").is_none());
    assert!(match_targets::get("nope").is_none());
    assert!(match_targets::platform_dir("nope").is_none());
}

#[test]
fn every_shipped_target_checks() {
    for name in match_targets::names() {
        let m = model(name);
        // `target` names are identifiers: a file stem's `-` reads as `_`.
        assert_eq!(m.name, name.replace('-', "_"), "the target is named as its file");
        // The build script's light scan of `platform` agrees with the checker.
        let dir = match_targets::platform_dir(name).expect("every shipped target names its platform");
        assert_eq!(m.platform.as_deref(), dir.file_name().and_then(|s| s.to_str()));
        assert!(dir.is_dir(), "{} is not a folder", dir.display());
        assert!(dir.join("README.md").is_file());
    }
}

#[test]
fn pinned_memory_numbers() {
    let g = model("gap9");
    assert_eq!(g.clock_hz, 370_000_000);
    let l1 = g.memory("L1").unwrap();
    assert_eq!((l1.size, l1.usable()), (131072, 120000));
    assert!(l1.double_buffer);
    assert_eq!(g.memory("L2").unwrap().usable(), 1536000);
    let l3 = g.memory("L3").unwrap();
    assert_eq!(l3.size, 8000000);
    assert!(l3.external);
    let dma = g.dma("L1", "L2").expect("L2 <-> L1 both ways");
    assert_eq!(dma.bandwidth, 8.0);
    assert_eq!(dma.max_bytes, Some(65535));
    assert_eq!(dma.dims, 3);
    assert_eq!(g.host_unit().name, "fc");

    let d = model("diana");
    assert_eq!(d.clock_hz, 100_000_000);
    for (mem, bytes) in [("L1", 256000), ("WD", 64000), ("WA", 147456), ("L2", 512000)] {
        assert_eq!(d.memory(mem).unwrap().usable(), bytes, "diana {mem}");
    }
    assert_eq!(unit(&d, "analog").adc_bits, Some(6));
    assert_eq!(unit(&d, "digital").macs_per_cycle, 256.0);
}

// ------------------------------------------------------------------ resolve

#[test]
fn resolve_by_name() {
    let (m, dir) = match_targets::resolve("gap9").expect("gap9 resolves");
    assert_eq!(m.name, "gap9");
    let dir = dir.expect("gap9 has a platform folder");
    assert!(dir.ends_with("targets/gap9"), "{}", dir.display());
    assert!(dir.is_dir());
}

#[test]
fn unknown_names_list_the_shipped_targets() {
    let err = match_targets::resolve("gap8").expect_err("gap8 is not shipped");
    let msg = err.to_string();
    assert!(msg.contains("gap8"), "{msg}");
    for n in match_targets::names() {
        assert!(msg.contains(n), "{msg} does not list {n}");
    }
}

/// A fresh folder outside the repository, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("match-targets-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn resolve_by_path_finds_the_platform_beside_the_file() {
    let tmp = TempDir::new("path");
    let file = tmp.0.join("my_soc.hwm");
    std::fs::write(&file, match_targets::source("gap9").unwrap()).unwrap();
    let (m, dir) = match_targets::resolve(file.to_str().unwrap()).expect("the copy resolves");
    assert_eq!(m, model("gap9"), "same text, same model");
    assert_eq!(dir, Some(tmp.0.join("gap9")), "platform relative to the file");

    // A file without `platform` has no platform folder.
    let bare = tmp.0.join("bare.hwm");
    let text = match_targets::source("host").unwrap().replace("platform \"host\"", "");
    std::fs::write(&bare, text).unwrap();
    let (m, dir) = match_targets::resolve(bare.to_str().unwrap()).expect("bare resolves");
    assert_eq!(m.name, "host");
    assert_eq!(dir, None);
}

#[test]
fn resolve_by_path_reports_missing_and_invalid_files() {
    let tmp = TempDir::new("bad");
    let missing = tmp.0.join("missing.hwm");
    let err = match_targets::resolve(missing.to_str().unwrap()).expect_err("missing file");
    assert!(matches!(err, match_targets::TargetError::Load(_)), "{err}");
    assert!(err.to_string().contains("missing.hwm"), "{err}");

    let broken = tmp.0.join("broken.hwm");
    std::fs::write(&broken, "target broken {\n    clock 1 MHz\n}\n").unwrap();
    let err = match_targets::resolve(broken.to_str().unwrap()).expect_err("no memory, no unit");
    assert!(matches!(err, match_targets::TargetError::Load(_)), "{err}");
}

#[test]
fn paths_and_names_are_told_apart() {
    assert!(match_targets::is_path("soc.hwm"));
    assert!(match_targets::is_path("dir/soc"));
    assert!(match_targets::is_path("./gap9"));
    assert!(!match_targets::is_path("gap9"));
}

// ------------------------------------------------------ NE16 cycles (gap9)
//
// Expected values computed by hand (python3) from HARDWARE.md's restatement
// of DORY's NE16 model, with the reading documented in gap9.hwm:
//   load = 19 (1x1) or 31;  so = 3 + 3*3*1 + 1 = 13;  wo(k) = 6 + k (dw) or 6
//   mv(k) = 6 + k (1x1) or 6 + 8k
//   nq(k) = [requant: ceil(32/4) = 8] + 9 + ceil(k/4) + [bias: 8 + ceil(k/8)]
//   kb = 16 (dw) or 32;  n_in = ceil(C/16)
//   n_sp = ceil(OY/3)*ceil(OX/3), stride 2: ceil(OY/2)*ceil(OX/2)
//   iteration(k) = n_in*(load + 6 + mv(k) + 2) + nq(k) + so
//                  (dw: load + wo(k) + mv(k) + 2 + nq(k) + so)
//   total = n_sp * (div(K, kb)*iteration(kb) + [K mod kb: iteration(K mod kb)])

#[test]
fn ne16_cycles_1x1() {
    let g = model("gap9");
    // K=64 C=32 8x8: nq(32) = 8 + 9 + 8 + (8 + 4) = 37; mv(32) = 38;
    // iteration(32) = 2*(19 + 6 + 38 + 2) + 37 + 13 = 180; n_sp = 3*3 = 9;
    // total = 9 * (2*180) = 3240
    assert_eq!(cycles(&g, "ne16", &Layer::conv(64, 32, 8, 8, 1, 1, 1, 0)), 3240.0);
}

#[test]
fn ne16_cycles_3x3() {
    let g = model("gap9");
    // K=32 C=16 16x16 pad 1: mv(32) = 6 + 256 = 262; n_in = 1;
    // iteration(32) = 1*(31 + 6 + 262 + 2) + 37 + 13 = 351; n_sp = 6*6 = 36;
    // total = 36 * 351 = 12636
    assert_eq!(cycles(&g, "ne16", &Layer::conv(32, 16, 16, 16, 3, 3, 1, 1)), 12636.0);
}

#[test]
fn ne16_cycles_3x3_stride_2() {
    let g = model("gap9");
    // K=64 C=32 out 8x8 stride 2: n_in = 2; iteration(32) = 2*301 + 37 + 13
    // = 652; n_sp = ceil(8/2)*ceil(8/2) = 16; total = 16 * (2*652) = 20864
    assert_eq!(cycles(&g, "ne16", &Layer::conv(64, 32, 8, 8, 3, 3, 2, 1)), 20864.0);
}

#[test]
fn ne16_cycles_depthwise() {
    let g = model("gap9");
    // C=64 16x16 3x3 dw: kb = 16; wo(16) = 22; mv(16) = 6 + 128 = 134;
    // nq(16) = 8 + 9 + 4 + (8 + 2) = 31; iteration(16) = 31 + 22 + 134 + 2
    // + 31 + 13 = 233; n_sp = 36; total = 36 * (4*233) = 33552
    assert_eq!(cycles(&g, "ne16", &Layer::depthwise(64, 16, 16, 3, 3, 1, 1)), 33552.0);
}

#[test]
fn ne16_cycles_remainder_channels() {
    let g = model("gap9");
    // K=40 C=24 out 5x7 3x3: n_in = 2; iteration(32) = 652;
    // rem 8: mv(8) = 70, nq(8) = 8 + 9 + 2 + (8 + 1) = 28,
    // iteration(8) = 2*(31 + 6 + 70 + 2) + 28 + 13 = 259;
    // n_sp = ceil(5/3)*ceil(7/3) = 2*3 = 6; total = 6 * (652 + 259) = 5466
    assert_eq!(cycles(&g, "ne16", &Layer::conv(40, 24, 5, 7, 3, 3, 1, 1)), 5466.0);
}

#[test]
fn ne16_cycles_depthwise_stride_2_remainder() {
    let g = model("gap9");
    // C=40 out 6x6 3x3 dw stride 2: iteration(16) = 233; rem 8: wo(8) = 14,
    // mv(8) = 70, nq(8) = 28, iteration(8) = 31 + 14 + 70 + 2 + 28 + 13 = 158;
    // n_sp = 3*3 = 9; total = 9 * (2*233 + 158) = 5616
    assert_eq!(cycles(&g, "ne16", &Layer::depthwise(40, 6, 6, 3, 3, 2, 1)), 5616.0);
}

#[test]
fn ne16_cycles_without_bias_or_requant() {
    let g = model("gap9");
    // K=10 C=64 1x1 out 1x1, int32 out: n_in = 4; only a remainder of 10:
    // mv(10) = 16, nq(10) = 9 + ceil(10/4) = 12,
    // iteration(10) = 4*(19 + 6 + 16 + 2) + 12 + 13 = 197; n_sp = 1; total 197
    let l =
        Layer { has_bias: false, has_requant: false, out_bits: 32, ..Layer::conv(10, 64, 1, 1, 1, 1, 1, 0) };
    assert_eq!(cycles(&g, "ne16", &l), 197.0);
}

#[test]
fn ne16_helpers_match_hardware_md() {
    let g = model("gap9");
    let l1 = Layer::conv(32, 16, 3, 3, 1, 1, 1, 0);
    let l3 = Layer::conv(32, 16, 3, 3, 3, 3, 1, 1);
    let call = |l: &Layer, f: &str, args: &[f64]| g.call_def(f, args, l).unwrap();
    assert_eq!(call(&l1, "load", &[]), 19.0); // HARDWARE.md: (19)
    assert_eq!(call(&l3, "load", &[]), 31.0); // HARDWARE.md: (31)
    assert_eq!(call(&l3, "so", &[]), 13.0); // HARDWARE.md: (13)
    assert_eq!(call(&l1, "mv", &[32.0]), 38.0); // 6 + k
    assert_eq!(call(&l3, "mv", &[32.0]), 262.0); // 6 + 8k
    assert_eq!(call(&l3, "nq", &[32.0]), 37.0); // 8 + 9 + 8 + 8 + 4
}

// ------------------------------------------------- DIANA digital cycles
//
// Expected values computed by hand (python3) from HARDWARE.md's MATCH model,
// with the reading documented in diana.hwm: P = PT;
//   sum over p = 0..P of ceil(size_p / 256) * (c*(FY - p)*FX + 2*c*(FY - p) + 23)
//   size_0 = K*(OY - 2P)*OX, size_p = K*2*OX (p >= 1), c = C / groups.

#[test]
fn diana_digital_cycles_3x3() {
    let d = model("diana");
    // K=16 C=16 16x16 P=1: ceil(3584/256)*(144 + 96 + 23) = 14*263 = 3682
    // + ceil(512/256)*(96 + 64 + 23) = 2*183 = 366; total 4048
    assert_eq!(cycles(&d, "digital", &Layer::conv(16, 16, 16, 16, 3, 3, 1, 1)), 4048.0);
}

#[test]
fn diana_digital_cycles_1x1() {
    let d = model("diana");
    // K=32 C=64 8x8 P=0: ceil(2048/256)*(64 + 128 + 23) = 8*215 = 1720
    assert_eq!(cycles(&d, "digital", &Layer::conv(32, 64, 8, 8, 1, 1, 1, 0)), 1720.0);
}

#[test]
fn diana_digital_cycles_5x5() {
    let d = model("diana");
    // K=16 C=8 12x12 P=2: ceil(1536/256)*(200 + 80 + 23) = 6*303 = 1818
    // + ceil(384/256)*(160 + 64 + 23) = 2*247 = 494
    // + ceil(384/256)*(120 + 48 + 23) = 2*191 = 382; total 2694
    assert_eq!(cycles(&d, "digital", &Layer::conv(16, 8, 12, 12, 5, 5, 1, 2)), 2694.0);
}

#[test]
fn diana_digital_cycles_7x7_stride_2() {
    let d = model("diana");
    // K=32 C=3 out 16x16 P=3: ceil(5120/256)*(147 + 42 + 23) = 20*212 = 4240
    // + 4*(126 + 36 + 23) = 740 + 4*(105 + 30 + 23) = 632
    // + 4*(84 + 24 + 23) = 524; total 6136
    assert_eq!(cycles(&d, "digital", &Layer::conv(32, 3, 16, 16, 7, 7, 2, 3)), 6136.0);
}

#[test]
fn diana_digital_cycles_depthwise() {
    let d = model("diana");
    // C=32 dw 16x16 P=1, c = 1: ceil(7168/256)*(9 + 6 + 23) = 28*38 = 1064
    // + ceil(1024/256)*(6 + 4 + 23) = 4*33 = 132; total 1196
    assert_eq!(cycles(&d, "digital", &Layer::depthwise(32, 16, 16, 3, 3, 1, 1)), 1196.0);
}

#[test]
fn diana_digital_cycles_dense() {
    let d = model("diana");
    // K=10 C=64: ceil(10/256)*(64 + 128 + 23) = 215
    assert_eq!(cycles(&d, "digital", &Layer::dense(10, 64)), 215.0);
}

#[test]
fn diana_digital_cycles_remainder_channels() {
    let d = model("diana");
    // K=40 C=24 10x10 P=1: ceil(3200/256)*(216 + 144 + 23) = 13*383 = 4979
    // + ceil(800/256)*(144 + 96 + 23) = 4*263 = 1052; total 6031
    assert_eq!(cycles(&d, "digital", &Layer::conv(40, 24, 10, 10, 3, 3, 1, 1)), 6031.0);
}

// ------------------------------------------------------------- offloads

#[test]
fn ne16_accepts_what_hardware_md_allows() {
    let g = model("gap9");
    for (l, kernel) in [
        (Layer::conv(32, 16, 16, 16, 3, 3, 1, 1), "ne16_conv"),
        (Layer::conv(64, 32, 8, 8, 1, 1, 1, 0), "ne16_conv"),
        (Layer::conv(64, 32, 8, 8, 3, 3, 2, 1), "ne16_conv"),
        (Layer::depthwise(64, 16, 16, 3, 3, 1, 1), "ne16_depthwise"),
        (Layer::depthwise(64, 8, 8, 3, 3, 2, 1), "ne16_depthwise"),
        (Layer::conv(16, 16, 8, 8, 3, 3, 1, 2), "ne16_conv"),
    ] {
        let o = chosen(&g, "conv", "ne16", &l).unwrap_or_else(|| panic!("no ne16 rule accepts {l:?}"));
        assert_eq!(o.kernel, kernel, "{l:?}");
        let acc = Layer { out_bits: 32, has_requant: false, ..l.clone() };
        assert_eq!(chosen(&g, "conv_acc", "ne16", &acc).map(|o| o.kernel.as_str()), Some(kernel), "{acc:?}");
    }
}

#[test]
fn ne16_rejects_what_hardware_md_forbids() {
    let g = model("gap9");
    let o = rule(&g, "conv", "ne16", "ne16_conv");
    let dw = rule(&g, "conv", "ne16", "ne16_depthwise");
    let cases = [
        (Layer::conv(32, 16, 16, 16, 5, 5, 1, 2), o, "kernel"),
        (Layer::conv(32, 16, 8, 8, 3, 3, 3, 1), o, "stride in"),
        (Layer::depthwise(32, 16, 16, 5, 5, 1, 2), dw, "kernel"),
        (Layer::depthwise(32, 16, 16, 3, 3, 3, 1), dw, "stride in"),
        (Layer::conv(32, 16, 8, 8, 3, 3, 1, 3), o, "pad"),
        // A padded 1x1 convolution (pulp-nnx refuses it).
        (Layer::conv(32, 16, 8, 8, 1, 1, 1, 1), o, "pad == 0"),
        (Layer::depthwise(32, 8, 8, 3, 3, 1, 3), dw, "pad"),
        (Layer { dy: 2, dx: 2, ..Layer::conv(32, 16, 8, 8, 3, 3, 1, 2) }, o, "dilation"),
        (Layer { w_bits: 4, ..Layer::conv(32, 16, 8, 8, 3, 3, 1, 1) }, o, "w_bits"),
        (Layer { w_bits: 4, ..Layer::depthwise(32, 8, 8, 3, 3, 1, 1) }, dw, "w_bits"),
        // Stride 2 with an odd number of output bytes per pixel.
        (Layer::conv(33, 16, 8, 8, 3, 3, 2, 1), o, "out_bits"),
        (Layer::depthwise(33, 8, 8, 3, 3, 2, 1), dw, "out_bits"),
        // Grouped but not depthwise: neither rule.
        (Layer { groups: 2, ..Layer::conv(32, 16, 8, 8, 3, 3, 1, 1) }, o, "groups"),
        (Layer { groups: 2, ..Layer::conv(32, 16, 8, 8, 3, 3, 1, 1) }, dw, "depthwise"),
        // Each rule leaves the other's layers alone.
        (Layer::depthwise(32, 8, 8, 3, 3, 1, 1), o, "groups"),
        (Layer::conv(32, 16, 8, 8, 3, 3, 1, 1), dw, "depthwise"),
    ];
    for (l, rule, why) in cases {
        let c = rejection(&g, rule, &l);
        assert!(c.contains(why), "{l:?} rejected by `{c}`, expected one naming {why}");
    }
    // Depthwise 1x1 is not an NE16 mode; neither are grouped convolutions.
    for l in
        [Layer::depthwise(32, 8, 8, 1, 1, 1, 0), Layer { groups: 2, ..Layer::conv(32, 16, 8, 8, 3, 3, 1, 1) }]
    {
        assert!(chosen(&g, "conv", "ne16", &l).is_none(), "{l:?}");
    }
    // Stride 2 with an even byte count is fine, also for int32 outputs.
    let acc = rule(&g, "conv_acc", "ne16", "ne16_conv");
    let l = Layer { out_bits: 32, has_requant: false, ..Layer::conv(33, 16, 8, 8, 3, 3, 2, 1) };
    assert!(accepts(&g, acc, &l));
}

#[test]
fn ne16_depthwise_rules_swap_the_weight_axes_first() {
    let g = model("gap9");
    let ne16 = unit(&g, "ne16");
    for pattern in ["conv", "conv_acc"] {
        let dw = rule(&g, pattern, "ne16", "ne16_depthwise");
        let layout = g.offload_weight_layout(dw);
        // HARDWARE.md step 2: swap the first two axes, then the unit's steps.
        assert_eq!(layout[0], LayoutStep::Swap("K".into(), "C".into()));
        assert_eq!(&layout[1..], ne16.weight_layout.as_slice());
        // The other rules use the unit's layout; none changes the cycles.
        let conv = rule(&g, pattern, "ne16", "ne16_conv");
        assert_eq!(g.offload_weight_layout(conv), ne16.weight_layout.as_slice());
        assert_eq!(g.offload_activation_layout(dw), ne16.activation_layout.as_slice());
        assert!(dw.cycles.is_none() && conv.cycles.is_none());
    }
    // The rule's cycles are the unit's: DORY's model has its depthwise branch.
    let l = Layer::depthwise(64, 16, 16, 3, 3, 1, 1);
    let dw = rule(&g, "conv", "ne16", "ne16_depthwise");
    assert_eq!(g.offload_call_cycles(dw, &l), Ok(Some(33552.0)));
}

#[test]
fn the_cluster_takes_the_rest() {
    let g = model("gap9");
    let o = g.offloads_to("cluster").find(|o| o.kernel == "cluster_conv").expect("cluster_conv");
    assert!(accepts(&g, o, &Layer::conv(32, 16, 16, 16, 5, 5, 1, 2)));
    assert!(accepts(&g, o, &Layer::conv(32, 3, 16, 16, 7, 7, 2, 3)));
    let dw = g.offloads_to("cluster").find(|o| o.kernel == "cluster_depthwise").expect("cluster_depthwise");
    assert!(accepts(&g, dw, &Layer::depthwise(32, 16, 16, 5, 5, 1, 2)));
    assert!(!accepts(&g, dw, &Layer::conv(32, 16, 16, 16, 3, 3, 1, 1)));
    let fc = offload(&g, "fc_layer", "cluster");
    assert!(accepts(&g, fc, &Layer::dense(10, 256)));
}

#[test]
fn cluster_scratch_buffers() {
    let g = model("gap9");
    let c = unit(&g, "cluster");
    let get = |l: &Layer| -> Vec<(String, f64)> { g.scratch_bytes(c, l).unwrap() };
    // 3x3 conv, C=16, K=32: im2col 2*8*3*3*16 = 2304; bias 4*32 = 128; requant 8*32 = 256
    let s = get(&Layer::conv(32, 16, 8, 8, 3, 3, 1, 1));
    assert_eq!(s, vec![("im2col".into(), 2304.0), ("bias".into(), 128.0), ("requant".into(), 256.0)]);
    // Pointwise: no im2col.
    assert_eq!(get(&Layer::conv(32, 16, 8, 8, 1, 1, 1, 0))[0].1, 0.0);
    // Depthwise 3x3, out 8x8 pad 1: IX = 8 - 1 + 3 - 2 = 8; 8*(3*(8 + 1 + 1) + 3) = 264
    assert_eq!(get(&Layer::depthwise(32, 8, 8, 3, 3, 1, 1))[0].1, 264.0);
}

#[test]
fn diana_digital_accepts_same_padding_only() {
    let d = model("diana");
    for (l, kernel) in [
        (Layer::conv(16, 16, 16, 16, 3, 3, 1, 1), "diana_digital_conv"),
        (Layer::conv(32, 64, 8, 8, 1, 1, 1, 0), "diana_digital_conv"),
        (Layer::conv(16, 8, 12, 12, 5, 5, 1, 2), "diana_digital_conv"),
        (Layer::conv(32, 3, 16, 16, 7, 7, 2, 3), "diana_digital_conv"),
        (Layer::depthwise(32, 16, 16, 3, 3, 1, 1), "diana_digital_depthwise"),
        (Layer::depthwise(32, 8, 8, 5, 5, 2, 2), "diana_digital_depthwise"),
    ] {
        let o = chosen(&d, "conv", "digital", &l).unwrap_or_else(|| panic!("digital rejects {l:?}"));
        assert_eq!(o.kernel, kernel, "{l:?}");
    }
    let o = rule(&d, "conv", "digital", "diana_digital_conv");
    let cases = [
        (Layer::conv(16, 16, 14, 14, 3, 3, 1, 0), "PT"),
        (Layer::conv(16, 16, 16, 16, 2, 2, 1, 0), "kernel"),
        (Layer::conv(16, 16, 16, 16, 3, 3, 3, 1), "stride"),
        (Layer { dy: 2, dx: 2, ..Layer::conv(16, 16, 16, 16, 3, 3, 1, 1) }, "dilation"),
        (Layer { groups: 4, ..Layer::conv(16, 16, 16, 16, 3, 3, 1, 1) }, "groups"),
        (Layer { pad_bottom: 2, ..Layer::conv(16, 16, 16, 16, 3, 3, 1, 1) }, "PB"),
    ];
    for (l, why) in cases {
        let c = rejection(&d, o, &l);
        assert!(c.contains(why), "{l:?} rejected by `{c}`, expected one naming {why}");
        assert!(chosen(&d, "conv", "digital", &l).is_none(), "{l:?}");
    }
    let dw = rule(&d, "conv", "digital", "diana_digital_depthwise");
    for (l, why) in [
        (Layer::conv(16, 16, 16, 16, 3, 3, 1, 1), "depthwise"),
        (Layer::depthwise(32, 16, 16, 3, 3, 1, 0), "PT"),
        (Layer { dy: 2, dx: 2, ..Layer::depthwise(32, 16, 16, 3, 3, 1, 1) }, "dilation"),
    ] {
        let c = rejection(&d, dw, &l);
        assert!(c.contains(why), "{l:?} rejected by `{c}`, expected one naming {why}");
    }
}

#[test]
fn diana_digital_layouts_per_rule() {
    let d = model("diana");
    let digital = unit(&d, "digital");
    let conv = rule(&d, "conv", "digital", "diana_digital_conv");
    assert_eq!(d.offload_weight_layout(conv), digital.weight_layout.as_slice());
    // Depthwise: the conv layout with each weight widened to 4 bytes.
    let dw = d.offload_weight_layout(rule(&d, "conv", "digital", "diana_digital_depthwise"));
    assert!(dw.contains(&LayoutStep::Expand(4)), "{dw:?}");
    let without: Vec<LayoutStep> = dw.iter().filter(|s| **s != LayoutStep::Expand(4)).cloned().collect();
    assert_eq!(without, digital.weight_layout);
    // Dense: (Cout/16, Cin/16, 16, 16).
    let dense = d.offload_weight_layout(rule(&d, "fc_layer", "digital", "diana_digital_dense"));
    assert!(dense.contains(&LayoutStep::Split("C".into(), 16, "Ci".into())), "{dense:?}");
    assert!(dense.contains(&LayoutStep::Order(["K", "C", "Ko", "Ci", "FY", "FX"].map(String::from).to_vec())));
    // Every rule of the array shares its activation layout.
    for o in d.offloads_to("digital") {
        assert_eq!(d.offload_activation_layout(o), digital.activation_layout.as_slice());
    }
}

#[test]
fn diana_analog_rows_are_padded_to_288() {
    let d = model("diana");
    let analog = unit(&d, "analog");
    let l = &analog.weight_layout;
    let at = |s: LayoutStep| l.iter().position(|x| *x == s).unwrap_or_else(|| panic!("{s:?} not in {l:?}"));
    let rows = at(LayoutStep::Merge("CFY".into(), "FX".into(), "ROW".into()));
    assert!(at(LayoutStep::Merge("C".into(), "FY".into(), "CFY".into())) < rows);
    assert!(rows < at(LayoutStep::Pad("ROW".into(), 288)));
    assert!(l.contains(&LayoutStep::Pad("K".into(), 128)));
    // The analog rules use the unit's layout.
    for o in d.offloads_to("analog") {
        assert_eq!(d.offload_weight_layout(o), l.as_slice());
    }
}

#[test]
fn diana_digital_runs_additions_with_their_own_cycles() {
    let d = model("diana");
    let add = rule(&d, "eltwise", "digital", "diana_digital_add");
    let l = Layer::add(32, 8, 20);
    assert!(accepts(&d, add, &l), "{}", rejection(&d, add, &l));
    assert_eq!(chosen(&d, "eltwise", "digital", &l).map(|o| o.kernel.as_str()), Some("diana_digital_add"));
    let wide = Layer { in_bits: 16, ..Layer::add(32, 8, 20) };
    assert!(rejection(&d, add, &wide).contains("in_bits"));
    // estimate in diana.hwm: ceil(K/16) * OY * ceil(OX/16) = 2 * 8 * 2 = 32,
    // not the unit's convolution model.
    assert_eq!(d.offload_call_cycles(add, &l), Ok(Some(32.0)));
    assert_ne!(d.call_cycles(unit(&d, "digital"), &l), Ok(Some(32.0)));
    // A rule without cycles falls back to the unit's.
    let conv = rule(&d, "conv", "digital", "diana_digital_conv");
    let c = Layer::conv(16, 16, 16, 16, 3, 3, 1, 1);
    assert_eq!(d.offload_call_cycles(conv, &c), Ok(Some(4048.0)));
}

#[test]
fn operator_kinds_are_attributes() {
    let d = model("diana");
    let is = |l: &Layer, name: &str| d.eval(&match_dsl::expr::Expr::Attr(name.into()), l);
    let t = match_dsl::Value::Bool(true);
    assert_eq!(is(&Layer::conv(8, 8, 4, 4, 3, 3, 1, 1), "is_conv"), Ok(t));
    assert_eq!(is(&Layer::depthwise(8, 4, 4, 3, 3, 1, 1), "is_conv"), Ok(t));
    assert_eq!(is(&Layer::dense(10, 64), "is_dense"), Ok(t));
    assert_eq!(is(&Layer::add(8, 4, 4), "is_add"), Ok(t));
    assert_eq!(is(&Layer::pool(8, 2, 2, 2, 2, 2, 0), "is_pool"), Ok(t));
    assert_eq!(is(&Layer::add(8, 4, 4), "depthwise"), Ok(match_dsl::Value::Bool(false)));
    assert_eq!(is(&Layer::dense(10, 64), "is_conv"), Ok(match_dsl::Value::Bool(false)));
}

#[test]
fn diana_analog_takes_ternary_layers_that_fit_the_array() {
    let d = model("diana");
    let o = offload(&d, "conv", "analog");
    let ternary = |l: Layer| Layer { w_bits: 2, ..l };
    // 3x3 x 128 channels = 1152 rows, 512 columns: exactly the array.
    assert!(accepts(&d, o, &ternary(Layer::conv(512, 128, 8, 8, 3, 3, 1, 1))));
    let cases = [
        (ternary(Layer::conv(64, 129, 8, 8, 3, 3, 1, 1)), "1152"),
        (ternary(Layer::conv(513, 64, 8, 8, 3, 3, 1, 1)), "512"),
        (ternary(Layer::depthwise(64, 8, 8, 3, 3, 1, 1)), "groups"),
        (Layer::conv(64, 64, 8, 8, 3, 3, 1, 1), "w_bits"),
    ];
    for (l, why) in cases {
        let c = rejection(&d, o, &l);
        assert!(c.contains(why), "{l:?} rejected by `{c}`, expected one naming {why}");
    }
}

#[test]
fn host_runs_everything() {
    let h = model("host");
    assert_eq!(h.host_unit().name, "cpu");
    assert_eq!(h.units.len(), 1);
    let o = offload(&h, "conv", "cpu");
    assert!(accepts(&h, o, &Layer::conv(32, 16, 16, 16, 5, 5, 1, 2)));
    assert!(h.api("timer_start").is_some());
}
