/*
 * DIANA platform: the functions targets/diana.hwm names (api block, DMAs),
 * host emulation (diana_platform.c). See README.md in this folder.
 *
 * Memories: L2 (512000 B), L1 (the accelerators' activation memory,
 * 256000 B), WD (the digital array's weights, 64000 B) and WA (the analog
 * array's cells, 147456 B; diana.hwm's sizes) are separate emulated arenas
 * of the usable sizes (size - reserve) of the .hwm the project is compiled
 * for (matchc writes them into match_memories.h; the arenas, DMA queue,
 * checks and counters are match_emu's, see match_emu.h). The generated
 * code obtains its
 * arenas with diana_malloc("L2", ..), diana_malloc("L1", ..), ...; a request
 * beyond a memory's usable bytes aborts.
 *
 * DMA (the contract of docs/hwm.md, "DMA functions"): diana_dma_start
 * serves the three DMAs of the .hwm (L2 <-> L1, L2 -> WD, L2 -> WA), 1-D
 * commands only. A command is queued on `channel`; the copy happens at
 * diana_dma_wait(channel). Between the two the destination is poisoned:
 * AddressSanitizer manual poisoning when built with ASan, and in every
 * build a per-byte pending state that the DMA, tile and kernel entry
 * checks consult.
 *
 * Checks (each aborts with a message naming the current layer): a DMA or
 * kernel touching bytes of L1 / WD / WA outside the current layer's tile
 * buffers (diana_buffer), or bytes of L2 outside the allocated arenas; a
 * command with more dimensions than the DMA moves; reading a pending DMA
 * destination, or writing a buffer a pending command reads or writes;
 * overlapping tile buffers; a layer ending with pending commands.
 *
 * Counters per layer (diana_layer starts a layer): DMA commands and bytes
 * into L1 / WD / WA and back from L1; tile calls (diana_tile, one per tile
 * of the tiled driver); unit kernel calls (diana_emu_kernel); the cost
 * model's modeled cycles. Printed at diana_deinit when the environment
 * variable MATCH_COUNTERS names a file ("-": standard error).
 */
#ifndef DIANA_PLATFORM_H
#define DIANA_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

#include "diana_units.h"

void diana_init(void);
void diana_deinit(void);
void diana_sync(void);
void *diana_malloc(const char *memory, uint32_t bytes);
void diana_free(const char *memory, void *buffer, uint32_t bytes);
void diana_timer_start(void);
uint32_t diana_timer_stop(void);
int diana_print(const char *fmt, ...);

/* The DMAs L2 <-> L1, L2 -> WD and L2 -> WA. */
void diana_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows,
                     uint32_t dst_stride, uint32_t src_stride, uint32_t planes,
                     uint32_t dst_plane_stride, uint32_t src_plane_stride, int channel);
void diana_dma_wait(int channel);

/* The generated code's view of its layers (api roles layer, buffer, tile). */
void diana_layer(int32_t index, const char *name, uint64_t modeled_cycles);
void diana_buffer(void *base, uint32_t bytes);
/* Bytes of a tile buffer of the current layer that the next layer reads
 * in place (inter-layer residency): kept at the layer's end, while the
 * emulation scrubs every other tile buffer. */
void diana_keep(void *base, uint32_t bytes);
void diana_tile(const void *in, const void *w, void *out);

/* Entry hook of the unit kernels (diana_units.c): counts a unit kernel call
 * of the current layer and checks that its buffers lie in the layer's tile
 * buffers of L1 (weights: WD or WA) and are not pending DMA destinations. */
void diana_emu_kernel(const char *kernel, const void *in, uint32_t in_bytes, const void *w,
                      uint32_t w_bytes, void *out, uint32_t out_bytes);

#endif /* DIANA_PLATFORM_H */
