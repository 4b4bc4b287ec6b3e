//! gemmlowp / TFLite fixed-point arithmetic, bit for bit.
//!
//! Written from the documented behaviour of gemmlowp's `fixedpoint.h` and
//! TFLite's `common.h` / `quantization_util.cc` (double-rounding build, the
//! TFLite Micro default). A value in "Qm" format is an `i32` whose real value
//! is `raw / 2^(31 - m)`. Additions inside these routines wrap like the C
//! code (which relies on them not overflowing in practice).

/// `(a * b * 2 + 2^31 rounding) >> 32` with gemmlowp's rounding: the nudge is
/// `2^30` for a non-negative product, `1 - 2^30` otherwise, and the division
/// truncates toward zero. Saturates only `i32::MIN * i32::MIN` to `i32::MAX`.
pub fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    let ab = a as i64 * b as i64;
    let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
    ((ab + nudge) / (1i64 << 31)) as i32
}

/// Rounding arithmetic shift right by `exponent` in `0..=31`: rounds to
/// nearest, ties away from zero.
pub fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    debug_assert!((0..=31).contains(&exponent), "exponent {exponent}");
    let exponent = exponent.clamp(0, 31);
    let mask = ((1i64 << exponent) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i32::from(x < 0);
    (x >> exponent) + i32::from(remainder > threshold)
}

/// [`rounding_divide_by_pot`] for exponents up to 62, computed exactly (in
/// 64 bits). Softmax needs it: its output exponent is `bits_over_unit + 23`
/// for 8-bit outputs, past 31 when a row's sum of exponentials reaches 512.
/// TFLite's `RoundingDivideByPOT` shifts a 32-bit value by it there, which is
/// undefined in C++ (on x86 the shift count wraps); we define it as the
/// exact rounding division the formula means, in the interpreter and in the
/// generated C alike.
pub fn rounding_divide_by_pot_wide(x: i32, exponent: i32) -> i32 {
    let exponent = exponent.clamp(0, 62);
    if exponent <= 31 {
        return rounding_divide_by_pot(x, exponent);
    }
    let x = i64::from(x);
    let mask = (1i64 << exponent) - 1;
    let remainder = x & mask;
    let threshold = (mask >> 1) + i64::from(x < 0);
    ((x >> exponent) + i64::from(remainder > threshold)) as i32
}

/// TFLite's `MultiplyByQuantizedMultiplier` (double rounding): shift left by
/// `max(shift, 0)` (wrapping, as the C multiplication does in practice), the
/// doubling high multiply by `multiplier`, then a rounding shift right by
/// `max(-shift, 0)`.
pub fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = shift.max(0);
    let right = (-shift).max(0);
    let shifted = x.wrapping_mul(1i32.wrapping_shl(left as u32));
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(shifted, multiplier), right)
}

/// TFLite's `MultiplyByQuantizedMultiplierGreaterThanOne`.
pub fn multiply_by_quantized_multiplier_greater_than_one(x: i32, multiplier: i32, left_shift: i32) -> i32 {
    saturating_rounding_doubling_high_mul(x.wrapping_mul(1i32.wrapping_shl(left_shift as u32)), multiplier)
}

/// TFLite's `MultiplyByQuantizedMultiplierSmallerThanOneExp` (`left_shift <= 0`).
pub fn multiply_by_quantized_multiplier_smaller_than_one_exp(
    x: i32,
    multiplier: i32,
    left_shift: i32,
) -> i32 {
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, multiplier), -left_shift)
}

/// gemmlowp's `SaturatingRoundingMultiplyByPOT`: a saturating left shift for
/// `exponent > 0`, a rounding right shift for `exponent < 0`.
pub fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    match exponent {
        0 => x,
        e if e > 0 => {
            let threshold = (1i32 << (31 - e)) - 1;
            if x > threshold {
                i32::MAX
            } else if x < -threshold {
                i32::MIN
            } else {
                x.wrapping_shl(e as u32)
            }
        }
        e => rounding_divide_by_pot(x, -e),
    }
}

/// gemmlowp's `RoundingHalfSum`: `(a + b) / 2` rounded half away from zero.
pub fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = a as i64 + b as i64;
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// Q0.31 `exp(a)` for `a` in `[-1/4, 0)`: gemmlowp's Taylor expansion around
/// -1/8.
pub fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    let mul = saturating_rounding_doubling_high_mul;
    const CONSTANT_TERM: i32 = 1895147668; // exp(-1/8) in Q0.31
    const ONE_THIRD: i32 = 715827883; // 1/3 in Q0.31
    let x = a.wrapping_add(1 << 28); // a + 1/8
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2);
    let poly =
        saturating_rounding_multiply_by_pot(mul(x4_over_4.wrapping_add(x3), ONE_THIRD).wrapping_add(x2), -1);
    CONSTANT_TERM.wrapping_add(mul(CONSTANT_TERM, x.wrapping_add(poly)))
}

/// gemmlowp's `exp_on_negative_values`: `exp(a)` for `a <= 0` given in
/// Q`integer_bits`, result in Q0.31 (`exp(0)` is `i32::MAX`).
pub fn exp_on_negative_values(a: i32, integer_bits: i32) -> i32 {
    let fractional_bits = 31 - integer_bits;
    let one_quarter = 1i32 << (fractional_bits - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits),
    );
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    // exp(-2^e) in Q0.31, for the barrel shifter over the integer part.
    const BARREL: [(i32, i32); 7] = [
        (-2, 1672461947),
        (-1, 1302514674),
        (0, 790015084),
        (1, 290630308),
        (2, 39332535),
        (3, 720401),
        (4, 242),
    ];
    for (exponent, multiplier) in BARREL {
        if integer_bits > exponent {
            let shift = fractional_bits + exponent;
            if remainder & (1i32 << shift) != 0 {
                result = saturating_rounding_doubling_high_mul(result, multiplier);
            }
        }
    }
    if integer_bits > 5 {
        let clamp = -(1i32 << (36 - integer_bits)); // -32 in Q`integer_bits`
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = i32::MAX;
    }
    result
}

/// gemmlowp's `one_over_one_plus_x_for_x_in_0_1`: `1 / (1 + a)` for `a` in
/// Q0.31, `[0, 1)`, by three Newton-Raphson steps; result in Q0.31.
pub fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    let mul = saturating_rounding_doubling_high_mul;
    let half_denominator = rounding_half_sum(a, i32::MAX); // Q0
    const C48_OVER_17: i32 = 1515870810; // Q2
    const CNEG32_OVER_17: i32 = -1010580540; // Q2
    const ONE_Q2: i32 = 1 << 29;
    let mut x = C48_OVER_17.wrapping_add(mul(half_denominator, CNEG32_OVER_17)); // Q2
    for _ in 0..3 {
        let half_denominator_times_x = mul(half_denominator, x); // Q2
        let one_minus = ONE_Q2.wrapping_sub(half_denominator_times_x); // Q2
                                                                       // Q2 * Q2 = Q4, rescaled to Q2.
        x = x.wrapping_add(saturating_rounding_multiply_by_pot(mul(x, one_minus), 2));
    }
    // x / 2 (Q1, same raw) rescaled to Q0.
    saturating_rounding_multiply_by_pot(x, 1)
}

/// TFLite's `GetReciprocal`: for `x` in Q`x_integer_digits`, returns the Q0.31
/// reciprocal of `x` normalized to `[1, 2)`, and the number of bits of `x`
/// above the unit.
pub fn get_reciprocal(x: i32, x_integer_digits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros() as i32;
    let num_bits_over_unit = x_integer_digits - headroom_plus_one;
    let shifted = (x as u32).checked_shl(headroom_plus_one as u32).unwrap_or(0);
    let shifted_sum_minus_one = shifted.wrapping_sub(1u32 << 31) as i32;
    (one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit)
}

/// `frexp`: `x = q * 2^e` with `|q|` in `[0.5, 1)` (0 for 0, non-finite as is).
pub fn frexp(x: f64) -> (f64, i32) {
    if x == 0.0 || !x.is_finite() {
        return (x, 0);
    }
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (q, e) = frexp(x * 2f64.powi(64));
        return (q, e - 64);
    }
    let e = exp - 1022;
    let q = f64::from_bits((bits & !(0x7ffu64 << 52)) | (1022u64 << 52));
    (q, e)
}

/// TFLite's `QuantizeMultiplier` (double-rounding build): `m = q * 2^shift`
/// with `q` in Q0.31, rounded half away from zero.
pub fn quantize_multiplier(m: f64) -> (i32, i32) {
    if m == 0.0 {
        return (0, 0);
    }
    let (q, mut shift) = frexp(m);
    let mut q_fixed = (q * (1i64 << 31) as f64).round() as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        q_fixed = 0;
    }
    (q_fixed.clamp(i32::MIN as i64, i32::MAX as i64) as i32, shift)
}

/// TFLite's `PreprocessSoftmaxScaling` (double-rounding build): the
/// multiplier and left shift turning an input difference into
/// Q`input_integer_bits` after `beta` and the input scale.
pub fn preprocess_softmax_scaling(beta: f64, input_scale: f64, input_integer_bits: i32) -> (i32, i32) {
    let max_real_multiplier = ((1i64 << 31) - 1) as f64;
    let real = (beta * input_scale * (1i64 << (31 - input_integer_bits)) as f64).min(max_real_multiplier);
    quantize_multiplier(real)
}

/// TFLite's `CalculateInputRadius` (floating-point build).
pub fn calculate_input_radius(input_integer_bits: i32, input_left_shift: i32, total_signed_bits: i32) -> i32 {
    let max_input_rescaled = ((1i64 << input_integer_bits) - 1) as f64
        * (1i64 << (total_signed_bits - input_integer_bits)) as f64
        / (1i64 << input_left_shift) as f64;
    max_input_rescaled.floor() as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srdhm_basic_and_rounding() {
        // 0.5 * 0.5 = 0.25 exactly.
        assert_eq!(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
        // 3 * 2^30 / 2^31 = 1.5 -> 2: ties round up (toward +inf), like
        // VQRDMULH: the negative nudge 1 - 2^30 with truncating division.
        assert_eq!(saturating_rounding_doubling_high_mul(3, 1 << 30), 2);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1);
        // 0.5 -> 1, -0.5 -> 0.
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 30), 1);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 30), 0);
        // -1.5000000005 -> -2 (just past the tie).
        assert_eq!(saturating_rounding_doubling_high_mul(-3, (1 << 30) + 1), -2);
        // 0.25 -> 0, -0.25 -> 0, -0.75 -> -1.
        assert_eq!(saturating_rounding_doubling_high_mul(1, 1 << 29), 0);
        assert_eq!(saturating_rounding_doubling_high_mul(-1, 1 << 29), 0);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 29), -1);
        // The only saturating case.
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        // MIN * MAX: -(2^31 - 1) exactly representable.
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MAX), -i32::MAX);
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MAX, i32::MAX), i32::MAX - 1);
    }

    #[test]
    fn rdbpot_ties_away_from_zero() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3); // 2.5 -> 3
        assert_eq!(rounding_divide_by_pot(-5, 1), -3); // -2.5 -> -3
        assert_eq!(rounding_divide_by_pot(7, 2), 2); // 1.75 -> 2
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(6, 2), 2); // 1.5 -> 2
        assert_eq!(rounding_divide_by_pot(-6, 2), -2); // -1.5 -> -2
        assert_eq!(rounding_divide_by_pot(-5, 2), -1); // -1.25 -> -1
        assert_eq!(rounding_divide_by_pot(12345, 0), 12345);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
        assert_eq!(rounding_divide_by_pot(i32::MAX, 31), 1);
        assert_eq!(rounding_divide_by_pot(1 << 30, 31), 1); // 0.5 -> 1
        assert_eq!(rounding_divide_by_pot(-(1 << 30), 31), -1); // -0.5 -> -1
    }

    #[test]
    fn mbqm_positive_and_negative_shift() {
        // multiplier 0.5 (2^30), shift -1: x * 0.25.
        assert_eq!(multiply_by_quantized_multiplier(100, 1 << 30, -1), 25);
        assert_eq!(multiply_by_quantized_multiplier(10, 1 << 30, -2), 1); // 1.25 -> 1
        assert_eq!(multiply_by_quantized_multiplier(6, 1 << 30, -2), 1); // 0.75: 3 -> 1 (0.75 -> 1)
        assert_eq!(multiply_by_quantized_multiplier(-6, 1 << 30, -2), -1);
        // Double rounding: 3 * 0.5 = 1.5 -> 2 in the high mul, then /2 = 1.
        // (single rounding would give round(0.75) = 1 as well; try 5)
        // 5 * 0.5 = 2.5 -> 3, then 3 / 2 = 1.5 -> 2; exact 1.25 rounds to 1.
        assert_eq!(multiply_by_quantized_multiplier(5, 1 << 30, -1), 2);
        // Positive shift: x * 2 * 0.5 = x.
        assert_eq!(multiply_by_quantized_multiplier(77, 1 << 30, 1), 77);
        assert_eq!(multiply_by_quantized_multiplier(-77, 1 << 30, 2), -154);
        // Realistic multiplier: 0.0123 ~ 1690446856 * 2^-31 * 2^-6.
        let (m, s) = quantize_multiplier(0.0123);
        assert_eq!((m, s), (1690499128, -6));
        assert_eq!(multiply_by_quantized_multiplier(10000, m, s), 123);
        assert_eq!(multiply_by_quantized_multiplier(-10000, m, s), -123);
    }

    #[test]
    fn saturating_pot() {
        assert_eq!(saturating_rounding_multiply_by_pot(1 << 26, 5), i32::MAX);
        assert_eq!(saturating_rounding_multiply_by_pot(-(1 << 26), 5), i32::MIN);
        assert_eq!(saturating_rounding_multiply_by_pot(-(1 << 26) + 1, 5), (-(1 << 26) + 1) << 5);
        assert_eq!(saturating_rounding_multiply_by_pot(3, -1), 2);
        assert_eq!(saturating_rounding_multiply_by_pot(-3, -1), -2);
    }

    #[test]
    fn frexp_and_quantize_multiplier() {
        assert_eq!(frexp(1.0), (0.5, 1));
        assert_eq!(frexp(0.75), (0.75, 0));
        assert_eq!(frexp(-6.0), (-0.75, 3));
        assert_eq!(quantize_multiplier(0.5), (1 << 30, 0));
        assert_eq!(quantize_multiplier(1.0), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.0), (0, 0));
        // q rounds up to 2^31: halve and bump the shift.
        assert_eq!(quantize_multiplier(1.0 - 1e-12), (1 << 30, 1));
        // Below 2^-32: flushed to zero.
        assert_eq!(quantize_multiplier(1e-12), (0, 0));
    }

    #[test]
    fn exp_values() {
        let real = |raw: i32| raw as f64 / 2f64.powi(31);
        // exp(0) = 1 (saturated).
        assert_eq!(exp_on_negative_values(0, 5), i32::MAX);
        // gemmlowp's polynomial is accurate to about 1e-7.
        for x in [-1.0f64, -0.25, -2.5, -0.001, -7.75, -16.0, -0.125] {
            let e = exp_on_negative_values((x * 2f64.powi(26)) as i32, 5);
            assert!((real(e) - x.exp()).abs() < 1e-6, "exp({x}) = {}", real(e));
        }
        // exp(-32 + eps) underflows to almost nothing.
        assert!(exp_on_negative_values(i32::MIN + 1, 5) < 2);
        // At a = -1/8 the polynomial is exactly its constant term exp(-1/8).
        assert_eq!(exp_on_interval_between_negative_one_quarter_and_0_excl(-(1 << 28)), 1895147668);
        // In Q0.31 directly (no barrel shifter): -1/4 -> 0.7788.
        assert!((real(exp_on_negative_values(-(1 << 29), 0)) - (-0.25f64).exp()).abs() < 1e-6);
    }

    #[test]
    fn reciprocal_values() {
        // 1 / (1 + 0.5) = 2/3.
        let r = one_over_one_plus_x_for_x_in_0_1(1 << 30);
        assert!((r as f64 / 2f64.powi(31) - 2.0 / 3.0).abs() < 1e-8, "{r}");
        // 1 / (1 + 0) = 1 (just below).
        let r = one_over_one_plus_x_for_x_in_0_1(0);
        assert!(r > i32::MAX - 8, "{r}");
        // get_reciprocal of 3.0 in Q12.19: normalized 1.5, 1 bit over the unit.
        let (r, bits) = get_reciprocal(3 << 19, 12);
        assert_eq!(bits, 1);
        assert!((r as f64 / 2f64.powi(31) - 2.0 / 3.0).abs() < 1e-8, "{r}");
    }

    #[test]
    fn softmax_preprocessing() {
        // beta 1, scale 1/16: 2^26 / 16 = 2^22 -> q 0.5, shift 23.
        assert_eq!(preprocess_softmax_scaling(1.0, 1.0 / 16.0, 5), (1 << 30, 23));
        // radius: 31 * 2^26 / 2^23 = 248.
        assert_eq!(calculate_input_radius(5, 23, 31), 248);
        // Huge scales are capped at 2^31 - 1.
        assert_eq!(preprocess_softmax_scaling(1.0, 1e9, 5), (i32::MAX, 31));
    }
}
