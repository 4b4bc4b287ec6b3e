/*
 * match portable integer kernels (C99).
 *
 * Each kernel reproduces the reference interpreter of match
 * (match-core/src/interp) bit for bit. Integer arithmetic uses explicit
 * int32_t / int64_t; wrap-around is done in uint32_t / uint64_t, and
 * arithmetic shifts of negative values go through helpers, so that no
 * kernel relies on undefined or implementation-defined behaviour, nor on
 * the width of int, long or pointers. Float arithmetic is f32 in the same
 * order as the interpreter; rounding half to even is done in software.
 *
 * No kernel includes <stdio.h> or <stdlib.h>: the library builds
 * freestanding.
 */
#ifndef MATCH_KERNELS_H
#define MATCH_KERNELS_H

#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define MATCH_ALIGNED(n) __attribute__((aligned(n)))
#else
#define MATCH_ALIGNED(n)
#endif

/* Element types, as the IR names them. */
enum { MK_I8 = 0, MK_U8 = 1, MK_I16 = 2, MK_I32 = 3, MK_I64 = 4, MK_F32 = 5 };

/* The largest tensor rank the N-d kernels handle. */
#define MK_MAX_RANK 8

/* Element access: integer load (widened), f32 load, saturating store. */
int64_t mk_ld(const void *p, int dt, int32_t i);
float mk_ldf(const void *p, int32_t i);
void mk_st(void *p, int dt, int32_t i, int64_t v);
void mk_stf(void *p, int32_t i, float v);
float mk_f32_from_bits(uint32_t bits);
int32_t mk_esize(int dt);
void mk_copy(void *dst, const void *src, int32_t bytes);

/* Fixed-point helpers (gemmlowp / TFLite), exposed for tests. */
int32_t mk_srdhm(int32_t a, int32_t b);
int32_t mk_rounding_divide_by_pot(int32_t x, int32_t exponent);
int32_t mk_mbqm(int32_t x, int32_t multiplier, int32_t shift);
float mk_round_half_even(float f);

/* conv2d: x NHWC, w OHWI; y int32 (N, OH, OW, K). w_zp has K entries. */
typedef struct {
    int32_t n, h, w, c, k, fy, fx, oh, ow;
    int32_t sy, sx, dy, dx, pt, pl, groups;
    int32_t x_zp;
    const int32_t *w_zp;
} mk_conv_t;
void mk_conv2d(const void *x, int xdt, const void *w, int wdt, int32_t *y, const mk_conv_t *p);
/* conv2d reading x with rows of x_pitch pixels (x_pitch >= p->w): the
 * (h, w) input inside a wider box, e.g. a tile moved as whole rows. */
void mk_conv2d_pitch(const void *x, int xdt, const void *w, int wdt, int32_t *y, const mk_conv_t *p,
                     int32_t x_pitch);
/* mk_conv2d_pitch that, when add_y is nonzero, adds its sums into y
 * (int32, wrapping) instead of overwriting it: partial sums over tiles of
 * the input channels (groups 1), accumulated across calls. */
void mk_conv2d_acc(const void *x, int xdt, const void *w, int wdt, int32_t *y, const mk_conv_t *p,
                   int32_t x_pitch, int add_y);

/* dense: x (rows, c), w (k, c); y int32 (rows, k). w_zp has k entries. */
void mk_dense(const void *x, int xdt, const void *w, int wdt, int32_t *y, int32_t rows, int32_t c,
              int32_t k, int32_t x_zp, const int32_t *w_zp);
/* mk_dense adding into y when add_y is nonzero (partial sums over C tiles). */
void mk_dense_acc(const void *x, int xdt, const void *w, int wdt, int32_t *y, int32_t rows, int32_t c,
                  int32_t k, int32_t x_zp, const int32_t *w_zp, int add_y);

/* matmul: for each batch b, a[ia[b]] (m, kk) x b[ib[b]] (kk, n); b_zp has n entries. */
void mk_matmul(const void *a, int adt, const void *b, int bdt, int32_t *y, int32_t batches,
               const int32_t *ia, const int32_t *ib, int32_t m, int32_t kk, int32_t n, int32_t a_zp,
               const int32_t *b_zp);

/* bias: y = acc + bias[ch] over the last axis (channels), bias has nb (1 or c) entries. */
void mk_bias_add(const void *acc, int adt, const void *bias, int bdt, int32_t nb, void *y, int ydt,
                 int32_t total, int32_t c);

/* requantize. */
enum { MK_RQ_FIXED = 0, MK_RQ_SCALE_SHIFT = 1, MK_RQ_FLOAT = 2, MK_RQ_ADC = 3 };
typedef struct {
    int kind;
    int32_t n; /* entries of the per-channel arrays: 1 or channels */
    const int32_t *multiplier, *shift; /* MK_RQ_FIXED */
    const int64_t *scale, *bias;       /* MK_RQ_SCALE_SHIFT */
    int32_t sshift;                    /* MK_RQ_SCALE_SHIFT and MK_RQ_ADC, 0..63 */
    const uint32_t *fscale;            /* MK_RQ_FLOAT: f32 bit patterns */
    int64_t out_zp;
    /* MK_RQ_ADC: y = clip(floor(acc / adc_gain), -2^(adc_bits-1), 2^(adc_bits-1) - 1),
     * then (adc_k[c] * y + adc_l[c]) >> sshift (floor), + out_zp, saturate */
    int64_t adc_gain;
    int32_t adc_bits;
    const int64_t *adc_k, *adc_l;
} mk_requant_t;
void mk_requantize(const void *x, int xdt, void *y, int ydt, int32_t total, int32_t c,
                   const mk_requant_t *rq);

void mk_clip(const void *x, int xdt, void *y, int ydt, int32_t total, int64_t lo, int64_t hi);
void mk_cast(const void *x, int xdt, void *y, int ydt, int32_t total);

/* quantize / dequantize: channel of element i is (i / stride) % dim; scale
 * and zp have dim entries (dim 1 = per tensor). */
void mk_quantize(const void *x, void *y, int ydt, int32_t total, int32_t stride, int32_t dim,
                 const uint32_t *scale, const int64_t *zp);
void mk_dequantize(const void *x, int xdt, void *y, int32_t total, int32_t stride, int32_t dim,
                   const uint32_t *scale, const int64_t *zp);

/* add with broadcasting: out shape (rank dims), a / b element strides per
 * output axis (0 where broadcast). */
enum { MK_ADD_INTEGER = 0, MK_ADD_WRAPPING = 1, MK_ADD_TFLITE = 2, MK_ADD_FLOAT = 3 };
typedef struct {
    int kind;
    int32_t rank;
    const int32_t *shape, *sa, *sb;
    /* MK_ADD_TFLITE */
    int32_t left_shift, a_zp, b_zp, a_mult, a_shift, b_mult, b_shift, out_mult, out_shift;
    int64_t out_zp;
    /* MK_ADD_FLOAT (scales as f32 bit patterns) */
    uint32_t a_scale, b_scale, y_scale;
    int64_t fa_zp, fb_zp, fy_zp;
} mk_add_t;
void mk_add(const void *a, int adt, const void *b, int bdt, void *y, int ydt, const mk_add_t *p);

/* Pooling over NHWC. */
typedef struct {
    int32_t n, h, w, c, oh, ow, ky, kx, sy, sx, pt, pl;
    int count_include_pad;
} mk_pool_t;
void mk_avg_pool(const void *x, int xdt, void *y, int ydt, const mk_pool_t *p, int32_t x_zp);
void mk_max_pool(const void *x, int xdt, void *y, int ydt, const mk_pool_t *p);
void mk_global_avg_pool(const void *x, int xdt, void *y, int ydt, int32_t n, int32_t hw, int32_t c);
void mk_global_sum_pool(const void *x, int xdt, int32_t *y, int32_t n, int32_t hw, int32_t c,
                        int32_t x_zp);
void mk_qlinear_avg_pool(const void *x, int xdt, void *y, int ydt, const mk_pool_t *p,
                         uint32_t x_scale, int32_t x_zp, uint32_t y_scale, int64_t y_zp);

/* Data movement. */
void mk_pad(const void *x, void *y, int dt, int32_t rank, const int32_t *in_shape,
            const int32_t *out_strides, const int32_t *before, int32_t out_total, int64_t value);
void mk_transpose(const void *x, void *y, int32_t esize, int32_t rank, const int32_t *out_shape,
                  const int32_t *src_strides);
/* concat: copies `chunk` bytes of one input per outer row, at `dst_off` bytes
 * within each output row of `row` bytes. Called once per input. */
void mk_concat_part(const void *x, void *y, int32_t outer, int32_t chunk, int32_t row,
                    int32_t dst_off);

/* TFLite int8/uint8 softmax over the last axis. */
void mk_softmax(const void *x, int xdt, void *y, int ydt, int32_t rows, int32_t depth,
                int32_t multiplier, int32_t left_shift, int32_t diff_min);

/* ------------------------------------------------------- unit kernel jobs */
/* One call of an accelerator unit's kernel, `void NAME(const mk_job_t *job)`
 * (declared by the target's platform headers, e.g. targets/gap9/gap9_units.h):
 * one tile of a layer, emitted by match-core/src/emit/tiled.rs. The tile's
 * operands are in the unit's compute memory: activations HWC (dense: rows x
 * c), the weights of the tile's output channels encoded in the unit's
 * weight layout (the offload rule's `weight_layout`, else the unit's; an
 * empty layout is the IR's OHWI / (K, C) bytes). The chain after the main
 * operator is, in this order and each optional: bias, requantization, clip;
 * its per-channel arrays already start at the tile's first channel. */
enum {
    MK_JOB_CONV = 0,
    MK_JOB_DENSE = 1,
    MK_JOB_ADD = 2,
    MK_JOB_AVG_POOL = 3,
    MK_JOB_MAX_POOL = 4,
    MK_JOB_GLOBAL_AVG_POOL = 5,
    MK_JOB_QLINEAR_AVG_POOL = 6
};
typedef struct {
    const char *layer; /* the layer's name, for diagnostics */
    int op;            /* MK_JOB_* */
    /* Geometry of the tile: input (h, w, c) as held in x, output (oh, ow, k);
     * kernel, strides, dilation, and the padding on each side of this tile.
     * x_pitch (conv only): pixels per input row in x, 0 for w (packed); a
     * tile whose DMA moved whole rows (or planes) has its window at x inside
     * a wider box, pixel (iy, ix) at (iy * x_pitch + ix) * c. */
    int32_t h, w, c, k, oh, ow;
    int32_t x_pitch;
    int32_t fy, fx, sy, sx, dy, dx;
    int32_t pt, pb, pl, pr;
    int32_t groups; /* 1, or the tile's channels when depthwise */
    int depthwise;
    int32_t rows; /* dense: rows of x, c elements each */
    int32_t k0;   /* the tile's first output channel in the layer */
    /* Operands: input, second input (add), output, with element types. */
    const void *x;
    int xdt;
    const void *x2;
    int x2dt;
    void *y;
    int ydt;
    uint32_t x_bytes, y_bytes; /* bytes of x (and x2 right after it; from x to the last byte read) and of y */
    int32_t x_zp;
    const int32_t *w_zp; /* one per tile channel */
    /* Encoded weights of the tile's output channels (one contiguous DMA). */
    const void *wt;
    int wdt; /* the IR element type before encoding */
    uint32_t w_bytes;
    /* Chain: the main operator's output type (int32 for conv and dense),
     * then bias (NULL: none; bias_n 1 or k entries), requantization, clip;
     * *_ydt is each step's output type (the last one equals ydt). */
    int main_ydt;
    const void *bias;
    int bdt;
    int32_t bias_n;
    int bias_ydt;
    int has_rq;
    mk_requant_t rq;
    int rq_ydt;
    int has_clip;
    int64_t clip_lo, clip_hi;
    /* Add (MK_JOB_ADD): the kind and its parameters; the kernel sets the
     * shape and strides of the tile. */
    mk_add_t add;
    /* Pooling: window in `pool` (n, h, w, c, oh, ow, ky, kx, sy, sx, pt, pl,
     * count_include_pad), the average's zero point and the QLinear scales. */
    mk_pool_t pool;
    int32_t pool_zp;
    uint32_t pool_x_scale, pool_y_scale;
    int64_t pool_y_zp;
    /* Split input channels (conv with groups 1, dense): the schedule tiles
     * C, one call per C tile, innermost; c (and x, wt) are the C tile's.
     * acc: the int32 accumulator of the (K, OY, OX) tile in the compute
     * memory, acc_bytes its bytes, laid out as y (NULL: C is whole and the
     * call computes the complete sums, as without these fields). The first
     * C tile's call (c_first) sets acc to its partial sums, the others add
     * theirs (wrapping int32); a call other than the last (c_last) leaves
     * the sums in acc and writes nothing to y; the last runs the chain
     * (bias, requantization, clip) on the complete sums and writes y. Only
     * a unit whose .hwm claims `partial_sums` is given such jobs. */
    int32_t *acc;
    uint32_t acc_bytes;
    int c_first, c_last;
} mk_job_t;

#endif /* MATCH_KERNELS_H */
