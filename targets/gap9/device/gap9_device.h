/*
 * GAP9 device adapter, internal header (targets/gap9/device/): what the
 * adapter's files share. Not copied into generated projects (only the
 * top-level files of targets/gap9/ are); a device build adds this folder.
 *
 * UNTESTED ON SILICON: written from the public API names and semantics of
 * the GAP SDK (PMSIS) and pulp-nnx, type-checked against our stub headers
 * (tests/sdk-stubs/gap9/) and cross-compiled for rv32imc in CI, never run
 * on a GAP9. See README.md here.
 */
#ifndef GAP9_DEVICE_H
#define GAP9_DEVICE_H

#include <stdint.h>

#include "pmsis.h"
#include "bsp/ram.h"
#include "pulp_nnx_ne16.h"

#include "gap9_platform.h"

/* Worker cores of the cluster the kernels fork on (gap9.hwm: cores 8). On
 * GAP9 the cluster controller (core 8) dispatches and the 8 workers
 * (pi_core_id() 0..7) compute. */
#define GAP9_CL_CORES 8

/* Address windows of the memories, used to tell an L1 or L2 pointer from
 * an external RAM address. unverified: the GAP9 memory map (cluster
 * TCDM aliased at 0x10000000, L2 at 0x1C000000) is GAP8's and the GAP SDK
 * linker scripts'; GAP9's datasheet is not public. */
#ifndef GAP9_L1_BASE /* a test double may place the windows elsewhere */
#define GAP9_L1_BASE 0x10000000u
#define GAP9_L1_SIZE 0x00020000u /* 128 KiB (gap9.hwm memory L1) */
#define GAP9_L2_BASE 0x1C000000u
#define GAP9_L2_SIZE 0x00190000u /* 1.5 MiB + 64 KiB */
#endif

/* The opened devices (gap9_device.c). */
extern struct pi_device gap9_cluster_dev;
extern struct pi_device gap9_ram_dev;

/* The NE16 driver's device handle (gap9_device.c). */
const ne16_dev_t *gap9_ne16_dev(void);

/* Called on the cluster controller around the network: NE16 driver init
 * and term (its registers are cluster peripherals). */
void gap9_cluster_begin(void);
void gap9_cluster_end(void);

/* The current layer's name (gap9_layer), for messages. */
extern const char *gap9_layer_name;

/* Reports `what` for `layer` and stops (no abort() on the device: prints
 * and spins, so a debugger shows where). */
void gap9_device_fail(const char *kernel, const char *layer, const char *what);

/* Whether `p` lies in the cluster L1 / in L2. */
int gap9_in_l1(const void *p);
int gap9_in_l2(const void *p);

#endif /* GAP9_DEVICE_H */
