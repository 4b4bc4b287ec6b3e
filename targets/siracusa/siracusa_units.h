/*
 * Siracusa's compute units as the generated code calls them: one tile of a
 * layer per call, described by an mk_job_t (match_kernels.h). The names are
 * the `call` names of targets/siracusa.hwm's offload rules; the emitter
 * calls a rule's kernel when these headers declare it.
 *
 * Host emulation, each unit in its own arithmetic:
 * - the cluster (cluster_*): the 8-core PULP cluster; it runs the portable
 *   kernels of match_kernels.c (the exact reference) on HWC tiles in L1, so
 *   every requantization form is bit-exact; the accumulator before a chain
 *   is the kernel's own (host heap in the emulation: PULP-NN requantizes
 *   from registers, it takes no L1);
 * - N-EUREKA (neureka_conv, neureka_pointwise, neureka_depthwise): computes
 *   as the engine does (pulp-nnx neureka driver and functional model):
 *   weights read bit by bit from ITS encoding (w + 128; 3x3: 28-channel
 *   blocks, 8 bit planes, 9 taps x 28 channels = 252 bits padded to a
 *   256-bit word per plane; 1x1: 32-channel blocks as 8 groups of 4
 *   channels with all 8 planes of a group together, one 256-bit word per
 *   block), u8 or i8 inputs (the signed-activation flag), the layer-wise
 *   weight offset -128 * sum(x) added to a wrapping 32-bit accumulator, then
 *   t = low32(acc * scale[k]) + bias[k] (scale uint8, wrapping), ReLU for u8
 *   outputs, t >> shift (one 5-bit shift per layer, floor: no rounding),
 *   saturation to [0, 255] or [-128, 127]. What the engine has no register
 *   for, the driver folds into its normalization bias when it programs the
 *   job (a BiasAdd before the requantization, the input zero point through
 *   the padding value and -x_zp * sum(w), the output zero point as
 *   zp << shift); a clip narrower than the output type runs on the cluster
 *   after the job. A job outside that form (another requantization, a
 *   scale above 255, a weight zero point, int32 outputs, stride 2, ...)
 *   aborts naming the layer, and so does a job whose 32-bit datapath would
 *   wrap where the reference arithmetic does not.
 *
 * Every kernel first calls siracusa_emu_kernel (siracusa_platform.c), which
 * counts the call and checks its buffers.
 */
#ifndef SIRACUSA_UNITS_H
#define SIRACUSA_UNITS_H

#include <stdint.h>

#include "match_kernels.h"

/* Provided by the platform (siracusa_platform.c). */
void siracusa_emu_kernel(const char *kernel, const void *in, uint32_t in_bytes, const void *w,
                         uint32_t w_bytes, void *out, uint32_t out_bytes);

/* The cluster (8 cores). */
void cluster_conv(const mk_job_t *job);
void cluster_conv_acc(const mk_job_t *job);
void cluster_linear(const mk_job_t *job);
void cluster_linear_acc(const mk_job_t *job);
void cluster_add(const mk_job_t *job);
void cluster_pool(const mk_job_t *job);

/* N-EUREKA. */
void neureka_conv(const mk_job_t *job);
void neureka_pointwise(const mk_job_t *job);
void neureka_depthwise(const mk_job_t *job);

/* Bytes of a Neureka weight tile of k output channels and c input channels
 * (depthwise: c channels, k == c) in the layout of kernel fy x fy, as
 * targets/siracusa.hwm states it; 0 for a shape Neureka has no mode for. */
uint32_t siracusa_neureka_weight_bytes(int32_t fy, int depthwise, int32_t k, int32_t c);

#endif /* SIRACUSA_UNITS_H */
