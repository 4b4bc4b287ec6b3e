/*
 * host-tiled platform: the functions named in targets/host-tiled.hwm.
 *
 * The DMA of the target (L2 <-> L1) is emulated with strided memcpy. A
 * transfer is only queued by host_tiled_dma_start; the copy happens in
 * host_tiled_dma_wait on its channel, so code that reads a buffer before
 * waiting for its transfer sees stale data (and fails the bit-exact tests).
 *
 * The DMA contract every target's platform header provides (docs/hwm.md,
 * "DMA functions"): START queues a copy of `planes` x `rows` x
 * `bytes_per_row` bytes, strides in bytes; WAIT(channel) returns once every
 * copy queued on `channel` is done.
 */
#ifndef HOST_TILED_PLATFORM_H
#define HOST_TILED_PLATFORM_H

#include <stddef.h>
#include <stdint.h>

void host_tiled_init(void);
void host_tiled_deinit(void);
void host_tiled_timer_start(void);
uint32_t host_tiled_timer_stop(void);

void host_tiled_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows,
                          uint32_t dst_stride, uint32_t src_stride, uint32_t planes,
                          uint32_t dst_plane_stride, uint32_t src_plane_stride, int channel);
void host_tiled_dma_wait(int channel);

#endif /* HOST_TILED_PLATFORM_H */
