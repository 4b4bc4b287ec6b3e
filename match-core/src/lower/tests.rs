//! Unit tests of the lowering: hand-computed conversions (exact, inexact
//! with its bound, refusals), the ADC form's semantics, and whole-graph
//! lowering checked against the interpreter.

use super::*;
use crate::interp::tests::Builder;
use crate::ir::{Data, Quant};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn target(name: &str) -> HwModel {
    let path = root().join("targets").join(format!("{name}.hwm"));
    match_dsl::load(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn conv(pad: usize, x_zp: i64) -> Op {
    Op::Conv2d { stride: [1, 1], dilation: [1, 1], pad: [pad; 4], groups: 1, x_zp, w_zp: vec![0] }
}

/// x (1x4x4xC, `dtype`, zero point `x_zp`) -> conv (K=1, `f`x`f`, pad) ->
/// bias -> `rq` (i8 or u8 out) -> clip [lo, hi]. Returns the graph and its nodes.
#[allow(clippy::too_many_arguments)]
fn layer(
    dtype: DType,
    x_zp: i64,
    c: usize,
    f: usize,
    pad: usize,
    w: Vec<i8>,
    bias: i32,
    rq: Requant,
    out_zp: i64,
    out: DType,
    clip: (i64, i64),
) -> (Graph, Vec<NodeId>) {
    let mut b = Builder::default();
    let x = b.input("x", &[1, 4, 4, c], dtype, Some(Quant::per_tensor(0.5, x_zp)));
    let wt = b.konst("w", &[1, f, f, c], Data::I8(w));
    let bt = b.konst("b", &[1], Data::I32(vec![bias]));
    let o = 4 + 2 * pad + 1 - f;
    let acc = b.node("conv", conv(pad, x_zp), &[x, wt], &[1, o, o, 1], DType::I32);
    let acc = b.node("bias", Op::BiasAdd, &[acc, bt], &[1, o, o, 1], DType::I32);
    let q = b.node("requant", Op::Requantize { requant: rq, out_zp }, &[acc], &[1, o, o, 1], out);
    let y = b.node("clip", Op::Clip { min: clip.0, max: clip.1 }, &[q], &[1, o, o, 1], out);
    let g = b.finish(&[y]);
    let nodes = g.topo_order().unwrap();
    (g, nodes)
}

fn unit<'a>(hw: &'a HwModel, name: &str) -> &'a Unit {
    hw.unit(name).unwrap()
}

/// 1/3 as a TFLite multiplier: 0.666.. * 2^-1 (double rounding: f(1) = 1).
fn third() -> Requant {
    Requant::FixedPoint { multiplier: vec![1431655765], shift: vec![-1] }
}

/// 2/3 as a TFLite multiplier with no right shift: a single rounding,
/// `round(2 acc / 3)`.
fn two_thirds() -> Requant {
    Requant::FixedPoint { multiplier: vec![1431655765], shift: vec![0] }
}

fn mbqm(a: i64, rq: &Requant) -> i64 {
    requant_value(rq, a, 0, 0, i64::MIN, i64::MAX).unwrap()
}

#[test]
fn units_are_classified_by_their_forms() {
    let gap9 = target("gap9");
    assert_eq!(arith(unit(&gap9, "ne16")), Arith::ScaleShift);
    assert_eq!(arith(unit(&gap9, "cluster")), Arith::General);
    assert_eq!(arith(unit(&gap9, "fc")), Arith::General);
    let diana = target("diana");
    assert_eq!(arith(unit(&diana, "digital")), Arith::Shift);
    assert_eq!(arith(unit(&diana, "analog")), Arith::Adc { bits: 6 });
    for t in ["host", "host-tiled"] {
        let hw = target(t);
        assert!(hw.units.iter().all(|u| arith(u) == Arith::General), "{t}");
    }
}

#[test]
fn fixed_point_to_ne16_exact_over_a_small_range() {
    // One channel, one 1x1 weight of 1, input i8 with zero point 0: NE16
    // reads u = x + 128 with zero point 128; no padding, so the correction
    // -128 * sum(w) = -128 folds into the bias and acc = x in [-128, 127].
    // f(acc) = round(2 acc / 3). The largest shift with an 8-bit scale is 8:
    // 512 / 3 = 170.67 -> 171, g = floor((171 acc + 128) / 256)
    // = floor(2 acc/3 + 1/2 + acc/768). The fractions of 2 acc/3 + 1/2 are
    // 1/2, 1/6 and 5/6, so g differs only once |acc|/768 reaches 1/6, at
    // |acc| = 128, where acc = -128 still gives -85 both ways: exact.
    let (g, nodes) = layer(DType::I8, 0, 1, 1, 0, vec![1], 0, two_thirds(), 0, DType::I8, (-128, 127));
    let gap9 = target("gap9");
    let p = plan(&g, unit(&gap9, "ne16"), &nodes).unwrap();
    assert!(p.flip_input);
    assert_eq!(p.max_lsb, 0, "{}", p.describe());
    assert_eq!(p.acc_range, (-128, 127));
    let (rq, zp) = p.requant.clone().unwrap();
    assert_eq!(zp, 0);
    // The unit's bias: 128 (rounding) + (-128) * 171 (the zero-point correction).
    assert_eq!(rq, Requant::ScaleShift { scale: vec![171], bias: vec![128 - 128 * 171], shift: 8 });
    assert_eq!(p.clip, Some((-128, 127)));
    assert_eq!(p.describe(), "fixed_point -> 8-bit scale_shift is exact over acc in [-128, 127]");
}

#[test]
fn fixed_point_to_ne16_inexact_with_its_bound() {
    // Two input channels: acc in [-256, 254]. With scale 171 the excess
    // acc/768 crosses the 1/6 gap at acc = 128 (85.83 + 0.17: 86 instead of
    // 85); with 170 the deficit acc/384 crosses it from acc = 67. Neither
    // reaches 1/2 + 1/6 over the range: one LSB at most. (With 8-bit scales
    // only: GAP9's NE16 also has 32-bit ones, which make it exact.)
    let (g, nodes) = layer(DType::I8, 0, 2, 1, 0, vec![1, 1], 0, two_thirds(), 0, DType::I8, (-128, 127));
    let gap9 = target("gap9");
    let wide = plan(&g, unit(&gap9, "ne16"), &nodes).unwrap();
    assert_eq!((wide.max_lsb, wide.scale_bits), (0, 32), "{}", wide.describe());
    let ne16 = ne16_8_bit();
    let p = plan(&g, &ne16, &nodes).unwrap();
    assert_eq!(p.max_lsb, 1);
    let Some((Requant::ScaleShift { scale, bias, shift }, _)) = p.requant.clone() else { panic!() };
    assert_eq!((scale[0], shift), (171, 8));
    // The unit's accumulator is acc + 256; its bias holds -256 * 171.
    let diff = |a: i64| (mbqm(a, &two_thirds()) - (((a + 256) * scale[0] + bias[0]) >> shift)).unsigned_abs();
    assert_eq!(diff(128), 1);
    // The bound holds: an exhaustive check over the range agrees.
    assert_eq!((-256..=254i64).map(diff).max(), Some(1));
    let (at, ch) = p.witness.unwrap();
    assert_eq!((diff(at), ch), (1, 0));
    assert_eq!(
        p.describe(),
        format!(
            "fixed_point -> 8-bit scale_shift differs by up to 1 LSB at acc={at} (channel 0) over acc in [-256, 254]"
        )
    );
    // TFLite's double rounding (1/3 as 0.67 * 2^-1) already differs at acc = 1:
    // round(round(2/3) / 2) = 1, not 0.
    let (g, nodes) = layer(DType::I8, 0, 1, 1, 0, vec![1], 0, third(), 0, DType::I8, (-128, 127));
    let p = plan(&g, &ne16, &nodes).unwrap();
    assert_eq!(mbqm(1, &third()), 1);
    assert!(p.max_lsb >= 1);
}

/// GAP9's NE16 restricted to its 8-bit scale mode.
fn ne16_8_bit() -> Unit {
    let mut u = unit(&target("gap9"), "ne16").clone();
    u.scale_bits = vec![8];
    u
}

#[test]
fn ne16_refuses_a_zero_point_with_padding() {
    // zp 5 becomes 133 after the sign flip; NE16 pads with 0, so the
    // correction -133 * sum(w) would be wrong at the borders.
    let (g, nodes) = layer(DType::I8, 5, 1, 3, 1, vec![1; 9], 0, third(), 0, DType::I8, (-128, 127));
    let gap9 = target("gap9");
    let err = plan(&g, unit(&gap9, "ne16"), &nodes).unwrap_err();
    assert_eq!(err, "input zero point 133 with padding: the unit pads with 0, not the zero point");
    // Without padding the correction folds into the bias.
    let (g, nodes) = layer(DType::I8, 5, 1, 3, 0, vec![1; 9], 7, third(), 0, DType::I8, (-128, 127));
    let p = plan(&g, unit(&gap9, "ne16"), &nodes).unwrap();
    let Some((Requant::ScaleShift { bias, scale, shift }, 0)) = p.requant.clone() else { panic!() };
    // bias 7 - 133 * 9 = -1190 on the model's side, times the scale, plus the
    // rounding constant.
    assert_eq!(bias[0], (7 - 133 * 9) * scale[0] + (1 << (shift - 1)));
}

#[test]
fn ne16_refuses_what_can_overflow_32_bits() {
    // u8 input, 3x3x64 weights of 127: acc up to 9 * 64 * 255 * 127 =
    // 18653760; the model's scale 255 with shift 0 is already the largest
    // 8-bit scale, and 18653760 * 255 > 2^31.
    let rq = Requant::ScaleShift { scale: vec![255], bias: vec![0], shift: 0 };
    let (g, nodes) = layer(DType::U8, 0, 64, 3, 0, vec![127; 9 * 64], 0, rq, 0, DType::U8, (0, 255));
    let gap9 = target("gap9");
    let err = plan(&g, unit(&gap9, "ne16"), &nodes).unwrap_err();
    assert!(
        err.starts_with("acc * scale + bias can overflow 32 bits on channel 0 (scale 255, shift 0"),
        "{err}"
    );
}

#[test]
fn a_scale_shift_layer_that_fits_ne16_stays_exact_and_even_scales_halve_exactly() {
    let gap9 = target("gap9");
    let ne16 = unit(&gap9, "ne16");
    let rq = Requant::ScaleShift { scale: vec![100], bias: vec![-77], shift: 8 };
    let (g, nodes) = layer(DType::U8, 0, 4, 1, 0, vec![3; 4], 0, rq.clone(), 0, DType::U8, (0, 255));
    let p = plan(&g, ne16, &nodes).unwrap();
    assert_eq!((p.max_lsb, p.requant.clone()), (0, Some((rq, 0))));
    // Scale 300 does not fit 8 bits; 150 with one bit less of shift and the
    // bias halved (floor) is the same function: (2x + b) >> 9 == (x + b>>1) >> 8.
    let rq = Requant::ScaleShift { scale: vec![300], bias: vec![-77], shift: 9 };
    let (g, nodes) = layer(DType::U8, 0, 4, 1, 0, vec![3; 4], 0, rq, 0, DType::U8, (0, 255));
    let p = plan(&g, ne16, &nodes).unwrap();
    assert_eq!(p.max_lsb, 0);
    assert_eq!(p.requant, Some((Requant::ScaleShift { scale: vec![150], bias: vec![-39], shift: 8 }, 0)));
}

/// Scale 301 (odd: no halving keeps it exact) with shift 9, on a u8 input
/// of 4 channels with weights 3: acc in [0, 3060].
fn scale_301() -> (Graph, Vec<NodeId>, Requant) {
    let rq = Requant::ScaleShift { scale: vec![301], bias: vec![-77], shift: 9 };
    let (g, nodes) = layer(DType::U8, 0, 4, 1, 0, vec![3; 4], 0, rq.clone(), 0, DType::U8, (0, 255));
    (g, nodes, rq)
}

#[test]
fn a_scale_above_255_is_exact_in_ne16_32_bit_mode() {
    let gap9 = target("gap9");
    let ne16 = unit(&gap9, "ne16");
    assert_eq!(ne16.scale_widths(), vec![8, 32]);
    let (g, nodes, rq) = scale_301();
    let p = plan(&g, ne16, &nodes).unwrap();
    // The model's own parameters, in the 32-bit scale mode.
    assert_eq!((p.max_lsb, p.requant.clone(), p.scale_bits), (0, Some((rq.clone(), 0)), 32));
    assert_eq!(p.describe(), "scale_shift -> 32-bit scale_shift is exact over acc in [0, 3060]");
    // The cost model sees the width: 16 bits hold 301, which NE16 runs in
    // its 32-bit mode (gap9.hwm's nq_bits).
    assert_eq!(scale_width(&rq), 16);
    let wide = mapping::layer_of(&g, &nodes);
    assert_eq!(wide.scale_bits, 16);
    // DORY's normquant term for a block of 32 channels: ceil(32 * 4 / 4)
    // instead of ceil(32 / 4) with 8-bit scales.
    let narrow = match_dsl::layer::Layer { scale_bits: 8, ..wide.clone() };
    let nq = |l: &match_dsl::layer::Layer| gap9.call_def("nq", &[32.0], l).unwrap();
    assert_eq!(nq(&wide) - nq(&narrow), 32.0 - 8.0);
    // A layer whose 8-bit conversion is exact keeps 8-bit scales.
    let rq8 = Requant::ScaleShift { scale: vec![300], bias: vec![-77], shift: 9 };
    let (g, nodes) = layer(DType::U8, 0, 4, 1, 0, vec![3; 4], 0, rq8, 0, DType::U8, (0, 255));
    let p = plan(&g, ne16, &nodes).unwrap();
    assert_eq!((p.max_lsb, p.scale_bits), (0, 8));
}

#[test]
fn a_unit_with_8_bit_scales_only_still_converts() {
    // A unit declaring `scale_bits 8` (as an 8-bit-only engine would), and
    // one that states no widths (8 by default).
    let declared = ne16_8_bit();
    assert_eq!(declared.scale_widths(), vec![8]);
    let mut plain = unit(&target("gap9"), "ne16").clone();
    plain.scale_bits.clear();
    assert_eq!(plain.scale_widths(), vec![8]);
    let (g, nodes, _) = scale_301();
    for u in [&declared, &plain] {
        let p = plan(&g, u, &nodes).unwrap();
        assert!(p.max_lsb > 0, "{}: {}", u.name, p.describe());
        assert_eq!(p.scale_bits, 8, "{}", u.name);
        let Some((Requant::ScaleShift { scale, .. }, _)) = &p.requant else { panic!("{}", u.name) };
        assert!(scale.iter().all(|&s| (0..=255).contains(&s)), "{}: {scale:?}", u.name);
        assert!(
            p.describe().starts_with("scale_shift -> 8-bit scale_shift differs by up to"),
            "{}",
            p.describe()
        );
    }
}

#[test]
fn digital_takes_scale_one_and_bounds_the_rest() {
    let diana = target("diana");
    let digital = unit(&diana, "digital");
    // (2 acc + 8) >> 4 is (acc + 4) >> 3: scale 1, shift 3, the bias halved.
    let rq = Requant::ScaleShift { scale: vec![2], bias: vec![8], shift: 4 };
    let (g, nodes) = layer(DType::I8, 0, 1, 1, 0, vec![1], 0, rq, 0, DType::I8, (-128, 127));
    let p = plan(&g, digital, &nodes).unwrap();
    assert_eq!(p.requant, Some((Requant::ScaleShift { scale: vec![1], bias: vec![4], shift: 3 }, 0)));
    assert_eq!(p.max_lsb, 0, "{}", p.describe());
    // 1/3 is no power of two: the bound is what an exhaustive check finds.
    let (g, nodes) = layer(DType::I8, 0, 1, 1, 0, vec![1], 0, third(), 0, DType::I8, (-128, 127));
    let p = plan(&g, digital, &nodes).unwrap();
    let Some((Requant::ScaleShift { scale, bias, shift }, 0)) = p.requant.clone() else { panic!() };
    assert_eq!(scale, vec![1]);
    let want = (-128..=127i64).map(|a| (mbqm(a, &third()) - ((a + bias[0]) >> shift)).unsigned_abs()).max();
    assert_eq!(Some(p.max_lsb), want);
    assert!(p.max_lsb > 1, "{}", p.describe());
    // u8 inputs are not the digital array's.
    let (g, nodes) = layer(DType::U8, 0, 1, 1, 0, vec![1], 0, third(), 0, DType::I8, (-128, 127));
    assert_eq!(plan(&g, digital, &nodes).unwrap_err(), "input type u8: the unit reads i8");
}

#[test]
fn adc_form_semantics_in_the_interpreter() {
    // y = clip(floor(acc / 4), -32, 31); (3 y - 5) >> 2; + 1.
    let mut b = Builder::default();
    let x = b.input("acc", &[1, 4], DType::I32, None);
    let rq = Requant::Adc { gain: 4, bits: 6, k: vec![3], l: vec![-5], shift: 2 };
    let y = b.node("adc", Op::Requantize { requant: rq, out_zp: 1 }, &[x], &[1, 4], DType::I8);
    let g = b.finish(&[y]);
    let out = crate::interp::run(&g, &[Data::I32(vec![100, -7, 1000, -1000])]).unwrap();
    // 100: y 25, (75 - 5) >> 2 = 17, 18. -7: y -2, -11 >> 2 = -3, -2.
    // 1000: y 31 (clipped), 88 >> 2 = 22, 23. -1000: y -32, -101 >> 2 = -26, -25.
    assert_eq!(out, vec![Data::I8(vec![18, -2, 23, -25])]);
}

#[test]
fn analog_needs_seven_bit_inputs_and_ternary_weights() {
    let diana = target("diana");
    let analog = unit(&diana, "analog");
    let (g, nodes) = layer(DType::I8, 0, 4, 1, 0, vec![1, -1, 0, 1], 0, third(), 0, DType::I8, (-128, 127));
    assert_eq!(
        plan(&g, analog, &nodes).unwrap_err(),
        "input i8 in [-128, 127] is not within the analog array's 7-bit inputs [-64, 63]"
    );
    // The same layer after a clip to [-64, 63]: converted, with a bound that
    // an exhaustive check confirms.
    let mut b = Builder::default();
    let x = b.input("x", &[1, 4, 4, 4], DType::I8, None);
    let x = b.node("clip7", Op::Clip { min: -64, max: 63 }, &[x], &[1, 4, 4, 4], DType::I8);
    let wt = b.konst("w", &[2, 1, 1, 4], Data::I8(vec![1, -1, 0, 1, 1, 1, 1, 1]));
    let acc = b.node("conv", conv(0, 0), &[x, wt], &[1, 4, 4, 2], DType::I32);
    let q =
        b.node("requant", Op::Requantize { requant: third(), out_zp: 0 }, &[acc], &[1, 4, 4, 2], DType::I8);
    let g = b.finish(&[q]);
    let order = g.topo_order().unwrap();
    let nodes = &order[1..];
    let p = plan(&g, analog, nodes).unwrap();
    let Some((rq @ Requant::Adc { .. }, zp)) = p.requant.clone() else { panic!("{p:?}") };
    let mut worst = 0;
    for (ch, (lo, hi)) in [(0usize, (-192i64, 189i64)), (1, (-256, 252))] {
        for a in lo..=hi {
            let f =
                crate::interp::fixedpoint::multiply_by_quantized_multiplier(a as i32, 1431655765, -1) as i64;
            let g = requant_value(&rq, a, ch, zp, -128, 127).unwrap();
            worst = worst.max((f - g).unsigned_abs());
        }
    }
    assert_eq!(p.max_lsb, worst);
    assert!(p.max_lsb > 0 && p.max_lsb <= 4, "{}", p.describe());
}

/// Runs `g` and its lowering on random inputs.
fn outputs(g: &Graph, inputs: &[Data]) -> Vec<Data> {
    crate::interp::run(g, inputs).unwrap()
}

fn random_i8(n: usize, seed: u64) -> Data {
    let mut s = seed;
    Data::I8(
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 56) as i8
            })
            .collect(),
    )
}

#[test]
fn lowering_a_two_layer_net_for_ne16_retypes_the_producer() {
    // x i8 (zp -128) -> conv1 1x1 -> bias -> requant -> relu clip -> conv2 1x1
    // -> requant -> clip. NE16 takes both when conversions are allowed: the
    // model input needs a sign flip layer; conv1's output becomes u8.
    let mut b = Builder::default();
    let x = b.input("x", &[1, 6, 6, 16], DType::I8, Some(Quant::per_tensor(0.5, -128)));
    let w1 = b.konst("w1", &[32, 1, 1, 16], random_i8(32 * 16, 1));
    let b1 = b.konst("b1", &[32], Data::I32((0..32).map(|i| i * 37 - 500).collect()));
    let a = b.node("conv1", conv(0, -128), &[x, w1], &[1, 6, 6, 32], DType::I32);
    let a = b.node("bias1", Op::BiasAdd, &[a, b1], &[1, 6, 6, 32], DType::I32);
    let rq = Requant::FixedPoint { multiplier: vec![1300000000], shift: vec![-9] };
    let a =
        b.node("rq1", Op::Requantize { requant: rq.clone(), out_zp: -128 }, &[a], &[1, 6, 6, 32], DType::I8);
    let r = b.node("relu1", Op::Clip { min: -128, max: 127 }, &[a], &[1, 6, 6, 32], DType::I8);
    let w2 = b.konst("w2", &[32, 1, 1, 32], random_i8(32 * 32, 2));
    let a = b.node("conv2", conv(0, -128), &[r, w2], &[1, 6, 6, 32], DType::I32);
    let a = b.node("rq2", Op::Requantize { requant: rq, out_zp: 3 }, &[a], &[1, 6, 6, 32], DType::I8);
    let y = b.node("clip2", Op::Clip { min: -100, max: 100 }, &[a], &[1, 6, 6, 32], DType::I8);
    let g = b.finish(&[y]);
    let gap9 = target("gap9");
    let l = lower_for_target(&g, &gap9, Objective::Latency, false).unwrap();
    let units: Vec<&str> = l.mapping.layers.iter().map(|x| x.unit.as_str()).collect();
    // Whatever the cost model picks, the lowered graph is well formed and
    // every converted layer's bound holds on data.
    let input = vec![random_i8(6 * 6 * 16, 3)];
    let want = outputs(&g, &input);
    let got = outputs(&l.graph, &input);
    let bound: u64 = l.exactness.iter().map(|e| e.max_lsb).sum();
    let (Data::I8(w), Data::I8(gv)) = (&want[0], &got[0]) else { panic!() };
    let diff = w.iter().zip(gv).map(|(a, b)| (*a as i64 - *b as i64).unsigned_abs()).max().unwrap();
    assert_eq!(l.exactness.len(), l.mapping.layers.len());
    // conv1 reads the model's signed input: on NE16 it would need a sign
    // flip layer, which the mapping charges to it, so the cluster keeps it.
    // conv2 goes to NE16, and conv1's requantization emits u8 for it (no
    // flip layer).
    assert_eq!(units, ["cluster", "ne16"]);
    assert!(l.mapping.layers.iter().all(|x| x.pattern.is_some()));
    let conv2 = l.mapping.layers[1].nodes[0];
    let x2 = l.graph.tensor(l.graph.nodes[conv2].inputs[0]);
    assert_eq!((x2.dtype, x2.quant.as_ref().map(|q| q.zp())), (DType::U8, None));
    assert!(matches!(l.graph.nodes[conv2].op, Op::Conv2d { x_zp: 0, .. }));
    // The first layer's error propagates through the second: a loose check
    // that the lowering computes the same network.
    assert!(diff <= 4 * bound.max(1), "diff {diff} bound {bound}");

    // --exact: nothing converted inexactly; the lowered graph equals the model.
    let l = lower_for_target(&g, &gap9, Objective::Latency, true).unwrap();
    assert!(l.exactness.iter().all(|e| e.max_lsb == 0), "{:?}", l.exactness);
    assert_eq!(outputs(&l.graph, &input), want);
    // Host targets: lowering is a no-op.
    let host = target("host");
    let l = lower_for_target(&g, &host, Objective::Latency, false).unwrap();
    assert_eq!(l.mapping, crate::mapping::map(&g, &host).unwrap());
    assert!(l.exactness.iter().all(|e| e.kind == ExactKind::Exact));
}

#[test]
fn a_signed_model_input_gets_a_sign_flip_layer_before_ne16() {
    // One large 3x3 convolution on the model's i8 input (zero point -128, so
    // 0 after the flip: the padding is exact). NE16 wins even with the flip.
    let mut b = Builder::default();
    let x = b.input("x", &[1, 16, 16, 64], DType::I8, Some(Quant::per_tensor(0.5, -128)));
    let w = b.konst("w", &[64, 3, 3, 64], random_i8(64 * 9 * 64, 4));
    let a = b.node("conv", conv(1, -128), &[x, w], &[1, 16, 16, 64], DType::I32);
    let rq = Requant::FixedPoint { multiplier: vec![1300000000], shift: vec![-12] };
    let a = b.node("rq", Op::Requantize { requant: rq, out_zp: -128 }, &[a], &[1, 16, 16, 64], DType::I8);
    let y = b.node("relu", Op::Clip { min: -128, max: 127 }, &[a], &[1, 16, 16, 64], DType::I8);
    let g = b.finish(&[y]);
    let l = lower_for_target(&g, &target("gap9"), Objective::Latency, false).unwrap();
    let units: Vec<&str> = l.mapping.layers.iter().map(|x| x.unit.as_str()).collect();
    assert_eq!(units, ["fc", "ne16"]);
    assert_eq!(l.mapping.layers[0].name, "l00_requant");
    assert!(l.mapping.layers[0].schedule.as_ref().is_some_and(|s| s.cycles.total > 0.0), "costed");
    assert_eq!(l.exactness[0].reason, "sign flip i8 -> u8 (x + 128) for ne16");
    let flip = &l.graph.nodes[l.mapping.layers[0].nodes[0]];
    assert_eq!(l.graph.tensor(flip.outputs[0]).dtype, DType::U8);
    // The lowered network stays within the reported bound on data.
    let input = vec![random_i8(16 * 16 * 64, 5)];
    let (Data::I8(w), Data::I8(gv)) = (&outputs(&g, &input)[0], &outputs(&l.graph, &input)[0]) else {
        panic!()
    };
    let diff = w.iter().zip(gv).map(|(a, b)| (*a as i64 - *b as i64).unsigned_abs()).max().unwrap();
    assert!(diff <= l.exactness[1].max_lsb, "diff {diff}: {:?}", l.exactness[1]);
}

/// The walk over a step function gives the same pieces whatever its guess
/// of the next step: exact, off by one either way, far off, or none.
#[test]
fn step_walk_does_not_depend_on_its_guess() {
    // Step functions of the requantization's shape: floor(a * m + c),
    // clamped, for slopes from steep to flat.
    for &(m, c, lo, hi) in &[
        (0.37, 0.5, -1000i64, 1000i64),
        (0.0031, -3.25, -100_000, 100_000),
        (1.0, 0.0, -50, 50),
        (2.5, 0.5, -60, 60),
        (1e-6, 0.5, -3_000_000, 3_000_000),
    ] {
        let f = |a: i64| ((a as f64 * m + c).floor() as i64).clamp(-128, 127);
        let reference = steps(lo, hi, &f, &|_| None).expect("bounded");
        let exact = |v: i64| Some((((v + 1) as f64 - c) / m).ceil() as i64);
        let guesses: [&dyn Fn(i64) -> Option<i64>; 5] = [
            &exact,
            &|v| exact(v).map(|g| g + 1),
            &|v| exact(v).map(|g| g - 1),
            &|v| exact(v).map(|g| g + 977),
            &|v| exact(v).map(|g| g - 977),
        ];
        for (i, guess) in guesses.iter().enumerate() {
            assert_eq!(steps(lo, hi, &f, *guess), Some(reference.clone()), "slope {m}, guess {i}");
        }
        // The pieces cover [lo, hi] in order with distinct values.
        assert_eq!(reference.first().map(|p| p.0), Some(lo));
        assert_eq!(reference.last().map(|p| p.1), Some(hi));
        for w in reference.windows(2) {
            assert_eq!(w[0].1 + 1, w[1].0);
            assert!(w[0].2 < w[1].2);
        }
    }
}

/// MATCH's integer ONNX dialect stores weights u8: for gap9 (whose cluster
/// and fabric controller take i8 weights only) they are stored w - 128 with
/// the weight zero point lowered by 128, which changes no accumulator, so
/// the layer is offloaded and computes the same; host targets (u8 taken)
/// keep them.
#[test]
fn unsigned_weights_are_stored_signed_for_targets_taking_only_signed() {
    let mut b = Builder::default();
    let x = b.input("x", &[1, 40], DType::U8, None);
    let wv: Vec<u8> = match random_i8(24 * 40, 7) {
        Data::I8(v) => v.iter().map(|&w| w as u8).collect(),
        _ => unreachable!(),
    };
    let w = b.konst("w", &[24, 40], Data::U8(wv.clone()));
    let a = b.node("dense", Op::Dense { x_zp: 0, w_zp: vec![3] }, &[x, w], &[1, 24], DType::I32);
    let rq = Requant::ScaleShift { scale: vec![3], bias: vec![1 << 11], shift: 12 };
    let a = b.node("rq", Op::Requantize { requant: rq, out_zp: 0 }, &[a], &[1, 24], DType::U8);
    let y = b.node("clip", Op::Clip { min: 0, max: 255 }, &[a], &[1, 24], DType::U8);
    let g = b.finish(&[y]);
    let input = vec![Data::U8((0..40).map(|i| (i * 53 % 256) as u8).collect())];
    let want = outputs(&g, &input);

    let l = lower_for_target(&g, &target("gap9"), Objective::Latency, true).unwrap();
    let dense = l.mapping.layers[0].nodes[0];
    let wt = l.graph.tensor(l.graph.nodes[dense].inputs[1]);
    assert_eq!(wt.dtype, DType::I8);
    let Some(Data::I8(stored)) = &wt.data else { panic!("{:?}", wt.data) };
    assert!(stored.iter().zip(&wv).all(|(&s, &w)| s as i64 == w as i64 - 128));
    assert!(matches!(&l.graph.nodes[dense].op, Op::Dense { w_zp, .. } if *w_zp == [-125]));
    // One offloaded layer (dense, requant, clip), exact.
    assert_eq!(l.mapping.layers.len(), 1);
    assert_ne!(l.mapping.layers[0].pattern, None, "{:?}", l.mapping.layers[0].rejections);
    assert_eq!(outputs(&l.graph, &input), want);

    let l = lower_for_target(&g, &target("host"), Objective::Latency, false).unwrap();
    let dense = l.mapping.layers[0].nodes[0];
    assert_eq!(l.graph.tensor(l.graph.nodes[dense].inputs[1]).dtype, DType::U8);
    assert!(!wants_signed_weights(&target("host-tiled")));
    assert!(wants_signed_weights(&target("diana")));
}
