/*
 * Host emulation of Siracusa's compute units (see siracusa_units.h): the
 * cluster through the portable kernels, N-EUREKA in its own arithmetic from
 * its own weight encoding.
 */
#include "siracusa_units.h"

#include <stdio.h>
#include <stdlib.h>

/* ----------------------------------------------------------------- helpers */

static void fail(const mk_job_t *job, const char *kernel, const char *why)
{
    fprintf(stderr, "siracusa: %s (layer %s): %s\n", kernel, job->layer ? job->layer : "?", why);
    abort();
}

/* The chain after the main operator, whose result (of type main_ydt) is in
 * the accumulator `acc`: bias, requantization, clip (each optional, in this
 * order). Intermediate results stay in `acc` (elementwise, in place); the
 * last step writes y. */
static void run_chain(const mk_job_t *job, void *acc, int32_t total, int32_t c)
{
    const int steps = (job->bias != NULL) + (job->has_rq != 0) + (job->has_clip != 0);
    int done = 0;
    int curdt = job->main_ydt;
    void *cur = acc;
    if (job->bias != NULL) {
        const int last = ++done == steps;
        void *dst = last ? job->y : acc;
        const int dt = last ? job->ydt : job->bias_ydt;
        mk_bias_add(cur, curdt, job->bias, job->bdt, job->bias_n, dst, dt, total, c);
        cur = dst;
        curdt = dt;
    }
    if (job->has_rq) {
        const int last = ++done == steps;
        void *dst = last ? job->y : acc;
        const int dt = last ? job->ydt : job->rq_ydt;
        mk_requantize(cur, curdt, dst, dt, total, c, &job->rq);
        cur = dst;
        curdt = dt;
    }
    if (job->has_clip) {
        mk_clip(cur, curdt, job->y, job->ydt, total, job->clip_lo, job->clip_hi);
    }
}

/* ----------------------------------------------------------------- cluster */

/* One job on the cluster: the portable kernels (the exact reference of
 * every requantization form) on the tile in L1. With a chain after the
 * main operator, the main result goes to an accumulator of the kernel's
 * own: PULP-NN-style kernels requantize each output from registers, so on
 * the device it takes no L1; the emulation keeps it on the host heap. */
static void cluster_job(const mk_job_t *job, const char *kernel, int op_ok)
{
    const int chain = job->bias != NULL || job->has_rq || job->has_clip;
    const int32_t total = job->rows * job->k * job->oh * job->ow;
    void *out = job->y;
    siracusa_emu_kernel(kernel, job->x, job->x_bytes, job->wt, job->w_bytes, job->y, job->y_bytes);
    if (!op_ok) {
        fail(job, kernel, "a job of another operator");
    }
    if (job->acc != NULL) {
        /* siracusa.hwm claims no partial_sums: a split C never reaches it. */
        fail(job, kernel, "these kernels do not accumulate partial sums across calls");
    }
    if (total <= 0) {
        fail(job, kernel, "an empty tile");
    }
    if (chain) {
        /* 8 bytes per element: wide enough for any main result type */
        out = malloc((size_t)total * 8u);
        if (out == NULL) {
            fail(job, kernel, "out of host memory");
        }
    } else if ((job->op == MK_JOB_CONV || job->op == MK_JOB_DENSE) && job->ydt != MK_I32) {
        fail(job, kernel, "a convolution or dense layer without a chain must output int32");
    }
    switch (job->op) {
    case MK_JOB_CONV: {
        mk_conv_t p;
        p.n = 1;
        p.h = job->h;
        p.w = job->w;
        p.c = job->c;
        p.k = job->k;
        p.fy = job->fy;
        p.fx = job->fx;
        p.oh = job->oh;
        p.ow = job->ow;
        p.sy = job->sy;
        p.sx = job->sx;
        p.dy = job->dy;
        p.dx = job->dx;
        p.pt = job->pt;
        p.pl = job->pl;
        p.groups = job->groups;
        p.x_zp = job->x_zp;
        p.w_zp = job->w_zp;
        mk_conv2d_pitch(job->x, job->xdt, job->wt, job->wdt, (int32_t *)out, &p,
                        job->x_pitch > 0 ? job->x_pitch : job->w);
        break;
    }
    case MK_JOB_DENSE:
        mk_dense(job->x, job->xdt, job->wt, job->wdt, (int32_t *)out, job->rows, job->c, job->k, job->x_zp,
                 job->w_zp);
        break;
    case MK_JOB_ADD: {
        /* the two input tiles and the output tile are the same HWC box */
        mk_add_t p = job->add;
        int32_t shape[1], sa[1], sb[1];
        if (job->x2 == NULL) {
            fail(job, kernel, "an addition without its second input");
        }
        shape[0] = total;
        sa[0] = 1;
        sb[0] = 1;
        p.rank = 1;
        p.shape = shape;
        p.sa = sa;
        p.sb = sb;
        mk_add(job->x, job->xdt, job->x2, job->x2dt, out, job->main_ydt, &p);
        break;
    }
    case MK_JOB_AVG_POOL:
        mk_avg_pool(job->x, job->xdt, out, job->main_ydt, &job->pool, job->pool_zp);
        break;
    case MK_JOB_MAX_POOL:
        mk_max_pool(job->x, job->xdt, out, job->main_ydt, &job->pool);
        break;
    case MK_JOB_GLOBAL_AVG_POOL:
        mk_global_avg_pool(job->x, job->xdt, out, job->main_ydt, 1, job->h * job->w, job->c);
        break;
    case MK_JOB_QLINEAR_AVG_POOL:
        mk_qlinear_avg_pool(job->x, job->xdt, out, job->main_ydt, &job->pool, job->pool_x_scale, job->pool_zp,
                            job->pool_y_scale, job->pool_y_zp);
        break;
    default:
        fail(job, kernel, "an unknown job");
    }
    if (chain) {
        run_chain(job, out, total, job->k);
        free(out);
    }
}

void cluster_conv(const mk_job_t *job)
{
    cluster_job(job, "cluster_conv", job->op == MK_JOB_CONV);
}

void cluster_conv_acc(const mk_job_t *job)
{
    cluster_job(job, "cluster_conv_acc", job->op == MK_JOB_CONV);
}

void cluster_linear(const mk_job_t *job)
{
    cluster_job(job, "cluster_linear", job->op == MK_JOB_DENSE);
}

void cluster_linear_acc(const mk_job_t *job)
{
    cluster_job(job, "cluster_linear_acc", job->op == MK_JOB_DENSE);
}

void cluster_add(const mk_job_t *job)
{
    cluster_job(job, "cluster_add", job->op == MK_JOB_ADD);
}

void cluster_pool(const mk_job_t *job)
{
    cluster_job(job, "cluster_pool",
                job->op == MK_JOB_AVG_POOL || job->op == MK_JOB_MAX_POOL || job->op == MK_JOB_GLOBAL_AVG_POOL ||
                    job->op == MK_JOB_QLINEAR_AVG_POOL);
}

/* ----------------------------------------------------------------- Neureka */

/* pulp-nnx neureka_task_defs.h: input channels per step in 1x1 and 3x3
 * mode, 256-bit weight words. */
#define NEUREKA_CIN_1X1 32
#define NEUREKA_CIN_3X3 28
#define NEUREKA_WORD_BYTES 32
/* The stored weights are w + 128 (the layout's offset(128)). */
#define NEUREKA_STORE_OFFSET 128

enum { NK_3X3 = 0, NK_3X3_DW = 1, NK_1X1 = 2 };

static int32_t div_ceil(int32_t a, int32_t b)
{
    return (a + b - 1) / b;
}

uint32_t siracusa_neureka_weight_bytes(int32_t fy, int depthwise, int32_t k, int32_t c)
{
    if (k <= 0 || c <= 0) {
        return 0;
    }
    if (fy == 3 && depthwise) {
        return (uint32_t)div_ceil(c, NEUREKA_CIN_3X3) * 8u * NEUREKA_WORD_BYTES;
    }
    if (fy == 3) {
        return (uint32_t)k * (uint32_t)div_ceil(c, NEUREKA_CIN_3X3) * 8u * NEUREKA_WORD_BYTES;
    }
    if (fy == 1 && !depthwise) {
        return (uint32_t)k * (uint32_t)div_ceil(c, NEUREKA_CIN_1X1) * NEUREKA_WORD_BYTES;
    }
    return 0;
}

static uint32_t bit_at(const uint8_t *wb, uint32_t word, uint32_t i)
{
    return (uint32_t)(wb[word * NEUREKA_WORD_BYTES + i / 8u] >> (i % 8u)) & 1u;
}

/* The stored (unsigned, w + 128) weight of output channel ko, input channel
 * ci (depthwise: the channel; ko ignored), tap pos = fy * 3 + fx, read from
 * the encoding the engine streams. */
static uint32_t neureka_stored(const uint8_t *wb, int mode, int32_t cin, int32_t ko, int32_t ci,
                               int32_t pos)
{
    uint32_t u = 0, b;
    if (mode == NK_1X1) {
        /* one word per (ko, 32-channel block): 8 groups of 4 channels, each
         * group with its 8 planes, 4 bits per plane */
        const uint32_t cmaj = (uint32_t)div_ceil(cin, NEUREKA_CIN_1X1);
        const uint32_t word = (uint32_t)ko * cmaj + (uint32_t)(ci / NEUREKA_CIN_1X1);
        const uint32_t cc = (uint32_t)(ci % NEUREKA_CIN_1X1);
        for (b = 0; b < 8u; b++) {
            u |= bit_at(wb, word, ((cc / 4u) * 8u + b) * 4u + cc % 4u) << b;
        }
    } else {
        /* one word per (ko, 28-channel block, plane): 9 taps x 28 channels */
        const uint32_t cmaj = (uint32_t)div_ceil(cin, NEUREKA_CIN_3X3);
        const uint32_t kk = mode == NK_3X3_DW ? 0u : (uint32_t)ko;
        const uint32_t i = (uint32_t)pos * NEUREKA_CIN_3X3 + (uint32_t)(ci % NEUREKA_CIN_3X3);
        for (b = 0; b < 8u; b++) {
            const uint32_t word = (kk * cmaj + (uint32_t)(ci / NEUREKA_CIN_3X3)) * 8u + b;
            u |= bit_at(wb, word, i) << b;
        }
    }
    return u;
}

static int in_range(int64_t v, int dt)
{
    return dt == MK_U8 ? (v >= 0 && v <= 255) : (v >= -128 && v <= 127);
}

static void neureka_run(const mk_job_t *job, const char *kernel, int mode)
{
    const int32_t taps = mode == NK_1X1 ? 1 : 9;
    const int32_t cin = job->c;
    const int32_t kout = job->k;
    const int relu = job->ydt == MK_U8;
    const int64_t lo = relu ? 0 : -128, hi = relu ? 255 : 127;
    int32_t i, oy, ox, ko;
    uint8_t *wu;
    int64_t *sumw;
    uint32_t *hbias;
    uint32_t *scale;
    int64_t wz = 0, woff;

    siracusa_emu_kernel(kernel, job->x, job->x_bytes, job->wt, job->w_bytes, job->y, job->y_bytes);

    /* What the driver accepts (pulp-nnx neureka_task_defs.h, README). */
    if (job->op != MK_JOB_CONV) {
        fail(job, kernel, "Neureka runs convolutions only");
    }
    if (job->acc != NULL) {
        fail(job, kernel, "Neureka does not accumulate partial sums across calls");
    }
    if ((mode == NK_1X1) != (job->fy == 1) || job->fy != job->fx || (job->fy != 1 && job->fy != 3)) {
        fail(job, kernel, "kernel size does not match the mode (1x1 or 3x3)");
    }
    if (job->sy != 1 || job->sx != 1 || job->dy != 1 || job->dx != 1) {
        fail(job, kernel, "Neureka has no stride 2 and no dilation");
    }
    if (job->pt > 2 || job->pb > 2 || job->pl > 2 || job->pr > 2 || job->pt < 0 || job->pb < 0 || job->pl < 0 ||
        job->pr < 0 || (mode == NK_1X1 && job->pt + job->pb + job->pl + job->pr != 0)) {
        fail(job, kernel, "padding beyond Neureka's (at most 2, none in 1x1 mode)");
    }
    if ((mode == NK_3X3_DW) != (job->depthwise != 0) ||
        (mode == NK_3X3_DW ? (job->groups != cin || kout != cin) : job->groups != 1)) {
        fail(job, kernel, "groups do not match the mode");
    }
    if (job->xdt != MK_U8 && job->xdt != MK_I8) {
        fail(job, kernel, "inputs must be uint8 or int8");
    }
    if (job->wdt != MK_I8) {
        fail(job, kernel, "weights must be int8");
    }
    if (job->ydt != MK_U8 && job->ydt != MK_I8) {
        fail(job, kernel, "outputs must be uint8 or int8 (no int32 output)");
    }
    if (!job->has_rq || job->rq.kind != MK_RQ_SCALE_SHIFT) {
        fail(job, kernel, "Neureka's normalization is scale, bias and shift");
    }
    if (job->rq.sshift < 0 || job->rq.sshift > 31) {
        fail(job, kernel, "the shift is one 5-bit value per layer");
    }
    if (job->rq_ydt != job->ydt) {
        fail(job, kernel, "the requantization's type is not the output's");
    }
    if (job->bias != NULL && job->bias_ydt != MK_I32) {
        fail(job, kernel, "a BiasAdd whose result is not int32");
    }
    /* One weight zero point for the layer (0 for signed weights, -128 for
     * unsigned ones stored as w - 128): the engine's layer-wise weight
     * offset register, -(128 + zp), makes the accumulator sum(x * (w - zp)). */
    if (job->w_zp != NULL) {
        wz = job->w_zp[0];
        for (ko = 1; ko < kout; ko++) {
            if (job->w_zp[ko] != wz) {
                fail(job, kernel, "per-channel weight zero points (the weight offset is one per layer)");
            }
        }
    }
    woff = -(int64_t)NEUREKA_STORE_OFFSET - wz;
    if (woff < -255 || woff > 255) {
        fail(job, kernel, "a weight zero point beyond the weight offset register");
    }
    if (!in_range(job->x_zp, job->xdt)) {
        fail(job, kernel, "the input zero point is not a value of the input type (the padding value)");
    }
    if (job->w_bytes != siracusa_neureka_weight_bytes(job->fy, job->depthwise, kout, cin)) {
        fail(job, kernel, "the weight tile is not in Neureka's layout");
    }
    if (job->oh <= 0 || job->ow <= 0 || job->h != job->oh + job->fy - 1 - job->pt - job->pb ||
        job->w != job->ow + job->fx - 1 - job->pl - job->pr) {
        fail(job, kernel, "the input tile does not match the output tile");
    }
    /* The window's rows are x_pitch pixels apart when the tile moved whole rows. */
    if (job->x_pitch != 0 && job->x_pitch < job->w) {
        fail(job, kernel, "an input row pitch below the tile's width");
    }
    if (((uint32_t)(job->h - 1) * (uint32_t)(job->x_pitch > 0 ? job->x_pitch : job->w) + (uint32_t)job->w) *
            (uint32_t)cin > job->x_bytes ||
        (uint32_t)job->oh * (uint32_t)job->ow * (uint32_t)kout > job->y_bytes) {
        fail(job, kernel, "tile larger than its buffer");
    }

    /* The engine's internal view of the weights: the stored bytes, decoded
     * once per job from the bit-plane words (emulator state, not L1). */
    wu = (uint8_t *)malloc((size_t)kout * (size_t)(mode == NK_3X3_DW ? 1 : cin) * (size_t)taps);
    sumw = (int64_t *)calloc((size_t)kout, sizeof(int64_t));
    hbias = (uint32_t *)malloc((size_t)kout * sizeof(uint32_t));
    scale = (uint32_t *)malloc((size_t)kout * sizeof(uint32_t));
    if (wu == NULL || sumw == NULL || hbias == NULL || scale == NULL) {
        fail(job, kernel, "out of host memory");
    }
    for (ko = 0; ko < kout; ko++) {
        const int32_t nc = mode == NK_3X3_DW ? 1 : cin;
        int32_t ci, pos;
        for (ci = 0; ci < nc; ci++) {
            for (pos = 0; pos < taps; pos++) {
                const int32_t ch = mode == NK_3X3_DW ? ko : ci;
                const uint32_t u = neureka_stored((const uint8_t *)job->wt, mode, cin, ko, ch, pos);
                wu[((size_t)ko * (size_t)nc + (size_t)ci) * (size_t)taps + (size_t)pos] = (uint8_t)u;
                sumw[ko] += (int64_t)u + woff;
            }
        }
    }

    /* The driver's normalization parameters: uint8 scale, and one int32
     * bias folding the BiasAdd, the input zero point and the output zero
     * point (all exact in 64 bits; the engine takes 32). */
    for (ko = 0; ko < kout; ko++) {
        const int32_t rn = job->rq.n == 1 ? 0 : ko;
        const int64_t s = job->rq.scale[rn];
        const int64_t badd = job->bias == NULL ? 0 : mk_ld(job->bias, job->bdt, job->bias_n == 1 ? 0 : ko);
        int64_t hb;
        if (s < 0 || s > 255) {
            fail(job, kernel, "a scale outside uint8 (the driver's scale type)");
        }
        hb = (badd - (int64_t)job->x_zp * sumw[ko]) * s + job->rq.bias[rn] +
             job->rq.out_zp * ((int64_t)1 << job->rq.sshift);
        if (hb < INT32_MIN || hb > INT32_MAX) {
            fail(job, kernel, "the folded normalization bias does not fit int32");
        }
        scale[ko] = (uint32_t)s;
        hbias[ko] = (uint32_t)hb;
    }

    for (oy = 0; oy < job->oh; oy++) {
        for (ox = 0; ox < job->ow; ox++) {
            for (ko = 0; ko < kout; ko++) {
                const int32_t nc = mode == NK_3X3_DW ? 1 : cin;
                /* the accumulator wraps in 32 bits, as the engine's */
                uint32_t acc = 0, xsum = 0;
                int64_t ref = 0, t_ref, v;
                int32_t t;
                int32_t fy, fx, ci;
                for (fy = 0; fy < job->fy; fy++) {
                    for (fx = 0; fx < job->fx; fx++) {
                        const int32_t iy = oy + fy - job->pt, ix = ox + fx - job->pl;
                        const int inside = iy >= 0 && iy < job->h && ix >= 0 && ix < job->w;
                        for (ci = 0; ci < nc; ci++) {
                            const int32_t ch = mode == NK_3X3_DW ? ko : ci;
                            /* padding: the driver programs the input zero
                             * point as the padding value */
                            const int64_t xv =
                                inside ? mk_ld(job->x, job->xdt, (iy * (job->x_pitch > 0 ? job->x_pitch : job->w) + ix) * cin + ch) : job->x_zp;
                            const uint32_t u = wu[((size_t)ko * (size_t)nc + (size_t)ci) * (size_t)taps +
                                                  (size_t)(fy * job->fx + fx)];
                            acc += (uint32_t)xv * u;
                            xsum += (uint32_t)xv;
                            ref += (xv - job->x_zp) * ((int64_t)u + woff);
                        }
                    }
                }
                /* the layer-wise weight offset: + woff * sum(x) */
                acc += (uint32_t)woff * xsum;
                /* normalization: low 32 bits of the product, wrapping bias */
                t = (int32_t)(uint32_t)((uint32_t)acc * scale[ko] + hbias[ko]);
                /* the reference arithmetic on the same values, in 64 bits:
                 * the lowered graph's (acc + bias) * scale + bias, shifted,
                 * plus the output zero point */
                {
                    const int32_t rn = job->rq.n == 1 ? 0 : ko;
                    const int64_t badd =
                        job->bias == NULL ? 0 : mk_ld(job->bias, job->bdt, job->bias_n == 1 ? 0 : ko);
                    const int64_t a32 = (int64_t)(int32_t)(uint32_t)((uint64_t)ref + (uint64_t)badd);
                    t_ref = a32 * job->rq.scale[rn] + job->rq.bias[rn] +
                            job->rq.out_zp * ((int64_t)1 << job->rq.sshift);
                }
                if ((int64_t)t != t_ref) {
                    fail(job, kernel, "the engine's 32-bit accumulator or normalization wraps");
                }
                if (relu && t < 0) {
                    t = 0;
                }
                /* arithmetic shift right, floor (no rounding) */
                v = t >= 0 ? (int64_t)(t >> job->rq.sshift)
                           : -(int64_t)((-(int64_t)t + ((int64_t)1 << job->rq.sshift) - 1) >> job->rq.sshift);
                v = v < lo ? lo : (v > hi ? hi : v);
                i = (oy * job->ow + ox) * kout + ko;
                mk_st(job->y, job->ydt, i, v);
            }
        }
    }
    free(wu);
    free(sumw);
    free(hbias);
    free(scale);

    /* The engine has ReLU and saturation only: a narrower clip runs on the
     * cluster after the job. */
    if (job->has_clip && (job->clip_lo > lo || job->clip_hi < hi)) {
        mk_clip(job->y, job->ydt, job->y, job->ydt, job->oh * job->ow * kout, job->clip_lo, job->clip_hi);
    }
}

void neureka_conv(const mk_job_t *job)
{
    neureka_run(job, "neureka_conv", NK_3X3);
}

void neureka_pointwise(const mk_job_t *job)
{
    neureka_run(job, "neureka_pointwise", NK_1X1);
}

void neureka_depthwise(const mk_job_t *job)
{
    neureka_run(job, "neureka_depthwise", NK_3X3_DW);
}
