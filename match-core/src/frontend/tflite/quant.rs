//! TFLite's integer parameter arithmetic, reproduced exactly: the
//! fixed-point multiplier of a real scale (`QuantizeMultiplier`), the ADD
//! parameters (`PrepareAdd` for int8) and fused activation ranges
//! (`CalculateActivationRangeQuantized`), as TFLite Micro computes them.

use crate::ir::{AddParams, DType};
use anyhow::{bail, ensure, Context, Result};

/// `frexp` for finite positive doubles: `x = m * 2^e` with `m` in [0.5, 1).
fn frexp(x: f64) -> (f64, i32) {
    let bits = x.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale into the normal range first.
        let (m, e) = frexp(x * f64::from_bits(0x43f0_0000_0000_0000)); // 2^64
        return (m, e - 64);
    }
    let m = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (m, exp - 1022)
}

/// TFLite's `QuantizeMultiplier(double, int32_t*, int*)`: returns
/// `(multiplier, shift)` with `real = multiplier * 2^(shift - 31)`; `shift`
/// is a left shift when positive, a right shift when negative. The
/// mantissa is rounded half away from zero to 31 bits; a mantissa that
/// rounds up to 2^31 is halved with the shift incremented, and multipliers
/// below 2^-32 (shift < -31) flush to zero.
pub fn quantize_multiplier(real: f64) -> Result<(i32, i32)> {
    ensure!(
        real.is_finite() && real >= 0.0,
        "requantization scale {real} is not a finite non-negative number"
    );
    if real == 0.0 {
        return Ok((0, 0));
    }
    let (q, mut shift) = frexp(real);
    let mut q_fixed = (q * (1i64 << 31) as f64).round() as i64;
    debug_assert!(q_fixed <= 1 << 31);
    if q_fixed == 1 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        q_fixed = 0;
    }
    // TFLite shifts the accumulator left by `shift` in 32 bits: beyond 30
    // that overflows for every nonzero value (undefined in C).
    ensure!(shift <= 30, "requantization scale {real} is too large (shift {shift} > 30)");
    Ok((q_fixed as i32, shift))
}

/// TFLite's `QuantizeMultiplierSmallerThanOneExp`: the multiplier of a real
/// in (0, 1), with its (non-positive) exponent.
pub fn quantize_multiplier_smaller_than_one(real: f64) -> Result<(i32, i32)> {
    ensure!(real > 0.0 && real < 1.0, "rescale factor {real} is not in (0, 1)");
    let (m, shift) = quantize_multiplier(real)?;
    ensure!(shift <= 0, "rescale factor {real} gives a positive shift {shift}");
    Ok((m, shift))
}

/// Checks a quantization scale is usable: finite and positive.
pub fn check_scale(what: &str, scale: f32) -> Result<()> {
    ensure!(scale.is_finite() && scale > 0.0, "{what} has scale {scale}, expected a finite positive number");
    Ok(())
}

/// The requantization multiplier of a convolution or fully-connected output
/// channel, as `PopulateConvolutionQuantizationParams` and
/// `GetQuantizedConvolutionMultipler` compute it: every scale widened to
/// double, `input * filter / output`.
pub fn conv_multiplier(input_scale: f32, filter_scale: f32, output_scale: f32) -> Result<(i32, i32)> {
    let real = input_scale as f64 * filter_scale as f64 / output_scale as f64;
    quantize_multiplier(real)
}

/// `PrepareAdd` of TFLite Micro for int8 (and uint8) inputs: `left_shift`
/// 20, each input rescaled by `s_i / (2 max(s1, s2))`, the sum by
/// `2 max(s1, s2) / (2^20 s_out)`. Shifts are TFLite's (negative = right).
pub fn add_params(scale: [f32; 2], zp: [i64; 2], out_scale: f32, out_zp: i64) -> Result<AddParams> {
    let left_shift = 20;
    let twice_max_input_scale = 2.0 * scale[0].max(scale[1]) as f64;
    let real_in = [scale[0] as f64 / twice_max_input_scale, scale[1] as f64 / twice_max_input_scale];
    let real_out = twice_max_input_scale / ((1i64 << left_shift) as f64 * out_scale as f64);
    let (m0, s0) = quantize_multiplier_smaller_than_one(real_in[0]).map_err(|e| e.context("first input"))?;
    let (m1, s1) = quantize_multiplier_smaller_than_one(real_in[1]).map_err(|e| e.context("second input"))?;
    let (mo, so) = quantize_multiplier_smaller_than_one(real_out).map_err(|e| e.context("output"))?;
    Ok(AddParams {
        left_shift,
        in_zp: zp,
        in_multiplier: [m0, m1],
        in_shift: [s0, s1],
        out_multiplier: mo,
        out_shift: so,
        out_zp,
    })
}

/// TFLite `ActivationFunctionType` codes.
pub mod act {
    pub const NONE: i8 = 0;
    pub const RELU: i8 = 1;
    pub const RELU_N1_TO_1: i8 = 2;
    pub const RELU6: i8 = 3;
}

/// The name of a fused activation code.
pub fn activation_name(code: i8) -> &'static str {
    match code {
        0 => "NONE",
        1 => "RELU",
        2 => "RELU_N1_TO_1",
        3 => "RELU6",
        4 => "TANH",
        5 => "SIGN_BIT",
        _ => "unknown",
    }
}

/// `CalculateActivationRangeQuantized`: the clamp range of a fused
/// activation in the output's quantized domain, `zp + round(f / scale)`
/// with the division and the rounding (half away from zero) in `float`,
/// intersected with the range of the output type. `None` for no activation.
pub fn activation_range(code: i8, dtype: DType, scale: f32, zp: i64) -> Result<Option<(i64, i64)>> {
    let (qmin, qmax) = dtype.int_range().ok_or_else(|| anyhow::anyhow!("activation on a {dtype} output"))?;
    let quantize = |f: f32| -> Result<i64> {
        let q = (f / scale).round();
        ensure!(
            q.is_finite() && q.abs() < 2147483648.0,
            "activation bound {f} / scale {scale} overflows int32"
        );
        (q as i64).checked_add(zp).context("activation bound overflows")
    };
    let range = match code {
        act::NONE => return Ok(None),
        act::RELU => (qmin.max(quantize(0.0)?), qmax),
        act::RELU6 => (qmin.max(quantize(0.0)?), qmax.min(quantize(6.0)?)),
        act::RELU_N1_TO_1 => (qmin.max(quantize(-1.0)?), qmax.min(quantize(1.0)?)),
        other => bail!("fused activation {} ({other}) is not supported", activation_name(other)),
    };
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frexp_matches_c() {
        assert_eq!(frexp(1.0), (0.5, 1));
        assert_eq!(frexp(0.75), (0.75, 0));
        assert_eq!(frexp(0.1), (0.8, -3));
        assert_eq!(frexp(3.0), (0.75, 2));
        assert_eq!(frexp(f64::MIN_POSITIVE / 4.0), (0.5, -1023));
    }

    #[test]
    fn quantize_multiplier_known_values() {
        // 1.0 = 0.5 * 2^1: mantissa 2^30, shift 1.
        assert_eq!(quantize_multiplier(1.0).unwrap(), (1 << 30, 1));
        assert_eq!(quantize_multiplier(0.5).unwrap(), (1 << 30, 0));
        // 0.75 * 2^31 = 1610612736 exactly.
        assert_eq!(quantize_multiplier(0.75).unwrap(), (1_610_612_736, 0));
        // 0.1 = 0.8 * 2^-3; 0.8 * 2^31 = 1717986918.4 -> 1717986918.
        assert_eq!(quantize_multiplier(0.1).unwrap(), (1_717_986_918, -3));
        // 0.3 = 0.6 * 2^-1; 0.6 * 2^31 = 1288490188.8 -> 1288490189.
        assert_eq!(quantize_multiplier(0.3).unwrap(), (1_288_490_189, -1));
        // Rounds up to 2^31: halved, shift incremented.
        assert_eq!(quantize_multiplier(1.0 - 2f64.powi(-40)).unwrap(), (1 << 30, 1));
        // 2^-32 = 0.5 * 2^-31 is kept; 2^-33 (shift -32) flushes to zero.
        assert_eq!(quantize_multiplier(2f64.powi(-32)).unwrap(), (1 << 30, -31));
        assert_eq!(quantize_multiplier(2f64.powi(-33)).unwrap(), (0, 0));
        assert_eq!(quantize_multiplier(0.0).unwrap(), (0, 0));
        // Half-way mantissa rounds away from zero: (2^30 + 0.5) / 2^31.
        let half = (2f64.powi(30) + 0.5) / 2f64.powi(31);
        assert_eq!(quantize_multiplier(half).unwrap(), ((1 << 30) + 1, 0));
        assert!(quantize_multiplier(-1.0).is_err());
        assert!(quantize_multiplier(f64::NAN).is_err());
        assert!(quantize_multiplier(2f64.powi(40)).is_err());
    }

    #[test]
    fn conv_multiplier_widens_before_multiplying() {
        // 0.5 * 0.25 / 0.125 = 1.0 exactly in double.
        assert_eq!(conv_multiplier(0.5, 0.25, 0.125).unwrap(), (1 << 30, 1));
    }

    #[test]
    fn add_params_equal_scales() {
        // s1 = s2 = s_out = 1: inputs 1/2 -> (2^30, 0); output 2 / 2^20 =
        // 2^-19 = 0.5 * 2^-18 -> (2^30, -18).
        let p = add_params([1.0, 1.0], [-3, 5], 1.0, 7).unwrap();
        assert_eq!(p.left_shift, 20);
        assert_eq!(p.in_multiplier, [1 << 30, 1 << 30]);
        assert_eq!(p.in_shift, [0, 0]);
        assert_eq!((p.out_multiplier, p.out_shift), (1 << 30, -18));
        assert_eq!((p.in_zp, p.out_zp), ([-3, 5], 7));
        // s1 = 0.5, s2 = 1: first input 0.25 = 0.5 * 2^-1.
        let p = add_params([0.5, 1.0], [0, 0], 1.0, 0).unwrap();
        assert_eq!((p.in_multiplier[0], p.in_shift[0]), (1 << 30, -1));
    }

    #[test]
    fn activation_ranges() {
        assert_eq!(activation_range(act::NONE, DType::I8, 0.1, 3).unwrap(), None);
        assert_eq!(activation_range(act::RELU, DType::I8, 0.1, -128).unwrap(), Some((-128, 127)));
        assert_eq!(activation_range(act::RELU, DType::I8, 0.1, 3).unwrap(), Some((3, 127)));
        // 6 / 0.05 = 120 -> max 120 - 100 = 20.
        assert_eq!(activation_range(act::RELU6, DType::I8, 0.05, -100).unwrap(), Some((-100, 20)));
        // 6 / 0.01 = 600: clipped to the type.
        assert_eq!(activation_range(act::RELU6, DType::I8, 0.01, 0).unwrap(), Some((0, 127)));
        assert_eq!(activation_range(act::RELU_N1_TO_1, DType::U8, 0.5, 10).unwrap(), Some((8, 12)));
        assert!(activation_range(4, DType::I8, 0.1, 0).is_err());
    }
}
