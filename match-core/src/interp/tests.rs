//! Kernel tests with hand-computed values, graph-level tests and dump
//! snapshots of tiny hand-built graphs.

use super::run;
use crate::dump::dump;
use crate::ir::*;

/// Builds small graphs by hand.
#[derive(Default)]
pub(crate) struct Builder {
    pub g: Graph,
}

impl Builder {
    pub fn input(&mut self, name: &str, shape: &[usize], dtype: DType, quant: Option<Quant>) -> TensorId {
        let t = self.tensor(name, shape, dtype, quant);
        self.g.inputs.push(t);
        t
    }
    pub fn tensor(&mut self, name: &str, shape: &[usize], dtype: DType, quant: Option<Quant>) -> TensorId {
        self.g.add_tensor(Tensor { name: name.into(), shape: shape.to_vec(), dtype, quant, data: None })
    }
    pub fn konst(&mut self, name: &str, shape: &[usize], data: Data) -> TensorId {
        let dtype = data.dtype();
        self.g.add_tensor(Tensor {
            name: name.into(),
            shape: shape.to_vec(),
            dtype,
            quant: None,
            data: Some(data),
        })
    }
    /// Adds a node producing a new tensor `out` of `shape` and `dtype`.
    pub fn node(
        &mut self,
        name: &str,
        op: Op,
        inputs: &[TensorId],
        shape: &[usize],
        dtype: DType,
    ) -> TensorId {
        let out = self.tensor(&format!("{name}_out"), shape, dtype, None);
        self.g.add_node(OpNode { name: name.into(), op, inputs: inputs.to_vec(), outputs: vec![out] });
        out
    }
    pub fn finish(mut self, outputs: &[TensorId]) -> Graph {
        self.g.outputs = outputs.to_vec();
        self.g.rebuild_edges();
        self.g
    }
}

/// Runs a one-node graph: inputs are graph inputs unless given as constants.
fn run1(
    op: Op,
    ins: &[(&[usize], Data, Option<Quant>)],
    out_shape: &[usize],
    out: DType,
) -> anyhow::Result<Data> {
    run1q(op, ins, out_shape, out, None)
}

fn run1q(
    op: Op,
    ins: &[(&[usize], Data, Option<Quant>)],
    out_shape: &[usize],
    out: DType,
    out_quant: Option<Quant>,
) -> anyhow::Result<Data> {
    let mut b = Builder::default();
    let mut vals = vec![];
    let ids: Vec<TensorId> = ins
        .iter()
        .enumerate()
        .map(|(i, (shape, d, q))| {
            vals.push(d.clone());
            b.input(&format!("in{i}"), shape, d.dtype(), q.clone())
        })
        .collect();
    let y = b.node("n", op, &ids, out_shape, out);
    b.g.tensor_mut(y).quant = out_quant;
    let g = b.finish(&[y]);
    Ok(run(&g, &vals)?.remove(0))
}

fn i8s(v: &[i8]) -> Data {
    Data::I8(v.to_vec())
}
fn i32s(v: &[i32]) -> Data {
    Data::I32(v.to_vec())
}

fn conv(stride: usize, dilation: usize, pad: [usize; 4], groups: usize, x_zp: i64, w_zp: Vec<i64>) -> Op {
    Op::Conv2d { stride: [stride; 2], dilation: [dilation; 2], pad, groups, x_zp, w_zp }
}

#[test]
fn conv_padding_reads_zero_point() {
    let x = i8s(&[1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let w = i8s(&[1; 9]);
    let y = run1(
        conv(1, 1, [1, 1, 1, 1], 1, 1, vec![0]),
        &[(&[1, 3, 3, 1], x, None), (&[1, 3, 3, 1], w, None)],
        &[1, 3, 3, 1],
        DType::I32,
    )
    .unwrap();
    assert_eq!(y, i32s(&[8, 15, 12, 21, 36, 27, 20, 33, 24]));
}

#[test]
fn conv_stride_and_dilation() {
    let x = i8s(&(0..25).collect::<Vec<i8>>());
    let w = i8s(&[1, 2, 3, 4]);
    let y = run1(
        conv(2, 2, [0; 4], 1, 0, vec![]),
        &[(&[1, 5, 5, 1], x, None), (&[1, 2, 2, 1], w, None)],
        &[1, 2, 2, 1],
        DType::I32,
    )
    .unwrap();
    assert_eq!(y, i32s(&[82, 102, 182, 202]));
}

#[test]
fn conv_depthwise_u8_per_channel_zero_points() {
    // NHWC: pixel 0 = (10, 30), pixel 1 = (20, 40).
    let x = Data::U8(vec![10, 30, 20, 40]);
    let w = Data::U8(vec![1, 2, 3, 4]); // (K=2, 1, 2, 1)
    let y = run1(
        conv(1, 1, [0; 4], 2, 5, vec![1, 2]),
        &[(&[1, 1, 2, 2], x, None), (&[2, 1, 2, 1], w, None)],
        &[1, 1, 1, 2],
        DType::I32,
    )
    .unwrap();
    // k0: (5, 15) . (0, 1) = 15; k1: (25, 35) . (1, 2) = 95.
    assert_eq!(y, i32s(&[15, 95]));
}

#[test]
fn conv_groups_of_two_channels() {
    let x = i8s(&[1, 2, 3, 4]);
    let w = i8s(&[1, 1, 1, -1, 2, 0, 0, 3]); // (4, 1, 1, 2)
    let y = run1(
        conv(1, 1, [0; 4], 2, 0, vec![0]),
        &[(&[1, 1, 1, 4], x, None), (&[4, 1, 1, 2], w, None)],
        &[1, 1, 1, 4],
        DType::I32,
    )
    .unwrap();
    assert_eq!(y, i32s(&[3, -1, 6, 12]));
}

#[test]
fn dense_offsets() {
    let x = i8s(&[1, 2, 3, 4, 5, 6]);
    let w = i8s(&[1, 0, -1, 2, 2, 2]);
    let y = run1(
        Op::Dense { x_zp: 1, w_zp: vec![0, 1] },
        &[(&[2, 3], x, None), (&[2, 3], w, None)],
        &[2, 2],
        DType::I32,
    )
    .unwrap();
    assert_eq!(y, i32s(&[-2, 3, -2, 12]));
}

#[test]
fn bias_add_per_channel() {
    let y = run1(
        Op::BiasAdd,
        &[(&[2, 2], i32s(&[1, 2, 3, 4]), None), (&[2], i32s(&[10, -10]), None)],
        &[2, 2],
        DType::I32,
    )
    .unwrap();
    assert_eq!(y, i32s(&[11, -8, 13, -6]));
}

#[test]
fn requant_fixed_point_double_rounding() {
    let op = Op::Requantize {
        requant: Requant::FixedPoint { multiplier: vec![1 << 30, 1 << 30], shift: vec![-1, 1] },
        out_zp: -3,
    };
    let y = run1(op, &[(&[2, 2], i32s(&[100, -100, 5, 5]), None)], &[2, 2], DType::I8).unwrap();
    // ch0: 100 * 0.25 = 25; 5 * 0.25 = 1.25 rounds twice (2.5 -> 3, 1.5 -> 2).
    // ch1: -100 * 2 * 0.5 = -100; 5 -> 5. Then -3.
    assert_eq!(y, i8s(&[22, -103, -1, 2]));
}

#[test]
fn requant_fixed_point_saturates() {
    let op = Op::Requantize {
        requant: Requant::FixedPoint { multiplier: vec![1 << 30], shift: vec![0] },
        out_zp: 0,
    };
    let y = run1(op, &[(&[3], i32s(&[1000, -1000, i32::MIN]), None)], &[3], DType::I8).unwrap();
    assert_eq!(y, i8s(&[127, -128, -128]));
}

#[test]
fn requant_scale_shift_floors() {
    let op = Op::Requantize {
        requant: Requant::ScaleShift { scale: vec![3], bias: vec![1], shift: 2 },
        out_zp: 0,
    };
    let y = run1(op.clone(), &[(&[4], i32s(&[-7, 7, 100, 1000]), None)], &[4], DType::I8).unwrap();
    // (-21 + 1) >> 2 = -5, 22 >> 2 = 5, 301 >> 2 = 75, 3001 >> 2 = 750 -> 127.
    assert_eq!(y, i8s(&[-5, 5, 75, 127]));
    let y = run1(op, &[(&[4], i32s(&[-7, 7, 100, 1000]), None)], &[4], DType::U8).unwrap();
    assert_eq!(y, Data::U8(vec![0, 5, 75, 255]));
    // -3 >> 1 = -2 (floor, not toward zero).
    let op = Op::Requantize {
        requant: Requant::ScaleShift { scale: vec![1], bias: vec![0], shift: 1 },
        out_zp: 0,
    };
    assert_eq!(run1(op, &[(&[1], i32s(&[-3]), None)], &[1], DType::I8).unwrap(), i8s(&[-2]));
}

#[test]
fn requant_float_rounds_half_to_even() {
    let op = Op::Requantize { requant: Requant::Float { scale: vec![0.5] }, out_zp: 10 };
    let y = run1(op, &[(&[6], i32s(&[5, 15, -5, 25, 7, 1000]), None)], &[6], DType::I8).unwrap();
    assert_eq!(y, i8s(&[12, 18, 8, 22, 14, 127]));
}

#[test]
fn clip_and_cast() {
    let y =
        run1(Op::Clip { min: 0, max: 255 }, &[(&[3], i32s(&[-5, 0, 300]), None)], &[3], DType::U8).unwrap();
    assert_eq!(y, Data::U8(vec![0, 0, 255]));
    let y = run1(Op::Clip { min: -6, max: 6 }, &[(&[3], i8s(&[-7, 3, 7]), None)], &[3], DType::I8).unwrap();
    assert_eq!(y, i8s(&[-6, 3, 6]));
    let y = run1(Op::Cast, &[(&[3], i32s(&[-5, 100, 300]), None)], &[3], DType::U8).unwrap();
    assert_eq!(y, Data::U8(vec![0, 100, 255]));
    let y = run1(Op::Cast, &[(&[2], i32s(&[-5, 7]), None)], &[2], DType::F32).unwrap();
    assert_eq!(y, Data::F32(vec![-5.0, 7.0]));
}

#[test]
fn quantize_divides_and_rounds_to_even() {
    let x = Data::F32(vec![0.25, 0.75, -0.25, 1000.0, -1000.0, f32::NAN]);
    let y =
        run1q(Op::Quantize, &[(&[6], x, None)], &[6], DType::I8, Some(Quant::per_tensor(0.5, 1))).unwrap();
    assert_eq!(y, i8s(&[1, 3, 1, 127, -128, -128]));
}

#[test]
fn quantize_per_axis() {
    let x = Data::F32(vec![1.0, 1.0, 1.0, 1.0]);
    let q = Quant { scale: vec![0.5, 0.25], zero_point: vec![0, 10], axis: 1 };
    let y = run1q(Op::Quantize, &[(&[2, 2], x, None)], &[2, 2], DType::U8, Some(q)).unwrap();
    assert_eq!(y, Data::U8(vec![2, 14, 2, 14]));
}

#[test]
fn dequantize() {
    let y = run1(
        Op::Dequantize,
        &[(&[3], i8s(&[1, 3, -128]), Some(Quant::per_tensor(0.5, 1)))],
        &[3],
        DType::F32,
    )
    .unwrap();
    assert_eq!(y, Data::F32(vec![0.0, 1.0, -64.5]));
    let q = Quant { scale: vec![1.0, 0.5], zero_point: vec![0, 2], axis: 0 };
    let y = run1(Op::Dequantize, &[(&[2, 2], i8s(&[1, 2, 4, 6]), Some(q))], &[2, 2], DType::F32).unwrap();
    assert_eq!(y, Data::F32(vec![1.0, 2.0, 1.0, 2.0]));
}

fn tflite_add(s1: f64, s2: f64, so: f64) -> AddParams {
    let twice_max = 2.0 * s1.max(s2);
    let left_shift = 20;
    let (m1, sh1) = super::fixedpoint::quantize_multiplier(s1 / twice_max);
    let (m2, sh2) = super::fixedpoint::quantize_multiplier(s2 / twice_max);
    let (mo, sho) = super::fixedpoint::quantize_multiplier(twice_max / ((1 << left_shift) as f64 * so));
    AddParams {
        left_shift,
        in_zp: [0, 0],
        in_multiplier: [m1, m2],
        in_shift: [sh1, sh2],
        out_multiplier: mo,
        out_shift: sho,
        out_zp: 0,
    }
}

#[test]
fn add_tflite() {
    let p = tflite_add(0.5, 0.25, 0.5);
    assert_eq!(
        (p.in_multiplier, p.in_shift, p.out_multiplier, p.out_shift),
        ([1 << 30; 2], [0, -1], 1 << 30, -18)
    );
    let op = Op::Add { kind: AddKind::TfLite(p) };
    // 10 * 0.5 + 8 * 0.25 = 7 -> 14; saturation at both ends.
    let y =
        run1(op, &[(&[3], i8s(&[10, 127, -128]), None), (&[3], i8s(&[8, 127, -128]), None)], &[3], DType::I8)
            .unwrap();
    assert_eq!(y, i8s(&[14, 127, -128]));
    // Exact halves round away from zero: +-0.5 -> +-1.
    let op = Op::Add { kind: AddKind::TfLite(tflite_add(0.5, 0.5, 1.0)) };
    let y = run1(op, &[(&[2], i8s(&[1, -1]), None), (&[2], i8s(&[0, 0]), None)], &[2], DType::I8).unwrap();
    assert_eq!(y, i8s(&[1, -1]));
    // Zero points.
    let mut p = tflite_add(0.5, 0.5, 1.0);
    p.in_zp = [-5, 3];
    p.out_zp = -2;
    let op = Op::Add { kind: AddKind::TfLite(p) };
    let y = run1(op, &[(&[1], i8s(&[-1]), None), (&[1], i8s(&[9]), None)], &[1], DType::I8).unwrap();
    // (4 + 6) * 0.5 = 5, -2.
    assert_eq!(y, i8s(&[3]));
}

#[test]
fn add_float_rounds_after_zero_point() {
    let kind = AddKind::Float { a_scale: 0.5, a_zp: 0, b_scale: 0.5, b_zp: 0, y_scale: 1.0, y_zp: 1 };
    let y = run1(
        Op::Add { kind },
        &[(&[3], Data::U8(vec![1, 3, 255]), None), (&[3], Data::U8(vec![0, 0, 255]), None)],
        &[3],
        DType::U8,
    )
    .unwrap();
    // 0.5 + 1 = 1.5 -> 2; 1.5 + 1 = 2.5 -> 2; 255 + 1 -> 255.
    assert_eq!(y, Data::U8(vec![2, 2, 255]));
}

#[test]
fn add_integer_broadcast_and_wrapping() {
    let y = run1(
        Op::Add { kind: AddKind::Integer },
        &[(&[2, 2], i32s(&[1, 2, 3, 4]), None), (&[2], i32s(&[10, 20]), None)],
        &[2, 2],
        DType::I32,
    )
    .unwrap();
    assert_eq!(y, i32s(&[11, 22, 13, 24]));
    let y = run1(
        Op::Add { kind: AddKind::Integer },
        &[(&[2, 1], i8s(&[100, -100]), None), (&[1, 2], i8s(&[100, 1]), None)],
        &[2, 2],
        DType::I8,
    )
    .unwrap();
    assert_eq!(y, i8s(&[127, 101, 0, -99]));
    let y = run1(
        Op::Add { kind: AddKind::Wrapping },
        &[(&[1], i8s(&[100]), None), (&[1], i8s(&[100]), None)],
        &[1],
        DType::I8,
    )
    .unwrap();
    assert_eq!(y, i8s(&[-56]));
}

#[test]
fn avg_pool_rounds_half_away_from_zero() {
    let op = Op::AvgPool { kernel: [2, 2], stride: [1, 1], pad: [0, 0, 1, 1], count_include_pad: false };
    let y = run1(op.clone(), &[(&[1, 2, 2, 1], i8s(&[1, 2, 3, 5]), None)], &[1, 2, 2, 1], DType::I8).unwrap();
    assert_eq!(y, i8s(&[3, 4, 4, 5]));
    let y = run1(op, &[(&[1, 2, 2, 1], i8s(&[-1, -2, -3, -5]), None)], &[1, 2, 2, 1], DType::I8).unwrap();
    assert_eq!(y, i8s(&[-3, -4, -4, -5]));
    let op = Op::AvgPool { kernel: [2, 2], stride: [1, 1], pad: [0, 0, 1, 1], count_include_pad: true };
    let q = Some(Quant::per_tensor(1.0, 1));
    let y = run1(op, &[(&[1, 2, 2, 1], i8s(&[1, 2, 3, 5]), q)], &[1, 2, 2, 1], DType::I8).unwrap();
    // (2 + 5 + 1 + 1) / 4 = 2.25 -> 2; (5 + 3 * 1) / 4 = 2.
    assert_eq!(y, i8s(&[3, 2, 3, 2]));
}

#[test]
fn max_pool_ignores_padding() {
    let op = Op::MaxPool { kernel: [2, 2], stride: [2, 2], pad: [0; 4] };
    let y = run1(op, &[(&[1, 2, 2, 1], i8s(&[1, -2, 3, -5]), None)], &[1, 1, 1, 1], DType::I8).unwrap();
    assert_eq!(y, i8s(&[3]));
    let op = Op::MaxPool { kernel: [2, 2], stride: [1, 1], pad: [0, 0, 1, 1] };
    let y = run1(op, &[(&[1, 2, 2, 1], i8s(&[-1, -2, -3, -5]), None)], &[1, 2, 2, 1], DType::I8).unwrap();
    assert_eq!(y, i8s(&[-1, -2, -3, -5]));
}

#[test]
fn global_avg_pool() {
    let x = i8s(&[1, -1, 2, -1, 3, -1, 5, -2]);
    let y = run1(Op::GlobalAvgPool, &[(&[1, 2, 2, 2], x, None)], &[1, 1, 1, 2], DType::I8).unwrap();
    // 11 / 4 = 2.75 -> 3; -5 / 4 = -1.25 -> -1.
    assert_eq!(y, i8s(&[3, -1]));
}

#[test]
fn pad_transpose_concat_reshape() {
    let op = Op::Pad { pads: vec![[0, 0], [1, 0], [0, 1], [0, 0]], value: -128 };
    let y = run1(op, &[(&[1, 1, 2, 1], i8s(&[1, 2]), None)], &[1, 2, 3, 1], DType::I8).unwrap();
    assert_eq!(y, i8s(&[-128, -128, -128, 1, 2, -128]));
    let y = run1(
        Op::Transpose { perm: vec![1, 0] },
        &[(&[2, 3], i8s(&[0, 1, 2, 3, 4, 5]), None)],
        &[3, 2],
        DType::I8,
    )
    .unwrap();
    assert_eq!(y, i8s(&[0, 3, 1, 4, 2, 5]));
    let x = Data::F32((0..24).map(|v| v as f32).collect());
    let y = run1(
        Op::Transpose { perm: vec![0, 3, 1, 2] },
        &[(&[1, 2, 3, 4], x, None)],
        &[1, 4, 2, 3],
        DType::F32,
    )
    .unwrap();
    let Data::F32(v) = y else { panic!() };
    assert_eq!(&v[..8], &[0.0, 4.0, 8.0, 12.0, 16.0, 20.0, 1.0, 5.0]);
    let y = run1(
        Op::Concat { axis: 1 },
        &[(&[2, 1], i8s(&[1, 2]), None), (&[2, 2], i8s(&[3, 4, 5, 6]), None)],
        &[2, 3],
        DType::I8,
    )
    .unwrap();
    assert_eq!(y, i8s(&[1, 3, 4, 2, 5, 6]));
    let y = run1(Op::Reshape, &[(&[2, 2], i8s(&[1, 2, 3, 4]), None)], &[4], DType::I8).unwrap();
    assert_eq!(y, i8s(&[1, 2, 3, 4]));
}

fn softmax(x: &[i8], shape: &[usize], scale: f32) -> Vec<i8> {
    let op = Op::Softmax { beta: 1.0, input_scale: scale, input_zp: 0 };
    match run1(op, &[(shape, i8s(x), None)], shape, DType::I8).unwrap() {
        Data::I8(v) => v,
        _ => unreachable!(),
    }
}

#[test]
fn softmax_known_values() {
    // Equal inputs: 1/4 each -> 64 / 256 -> -64.
    assert_eq!(softmax(&[5, 5, 5, 5], &[1, 4], 0.1), vec![-64; 4]);
    // A single element: 1.0 saturates to 127.
    assert_eq!(softmax(&[-7], &[1, 1], 0.1), vec![127]);
    // Far below diff_min: exactly the minimum.
    assert_eq!(softmax(&[127, -128], &[1, 2], 1.0), vec![127, -128]);
    // exp(-1): 0.7311 * 256 = 187.2 and 0.2689 * 256 = 68.8.
    let v = softmax(&[10, 0, 0, 10], &[2, 2], 0.1);
    assert!((v[0] as i32 - 59).abs() <= 1 && (v[1] as i32 + 59).abs() <= 1, "{v:?}");
    assert_eq!((v[2], v[3]), (v[1], v[0]));
}

#[test]
fn softmax_sums_to_one() {
    let x: Vec<i8> = (0..10).map(|i| (i * 13 - 60) as i8).collect();
    let v = softmax(&x, &[1, 10], 0.0625);
    let sum: i32 = v.iter().map(|&q| q as i32 + 128).sum();
    assert!((sum - 256).abs() <= 5, "{v:?} sums to {sum}");
    assert!(v.windows(2).all(|w| w[0] <= w[1]), "{v:?}");
}

#[test]
fn run_checks_inputs() {
    let mut b = Builder::default();
    let x = b.input("image", &[1, 4], DType::I8, None);
    let y = b.node("relu", Op::Clip { min: 0, max: 127 }, &[x], &[1, 4], DType::I8);
    let g = b.finish(&[y]);
    let e = run(&g, &[]).unwrap_err().to_string();
    assert!(e.contains("takes 1 input"), "{e}");
    let e = run(&g, &[Data::U8(vec![0; 4])]).unwrap_err().to_string();
    assert!(e.contains("'image'") && e.contains("u8"), "{e}");
    let e = run(&g, &[i8s(&[0; 3])]).unwrap_err().to_string();
    assert!(e.contains("'image'") && e.contains("got 3"), "{e}");
    assert_eq!(run(&g, &[i8s(&[-1, 0, 1, 2])]).unwrap(), vec![i8s(&[0, 0, 1, 2])]);
}

/// conv -> bias -> requant -> clip, TFLite style, with per-channel weights.
fn conv_chain() -> Graph {
    let mut b = Builder::default();
    let x = b.input("x", &[1, 3, 3, 2], DType::I8, Some(Quant::per_tensor(0.5, -1)));
    let w = b.konst("w", &[2, 3, 3, 2], Data::I8((0..36).map(|i| (i % 5) as i8 - 2).collect()));
    b.g.tensor_mut(w).quant = Some(Quant { scale: vec![0.25, 0.125], zero_point: vec![0, 0], axis: 0 });
    let bias = b.konst("b", &[2], Data::I32(vec![4, -4]));
    let acc = b.node("conv", conv(1, 1, [1, 1, 1, 1], 1, -1, vec![0, 0]), &[x, w], &[1, 3, 3, 2], DType::I32);
    let acc = b.node("bias", Op::BiasAdd, &[acc, bias], &[1, 3, 3, 2], DType::I32);
    let rq = Op::Requantize {
        requant: Requant::FixedPoint { multiplier: vec![1 << 30, 1 << 30], shift: vec![-1, -2] },
        out_zp: -128,
    };
    let q = b.node("requant", rq, &[acc], &[1, 3, 3, 2], DType::I8);
    let y = b.node("relu", Op::Clip { min: -128, max: 127 }, &[q], &[1, 3, 3, 2], DType::I8);
    b.finish(&[y])
}

#[test]
fn graph_conv_chain() {
    let g = conv_chain();
    let x = i8s(&(0..18).map(|i| i as i8 - 5).collect::<Vec<_>>());
    let got = run(&g, std::slice::from_ref(&x)).unwrap();
    // Reference: direct formula in i64 with exact rounding (no ties here
    // would make double rounding differ; checked below separately).
    let Data::I8(xv) = &x else { unreachable!() };
    let w: Vec<i64> = (0..36).map(|i| (i % 5) as i64 - 2).collect();
    let mut want = vec![];
    for oy in 0..3i64 {
        for ox in 0..3i64 {
            for k in 0..2usize {
                let mut acc = 0i64;
                for ky in 0..3i64 {
                    for kx in 0..3i64 {
                        let (iy, ix) = (oy + ky - 1, ox + kx - 1);
                        if !(0..3).contains(&iy) || !(0..3).contains(&ix) {
                            continue;
                        }
                        for c in 0..2usize {
                            let xv = xv[((iy * 3 + ix) * 2) as usize + c] as i64 + 1;
                            acc += xv * w[k * 18 + ((ky * 3 + kx) * 2) as usize + c];
                        }
                    }
                }
                acc += if k == 0 { 4 } else { -4 };
                let q = super::fixedpoint::multiply_by_quantized_multiplier(
                    acc as i32,
                    1 << 30,
                    if k == 0 { -1 } else { -2 },
                ) as i64;
                want.push((q - 128).clamp(-128, 127) as i8);
            }
        }
    }
    assert_eq!(got, vec![Data::I8(want)]);
    insta::assert_snapshot!("conv_chain", dump(&g));
}

#[test]
fn graph_depthwise_add_softmax() {
    let mut b = Builder::default();
    let x = b.input("x", &[1, 2, 2, 2], DType::I8, Some(Quant::per_tensor(0.5, 0)));
    let w = b.konst("dw", &[2, 3, 3, 1], Data::I8(vec![1; 18]));
    let acc = b.node("dw", conv(1, 1, [1, 1, 1, 1], 2, 0, vec![0]), &[x, w], &[1, 2, 2, 2], DType::I32);
    let rq = Op::Requantize {
        requant: Requant::FixedPoint { multiplier: vec![1 << 30], shift: vec![0] },
        out_zp: 0,
    };
    let d = b.node("dw_rq", rq, &[acc], &[1, 2, 2, 2], DType::I8);
    let kind = AddKind::TfLite(tflite_add(0.5, 0.5, 0.5));
    let s = b.node("add", Op::Add { kind }, &[d, x], &[1, 2, 2, 2], DType::I8);
    let p = b.node("pool", Op::GlobalAvgPool, &[s], &[1, 1, 1, 2], DType::I8);
    let f = b.node("flatten", Op::Reshape, &[p], &[1, 2], DType::I8);
    let y =
        b.node("softmax", Op::Softmax { beta: 1.0, input_scale: 0.5, input_zp: 0 }, &[f], &[1, 2], DType::I8);
    let g = b.finish(&[y]);
    // Channel 0 all 1, channel 1 all -2: depthwise 3x3 sum over the 2x2
    // image = 4 * v, halved = 2 * v; add x: 3 * v; mean: 3 / -6.
    let got = run(&g, &[i8s(&[1, -2, 1, -2, 1, -2, 1, -2])]).unwrap();
    // softmax of (3, -6) at scale 0.5: diff -4.5 -> 1 / (1 + e^-4.5) = 0.989.
    let Data::I8(v) = &got[0] else { unreachable!() };
    assert!(v[0] >= 124 && v[1] <= -125, "{v:?}");
    insta::assert_snapshot!("depthwise_add_softmax", dump(&g));
}

#[test]
fn matmul_batch_broadcast_and_global_sum_pool() {
    // a (2, 1, 2) x b (2, 2) shared: rows [1, 2] and [3, 4] minus a_zp 1.
    let y = run1(
        Op::MatMul { a_zp: 1, b_zp: vec![0, 1] },
        &[(&[2, 1, 2], i8s(&[1, 2, 3, 4]), None), (&[2, 2], i8s(&[1, 2, 3, 4]), None)],
        &[2, 1, 2],
        DType::I32,
    )
    .unwrap();
    // b - b_zp = [[1, 1], [3, 3]]; [0, 1] -> [3, 3]; [2, 3] -> [11, 11].
    assert_eq!(y, i32s(&[3, 3, 11, 11]));
    let x = i8s(&[1, -1, 2, -1, 3, -1, 5, -2]);
    let y =
        run1(Op::GlobalSumPool { x_zp: 1 }, &[(&[1, 2, 2, 2], x, None)], &[1, 1, 1, 2], DType::I32).unwrap();
    assert_eq!(y, i32s(&[7, -9]));
}

/// Rows whose sum of exponentials reaches 512 take an output exponent past
/// 31 (undefined in TFLite's kernel): the division is exact, so the result
/// is still the rounded probability.
#[test]
fn softmax_long_rows_divide_exactly() {
    // 300 equal elements: 256 / 300 = 0.853 -> 1 (exponent 31).
    assert_eq!(softmax(&[3; 300], &[1, 300], 0.1), vec![-127; 300]);
    // 520: 256 / 520 = 0.492 -> 0 (exponent 32).
    assert_eq!(softmax(&[3; 520], &[1, 520], 0.1), vec![-128; 520]);
    // 4095 equal elements (the longest row): 0.0625 -> 0.
    assert_eq!(softmax(&[-1; 4095], &[1, 4095], 0.1), vec![-128; 4095]);
    // 1000 elements, one far above the rest: it gets (nearly) everything.
    let mut x = vec![-128i8; 1000];
    x[17] = 127;
    let v = softmax(&x, &[1, 1000], 1.0);
    assert_eq!(v[17], 127);
    assert!(v.iter().enumerate().all(|(i, &q)| i == 17 || q == -128));
}

#[test]
fn softmax_rows_past_the_q12_19_sum_are_refused() {
    let mut b = Builder::default();
    let x = b.input("x", &[1, 4096], DType::I8, None);
    let y =
        b.node("sm", Op::Softmax { beta: 1.0, input_scale: 0.1, input_zp: 0 }, &[x], &[1, 4096], DType::I8);
    let mut g = b.finish(&[y]);
    let err = crate::passes::prepare(&mut g).unwrap_err();
    assert!(format!("{err:#}").contains("4096 elements"), "{err:#}");
}
