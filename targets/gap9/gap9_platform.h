/*
 * GAP9 platform: the functions targets/gap9.hwm names (api block, DMAs),
 * host emulation (gap9_platform.c). See README.md in this folder.
 *
 * Memories: L1 (cluster TCDM, 120000 B usable in gap9.hwm), L2 (1536000 B)
 * and L3 (HyperRAM, 8000000 B) are separate emulated arenas of the usable
 * sizes (size - reserve) of the .hwm the project is compiled for (matchc
 * writes them into match_memories.h; the arenas, DMA queue, checks and
 * counters are match_emu's, see match_emu.h). The generated code obtains its
 * arenas with gap9_malloc("L2", ..) / gap9_malloc("L1", ..); a request
 * beyond a memory's usable bytes aborts.
 *
 * DMA (the contract of docs/hwm.md, "DMA functions"): START queues one
 * command of `planes` x `rows` x `bytes_per_row` bytes (strides in bytes)
 * on `channel`; the copy happens at WAIT(channel). Between the two the
 * destination is poisoned: AddressSanitizer manual poisoning when built
 * with ASan, and in every build a per-byte pending state that the DMA,
 * tile and kernel entry checks consult. gap9_dma_* is the cluster DMA
 * (L2 <-> L1, 3 dimensions, at most 65535 B per command); gap9_l3_dma_*
 * the L3 <-> L2 transfers (2 dimensions).
 *
 * Checks (each aborts with a message naming the current layer): a DMA or
 * kernel touching bytes of L1 outside the current layer's tile buffers
 * (gap9_buffer), or bytes of L2 / L3 outside the allocated arenas; a
 * command with more dimensions or bytes than the DMA moves; reading a
 * pending DMA destination, or writing a buffer a pending command reads or
 * writes; overlapping tile buffers; a layer ending with pending commands.
 *
 * Counters per layer (gap9_layer starts a layer): DMA commands and bytes
 * into L1, back from L1, and over the L3 DMA; tile calls (gap9_tile, one
 * per tile of the tiled driver); unit kernel calls (gap9_emu_kernel); the
 * cost model's modeled cycles. Printed at gap9_deinit when the environment
 * variable MATCH_COUNTERS names a file ("-": standard error).
 */
#ifndef GAP9_PLATFORM_H
#define GAP9_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "gap9_units.h"

void gap9_init(void);
void gap9_deinit(void);
void gap9_sync(void);
void gap9_cl_barrier(void);
/* Runs fn(arg) on each of the cluster's 8 cores (in turn, in emulation). */
void gap9_cl_fork(void (*fn)(void *), void *arg);
/* The core running the current fork's function (0 outside a fork). */
int gap9_core_id(void);
void *gap9_malloc(const char *memory, uint32_t bytes);
void gap9_free(const char *memory, void *buffer, uint32_t bytes);
void gap9_timer_start(void);
uint32_t gap9_timer_stop(void);
int gap9_print(const char *fmt, ...);

/* The cluster DMA, L2 <-> L1. */
void gap9_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows,
                    uint32_t dst_stride, uint32_t src_stride, uint32_t planes,
                    uint32_t dst_plane_stride, uint32_t src_plane_stride, int channel);
void gap9_dma_wait(int channel);
/* L3 <-> L2 (pi_ram_read / pi_ram_write). */
void gap9_l3_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows,
                       uint32_t dst_stride, uint32_t src_stride, uint32_t planes,
                       uint32_t dst_plane_stride, uint32_t src_plane_stride, int channel);
void gap9_l3_dma_wait(int channel);

/* The generated code's view of its layers (api roles layer, buffer, tile). */
void gap9_layer(int32_t index, const char *name, uint64_t modeled_cycles);
void gap9_buffer(void *base, uint32_t bytes);
/* Bytes of a tile buffer of the current layer that the next layer reads
 * in place (inter-layer residency): kept at the layer's end, while the
 * emulation scrubs every other tile buffer. */
void gap9_keep(void *base, uint32_t bytes);
void gap9_tile(const void *in, const void *w, void *out);

/* Entry hook of the unit kernels (gap9_units.c): counts a unit kernel call
 * of the current layer and checks that its buffers lie in the layer's L1
 * tile buffers and are not pending DMA destinations. */
void gap9_emu_kernel(const char *kernel, const void *in, uint32_t in_bytes, const void *w,
                     uint32_t w_bytes, void *out, uint32_t out_bytes);
/* The same checks, uncounted, of a further buffer a kernel reads (and
 * writes, when `write`): a split C's int32 accumulator (mk_job_t.acc). */
void gap9_emu_access(const char *kernel, const char *role, const void *p, uint32_t bytes, int write);

#endif /* GAP9_PLATFORM_H */
