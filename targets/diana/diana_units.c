/*
 * DIANA's units in host emulation (see diana_units.h): the digital array and
 * the analog core, each in its own arithmetic, from its encoded weights.
 */
#include "diana_units.h"

#include <stdio.h>
#include <stdlib.h>

enum { DG_CONV = 0, DG_DW = 1, DG_DENSE = 2 };

static void dn_fail(const mk_job_t *j, const char *kernel, const char *why)
{
    fprintf(stderr, "%s: layer %s: %s\n", kernel, j->layer != NULL ? j->layer : "?", why);
    abort();
}

static void dn_range(int dt, int64_t *lo, int64_t *hi)
{
    switch (dt) {
    case MK_I8: *lo = -128; *hi = 127; break;
    case MK_U8: *lo = 0; *hi = 255; break;
    case MK_I16: *lo = -32768; *hi = 32767; break;
    case MK_I32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    default: *lo = INT64_MIN; *hi = INT64_MAX; break;
    }
}

static int32_t dn_s32(uint32_t u)
{
    return u >= 0x80000000u ? -(int32_t)(~u) - 1 : (int32_t)u;
}

/* Arithmetic shift right (floor) without relying on >> of negatives. */
static int64_t dn_asr(int64_t v, int32_t s)
{
    return v >= 0 ? v >> s : -1 - ((-1 - v) >> s);
}

/* Pixels per input row in x (the window may sit inside whole rows). */
static int32_t dn_pitch(const mk_job_t *j, int dense)
{
    return dense ? j->rows : (j->x_pitch > 0 ? j->x_pitch : j->w);
}

static int32_t dn_pad16(int32_t n)
{
    return (n + 15) / 16 * 16;
}

/* Byte p of a block's weight bytes, stored with each 4-byte word reversed. */
static uint8_t dn_rev(const uint8_t *blk, int32_t p)
{
    return blk[(p & ~3) | (3 - (p & 3))];
}

/* Bytes of one block of 16 output channels (weights, then 16 biases). */
static int32_t dn_block(const mk_job_t *j, int kind)
{
    switch (kind) {
    case DG_CONV: return j->c * j->fy * j->fx * 16 + 64;
    case DG_DW: return j->fy * j->fx * 16 * 4 + 64;
    default: return dn_pad16(j->c) * 16 + 64;
    }
}

/* The weight of output channel k, input channel i, tap (y, x). */
static int32_t dn_weight(const mk_job_t *j, int kind, int32_t k, int32_t i, int32_t y, int32_t x)
{
    const uint8_t *blk = (const uint8_t *)j->wt + (k / 16) * dn_block(j, kind);
    const int32_t ko = k % 16;
    switch (kind) {
    case DG_CONV:
        return (int8_t)dn_rev(blk, ((i * j->fy + y) * j->fx + x) * 16 + ko);
    case DG_DW: {
        /* one 4-byte word per weight, byte-reversed: big endian */
        const uint8_t *wd = blk + ((y * j->fx + x) * 16 + ko) * 4;
        return dn_s32(((uint32_t)wd[0] << 24) | ((uint32_t)wd[1] << 16) | ((uint32_t)wd[2] << 8) | wd[3]);
    }
    default:
        return (int8_t)dn_rev(blk, ((i / 16) * 16 + ko) * 16 + i % 16);
    }
}

static int32_t dn_bias(const mk_job_t *j, int kind, int32_t k)
{
    const uint8_t *b = (const uint8_t *)j->wt + (k / 16) * dn_block(j, kind) + dn_block(j, kind) - 64 + (k % 16) * 4;
    return dn_s32((uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24));
}

/* The digital array's output stage: the bounds of its clip. */
static void dn_digital_bounds(const mk_job_t *j, const char *kernel, int64_t *lo, int64_t *hi)
{
    dn_range(j->ydt, lo, hi);
    if (j->has_clip) {
        *lo = j->clip_lo > *lo ? j->clip_lo : *lo;
        *hi = j->clip_hi < *hi ? j->clip_hi : *hi;
    }
    if (j->ydt != MK_I8) {
        dn_fail(j, kernel, "the digital array writes int8");
    }
}

static void dn_digital(const char *kernel, const mk_job_t *j, int kind)
{
    const int8_t *x = (const int8_t *)j->x;
    const int dense = kind == DG_DENSE;
    const int32_t oh = dense ? 1 : j->oh, ow = dense ? j->rows : j->ow;
    const int32_t iw = dense ? j->rows : j->w, ih = dense ? 1 : j->h, ip = dn_pitch(j, dense);
    const int32_t fy = dense ? 1 : j->fy, fx = dense ? 1 : j->fx;
    int32_t blocks = (j->k + 15) / 16, oy, ox, k, ky, kx, i, q;
    int64_t lo, hi;
    diana_emu_kernel(kernel, j->x, j->x_bytes, j->wt, j->w_bytes, j->y, j->y_bytes);
    if (j->op != (dense ? MK_JOB_DENSE : MK_JOB_CONV) || (kind == DG_DW) != (j->depthwise != 0)
        || (kind == DG_CONV && j->groups != 1)) {
        dn_fail(j, kernel, "a job of another operator");
    }
    if (j->xdt != MK_I8 || j->wdt != MK_I8 || j->x_zp != 0) {
        dn_fail(j, kernel, "the digital array takes int8 inputs and weights without zero points");
    }
    if (j->acc != NULL) {
        /* diana.hwm claims no partial_sums: a split C never reaches it. */
        dn_fail(j, kernel, "the digital array does not accumulate partial sums across calls");
    }
    for (k = 0; k < j->k; k++) {
        if (j->w_zp != NULL && j->w_zp[k] != 0) {
            dn_fail(j, kernel, "the digital array's weights have no zero point");
        }
    }
    if (!dense && (j->dy != 1 || j->dx != 1 || j->sy < 1 || j->sy > 2 || j->sx < 1 || j->sx > 2)) {
        dn_fail(j, kernel, "stride or dilation outside the digital array's");
    }
    if (j->w_bytes != (uint32_t)(blocks * dn_block(j, kind))) {
        dn_fail(j, kernel, "the weights are not in the digital array's layout (size)");
    }
    if (!j->has_rq || j->rq.kind != MK_RQ_SCALE_SHIFT || j->rq.sshift > 31 || j->rq_ydt != j->ydt) {
        dn_fail(j, kernel, "the digital array requantizes with a shift to int8 only");
    }
    for (q = 0; q < j->rq.n; q++) {
        if (j->rq.scale[q] != 1) {
            dn_fail(j, kernel, "the digital array requantizes with a shift only (scale 1)");
        }
    }
    dn_digital_bounds(j, kernel, &lo, &hi);
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            for (k = 0; k < j->k; k++) {
                uint32_t acc = 0;
                int64_t v;
                for (ky = 0; ky < fy; ky++) {
                    const int32_t iy = dense ? 0 : oy * j->sy - j->pt + ky;
                    if (iy < 0 || iy >= ih) {
                        continue;
                    }
                    for (kx = 0; kx < fx; kx++) {
                        const int32_t ix = dense ? ox : ox * j->sx - j->pl + kx;
                        const int8_t *px;
                        if (ix < 0 || ix >= iw) {
                            continue;
                        }
                        px = x + (iy * ip + ix) * j->c;
                        if (kind == DG_DW) {
                            acc += (uint32_t)((int32_t)px[k] * dn_weight(j, kind, k, 0, ky, kx));
                        } else {
                            for (i = 0; i < j->c; i++) {
                                acc += (uint32_t)((int32_t)px[i] * dn_weight(j, kind, k, i, ky, kx));
                            }
                        }
                    }
                }
                acc += (uint32_t)dn_bias(j, kind, k);
                v = dn_asr(dn_s32(acc), j->rq.sshift) + j->rq.out_zp;
                v = v < lo ? lo : (v > hi ? hi : v);
                ((int8_t *)j->y)[(oy * ow + ox) * j->k + k] = (int8_t)v;
            }
        }
    }
}

void diana_digital_conv(const mk_job_t *job)
{
    dn_digital("diana_digital_conv", job, DG_CONV);
}

void diana_digital_depthwise(const mk_job_t *job)
{
    dn_digital("diana_digital_depthwise", job, DG_DW);
}

void diana_digital_dense(const mk_job_t *job)
{
    dn_digital("diana_digital_dense", job, DG_DENSE);
}

void diana_digital_add(const mk_job_t *job)
{
    const mk_job_t *j = job;
    const int32_t n = j->oh * j->ow * j->k;
    int64_t lo, hi;
    int32_t i;
    diana_emu_kernel("diana_digital_add", j->x, j->x_bytes, NULL, 0, j->y, j->y_bytes);
    if (j->op != MK_JOB_ADD || j->add.kind != MK_ADD_INTEGER || j->xdt != MK_I8 || j->x2dt != MK_I8
        || j->has_rq || j->bias != NULL || j->main_ydt != MK_I8) {
        dn_fail(j, "diana_digital_add", "the digital array adds int8 tensors without rescaling");
    }
    dn_digital_bounds(j, "diana_digital_add", &lo, &hi);
    for (i = 0; i < n; i++) {
        int64_t v = dn_asr((int32_t)((const int8_t *)j->x)[i] + ((const int8_t *)j->x2)[i], 0);
        v = v < lo ? lo : (v > hi ? hi : v);
        ((int8_t *)j->y)[i] = (int8_t)v;
    }
}

/* ----------------------------------------------------------------- analog */

static void dn_analog(const char *kernel, const mk_job_t *j, int dense)
{
    const int8_t *x = (const int8_t *)j->x;
    const uint8_t *w = (const uint8_t *)j->wt;
    const int32_t oh = dense ? 1 : j->oh, ow = dense ? j->rows : j->ow;
    const int32_t iw = dense ? j->rows : j->w, ih = dense ? 1 : j->h, ip = dn_pitch(j, dense);
    const int32_t fy = dense ? 1 : j->fy, fx = dense ? 1 : j->fx;
    const int32_t rows = (j->c * fy * fx + 287) / 288 * 288;
    const int32_t cols = (j->k + 127) / 128 * 128;
    const int32_t nx = (dense ? j->rows : j->h * j->w) * j->c;
    int32_t oy, ox, k, ky, kx, i;
    int64_t lo, hi, rlo, rhi;
    diana_emu_kernel(kernel, j->x, j->x_bytes, j->wt, j->w_bytes, j->y, j->y_bytes);
    if (j->op != (dense ? MK_JOB_DENSE : MK_JOB_CONV) || (!dense && j->groups != 1)) {
        dn_fail(j, kernel, "a job of another operator");
    }
    if (j->acc != NULL) {
        dn_fail(j, kernel, "the analog core does not accumulate partial sums across calls");
    }
    if (j->xdt != MK_I8 || j->x_zp != 0 || j->bias != NULL) {
        dn_fail(j, kernel, "the analog core takes int8 inputs without zero point or bias");
    }
    for (k = 0; k < j->k; k++) {
        if (j->w_zp != NULL && j->w_zp[k] != 0) {
            dn_fail(j, kernel, "the analog core's weights have no zero point");
        }
    }
    if (!dense && (j->dy != 1 || j->dx != 1)) {
        dn_fail(j, kernel, "the analog core has no dilation");
    }
    if (j->w_bytes != (uint32_t)(rows * cols / 4)) {
        dn_fail(j, kernel, "the weights are not in the analog core's layout (size)");
    }
    if (!j->has_rq || j->rq.kind != MK_RQ_ADC || j->rq.adc_bits != 6 || j->rq.adc_gain < 1 || j->rq.sshift > 63) {
        dn_fail(j, kernel, "the analog core's output goes through its 6-bit ADC chain");
    }
    /* 7-bit inputs (HARDWARE.md's pinned choice): the window's pixels, row
     * by row (rows ip pixels apart). */
    for (i = 0; i < nx; i++) {
        const int32_t e = (i / (iw * j->c)) * ip * j->c + i % (iw * j->c);
        if (x[e] < -64 || x[e] > 63) {
            char why[96];
            snprintf(why, sizeof why, "input %d at element %ld is outside the 7-bit range [-64, 63]", x[e],
                     (long)e);
            dn_fail(j, kernel, why);
        }
    }
    dn_range(j->rq_ydt, &rlo, &rhi);
    dn_range(j->ydt, &lo, &hi);
    if (j->has_clip) {
        lo = j->clip_lo > lo ? j->clip_lo : lo;
        hi = j->clip_hi < hi ? j->clip_hi : hi;
    }
    for (oy = 0; oy < oh; oy++) {
        for (ox = 0; ox < ow; ox++) {
            for (k = 0; k < j->k; k++) {
                const int32_t q = j->rq.n == 1 ? 0 : k;
                int64_t acc = 0, y, t, f;
                for (ky = 0; ky < fy; ky++) {
                    const int32_t iy = dense ? 0 : oy * j->sy - j->pt + ky;
                    if (iy < 0 || iy >= ih) {
                        continue;
                    }
                    for (kx = 0; kx < fx; kx++) {
                        const int32_t ix = dense ? ox : ox * j->sx - j->pl + kx;
                        if (ix < 0 || ix >= iw) {
                            continue;
                        }
                        for (i = 0; i < j->c; i++) {
                            const int32_t row = (i * fy + ky) * fx + kx;
                            const uint8_t code = (uint8_t)((w[row * (cols / 4) + k / 4] >> ((k % 4) * 2)) & 3u);
                            const int32_t wv = code == 1u ? 1 : (code == 2u ? -1 : 0);
                            if (code == 3u) {
                                dn_fail(j, kernel, "a (w+, w-) pair with both bits set");
                            }
                            acc += (int64_t)x[(iy * ip + ix) * j->c + i] * wv;
                        }
                    }
                }
                /* ADC: floor(acc / gain), clipped to 6 bits. */
                f = acc / j->rq.adc_gain;
                if (f * j->rq.adc_gain > acc) {
                    f -= 1;
                }
                y = f < -32 ? -32 : (f > 31 ? 31 : f);
                t = dn_asr(j->rq.adc_k[q] * y + j->rq.adc_l[q], j->rq.sshift) + j->rq.out_zp;
                t = t < rlo ? rlo : (t > rhi ? rhi : t);
                t = t < lo ? lo : (t > hi ? hi : t);
                mk_st(j->y, j->ydt, (oy * ow + ox) * j->k + k, t);
            }
        }
    }
}

void diana_analog_conv(const mk_job_t *job)
{
    dn_analog("diana_analog_conv", job, 0);
}

void diana_analog_dense(const mk_job_t *job)
{
    dn_analog("diana_analog_dense", job, 1);
}
