//! `TensorProto` and element types: checked conversion to IR data. Every
//! size is validated before anything is allocated: a dimension product that
//! overflows or exceeds 2^31 elements, and data whose length does not match
//! the dimensions, are errors.

use super::proto::TensorProto;
use crate::ir::{DType, Data};
use anyhow::{bail, Context, Result};

/// Largest element count accepted for any tensor.
pub const MAX_ELEMENTS: usize = 1 << 31;

/// The IR type of an ONNX `TensorProto.DataType`.
pub fn dtype(elem: i32) -> Result<DType> {
    Ok(match elem {
        1 => DType::F32,
        2 => DType::U8,
        3 => DType::I8,
        5 => DType::I16,
        6 => DType::I32,
        7 => DType::I64,
        _ => bail!("unsupported element type {} ({})", elem, elem_name(elem)),
    })
}

/// The ONNX element type of an IR type (for messages).
pub fn elem_name(elem: i32) -> &'static str {
    match elem {
        0 => "UNDEFINED",
        1 => "FLOAT",
        2 => "UINT8",
        3 => "INT8",
        4 => "UINT16",
        5 => "INT16",
        6 => "INT32",
        7 => "INT64",
        8 => "STRING",
        9 => "BOOL",
        10 => "FLOAT16",
        11 => "DOUBLE",
        12 => "UINT32",
        13 => "UINT64",
        16 => "BFLOAT16",
        _ => "unknown",
    }
}

/// Checked shape: every dimension non-negative, the product at most
/// [`MAX_ELEMENTS`].
pub fn shape(dims: &[i64]) -> Result<Vec<usize>> {
    let mut n: usize = 1;
    let mut out = Vec::with_capacity(dims.len().min(16));
    if dims.len() > 16 {
        bail!("tensor of rank {} (at most 16 supported)", dims.len());
    }
    for &d in dims {
        let d = usize::try_from(d).ok().with_context(|| format!("negative dimension {d}"))?;
        n = n
            .checked_mul(d)
            .filter(|&n| n <= MAX_ELEMENTS)
            .with_context(|| format!("shape {dims:?} has too many elements (at most 2^31)"))?;
        out.push(d);
    }
    Ok(out)
}

/// Element count of a shape already checked by [`shape`] (saturating).
pub fn count(shape: &[usize]) -> usize {
    shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).unwrap_or(usize::MAX)
}

/// A decoded constant.
#[derive(Clone, Debug)]
pub struct Const {
    pub shape: Vec<usize>,
    pub data: Data,
}

/// Converts a `TensorProto` to IR data, checking its length.
pub fn decode(t: &TensorProto) -> Result<Const> {
    let name = if t.name.is_empty() { "<unnamed>" } else { t.name.as_str() };
    decode_inner(t).with_context(|| format!("tensor `{name}`"))
}

fn decode_inner(t: &TensorProto) -> Result<Const> {
    if t.data_location == 1 || !t.external_data.is_empty() {
        bail!("external data is not supported: embed the weights in the model");
    }
    let dt = dtype(t.data_type)?;
    let shape = shape(&t.dims)?;
    let n = count(&shape);
    let data = if !t.raw_data.is_empty() {
        let want = n.checked_mul(dt.size()).context("size overflow")?;
        if t.raw_data.len() != want {
            bail!("raw_data holds {} bytes, but {} elements of {} need {}", t.raw_data.len(), n, dt, want);
        }
        Data::from_le_bytes(dt, &t.raw_data).context("raw_data length")?
    } else {
        let typed_len = match dt {
            DType::F32 => t.float_data.len(),
            DType::I64 => t.int64_data.len(),
            _ => t.int32_data.len(),
        };
        if typed_len != n {
            bail!("holds {typed_len} values, but its shape {shape:?} needs {n}");
        }
        let narrow = |lo: i64, hi: i64| -> Result<Vec<i64>> {
            t.int32_data
                .iter()
                .map(|&v| {
                    let v = v as i64;
                    if v < lo || v > hi {
                        bail!("value {v} out of range of {dt}");
                    }
                    Ok(v)
                })
                .collect()
        };
        match dt {
            DType::F32 => Data::F32(t.float_data.clone()),
            DType::I64 => Data::I64(t.int64_data.clone()),
            DType::I32 => Data::I32(t.int32_data.clone()),
            DType::I16 => Data::from_i64(dt, &narrow(-32768, 32767)?),
            DType::I8 => Data::from_i64(dt, &narrow(-128, 127)?),
            DType::U8 => Data::from_i64(dt, &narrow(0, 255)?),
        }
    };
    Ok(Const { shape, data })
}

/// f32 contents of a float constant.
pub fn as_f32(d: &Data) -> Option<Vec<f32>> {
    match d {
        Data::F32(v) => Some(v.clone()),
        _ => None,
    }
}

/// Permutes row-major `data` of `shape` by `perm` (output axis i is input
/// axis perm[i]).
pub fn transpose(data: &Data, shape: &[usize], perm: &[usize]) -> Data {
    fn go<T: Copy>(v: &[T], shape: &[usize], perm: &[usize]) -> Vec<T> {
        let rank = shape.len();
        let mut in_strides = vec![1usize; rank];
        for i in (0..rank.saturating_sub(1)).rev() {
            in_strides[i] = in_strides[i + 1] * shape[i + 1];
        }
        let out_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
        let n = v.len();
        let mut out = Vec::with_capacity(n);
        let mut idx = vec![0usize; rank];
        for _ in 0..n {
            let off: usize = (0..rank).map(|i| idx[i] * in_strides[perm[i]]).sum();
            out.push(v[off]);
            for i in (0..rank).rev() {
                idx[i] += 1;
                if idx[i] < out_shape[i] {
                    break;
                }
                idx[i] = 0;
            }
        }
        out
    }
    match data {
        Data::I8(v) => Data::I8(go(v, shape, perm)),
        Data::U8(v) => Data::U8(go(v, shape, perm)),
        Data::I16(v) => Data::I16(go(v, shape, perm)),
        Data::I32(v) => Data::I32(go(v, shape, perm)),
        Data::I64(v) => Data::I64(go(v, shape, perm)),
        Data::F32(v) => Data::F32(go(v, shape, perm)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked() {
        assert!(shape(&[-1]).is_err());
        assert!(shape(&[1 << 20, 1 << 20]).is_err());
        assert!(shape(&[i64::MAX, i64::MAX]).is_err());
        assert_eq!(shape(&[2, 3]).unwrap(), vec![2, 3]);
    }

    #[test]
    fn raw_length_mismatch_is_an_error() {
        let t = TensorProto { dims: vec![4], data_type: 6, raw_data: vec![0; 15], ..Default::default() };
        assert!(decode(&t).is_err());
        let t = TensorProto { dims: vec![2], data_type: 3, int32_data: vec![1, 300], ..Default::default() };
        assert!(decode(&t).is_err());
        let t = TensorProto { dims: vec![2], data_type: 3, int32_data: vec![1, -3], ..Default::default() };
        assert_eq!(decode(&t).unwrap().data, Data::I8(vec![1, -3]));
    }

    #[test]
    fn transpose_2d() {
        let d = Data::I32(vec![1, 2, 3, 4, 5, 6]);
        assert_eq!(transpose(&d, &[2, 3], &[1, 0]), Data::I32(vec![1, 4, 2, 5, 3, 6]));
    }
}
