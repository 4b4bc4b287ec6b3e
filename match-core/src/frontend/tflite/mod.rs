//! TFLite importer: reads a `.tflite` flatbuffer (int8 or uint8 quantized)
//! and decomposes every operator into the canonical IR chain, with the
//! integer parameters TFLite Micro would compute at `Prepare` time.
//!
//! - `schema`: hand-written, verified accessors over the TFLite schema.
//! - `quant`: `QuantizeMultiplier`, ADD parameters, activation ranges.
//! - `conv`: CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED.
//! - `ops`: ADD, pooling, shape operators, SOFTMAX, (DE)QUANTIZE, ReLUs.
//!
//! Node names are `#<operator index> <OPERATOR> (<output tensor name>)`; the
//! extra nodes of a decomposition add a suffix (`.bias`, `.requant`, ...).
//! Every failure of an operator carries that name in its context.

mod conv;
mod ops;
pub mod quant;
mod schema;
#[cfg(test)]
mod tests;

pub use quant::{activation_range, add_params, quantize_multiplier, quantize_multiplier_smaller_than_one};

use crate::ir::{DType, Data, Graph, Op, OpNode, Quant, Tensor, TensorId};
use anyhow::{bail, ensure, Context, Result};

/// Largest element count of a tensor the importer accepts (2^31).
const MAX_ELEMENTS: u64 = 1 << 31;
/// Largest rank accepted.
const MAX_RANK: usize = 8;

/// The operators the importer takes, for error messages.
const SUPPORTED: &str = "CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ADD, AVERAGE_POOL_2D, \
MAX_POOL_2D, RESHAPE, SQUEEZE, PAD, PADV2, CONCATENATION, SOFTMAX, QUANTIZE, DEQUANTIZE, RELU, \
RELU6, RELU_N1_TO_1";

/// `BuiltinOperator` codes the importer handles.
mod code {
    pub const ADD: i32 = 0;
    pub const AVERAGE_POOL_2D: i32 = 1;
    pub const CONCATENATION: i32 = 2;
    pub const CONV_2D: i32 = 3;
    pub const DEPTHWISE_CONV_2D: i32 = 4;
    pub const DEQUANTIZE: i32 = 6;
    pub const FULLY_CONNECTED: i32 = 9;
    pub const MAX_POOL_2D: i32 = 17;
    pub const RELU: i32 = 19;
    pub const RELU_N1_TO_1: i32 = 20;
    pub const RELU6: i32 = 21;
    pub const RESHAPE: i32 = 22;
    pub const SOFTMAX: i32 = 25;
    pub const CUSTOM: i32 = 32;
    pub const PAD: i32 = 34;
    pub const MEAN: i32 = 40;
    pub const SQUEEZE: i32 = 43;
    pub const PADV2: i32 = 60;
    pub const QUANTIZE: i32 = 114;
}

/// Imports a TFLite model (first subgraph) into the IR. Corrupt or
/// truncated input is an error, never a panic.
pub fn import(bytes: &[u8]) -> Result<Graph> {
    let model = schema::parse_model(bytes)?;
    ensure!(model.version() == 3, "TFLite schema version {}, expected 3", model.version());
    let subgraphs = model.subgraphs().context("the model has no subgraphs")?;
    ensure!(!subgraphs.is_empty(), "the model has no subgraphs");
    let sg = subgraphs.get(0);
    let tensors: Vec<schema::Tensor> = sg.tensors().map(|t| t.iter().collect()).unwrap_or_default();
    let buffers: Vec<schema::Buffer> = model.buffers().map(|b| b.iter().collect()).unwrap_or_default();
    let opcodes: Vec<schema::OperatorCode> =
        model.operator_codes().map(|o| o.iter().collect()).unwrap_or_default();
    let mut ctx =
        Ctx { bytes, tensors, buffers, graph: Graph::default(), map: Vec::new(), written: Vec::new() };
    ctx.map = vec![None; ctx.tensors.len()];
    ctx.written = vec![false; ctx.tensors.len()];

    for i in sg.inputs().map(|v| v.iter().collect::<Vec<_>>()).unwrap_or_default() {
        let id = ctx.tensor(i).with_context(|| format!("subgraph input {i}"))?;
        ensure!(!ctx.graph.tensor(id).is_const(), "subgraph input {i} is a constant");
        ctx.written[i as usize] = true;
        ctx.graph.inputs.push(id);
    }

    let operators: Vec<schema::Operator> = sg.operators().map(|o| o.iter().collect()).unwrap_or_default();
    for (index, op) in operators.iter().enumerate() {
        let info = OpInfo::new(&ctx, &opcodes, index, *op)?;
        let label = info.name.clone();
        lower(&mut ctx, &info).with_context(|| format!("operator {label}"))?;
    }

    for o in sg.outputs().map(|v| v.iter().collect::<Vec<_>>()).unwrap_or_default() {
        let id = ctx.tensor(o).with_context(|| format!("subgraph output {o}"))?;
        ensure!(
            ctx.written[o as usize] || ctx.graph.tensor(id).is_const(),
            "subgraph output {o} ({}) is computed by no operator",
            ctx.graph.tensor(id).name
        );
        ctx.graph.outputs.push(id);
    }
    ensure!(!ctx.graph.outputs.is_empty(), "the model has no outputs");
    ctx.graph.rebuild_edges();
    Ok(ctx.graph)
}

/// One TFLite operator, decoded.
pub(crate) struct OpInfo<'a> {
    pub code: i32,
    /// `CONV_2D`, ... (the custom code for CUSTOM operators).
    pub opname: String,
    /// `#12 CONV_2D (model/conv2d_3/Relu)`.
    pub name: String,
    pub op: schema::Operator<'a>,
    /// Tensor indices; -1 marks an omitted optional input.
    pub inputs: Vec<i32>,
    pub outputs: Vec<i32>,
}

impl<'a> OpInfo<'a> {
    fn new(
        ctx: &Ctx<'a>,
        opcodes: &[schema::OperatorCode<'a>],
        index: usize,
        op: schema::Operator<'a>,
    ) -> Result<Self> {
        let inputs: Vec<i32> = op.inputs().map(|v| v.iter().collect()).unwrap_or_default();
        let outputs: Vec<i32> = op.outputs().map(|v| v.iter().collect()).unwrap_or_default();
        let out_name = outputs
            .first()
            .and_then(|&o| usize::try_from(o).ok())
            .and_then(|o| ctx.tensors.get(o))
            .map(|t| t.name().unwrap_or("").to_string())
            .unwrap_or_default();
        let opcode = opcodes.get(op.opcode_index() as usize);
        let (code, opname) = match opcode {
            Some(c) if c.code() == code::CUSTOM => {
                (code::CUSTOM, format!("CUSTOM:{}", c.custom_code().unwrap_or("?")))
            }
            Some(c) => (c.code(), schema::builtin_name(c.code())),
            None => (-1, "?".to_string()),
        };
        let name = format!("#{index} {opname} ({out_name})");
        ensure!(
            opcode.is_some(),
            "operator {name}: opcode index {} out of range ({} operator codes)",
            op.opcode_index(),
            opcodes.len()
        );
        Ok(OpInfo { code, opname, name, op, inputs, outputs })
    }

    /// The tensor index of input `k`; error if missing or omitted.
    pub fn input(&self, k: usize) -> Result<i32> {
        match self.inputs.get(k) {
            Some(&i) if i >= 0 => Ok(i),
            _ => bail!("input {k} is missing ({} inputs)", self.inputs.len()),
        }
    }

    /// The tensor index of an optional input `k`.
    pub fn optional_input(&self, k: usize) -> Option<i32> {
        self.inputs.get(k).copied().filter(|&i| i >= 0)
    }

    /// The single output.
    pub fn output(&self) -> Result<i32> {
        ensure!(self.outputs.len() == 1, "expected 1 output, found {}", self.outputs.len());
        let o = self.outputs[0];
        ensure!(o >= 0, "output index {o} is negative");
        Ok(o)
    }

    /// The name of an extra node of the decomposition.
    pub fn part(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.name)
    }
}

/// What a TFLite tensor says, checked.
#[derive(Clone, Debug)]
pub(crate) struct TensorInfo {
    pub name: String,
    pub shape: Vec<usize>,
    pub dtype: DType,
    pub quant: Option<Quant>,
    pub data: Option<Data>,
}

impl TensorInfo {
    pub fn elements(&self) -> usize {
        self.shape.iter().product()
    }
    /// The per-tensor (scale, zero point), required.
    pub fn per_tensor(&self) -> Result<(f32, i64)> {
        let q = self.quant.as_ref().with_context(|| {
            format!("tensor {} ({}) has no quantization parameters", self.name, self.dtype)
        })?;
        ensure!(
            !q.is_per_channel(),
            "tensor {} must be quantized per tensor, has {} scales",
            self.name,
            q.scale.len()
        );
        quant::check_scale(&format!("tensor {}", self.name), q.scale[0])?;
        Ok((q.scale[0], q.zp()))
    }
}

pub(crate) struct Ctx<'a> {
    bytes: &'a [u8],
    tensors: Vec<schema::Tensor<'a>>,
    buffers: Vec<schema::Buffer<'a>>,
    pub graph: Graph,
    /// TFLite tensor index -> IR tensor, made on first use.
    map: Vec<Option<TensorId>>,
    /// TFLite tensors already computed (graph inputs and operator outputs).
    written: Vec<bool>,
}

impl<'a> Ctx<'a> {
    fn index(&self, idx: i32) -> Result<usize> {
        usize::try_from(idx)
            .ok()
            .filter(|&i| i < self.tensors.len())
            .with_context(|| format!("tensor index {idx} out of range ({} tensors)", self.tensors.len()))
    }

    /// Reads and checks TFLite tensor `idx` (shape, type, quantization,
    /// constant data).
    pub fn info(&self, idx: i32) -> Result<TensorInfo> {
        let i = self.index(idx)?;
        let t = self.tensors[i];
        let name = t.name().map(str::to_string).unwrap_or_else(|| format!("tensor{i}"));
        read_tensor(self.bytes, &self.buffers, t, name.clone())
            .with_context(|| format!("tensor {i} ({name})"))
    }

    /// The IR tensor of TFLite tensor `idx`, made on first use.
    pub fn tensor(&mut self, idx: i32) -> Result<TensorId> {
        let i = self.index(idx)?;
        if let Some(id) = self.map[i] {
            return Ok(id);
        }
        let info = self.info(idx)?;
        let id = self.graph.add_tensor(Tensor {
            name: info.name,
            shape: info.shape,
            dtype: info.dtype,
            quant: info.quant,
            data: info.data,
        });
        self.map[i] = Some(id);
        Ok(id)
    }

    /// The IR tensor of an operator input: it must be a constant or already
    /// computed (TFLite stores operators in execution order).
    pub fn read(&mut self, idx: i32) -> Result<TensorId> {
        let id = self.tensor(idx)?;
        let i = self.index(idx)?;
        ensure!(
            self.written[i] || self.graph.tensor(id).is_const(),
            "input tensor {idx} ({}) is read before any operator computes it",
            self.graph.tensor(id).name
        );
        Ok(id)
    }

    /// The IR tensor of an operator output: computed once, not a constant.
    pub fn write(&mut self, idx: i32) -> Result<TensorId> {
        let id = self.tensor(idx)?;
        let i = self.index(idx)?;
        let t = self.graph.tensor(id);
        ensure!(!t.is_const(), "output tensor {idx} ({}) is a constant", t.name);
        ensure!(!self.written[i], "output tensor {idx} ({}) is computed twice", t.name);
        self.written[i] = true;
        Ok(id)
    }

    /// A new intermediate tensor.
    pub fn temp(&mut self, name: String, shape: Vec<usize>, dtype: DType, quant: Option<Quant>) -> TensorId {
        self.graph.add_tensor(Tensor { name, shape, dtype, quant, data: None })
    }

    /// A new constant tensor.
    pub fn constant(
        &mut self,
        name: String,
        shape: Vec<usize>,
        quant: Option<Quant>,
        data: Data,
    ) -> TensorId {
        let dtype = data.dtype();
        self.graph.add_tensor(Tensor { name, shape, dtype, quant, data: Some(data) })
    }

    pub fn node(&mut self, name: String, op: Op, inputs: Vec<TensorId>, outputs: Vec<TensorId>) {
        self.graph.add_node(OpNode { name, op, inputs, outputs });
    }
}

/// TFLite `TensorType` -> IR type.
fn dtype_of(code: i8) -> Result<DType> {
    Ok(match code {
        0 => DType::F32,
        2 => DType::I32,
        3 => DType::U8,
        4 => DType::I64,
        7 => DType::I16,
        9 => DType::I8,
        other => {
            let name = match other {
                1 => "FLOAT16",
                5 => "STRING",
                6 => "BOOL",
                8 => "COMPLEX64",
                10 => "FLOAT64",
                17 => "INT4",
                18 => "BFLOAT16",
                _ => "unsupported",
            };
            bail!("tensor type {name} ({other}) is not supported")
        }
    })
}

fn read_tensor(
    bytes: &[u8],
    buffers: &[schema::Buffer],
    t: schema::Tensor,
    name: String,
) -> Result<TensorInfo> {
    ensure!(!t.is_sparse(), "sparse tensors are not supported");
    ensure!(
        !t.is_variable(),
        "variable tensors (state kept between invocations, as in streaming models) are not supported"
    );
    let dims: Vec<i32> = t.shape().map(|s| s.iter().collect()).unwrap_or_default();
    ensure!(dims.len() <= MAX_RANK, "rank {} exceeds {MAX_RANK}", dims.len());
    let mut shape = Vec::with_capacity(dims.len());
    let mut elements: u64 = 1;
    for &d in &dims {
        ensure!(d > 0, "shape {dims:?} has a dimension {d}: dynamic or empty shapes are not supported");
        elements = elements.saturating_mul(d as u64);
        ensure!(elements <= MAX_ELEMENTS, "shape {dims:?} has more than 2^31 elements");
        shape.push(d as usize);
    }
    let dtype = dtype_of(t.tensor_type())?;
    let quant = match t.quantization() {
        Some(q) => read_quant(q, &shape, dtype)?,
        None => None,
    };
    let data = read_data(bytes, buffers, t.buffer(), dtype, elements as usize)?;
    Ok(TensorInfo { name, shape, dtype, quant, data })
}

fn read_quant(q: schema::QuantizationParameters, shape: &[usize], dtype: DType) -> Result<Option<Quant>> {
    let scale: Vec<f32> = q.scale().map(|s| s.iter().collect()).unwrap_or_default();
    if scale.is_empty() {
        return Ok(None);
    }
    ensure!(q.details_type() == 0, "custom quantization details are not supported");
    let mut zero_point: Vec<i64> = q.zero_point().map(|z| z.iter().collect()).unwrap_or_default();
    if zero_point.is_empty() {
        zero_point = vec![0; scale.len()];
    }
    ensure!(zero_point.len() == scale.len(), "{} scales but {} zero points", scale.len(), zero_point.len());
    let (lo, hi) = dtype.int_range().unwrap_or((i32::MIN as i64, i32::MAX as i64));
    if let Some(z) = zero_point.iter().find(|&&z| z < lo || z > hi) {
        bail!("zero point {z} is outside the range of {dtype}");
    }
    let axis = q.quantized_dimension();
    let axis =
        usize::try_from(axis).ok().with_context(|| format!("quantized dimension {axis} is negative"))?;
    if scale.len() > 1 {
        ensure!(
            shape.get(axis) == Some(&scale.len()),
            "{} per-channel scales do not match dimension {axis} of shape {shape:?}",
            scale.len()
        );
    }
    Ok(Some(Quant { scale, zero_point, axis }))
}

fn read_data(
    bytes: &[u8],
    buffers: &[schema::Buffer],
    index: u32,
    dtype: DType,
    elements: usize,
) -> Result<Option<Data>> {
    let buffer = buffers
        .get(index as usize)
        .with_context(|| format!("buffer index {index} out of range ({} buffers)", buffers.len()))?;
    let raw: &[u8] = match buffer.data() {
        Some(d) if !d.is_empty() => d.bytes(),
        _ if buffer.offset() > 1 => {
            // Data stored after the flatbuffer (models over 2 GB).
            let start = usize::try_from(buffer.offset()).ok();
            let len = usize::try_from(buffer.size()).ok();
            let range = start.zip(len).and_then(|(s, l)| Some(s..s.checked_add(l)?));
            match range.and_then(|r| bytes.get(r)) {
                Some(raw) => raw,
                None => bail!(
                    "buffer {index}: offset {} size {} is outside the file",
                    buffer.offset(),
                    buffer.size()
                ),
            }
        }
        _ => return Ok(None),
    };
    let expected = elements.checked_mul(dtype.size()).context("constant size overflows")?;
    ensure!(
        raw.len() == expected,
        "buffer {index} holds {} bytes, the tensor needs {expected} ({elements} x {dtype})",
        raw.len()
    );
    Ok(Some(Data::from_le_bytes(dtype, raw).context("constant bytes do not fit the type")?))
}

/// Checks that a compute operator's tensor is quantized integer: a float
/// tensor means a float model, which the compiler does not take.
pub(crate) fn require_quantized(what: &str, t: &TensorInfo) -> Result<()> {
    if t.dtype == DType::F32 || t.quant.is_none() {
        bail!(
            "{what} {} is {} without quantization parameters: this compiler takes quantized integer \
             models (int8/uint8 TFLite, full-integer post-training quantization), not float models",
            t.name,
            t.dtype
        );
    }
    ensure!(
        matches!(t.dtype, DType::I8 | DType::U8),
        "{what} {} has type {}; int8 or uint8 activations are supported",
        t.name,
        t.dtype
    );
    Ok(())
}

fn lower(ctx: &mut Ctx, info: &OpInfo) -> Result<()> {
    match info.code {
        code::CONV_2D => conv::conv2d(ctx, info, false),
        code::DEPTHWISE_CONV_2D => conv::conv2d(ctx, info, true),
        code::FULLY_CONNECTED => conv::fully_connected(ctx, info),
        code::ADD => ops::add(ctx, info),
        code::AVERAGE_POOL_2D => ops::pool(ctx, info, true),
        code::MAX_POOL_2D => ops::pool(ctx, info, false),
        code::RESHAPE | code::SQUEEZE => ops::reshape(ctx, info),
        code::PAD | code::PADV2 => ops::pad(ctx, info),
        code::CONCATENATION => ops::concatenation(ctx, info),
        code::SOFTMAX => ops::softmax(ctx, info),
        code::QUANTIZE => ops::quantize(ctx, info),
        code::DEQUANTIZE => ops::dequantize(ctx, info),
        code::RELU => ops::relu(ctx, info, quant::act::RELU),
        code::RELU6 => ops::relu(ctx, info, quant::act::RELU6),
        code::RELU_N1_TO_1 => ops::relu(ctx, info, quant::act::RELU_N1_TO_1),
        code::MEAN => bail!(
            "MEAN is not supported: TFLite Micro's int8 MEAN rounds differently from the IR's \
             GlobalAvgPool (integer division of raw sums or a float path, depending on the \
             quantization), so it cannot be imported exactly; use AVERAGE_POOL_2D (supported: {SUPPORTED})"
        ),
        _ => bail!("unsupported operator {}; supported: {SUPPORTED}", info.opname),
    }
}
