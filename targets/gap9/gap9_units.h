/*
 * GAP9's accelerator units as the generated code calls them: one tile of a
 * layer per call, described by an mk_job_t (match_kernels.h). The names are
 * the `call` names of targets/gap9.hwm's offload rules; the emitter calls a
 * rule's kernel when these headers declare it.
 *
 * Host emulation, each unit in its own arithmetic:
 * - the cluster (cluster_*): PULP-NN-style kernels on HWC tiles; they run
 *   the portable kernels of match_kernels.c, the exact reference, so every
 *   requantization form (fixed point, scale-shift, float) is bit-exact.
 *   A convolution (groups 1) or dense job of a split C (mk_job_t.acc:
 *   gap9.hwm's cluster claims `partial_sums`) sets or adds its C tile's
 *   sums into the int32 accumulator in L1, and only its last C tile runs
 *   the chain and writes y;
 * - NE16 (ne16_conv, ne16_depthwise): computes as the hardware does
 *   (../shared/HARDWARE.md "GAP9 NE16"): u8 inputs, weights read from their
 *   bit-plane encoding (w + 128, 16-channel blocks, 8 planes LSB first, 2
 *   bytes per plane and tap), the layer-wise weight offset -128 * sum(x)
 *   added to a wrapping 32-bit accumulator, then t = low32(acc * scale[k]) +
 *   bias[k] (wrapping; scales unsigned, 8-bit, or 32-bit when any scale of
 *   the layer exceeds 255), ReLU when the output clamps at 0, t >> shift (floor),
 *   saturation to [0, 255] (ReLU) or [-128, 127]; without normalization the
 *   32-bit accumulator is the output (a bias there is added as the RTL's
 *   normalization with scale 1, shift 0 and 32-bit output: wrapping). Pad value 0. Stride 2 is computed per
 *   output pixel: the hardware's one-3x3-job-per-2x2-block schedule moves no
 *   arithmetic. A BiasAdd before the requantization is folded as the driver
 *   programs it: bias' = low32(bias_add * scale + bias). The weight offset
 *   register is -(128 + z) for the layer's weight zero point z (0, or -128
 *   for unsigned weights stored as w - 128: see match-core/src/lower.rs).
 *   Stated deviation: a clip narrower than NE16's saturation range (e.g.
 *   ReLU6) is applied by the kernel after the unit's output (on silicon it
 *   needs a cluster pass). A job outside NE16's form (non-u8 input, input
 *   zero point, another requantization, output zero point, a split C) aborts
 *   naming the layer: the lowering must not offload it.
 *
 * Every kernel first calls gap9_emu_kernel (the platform, gap9_platform.c),
 * which counts the call and checks its buffers.
 */
#ifndef GAP9_UNITS_H
#define GAP9_UNITS_H

#include <stdint.h>

#include "match_kernels.h"

/* Provided by the platform (gap9_platform.c). */
void gap9_emu_kernel(const char *kernel, const void *in, uint32_t in_bytes, const void *w,
                     uint32_t w_bytes, void *out, uint32_t out_bytes);
/* Checks a further buffer a kernel touches (a split C's accumulator). */
void gap9_emu_access(const char *kernel, const char *role, const void *p, uint32_t bytes, int write);

/* The cluster (8 cores, PULP-NN). */
void cluster_conv(const mk_job_t *job);
void cluster_pointwise(const mk_job_t *job);
void cluster_depthwise(const mk_job_t *job);
void cluster_conv_acc(const mk_job_t *job);
void cluster_linear(const mk_job_t *job);
void cluster_linear_acc(const mk_job_t *job);
void cluster_add(const mk_job_t *job);
void cluster_pool(const mk_job_t *job);

/* NE16. */
void ne16_conv(const mk_job_t *job);
void ne16_depthwise(const mk_job_t *job);

#endif /* GAP9_UNITS_H */
