//! ONNX importer: decodes the protobuf (hand-written `prost` messages in
//! [`proto`]), then recognizes three dialects of quantized models, all
//! automatically and possibly mixed in one graph:
//!
//! - **QDQ** ([`qdq`]): QuantizeLinear/DequantizeLinear around float
//!   operators, as onnxruntime's `quantize_static(QuantFormat.QDQ)` emits.
//!   `DQ(x), DQ(w), DQ(bias) -> Conv [-> Relu/Clip] -> Q(y)` becomes
//!   Conv2d + BiasAdd + Requantize Float + Clip, with the arithmetic
//!   onnxruntime uses once it has fused the group into QLinearConv.
//! - **QOperator** ([`qop`]): QLinearConv, QLinearMatMul, ConvInteger,
//!   MatMulInteger and the com.microsoft QLinearAdd, QGemm,
//!   QLinearGlobalAveragePool.
//! - **The integer dialect** ([`integer`]) of DORY/NEMO/QuantLab/MATCH:
//!   Conv/MatMul, Cast to int32, Mul, Add, Div by 2^s, Floor, Clip, Cast,
//!   recognized as Conv2d/Dense + Requantize ScaleShift + Clip.
//!
//! Layout: ONNX is NCHW, the IR NHWC. Every 4-D value remembers whether its
//! IR tensor is the NHWC permutation of the ONNX value (`nhwc`); a Transpose
//! is inserted where an operator needs the other order (4-D graph inputs
//! and outputs, Flatten/Reshape/Transpose of a 4-D activation, ...).
//! Convolution weights are converted OIHW -> OHWI at import.
//!
//! With [`ImportOptions::fold_inputs_from`] (ONNX node tests) every graph
//! input but the first is a constant read from `input_N.pb`.
//!
//! Robustness: decode errors, missing fields, absurd shapes and data of the
//! wrong length are errors, never panics; every allocation is bounded by the
//! size of the input (see [`tensor`]).

mod common;
mod conv;
mod integer;
pub mod proto;
mod qdq;
mod qop;
pub mod tensor;

use super::ImportOptions;
use crate::ir::{DType, Data, Graph, Op, OpNode, Quant, Tensor, TensorId};
use anyhow::{anyhow, bail, Context, Result};
use prost::Message;
use proto::{AttributeProto, ModelProto, NodeProto, TensorProto};
use std::collections::{HashMap, HashSet};

/// Operators the importer understands (for the "unsupported" message).
pub const SUPPORTED: &[&str] = &[
    "Add",
    "AveragePool (QDQ)",
    "Cast",
    "Clip",
    "Constant",
    "Conv",
    "ConvInteger",
    "DequantizeLinear",
    "Div (integer dialect)",
    "Flatten",
    "Floor (integer dialect)",
    "Gemm",
    "GlobalAveragePool",
    "Identity",
    "MatMul",
    "MatMulInteger",
    "MaxPool",
    "Mul (integer dialect)",
    "QGemm",
    "QLinearAdd",
    "QLinearAveragePool",
    "QLinearConv",
    "QLinearGlobalAveragePool",
    "QLinearMatMul",
    "QuantizeLinear",
    "Relu",
    "Reshape",
    "Squeeze",
    "Transpose",
    "Unsqueeze",
];

/// Imports an ONNX model.
pub fn import(bytes: &[u8], options: &ImportOptions) -> Result<Graph> {
    let model = ModelProto::decode(bytes).map_err(|e| anyhow!("not a valid ONNX model (protobuf): {e}"))?;
    let graph = model.graph.as_ref().context("the ONNX model has no graph")?;
    let mut ctx = Ctx::new(&graph.node, graph);
    ctx.check_not_float_only(graph)?;
    ctx.load_initializers(&graph.initializer)?;
    ctx.load_inputs(graph, options)?;
    ctx.load_constants()?;
    ctx.run_nodes()?;
    ctx.finish_outputs(graph)?;
    ctx.g.rebuild_edges();
    if ctx.g.topo_order().is_none() {
        bail!("the graph has a cycle");
    }
    Ok(ctx.g)
}

/// What an ONNX value name stands for in the IR.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    /// An IR tensor; `nhwc` when it is the NHWC permutation of a 4-D value.
    T { id: TensorId, nhwc: bool },
    /// A value of a QDQ graph not materialized: `scale * (q - zp)`. The
    /// quantization's `axis` is in ONNX (not NHWC) order.
    Deq { q: TensorId, nhwc: bool, quant: Quant },
}

/// A node with its display name.
pub(crate) struct N<'a> {
    pub p: &'a NodeProto,
    pub name: String,
}

impl<'a> N<'a> {
    pub fn op(&self) -> &'a str {
        &self.p.op_type
    }
    /// Input k, `None` when absent or empty (an omitted optional input).
    pub fn input(&self, k: usize) -> Option<&'a str> {
        self.p.input.get(k).map(|s| s.as_str()).filter(|s| !s.is_empty())
    }
    pub fn req_input(&self, k: usize) -> Result<&'a str> {
        self.input(k).with_context(|| format!("missing input {k}"))
    }
    pub fn output(&self, k: usize) -> Result<&'a str> {
        self.p
            .output
            .get(k)
            .map(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .with_context(|| format!("missing output {k}"))
    }
    pub fn attr(&self, name: &str) -> Option<&'a AttributeProto> {
        self.p.attribute.iter().find(|a| a.name == name)
    }
    pub fn attr_i(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map(|a| a.i).unwrap_or(default)
    }
    pub fn attr_f(&self, name: &str) -> Option<f32> {
        self.attr(name).map(|a| a.f)
    }
    pub fn attr_ints(&self, name: &str) -> Option<&'a [i64]> {
        self.attr(name).map(|a| a.ints.as_slice())
    }
    pub fn attr_s(&self, name: &str) -> Option<String> {
        self.attr(name).map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }
}

/// Import state.
pub(crate) struct Ctx<'a> {
    pub g: Graph,
    pub nodes: &'a [NodeProto],
    pub names: Vec<String>,
    pub vals: HashMap<String, Val>,
    pub consumers: HashMap<String, Vec<usize>>,
    pub done: Vec<bool>,
    pub outputs: HashSet<String>,
}

impl<'a> Ctx<'a> {
    fn new(nodes: &'a [NodeProto], graph: &proto::GraphProto) -> Ctx<'a> {
        let mut consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, n) in nodes.iter().enumerate() {
            for inp in n.input.iter().filter(|s| !s.is_empty()) {
                let v = consumers.entry(inp.clone()).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            }
        }
        let names = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| if n.name.is_empty() { format!("#{i} {}", n.op_type) } else { n.name.clone() })
            .collect();
        Ctx {
            g: Graph::default(),
            nodes,
            names,
            vals: HashMap::new(),
            consumers,
            done: vec![false; nodes.len()],
            outputs: graph.output.iter().map(|o| o.name.clone()).collect(),
        }
    }

    pub fn node(&self, i: usize) -> N<'a> {
        N { p: &self.nodes[i], name: self.names[i].clone() }
    }

    /// A model with no integer tensor and no quantization operator.
    fn check_not_float_only(&self, graph: &proto::GraphProto) -> Result<()> {
        let quant_op = self.nodes.iter().any(|n| {
            n.op_type.starts_with("QLinear")
                || n.op_type.ends_with("Integer")
                || matches!(n.op_type.as_str(), "QuantizeLinear" | "DequantizeLinear" | "QGemm" | "Cast")
        });
        let int_tensor =
            graph.initializer.iter().any(|t| t.data_type != 1 && t.data_type != 11 && t.data_type != 10)
                || graph.input.iter().chain(&graph.output).any(|v| {
                    v.r#type
                        .as_ref()
                        .and_then(|t| t.tensor_type.as_ref())
                        .is_some_and(|t| matches!(t.elem_type, 2 | 3 | 5 | 6))
                });
        if !quant_op && !int_tensor && !self.nodes.is_empty() {
            bail!(
                "this is a float model: the compiler takes quantized integer models (ONNX QDQ or \
                 QOperator from onnxruntime's quantize_static, or the integer dialect)"
            );
        }
        Ok(())
    }

    fn load_initializers(&mut self, inits: &[TensorProto]) -> Result<()> {
        for t in inits {
            let c = tensor::decode(t)?;
            let id = self.add_const(&t.name, c.shape, c.data);
            self.vals.insert(t.name.clone(), Val::T { id, nhwc: false });
        }
        Ok(())
    }

    fn load_inputs(&mut self, graph: &proto::GraphProto, options: &ImportOptions) -> Result<()> {
        let mut k = 0usize;
        for vi in &graph.input {
            if self.vals.contains_key(&vi.name) {
                continue; // an initializer listed as an input (IR < 4)
            }
            let what = || format!("graph input `{}`", vi.name);
            if k > 0 {
                if let Some(dir) = &options.fold_inputs_from {
                    let path = dir.join(format!("input_{k}.pb"));
                    let bytes =
                        std::fs::read(&path).map_err(|e| anyhow!("{}: cannot read: {e}", path.display()))?;
                    let t = TensorProto::decode(bytes.as_slice())
                        .map_err(|e| anyhow!("{}: not a TensorProto: {e}", path.display()))?;
                    let c = tensor::decode(&t).with_context(|| path.display().to_string())?;
                    let id = self.add_const(&vi.name, c.shape, c.data);
                    self.vals.insert(vi.name.clone(), Val::T { id, nhwc: false });
                    k += 1;
                    continue;
                }
            }
            k += 1;
            let tt = vi
                .r#type
                .as_ref()
                .and_then(|t| t.tensor_type.as_ref())
                .with_context(|| format!("{}: not a tensor", what()))?;
            let dt = tensor::dtype(tt.elem_type).with_context(what)?;
            let shape_p = tt.shape.as_ref().with_context(|| format!("{}: no shape", what()))?;
            let mut dims = Vec::with_capacity(shape_p.dim.len());
            for (i, d) in shape_p.dim.iter().enumerate() {
                match d.dim_value {
                    Some(v) if v > 0 || (v == 0 && d.dim_param.is_none() && i > 0) => dims.push(v),
                    _ if i == 0 => dims.push(1), // symbolic batch
                    _ => bail!("{}: dimension {i} is not fixed", what()),
                }
            }
            let shape = tensor::shape(&dims).with_context(what)?;
            let id = self.g.add_tensor(Tensor {
                name: vi.name.clone(),
                shape,
                dtype: dt,
                quant: None,
                data: None,
            });
            self.g.inputs.push(id);
            let nhwc = self.g.tensor(id).shape.len() == 4;
            let id = if nhwc {
                self.transpose(id, &[0, 2, 3, 1], &format!("{}:nhwc", vi.name), &vi.name)
            } else {
                id
            };
            self.vals.insert(vi.name.clone(), Val::T { id, nhwc });
        }
        if self.g.inputs.is_empty() {
            bail!("the graph has no (non-constant) input");
        }
        Ok(())
    }

    /// Constant nodes first: they have no inputs, and fused patterns look
    /// ahead at consumers whose constant operands come later in node order.
    fn load_constants(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            if self.nodes[i].op_type == "Constant" {
                let n = self.node(i);
                common::constant(self, &n).with_context(|| format!("node `{}` (Constant)", n.name))?;
                self.done[i] = true;
            }
        }
        Ok(())
    }

    fn run_nodes(&mut self) -> Result<()> {
        for i in 0..self.nodes.len() {
            if self.done[i] {
                continue;
            }
            let n = self.node(i);
            self.done[i] = true;
            self.dispatch(i, &n).with_context(|| format!("node `{}` ({})", n.name, n.op()))?;
        }
        Ok(())
    }

    fn dispatch(&mut self, i: usize, n: &N<'a>) -> Result<()> {
        for inp in n.p.input.iter().filter(|s| !s.is_empty()) {
            if !self.vals.contains_key(inp) {
                bail!("input `{inp}` is not defined by an initializer, a graph input or an earlier node");
            }
        }
        let deq0 = n.input(0).is_some_and(|x| matches!(self.vals.get(x), Some(Val::Deq { .. })));
        match n.op() {
            "Identity" => {
                let v = self.val(n.req_input(0)?)?;
                self.vals.insert(n.output(0)?.to_string(), v);
                Ok(())
            }
            "QuantizeLinear" => qdq::quantize(self, n),
            "DequantizeLinear" => qdq::dequantize(self, n),
            "Conv" if deq0 => qdq::conv(self, n),
            "MatMul" | "Gemm" if deq0 => qdq::matmul(self, n),
            "Add" if deq0 => qdq::add(self, n),
            "GlobalAveragePool" | "AveragePool" => qdq::avgpool(self, n),
            "Conv" => integer::conv(self, i, n),
            "MatMul" | "Gemm" => integer::matmul(self, i, n),
            "Add" => common::add(self, n),
            "MaxPool" => common::maxpool(self, n),
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" => common::reshape(self, n),
            "Transpose" => common::transpose(self, n),
            "Relu" | "Clip" => common::clip(self, n),
            "Cast" => common::cast(self, n),
            "QLinearConv" => qop::qlinear_conv(self, n),
            "QLinearMatMul" => qop::qlinear_matmul(self, n),
            "ConvInteger" => qop::conv_integer(self, n),
            "MatMulInteger" => qop::matmul_integer(self, n),
            "QLinearAdd" => qop::qlinear_add(self, n),
            "QGemm" => qop::qgemm(self, n),
            "QLinearGlobalAveragePool" => qop::qlinear_global_average_pool(self, n),
            "QLinearAveragePool" => qop::qlinear_average_pool(self, n),
            "Mul" | "Div" | "Floor" => bail!(
                "{} is supported only inside an integer-dialect requantization chain \
                 (Conv/MatMul, Cast int32, Mul, Add, Div 2^s, Floor, Clip, Cast)",
                n.op()
            ),
            op => bail!(
                "unsupported operator {op}{}; supported: {}",
                if n.p.domain.is_empty() { String::new() } else { format!(" (domain {})", n.p.domain) },
                SUPPORTED.join(", ")
            ),
        }
    }

    fn finish_outputs(&mut self, graph: &proto::GraphProto) -> Result<()> {
        for o in &graph.output {
            let what = || format!("graph output `{}`", o.name);
            let v = self
                .vals
                .get(&o.name)
                .cloned()
                .with_context(|| format!("{} is not computed by any node", o.name))?;
            let (id, nhwc) = self.float_or_int(&v, &o.name)?;
            let mut id = id;
            if nhwc {
                self.rename(id, &format!("{}:nhwc", o.name));
                id = self.transpose(id, &[0, 3, 1, 2], &o.name, &o.name);
            }
            let declared = o.r#type.as_ref().and_then(|t| t.tensor_type.as_ref());
            if let Some(tt) = declared {
                let have = self.g.tensor(id).dtype;
                if tt.elem_type == 1 && have != DType::F32 {
                    // The integer dialect: a float-declared output holding
                    // the int32 accumulator.
                    self.rename(id, &format!("{}:int", o.name));
                    let out = self.new_tensor(&o.name, self.g.tensor(id).shape.clone(), DType::F32);
                    self.emit(&o.name, Op::Cast, vec![id], vec![out]);
                    id = out;
                } else if tt.elem_type != 0 {
                    let want = tensor::dtype(tt.elem_type).with_context(what)?;
                    if want != have {
                        bail!("{} is declared {want} but computes {have}", what());
                    }
                }
                if let Some(s) = &tt.shape {
                    let shape = &self.g.tensor(id).shape;
                    let fixed = s.dim.iter().all(|d| d.dim_value.is_some_and(|v| v > 0));
                    let dims: Vec<usize> = s.dim.iter().map(|d| d.dim_value.unwrap_or(0) as usize).collect();
                    if fixed && !s.dim.is_empty() && &dims != shape {
                        bail!("{} is declared {:?} but computes {:?}", what(), dims, shape);
                    }
                }
            }
            if self.g.tensor(id).is_const() {
                bail!("{} is a constant: nothing to compute", what());
            }
            self.g.outputs.push(id);
        }
        Ok(())
    }

    // ---- helpers used by the dialect modules ----

    pub fn val(&self, name: &str) -> Result<Val> {
        self.vals.get(name).cloned().with_context(|| format!("value `{name}` is not defined"))
    }

    pub fn tensor(&self, id: TensorId) -> &Tensor {
        self.g.tensor(id)
    }

    pub fn add_const(&mut self, name: &str, shape: Vec<usize>, data: Data) -> TensorId {
        let dtype = data.dtype();
        self.g.add_tensor(Tensor { name: name.to_string(), shape, dtype, quant: None, data: Some(data) })
    }

    pub fn new_tensor(&mut self, name: &str, shape: Vec<usize>, dtype: DType) -> TensorId {
        self.g.add_tensor(Tensor { name: name.to_string(), shape, dtype, quant: None, data: None })
    }

    pub fn rename(&mut self, id: TensorId, name: &str) {
        self.g.tensor_mut(id).name = name.to_string();
    }

    pub fn emit(&mut self, node: &str, op: Op, inputs: Vec<TensorId>, outputs: Vec<TensorId>) {
        self.g.add_node(OpNode { name: node.to_string(), op, inputs, outputs });
    }

    /// Emits `op` with one new output tensor.
    pub fn emit1(
        &mut self,
        node: &str,
        op: Op,
        inputs: Vec<TensorId>,
        out: &str,
        shape: Vec<usize>,
        dt: DType,
    ) -> TensorId {
        let o = self.new_tensor(out, shape, dt);
        self.emit(node, op, inputs, vec![o]);
        o
    }

    /// Transposes `id` (a constant is permuted at import).
    pub fn transpose(&mut self, id: TensorId, perm: &[usize], out: &str, node: &str) -> TensorId {
        let t = self.g.tensor(id).clone();
        let shape: Vec<usize> = perm.iter().map(|&p| t.shape[p]).collect();
        if let Some(d) = &t.data {
            let data = tensor::transpose(d, &t.shape, perm);
            return self.add_const(out, shape, data);
        }
        let o = self.new_tensor(out, shape, t.dtype);
        self.emit(node, Op::Transpose { perm: perm.to_vec() }, vec![id], vec![o]);
        o
    }

    /// The IR tensor of `v` in NHWC (4-D) order.
    pub fn nhwc_of(&mut self, id: TensorId, nhwc: bool, node: &str) -> Result<TensorId> {
        let rank = self.tensor(id).shape.len();
        if rank != 4 {
            bail!("expected a 4-D (NCHW) tensor, got shape {:?}", self.tensor(id).shape);
        }
        if nhwc {
            return Ok(id);
        }
        let name = format!("{}:nhwc", self.tensor(id).name);
        Ok(self.transpose(id, &[0, 2, 3, 1], &name, node))
    }

    /// The IR tensor of `v` in ONNX order.
    pub fn onnx_of(&mut self, id: TensorId, nhwc: bool, node: &str) -> TensorId {
        if !nhwc {
            return id;
        }
        let name = format!("{}:nchw", self.tensor(id).name);
        self.transpose(id, &[0, 3, 1, 2], &name, node)
    }

    /// ONNX-order shape of a value's tensor.
    pub fn onnx_shape(&self, id: TensorId, nhwc: bool) -> Vec<usize> {
        let s = &self.tensor(id).shape;
        if nhwc && s.len() == 4 {
            vec![s[0], s[3], s[1], s[2]]
        } else {
            s.clone()
        }
    }

    /// An activation or constant tensor; a pending QDQ value is
    /// materialized as a Dequantize node (float).
    pub fn float_or_int(&mut self, v: &Val, name: &str) -> Result<(TensorId, bool)> {
        match v {
            Val::T { id, nhwc } => Ok((*id, *nhwc)),
            Val::Deq { q, nhwc, quant } => {
                let (q, nhwc, quant) = (*q, *nhwc, quant.clone());
                let shape = self.tensor(q).shape.clone();
                if self.tensor(q).is_const() {
                    bail!("value `{name}` is a dequantized constant used as a float tensor");
                }
                let mut quant = quant;
                if nhwc {
                    quant.axis = nhwc_axis(quant.axis, shape.len());
                }
                let tq = self.g.tensor_mut(q);
                if tq.quant.as_ref().is_some_and(|old| old != &quant) {
                    bail!("tensor `{}` is dequantized with two different parameters", tq.name);
                }
                tq.quant = Some(quant);
                let out = self.emit1(name, Op::Dequantize, vec![q], name, shape, DType::F32);
                self.vals.insert(name.to_string(), Val::T { id: out, nhwc });
                Ok((out, nhwc))
            }
        }
    }

    /// An integer activation (not a pending QDQ value).
    pub fn int_act(&mut self, name: &str) -> Result<(TensorId, bool)> {
        match self.val(name)? {
            Val::T { id, nhwc } => {
                if self.tensor(id).dtype == DType::F32 {
                    bail!("input `{name}` is float; an integer tensor is expected here");
                }
                Ok((id, nhwc))
            }
            Val::Deq { .. } => {
                bail!("input `{name}` is dequantized (float); an integer tensor is expected here")
            }
        }
    }

    /// Contents of a constant input.
    pub fn const_of(&self, name: &str) -> Result<(Vec<usize>, Data)> {
        match self.vals.get(name) {
            Some(Val::T { id, nhwc: false }) => {
                let t = self.tensor(*id);
                match &t.data {
                    Some(d) => Ok((t.shape.clone(), d.clone())),
                    None => bail!("input `{name}` must be a constant (an initializer)"),
                }
            }
            Some(_) => bail!("input `{name}` must be a constant (an initializer)"),
            None => bail!("value `{name}` is not defined"),
        }
    }

    pub fn const_ints(&self, name: &str) -> Result<Vec<i64>> {
        let (_, d) = self.const_of(name)?;
        if d.dtype() == DType::F32 {
            bail!("input `{name}` must be an integer constant");
        }
        Ok(d.to_i64())
    }

    pub fn const_floats(&self, name: &str) -> Result<Vec<f32>> {
        let (_, d) = self.const_of(name)?;
        tensor::as_f32(&d).with_context(|| format!("input `{name}` must be a float constant"))
    }

    /// The only node reading `name`, if `name` is not a graph output.
    pub fn sole_consumer(&self, name: &str) -> Option<usize> {
        if self.outputs.contains(name) {
            return None;
        }
        match self.consumers.get(name).map(|v| v.as_slice()) {
            Some([i]) if !self.done[*i] => Some(*i),
            _ => None,
        }
    }

    /// Reads scale, zero point (optional, default 0 of `default_dt`) and
    /// `axis` of a QuantizeLinear/DequantizeLinear node; returns the
    /// quantization (ONNX axis) and the quantized element type.
    pub fn qparams(&self, n: &N, rank: usize, default_dt: DType) -> Result<(Quant, DType)> {
        let scale = self.const_floats(n.req_input(1)?)?;
        let (zp, dt) = match n.input(2) {
            Some(z) => {
                let (_, d) = self.const_of(z)?;
                (d.to_i64(), d.dtype())
            }
            None => (vec![0; scale.len()], default_dt),
        };
        if scale.is_empty() || scale.len() != zp.len() {
            bail!("scale ({}) and zero point ({}) differ in length", scale.len(), zp.len());
        }
        if scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
            bail!("scales must be finite and positive");
        }
        // A 1-D tensor (a bias) has only axis 0, whatever the default says.
        let axis = match (zp.len() > 1, rank) {
            (false, _) | (true, 0 | 1) => 0,
            _ => normalize_axis(n.attr_i("axis", 1), rank)?,
        };
        Ok((Quant { scale, zero_point: zp, axis }, dt))
    }
}

/// Position of ONNX (NCHW) axis `a` in NHWC order.
pub(crate) fn nhwc_axis(a: usize, rank: usize) -> usize {
    if rank != 4 {
        return a;
    }
    [0, 3, 1, 2][a.min(3)]
}

pub(crate) fn normalize_axis(a: i64, rank: usize) -> Result<usize> {
    let r = rank as i64;
    let v = if a < 0 { a + r } else { a };
    if v < 0 || v >= r {
        bail!("axis {a} out of range for rank {rank}");
    }
    Ok(v as usize)
}

#[cfg(test)]
mod tests;
