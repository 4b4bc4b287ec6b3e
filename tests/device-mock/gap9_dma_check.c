/*
 * A test double and its driver, not an SDK: checks the GAP9 device
 * adapter's DMA splitting (targets/gap9/device/gap9_device.c) on rv32
 * under qemu-user (32-bit addresses, as the PMSIS calls take them).
 *
 * The double's pi_cl_dma_cmd / _2d / _wait and pi_cl_ram_* record each
 * command and copy its bytes only when it is waited, and check what PMSIS
 * requires of a command: at most 65535 bytes, the local (L1) side inside
 * L1 and contiguous, the external side in L2, a 2-D size a multiple of
 * its line length; every command waited exactly once, nothing pending at
 * the end; at most 16 commands in flight over all channels (the cluster
 * DMA's transfer counters: each command holds one until its wait, and
 * the GAP9 HAL's TID field is 4 bits wide, its status mask 16 bits). The
 * driver issues random strided transfers (both directions, packed or
 * strided on either side, several per channel before a wait, on one
 * channel or on all three before their waits, rows beyond 64 KiB) through
 * gap9_dma_start / gap9_l3_dma_start and compares the destination with a
 * reference copy.
 *
 * Built with tools/rv32 (crt0.S, rv32_sys.c) and -include
 * gap9_dma_windows.h; exit status 0 when every check passes.
 */
#include <stddef.h>
#include <stdint.h>

#include "gap9_device.h"
#include "rv32_sys.h"

uint8_t mock_l1[MOCK_L1_BYTES];
uint8_t mock_l2[MOCK_L2_BYTES];
#define MOCK_RAM_BYTES (256u * 1024u)
static uint8_t mock_ram[MOCK_RAM_BYTES];
static uint8_t expect[MOCK_L2_BYTES];

static uint32_t n_cmds, n_pending;

static void fail(const char *what)
{
    rv32_puts("gap9_dma_check: ");
    rv32_puts(what);
    rv32_puts("\n");
    rv32_exit(1);
}

/* The adapter prints only on its failure path (gap9_device_fail, which
 * then spins): print the format and end the check there. */
int printf(const char *format, ...)
{
    fail(format);
    return 0;
}

/* ---- the cluster DMA double ---- */

#define MOCK_MAX 4096
/* The cluster DMA's transfer counters (TIDs): a command allocates one and
 * its wait frees it, so no more may be in flight at once. */
#define MOCK_COUNTERS 16u
typedef struct {
    const void *cmd;
    uint32_t ext, loc, size, stride, length;
    int dir, live;
} mock_cmd_t;
static mock_cmd_t mock_cmds[MOCK_MAX];

static int in_l1(uint32_t a, uint32_t n)
{
    const uint32_t b = (uint32_t)(uintptr_t)mock_l1;
    return a >= b && n <= MOCK_L1_BYTES && a - b <= MOCK_L1_BYTES - n;
}

static int in_l2(uint32_t a, uint32_t n)
{
    const uint32_t b = (uint32_t)(uintptr_t)mock_l2;
    return a >= b && n <= MOCK_L2_BYTES && a - b <= MOCK_L2_BYTES - n;
}

static void record(uint32_t ext, uint32_t loc, uint32_t size, uint32_t stride, uint32_t length, int dir,
                   const void *cmd)
{
    uint32_t i, lines, live;
    if (size == 0u || size > 65535u) {
        fail("a DMA command of 0 or more than 65535 bytes");
    }
    if (length == 0u || size % length != 0u || stride < length) {
        fail("a 2-D command whose size is not whole lines, or lines overlapping");
    }
    lines = size / length;
    if (!in_l1(loc, size)) {
        fail("a DMA command whose local side is not in L1");
    }
    if (!in_l2(ext, (lines - 1u) * stride + length)) {
        fail("a DMA command whose external side is not in L2");
    }
    for (i = 0; i < MOCK_MAX; i++) {
        if (mock_cmds[i].live && mock_cmds[i].cmd == cmd) {
            fail("a command structure reused before its wait");
        }
    }
    for (i = 0, live = 0; i < MOCK_MAX; i++) {
        live += (uint32_t)mock_cmds[i].live;
    }
    for (i = 0; i < MOCK_MAX && mock_cmds[i].live; i++) {
    }
    if (i == MOCK_MAX || live >= MOCK_COUNTERS) {
        fail("more commands in flight than the cluster DMA's 16 transfer counters");
    }
    mock_cmds[i].cmd = cmd;
    mock_cmds[i].ext = ext;
    mock_cmds[i].loc = loc;
    mock_cmds[i].size = size;
    mock_cmds[i].stride = stride;
    mock_cmds[i].length = length;
    mock_cmds[i].dir = dir;
    mock_cmds[i].live = 1;
    n_cmds++;
    n_pending++;
}

void pi_cl_dma_cmd(uint32_t ext, uint32_t loc, uint32_t size, pi_cl_dma_dir_e dir, pi_cl_dma_cmd_t *cmd)
{
    record(ext, loc, size, size, size, (int)dir, cmd);
}

void pi_cl_dma_cmd_2d(uint32_t ext, uint32_t loc, uint32_t size, uint32_t stride, uint32_t length,
                      pi_cl_dma_dir_e dir, pi_cl_dma_cmd_t *cmd)
{
    record(ext, loc, size, stride, length, (int)dir, cmd);
}

void pi_cl_dma_cmd_wait(pi_cl_dma_cmd_t *cmd)
{
    uint32_t i, r, b;
    for (i = 0; i < MOCK_MAX; i++) {
        mock_cmd_t *c = &mock_cmds[i];
        if (c->live && c->cmd == cmd) {
            for (r = 0; r < c->size / c->length; r++) {
                uint8_t *e = (uint8_t *)(uintptr_t)(c->ext + r * c->stride);
                uint8_t *l = (uint8_t *)(uintptr_t)(c->loc + r * c->length);
                for (b = 0; b < c->length; b++) {
                    if (c->dir == PI_CL_DMA_DIR_EXT2LOC) {
                        l[b] = e[b];
                    } else {
                        e[b] = l[b];
                    }
                }
            }
            c->live = 0;
            n_pending--;
            return;
        }
    }
    fail("a wait for a command not in flight");
}

/* ---- the external RAM double: RAM addresses index mock_ram ---- */

void pi_cl_ram_read_2d(struct pi_device *device, uint32_t ram, void *addr, uint32_t size, uint32_t stride,
                       uint32_t length, pi_cl_ram_req_t *req);

static void ram_copy(int write, uint32_t ram, void *addr, uint32_t size, uint32_t stride, uint32_t length,
                     pi_cl_ram_req_t *req)
{
    uint32_t r, b, lines;
    if (size == 0u || length == 0u || size % length != 0u || stride < length) {
        fail("a RAM request whose size is not whole lines");
    }
    lines = size / length;
    if (!in_l2((uint32_t)(uintptr_t)addr, size)) {
        fail("a RAM request whose chip side is not in L2");
    }
    if (ram >= MOCK_RAM_BYTES || (lines - 1u) * stride + length > MOCK_RAM_BYTES - ram) {
        fail("a RAM request outside the RAM");
    }
    /* Done at once, checked at the wait: req->done marks it pending. */
    for (r = 0; r < lines; r++) {
        for (b = 0; b < length; b++) {
            uint8_t *chip = (uint8_t *)addr + r * length + b;
            if (write) {
                mock_ram[ram + r * stride + b] = *chip;
            } else {
                *chip = mock_ram[ram + r * stride + b];
            }
        }
    }
    req->done = 1;
    req->ext2loc = (unsigned char)!write;
    n_cmds++;
    n_pending++;
}

void pi_cl_ram_read(struct pi_device *d, uint32_t ram, void *addr, uint32_t size, pi_cl_ram_req_t *req)
{
    (void)d;
    ram_copy(0, ram, addr, size, size, size, req);
}

void pi_cl_ram_write(struct pi_device *d, uint32_t ram, void *addr, uint32_t size, pi_cl_ram_req_t *req)
{
    (void)d;
    ram_copy(1, ram, addr, size, size, size, req);
}

/* The 2-D requests copy several lines in one request per bsp/ram.h; on
 * GAP9 silicon they do not: Deeploy's GAP9 L3 DMA
 * (pulp-platform/Deeploy Deeploy/Targets/GAP9/DMA/L3Dma.py) reports that
 * the OctaSPI RAM's 2-D copy delivers garbage on hardware for more than
 * one line (right in GVSoC) and splits every 2-D transfer into 1-D line
 * copies. So the double refuses a 2-D request of more than one line. */
void pi_cl_ram_read_2d(struct pi_device *d, uint32_t ram, void *addr, uint32_t size, uint32_t stride,
                       uint32_t length, pi_cl_ram_req_t *req)
{
    (void)d;
    if (size > length) {
        fail("a multi-line 2-D RAM request (broken on GAP9 silicon)");
    }
    ram_copy(0, ram, addr, size, stride, length, req);
}

void pi_cl_ram_write_2d(struct pi_device *d, uint32_t ram, void *addr, uint32_t size, uint32_t stride,
                        uint32_t length, pi_cl_ram_req_t *req)
{
    (void)d;
    if (size > length) {
        fail("a multi-line 2-D RAM request (broken on GAP9 silicon)");
    }
    ram_copy(1, ram, addr, size, stride, length, req);
}

static void ram_wait(pi_cl_ram_req_t *req, int write)
{
    if (req->done != 1 || req->ext2loc != (unsigned char)!write) {
        fail("a RAM wait for a request not in flight, or of the other direction");
    }
    req->done = 0;
    n_pending--;
}

void pi_cl_ram_read_wait(pi_cl_ram_req_t *req)
{
    ram_wait(req, 0);
}

void pi_cl_ram_write_wait(pi_cl_ram_req_t *req)
{
    ram_wait(req, 1);
}

/* ---- the driver ---- */

static uint32_t seed = 0x2545f491u;

static uint32_t rnd(uint32_t n)
{
    seed = seed * 1664525u + 1013904223u;
    return (seed >> 8) % n;
}

typedef struct {
    uint32_t run, rows, planes, rs, ps; /* one side's geometry */
} side_t;

/* Rows of `run` bytes, `rs` apart; planes `ps` apart: packed or strided. */
static side_t side(uint32_t run, uint32_t rows, uint32_t planes, int packed)
{
    side_t s;
    s.run = run;
    s.rows = rows;
    s.planes = planes;
    s.rs = packed ? run : run + rnd(64);
    s.ps = packed ? s.rs * rows : s.rs * rows + rnd(256);
    return s;
}

static uint32_t extent(const side_t *s)
{
    return (s->planes - 1u) * s->ps + (s->rows - 1u) * s->rs + s->run;
}

static void fill(uint8_t *p, uint32_t n)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        p[i] = (uint8_t)rnd(256);
    }
}

static void copy_box(uint8_t *dst, const side_t *d, const uint8_t *src, const side_t *s)
{
    uint32_t p, r, b;
    for (p = 0; p < s->planes; p++) {
        for (r = 0; r < s->rows; r++) {
            for (b = 0; b < s->run; b++) {
                dst[p * d->ps + r * d->rs + b] = src[p * s->ps + r * s->rs + b];
            }
        }
    }
}

static void compare(const uint8_t *got, const uint8_t *want, uint32_t n, const char *what)
{
    uint32_t i;
    for (i = 0; i < n; i++) {
        if (got[i] != want[i]) {
            fail(what);
        }
    }
}

/* One batch of transfers between L2 and L1: on one channel, then its wait;
 * or (`spread`) each on a random channel, then the waits of all three. */
static void l2_l1_batch(int spread)
{
    const int channel = (int)rnd(3);
    int chan[12];
    const uint32_t batch = 1u + rnd(12); /* beyond the adapter's 8-deep queue */
    uint32_t k, l1_at = 0, l2_at = 0;
    side_t d[12], s[12];
    uint8_t *dst[12], *src[12];
    fill(mock_l1, MOCK_L1_BYTES);
    fill(mock_l2, MOCK_L2_BYTES);
    for (k = 0; k < batch; k++) {
        const int to_l1 = (int)rnd(2);
        const int big = rnd(16) == 0;
        const uint32_t run = big ? 65536u + rnd(4000) : 1u + rnd(300);
        const uint32_t rows = big ? 1u : 1u + rnd(24);
        const uint32_t planes = big ? 1u : 1u + rnd(3);
        side_t l1 = side(run, rows, planes, rnd(3) != 0);
        side_t l2 = side(run, rows, planes, rnd(4) == 0);
        uint8_t *l1p, *l2p;
        l1_at = (l1_at + 3u) & ~3u;
        l2_at = (l2_at + 3u) & ~3u;
        if (l1_at + extent(&l1) > MOCK_L1_BYTES || l2_at + extent(&l2) > MOCK_L2_BYTES) {
            break;
        }
        l1p = mock_l1 + l1_at;
        l2p = mock_l2 + l2_at;
        l1_at += extent(&l1);
        l2_at += extent(&l2);
        d[k] = to_l1 ? l1 : l2;
        s[k] = to_l1 ? l2 : l1;
        dst[k] = to_l1 ? l1p : l2p;
        src[k] = to_l1 ? l2p : l1p;
        chan[k] = spread ? (int)rnd(3) : channel;
    }
    {
        const uint32_t n = k;
        /* Expected images of both memories after the batch. */
        static uint8_t want_l1[MOCK_L1_BYTES];
        uint32_t i;
        for (i = 0; i < MOCK_L1_BYTES; i++) {
            want_l1[i] = mock_l1[i];
        }
        for (i = 0; i < MOCK_L2_BYTES; i++) {
            expect[i] = mock_l2[i];
        }
        for (k = 0; k < n; k++) {
            uint8_t *w = gap9_in_l1(dst[k]) ? want_l1 + (dst[k] - mock_l1) : expect + (dst[k] - mock_l2);
            copy_box(w, &d[k], src[k], &s[k]);
        }
        for (k = 0; k < n; k++) {
            gap9_dma_start(dst[k], src[k], s[k].run, s[k].rows, d[k].rs, s[k].rs, s[k].planes, d[k].ps, s[k].ps,
                           chan[k]);
        }
        if (spread) {
            gap9_dma_wait(0);
            gap9_dma_wait(1);
            gap9_dma_wait(2);
        } else {
            gap9_dma_wait(channel);
        }
        if (n_pending != 0u) {
            fail("commands still pending after the wait of their channel");
        }
        compare(mock_l1, want_l1, MOCK_L1_BYTES, "L1 differs from the reference after the wait");
        compare(mock_l2, expect, MOCK_L2_BYTES, "L2 differs from the reference after the wait");
    }
}

/* One transfer between the external RAM and L2, then its wait. */
static void l3_l2_one(void)
{
    const int channel = (int)rnd(3);
    const int to_l2 = (int)rnd(2);
    const uint32_t run = 1u + rnd(500), rows = 1u + rnd(30), planes = 1u + rnd(3);
    side_t chip = side(run, rows, planes, rnd(2) != 0);
    side_t ram = side(run, rows, planes, rnd(3) == 0);
    static uint8_t want_ram[MOCK_RAM_BYTES];
    uint32_t i, ram_at = rnd(1024), chip_at = rnd(1024);
    uint8_t *chip_p = mock_l2 + chip_at;
    fill(mock_l2, MOCK_L2_BYTES);
    fill(mock_ram, MOCK_RAM_BYTES);
    for (i = 0; i < MOCK_L2_BYTES; i++) {
        expect[i] = mock_l2[i];
    }
    for (i = 0; i < MOCK_RAM_BYTES; i++) {
        want_ram[i] = mock_ram[i];
    }
    if (to_l2) {
        copy_box(expect + chip_at, &chip, mock_ram + ram_at, &ram);
        gap9_l3_dma_start(chip_p, (const void *)(uintptr_t)ram_at, run, rows, chip.rs, ram.rs, planes, chip.ps,
                          ram.ps, channel);
    } else {
        copy_box(want_ram + ram_at, &ram, chip_p, &chip);
        gap9_l3_dma_start((void *)(uintptr_t)ram_at, chip_p, run, rows, ram.rs, chip.rs, planes, ram.ps, chip.ps,
                          channel);
    }
    gap9_l3_dma_wait(channel);
    if (n_pending != 0u) {
        fail("RAM requests still pending after the wait of their channel");
    }
    compare(mock_l2, expect, MOCK_L2_BYTES, "L2 differs from the reference after an L3 transfer");
    compare(mock_ram, want_ram, MOCK_RAM_BYTES, "the RAM differs from the reference after an L3 transfer");
}

int main(int argc, char **argv)
{
    uint32_t i;
    (void)argc;
    (void)argv;
    for (i = 0; i < 60u; i++) {
        l2_l1_batch(0);
    }
    for (i = 0; i < 60u; i++) {
        l2_l1_batch(1);
    }
    for (i = 0; i < 60u; i++) {
        l3_l2_one();
    }
    rv32_puts("gap9_dma_check: ");
    rv32_put_u32(n_cmds);
    rv32_puts(" commands checked\n");
    return 0;
}
