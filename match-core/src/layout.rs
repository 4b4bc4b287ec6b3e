//! Weight layouts: applies a `.hwm` `weight_layout` (a list of
//! [`LayoutStep`]s, docs/hwm.md "Layouts") to a layer's constant weights,
//! one output-channel tile at a time, giving the bytes the unit reads.
//!
//! The encoder is generic over the steps: a new target's layout needs no
//! code here. Weights start as `(K, C, FY, FX)` (the IR holds OHWI, dense
//! `(K, C)` with FY = FX = 1); an empty layout means "as held", the IR's own
//! bytes. The same walk runs on shapes only ([`encoded_size`]) so the cost
//! model and the emitter agree on the bytes of every weight tile.
//!
//! Conventions where docs/hwm.md leaves a choice (stated here once):
//! - `split` and `bitplanes` put their new dimension innermost of the old
//!   one (`split`: right after it; `bitplanes`: last); a following `order`
//!   places it. `split` pads its dimension with zeros to a multiple first.
//! - values are integers of `bits` bits; bytes are two's complement, little
//!   endian (`expand` therefore sign-extends a signed value); elements
//!   narrower than a byte (after `bitplanes`, `ternary_pairs`) are packed
//!   least significant first along the innermost dimension when bytes are
//!   made (`pack(n)` does it explicitly).
//! - `ternary_pairs` codes w = +1 as 0b01 (w+), w = -1 as 0b10 (w-), 0 as 0.
//! - `append_bias(n)` needs the outermost dimension to hold output
//!   channels (K or its outer part after a `split`); it turns the tensor into
//!   a flat byte stream: each block of `n` channels, then their int32 biases
//!   (little endian; zero for padded channels).
//! - `reverse_bytes(n)` reverses each `n`-byte word of the byte stream.

use match_dsl::model::LayoutStep;

/// One dimension of the tensor being laid out.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Dim {
    name: String,
    size: usize,
    /// Output channels per index when the dimension holds (the outer part
    /// of) the output channels; travels with the contents through `swap`.
    k_per: Option<usize>,
}

/// The tensor between steps: dimensions outer to inner and, unless only
/// shapes are followed, the values row-major.
#[derive(Clone, Debug)]
struct T {
    dims: Vec<Dim>,
    data: Option<Vec<i64>>,
    bits: u32,
    /// A flat byte stream (after `append_bias`): no named dimensions left.
    flat: bool,
    bias: Option<Vec<i64>>,
}

/// A layer's weights as the layout sees them: `(K, C, FY, FX)` row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Weights {
    pub k: usize,
    pub c: usize,
    pub fy: usize,
    pub fx: usize,
    /// Bits per value as held (8 for int8).
    pub bits: u32,
    pub data: Vec<i64>,
}

impl Weights {
    /// From the IR's OHWI conv weights `(K, FY, FX, C)` (depthwise: C = 1).
    pub fn from_ohwi(w: &[i64], k: usize, fy: usize, fx: usize, c: usize, bits: u32) -> Weights {
        let mut data = vec![0; k * c * fy * fx];
        for o in 0..k {
            for y in 0..fy {
                for x in 0..fx {
                    for i in 0..c {
                        data[((o * c + i) * fy + y) * fx + x] = w[((o * fy + y) * fx + x) * c + i];
                    }
                }
            }
        }
        Weights { k, c, fy, fx, bits, data }
    }

    /// From dense weights `(K, C)`.
    pub fn from_dense(w: &[i64], k: usize, c: usize, bits: u32) -> Weights {
        Weights { k, c, fy: 1, fx: 1, bits, data: w.to_vec() }
    }

    /// Output channels `k0 .. k0 + tk`.
    pub fn slice_k(&self, k0: usize, tk: usize) -> Weights {
        let per = self.c * self.fy * self.fx;
        Weights { k: tk, data: self.data[k0 * per..(k0 + tk) * per].to_vec(), ..self.clone() }
    }

    /// The bytes as the IR holds them (OHWI), for an empty layout.
    fn ohwi_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.data.len());
        for o in 0..self.k {
            for y in 0..self.fy {
                for x in 0..self.fx {
                    for i in 0..self.c {
                        let v = self.data[((o * self.c + i) * self.fy + y) * self.fx + x];
                        out.extend(to_bytes(v, self.bits.max(8).div_ceil(8) * 8));
                    }
                }
            }
        }
        out
    }
}

fn mask(bits: u32) -> i64 {
    if bits >= 63 {
        -1
    } else {
        (1i64 << bits) - 1
    }
}

fn to_bytes(v: i64, bits: u32) -> Vec<u8> {
    (0..bits / 8).map(|b| ((v >> (8 * b)) & 0xff) as u8).collect()
}

impl T {
    fn pos(&self, name: &str) -> Result<usize, String> {
        if self.flat {
            return Err(format!("dimension `{name}` after `append_bias` (the weights are bytes by then)"));
        }
        self.dims.iter().position(|d| d.name == name).ok_or_else(|| {
            let have: Vec<&str> = self.dims.iter().map(|d| d.name.as_str()).collect();
            format!("unknown dimension `{name}` (have {})", have.join(", "))
        })
    }

    fn len(&self) -> usize {
        self.dims.iter().map(|d| d.size).product()
    }

    /// Permutes the axes: new axis i is old axis `perm[i]`.
    fn permute(&mut self, perm: &[usize]) {
        let old: Vec<usize> = self.dims.iter().map(|d| d.size).collect();
        let mut stride = vec![1usize; old.len()];
        for i in (0..old.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * old[i + 1];
        }
        let new_sizes: Vec<usize> = perm.iter().map(|&p| old[p]).collect();
        if let Some(data) = &self.data {
            let n = data.len();
            let mut out = vec![0i64; n];
            let mut idx = vec![0usize; perm.len()];
            for o in out.iter_mut() {
                let src: usize = idx.iter().zip(perm).map(|(&i, &p)| i * stride[p]).sum();
                *o = data[src];
                for a in (0..idx.len()).rev() {
                    idx[a] += 1;
                    if idx[a] < new_sizes[a] {
                        break;
                    }
                    idx[a] = 0;
                }
            }
            self.data = Some(out);
        }
        self.dims = perm.iter().map(|&p| self.dims[p].clone()).collect();
    }

    /// Pads axis `a` with zeros to `to` entries.
    fn pad_axis(&mut self, a: usize, to: usize) {
        let from = self.dims[a].size;
        if to == from {
            return;
        }
        let outer: usize = self.dims[..a].iter().map(|d| d.size).product();
        let inner: usize = self.dims[a + 1..].iter().map(|d| d.size).product();
        if let Some(data) = &self.data {
            let mut out = vec![0i64; outer * to * inner];
            for o in 0..outer {
                let src = &data[o * from * inner..(o + 1) * from * inner];
                out[o * to * inner..o * to * inner + from * inner].copy_from_slice(src);
            }
            self.data = Some(out);
        }
        self.dims[a].size = to;
    }

    /// The byte stream of the tensor as it stands.
    fn bytes(&self) -> Result<Vec<u8>, String> {
        let data = self.data.as_deref().unwrap_or(&[]);
        if self.bits >= 8 {
            if !self.bits.is_multiple_of(8) {
                return Err(format!("elements of {} bits are not whole bytes (use `pack`)", self.bits));
            }
            return Ok(data.iter().flat_map(|&v| to_bytes(v, self.bits)).collect());
        }
        if 8 % self.bits != 0 {
            return Err(format!("elements of {} bits do not pack into bytes", self.bits));
        }
        let per = (8 / self.bits) as usize;
        let inner = self.dims.last().map_or(1, |d| d.size);
        let rows = data.len() / inner.max(1);
        let mut out = Vec::new();
        for r in 0..rows {
            for chunk in data[r * inner..(r + 1) * inner].chunks(per) {
                let mut b = 0u8;
                for (j, &v) in chunk.iter().enumerate() {
                    b |= ((v & mask(self.bits)) as u8) << (j as u32 * self.bits);
                }
                out.push(b);
            }
        }
        Ok(out)
    }

    /// Bytes of the tensor (shape only).
    fn byte_len(&self) -> Result<usize, String> {
        if self.flat {
            return Ok(self.len());
        }
        if self.bits >= 8 {
            if !self.bits.is_multiple_of(8) {
                return Err(format!("elements of {} bits are not whole bytes (use `pack`)", self.bits));
            }
            return Ok(self.len() * (self.bits / 8) as usize);
        }
        if 8 % self.bits != 0 {
            return Err(format!("elements of {} bits do not pack into bytes", self.bits));
        }
        let per = (8 / self.bits) as usize;
        let inner = self.dims.last().map_or(1, |d| d.size).max(1);
        Ok(self.len() / inner * inner.div_ceil(per))
    }

    /// Turns the tensor into its byte stream (one dimension `bytes`).
    fn flatten_bytes(&mut self) -> Result<(), String> {
        let n = self.byte_len()?;
        if self.data.is_some() && !self.flat {
            self.data = Some(self.bytes()?.into_iter().map(i64::from).collect());
        }
        self.dims = vec![Dim { name: "bytes".into(), size: n, k_per: None }];
        self.bits = 8;
        self.flat = true;
        Ok(())
    }

    fn step(&mut self, s: &LayoutStep) -> Result<(), String> {
        match s {
            LayoutStep::Order(names) => {
                if self.flat {
                    return Err("`order` after `append_bias`".into());
                }
                if names.len() != self.dims.len() {
                    return Err(format!("`order` names {} of {} dimensions", names.len(), self.dims.len()));
                }
                let perm = names.iter().map(|n| self.pos(n)).collect::<Result<Vec<_>, _>>()?;
                self.permute(&perm);
            }
            LayoutStep::Swap(a, b) => {
                let (ia, ib) = (self.pos(a)?, self.pos(b)?);
                let mut perm: Vec<usize> = (0..self.dims.len()).collect();
                perm.swap(ia, ib);
                self.permute(&perm);
                // The names keep their places; the contents (and what they hold) moved.
                self.dims[ia].name = a.clone();
                self.dims[ib].name = b.clone();
            }
            LayoutStep::Pad(d, m) => {
                let a = self.pos(d)?;
                let m = (*m).max(1) as usize;
                self.pad_axis(a, self.dims[a].size.div_ceil(m) * m);
            }
            LayoutStep::Split(d, n, new) => {
                let a = self.pos(d)?;
                let n = (*n).max(1) as usize;
                self.pad_axis(a, self.dims[a].size.div_ceil(n) * n);
                let k_per = self.dims[a].k_per;
                self.dims[a].size /= n;
                self.dims[a].k_per = k_per.map(|p| p * n);
                self.dims.insert(a + 1, Dim { name: new.clone(), size: n, k_per });
            }
            LayoutStep::Merge(a, b, new) => {
                let (ia, ib) = (self.pos(a)?, self.pos(b)?);
                if ib != ia + 1 {
                    return Err(format!("`merge` needs `{a}` directly before `{b}`"));
                }
                let size = self.dims[ia].size * self.dims[ib].size;
                let k_per = if self.dims[ia].k_per.is_some() && self.dims[ib].k_per.is_some() {
                    self.dims[ib].k_per
                } else {
                    None
                };
                self.dims[ia] = Dim { name: new.clone(), size, k_per };
                self.dims.remove(ib);
            }
            LayoutStep::Offset(v) => {
                let m = mask(self.bits);
                if let Some(d) = &mut self.data {
                    d.iter_mut().for_each(|x| *x = x.wrapping_add(*v) & m);
                }
            }
            LayoutStep::Bitplanes(b) => {
                if self.flat {
                    return Err("`bitplanes` after `append_bias`".into());
                }
                let b = *b as usize;
                let m = mask(self.bits);
                if let Some(d) = &self.data {
                    let mut out = Vec::with_capacity(d.len() * b);
                    for &x in d {
                        out.extend((0..b).map(|i| ((x & m) >> i) & 1));
                    }
                    self.data = Some(out);
                }
                self.dims.push(Dim { name: "B".into(), size: b, k_per: None });
                self.bits = 1;
            }
            LayoutStep::Pack(n) => {
                if self.flat {
                    return Err("`pack` after `append_bias`".into());
                }
                let n = (*n).max(1) as usize;
                if self.bits as usize * n > 8 {
                    return Err(format!("`pack({n})` of {}-bit elements does not fit a byte", self.bits));
                }
                let last = self.dims.len() - 1;
                self.pad_axis(last, self.dims[last].size.div_ceil(n) * n);
                let bits = self.bits;
                if let Some(d) = &self.data {
                    let m = mask(bits);
                    let out = d
                        .chunks(n)
                        .map(|c| {
                            c.iter()
                                .enumerate()
                                .fold(0i64, |acc, (j, &v)| acc | ((v & m) << (j as u32 * bits)))
                        })
                        .collect();
                    self.data = Some(out);
                }
                self.dims[last].size /= n;
                self.bits = 8;
            }
            LayoutStep::ReverseBytes(n) => {
                let n = (*n).max(1) as usize;
                let flat = self.flat;
                let keep = (self.dims.clone(), self.bits);
                self.flatten_bytes()?;
                if !self.len().is_multiple_of(n) {
                    return Err(format!("`reverse_bytes({n})` on {} bytes, not whole words", self.len()));
                }
                if let Some(d) = &mut self.data {
                    d.chunks_mut(n).for_each(|w| w.reverse());
                }
                if !flat && keep.1.is_multiple_of(8) {
                    // Whole-byte elements: keep the dimensions (the innermost
                    // counted in bytes) so `append_bias` still finds K.
                    let (mut dims, bits) = keep;
                    if let Some(l) = dims.last_mut() {
                        l.size *= (bits / 8) as usize;
                    }
                    self.dims = dims;
                    self.flat = false;
                }
            }
            LayoutStep::AppendBias(n) => {
                if self.flat {
                    return Err("`append_bias` needs the output channels outermost".into());
                }
                let n = (*n).max(1) as usize;
                let per = self.dims[0].k_per.ok_or_else(|| {
                    format!("`append_bias` needs the output channels outermost, not `{}`", self.dims[0].name)
                })?;
                if !n.is_multiple_of(per) {
                    return Err(format!("`append_bias({n})` over blocks of {per} output channels"));
                }
                let idx_per_block = n / per;
                let outer = self.dims[0].size;
                let total = self.byte_len()?;
                let row = total / outer.max(1);
                let bias = self.bias.clone().unwrap_or_default();
                let mut out_len = 0usize;
                let mut out = Vec::new();
                let bytes = if self.data.is_some() { Some(self.bytes()?) } else { None };
                let mut i = 0;
                while i < outer {
                    let j = (i + idx_per_block).min(outer);
                    out_len += (j - i) * row + (j - i) * per * 4;
                    if let Some(b) = &bytes {
                        out.extend(b[i * row..j * row].iter().map(|&x| i64::from(x)));
                        for ch in i * per..j * per {
                            let v = bias.get(ch).copied().unwrap_or(0);
                            let v = i32::try_from(v).map_err(|_| format!("bias {v} does not fit int32"))?;
                            out.extend(v.to_le_bytes().iter().map(|&x| i64::from(x)));
                        }
                    }
                    i = j;
                }
                self.data = bytes.map(|_| out);
                self.dims = vec![Dim { name: "bytes".into(), size: out_len, k_per: None }];
                self.bits = 8;
                self.flat = true;
            }
            LayoutStep::Expand(n) => {
                let to = 8 * *n;
                if self.bits > to {
                    return Err(format!("`expand({n})` narrows {}-bit elements", self.bits));
                }
                self.bits = to;
            }
            LayoutStep::TernaryPairs => {
                if let Some(d) = &mut self.data {
                    for x in d.iter_mut() {
                        *x = match *x {
                            1 => 0b01,
                            -1 => 0b10,
                            0 => 0,
                            v => return Err(format!("weight {v} is not ternary")),
                        };
                    }
                }
                self.bits = 2;
            }
        }
        Ok(())
    }
}

fn start(w: Option<&Weights>, k: usize, c: usize, fy: usize, fx: usize, bits: u32) -> T {
    let d = |n: &str, size: usize, k_per: Option<usize>| Dim { name: n.into(), size, k_per };
    T {
        dims: vec![d("K", k, Some(1)), d("C", c, None), d("FY", fy, None), d("FX", fx, None)],
        data: w.map(|w| w.data.clone()),
        bits,
        flat: false,
        bias: None,
    }
}

/// Encodes `w` (one output-channel tile) with `steps`; `bias` (one per
/// output channel of the tile) feeds `append_bias`.
pub fn encode(steps: &[LayoutStep], w: &Weights, bias: Option<&[i64]>) -> Result<Vec<u8>, String> {
    if w.data.len() != w.k * w.c * w.fy * w.fx {
        return Err(format!("{} weights for ({}, {}, {}, {})", w.data.len(), w.k, w.c, w.fy, w.fx));
    }
    if steps.is_empty() {
        return Ok(w.ohwi_bytes());
    }
    let mut t = start(Some(w), w.k, w.c, w.fy, w.fx, w.bits);
    t.bias = bias.map(<[i64]>::to_vec);
    for s in steps {
        t.step(s)?;
    }
    if t.flat {
        Ok(t.data.unwrap_or_default().into_iter().map(|x| x as u8).collect())
    } else {
        t.bytes()
    }
}

/// Bytes of a tile of `k` output channels of `(C, FY, FX)` weights of
/// `bits` bits laid out with `steps`: what [`encode`] returns, from the
/// shape alone.
pub fn encoded_size(
    steps: &[LayoutStep],
    k: usize,
    c: usize,
    fy: usize,
    fx: usize,
    bits: u32,
) -> Result<usize, String> {
    if steps.is_empty() {
        return Ok(k * c * fy * fx * bits.max(8).div_ceil(8) as usize);
    }
    let mut t = start(None, k, c, fy, fx, bits);
    for s in steps {
        t.step(s)?;
    }
    t.byte_len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use LayoutStep as S;

    fn s(x: &str) -> String {
        x.to_string()
    }

    /// (K, C, FY, FX) weights 0, 1, 2, ...
    fn iota(k: usize, c: usize, fy: usize, fx: usize) -> Weights {
        Weights { k, c, fy, fx, bits: 8, data: (0..(k * c * fy * fx) as i64).collect() }
    }

    fn enc(steps: &[LayoutStep], w: &Weights) -> Vec<u8> {
        let b = encode(steps, w, None).unwrap();
        assert_eq!(b.len(), encoded_size(steps, w.k, w.c, w.fy, w.fx, w.bits).unwrap(), "{steps:?}");
        b
    }

    #[test]
    fn empty_layout_is_the_ir_ohwi_bytes() {
        // (K 1, C 2, FY 1, FX 2): KCHW 0 1 / 2 3 -> OHWI 0 2 1 3
        let w = iota(1, 2, 1, 2);
        assert_eq!(enc(&[], &w), [0, 2, 1, 3]);
        let ohwi = Weights::from_ohwi(&[0, 2, 1, 3], 1, 1, 2, 2, 8);
        assert_eq!(ohwi, w);
    }

    #[test]
    fn order_permutes() {
        let w = iota(2, 3, 1, 1);
        assert_eq!(enc(&[S::Order(vec![s("C"), s("FY"), s("FX"), s("K")])], &w), [0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn swap_exchanges_contents_and_keeps_names() {
        // depthwise (K 3, C 1, FY 1, FX 2) -> (1, 3, 1, 2): same bytes, C holds the channels
        let w = iota(3, 1, 1, 2);
        let steps = [S::Swap(s("K"), s("C")), S::Pad(s("C"), 4)];
        assert_eq!(enc(&steps, &w), [0, 1, 2, 3, 4, 5, 0, 0]);
    }

    #[test]
    fn pad_and_split() {
        let w = iota(1, 3, 1, 1);
        assert_eq!(enc(&[S::Pad(s("C"), 4)], &w), [0, 1, 2, 0]);
        // split pads too, then (K, C/2, Ci 2, ..) reordered Ci outer
        let steps = [S::Split(s("C"), 2, s("Ci")), S::Order(vec![s("K"), s("Ci"), s("C"), s("FY"), s("FX")])];
        assert_eq!(enc(&steps, &w), [0, 2, 1, 0]);
    }

    #[test]
    fn merge_flattens_neighbours() {
        let w = iota(2, 2, 1, 1);
        let steps = [
            S::Order(vec![s("C"), s("FY"), s("FX"), s("K")]),
            S::Merge(s("C"), s("FY"), s("R")),
            S::Pad(s("R"), 3),
        ];
        assert_eq!(enc(&steps, &w), [0, 2, 1, 3, 0, 0]);
        assert!(encode(&[S::Merge(s("K"), s("FY"), s("R"))], &w, None).is_err());
    }

    #[test]
    fn offset_wraps_to_unsigned() {
        let w = Weights { k: 1, c: 3, fy: 1, fx: 1, bits: 8, data: vec![-128, -1, 127] };
        assert_eq!(enc(&[S::Offset(128)], &w), [0, 127, 255]);
    }

    #[test]
    fn bitplanes_then_pack() {
        // two values 0b101, 0b011 on 3 planes; planes LSB first, then the
        // two values packed into one byte per plane (value j at bit j)
        let w = Weights { k: 1, c: 2, fy: 1, fx: 1, bits: 8, data: vec![5, 3] };
        let steps = [S::Bitplanes(3), S::Order(vec![s("K"), s("FY"), s("FX"), s("B"), s("C")]), S::Pack(8)];
        // plane 0: 1,1 -> 0b11; plane 1: 0,1 -> 0b10; plane 2: 1,0 -> 0b01
        assert_eq!(enc(&steps, &w), [0b11, 0b10, 0b01]);
    }

    #[test]
    fn reverse_bytes_and_append_bias() {
        // (K 2 -> pad 4, C 1): blocks of 4 channels as one word, reversed, then 4 biases
        let w = Weights { k: 2, c: 1, fy: 1, fx: 1, bits: 8, data: vec![1, -2] };
        let steps = [
            S::Pad(s("K"), 4),
            S::Split(s("K"), 4, s("Ko")),
            S::Order(vec![s("K"), s("C"), s("FY"), s("FX"), s("Ko")]),
            S::ReverseBytes(4),
            S::AppendBias(4),
        ];
        let b = encode(&steps, &w, Some(&[7, -1])).unwrap();
        assert_eq!(b, [0, 0, 0xfe, 1, 7, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b.len(), encoded_size(&steps, 2, 1, 1, 1, 8).unwrap());
        // the output channels must be outermost
        assert!(
            encode(&[S::Order(vec![s("C"), s("K"), s("FY"), s("FX")]), S::AppendBias(4)], &w, None).is_err()
        );
    }

    #[test]
    fn expand_widens_with_sign() {
        let w = Weights { k: 1, c: 2, fy: 1, fx: 1, bits: 8, data: vec![-2, 3] };
        assert_eq!(enc(&[S::Expand(2)], &w), [0xfe, 0xff, 3, 0]);
        assert_eq!(enc(&[S::Expand(2), S::ReverseBytes(2)], &w), [0xff, 0xfe, 0, 3]);
    }

    #[test]
    fn ternary_pairs_pack_four_per_byte() {
        let w = Weights { k: 5, c: 1, fy: 1, fx: 1, bits: 8, data: vec![1, -1, 0, 1, -1] };
        let steps = [S::Order(vec![s("C"), s("FY"), s("FX"), s("K")]), S::TernaryPairs];
        // 01 | 10 << 2 | 00 << 4 | 01 << 6 = 0x49; then 10
        assert_eq!(enc(&steps, &w), [0x49, 0x02]);
        let bad = Weights { data: vec![2, 0, 0, 0, 0], ..w };
        assert!(encode(&steps, &bad, None).is_err());
    }

    #[test]
    fn slice_k_takes_whole_channels() {
        let w = iota(3, 2, 1, 1);
        assert_eq!(w.slice_k(1, 2).data, [2, 3, 4, 5]);
        assert_eq!(Weights::from_dense(&[1, 2, 3, 4], 2, 2, 8).slice_k(1, 1).data, [3, 4]);
    }
}
