//! Tiled emission: code that follows a layer's chosen [`Schedule`].
//!
//! A layer whose unit computes from a memory other than the one the
//! tensors live in (e.g. L1 while the arena is in L2) runs as a loop over
//! its tiles, in the schedule's loop order: per step the input, weight and
//! output tiles move between the arena and static buffers of the compute
//! memory through the target's DMA (`start` / `wait` of its `dma` block),
//! and the portable kernels run on the tiles. Everything here is C text
//! plus the Rust enumeration ([`Nest`]) the C loop mirrors, which the
//! property tests replay.
//!
//! The contract with the platform (docs/hwm.md, "DMA functions"): the
//! header named by the target's `api { header }` declares
//!
//! ```c
//! void START(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows,
//!            uint32_t dst_stride, uint32_t src_stride, uint32_t planes,
//!            uint32_t dst_plane_stride, uint32_t src_plane_stride, int channel);
//! void WAIT(int channel);
//! ```
//!
//! `START` queues a copy of `planes` x `rows` x `bytes_per_row` bytes
//! (strides in bytes) on `channel`; `WAIT` returns once every copy queued
//! on `channel` is done. The generated code uses channel 0 for inputs, 1
//! for weights and 2 for outputs, never touches a buffer a queued copy
//! reads or writes before waiting for it, and waits for every channel
//! before a layer returns.
//!
//! Layers are emitted tiled only when the platform folder provides the DMA
//! functions (its headers name `start`); otherwise the layer keeps the
//! untiled code on the arena and its comment says why.
//!
//! Unit kernels: when the layer's offload rule names a `call` that the
//! platform headers declare (`void NAME(const mk_job_t *job)`, e.g.
//! targets/gap9/gap9_units.h), each tile's compute fills an `mk_job_t`
//! (match_kernels.h) and calls it instead of the portable kernels. The
//! weights are then stored pre-encoded per K tile in the rule's weight
//! layout (else the unit's; [`crate::layout`]), so each weight tile is one
//! contiguous DMA of the encoded bytes (cost/ `weight_tile_bytes` sees the
//! same bytes). A unit whose weights live in another memory (`weights_in`,
//! DIANA's WD / WA) gets its weight buffers in that memory's arena, loaded
//! through the DMA to it. Layers without a declared kernel keep the
//! portable path.
//!
//! Split C: when the schedule tiles the input channels of a convolution
//! (groups 1) or dense layer (a unit with `partial_sums`, cost/), the C
//! loop is the innermost: each step loads the C tile of the input and of
//! the (K, FY, FX, C) weights, the portable kernels overwrite the int32
//! accumulator on the first C tile and add into it on the later ones
//! (`mk_conv2d_acc`, `mk_dense_acc`), and after the last the chain (bias,
//! requantization, activation) runs on the accumulator and the output tile
//! is stored, once. On a unit that claims `partial_sums` with a kernel, the
//! tile's job carries the same: the accumulator buffer and whether its C
//! tile is the first and the last (`mk_job_t.acc`, `c_first`, `c_last`);
//! the unit's kernel (the target's C) starts, adds to or finishes the sums.
//! A split forced on another unit runs the portable kernels.
//!
//! Over-fetch: when the schedule moves a convolution's input as whole rows
//! (or whole planes, [`crate::cost::Fetch`]), each tile's input box spans
//! the full width (and height) of the input, and the kernel gets the
//! window its outputs read inside that box: a pointer to the window's first
//! pixel and the box's row pitch (`mk_conv2d_pitch`, `mk_job_t.x_pitch`);
//! the window's geometry (h, w, padding) is the one it has without
//! over-fetch, so the kernels see the same tile either way.

use super::ops::{self, per_channel_i32, per_channel_i32x, per_channel_x};
use super::{c_i64, comment, mk_dt, Cx};
use crate::cost::{Fetch, Loop};
use crate::ir::{DType, Graph, NodeId, Op, Requant};
use crate::layout::{self, Weights};
use crate::mapping::MappedLayer;
use crate::schedule::Schedule;
use anyhow::{anyhow, bail, ensure};
use match_dsl::model::{Dma, LayoutStep};
use match_dsl::HwModel;
use std::fmt::Write as _;

/// DMA channels of the generated code.
pub const CH_IN: u32 = 0;
pub const CH_W: u32 = 1;
pub const CH_OUT: u32 = 2;

/// Alignment of every tile buffer inside the compute memory's arena.
pub const ALIGN: u64 = 4;

/// A tile loop nest: extents and tile sizes of (K, OY, OX), loops outer to inner.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Nest {
    pub ext: [i64; 3],
    pub tile: [i64; 3],
    pub order: [Loop; 3],
    /// The input channels C and their tile: the innermost loop when the
    /// schedule splits C (tile < extent); `[0, 0]` (one step) otherwise.
    pub c: [i64; 2],
}

/// One step of a nest: (start, extent) of K, OY and OX, and which operands
/// the generated code loads at it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Step {
    pub k: (i64, i64),
    pub oy: (i64, i64),
    pub ox: (i64, i64),
    /// (start, extent) of the C tile ((0, 0) when C is whole).
    pub c: (i64, i64),
    pub load_input: bool,
    pub load_weights: bool,
    /// Whether the output tile is complete and written back (the last C tile).
    pub store: bool,
}

fn loop_index(l: Loop) -> usize {
    match l {
        Loop::K => 0,
        Loop::OY => 1,
        Loop::OX => 2,
    }
}

impl Nest {
    pub fn of(s: &Schedule, ext: [i64; 3]) -> anyhow::Result<Nest> {
        ensure!(s.order.len() == 3, "the schedule has {} tile loops", s.order.len());
        let tile = [s.tile.k, s.tile.oy, s.tile.ox];
        ensure!(tile.iter().all(|&t| t >= 1), "tile {tile:?}");
        Ok(Nest {
            ext,
            tile: [0, 1, 2].map(|i| tile[i].min(ext[i]).max(1)),
            order: [s.order[0], s.order[1], s.order[2]],
            c: [0, 0],
        })
    }

    /// Tiles of the C loop (1 when C is whole).
    pub fn c_trips(&self) -> i64 {
        let [e, t] = self.c;
        if t <= 0 {
            1
        } else {
            (e + t - 1) / t
        }
    }

    /// Tiles per loop (K, OY, OX).
    pub fn trips(&self) -> [i64; 3] {
        [0, 1, 2].map(|i| (self.ext[i] + self.tile[i] - 1) / self.tile[i])
    }

    /// Kernel calls: the (K, OY, OX) tiles times the C tiles.
    pub fn steps(&self) -> i64 {
        self.trips().iter().product::<i64>() * self.c_trips()
    }

    /// The tile of step `s`, decoded as the generated `_tile` function does:
    /// the innermost loop of the order varies fastest.
    pub fn tile_at(&self, s: i64) -> [(i64, i64); 3] {
        let n = self.trips();
        let [l0, l1, l2] = self.order.map(loop_index);
        let mut idx = [0i64; 3];
        idx[l2] = s % n[l2];
        let r = s / n[l2];
        idx[l1] = r % n[l1];
        idx[l0] = r / n[l1];
        [0, 1, 2].map(|i| {
            let start = idx[i] * self.tile[i];
            (start, self.tile[i].min(self.ext[i] - start))
        })
    }

    /// Every step, with the loads of the generated driver (`mt_run`): the
    /// input again when a coordinate it depends on changed (OY, OX, and K
    /// when `input_follows_k`), the weights when K changed.
    ///
    /// A split C is the innermost loop (`mt_c_tile`): both operands load at
    /// every C step, and the output is stored after the last C tile.
    pub fn walk(&self, input_follows_k: bool) -> Vec<Step> {
        let mut out = Vec::new();
        let mut prev: Option<([(i64, i64); 3], i64)> = None;
        let ct = self.c_trips();
        let [c_ext, c_tile] = self.c;
        for s in 0..self.steps() {
            let t = self.tile_at(s / ct);
            let c0 = (s % ct) * c_tile;
            let c = (c0, (c_ext - c0).min(c_tile));
            let (load_input, load_weights) = match prev {
                None => (true, true),
                Some((p, pc)) => (
                    (input_follows_k && p[0].0 != t[0].0) || p[1].0 != t[1].0 || p[2].0 != t[2].0 || pc != c0,
                    p[0].0 != t[0].0 || pc != c0,
                ),
            };
            let store = c.0 + c.1 >= c_ext;
            out.push(Step { k: t[0], oy: t[1], ox: t[2], c, load_input, load_weights, store });
            prev = Some((t, c0));
        }
        out
    }
}

/// Bytes of the tile buffers of a layer in the compute memory, and their
/// offsets there (each slot of a double buffer separately).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Layout {
    pub input: [u64; 2],
    pub weights: [u64; 2],
    pub output: [u64; 2],
    pub acc: u64,
    pub input_bytes: u64,
    pub weight_bytes: u64,
    pub output_bytes: u64,
    pub acc_bytes: u64,
    pub total: u64,
    /// Bytes of the weight buffers when they live in their own memory
    /// ([`TiledLayer::weights_memory`]; `weights` are offsets there).
    pub weights_total: u64,
}

fn align(x: u64) -> u64 {
    x.div_ceil(ALIGN) * ALIGN
}

/// The first (main) operator of a tiled layer.
#[derive(Clone, Debug)]
enum Main {
    Conv {
        h: i64,
        w: i64,
        c: i64,
        fy: i64,
        fx: i64,
        sy: i64,
        sx: i64,
        dy: i64,
        dx: i64,
        pt: i64,
        pl: i64,
        dw: bool,
    },
    Dense {
        rows: i64,
        c: i64,
    },
    Pool {
        h: i64,
        w: i64,
        ky: i64,
        kx: i64,
        sy: i64,
        sx: i64,
        pt: i64,
        pl: i64,
        global: bool,
    },
    Add,
}

/// A layer the tiled emitter can run, with its nest and buffers.
#[derive(Clone, Debug)]
pub struct TiledLayer {
    pub nest: Nest,
    pub layout: Layout,
    /// The compute memory and its DMA from the home memory.
    pub memory: String,
    pub dma: Dma,
    /// Whether the input tile follows K (channel-wise layers).
    pub input_follows_k: bool,
    pub double: [bool; 3],
    /// The input box each tile moves (a convolution's only; else the window).
    pub fetch: Fetch,
    main: Main,
    in_es: i64,
    out_es: i64,
    w_per_k: i64,
    /// Weight taps per output and input channel (FY * FX; 1 for dense).
    w_taps: i64,
    /// The unit's kernel the tiles call (`void NAME(const mk_job_t *job)`,
    /// the offload rule's `call`); `None`: the portable kernels.
    pub call: Option<String>,
    /// The weights pre-encoded per K tile in the unit's layout (the kernel
    /// path): each weight tile is one contiguous run.
    enc: Option<Encoding>,
    /// The memory of the weight tiles and its DMA, when the unit keeps its
    /// weights elsewhere than its activations (`weights_in`, DIANA WD / WA).
    pub weights_memory: Option<(String, Dma)>,
    /// Inter-layer residency ([`link_resident`]): the input tile is the
    /// producer's output buffer (the previous layer's, or the one before
    /// the reshapes between them), already in the compute memory (no
    /// load); the output tile stays in its buffer for the consumer (no
    /// store, and the platform is told it stays live: api role `keep`).
    /// An addition keeps one input resident (`resident_input`: 0 for `a`,
    /// 1 for `b`) as the first half of its input buffer and loads the other
    /// into the second half; with `b` resident it runs as `add(b, a)` with
    /// the inputs' parameters exchanged ([`crate::ir::AddKind::swapped`]).
    pub input_resident: bool,
    pub resident_input: usize,
    pub output_kept: bool,
}

/// How a layer's weights are encoded for its unit, per K tile.
#[derive(Clone, Debug)]
struct Encoding {
    steps: Vec<LayoutStep>,
    /// Weights per output channel as the layout sees them: (C / groups, FY, FX).
    cg: usize,
    fy: usize,
    fx: usize,
    bits: u32,
}

impl Encoding {
    fn bytes(&self, tk: i64) -> Result<u64, String> {
        layout::encoded_size(&self.steps, tk as usize, self.cg, self.fy, self.fx, self.bits).map(|b| b as u64)
    }
}

impl TiledLayer {
    /// The input box a tile moves: (start, extent) of (rows, columns,
    /// channels) in the input tensor (its window, or whole rows or planes
    /// under over-fetch), and the padding the tile's kernel call applies
    /// (top, left). Dense: the whole (1, rows, C).
    fn input_box(&self, t: &Step) -> ([(i64, i64); 3], [i64; 2]) {
        let (k, oy, ox) = (t.k, t.oy, t.ox);
        let win = |o: (i64, i64), s: i64, f: i64, d: i64, p: i64, full: i64| {
            let first = o.0 * s - p;
            let last = (o.0 + o.1 - 1) * s + (f - 1) * d - p + 1;
            let a = first.max(0);
            let b = last.min(full);
            ((a, (b - a).max(0)), a - first)
        };
        match &self.main {
            Main::Conv { h, w, c, fy, fx, sy, sx, dy, dx, pt, pl, dw } => {
                let (mut ry, py) = win(oy, *sy, *fy, *dy, *pt, *h);
                let (mut rx, px) = win(ox, *sx, *fx, *dx, *pl, *w);
                let ch = if *dw { k } else { self.c_range(t, *c) };
                // Over-fetch: the box the DMA moves (the kernel finds the
                // window inside it).
                if self.fetch >= Fetch::Rows {
                    rx = (0, *w);
                }
                if self.fetch == Fetch::Planes {
                    ry = (0, *h);
                }
                ([ry, rx, ch], [py, px])
            }
            Main::Pool { h, w, ky, kx, sy, sx, pt, pl, global } => {
                if *global {
                    return ([(0, *h), (0, *w), k], [0, 0]);
                }
                let (ry, py) = win(oy, *sy, *ky, 1, *pt, *h);
                let (rx, px) = win(ox, *sx, *kx, 1, *pl, *w);
                ([ry, rx, k], [py, px])
            }
            Main::Dense { rows, c } => ([(0, 1), (0, *rows), self.c_range(t, *c)], [0, 0]),
            Main::Add => ([oy, ox, k], [0, 0]),
        }
    }

    fn input_full(&self) -> [i64; 3] {
        match &self.main {
            Main::Conv { h, w, c, .. } => [*h, *w, *c],
            Main::Pool { h, w, .. } => [*h, *w, self.nest.ext[0]],
            Main::Dense { rows, c } => [1, *rows, *c],
            Main::Add => [self.nest.ext[1], self.nest.ext[2], self.nest.ext[0]],
        }
    }

    /// Whether the schedule splits C (an innermost C loop with an int32
    /// accumulator kept across its tiles).
    pub fn c_split(&self) -> bool {
        self.nest.c_trips() > 1
    }

    /// The channels of the input (and weights) a step reads: its C tile
    /// when C is split, else the whole `c`.
    fn c_range(&self, t: &Step, c: i64) -> (i64, i64) {
        if self.c_split() {
            t.c
        } else {
            (0, c)
        }
    }

    fn n_inputs(&self) -> u64 {
        if matches!(self.main, Main::Add) {
            2
        } else {
            1
        }
    }

    fn has_weights(&self) -> bool {
        matches!(self.main, Main::Conv { .. } | Main::Dense { .. })
    }

    /// Whether the layer loads an input: not when its only input is
    /// resident (an addition with one resident input loads the other).
    fn loads_input(&self) -> bool {
        !self.input_resident || self.n_inputs() > 1
    }

    /// An addition's graph inputs (0: `a`, 1: `b`) in the order of its
    /// input buffer and of the kernel's operands: the resident one first.
    fn add_operands(&self) -> [usize; 2] {
        if self.input_resident && self.resident_input == 1 {
            [1, 0]
        } else {
            [0, 1]
        }
    }

    /// Bytes of the buffers of step `t` (input boxes, weights, output, accumulator).
    pub fn step_bytes(&self, t: &Step) -> (u64, u64, u64, u64) {
        let (b, _) = self.input_box(t);
        let input = (b[0].1 * b[1].1 * b[2].1 * self.in_es) as u64 * self.n_inputs();
        let w = match &self.enc {
            _ if !self.has_weights() => 0,
            // A C tile of the (K, FY, FX, C) weights (bytes: split only for 8-bit weights).
            _ if self.c_split() => (t.k.1 * self.w_taps * t.c.1) as u64,
            Some(e) => e.bytes(t.k.1).unwrap_or(0),
            None => (t.k.1 * self.w_per_k) as u64,
        };
        let elems = (self.rows() * t.k.1 * t.oy.1 * t.ox.1) as u64;
        let out = elems * self.out_es as u64;
        let acc = if self.layout.acc_bytes > 0 { elems * 4 } else { 0 };
        (input, w, out, acc)
    }

    fn rows(&self) -> i64 {
        match &self.main {
            Main::Dense { rows, .. } => *rows,
            _ => 1,
        }
    }

    /// The output box of a step in the output tensor viewed as (outer, mid, inner).
    pub fn output_box(&self, t: &Step) -> ([i64; 3], [i64; 3], [i64; 3]) {
        match &self.main {
            Main::Dense { rows, .. } => ([1, *rows, self.nest.ext[0]], [0, 0, t.k.0], [1, *rows, t.k.1]),
            _ => (
                [self.nest.ext[1], self.nest.ext[2], self.nest.ext[0]],
                [t.oy.0, t.ox.0, t.k.0],
                [t.oy.1, t.ox.1, t.k.1],
            ),
        }
    }
}

/// One box the generated code moves by DMA at a step (one `mt_box` call):
/// into the compute memory (`to_compute`) or back, elements of `es` bytes,
/// a box of extents `ext` of a tensor of extents `full` (outer to inner).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub channel: u32,
    pub to_compute: bool,
    pub es: u64,
    pub full: [i64; 3],
    pub ext: [i64; 3],
}

impl TiledLayer {
    /// The `mt_box` calls of step `t`, as the generated `_load_in`,
    /// `_load_w` and `_store` functions issue them (the counters of
    /// [`crate::cost::predict_counters`]).
    pub fn transfers(&self, t: &Step) -> Vec<Transfer> {
        let mut v = Vec::new();
        if t.load_input && self.loads_input() {
            let (b, _) = self.input_box(t);
            let resident = self.input_resident.then_some(self.resident_input as u64);
            for _ in (0..self.n_inputs()).filter(|&i| Some(i) != resident) {
                v.push(Transfer {
                    channel: CH_IN,
                    to_compute: true,
                    es: self.in_es as u64,
                    full: self.input_full(),
                    ext: [b[0].1, b[1].1, b[2].1],
                });
            }
        }
        if t.load_weights && self.has_weights() {
            // Pre-encoded weights: one contiguous run per tile.
            let (full, ext) = match &self.enc {
                // A C tile: per output channel, FY * FX runs of its channels.
                _ if self.c_split() => {
                    ([self.nest.ext[0], self.w_taps, self.nest.c[0]], [t.k.1, self.w_taps, t.c.1])
                }
                Some(e) => {
                    let b = e.bytes(t.k.1).unwrap_or(0) as i64;
                    ([1, 1, b], [1, 1, b])
                }
                None => ([1, self.nest.ext[0], self.w_per_k], [1, t.k.1, self.w_per_k]),
            };
            v.push(Transfer { channel: CH_W, to_compute: true, es: 1, full, ext });
        }
        if t.store && !self.output_kept {
            let (full, _, ext) = self.output_box(t);
            v.push(Transfer { channel: CH_OUT, to_compute: false, es: self.out_es as u64, full, ext });
        }
        v
    }
}

fn shape4(s: &[usize]) -> Option<[i64; 4]> {
    (s.len() == 4).then(|| [s[0] as i64, s[1] as i64, s[2] as i64, s[3] as i64])
}

/// The unit kernel a layer's tiles would call: its offload rule's `call`,
/// unless the layer runs on the host unit (generic kernels).
pub fn unit_call<'a>(hw: &HwModel, layer: &'a MappedLayer) -> Option<&'a str> {
    let kernel = layer.kernel.as_deref()?;
    (!hw.unit(&layer.unit).is_some_and(|u| u.host)).then_some(kernel)
}

/// Whether the platform headers declare a unit kernel `name` (as a call:
/// `name(`).
pub fn platform_has_call(headers: &[String], name: &str) -> bool {
    let pat = format!("{name}(");
    headers.iter().any(|h| h.contains(&pat))
}

/// The offload rule behind a mapped layer (unit, pattern and call).
fn offload_of<'a>(hw: &'a HwModel, layer: &MappedLayer) -> Option<&'a match_dsl::model::Offload> {
    hw.offloads.iter().find(|o| {
        o.unit == layer.unit
            && Some(&o.kernel) == layer.kernel.as_ref()
            && layer.pattern.as_ref().is_none_or(|p| *p == o.pattern)
    })
}

/// Whether a layer's chain after its main operator is in the form a unit
/// job carries: bias?, requantize?, clip?, in this order.
fn job_chain(graph: &Graph, nodes: &[NodeId]) -> bool {
    let mut rank = 0;
    for &n in &nodes[1..] {
        let r = match graph.nodes[n].op {
            Op::BiasAdd => 1,
            Op::Requantize { .. } => 2,
            Op::Clip { .. } => 3,
            _ => return false,
        };
        if r <= rank {
            return false;
        }
        rank = r;
    }
    true
}

/// Why `layer` is not emitted tiled, or its tiling; the tiles call the
/// layer's unit kernel when it has one ([`unit_call`]).
pub fn plan_layer(graph: &Graph, hw: &HwModel, layer: &MappedLayer) -> Result<TiledLayer, String> {
    plan_layer_as(graph, hw, layer, unit_call(hw, layer))
}

/// Why `layer` is not emitted tiled, or its tiling with the tiles calling
/// `call` (`None`: the portable kernels).
pub fn plan_layer_as(
    graph: &Graph,
    hw: &HwModel,
    layer: &MappedLayer,
    call: Option<&str>,
) -> Result<TiledLayer, String> {
    let s = layer.schedule.as_ref().ok_or("no schedule")?;
    if s.from == s.to {
        return Err("untiled schedule".into());
    }
    let unit = hw.unit(&s.unit).ok_or("unknown unit")?;
    let call = call.filter(|_| job_chain(graph, &layer.nodes));
    let weights_memory = match unit.weights_in.as_deref().filter(|w| *w != s.to) {
        None => None,
        Some(_) if call.is_none() => {
            return Err("weights in another memory than the activations' tiles (and no unit kernel)".into())
        }
        Some(wm) => {
            let d = hw.dma(&s.from, wm).ok_or_else(|| format!("no DMA from {} to {wm}", s.from))?;
            Some((wm.to_string(), d.clone()))
        }
    };
    let dma = hw.dma(&s.from, &s.to).ok_or("no DMA")?.clone();
    if let Some((wm, d)) = &weights_memory {
        // The weight loads go through the shared DMA helpers (mt_cmd): the
        // weights' DMA must use the same functions and command limit.
        if d.start != dma.start || d.wait != dma.wait || d.max_bytes != dma.max_bytes {
            return Err(format!("the DMA to {wm} differs from the activations' (functions or limit)"));
        }
    }
    let mem = hw.memory(&s.to).ok_or("unknown memory")?;
    let nodes = &layer.nodes;
    let first = &graph.nodes[nodes[0]];
    let x = graph.tensor(*first.inputs.first().ok_or("no input")?);
    let out = graph.tensor(*first.outputs.first().ok_or("no output")?);
    let last = &graph.nodes[*nodes.last().ok_or("no nodes")?];
    let fin = graph.tensor(*last.outputs.first().ok_or("no output")?);
    let es = |d: DType| d.size() as i64;
    let (main, ext, w_per_k) = match &first.op {
        Op::Conv2d { stride, dilation, pad, groups, .. } => {
            let [n, h, w, c] = shape4(&x.shape).ok_or("conv input not rank 4")?;
            let [_, oh, ow, k] = shape4(&out.shape).ok_or("conv output not rank 4")?;
            let wt = graph.tensor(first.inputs[1]);
            let [_, fy, fx, cg] = shape4(&wt.shape).ok_or("conv weights not rank 4")?;
            let g = *groups as i64;
            let dw = g > 1 && g == c && g == k;
            if n != 1 || !(g == 1 || dw) {
                return Err("batch or grouping the tiled kernels do not split".into());
            }
            let main = Main::Conv {
                h,
                w,
                c,
                fy,
                fx,
                sy: stride[0] as i64,
                sx: stride[1] as i64,
                dy: dilation[0] as i64,
                dx: dilation[1] as i64,
                pt: pad[0] as i64,
                pl: pad[1] as i64,
                dw,
            };
            (main, [k, oh, ow], fy * fx * cg * es(wt.dtype))
        }
        Op::Dense { .. } => {
            let wt = graph.tensor(first.inputs[1]);
            if wt.shape.len() != 2 {
                return Err("dense weights not (K, C)".into());
            }
            let (k, c) = (wt.shape[0] as i64, wt.shape[1] as i64);
            let rows = x.elements() as i64 / c.max(1);
            (Main::Dense { rows, c }, [k, 1, 1], c * es(wt.dtype))
        }
        Op::AvgPool { kernel, stride, pad, .. }
        | Op::MaxPool { kernel, stride, pad }
        | Op::QLinearAvgPool { kernel, stride, pad, .. } => {
            let [n, h, w, c] = shape4(&x.shape).ok_or("pool input not rank 4")?;
            let [_, oh, ow, _] = shape4(&out.shape).ok_or("pool output not rank 4")?;
            if n != 1 {
                return Err("batch".into());
            }
            let main = Main::Pool {
                h,
                w,
                ky: kernel[0] as i64,
                kx: kernel[1] as i64,
                sy: stride[0] as i64,
                sx: stride[1] as i64,
                pt: pad[0] as i64,
                pl: pad[1] as i64,
                global: false,
            };
            (main, [c, oh, ow], 0)
        }
        Op::GlobalAvgPool => {
            let [n, h, w, c] = shape4(&x.shape).ok_or("pool input not rank 4")?;
            if n != 1 {
                return Err("batch".into());
            }
            (Main::Pool { h, w, ky: h, kx: w, sy: 1, sx: 1, pt: 0, pl: 0, global: true }, [c, 1, 1], 0)
        }
        Op::Add { .. } => {
            let b = graph.tensor(first.inputs[1]);
            if x.shape != out.shape || b.shape != out.shape || x.dtype != b.dtype {
                return Err("broadcasting or mixed-type addition".into());
            }
            let l = crate::mapping::layer_of(graph, nodes);
            if l.n != 1 || (l.k * l.oy * l.ox) as usize != out.elements() {
                return Err("batch".into());
            }
            (Main::Add, [l.k, l.oy, l.ox], 0)
        }
        _ => return Err(format!("no tiled kernel for {}", first.op.pattern_name())),
    };
    // The chain after the main operator: element-wise over channels.
    let mut prev = first.outputs[0];
    for &n in &nodes[1..] {
        let node = &graph.nodes[n];
        if !matches!(node.op, Op::BiasAdd | Op::Requantize { .. } | Op::Clip { .. } | Op::Cast) {
            return Err(format!("no tiled form of {} in a chain", node.op.pattern_name()));
        }
        if node.inputs.first() != Some(&prev) {
            return Err("the chain is not linear".into());
        }
        if let Op::BiasAdd = node.op {
            if !graph.tensor(node.inputs[1]).is_const() {
                return Err("bias is not a constant".into());
            }
        }
        // In place in the accumulator: never widening.
        if graph.tensor(node.outputs[0]).dtype.size() > graph.tensor(prev).dtype.size() {
            return Err("a widening step in the chain".into());
        }
        prev = node.outputs[0];
    }
    let l = crate::mapping::layer_of(graph, nodes);
    if [l.k.max(1), l.oy.max(1), l.ox.max(1)] != ext {
        return Err(format!("extents {ext:?} differ from the cost model's layer"));
    }
    if graph.tensor(prev).elements() != out.elements() {
        return Err("the chain changes the shape".into());
    }
    let mut nest = Nest::of(s, ext).map_err(|e| e.to_string())?;
    // A split C (cost/ `Problem::c_splittable`): the portable kernels
    // accumulate into the int32 accumulator across the C tiles.
    let (c_all, w_taps) = match &main {
        Main::Conv { c, fy, fx, dw: false, .. } => (*c, fy * fx),
        Main::Dense { c, .. } => (*c, 1),
        _ => (0, 1),
    };
    let mut call = call;
    if c_all > 0 && s.tile.c < c_all {
        if weights_memory.is_some() {
            return Err("a split C with the weights in another memory".into());
        }
        // A unit that claims `partial_sums` gets the accumulator and the
        // first / last C tile in its job (raw weights: an encoded layout
        // packs whole C per output channel); any other unit's kernels
        // requantize every call, so a split forced on it runs the portable
        // kernels, which accumulate across calls.
        let encoded = offload_of(hw, layer).is_some_and(|o| !hw.offload_weight_layout(o).is_empty());
        if !unit.partial_sums || encoded {
            call = None;
        }
        if s.tile.c < 1 || graph.tensor(first.inputs[1]).dtype.size() != 1 {
            return Err("a split C of weights wider than a byte".into());
        }
        nest.c = [c_all, s.tile.c];
    }
    let mut t = TiledLayer {
        nest,
        layout: Layout::default(),
        memory: s.to.clone(),
        dma,
        input_follows_k: !matches!(main, Main::Dense { .. }) && !matches!(main, Main::Conv { dw: false, .. }),
        double: [s.buffering.input, s.buffering.weights, s.buffering.output],
        fetch: if matches!(main, Main::Conv { .. }) { s.fetch } else { Fetch::Window },
        main,
        in_es: es(x.dtype),
        out_es: es(fin.dtype),
        w_per_k,
        w_taps,
        call: call.map(str::to_string),
        enc: None,
        weights_memory,
        input_resident: false,
        resident_input: 0,
        output_kept: false,
    };
    // The kernel path: weights pre-encoded in the unit's layout (an empty
    // layout is the IR's own bytes, already one contiguous run per K tile).
    if t.call.is_some() && t.has_weights() {
        let steps = offload_of(hw, layer).map(|o| hw.offload_weight_layout(o).to_vec()).unwrap_or_default();
        if !steps.is_empty() {
            let wt = graph.tensor(first.inputs[1]);
            let (cg, fy, fx) = match wt.shape[..] {
                [_, fy, fx, cg] => (cg, fy, fx),
                [_, c] => (c, 1, 1),
                _ => return Err("weights of an unexpected rank".into()),
            };
            let e = Encoding { steps, cg, fy, fx, bits: 8 * wt.dtype.size() as u32 };
            e.bytes(t.nest.tile[0]).map_err(|err| format!("the unit's weight layout: {err}"))?;
            t.enc = Some(e);
        }
    }
    // Buffers sized for the largest step.
    // The int32 accumulator: the portable path's for its chain, and every
    // split C's (kept across the C tiles); unit kernels otherwise keep
    // their own (PULP-NN requantizes per pixel, the accelerators in their
    // datapath).
    let chain = nodes.len() > 1;
    t.layout.acc_bytes = u64::from((chain && t.call.is_none()) || t.c_split());
    let mut mx = (0, 0, 0, 0);
    for st in t.nest.walk(t.input_follows_k) {
        let b = t.step_bytes(&st);
        mx = (mx.0.max(b.0), mx.1.max(b.1), mx.2.max(b.2), mx.3.max(b.3));
    }
    let l = &mut t.layout;
    (l.input_bytes, l.weight_bytes, l.output_bytes, l.acc_bytes) = mx;
    t.place_buffers(None);
    let l = &mut t.layout;
    if let Some((wm, _)) = &t.weights_memory {
        // The weight tiles in their own memory (a buffer of that memory).
        let a = align(l.weight_bytes);
        l.weights = [0, if t.double[1] { a } else { 0 }];
        l.weights_total = if t.double[1] { 2 * a } else { a };
        let m = hw.memory(wm).ok_or("unknown weights memory")?;
        if l.weights_total > m.usable() {
            return Err(format!(
                "its weight tiles ({} B) exceed the {} B usable of {wm}",
                l.weights_total,
                m.usable()
            ));
        }
    }
    if l.total > mem.usable() {
        return Err(format!(
            "its tile buffers ({} B) exceed the {} B usable of {}",
            l.total,
            mem.usable(),
            mem.name
        ));
    }
    Ok(t)
}

impl TiledLayer {
    /// Places the tile buffers in the compute memory's arena: the
    /// accumulator, the input, the weights (unless they live in their own
    /// memory) and the output, each slot of a double buffer separately,
    /// aligned to [`ALIGN`], in this order. With `input_at` (inter-layer
    /// residency, [`link_resident`]) the input is one buffer at that offset
    /// (the producer's output buffer; an addition's second input right
    /// after it) and every other buffer goes first-fit
    /// around it: at the next free offset below it where it fits, else
    /// after it; none overlaps it.
    fn place_buffers(&mut self, input_at: Option<u64>) {
        let separate_weights = self.weights_memory.is_some();
        let double = self.double;
        let l = &mut self.layout;
        let hole = input_at.map(|a| (a, a + align(l.input_bytes)));
        let mut off = 0u64;
        let mut end = hole.map_or(0, |h| h.1);
        let mut take = |bytes: u64| -> u64 {
            let b = align(bytes);
            if let Some((a, e)) = hole {
                if off < e && off + b > a {
                    off = e;
                }
            }
            let at = off;
            off += b;
            end = end.max(off);
            at
        };
        let mut place = |bytes: u64, double: bool| {
            let a = take(bytes);
            [a, if double { take(bytes) } else { a }]
        };
        l.acc = place(l.acc_bytes, false)[0];
        l.input = match input_at {
            Some(a) => [a, a],
            None => place(l.input_bytes, double[0]),
        };
        if !separate_weights {
            l.weights = place(l.weight_bytes, double[1]);
        }
        l.output = place(l.output_bytes, double[2]);
        l.total = end;
    }

    /// Whether the (single) step's input box is the whole input tensor.
    fn input_is_whole(&self) -> bool {
        let full = self.input_full();
        self.nest.walk(self.input_follows_k).iter().all(|st| {
            let (b, _) = self.input_box(st);
            (0..3).all(|d| b[d] == (0, full[d]))
        })
    }
}

/// Inter-layer residency: whether the output of layer `pl` (tiled as `pt`)
/// can stay in the compute memory as the input of a later layer `ql`
/// (tiled as `qt`), and if so the consumer's buffers laid out around the
/// producer's output buffer (its input is that buffer), with the index of
/// the input it is (0, or 1 for an addition's `b`). `between` are the
/// layers that run between the two (none for consecutive layers). The
/// conditions:
///
/// - both tile from the same home memory into the same compute memory
///   through the same DMA, each in one step (no K, OY, OX or C split), so
///   the producer's output buffer holds the whole tensor packed in the home
///   memory's layout, as a load of the whole tensor would leave it;
/// - every layer between them is a code-less reshape on the way from one
///   to the other: it runs untiled (it moves nothing in or out of the
///   compute memory), each of its nodes reshapes the tensor (the
///   producer's last output, then the previous reshape's output) and is
///   its only reader, and the tensor is not a graph output; the memory plan gives a
///   reshape's output its input's bytes (plan.rs), so the reshaped tensor
///   a whole-tensor load would bring is the same bytes in the same order;
/// - no layout conversion on the way (the consumer's and every reshape's
///   `conversion_cycles` are 0): the consumer reads the bytes in the layout
///   the producer wrote them, and a reshape is free only in the model's
///   own element order (over a CHW output a flattening is another order);
/// - the consumer's first operator reads that tensor as its only
///   activation input, or as one of an addition's two (the other is
///   loaded: the addition's input buffer holds the resident input first,
///   at the producer's buffer, and the other right after it, the unit
///   kernels' contract; with `b` resident the addition runs as `add(b, a)`
///   with the inputs' parameters exchanged), its single step's input box
///   is the whole tensor (no window that skips rows or columns) and its
///   input buffer has the same bytes (an addition: per input);
/// - the tensor the consumer reads is not a graph output and has no other
///   reader (the consumer's first node reads it once);
/// - the consumer's buffers laid around it, plus `extra` bytes (its
///   unit's scratch, which the cost model counts in the footprint), fit
///   the usable bytes of the compute memory.
///
/// Nothing else runs between the producer's kernel and the consumer's:
/// the reshapes between them emit no code, only the platform's `buffer`
/// and `keep` calls that hand the kept bytes on ([`passed_through`]).
#[allow(clippy::too_many_arguments)]
pub fn link_resident(
    graph: &Graph,
    hw: &HwModel,
    pl: &MappedLayer,
    pt: &TiledLayer,
    between: &[MappedLayer],
    ql: &MappedLayer,
    qt: &TiledLayer,
    extra: u64,
) -> Result<(Layout, usize), String> {
    let (Some(ps), Some(qs)) = (pl.schedule.as_ref(), ql.schedule.as_ref()) else {
        return Err("not scheduled".into());
    };
    if ps.from != qs.from || pt.memory != qt.memory || pt.dma != qt.dma {
        return Err("other memories or DMA".into());
    }
    if pt.nest.steps() != 1 || qt.nest.steps() != 1 {
        return Err("more than one tile".into());
    }
    let converts = |l: &MappedLayer| l.schedule.as_ref().is_some_and(|s| s.conversion_cycles > 0.0);
    if converts(ql) || between.iter().any(converts) {
        return Err("a layout conversion on the way".into());
    }
    if between.iter().any(|l| l.schedule.as_ref().is_some_and(|s| s.from != s.to)) {
        return Err("a layer between them tiles".into());
    }
    let mut y = *graph.nodes[*pl.nodes.last().ok_or("no nodes")?].outputs.first().ok_or("no output")?;
    for &n in between.iter().flat_map(|l| &l.nodes) {
        let node = &graph.nodes[n];
        if !matches!(node.op, Op::Reshape) || node.inputs != [y] || node.outputs.len() != 1 {
            return Err("a layer between them is not a reshape of the output".into());
        }
        if graph.outputs.contains(&y) || graph.consumers(y) != [n] {
            return Err("the output has another reader or is a graph output".into());
        }
        y = node.outputs[0];
    }
    let first = &graph.nodes[*ql.nodes.first().ok_or("no nodes")?];
    // Which activation input it is: the only one, or `a` or `b` of an addition.
    let n_in = qt.n_inputs() as usize;
    let Some(slot) = first.inputs.iter().take(n_in).position(|&t| t == y) else {
        return Err("the consumer does not read the output as an activation input".into());
    };
    if graph.outputs.contains(&y) {
        return Err("a graph output".into());
    }
    let readers = graph.consumers(y);
    if readers != [ql.nodes[0]] || first.inputs.iter().filter(|&&t| t == y).count() != 1 {
        return Err("another reader".into());
    }
    // An addition's input buffer holds its two inputs, each the whole
    // tensor, the resident one first: at the producer's buffer.
    let share = qt.layout.input_bytes / n_in as u64;
    if !qt.input_is_whole()
        || qt.in_es != pt.out_es
        || share * n_in as u64 != qt.layout.input_bytes
        || share != pt.layout.output_bytes
    {
        return Err("the input tile is not the whole output".into());
    }
    let mut q = qt.clone();
    q.place_buffers(Some(pt.layout.output[0]));
    let mem = hw.memory(&qt.memory).ok_or("unknown memory")?;
    if q.layout.total + extra > mem.usable() {
        return Err(format!(
            "its buffers around the kept output ({} B + {extra} B scratch) exceed the {} B usable",
            q.layout.total,
            mem.usable()
        ));
    }
    Ok((q.layout, slot))
}

/// The residency pass over the layers in execution order: for each layer
/// `i` where `want(i)` gives the index `j` of its consumer and the scratch
/// bytes of layer `j` (`None`: not asked), links `i` to `j` (the layers
/// between are the reshapes [`link_resident`] passes through) when
/// [`link_resident`] holds on their plans (as relaid by the links before:
/// chains are greedy), marks them and lays out the consumer's buffers.
/// Returns the linked `(i, j)`.
pub fn link_all(
    graph: &Graph,
    hw: &HwModel,
    layers: &[MappedLayer],
    plans: &mut [Option<TiledLayer>],
    want: impl Fn(usize) -> Option<(usize, u64)>,
) -> Vec<(usize, usize)> {
    let mut linked = Vec::new();
    let n = plans.len().min(layers.len());
    for i in 0..n.saturating_sub(1) {
        let Some((j, extra)) = want(i).filter(|&(j, _)| j > i && j < n) else { continue };
        let (a, b) = plans.split_at_mut(j);
        let (Some(pt), Some(qt)) = (a[i].as_mut(), b[0].as_mut()) else { continue };
        let between = &layers[i + 1..j];
        if let Ok((layout, slot)) = link_resident(graph, hw, &layers[i], pt, between, &layers[j], qt, extra) {
            pt.output_kept = true;
            qt.input_resident = true;
            qt.resident_input = slot;
            qt.layout = layout;
            linked.push((i, j));
        }
    }
    linked
}

/// Per layer, the bytes `(offset, bytes)` of the compute memory it hands on
/// unread: a reshape between a producer whose output buffer is kept
/// (`output_kept`, linked by [`link_all`] to the consumer `output_to`
/// names) and that consumer. It runs no code, but the platform sees a
/// layer: it declares those bytes as its buffer and keeps them for the
/// next layer (api roles `buffer` and `keep`), as the producer did, or the
/// emulation scrubs them at its end.
pub fn passed_through(layers: &[MappedLayer], plans: &[Option<TiledLayer>]) -> Vec<Option<(u64, u64)>> {
    let mut passed = vec![None; layers.len()];
    for (i, layer) in layers.iter().enumerate() {
        let Some(p) = plans.get(i).and_then(|p| p.as_ref()).filter(|p| p.output_kept) else { continue };
        let Some(j) = layer.schedule.as_ref().and_then(|s| s.output_to) else { continue };
        for slot in passed.iter_mut().take(j).skip(i + 1) {
            *slot = Some((p.layout.output[0], p.layout.output_bytes));
        }
    }
    passed
}

/// Whether the platform headers (name, text) declare the DMA `start` and `wait`.
pub fn platform_has_dma(headers: &[String], dma_names: &[(&str, &str)]) -> bool {
    !dma_names.is_empty()
        && dma_names
            .iter()
            .all(|(s, w)| headers.iter().any(|h| h.contains(s)) && headers.iter().any(|h| h.contains(w)))
}

/// The C helpers shared by the tiled layers (written once into `<model>.c`).
pub fn helpers(dma: &Dma) -> String {
    let max = dma.max_bytes.unwrap_or(0).min(u32::MAX as u64);
    format!(
        r#"/* Tiled execution (match-core/src/emit/tiled.rs). DMA {from} <-> {to}:
 * {start} / {wait}, at most {dims} strided dimension(s) per command,
 * commands split at {maxs}. */
#define MT_DMA_DIMS {dims}
#define MT_DMA_MAX {max_c}u
#define MT_CH_IN {CH_IN}
#define MT_CH_W {CH_W}
#define MT_CH_OUT {CH_OUT}
/* Tests only: -DMT_TEST_DROP_WAIT=<channel> leaves out the wait for that
 * channel's loads (a deliberately broken schedule the emulation catches). */
#ifndef MT_TEST_DROP_WAIT
#define MT_TEST_DROP_WAIT (-1)
#endif

typedef struct {{
    int32_t k0, tk, y0, ty, x0, tx;
    int32_t c0, tc; /* the C tile of a split C (else 0, 0) */
}} mt_tile_t;

static void mt_issue(int to_l1, uint8_t *l1, uint8_t *l2, uint32_t run, uint32_t rows, uint32_t planes,
                     uint32_t l1_rs, uint32_t l2_rs, uint32_t l1_ps, uint32_t l2_ps, int ch)
{{
    if (to_l1) {{
        {start}(l1, l2, run, rows, l1_rs, l2_rs, planes, l1_ps, l2_ps, ch);
    }} else {{
        {start}(l2, l1, run, rows, l2_rs, l1_rs, planes, l2_ps, l1_ps, ch);
    }}
}}

/* One command of at most MT_DMA_DIMS dimensions; over MT_DMA_MAX bytes it
 * is split by whole planes, else whole rows, else row pieces (cost/dma.rs
 * split_command, the cost model's and counters' mirror of this code). */
static void mt_cmd(int to_l1, uint8_t *l1, uint8_t *l2, uint32_t run, uint32_t rows, uint32_t planes,
                   uint32_t l1_rs, uint32_t l2_rs, uint32_t l1_ps, uint32_t l2_ps, int ch)
{{
    uint32_t p, r, b, per;
    if (MT_DMA_MAX == 0u || run * rows * planes <= MT_DMA_MAX) {{
        mt_issue(to_l1, l1, l2, run, rows, planes, l1_rs, l2_rs, l1_ps, l2_ps, ch);
    }} else if (run * rows <= MT_DMA_MAX) {{
        per = MT_DMA_MAX / (run * rows);
        for (p = 0; p < planes; p += per) {{
            mt_issue(to_l1, l1 + p * l1_ps, l2 + p * l2_ps, run, rows, planes - p < per ? planes - p : per,
                     l1_rs, l2_rs, l1_ps, l2_ps, ch);
        }}
    }} else if (run <= MT_DMA_MAX) {{
        per = MT_DMA_MAX / run;
        for (p = 0; p < planes; p++) {{
            for (r = 0; r < rows; r += per) {{
                mt_issue(to_l1, l1 + p * l1_ps + r * l1_rs, l2 + p * l2_ps + r * l2_rs, run,
                         rows - r < per ? rows - r : per, 1u, l1_rs, l2_rs, l1_ps, l2_ps, ch);
            }}
        }}
    }} else {{
        for (p = 0; p < planes; p++) {{
            for (r = 0; r < rows; r++) {{
                for (b = 0; b < run; b += MT_DMA_MAX) {{
                    mt_issue(to_l1, l1 + p * l1_ps + r * l1_rs + b, l2 + p * l2_ps + r * l2_rs + b,
                             run - b < MT_DMA_MAX ? run - b : MT_DMA_MAX, 1u, 1u, l1_rs, l2_rs, l1_ps, l2_ps, ch);
                }}
            }}
        }}
    }}
}}

/* Moves the box (e0, e1, e2) at (o0, o1, o2) of a tensor of extents
 * (f0, f1, f2) in the home memory (elements of es bytes, outer to inner)
 * to or from a packed buffer in the compute memory. Full inner dimensions
 * merge into one contiguous run and outer dimensions of extent 1 vanish;
 * dimensions beyond MT_DMA_DIMS become one command per index (cost/dma.rs
 * box_commands mirrors this code). */
static void mt_box(int to_l1, uint8_t *l1, const void *home, int32_t es, int32_t f1, int32_t f2,
                   int32_t o0, int32_t o1, int32_t o2, int32_t e0, int32_t e1, int32_t e2, int ch)
{{
    uint8_t *l2 = (uint8_t *)(uintptr_t)home + (uint32_t)(((o0 * f1 + o1) * f2 + o2) * es);
    uint32_t n[2], gs[2], ls[2], run = (uint32_t)(e2 * es), i, j;
    int nd = 0;
    if (e0 <= 0 || e1 <= 0 || e2 <= 0) {{
        return;
    }}
    if (e2 == f2) {{
        run *= (uint32_t)e1;
        if (e1 == f1) {{
            run *= (uint32_t)e0;
        }} else if (e0 > 1) {{
            n[nd] = (uint32_t)e0; gs[nd] = (uint32_t)(f1 * f2 * es); ls[nd] = (uint32_t)(e1 * e2 * es); nd++;
        }}
    }} else {{
        if (e0 > 1) {{
            n[nd] = (uint32_t)e0; gs[nd] = (uint32_t)(f1 * f2 * es); ls[nd] = (uint32_t)(e1 * e2 * es); nd++;
        }}
        if (e1 > 1) {{
            n[nd] = (uint32_t)e1; gs[nd] = (uint32_t)(f2 * es); ls[nd] = (uint32_t)(e2 * es); nd++;
        }}
    }}
    if (nd == 0) {{
        mt_cmd(to_l1, l1, l2, run, 1u, 1u, run, run, run, run, ch);
    }} else if (nd == 1) {{
        if (MT_DMA_DIMS >= 2) {{
            mt_cmd(to_l1, l1, l2, run, n[0], 1u, ls[0], gs[0], ls[0] * n[0], gs[0] * n[0], ch);
        }} else {{
            for (i = 0; i < n[0]; i++) {{
                mt_cmd(to_l1, l1 + i * ls[0], l2 + i * gs[0], run, 1u, 1u, run, run, run, run, ch);
            }}
        }}
    }} else if (MT_DMA_DIMS >= 3) {{
        mt_cmd(to_l1, l1, l2, run, n[1], n[0], ls[1], gs[1], ls[0], gs[0], ch);
    }} else if (MT_DMA_DIMS == 2) {{
        for (i = 0; i < n[0]; i++) {{
            mt_cmd(to_l1, l1 + i * ls[0], l2 + i * gs[0], run, n[1], 1u, ls[1], gs[1], ls[0], gs[0], ch);
        }}
    }} else {{
        for (i = 0; i < n[0]; i++) {{
            for (j = 0; j < n[1]; j++) {{
                mt_cmd(to_l1, l1 + i * ls[0] + j * ls[1], l2 + i * gs[0] + j * gs[1], run, 1u, 1u, run, run,
                       run, run, ch);
            }}
        }}
    }}
}}

/* A tiled layer: its steps, and per step its tile, loads, kernels and store. */
typedef struct {{
    int32_t steps;
    void (*tile)(int32_t s, mt_tile_t *t);
    /* NULL: the input is resident (its producer's output buffer) */
    void (*load_in)(const mt_tile_t *t, uint8_t *buf);
    void (*load_w)(const mt_tile_t *t, uint8_t *buf); /* NULL: no weights */
    void (*compute)(const mt_tile_t *t, const uint8_t *in, const uint8_t *w, uint8_t *out);
    /* NULL: the output stays in its buffer for its consumer */
    void (*store)(const mt_tile_t *t, const uint8_t *out);
    int input_follows_k;
    uint8_t *in_buf[2], *w_buf[2], *out_buf[2]; /* equal slots: single buffered */
    int db_in, db_w, db_out;
    /* A split C: the innermost loop, c_trips tiles of c_tile of c_ext
     * channels (1, 0, 0: whole C). */
    int32_t c_trips, c_tile, c_ext;
}} mt_layer_t;

/* Step s: its (K, OY, OX) tile and its C tile (innermost). */
static void mt_c_tile(const mt_layer_t *L, int32_t s, mt_tile_t *t)
{{
    int32_t ci = s % L->c_trips;
    L->tile(s / L->c_trips, t);
    t->c0 = ci * L->c_tile;
    t->tc = L->c_ext - t->c0 < L->c_tile ? L->c_ext - t->c0 : L->c_tile;
}}

static int mt_in_changed(const mt_layer_t *L, const mt_tile_t *a, const mt_tile_t *b)
{{
    return (L->input_follows_k && a->k0 != b->k0) || a->y0 != b->y0 || a->x0 != b->x0 || a->c0 != b->c0;
}}

/* The driver: tiles in the schedule's order (the layer's tile function);
 * an operand loads again only when a coordinate it depends on changes;
 * a double-buffered operand's next tile loads while the current one
 * computes (ping-pong between its two slots); a double-buffered output
 * stores while the next tile computes. A split C runs innermost: inputs
 * and weights load per C tile, the output stores after the last one. */
static void mt_run(const mt_layer_t *L)
{{
    mt_tile_t t, next, prev = {{0, 0, 0, 0, 0, 0, 0, 0}};
    int32_t s, o = 0;
    int in_slot = 0, w_slot = 0, in_pre = 0, w_pre = 0;
    for (s = 0; s < L->steps; s++) {{
        int need_in, need_w;
        mt_c_tile(L, s, &t);
        need_in = L->load_in != NULL && (s == 0 || mt_in_changed(L, &prev, &t));
        need_w = L->load_w != NULL && (s == 0 || prev.k0 != t.k0 || prev.c0 != t.c0);
        if (need_in) {{
            if (in_pre) {{
                in_slot ^= 1;
            }} else {{
                L->load_in(&t, L->in_buf[in_slot]);
            }}
            in_pre = 0;
            if (MT_TEST_DROP_WAIT != MT_CH_IN) {{
                {wait}(MT_CH_IN);
            }}
        }}
        if (need_w) {{
            if (w_pre) {{
                w_slot ^= 1;
            }} else {{
                L->load_w(&t, L->w_buf[w_slot]);
            }}
            w_pre = 0;
            if (MT_TEST_DROP_WAIT != MT_CH_W) {{
                {wait}(MT_CH_W);
            }}
        }}
        if (s + 1 < L->steps && (L->db_in || L->db_w)) {{
            mt_c_tile(L, s + 1, &next);
            if (L->db_in && L->load_in != NULL && mt_in_changed(L, &t, &next)) {{
                L->load_in(&next, L->in_buf[in_slot ^ 1]);
                in_pre = 1;
            }}
            if (L->db_w && L->load_w != NULL && (t.k0 != next.k0 || t.c0 != next.c0)) {{
                L->load_w(&next, L->w_buf[w_slot ^ 1]);
                w_pre = 1;
            }}
        }}
#ifdef MT_TILE_HOOK
        /* The platform checks (and counts) the tile's kernel call. */
        MT_TILE_HOOK(L->in_buf[in_slot], L->load_w != NULL ? L->w_buf[w_slot] : NULL, L->out_buf[o & 1]);
#endif
        L->compute(&t, L->in_buf[in_slot], L->w_buf[w_slot], L->out_buf[o & 1]);
        if (t.c0 + t.tc >= L->c_ext && L->store != NULL) {{
            if (L->db_out) {{
                {wait}(MT_CH_OUT);
            }}
            L->store(&t, L->out_buf[o & 1]);
            if (!L->db_out) {{
                {wait}(MT_CH_OUT);
            }}
            o++;
        }}
        prev = t;
    }}
    {wait}(MT_CH_OUT);
}}

"#,
        from = dma.from,
        to = dma.to,
        start = dma.start,
        wait = dma.wait,
        dims = dma.dims.max(1),
        maxs = if max == 0 { "no size".to_string() } else { format!("{max} B") },
        // No limit: the largest command (a 0 would leave `x < MT_DMA_MAX`
        // comparisons that -Wtype-limits rejects).
        max_c = if max == 0 { u64::from(u32::MAX) } else { max },
    )
}

/// The C of a tiled layer `fname`: its step functions and its body (a call
/// of the driver). `l1` is the C name of the compute memory's arena.
pub(crate) fn layer(
    cx: &mut Cx,
    graph: &Graph,
    nodes: &[NodeId],
    t: &TiledLayer,
    fname: &str,
    l1: &str,
) -> anyhow::Result<(String, String, usize)> {
    let mut f = String::new();
    let n = &t.nest;
    let trips = n.trips();
    let [l0, l1i, l2] = n.order.map(loop_index);
    let names = ["k0", "y0", "x0"];
    let ext = ["tk", "ty", "tx"];
    // tile
    let _ = writeln!(f, "static void {fname}_tile(int32_t s, mt_tile_t *t)\n{{\n    int32_t i[3];");
    let _ = writeln!(f, "    i[{l2}] = s % {};\n    s /= {};", trips[l2], trips[l2]);
    let _ = writeln!(f, "    i[{l1i}] = s % {};\n    i[{l0}] = s / {};", trips[l1i], trips[l1i]);
    for d in 0..3 {
        let _ = writeln!(
            f,
            "    t->{} = i[{d}] * {};\n    t->{} = {} - t->{} < {} ? {} - t->{} : {};",
            names[d], n.tile[d], ext[d], n.ext[d], names[d], n.tile[d], n.ext[d], names[d], n.tile[d]
        );
    }
    let _ = writeln!(f, "}}\n");

    let first = &graph.nodes[nodes[0]];
    // A resident input is read in the compute memory (no load_in): it may
    // have no arena place.
    let x_ptr = if t.input_resident { "NULL".to_string() } else { cx.ptr(first.inputs[0])? };
    let [f0, f1, f2] = t.input_full();
    // Input box in C (matching TiledLayer::input_box).
    let split = t.c_split();
    let box_c = |main: &Main| -> String {
        let win = |o: &str, e: &str, s: i64, fk: i64, d: i64, p: i64, full: i64, v: &str| {
            format!(
                "    {{\n        int32_t a = {o} * {s} - {p}, b = ({o} + {e} - 1) * {s} + {} - {p} + 1;\n        {v}p = a < 0 ? -a : 0;\n        {v}0 = a < 0 ? 0 : a;\n        {v}n = (b > {full} ? {full} : b) - {v}0;\n    }}\n",
                (fk - 1) * d
            )
        };
        match main {
            Main::Conv { h, w, c, fy, fx, sy, sx, dy, dx, pt, pl, dw } => {
                let mut s = win("t->y0", "t->ty", *sy, *fy, *dy, *pt, *h, "ry");
                s += &win("t->x0", "t->tx", *sx, *fx, *dx, *pl, *w, "rx");
                if *dw {
                    s += "    c0 = t->k0;\n    cn = t->tk;\n";
                } else if split {
                    s += "    c0 = t->c0;\n    cn = t->tc;\n";
                } else {
                    s += &format!("    c0 = 0;\n    cn = {c};\n");
                }
                s
            }
            Main::Pool { h, w, ky, kx, sy, sx, pt, pl, global } => {
                if *global {
                    format!("    ry0 = 0;\n    ryn = {h};\n    ryp = 0;\n    rx0 = 0;\n    rxn = {w};\n    rxp = 0;\n    c0 = t->k0;\n    cn = t->tk;\n")
                } else {
                    let mut s = win("t->y0", "t->ty", *sy, *ky, 1, *pt, *h, "ry");
                    s += &win("t->x0", "t->tx", *sx, *kx, 1, *pl, *w, "rx");
                    s + "    c0 = t->k0;\n    cn = t->tk;\n"
                }
            }
            Main::Dense { rows, c } => format!("    ry0 = 0;\n    ryn = {rows};\n    ryp = 0;\n    rx0 = 0;\n    rxn = {c};\n    rxp = 0;\n    c0 = 0;\n    cn = 0;\n"),
            Main::Add => "    ry0 = t->y0;\n    ryn = t->ty;\n    ryp = 0;\n    rx0 = t->x0;\n    rxn = t->tx;\n    rxp = 0;\n    c0 = t->k0;\n    cn = t->tk;\n".into(),
        }
    };
    let mut decl = "    int32_t ry0, ryn, ryp, rx0, rxn, rxp, c0, cn;\n".to_string();
    let mut bx = box_c(&t.main);
    let mut silence = "    (void)t;\n    (void)ry0;\n    (void)ryn;\n    (void)ryp;\n    (void)rx0;\n    (void)rxn;\n    (void)rxp;\n    (void)c0;\n    (void)cn;\n".to_string();
    // Over-fetch: the box the DMA moves (rows by0.., columns bx0..), the
    // window (ry0, rx0, ...) inside it (TiledLayer::input_box).
    let fetched = t.fetch != Fetch::Window;
    if fetched {
        let (by, bxs) = match t.fetch {
            Fetch::Planes => (format!("0;\n    byn = {f0}"), format!("0;\n    bxn = {f1}")),
            _ => ("ry0;\n    byn = ryn".to_string(), format!("0;\n    bxn = {f1}")),
        };
        decl += "    int32_t by0, byn, bx0, bxn;\n";
        bx += &format!("    by0 = {by};\n    bx0 = {bxs};\n");
        silence += "    (void)by0;\n    (void)byn;\n    (void)bx0;\n    (void)bxn;\n";
    }
    let (decl, bx, silence) = (decl.as_str(), bx.as_str(), silence.as_str());
    // The window's first byte in the input buffer, and the buffer's row
    // pitch in pixels.
    let (in_at, pitch) = if fetched {
        (format!("in + ((ry0 - by0) * bxn + (rx0 - bx0)) * cn * {}", t.in_es), "bxn")
    } else {
        ("in".to_string(), "rxn")
    };
    // load_in (none when the input is resident: the tile reads its
    // producer's output buffer in place; an addition loads its other input)
    let load_in_at = f.len();
    let _ =
        writeln!(f, "static void {fname}_load_in(const mt_tile_t *t, uint8_t *buf)\n{{\n{decl}{bx}{silence}");
    let in_es = t.in_es;
    match &t.main {
        Main::Dense { rows, c } if split => {
            let _ = writeln!(
                f,
                "    mt_box(1, buf, {x_ptr}, {in_es}, {rows}, {c}, 0, 0, t->c0, 1, {rows}, t->tc, MT_CH_IN);"
            );
        }
        Main::Dense { rows, c } => {
            let _ = writeln!(
                f,
                "    mt_box(1, buf, {x_ptr}, {in_es}, {rows}, {c}, 0, 0, 0, 1, {rows}, {c}, MT_CH_IN);"
            );
        }
        Main::Add => {
            // The operands in buffer order; a resident first one is there.
            let [p0, p1] = t.add_operands().map(|i| cx.ptr(first.inputs[i]));
            if !t.input_resident {
                let _ = writeln!(
                    f,
                    "    mt_box(1, buf, {}, {in_es}, {f1}, {f2}, ry0, rx0, c0, ryn, rxn, cn, MT_CH_IN);",
                    p0?
                );
            }
            let _ = writeln!(
                f,
                "    mt_box(1, buf + ryn * rxn * cn * {in_es}, {}, {in_es}, {f1}, {f2}, ry0, rx0, c0, ryn, rxn, cn, MT_CH_IN);",
                p1?
            );
        }
        _ if fetched => {
            let _ = writeln!(
                f,
                "    mt_box(1, buf, {x_ptr}, {in_es}, {f1}, {f2}, by0, bx0, c0, byn, bxn, cn, MT_CH_IN);"
            );
        }
        _ => {
            let _ = writeln!(
                f,
                "    mt_box(1, buf, {x_ptr}, {in_es}, {f1}, {f2}, ry0, rx0, c0, ryn, rxn, cn, MT_CH_IN);"
            );
        }
    }
    let _ = writeln!(f, "}}\n");
    if !t.loads_input() {
        f.truncate(load_in_at);
    }
    // load_w
    if let (true, Some(e)) = (t.has_weights(), &t.enc) {
        // Pre-encoded per K tile: tile i at i * (full tile bytes), one run.
        let name = encoded_weights(cx, graph, nodes, t, e)?;
        let full = e.bytes(n.tile[0]).map_err(|err| anyhow!(err))?;
        let last = e.bytes(n.ext[0] - (n.trips()[0] - 1) * n.tile[0]).map_err(|err| anyhow!(err))?;
        let _ = writeln!(
            f,
            "static void {fname}_load_w(const mt_tile_t *t, uint8_t *buf)\n{{\n    const uint32_t n = t->tk == {} ? {full}u : {last}u;\n    mt_cmd(1, buf, (uint8_t *)(uintptr_t){name} + (uint32_t)(t->k0 / {}) * {full}u, n, 1u, 1u, n, n, n, n, MT_CH_W);\n}}\n",
            n.tile[0], n.tile[0]
        );
    } else if t.has_weights() && split {
        // The C tile of the (K, FY, FX, C) weights (TiledLayer::transfers).
        let w_ptr = cx.ptr(first.inputs[1])?;
        let _ = writeln!(
            f,
            "static void {fname}_load_w(const mt_tile_t *t, uint8_t *buf)\n{{\n    mt_box(1, buf, {w_ptr}, 1, {}, {}, t->k0, 0, t->c0, t->tk, {}, t->tc, MT_CH_W);\n}}\n",
            t.w_taps, n.c[0], t.w_taps
        );
    } else if t.has_weights() {
        let w_ptr = cx.ptr(first.inputs[1])?;
        let _ = writeln!(
            f,
            "static void {fname}_load_w(const mt_tile_t *t, uint8_t *buf)\n{{\n    mt_box(1, buf, {w_ptr}, 1, {}, {}, 0, t->k0, 0, 1, t->tk, {}, MT_CH_W);\n}}\n",
            n.ext[0], t.w_per_k, t.w_per_k
        );
    }
    // compute: the unit kernel's job, or the portable kernels.
    if let Some(call) = &t.call {
        f.push_str(&job_compute(cx, graph, nodes, t, fname, l1, call, decl, bx, silence, &in_at, pitch)?);
    } else {
        // compute
        let _ = writeln!(
            f,
            "static void {fname}_compute(const mt_tile_t *t, const uint8_t *in, const uint8_t *w, uint8_t *out)\n{{\n{decl}    int32_t *acc = (int32_t *)(void *)({l1} + {});\n    const int32_t elems = {} * t->tk * t->ty * t->tx;\n{bx}{silence}    (void)w;\n    (void)acc;\n    (void)elems;",
            t.layout.acc,
            t.rows()
        );
        let chain = nodes.len() > 1;
        // A split C accumulates in `acc` across its tiles: the first
        // overwrites, the later ones add; the chain runs after the last.
        let main_out = if chain || split { "acc" } else { "out" };
        let add_y = if split { "t->c0 > 0" } else { "0" };
        let xdt = mk_dt(graph.tensor(first.inputs[0]).dtype);
        let mo = graph.tensor(first.outputs[0]);
        let modt = mk_dt(mo.dtype);
        match (&t.main, &first.op) {
            (Main::Conv { fy, fx, sy, sx, dy, dx, dw, .. }, Op::Conv2d { x_zp, w_zp, .. }) => {
                let wt = graph.tensor(first.inputs[1]);
                let k = wt.shape[0];
                let wzp = cx.array_i32("w_zp", &per_channel_i32("w_zp", w_zp, k, 0)?);
                let groups = if *dw { "t->tk" } else { "1" };
                let call = if split {
                    format!(
                        "mk_conv2d_acc({in_at}, {xdt}, w, {}, (int32_t *)(void *){main_out}, &p, {pitch}, {add_y})",
                        mk_dt(wt.dtype)
                    )
                } else if fetched {
                    format!(
                        "mk_conv2d_pitch({in_at}, {xdt}, w, {}, (int32_t *)(void *){main_out}, &p, {pitch})",
                        mk_dt(wt.dtype)
                    )
                } else {
                    format!("mk_conv2d(in, {xdt}, w, {}, (int32_t *)(void *){main_out}, &p)", mk_dt(wt.dtype))
                };
                let _ = writeln!(
                    f,
                    "    {{\n        mk_conv_t p;\n        p.n = 1; p.h = ryn; p.w = rxn; p.c = cn; p.k = t->tk; p.fy = {fy}; p.fx = {fx};\n        p.oh = t->ty; p.ow = t->tx; p.sy = {sy}; p.sx = {sx}; p.dy = {dy}; p.dx = {dx};\n        p.pt = ryp; p.pl = rxp; p.groups = {groups}; p.x_zp = {}; p.w_zp = {wzp} + t->k0;\n        {call};\n    }}",
                    ops::i32c(*x_zp)?,
                );
            }
            (Main::Dense { rows, .. }, Op::Dense { x_zp, w_zp }) if split => {
                let wt = graph.tensor(first.inputs[1]);
                let k = wt.shape[0];
                let wzp = cx.array_i32("w_zp", &per_channel_i32("w_zp", w_zp, k, 0)?);
                let _ = writeln!(
                    f,
                    "    mk_dense_acc(in, {xdt}, w, {}, (int32_t *)(void *){main_out}, {rows}, t->tc, t->tk, {}, {wzp} + t->k0, {add_y});",
                    mk_dt(wt.dtype),
                    ops::i32c(*x_zp)?
                );
            }
            (Main::Dense { rows, c }, Op::Dense { x_zp, w_zp }) => {
                let wt = graph.tensor(first.inputs[1]);
                let k = wt.shape[0];
                let wzp = cx.array_i32("w_zp", &per_channel_i32("w_zp", w_zp, k, 0)?);
                let _ = writeln!(
                    f,
                    "    mk_dense(in, {xdt}, w, {}, (int32_t *)(void *){main_out}, {rows}, {c}, t->tk, {}, {wzp} + t->k0);",
                    mk_dt(wt.dtype),
                    ops::i32c(*x_zp)?
                );
            }
            (Main::Pool { ky, kx, sy, sx, global, .. }, op) => {
                let p = |cip: bool| {
                    format!(
                        "    {{\n        mk_pool_t p;\n        p.n = 1; p.h = ryn; p.w = rxn; p.c = cn; p.oh = t->ty; p.ow = t->tx; p.ky = {ky}; p.kx = {kx};\n        p.sy = {sy}; p.sx = {sx}; p.pt = ryp; p.pl = rxp; p.count_include_pad = {};\n",
                        i32::from(cip)
                    )
                };
                match op {
                    Op::GlobalAvgPool if *global => {
                        let _ = writeln!(
                            f,
                            "    mk_global_avg_pool(in, {xdt}, {main_out}, {modt}, 1, ryn * rxn, cn);"
                        );
                    }
                    Op::AvgPool { count_include_pad, .. } => {
                        let zp = graph.tensor(first.inputs[0]).quant.as_ref().map_or(0, |q| q.zp());
                        let _ = writeln!(
                            f,
                            "{}        mk_avg_pool(in, {xdt}, {main_out}, {modt}, &p, {});\n    }}",
                            p(*count_include_pad),
                            ops::i32c(zp)?
                        );
                    }
                    Op::MaxPool { .. } => {
                        let _ = writeln!(
                            f,
                            "{}        mk_max_pool(in, {xdt}, {main_out}, {modt}, &p);\n    }}",
                            p(false)
                        );
                    }
                    Op::QLinearAvgPool { count_include_pad, x_scale, x_zp, y_scale, y_zp, .. } => {
                        let _ = writeln!(
                            f,
                            "{}        mk_qlinear_avg_pool(in, {xdt}, {main_out}, {modt}, &p, {}, {}, {}, {});\n    }}",
                            p(*count_include_pad),
                            super::f32_bits(*x_scale),
                            ops::i32c(*x_zp)?,
                            super::f32_bits(*y_scale),
                            c_i64(*y_zp)
                        );
                    }
                    _ => bail!("unexpected pooling"),
                }
            }
            (Main::Add, Op::Add { kind }) => {
                let [o0, o1] = t.add_operands();
                let kind = if o0 == 0 { kind.clone() } else { kind.swapped() };
                let (at, bt) = (graph.tensor(first.inputs[o0]), graph.tensor(first.inputs[o1]));
                let tail = ops::add_tail(&kind)?;
                let _ = writeln!(
                    f,
                    "    {{\n        int32_t sh[3], st[3];\n        mk_add_t p = {{{}, 3, 0, 0, 0, {tail}}};\n        sh[0] = t->ty; sh[1] = t->tx; sh[2] = t->tk;\n        st[0] = t->tx * t->tk; st[1] = t->tk; st[2] = 1;\n        p.shape = sh; p.sa = st; p.sb = st;\n        mk_add(in, {}, in + elems * {in_es}, {}, {main_out}, {modt}, &p);\n    }}",
                    ops::add_kind(&kind),
                    mk_dt(at.dtype),
                    mk_dt(bt.dtype)
                );
            }
            _ => bail!("unexpected main operator"),
        }
        // The chain, in place in the accumulator; the last step writes `out`.
        // A split C: once, after its last tile.
        if split {
            let _ = writeln!(f, "    if (t->c0 + t->tc < {}) {{\n        return;\n    }}", n.c[0]);
            if !chain {
                let _ = writeln!(f, "    mk_copy(out, acc, elems * 4);");
            }
        }
        let mut cur = "acc";
        for (i, &nid) in nodes.iter().enumerate().skip(1) {
            let node = &graph.nodes[nid];
            let at = graph.tensor(node.inputs[0]);
            let ot = graph.tensor(node.outputs[0]);
            let (adt, odt) = (mk_dt(at.dtype), mk_dt(ot.dtype));
            let dst = if i + 1 == nodes.len() { "out" } else { "acc" };
            match &node.op {
                Op::BiasAdd => {
                    let bt = graph.tensor(node.inputs[1]);
                    let c = *at.shape.last().unwrap_or(&1);
                    let nb = bt.elements();
                    ensure!(nb == c || nb == 1, "bias '{}' has {nb} values for {c} channels", bt.name);
                    let b = cx.ptr(node.inputs[1])?;
                    let (bp, nbs) =
                        if nb == 1 { (b, "1".to_string()) } else { (format!("{b} + t->k0"), "t->tk".into()) };
                    let _ = writeln!(
                        f,
                        "    mk_bias_add({cur}, {adt}, {bp}, {}, {nbs}, {dst}, {odt}, elems, t->tk);",
                        mk_dt(bt.dtype)
                    );
                }
                Op::Requantize { requant, out_zp } => {
                    let c = *at.shape.last().unwrap_or(&1);
                    let mut adc: (i64, u32, Option<String>, Option<String>) = (1, 1, None, None);
                    let (kind, n, a) = match requant {
                        Requant::FixedPoint { multiplier, shift } => {
                            let n = ops::entries(multiplier.len().max(shift.len()), c)?;
                            let m = cx
                                .array_i32("multiplier", &per_channel_i32x("multiplier", multiplier, n, 0)?);
                            let sh = cx.array_i32("shift", &per_channel_i32x("shift", shift, n, 0)?);
                            ("MK_RQ_FIXED", n, [Some(m), Some(sh), None, None, None])
                        }
                        Requant::ScaleShift { scale, bias, shift } => {
                            ensure!(*shift < 64, "shift {shift} is out of range");
                            let n = ops::entries(scale.len().max(bias.len()), c)?;
                            let sc = cx.array_i64("scale", &per_channel_x("scale", scale, n, 1)?);
                            let bi = cx.array_i64("bias", &per_channel_x("bias", bias, n, 0)?);
                            let _ = writeln!(f, "    /* shift {shift} */");
                            ("MK_RQ_SCALE_SHIFT", n, [None, None, Some(sc), Some(bi), None])
                        }
                        Requant::Float { scale } => {
                            let n = ops::entries(scale.len(), c)?;
                            let sc = cx.array_f32_bits("scale", &per_channel_x("scale", scale, n, 1.0)?);
                            ("MK_RQ_FLOAT", n, [None, None, None, None, Some(sc)])
                        }
                        Requant::Adc { gain, bits, k, l, shift } => {
                            ensure!(
                                *shift < 64 && *gain >= 1 && (1..=31).contains(bits),
                                "ADC parameters out of range"
                            );
                            let n = ops::entries(k.len().max(l.len()), c)?;
                            let kk = cx.array_i64("adc_k", &per_channel_x("k", k, n, 1)?);
                            let ll = cx.array_i64("adc_l", &per_channel_x("l", l, n, 0)?);
                            adc = (*gain, *bits, Some(kk), Some(ll));
                            ("MK_RQ_ADC", n, [None, None, None, None, None])
                        }
                    };
                    let off = if n > 1 { " + t->k0" } else { "" };
                    let pa = |x: &Option<String>| x.as_ref().map_or("0".to_string(), |s| format!("{s}{off}"));
                    let sshift = match requant {
                        Requant::ScaleShift { shift, .. } | Requant::Adc { shift, .. } => *shift as i64,
                        _ => 0,
                    };
                    let _ = writeln!(
                        f,
                        "    {{\n        mk_requant_t rq;\n        rq.kind = {kind}; rq.n = {}; rq.multiplier = {}; rq.shift = {}; rq.scale = {}; rq.bias = {};\n        rq.sshift = {sshift}; rq.fscale = {}; rq.out_zp = {};\n        rq.adc_gain = {}; rq.adc_bits = {}; rq.adc_k = {}; rq.adc_l = {};\n        mk_requantize({cur}, {adt}, {dst}, {odt}, elems, t->tk, &rq);\n    }}",
                        if n > 1 { "t->tk" } else { "1" },
                        pa(&a[0]),
                        pa(&a[1]),
                        pa(&a[2]),
                        pa(&a[3]),
                        pa(&a[4]),
                        c_i64(*out_zp),
                        c_i64(adc.0),
                        adc.1,
                        pa(&adc.2),
                        pa(&adc.3)
                    );
                }
                Op::Clip { min, max } => {
                    ensure!(min <= max, "min {min} > max {max}");
                    let _ = writeln!(
                        f,
                        "    mk_clip({cur}, {adt}, {dst}, {odt}, elems, {}, {});",
                        c_i64(*min),
                        c_i64(*max)
                    );
                }
                Op::Cast => {
                    let _ = writeln!(f, "    mk_cast({cur}, {adt}, {dst}, {odt}, elems);");
                }
                _ => bail!("unexpected chain operator"),
            }
            cur = dst;
        }
        let _ = writeln!(f, "}}\n");
    }
    // store: into the layer's output in the arena, or into a staging
    // buffer when the plan overlaps the output with an input the tiles
    // still read (an in-place handoff that is only safe untiled).
    let last = &graph.nodes[*nodes.last().unwrap_or(&nodes[0])];
    let y_id = last.outputs[0];
    // A kept output is never stored: it may have no arena place.
    let y_real = if t.output_kept { "NULL".to_string() } else { cx.arena(y_id)? };
    let y_bytes = graph.tensor(y_id).bytes();
    let overlaps = |a: Option<usize>, ab: usize| match (a, cx.offset(y_id)) {
        (Some(a), Some(o)) => a < o + y_bytes && o < a + ab,
        _ => false,
    };
    let same_place_eltwise = matches!(t.main, Main::Add)
        && t.in_es == t.out_es
        && first
            .inputs
            .iter()
            .all(|&i| cx.offset(i) == cx.offset(y_id) || !overlaps(cx.offset(i), graph.tensor(i).bytes()));
    // A kept output is not stored (the next layer reads it in the compute
    // memory), so nothing is staged either.
    let stage = !t.output_kept
        && !same_place_eltwise
        && first.inputs.iter().any(|&i| overlaps(cx.offset(i), graph.tensor(i).bytes()));
    let stage_name = format!("{}_stage", cx.prefix);
    let y = if stage { stage_name.clone() } else { y_real.clone() };
    let out_es = t.out_es;
    match &t.main {
        _ if t.output_kept => {}
        Main::Dense { rows, .. } => {
            let _ = writeln!(
                f,
                "static void {fname}_store(const mt_tile_t *t, const uint8_t *out)\n{{\n    mt_box(0, (uint8_t *)(uintptr_t)out, {y}, {out_es}, {rows}, {}, 0, 0, t->k0, 1, {rows}, t->tk, MT_CH_OUT);\n}}\n",
                n.ext[0]
            );
        }
        _ => {
            let _ = writeln!(
                f,
                "static void {fname}_store(const mt_tile_t *t, const uint8_t *out)\n{{\n    mt_box(0, (uint8_t *)(uintptr_t)out, {y}, {out_es}, {}, {}, t->y0, t->x0, t->k0, t->ty, t->tx, t->tk, MT_CH_OUT);\n}}\n",
                n.ext[2], n.ext[0]
            );
        }
    }
    let lay = &t.layout;
    let slot = |o: [u64; 2]| format!("{{{l1} + {}, {l1} + {}}}", o[0], o[1]);
    let w_slot = match &t.weights_memory {
        Some((wm, _)) => {
            // The weight tiles' buffers in the arena of their own memory.
            let buf = weights_arena(&cx.prefix, wm);
            format!("{{{buf} + {}, {buf} + {}}}", lay.weights[0], lay.weights[1])
        }
        None => slot(lay.weights),
    };
    let mut resident = String::new();
    if t.input_resident && t.n_inputs() > 1 {
        let swapped = if t.resident_input == 1 { ", computed as add(b, a)" } else { "" };
        let _ = writeln!(
            resident,
            "    /* input {} resident in {}: its producer's output buffer at +{} (not loaded; the other input is, after it{swapped}) */",
            ["a", "b"][t.resident_input.min(1)],
            comment(&t.memory),
            lay.input[0]
        );
    } else if t.input_resident {
        let _ = writeln!(
            resident,
            "    /* input resident in {}: its producer's output buffer at +{} (no load) */",
            comment(&t.memory),
            lay.input[0]
        );
    }
    if t.output_kept {
        let _ = writeln!(
            resident,
            "    /* output kept in {} at +{} for its consumer (no store) */",
            comment(&t.memory),
            lay.output[0]
        );
    }
    let body = format!(
        "    /* {} tile(s) of K {} OY {} OX {} in {} ({} B of tile buffers): input {} B{}, weights {} B{}, output {} B{}, accumulator {} B */\n{resident}    mt_layer_t L = {{{}, {fname}_tile, {}, {}, {fname}_compute, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}}};\n    mt_run(&L);\n",
        n.steps(),
        n.tile[0],
        n.tile[1],
        n.tile[2],
        comment(&t.memory),
        lay.total,
        lay.input_bytes,
        if t.double[0] { " x2" } else { "" },
        lay.weight_bytes,
        if t.double[1] { " x2" } else { "" },
        lay.output_bytes,
        if t.double[2] { " x2" } else { "" },
        lay.acc_bytes,
        n.steps(),
        if t.loads_input() { format!("{fname}_load_in") } else { "NULL".into() },
        if t.has_weights() { format!("{fname}_load_w") } else { "NULL".into() },
        if t.output_kept { "NULL".into() } else { format!("{fname}_store") },
        i32::from(t.input_follows_k),
        slot(lay.input),
        w_slot,
        slot(lay.output),
        i32::from(t.double[0]),
        i32::from(t.double[1]),
        i32::from(t.double[2]),
        n.c_trips(),
        n.c[1],
        n.c[0],
    );
    let body = if stage {
        format!("{body}    /* the plan puts the output over an input the tiles read: staged, then copied */\n    mk_copy({y_real}, {stage_name}, {y_bytes});\n")
    } else {
        body
    };
    Ok((f, body, if stage { y_bytes } else { 0 }))
}

/// The tiled plans of every layer of `mapping` the emitter tiles; a layer
/// calls its unit kernel when the platform `headers` declare it.
pub fn plan_all(
    graph: &Graph,
    hw: &HwModel,
    mapping: &crate::mapping::Mapping,
    headers: &[String],
) -> Vec<Option<TiledLayer>> {
    mapping
        .layers
        .iter()
        .map(|l| {
            let call = unit_call(hw, l).filter(|c| platform_has_call(headers, c));
            plan_layer_as(graph, hw, l, call).ok()
        })
        .collect()
}

/// The C name of the arena of weight memory `memory` (units with
/// `weights_in`): `<prefix>_<memory>`.
pub fn weights_arena(prefix: &str, memory: &str) -> String {
    format!("{prefix}_{}", super::c_identifier(memory))
}

/// The weight memories of the tiled layers (units with `weights_in`) and
/// the bytes of each one's arena (the largest layer's weight buffers).
pub fn weight_arenas(tiled: &[Option<TiledLayer>]) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for t in tiled.iter().flatten() {
        if let Some((m, _)) = &t.weights_memory {
            match out.iter_mut().find(|(n, _)| n == m) {
                Some((_, b)) => *b = (*b).max(t.layout.weights_total),
                None => out.push((m.clone(), t.layout.weights_total)),
            }
        }
    }
    out
}

/// The compute memory of the tiled layers and the bytes of its arena.
pub fn arena_of(tiled: &[Option<TiledLayer>]) -> anyhow::Result<Option<(String, u64)>> {
    let mut out: Option<(String, u64)> = None;
    for t in tiled.iter().flatten() {
        match &mut out {
            None => out = Some((t.memory.clone(), t.layout.total)),
            Some((m, b)) => {
                if *m != t.memory {
                    return Err(anyhow!("tiled layers compute in two memories ({m}, {})", t.memory));
                }
                *b = (*b).max(t.layout.total);
            }
        }
    }
    Ok(out)
}

/// The layer's weights encoded per K tile in its unit's layout, as one
/// constant byte array (tile i at i times the full tile's bytes); returns
/// its name. `append_bias` takes the layer's bias, plus the requantization's
/// when it only shifts (scale 1: `(acc + b1) * 1 + b2 = acc + (b1 + b2)`).
fn encoded_weights(
    cx: &mut Cx,
    graph: &Graph,
    nodes: &[NodeId],
    t: &TiledLayer,
    e: &Encoding,
) -> anyhow::Result<String> {
    let first = &graph.nodes[nodes[0]];
    let wt = graph.tensor(first.inputs[1]);
    let data = wt.data.as_ref().ok_or_else(|| anyhow!("weights '{}' are not constant", wt.name))?.to_i64();
    let k = wt.shape[0];
    let w = match wt.shape[..] {
        [_, fy, fx, cg] => Weights::from_ohwi(&data, k, fy, fx, cg, e.bits),
        [_, c] => Weights::from_dense(&data, k, c, e.bits),
        _ => bail!("weights of rank {}", wt.shape.len()),
    };
    let bias = if e.steps.iter().any(|s| matches!(s, LayoutStep::AppendBias(_))) {
        let mut b = vec![0i64; k];
        for &n in &nodes[1..] {
            match &graph.nodes[n].op {
                Op::BiasAdd => {
                    let bt = graph.tensor(graph.nodes[n].inputs[1]);
                    let v = bt.data.as_ref().ok_or_else(|| anyhow!("bias is not constant"))?.to_i64();
                    let v = per_channel_x("bias", &v, k, 0)?;
                    b.iter_mut().zip(v).for_each(|(x, y)| *x = (*x as i32).wrapping_add(y as i32) as i64);
                }
                Op::Requantize { requant: Requant::ScaleShift { scale, bias, .. }, .. }
                    if scale.iter().all(|&s| s == 1) =>
                {
                    let v = per_channel_x("bias", bias, k, 0)?;
                    for (x, y) in b.iter_mut().zip(v) {
                        let y =
                            i32::try_from(y).map_err(|_| anyhow!("requantization bias {y} beyond int32"))?;
                        *x = (*x as i32).wrapping_add(y) as i64;
                    }
                }
                _ => {}
            }
        }
        Some(b)
    } else {
        None
    };
    let n = &t.nest;
    let mut bytes = Vec::new();
    for i in 0..n.trips()[0] {
        let k0 = (i * n.tile[0]) as usize;
        let tk = (n.tile[0] as usize).min(k - k0);
        let enc = layout::encode(&e.steps, &w.slice_k(k0, tk), bias.as_ref().map(|b| &b[k0..k0 + tk]))
            .map_err(|err| anyhow!("weight layout: {err}"))?;
        ensure!(enc.len() as u64 == e.bytes(tk as i64).map_err(|err| anyhow!(err))?, "encoded size mismatch");
        bytes.extend(enc);
    }
    let name = cx.param_name("wenc");
    let what = format!("'{}' encoded per {}-channel tile", wt.name, n.tile[0]);
    cx.push(name.clone(), "uint8_t", bytes.iter().map(|b| b.to_string()).collect(), what);
    Ok(name)
}

/// The C assignments of an `mk_requant_t` at `lv` (e.g. `j.rq`), its
/// per-channel arrays offset to the tile's first channel.
fn requant_fields(cx: &mut Cx, requant: &Requant, out_zp: i64, c: usize, lv: &str) -> anyhow::Result<String> {
    let (mut m, mut sh, mut sc, mut bi, mut fs, mut ak, mut al) = (None, None, None, None, None, None, None);
    let (mut gain, mut bits, mut sshift) = (1i64, 1u32, 0u32);
    let (kind, n) = match requant {
        Requant::FixedPoint { multiplier, shift } => {
            let n = ops::entries(multiplier.len().max(shift.len()), c)?;
            m = Some(cx.array_i32("multiplier", &per_channel_i32x("multiplier", multiplier, n, 0)?));
            sh = Some(cx.array_i32("shift", &per_channel_i32x("shift", shift, n, 0)?));
            ("MK_RQ_FIXED", n)
        }
        Requant::ScaleShift { scale, bias, shift } => {
            ensure!(*shift < 64, "shift {shift} is out of range");
            let n = ops::entries(scale.len().max(bias.len()), c)?;
            sc = Some(cx.array_i64("scale", &per_channel_x("scale", scale, n, 1)?));
            bi = Some(cx.array_i64("bias", &per_channel_x("bias", bias, n, 0)?));
            sshift = *shift;
            ("MK_RQ_SCALE_SHIFT", n)
        }
        Requant::Float { scale } => {
            let n = ops::entries(scale.len(), c)?;
            fs = Some(cx.array_f32_bits("scale", &per_channel_x("scale", scale, n, 1.0)?));
            ("MK_RQ_FLOAT", n)
        }
        Requant::Adc { gain: g, bits: b, k, l, shift } => {
            ensure!(*shift < 64 && *g >= 1 && (1..=31).contains(b), "ADC parameters out of range");
            let n = ops::entries(k.len().max(l.len()), c)?;
            ak = Some(cx.array_i64("adc_k", &per_channel_x("k", k, n, 1)?));
            al = Some(cx.array_i64("adc_l", &per_channel_x("l", l, n, 0)?));
            (gain, bits, sshift) = (*g, *b, *shift);
            ("MK_RQ_ADC", n)
        }
    };
    let off = if n > 1 { " + t->k0" } else { "" };
    let pa = |x: &Option<String>| x.as_ref().map_or("0".to_string(), |s| format!("{s}{off}"));
    Ok(format!(
        "    {lv}.kind = {kind}; {lv}.n = {}; {lv}.multiplier = {}; {lv}.shift = {}; {lv}.scale = {}; {lv}.bias = {};\n    {lv}.sshift = {sshift}; {lv}.fscale = {}; {lv}.out_zp = {};\n    {lv}.adc_gain = {}; {lv}.adc_bits = {bits}; {lv}.adc_k = {}; {lv}.adc_l = {};\n",
        if n > 1 { "t->tk" } else { "1" },
        pa(&m),
        pa(&sh),
        pa(&sc),
        pa(&bi),
        pa(&fs),
        c_i64(out_zp),
        c_i64(gain),
        pa(&ak),
        pa(&al)
    ))
}

/// The `_compute` function of a tile that calls the unit's kernel `call`
/// with an `mk_job_t` (match_kernels.h).
#[allow(clippy::too_many_arguments)]
fn job_compute(
    cx: &mut Cx,
    graph: &Graph,
    nodes: &[NodeId],
    t: &TiledLayer,
    fname: &str,
    l1: &str,
    call: &str,
    decl: &str,
    bx: &str,
    silence: &str,
    in_at: &str,
    pitch: &str,
) -> anyhow::Result<String> {
    let mut f = String::new();
    let first = &graph.nodes[nodes[0]];
    let x = graph.tensor(first.inputs[0]);
    let mo = graph.tensor(first.outputs[0]);
    let fin = graph.tensor(graph.nodes[*nodes.last().unwrap_or(&nodes[0])].outputs[0]);
    let in_es = t.in_es;
    let _ = writeln!(
        f,
        "static void {fname}_compute(const mt_tile_t *t, const uint8_t *in, const uint8_t *w, uint8_t *out)\n{{\n{decl}    static const mk_job_t zero;\n    mk_job_t j = zero;\n    const int32_t elems = {} * t->tk * t->ty * t->tx;\n{bx}    (void)w;\n{}",
        t.rows(),
        silence.trim_start_matches("    (void)t;\n").trim_end_matches('\n')
    );
    let _ = writeln!(
        f,
        "    j.layer = \"{}\";\n    j.x = {in_at};\n    j.xdt = {};\n    j.y = out;\n    j.ydt = {};\n    j.y_bytes = (uint32_t)(elems * {});\n    j.k = t->tk;\n    j.k0 = t->k0;\n    j.rows = 1;\n    j.sy = 1; j.sx = 1; j.dy = 1; j.dx = 1; j.fy = 1; j.fx = 1; j.groups = 1;\n    j.main_ydt = {};\n    j.bias_ydt = {};",
        c_string(&cx.layer),
        mk_dt(x.dtype),
        mk_dt(fin.dtype),
        t.out_es,
        mk_dt(mo.dtype),
        mk_dt(mo.dtype),
    );
    // A split C: the accumulator kept across the C tiles and where this
    // call's C tile lies (mk_job_t: the unit's kernel decides what to do).
    let split = t.c_split();
    if split {
        let _ = writeln!(
            f,
            "    j.acc = (int32_t *)(void *)({l1} + {});\n    j.acc_bytes = (uint32_t)(elems * 4);\n    j.c_first = t->c0 == 0;\n    j.c_last = t->c0 + t->tc >= {};",
            t.layout.acc,
            t.nest.c[0]
        );
    }
    // Weights: the tile's bytes (encoded, or the IR's K rows; a split C:
    // its C tile of each row, 8-bit).
    if t.has_weights() {
        let wt = graph.tensor(first.inputs[1]);
        let bytes = match &t.enc {
            _ if split => format!("(uint32_t)(t->tk * {} * t->tc)", t.w_taps),
            Some(e) => {
                let n = &t.nest;
                let full = e.bytes(n.tile[0]).map_err(|err| anyhow!(err))?;
                let last = e.bytes(n.ext[0] - (n.trips()[0] - 1) * n.tile[0]).map_err(|err| anyhow!(err))?;
                format!("t->tk == {} ? {full}u : {last}u", n.tile[0])
            }
            None => format!("(uint32_t)(t->tk * {})", t.w_per_k),
        };
        let _ = writeln!(f, "    j.wt = w;\n    j.wdt = {};\n    j.w_bytes = {bytes};", mk_dt(wt.dtype));
    }
    match (&t.main, &first.op) {
        (Main::Conv { fy, fx, sy, sx, dy, dx, dw, .. }, Op::Conv2d { x_zp, w_zp, .. }) => {
            let k = graph.tensor(first.inputs[1]).shape[0];
            let wzp = cx.array_i32("w_zp", &per_channel_i32("w_zp", w_zp, k, 0)?);
            let _ = writeln!(
                f,
                "    j.op = MK_JOB_CONV;\n    j.h = ryn; j.w = rxn; j.c = cn; j.oh = t->ty; j.ow = t->tx;\n    j.fy = {fy}; j.fx = {fx}; j.sy = {sy}; j.sx = {sx}; j.dy = {dy}; j.dx = {dx};\n    j.pt = ryp; j.pl = rxp;\n    j.pb = (t->ty - 1) * {sy} + {} + 1 - ryp - ryn;\n    j.pr = (t->tx - 1) * {sx} + {} + 1 - rxp - rxn;\n    j.groups = {};\n    j.depthwise = {};\n    j.x_zp = {};\n    j.w_zp = {wzp} + t->k0;\n{}",
                (fy - 1) * dy,
                (fx - 1) * dx,
                if *dw { "t->tk" } else { "1" },
                i32::from(*dw),
                ops::i32c(*x_zp)?,
                if pitch == "rxn" {
                    format!("    j.x_bytes = (uint32_t)(ryn * rxn * cn * {in_es});")
                } else {
                    // From the window's first byte to its last, rows `pitch` pixels apart.
                    format!("    j.x_pitch = {pitch};\n    j.x_bytes = ryn > 0 && rxn > 0 ? (uint32_t)(((ryn - 1) * {pitch} + rxn) * cn * {in_es}) : 0u;")
                }
            );
        }
        (Main::Dense { rows, c }, Op::Dense { x_zp, w_zp }) => {
            let k = graph.tensor(first.inputs[1]).shape[0];
            let wzp = cx.array_i32("w_zp", &per_channel_i32("w_zp", w_zp, k, 0)?);
            // A split C: the rows of the C tile.
            let (c, x_elems) = if split {
                ("t->tc".to_string(), format!("{rows} * t->tc"))
            } else {
                (c.to_string(), (rows * c).to_string())
            };
            let _ = writeln!(
                f,
                "    j.op = MK_JOB_DENSE;\n    j.rows = {rows};\n    j.h = 1; j.w = {rows}; j.c = {c}; j.oh = 1; j.ow = 1;\n    j.x_zp = {};\n    j.w_zp = {wzp} + t->k0;\n    j.x_bytes = (uint32_t)({x_elems} * {in_es});",
                ops::i32c(*x_zp)?,
            );
        }
        (Main::Add, Op::Add { kind }) => {
            // The operands in buffer order (the resident one first).
            let [o0, o1] = t.add_operands();
            let kind = if o0 == 0 { kind.clone() } else { kind.swapped() };
            let (at, bt) = (graph.tensor(first.inputs[o0]), graph.tensor(first.inputs[o1]));
            let _ = writeln!(
                f,
                "    {{\n        mk_add_t a = {{{}, 3, 0, 0, 0, {}}};\n        j.add = a;\n    }}\n    j.op = MK_JOB_ADD;\n    j.h = t->ty; j.w = t->tx; j.c = t->tk; j.oh = t->ty; j.ow = t->tx;\n    j.xdt = {};\n    j.x2 = in + elems * {in_es};\n    j.x2dt = {};\n    j.x_bytes = (uint32_t)(2 * elems * {in_es});",
                ops::add_kind(&kind),
                ops::add_tail(&kind)?,
                mk_dt(at.dtype),
                mk_dt(bt.dtype)
            );
        }
        (Main::Pool { ky, kx, sy, sx, global, .. }, op) => {
            let (kind, cip, zp, extra) = match op {
                Op::GlobalAvgPool if *global => ("MK_JOB_GLOBAL_AVG_POOL", false, 0, String::new()),
                Op::AvgPool { count_include_pad, .. } => (
                    "MK_JOB_AVG_POOL",
                    *count_include_pad,
                    x.quant.as_ref().map_or(0, |q| q.zp()),
                    String::new(),
                ),
                Op::MaxPool { .. } => ("MK_JOB_MAX_POOL", false, 0, String::new()),
                Op::QLinearAvgPool { count_include_pad, x_scale, x_zp, y_scale, y_zp, .. } => (
                    "MK_JOB_QLINEAR_AVG_POOL",
                    *count_include_pad,
                    *x_zp,
                    format!(
                        "    j.pool_x_scale = {};\n    j.pool_y_scale = {};\n    j.pool_y_zp = {};\n",
                        super::f32_bits(*x_scale),
                        super::f32_bits(*y_scale),
                        c_i64(*y_zp)
                    ),
                ),
                _ => bail!("unexpected pooling"),
            };
            let _ = writeln!(
                f,
                "    j.op = {kind};\n    j.h = ryn; j.w = rxn; j.c = cn; j.oh = t->ty; j.ow = t->tx;\n    j.fy = {ky}; j.fx = {kx}; j.sy = {sy}; j.sx = {sx}; j.pt = ryp; j.pl = rxp;\n    j.pool.n = 1; j.pool.h = ryn; j.pool.w = rxn; j.pool.c = cn; j.pool.oh = t->ty; j.pool.ow = t->tx;\n    j.pool.ky = {ky}; j.pool.kx = {kx}; j.pool.sy = {sy}; j.pool.sx = {sx}; j.pool.pt = ryp; j.pool.pl = rxp;\n    j.pool.count_include_pad = {};\n    j.pool_zp = {};\n{extra}    j.x_bytes = (uint32_t)(ryn * rxn * cn * {in_es});",
                i32::from(cip),
                ops::i32c(zp)?
            );
        }
        _ => bail!("unexpected main operator"),
    }
    // The chain: bias?, requantize?, clip? (plan_layer checked the order).
    for &nid in &nodes[1..] {
        let node = &graph.nodes[nid];
        let at = graph.tensor(node.inputs[0]);
        let ot = graph.tensor(node.outputs[0]);
        match &node.op {
            Op::BiasAdd => {
                let bt = graph.tensor(node.inputs[1]);
                let c = *at.shape.last().unwrap_or(&1);
                let nb = bt.elements();
                ensure!(nb == c || nb == 1, "bias '{}' has {nb} values for {c} channels", bt.name);
                let b = cx.ptr(node.inputs[1])?;
                let (bp, nbs) = if nb == 1 { (b, "1") } else { (format!("{b} + t->k0"), "t->tk") };
                let _ = writeln!(
                    f,
                    "    j.bias = {bp};\n    j.bdt = {};\n    j.bias_n = {nbs};\n    j.bias_ydt = {};",
                    mk_dt(bt.dtype),
                    mk_dt(ot.dtype)
                );
            }
            Op::Requantize { requant, out_zp } => {
                let c = *at.shape.last().unwrap_or(&1);
                f.push_str(&requant_fields(cx, requant, *out_zp, c, "j.rq")?);
                let _ = writeln!(f, "    j.has_rq = 1;\n    j.rq_ydt = {};", mk_dt(ot.dtype));
            }
            Op::Clip { min, max } => {
                ensure!(min <= max, "min {min} > max {max}");
                let _ = writeln!(
                    f,
                    "    j.has_clip = 1;\n    j.clip_lo = {};\n    j.clip_hi = {};",
                    c_i64(*min),
                    c_i64(*max)
                );
            }
            _ => bail!("unexpected chain operator"),
        }
    }
    let _ = writeln!(f, "    {call}(&j);\n}}\n");
    Ok(f)
}

/// A C string literal's contents.
fn c_string(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '"' | '\\' => format!("\\{c}"),
            c if c.is_ascii_graphic() || c == ' ' => c.to_string(),
            _ => "_".to_string(),
        })
        .collect()
}
