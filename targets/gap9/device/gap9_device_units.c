/*
 * GAP9 device adapter: the unit kernels gap9.hwm's offload rules call,
 * `void NAME(const mk_job_t *job)` (targets/gap9/gap9_units.h), one tile
 * in L1 per call.
 *
 * UNTESTED ON SILICON (README.md).
 *
 * - cluster_*: the tile's outputs, as (pixel, chunk of 32 output channels)
 *   items, are split over the 8 worker cores with pi_cl_team_fork; each
 *   worker computes an item's accumulators on its stack (the same wrapping
 *   32-bit sums as the portable kernels; a split C's job, mk_job_t.acc,
 *   sets or adds them into its int32 accumulator in L1, and all but the
 *   last C tile stop there, as the emulation does), then the layer's chain (bias,
 *   requantization, clip) with the portable kernels of match_kernels.c, the
 *   bit-exact reference of every requantization form, as the emulation
 *   does, and stores the item. Additions run mk_add per item, pooling the
 *   portable pooling kernels per output-row slice. PULP-NN's kernels are
 *   not called: their requantization is the batch-norm form clip((k * acc
 *   + l) >> d) only, not TFLite's fixed point, so they would not be
 *   bit-exact.
 * - ne16_conv / ne16_depthwise: one pulp-nnx NE16 task per tile: 8-bit
 *   unsigned input, the layer-wise weight offset -(128 + z) (z, the weight
 *   zero point, 0 or -128), normalization with 8-bit scales (32-bit ones
 *   when any scale of the layer exceeds 255), 32-bit biases and the
 *   layer's shift (floor, no rounding), ReLU when the output is u8;
 *   without requantization the 32-bit accumulator. A BiasAdd on that int32
 *   output, or a clip inside NE16's saturation (ReLU6), is a pass of the
 *   workers after the unit.
 */
#include "gap9_device.h"

/* ------------------------------------------------------- shared helpers */

static void g9u_range(int dt, int64_t *lo, int64_t *hi)
{
    switch (dt) {
    case MK_I8: *lo = -128; *hi = 127; break;
    case MK_U8: *lo = 0; *hi = 255; break;
    case MK_I16: *lo = -32768; *hi = 32767; break;
    case MK_I32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    default: *lo = INT64_MIN; *hi = INT64_MAX; break;
    }
}

/* [first, first + count) of `n` items for worker `core` of `cores`. */
static void g9u_share(int32_t n, int core, int cores, int32_t *first, int32_t *count)
{
    const int32_t per = n / cores, extra = n % cores;
    *first = core * per + (core < extra ? core : extra);
    *count = per + (core < extra ? 1 : 0);
}

static uint8_t *g9u_at(const void *base, int dt, int32_t elem)
{
    return (uint8_t *)(uintptr_t)base + (uint32_t)elem * (uint32_t)mk_esize(dt);
}

/* The requantization of output channels [k0, k0 + kc): the per-channel
 * arrays advanced to k0 (a slice of a single-row dense job). */
static mk_requant_t g9u_rq_slice(const mk_requant_t *rq, int32_t k0, int32_t kc)
{
    mk_requant_t r = *rq;
    if (rq->n > 1) {
        r.n = kc;
        r.multiplier = rq->multiplier != NULL ? rq->multiplier + k0 : NULL;
        r.shift = rq->shift != NULL ? rq->shift + k0 : NULL;
        r.scale = rq->scale != NULL ? rq->scale + k0 : NULL;
        r.bias = rq->bias != NULL ? rq->bias + k0 : NULL;
        r.fscale = rq->fscale != NULL ? rq->fscale + k0 : NULL;
        r.adc_k = rq->adc_k != NULL ? rq->adc_k + k0 : NULL;
        r.adc_l = rq->adc_l != NULL ? rq->adc_l + k0 : NULL;
    }
    return r;
}

/* The chain (bias, requantization, clip) on `elems` elements of one
 * core's slice: output channels [k0, k0 + kc) repeated, the main result
 * at `cur` (type main_ydt), intermediate steps in place in the slice's own
 * accumulator bytes `tmp` (so cores never touch each other's), the last
 * step into `y`. Same steps, types and order as the emulation
 * (gap9_units.c), so the same bits. */
static void g9u_chain(const mk_job_t *j, void *cur, void *tmp, void *y, int32_t elems, int32_t k0, int32_t kc)
{
    int left = (j->bias != NULL) + (j->has_rq != 0) + (j->has_clip != 0);
    int cdt = j->main_ydt;
    void *dst;
    if (j->bias != NULL) {
        const void *b = j->bias_n == 1 ? j->bias : (const void *)g9u_at(j->bias, j->bdt, k0);
        dst = --left == 0 ? y : tmp;
        mk_bias_add(cur, cdt, b, j->bdt, j->bias_n == 1 ? 1 : kc, dst, j->bias_ydt, elems, kc);
        cur = dst;
        cdt = j->bias_ydt;
    }
    if (j->has_rq) {
        const mk_requant_t rq = g9u_rq_slice(&j->rq, k0, kc);
        dst = --left == 0 ? y : tmp;
        mk_requantize(cur, cdt, dst, j->rq_ydt, elems, kc, &rq);
        cur = dst;
        cdt = j->rq_ydt;
    }
    if (j->has_clip) {
        mk_clip(cur, cdt, y, j->ydt, elems, j->clip_lo, j->clip_hi);
    }
}

/* ------------------------------------------------------------ the cluster */

/* Output channels per chunk: a worker's accumulators live on its stack,
 * G9U_CH int32 at a time (PULP-NN keeps them in registers; the tile has no
 * accumulator buffer in L1 unless it splits C, as the emulation and the
 * cost model say). */
#define G9U_CH 32

typedef struct {
    const char *kernel;
    const mk_job_t *job;
} g9u_task_t;

static int32_t g9u_s32(uint32_t u)
{
    return u >= 0x80000000u ? -(int32_t)(~u) - 1 : (int32_t)u;
}

/* The accumulator of output channel kk at output pixel `pix` (dense: the
 * row): the sum over the window of (x - x_zp) * (w - w_zp[kk]) in wrapping
 * 32-bit arithmetic, padding contributing nothing; the same terms as
 * mk_conv2d / mk_dense, and their sum does not depend on the order. */
static int32_t g9u_acc(const mk_job_t *j, int32_t pix, int32_t kk)
{
    const int dense = j->op == MK_JOB_DENSE;
    const int32_t groups = dense || j->groups < 1 ? 1 : j->groups;
    const int32_t cg = j->c / groups, kg = j->k / groups;
    const int32_t c0 = (kk / kg) * cg;
    const int32_t fy = dense ? 1 : j->fy, fx = dense ? 1 : j->fx;
    const int32_t oy = dense ? 0 : pix / j->ow, ox = dense ? 0 : pix % j->ow;
    const uint32_t zx = (uint32_t)j->x_zp, zw = j->w_zp != NULL ? (uint32_t)j->w_zp[kk] : 0u;
    const int fast = (j->xdt == MK_I8 || j->xdt == MK_U8) && j->wdt == MK_I8;
    uint32_t sum = 0u;
    int32_t ky, kx, ci;
    for (ky = 0; ky < fy; ky++) {
        const int32_t iy = dense ? 0 : oy * j->sy + ky * j->dy - j->pt;
        if (!dense && (iy < 0 || iy >= j->h)) {
            continue;
        }
        for (kx = 0; kx < fx; kx++) {
            const int32_t ix = dense ? 0 : ox * j->sx + kx * j->dx - j->pl;
            int32_t xb, wb;
            if (!dense && (ix < 0 || ix >= j->w)) {
                continue;
            }
            xb = dense ? pix * j->c : (iy * (j->x_pitch > 0 ? j->x_pitch : j->w) + ix) * j->c + c0;
            wb = kk * fy * fx * cg + (ky * fx + kx) * cg;
            if (fast) {
                const int8_t *w = (const int8_t *)j->wt + wb;
                if (j->xdt == MK_I8) {
                    const int8_t *x = (const int8_t *)j->x + xb;
                    for (ci = 0; ci < cg; ci++) {
                        sum += ((uint32_t)(int32_t)x[ci] - zx) * ((uint32_t)(int32_t)w[ci] - zw);
                    }
                } else {
                    const uint8_t *x = (const uint8_t *)j->x + xb;
                    for (ci = 0; ci < cg; ci++) {
                        sum += ((uint32_t)x[ci] - zx) * ((uint32_t)(int32_t)w[ci] - zw);
                    }
                }
            } else {
                for (ci = 0; ci < cg; ci++) {
                    sum += ((uint32_t)mk_ld(j->x, j->xdt, xb + ci) - zx) * ((uint32_t)mk_ld(j->wt, j->wdt, wb + ci) - zw);
                }
            }
        }
    }
    return g9u_s32(sum);
}

/* One work item: output channels [k0, k0 + kc) of pixel `pix` (dense: a
 * row): the main operator into the worker's chunk, the chain in place,
 * then the chunk into y. */
static void g9u_item(const mk_job_t *j, int32_t pix, int32_t k0, int32_t kc)
{
    int32_t buf[G9U_CH];
    const int32_t es = mk_esize(j->ydt);
    const uint8_t *src;
    uint8_t *dst;
    int32_t i;
    if (j->op == MK_JOB_ADD) {
        int32_t sh[1], st[1];
        mk_add_t a = j->add;
        const int32_t e0 = pix * j->k + k0;
        sh[0] = kc;
        st[0] = 1;
        a.rank = 1; a.shape = sh; a.sa = st; a.sb = st;
        mk_add(g9u_at(j->x, j->xdt, e0), j->xdt, g9u_at(j->x2, j->x2dt, e0), j->x2dt, buf, j->main_ydt, &a);
    } else if (j->acc != NULL) {
        /* A split C (mk_job_t.acc): this C tile's sums set or added into
         * the item's accumulators in L1 (each item its own, so workers
         * never share one); all but the last C tile stop there. */
        int32_t *acc = j->acc + pix * j->k + k0;
        for (i = 0; i < kc; i++) {
            const int32_t s = g9u_acc(j, pix, k0 + i);
            buf[i] = j->c_first ? s : g9u_s32((uint32_t)acc[i] + (uint32_t)s);
        }
        if (!j->c_last) {
            for (i = 0; i < kc; i++) {
                acc[i] = buf[i];
            }
            return;
        }
    } else {
        for (i = 0; i < kc; i++) {
            buf[i] = g9u_acc(j, pix, k0 + i);
        }
    }
    if (j->bias != NULL || j->has_rq || j->has_clip) {
        g9u_chain(j, buf, buf, buf, kc, k0, kc);
    }
    src = (const uint8_t *)buf;
    dst = g9u_at(j->y, j->ydt, pix * j->k + k0);
    for (i = 0; i < kc * es; i++) {
        dst[i] = src[i];
    }
}

/* Pooling: output rows [r0, r0 + n) straight into y, from the input rows
 * they read, the tile's top padding moved (no chain follows a pooling:
 * gap9.hwm's pool pattern has none). */
static void g9u_pool_rows(const mk_job_t *j, int32_t r0, int32_t n)
{
    mk_pool_t p = j->pool;
    const int32_t in0 = r0 * p.sy - p.pt;
    const int32_t skip = in0 > 0 ? in0 : 0;
    const void *x = g9u_at(j->x, j->xdt, skip * p.w * p.c);
    void *out = g9u_at(j->y, j->ydt, r0 * p.ow * p.c);
    p.n = 1;
    p.h -= skip;
    p.pt = in0 < 0 ? -in0 : 0;
    p.oh = n;
    if (j->op == MK_JOB_AVG_POOL) {
        mk_avg_pool(x, j->xdt, out, j->ydt, &p, j->pool_zp);
    } else if (j->op == MK_JOB_MAX_POOL) {
        mk_max_pool(x, j->xdt, out, j->ydt, &p);
    } else {
        mk_qlinear_avg_pool(x, j->xdt, out, j->ydt, &p, j->pool_x_scale, j->pool_zp, j->pool_y_scale, j->pool_y_zp);
    }
}

/* The entry every worker runs (pi_cl_team_fork): its share of the items,
 * pixels x channel chunks in order (pooling: of the output rows). */
static void g9u_worker(void *arg)
{
    const g9u_task_t *t = (const g9u_task_t *)arg;
    const mk_job_t *j = t->job;
    const int core = pi_core_id() % GAP9_CL_CORES;
    int32_t first, n, it;
    if (j->op == MK_JOB_AVG_POOL || j->op == MK_JOB_MAX_POOL || j->op == MK_JOB_QLINEAR_AVG_POOL) {
        g9u_share(j->pool.oh, core, GAP9_CL_CORES, &first, &n);
        if (n > 0) {
            g9u_pool_rows(j, first, n);
        }
        return;
    }
    if (j->op == MK_JOB_GLOBAL_AVG_POOL) {
        /* One output pixel: the first worker computes it. */
        if (core == 0) {
            mk_global_avg_pool(j->x, j->xdt, j->y, j->ydt, 1, j->h * j->w, j->c);
        }
        return;
    }
    {
        const int32_t pixels = j->op == MK_JOB_DENSE ? j->rows : j->oh * j->ow;
        const int32_t chunks = (j->k + G9U_CH - 1) / G9U_CH;
        g9u_share(pixels * chunks, core, GAP9_CL_CORES, &first, &n);
        for (it = first; it < first + n; it++) {
            const int32_t k0 = (it % chunks) * G9U_CH;
            g9u_item(j, it / chunks, k0, j->k - k0 < G9U_CH ? j->k - k0 : G9U_CH);
        }
    }
}

static void g9u_cluster(const char *kernel, const mk_job_t *j, int op_ok)
{
    g9u_task_t t;
    const int chain = j->bias != NULL || j->has_rq || j->has_clip;
    const int pool = j->op == MK_JOB_AVG_POOL || j->op == MK_JOB_MAX_POOL || j->op == MK_JOB_GLOBAL_AVG_POOL
                     || j->op == MK_JOB_QLINEAR_AVG_POOL;
    if (!op_ok) {
        gap9_device_fail(kernel, j->layer, "a job of another operator");
    }
    if (j->op != MK_JOB_CONV && j->op != MK_JOB_DENSE && j->op != MK_JOB_ADD && !pool) {
        gap9_device_fail(kernel, j->layer, "unknown job");
    }
    if (pool && chain) {
        gap9_device_fail(kernel, j->layer, "a chain after a pooling (gap9.hwm's pool pattern has none)");
    }
    if (!pool && (j->op == MK_JOB_ADD ? mk_esize(j->main_ydt) > 4 : j->main_ydt != MK_I32)) {
        gap9_device_fail(kernel, j->layer, "a main result wider than 32 bits (or not int32 for a MAC job)");
    }
    if (mk_esize(j->ydt) > 4 || (j->bias != NULL && mk_esize(j->bias_ydt) > 4)
        || (j->has_rq && mk_esize(j->rq_ydt) > 4)) {
        gap9_device_fail(kernel, j->layer, "a chain step wider than 32 bits");
    }
    if (!pool && !chain && j->ydt != j->main_ydt) {
        gap9_device_fail(kernel, j->layer, "an output type other than the main operator's, without a chain");
    }
    if (j->acc != NULL
        && ((j->op != MK_JOB_CONV && j->op != MK_JOB_DENSE) || (j->op == MK_JOB_CONV && (j->groups != 1 || j->depthwise))
            || j->acc_bytes < (uint32_t)((j->op == MK_JOB_DENSE ? j->rows : j->oh * j->ow) * j->k) * 4u)) {
        gap9_device_fail(kernel, j->layer,
                         "a split C of a job other than a convolution (groups 1) or a dense layer, or a short accumulator");
    }
    t.kernel = kernel;
    t.job = j;
    pi_cl_team_fork(GAP9_CL_CORES, g9u_worker, &t);
}

void cluster_conv(const mk_job_t *job)
{
    g9u_cluster("cluster_conv", job, job->op == MK_JOB_CONV);
}

void cluster_pointwise(const mk_job_t *job)
{
    g9u_cluster("cluster_pointwise", job, job->op == MK_JOB_CONV && job->fy == 1 && job->fx == 1);
}

void cluster_depthwise(const mk_job_t *job)
{
    g9u_cluster("cluster_depthwise", job, job->op == MK_JOB_CONV && job->depthwise);
}

void cluster_conv_acc(const mk_job_t *job)
{
    g9u_cluster("cluster_conv_acc", job, job->op == MK_JOB_CONV && !job->has_rq);
}

void cluster_linear(const mk_job_t *job)
{
    g9u_cluster("cluster_linear", job, job->op == MK_JOB_DENSE);
}

void cluster_linear_acc(const mk_job_t *job)
{
    g9u_cluster("cluster_linear_acc", job, job->op == MK_JOB_DENSE && !job->has_rq);
}

void cluster_add(const mk_job_t *job)
{
    g9u_cluster("cluster_add", job, job->op == MK_JOB_ADD);
}

void cluster_pool(const mk_job_t *job)
{
    g9u_cluster("cluster_pool", job,
                job->op == MK_JOB_AVG_POOL || job->op == MK_JOB_MAX_POOL || job->op == MK_JOB_GLOBAL_AVG_POOL
                    || job->op == MK_JOB_QLINEAR_AVG_POOL);
}

/* ------------------------------------------------------------------- NE16 */

/* Normalization operands of a tile, in L1 where NE16 reads them: scales (8-
 * or 32-bit, one array each: NE16 reads them packed at their width) and
 * 32-bit biases per output channel. The largest tile a layer
 * gets is bounded by L1; 512 channels covers every shipped model (checked
 * below, never silently truncated). */
#define G9U_NE16_MAX_K 512
static PI_CL_L1 uint8_t g9u_ne16_scale[G9U_NE16_MAX_K];
static PI_CL_L1 uint32_t g9u_ne16_scale32[G9U_NE16_MAX_K];
static PI_CL_L1 int32_t g9u_ne16_bias[G9U_NE16_MAX_K];
static PI_CL_L1 ne16_task_t g9u_ne16_task;

/* Bytes of the encoded weights of a tile (HARDWARE.md step 4). */
static uint32_t g9u_ne16_w_size(const mk_job_t *j, int dw)
{
    const uint32_t taps = (uint32_t)(j->fy * j->fx);
    if (dw) {
        return (uint32_t)((j->k + 15) / 16) * 8u * taps * 2u;
    }
    return (uint32_t)j->k * (uint32_t)((j->c + 15) / 16) * 8u * taps * 2u;
}

/* What NE16 leaves to the cluster, one pass of the workers over their
 * pixels of the tile: a BiasAdd on an int32 output (no normalization), or
 * a clip narrower than NE16's saturation (e.g. ReLU6). */
typedef struct {
    const mk_job_t *job;
    int64_t lo, hi;
} g9u_post_t;

static void g9u_post_worker(void *arg)
{
    const g9u_post_t *p = (const g9u_post_t *)arg;
    const mk_job_t *j = p->job;
    int32_t first, n, i;
    g9u_share(j->oh * j->ow, pi_core_id() % GAP9_CL_CORES, GAP9_CL_CORES, &first, &n);
    for (i = first * j->k; i < (first + n) * j->k; i++) {
        if (!j->has_rq) {
            const uint32_t b = (uint32_t)mk_ld(j->bias, j->bdt, j->bias_n == 1 ? 0 : i % j->k);
            uint32_t v = (uint32_t)((int32_t *)j->y)[i] + b; /* wraps, as the emulation */
            ((int32_t *)j->y)[i] = g9u_s32(v);
        } else {
            const int64_t v = mk_ld(j->y, j->ydt, i);
            mk_st(j->y, j->ydt, i, v < p->lo ? p->lo : (v > p->hi ? p->hi : v));
        }
    }
}

static void g9u_ne16(const char *kernel, const mk_job_t *j, int dw)
{
    const ne16_dev_t *dev = gap9_ne16_dev();
    ne16_task_t *task = &g9u_ne16_task;
    g9u_post_t post;
    int relu = 0, clip_after = 0, wide = 0;
    int32_t k, wz;
    int64_t lo = 0, hi = 0;
    /* The job must be in NE16's form: the offload rules and the lowering
     * guarantee it; the emulation aborts on the same conditions. */
    if (j->op != MK_JOB_CONV || (dw && !j->depthwise) || (!dw && j->groups != 1)) {
        gap9_device_fail(kernel, j->layer, "not a convolution of this kind");
    }
    if (j->acc != NULL) {
        gap9_device_fail(kernel, j->layer, "a split C (NE16 keeps no partial sums across calls)");
    }
    if (j->xdt != MK_U8 || j->x_zp != 0) {
        gap9_device_fail(kernel, j->layer, "NE16 reads uint8 inputs without a zero point");
    }
    if (!((j->fy == 1 && j->fx == 1 && !dw) || (j->fy == 3 && j->fx == 3)) || j->dy != 1 || j->dx != 1
        || j->sy != j->sx || j->sy < 1 || j->sy > 2 || j->pt > 2 || j->pb > 2 || j->pl > 2 || j->pr > 2) {
        gap9_device_fail(kernel, j->layer, "kernel, stride, dilation or padding outside NE16's");
    }
    if (j->w_bytes != g9u_ne16_w_size(j, dw)) {
        gap9_device_fail(kernel, j->layer, "the weights are not in NE16's layout (size)");
    }
    if (j->k > G9U_NE16_MAX_K) {
        gap9_device_fail(kernel, j->layer, "tile has more output channels than the adapter's L1 buffers");
    }
    /* One weight zero point for the layer: 0 (signed weights, stored w +
     * 128) or -128 (unsigned weights, stored w - 128); the layer-wise
     * offset register then holds -(128 + z). */
    wz = j->w_zp != NULL ? j->w_zp[0] : 0;
    for (k = 0; k < j->k; k++) {
        if (j->w_zp != NULL && j->w_zp[k] != wz) {
            gap9_device_fail(kernel, j->layer, "NE16 has one weight offset per layer");
        }
    }
    if (wz != 0 && wz != -128) {
        gap9_device_fail(kernel, j->layer, "NE16 weight zero point other than 0 or -128");
    }

    /* pulp-nnx ne16_task.h: operation, bit widths, weight offset. */
    ne16_task_init(task);
    ne16_task_set_op_to_conv(task, (uint8_t)j->fy, (uint8_t)dw, (uint8_t)j->sy);
    ne16_task_set_bits(task, 8, j->has_rq ? 8 : 32, 8);
    /* HARDWARE.md step 5: weights stored as w + 128, the hardware adds
     * -128 * sum(x) back (layer-wise offset mode); -(128 + z) in general. */
    ne16_task_set_weight_offset(task, weightOffsetModeLayerWise, -(128 + wz));

    if (j->has_rq) {
        ne16_quant_t quant;
        ne16_norm_t norm;
        if (j->rq.kind != MK_RQ_SCALE_SHIFT || j->rq.out_zp != 0 || j->rq.sshift < 0 || j->rq.sshift > 31
            || j->rq_ydt != j->ydt) {
            gap9_device_fail(kernel, j->layer, "a requantization NE16 does not compute (scale, bias, shift to 8 bits)");
        }
        /* NE16 saturates to [0, 255] with ReLU (u8 out) or [-128, 127]; a
         * clip inside that range goes to a cluster pass after the unit. */
        if (j->ydt != MK_U8 && j->ydt != MK_I8) {
            gap9_device_fail(kernel, j->layer, "NE16 normalizes to 8-bit outputs");
        }
        relu = j->ydt == MK_U8;
        g9u_range(j->ydt, &lo, &hi);
        if (j->has_clip && (j->clip_lo > lo || j->clip_hi < hi)) {
            lo = j->clip_lo > lo ? j->clip_lo : lo;
            hi = j->clip_hi < hi ? j->clip_hi : hi;
            clip_after = 1;
        }
        /* The scale mode (HARDWARE.md: unsigned, 8 or 32 bit): 8-bit unless
         * a scale of the tile needs more. The lowering gives a layer 32-bit
         * scales only when 8-bit ones would not be exact, and the cost model
         * charges the whole layer the width of its widest scale. */
        for (k = 0; k < j->k; k++) {
            const int64_t scale = j->rq.scale[j->rq.n == 1 ? 0 : k];
            if (scale < 0 || scale > 0xFFFFFFFFll) {
                gap9_device_fail(kernel, j->layer, "NE16 scales are unsigned 8- or 32-bit");
            }
            wide |= scale > 255;
        }
        /* Per channel: the scale, and the bias the driver programs with a
         * BiasAdd folded in: low32(bias_add * scale + bias) (wrapping, as
         * the RTL and the emulation). */
        for (k = 0; k < j->k; k++) {
            const int32_t q = j->rq.n == 1 ? 0 : k;
            const uint32_t scale = (uint32_t)j->rq.scale[q];
            uint32_t bias = (uint32_t)j->rq.bias[q];
            if (j->bias != NULL) {
                bias += (uint32_t)mk_ld(j->bias, j->bdt, j->bias_n == 1 ? 0 : k) * scale;
            }
            if (wide) {
                g9u_ne16_scale32[k] = scale;
            } else {
                g9u_ne16_scale[k] = (uint8_t)scale;
            }
            g9u_ne16_bias[k] = bias >= 0x80000000u ? -(int32_t)(~bias) - 1 : (int32_t)bias;
        }
        quant.shift_amount = (uint8_t)j->rq.sshift;
        quant.function = relu ? quantFunctionRelu : quantFunctionIdentity;
        quant.flag_rounding = ne16TaskFlagFalse; /* HARDWARE.md: the shift floors */
        norm.mode = wide ? normMode32Bit : normMode8Bit;
        norm.flag_bias = ne16TaskFlagTrue;
        norm.flag_shift = ne16TaskFlagFalse; /* one shift for the layer */
        ne16_task_set_norm_quant(task, quant, norm);
        ne16_task_set_addr_norm_quant(task,
                                      wide ? (uint32_t)(uintptr_t)g9u_ne16_scale32
                                           : (uint32_t)(uintptr_t)g9u_ne16_scale,
                                      0u,
                                      (uint32_t)(uintptr_t)g9u_ne16_bias);
    } else if (j->ydt != MK_I32 || j->has_clip) {
        gap9_device_fail(kernel, j->layer, "without normalization NE16 writes the int32 accumulator");
    }

    {
        /* Strides in bytes (ne16_task.h); channels contiguous (HWC). */
        const uint32_t out_b = j->has_rq ? 1u : 4u;
        const uint32_t w_in = (uint32_t)j->w, k_in = (uint32_t)j->c;
        /* Pixels per input row as held: wider than the window when the tile
         * moved whole rows or planes (mk_job_t.x_pitch). */
        const uint32_t pitch = j->x_pitch > 0 ? (uint32_t)j->x_pitch : w_in;
        const uint32_t h_out = (uint32_t)j->oh, w_out = (uint32_t)j->ow, k_out = (uint32_t)j->k;
        if (j->sy == 1) {
            ne16_task_set_dims(task, w_in, k_in, pitch * k_in, k_in, h_out, w_out, k_out, w_out * k_out * out_b,
                               k_out * out_b, (uint8_t)j->pt, (uint8_t)j->pb, (uint8_t)j->pl, (uint8_t)j->pr);
        } else {
            /* The 2x2-strided dispatch steps its subtiles by these byte
             * strides (pulp-nnx _get_tile_addr over cfg.input_stride). */
            ne16_task_set_dims_stride2x2(task, (uint32_t)j->h, w_in, k_in, pitch * k_in, k_in, h_out, w_out, k_out,
                                         w_out * k_out * out_b, k_out * out_b, (uint8_t)j->fy, (uint8_t)j->fx,
                                         (uint8_t)j->pt, (uint8_t)j->pb, (uint8_t)j->pl, (uint8_t)j->pr);
        }
        /* The driver moves the input pointer back over the top and left
         * padding (ne16_pad_addr); the tile holds the unpadded rows. */
        ne16_task_set_addr_conv(task, (uint32_t)(uintptr_t)j->x, pitch, k_in, (uint8_t)j->pt, (uint8_t)j->pl,
                                (uint32_t)(uintptr_t)j->y, (uint32_t)(uintptr_t)j->wt);

        /* Dispatch and wait: the queue is 2 deep, one tile at a time here
         * (the tiled driver overlaps the DMA, not NE16 tasks). */
        ne16_nnx_dispatch_wait(dev);
        if (j->sy == 1) {
            while (ne16_nnx_dispatch(dev, task) != 0) {
                ne16_nnx_dispatch_wait(dev);
            }
        } else {
            ne16_nnx_dispatch_stride2x2(dev, task, w_in, k_in, h_out, w_out, k_out, (uint8_t)j->fy,
                                        (uint8_t)j->fx);
        }
        ne16_nnx_resolve_wait(dev, task);
    }

    if ((!j->has_rq && j->bias != NULL) || clip_after) {
        post.job = j;
        post.lo = lo;
        post.hi = hi;
        pi_cl_team_fork(GAP9_CL_CORES, g9u_post_worker, &post);
    }
}

void ne16_conv(const mk_job_t *job)
{
    g9u_ne16("ne16_conv", job, 0);
}

void ne16_depthwise(const mk_job_t *job)
{
    g9u_ne16("ne16_depthwise", job, 1);
}
