//! The layer that constraints and cost expressions are evaluated against,
//! and the table of attribute names the language knows. The table is the
//! single source of truth: `sema` resolves names through it, the evaluator
//! reads values through it, `docs/hwm.md` lists it.

use crate::expr::{Type, Value};
use serde::{Deserialize, Serialize};

/// The kind of operator a layer is: what a unit's `cycles` can tell apart
/// with the `is_conv`, `is_dense`, `is_add` and `is_pool` attributes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum OpKind {
    /// A 2-D convolution, any groups (depthwise included).
    #[default]
    Conv,
    /// A fully connected layer.
    Dense,
    /// An element-wise addition.
    Add,
    /// A pooling layer (average, max or global).
    Pool,
    /// Anything else.
    Other,
}

/// The shape and arithmetic of one layer, or of one tile of it when a cost
/// expression is evaluated per kernel call. Dimensions follow DORY/MATCH
/// names: K output channels, C input channels, OY/OX output rows/columns,
/// IY/IX input rows/columns, FY/FX kernel rows/columns.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    /// The operator; older serialized layers without it are convolutions.
    #[serde(default)]
    pub op: OpKind,
    pub n: i64,
    pub k: i64,
    pub c: i64,
    pub oy: i64,
    pub ox: i64,
    pub iy: i64,
    pub ix: i64,
    pub fy: i64,
    pub fx: i64,
    pub sy: i64,
    pub sx: i64,
    pub dy: i64,
    pub dx: i64,
    pub pad_top: i64,
    pub pad_bottom: i64,
    pub pad_left: i64,
    pub pad_right: i64,
    pub groups: i64,
    pub in_bits: i64,
    pub w_bits: i64,
    pub out_bits: i64,
    pub has_bias: bool,
    pub has_relu: bool,
    pub has_requant: bool,
    /// Bits of the widest per-channel scale of the layer's requantization:
    /// 8, 16 or 32, the narrowest that holds every scale of a scale-shift
    /// requantization (32 for fixed-point multipliers and float scales); 0
    /// without requantization. Older serialized layers without it: 8.
    #[serde(default = "default_scale_bits")]
    pub scale_bits: i64,
}

fn default_scale_bits() -> i64 {
    8
}

impl Layer {
    /// A convolution with "same"-style symmetric padding `pad`, stride 1
    /// unless set later, int8 everywhere, bias and requantization (8-bit scales) on.
    #[allow(clippy::too_many_arguments)]
    pub fn conv(k: i64, c: i64, oy: i64, ox: i64, fy: i64, fx: i64, stride: i64, pad: i64) -> Layer {
        Layer {
            op: OpKind::Conv,
            n: 1,
            k,
            c,
            oy,
            ox,
            iy: (oy - 1) * stride + fy - 2 * pad,
            ix: (ox - 1) * stride + fx - 2 * pad,
            fy,
            fx,
            sy: stride,
            sx: stride,
            dy: 1,
            dx: 1,
            pad_top: pad,
            pad_bottom: pad,
            pad_left: pad,
            pad_right: pad,
            groups: 1,
            in_bits: 8,
            w_bits: 8,
            out_bits: 8,
            has_bias: true,
            has_relu: false,
            has_requant: true,
            scale_bits: 8,
        }
    }

    /// A depthwise convolution over `c` channels.
    #[allow(clippy::too_many_arguments)]
    pub fn depthwise(c: i64, oy: i64, ox: i64, fy: i64, fx: i64, stride: i64, pad: i64) -> Layer {
        Layer { groups: c, ..Layer::conv(c, c, oy, ox, fy, fx, stride, pad) }
    }

    /// A fully connected layer: `c` inputs, `k` outputs.
    pub fn dense(k: i64, c: i64) -> Layer {
        Layer { op: OpKind::Dense, ..Layer::conv(k, c, 1, 1, 1, 1, 1, 0) }
    }

    /// An element-wise addition of two `c`-channel `oy` x `ox` tensors,
    /// int8, with rescaling (requantization) and no bias. Channel-wise like
    /// a depthwise layer (`K == C == groups`, 1x1 window, no weights), so
    /// `MACS` counts one operation per output element.
    pub fn add(c: i64, oy: i64, ox: i64) -> Layer {
        Layer {
            op: OpKind::Add,
            groups: c,
            w_bits: 0,
            has_bias: false,
            ..Layer::conv(c, c, oy, ox, 1, 1, 1, 0)
        }
    }

    /// A pooling layer over `c` channels with an `fy` x `fx` window:
    /// channel-wise (`K == C == groups`), no weights, no bias, no
    /// requantization. `MACS` counts one operation per window tap.
    #[allow(clippy::too_many_arguments)]
    pub fn pool(c: i64, oy: i64, ox: i64, fy: i64, fx: i64, stride: i64, pad: i64) -> Layer {
        Layer {
            op: OpKind::Pool,
            groups: c,
            w_bits: 0,
            has_bias: false,
            has_requant: false,
            scale_bits: 0,
            ..Layer::conv(c, c, oy, ox, fy, fx, stride, pad)
        }
    }

    /// A convolution with one group per channel (never true of add or pool
    /// layers, which are channel-wise too).
    pub fn is_depthwise(&self) -> bool {
        self.op == OpKind::Conv && self.groups > 1 && self.groups == self.c && self.groups == self.k
    }

    pub fn macs(&self) -> i64 {
        self.n * self.k * self.oy * self.ox * self.fy * self.fx * (self.c / self.groups.max(1))
    }

    /// The value of attribute `name`, if the language knows it.
    pub fn attr(&self, name: &str) -> Option<Value> {
        ATTRIBUTES.iter().find(|a| a.name == name).map(|a| (a.get)(self))
    }
}

/// One attribute the language knows.
pub struct Attribute {
    pub name: &'static str,
    pub ty: Type,
    pub doc: &'static str,
    pub get: fn(&Layer) -> Value,
}

fn num(v: i64) -> Value {
    Value::Num(v as f64)
}

macro_rules! attrs {
    ($( $name:literal : $ty:ident, $doc:literal, |$l:ident| $get:expr; )*) => {
        /// Every attribute name usable in `where` constraints and cost expressions.
        pub const ATTRIBUTES: &[Attribute] = &[
            $( Attribute { name: $name, ty: Type::$ty, doc: $doc, get: |$l: &Layer| $get }, )*
        ];
    };
}

attrs! {
    "N": Num, "batch size", |l| num(l.n);
    "K": Num, "output channels", |l| num(l.k);
    "C": Num, "input channels", |l| num(l.c);
    "OY": Num, "output rows", |l| num(l.oy);
    "OX": Num, "output columns", |l| num(l.ox);
    "IY": Num, "input rows", |l| num(l.iy);
    "IX": Num, "input columns", |l| num(l.ix);
    "FY": Num, "kernel rows", |l| num(l.fy);
    "FX": Num, "kernel columns", |l| num(l.fx);
    "SY": Num, "vertical stride", |l| num(l.sy);
    "SX": Num, "horizontal stride", |l| num(l.sx);
    "DY": Num, "vertical dilation", |l| num(l.dy);
    "DX": Num, "horizontal dilation", |l| num(l.dx);
    "PT": Num, "padding at the top", |l| num(l.pad_top);
    "PB": Num, "padding at the bottom", |l| num(l.pad_bottom);
    "PL": Num, "padding at the left", |l| num(l.pad_left);
    "PR": Num, "padding at the right", |l| num(l.pad_right);
    "pad": Num, "largest padding on any side", |l| num(l.pad_top.max(l.pad_bottom).max(l.pad_left).max(l.pad_right));
    "groups": Num, "convolution groups", |l| num(l.groups);
    "kernel": Pair, "kernel size, FYxFX", |l| Value::Pair(l.fy, l.fx);
    "stride": Pair, "stride, SYxSX", |l| Value::Pair(l.sy, l.sx);
    "dilation": Pair, "dilation, DYxDX", |l| Value::Pair(l.dy, l.dx);
    "depthwise": Bool, "one group per channel, K == C", |l| Value::Bool(l.is_depthwise());
    "in_bits": Num, "bits per input element", |l| num(l.in_bits);
    "w_bits": Num, "bits per weight", |l| num(l.w_bits);
    "out_bits": Num, "bits per output element", |l| num(l.out_bits);
    "has_bias": Bool, "the layer adds a bias", |l| Value::Bool(l.has_bias);
    "has_relu": Bool, "the layer ends in ReLU or a clip at zero", |l| Value::Bool(l.has_relu);
    "has_requant": Bool, "the layer requantizes its accumulator", |l| Value::Bool(l.has_requant);
    "scale_bits": Num, "bits of the widest requantization scale (8, 16, 32; 0 without)", |l| num(l.scale_bits);
    "is_conv": Bool, "the layer is a convolution (depthwise included)", |l| Value::Bool(l.op == OpKind::Conv);
    "is_dense": Bool, "the layer is fully connected", |l| Value::Bool(l.op == OpKind::Dense);
    "is_add": Bool, "the layer is an element-wise addition", |l| Value::Bool(l.op == OpKind::Add);
    "is_pool": Bool, "the layer is a pooling (average, max, global)", |l| Value::Bool(l.op == OpKind::Pool);
    "MACS": Num, "multiply-accumulates of the layer (or tile)", |l| num(l.macs());
}

/// The attribute named `name`, if any.
pub fn attribute(name: &str) -> Option<&'static Attribute> {
    ATTRIBUTES.iter().find(|a| a.name == name)
}
