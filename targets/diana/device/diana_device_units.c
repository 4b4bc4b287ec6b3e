/*
 * DIANA device adapter: the unit kernels diana.hwm's offload rules call,
 * `void NAME(const mk_job_t *job)` (targets/diana/diana_units.h), one tile
 * per call, staged in L2 (diana_device.c, "Memory model").
 *
 * UNTESTED ON SILICON (README.md).
 *
 * Each kernel: checks the job is in the unit's form (the conditions the
 * emulation aborts on); converts the staged HWC tile into the
 * accelerator's layout in an L2 buffer; moves it into the activation
 * memory with the HWME; programs and runs the runtime's kernel (kernels.h),
 * which streams the encoded weights from L2; moves the result back and
 * converts it to the HWC tile the generated code expects.
 *
 * Layouts (HARDWARE.md "DIANA", DORY's Diana backend):
 * - digital: activations CHW, the width padded to 16 (DORY pads width and
 *   output channels to multiples of 16), each 4-byte word byte-reversed;
 *   output channels padded to 16 likewise; dense: the vector padded to 16.
 * - analog: DORY's analog path moves activations channel-innermost
 *   (`write_l2_l1` "K" layout), each pixel's channels padded to 64 bytes.
 *   unverified: diana.hwm states CHW byte-reversed for the analog core too
 *   (the shared L1); DORY's code is followed here.
 */
#include "diana_device.h"

static void dnu_range(int dt, int64_t *lo, int64_t *hi)
{
    switch (dt) {
    case MK_I8: *lo = -128; *hi = 127; break;
    case MK_U8: *lo = 0; *hi = 255; break;
    case MK_I16: *lo = -32768; *hi = 32767; break;
    case MK_I32: *lo = INT32_MIN; *hi = INT32_MAX; break;
    default: *lo = INT64_MIN; *hi = INT64_MAX; break;
    }
}

static uint32_t dnu_pad(int32_t n, int32_t to)
{
    return (uint32_t)((n + to - 1) / to * to);
}

/* Byte p of a buffer whose 4-byte words are byte-reversed. */
static uint32_t dnu_rev(uint32_t p)
{
    return (p & ~3u) | (3u - (p & 3u));
}

/* Activation-memory placement of a job: input at 0, a second input and the
 * output after it, each on a 32-byte boundary. */
static uint32_t dnu_after(uint32_t at, uint32_t bytes)
{
    return at + (bytes + 31u) / 32u * 32u;
}

/* The digital array's output stage: ReLU when it clips at 0 (HARDWARE.md:
 * [0, 127] with ReLU, else [-128, 127]). */
static int dnu_relu(const char *kernel, const mk_job_t *j)
{
    int64_t lo, hi;
    dnu_range(j->ydt, &lo, &hi);
    if (j->has_clip) {
        lo = j->clip_lo > lo ? j->clip_lo : lo;
        hi = j->clip_hi < hi ? j->clip_hi : hi;
    }
    if (j->ydt != MK_I8 || !(lo == -128 || lo == 0) || hi != 127) {
        diana_device_fail(kernel, j->layer, "the digital array writes int8 clipped to [-128, 127] or [0, 127]");
    }
    return lo == 0;
}

/* HWC tile (h, w, c) -> CHW, width padded to w16, words byte-reversed. */
/* Pixels per input row as the tile holds them (mk_job_t.x_pitch). */
static int32_t dnu_pitch(const mk_job_t *j)
{
    return j->x_pitch > 0 ? j->x_pitch : j->w;
}

static void dnu_to_chw(uint8_t *dst, const int8_t *src, int32_t h, int32_t w, int32_t pitch, int32_t c,
                       uint32_t w16)
{
    int32_t y, x, ci;
    for (ci = 0; ci < c; ci++) {
        for (y = 0; y < h; y++) {
            for (x = 0; x < w; x++) {
                const uint32_t p = ((uint32_t)(ci * h + y)) * w16 + (uint32_t)x;
                dst[dnu_rev(p)] = (uint8_t)src[(y * pitch + x) * c + ci];
            }
        }
    }
}

/* The inverse, for the output (k channels of oh x ow, width padded). */
static void dnu_from_chw(int8_t *dst, const uint8_t *src, int32_t h, int32_t w, int32_t c, uint32_t w16)
{
    int32_t y, x, ci;
    for (ci = 0; ci < c; ci++) {
        for (y = 0; y < h; y++) {
            for (x = 0; x < w; x++) {
                const uint32_t p = ((uint32_t)(ci * h + y)) * w16 + (uint32_t)x;
                dst[(y * w + x) * c + ci] = (int8_t)src[dnu_rev(p)];
            }
        }
    }
}

/* Bytes of one block of 16 output channels of the digital weight stream
 * (the emulation's dn_block): weights, then 16 int32 biases. */
static uint32_t dnu_block(const mk_job_t *j, int dw, int dense)
{
    if (dense) {
        return dnu_pad(j->c, 16) * 16u + 64u;
    }
    return dw ? (uint32_t)(j->fy * j->fx) * 16u * 4u + 64u : (uint32_t)(j->c * j->fy * j->fx) * 16u + 64u;
}

/* The weight stream the runtime reads: the staged tile, or, with an output
 * zero point z, a copy whose biases carry z << shift (the hardware adds
 * nothing after its shift; floor((acc + b + z * 2^s) / 2^s) = floor((acc +
 * b) / 2^s) + z, the emulation's order). */
static const void *dnu_weights(const mk_job_t *j, int dw, int dense, void **owned)
{
    const uint32_t blk = dnu_block(j, dw, dense);
    const uint32_t blocks = dnu_pad(j->k, 16) / 16u;
    uint8_t *w;
    uint32_t b, i, k;
    *owned = NULL;
    if (j->rq.out_zp == 0) {
        return j->wt;
    }
    w = (uint8_t *)diana_device_alloc(j->w_bytes);
    for (i = 0; i < j->w_bytes; i++) {
        w[i] = ((const uint8_t *)j->wt)[i];
    }
    for (b = 0; b < blocks; b++) {
        for (k = 0; k < 16u; k++) {
            uint8_t *p = w + b * blk + blk - 64u + k * 4u; /* little-endian int32 (dn_bias) */
            uint32_t v = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
            v += (uint32_t)j->rq.out_zp << j->rq.sshift;
            p[0] = (uint8_t)v;
            p[1] = (uint8_t)(v >> 8);
            p[2] = (uint8_t)(v >> 16);
            p[3] = (uint8_t)(v >> 24);
        }
    }
    *owned = w;
    return w;
}

/* The padding word. unverified: MATCH's DIANA wrapper packs max(left,
 * right) in the low bits, top << 8, bottom << 12; DORY's Diana template
 * the same for top, right and bottom and leaves left out. MATCH's is used. */
static uint32_t dnu_digital_padding(const mk_job_t *j)
{
    const uint32_t lr = (uint32_t)(j->pr > j->pl ? j->pr : j->pl);
    return lr + ((uint32_t)j->pt << 8) + ((uint32_t)j->pb << 12);
}

enum { DNU_CONV = 0, DNU_DW = 1, DNU_DENSE = 2 };

static void dnu_digital(const char *kernel, const mk_job_t *j, int kind)
{
    const int dense = kind == DNU_DENSE, dw = kind == DNU_DW;
    const int relu = dnu_relu(kernel, j);
    const int32_t rows = dense ? j->rows : 1;
    Layer_parameters layer;
    void *owned;
    const void *wt;
    int32_t q, r;
    if (j->op != (dense ? MK_JOB_DENSE : MK_JOB_CONV) || dw != (j->depthwise != 0)
        || (kind == DNU_CONV && j->groups != 1)) {
        diana_device_fail(kernel, j->layer, "a job of another operator");
    }
    if (j->acc != NULL) {
        /* diana.hwm claims no partial_sums: a split C never reaches it. */
        diana_device_fail(kernel, j->layer, "the arrays do not accumulate partial sums across calls");
    }
    if (j->xdt != MK_I8 || j->wdt != MK_I8 || j->x_zp != 0) {
        diana_device_fail(kernel, j->layer, "the digital array takes int8 inputs and weights without zero points");
    }
    if (!dense && (j->dy != 1 || j->dx != 1 || j->sy != j->sx || j->sy < 1 || j->sy > 2)) {
        diana_device_fail(kernel, j->layer, "stride or dilation outside the digital array's");
    }
    if (j->w_bytes != dnu_pad(j->k, 16) / 16u * dnu_block(j, dw, dense)) {
        diana_device_fail(kernel, j->layer, "the weights are not in the digital array's layout (size)");
    }
    if (!j->has_rq || j->rq.kind != MK_RQ_SCALE_SHIFT || j->rq.sshift < 0 || j->rq.sshift > 31
        || j->rq_ydt != j->ydt) {
        diana_device_fail(kernel, j->layer, "the digital array requantizes with a shift to int8 only");
    }
    for (q = 0; q < j->rq.n; q++) {
        if (j->rq.scale[q] != 1) {
            diana_device_fail(kernel, j->layer, "the digital array requantizes with a shift only (scale 1)");
        }
    }
    for (q = 0; q < j->k; q++) {
        if (j->w_zp != NULL && j->w_zp[q] != 0) {
            diana_device_fail(kernel, j->layer, "the digital array's weights have no zero point");
        }
    }
    wt = dnu_weights(j, dw, dense, &owned);

    layer.fx = (uint32_t)(dense ? 1 : j->fx);
    layer.fy = (uint32_t)(dense ? 1 : j->fy);
    layer.activation_function = relu ? 1u : 0u;
    layer.output_shift = (uint32_t)j->rq.sshift;
    layer.dilation = 1u;
    layer.ox_unroll = 0u;
    if (dense) {
        /* One row at a time: a vector of c (padded to 16) in, k out. */
        const uint32_t cin = dnu_pad(j->c, 16), kout = dnu_pad(j->k, 16);
        const uint32_t out_at = dnu_after(0u, cin);
        uint8_t *in = (uint8_t *)diana_device_alloc(cin);
        uint8_t *out = (uint8_t *)diana_device_alloc(kout);
        int32_t i;
        layer.c = cin;
        layer.k = kout;
        layer.cx = layer.cy = layer.ox = layer.oy = 1u;
        layer.stride = 0u;
        layer.padding = 0u;
        for (r = 0; r < rows; r++) {
            for (i = 0; i < (int32_t)cin; i++) {
                in[dnu_rev((uint32_t)i)] = i < j->c ? (uint8_t)((const int8_t *)j->x)[r * j->c + i] : 0u;
            }
            diana_device_copy(0, in, 0u, cin, 0);
            digital_fully_connected(NULL, (const void *)(uintptr_t)0u, wt, NULL, (void *)(uintptr_t)out_at,
                                    &layer);
            global_sync_digital();
            diana_device_copy(0, out, out_at, kout, 1);
            for (i = 0; i < j->k; i++) {
                ((int8_t *)j->y)[r * j->k + i] = (int8_t)out[dnu_rev((uint32_t)i)];
            }
        }
        diana_device_free(in);
        diana_device_free(out);
    } else {
        const uint32_t w16 = dnu_pad(j->w, 16), ow16 = dnu_pad(j->ow, 16), k16 = dnu_pad(j->k, 16);
        const uint32_t in_bytes = (uint32_t)(j->c * j->h) * w16;
        const uint32_t out_bytes = k16 * (uint32_t)j->oh * ow16;
        const uint32_t out_at = dnu_after(0u, in_bytes);
        uint8_t *in, *out;
        if (dnu_after(out_at, out_bytes) > DIANA_ACT_BYTES) {
            diana_device_fail(kernel, j->layer, "the tile's padded layout exceeds the activation memory");
        }
        in = (uint8_t *)diana_device_alloc(in_bytes);
        out = (uint8_t *)diana_device_alloc(out_bytes);
        dnu_to_chw(in, (const int8_t *)j->x, j->h, j->w, dnu_pitch(j), j->c, w16);
        diana_device_copy(0, in, 0u, in_bytes, 0);
        /* MATCH's wrapper: depthwise layers give c = k (the channels). */
        layer.c = (uint32_t)(dw ? j->k : j->c);
        layer.k = k16;
        layer.cx = w16;
        layer.cy = (uint32_t)j->h;
        layer.ox = ow16;
        layer.oy = (uint32_t)j->oh;
        /* DORY's Diana template sets 1 for a strided layer and 0
         * otherwise, and MATCH's DIANA wrapper (match/target/diana/digital/
         * src/digital_lib.c) stride_x - 1: the same for strides 1 and 2. */
        layer.stride = j->sy > 1 ? 1u : 0u;
        layer.padding = dnu_digital_padding(j);
        if (dw) {
            digital_depthwise_conv_2d(NULL, (const void *)(uintptr_t)0u, wt, NULL, (void *)(uintptr_t)out_at,
                                      &layer);
        } else {
            digital_conv_2d(NULL, (const void *)(uintptr_t)0u, wt, NULL, (void *)(uintptr_t)out_at, &layer);
        }
        global_sync_digital();
        diana_device_copy(0, out, out_at, out_bytes, 1);
        dnu_from_chw((int8_t *)j->y, out, j->oh, j->ow, j->k, ow16);
        diana_device_free(in);
        diana_device_free(out);
    }
    if (owned != NULL) {
        diana_device_free(owned);
    }
}

void diana_digital_conv(const mk_job_t *job)
{
    dnu_digital("diana_digital_conv", job, DNU_CONV);
}

void diana_digital_depthwise(const mk_job_t *job)
{
    dnu_digital("diana_digital_depthwise", job, DNU_DW);
}

void diana_digital_dense(const mk_job_t *job)
{
    dnu_digital("diana_digital_dense", job, DNU_DENSE);
}

/* Element-wise: the layout does not matter as long as both inputs and the
 * output share it, so the HWC tiles move as they are (whole words). */
void diana_digital_add(const mk_job_t *job)
{
    const mk_job_t *j = job;
    const uint32_t n = (uint32_t)(j->oh * j->ow * j->k);
    const uint32_t b_at = dnu_after(0u, n), out_at = dnu_after(b_at, n);
    const int relu = dnu_relu("diana_digital_add", j);
    Layer_parameters layer;
    uint8_t *buf;
    uint32_t i;
    if (j->op != MK_JOB_ADD || j->add.kind != MK_ADD_INTEGER || j->xdt != MK_I8 || j->x2dt != MK_I8 || j->has_rq
        || j->bias != NULL || j->main_ydt != MK_I8) {
        diana_device_fail("diana_digital_add", j->layer, "the digital array adds int8 tensors without rescaling");
    }
    if (dnu_after(out_at, n) > DIANA_ACT_BYTES) {
        diana_device_fail("diana_digital_add", j->layer, "the tile exceeds the activation memory");
    }
    buf = (uint8_t *)diana_device_alloc(n);
    for (i = 0; i < n; i++) {
        buf[i] = (uint8_t)((const int8_t *)j->x)[i];
    }
    diana_device_copy(0, buf, 0u, n, 0);
    for (i = 0; i < n; i++) {
        buf[i] = (uint8_t)((const int8_t *)j->x2)[i];
    }
    diana_device_copy(0, buf, b_at, n, 0);
    /* utils.h: "Addition is mapped as a 0x0xc": c holds the element count. */
    layer.c = n;
    layer.k = 0u;
    layer.cx = layer.cy = 1u;
    layer.fx = layer.fy = layer.ox = layer.oy = 0u;
    layer.activation_function = relu ? 1u : 0u;
    layer.output_shift = 0u; /* HARDWARE.md: clip((a + b) >> s), s = 0 here */
    layer.padding = 0u;
    layer.dilation = 1u;
    layer.stride = 0u;
    layer.ox_unroll = 0u;
    digital_element_wise_sum(NULL, (const void *)(uintptr_t)0u, NULL, (const void *)(uintptr_t)b_at,
                             (void *)(uintptr_t)out_at, &layer);
    global_sync_digital();
    diana_device_copy(0, buf, out_at, n, 1);
    for (i = 0; i < n; i++) {
        ((int8_t *)j->y)[i] = (int8_t)buf[i];
    }
    diana_device_free(buf);
}

/* ----------------------------------------------------------------- analog */

/* The analog core's per-channel output stage, in L2 after the weights
 * (DORY: `l2_BN = Weights + ...`, passed as batchnorm_L2). unverified: its
 * encoding is not public; here int32 k[c], then int32 l[c] with the output
 * zero point folded as l + (z << shift), then the shift. The ADC gain
 * (floor(acc / gain) before the 6-bit clip) is a calibration setting
 * outside this API: a gain other than the chip's is not programmable here
 * (unverified). */
static int32_t *dnu_bn(const mk_job_t *j, uint32_t k64)
{
    int32_t *bn = (int32_t *)diana_device_alloc((2u * k64 + 1u) * 4u);
    int32_t k;
    for (k = 0; k < j->k; k++) {
        const int32_t q = j->rq.n == 1 ? 0 : k;
        bn[k] = (int32_t)j->rq.adc_k[q];
        bn[k64 + (uint32_t)k] = (int32_t)(j->rq.adc_l[q] + j->rq.out_zp * ((int64_t)1 << j->rq.sshift));
    }
    bn[2u * k64] = j->rq.sshift;
    return bn;
}

static void dnu_analog(const char *kernel, const mk_job_t *j, int dense)
{
    const int32_t oh = dense ? 1 : j->oh, ow = dense ? j->rows : j->ow;
    const int32_t ih = dense ? 1 : j->h, iw = dense ? j->rows : j->w;
    const int32_t fy = dense ? 1 : j->fy, fx = dense ? 1 : j->fx;
    const uint32_t rows = dnu_pad(j->c * fy * fx, 288), cols = dnu_pad(j->k, 128);
    const uint32_t c64 = dnu_pad(j->c, 64), k64 = dnu_pad(j->k, 64);
    const uint32_t in_bytes = (uint32_t)(ih * iw) * c64, out_bytes = (uint32_t)(oh * ow) * k64;
    /* The output's rows follow the input's; the analog engine's address
     * counts 16 per 64-byte row (diana_device_copy). */
    const uint32_t out_row_bytes = dnu_after(0u, in_bytes), out_at = out_row_bytes / 4u;
    Layer_parameters layer;
    uint8_t *in, *out;
    int32_t *bn;
    int32_t i, p, k, unroll;
    int64_t lo, hi;
    int relu;
    if (j->op != (dense ? MK_JOB_DENSE : MK_JOB_CONV) || (!dense && j->groups != 1)) {
        diana_device_fail(kernel, j->layer, "a job of another operator");
    }
    if (j->acc != NULL) {
        /* diana.hwm claims no partial_sums: a split C never reaches it. */
        diana_device_fail(kernel, j->layer, "the arrays do not accumulate partial sums across calls");
    }
    if (j->xdt != MK_I8 || j->x_zp != 0 || j->bias != NULL) {
        diana_device_fail(kernel, j->layer, "the analog core takes int8 inputs without zero point or bias");
    }
    if (!dense && (j->dy != 1 || j->dx != 1)) {
        diana_device_fail(kernel, j->layer, "the analog core has no dilation");
    }
    if (j->w_bytes != rows * cols / 4u) {
        diana_device_fail(kernel, j->layer, "the weights are not in the analog core's layout (size)");
    }
    if (!j->has_rq || j->rq.kind != MK_RQ_ADC || j->rq.adc_bits != 6 || j->rq.adc_gain < 1 || j->rq.sshift > 31) {
        diana_device_fail(kernel, j->layer, "the analog core's output goes through its 6-bit ADC chain");
    }
    for (k = 0; k < j->k; k++) {
        const int32_t q = j->rq.n == 1 ? 0 : k;
        if (j->w_zp != NULL && j->w_zp[k] != 0) {
            diana_device_fail(kernel, j->layer, "the analog core's weights have no zero point");
        }
        /* unverified: analog_fully_connected takes no batch-norm block (as
         * DORY calls it), so a dense layer's stage must be the identity. */
        if (dense && (j->rq.adc_k[q] != 1 || j->rq.adc_l[q] != 0 || j->rq.sshift != 0 || j->rq.out_zp != 0)) {
            diana_device_fail(kernel, j->layer, "a dense output stage other than k = 1, l = 0, no shift");
        }
    }
    /* The output clip: int8, or [0, 127] with the analog ReLU (the
     * instruction's Relu_type; unverified: that it clips at 0 after the
     * shift, as the emulation's clip does). */
    dnu_range(j->ydt, &lo, &hi);
    if (j->has_clip) {
        lo = j->clip_lo > lo ? j->clip_lo : lo;
        hi = j->clip_hi < hi ? j->clip_hi : hi;
    }
    if (j->ydt != MK_I8 || j->rq_ydt != MK_I8 || !(lo == -128 || lo == 0) || hi != 127) {
        diana_device_fail(kernel, j->layer, "the analog core writes int8, clipped at 0 or not");
    }
    relu = lo == 0;
    if (dnu_after(out_row_bytes, out_bytes) > DIANA_ACT_BYTES) {
        diana_device_fail(kernel, j->layer, "the tile's padded layout exceeds the activation memory");
    }
    in = (uint8_t *)diana_device_alloc(in_bytes);
    out = (uint8_t *)diana_device_alloc(out_bytes);
    /* 7-bit inputs (HARDWARE.md's pinned choice), channels padded to 64. */
    for (p = 0; p < ih * iw; p++) {
        /* A dense job's rows are packed; a convolution's window may lie in
         * wider rows (a tile moved as whole rows or planes). */
        const int32_t at = dense ? p : (p / iw) * dnu_pitch(j) + p % iw;
        for (i = 0; i < j->c; i++) {
            const int8_t v = ((const int8_t *)j->x)[at * j->c + i];
            if (v < -64 || v > 63) {
                diana_device_fail(kernel, j->layer, "an input outside the 7-bit range [-64, 63]");
            }
            in[(uint32_t)p * c64 + (uint32_t)i] = (uint8_t)v;
        }
    }
    diana_device_copy(1, in, 0u, in_bytes, 0);
    bn = dnu_bn(j, k64);
    /* DORY's analog template: output columns per activation doubled while
     * 2 * unroll * k fits the 512 columns and c * fy * (fx + 2 * unroll -
     * 1) the 1152 rows; here also while it divides the width. */
    unroll = 1;
    for (i = 0; i < 2; i++) {
        if (2 * unroll * j->k <= 512 && j->c * fy * (fx + 2 * unroll - 1) <= 1152 && ow % (2 * unroll) == 0) {
            unroll *= 2;
        }
    }
    layer.c = (uint32_t)j->c;
    layer.k = (uint32_t)j->k;
    layer.cx = (uint32_t)iw;
    layer.cy = (uint32_t)ih;
    layer.fx = (uint32_t)fx;
    layer.fy = (uint32_t)fy;
    layer.ox = (uint32_t)(ow / unroll);
    layer.oy = (uint32_t)oh;
    layer.ox_unroll = (uint32_t)unroll;
    layer.activation_function = relu ? 1u : 0u;
    layer.output_shift = (uint32_t)j->rq.sshift;
    layer.dilation = 1u;
    layer.stride = (uint32_t)(dense ? 1 : j->sy); /* DORY's analog template: the stride itself */
    /* DORY's analog template: bottom, top << 2, right << 4, left << 6. */
    layer.padding = dense ? 0u
                          : (uint32_t)j->pb + ((uint32_t)j->pt << 2) + ((uint32_t)j->pr << 4) + ((uint32_t)j->pl << 6);
    if (dense) {
        analog_fully_connected(NULL, (const void *)(uintptr_t)0u, j->wt, NULL, (void *)(uintptr_t)out_at, &layer);
    } else {
        analog_conv_2d(NULL, (const void *)(uintptr_t)0u, j->wt, bn, NULL, (void *)(uintptr_t)out_at, &layer);
    }
    global_sync_analog();
    diana_device_copy(1, out, out_at, out_bytes, 1);
    for (p = 0; p < oh * ow; p++) {
        for (k = 0; k < j->k; k++) {
            ((int8_t *)j->y)[p * j->k + k] = (int8_t)out[(uint32_t)p * k64 + (uint32_t)k];
        }
    }
    diana_device_free(bn);
    diana_device_free(in);
    diana_device_free(out);
}

void diana_analog_conv(const mk_job_t *job)
{
    dnu_analog("diana_analog_conv", job, 0);
}

void diana_analog_dense(const mk_job_t *job)
{
    dnu_analog("diana_analog_dense", job, 1);
}
