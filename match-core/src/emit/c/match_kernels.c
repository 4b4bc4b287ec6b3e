/*
 * match portable integer kernels (C99). See match_kernels.h.
 *
 * Every kernel mirrors a function of match-core/src/interp; the comments
 * name it. Conventions:
 * - wrap-around (Rust's wrapping_add / wrapping_mul) is computed on
 *   uint32_t / uint64_t and converted back with mk_u2i / mk_u2i64, which
 *   are defined for every value;
 * - arithmetic shifts right of possibly negative values use mk_asr32 /
 *   mk_asr64 (floor), never `>>` on a negative operand; no left shift of a
 *   negative value;
 * - f32 expressions are split into one operation per statement, in the
 *   interpreter's order, so that no compiler may contract them (FMA).
 */
#include "match_kernels.h"

#define MK_MULW32(a, b) ((uint32_t)((0u + (uint32_t)(a)) * (0u + (uint32_t)(b))))
#define MK_MULW64(a, b) ((uint64_t)((0ull + (uint64_t)(a)) * (0ull + (uint64_t)(b))))

/* ---------------------------------------------------------------- helpers */

static int32_t mk_u2i(uint32_t u)
{
    if (u <= 0x7fffffffu) {
        return (int32_t)u;
    }
    return (int32_t)(u - 0x80000000u) - INT32_MAX - 1;
}

static int64_t mk_u2i64(uint64_t u)
{
    if (u <= (uint64_t)INT64_MAX) {
        return (int64_t)u;
    }
    return (int64_t)(u - ((uint64_t)1 << 63)) - INT64_MAX - 1;
}

static int32_t mk_addw(int32_t a, int32_t b)
{
    return mk_u2i((uint32_t)a + (uint32_t)b);
}

static int32_t mk_subw(int32_t a, int32_t b)
{
    return mk_u2i((uint32_t)a - (uint32_t)b);
}

/* Floor shift right (Rust's >> on signed values). */
static int32_t mk_asr32(int32_t x, int32_t s)
{
    return x >= 0 ? (x >> s) : ~((~x) >> s);
}

static int64_t mk_asr64(int64_t x, int32_t s)
{
    return x >= 0 ? (x >> s) : ~((~x) >> s);
}

static int64_t mk_clamp64(int64_t v, int64_t lo, int64_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

static int64_t mk_sat_add64(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b) {
        return INT64_MAX;
    }
    if (b < 0 && a < INT64_MIN - b) {
        return INT64_MIN;
    }
    return a + b;
}

static void mk_range(int dt, int64_t *lo, int64_t *hi)
{
    switch (dt) {
    case MK_I8: *lo = -128; *hi = 127; break;
    case MK_U8: *lo = 0; *hi = 255; break;
    case MK_I16: *lo = -32768; *hi = 32767; break;
    case MK_I32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    default: *lo = INT64_MIN; *hi = INT64_MAX; break;
    }
}

float mk_f32_from_bits(uint32_t bits)
{
    union {
        uint32_t u;
        float f;
    } c;
    c.u = bits;
    return c.f;
}

static uint32_t mk_f32_to_bits(float f)
{
    union {
        uint32_t u;
        float f;
    } c;
    c.f = f;
    return c.u;
}

/* Rust's `f as i64`: truncation, saturating, NaN to 0. */
static int64_t mk_f2i64(float f)
{
    if (f != f) {
        return 0;
    }
    if (f >= 9223372036854775808.0f) {
        return INT64_MAX;
    }
    if (f < -9223372036854775808.0f) {
        return INT64_MIN;
    }
    return (int64_t)f;
}

/* Round half to even without the floating-point environment. */
float mk_round_half_even(float f)
{
    float a, fr;
    int32_t i;
    if (f != f) {
        return f;
    }
    a = f < 0.0f ? -f : f;
    if (a >= 8388608.0f) {
        return f; /* already an integer (or infinite) */
    }
    i = (int32_t)a;
    fr = a - (float)i; /* exact */
    if (fr > 0.5f || (fr == 0.5f && (i & 1) != 0)) {
        i += 1;
    }
    return f < 0.0f ? -(float)i : (float)i;
}

/* interp::requant::round_even_clamped (MLAS): clamp to [lo - zp, hi - zp]
 * (NaN to lo - zp), round half to even, add zp. */
static int64_t mk_round_even_clamped(float f, int64_t zp, int64_t lo, int64_t hi)
{
    float flo = (float)(lo - zp);
    float fhi = (float)(hi - zp);
    if (f != f) {
        f = flo;
    } else {
        if (f < flo) {
            f = flo;
        }
        if (f > fhi) {
            f = fhi;
        }
    }
    return mk_clamp64(mk_sat_add64(mk_f2i64(mk_round_half_even(f)), zp), lo, hi);
}

int32_t mk_esize(int dt)
{
    switch (dt) {
    case MK_I8:
    case MK_U8: return 1;
    case MK_I16: return 2;
    case MK_I64: return 8;
    default: return 4;
    }
}

int64_t mk_ld(const void *p, int dt, int32_t i)
{
    switch (dt) {
    case MK_I8: return ((const int8_t *)p)[i];
    case MK_U8: return ((const uint8_t *)p)[i];
    case MK_I16: return ((const int16_t *)p)[i];
    case MK_I32: return ((const int32_t *)p)[i];
    case MK_I64: return ((const int64_t *)p)[i];
    default: return mk_f2i64(mk_f32_from_bits(((const uint32_t *)p)[i]));
    }
}

float mk_ldf(const void *p, int32_t i)
{
    return mk_f32_from_bits(((const uint32_t *)p)[i]);
}

void mk_stf(void *p, int32_t i, float v)
{
    ((uint32_t *)p)[i] = mk_f32_to_bits(v);
}

void mk_st(void *p, int dt, int32_t i, int64_t v)
{
    int64_t lo, hi;
    if (dt == MK_F32) {
        mk_stf(p, i, (float)v);
        return;
    }
    mk_range(dt, &lo, &hi);
    v = mk_clamp64(v, lo, hi);
    switch (dt) {
    case MK_I8: ((int8_t *)p)[i] = (int8_t)v; break;
    case MK_U8: ((uint8_t *)p)[i] = (uint8_t)v; break;
    case MK_I16: ((int16_t *)p)[i] = (int16_t)v; break;
    case MK_I32: ((int32_t *)p)[i] = (int32_t)v; break;
    default: ((int64_t *)p)[i] = v; break;
    }
}

void mk_copy(void *dst, const void *src, int32_t bytes)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    int32_t i;
    for (i = 0; i < bytes; i++) {
        d[i] = s[i];
    }
}

static int64_t mk_prod(const int32_t *shape, int32_t rank)
{
    int64_t n = 1;
    int32_t i;
    for (i = 0; i < rank; i++) {
        n *= shape[i];
    }
    return n;
}

/* ------------------------------------------------- fixed point (gemmlowp) */
/* interp::fixedpoint */

int32_t mk_srdhm(int32_t a, int32_t b)
{
    int64_t ab, nudge;
    if (a == INT32_MIN && b == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

int32_t mk_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    int32_t mask, remainder, threshold;
    if (exponent < 0) {
        exponent = 0;
    }
    if (exponent > 31) {
        exponent = 31;
    }
    mask = (int32_t)(((int64_t)1 << exponent) - 1);
    remainder = (int32_t)((uint32_t)x & (uint32_t)mask);
    threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return mk_asr32(x, exponent) + (remainder > threshold ? 1 : 0);
}

/* mk_rounding_divide_by_pot for exponents up to 62, exact in 64 bits:
 * softmax's output exponent passes 31 when a row's sum of exponentials
 * reaches 512 (TFLite shifts a 32-bit value by it there, undefined in C++);
 * as the interpreter's rounding_divide_by_pot_wide. */
static int32_t mk_rounding_divide_by_pot_wide(int32_t x, int32_t exponent)
{
    int64_t v = x, mask, remainder, threshold;
    if (exponent <= 31) {
        return mk_rounding_divide_by_pot(x, exponent);
    }
    if (exponent > 62) {
        exponent = 62;
    }
    mask = ((int64_t)1 << exponent) - 1;
    remainder = (int64_t)((uint64_t)v & (uint64_t)mask);
    threshold = (mask >> 1) + (v < 0 ? 1 : 0);
    return (int32_t)((v < 0 ? -1 : 0) + (remainder > threshold ? 1 : 0));
}

static int32_t mk_mbqm_i(int32_t x, int32_t multiplier, int32_t shift)
{
    int32_t left = shift > 0 ? shift : 0;
    int32_t right = shift < 0 ? (shift < -31 ? 31 : -shift) : 0;
    uint32_t pot = (uint32_t)1 << ((uint32_t)left & 31u);
    int32_t shifted = mk_u2i(MK_MULW32(x, pot));
    return mk_rounding_divide_by_pot(mk_srdhm(shifted, multiplier), right);
}

int32_t mk_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
    return mk_mbqm_i(x, multiplier, shift);
}

static int32_t mk_mbqm_gt_one(int32_t x, int32_t multiplier, int32_t left_shift)
{
    uint32_t pot = (uint32_t)1 << ((uint32_t)left_shift & 31u);
    return mk_srdhm(mk_u2i(MK_MULW32(x, pot)), multiplier);
}

static int32_t mk_sat_rounding_mul_by_pot(int32_t x, int32_t exponent)
{
    if (exponent == 0) {
        return x;
    }
    if (exponent > 0) {
        int32_t e = exponent > 31 ? 31 : exponent;
        int32_t threshold = (int32_t)(((uint32_t)1 << (31 - e)) - 1u);
        if (x > threshold) {
            return INT32_MAX;
        }
        if (x < -threshold) {
            return INT32_MIN;
        }
        return mk_u2i((uint32_t)((uint32_t)x << e));
    }
    return mk_rounding_divide_by_pot(x, -exponent);
}

static int32_t mk_rounding_half_sum(int32_t a, int32_t b)
{
    int64_t sum = (int64_t)a + (int64_t)b;
    int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

static int32_t mk_exp_on_interval(int32_t a)
{
    const int32_t constant_term = 1895147668;
    const int32_t one_third = 715827883;
    int32_t x = mk_addw(a, (int32_t)1 << 28);
    int32_t x2 = mk_srdhm(x, x);
    int32_t x3 = mk_srdhm(x2, x);
    int32_t x4 = mk_srdhm(x2, x2);
    int32_t x4_over_4 = mk_sat_rounding_mul_by_pot(x4, -2);
    int32_t poly = mk_sat_rounding_mul_by_pot(
        mk_addw(mk_srdhm(mk_addw(x4_over_4, x3), one_third), x2), -1);
    return mk_addw(constant_term, mk_srdhm(constant_term, mk_addw(x, poly)));
}

static int32_t mk_exp_on_negative_values(int32_t a, int32_t integer_bits)
{
    static const int32_t barrel_exp[7] = {-2, -1, 0, 1, 2, 3, 4};
    static const int32_t barrel_mul[7] = {1672461947, 1302514674, 790015084, 290630308,
                                          39332535,   720401,     242};
    int32_t fractional_bits = 31 - integer_bits;
    int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    int32_t mask = one_quarter - 1;
    int32_t a_mod = mk_subw((int32_t)((uint32_t)a & (uint32_t)mask), one_quarter);
    int32_t result =
        mk_exp_on_interval(mk_sat_rounding_mul_by_pot(a_mod, integer_bits));
    int32_t remainder = mk_subw(a_mod, a);
    int32_t k;
    for (k = 0; k < 7; k++) {
        if (integer_bits > barrel_exp[k]) {
            int32_t shift = fractional_bits + barrel_exp[k];
            if (((uint32_t)remainder & ((uint32_t)1 << shift)) != 0u) {
                result = mk_srdhm(result, barrel_mul[k]);
            }
        }
    }
    if (integer_bits > 5) {
        int32_t clamp = -((int32_t)1 << (36 - integer_bits));
        if (a < clamp) {
            result = 0;
        }
    }
    if (a == 0) {
        result = INT32_MAX;
    }
    return result;
}

static int32_t mk_one_over_one_plus_x(int32_t a)
{
    const int32_t c48_over_17 = 1515870810;
    const int32_t cneg32_over_17 = -1010580540;
    const int32_t one_q2 = (int32_t)1 << 29;
    int32_t half_denominator = mk_rounding_half_sum(a, INT32_MAX);
    int32_t x = mk_addw(c48_over_17, mk_srdhm(half_denominator, cneg32_over_17));
    int32_t it;
    for (it = 0; it < 3; it++) {
        int32_t hdx = mk_srdhm(half_denominator, x);
        int32_t one_minus = mk_subw(one_q2, hdx);
        x = mk_addw(x, mk_sat_rounding_mul_by_pot(mk_srdhm(x, one_minus), 2));
    }
    return mk_sat_rounding_mul_by_pot(x, 1);
}

static int32_t mk_clz32(uint32_t x)
{
    int32_t n = 0;
    if (x == 0u) {
        return 32;
    }
    while ((x & 0x80000000u) == 0u) {
        x <<= 1;
        n++;
    }
    return n;
}

static int32_t mk_get_reciprocal(int32_t x, int32_t x_integer_digits, int32_t *bits_over_unit)
{
    uint32_t ux = (uint32_t)x;
    int32_t headroom_plus_one = mk_clz32(ux);
    uint32_t shifted = headroom_plus_one >= 32 ? 0u : (uint32_t)(ux << headroom_plus_one);
    *bits_over_unit = x_integer_digits - headroom_plus_one;
    return mk_one_over_one_plus_x(mk_u2i(shifted - 0x80000000u));
}

/* ------------------------------------------------------ conv, dense, matmul */
/* interp::conv: (x - x_zp) * (w - w_zp[k]) accumulated in 32 bits, wrapping. */

/* The parameters are copied into locals first: the output is int32_t, like
 * the fields of *p, so the compiler would otherwise reload them after every
 * store. The 32-bit sum wraps, so any summation order gives the same result
 * (addition modulo 2^32 is associative and commutative). */
#define MK_CONV_BODY(LDX, LDW)                                                                 \
    do {                                                                                       \
        for (b = 0; b < n; b++) {                                                              \
            for (oy = 0; oy < oh; oy++) {                                                      \
                for (ox = 0; ox < ow; ox++) {                                                  \
                    for (kk = 0; kk < k; kk++) {                                               \
                        int32_t c0 = (kk / kg) * cg;                                           \
                        int32_t wk = kk * per_k;                                               \
                        uint32_t zw = (uint32_t)w_zp[kk];                                      \
                        uint32_t sum = 0u;                                                     \
                        for (ky = 0; ky < fy; ky++) {                                          \
                            int32_t iy = oy * sy + ky * dy - pt;                               \
                            if (iy < 0 || iy >= h) {                                           \
                                continue;                                                      \
                            }                                                                  \
                            for (kx = 0; kx < fx; kx++) {                                      \
                                int32_t ix = ox * sx + kx * dx - pl;                           \
                                int32_t xb, wb, ci;                                            \
                                if (ix < 0 || ix >= wd) {                                      \
                                    continue;                                                  \
                                }                                                              \
                                xb = ((b * h + iy) * xp + ix) * c + c0;                        \
                                wb = wk + (ky * fx + kx) * cg;                                 \
                                for (ci = 0; ci + 16 <= cg; ci += 16) {                        \
                                    int32_t j;                                                 \
                                    for (j = 0; j < 16; j++) { /* fixed count: vectorizable */ \
                                        sum += MK_MULW32((uint32_t)(LDX(xb + ci + j)) - zx,    \
                                                         (uint32_t)(LDW(wb + ci + j)) - zw);   \
                                    }                                                          \
                                }                                                              \
                                for (; ci < cg; ci++) {                                        \
                                    uint32_t xv = (uint32_t)(LDX(xb + ci)) - zx;               \
                                    uint32_t wv = (uint32_t)(LDW(wb + ci)) - zw;               \
                                    sum += MK_MULW32(xv, wv);                                  \
                                }                                                              \
                            }                                                                  \
                        }                                                                      \
                        y[o] = mk_u2i(add_y ? (uint32_t)y[o] + sum : sum);                     \
                        o++;                                                                   \
                    }                                                                          \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    } while (0)

/* Depthwise (one input channel per group, one output channel per group):
 * per output pixel, the channels are the innermost loop and the sums are
 * kept in y (as uint32_t bit patterns, wrapping), so the window bounds are
 * checked once per tap instead of once per tap and channel. */
#define MK_DW_BODY(LDX, LDW)                                                                   \
    do {                                                                                       \
        for (b = 0; b < n; b++) {                                                              \
            for (oy = 0; oy < oh; oy++) {                                                      \
                for (ox = 0; ox < ow; ox++) {                                                  \
                    uint32_t *acc = (uint32_t *)(void *)(y + o);                               \
                    for (kk = 0; kk < k; kk++) {                                               \
                        acc[kk] = 0u;                                                          \
                    }                                                                          \
                    for (ky = 0; ky < fy; ky++) {                                              \
                        int32_t iy = oy * sy + ky * dy - pt;                                   \
                        if (iy < 0 || iy >= h) {                                               \
                            continue;                                                          \
                        }                                                                      \
                        for (kx = 0; kx < fx; kx++) {                                          \
                            int32_t ix = ox * sx + kx * dx - pl;                               \
                            int32_t xb, wb;                                                    \
                            if (ix < 0 || ix >= wd) {                                          \
                                continue;                                                      \
                            }                                                                  \
                            xb = ((b * h + iy) * xp + ix) * c;                                 \
                            wb = ky * fx + kx;                                                 \
                            for (kk = 0; kk < k; kk++) {                                       \
                                uint32_t xv = (uint32_t)(LDX(xb + kk)) - zx;                   \
                                uint32_t wv = (uint32_t)(LDW(wb + kk * per_k))                 \
                                              - (uint32_t)w_zp[kk];                            \
                                acc[kk] += MK_MULW32(xv, wv);                                  \
                            }                                                                  \
                        }                                                                      \
                    }                                                                          \
                    for (kk = 0; kk < k; kk++) {                                               \
                        y[o + kk] = mk_u2i(acc[kk]);                                           \
                    }                                                                          \
                    o += k;                                                                    \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
    } while (0)

#define MK_X_I8(i) ((int32_t)((const int8_t *)x)[i])
#define MK_X_U8(i) ((int32_t)((const uint8_t *)x)[i])
#define MK_W_I8(i) ((int32_t)((const int8_t *)w)[i])
#define MK_W_U8(i) ((int32_t)((const uint8_t *)w)[i])
#define MK_X_ANY(i) ((uint32_t)mk_ld(x, xdt, (i)))
#define MK_W_ANY(i) ((uint32_t)mk_ld(w, wdt, (i)))

void mk_conv2d(const void *x, int xdt, const void *w, int wdt, int32_t *y, const mk_conv_t *p)
{
    mk_conv2d_acc(x, xdt, w, wdt, y, p, p->w, 0);
}

void mk_conv2d_pitch(const void *x, int xdt, const void *w, int wdt, int32_t *y, const mk_conv_t *p,
                     int32_t x_pitch)
{
    mk_conv2d_acc(x, xdt, w, wdt, y, p, x_pitch, 0);
}

void mk_conv2d_acc(const void *x, int xdt, const void *w, int wdt, int32_t *y, const mk_conv_t *p,
                   int32_t x_pitch, int add_y)
{
    const int32_t n = p->n, h = p->h, wd = p->w, c = p->c, k = p->k, xp = x_pitch;
    const int32_t fy = p->fy, fx = p->fx, oh = p->oh, ow = p->ow;
    const int32_t sy = p->sy, sx = p->sx, dy = p->dy, dx = p->dx, pt = p->pt, pl = p->pl;
    const int32_t *const w_zp = p->w_zp;
    const int32_t cg = c / p->groups;
    const int32_t kg = k / p->groups;
    const int32_t per_k = fy * fx * cg;
    const uint32_t zx = (uint32_t)p->x_zp;
    int32_t b, oy, ox, kk, ky, kx;
    int32_t o = 0;
    /* The depthwise body overwrites y: partial sums take the general one. */
    if (!add_y && cg == 1 && kg == 1 && xdt == MK_I8 && wdt == MK_I8) {
        MK_DW_BODY(MK_X_I8, MK_W_I8);
    } else if (!add_y && cg == 1 && kg == 1 && xdt == MK_U8 && wdt == MK_U8) {
        MK_DW_BODY(MK_X_U8, MK_W_U8);
    } else if (xdt == MK_I8 && wdt == MK_I8) {
        MK_CONV_BODY(MK_X_I8, MK_W_I8);
    } else if (xdt == MK_U8 && wdt == MK_I8) {
        MK_CONV_BODY(MK_X_U8, MK_W_I8);
    } else if (xdt == MK_I8 && wdt == MK_U8) {
        MK_CONV_BODY(MK_X_I8, MK_W_U8);
    } else if (xdt == MK_U8 && wdt == MK_U8) {
        MK_CONV_BODY(MK_X_U8, MK_W_U8);
    } else {
        MK_CONV_BODY(MK_X_ANY, MK_W_ANY);
    }
}

#define MK_DENSE_BODY(LDX, LDW)                                                                \
    do {                                                                                       \
        for (r = 0; r < rows; r++) {                                                           \
            for (kk = 0; kk < k; kk++) {                                                       \
                uint32_t zw = (uint32_t)w_zp[kk];                                              \
                uint32_t sum = 0u;                                                             \
                int32_t xb = r * c, wb = kk * c, i;                                            \
                for (i = 0; i + 16 <= c; i += 16) {                                            \
                    int32_t j;                                                                 \
                    for (j = 0; j < 16; j++) { /* fixed count: vectorizable */                 \
                        sum += MK_MULW32((uint32_t)(LDX(xb + i + j)) - zx,                     \
                                         (uint32_t)(LDW(wb + i + j)) - zw);                    \
                    }                                                                          \
                }                                                                              \
                for (; i < c; i++) {                                                           \
                    uint32_t xv = (uint32_t)(LDX(xb + i)) - zx;                                \
                    uint32_t wv = (uint32_t)(LDW(wb + i)) - zw;                                \
                    sum += MK_MULW32(xv, wv);                                                  \
                }                                                                              \
                y[o] = mk_u2i(add_y ? (uint32_t)y[o] + sum : sum);                             \
                o++;                                                                           \
            }                                                                                  \
        }                                                                                      \
    } while (0)

void mk_dense(const void *x, int xdt, const void *w, int wdt, int32_t *y, int32_t rows, int32_t c,
              int32_t k, int32_t x_zp, const int32_t *w_zp)
{
    mk_dense_acc(x, xdt, w, wdt, y, rows, c, k, x_zp, w_zp, 0);
}

void mk_dense_acc(const void *x, int xdt, const void *w, int wdt, int32_t *y, int32_t rows, int32_t c,
                  int32_t k, int32_t x_zp, const int32_t *w_zp, int add_y)
{
    uint32_t zx = (uint32_t)x_zp;
    int32_t r, kk;
    int32_t o = 0;
    if (xdt == MK_I8 && wdt == MK_I8) {
        MK_DENSE_BODY(MK_X_I8, MK_W_I8);
    } else if (xdt == MK_U8 && wdt == MK_I8) {
        MK_DENSE_BODY(MK_X_U8, MK_W_I8);
    } else if (xdt == MK_I8 && wdt == MK_U8) {
        MK_DENSE_BODY(MK_X_I8, MK_W_U8);
    } else if (xdt == MK_U8 && wdt == MK_U8) {
        MK_DENSE_BODY(MK_X_U8, MK_W_U8);
    } else {
        MK_DENSE_BODY(MK_X_ANY, MK_W_ANY);
    }
}

void mk_matmul(const void *a, int adt, const void *b, int bdt, int32_t *y, int32_t batches,
               const int32_t *ia, const int32_t *ib, int32_t m, int32_t kk, int32_t n, int32_t a_zp,
               const int32_t *b_zp)
{
    int32_t bt, i, j, t;
    int32_t o = 0;
    for (bt = 0; bt < batches; bt++) {
        int32_t a0 = ia[bt] * m * kk;
        int32_t b0 = ib[bt] * kk * n;
        for (i = 0; i < m; i++) {
            for (j = 0; j < n; j++) {
                uint32_t sum = 0u;
                for (t = 0; t < kk; t++) {
                    uint32_t av = (uint32_t)mk_ld(a, adt, a0 + i * kk + t) - (uint32_t)a_zp;
                    uint32_t bv = (uint32_t)mk_ld(b, bdt, b0 + t * n + j) - (uint32_t)b_zp[j];
                    sum += MK_MULW32(av, bv);
                }
                y[o++] = mk_u2i(sum);
            }
        }
    }
}

/* ------------------------------------------------------ bias, requant, clip */
/* interp::requant */

void mk_bias_add(const void *acc, int adt, const void *bias, int bdt, int32_t nb, void *y, int ydt,
                 int32_t total, int32_t c)
{
    int32_t i;
    if (adt == MK_I32 && bdt == MK_I32 && ydt == MK_I32 && c > 0 && (nb == 1 || total % c == 0)) {
        /* the common case, without the per-element type switches: rows of c
         * channels, element i loaded before it is stored (in place is fine) */
        const int32_t *a32 = (const int32_t *)acc;
        const int32_t *b32 = (const int32_t *)bias;
        int32_t *y32 = (int32_t *)y;
        int32_t ch;
        for (i = 0; i < total; i += c) {
            for (ch = 0; ch < c; ch++) {
                uint32_t bv = (uint32_t)b32[nb == 1 ? 0 : ch];
                y32[i + ch] = mk_u2i((uint32_t)a32[i + ch] + bv);
            }
        }
        return;
    }
    for (i = 0; i < total; i++) {
        int32_t ch = nb == 1 ? 0 : i % c;
        int64_t bv = mk_ld(bias, bdt, ch);
        int64_t av = mk_ld(acc, adt, i);
        if (ydt == MK_I32) {
            ((int32_t *)y)[i] = mk_u2i((uint32_t)av + (uint32_t)bv);
        } else {
            mk_st(y, ydt, i, mk_sat_add64(av, bv));
        }
    }
}

void mk_requantize(const void *x, int xdt, void *y, int ydt, int32_t total, int32_t c,
                   const mk_requant_t *rq)
{
    int64_t lo, hi;
    int32_t i;
    mk_range(ydt, &lo, &hi);
    if (rq->kind == MK_RQ_FIXED && xdt == MK_I32 && (ydt == MK_I8 || ydt == MK_U8) && c > 0
        && (rq->n == 1 || total % c == 0)) {
        /* the common case (int32 accumulator -> 8 bits, TFLite fixed point),
         * without the per-element type switches; element i is loaded before
         * it is stored (in place is fine) */
        const int32_t *x32 = (const int32_t *)x;
        const int32_t lo32 = (int32_t)lo, hi32 = (int32_t)hi;
        const int64_t zp = rq->out_zp;
        int32_t ch;
        for (i = 0; i < total; i += c) {
            for (ch = 0; ch < c; ch++) {
                int32_t q = rq->n == 1 ? 0 : ch;
                int64_t v = (int64_t)mk_mbqm_i(x32[i + ch], rq->multiplier[q], rq->shift[q]) + zp;
                int32_t v32 = (int32_t)mk_clamp64(v, lo32, hi32);
                if (ydt == MK_I8) {
                    ((int8_t *)y)[i + ch] = (int8_t)v32;
                } else {
                    ((uint8_t *)y)[i + ch] = (uint8_t)v32;
                }
            }
        }
        return;
    }
    for (i = 0; i < total; i++) {
        int32_t ch = rq->n == 1 ? 0 : i % c;
        int64_t a = mk_ld(x, xdt, i);
        int64_t v;
        if (rq->kind == MK_RQ_FIXED) {
            int32_t a32 = mk_u2i((uint32_t)a);
            v = (int64_t)mk_mbqm(a32, rq->multiplier[ch], rq->shift[ch]);
            v = mk_clamp64(v + rq->out_zp, lo, hi);
        } else if (rq->kind == MK_RQ_SCALE_SHIFT) {
            uint64_t t = MK_MULW64(a, rq->scale[ch]) + (uint64_t)rq->bias[ch];
            v = mk_asr64(mk_u2i64(t), rq->sshift);
            v = mk_clamp64(mk_sat_add64(v, rq->out_zp), lo, hi);
        } else if (rq->kind == MK_RQ_ADC) {
            /* floor division by a positive gain, then the ADC's clip */
            const int64_t half = (int64_t)1 << (rq->adc_bits - 1);
            int64_t q = a / rq->adc_gain;
            uint64_t t;
            if (q * rq->adc_gain != a && a < 0) {
                q -= 1;
            }
            q = mk_clamp64(q, -half, half - 1);
            t = MK_MULW64(q, rq->adc_k[ch]) + (uint64_t)rq->adc_l[ch];
            v = mk_asr64(mk_u2i64(t), rq->sshift);
            v = mk_clamp64(mk_sat_add64(v, rq->out_zp), lo, hi);
        } else {
            float fa = (float)a;
            float f = fa * mk_f32_from_bits(rq->fscale[ch]);
            v = mk_round_even_clamped(f, rq->out_zp, lo, hi);
        }
        mk_st(y, ydt, i, v);
    }
}

void mk_clip(const void *x, int xdt, void *y, int ydt, int32_t total, int64_t lo, int64_t hi)
{
    int32_t i;
    if (xdt == MK_F32) {
        float flo = (float)lo, fhi = (float)hi;
        for (i = 0; i < total; i++) {
            float v = mk_ldf(x, i);
            if (!(v >= flo)) {
                v = flo; /* Rust's max: NaN gives the other operand */
            }
            if (v > fhi) {
                v = fhi;
            }
            mk_stf(y, i, v);
        }
        return;
    }
    if (xdt == MK_I8 && ydt == MK_I8 && lo <= hi) {
        /* without the per-element type switches; in place is fine */
        const int8_t *x8 = (const int8_t *)x;
        int8_t *y8 = (int8_t *)y;
        const int32_t l = lo < -128 ? -128 : (lo > 127 ? 127 : (int32_t)lo);
        const int32_t u = hi < -128 ? -128 : (hi > 127 ? 127 : (int32_t)hi);
        for (i = 0; i < total; i++) {
            int32_t v = x8[i];
            v = v < l ? l : (v > u ? u : v);
            y8[i] = (int8_t)v;
        }
        return;
    }
    for (i = 0; i < total; i++) {
        mk_st(y, ydt, i, mk_clamp64(mk_ld(x, xdt, i), lo, hi));
    }
}

void mk_cast(const void *x, int xdt, void *y, int ydt, int32_t total)
{
    int32_t i;
    for (i = 0; i < total; i++) {
        if (xdt == MK_F32 && ydt == MK_F32) {
            mk_stf(y, i, mk_ldf(x, i));
        } else if (xdt == MK_F32) {
            mk_st(y, ydt, i, mk_f2i64(mk_ldf(x, i)));
        } else if (ydt == MK_F32) {
            mk_stf(y, i, (float)mk_ld(x, xdt, i));
        } else {
            mk_st(y, ydt, i, mk_ld(x, xdt, i));
        }
    }
}

void mk_quantize(const void *x, void *y, int ydt, int32_t total, int32_t stride, int32_t dim,
                 const uint32_t *scale, const int64_t *zp)
{
    int64_t lo, hi;
    int32_t i;
    mk_range(ydt, &lo, &hi);
    for (i = 0; i < total; i++) {
        int32_t ch = (i / stride) % dim;
        float q = mk_ldf(x, i) / mk_f32_from_bits(scale[ch]);
        mk_st(y, ydt, i, mk_round_even_clamped(q, zp[ch], lo, hi));
    }
}

void mk_dequantize(const void *x, int xdt, void *y, int32_t total, int32_t stride, int32_t dim,
                   const uint32_t *scale, const int64_t *zp)
{
    int32_t i;
    for (i = 0; i < total; i++) {
        int32_t ch = (i / stride) % dim;
        uint64_t d = (uint64_t)mk_ld(x, xdt, i) - (uint64_t)zp[ch];
        float v = (float)mk_u2i((uint32_t)d);
        float r = v * mk_f32_from_bits(scale[ch]);
        mk_stf(y, i, r);
    }
}

/* ----------------------------------------------------------------- add */
/* interp::eltwise::add */

void mk_add(const void *a, int adt, const void *b, int bdt, void *y, int ydt, const mk_add_t *p)
{
    int32_t cnt[MK_MAX_RANK];
    int32_t total = (int32_t)mk_prod(p->shape, p->rank);
    int32_t ia = 0, ib = 0, o, ax;
    int64_t lo, hi;
    mk_range(ydt, &lo, &hi);
    for (ax = 0; ax < p->rank; ax++) {
        cnt[ax] = 0;
    }
    for (o = 0; o < total; o++) {
        if (adt == MK_F32 && bdt == MK_F32) {
            float s = mk_ldf(a, ia) + mk_ldf(b, ib);
            mk_stf(y, o, s);
        } else {
            int32_t x = mk_u2i((uint32_t)mk_ld(a, adt, ia));
            int32_t z = mk_u2i((uint32_t)mk_ld(b, bdt, ib));
            int64_t v;
            if (p->kind == MK_ADD_INTEGER) {
                v = mk_addw(x, z);
            } else if (p->kind == MK_ADD_WRAPPING) {
                uint32_t s = (uint32_t)x + (uint32_t)z;
                if (ydt == MK_I8) {
                    s &= 0xffu;
                    v = s >= 128u ? (int64_t)s - 256 : (int64_t)s;
                } else if (ydt == MK_U8) {
                    v = (int64_t)(s & 0xffu);
                } else if (ydt == MK_I16) {
                    s &= 0xffffu;
                    v = s >= 32768u ? (int64_t)s - 65536 : (int64_t)s;
                } else {
                    v = mk_u2i(s);
                }
            } else if (p->kind == MK_ADD_TFLITE) {
                uint32_t pot = (uint32_t)1 << ((uint32_t)p->left_shift & 31u);
                int32_t xs = mk_u2i(MK_MULW32((uint32_t)x - (uint32_t)p->a_zp, pot));
                int32_t zs = mk_u2i(MK_MULW32((uint32_t)z - (uint32_t)p->b_zp, pot));
                int32_t sx = mk_mbqm(xs, p->a_mult, p->a_shift);
                int32_t sz = mk_mbqm(zs, p->b_mult, p->b_shift);
                int32_t raw = mk_mbqm(mk_addw(sx, sz), p->out_mult, p->out_shift);
                v = mk_clamp64((int64_t)raw + p->out_zp, lo, hi);
            } else {
                float flo = (float)(lo - p->fy_zp);
                float fhi = (float)(hi - p->fy_zp);
                float xa = (float)mk_u2i((uint32_t)((uint64_t)(int64_t)x - (uint64_t)p->fa_zp));
                float zb = (float)mk_u2i((uint32_t)((uint64_t)(int64_t)z - (uint64_t)p->fb_zp));
                float va = mk_f32_from_bits(p->a_scale) * xa;
                float vb = mk_f32_from_bits(p->b_scale) * zb;
                float sum = va + vb;
                float vc = sum / mk_f32_from_bits(p->y_scale);
                float r;
                if (vc != vc) {
                    vc = flo;
                } else {
                    if (vc < flo) {
                        vc = flo;
                    }
                    if (vc > fhi) {
                        vc = fhi;
                    }
                }
                r = vc + (float)p->fy_zp;
                v = mk_clamp64(mk_f2i64(mk_round_half_even(r)), lo, hi);
            }
            mk_st(y, ydt, o, v);
        }
        for (ax = p->rank - 1; ax >= 0; ax--) {
            cnt[ax]++;
            ia += p->sa[ax];
            ib += p->sb[ax];
            if (cnt[ax] < p->shape[ax]) {
                break;
            }
            ia -= p->sa[ax] * cnt[ax];
            ib -= p->sb[ax] * cnt[ax];
            cnt[ax] = 0;
        }
    }
}

/* ----------------------------------------------------------------- pooling */
/* interp::pool */

static int32_t mk_rounded_div(int32_t acc, int32_t n)
{
    if (acc > 0) {
        return mk_addw(acc, n / 2) / n;
    }
    return mk_subw(acc, n / 2) / n;
}

/* The valid window [y0, y1) x [x0, x1) of an output position. */
static void mk_window(const mk_pool_t *p, int32_t oy, int32_t ox, int32_t *y0, int32_t *y1,
                      int32_t *x0, int32_t *x1)
{
    int32_t ys = oy * p->sy - p->pt;
    int32_t xs = ox * p->sx - p->pl;
    int32_t ye = ys + p->ky, xe = xs + p->kx;
    *y0 = ys < 0 ? 0 : ys;
    *x0 = xs < 0 ? 0 : xs;
    *y1 = ye > p->h ? p->h : ye;
    *x1 = xe > p->w ? p->w : xe;
    if (*y1 < *y0) {
        *y1 = *y0;
    }
    if (*x1 < *x0) {
        *x1 = *x0;
    }
}

void mk_avg_pool(const void *x, int xdt, void *y, int ydt, const mk_pool_t *p, int32_t x_zp)
{
    int32_t full = p->ky * p->kx;
    int32_t b, oy, ox, ch, iy, ix;
    int32_t o = 0;
    for (b = 0; b < p->n; b++) {
        for (oy = 0; oy < p->oh; oy++) {
            for (ox = 0; ox < p->ow; ox++) {
                int32_t y0, y1, x0, x1;
                mk_window(p, oy, ox, &y0, &y1, &x0, &x1);
                for (ch = 0; ch < p->c; ch++) {
                    int32_t acc = 0, count = 0;
                    for (iy = y0; iy < y1; iy++) {
                        for (ix = x0; ix < x1; ix++) {
                            int32_t i = ((b * p->h + iy) * p->w + ix) * p->c + ch;
                            acc = mk_addw(acc, mk_u2i((uint32_t)mk_ld(x, xdt, i)));
                            count++;
                        }
                    }
                    if (p->count_include_pad) {
                        acc = mk_addw(acc, mk_u2i(MK_MULW32(x_zp, full - count)));
                        count = full;
                    }
                    mk_st(y, ydt, o, count == 0 ? 0 : mk_rounded_div(acc, count));
                    o++;
                }
            }
        }
    }
}

void mk_max_pool(const void *x, int xdt, void *y, int ydt, const mk_pool_t *p)
{
    int32_t b, oy, ox, ch, iy, ix;
    int32_t o = 0;
    int64_t lo, hi;
    mk_range(ydt, &lo, &hi);
    for (b = 0; b < p->n; b++) {
        for (oy = 0; oy < p->oh; oy++) {
            for (ox = 0; ox < p->ow; ox++) {
                int32_t y0, y1, x0, x1;
                mk_window(p, oy, ox, &y0, &y1, &x0, &x1);
                for (ch = 0; ch < p->c; ch++) {
                    if (xdt == MK_F32) {
                        float m = mk_f32_from_bits(0xff800000u); /* -inf */
                        for (iy = y0; iy < y1; iy++) {
                            for (ix = x0; ix < x1; ix++) {
                                float v = mk_ldf(x, ((b * p->h + iy) * p->w + ix) * p->c + ch);
                                if (v > m) {
                                    m = v;
                                }
                            }
                        }
                        mk_stf(y, o, m);
                    } else {
                        int64_t m = lo;
                        int found = 0;
                        for (iy = y0; iy < y1; iy++) {
                            for (ix = x0; ix < x1; ix++) {
                                int64_t v = mk_ld(x, xdt, ((b * p->h + iy) * p->w + ix) * p->c + ch);
                                if (!found || v > m) {
                                    m = v;
                                    found = 1;
                                }
                            }
                        }
                        mk_st(y, ydt, o, m);
                    }
                    o++;
                }
            }
        }
    }
}

void mk_global_avg_pool(const void *x, int xdt, void *y, int ydt, int32_t n, int32_t hw, int32_t c)
{
    int32_t b, ch, q;
    for (b = 0; b < n; b++) {
        for (ch = 0; ch < c; ch++) {
            int32_t acc = 0;
            for (q = 0; q < hw; q++) {
                acc = mk_addw(acc, mk_u2i((uint32_t)mk_ld(x, xdt, (b * hw + q) * c + ch)));
            }
            mk_st(y, ydt, b * c + ch, hw > 0 ? mk_rounded_div(acc, hw) : 0);
        }
    }
}

void mk_global_sum_pool(const void *x, int xdt, int32_t *y, int32_t n, int32_t hw, int32_t c,
                        int32_t x_zp)
{
    int32_t bias = mk_u2i(0u - MK_MULW32(x_zp, hw));
    int32_t b, ch, q;
    for (b = 0; b < n; b++) {
        for (ch = 0; ch < c; ch++) {
            int32_t acc = bias;
            for (q = 0; q < hw; q++) {
                acc = mk_addw(acc, mk_u2i((uint32_t)mk_ld(x, xdt, (b * hw + q) * c + ch)));
            }
            y[b * c + ch] = acc;
        }
    }
}

void mk_qlinear_avg_pool(const void *x, int xdt, void *y, int ydt, const mk_pool_t *p,
                         uint32_t x_scale, int32_t x_zp, uint32_t y_scale, int64_t y_zp)
{
    float xs = mk_f32_from_bits(x_scale);
    float ys = mk_f32_from_bits(y_scale);
    float full = (float)(p->ky * p->kx);
    float fzp = (float)y_zp;
    int32_t b, oy, ox, ch, iy, ix;
    int32_t o = 0;
    int64_t lo, hi;
    mk_range(ydt, &lo, &hi);
    for (b = 0; b < p->n; b++) {
        for (oy = 0; oy < p->oh; oy++) {
            for (ox = 0; ox < p->ow; ox++) {
                int32_t y0, y1, x0, x1;
                mk_window(p, oy, ox, &y0, &y1, &x0, &x1);
                for (ch = 0; ch < p->c; ch++) {
                    float acc = 0.0f, avg, q, r;
                    int32_t count = 0;
                    for (iy = y0; iy < y1; iy++) {
                        for (ix = x0; ix < x1; ix++) {
                            int32_t i = ((b * p->h + iy) * p->w + ix) * p->c + ch;
                            int32_t d = mk_subw(mk_u2i((uint32_t)mk_ld(x, xdt, i)), x_zp);
                            float t = xs * (float)d;
                            acc = acc + t;
                            count++;
                        }
                    }
                    if (count == 0 && !p->count_include_pad) {
                        mk_st(y, ydt, o++, 0);
                        continue;
                    }
                    avg = acc / (p->count_include_pad ? full : (float)count);
                    q = avg / ys;
                    r = mk_round_half_even(q + fzp);
                    mk_st(y, ydt, o++, r != r ? lo : mk_clamp64(mk_f2i64(r), lo, hi));
                }
            }
        }
    }
}

/* ------------------------------------------------------------ data movement */
/* interp::shape */

void mk_pad(const void *x, void *y, int dt, int32_t rank, const int32_t *in_shape,
            const int32_t *out_strides, const int32_t *before, int32_t out_total, int64_t value)
{
    int32_t cnt[MK_MAX_RANK];
    int32_t es = mk_esize(dt);
    int32_t total = (int32_t)mk_prod(in_shape, rank);
    int32_t i, ax;
    for (i = 0; i < out_total; i++) {
        mk_st(y, dt, i, value);
    }
    for (ax = 0; ax < rank; ax++) {
        cnt[ax] = 0;
    }
    for (i = 0; i < total; i++) {
        int32_t d = 0;
        for (ax = 0; ax < rank; ax++) {
            d += (cnt[ax] + before[ax]) * out_strides[ax];
        }
        mk_copy((uint8_t *)y + d * es, (const uint8_t *)x + i * es, es);
        for (ax = rank - 1; ax >= 0; ax--) {
            cnt[ax]++;
            if (cnt[ax] < in_shape[ax]) {
                break;
            }
            cnt[ax] = 0;
        }
    }
}

void mk_transpose(const void *x, void *y, int32_t esize, int32_t rank, const int32_t *out_shape,
                  const int32_t *src_strides)
{
    int32_t cnt[MK_MAX_RANK];
    int32_t total = (int32_t)mk_prod(out_shape, rank);
    int32_t cur = 0, o, ax;
    for (ax = 0; ax < rank; ax++) {
        cnt[ax] = 0;
    }
    for (o = 0; o < total; o++) {
        mk_copy((uint8_t *)y + o * esize, (const uint8_t *)x + cur * esize, esize);
        for (ax = rank - 1; ax >= 0; ax--) {
            cnt[ax]++;
            cur += src_strides[ax];
            if (cnt[ax] < out_shape[ax]) {
                break;
            }
            cur -= src_strides[ax] * cnt[ax];
            cnt[ax] = 0;
        }
    }
}

void mk_concat_part(const void *x, void *y, int32_t outer, int32_t chunk, int32_t row,
                    int32_t dst_off)
{
    int32_t r;
    for (r = 0; r < outer; r++) {
        mk_copy((uint8_t *)y + r * row + dst_off, (const uint8_t *)x + r * chunk, chunk);
    }
}

/* ----------------------------------------------------------------- softmax */
/* interp::softmax */

static int32_t mk_softmax_exp(int32_t diff, int32_t multiplier, int32_t left_shift)
{
    int32_t scaled = mk_mbqm_gt_one(diff, multiplier, left_shift);
    return mk_exp_on_negative_values(scaled, 5);
}

void mk_softmax(const void *x, int xdt, void *y, int ydt, int32_t rows, int32_t depth,
                int32_t multiplier, int32_t left_shift, int32_t diff_min)
{
    int32_t out_bits = ydt == MK_I16 ? 16 : 8;
    int32_t out_min = ydt == MK_I8 ? -128 : (ydt == MK_I16 ? -32768 : 0);
    int32_t out_max = ydt == MK_I8 ? 127 : (ydt == MK_I16 ? 32767 : 255);
    int32_t r, i;
    for (r = 0; r < rows; r++) {
        int32_t base = r * depth;
        int32_t max = depth > 0 ? (int32_t)mk_ld(x, xdt, base) : 0;
        uint32_t sum = 0u;
        int32_t scale, bits_over_unit, exponent;
        for (i = 1; i < depth; i++) {
            int32_t v = (int32_t)mk_ld(x, xdt, base + i);
            if (v > max) {
                max = v;
            }
        }
        for (i = 0; i < depth; i++) {
            int32_t diff = (int32_t)mk_ld(x, xdt, base + i) - max;
            if (diff >= diff_min) {
                sum += (uint32_t)mk_rounding_divide_by_pot(
                    mk_softmax_exp(diff, multiplier, left_shift), 12);
            }
        }
        scale = mk_get_reciprocal(mk_u2i(sum), 12, &bits_over_unit);
        exponent = bits_over_unit + 31 - out_bits;
        for (i = 0; i < depth; i++) {
            int32_t diff = (int32_t)mk_ld(x, xdt, base + i) - max;
            int64_t q;
            if (diff >= diff_min) {
                int32_t unsat = mk_rounding_divide_by_pot_wide(
                    mk_srdhm(scale, mk_softmax_exp(diff, multiplier, left_shift)), exponent);
                q = mk_clamp64(mk_addw(unsat, out_min), out_min, out_max);
            } else {
                q = out_min;
            }
            mk_st(y, ydt, base + i, q);
        }
    }
}
