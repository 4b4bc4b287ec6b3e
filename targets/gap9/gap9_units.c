/*
 * GAP9's units in host emulation (see gap9_units.h): the cluster through
 * the portable kernels, NE16 in its own arithmetic from its encoded weights.
 */
#include "gap9_units.h"

#include <stdio.h>
#include <stdlib.h>

static void g9_fail(const mk_job_t *j, const char *kernel, const char *why)
{
    fprintf(stderr, "%s: layer %s: %s\n", kernel, j->layer != NULL ? j->layer : "?", why);
    abort();
}

static uint32_t g9_in_bytes(const mk_job_t *j)
{
    return j->x_bytes;
}

/* Pixels per input row in x (the window may sit inside whole rows). */
static int32_t g9_pitch(const mk_job_t *j)
{
    return j->x_pitch > 0 ? j->x_pitch : j->w;
}

/* ------------------------------------------------------------ the cluster */

/* The chain after the main operator, in place in the accumulator `cur`
 * (which holds the main operator's output) and into y at its last step. */
static void g9_chain(const mk_job_t *j, void *cur, int32_t elems)
{
    int left = (j->bias != NULL) + (j->has_rq != 0) + (j->has_clip != 0);
    int cdt = j->main_ydt;
    void *const acc = cur;
    void *dst;
    if (j->bias != NULL) {
        dst = --left == 0 ? j->y : acc;
        mk_bias_add(cur, cdt, j->bias, j->bdt, j->bias_n, dst, j->bias_ydt, elems, j->k);
        cur = dst;
        cdt = j->bias_ydt;
    }
    if (j->has_rq) {
        dst = --left == 0 ? j->y : acc;
        mk_requantize(cur, cdt, dst, j->rq_ydt, elems, j->k, &j->rq);
        cur = dst;
        cdt = j->rq_ydt;
    }
    if (j->has_clip) {
        mk_clip(cur, cdt, j->y, j->ydt, elems, j->clip_lo, j->clip_hi);
    }
}

/* A job of a split C (j->acc, mk_job_t): this C tile's sums set (first C
 * tile) or added into the accumulator in L1; the last C tile runs the
 * chain on the complete sums, in place in the accumulator, into y. The
 * same kernels and steps as the portable path's split (emit/tiled.rs). */
static void g9_cluster_split(const char *kernel, const mk_job_t *j, int32_t elems)
{
    const int add = !j->c_first;
    const int dense = j->op == MK_JOB_DENSE;
    if (!dense && (j->op != MK_JOB_CONV || j->groups != 1 || j->depthwise)) {
        g9_fail(j, kernel, "a split C of a job other than a convolution (groups 1) or a dense layer");
    }
    if (j->main_ydt != MK_I32 || j->acc_bytes < (uint32_t)elems * 4u) {
        g9_fail(j, kernel, "a split C without an int32 accumulator of the tile's outputs");
    }
    /* The accumulator is read (but on the first C tile) and written. */
    gap9_emu_kernel(kernel, j->x, g9_in_bytes(j), j->wt, j->w_bytes, j->c_last ? j->y : NULL,
                    j->c_last ? j->y_bytes : 0u);
    gap9_emu_access(kernel, "accumulator", j->acc, (uint32_t)elems * 4u, 1);
    if (dense) {
        mk_dense_acc(j->x, j->xdt, j->wt, j->wdt, j->acc, j->rows, j->c, j->k, j->x_zp, j->w_zp, add);
    } else {
        mk_conv_t p;
        p.n = 1; p.h = j->h; p.w = j->w; p.c = j->c; p.k = j->k; p.fy = j->fy; p.fx = j->fx;
        p.oh = j->oh; p.ow = j->ow; p.sy = j->sy; p.sx = j->sx; p.dy = j->dy; p.dx = j->dx;
        p.pt = j->pt; p.pl = j->pl; p.groups = 1; p.x_zp = j->x_zp; p.w_zp = j->w_zp;
        mk_conv2d_acc(j->x, j->xdt, j->wt, j->wdt, j->acc, &p, g9_pitch(j), add);
    }
    if (!j->c_last) {
        return; /* more C tiles to come: y is written after the last */
    }
    if (j->bias != NULL || j->has_rq || j->has_clip) {
        g9_chain(j, j->acc, elems);
    } else {
        mk_copy(j->y, j->acc, elems * 4);
    }
}

/* A job on the cluster: the portable kernels, which are the exact
 * reference of every requantization form. */
static void g9_cluster(const char *kernel, const mk_job_t *j, int op_ok)
{
    const int chain = j->bias != NULL || j->has_rq || j->has_clip;
    const int32_t elems = j->rows * j->k * j->oh * j->ow;
    void *main_out = j->y;
    if (!op_ok) {
        g9_fail(j, kernel, "a job of another operator");
    }
    if (j->acc != NULL) {
        g9_cluster_split(kernel, j, elems);
        return;
    }
    gap9_emu_kernel(kernel, j->x, g9_in_bytes(j), j->wt, j->w_bytes, j->y, j->y_bytes);
    if (chain) {
        /* The accumulator is the kernel's own: PULP-NN requantizes each
         * output pixel from registers, so on the device it takes no tile
         * buffer; the emulation keeps the tile's on the heap. */
        main_out = malloc((size_t)(elems > 0 ? elems : 1) * 8u);
        if (main_out == NULL) {
            g9_fail(j, kernel, "out of host memory for the accumulator");
        }
    }
    switch (j->op) {
    case MK_JOB_CONV: {
        mk_conv_t p;
        p.n = 1; p.h = j->h; p.w = j->w; p.c = j->c; p.k = j->k; p.fy = j->fy; p.fx = j->fx;
        p.oh = j->oh; p.ow = j->ow; p.sy = j->sy; p.sx = j->sx; p.dy = j->dy; p.dx = j->dx;
        p.pt = j->pt; p.pl = j->pl; p.groups = j->groups; p.x_zp = j->x_zp; p.w_zp = j->w_zp;
        mk_conv2d_pitch(j->x, j->xdt, j->wt, j->wdt, (int32_t *)main_out, &p, g9_pitch(j));
        break;
    }
    case MK_JOB_DENSE:
        mk_dense(j->x, j->xdt, j->wt, j->wdt, (int32_t *)main_out, j->rows, j->c, j->k, j->x_zp, j->w_zp);
        break;
    case MK_JOB_ADD: {
        int32_t sh[3], st[3];
        mk_add_t a = j->add;
        sh[0] = j->oh; sh[1] = j->ow; sh[2] = j->k;
        st[0] = j->ow * j->k; st[1] = j->k; st[2] = 1;
        a.rank = 3; a.shape = sh; a.sa = st; a.sb = st;
        mk_add(j->x, j->xdt, j->x2, j->x2dt, main_out, j->main_ydt, &a);
        break;
    }
    case MK_JOB_AVG_POOL:
        mk_avg_pool(j->x, j->xdt, main_out, j->main_ydt, &j->pool, j->pool_zp);
        break;
    case MK_JOB_MAX_POOL:
        mk_max_pool(j->x, j->xdt, main_out, j->main_ydt, &j->pool);
        break;
    case MK_JOB_GLOBAL_AVG_POOL:
        mk_global_avg_pool(j->x, j->xdt, main_out, j->main_ydt, 1, j->h * j->w, j->c);
        break;
    case MK_JOB_QLINEAR_AVG_POOL:
        mk_qlinear_avg_pool(j->x, j->xdt, main_out, j->main_ydt, &j->pool, j->pool_x_scale, j->pool_zp,
                            j->pool_y_scale, j->pool_y_zp);
        break;
    default:
        g9_fail(j, kernel, "unknown job");
    }
    if (chain) {
        g9_chain(j, main_out, elems);
        free(main_out);
    }
}

void cluster_conv(const mk_job_t *job)
{
    g9_cluster("cluster_conv", job, job->op == MK_JOB_CONV);
}

void cluster_pointwise(const mk_job_t *job)
{
    g9_cluster("cluster_pointwise", job, job->op == MK_JOB_CONV && job->fy == 1 && job->fx == 1);
}

void cluster_depthwise(const mk_job_t *job)
{
    g9_cluster("cluster_depthwise", job, job->op == MK_JOB_CONV && job->depthwise);
}

void cluster_conv_acc(const mk_job_t *job)
{
    g9_cluster("cluster_conv_acc", job, job->op == MK_JOB_CONV && !job->has_rq);
}

void cluster_linear(const mk_job_t *job)
{
    g9_cluster("cluster_linear", job, job->op == MK_JOB_DENSE);
}

void cluster_linear_acc(const mk_job_t *job)
{
    g9_cluster("cluster_linear_acc", job, job->op == MK_JOB_DENSE && !job->has_rq);
}

void cluster_add(const mk_job_t *job)
{
    g9_cluster("cluster_add", job, job->op == MK_JOB_ADD);
}

void cluster_pool(const mk_job_t *job)
{
    g9_cluster("cluster_pool", job,
               job->op == MK_JOB_AVG_POOL || job->op == MK_JOB_MAX_POOL || job->op == MK_JOB_GLOBAL_AVG_POOL
                   || job->op == MK_JOB_QLINEAR_AVG_POOL);
}

/* ------------------------------------------------------------------- NE16 */

/* Bytes of the encoded weights of a tile (HARDWARE.md step 4). */
static uint32_t ne16_w_size(const mk_job_t *j, int dw)
{
    const uint32_t taps = (uint32_t)(j->fy * j->fx);
    if (dw) {
        return (uint32_t)((j->k + 15) / 16) * 8u * taps * 2u;
    }
    return (uint32_t)j->k * (uint32_t)((j->c + 15) / 16) * 8u * taps * 2u;
}

/* The unsigned weight w + 128 of output channel k (depthwise: the channel),
 * input channel i (0 for depthwise), tap t, read back from its bit planes. */
static uint32_t ne16_w(const mk_job_t *j, int dw, int32_t k, int32_t i, int32_t t)
{
    const uint8_t *w = (const uint8_t *)j->wt;
    const int32_t taps = j->fy * j->fx;
    const int32_t ch = dw ? k : i;
    const int32_t blk = ch / 16, in_blk = ch % 16;
    const int32_t base = dw ? blk * 8 : (k * ((j->c + 15) / 16) + blk) * 8;
    uint32_t v = 0;
    int32_t b;
    for (b = 0; b < 8; b++) {
        const uint8_t byte = w[((base + b) * taps + t) * 2 + in_blk / 8];
        v |= (uint32_t)((byte >> (in_blk % 8)) & 1u) << b;
    }
    return v;
}

static void ne16_run(const char *kernel, const mk_job_t *j, int dw)
{
    int32_t oy, ox, k, fy, fx, i, wz;
    int64_t lo = 0, hi = 0, sat_lo = 0, sat_hi = 0;
    int relu = 0;
    uint32_t woff;
    const uint8_t *x = (const uint8_t *)j->x;
    gap9_emu_kernel(kernel, j->x, g9_in_bytes(j), j->wt, j->w_bytes, j->y, j->y_bytes);
    /* The job must be in NE16's form (the offload rules and the lowering). */
    if (j->op != MK_JOB_CONV || (dw && !j->depthwise) || (!dw && j->groups != 1)) {
        g9_fail(j, kernel, "not a convolution of this kind");
    }
    if (j->acc != NULL) {
        /* gap9.hwm's ne16 does not claim partial_sums: it normalizes every call. */
        g9_fail(j, kernel, "a split C (NE16 keeps no partial sums across calls)");
    }
    if (j->xdt != MK_U8 || j->x_zp != 0) {
        g9_fail(j, kernel, "NE16 reads uint8 inputs without a zero point");
    }
    if (!((j->fy == 1 && j->fx == 1 && !dw) || (j->fy == 3 && j->fx == 3)) || j->dy != 1 || j->dx != 1
        || j->sy < 1 || j->sy > 2 || j->sx < 1 || j->sx > 2 || j->pt > 2 || j->pb > 2 || j->pl > 2
        || j->pr > 2) {
        g9_fail(j, kernel, "kernel, stride, dilation or padding outside NE16's");
    }
    if (j->fy == 1 && (j->pt | j->pb | j->pl | j->pr) != 0) {
        /* pulp-nnx refuses a padded 1x1 convolution (gap9.hwm's rule). */
        g9_fail(j, kernel, "a padded 1x1 convolution");
    }
    if ((j->sy == 2 || j->sx == 2) && (j->k * (j->ydt == MK_I32 ? 4 : 1)) % 2 != 0) {
        /* The 2x2-strided mode halves the output strides of the tile
         * (pulp-nnx ne16_task_set_dims_stride2x2): its output channels x
         * bytes must be even (gap9.hwm's tile_condition). */
        g9_fail(j, kernel, "a 2x2-strided tile with an odd number of output bytes per pixel");
    }
    if (j->w_bytes != ne16_w_size(j, dw)) {
        g9_fail(j, kernel, "the weights are not in NE16's layout (size)");
    }
    /* The layer-wise weight offset register: -(128 + z) for a weight zero
     * point z of 0 (signed weights) or -128 (unsigned weights stored w - 128). */
    wz = j->w_zp != NULL ? j->w_zp[0] : 0;
    for (k = 0; k < j->k; k++) {
        if (j->w_zp != NULL && j->w_zp[k] != wz) {
            g9_fail(j, kernel, "NE16 has one weight offset per layer");
        }
    }
    if (wz != 0 && wz != -128) {
        g9_fail(j, kernel, "NE16 weight zero point other than 0 or -128");
    }
    woff = (uint32_t)(-(128 + wz));
    if (j->has_rq) {
        if (j->rq.kind != MK_RQ_SCALE_SHIFT || j->rq.out_zp != 0 || j->rq.sshift > 31 || j->rq_ydt != j->ydt) {
            g9_fail(j, kernel, "a requantization NE16 does not compute (scale, bias, shift to 8 bits)");
        }
        /* NE16 saturates to [0, 255] with ReLU (u8 out) or [-128, 127]. */
        if (j->ydt == MK_U8) {
            relu = 1;
            sat_lo = 0;
            sat_hi = 255;
        } else if (j->ydt == MK_I8) {
            sat_lo = -128;
            sat_hi = 127;
        } else {
            g9_fail(j, kernel, "NE16 normalizes to 8-bit outputs");
        }
        lo = sat_lo;
        hi = sat_hi;
        if (j->has_clip) {
            lo = j->clip_lo > lo ? j->clip_lo : lo;
            hi = j->clip_hi < hi ? j->clip_hi : hi;
        }
    } else if (j->ydt != MK_I32 || j->has_clip || j->bias_ydt != MK_I32) {
        g9_fail(j, kernel, "without normalization NE16 writes the int32 accumulator");
    }
    for (oy = 0; oy < j->oh; oy++) {
        for (ox = 0; ox < j->ow; ox++) {
            for (k = 0; k < j->k; k++) {
                uint32_t acc = 0, sum = 0, t;
                for (fy = 0; fy < j->fy; fy++) {
                    const int32_t iy = oy * j->sy - j->pt + fy;
                    if (iy < 0 || iy >= j->h) {
                        continue; /* pad value 0 */
                    }
                    for (fx = 0; fx < j->fx; fx++) {
                        const int32_t ix = ox * j->sx - j->pl + fx;
                        const int32_t tap = fy * j->fx + fx;
                        const uint8_t *px;
                        if (ix < 0 || ix >= j->w) {
                            continue;
                        }
                        px = x + (iy * g9_pitch(j) + ix) * j->c;
                        if (dw) {
                            acc += (uint32_t)px[k] * ne16_w(j, 1, k, 0, tap);
                            sum += px[k];
                        } else {
                            for (i = 0; i < j->c; i++) {
                                acc += (uint32_t)px[i] * ne16_w(j, 0, k, i, tap);
                                sum += px[i];
                            }
                        }
                    }
                }
                /* The layer-wise weight offset times sum(x). */
                acc += woff * sum;
                t = acc;
                if (j->has_rq) {
                    const int32_t q = j->rq.n == 1 ? 0 : k;
                    const int64_t scale = j->rq.scale[q];
                    uint32_t bias = (uint32_t)j->rq.bias[q];
                    int32_t v;
                    /* HARDWARE.md: unsigned 8- or 32-bit scales (the
                     * 32-bit mode for a layer with any scale above 255);
                     * t = low32(acc * scale) + bias either way. */
                    if (scale < 0 || scale > 0xFFFFFFFFll) {
                        g9_fail(j, kernel, "NE16 scales are unsigned 8- or 32-bit");
                    }
                    if (j->bias != NULL) {
                        /* the driver's bias: low32(bias_add * scale + bias) */
                        const uint32_t b = (uint32_t)mk_ld(j->bias, j->bdt, j->bias_n == 1 ? 0 : k);
                        bias += b * (uint32_t)scale;
                    }
                    t = t * (uint32_t)scale + bias;
                    v = t >= 0x80000000u ? -(int32_t)(~t) - 1 : (int32_t)t;
                    if (relu && v < 0) {
                        v = 0;
                    }
                    v = v >= 0 ? v >> j->rq.sshift : -1 - ((-1 - v) >> j->rq.sshift);
                    v = v < sat_lo ? (int32_t)sat_lo : (v > sat_hi ? (int32_t)sat_hi : v);
                    /* a clip inside the saturation range (e.g. ReLU6):
                     * after the unit, see gap9_units.h */
                    v = v < lo ? (int32_t)lo : (v > hi ? (int32_t)hi : v);
                    mk_st(j->y, j->ydt, (oy * j->ow + ox) * j->k + k, v);
                } else {
                    int32_t v;
                    if (j->bias != NULL) {
                        t += (uint32_t)mk_ld(j->bias, j->bdt, j->bias_n == 1 ? 0 : k);
                    }
                    v = t >= 0x80000000u ? -(int32_t)(~t) - 1 : (int32_t)t;
                    ((int32_t *)j->y)[(oy * j->ow + ox) * j->k + k] = v;
                }
            }
        }
    }
}

void ne16_conv(const mk_job_t *job)
{
    ne16_run("ne16_conv", job, 0);
}

void ne16_depthwise(const mk_job_t *job)
{
    ne16_run("ne16_depthwise", job, 1);
}
