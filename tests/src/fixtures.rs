//! Small builders for hand-written IR fixtures of the end-to-end tests:
//! tensors, constants, nodes, and deterministic pseudo-random data.

use match_core::ir::{DType, Data, Graph, Op, OpNode, Requant, Tensor, TensorId};

/// An activation tensor (no data).
pub fn t(g: &mut Graph, name: &str, shape: &[usize], dtype: DType) -> TensorId {
    g.add_tensor(Tensor { name: name.into(), shape: shape.to_vec(), dtype, quant: None, data: None })
}

/// A constant tensor.
pub fn c(g: &mut Graph, name: &str, shape: &[usize], data: Data) -> TensorId {
    let dtype = data.dtype();
    g.add_tensor(Tensor { name: name.into(), shape: shape.to_vec(), dtype, quant: None, data: Some(data) })
}

/// A node.
pub fn n(g: &mut Graph, name: &str, op: Op, inputs: &[TensorId], outputs: &[TensorId]) {
    g.add_node(OpNode { name: name.into(), op, inputs: inputs.to_vec(), outputs: outputs.to_vec() });
}

/// Deterministic pseudo-random values in `[lo, hi]`.
pub fn values(seed: u64, count: usize, lo: i64, hi: i64) -> Vec<i64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..count)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            lo + ((s >> 33) as i64).rem_euclid(hi - lo + 1)
        })
        .collect()
}

/// `sets` input sets of `graph`: each input's full integer range, set `s`
/// seeded with `100 + s` ([`values`]).
pub fn input_sets(graph: &Graph, sets: u64) -> Vec<Vec<Data>> {
    (0..sets)
        .map(|s| {
            graph
                .inputs
                .iter()
                .map(|&t| {
                    let t = graph.tensor(t);
                    let (lo, hi) = t.dtype.int_range().expect("integer inputs");
                    Data::from_i64(t.dtype, &values(100 + s, t.elements(), lo, hi))
                })
                .collect()
        })
        .collect()
}

/// `count` pseudo-random int8 values.
pub fn i8s(seed: u64, count: usize) -> Data {
    Data::from_i64(DType::I8, &values(seed, count, -128, 127))
}

/// A per-channel TFLite fixed-point requantization (multipliers in
/// [2^29, 2^31), right shifts 6 to 9).
pub fn fixed_requant(k: usize, seed: u64) -> Requant {
    let m = values(seed, k, 1 << 29, (1 << 31) - 1).into_iter().map(|v| v as i32).collect();
    let s = values(seed + 1, k, -9, -6).into_iter().map(|v| v as i32).collect();
    Requant::FixedPoint { multiplier: m, shift: s }
}
