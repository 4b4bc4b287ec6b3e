//! The analytic cost model: cycles (and energy) of one schedule of one
//! layer on one unit, driven only by the hardware model.
//!
//! A schedule ([`crate::schedule::Schedule`]) tiles the output loops K, OY
//! and OX (C follows K for channel-wise layers; FY/FX are never split) and,
//! on a unit with `partial_sums` ([`Problem::c_splittable`]), the input
//! channels C of a convolution (groups 1) or dense layer (see **Split C**
//! below; elsewhere C is whole: kernels that requantize per call cannot
//! accumulate across calls), and moves tiles from the memory the tensors live in (the
//! host unit's `compute_in`, e.g. L2) to the unit's `compute_in` (and its
//! `weights_in`) through the target's DMAs. The terms:
//!
//! - **Compute** per tile (one kernel call): the rule's or unit's `cycles`
//!   expression evaluated on the tile [`Layer`]
//!   ([`HwModel::offload_call_cycles`]); else the tile's MACs with every
//!   spatially unrolled dimension rounded up to a multiple of its factor
//!   (a partial pass costs a full pass) over the unit's `macs` per cycle.
//! - **Overhead**: the unit's `call_overhead` per call.
//! - **Transfers** ([`dma_cycles`]): per command `setup` plus the DMA's
//!   overhead for the command's strided dimensions, plus bytes over
//!   bandwidth; the number of strided dimensions of a tile follows from the
//!   tile and the full tensor in the unit's activation layout (HWC or CHW:
//!   full inner dimensions merge into one contiguous run); a transfer with
//!   more strided dimensions than the DMA moves is issued as several
//!   commands, and every command over `max` bytes is split by whole planes,
//!   rows or row pieces, exactly as the generated code issues them
//!   ([`box_commands`], the mirror of `mt_box` / `mt_cmd`); each command
//!   pays the overhead of its own dimensionality.
//! - **Over-fetch** ([`Fetch`]): a convolution's input tile may move a
//!   larger box than the window its outputs read: whole rows (the full
//!   input width) or whole planes (full width and height). On a DMA with
//!   few dimensions a window narrower than the row costs one command per
//!   row (per channel and row in CHW); the wider box merges into fewer,
//!   longer runs, at the price of extra bytes and a larger input buffer.
//!   The schedule chooses one mode per layer (the search evaluates each);
//!   every term that counts the input tile (its DMA, its bytes, the
//!   memory check, the floors) counts the box actually moved, and the
//!   emitter moves the same box and hands the kernel the window inside it
//!   (emit/tiled.rs).
//! - **Counters** ([`predict_counters`]): per layer, the DMA commands and
//!   bytes and the kernel calls of the emitted tiled code, from the same
//!   walk the generated driver follows; the targets' emulations count the
//!   same and the tests compare them exactly.
//! - **Steps** ([`evaluate`]): the tile loops run in the schedule's order;
//!   an operand is loaded again only at steps where one of the loops it
//!   depends on (weights: K; inputs: OY, OX, and K for channel-wise layers)
//!   changes its tile. Single-buffered loads and write-backs are serial;
//!   double-buffered ones overlap with the call (per step the maximum of
//!   the call and its overlapped transfers). The first step's loads are the
//!   prologue (serial) and the last write-back the epilogue. Steps are
//!   grouped by tile shape (full or remainder, border or inner for
//!   padding), so a layer costs a few dozen terms however many tiles it has.
//!   Under double buffering a step overlaps its call with the next step's
//!   loads and the previous step's write-back; the model pairs a step with
//!   its own shapes instead (exact when the tiles are uniform).
//! - **Split C** ([`Problem::set_c_tile`]): the C loop is the innermost,
//!   inside the K/OY/OX loops (output-stationary). Every call computes on
//!   a C tile (the `cycles` expression and the default model see `C` = the
//!   tile's channels; remainder tiles as for the other loops); since C
//!   changes at every step, the input box (the tile's channels only) and
//!   the weight tile (per output channel, FY * FX runs of its channels:
//!   a strided box of the (K, FY, FX, C) weights) load at every step,
//!   serial or overlapped per the buffering as above; the output tile is
//!   written once, after the last C tile (requantization runs once, in the
//!   kernel's chain). The footprint adds the int32 accumulator (4 B per
//!   output element of the tile), kept in `compute_in` across the C tiles.
//!   With a `partial_sums` rate, a call's compute adds the accumulator's
//!   traffic ([`Problem::acc_cycles`]): the tile's output elements over
//!   the rate for reading the sums (every C tile but the first) and again
//!   for writing them (every C tile but the last).
//!   The floors ([`Floor`]) then count every step's loads, which every
//!   order makes (exact terms).
//! - **Inter-layer residency** ([`Problem::set_resident_io`], decided by
//!   `mapping::apply_residency` after mapping): a one-tile layer whose
//!   input is its producer's output buffer (the previous layer's, or the
//!   one before code-less reshapes), still in `compute_in`, loads no
//!   input (an addition loads only its other input); one whose output
//!   stays there for its consumer stores none.
//!   Exactly those transfers (their cycles, bytes and energy) and their
//!   stalls are dropped; everything else is unchanged.
//! - **Split**: `total = compute + overhead + transfer + stall`, with
//!   `transfer` the transfer cycles not hidden behind a call and `stall`
//!   the cycles a call waits for an overlapped transfer longer than itself.
//! - **Energy** (pJ): the unit's `energy` per MAC times the MACs, plus every
//!   byte moved times the DMA's and both memories' per-byte energies (a
//!   unit computing in the home memory reads and writes each operand byte
//!   there once). Missing parameters count zero.
//! - **Bounds**: `roofline_cycles` = max(MACs / nominal peak, compulsory
//!   bytes / DMA bandwidth); `bound_cycles` = the same with the compute of
//!   the whole layer in one call at the unit's actual utilization (its
//!   `cycles` expression on the whole layer, else MACs with the spatial
//!   dimensions rounded up), without any overhead. Compulsory bytes are the
//!   layer's inputs (the pixels some output reads: a strided window may
//!   skip some), weights and outputs moved once; a unit that computes in
//!   the home memory has no transfer term. Under inter-layer residency
//!   ([`Problem::set_resident_io`]) a resident input or kept output is
//!   not compulsory traffic: it never moves.

use match_dsl::layer::{Layer, OpKind};
use match_dsl::model::{Dim, Dma, LayoutStep, Offload, Unit};
use match_dsl::HwModel;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

mod dma;
pub use dma::*;

/// The search's memo tables are keyed by a few small integers and asked
/// millions of times per model: a multiply-rotate hash (the keys are ours,
/// not an adversary's) instead of the default SipHash, which was a sixth
/// of a compile's time.
#[derive(Default, Clone, Copy)]
pub struct SmallKeyHasher(u64);

impl Hasher for SmallKeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_i64(&mut self, v: i64) {
        self.write_u64(v as u64);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(v as u64);
    }
}

/// A map with [`SmallKeyHasher`].
pub type SmallKeyMap<K, V> = HashMap<K, V, BuildHasherDefault<SmallKeyHasher>>;

/// An input box's key in the search's caches: (K, C, OY, OX) of the tile,
/// with the dimensions the box does not depend on set to 0, and the fetch
/// mode.
type InputKey = ([i64; 4], Fetch);

/// How many of the `full` input rows (columns) `o` outputs of stride `s`,
/// window `f` and dilation `d`, with `pad` rows of padding before the
/// first, read: the distinct indices `o * s + j * d - pad` in `0..full`.
pub fn read_extent(o: i64, s: i64, f: i64, d: i64, pad: i64, full: i64) -> i64 {
    let full = full.max(1);
    let mut read = vec![false; full as usize];
    for oi in 0..o.max(1) {
        for j in 0..f.max(1) {
            let i = oi * s.max(1) + j * d.max(1) - pad;
            if (0..full).contains(&i) {
                read[i as usize] = true;
            }
        }
    }
    read.iter().filter(|&&r| r).count() as i64
}

/// Cycles of a layer split by cause; `total = compute + overhead + transfer + stall`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Cycles {
    pub total: f64,
    pub compute: f64,
    pub transfer: f64,
    pub overhead: f64,
    pub stall: f64,
}

impl Cycles {
    fn add_step(&mut self, count: f64, compute: f64, overhead: f64, transfer: f64, stall: f64) {
        self.compute += count * compute;
        self.overhead += count * overhead;
        self.transfer += count * transfer;
        self.stall += count * stall;
    }
    fn finish(&mut self) {
        self.total = self.compute + self.overhead + self.transfer + self.stall;
    }
}

/// Per-step time under overlap: a step issues `serial` transfer cycles,
/// then its call (`call` cycles) while `overlapped` transfer cycles run
/// beside it. Returns (step cycles, exposed transfer, stall).
pub fn step_cycles(call: f64, serial: f64, overlapped: f64) -> (f64, f64, f64) {
    let stall = (overlapped - call).max(0.0);
    (serial + call + stall, serial, stall)
}

/// A tiled loop dimension.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum Loop {
    K,
    OY,
    OX,
}

impl Loop {
    pub const ALL: [Loop; 3] = [Loop::K, Loop::OY, Loop::OX];
    pub fn name(self) -> &'static str {
        match self {
            Loop::K => "K",
            Loop::OY => "OY",
            Loop::OX => "OX",
        }
    }
    fn index(self) -> usize {
        self as usize
    }
}

/// Every loop order, outer to inner, in a fixed order (ties keep the first).
pub const ORDERS: [[Loop; 3]; 6] = [
    [Loop::K, Loop::OY, Loop::OX],
    [Loop::K, Loop::OX, Loop::OY],
    [Loop::OY, Loop::K, Loop::OX],
    [Loop::OY, Loop::OX, Loop::K],
    [Loop::OX, Loop::K, Loop::OY],
    [Loop::OX, Loop::OY, Loop::K],
];

/// Single or double buffering per operand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct Buffering {
    pub input: bool,
    pub weights: bool,
    pub output: bool,
}

impl Buffering {
    fn factor(b: bool) -> u64 {
        if b {
            2
        } else {
            1
        }
    }
}

/// The dimensions and arithmetic of a layer as the cost model sees it.
#[derive(Clone, Debug)]
pub struct Problem<'a> {
    pub hw: &'a HwModel,
    pub unit: &'a Unit,
    pub offload: Option<&'a Offload>,
    pub layer: Layer,
    /// Channel-wise (depthwise, add, pool): input channels follow K.
    pub channelwise: bool,
    /// Activations in CHW order (else HWC) in the unit's layout.
    pub chw: bool,
    /// The DMA from the home memory to `compute_in` (None: no tiling level).
    pub act_dma: Option<&'a Dma>,
    /// The DMA from the home memory to the weights' memory.
    pub w_dma: Option<&'a Dma>,
    pub home: &'a str,
    pub weights_mem: &'a str,
    /// Usable bytes of `compute_in` and of the weights' memory.
    pub act_capacity: u64,
    pub w_capacity: u64,
    pub act_double: bool,
    pub w_double: bool,
    /// Inputs read (1, or 2 for an addition).
    pub n_inputs: u32,
    cache: RefCell<SmallKeyMap<TileKey, f64>>,
    /// Input transfer cycles per (K, OY, OX) tile and fetch mode (a 1-D
    /// DMA walks one command per row: worth keeping).
    in_cache: RefCell<SmallKeyMap<InputKey, f64>>,
    /// Scratch bytes per (K, OY, OX) tile (the target's expressions).
    scratch_cache: RefCell<SmallKeyMap<[i64; 4], u64>>,
    /// Output transfer cycles per (K, OY, OX) tile; weight tile bytes and
    /// transfer cycles per K tile (the search asks again per fetch mode).
    out_cache: RefCell<SmallKeyMap<[i64; 3], f64>>,
    w_cache: RefCell<SmallKeyMap<(i64, i64), (u64, f64)>>,
    /// [`Problem::fetch_dominated`] per (K, C, OY, OX) tile and mode (K
    /// 0 unless channel-wise: the search asks again for every K tile).
    dominated_cache: RefCell<SmallKeyMap<InputKey, Option<Fetch>>>,
    /// [`Problem::tile_refusal`] per (K, OY, OX, C) tile.
    refusal_cache: RefCell<SmallKeyMap<[i64; 4], Option<String>>>,
    /// The C tile the search evaluates (0: whole C); see [`Problem::set_c_tile`].
    c_tile: Cell<i64>,
    /// Inter-layer residency ([`Problem::set_resident_io`]): the input is
    /// read in place from the producer's buffer in `compute_in` (no input
    /// load), the output stays there for its consumer (no write-back).
    resident_io: Cell<[bool; 2]>,
}

/// Which box of the input a tile moves (`Problem::input_tile`): the
/// window its outputs read, or that window widened to whole rows (the
/// input's full width), or to whole planes (full width and height). The
/// order is the order of growth (and of the search's enumeration).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Fetch {
    #[default]
    Window,
    Rows,
    Planes,
}

impl Fetch {
    pub const ALL: [Fetch; 3] = [Fetch::Window, Fetch::Rows, Fetch::Planes];
    pub fn is_window(&self) -> bool {
        *self == Fetch::Window
    }
    pub fn name(self) -> &'static str {
        match self {
            Fetch::Window => "window",
            Fetch::Rows => "whole rows",
            Fetch::Planes => "whole planes",
        }
    }
}

/// A tile shape with its padding flags (border tiles keep the layer's padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct TileKey {
    k: i64,
    c: i64,
    oy: i64,
    ox: i64,
    top: bool,
    bottom: bool,
    left: bool,
    right: bool,
}

/// The tile sizes of a schedule at the compute level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Tile {
    pub k: i64,
    pub c: i64,
    pub oy: i64,
    pub ox: i64,
    pub fy: i64,
    pub fx: i64,
}

/// One class of iterations of a tile loop: `count` iterations with tile
/// extent `extent`; `first`/`last` when it is the loop's first/last.
#[derive(Clone, Copy, Debug)]
struct Class {
    count: i64,
    extent: i64,
    first: bool,
    last: bool,
}

fn classes(d: i64, t: i64) -> Vec<Class> {
    let n = (d + t - 1) / t;
    let last_extent = d - (n - 1) * t;
    if n == 1 {
        return vec![Class { count: 1, extent: d, first: true, last: true }];
    }
    let mut v = vec![Class { count: 1, extent: t, first: true, last: false }];
    if n > 2 {
        v.push(Class { count: n - 2, extent: t, first: false, last: false });
    }
    v.push(Class { count: 1, extent: last_extent, first: false, last: true });
    v
}

/// The cost of one schedule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Estimate {
    pub cycles: Cycles,
    pub energy_pj: f64,
    /// Kernel calls.
    pub calls: u64,
    /// Bytes moved by DMAs.
    pub bytes_moved: f64,
}

/// Lower bounds on the parts of the cost of every schedule with one tile
/// ([`Problem::floor`]), whatever its loop order: the schedule search skips
/// what cannot beat the best found ([`crate::schedule`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Floor {
    /// Every call's compute and overhead (exact: the same for every order).
    pub compute: f64,
    /// The first call's compute and overhead (step 0 overlaps nothing).
    pub first_call: f64,
    /// Each distinct input (weight) tile's transfer once; the first tile's.
    pub input: f64,
    pub first_input: f64,
    pub weights: f64,
    pub first_weights: f64,
    /// Every output tile's write-back (exact); the last tile's.
    pub output: f64,
    pub last_output: f64,
}

impl Floor {
    /// A lower bound on the cycles of every schedule with this tile and
    /// buffering `buf`. In [`Problem::evaluate`] a step costs
    /// `serial + max(call, overlapped)` (call with its overhead), step 0
    /// overlaps nothing, and a double-buffered output adds its last
    /// write-back as an epilogue. Summing over steps:
    /// `total >= S + max(sum of calls, first call + D)`, with
    /// - S, the serial transfers: step 0's loads (the prologue), the other
    ///   loads of single-buffered operands, and either every write-back
    ///   (single-buffered output) or the last (the epilogue);
    /// - D, the overlapped ones: the loads after step 0 of double-buffered
    ///   operands and, for a double-buffered output, every write-back but
    ///   the last (each step overlaps its predecessor's);
    ///
    /// because `sum_s max(c_s, o_s) >= max(sum_s c_s, sum_s o_s)` and
    /// `o_0 = 0`. The loads after step 0 of an operand are at least its
    /// distinct tiles other than the first ([`Problem::floor`]).
    pub fn cycles(&self, buf: Buffering) -> f64 {
        let rest_in = (self.input - self.first_input).max(0.0);
        let rest_w = (self.weights - self.first_weights).max(0.0);
        let (mut serial, mut over) = (self.first_input + self.first_weights, 0.0);
        if buf.input {
            over += rest_in;
        } else {
            serial += rest_in;
        }
        if buf.weights {
            over += rest_w;
        } else {
            serial += rest_w;
        }
        if buf.output {
            serial += self.last_output;
            over += (self.output - self.last_output).max(0.0);
        } else {
            serial += self.output;
        }
        serial + self.compute.max(self.first_call + over)
    }
}

/// Bytes of the footprint of a schedule per memory: (compute_in, weights memory)
/// (the same memory counted once in the first entry when they coincide).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footprint {
    pub act: u64,
    pub weights: u64,
}

impl<'a> Problem<'a> {
    /// The problem of `layer` on `unit` (through `offload`), or why it cannot be scheduled.
    pub fn new(
        hw: &'a HwModel,
        unit: &'a Unit,
        offload: Option<&'a Offload>,
        layer: Layer,
    ) -> Result<Problem<'a>, String> {
        let home = hw.host_unit().compute_in.as_str();
        let compute_in = unit.compute_in.as_str();
        let weights_mem = unit.weights_in.as_deref().unwrap_or(compute_in);
        let mem = |name: &str| hw.memory(name).ok_or_else(|| format!("unknown memory `{name}`"));
        let act_mem = mem(compute_in)?;
        let w_mem = mem(weights_mem)?;
        let act_dma = if compute_in == home {
            None
        } else {
            Some(hw.dma(home, compute_in).ok_or_else(|| format!("no DMA from {home} to {compute_in}"))?)
        };
        let w_dma = if weights_mem == home {
            None
        } else {
            Some(hw.dma(home, weights_mem).ok_or_else(|| format!("no DMA from {home} to {weights_mem}"))?)
        };
        let layout = match offload {
            Some(o) => hw.offload_activation_layout(o),
            None => &unit.activation_layout[..],
        };
        let chw =
            layout.iter().any(|s| matches!(s, LayoutStep::Order(o) if o.first().is_some_and(|d| d == "C")));
        let channelwise = matches!(layer.op, OpKind::Add | OpKind::Pool) || layer.is_depthwise();
        let n_inputs = if layer.op == OpKind::Add { 2 } else { 1 };
        Ok(Problem {
            hw,
            unit,
            offload,
            channelwise,
            chw,
            act_dma,
            w_dma,
            home,
            weights_mem,
            act_capacity: act_mem.usable(),
            w_capacity: w_mem.usable(),
            act_double: act_mem.double_buffer,
            w_double: w_mem.double_buffer,
            n_inputs,
            layer,
            cache: RefCell::new(SmallKeyMap::default()),
            in_cache: RefCell::new(SmallKeyMap::default()),
            scratch_cache: RefCell::new(SmallKeyMap::default()),
            out_cache: RefCell::new(SmallKeyMap::default()),
            w_cache: RefCell::new(SmallKeyMap::default()),
            dominated_cache: RefCell::new(SmallKeyMap::default()),
            refusal_cache: RefCell::new(SmallKeyMap::default()),
            c_tile: Cell::new(0),
            resident_io: Cell::new([false; 2]),
        })
    }

    /// Whether the unit computes where the tensors live (no tiling level).
    pub fn untiled(&self) -> bool {
        self.act_dma.is_none()
    }

    /// Whether the search may split the input channels C: a tiled
    /// convolution (groups 1) or dense layer on a unit with `partial_sums`
    /// whose weights are the IR's own bytes (an encoded weight layout packs
    /// whole C per output channel, layout.rs).
    pub fn c_splittable(&self) -> bool {
        self.unit.partial_sums
            && !self.untiled()
            && self.has_weights()
            && !self.channelwise
            && self.layer.groups.max(1) == 1
            && self.layer.w_bits <= 8
            && self.offload.is_none_or(|o| self.hw.offload_weight_layout(o).is_empty())
    }

    /// Selects the C tile that [`Problem::evaluate_in`], the floors and the
    /// footprints see (0 or C: whole C; ignored unless
    /// [`Problem::c_splittable`]).
    pub fn set_c_tile(&self, c: i64) {
        self.c_tile.set(c);
    }

    /// Inter-layer residency of the schedule [`Problem::evaluate_in`]
    /// costs (`mapping::apply_residency`): with `input`, the input tile is
    /// already in `compute_in` (its producer's output buffer) and no load
    /// is charged (an addition: one of its two inputs, the other is still
    /// loaded: `loaded_input_share`); with `output`, the output tile stays
    /// there for its consumer and no write-back is charged (nor its bytes
    /// and energy).
    /// Everything else is unchanged. Only meaningful on a tiled layer
    /// whose schedule has one tile (the mapping pass sets it only then).
    pub fn set_resident_io(&self, input: bool, output: bool) {
        self.resident_io.set([input, output]);
    }

    /// The share of the input transfers a tile still makes: 1 without a
    /// resident input; with one, 0 for a layer of one activation input and
    /// 1/2 for an addition, which loads its other input (each input's box
    /// costs the same, [`Problem::input_dma`]).
    fn loaded_input_share(&self) -> f64 {
        if !self.resident_io.get()[0] {
            return 1.0;
        }
        let n = f64::from(self.n_inputs.max(1));
        (n - 1.0) / n
    }

    /// The C tile in effect: the whole C unless split.
    pub fn c_tile(&self) -> i64 {
        let c = self.layer.c.max(1);
        let t = self.c_tile.get();
        if t <= 0 || !self.c_splittable() {
            c
        } else {
            t.min(c)
        }
    }

    /// Whether the C tile in effect splits C (an innermost C loop).
    pub fn c_split(&self) -> bool {
        self.c_tile() < self.layer.c.max(1)
    }

    /// The iterations of the C loop (one whole class when unsplit).
    fn c_classes(&self) -> Vec<Class> {
        classes(self.layer.c.max(1), self.c_tile())
    }

    /// A lower bound on the cycles of every schedule with the C tile in
    /// effect, whatever its (K, OY, OX) tile, fetch, order and buffering:
    /// the search skips a C tile (and every smaller one: the bound grows
    /// with the number of C tiles) that cannot beat the best found.
    ///
    /// A schedule costs at least its calls plus the serial prologue and
    /// epilogue ([`Floor::cycles`]): every call pays the overhead, and there
    /// are at least as many calls as C tiles; the first input and weight
    /// tiles and the last output tile each move in at least one command
    /// (its setup). With the default compute model a call costs at least
    /// max(MACs, outputs) over the peak (unrolling only rounds up), so the
    /// calls' compute is at least max(MACs, C tiles x outputs) over the
    /// peak; a target's own cycle expression is bounded by 0 only. The
    /// accumulator's traffic ([`Problem::acc_cycles`]) is exact. A
    /// schedule also costs at least all its transfers.
    pub fn c_tile_floor(&self) -> Result<f64, String> {
        let l = &self.layer;
        let n_c = (l.c.max(1) + self.c_tile() - 1) / self.c_tile();
        let whole = self.tile_layer(l.k, l.oy, l.ox, [true; 4]);
        let own_expression = match self.offload {
            Some(o) => self.hw.offload_call_cycles(o, &whole),
            None => self.hw.call_cycles(self.unit, &whole),
        }
        .map_err(|e| format!("cannot evaluate the cycles of unit `{}`: {e}", self.unit.name))?
        .is_some();
        let compute = if own_expression {
            0.0
        } else {
            let outputs = (l.n.max(1) * l.k * l.oy * l.ox).max(0) as f64;
            (l.macs().max(0) as f64).max(n_c as f64 * outputs)
                / self.unit.macs_per_cycle.max(f64::MIN_POSITIVE)
        };
        let setup = |d: Option<&Dma>| d.map_or(0.0, |d| d.setup as f64);
        let w_dma = self.w_dma.or(self.act_dma);
        let weights = self.has_weights();
        let moves = 2.0 * setup(self.act_dma) + if weights { setup(w_dma) } else { 0.0 };
        // Every output element's partial sums are written after each C
        // tile but the last and read before each but the first.
        let acc = match self.unit.partial_sum_rate {
            Some(rate) if n_c > 1 => {
                2.0 * (n_c - 1) as f64 * (l.n.max(1) * l.k * l.oy * l.ox).max(0) as f64 / rate
            }
            _ => 0.0,
        };
        let calls = compute + acc + n_c as f64 * self.unit.call_overhead as f64 + moves;
        // And at least every transfer: the compulsory bytes, and a command
        // per C tile of the input and of the weights (each C tile is its
        // own box) and one for the output.
        let transfers = match (self.act_dma, w_dma) {
            (Some(d), Some(wd)) => {
                let (act, w) = self.compulsory();
                let w_part = if weights { n_c as f64 * wd.setup as f64 + w / wd.bandwidth } else { 0.0 };
                (n_c + 1) as f64 * d.setup as f64 + act / d.bandwidth + w_part
            }
            _ => 0.0,
        };
        Ok(calls.max(transfers))
    }

    /// Bytes of the int32 accumulator a split C keeps in the compute
    /// memory across the C tiles of a (K, OY, OX) tile (0 unsplit).
    pub fn acc_bytes(&self, k: i64, oy: i64, ox: i64) -> u64 {
        if !self.c_split() {
            return 0;
        }
        4 * self.output_tile(k, oy, ox).iter().product::<i64>().max(0) as u64
    }

    /// Cycles a call on a C tile spends on the int32 accumulator of its
    /// (K, OY, OX) output tile beyond the MACs: reading the partial sums
    /// unless it is the first C tile, writing them unless it is the last,
    /// each the tile's output elements over the unit's `partial_sums`
    /// rate. Zero when C is whole or the target states no rate.
    pub fn acc_cycles(&self, k: i64, oy: i64, ox: i64, first: bool, last: bool) -> f64 {
        let Some(rate) = self.unit.partial_sum_rate.filter(|_| self.c_split()) else { return 0.0 };
        let elements = self.output_tile(k, oy, ox).iter().product::<i64>().max(0) as f64;
        let passes = u8::from(!first) + u8::from(!last);
        f64::from(passes) * elements / rate
    }

    fn shared_weights_mem(&self) -> bool {
        self.weights_mem == self.unit.compute_in
    }

    pub fn has_weights(&self) -> bool {
        matches!(self.layer.op, OpKind::Conv | OpKind::Dense) && self.layer.w_bits > 0
    }

    fn in_bytes(&self) -> f64 {
        (self.layer.in_bits.max(8) as f64) / 8.0
    }
    fn out_bytes(&self) -> f64 {
        (self.layer.out_bits.max(8) as f64) / 8.0
    }

    /// Weight bytes per output channel.
    pub fn weight_bytes_per_k(&self) -> f64 {
        if !self.has_weights() {
            return 0.0;
        }
        let l = &self.layer;
        let per = (l.c / l.groups.max(1)).max(1) * l.fy * l.fx;
        ((per * l.w_bits) as f64 / 8.0).ceil()
    }

    /// Bytes of a weight tile of `k` output channels as the unit's kernel
    /// reads it: encoded in the offload rule's weight layout (layout.rs, the
    /// bytes the emitter stores and moves per K tile), else raw.
    pub fn weight_tile_bytes(&self, k: i64) -> u64 {
        if !self.has_weights() {
            return 0;
        }
        let steps = self.offload.map_or(&[][..], |o| self.hw.offload_weight_layout(o));
        let l = &self.layer;
        let cg = (l.c / l.groups.max(1)).max(1) as usize;
        // The IR holds the weights as bytes (ternary ones too).
        match crate::layout::encoded_size(steps, k.max(0) as usize, cg, l.fy as usize, l.fx as usize, 8) {
            Ok(b) if !steps.is_empty() => b as u64,
            _ => (k as f64 * self.weight_bytes_per_k()).ceil() as u64,
        }
    }

    /// The spatial unrolling of dimension `d` (1 when not unrolled).
    pub fn unroll(&self, d: Dim) -> i64 {
        self.unit.spatial.iter().find(|(x, _)| *x == d).map_or(1, |(_, u)| *u as i64)
    }

    /// Extents of the tiled loops: (K, OY, OX).
    pub fn extents(&self) -> [i64; 3] {
        [self.layer.k.max(1), self.layer.oy.max(1), self.layer.ox.max(1)]
    }

    /// Input rows (columns) a tile of `o` outputs reads, with its halo,
    /// at most the input's extent.
    fn halo(&self, o: i64, s: i64, f: i64, d: i64, full: i64) -> i64 {
        ((o - 1) * s + (f - 1) * d + 1).min(full.max(1)).max(1)
    }

    /// The tile as a [`Layer`], for the target's expressions.
    pub fn tile_layer(&self, k: i64, oy: i64, ox: i64, pads: [bool; 4]) -> Layer {
        self.tile_layer_c(k, self.layer.c, oy, ox, pads)
    }

    /// [`Problem::tile_layer`] of a C tile of `c` channels (one call of a
    /// split C; `c` is ignored for channel-wise layers, whose C follows K).
    fn tile_layer_c(&self, k: i64, c: i64, oy: i64, ox: i64, pads: [bool; 4]) -> Layer {
        let l = &self.layer;
        let mut t = l.clone();
        let [top, bottom, left, right] = pads;
        t.k = k;
        if self.channelwise {
            t.c = k;
            t.groups = k;
        } else {
            t.c = c;
        }
        t.oy = oy;
        t.ox = ox;
        t.pad_top = if top { l.pad_top } else { 0 };
        t.pad_bottom = if bottom { l.pad_bottom } else { 0 };
        t.pad_left = if left { l.pad_left } else { 0 };
        t.pad_right = if right { l.pad_right } else { 0 };
        if l.op != OpKind::Dense {
            let iy = (oy - 1) * l.sy + (l.fy - 1) * l.dy + 1 - t.pad_top - t.pad_bottom;
            let ix = (ox - 1) * l.sx + (l.fx - 1) * l.dx + 1 - t.pad_left - t.pad_right;
            t.iy = iy.clamp(1, l.iy.max(1));
            t.ix = ix.clamp(1, l.ix.max(1));
        }
        t
    }

    /// The first conjunct of the rule's `tile_condition` that some tile of
    /// this tiling fails (every distinct tile: remainders, borders with
    /// their padding, each C tile), or `None` when every tile meets it.
    pub fn tile_refusal(&self, tile: [i64; 3]) -> Result<Option<String>, String> {
        let Some(o) = self.offload.filter(|o| o.tile_condition.is_some()) else { return Ok(None) };
        let ext = self.extents();
        let key = [tile[0].min(ext[0]), tile[1].min(ext[1]), tile[2].min(ext[2]), self.c_tile()];
        if let Some(r) = self.refusal_cache.borrow().get(&key) {
            return Ok(r.clone());
        }
        let (ks, ys, xs) = (classes(ext[0], tile[0]), classes(ext[1], tile[1]), classes(ext[2], tile[2]));
        let cs = self.c_classes();
        let mut refusal = None;
        'tiles: for ck in &ks {
            for cc in &cs {
                for cy in &ys {
                    for cx in &xs {
                        let t = self.tile_layer_c(
                            ck.extent,
                            cc.extent,
                            cy.extent,
                            cx.extent,
                            [cy.first, cy.last, cx.first, cx.last],
                        );
                        let r = self.hw.check_tile(o, &t).map_err(|e| {
                            format!(
                                "cannot evaluate the tile condition of `{}` on unit `{}`: {e}",
                                o.kernel, o.unit
                            )
                        })?;
                        if let Some(c) = r {
                            refusal = Some(format!("{c} (tile K {} C {} OY {} OX {})", t.k, t.c, t.oy, t.ox));
                            break 'tiles;
                        }
                    }
                }
            }
        }
        self.refusal_cache.borrow_mut().insert(key, refusal.clone());
        Ok(refusal)
    }

    /// Compute cycles of one call on a tile (cached by shape).
    fn kernel_cycles(&self, key: TileKey) -> Result<f64, String> {
        if let Some(&c) = self.cache.borrow().get(&key) {
            return Ok(c);
        }
        let t = self.tile_layer_c(key.k, key.c, key.oy, key.ox, [key.top, key.bottom, key.left, key.right]);
        let c = self.call_compute(&t)?;
        self.cache.borrow_mut().insert(key, c);
        Ok(c)
    }

    /// Compute cycles of one call on `t`: the target's expression, else the default model.
    pub fn call_compute(&self, t: &Layer) -> Result<f64, String> {
        let expr = match self.offload {
            Some(o) => self.hw.offload_call_cycles(o, t),
            None => self.hw.call_cycles(self.unit, t),
        }
        .map_err(|e| format!("cannot evaluate the cycles of unit `{}`: {e}", self.unit.name))?;
        Ok(match expr {
            Some(c) => c.max(0.0),
            None => self.default_compute(t),
        })
    }

    /// MACs (one operation per output element at least) with spatially
    /// unrolled dimensions rounded up, over the nominal peak.
    pub fn default_compute(&self, t: &Layer) -> f64 {
        let mut work = t.macs().max(t.n * t.k * t.oy * t.ox) as f64;
        for &(d, u) in &self.unit.spatial {
            let u = u as i64;
            let ext = match d {
                Dim::K => t.k,
                Dim::C => t.c / t.groups.max(1),
                Dim::OY => t.oy,
                Dim::OX => t.ox,
                Dim::FY => t.fy,
                Dim::FX => t.fx,
            }
            .max(1);
            work *= ((ext + u - 1) / u * u) as f64 / ext as f64;
        }
        work / self.unit.macs_per_cycle.max(f64::MIN_POSITIVE)
    }

    /// Activation shapes outer to inner in the unit's layout.
    fn act_box(&self, c: i64, h: i64, w: i64) -> [i64; 3] {
        if self.chw {
            [c, h, w]
        } else {
            [h, w, c]
        }
    }

    fn input_full(&self) -> [i64; 3] {
        let l = &self.layer;
        if l.op == OpKind::Dense {
            return [1, l.n.max(1), l.c];
        }
        self.act_box(l.c, l.iy.max(1), l.ix.max(1))
    }

    /// The input box a (K, OY, OX) tile moves under `fetch`: its window
    /// (with halo), widened to the full width (rows) and height (planes).
    fn input_tile(&self, k: i64, c: i64, oy: i64, ox: i64, fetch: Fetch) -> [i64; 3] {
        let l = &self.layer;
        if l.op == OpKind::Dense {
            return [1, l.n.max(1), c];
        }
        let c = if self.channelwise { k } else { c };
        let (mut iy, mut ix) = if l.op == OpKind::Add {
            (oy, ox)
        } else {
            (self.halo(oy, l.sy, l.fy, l.dy, l.iy), self.halo(ox, l.sx, l.fx, l.dx, l.ix))
        };
        if self.fetches().contains(&fetch) {
            if fetch >= Fetch::Rows {
                ix = l.ix.max(1);
            }
            if fetch == Fetch::Planes {
                iy = l.iy.max(1);
            }
        }
        self.act_box(c, iy, ix)
    }

    /// The input fetch modes the search tries: the window, and for a tiled
    /// convolution whole rows and whole planes (the emitted kernels take
    /// the window inside the box through a row pitch, emit/tiled.rs).
    pub fn fetches(&self) -> &'static [Fetch] {
        if !self.untiled() && self.layer.op == OpKind::Conv {
            &Fetch::ALL
        } else {
            &Fetch::ALL[..1]
        }
    }

    /// A smaller fetch mode that `fetch` cannot beat with this tile: one
    /// whose input transfer is at most `fetch`'s on every distinct input
    /// tile. Everything else of the two is equal but the input bytes and
    /// buffer, which only grow with the mode, and [`Problem::evaluate`]
    /// grows with each transfer term, so `fetch` costs at least as much in
    /// cycles and energy, and needs at least the memory; the smaller mode
    /// comes first in the search and wins ties, so the search skips
    /// `fetch` (e.g. whole rows when every window already spans the width).
    pub fn fetch_dominated(&self, tile: [i64; 3], fetch: Fetch) -> Option<Fetch> {
        let ext = self.extents();
        // Only the input boxes decide: K matters for a channel-wise layer only.
        let k_key = if self.channelwise { tile[0].min(ext[0]) } else { 0 };
        let key = ([k_key, self.c_tile(), tile[1].min(ext[1]), tile[2].min(ext[2])], fetch);
        if let Some(&d) = self.dominated_cache.borrow().get(&key) {
            return d;
        }
        let d = self.fetch_dominated_uncached(tile, fetch);
        self.dominated_cache.borrow_mut().insert(key, d);
        d
    }

    fn fetch_dominated_uncached(&self, tile: [i64; 3], fetch: Fetch) -> Option<Fetch> {
        let ext = self.extents();
        let ks: Vec<i64> = if self.channelwise {
            classes(ext[0], tile[0]).iter().map(|c| c.extent).collect()
        } else {
            vec![tile[0].min(ext[0])]
        };
        let (ys, xs) = (classes(ext[1], tile[1]), classes(ext[2], tile[2]));
        let cs = self.c_classes();
        self.fetches().iter().copied().take_while(|&g| g < fetch).find(|&g| {
            ks.iter().all(|&k| {
                cs.iter().all(|c| {
                    ys.iter().all(|y| {
                        xs.iter().all(|x| {
                            self.input_dma(k, c.extent, y.extent, x.extent, g)
                                <= self.input_dma(k, c.extent, y.extent, x.extent, fetch)
                        })
                    })
                })
            })
        })
    }

    fn output_full(&self) -> [i64; 3] {
        let l = &self.layer;
        if l.op == OpKind::Dense {
            return [1, l.n.max(1), l.k];
        }
        self.act_box(l.k, l.oy, l.ox)
    }

    fn output_tile(&self, k: i64, oy: i64, ox: i64) -> [i64; 3] {
        let l = &self.layer;
        if l.op == OpKind::Dense {
            return [1, l.n.max(1), k];
        }
        self.act_box(k, oy, ox)
    }

    /// Bytes of the input (its window), weight and output tiles of a (K, OY, OX) tile.
    pub fn tile_bytes(&self, k: i64, oy: i64, ox: i64) -> (u64, u64, u64) {
        self.tile_bytes_in(k, oy, ox, Fetch::Window)
    }

    /// [`Problem::tile_bytes`] with the input box moved under `fetch`.
    /// The C tile is the one in effect ([`Problem::c_tile`]).
    pub fn tile_bytes_in(&self, k: i64, oy: i64, ox: i64, fetch: Fetch) -> (u64, u64, u64) {
        self.tile_bytes_c(k, self.c_tile(), oy, ox, fetch)
    }

    /// [`Problem::tile_bytes_in`] of a C tile of `c` channels.
    fn tile_bytes_c(&self, k: i64, c: i64, oy: i64, ox: i64, fetch: Fetch) -> (u64, u64, u64) {
        let i: i64 = self.input_tile(k, c, oy, ox, fetch).iter().product();
        let o: i64 = self.output_tile(k, oy, ox).iter().product();
        let input = (i as f64 * self.in_bytes()).ceil() as u64 * self.n_inputs as u64;
        let weights = self.weight_tile(k, c).0;
        let output = (o as f64 * self.out_bytes()).ceil() as u64;
        (input, weights, output)
    }

    /// Scratch bytes of the unit on the largest tile.
    pub fn scratch(&self, k: i64, oy: i64, ox: i64) -> Result<u64, String> {
        let c = self.c_tile();
        if let Some(&b) = self.scratch_cache.borrow().get(&[k, oy, ox, c]) {
            return Ok(b);
        }
        let t = self.tile_layer_c(k, c, oy, ox, [true; 4]);
        let s = self
            .hw
            .scratch_bytes(self.unit, &t)
            .map_err(|e| format!("scratch of `{}`: {e}", self.unit.name))?;
        let b = s.iter().map(|(_, b)| b.max(0.0).ceil() as u64).sum();
        self.scratch_cache.borrow_mut().insert([k, oy, ox, c], b);
        Ok(b)
    }

    /// Footprint of a (K, OY, OX) tile under `buf`.
    pub fn footprint(&self, tile: [i64; 3], buf: Buffering) -> Result<Footprint, String> {
        Ok(self.footprints(tile, &[buf])?[0])
    }

    /// [`Problem::footprints`] of the window.
    pub fn footprints(&self, tile: [i64; 3], bufs: &[Buffering]) -> Result<Vec<Footprint>, String> {
        self.footprints_in(tile, Fetch::Window, bufs)
    }

    /// The footprints of a tile under each of `bufs` (the tile's bytes with
    /// the input box `fetch` moves, and scratch, an evaluation of the
    /// target's expressions, computed once).
    pub fn footprints_in(
        &self,
        tile: [i64; 3],
        fetch: Fetch,
        bufs: &[Buffering],
    ) -> Result<Vec<Footprint>, String> {
        let [k, oy, ox] = tile;
        let (i, w, o) = self.tile_bytes_in(k, oy, ox, fetch);
        // A split C keeps its int32 accumulator across the C tiles.
        let scratch = self.scratch(k, oy, ox)? + self.acc_bytes(k, oy, ox);
        Ok(bufs
            .iter()
            .map(|buf| {
                let act = i * Buffering::factor(buf.input) + o * Buffering::factor(buf.output) + scratch;
                let w = w * Buffering::factor(buf.weights);
                if self.shared_weights_mem() {
                    Footprint { act: act + w, weights: 0 }
                } else {
                    Footprint { act, weights: w }
                }
            })
            .collect())
    }

    pub fn fits(&self, f: Footprint) -> bool {
        f.act <= self.act_capacity && f.weights <= self.w_capacity
    }

    /// The buffering choices this target allows.
    pub fn bufferings(&self) -> Vec<Buffering> {
        let mut v = Vec::new();
        for bits in 0..8u8 {
            let b = Buffering { input: bits & 1 != 0, weights: bits & 2 != 0, output: bits & 4 != 0 };
            if (b.input || b.output) && !self.act_double {
                continue;
            }
            if b.weights && (!self.w_double || !self.has_weights()) {
                continue;
            }
            v.push(b);
        }
        v
    }

    fn input_dma(&self, k: i64, ch: i64, oy: i64, ox: i64, fetch: Fetch) -> f64 {
        let Some(dma) = self.act_dma else { return 0.0 };
        // The key keeps only what the input box depends on (input_tile):
        // K for a channel-wise layer, C otherwise; no rows or columns for
        // a dense layer. Fewer distinct keys, a smaller table to probe.
        let key = match (self.layer.op == OpKind::Dense, self.channelwise) {
            (true, _) => [0, ch, 0, 0],
            (false, true) => [k, 0, oy, ox],
            (false, false) => [0, ch, oy, ox],
        };
        if let Some(&c) = self.in_cache.borrow().get(&(key, fetch)) {
            return c;
        }
        let c = self.n_inputs as f64
            * dma_cycles(dma, &self.input_full(), &self.input_tile(k, ch, oy, ox, fetch), self.in_bytes());
        self.in_cache.borrow_mut().insert((key, fetch), c);
        c
    }
    /// The bytes of a weight tile of `k` channels and the cycles of its
    /// transfer (cached per `k`).
    fn weight_tile(&self, k: i64, c: i64) -> (u64, f64) {
        if let Some(&w) = self.w_cache.borrow().get(&(k, c)) {
            return w;
        }
        let l = &self.layer;
        let w = if c < l.c && self.c_splittable() {
            // A C tile of the raw (K, FY, FX, C) weights: per output
            // channel, FY * FX runs of c bytes (emit/tiled.rs `_load_w`).
            let f = (l.fy * l.fx).max(1);
            let b = (k * f * c).max(0) as u64;
            let t = match self.w_dma.or(self.act_dma) {
                Some(dma) => dma_cycles(dma, &[l.k.max(1), f, l.c], &[k, f, c], 1.0),
                None => 0.0,
            };
            (b, t)
        } else {
            let b = self.weight_tile_bytes(k);
            let t = match self.w_dma.or(self.act_dma) {
                // One contiguous run per tile (pre-encoded, or K rows of the raw weights).
                Some(dma) if self.has_weights() => dma_cycles(dma, &[b as i64], &[b as i64], 1.0),
                _ => 0.0,
            };
            (b, t)
        };
        self.w_cache.borrow_mut().insert((k, c), w);
        w
    }
    fn weight_dma(&self, k: i64, c: i64) -> f64 {
        self.weight_tile(k, c).1
    }
    fn output_dma(&self, k: i64, oy: i64, ox: i64) -> f64 {
        let Some(dma) = self.act_dma else { return 0.0 };
        if let Some(&c) = self.out_cache.borrow().get(&[k, oy, ox]) {
            return c;
        }
        let c = dma_cycles(dma, &self.output_full(), &self.output_tile(k, oy, ox), self.out_bytes());
        self.out_cache.borrow_mut().insert([k, oy, ox], c);
        c
    }

    fn energy_per_byte(&self, dma: Option<&Dma>, to: &str) -> f64 {
        let mem = |n: &str| self.hw.memory(n).and_then(|m| m.energy_per_byte).unwrap_or(0.0);
        match dma {
            Some(d) => d.energy_per_byte.unwrap_or(0.0) + mem(self.home) + mem(to),
            None => mem(self.home),
        }
    }

    /// Lower bounds on the terms of any schedule with this tile, whatever
    /// its order ([`Floor`]; [`Floor::cycles`] per buffering). Each term
    /// is computed with the same functions [`Problem::evaluate`] charges.
    pub fn floor(&self, tile: [i64; 3]) -> Result<Floor, String> {
        self.floor_with(tile, Fetch::Window, true)
    }

    /// [`Problem::floor`] with the input boxes moved under `fetch`.
    pub fn floor_in(&self, tile: [i64; 3], fetch: Fetch) -> Result<Floor, String> {
        self.floor_with(tile, fetch, true)
    }

    /// [`Problem::floor`] without the calls (`compute` and `first_call`
    /// zero): its [`Floor::cycles`] are lower bounds of the full floor's
    /// (they grow with the calls), and cost no evaluation of the target's
    /// cycle expression, so the search tries them first.
    pub fn transfer_floor(&self, tile: [i64; 3], fetch: Fetch) -> Result<Floor, String> {
        self.floor_with(tile, fetch, false)
    }

    fn floor_with(&self, tile: [i64; 3], fetch: Fetch, calls: bool) -> Result<Floor, String> {
        let ext = self.extents();
        let [d_k, d_oy, d_ox] = ext;
        let ovh = self.unit.call_overhead as f64;
        let (ks, ys, xs) = (classes(d_k, tile[0]), classes(d_oy, tile[1]), classes(d_ox, tile[2]));
        let cs = self.c_classes();
        let mut f = Floor::default();
        for ck in &ks {
            for cy in &ys {
                for cx in &xs {
                    let n = (ck.count * cy.count * cx.count) as f64;
                    // Every call (one per C tile) is made in every order.
                    for cc in &cs {
                        let key = TileKey {
                            k: ck.extent,
                            c: cc.extent,
                            oy: cy.extent,
                            ox: cx.extent,
                            top: cy.first,
                            bottom: cy.last,
                            left: cx.first,
                            right: cx.last,
                        };
                        let call = if calls {
                            self.kernel_cycles(key)?
                                + ovh
                                + self.acc_cycles(ck.extent, cy.extent, cx.extent, cc.first, cc.last)
                        } else {
                            0.0
                        };
                        f.compute += n * cc.count as f64 * call;
                        if ck.first && cy.first && cx.first && cc.first {
                            f.first_call = call;
                        }
                    }
                    // Every output tile is written back exactly once.
                    let out = self.output_dma(ck.extent, cy.extent, cx.extent);
                    f.output += n * out;
                    if ck.last && cy.last && cx.last {
                        f.last_output = out;
                    }
                }
            }
        }
        // Each distinct tile of an operand is loaded at least once: the
        // model loads it whenever its tile index changes (and at step 0),
        // so at least at its first appearance. Inputs are indexed by
        // (OY, OX), and by K for channel-wise layers; weights by K.
        // A split C (the innermost loop, more than one tile) changes its
        // tile at every step: both operands load at every step, in every
        // order, so these terms are then exact.
        if self.c_split() {
            let n_yx = (d_oy + tile[1] - 1) / tile[1] * ((d_ox + tile[2] - 1) / tile[2]);
            for ck in &ks {
                for cc in &cs {
                    let t = self.weight_dma(ck.extent, cc.extent);
                    f.weights += (ck.count * n_yx * cc.count) as f64 * t;
                    if ck.first && cc.first {
                        f.first_weights = t;
                    }
                }
            }
            debug_assert!(!self.channelwise);
            // A split layer is not channel-wise (groups 1 or dense): its
            // input box does not depend on the K tile, and is loaded once
            // per K tile.
            let (n_k, k0) = ((d_k + tile[0] - 1) / tile[0], tile[0].min(d_k));
            for cc in &cs {
                for cy in &ys {
                    for cx in &xs {
                        let t = self.input_dma(k0, cc.extent, cy.extent, cx.extent, fetch);
                        f.input += (n_k * cy.count * cx.count * cc.count) as f64 * t;
                        if cy.first && cx.first && cc.first {
                            f.first_input = t;
                        }
                    }
                }
            }
            return Ok(f);
        }
        let c = self.layer.c;
        let k_in: Vec<Class> = if self.channelwise {
            ks.clone()
        } else {
            vec![Class { count: 1, extent: tile[0].min(d_k), first: true, last: true }]
        };
        for ck in &k_in {
            for cy in &ys {
                for cx in &xs {
                    let t = self.input_dma(ck.extent, c, cy.extent, cx.extent, fetch);
                    f.input += (ck.count * cy.count * cx.count) as f64 * t;
                    if ck.first && cy.first && cx.first {
                        f.first_input = t;
                    }
                }
            }
        }
        for ck in &ks {
            let t = self.weight_dma(ck.extent, c);
            f.weights += ck.count as f64 * t;
            if ck.first {
                f.first_weights = t;
            }
        }
        Ok(f)
    }

    /// The cost of tiling with `tile` (K, OY, OX), loops in `order` (outer
    /// to inner) and buffering `buf`.
    pub fn evaluate(&self, tile: [i64; 3], order: [Loop; 3], buf: Buffering) -> Result<Estimate, String> {
        self.evaluate_in(tile, order, buf, Fetch::Window)
    }

    /// [`Problem::evaluate`] with the input boxes moved under `fetch`.
    pub fn evaluate_in(
        &self,
        tile: [i64; 3],
        order: [Loop; 3],
        buf: Buffering,
        fetch: Fetch,
    ) -> Result<Estimate, String> {
        let ext = self.extents();
        let ovh = self.unit.call_overhead as f64;
        let per_loop: Vec<Vec<Class>> = (0..3).map(|i| classes(ext[i], tile[i])).collect();
        let trips: Vec<i64> = (0..3).map(|i| (ext[i] + tile[i] - 1) / tile[i]).collect();
        let mut cycles = Cycles::default();
        let mut calls = 0i64;
        let mut bytes_moved = 0.0;
        let (e_in, e_out, e_w) = (
            self.energy_per_byte(self.act_dma, &self.unit.compute_in),
            self.energy_per_byte(self.act_dma, &self.unit.compute_in),
            self.energy_per_byte(self.w_dma.or(self.act_dma), self.weights_mem),
        );
        let mut energy = 0.0;
        // Which loops each operand depends on.
        let w_dep = |l: Loop| l == Loop::K;
        let in_dep = |l: Loop| l != Loop::K || self.channelwise;
        let mut last_write = 0.0;
        let [_, keep_out] = self.resident_io.get();
        let in_share = self.loaded_input_share();
        // The C loop, innermost (one whole tile unless split).
        let cs = self.c_classes();
        let split = self.c_split();
        for a in &per_loop[order[0].index()] {
            for b in &per_loop[order[1].index()] {
                for c in &per_loop[order[2].index()] {
                    let cls = [a, b, c];
                    let mut by = [0i64; 3];
                    let mut cl = [cls[0]; 3];
                    for (pos, l) in order.iter().enumerate() {
                        by[l.index()] = cls[pos].extent;
                        cl[l.index()] = cls[pos];
                    }
                    let (k, oy, ox) = (by[0], by[1], by[2]);
                    // The change level: the innermost loop not at its first
                    // iteration; None at the very first (K, OY, OX) tile.
                    let level = (0..3).rev().find(|&p| !cls[p].first);
                    let changed = |dep: &dyn Fn(Loop) -> bool| match level {
                        None => true,
                        Some(j) => (j..3).any(|p| dep(order[p]) && trips[order[p].index()] > 1),
                    };
                    let out_t = if keep_out { 0.0 } else { self.output_dma(k, oy, ox) };
                    for cc in &cs {
                        let count = (a.count * b.count * c.count * cc.count) as f64;
                        let key = TileKey {
                            k,
                            c: cc.extent,
                            oy,
                            ox,
                            top: cl[1].first,
                            bottom: cl[1].last,
                            left: cl[2].first,
                            right: cl[2].last,
                        };
                        let call = self.kernel_cycles(key)? + self.acc_cycles(k, oy, ox, cc.first, cc.last);
                        // A split C changes its tile at every step: both
                        // operands load at every step.
                        let first = level.is_none() && cc.first;
                        let load_in = (split || changed(&in_dep)) && in_share > 0.0;
                        let load_w = split || changed(&w_dep);
                        let (ib, wb, ob) = self.tile_bytes_c(k, cc.extent, oy, ox, fetch);
                        let in_t = if load_in {
                            in_share * self.input_dma(k, cc.extent, oy, ox, fetch)
                        } else {
                            0.0
                        };
                        let in_b = if load_in { in_share * ib as f64 } else { 0.0 };
                        let w_t = if load_w { self.weight_dma(k, cc.extent) } else { 0.0 };
                        let w_b = if load_w && self.has_weights() && self.w_dma.or(self.act_dma).is_some() {
                            wb as f64
                        } else {
                            0.0
                        };
                        // The output is written once, after the last C tile.
                        let o_b =
                            if self.act_dma.is_some() && cc.last && !keep_out { ob as f64 } else { 0.0 };
                        let i_b = if self.act_dma.is_some() { in_b } else { 0.0 };
                        bytes_moved += count * (i_b + w_b + o_b);
                        energy += count * (i_b * e_in + w_b * e_w + o_b * e_out);
                        let (mut serial, mut over) = (0.0, 0.0);
                        if first {
                            serial += in_t + w_t; // prologue
                        } else {
                            let (s_i, o_i) = if buf.input { (0.0, in_t) } else { (in_t, 0.0) };
                            let (s_w, o_w) = if buf.weights { (0.0, w_t) } else { (w_t, 0.0) };
                            serial += s_i + s_w;
                            over += o_i + o_w;
                            // The previous write-back: at the first C tile
                            // of every (K, OY, OX) tile but the first.
                            if buf.output && cc.first && !keep_out {
                                over += self.previous_output_dma(level, order, by, tile, trips.as_slice());
                            }
                        }
                        if !buf.output && cc.last {
                            serial += out_t;
                        }
                        if a.last && b.last && c.last && cc.last {
                            last_write = out_t;
                        }
                        let (_, exposed, stall) = step_cycles(call + ovh, serial, over);
                        cycles.add_step(count, call, ovh, exposed, stall);
                        calls += count as i64;
                    }
                }
            }
        }
        if buf.output {
            cycles.transfer += last_write; // epilogue
        }
        cycles.finish();
        let macs = self.layer.macs().max(0) as f64;
        energy += macs * self.unit.energy_per_mac.unwrap_or(0.0);
        if self.untiled() {
            let (i, w, o) = self.tile_bytes(self.layer.k, self.layer.oy, self.layer.ox);
            energy += (i + w + o) as f64 * self.energy_per_byte(None, self.home);
        }
        Ok(Estimate { cycles, energy_pj: energy, calls: calls as u64, bytes_moved })
    }

    /// The write-back of the step before the current one, which a
    /// double-buffered output overlaps with the current step's compute.
    /// The current step changed at loop position `level` (outer to inner):
    /// there the previous step had the full tile (its index is one less,
    /// so not the last), every deeper loop was at its last (possibly
    /// partial) tile, and the outer loops are unchanged. With uneven tiles
    /// this differs from the current step's own write-back.
    fn previous_output_dma(
        &self,
        level: Option<usize>,
        order: [Loop; 3],
        by: [i64; 3],
        tile: [i64; 3],
        trips: &[i64],
    ) -> f64 {
        let Some(j) = level else { return 0.0 };
        let ext = self.extents();
        let mut prev = by;
        let l = order[j].index();
        prev[l] = tile[l].min(ext[l]);
        for l in order[j + 1..].iter().map(|l| l.index()) {
            prev[l] = ext[l] - (trips[l] - 1) * tile[l];
        }
        self.output_dma(prev[0], prev[1], prev[2])
    }

    /// Bytes of the layer's inputs, weights and outputs, each once: of the
    /// inputs, only the pixels some output reads (a strided window that
    /// skips rows and columns, e.g. a 1x1 convolution of stride 2, reads a
    /// quarter of its input; a schedule whose tiles are single rows moves
    /// only those, so counting the whole input would put the bound above
    /// an achievable schedule).
    pub fn compulsory_bytes(&self) -> f64 {
        let (act, w) = self.compulsory();
        act + w
    }

    /// The compulsory bytes of [`Problem::compulsory_bytes`] split into
    /// activations (inputs and outputs) and weights, which may take
    /// different DMAs.
    fn compulsory(&self) -> (f64, f64) {
        let l = &self.layer;
        let (i, w, o) = self.tile_bytes_c(l.k, l.c, l.oy, l.ox, Fetch::Window);
        let input = if matches!(l.op, OpKind::Conv | OpKind::Pool) {
            let rows = read_extent(l.oy, l.sy, l.fy, l.dy, l.pad_top, l.iy);
            let cols = read_extent(l.ox, l.sx, l.fx, l.dx, l.pad_left, l.ix);
            let per_pixel = (l.c.max(1) as f64 * self.in_bytes()).ceil();
            (rows * cols) as f64 * per_pixel * self.n_inputs as f64
        } else {
            i as f64
        };
        // Inter-layer residency: a resident input or a kept output does
        // not move between the memories.
        let keep_out = self.resident_io.get()[1];
        let input = input.min(i as f64) * self.loaded_input_share();
        let output = if keep_out { 0.0 } else { o as f64 };
        (input + output, w as f64)
    }

    /// (roofline_cycles, bound_cycles) of the layer on this unit. The
    /// memory term is the compulsory bytes over the bandwidth of the DMA
    /// each moves through (the weights' own DMA when they have one).
    pub fn bounds(&self) -> Result<(f64, f64), String> {
        let macs = self.layer.macs().max(0) as f64;
        let memory = match self.act_dma {
            Some(d) => {
                let (act, w) = self.compulsory();
                let w_bw = self.w_dma.map_or(d.bandwidth, |wd| wd.bandwidth);
                act / d.bandwidth + if self.has_weights() { w / w_bw } else { 0.0 }
            }
            None => 0.0,
        };
        let roofline = (macs / self.unit.macs_per_cycle.max(f64::MIN_POSITIVE)).max(memory);
        let l = &self.layer;
        let whole = self.call_compute(&self.tile_layer(l.k, l.oy, l.ox, [true; 4]))?;
        Ok((roofline, whole.max(memory)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dma(dims: u32, max: Option<u64>) -> Dma {
        Dma {
            from: "L2".into(),
            to: "L1".into(),
            both_ways: true,
            bandwidth: 8.0,
            setup: 370,
            dims,
            max_bytes: max,
            overhead: vec![0, 1, 10],
            start: "s".into(),
            wait: "w".into(),
            energy_per_byte: None,
        }
    }

    #[test]
    fn strided_dims_follow_the_tile() {
        // HWC 10x10x16: full C and W: contiguous rows.
        assert_eq!(transfer_shape(&[10, 10, 16], &[4, 10, 16]), vec![640]);
        // Partial W, full C: one run per row.
        assert_eq!(transfer_shape(&[10, 10, 16], &[4, 5, 16]), vec![4, 80]);
        // Partial C: 3-D.
        assert_eq!(transfer_shape(&[10, 10, 16], &[4, 5, 8]), vec![4, 5, 8]);
        // Extent-1 outer dimensions vanish.
        assert_eq!(transfer_shape(&[10, 10, 16], &[1, 5, 8]), vec![5, 8]);
        assert_eq!(transfer_shape(&[10, 10, 16], &[10, 10, 16]), vec![1600]);
    }

    #[test]
    fn dma_splits_at_max_bytes() {
        // 100000 contiguous bytes: 2 commands of at most 65535 B.
        let d = dma(3, Some(65535));
        assert_eq!(dma_cycles(&d, &[100000], &[100000], 1.0), 2.0 * 370.0 + 100000.0 / 8.0);
        // 65535 B: one command.
        assert_eq!(dma_cycles(&d, &[65535], &[65535], 1.0), 370.0 + 65535.0 / 8.0);
        // 2-D: 4 rows of 80 B: one command with the 2-D overhead.
        assert_eq!(dma_cycles(&d, &[10, 10, 16], &[4, 5, 16], 1.0), 370.0 + 1.0 + 320.0 / 8.0);
        // 3-D on a 3-D DMA: 10 cycles of overhead.
        assert_eq!(dma_cycles(&d, &[10, 10, 16], &[4, 5, 8], 1.0), 370.0 + 10.0 + 160.0 / 8.0);
        // 3-D on a 1-D DMA: one command per run (4 * 5).
        let d1 = dma(1, None);
        assert_eq!(dma_cycles(&d1, &[10, 10, 16], &[4, 5, 8], 1.0), 20.0 * 370.0 + 160.0 / 8.0);
        // 3-D on a 2-D DMA with a small max: 4 commands of 5 rows of 8 B
        // (40 B), each split by whole rows at 32 B: a 2-D command of 4 rows
        // and a 1-D command of the last row (as mt_cmd issues them).
        let d2 = dma(2, Some(32));
        assert_eq!(
            dma_cycles(&d2, &[10, 10, 16], &[4, 5, 8], 1.0),
            4.0 * (370.0 + 1.0) + 4.0 * 370.0 + 160.0 / 8.0
        );
    }

    fn cmds(dims: u32, max: u64, es: u64, full: [i64; 3], ext: [i64; 3]) -> Vec<(u64, u64, u64)> {
        let mut v = Vec::new();
        box_commands(dims, max, es, full, ext, &mut |c| v.push((c.run, c.rows, c.planes)));
        v
    }

    /// The grouped commands are the issued ones, counted.
    #[test]
    fn grouped_commands_are_the_issued_commands() {
        let mut seed = 11u64;
        let mut next = |m: u64| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for _ in 0..3000 {
            let full = [1 + next(9) as i64, 1 + next(9) as i64, 1 + next(40) as i64];
            let ext = [
                1 + next(full[0] as u64) as i64,
                1 + next(full[1] as u64) as i64,
                1 + next(full[2] as u64) as i64,
            ];
            let (dims, es) = (1 + next(3) as u32, 1 + next(4));
            let max = [0, 1, 7, 64, 100, 4096][next(6) as usize];
            let mut issued = std::collections::BTreeMap::new();
            box_commands(dims, max, es, full, ext, &mut |c| {
                *issued.entry((c.run, c.rows, c.planes)).or_insert(0u64) += 1
            });
            let mut grouped = std::collections::BTreeMap::new();
            box_command_counts(dims, max, es, full, ext, &mut |c, n| {
                *grouped.entry((c.run, c.rows, c.planes)).or_insert(0u64) += n
            });
            assert_eq!(grouped, issued, "dims {dims} max {max} es {es} full {full:?} ext {ext:?}");
        }
    }

    #[test]
    fn boxes_split_as_the_generated_code() {
        // Full inner dimensions merge; a full tensor is one run.
        assert_eq!(cmds(3, 0, 1, [10, 10, 16], [10, 10, 16]), [(1600, 1, 1)]);
        // 3-D box on a 3-D DMA: one command; on 2-D: one per plane; on 1-D: one per row.
        assert_eq!(cmds(3, 0, 1, [10, 10, 16], [4, 5, 8]), [(8, 5, 4)]);
        assert_eq!(cmds(2, 0, 2, [10, 10, 16], [4, 5, 8]), vec![(16, 5, 1); 4]);
        assert_eq!(cmds(1, 0, 1, [10, 10, 16], [4, 5, 8]).len(), 20);
        // Split by whole planes: 3 planes of 2 x 10 B per 64 B command.
        assert_eq!(cmds(3, 64, 1, [9, 4, 20], [7, 2, 10]), [(10, 2, 3), (10, 2, 3), (10, 2, 1)]);
        // A row longer than max: pieces.
        assert_eq!(
            cmds(1, 4096, 1, [1, 1, 10000], [1, 1, 10000]),
            [(4096, 1, 1), (4096, 1, 1), (1808, 1, 1)]
        );
        // Empty boxes move nothing.
        assert!(cmds(3, 0, 1, [4, 4, 4], [0, 4, 4]).is_empty());
        assert_eq!(Command { run: 8, rows: 1, planes: 1 }.dims(), 1);
        assert_eq!(Command { run: 8, rows: 3, planes: 2 }.dims(), 3);
    }

    /// A target with a 1-D DMA (4 B/cycle, 20 cycles per command, no
    /// limit) and an accelerator of 8 MAC/cycle, 30 cycles per call, its
    /// activations HWC or CHW.
    fn one_d(chw: bool) -> HwModel {
        let layout = if chw { " activation_layout order(C, H, W);" } else { "" };
        let src = format!(
            "target t {{\n clock 100 MHz\n memory L2 {{ size 1000000 B }}\n memory L1 {{ size 100000 B }}\n dma L2 <-> L1 {{ bandwidth 4 B/cycle; setup 20 cycles; dims 1; start \"s\"; wait \"w\" }}\n unit cpu {{ host; macs 1/cycle; compute_in L2 }}\n unit acc {{ macs 8/cycle; compute_in L1; call_overhead 30 cycles;{layout} }}\n pattern conv = conv2d\n offload conv to acc call \"k\"\n}}\n"
        );
        match_dsl::check(&src, "t.hwm").unwrap_or_else(|d| panic!("{d}"))
    }

    fn wide_hwc() -> Layer {
        let mut l = Layer::conv(4, 2, 2, 4, 1, 1, 1, 0);
        (l.iy, l.ix) = (4, 4);
        l
    }

    #[test]
    fn over_fetch_of_a_strided_window_on_a_1d_dma() {
        // conv K4 C2, 1x1, stride 2, 4x4 -> 2x2, one tile: it reads input
        // rows and columns 0..=2 (window 3 x 3 of 4 x 4).
        let mut l = Layer::conv(4, 2, 2, 2, 1, 1, 2, 0);
        (l.iy, l.ix) = (4, 4);
        let order = [Loop::K, Loop::OY, Loop::OX];
        let buf = Buffering::default();
        // HWC. Window (3, 3, 2) of (4, 4, 2): one 6 B run per row, 3
        // commands: 3 * 20 + 18 / 4 = 64.5. Whole rows (3, 4, 2): one
        // contiguous 24 B command: 20 + 6 = 26. Whole planes (4, 4, 2):
        // 32 B: 20 + 8 = 28.
        let hw = one_d(false);
        let p = Problem::new(&hw, hw.unit("acc").unwrap(), hw.offloads.first(), l.clone()).unwrap();
        assert_eq!(p.fetches(), &Fetch::ALL);
        let dma = [Fetch::Window, Fetch::Rows, Fetch::Planes].map(|f| p.input_dma(4, p.layer.c, 2, 2, f));
        assert_eq!(dma, [64.5, 26.0, 28.0]);
        // The rest of the single step: compute 32 MACs / 8 = 4, overhead
        // 30, weights 8 B (20 + 2), output 16 B (20 + 4), all serial.
        let rest = 4.0 + 30.0 + 22.0 + 24.0;
        let total = |f| p.evaluate_in([4, 2, 2], order, buf, f).unwrap().cycles.total;
        assert_eq!(total(Fetch::Window), rest + 64.5);
        assert_eq!(total(Fetch::Rows), rest + 26.0);
        assert_eq!(total(Fetch::Planes), rest + 28.0);
        // The memory check counts the box moved: input 18, 24, 32 B (+ weights 8 + output 16).
        let fp = |f| p.footprints_in([4, 2, 2], f, &[buf]).unwrap()[0].act;
        assert_eq!([fp(Fetch::Window), fp(Fetch::Rows), fp(Fetch::Planes)], [42, 48, 56]);
        // The floor counts the same boxes (one tile: it is exact).
        assert_eq!(p.floor_in([4, 2, 2], Fetch::Rows).unwrap().cycles(buf), rest + 26.0);
        let s = crate::schedule::search(&p, crate::schedule::Objective::Latency).unwrap();
        assert_eq!((s.fetch, s.cycles.total, s.footprint), (Fetch::Rows, rest + 26.0, 48));
        // CHW. Window (2, 3, 3) of (2, 4, 4): a 3 B run per channel and row,
        // 6 commands: 6 * 20 + 18 / 4 = 124.5. Whole rows (2, 3, 4): one
        // 12 B run per channel: 2 * 20 + 24 / 4 = 46. Whole planes: 28.
        let hw = one_d(true);
        let p = Problem::new(&hw, hw.unit("acc").unwrap(), hw.offloads.first(), l).unwrap();
        let dma = [Fetch::Window, Fetch::Rows, Fetch::Planes].map(|f| p.input_dma(4, p.layer.c, 2, 2, f));
        assert_eq!(dma, [124.5, 46.0, 28.0]);
        let s = crate::schedule::search(&p, crate::schedule::Objective::Latency).unwrap();
        assert_eq!((s.fetch, s.cycles.total), (Fetch::Planes, rest + 28.0));
        // Nothing dominates the window; neither mode is dominated here.
        assert_eq!(p.fetch_dominated([4, 2, 2], Fetch::Window), None);
        assert_eq!(p.fetch_dominated([4, 2, 2], Fetch::Rows), None);
        assert_eq!(p.fetch_dominated([4, 2, 2], Fetch::Planes), None);
        // A window already as wide as the input gains nothing from whole
        // rows; whole planes (2, 4, 4) make one run of the two channels'
        // 8 B runs: 20 + 8 = 28 < 2 * 20 + 16 / 4 = 44.
        let mut wide = Layer::conv(4, 2, 2, 4, 1, 1, 1, 0);
        (wide.iy, wide.ix) = (4, 4);
        let p = Problem::new(&hw, hw.unit("acc").unwrap(), hw.offloads.first(), wide).unwrap();
        assert_eq!(p.fetch_dominated([4, 2, 4], Fetch::Rows), Some(Fetch::Window));
        assert_eq!(p.fetch_dominated([4, 2, 4], Fetch::Planes), None);
        // On HWC, whole planes after whole rows only add bytes.
        let hw = one_d(false);
        let p = Problem::new(&hw, hw.unit("acc").unwrap(), hw.offloads.first(), wide_hwc()).unwrap();
        assert_eq!(p.fetch_dominated([4, 2, 4], Fetch::Planes), Some(Fetch::Window));
    }

    /// Inter-layer residency by hand: dense 8 -> 4 (P) then dense 4 -> 2
    /// (Q), each one tile, single-buffered; DMA setup 20 cycles, 4 B/cycle;
    /// 8 MACs/cycle, call overhead 30.
    #[test]
    fn residency_drops_exactly_the_kept_transfers_by_hand() {
        let src = "target t {\n clock 100 MHz\n memory L2 { size 1000000 B }\n memory L1 { size 1000 B; double_buffer }\n dma L2 <-> L1 { bandwidth 4 B/cycle; setup 20 cycles; dims 3; overhead 1d 0 cycles, 2d 0 cycles, 3d 0 cycles; start \"s\"; wait \"w\" }\n unit cpu { host; macs 1/cycle; compute_in L2 }\n unit acc { macs 8/cycle; compute_in L1; call_overhead 30 cycles }\n pattern fc = dense\n offload fc to acc call \"k\"\n}\n";
        let hw = match_dsl::check(src, "t.hwm").unwrap_or_else(|d| panic!("{d}"));
        let unit = hw.unit("acc").unwrap();
        let order = [Loop::K, Loop::OY, Loop::OX];
        let buf = Buffering::default();
        let p = Problem::new(&hw, unit, hw.offloads.first(), Layer::dense(4, 8)).unwrap();
        let q = Problem::new(&hw, unit, hw.offloads.first(), Layer::dense(2, 4)).unwrap();
        // P: input 8 B (20 + 2), weights 32 B (20 + 8), compute 32 / 8 = 4,
        // overhead 30, output 4 B (20 + 1): 105; 44 B moved.
        let e = p.evaluate([4, 1, 1], order, buf).unwrap();
        assert_eq!((e.cycles.total, e.cycles.transfer, e.bytes_moved), (105.0, 71.0, 44.0));
        // Q: input 4 B (20 + 1), weights 8 B (20 + 2), compute 1, overhead
        // 30, output 2 B (20 + 0.5): 94.5; 14 B moved.
        let f = q.evaluate([2, 1, 1], order, buf).unwrap();
        assert_eq!((f.cycles.total, f.cycles.transfer, f.bytes_moved), (94.5, 63.5, 14.0));
        // The chain without residency: 199.5 cycles. With P's output kept
        // in L1 as Q's input: P drops its store (21), Q its load (21), and
        // the 4 B each way; compute, overhead, calls and stall unchanged.
        p.set_resident_io(false, true);
        q.set_resident_io(true, false);
        let (e2, f2) =
            (p.evaluate([4, 1, 1], order, buf).unwrap(), q.evaluate([2, 1, 1], order, buf).unwrap());
        assert_eq!((e2.cycles.total, e2.bytes_moved), (84.0, 40.0));
        assert_eq!((f2.cycles.total, f2.bytes_moved), (73.5, 10.0));
        assert_eq!(e.cycles.total + f.cycles.total - e2.cycles.total - f2.cycles.total, 42.0);
        for (a, b) in [(&e, &e2), (&f, &f2)] {
            assert_eq!(
                (a.cycles.compute, a.cycles.overhead, a.cycles.stall, a.calls),
                (b.cycles.compute, b.cycles.overhead, b.cycles.stall, b.calls)
            );
        }
        // A double-buffered output pays its write-back as the epilogue:
        // kept, that goes too (one tile: nothing overlaps).
        let dbl = Buffering { output: true, ..buf };
        p.set_resident_io(false, false);
        assert_eq!(p.evaluate([4, 1, 1], order, dbl).unwrap().cycles.total, 105.0);
        p.set_resident_io(false, true);
        assert_eq!(p.evaluate([4, 1, 1], order, dbl).unwrap().cycles.total, 84.0);
    }

    /// An addition with one input resident still loads the other: of its
    /// two input boxes (each 8 B: 20 + 2 cycles) one goes, with its bytes.
    #[test]
    fn a_resident_addition_input_drops_one_of_two_loads_by_hand() {
        let src = "target t {\n clock 100 MHz\n memory L2 { size 1000000 B }\n memory L1 { size 1000 B; double_buffer }\n dma L2 <-> L1 { bandwidth 4 B/cycle; setup 20 cycles; dims 3; overhead 1d 0 cycles, 2d 0 cycles, 3d 0 cycles; start \"s\"; wait \"w\" }\n unit cpu { host; macs 1/cycle; compute_in L2 }\n unit acc { macs 8/cycle; compute_in L1; call_overhead 30 cycles }\n pattern eltwise = add\n offload eltwise to acc call \"k\"\n}\n";
        let hw = match_dsl::check(src, "t.hwm").unwrap_or_else(|d| panic!("{d}"));
        let p = Problem::new(&hw, hw.unit("acc").unwrap(), hw.offloads.first(), Layer::add(8, 1, 1)).unwrap();
        let order = [Loop::K, Loop::OY, Loop::OX];
        let buf = Buffering::default();
        let all = p.evaluate([8, 1, 1], order, buf).unwrap();
        p.set_resident_io(true, false);
        let one = p.evaluate([8, 1, 1], order, buf).unwrap();
        assert_eq!(all.cycles.total - one.cycles.total, 22.0);
        assert_eq!(all.bytes_moved - one.bytes_moved, 8.0);
        assert_eq!((all.cycles.compute, all.calls), (one.cycles.compute, one.calls));
        // The compulsory input bytes halve too (8 of 16), the output stays.
        p.set_resident_io(false, false);
        let (act, _) = p.compulsory();
        p.set_resident_io(true, false);
        assert_eq!(act - p.compulsory().0, 8.0);
    }

    /// A dense layer of 8 inputs and 1 output with C split in two tiles of
    /// 4, by hand: DMA setup 20 cycles, 4 B/cycle; 8 MACs/cycle, call
    /// overhead 30; all single-buffered.
    #[test]
    fn split_c_costs_by_hand() {
        let src = "target t {\n clock 100 MHz\n memory L2 { size 1000000 B }\n memory L1 { size 100 B; double_buffer }\n dma L2 <-> L1 { bandwidth 4 B/cycle; setup 20 cycles; dims 3; overhead 1d 0 cycles, 2d 0 cycles, 3d 0 cycles; start \"s\"; wait \"w\" }\n unit cpu { host; macs 1/cycle; compute_in L2 }\n unit acc { macs 8/cycle; compute_in L1; call_overhead 30 cycles; partial_sums }\n pattern fc = dense\n offload fc to acc call \"k\"\n}\n";
        let hw = match_dsl::check(src, "t.hwm").unwrap_or_else(|d| panic!("{d}"));
        let p = Problem::new(&hw, hw.unit("acc").unwrap(), hw.offloads.first(), Layer::dense(1, 8)).unwrap();
        assert!(p.c_splittable());
        let order = [Loop::K, Loop::OY, Loop::OX];
        let buf = Buffering::default();
        // Whole C: input and weights 8 B each (20 + 2), compute 8 / 8 = 1,
        // overhead 30, output 1 B (20 + 0.25): 95.25.
        let whole = p.evaluate([1, 1, 1], order, buf).unwrap();
        assert_eq!(whole.cycles.total, 95.25);
        assert_eq!(whole.calls, 1);
        p.set_c_tile(4);
        assert!(p.c_split());
        // Two C tiles: each loads 4 B of input and of weights (20 + 1
        // each, serial), computes 4 / 8 = 0.5 plus the overhead 30; the
        // output is written once, after the second: 2 * 72.5 + 20.25.
        let e = p.evaluate([1, 1, 1], order, buf).unwrap();
        assert_eq!(e.calls, 2);
        assert_eq!(e.cycles.compute, 1.0);
        assert_eq!(e.cycles.overhead, 60.0);
        assert_eq!(e.cycles.transfer, 4.0 * 21.0 + 20.25);
        assert_eq!(e.cycles.total, 165.25);
        assert_eq!(e.bytes_moved, 4.0 * 4.0 + 1.0);
        // The floor is exact here (one order walks the steps).
        assert_eq!(p.floor([1, 1, 1]).unwrap().cycles(buf), 165.25);
        // Memory: input 4 + weights 4 + output 1 + the int32 accumulator 4.
        assert_eq!(p.acc_bytes(1, 1, 1), 4);
        assert_eq!(p.footprint([1, 1, 1], buf).unwrap().act, 13);
        p.set_c_tile(0);
        assert_eq!(p.footprint([1, 1, 1], buf).unwrap().act, 17);
    }

    /// The accumulator's traffic of a split C, by hand: a dense layer of
    /// 12 inputs and 4 outputs on a unit that reads or writes 2 partial
    /// sums per cycle; DMA setup 20 cycles, 4 B/cycle; 8 MACs/cycle, call
    /// overhead 30; all single-buffered.
    #[test]
    fn partial_sum_traffic_by_hand() {
        let src = "target t {\n clock 100 MHz\n memory L2 { size 1000000 B }\n memory L1 { size 1000 B; double_buffer }\n dma L2 <-> L1 { bandwidth 4 B/cycle; setup 20 cycles; dims 3; overhead 1d 0 cycles, 2d 0 cycles, 3d 0 cycles; start \"s\"; wait \"w\" }\n unit cpu { host; macs 1/cycle; compute_in L2 }\n unit acc { macs 8/cycle; compute_in L1; call_overhead 30 cycles; partial_sums 2/cycle }\n pattern fc = dense\n offload fc to acc call \"k\"\n}\n";
        let hw = match_dsl::check(src, "t.hwm").unwrap_or_else(|d| panic!("{d}"));
        assert_eq!(hw.unit("acc").unwrap().partial_sum_rate, Some(2.0));
        let p = Problem::new(&hw, hw.unit("acc").unwrap(), hw.offloads.first(), Layer::dense(4, 12)).unwrap();
        let order = [Loop::K, Loop::OY, Loop::OX];
        let buf = Buffering::default();
        // Whole C: no partial sums, nothing charged.
        assert_eq!(p.acc_cycles(4, 1, 1, true, true), 0.0);
        let whole = p.evaluate([4, 1, 1], order, buf).unwrap();
        // Input 12 B (20 + 3), weights 48 B (20 + 12), compute 48 / 8 = 6,
        // overhead 30, output 4 B (20 + 1): 112.
        assert_eq!(whole.cycles.total, 112.0);
        p.set_c_tile(4);
        // Three C tiles of 4: the first writes the 4 sums (4 / 2 = 2
        // cycles), the second reads and writes them (4), the last reads
        // them (2).
        assert_eq!(p.acc_cycles(4, 1, 1, true, false), 2.0);
        assert_eq!(p.acc_cycles(4, 1, 1, false, false), 4.0);
        assert_eq!(p.acc_cycles(4, 1, 1, false, true), 2.0);
        // Each step: input 4 B (20 + 1), weights 16 B (20 + 4), compute
        // 16 / 8 = 2 plus its accumulator cycles, overhead 30; the output
        // once (20 + 1): 3 * (21 + 24 + 2 + 30) + (2 + 4 + 2) + 21 = 260.
        let e = p.evaluate([4, 1, 1], order, buf).unwrap();
        assert_eq!(e.calls, 3);
        assert_eq!(e.cycles.compute, 6.0 + 8.0);
        assert_eq!(e.cycles.total, 260.0);
        // The floor is exact for this walk, and the C tile's floor counts
        // the same accumulator cycles: 2 * (3 - 1) * 4 / 2 = 8.
        assert_eq!(p.floor([4, 1, 1]).unwrap().cycles(buf), 260.0);
        assert!(p.c_tile_floor().unwrap() <= 260.0);
        assert!(p.c_tile_floor().unwrap() >= 6.0 + 8.0 + 3.0 * 30.0);
        // Without a rate the same split charges no accumulator traffic.
        let free = match_dsl::check(&src.replace("partial_sums 2/cycle", "partial_sums"), "t.hwm").unwrap();
        let q = Problem::new(&free, free.unit("acc").unwrap(), free.offloads.first(), Layer::dense(4, 12))
            .unwrap();
        q.set_c_tile(4);
        assert_eq!(q.evaluate([4, 1, 1], order, buf).unwrap().cycles.total, 252.0);
    }

    #[test]
    fn double_buffer_overlap() {
        // Call 100, overlapped transfer 60: hidden.
        assert_eq!(step_cycles(100.0, 0.0, 60.0), (100.0, 0.0, 0.0));
        // Call 100, overlapped 160: 60 of stall.
        assert_eq!(step_cycles(100.0, 0.0, 160.0), (160.0, 0.0, 60.0));
        // Serial transfers add.
        assert_eq!(step_cycles(100.0, 30.0, 0.0), (130.0, 30.0, 0.0));
    }

    #[test]
    fn rows_read_by_strided_windows() {
        // 1x1, stride 2: every other row.
        assert_eq!(read_extent(16, 2, 1, 1, 0, 32), 16);
        // 3x3, stride 2, padding 1: windows overlap, every row.
        assert_eq!(read_extent(16, 2, 3, 1, 1, 32), 32);
        // Padding rows are not input rows: 3 outputs of a 3-window, pad 1, on 3 rows.
        assert_eq!(read_extent(3, 1, 3, 1, 1, 3), 3);
        // Stride 3, window 1: rows 0, 3, 6, 9.
        assert_eq!(read_extent(4, 3, 1, 1, 0, 12), 4);
        // Dilation 2, window 3, 2 outputs: rows 0, 2, 4 and 1, 3, 5.
        assert_eq!(read_extent(2, 1, 3, 2, 0, 6), 6);
    }

    #[test]
    fn loop_classes() {
        let c = classes(10, 4);
        let v: Vec<(i64, i64, bool, bool)> = c.iter().map(|c| (c.count, c.extent, c.first, c.last)).collect();
        assert_eq!(v, [(1, 4, true, false), (1, 4, false, false), (1, 2, false, true)]);
        assert_eq!(classes(8, 8).len(), 1);
        let v: Vec<(i64, i64)> = classes(7, 2).iter().map(|c| (c.count, c.extent)).collect();
        assert_eq!(v, [(1, 2), (2, 2), (1, 1)]);
    }
}
