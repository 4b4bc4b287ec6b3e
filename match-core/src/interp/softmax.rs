//! Quantized softmax over the last axis, exactly TFLite Micro's reference
//! `Softmax(SoftmaxParams, int8/uint8 -> int8/uint8/int16)`:
//!
//! - `input_multiplier`, `input_left_shift` from `PreprocessSoftmaxScaling(beta,
//!   input_scale, 5)` in double precision; `diff_min =
//!   -CalculateInputRadius(5, input_left_shift, 31)`.
//! - Per row: the maximum; for every element with `diff = x - max >=
//!   diff_min`, `diff` scaled by `MultiplyByQuantizedMultiplierGreaterThanOne`
//!   into Q5.26, `exp_on_negative_values` into Q0.31, rescaled to Q12.19 and
//!   summed (32-bit).
//! - `GetReciprocal(sum, 12)` gives a Q0.31 scale and the bits over the unit;
//!   each output is `RoundingDivideByPOT(scale * exp, bits + 31 - out_bits)`
//!   plus the output type's minimum (int8: zero point -128, scale 1/256),
//!   saturated; elements below `diff_min` output the type's minimum.
//!
//! The input zero point cancels in `x - max` and is not used.

use super::{to_i32, Ctx};
use crate::interp::fixedpoint::{
    calculate_input_radius, exp_on_negative_values, get_reciprocal,
    multiply_by_quantized_multiplier_greater_than_one, preprocess_softmax_scaling, rounding_divide_by_pot,
    rounding_divide_by_pot_wide, saturating_rounding_doubling_high_mul,
};
use crate::ir::{DType, Data, Tensor};
use anyhow::{bail, ensure};

const SCALED_DIFF_INTEGER_BITS: i32 = 5;
const ACCUMULATION_INTEGER_BITS: i32 = 12;

pub(super) fn softmax(ctx: &Ctx, out: &Tensor, beta: f32, input_scale: f32) -> anyhow::Result<Data> {
    let at = ctx.ins[0];
    ensure!(
        matches!(at.dtype, DType::I8 | DType::U8),
        "input '{}' must be i8 or u8, is {}",
        at.name,
        at.dtype
    );
    ensure!(
        out.shape == at.shape,
        "output '{}' is declared {:?}, input is {:?}",
        out.name,
        out.shape,
        at.shape
    );
    let (out_bits, out_min, out_max) = match out.dtype {
        DType::I8 => (8, -128i32, 127i32),
        DType::U8 => (8, 0, 255),
        DType::I16 => (16, -32768, 32767),
        other => bail!("output '{}' must be i8, u8 or i16, is {other}", out.name),
    };
    let (multiplier, left_shift) =
        preprocess_softmax_scaling(beta as f64, input_scale as f64, SCALED_DIFF_INTEGER_BITS);
    let diff_min = -calculate_input_radius(SCALED_DIFF_INTEGER_BITS, left_shift, 31);
    let depth = at.shape.last().copied().unwrap_or(1).max(1);
    let x = to_i32(ctx.inputs[0])?;
    let exp_of = |diff: i32| {
        let scaled = multiply_by_quantized_multiplier_greater_than_one(diff, multiplier, left_shift);
        exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS)
    };
    let mut o = Vec::with_capacity(x.len());
    for row in x.chunks(depth) {
        let max = row.iter().copied().max().unwrap_or(0);
        let mut sum = 0i32;
        for &v in row {
            let diff = v - max;
            if diff >= diff_min {
                // Q0.31 -> Q12.19.
                sum = sum.wrapping_add(rounding_divide_by_pot(exp_of(diff), ACCUMULATION_INTEGER_BITS));
            }
        }
        let (scale, bits_over_unit) = get_reciprocal(sum, ACCUMULATION_INTEGER_BITS);
        // Past 31 when the sum reaches 512 (8-bit outputs): see
        // `rounding_divide_by_pot_wide`.
        let exponent = bits_over_unit + 31 - out_bits;
        for &v in row {
            let diff = v - max;
            let q = if diff >= diff_min {
                let unsat = rounding_divide_by_pot_wide(
                    saturating_rounding_doubling_high_mul(scale, exp_of(diff)),
                    exponent,
                );
                unsat.wrapping_add(out_min).clamp(out_min, out_max)
            } else {
                out_min
            };
            o.push(q as i64);
        }
    }
    Ok(Data::from_i64(out.dtype, &o))
}
