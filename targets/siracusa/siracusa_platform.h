/*
 * Siracusa platform: the functions targets/siracusa.hwm names (api block,
 * DMAs), as a host emulation (siracusa_platform.c). See README.md in this
 * folder.
 *
 * Memories: L1 (the cluster's TCDM, 64000 B), L2 (1024000 B) and L3
 * (off-chip, 64000000 B) are separate emulated arenas of the sizes the
 * .hwm declares, allocated by siracusa_malloc in stack order (the generated
 * code frees in reverse); a request beyond a memory's bytes aborts.
 *
 * DMA (docs/hwm.md, "DMA functions"): START checks and queues one command
 * of `planes` x `rows` x `bytes_per_row` bytes on `channel`; the copy
 * happens at WAIT(channel). Until then the destination is poisoned: with
 * AddressSanitizer, its manual poisoning (any read of it is reported); in
 * every build, a per-byte pending state that later commands, tiles and
 * kernels are checked against. siracusa_dma_* is the cluster DMA (MCHAN:
 * L2 <-> L1, at most 2 dimensions, 131071 B per command);
 * siracusa_l3_dma_* moves L3 <-> L2 (2 dimensions).
 *
 * Checks, each aborting with a message that names the current layer: an
 * L1 access (DMA, tile, kernel) outside the layer's tile buffers, or an
 * L2 / L3 access outside the allocated arenas; a command with more
 * dimensions or bytes than its DMA moves, or between memories it does not
 * link; a read of a pending destination, a write into bytes a pending
 * command reads or writes; tile buffers that overlap; a layer or a run
 * that ends with commands pending (a missing wait).
 *
 * Counters per layer (siracusa_layer starts one): DMA commands and bytes
 * into L1, out of L1 and over the L3 DMA, tiles (siracusa_tile) and unit
 * kernel calls (siracusa_emu_kernel), and the cost model's cycles for the
 * layer. siracusa_deinit prints them when the environment variable
 * MATCH_COUNTERS names a file ("-": standard error), summed over the runs
 * of the process, as the "match counters v1" table.
 */
#ifndef SIRACUSA_PLATFORM_H
#define SIRACUSA_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "siracusa_units.h"

void siracusa_init(void);
void siracusa_deinit(void);
void *siracusa_malloc(const char *memory, uint32_t bytes);
void siracusa_free(const char *memory, void *buffer, uint32_t bytes);
/* The emulated clock: the cost model's cycles of the layers run since
 * siracusa_timer_start. */
void siracusa_timer_start(void);
uint32_t siracusa_timer_stop(void);
int siracusa_print(const char *fmt, ...);

/* The cluster DMA (MCHAN), L2 <-> L1. */
void siracusa_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows,
                        uint32_t dst_stride, uint32_t src_stride, uint32_t planes,
                        uint32_t dst_plane_stride, uint32_t src_plane_stride, int channel);
void siracusa_dma_wait(int channel);
/* L3 <-> L2. */
void siracusa_l3_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows,
                           uint32_t dst_stride, uint32_t src_stride, uint32_t planes,
                           uint32_t dst_plane_stride, uint32_t src_plane_stride, int channel);
void siracusa_l3_dma_wait(int channel);

/* The generated code's view of its layers (api roles layer, buffer, tile):
 * a layer starts (index -1: the run ends), registers its tile buffers in
 * L1, and announces each tile's buffers before its kernel call. */
void siracusa_layer(int32_t index, const char *name, uint64_t modeled_cycles);
void siracusa_buffer(void *base, uint32_t bytes);
void siracusa_tile(const void *in, const void *w, void *out);

#endif /* SIRACUSA_PLATFORM_H */
