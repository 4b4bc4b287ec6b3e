/*
 * Stub of pulp-nnx ne16/hal/ne16_task_defs.h, ours: only the constants the
 * enums of ne16_task.h are built from, with the values of that header
 * (pulp-platform/pulp-nnx, "CONF0 FLAGS").
 */
#ifndef MATCH_STUB_NE16_TASK_DEFS_H
#define MATCH_STUB_NE16_TASK_DEFS_H

#define NE16_FLAG_QUANT_FUNCTION_IDENTITY (1 << 23)
#define NE16_FLAG_QUANT_FUNCTION_RELU (0 << 23)
#define NE16_QUANT_MODE_8BIT (0 << 21)
#define NE16_QUANT_MODE_16BIT (1 << 21)
#define NE16_QUANT_MODE_32BIT (2 << 21)
#define NE16_FLAG_WEIGHT_OFFSET_SYMMETRIC (0 << 15)
#define NE16_FLAG_WEIGHT_OFFSET_LAYER_WISE (1 << 15)
#define NE16_NORM_MODE_8BIT (0 << 12)
#define NE16_NORM_MODE_16BIT (1 << 12)
#define NE16_NORM_MODE_32BIT (2 << 12)

/* ne16_task_defs.h: "ARHITECTURE" */
#define NE16_FILTER_SIZE (3)
#define NE16_INPUT_CHANNEL_THROUGHPUT (16)
#define NE16_OUTPUT_CHANNEL_THROUGHPUT (32)

#endif /* MATCH_STUB_NE16_TASK_DEFS_H */
