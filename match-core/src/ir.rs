//! The graph IR: typed tensors and canonical integer operators, in a petgraph
//! graph whose nodes are operators and whose edges carry the tensor that
//! flows from producer to consumer.
//!
//! Conventions every front end and back end relies on:
//! - Activations are NHWC (batch, rows, columns, channels); the ONNX front end
//!   transposes at the model boundary and before NCHW-order reshapes.
//! - Convolution weights are OHWI: (K, FY, FX, C / groups). A depthwise
//!   convolution is a conv with `groups == C` and weights (K, FY, FX, 1).
//! - Dense weights are (K, C): `out[k] = sum_c in[c] * w[k][c]`.
//! - Quantized operators compute in integers only. `conv2d` and `dense`
//!   produce the raw int32 accumulator of `(x - x_zp) * (w - w_zp)`; `bias`,
//!   `requantize` and `clip` follow as their own nodes, so that a target's
//!   patterns (`conv2d >> bias? >> requant >> clip?`) see the chain.

use petgraph::stable_graph::{NodeIndex, StableDiGraph};
use petgraph::visit::{EdgeRef, IntoEdgeReferences};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Index of a tensor in [`Graph::tensors`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TensorId(pub usize);

/// Index of an operator node.
pub type NodeId = NodeIndex<u32>;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    I8,
    U8,
    I16,
    I32,
    I64,
    F32,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::I8 | DType::U8 => 1,
            DType::I16 => 2,
            DType::I32 | DType::F32 => 4,
            DType::I64 => 8,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            DType::I8 => "i8",
            DType::U8 => "u8",
            DType::I16 => "i16",
            DType::I32 => "i32",
            DType::I64 => "i64",
            DType::F32 => "f32",
        }
    }
    /// Smallest and largest value of an integer type.
    pub fn int_range(self) -> Option<(i64, i64)> {
        Some(match self {
            DType::I8 => (-128, 127),
            DType::U8 => (0, 255),
            DType::I16 => (-32768, 32767),
            DType::I32 => (i32::MIN as i64, i32::MAX as i64),
            DType::I64 => (i64::MIN, i64::MAX),
            DType::F32 => return None,
        })
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Affine quantization: real = scale * (q - zero_point). Per tensor when
/// `scale.len() == 1`, else per channel along `axis`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Quant {
    pub scale: Vec<f32>,
    pub zero_point: Vec<i64>,
    pub axis: usize,
}

impl Quant {
    pub fn per_tensor(scale: f32, zero_point: i64) -> Quant {
        Quant { scale: vec![scale], zero_point: vec![zero_point], axis: 0 }
    }
    pub fn is_per_channel(&self) -> bool {
        self.scale.len() > 1
    }
    /// The zero point of a per-tensor quantization (the first otherwise).
    pub fn zp(&self) -> i64 {
        self.zero_point.first().copied().unwrap_or(0)
    }
}

/// Constant tensor contents, row-major.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Data {
    I8(Vec<i8>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    F32(Vec<f32>),
}

impl Data {
    pub fn len(&self) -> usize {
        match self {
            Data::I8(v) => v.len(),
            Data::U8(v) => v.len(),
            Data::I16(v) => v.len(),
            Data::I32(v) => v.len(),
            Data::I64(v) => v.len(),
            Data::F32(v) => v.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn dtype(&self) -> DType {
        match self {
            Data::I8(_) => DType::I8,
            Data::U8(_) => DType::U8,
            Data::I16(_) => DType::I16,
            Data::I32(_) => DType::I32,
            Data::I64(_) => DType::I64,
            Data::F32(_) => DType::F32,
        }
    }
    /// Integer contents widened to i64 (floats are truncated toward zero;
    /// callers use this only for integer tensors or integer-valued floats).
    pub fn to_i64(&self) -> Vec<i64> {
        match self {
            Data::I8(v) => v.iter().map(|&x| x as i64).collect(),
            Data::U8(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I16(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I32(v) => v.iter().map(|&x| x as i64).collect(),
            Data::I64(v) => v.clone(),
            Data::F32(v) => v.iter().map(|&x| x as i64).collect(),
        }
    }
    /// Values of an integer type from i64, saturating to the type's range
    /// (callers narrow only values already in range).
    pub fn from_i64(dtype: DType, v: &[i64]) -> Data {
        let clamp = |x: i64| {
            let (lo, hi) = dtype.int_range().unwrap_or((i64::MIN, i64::MAX));
            x.clamp(lo, hi)
        };
        match dtype {
            DType::I8 => Data::I8(v.iter().map(|&x| clamp(x) as i8).collect()),
            DType::U8 => Data::U8(v.iter().map(|&x| clamp(x) as u8).collect()),
            DType::I16 => Data::I16(v.iter().map(|&x| clamp(x) as i16).collect()),
            DType::I32 => Data::I32(v.iter().map(|&x| clamp(x) as i32).collect()),
            DType::I64 => Data::I64(v.to_vec()),
            DType::F32 => Data::F32(v.iter().map(|&x| x as f32).collect()),
        }
    }
    /// Little-endian bytes, as tensor files and C arrays store them.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match self {
            Data::I8(v) => v.iter().map(|&x| x as u8).collect(),
            Data::U8(v) => v.clone(),
            Data::I16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            Data::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
    /// Parses little-endian bytes; `None` if the length does not fit.
    pub fn from_le_bytes(dtype: DType, bytes: &[u8]) -> Option<Data> {
        if !bytes.len().is_multiple_of(dtype.size()) {
            return None;
        }
        Some(match dtype {
            DType::I8 => Data::I8(bytes.iter().map(|&b| b as i8).collect()),
            DType::U8 => Data::U8(bytes.to_vec()),
            DType::I16 => {
                Data::I16(bytes.chunks_exact(2).map(|c| i16::from_le_bytes([c[0], c[1]])).collect())
            }
            DType::I32 => Data::I32(
                bytes.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            ),
            DType::I64 => Data::I64(
                bytes
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes(c.try_into().expect("chunk of 8")))
                    .collect(),
            ),
            DType::F32 => Data::F32(
                bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect(),
            ),
        })
    }
}

/// A tensor: an activation, or a constant when `data` is set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub quant: Option<Quant>,
    pub data: Option<Data>,
}

impl Tensor {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
    pub fn bytes(&self) -> usize {
        self.elements() * self.dtype.size()
    }
    pub fn is_const(&self) -> bool {
        self.data.is_some()
    }
}

/// How a `requantize` node maps an int32 accumulator to the output type.
/// Every variant then adds `out_zp` and saturates to the output type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Requant {
    /// TFLite: `MultiplyByQuantizedMultiplier(acc, multiplier[c], shift[c])`
    /// with gemmlowp double rounding (HARDWARE.md). One entry per output
    /// channel, or one for the whole tensor.
    FixedPoint { multiplier: Vec<i32>, shift: Vec<i32> },
    /// Integer dialect / NE16: `(acc * scale[c] + bias[c]) >> shift`, the shift
    /// arithmetic (floor). Computed in 64 bits, as onnxruntime's int64-exact
    /// evaluation of the dialect does.
    ScaleShift { scale: Vec<i64>, bias: Vec<i64>, shift: u32 },
    /// ONNX QLinear: `round_half_even(acc * scale[c])` in f32, with
    /// `scale = x_scale * w_scale[c] / y_scale` computed as onnxruntime does.
    Float { scale: Vec<f32> },
    /// DIANA's analog output chain (HARDWARE.md): the ADC reads
    /// `y = clip(floor(acc / gain), -2^(bits-1), 2^(bits-1) - 1)`, then per
    /// channel `t = (k[c] * y + l[c]) >> shift` (arithmetic, floor), in 64
    /// bits. `gain >= 1`, `1 <= bits <= 31`, `shift < 64`.
    Adc { gain: i64, bits: u32, k: Vec<i64>, l: Vec<i64>, shift: u32 },
}

/// TFLite ADD's integer parameters (HARDWARE.md): each input is offset,
/// shifted left by `left_shift`, rescaled, summed, and the sum rescaled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AddParams {
    pub left_shift: i32,
    pub in_zp: [i64; 2],
    pub in_multiplier: [i32; 2],
    pub in_shift: [i32; 2],
    pub out_multiplier: i32,
    pub out_shift: i32,
    pub out_zp: i64,
}

/// How an element-wise add rescales its inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum AddKind {
    /// Plain integer addition in 32 bits, then saturation (integer dialect).
    Integer,
    /// Integer addition modulo 2^bits of the output type: ONNX `Add` on
    /// int8/uint8 tensors wraps around (numpy and onnxruntime semantics).
    /// Inputs and output share one integer type; no zero points.
    Wrapping,
    /// TFLite int8 ADD.
    TfLite(AddParams),
    /// ONNX QLinearAdd / QDQ add: dequantize both, add in f32, quantize
    /// with round-half-even (onnxruntime's reference order).
    Float { a_scale: f32, a_zp: i64, b_scale: f32, b_zp: i64, y_scale: f32, y_zp: i64 },
}

impl AddKind {
    /// The same addition with its inputs exchanged: `add(b, a)` of the
    /// swapped kind equals `add(a, b)` of this one, element for element
    /// (each input is offset and rescaled on its own, with its own
    /// parameters, and the sum of the two is commutative, in integers as
    /// in f32).
    pub fn swapped(&self) -> AddKind {
        let mut k = self.clone();
        match &mut k {
            AddKind::Integer | AddKind::Wrapping => {}
            AddKind::TfLite(p) => {
                p.in_zp.swap(0, 1);
                p.in_multiplier.swap(0, 1);
                p.in_shift.swap(0, 1);
            }
            AddKind::Float { a_scale, a_zp, b_scale, b_zp, .. } => {
                std::mem::swap(a_scale, b_scale);
                std::mem::swap(a_zp, b_zp);
            }
        }
        k
    }
}

/// Canonical operators. Inputs are listed in [`OpNode::inputs`], in the
/// order each variant documents.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Op {
    /// Inputs: x (NHWC), w (OHWI). Output: int32 accumulator of
    /// `(x - x_zp) * (w - w_zp[k])`; padding contributes `x_zp` (zero after
    /// the offset). `pad` is (top, left, bottom, right).
    Conv2d {
        stride: [usize; 2],
        dilation: [usize; 2],
        pad: [usize; 4],
        groups: usize,
        x_zp: i64,
        w_zp: Vec<i64>,
    },
    /// Inputs: x (N, C) (or any shape whose last axis is C), w (K, C).
    /// Output: int32 accumulator, shape (.., K).
    Dense {
        x_zp: i64,
        w_zp: Vec<i64>,
    },
    /// Inputs: acc (int32), bias (int32, one per channel = last axis).
    BiasAdd,
    /// Input: acc (int32). Output: narrowed to the output tensor's type.
    Requantize {
        requant: Requant,
        out_zp: i64,
    },
    /// Saturate to [min, max] (ReLU, ReLU6 and fused activations, in the
    /// quantized domain).
    Clip {
        min: i64,
        max: i64,
    },
    /// Inputs: a, b (same shape, or b broadcast over a's leading axes).
    Add {
        kind: AddKind,
    },
    /// `pad` is (top, left, bottom, right). Average pooling divides by the
    /// count of valid (unpadded) elements with TFLite's rounding (half away
    /// from zero) unless `count_include_pad`.
    AvgPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
        count_include_pad: bool,
    },
    MaxPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
    },
    /// Mean over H and W of NHWC, rounded like AvgPool; output (N, 1, 1, C).
    GlobalAvgPool,
    /// Constant padding of NHWC, `pads` as (before, after) per axis.
    Pad {
        pads: Vec<[usize; 2]>,
        value: i64,
    },
    /// Same data, new shape (flatten and squeeze too). Free at run time.
    Reshape,
    /// Permute axes: output axis i is input axis `perm[i]`.
    Transpose {
        perm: Vec<usize>,
    },
    Concat {
        axis: usize,
    },
    /// TFLite int8 softmax over the last axis; `beta` and the input scale
    /// give the fixed-point parameters (HARDWARE.md).
    Softmax {
        beta: f32,
        input_scale: f32,
        input_zp: i64,
    },
    /// f32 -> integer at a model boundary: round half to even, saturate.
    /// Parameters are the output tensor's `quant` (per channel along its
    /// `axis` when it has several scales). onnxruntime (MlasQuantizeLinear):
    /// `q = saturate(round_half_even(x / scale) + zp)`, the division in f32.
    Quantize,
    /// integer -> f32 at a model boundary. Parameters are the input tensor's
    /// `quant`. onnxruntime: `(q - zp) as f32 * scale` (integer subtraction,
    /// then one f32 multiply).
    Dequantize,
    /// Integer type conversion with saturation (e.g. i32 -> u8 after Clip).
    /// To f32 (the integer dialect's float-declared output holding an int32
    /// accumulator): `v as f32`, exact below 2^24. From f32 (a float-declared
    /// input holding integers): truncate toward zero (ONNX Cast), NaN -> 0,
    /// then saturate to the output type.
    Cast,
    /// Integer matrix product with batch axes (ONNX MatMulInteger and
    /// QLinearMatMul when B is not a constant 2-D matrix). Inputs: a
    /// (..., M, K), b (..., K, N); the leading (batch) axes broadcast the numpy
    /// way (a missing axis or an axis of 1 repeats; a 2-D b is shared by
    /// every batch). Output: int32 accumulator (..., M, N) of
    /// `sum_k (a[.., m, k] - a_zp) * (b[.., k, n] - b_zp[n])`, where `b_zp`
    /// has one entry or one per column n. Accumulates in i32 (wrapping), like
    /// `Conv2d` and `Dense`.
    MatMul {
        a_zp: i64,
        b_zp: Vec<i64>,
    },
    /// Input x (NHWC, 8-bit). Output: int32 (N, 1, 1, C) holding
    /// `sum over H, W of (x - x_zp)`. Followed by
    /// `Requantize Float { scale: x_scale / (y_scale * (H * W) as f32) }` it is
    /// onnxruntime's QLinearGlobalAveragePool (MlasQLinearGlobalAveragePool:
    /// int32 sum plus bias `-x_zp * H * W`, then MlasRequantizeOutput).
    GlobalSumPool {
        x_zp: i64,
    },
    /// onnxruntime's QLinearAveragePool (com.microsoft; also what its QDQ
    /// fusion makes of `DQ -> AveragePool -> Q`), on NHWC 8-bit input, in
    /// f32 per output element and channel: `acc = 0.0`; for each valid
    /// (unpadded) input element of the window in row-major (h, then w)
    /// order, `acc += x_scale * (x - x_zp) as f32`; `avg = acc / count as
    /// f32` with count the valid elements (the kernel size when
    /// `count_include_pad`); output `clamp(round_half_even(avg / y_scale +
    /// y_zp as f32), qmin, qmax)` in the output type. `pad` is (top, left,
    /// bottom, right).
    QLinearAvgPool {
        kernel: [usize; 2],
        stride: [usize; 2],
        pad: [usize; 4],
        count_include_pad: bool,
        x_scale: f32,
        x_zp: i64,
        y_scale: f32,
        y_zp: i64,
    },
    /// Copies an activation from the home memory into the target's external
    /// memory (the output lives there: the planner places it in the
    /// external arena, not in the activation arena), for a later
    /// [`Op::Fill`]. Added by [`crate::spill`] when the arena does not fit;
    /// the same bytes, so the interpreter copies.
    Spill,
    /// Copies a spilled activation back from the external memory into the
    /// home memory, before the layers that read it again.
    Fill,
}

impl Op {
    /// The operator's name as `.hwm` patterns spell it.
    pub fn pattern_name(&self) -> &'static str {
        match self {
            Op::Conv2d { .. } => "conv2d",
            Op::Dense { .. } => "dense",
            Op::BiasAdd => "bias",
            Op::Requantize { .. } => "requant",
            Op::Clip { .. } => "clip",
            Op::Add { .. } => "add",
            Op::AvgPool { .. } => "avgpool",
            Op::MaxPool { .. } => "maxpool",
            Op::GlobalAvgPool => "globalavgpool",
            Op::Pad { .. } => "pad",
            Op::Reshape => "reshape",
            Op::Transpose { .. } => "transpose",
            Op::Concat { .. } => "concat",
            Op::Softmax { .. } => "softmax",
            Op::Quantize => "quantize",
            Op::Dequantize => "dequantize",
            Op::Cast => "cast",
            Op::MatMul { .. } => "matmul",
            Op::GlobalSumPool { .. } => "globalsumpool",
            Op::QLinearAvgPool { .. } => "qlinear_avgpool",
            Op::Spill => "spill",
            Op::Fill => "fill",
        }
    }
}

/// An operator with its tensors.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpNode {
    /// The name of the node in the source model (for error messages).
    pub name: String,
    pub op: Op,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

/// A model in the IR.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    pub tensors: Vec<Tensor>,
    pub nodes: StableDiGraph<OpNode, TensorId>,
    pub inputs: Vec<TensorId>,
    pub outputs: Vec<TensorId>,
}

impl Graph {
    pub fn add_tensor(&mut self, t: Tensor) -> TensorId {
        self.tensors.push(t);
        TensorId(self.tensors.len() - 1)
    }

    pub fn tensor(&self, id: TensorId) -> &Tensor {
        &self.tensors[id.0]
    }

    pub fn tensor_mut(&mut self, id: TensorId) -> &mut Tensor {
        &mut self.tensors[id.0]
    }

    /// Adds an operator; edges to it from the producers of its inputs are
    /// added by [`Graph::rebuild_edges`] (importers call it once at the end).
    pub fn add_node(&mut self, node: OpNode) -> NodeId {
        self.nodes.add_node(node)
    }

    /// The node producing `t`, if any (graph inputs and constants have none).
    pub fn producer(&self, t: TensorId) -> Option<NodeId> {
        self.nodes.node_indices().find(|&n| self.nodes[n].outputs.contains(&t))
    }

    /// The nodes reading `t`.
    pub fn consumers(&self, t: TensorId) -> Vec<NodeId> {
        self.nodes.node_indices().filter(|&n| self.nodes[n].inputs.contains(&t)).collect()
    }

    /// Recomputes every edge from the nodes' tensor lists.
    pub fn rebuild_edges(&mut self) {
        self.nodes.clear_edges();
        let mut producer = vec![None; self.tensors.len()];
        for n in self.nodes.node_indices() {
            for &t in &self.nodes[n].outputs {
                producer[t.0] = Some(n);
            }
        }
        let idx: Vec<NodeId> = self.nodes.node_indices().collect();
        for n in idx {
            let inputs = self.nodes[n].inputs.clone();
            for t in inputs {
                if let Some(p) = producer[t.0] {
                    self.nodes.add_edge(p, n, t);
                }
            }
        }
    }

    /// Operators in a topological order (ties broken by insertion order, so
    /// the order is deterministic). `None` if the graph has a cycle.
    pub fn topo_order(&self) -> Option<Vec<NodeId>> {
        let mut indegree: std::collections::BTreeMap<NodeId, usize> =
            self.nodes.node_indices().map(|n| (n, 0)).collect();
        for e in (&self.nodes).edge_references() {
            *indegree.get_mut(&e.target()).expect("edge target is a node") += 1;
        }
        let mut ready: std::collections::BTreeSet<NodeId> =
            indegree.iter().filter(|(_, &d)| d == 0).map(|(&n, _)| n).collect();
        let mut order = Vec::with_capacity(indegree.len());
        while let Some(n) = ready.pop_first() {
            order.push(n);
            for e in self.nodes.edges(n) {
                let d = indegree.get_mut(&e.target()).expect("edge target is a node");
                *d -= 1;
                if *d == 0 {
                    ready.insert(e.target());
                }
            }
        }
        (order.len() == indegree.len()).then_some(order)
    }
}
