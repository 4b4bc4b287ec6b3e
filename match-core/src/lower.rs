//! Lowering for a target: each layer mapped to an accelerator whose
//! arithmetic differs from the model's is rewritten, at compile time, into
//! that unit's own form, and the lowered graph is what the interpreter and
//! the emitted C both compute (DESIGN.md's contract: generated C equals
//! `interp(lowered graph)` bit for bit, whichever unit kernel computes it).
//!
//! A unit's arithmetic is read from its declared requantization forms:
//! a unit that lists `fixed_point` (or nothing) implements every form (the
//! GAP9 cluster and fabric controller, DIANA's host, every host target):
//! its layers are never converted, so lowering is a no-op on host targets.
//! Otherwise the unit is `scale_shift` (NE16), `shift` (DIANA digital) or
//! `adc` (DIANA analog), and every convolution or dense chain it takes is
//! converted into one of these canonical chains (HARDWARE.md's arithmetic):
//!
//! - **NE16** (`scale_shift`): `conv2d(x u8, x_zp 0, w i8, w_zp z)` >>
//!   `requantize ScaleShift { scale[k] in 0..2^b, bias[k], shift <= 31 }`
//!   with `out_zp 0` >> `clip` (the clip's bounds are within the output
//!   type: [0, 255] for u8 after NE16's ReLU, [-128, 127] for i8). `z` is one
//!   value for the layer: 0 for signed weights, -128 for unsigned weights
//!   stored as `w - 128` (NE16's layer-wise weight offset register is then
//!   `-(128 + z)`: -128 or 0). The scale-shift bias holds the model's bias,
//!   the input zero-point correction `-zp * sum(w)`, `out_zp << shift` and
//!   the rounding constant; the chain has no `bias` node. `acc * scale` and
//!   `acc * scale + bias` are proven to fit 32 bits over the layer's
//!   accumulator range (NE16 wraps, the interpreter computes in 64 bits).
//!   `b` is a scale width the unit declares (`scale_bits`, 8 when unstated;
//!   GAP9's NE16: 8 and 32): per layer the narrowest width whose conversion
//!   is exact, else the one that differs least (ties: the narrower).
//!   Without requantization: `conv2d(...)` [>> `bias`], raw i32 out.
//!   A signed input becomes unsigned before the layer (`x + 128`, zero point
//!   `+ 128`): the producing `requantize` (and its `clip`) emit u8 directly
//!   when every reader wants u8, else a separate `requantize ScaleShift
//!   {1, 0, 0}, out_zp 128` node (the "sign flip") runs as its own generic
//!   layer on the host unit, costed and emitted like any other layer.
//! - **DIANA digital** (`shift`): `conv2d/dense(x i8, x_zp 0, w i8,
//!   w_zp 0)` >> `requantize ScaleShift { scale all 1, bias[k], shift <= 31
//!   }` with `out_zp 0` >> `clip`; `acc + bias` fits 32 bits; no `bias`
//!   node (the scale-shift bias holds it, as for NE16).
//! - **DIANA analog** (`adc`): `conv2d/dense(x i8 within [-64, 63], x_zp 0,
//!   w in {-1, 0, 1}, w_zp 0)` >> `requantize Adc { gain, bits, k, l, shift }`
//!   (with `out_zp`) >> `clip`.
//!
//! Exactness (HARDWARE.md): a conversion is exact when, for every
//! accumulator value the layer can produce (bounded per output channel from
//! its weights and its input's value range), the converted chain gives the
//! original output. Both chains are nondecreasing step functions of the
//! accumulator, so the analysis walks the original's constant pieces (at most
//! one per output value) and compares the converted chain at each piece's
//! ends: the largest difference over the whole range, exactly, in LSBs.
//!
//! Input zero points: the units pad with 0, so a nonzero input zero point
//! folds into the bias only when the layer has no padding; otherwise the unit
//! refuses the layer, with that reason.

use crate::interp::requant_value;
use crate::ir::{DType, Data, Graph, NodeId, Op, OpNode, Quant, Requant, Tensor, TensorId};
use crate::mapping::{self, MappedLayer, Mapping};
use crate::schedule::Objective;
use match_dsl::model::{DType as HwType, RequantForm, Unit};
use match_dsl::HwModel;
use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The largest shift of the NE16 and digital units (5 bits).
pub const MAX_SHIFT: u32 = 31;
/// The fixed shift of the analog output chain's `k * y + l` step.
const ADC_SHIFT: u32 = 16;

/// How a layer's arithmetic relates to the model's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExactKind {
    /// The unit computes the model's own arithmetic (natively, or after an
    /// exact conversion).
    Exact,
    /// Converted into the unit's form; may differ by up to `max_lsb`.
    Converted,
    /// With `--exact`, moved off its best unit because that unit's
    /// conversion would not be exact.
    Moved,
}

impl ExactKind {
    pub fn name(self) -> &'static str {
        match self {
            ExactKind::Exact => "exact",
            ExactKind::Converted => "converted",
            ExactKind::Moved => "moved",
        }
    }
}

/// The report's `exactness` of one layer.
#[derive(Clone, Debug, PartialEq)]
pub struct Exactness {
    pub kind: ExactKind,
    /// The largest difference from the model's output over the layer's
    /// whole accumulator range, in output LSBs (0 when exact).
    pub max_lsb: u64,
    pub reason: String,
}

/// A graph lowered for a target, its mapping, and per mapped layer (same
/// order as `mapping.layers`) its exactness.
#[derive(Clone, Debug)]
pub struct Lowered {
    pub graph: Graph,
    pub mapping: Mapping,
    pub exactness: Vec<Exactness>,
}

/// The arithmetic a unit implements, from its declared forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    /// Every form (the unit lists `fixed_point`, or nothing).
    General,
    /// NE16: `(acc * scale + bias) >> shift`, unsigned scale of one of the
    /// unit's `scale_bits` widths, 32-bit wrap.
    ScaleShift,
    /// DIANA digital: `(acc + bias) >> shift`.
    Shift,
    /// DIANA analog: the ADC chain with `bits` bits.
    Adc { bits: u32 },
}

impl Arith {
    fn form(self) -> &'static str {
        match self {
            Arith::General => "any",
            Arith::ScaleShift => "scale_shift",
            Arith::Shift => "shift",
            Arith::Adc { .. } => "adc",
        }
    }
}

pub fn arith(unit: &Unit) -> Arith {
    let has = |f: RequantForm| unit.requant.contains(&f);
    if unit.requant.is_empty() || has(RequantForm::FixedPoint) {
        Arith::General
    } else if has(RequantForm::Adc) {
        Arith::Adc { bits: unit.adc_bits.unwrap_or(6).clamp(1, 31) }
    } else if has(RequantForm::ScaleShift) {
        Arith::ScaleShift
    } else if has(RequantForm::Shift) {
        Arith::Shift
    } else {
        Arith::General
    }
}

/// The nodes of a convolution or dense chain.
#[derive(Clone, Copy, Debug)]
struct Chain {
    conv: NodeId,
    bias: Option<NodeId>,
    requant: Option<NodeId>,
    clip: Option<NodeId>,
}

fn chain_of(graph: &Graph, nodes: &[NodeId]) -> Option<Chain> {
    let (&first, rest) = nodes.split_first()?;
    if !matches!(graph.nodes[first].op, Op::Conv2d { .. } | Op::Dense { .. }) {
        return None;
    }
    let mut c = Chain { conv: first, bias: None, requant: None, clip: None };
    let mut stage = 0;
    for &n in rest {
        let s = match graph.nodes[n].op {
            Op::BiasAdd => 1,
            Op::Requantize { .. } => 2,
            Op::Clip { .. } => 3,
            _ => return None,
        };
        if s <= stage {
            return None;
        }
        stage = s;
        match s {
            1 => c.bias = Some(n),
            2 => c.requant = Some(n),
            _ => c.clip = Some(n),
        }
    }
    // A clip without requantization would clip the raw accumulator.
    if c.clip.is_some() && c.requant.is_none() {
        return None;
    }
    Some(c)
}

/// The value range of a tensor: its type's, narrowed by a producing clip.
pub fn value_range(graph: &Graph, t: TensorId) -> Option<(i64, i64)> {
    let (lo, hi) = graph.tensor(t).dtype.int_range()?;
    let clip = graph.producer(t).and_then(|p| match graph.nodes[p].op {
        Op::Clip { min, max } => Some((min, max)),
        _ => None,
    });
    Some(match clip {
        Some((a, b)) => (lo.max(a), hi.min(b)),
        None => (lo, hi),
    })
}

/// A conversion of one layer for one unit.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub arith: Arith,
    /// The unit reads the input as `x + 128` (u8); the layer's input is i8.
    pub flip_input: bool,
    /// The weights as the unit reads them (i8, the layer's shape) and their
    /// single zero point.
    pub weights: Vec<i8>,
    pub w_zp: i64,
    /// The new requantization (with `out_zp`) and clip bounds; `None` for an
    /// accumulator-output chain.
    pub requant: Option<(Requant, i64)>,
    pub clip: Option<(i64, i64)>,
    /// The new bias of an accumulator-output chain (its zero-point correction).
    pub acc_bias: Option<Vec<i64>>,
    /// Whether the conversion changed anything at all.
    pub changed: bool,
    pub max_lsb: u64,
    /// An accumulator value (the model's, bias included) where the largest
    /// difference occurs, and the channel.
    pub witness: Option<(i64, usize)>,
    /// The accumulator range (over all channels) the analysis covered.
    pub acc_range: (i64, i64),
    /// The model's requantization form name.
    pub from: &'static str,
    /// The scale width the converted scale-shift form needs (one of the
    /// unit's `scale_bits`; 0 for other forms and raw accumulators).
    pub scale_bits: u32,
}

impl Plan {
    /// "fixed_point -> 8-bit scale_shift differs by up to 2 LSB at acc=123 (channel 4)".
    pub fn describe(&self) -> String {
        // With the scale width the unit programs (a scale-shift model may
        // differ only in it).
        let to = if self.arith == Arith::ScaleShift {
            format!("{}-bit scale_shift", self.scale_bits)
        } else {
            self.arith.form().to_string()
        };
        if self.requant.is_none() {
            return format!(
                "raw accumulator (no requantization), exact over acc in [{}, {}]",
                self.acc_range.0, self.acc_range.1
            );
        }
        let head = format!("{} -> {to}", self.from);
        match (self.max_lsb, self.witness) {
            (0, _) => format!("{head} is exact over acc in [{}, {}]", self.acc_range.0, self.acc_range.1),
            (n, Some((a, ch))) => format!(
                "{head} differs by up to {n} LSB at acc={a} (channel {ch}) over acc in [{}, {}]",
                self.acc_range.0, self.acc_range.1
            ),
            (n, None) => format!("{head} differs by up to {n} LSB"),
        }
    }
}

fn form_name(r: &Requant) -> &'static str {
    match r {
        Requant::FixedPoint { .. } => "fixed_point",
        Requant::ScaleShift { .. } => "scale_shift",
        Requant::Float { .. } => "float",
        Requant::Adc { .. } => "adc",
    }
}

/// The pieces of a nondecreasing step function `f` over `[lo, hi]`: the
/// maximal runs `(first, last, value)` where `f` is constant, in order.
/// `None` if `f` has too many steps to walk (an unclamped output). Computed
/// once per channel and reused for every candidate form compared with it.
///
/// `guess(v)`, when it knows, predicts the first argument where `f` exceeds
/// `v` (from the real-valued line the requantization approximates): the
/// walk checks the prediction and its neighbour and gallops and bisects
/// from there, so that a run costs a few evaluations instead of two per bit
/// of its length. The guess only aims the walk: the pieces are the same
/// with any guess (each end is verified).
type Pieces = Vec<(i64, i64, i64)>;

fn steps(lo: i64, hi: i64, f: &dyn Fn(i64) -> i64, guess: &dyn Fn(i64) -> Option<i64>) -> Option<Pieces> {
    // From `ok` (f == v), the first point where f != v, doubling the step
    // (or hi + 1).
    let gallop = |mut ok: i64, v: i64| -> (i64, i64) {
        let mut step = 1i64;
        loop {
            let next = ok.saturating_add(step);
            if next > hi {
                return (ok, hi.saturating_add(1));
            }
            if f(next) != v {
                return (ok, next);
            }
            ok = next;
            step = step.saturating_mul(2);
        }
    };
    let mut pieces = Vec::new();
    let mut a = lo;
    while a <= hi {
        if pieces.len() >= 1 << 17 {
            return None;
        }
        let v = f(a);
        // Bracket the run's end: f(ok) == v, and f(bad) != v or bad > hi.
        let (mut ok, mut bad) = match guess(v).filter(|&g| g > a).map(|g| g.min(hi.saturating_add(1))) {
            // The guess is at or before the end: on from there.
            Some(g) if f(g - 1) == v => gallop(g - 1, v),
            // Past the end: back from there.
            Some(g) => {
                let mut bad = g - 1;
                let mut step = 1i64;
                loop {
                    let prev = bad.saturating_sub(step);
                    if prev <= a {
                        break (a, bad);
                    }
                    if f(prev) == v {
                        break (prev, bad);
                    }
                    bad = prev;
                    step = step.saturating_mul(2);
                }
            }
            None => gallop(a, v),
        };
        // Bisect (f is monotone).
        while bad - ok > 1 {
            let mid = ok + (bad - ok) / 2;
            if f(mid) == v {
                ok = mid;
            } else {
                bad = mid;
            }
        }
        pieces.push((a, ok, v));
        if ok == i64::MAX {
            break;
        }
        a = ok + 1;
    }
    Some(pieces)
}

/// Each channel's [`steps`] of the model's output over its accumulator
/// range, walked when first asked for; each channel's line aims its walk.
struct Walks<'a> {
    f: &'a dyn Fn(i64, usize) -> i64,
    lines: &'a [(f64, f64)],
    ranges: Vec<(i64, i64)>,
    cells: Vec<OnceCell<Option<Pieces>>>,
}

impl Walks<'_> {
    fn get(&self, ch: usize) -> Option<&Pieces> {
        let (lo, hi) = self.ranges[ch];
        let (m, c) = self.lines.get(ch).copied().unwrap_or((0.0, 0.0));
        // f(a) ~ floor(a * m + c) first exceeds v where a * m + c reaches v + 1.
        let guess = move |v: i64| {
            let x = ((v + 1) as f64 - c) / m;
            (m > 0.0 && x.is_finite() && x.abs() < 1e17).then(|| x.ceil() as i64)
        };
        self.cells[ch].get_or_init(|| steps(lo, hi, &|a| (self.f)(a, ch), &guess)).as_ref()
    }
}

/// The largest `|f(a) - g(a)|` over the range of `f`'s [`steps`], for a
/// nondecreasing step function `g`, and an `a` where it occurs (the first
/// such piece end; `lo` when they agree everywhere). Checking each piece's
/// two ends suffices: on a piece `f` is constant and `g` monotone.
fn worst_over(lo: i64, pieces: &[(i64, i64, i64)], g: &dyn Fn(i64) -> i64) -> (u64, i64) {
    let mut best = (0u64, lo);
    for &(a, ok, v) in pieces {
        for x in [a, ok] {
            let d = (v - g(x)).unsigned_abs();
            if d > best.0 {
                best = (d, x);
            }
        }
    }
    best
}

/// What the model's chain computes after the accumulator: the requant,
/// its saturation and the clip.
struct Source<'a> {
    requant: &'a Requant,
    out_zp: i64,
    lo: i64,
    hi: i64,
}

impl Source<'_> {
    fn eval(&self, a: i64, ch: usize) -> i64 {
        // Out of the form's domain (FixedPoint takes 32 bits): the range check
        // before the analysis excludes it.
        requant_value(self.requant, a, ch, self.out_zp, self.lo, self.hi).unwrap_or(i64::MIN)
    }
    /// `f(a) ~ floor(a * m + c)` (c includes out_zp): the real-valued line the
    /// converted forms approximate.
    fn line(&self, ch: usize) -> Result<(f64, f64), String> {
        let pick = |v: &[i64], d: i64| v.get(ch).or(v.first()).copied().unwrap_or(d);
        let zp = self.out_zp as f64;
        Ok(match self.requant {
            Requant::FixedPoint { multiplier, shift } => {
                let m = multiplier.get(ch).or(multiplier.first()).copied().unwrap_or(0);
                let s = shift.get(ch).or(shift.first()).copied().unwrap_or(0);
                if m < 0 {
                    return Err("negative multiplier".into());
                }
                (m as f64 * 2f64.powi(s - 31), 0.5 + zp)
            }
            Requant::ScaleShift { scale, bias, shift } => {
                let s = pick(scale, 1);
                if s < 0 {
                    return Err("negative scale".into());
                }
                let p = 2f64.powi(*shift as i32);
                (s as f64 / p, pick(bias, 0) as f64 / p + zp)
            }
            Requant::Float { scale } => {
                let s = scale.get(ch).or(scale.first()).copied().unwrap_or(1.0);
                if s.is_nan() || s < 0.0 || !s.is_finite() {
                    return Err("negative or non-finite scale".into());
                }
                (s as f64, 0.5 + zp)
            }
            Requant::Adc { .. } => return Err("the model's requantization is already an ADC chain".into()),
        })
    }
}

/// `floor(c * 2^sh)` for the offset of the converted scale-shift form: exact
/// integer arithmetic for a scale-shift source (so that halving an even
/// scale is exact), f64 otherwise (exact for the half-integers it gets).
fn offset_at(src: &Source, ch: usize, c: f64, sh: u32) -> i64 {
    if let Requant::ScaleShift { bias, shift, .. } = src.requant {
        let b = bias.get(ch).or(bias.first()).copied().unwrap_or(0) as i128;
        let base = if sh <= *shift { b >> (shift - sh) } else { b << (sh - shift) };
        let v = base + ((src.out_zp as i128) << sh);
        return v.clamp(i64::MIN as i128, i64::MAX as i128) as i64;
    }
    (c * 2f64.powi(sh as i32)).floor() as i64
}

/// Plans the conversion of the layer of `nodes` for `unit`; `Err` says why
/// the unit cannot take it. Only for units that are not [`Arith::General`].
pub fn plan(graph: &Graph, unit: &Unit, nodes: &[NodeId]) -> Result<Plan, String> {
    let arith = arith(unit);
    if arith == Arith::General {
        return Err(format!("unit `{}` implements every form: nothing to convert", unit.name));
    }
    let chain = chain_of(graph, nodes).ok_or("only convolution and dense chains are converted")?;
    let conv = &graph.nodes[chain.conv];
    let (x_zp, w_zp, pad) = match &conv.op {
        Op::Conv2d { x_zp, w_zp, pad, .. } => (*x_zp, w_zp.clone(), *pad),
        Op::Dense { x_zp, w_zp } => (*x_zp, w_zp.clone(), [0; 4]),
        _ => unreachable!("chain_of checked"),
    };
    let [xt, wt] = conv.inputs[..] else { return Err("the layer has no weights input".into()) };
    let x = graph.tensor(xt);
    let w = graph.tensor(wt);
    let wdata = w.data.as_ref().ok_or("the weights are not constant")?;
    let (xlo, xhi) = value_range(graph, xt).ok_or("the input is not an integer tensor")?;
    let has_pad = pad.iter().any(|&p| p > 0);

    // The input as the unit reads it.
    let delta = match (arith, x.dtype) {
        (Arith::ScaleShift, DType::U8) => 0,
        (Arith::ScaleShift, DType::I8) => 128,
        (Arith::ScaleShift, d) => return Err(format!("input type {d}: the unit reads u8")),
        (Arith::Shift, DType::I8) => 0,
        (Arith::Shift, d) => return Err(format!("input type {d}: the unit reads i8")),
        (Arith::Adc { .. }, DType::I8) if xlo >= -64 && xhi <= 63 => 0,
        (Arith::Adc { .. }, d) => {
            return Err(format!(
                "input {d} in [{xlo}, {xhi}] is not within the analog array's 7-bit inputs [-64, 63]"
            ))
        }
        (Arith::General, _) => unreachable!(),
    };
    let zp_u = x_zp + delta;
    if zp_u != 0 && has_pad {
        return Err(format!(
            "input zero point {zp_u} with padding: the unit pads with 0, not the zero point"
        ));
    }
    let (ulo, uhi) = (xlo + delta, xhi + delta);

    // Effective weights e = w - w_zp[k], then the unit's encoding.
    let k = *w.shape.first().ok_or("weights without shape")?;
    let per = w.elements() / k.max(1);
    let raw = wdata.to_i64();
    let mut e = Vec::with_capacity(raw.len());
    for (i, &v) in raw.iter().enumerate() {
        let zp = match w_zp.len() {
            0 => 0,
            1 => w_zp[0],
            _ => *w_zp.get(i / per).ok_or("more weight zero points than channels")?,
        };
        e.push(v - zp);
    }
    let in_i8 = e.iter().all(|&v| (-128..=127).contains(&v));
    let (weights, wz): (Vec<i8>, i64) = match arith {
        Arith::ScaleShift if in_i8 => (e.iter().map(|&v| v as i8).collect(), 0),
        Arith::ScaleShift if e.iter().all(|&v| (0..=255).contains(&v)) => {
            (e.iter().map(|&v| (v - 128) as i8).collect(), -128)
        }
        Arith::ScaleShift => return Err("weights minus zero point fit neither i8 nor u8".into()),
        Arith::Shift if in_i8 => (e.iter().map(|&v| v as i8).collect(), 0),
        Arith::Shift => return Err("weights minus zero point do not fit i8".into()),
        Arith::Adc { .. } if e.iter().all(|&v| (-1..=1).contains(&v)) => {
            (e.iter().map(|&v| v as i8).collect(), 0)
        }
        Arith::Adc { .. } => return Err("weights are not ternary".into()),
        Arith::General => unreachable!(),
    };

    // Per channel: the unit's accumulator range and the correction that
    // turns it into the model's accumulator (bias included).
    let bias: Vec<i64> = match chain.bias {
        Some(b) => {
            let bt = graph.tensor(graph.nodes[b].inputs[1]);
            let v = bt.data.as_ref().ok_or("the bias is not constant")?.to_i64();
            match v.len() {
                1 => vec![v[0]; k],
                n if n == k => v,
                n => return Err(format!("{n} biases for {k} channels")),
            }
        }
        None => vec![0; k],
    };
    let mut corr = Vec::with_capacity(k);
    let mut urange = Vec::with_capacity(k);
    for ch in 0..k {
        let ws = &e[ch * per..(ch + 1) * per];
        let sum: i64 = ws.iter().sum();
        corr.push(bias[ch] - zp_u * sum);
        let (mut lo, mut hi) = (0i64, 0i64);
        for &v in ws {
            let (p, q) = (v * ulo, v * uhi);
            // Padded taps read 0 (the unit's pad value).
            let (p, q) = if has_pad { (p.min(q).min(0), p.max(q).max(0)) } else { (p.min(q), p.max(q)) };
            lo += p;
            hi += q;
        }
        urange.push((lo, hi));
    }
    let i32_fits = |v: i64| i32::try_from(v).is_ok();
    for ch in 0..k {
        let (lo, hi) = urange[ch];
        if !(i32_fits(lo) && i32_fits(hi) && i32_fits(lo + corr[ch]) && i32_fits(hi + corr[ch])) {
            return Err(format!("the accumulator range of channel {ch} exceeds 32 bits"));
        }
    }
    let acc_range = (0..k).fold((i64::MAX, i64::MIN), |(a, b), ch| {
        (a.min(urange[ch].0 + corr[ch]), b.max(urange[ch].1 + corr[ch]))
    });
    let weights_changed = wz != 0 || !matches!(wdata, Data::I8(_)) || w_zp.iter().any(|&z| z != 0);
    let changed_input = zp_u != x_zp || x_zp != 0 || delta != 0 || weights_changed;

    // An accumulator-output chain: NE16's raw output (no requantization).
    let Some(rq_node) = chain.requant else {
        if !matches!(arith, Arith::ScaleShift) {
            return Err("the unit always requantizes".into());
        }
        if chain.bias.is_none() && corr.iter().any(|&c| c != 0) {
            return Err(format!(
                "input zero point {zp_u} needs a bias, which this raw-accumulator layer lacks"
            ));
        }
        let changed = changed_input || corr != bias;
        return Ok(Plan {
            arith,
            flip_input: delta != 0,
            weights,
            w_zp: wz,
            requant: None,
            clip: None,
            acc_bias: chain.bias.map(|_| corr.clone()),
            changed,
            max_lsb: 0,
            witness: None,
            acc_range,
            from: "none",
            scale_bits: 0,
        });
    };
    let Op::Requantize { requant, out_zp } = &graph.nodes[rq_node].op else { unreachable!() };
    let out_t = graph.tensor(graph.nodes[rq_node].outputs[0]);
    let (tlo, thi) = out_t.dtype.int_range().ok_or("the requantization outputs a float")?;
    let (clo, chi) = match chain.clip.map(|c| &graph.nodes[c].op) {
        Some(Op::Clip { min, max }) => (tlo.max(*min), thi.min(*max)),
        _ => (tlo, thi),
    };
    if clo > chi {
        return Err("the clip is empty".into());
    }
    let src_sat = Source { requant, out_zp: *out_zp, lo: tlo, hi: thi };
    let f = |a: i64, ch: usize| src_sat.eval(a, ch).clamp(clo, chi);
    let lines: Vec<(f64, f64)> = (0..k).map(|ch| src_sat.line(ch)).collect::<Result<_, _>>()?;
    let from = form_name(requant);
    let a_range = |ch: usize| (urange[ch].0 + corr[ch], urange[ch].1 + corr[ch]);
    // The model's output per channel as pieces, walked once (on first use)
    // for every candidate width, shift, scale and gain.
    let pieces = Walks {
        f: &f,
        lines: &lines,
        ranges: (0..k).map(a_range).collect(),
        cells: vec![OnceCell::new(); k],
    };

    let mut scale_bits = 0;
    let (new_rq, new_zp, max_lsb, witness) = match arith {
        Arith::ScaleShift | Arith::Shift => {
            // Shift-only units: scale 1. Scale-shift units: each declared
            // width, narrowest first; the first exact one wins, else the one
            // that differs least (ties keep the narrower).
            let widths: Vec<(u32, i64)> = match arith {
                Arith::Shift => vec![(0, 1)],
                _ => unit.scale_widths().into_iter().map(|b| (b, (1i64 << b.min(62)) - 1)).collect(),
            };
            let mut best: Option<(Search, u32)> = None;
            let mut why_not = String::new();
            for (bits, smax) in widths {
                let ctx = SearchCtx {
                    arith,
                    requant,
                    out_zp: *out_zp,
                    lines: &lines,
                    urange: &urange,
                    corr: &corr,
                    src: &src_sat,
                    pieces: &pieces,
                    clo,
                    chi,
                };
                match search_scale_shift(&ctx, smax) {
                    Ok(r) => {
                        if best.as_ref().is_none_or(|(b, _)| r.0 < b.0) {
                            best = Some((r, bits));
                        }
                        if best.as_ref().is_some_and(|(b, _)| b.0 == 0) {
                            break;
                        }
                    }
                    Err(e) => why_not = e,
                }
            }
            let Some(((d, sh, (scales, offs), at), bits)) = best else {
                return Err(if why_not.is_empty() { "no shift fits the unit".into() } else { why_not });
            };
            // The narrowest declared width that holds the scales found (a
            // wider width's search may find small scales too).
            let widest = scales.iter().copied().max().unwrap_or(0);
            scale_bits = match arith {
                Arith::Shift => 0,
                _ => unit.scale_widths().into_iter().find(|&w| widest < 1i64 << w.min(62)).unwrap_or(bits),
            };
            // The unit's bias: the offset plus the accumulator correction.
            let b: Vec<i64> = (0..k).map(|ch| offs[ch] + corr[ch] * scales[ch]).collect();
            (Requant::ScaleShift { scale: scales, bias: b, shift: sh }, 0, d, at)
        }
        Arith::Adc { bits } => {
            let half = 1i64 << (bits - 1);
            // The accumulator span where the model's output is not saturated,
            // in the unit's accumulator, decides the ADC gain.
            let mut need = 1i64;
            for (ch, &cr) in corr.iter().enumerate() {
                let (alo, ahi) = a_range(ch);
                let first_above = bisect(alo, ahi, |a| f(a, ch) > clo);
                let first_top = bisect(alo, ahi, |a| f(a, ch) >= chi);
                let (lo_u, hi_u) = (first_above - 1 - cr, first_top - cr);
                need = need.max(ceil_div(-lo_u.min(0), half)).max(ceil_div(hi_u.max(0), half - 1));
            }
            let mut best: Option<(u64, Requant, Witness)> = None;
            for gain in [need, need * 3 / 4, need / 2, need * 3 / 2].into_iter().filter(|&g| g >= 1) {
                let p = 2f64.powi(ADC_SHIFT as i32);
                let mut kk = Vec::with_capacity(k);
                let mut ll = Vec::with_capacity(k);
                for (&(m, c), &cr) in lines.iter().zip(&corr) {
                    kk.push((m * gain as f64 * p).round() as i64);
                    let mid = (gain - 1) as f64 / 2.0 + cr as f64;
                    ll.push(((m * mid + c - *out_zp as f64) * p).floor() as i64);
                }
                let rq = Requant::Adc { gain, bits, k: kk, l: ll, shift: ADC_SHIFT };
                let mut worst = (0u64, None);
                for (ch, &cr) in corr.iter().enumerate() {
                    let (alo, _) = a_range(ch);
                    let g = |a: i64| {
                        requant_value(&rq, a - cr, ch, *out_zp, tlo, thi).unwrap_or(i64::MIN).clamp(clo, chi)
                    };
                    let pieces = pieces.get(ch).ok_or("the output is not bounded")?;
                    let (d, at) = worst_over(alo, pieces, &g);
                    if d > worst.0 || worst.1.is_none() {
                        worst = (d, Some((at, ch)));
                    }
                }
                if best.as_ref().is_none_or(|b| worst.0 < b.0) {
                    best = Some((worst.0, rq, worst.1));
                }
            }
            let (d, rq, at) = best.ok_or("no ADC gain fits")?;
            (rq, *out_zp, d, at)
        }
        Arith::General => unreachable!(),
    };
    let changed = changed_input
        || chain.bias.is_some()
        || new_zp != *out_zp
        || new_rq != *requant
        || chain.clip.is_some_and(|c| graph.nodes[c].op != Op::Clip { min: clo, max: chi });
    Ok(Plan {
        arith,
        flip_input: delta != 0,
        weights,
        w_zp: wz,
        requant: Some((new_rq, new_zp)),
        clip: chain.clip.map(|_| (clo, chi)),
        acc_bias: None,
        changed,
        max_lsb,
        witness: if max_lsb == 0 { None } else { witness },
        acc_range,
        from,
        scale_bits,
    })
}

/// What [`search_scale_shift`] searches over: the layer's channels.
struct SearchCtx<'a> {
    arith: Arith,
    requant: &'a Requant,
    out_zp: i64,
    /// Per channel the model's line `floor(a * m + c)`.
    lines: &'a [(f64, f64)],
    /// Per channel the unit's accumulator range and its correction into
    /// the model's accumulator.
    urange: &'a [(i64, i64)],
    corr: &'a [i64],
    src: &'a Source<'a>,
    /// The model's output (clipped) per channel, as [`steps`] over the
    /// channel's accumulator range.
    pieces: &'a Walks<'a>,
    clo: i64,
    chi: i64,
}

/// A scale-shift form found: (largest difference in LSB, shift, per-channel
/// scales and offsets, where the difference occurs).
type Search = (u64, u32, Params, Witness);

/// The best scale-shift form with scales in `0..=smax` (1 for shift-only
/// units): the model's own parameters when they fit, else a few shifts from
/// the largest whose scales fit `smax` and keep `acc * scale` in 32 bits.
fn search_scale_shift(cx: &SearchCtx, smax: i64) -> Result<Search, String> {
    let (arith, lines, urange, corr) = (cx.arith, cx.lines, cx.urange, cx.corr);
    let k = lines.len();
    let (clo, chi) = (cx.clo, cx.chi);
    let a_range = |ch: usize| (urange[ch].0 + corr[ch], urange[ch].1 + corr[ch]);
    // Already the unit's exact form: keep the parameters when they fit.
    let native = native_scale_shift(arith, cx.requant, cx.out_zp, k, smax);
    // Candidate shifts: the largest whose scales fit, and a few below
    // (less precision, more headroom in 32 bits); shift-only units:
    // the powers of two around each channel's multiplier.
    let mut shifts: Vec<u32> = Vec::new();
    if arith == Arith::ScaleShift {
        // A wide scale is bounded by the 32-bit product too (the overflow
        // check below is exact; this only aims the search).
        let fits = |s: u32| {
            lines.iter().zip(urange).all(|(&(m, _), &(ul, uh))| {
                let sc = (m * 2f64.powi(s as i32)).floor();
                sc <= smax as f64 && sc * (ul.unsigned_abs().max(uh.unsigned_abs()) as f64) <= i32::MAX as f64
            })
        };
        let top = (0..=MAX_SHIFT).rev().find(|&s| fits(s)).unwrap_or(0);
        shifts.extend((top.saturating_sub(3)..=top).rev());
    } else {
        for &(m, _) in lines {
            if m > 0.0 {
                let s = (-m.log2()).round();
                for d in [-1.0, 0.0, 1.0] {
                    let v = (s + d).clamp(0.0, MAX_SHIFT as f64) as u32;
                    if !shifts.contains(&v) {
                        shifts.push(v);
                    }
                }
            }
        }
        if shifts.is_empty() {
            shifts.push(0);
        }
        shifts.sort_unstable_by(|a, b| b.cmp(a));
    }
    let mut best: Option<Search> = None;
    let mut why_not = String::new();
    let mut candidates: Vec<(u32, Option<Params>)> = Vec::new();
    if let Some((sh, sc, bx)) = native {
        candidates.push((sh, Some((sc, bx))));
    }
    candidates.extend(shifts.iter().map(|&sh| (sh, None)));
    for (sh, fixed) in candidates {
        let mut scales = Vec::with_capacity(k);
        let mut offs = Vec::with_capacity(k);
        let mut worst = (0u64, None);
        let mut ok = true;
        for ch in 0..k {
            let (m, c) = lines[ch];
            let opts: Vec<(i64, i64)> = match &fixed {
                Some((sc, bx)) => vec![(sc[ch], bx[ch])],
                None => {
                    let bx = offset_at(cx.src, ch, c, sh);
                    let s = m * 2f64.powi(sh as i32);
                    // A shift-only unit has no multiplier: its scale is 1, never 0.
                    let smin = if arith == Arith::Shift { 1 } else { 0 };
                    let mut v = vec![(s.round() as i64).clamp(smin, smax)];
                    for alt in [s.floor() as i64, s.ceil() as i64] {
                        let alt = alt.clamp(smin, smax);
                        if !v.contains(&alt) {
                            v.push(alt);
                        }
                    }
                    v.into_iter().map(|s| (s, bx)).collect()
                }
            };
            let (alo, _) = a_range(ch);
            let mut pick: Option<(u64, i64, i64, i64)> = None;
            for (s, bx) in opts {
                // 32-bit headroom over the unit's accumulator range.
                let b_total = bx as i128 + corr[ch] as i128 * s as i128;
                let fits = |v: i128| v >= i32::MIN as i128 && v <= i32::MAX as i128;
                let (ul, uh) = urange[ch];
                let prods = [ul as i128 * s as i128, uh as i128 * s as i128];
                if !(fits(b_total) && prods.iter().all(|&p| fits(p) && fits(p + b_total))) {
                    why_not = format!(
                        "acc * scale + bias can overflow 32 bits on channel {ch} (scale {s}, shift {sh}, acc in [{ul}, {uh}])"
                    );
                    continue;
                }
                let g = |a: i64| {
                    let t = (a as i128 * s as i128 + bx as i128) >> sh;
                    (t.clamp(i64::MIN as i128, i64::MAX as i128) as i64).clamp(clo, chi)
                };
                let Some(pieces) = cx.pieces.get(ch) else {
                    why_not = "the output is not bounded".into();
                    continue;
                };
                let (d, at) = worst_over(alo, pieces, &g);
                if pick.as_ref().is_none_or(|p| d < p.0) {
                    pick = Some((d, s, bx, at));
                }
                if d == 0 {
                    break;
                }
            }
            let Some((d, s, bx, at)) = pick else {
                ok = false;
                break;
            };
            if d > worst.0 || worst.1.is_none() {
                worst = (d, Some((at, ch)));
            }
            // No better than a shift already found: stop early (ties
            // keep the earlier, larger shift).
            if best.as_ref().is_some_and(|b| worst.0 >= b.0) {
                ok = false;
                break;
            }
            scales.push(s);
            offs.push(bx);
        }
        if !ok {
            continue;
        }
        if best.as_ref().is_none_or(|b| worst.0 < b.0) {
            best = Some((worst.0, sh, (scales, offs), worst.1));
        }
        if worst.0 == 0 {
            break;
        }
    }
    best.ok_or_else(|| if why_not.is_empty() { "no shift fits the unit".into() } else { why_not })
}

/// The model's scale-shift parameters as the unit's form when they already
/// fit it (scale in range, shift <= 31): `(shift, scale, offset)` with the
/// offset holding the model's bias and `out_zp << shift`, in terms of the
/// model's accumulator. `None` when the form differs.
fn native_scale_shift(
    arith: Arith,
    requant: &Requant,
    out_zp: i64,
    k: usize,
    smax: i64,
) -> Option<(u32, Vec<i64>, Vec<i64>)> {
    let Requant::ScaleShift { scale, bias: rb, shift } = requant else { return None };
    if *shift > MAX_SHIFT {
        return None;
    }
    let pick = |v: &[i64], ch: usize, d: i64| v.get(ch).or(v.first()).copied().unwrap_or(d);
    let sc: Vec<i64> = (0..k).map(|ch| pick(scale, ch, 1)).collect();
    if sc.iter().any(|&s| !(0..=smax).contains(&s)) || (arith == Arith::Shift && sc.iter().any(|&s| s != 1)) {
        return None;
    }
    let off: Vec<i64> = (0..k).map(|ch| pick(rb, ch, 0) + (out_zp << shift)).collect();
    Some((*shift, sc, off))
}

/// Bits of the widest scale of a requantization: 8, 16 or 32 for a
/// scale-shift form (the narrowest holding every scale; the ADC chain's `k`
/// likewise), 32 for a fixed-point multiplier or a float scale.
pub fn scale_width(r: &Requant) -> i64 {
    let widest = |v: &[i64]| {
        let m = v.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        if m <= 0xff {
            8
        } else if m <= 0xffff {
            16
        } else {
            32
        }
    };
    match r {
        Requant::ScaleShift { scale, .. } => widest(scale),
        Requant::Adc { k, .. } => widest(k),
        Requant::FixedPoint { .. } | Requant::Float { .. } => 32,
    }
}

/// The first `a` in `[lo, hi]` where the monotone predicate holds (`hi + 1`
/// if none).
fn bisect(lo: i64, hi: i64, p: impl Fn(i64) -> bool) -> i64 {
    let (mut l, mut h) = (lo, hi.saturating_add(1));
    while l < h {
        let mid = l + (h - l) / 2;
        if p(mid) {
            h = mid;
        } else {
            l = mid + 1;
        }
    }
    l
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

/// Per-channel scales and offsets of a candidate scale-shift form.
type Params = (Vec<i64>, Vec<i64>);
/// Where the largest difference occurs: (accumulator, channel).
type Witness = Option<(i64, usize)>;
type PlanResult = Result<Plan, String>;

/// Plans by (unit, layer nodes), so that the mapping's several rules and
/// passes over one layer analyse it once; shared by the mapping's worker
/// threads ([`crate::par`]: two asking for one plan at once may both
/// compute it, and get the same).
pub struct Converter<'a> {
    graph: &'a Graph,
    hw: &'a HwModel,
    cache: Mutex<HashMap<(String, Vec<NodeId>), PlanResult>>,
}

impl<'a> Converter<'a> {
    pub fn new(graph: &'a Graph, hw: &'a HwModel) -> Self {
        Converter { graph, hw, cache: Mutex::new(HashMap::new()) }
    }

    /// The conversion of `nodes` for `unit` (cached).
    pub fn plan(&self, unit: &str, nodes: &[NodeId]) -> Result<Plan, String> {
        let key = (unit.to_string(), nodes.to_vec());
        if let Some(p) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return p.clone();
        }
        let p = match self.hw.unit(unit) {
            Some(u) => plan(self.graph, u, nodes),
            None => Err(format!("no unit named `{unit}`")),
        };
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).insert(key, p.clone());
        p
    }
}

/// Whether the layout/bit-width view of a layer changes for a unit whose
/// declared types are converted into (ternary weights, 7-bit inputs): the
/// `where` conditions see the converted widths.
pub fn converted_bits(graph: &Graph, unit: &Unit, nodes: &[NodeId]) -> (Option<i64>, Option<i64>) {
    let Some(&first) = nodes.first() else { return (None, None) };
    let node = &graph.nodes[first];
    if !matches!(node.op, Op::Conv2d { .. } | Op::Dense { .. }) {
        return (None, None);
    }
    let mut in_bits = None;
    let mut w_bits = None;
    if unit.weights.contains(&HwType::Ternary) {
        let ternary = node
            .inputs
            .get(1)
            .and_then(|&t| graph.tensor(t).data.as_ref())
            .is_some_and(|d| d.to_i64().iter().all(|&v| (-1..=1).contains(&v)));
        if ternary {
            w_bits = Some(2);
        }
    }
    if let Some(HwType::Signed(b)) = unit.inputs.iter().find(|t| matches!(t, HwType::Signed(b) if *b < 8)) {
        let half = 1i64 << (b - 1);
        if node
            .inputs
            .first()
            .and_then(|&t| value_range(graph, t))
            .is_some_and(|(lo, hi)| lo >= -half && hi < half)
        {
            in_bits = Some(*b as i64);
        }
    }
    (in_bits, w_bits)
}

/// Whether `hw`'s units want signed 8-bit weights: some unit takes i8
/// weights and not u8, and none takes u8 and not i8 (a unit that declares
/// no weight types takes any).
fn wants_signed_weights(hw: &HwModel) -> bool {
    let (i8w, u8w) = (HwType::Signed(8), HwType::Unsigned(8));
    let takes = |u: &Unit, t: &HwType| u.weights.is_empty() || u.weights.contains(t);
    hw.units.iter().any(|u| takes(u, &i8w) && !takes(u, &u8w))
        && !hw.units.iter().any(|u| takes(u, &u8w) && !takes(u, &i8w))
}

/// Unsigned 8-bit weights stored signed, for a target whose units take i8
/// weights only ([`wants_signed_weights`]; PULP-NN-style kernels, GAP9's
/// cluster and fabric controller): each weight `w` becomes `w - 128` and
/// the layer's weight zero point `z` becomes `z - 128`, so every `w - z`,
/// and with it every accumulator and output, is unchanged (an exact
/// rewrite, as NE16's conversion stores its unsigned weights). A constant
/// u8 tensor is rewritten only when every reader is a convolution or dense
/// layer reading it as weights. `None` when nothing changes.
fn signed_weights(graph: &Graph, hw: &HwModel) -> Option<Graph> {
    if !wants_signed_weights(hw) {
        return None;
    }
    let mut g = graph.clone();
    let mut changed = false;
    for t in 0..graph.tensors.len() {
        let t = TensorId(t);
        let tensor = graph.tensor(t);
        if tensor.dtype != DType::U8 || !matches!(tensor.data, Some(Data::U8(_))) {
            continue;
        }
        let readers = graph.consumers(t);
        let as_weights = |n: &NodeId| {
            let node = &graph.nodes[*n];
            matches!(node.op, Op::Conv2d { .. } | Op::Dense { .. })
                && node.inputs.get(1) == Some(&t)
                && node.inputs.iter().filter(|&&i| i == t).count() == 1
        };
        if readers.is_empty() || !readers.iter().all(as_weights) || graph.outputs.contains(&t) {
            continue;
        }
        for n in readers {
            let (Op::Conv2d { w_zp, .. } | Op::Dense { w_zp, .. }) = &mut g.nodes[n].op else {
                unreachable!()
            };
            if w_zp.is_empty() {
                w_zp.push(0);
            }
            for z in w_zp.iter_mut() {
                *z -= 128;
            }
        }
        let tm = g.tensor_mut(t);
        if let Some(Data::U8(v)) = &tm.data {
            tm.data = Some(Data::I8(v.iter().map(|&w| (w as i16 - 128) as i8).collect()));
        }
        tm.dtype = DType::I8;
        if let Some(q) = tm.quant.as_mut() {
            for z in q.zero_point.iter_mut() {
                *z -= 128;
            }
        }
        changed = true;
    }
    changed.then_some(g)
}

/// Lowers `graph` for `hw`: stores unsigned weights signed where the
/// target's units want it ([`signed_weights`]), maps it with conversions
/// allowed (only exact ones with `exact`), rewrites each converted layer
/// into its unit's canonical chain, and reports every layer's exactness.
pub fn lower_for_target(
    graph: &Graph,
    hw: &HwModel,
    objective: Objective,
    exact: bool,
) -> anyhow::Result<Lowered> {
    let signed = signed_weights(graph, hw);
    let graph = signed.as_ref().unwrap_or(graph);
    let native = |mapping: Mapping, g: &Graph| {
        let exactness = mapping.layers.iter().map(|l| native_exactness(g, l)).collect();
        Lowered { graph: g.clone(), mapping, exactness }
    };
    if hw.units.iter().all(|u| arith(u) == Arith::General) {
        let mut mapping = mapping::map_with(graph, hw, objective)?;
        mapping::apply_residency_moving_units(graph, hw, &mut mapping, objective);
        return Ok(native(mapping, graph));
    }
    let conv = Converter::new(graph, hw);
    let bounded = mapping::map_converting(graph, hw, objective, &conv, false)?;
    let chosen =
        if exact { mapping::map_converting(graph, hw, objective, &conv, true)? } else { bounded.clone() };

    // Which layers are converted, and which inputs must become u8.
    let mut g = graph.clone();
    let mut plans: BTreeMap<usize, Plan> = BTreeMap::new();
    for (i, l) in chosen.layers.iter().enumerate() {
        let Some(u) = hw.unit(&l.unit) else { continue };
        if arith(u) == Arith::General || l.pattern.is_none() || chain_of(graph, &l.nodes).is_none() {
            continue;
        }
        let p = conv.plan(&l.unit, &l.nodes).map_err(|e| anyhow::anyhow!("layer {}: {e}", l.name))?;
        plans.insert(i, p);
    }
    let mut wants_u8: BTreeMap<TensorId, Vec<usize>> = BTreeMap::new();
    for (&i, p) in &plans {
        if p.flip_input {
            let x = graph.nodes[chosen.layers[i].nodes[0]].inputs[0];
            wants_u8.entry(x).or_default().push(i);
        }
    }
    let layer_of_node: HashMap<NodeId, usize> =
        chosen.layers.iter().enumerate().flat_map(|(i, l)| l.nodes.iter().map(move |&n| (n, i))).collect();
    // Sign flips to insert: (before layer index, flip node).
    let mut flips: Vec<(usize, NodeId)> = Vec::new();
    for (&x, readers) in &wants_u8 {
        let consumers = graph.consumers(x);
        let all_readers_convert = consumers.iter().all(|c| {
            layer_of_node.get(c).is_some_and(|i| readers.contains(i))
                && chosen.layers[layer_of_node[c]].nodes[0] == *c
        });
        if all_readers_convert
            && !graph.outputs.contains(&x)
            && retype_producer(&mut g, x, hw, &chosen, &layer_of_node)
        {
            continue;
        }
        let t = graph.tensor(x).clone();
        let zp = t.quant.as_ref().map(|q| q.zp()).unwrap_or(0);
        let xu = g.add_tensor(Tensor {
            name: format!("{}.u8", t.name),
            dtype: DType::U8,
            quant: Some(Quant {
                zero_point: vec![zp + 128],
                ..t.quant.clone().unwrap_or(Quant::per_tensor(1.0, 0))
            }),
            data: None,
            ..t
        });
        let node = g.add_node(OpNode {
            name: format!("{}.to_u8", graph.tensor(x).name),
            op: Op::Requantize {
                requant: Requant::ScaleShift { scale: vec![1], bias: vec![0], shift: 0 },
                out_zp: 128,
            },
            inputs: vec![x],
            outputs: vec![xu],
        });
        for &i in readers {
            let c = chosen.layers[i].nodes[0];
            g.nodes[c].inputs[0] = xu;
            if let Op::Conv2d { x_zp, .. } | Op::Dense { x_zp, .. } = &mut g.nodes[c].op {
                *x_zp += 128;
            }
        }
        let first = *readers.iter().min().expect("a reader");
        flips.push((first, node));
    }
    g.rebuild_edges();

    // Plan again on the retyped graph (the same arithmetic, shifted by 128
    // where a producer now emits u8) and rewrite each converted layer.
    let conv2 = Converter::new(&g, hw);
    let mut replans: BTreeMap<usize, Plan> = BTreeMap::new();
    for &i in plans.keys() {
        let l = &chosen.layers[i];
        let p = conv2.plan(&l.unit, &l.nodes).map_err(|e| anyhow::anyhow!("layer {}: {e}", l.name))?;
        debug_assert!(!p.flip_input, "inputs were made unsigned");
        replans.insert(i, p);
    }
    drop(conv2);
    let mut layers = chosen.layers.clone();
    for (&i, p) in &replans {
        let chain = chain_of(&g, &layers[i].nodes).expect("planned layers are chains");
        if !p.changed {
            continue;
        }
        apply(&mut g, chain, p);
        if p.requant.is_some() {
            if let Some(b) = chain.bias {
                layers[i].nodes.retain(|&n| n != b);
            }
        }
    }
    // Remove the dropped bias nodes from the graph.
    for (&i, p) in &replans {
        if p.changed && p.requant.is_some() {
            if let Some(b) = chain_of(graph, &chosen.layers[i].nodes).and_then(|c| c.bias) {
                g.nodes.remove_node(b);
            }
        }
    }
    g.rebuild_edges();

    // The final mapping: flips as generic host layers, converted layers
    // re-costed on their lowered nodes.
    // Re-costing searches schedules again: on every core.
    let changed: Vec<usize> = replans.iter().filter(|(_, p)| p.changed).map(|(&i, _)| i).collect();
    let recosted = crate::par::map(&changed, |&i| {
        let mut l = layers[i].clone();
        mapping::recost(&g, hw, &mut l, objective);
        l
    });
    let mut recosted: HashMap<usize, MappedLayer> = changed.into_iter().zip(recosted).collect();
    let mut out_layers = Vec::new();
    let mut exactness = Vec::new();
    for (i, mut l) in layers.into_iter().enumerate() {
        for &(_, node) in flips.iter().filter(|(b, _)| *b == i) {
            out_layers.push(mapping::generic_layer_for(&g, hw, node, objective));
            exactness.push(Exactness {
                kind: ExactKind::Exact,
                max_lsb: 0,
                reason: format!("sign flip i8 -> u8 (x + 128) for {}", l.unit),
            });
        }
        if let Some(p) = replans.get(&i) {
            if let Some(r) = recosted.remove(&i) {
                l = r;
            }
            let moved_from = exact.then(|| moved_from(&bounded, &l, &conv)).flatten();
            exactness.push(match (p.max_lsb, moved_from) {
                (_, Some(r)) => r,
                (0, None) if !p.changed => native_exactness(&g, &l),
                (0, None) => Exactness {
                    kind: ExactKind::Exact,
                    max_lsb: 0,
                    reason: format!("{}: {}", l.unit, p.describe()),
                },
                (n, None) => Exactness {
                    kind: ExactKind::Converted,
                    max_lsb: n,
                    reason: format!("{}: {}", l.unit, p.describe()),
                },
            });
        } else {
            let moved = exact.then(|| moved_from(&bounded, &l, &conv)).flatten();
            exactness.push(moved.unwrap_or_else(|| native_exactness(graph, &l)));
        }
        out_layers.push(l);
    }
    let mut mapping = Mapping { layers: out_layers };
    mapping::name_layers(&g, &mut mapping);
    // A layer moved to another unit (of general arithmetic, natively)
    // states that unit's exactness.
    for i in mapping::apply_residency_moving_units(&g, hw, &mut mapping, objective) {
        exactness[i] = native_exactness(&g, &mapping.layers[i]);
    }
    Ok(Lowered { graph: g, mapping, exactness })
}

/// With `--exact`: the exactness of a layer that the bounded mapping put on
/// another unit whose conversion is not exact.
fn moved_from(bounded: &Mapping, l: &MappedLayer, conv: &Converter) -> Option<Exactness> {
    let first = *l.nodes.first()?;
    let b = bounded.layers.iter().find(|b| b.nodes.first() == Some(&first))?;
    if b.unit == l.unit {
        return None;
    }
    let p = conv.plan(&b.unit, &b.nodes).ok()?;
    (p.max_lsb > 0).then(|| Exactness {
        kind: ExactKind::Moved,
        max_lsb: 0,
        reason: format!("{}: {}; moved to {}", b.unit, p.describe(), l.unit),
    })
}

fn native_exactness(graph: &Graph, l: &MappedLayer) -> Exactness {
    let has_rq = l
        .nodes
        .iter()
        .any(|&n| graph.nodes.node_weight(n).is_some_and(|n| matches!(n.op, Op::Requantize { .. })));
    Exactness {
        kind: ExactKind::Exact,
        max_lsb: 0,
        reason: if has_rq {
            format!("{} implements the layer's requantization natively", l.unit)
        } else {
            "no requantization".into()
        },
    }
}

/// Whether the producer of `x` is a requantization (with its clip) that
/// could emit u8 itself, so that no sign-flip layer is needed (an estimate
/// for the mapping: the lowering also checks the other readers and units).
pub fn producer_can_emit_u8(graph: &Graph, x: TensorId) -> bool {
    if graph.outputs.contains(&x) {
        return false;
    }
    match graph.producer(x).map(|p| &graph.nodes[p].op) {
        Some(Op::Requantize { .. }) => true,
        Some(Op::Clip { .. }) => {
            let p = graph.producer(x).expect("a producer");
            let s = graph.nodes[p].inputs[0];
            graph.producer(s).is_some_and(|q| matches!(graph.nodes[q].op, Op::Requantize { .. }))
        }
        _ => false,
    }
}

/// Makes the producer of `x` emit u8 (zero point + 128) when it is a
/// requantization (with its clip) on a unit that outputs u8. The values
/// all shift by exactly 128.
fn retype_producer(
    g: &mut Graph,
    x: TensorId,
    hw: &HwModel,
    chosen: &Mapping,
    layer_of_node: &HashMap<NodeId, usize>,
) -> bool {
    let Some(p) = g.producer(x) else { return false };
    let unit_ok = layer_of_node
        .get(&p)
        .and_then(|&i| hw.unit(&chosen.layers[i].unit))
        .is_some_and(|u| u.outputs.is_empty() || u.outputs.contains(&HwType::Unsigned(8)));
    if !unit_ok {
        return false;
    }
    // The requantize (and the clip after it), each output read only by the next.
    let (rq, clip) = match g.nodes[p].op {
        Op::Requantize { .. } => (p, None),
        Op::Clip { .. } => {
            let s = g.nodes[p].inputs[0];
            let Some(q) = g.producer(s) else { return false };
            if !matches!(g.nodes[q].op, Op::Requantize { .. })
                || g.consumers(s).len() != 1
                || g.outputs.contains(&s)
            {
                return false;
            }
            (q, Some(p))
        }
        _ => return false,
    };
    if g.tensor(g.nodes[rq].outputs[0]).dtype != DType::I8 {
        return false;
    }
    let retype = |g: &mut Graph, t: TensorId| {
        let t = g.tensor_mut(t);
        t.dtype = DType::U8;
        if let Some(q) = t.quant.as_mut() {
            for z in q.zero_point.iter_mut() {
                *z += 128;
            }
        }
    };
    if let Op::Requantize { out_zp, .. } = &mut g.nodes[rq].op {
        *out_zp += 128;
    }
    let t = g.nodes[rq].outputs[0];
    retype(g, t);
    if let Some(c) = clip {
        if let Op::Clip { min, max } = &mut g.nodes[c].op {
            *min += 128;
            *max += 128;
        }
        let t = g.nodes[c].outputs[0];
        retype(g, t);
    }
    for c in g.consumers(x) {
        if let Op::Conv2d { x_zp, .. } | Op::Dense { x_zp, .. } = &mut g.nodes[c].op {
            *x_zp += 128;
        }
    }
    true
}

/// Rewrites a layer's chain as the plan says.
fn apply(g: &mut Graph, chain: Chain, p: &Plan) {
    let wt = g.nodes[chain.conv].inputs[1];
    let w = g.tensor(wt).clone();
    let nw = g.add_tensor(Tensor {
        name: format!("{}.{}", w.name, p.arith.form()),
        dtype: DType::I8,
        quant: None,
        data: Some(Data::I8(p.weights.clone())),
        shape: w.shape.clone(),
    });
    g.nodes[chain.conv].inputs[1] = nw;
    match &mut g.nodes[chain.conv].op {
        Op::Conv2d { x_zp, w_zp, .. } | Op::Dense { x_zp, w_zp } => {
            *x_zp = 0;
            *w_zp = vec![p.w_zp];
        }
        _ => {}
    }
    let acc = g.nodes[chain.conv].outputs[0];
    if let Some((rq, zp)) = &p.requant {
        let r = chain.requant.expect("a requantizing plan has a requantize node");
        g.nodes[r].op = Op::Requantize { requant: rq.clone(), out_zp: *zp };
        g.nodes[r].inputs[0] = acc;
        if let (Some(c), Some((lo, hi))) = (chain.clip, p.clip) {
            g.nodes[c].op = Op::Clip { min: lo, max: hi };
        }
    } else if let (Some(b), Some(bias)) = (chain.bias, &p.acc_bias) {
        let bt = g.nodes[b].inputs[1];
        let old = g.tensor(bt).clone();
        let nb = g.add_tensor(Tensor {
            name: format!("{}.{}", old.name, p.arith.form()),
            shape: vec![bias.len()],
            dtype: DType::I32,
            quant: None,
            data: Some(Data::from_i64(DType::I32, bias)),
        });
        g.nodes[b].inputs[1] = nb;
    }
}

#[cfg(test)]
mod tests;
