//! Weights in the target's external memory (docs/l3-weights.md): which
//! constant arrays go there when they do not fit the home memory beside the
//! activation arena ([`place_weights`]), the staging buffers each layer's
//! block is copied into (one, or two alternating with prefetch), and the
//! generated code that moves the blocks with the target's external DMA.

use super::*;

/// The weights placed in the target's external memory because they did not
/// fit the home memory beside the activation arena (docs/l3-weights.md).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WeightStaging {
    /// The external memory (`.hwm`: `external`, `holds weights`, with a DMA
    /// to the host unit's compute memory).
    pub memory: String,
    /// The home memory (the host unit's compute memory), which holds the
    /// staging buffer.
    pub home: String,
    /// Bytes of its image: one block per staged layer.
    pub image_bytes: usize,
    /// The home memory's staging buffer: the largest block (serial), or two
    /// buffers one after the other, each the largest block it takes
    /// (prefetch).
    pub buffer_bytes: usize,
    /// Double-buffered: each staged layer's block is copied while the
    /// layers before it run, into the buffer the previous staged layer does
    /// not use; else each layer copies its block into the one buffer
    /// before it runs.
    pub prefetch: bool,
    /// Bytes of the constant arrays left in the home memory.
    pub resident_bytes: usize,
    /// Per layer of the mapping (zero bytes: nothing staged).
    pub layers: Vec<LayerStaging>,
}

impl WeightStaging {
    /// The `--explain` lines of layer `li`: for its own staged weights the
    /// bytes, DMA commands and the cycles its estimate gains (with
    /// prefetch, the transfer's cycles and how many of them the layers
    /// since its start hide); and one line per later layer whose transfer
    /// it starts.
    pub fn describe(&self, li: usize) -> Vec<String> {
        let mut out = Vec::new();
        let commands = |s: &LayerStaging| {
            format!("{} DMA command{}", s.commands, if s.commands == 1 { "" } else { "s" })
        };
        let buffer = |s: &LayerStaging| format!("{} staging buffer {} of 2", self.home, s.buffer + 1);
        if let Some(s) = self.layers.get(li).filter(|s| s.bytes > 0) {
            out.push(match (self.prefetch, s.started_in == li) {
                (false, _) => format!(
                    "weights: {} B staged from {} into the {} staging buffer before the layer: {}, +{:.0} cycles",
                    s.bytes,
                    self.memory,
                    self.home,
                    commands(s),
                    s.charged_cycles
                ),
                (true, true) => format!(
                    "weights: {} B staged from {} into {} before the layer: {}, +{:.0} cycles",
                    s.bytes,
                    self.memory,
                    buffer(s),
                    commands(s),
                    s.charged_cycles
                ),
                (true, false) => format!(
                    "weights: {} B staged from {} into {}, prefetched since layer {}: {}, {:.0} cycles, {:.0} hidden behind {}, +{:.0} cycles",
                    s.bytes,
                    self.memory,
                    buffer(s),
                    s.started_in,
                    commands(s),
                    s.cycles,
                    s.hidden_cycles,
                    if s.started_in + 1 == li {
                        format!("layer {}", s.started_in)
                    } else {
                        format!("layers {}..{}", s.started_in, li - 1)
                    },
                    s.charged_cycles
                ),
            });
        }
        for (k, s) in
            self.layers.iter().enumerate().filter(|&(k, s)| s.bytes > 0 && s.started_in == li && k != li)
        {
            out.push(format!(
                "prefetch: starts the weights of layer {k} ({} B) from {} into {} while it runs",
                s.bytes,
                self.memory,
                buffer(s)
            ));
        }
        out
    }
}

/// The emitter's error when the home memory cannot hold the arena beside
/// what the code needs there too (the weights' staging buffer, the tiled
/// layers' output stage): `short` bytes short. The compile may then spill
/// activations to shrink the arena and try again (crate::spill).
#[derive(Debug)]
pub struct HomeMemoryShort {
    pub short: usize,
    pub message: String,
}

impl std::fmt::Display for HomeMemoryShort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for HomeMemoryShort {}

/// One layer's block of staged weights.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LayerStaging {
    /// The staged constant arrays and their offsets in the block (and in
    /// the staging buffer).
    pub arrays: Vec<(String, usize)>,
    /// Where the block starts in the external memory's image.
    pub image_offset: usize,
    /// Where the block starts in the staging buffer (the second buffer's
    /// offset for odd staged layers when prefetching, else 0), and which
    /// buffer it is (0 or 1).
    pub buffer_offset: usize,
    pub buffer: usize,
    /// The layer whose code starts the transfer: this one (serial, or the
    /// first staged layer when it is layer 0), else the previous staged
    /// layer (the first: layer 0). The emulation counts the commands there.
    pub started_in: usize,
    /// Bytes moved, DMA commands (split at the DMA's `max`) and their cycles
    /// (per command setup and overhead, plus bytes over bandwidth).
    pub bytes: u64,
    pub commands: u64,
    pub cycles: f64,
    /// Of those cycles, the ones hidden behind the estimates of the layers
    /// from `started_in` to the one before this, and the rest, which the
    /// layer's estimate gains.
    pub hidden_cycles: f64,
    pub charged_cycles: f64,
    /// Per byte the DMA's energy plus both memories' (as the cost model
    /// charges a tile transfer).
    pub energy_pj: f64,
}

/// The target's memory for weights that do not fit the home memory: an
/// `external` memory that `holds weights`, other than the host unit's
/// compute memory, with a DMA to it (the first in file order).
pub fn external_weights_memory(hw: &HwModel) -> Option<(&match_dsl::model::Memory, &match_dsl::model::Dma)> {
    let home = &hw.host_unit().compute_in;
    hw.memories
        .iter()
        .filter(|m| {
            m.external && &m.name != home && m.holds.contains(&match_dsl::model::TensorClass::Weights)
        })
        .find_map(|m| hw.dma(&m.name, home).map(|d| (m, d)))
}

/// Chooses the constant arrays that go to the external weight memory when
/// the home memory cannot hold `base` bytes (the activation arena and the
/// tiled layers' output stage) plus every array: the largest arrays first,
/// until the arrays left plus the staging buffer (the largest layer's block
/// of staged arrays) fit. Arrays only the copy-out reads (`pinned_text`)
/// stay. `None` when everything fits, or the target has no such memory (the
/// compile's memory check reports it). Errors name the layer and the array
/// that do not fit even so, and by how much.
pub(super) fn place_weights(
    hw: &HwModel,
    prefix: &str,
    arrays: &[Array],
    layers: &[PendingLayer],
    pinned_text: &str,
    base: usize,
) -> anyhow::Result<Option<WeightStaging>> {
    let Some(home) = hw.memory(&hw.host_unit().compute_in) else { return Ok(None) };
    let total: usize = arrays.iter().map(|a| a.bytes).sum();
    let usable = home.usable() as usize;
    if base + total <= usable {
        return Ok(None);
    }
    let Some((ext, dma)) = external_weights_memory(hw) else { return Ok(None) };
    let index: HashMap<&str, usize> = arrays.iter().enumerate().map(|(i, a)| (a.name.as_str(), i)).collect();
    let refs_of = |text: &str| -> std::collections::BTreeSet<usize> {
        identifiers(text).into_iter().filter_map(|(a, b)| index.get(&text[a..b]).copied()).collect()
    };
    let refs: Vec<std::collections::BTreeSet<usize>> =
        layers.iter().map(|l| refs_of(&format!("{}\n{}", l.funcs, l.body))).collect();
    let pinned = refs_of(pinned_text);
    let mut candidates: Vec<usize> =
        (0..arrays.len()).filter(|i| !pinned.contains(i) && refs.iter().any(|r| r.contains(i))).collect();
    candidates.sort_by_key(|&i| (std::cmp::Reverse(arrays[i].bytes), i));
    // A layer's block: its staged arrays in index order, 16-byte aligned.
    let block = |r: &std::collections::BTreeSet<usize>, staged: &[bool]| -> Vec<(usize, usize)> {
        let mut off = 0usize;
        let mut out = Vec::new();
        for &i in r.iter().filter(|&&i| staged[i]) {
            off = off.div_ceil(crate::plan::ALIGN) * crate::plan::ALIGN;
            out.push((i, off));
            off += arrays[i].bytes;
        }
        out
    };
    let block_bytes = |b: &[(usize, usize)]| b.last().map_or(0, |&(i, off)| off + arrays[i].bytes);
    // Stage the largest arrays until the arrays left and one staging buffer
    // fit (serial); go on, while no two buffers fit, to the first placement
    // where two do (prefetch).
    let mut staged = vec![false; arrays.len()];
    let mut resident = total;
    let mut need = (base + total, 0usize, 0usize);
    let mut serial: Option<(Vec<bool>, usize)> = None;
    let mut double: Option<(Vec<bool>, usize)> = None;
    for &c in &candidates {
        staged[c] = true;
        resident -= arrays[c].bytes;
        let blocks: Vec<usize> = refs.iter().map(|r| block_bytes(&block(r, &staged))).collect();
        if serial.is_none() {
            let (largest, stage) = blocks
                .iter()
                .copied()
                .enumerate()
                .max_by_key(|&(li, b)| (b, std::cmp::Reverse(li)))
                .unwrap_or((0, 0));
            need = (base + resident + stage, largest, stage);
            if need.0 <= usable {
                serial = Some((staged.clone(), resident));
            }
        }
        if serial.is_some() && base + resident + double_buffers(&blocks).iter().sum::<usize>() <= usable {
            double = Some((staged.clone(), resident));
            break;
        }
    }
    let Some((serial_staged, serial_resident)) = serial else {
        let (need, largest, stage) = need;
        let r = refs.get(largest).cloned().unwrap_or_default();
        let big = r.iter().max_by_key(|&&i| arrays[i].bytes).map(|&i| &arrays[i]);
        return Err(HomeMemoryShort {
            short: need - usable,
            message: format!(
                "model `{prefix}` does not fit target `{}` even with its weights in `{}`: the activation arena ({base} B) plus the weights left in `{}` ({resident} B) plus the staging buffer for layer `{}` ({stage} B; its largest constant is {} of {} B) = {need} B, but memory `{}` has {usable} B usable: {} B short",
                hw.name,
                ext.name,
                home.name,
                layers.get(largest).map_or("", |l| l.name.as_str()),
                big.map_or(String::new(), |a| a.what.clone()),
                big.map_or(0, |a| a.bytes),
                home.name,
                need - usable
            ),
        }
        .into());
    };
    let max = crate::cost::dma_max(dma);
    // The staging of a placement, serial or prefetched.
    let staging = |staged: &[bool], resident: usize, prefetch: bool| -> WeightStaging {
        let mut out = WeightStaging {
            memory: ext.name.clone(),
            home: home.name.clone(),
            resident_bytes: resident,
            prefetch,
            ..Default::default()
        };
        for r in &refs {
            let b = block(r, staged);
            let bytes = block_bytes(&b);
            let mut s = LayerStaging {
                arrays: b.iter().map(|&(i, off)| (arrays[i].name.clone(), off)).collect(),
                image_offset: out.image_bytes,
                started_in: out.layers.len(),
                bytes: bytes as u64,
                ..Default::default()
            };
            if bytes > 0 {
                crate::cost::split_command(max, bytes as u64, 1, 1, &mut |_| s.commands += 1);
                let len = bytes as i64;
                s.cycles = crate::cost::dma_cycles(dma, &[len], &[len], 1.0);
                s.energy_pj = bytes as f64
                    * [dma.energy_per_byte, ext.energy_per_byte, home.energy_per_byte]
                        .iter()
                        .map(|e| e.unwrap_or(0.0))
                        .sum::<f64>();
                out.image_bytes = (out.image_bytes + bytes).div_ceil(crate::plan::ALIGN) * crate::plan::ALIGN;
            }
            out.layers.push(s);
        }
        let blocks: Vec<usize> = out.layers.iter().map(|s| s.bytes as usize).collect();
        if prefetch {
            // The k-th staged layer's block goes into buffer k % 2; its
            // transfer starts in the previous staged layer (the first: in
            // layer 0), after that layer's own wait, and runs behind the
            // layers from there on.
            let buffers = double_buffers(&blocks);
            out.buffer_bytes = buffers.iter().sum();
            let mut previous: Option<usize> = None;
            for (k, li) in (0..out.layers.len()).filter(|&li| blocks[li] > 0).enumerate() {
                let from = previous.unwrap_or(0);
                let hidden: f64 = layers[from..li].iter().map(|l| l.cycles.max(0.0)).sum();
                let s = &mut out.layers[li];
                s.buffer = k % 2;
                s.buffer_offset = if k % 2 == 0 { 0 } else { buffers[0] };
                s.started_in = from;
                s.hidden_cycles = hidden.min(s.cycles);
                s.charged_cycles = s.cycles - s.hidden_cycles;
                previous = Some(li);
            }
        } else {
            out.buffer_bytes = blocks.iter().copied().max().unwrap_or(0);
            for s in &mut out.layers {
                s.charged_cycles = s.cycles;
            }
        }
        out
    };
    let added = |st: &WeightStaging| st.layers.iter().map(|s| s.charged_cycles).sum::<f64>();
    // Prefetch when it lowers the estimate (it may stage more arrays than
    // the serial placement, whose transfers it must then hide) and its
    // image fits the external memory.
    let serial = staging(&serial_staged, serial_resident, false);
    let out = match double.map(|(staged, resident)| staging(&staged, resident, true)) {
        Some(p) if added(&p) < added(&serial) && p.image_bytes as u64 <= ext.usable() => p,
        _ => serial,
    };
    if out.image_bytes as u64 > ext.usable() {
        bail!(
            "the weights of `{prefix}` placed in `{}` take {} B, but it has {} B usable: {} B short",
            ext.name,
            out.image_bytes,
            ext.usable(),
            out.image_bytes as u64 - ext.usable()
        );
    }
    Ok(Some(out))
}

/// The two staging buffers of prefetched blocks (`blocks`: bytes per
/// layer, zero when it stages nothing): the k-th staged layer uses buffer
/// k % 2, so each is as large as its largest block; the first is rounded up
/// to the alignment, as the second starts after it.
pub(super) fn double_buffers(blocks: &[usize]) -> [usize; 2] {
    let mut b = [0usize; 2];
    for (k, &bytes) in blocks.iter().filter(|&&b| b > 0).enumerate() {
        b[k % 2] = b[k % 2].max(bytes);
    }
    b[0] = b[0].div_ceil(crate::plan::ALIGN) * crate::plan::ALIGN;
    b
}

/// The C name of the external memory's image of staged weights.
pub(super) fn external_image(prefix: &str, memory: &str) -> String {
    format!("{prefix}_{}", c_identifier(memory).to_lowercase())
}

/// The L3 DMA code of layer `li` (`names`: the layers' C names): its own
/// block's copy into its staging buffer and the wait when the transfer
/// starts here (serial), or only the wait when an earlier layer started it
/// (prefetch); then the start, without a wait, of each later layer's block
/// whose transfer this layer starts.
pub(super) fn staging_code(
    prefix: &str,
    image: &str,
    dma: &match_dsl::model::Dma,
    st: &WeightStaging,
    li: usize,
    names: &[&str],
) -> String {
    let mut c = String::new();
    let from = comment(&dma.from);
    let into = |s: &LayerStaging| {
        if st.prefetch {
            format!("staging buffer {} of 2", s.buffer + 1)
        } else {
            "the staging buffer".to_string()
        }
    };
    if let Some(s) = st.layers.get(li).filter(|s| s.bytes > 0) {
        if s.started_in == li {
            let _ = writeln!(
                c,
                "    /* Its weights from {from} into {} ({} B, {} command(s), ~{} cycles), before it runs. */",
                into(s),
                s.bytes,
                s.commands,
                s.cycles.round()
            );
            c.push_str(&staging_starts(prefix, image, dma, s));
        } else {
            let _ = writeln!(
                c,
                "    /* Its weights, prefetched from {from} into {} since {}: wait for them ({} B, ~{} cycles, ~{} of them hidden). */",
                into(s),
                names.get(s.started_in).copied().unwrap_or("?"),
                s.bytes,
                s.cycles.round(),
                s.hidden_cycles.round()
            );
        }
        let _ = writeln!(c, "    {}(0);", dma.wait);
    }
    for (k, s) in st.layers.iter().enumerate().filter(|&(k, s)| s.bytes > 0 && s.started_in == li && k != li)
    {
        let _ = writeln!(
            c,
            "    /* Prefetch: the weights of {} from {from} into {} ({} B, {} command(s), ~{} cycles), while this layer runs. */",
            names.get(k).copied().unwrap_or("?"),
            into(s),
            s.bytes,
            s.commands,
            s.cycles.round()
        );
        c.push_str(&staging_starts(prefix, image, dma, s));
    }
    c
}

/// The commands copying a layer's block from the external memory's image
/// into its staging buffer: at most the DMA's `max` bytes each, in the
/// order of [`crate::cost::split_command`], on channel 0.
pub(super) fn staging_starts(
    prefix: &str,
    image: &str,
    dma: &match_dsl::model::Dma,
    s: &LayerStaging,
) -> String {
    let mut c = String::new();
    let mut off = 0u64;
    crate::cost::split_command(crate::cost::dma_max(dma), s.bytes, 1, 1, &mut |cmd| {
        let run = cmd.bytes();
        let _ = writeln!(
            c,
            "    {}({prefix}_wstage + {}, {image} + {}, {run}u, 1u, {run}u, {run}u, 1u, 0u, 0u, 0);",
            dma.start,
            s.buffer_offset as u64 + off,
            s.image_offset as u64 + off
        );
        off += run;
    });
    c
}

/// The declarations of the staging buffer (home memory) and of the
/// external memory's image, when weights are staged.
pub(super) fn weight_staging_decls(
    model_c: &mut String,
    p: &str,
    staging: Option<&WeightStaging>,
    home_mem: &str,
    arena_decl: &impl Fn(&str, &str, usize, &mut Vec<(String, String, usize)>) -> String,
    allocs: &mut Vec<(String, String, usize)>,
) {
    let Some(st) = staging else { return };
    let _ = writeln!(
        model_c,
        "/* The weights placed in {}: their image there, and the buffer each layer's block is copied into before it runs. */\n{}\n{}\n",
        comment(&st.memory),
        arena_decl(&external_image(p, &st.memory), &st.memory, st.image_bytes.max(1), allocs),
        arena_decl(&format!("{p}_wstage"), home_mem, st.buffer_bytes.max(1), allocs)
    );
}
