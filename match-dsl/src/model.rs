//! The validated hardware model. Only `sema` builds one (from a file that
//! checked without errors) or serde (from one that did), so later stages
//! can rely on every name resolving and every value being in range.

use crate::expr::Expr;
use serde::{Deserialize, Serialize};

/// A target, checked. Lists keep the file's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HwModel {
    pub name: String,
    pub clock_hz: u64,
    /// The folder of the target's C files, relative to the `.hwm` file.
    pub platform: Option<String>,
    pub memories: Vec<Memory>,
    pub dmas: Vec<Dma>,
    pub units: Vec<Unit>,
    pub patterns: Vec<Pattern>,
    pub offloads: Vec<Offload>,
    pub defs: Vec<Def>,
    pub api: Vec<ApiBinding>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Memory {
    pub name: String,
    pub size: u64,
    /// Bytes kept back (stacks, runtime); usable = size - reserve.
    pub reserve: u64,
    pub read_bandwidth: Option<f64>,
    pub write_bandwidth: Option<f64>,
    pub ports: u32,
    pub latency: u64,
    /// Which tensors it may hold; empty means all.
    pub holds: Vec<TensorClass>,
    /// Off-chip (L3): reached only through DMA.
    pub external: bool,
    pub double_buffer: bool,
    /// pJ per byte read or written.
    pub energy_per_byte: Option<f64>,
}

impl Memory {
    pub fn usable(&self) -> u64 {
        self.size - self.reserve
    }

    pub fn may_hold(&self, class: TensorClass) -> bool {
        self.holds.is_empty() || self.holds.contains(&class)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TensorClass {
    Inputs,
    Weights,
    Outputs,
    Scratch,
}

impl TensorClass {
    pub const ALL: [(TensorClass, &'static str); 4] = [
        (TensorClass::Inputs, "inputs"),
        (TensorClass::Weights, "weights"),
        (TensorClass::Outputs, "outputs"),
        (TensorClass::Scratch, "scratch"),
    ];
    pub fn name(self) -> &'static str {
        TensorClass::ALL.iter().find(|(c, _)| *c == self).map(|(_, n)| *n).unwrap_or("?")
    }
}

/// A DMA link between two memories.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dma {
    pub from: String,
    pub to: String,
    /// `<->`: also moves `to` -> `from`.
    pub both_ways: bool,
    /// Bytes per cycle.
    pub bandwidth: f64,
    /// Cycles to program one transfer.
    pub setup: u64,
    /// Strided dimensions one command can move (1 = contiguous only).
    pub dims: u32,
    /// Largest bytes per command; larger transfers are split.
    pub max_bytes: Option<u64>,
    /// Extra cycles per transfer by dimensionality: entry `i` is for `i+1` dims.
    pub overhead: Vec<u64>,
    pub start: String,
    pub wait: String,
    pub energy_per_byte: Option<f64>,
}

impl Dma {
    pub fn connects(&self, src: &str, dst: &str) -> bool {
        (self.from == src && self.to == dst) || (self.both_ways && self.from == dst && self.to == src)
    }

    /// Overhead cycles of a transfer with `dims` strided dimensions.
    pub fn overhead_for(&self, dims: u32) -> u64 {
        if dims == 0 || self.overhead.is_empty() {
            return 0;
        }
        let i = (dims as usize - 1).min(self.overhead.len() - 1);
        self.overhead[i]
    }
}

/// A compute unit: a core, a cluster or an accelerator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Unit {
    pub name: String,
    /// Runs the generic kernels and the control code.
    pub host: bool,
    pub cores: u32,
    /// Nominal peak MACs per cycle.
    pub macs_per_cycle: f64,
    /// Spatial unrolling: (dimension, factor), e.g. `K 32, C 16`.
    pub spatial: Vec<(Dim, u32)>,
    /// The memory its operands must be in.
    pub compute_in: String,
    /// Where its weights live, when not in `compute_in`.
    pub weights_in: Option<String>,
    pub call_overhead: u64,
    pub scratch: Vec<Scratch>,
    pub inputs: Vec<DType>,
    pub weights: Vec<DType>,
    pub outputs: Vec<DType>,
    pub requant: Vec<RequantForm>,
    pub weight_layout: Vec<LayoutStep>,
    pub activation_layout: Vec<LayoutStep>,
    /// `activation_layout any`: the unit's kernels read and write
    /// activations in whatever layout their input arrives in (code
    /// generated per layout, as TVM does for a CPU), so a layer on it keeps
    /// its producer's layout and pays no conversion, where the operator does
    /// not depend on the element order (match-core's mapping says which).
    #[serde(default)]
    pub any_layout: bool,
    /// Compute cycles of one call, over the tile's dimensions; `None` means
    /// the default model from `spatial` and `macs_per_cycle`.
    pub cycles: Option<Expr>,
    /// pJ per MAC.
    pub energy_per_mac: Option<f64>,
    /// Bits of the output ADC of an analog array.
    pub adc_bits: Option<u32>,
    /// The widths, in bits, of the unsigned per-channel scale a
    /// `scale_shift` unit can program, increasing; empty when unstated
    /// (then 8: see [`Unit::scale_widths`]).
    #[serde(default)]
    pub scale_bits: Vec<u32>,
    /// `partial_sums`: the unit's kernels can accumulate int32 partial sums
    /// across calls (initialize on the first input-channel tile, add on the
    /// later ones, requantize once after the last), so the schedule may
    /// split the input channels C of a convolution (groups 1) or dense
    /// layer (match-core's cost module).
    #[serde(default)]
    pub partial_sums: bool,
    /// `partial_sums R/cycle`: the rate at which the unit's kernels read
    /// or write the int32 accumulator, in elements per cycle over all its
    /// cores. A call on an input-channel tile other than the first reads
    /// its output tile's partial sums, one other than the last writes
    /// them: each costs the tile's output elements over this rate, added
    /// to the call's compute cycles. `None` (a bare `partial_sums`): that
    /// traffic is not charged.
    #[serde(default)]
    pub partial_sum_rate: Option<f64>,
}

impl Unit {
    /// The scale widths of the unit's `scale_shift` requantization,
    /// increasing: the declared `scale_bits`, or 8 when unstated.
    pub fn scale_widths(&self) -> Vec<u32> {
        if self.scale_bits.is_empty() {
            vec![8]
        } else {
            self.scale_bits.clone()
        }
    }
}

/// A scratch buffer a kernel needs, in bytes, over the tile's dimensions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Scratch {
    pub name: String,
    pub bytes: Expr,
}

/// A loop dimension that a unit can unroll spatially.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Dim {
    K,
    C,
    OY,
    OX,
    FY,
    FX,
}

impl Dim {
    pub const ALL: [Dim; 6] = [Dim::K, Dim::C, Dim::OY, Dim::OX, Dim::FY, Dim::FX];
    pub fn name(self) -> &'static str {
        match self {
            Dim::K => "K",
            Dim::C => "C",
            Dim::OY => "OY",
            Dim::OX => "OX",
            Dim::FY => "FY",
            Dim::FX => "FX",
        }
    }
    pub fn from_name(s: &str) -> Option<Dim> {
        Dim::ALL.into_iter().find(|d| d.name() == s)
    }
}

/// An element type: `i8`, `u8`, `i7`, `i32`, `ternary`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DType {
    Signed(u8),
    Unsigned(u8),
    /// {-1, 0, +1}.
    Ternary,
}

impl DType {
    pub fn parse(s: &str) -> Option<DType> {
        if s == "ternary" {
            return Some(DType::Ternary);
        }
        let (signed, bits) = match s.as_bytes().first()? {
            b'i' => (true, &s[1..]),
            b'u' => (false, &s[1..]),
            _ => return None,
        };
        if bits.is_empty() || bits.starts_with('0') || !bits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let bits: u8 = bits.parse().ok()?;
        if !(1..=32).contains(&bits) {
            return None;
        }
        Some(if signed { DType::Signed(bits) } else { DType::Unsigned(bits) })
    }

    pub fn bits(self) -> u8 {
        match self {
            DType::Signed(b) | DType::Unsigned(b) => b,
            DType::Ternary => 2,
        }
    }

    /// Smallest and largest value.
    pub fn range(self) -> (i64, i64) {
        match self {
            DType::Signed(b) => (-(1i64 << (b - 1)), (1i64 << (b - 1)) - 1),
            DType::Unsigned(b) => (0, (1i64 << b) - 1),
            DType::Ternary => (-1, 1),
        }
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DType::Signed(b) => write!(f, "i{b}"),
            DType::Unsigned(b) => write!(f, "u{b}"),
            DType::Ternary => f.write_str("ternary"),
        }
    }
}

/// A requantization form a unit implements in hardware.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RequantForm {
    /// TFLite: int32 fixed-point multiplier and shift, double rounding.
    FixedPoint,
    /// Integer scale, bias, arithmetic shift right (floor): NE16, PULP-NN.
    ScaleShift,
    /// Bias and shift right only (floor): DIANA digital.
    Shift,
    /// Float scale, round half to even: ONNX QLinear.
    Float,
    /// Analog chain: floor(acc / gain), ADC clip, then k*y + l >> shift.
    Adc,
}

impl RequantForm {
    pub const ALL: [(RequantForm, &'static str); 5] = [
        (RequantForm::FixedPoint, "fixed_point"),
        (RequantForm::ScaleShift, "scale_shift"),
        (RequantForm::Shift, "shift"),
        (RequantForm::Float, "float"),
        (RequantForm::Adc, "adc"),
    ];
    pub fn name(self) -> &'static str {
        RequantForm::ALL.iter().find(|(c, _)| *c == self).map(|(_, n)| *n).unwrap_or("?")
    }
    pub fn from_name(s: &str) -> Option<RequantForm> {
        RequantForm::ALL.iter().find(|(_, n)| *n == s).map(|(c, _)| *c)
    }
}

/// One step of a data layout, applied in order to the tensor as the
/// compiler holds it (weights start as (K, C, FY, FX), activations as
/// (C, H, W) per image with the model's order given by `order`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum LayoutStep {
    /// Permute dimensions into this order.
    Order(Vec<String>),
    /// Exchange the contents of two dimensions; the names keep their
    /// places (`swap(K, C)` on depthwise weights (K, 1, FY, FX) gives
    /// (1, K, FY, FX) under the same names, so `C` then holds the channels).
    Swap(String, String),
    /// Pad a dimension with zeros to a multiple.
    Pad(String, u64),
    /// Split dimension `dim` into outer `dim` and inner `name` of size `factor`.
    Split(String, u64, String),
    /// Add a constant modulo 2^bits (make signed values unsigned).
    Offset(i64),
    /// Split each value into `bits` bit planes, least significant first.
    Bitplanes(u32),
    /// Pack `n` consecutive innermost elements of `bits` bits into one byte.
    Pack(u32),
    /// Reverse the byte order inside each word of `n` bytes.
    ReverseBytes(u32),
    /// After each block of `n` output channels, append its int32 biases.
    AppendBias(u32),
    /// Widen each element to `n` bytes.
    Expand(u32),
    /// Encode ternary values as a (w+, w-) bit pair.
    TernaryPairs,
    /// Flatten adjacent dimensions `a` (outer) and `b` (inner) into one
    /// dimension `new`, in `a`'s place.
    Merge(String, String, String),
}

/// The operators a pattern can name: the canonical integer operators of the IR.
pub const OPERATORS: &[(&str, &str)] = &[
    ("conv2d", "2-D convolution, any groups (depthwise is `depthwise`)"),
    ("dense", "fully connected / matrix multiplication"),
    ("bias", "per-channel int32 bias addition"),
    ("requant", "requantization of an int32 accumulator"),
    ("relu", "ReLU"),
    ("relu6", "ReLU6"),
    ("clip", "clip to a range"),
    ("add", "element-wise addition with rescaling"),
    ("avgpool", "average pooling"),
    ("maxpool", "max pooling"),
    ("globalavgpool", "global average pooling"),
    ("pad", "explicit padding"),
    ("reshape", "reshape, flatten, squeeze"),
    ("concat", "concatenation"),
    ("softmax", "int8 softmax"),
    ("quantize", "quantize at a model boundary"),
    ("dequantize", "dequantize at a model boundary"),
];

pub fn is_operator(name: &str) -> bool {
    OPERATORS.iter().any(|(n, _)| *n == name)
}

/// A named operator chain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pattern {
    pub name: String,
    pub body: PatternExpr,
}

/// Pattern bodies with other patterns' names inlined, so matchers see
/// operators only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum PatternExpr {
    Op(String),
    Seq(Vec<PatternExpr>),
    Alt(Vec<PatternExpr>),
    Optional(Box<PatternExpr>),
}

impl PatternExpr {
    /// Every operator sequence this pattern matches, longest first (stable
    /// order otherwise). Used by matchers and by the macro descriptors.
    pub fn sequences(&self) -> Vec<Vec<String>> {
        let mut out = self.expand();
        out.sort_by_key(|s| std::cmp::Reverse(s.len()));
        out.dedup();
        out
    }

    fn expand(&self) -> Vec<Vec<String>> {
        match self {
            PatternExpr::Op(o) => vec![vec![o.clone()]],
            PatternExpr::Optional(inner) => {
                let mut v = vec![vec![]];
                v.extend(inner.expand());
                v
            }
            PatternExpr::Alt(xs) => xs.iter().flat_map(|x| x.expand()).collect(),
            PatternExpr::Seq(xs) => {
                let mut acc: Vec<Vec<String>> = vec![vec![]];
                for x in xs {
                    let tails = x.expand();
                    let mut next = Vec::with_capacity(acc.len() * tails.len());
                    for a in &acc {
                        for t in &tails {
                            let mut s = a.clone();
                            s.extend(t.iter().cloned());
                            next.push(s);
                        }
                    }
                    acc = next;
                }
                acc
            }
        }
    }
}

/// `offload PATTERN to UNIT where COND call "kernel"`, with the rule's
/// optional `weight_layout`, `activation_layout` and `cycles` clauses, which
/// override the unit's for the matches of this rule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Offload {
    pub pattern: String,
    pub unit: String,
    pub condition: Option<Expr>,
    pub kernel: String,
    /// The rule's own weight layout; `None`: the unit's
    /// ([`HwModel::offload_weight_layout`]).
    #[serde(default)]
    pub weight_layout: Option<Vec<LayoutStep>>,
    /// The rule's own activation layout; `None`: the unit's
    /// ([`HwModel::offload_activation_layout`]).
    #[serde(default)]
    pub activation_layout: Option<Vec<LayoutStep>>,
    /// The rule's own compute cycles of one call; `None`: the unit's
    /// ([`HwModel::offload_call_cycles`]).
    #[serde(default)]
    pub cycles: Option<Expr>,
    /// `tile_condition = COND`: a condition every tile of a schedule must
    /// meet, evaluated on each tile as the `cycles` expression sees it
    /// (the tile's K, C, OY, OX, its padding on the borders, the layer's
    /// other attributes): the schedule search leaves out tile sizes for
    /// which some tile, remainder tiles included, fails it. `None`: any.
    #[serde(default)]
    pub tile_condition: Option<Expr>,
}

/// A helper function for cost expressions: `def load(k) = ...`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Def {
    pub name: String,
    pub params: Vec<String>,
    pub body: Expr,
}

/// A C name the generated code calls for a platform service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiBinding {
    pub role: String,
    pub symbol: String,
}

/// The roles an `api` block may bind.
pub const API_ROLES: &[(&str, &str)] = &[
    ("header", "the C header that declares the platform functions"),
    ("init", "called once before the first layer"),
    ("deinit", "called once after the last layer"),
    ("sync", "waits for every unit to finish"),
    ("barrier", "synchronizes the cores of a cluster"),
    ("fork", "runs a function on every core of a cluster"),
    ("malloc", "allocates a buffer in a memory"),
    ("free", "frees it"),
    ("timer_start", "starts the cycle counter"),
    ("timer_stop", "stops it and returns cycles"),
    ("print", "printf-like output"),
    ("layer", "called at each layer's start with its index, name and modeled cycles"),
    ("buffer", "registers a tile buffer (address, bytes) of the current layer in a compute memory"),
    ("tile", "called before each tile's kernel call with its input, weight and output buffers"),
    (
        "keep",
        "declares a tile buffer (address, bytes) of the current layer that the next layer reads in place",
    ),
];

impl HwModel {
    pub fn memory(&self, name: &str) -> Option<&Memory> {
        self.memories.iter().find(|m| m.name == name)
    }
    pub fn unit(&self, name: &str) -> Option<&Unit> {
        self.units.iter().find(|u| u.name == name)
    }
    pub fn pattern(&self, name: &str) -> Option<&Pattern> {
        self.patterns.iter().find(|p| p.name == name)
    }
    pub fn def(&self, name: &str) -> Option<&Def> {
        self.defs.iter().find(|d| d.name == name)
    }
    /// The unit that runs generic kernels; sema guarantees exactly one.
    pub fn host_unit(&self) -> &Unit {
        self.units.iter().find(|u| u.host).expect("a checked model has a host unit")
    }
    pub fn api(&self, role: &str) -> Option<&str> {
        self.api.iter().find(|a| a.role == role).map(|a| a.symbol.as_str())
    }
    /// The DMA that moves data from `src` to `dst`.
    pub fn dma(&self, src: &str, dst: &str) -> Option<&Dma> {
        self.dmas.iter().find(|d| d.connects(src, dst))
    }
    /// The weight layout of the kernels of `offload`: the rule's own, else
    /// its unit's (empty when neither states one, or the unit is unknown).
    pub fn offload_weight_layout<'a>(&'a self, offload: &'a Offload) -> &'a [LayoutStep] {
        match &offload.weight_layout {
            Some(steps) => steps,
            None => self.unit(&offload.unit).map_or(&[], |u| &u.weight_layout),
        }
    }
    /// The activation layout of the kernels of `offload`: the rule's own,
    /// else its unit's.
    pub fn offload_activation_layout<'a>(&'a self, offload: &'a Offload) -> &'a [LayoutStep] {
        match &offload.activation_layout {
            Some(steps) => steps,
            None => self.unit(&offload.unit).map_or(&[], |u| &u.activation_layout),
        }
    }
    /// The `cycles` expression of one call of `offload`'s kernel: the rule's
    /// own, else its unit's; `None` means the default model.
    pub fn offload_cycles<'a>(&'a self, offload: &'a Offload) -> Option<&'a Expr> {
        offload.cycles.as_ref().or_else(|| self.unit(&offload.unit).and_then(|u| u.cycles.as_ref()))
    }
    /// Offload rules for a unit, in file order.
    pub fn offloads_to<'a>(&'a self, unit: &'a str) -> impl Iterator<Item = &'a Offload> + 'a {
        self.offloads.iter().filter(move |o| o.unit == unit)
    }
}
