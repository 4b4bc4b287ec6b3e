/* host-tiled platform: see host_tiled_platform.h. */
#include "host_tiled_platform.h"

#include <string.h>

#ifndef MATCH_FREESTANDING
#include <time.h>
static clock_t host_tiled_t0;

void host_tiled_timer_start(void)
{
    host_tiled_t0 = clock();
}

uint32_t host_tiled_timer_stop(void)
{
    return (uint32_t)(clock() - host_tiled_t0);
}
#else
void host_tiled_timer_start(void)
{
}

uint32_t host_tiled_timer_stop(void)
{
    return 0;
}
#endif

#define HT_CHANNELS 8
#define HT_QUEUE 64

typedef struct {
    unsigned char *dst;
    const unsigned char *src;
    uint32_t run, rows, dst_stride, src_stride, planes, dst_plane_stride, src_plane_stride;
} ht_cmd_t;

static ht_cmd_t ht_queue[HT_CHANNELS][HT_QUEUE];
static int ht_len[HT_CHANNELS];

static void ht_copy(const ht_cmd_t *c)
{
    uint32_t p, r;
    for (p = 0; p < c->planes; p++) {
        for (r = 0; r < c->rows; r++) {
            memcpy(c->dst + p * c->dst_plane_stride + r * c->dst_stride,
                   c->src + p * c->src_plane_stride + r * c->src_stride, c->run);
        }
    }
}

void host_tiled_dma_start(void *dst, const void *src, uint32_t bytes_per_row, uint32_t rows,
                          uint32_t dst_stride, uint32_t src_stride, uint32_t planes,
                          uint32_t dst_plane_stride, uint32_t src_plane_stride, int channel)
{
    ht_cmd_t c;
    int ch = channel < 0 || channel >= HT_CHANNELS ? 0 : channel;
    c.dst = (unsigned char *)dst;
    c.src = (const unsigned char *)src;
    c.run = bytes_per_row;
    c.rows = rows;
    c.dst_stride = dst_stride;
    c.src_stride = src_stride;
    c.planes = planes;
    c.dst_plane_stride = dst_plane_stride;
    c.src_plane_stride = src_plane_stride;
    if (ht_len[ch] == HT_QUEUE) {
        /* A full queue completes its oldest transfer early (as a DMA with
         * a bounded queue would stall the core). */
        ht_copy(&ht_queue[ch][0]);
        memmove(&ht_queue[ch][0], &ht_queue[ch][1], sizeof(ht_cmd_t) * (HT_QUEUE - 1));
        ht_len[ch]--;
    }
    ht_queue[ch][ht_len[ch]++] = c;
}

void host_tiled_dma_wait(int channel)
{
    int ch = channel < 0 || channel >= HT_CHANNELS ? 0 : channel;
    int i;
    for (i = 0; i < ht_len[ch]; i++) {
        ht_copy(&ht_queue[ch][i]);
    }
    ht_len[ch] = 0;
}

void host_tiled_init(void)
{
    int i;
    for (i = 0; i < HT_CHANNELS; i++) {
        ht_len[i] = 0;
    }
}

void host_tiled_deinit(void)
{
    int i;
    for (i = 0; i < HT_CHANNELS; i++) {
        host_tiled_dma_wait(i);
    }
}
