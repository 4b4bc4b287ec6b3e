/*
 * A test double and its driver, not DIANA's runtime: checks the DIANA
 * device adapter's HWME copies (targets/diana/device/diana_device.c,
 * diana_device_copy) on rv32 under qemu-user (32-bit L2 addresses, as the
 * HWME registers take them).
 *
 * What the double models, from DORY's Diana backend (its dory.c
 * memcpy_dig / memcpy_analog and its Diana_TVM layer template):
 * - digital engine, one bank: op 2 = L2 -> activation memory, op 1 = back;
 *   addr = L2 byte address, l1addr = activation-memory address in 16-byte
 *   words, n = length in 4-byte words;
 * - analog engine, four banks: op 4 = L2 -> activation memory, op 3 =
 *   back; bank_length = 4 banks, row_length = rows of 16 bytes per bank
 *   (64 bytes a row: memcpy_analog's row_size = 4 * words / (banks * 16)),
 *   l1addr = the row (DORY's template moves 512-row blocks with the
 *   activation address advanced by 16 * 512 bytes, i.e. 512 after its
 *   division by 16, and puts the output at 16 * 512 * 4, row 2048); the L2
 *   side contiguous, 64 bytes a row (our reading: DORY's template advances
 *   its L2 pointer by 16 bytes a row, which cannot hold with 64-byte rows).
 * A job runs at its trigger; the sync waits. The driver copies random
 * buffers (beyond the adapter's 32 KiB chunks) to random aligned places and
 * back, and checks the activation memory holds them where the layout puts
 * them: byte b of a copy at address `act` (DORY's, the one its kernels
 * take) is digital byte act + b, analog row act / 16 + b / 64, byte
 * b % 64 of it.
 *
 * Built with tools/rv32 (crt0.S, rv32_sys.c); exit status 0 when every
 * check passes.
 */
#include <stddef.h>
#include <stdint.h>

#include "diana_device.h"
#include "rv32_sys.h"

/* The activation memory (diana.hwm L1): digital bytes, analog rows. */
#define ACT_BYTES 256000u
#define ANA_ROWS (ACT_BYTES / 64u)
static uint8_t dig_mem[ACT_BYTES];
static uint8_t ana_mem[ACT_BYTES];

static void fail(const char *what)
{
    rv32_puts("diana_hwme_check: ");
    rv32_puts(what);
    rv32_puts("\n");
    rv32_exit(1);
}

/* The adapter prints only on its failure path (diana_device_fail). */
int printf(const char *format, ...)
{
    fail(format);
    return 0;
}

int vprintf(const char *format, va_list ap)
{
    (void)ap;
    fail(format);
    return 0;
}

/* ---- pulp.h: the L2 allocator (a bump allocator over a static pool) ---- */

static uint8_t pool[600u * 1024u] __attribute__((aligned(32)));
static uint32_t pool_at;

void *rt_alloc(rt_alloc_e flags, int size)
{
    uint8_t *p;
    (void)flags;
    if (size <= 0 || (uint32_t)size > sizeof pool - pool_at) {
        fail("rt_alloc: out of the double's pool");
    }
    p = pool + pool_at;
    pool_at += ((uint32_t)size + 31u) & ~31u;
    return p;
}

void rt_free(rt_alloc_e flags, void *chunk, int size)
{
    (void)flags;
    (void)chunk;
    (void)size;
}

void rt_perf_init(rt_perf_t *perf)
{
    (void)perf;
}
void rt_perf_conf(rt_perf_t *perf, unsigned int events)
{
    (void)perf;
    (void)events;
}
void rt_perf_start(rt_perf_t *perf)
{
    (void)perf;
}
void rt_perf_stop(rt_perf_t *perf)
{
    (void)perf;
}
void rt_perf_reset(rt_perf_t *perf)
{
    (void)perf;
}
unsigned int rt_perf_read(int event)
{
    (void)event;
    return 0;
}

/* ---- the HWME double ---- */

typedef struct {
    unsigned int op, addr, l1addr, n, banks, rows;
    int pending;
} engine_t;
static engine_t dig, ana;
static uint32_t n_jobs;

void plp_hwme_enable(void)
{
}
void plp_hwme_disable(void)
{
}

void hwme_memcpy_op(unsigned int v)
{
    dig.op = v;
}
void hwme_memcpy_addr_set(unsigned int v)
{
    dig.addr = v;
}
void hwme_l1addr_set(unsigned int v)
{
    dig.l1addr = v;
}
void hwme_memcpy_n_set(unsigned int v)
{
    dig.n = v;
}

void hwme_trigger_job(void)
{
    const uint32_t bytes = dig.n * 4u, at = dig.l1addr * 16u;
    uint8_t *l2 = (uint8_t *)(uintptr_t)dig.addr;
    uint32_t i;
    if (dig.pending) {
        fail("a digital job triggered before the last one was synced");
    }
    if (dig.op != 1u && dig.op != 2u) {
        fail("a digital copy other than single-bank op 1 / 2");
    }
    if (bytes == 0u || bytes % 32u != 0u || at > ACT_BYTES || bytes > ACT_BYTES - at) {
        fail("a digital copy of no whole 32-byte units, or outside the activation memory");
    }
    for (i = 0; i < bytes; i++) {
        if (dig.op == 2u) {
            dig_mem[at + i] = l2[i];
        } else {
            l2[i] = dig_mem[at + i];
        }
    }
    dig.pending = 1;
    n_jobs++;
}

void hwme_ana_memcpy_op(unsigned int v)
{
    ana.op = v;
}
void hwme_ana_memcpy_addr_set(unsigned int v)
{
    ana.addr = v;
}
void hwme_ana_l1addr_set(unsigned int v)
{
    ana.l1addr = v;
}
void hwme_ana_memcpy_n_set(unsigned int v)
{
    ana.n = v;
}
void hwme_ana_memcpy_bank_length_set(unsigned int v)
{
    ana.banks = v;
}
void hwme_ana_memcpy_row_length_set(unsigned int v)
{
    ana.rows = v;
}

void hwme_ana_trigger_job(void)
{
    uint8_t *l2 = (uint8_t *)(uintptr_t)ana.addr;
    uint32_t i;
    if (ana.pending) {
        fail("an analog job triggered before the last one was synced");
    }
    if ((ana.op != 3u && ana.op != 4u) || ana.banks != 4u) {
        fail("an analog copy other than the 4-bank op 3 / 4");
    }
    if (ana.rows == 0u || ana.l1addr > ANA_ROWS || ana.rows > ANA_ROWS - ana.l1addr) {
        fail("an analog copy of no rows, or outside the activation memory");
    }
    for (i = 0; i < ana.rows * 64u; i++) {
        if (ana.op == 4u) {
            ana_mem[ana.l1addr * 64u + i] = l2[i];
        } else {
            l2[i] = ana_mem[ana.l1addr * 64u + i];
        }
    }
    ana.pending = 1;
    n_jobs++;
}

void global_sync_digital(void)
{
    dig.pending = 0;
}

void global_sync_analog(void)
{
    ana.pending = 0;
}

/* ---- the driver ---- */

static uint32_t seed = 0x9e3779b9u;

static uint32_t rnd(uint32_t n)
{
    seed = seed * 1664525u + 1013904223u;
    return (seed >> 8) % n;
}

static void one_copy(int analog)
{
    /* Up to 3 of the adapter's 32 KiB chunks; whole 64-byte rows for the
     * analog engine (the adapter's analog tiles are pixels x 64 channels). */
    const uint32_t unit = analog ? 64u : 32u;
    const uint32_t bytes = (1u + rnd(100000u / unit)) * unit;
    const uint32_t room = (ACT_BYTES - bytes) / unit;
    /* DORY's address: digital bytes; analog 16 a 64-byte row. */
    const uint32_t act = analog ? rnd(room + 1u) * 16u : rnd(room + 1u) * unit;
    const uint32_t at = analog ? act * 4u : act; /* the data's first byte */
    uint8_t *src = (uint8_t *)diana_device_alloc(bytes);
    uint8_t *back = (uint8_t *)diana_device_alloc(bytes);
    uint32_t i;
    for (i = 0; i < bytes; i++) {
        src[i] = (uint8_t)rnd(256);
    }
    diana_device_copy(analog, src, act, bytes, 0);
    for (i = 0; i < bytes; i++) {
        if ((analog ? ana_mem : dig_mem)[at + i] != src[i]) {
            fail(analog ? "analog data not at its rows act / 16 + b / 64 of the activation memory"
                        : "digital data not at act + b of the activation memory");
        }
    }
    diana_device_copy(analog, back, act, bytes, 1);
    for (i = 0; i < bytes; i++) {
        if (back[i] != src[i]) {
            fail("the copy back differs");
        }
    }
    diana_device_free(back);
    diana_device_free(src);
}

int main(int argc, char **argv)
{
    uint32_t i;
    (void)argc;
    (void)argv;
    for (i = 0; i < 40u; i++) {
        pool_at = 0;
        one_copy((int)(i & 1u));
    }
    rv32_puts("diana_hwme_check: ");
    rv32_put_u32(n_jobs);
    rv32_puts(" HWME jobs checked\n");
    return 0;
}
