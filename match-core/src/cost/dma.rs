//! DMA transfers as the generated code issues them: a tile's box becomes
//! commands (full inner dimensions merged into one run, dimensions beyond
//! the DMA's strided ones one command per index, each split at the DMA's
//! maximum size: [`box_commands`], the mirror of `mt_box` / `mt_cmd` in
//! emit/tiled.rs), their cycles ([`dma_cycles`]), and the per-layer
//! counters the emulation must report ([`predict_counters`]).

use match_dsl::model::Dma;
use serde::Serialize;

/// The number of strided dimensions of a transfer and its extents, outer
/// to inner: `tile` is a box of a tensor of shape `full` (outer to inner);
/// the last entry is the contiguous run in elements (full inner dimensions
/// merged with the first partial one); outer dimensions of extent 1 vanish.
pub fn transfer_shape(full: &[i64], tile: &[i64]) -> Vec<i64> {
    let mut run = 1;
    let mut i = full.len();
    while i > 0 {
        i -= 1;
        run *= tile[i];
        if tile[i] != full[i] {
            break;
        }
    }
    let mut out: Vec<i64> = tile[..i].iter().copied().filter(|&e| e > 1).collect();
    out.push(run);
    out
}

/// One DMA command as the generated code issues it (`mt_cmd` in
/// emit/tiled.rs): `planes` x `rows` x `run` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Command {
    pub run: u64,
    pub rows: u64,
    pub planes: u64,
}

impl Command {
    pub fn bytes(&self) -> u64 {
        self.run * self.rows * self.planes
    }
    /// Its dimensionality: 1 (contiguous), 2 (rows) or 3 (planes of rows),
    /// the index of the DMA's `overhead` entry it pays.
    pub fn dims(&self) -> u32 {
        1 + u32::from(self.rows > 1) + u32::from(self.planes > 1)
    }
}

/// The commands of one `mt_cmd` call, in issue order: a command of at most
/// `max` bytes (0: no limit) as is; else whole planes per command, else
/// whole rows per command (one plane each), else pieces of one row. The C
/// in emit/tiled.rs's `helpers` mirrors this function line by line.
pub fn split_command(max: u64, run: u64, rows: u64, planes: u64, out: &mut impl FnMut(Command)) {
    if max == 0 || run * rows * planes <= max {
        out(Command { run, rows, planes });
    } else if run * rows <= max {
        let per = max / (run * rows);
        let mut p = 0;
        while p < planes {
            out(Command { run, rows, planes: per.min(planes - p) });
            p += per;
        }
    } else if run <= max {
        let per = max / run;
        for _ in 0..planes {
            let mut r = 0;
            while r < rows {
                out(Command { run, rows: per.min(rows - r), planes: 1 });
                r += per;
            }
        }
    } else {
        for _ in 0..planes * rows {
            let mut b = 0;
            while b < run {
                out(Command { run: max.min(run - b), rows: 1, planes: 1 });
                b += max;
            }
        }
    }
}

/// A box's contiguous run in bytes (full inner dimensions merged into it)
/// and its strided dimensions, outer to inner (extent-1 outer ones
/// vanish); `None` for an empty box. Shared by [`box_commands`] and
/// [`box_command_counts`].
fn box_runs(es: u64, full: [i64; 3], ext: [i64; 3]) -> Option<(u64, Vec<u64>)> {
    let [e0, e1, e2] = ext;
    if e0 <= 0 || e1 <= 0 || e2 <= 0 {
        return None;
    }
    let mut run = e2 as u64 * es;
    let mut n: Vec<u64> = Vec::with_capacity(2);
    if e2 == full[2] {
        run *= e1 as u64;
        if e1 == full[1] {
            run *= e0 as u64;
        } else if e0 > 1 {
            n.push(e0 as u64);
        }
    } else {
        if e0 > 1 {
            n.push(e0 as u64);
        }
        if e1 > 1 {
            n.push(e1 as u64);
        }
    }
    Some((run, n))
}

/// The commands that move a box of extents `ext` (outer to inner, elements
/// of `es` bytes) of a tensor of extents `full`, on a DMA of `dims`
/// strided dimensions whose commands carry at most `max` bytes (0: no
/// limit). Mirrors `mt_box` of emit/tiled.rs: full inner dimensions merge
/// into one contiguous run, outer dimensions of extent 1 vanish
/// ([`transfer_shape`]), dimensions beyond `dims` become one command per
/// index, and each command is split by [`split_command`].
pub fn box_commands(
    dims: u32,
    max: u64,
    es: u64,
    full: [i64; 3],
    ext: [i64; 3],
    out: &mut impl FnMut(Command),
) {
    let Some((run, n)) = box_runs(es, full, ext) else { return };
    let dims = dims.max(1);
    match n[..] {
        [] => split_command(max, run, 1, 1, out),
        [a] if dims >= 2 => split_command(max, run, a, 1, out),
        [a] => (0..a).for_each(|_| split_command(max, run, 1, 1, out)),
        [a, b] if dims >= 3 => split_command(max, run, b, a, out),
        [a, b] if dims == 2 => (0..a).for_each(|_| split_command(max, run, b, 1, out)),
        [a, b] => (0..a * b).for_each(|_| split_command(max, run, 1, 1, out)),
        _ => unreachable!("at most two strided dimensions"),
    }
}

/// [`split_command`]'s commands grouped: each distinct command once with
/// how many times it is issued (not in issue order). What a sum over the
/// commands needs, in time independent of their number.
pub fn split_command_counts(max: u64, run: u64, rows: u64, planes: u64, out: &mut impl FnMut(Command, u64)) {
    let whole_and_rest = |n: u64, per: u64, each: &mut dyn FnMut(u64, u64)| {
        if n / per > 0 {
            each(per, n / per);
        }
        if !n.is_multiple_of(per) {
            each(n % per, 1);
        }
    };
    if max == 0 || run * rows * planes <= max {
        out(Command { run, rows, planes }, 1);
    } else if run * rows <= max {
        whole_and_rest(planes, max / (run * rows), &mut |p, n| out(Command { run, rows, planes: p }, n));
    } else if run <= max {
        whole_and_rest(rows, max / run, &mut |r, n| out(Command { run, rows: r, planes: 1 }, n * planes));
    } else {
        whole_and_rest(run, max, &mut |b, n| out(Command { run: b, rows: 1, planes: 1 }, n * planes * rows));
    }
}

/// [`box_commands`] grouped as [`split_command_counts`] groups them.
pub fn box_command_counts(
    dims: u32,
    max: u64,
    es: u64,
    full: [i64; 3],
    ext: [i64; 3],
    out: &mut impl FnMut(Command, u64),
) {
    let Some((run, n)) = box_runs(es, full, ext) else { return };
    let dims = dims.max(1);
    let mut times = |k: u64, rows: u64, planes: u64| {
        split_command_counts(max, run, rows, planes, &mut |c, m| out(c, m * k));
    };
    match n[..] {
        [] => times(1, 1, 1),
        [a] if dims >= 2 => times(1, a, 1),
        [a] => times(a, 1, 1),
        [a, b] if dims >= 3 => times(1, b, a),
        [a, b] if dims == 2 => times(a, b, 1),
        [a, b] => times(a * b, 1, 1),
        _ => unreachable!("at most two strided dimensions"),
    }
}

/// `dma`'s `max` as the generated code uses it (0: no limit).
pub fn dma_max(dma: &Dma) -> u64 {
    dma.max_bytes.unwrap_or(0).min(u32::MAX as u64)
}

/// Up to three extents, outer to inner, as three (leading ones folded).
fn three(v: &[i64]) -> [i64; 3] {
    match v.len() {
        0 => [1, 1, 1],
        1 => [1, 1, v[0]],
        2 => [1, v[0], v[1]],
        n => [v[..n - 2].iter().product(), v[n - 2], v[n - 1]],
    }
}

/// Cycles of one DMA transfer of a `tile` box (elements of `elem_bytes`)
/// of a tensor of shape `full`: per command `setup` + `overhead_for(dims)`
/// of that command, plus bytes / bandwidth. The commands are the ones the
/// generated code issues for the box ([`box_commands`]).
pub fn dma_cycles(dma: &Dma, full: &[i64], tile: &[i64], elem_bytes: f64) -> f64 {
    let elems: i64 = tile.iter().product();
    if elems <= 0 {
        return 0.0;
    }
    let es = elem_bytes.ceil().max(1.0) as u64;
    let (mut fixed, mut bytes) = (0.0, 0u64);
    box_command_counts(dma.dims, dma_max(dma), es, three(full), three(tile), &mut |c, n| {
        fixed += n as f64 * (dma.setup as f64 + dma.overhead_for(c.dims()) as f64);
        bytes += n * c.bytes();
    });
    fixed + bytes as f64 / dma.bandwidth
}

/// What the emulation of a target counts for one layer (DMA commands and
/// bytes into the compute memories and back, kernel calls), as predicted
/// from the tiled code's own enumeration: every step of the tile walk
/// ([`crate::emit::tiled::Nest::walk`]), the boxes it moves
/// ([`crate::emit::tiled::TiledLayer::transfers`]) and the commands each
/// box becomes ([`box_commands`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Commands and bytes into the compute memory (inputs, weights).
    pub dma_in: u64,
    pub dma_in_bytes: u64,
    /// Commands and bytes back to the home memory (outputs).
    pub dma_out: u64,
    pub dma_out_bytes: u64,
    /// Kernel calls (one per tile).
    pub calls: u64,
    /// Commands and bytes over the external memory's DMA (weights staged
    /// by the emitter, emit::WeightStaging; zero here).
    pub dma_l3: u64,
    pub dma_l3_bytes: u64,
}

/// The counters of a layer the emitter tiles as `t`; an untiled layer
/// (None) moves nothing by DMA and makes no tile calls.
pub fn predict_counters(t: Option<&crate::emit::tiled::TiledLayer>) -> Counters {
    let mut c = Counters::default();
    let Some(t) = t else { return c };
    let max = dma_max(&t.dma);
    for st in t.nest.walk(t.input_follows_k) {
        c.calls += 1;
        for x in t.transfers(&st) {
            let (n, b) = if x.to_compute {
                (&mut c.dma_in, &mut c.dma_in_bytes)
            } else {
                (&mut c.dma_out, &mut c.dma_out_bytes)
            };
            box_command_counts(t.dma.dims, max, x.es, x.full, x.ext, &mut |cmd, times| {
                *n += times;
                *b += times * cmd.bytes();
            });
        }
    }
    c
}
