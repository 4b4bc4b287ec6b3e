/*
 * Stub of pulp-nnx ne16/hal/ne16.h, ours, declarations only
 * (pulp-platform/pulp-nnx ne16/hal/ne16.h).
 */
#ifndef MATCH_STUB_NE16_H
#define MATCH_STUB_NE16_H

#include "hwpe.h"
#include <stdint.h>

#define NE16_TASK_QUEUE_SIZE (2) /* ne16.h: the task queue is 2 deep */

typedef struct ne16_dev_t {
    hwpe_dev_t hwpe_dev; /* ne16.h: "Implements the HWPE device interface" */
} ne16_dev_t;

#endif /* MATCH_STUB_NE16_H */
