/*
 * Stub of the DIANA runtime's kernels.h, ours, declarations only: one
 * entry per accelerator operation. Each programs the accelerator (its
 * instruction memory and configuration registers), streams its weights
 * (and for the analog array the batch-norm block) from L2, and triggers
 * the job; completion is awaited with global_sync_digital / _analog.
 * `input`, `output` (and `inputB`) are activation-memory addresses,
 * `*_L2` are L2 addresses.
 *
 * Source: the DIANA runtime's kernel prototypes as DORY's Diana backend
 * declares and calls them (pulp-platform/dory Hardware_targets/Diana
 * layer templates; the runtime's kernels.h / digital_conv_2d.c:
 * `int32_t digital_conv_2d(const void *input_L2, const void *input,
 * const void *weights_L2, const void *weights, void *output,
 * Layer_parameters *layer);`, `analog_conv_2d(..., const void
 * *batchnorm_L2, ...)`).
 */
#ifndef MATCH_STUB_DIANA_KERNELS_H
#define MATCH_STUB_DIANA_KERNELS_H

#include "utils.h"
#include <stdint.h>

int32_t digital_conv_2d(const void *input_L2, const void *input, const void *weights_L2, const void *weights,
                        void *output, Layer_parameters *layer);
int32_t digital_depthwise_conv_2d(const void *input_L2, const void *input, const void *weights_L2,
                                  const void *weights, void *output, Layer_parameters *layer);
int32_t digital_fully_connected(const void *input_L2, const void *input, const void *weights_L2,
                                const void *weights, void *output, Layer_parameters *layer);
int32_t digital_element_wise_sum(const void *input_L2, const void *inputA, const void *weights_2_L2,
                                 const void *inputB, void *output, Layer_parameters *layer);
int32_t analog_conv_2d(const void *input_L2, const void *input, const void *weights_L2, const void *batchnorm_L2,
                       const void *weights, void *output, Layer_parameters *layer);
int32_t analog_fully_connected(const void *input_L2, const void *input, const void *weights_L2,
                               const void *weights, void *output, Layer_parameters *layer);

#endif /* MATCH_STUB_DIANA_KERNELS_H */
