/*
 * Stub of pulp-nnx ne16/hal/ne16_task.h, ours, declarations only
 * (pulp-platform/pulp-nnx ne16/hal/ne16_task.h, the version with the
 * *_addr_* setters: ne16_task_set_addr_conv, ne16_task_set_addr_norm_quant).
 * The task structure follows the driver's (its subtile counters flattened
 * here); the adapter fills it only through the setters.
 */
#ifndef MATCH_STUB_NE16_TASK_H
#define MATCH_STUB_NE16_TASK_H

#include "ne16_task_defs.h"
#include <stdint.h>

typedef enum ne16_task_flag_e { ne16TaskFlagFalse = 0, ne16TaskFlagTrue = 1 } ne16_task_flag_e;

typedef enum ne16_weight_offset_mode_e {
    weightOffsetModeSymmetric = NE16_FLAG_WEIGHT_OFFSET_SYMMETRIC,
    weightOffsetModeLayerWise = NE16_FLAG_WEIGHT_OFFSET_LAYER_WISE
} ne16_weight_offset_mode_e;

typedef enum {
    normMode8Bit = NE16_NORM_MODE_8BIT,
    normMode16Bit = NE16_NORM_MODE_16BIT,
    normMode32Bit = NE16_NORM_MODE_32BIT
} ne16_norm_mode_e;

typedef struct ne16_norm_t {
    ne16_norm_mode_e mode; /* width of the scale factors, read packed at it (8 or 32 bit) */
    ne16_task_flag_e flag_bias;
    ne16_task_flag_e flag_shift; /* per-channel shifts */
} ne16_norm_t;

typedef enum ne16_quant_mode_e {
    quantMode8Bit = NE16_QUANT_MODE_8BIT,
    quantMode16Bit = NE16_QUANT_MODE_16BIT,
    quantMode32Bit = NE16_QUANT_MODE_32BIT
} ne16_quant_mode_e;

typedef enum ne16_quant_function_e {
    quantFunctionIdentity = NE16_FLAG_QUANT_FUNCTION_IDENTITY,
    quantFunctionRelu = NE16_FLAG_QUANT_FUNCTION_RELU
} ne16_quant_function_e;

typedef struct ne16_quant_t {
    uint8_t shift_amount; /* ne16_task.h: "must be in range 0x00-0x1F" */
    ne16_quant_function_e function;
    ne16_task_flag_e flag_rounding;
} ne16_quant_t;

typedef struct ne16_stride_t {
    uint32_t d0, d1, d2;
} ne16_stride_t;

typedef struct ne16_cfg_t {
    ne16_stride_t input_stride, output_stride, weights_stride;
    uint32_t subtile[5];
    uint32_t padding, weight_offset_factor, filter_mask, conf0;
} ne16_cfg_t;

typedef struct ne16_task_data_t {
    uint32_t weights_addr, infeat_addr, outfeat_addr;
    uint32_t scale_addr, scale_shift_addr, scale_bias_addr;
    ne16_cfg_t cfg;
} ne16_task_data_t;

typedef struct ne16_task_t {
    ne16_task_data_t data;
    uint8_t weight_d0_stride, qw, subtile_output_channel, kernel_shape, depthwise, id;
} ne16_task_t;

void ne16_task_init(ne16_task_t *task);
/* kernel_shape 1 or 3; depthwise 0/1; stride 1 or 2. */
void ne16_task_set_op_to_conv(ne16_task_t *task, const uint8_t kernel_shape, const uint8_t depthwise,
                              const uint8_t stride);
/* output_bits 8 (quantized) or 32 (normalization off). */
void ne16_task_set_bits(ne16_task_t *task, const uint8_t input_bits, const uint8_t output_bits,
                        const uint8_t weight_bits);
void ne16_task_set_norm_quant(ne16_task_t *task, ne16_quant_t quant, ne16_norm_t norm);
void ne16_task_set_weight_offset(ne16_task_t *task, ne16_weight_offset_mode_e weight_offset_mode,
                                 const int32_t weight_offset);
/* Input pointer moved back over the top/left padding by the driver. */
void ne16_task_set_addr_conv(ne16_task_t *task, uint32_t input_addr, uint32_t w_in, uint32_t w_in_stride,
                             uint8_t padding_top, uint8_t padding_left, uint32_t output_addr,
                             uint32_t weights_addr);
void ne16_task_set_addr_norm_quant(ne16_task_t *task, uint32_t scale_addr, uint32_t shift_addr,
                                   uint32_t bias_addr);
/* ne16_task.h: "All the strides variables are strides between elements
 * alongside that dimension and expressed in bytes. There is no stride
 * variable for the channel dimension because the NE16 requires the
 * channels to be contiguous." */
void ne16_task_set_dims(ne16_task_t *task, const uint32_t w_in, const uint32_t k_in, const uint32_t h_in_stride,
                        const uint32_t w_in_stride, const uint32_t h_out, const uint32_t w_out,
                        const uint32_t k_out, const uint32_t h_out_stride, const uint32_t w_out_stride,
                        const uint8_t padding_top, const uint8_t padding_bottom, const uint8_t padding_left,
                        const uint8_t padding_right);
void ne16_task_set_dims_stride2x2(ne16_task_t *task, const uint32_t h_in, const uint32_t w_in, const uint32_t k_in,
                                  const uint32_t h_in_stride, const uint32_t w_in_stride, const uint32_t h_out,
                                  const uint32_t w_out, const uint32_t k_out, const uint32_t h_out_stride,
                                  const uint32_t w_out_stride, const uint8_t h_ker, const uint8_t w_ker,
                                  const uint8_t padding_top, const uint8_t padding_bottom,
                                  const uint8_t padding_left, const uint8_t padding_right);

#endif /* MATCH_STUB_NE16_TASK_H */
