/*
 * DIANA device adapter, internal header (targets/diana/device/): what the
 * adapter's files share. Not copied into generated projects (only the
 * top-level files of targets/diana/ are); a device build adds this folder.
 *
 * UNTESTED ON SILICON: written from the public names of DIANA's PULP
 * runtime (its HWME HAL and accelerator kernels, as DORY's Diana backend
 * and MATCH call them), type-checked against our stub headers
 * (tests/sdk-stubs/diana/) and cross-compiled for rv32imc in CI, never run
 * on a DIANA. See README.md here.
 */
#ifndef DIANA_DEVICE_H
#define DIANA_DEVICE_H

#include <stdint.h>

#include "pulp.h"
#include "hal/hwme/hwme_v1.h"
#include "kernels.h"
#include "utils.h"

#include "diana_platform.h"

/* The accelerators' shared activation memory (diana.hwm memory L1). Its
 * addresses are offsets the HWME takes in 16-byte words, not CPU
 * pointers. */
#define DIANA_ACT_BYTES 256000u

/* The current layer's name (diana_layer), for messages. */
extern const char *diana_layer_name;

/* Reports `what` for `layer` and stops (prints, then spins). */
void diana_device_fail(const char *kernel, const char *layer, const char *what);

/* An L2 buffer of at least `bytes` (rounded up to the HWME's 32-byte
 * transfer unit), zeroed; freed with diana_device_free. */
void *diana_device_alloc(uint32_t bytes);
void diana_device_free(void *p);

/* Moves `bytes` between L2 and the activation memory at `act` through the
 * digital (analog = 0) or analog HWME copy engine and waits for it.
 * `to_l2`: activation memory -> L2. The engine moves whole 32-byte units,
 * so `l2` must hold `bytes` rounded up to 32. */
void diana_device_copy(int analog, void *l2, uint32_t act, uint32_t bytes, int to_l2);

#endif /* DIANA_DEVICE_H */
