/* Toolchain self-test for the rv32 check (tests/tests/rv32.rs): the
 * integer arithmetic generated kernels rely on (int64 products and
 * divisions from libgcc, arithmetic shifts, TFLite's rounding helpers),
 * file I/O through rv32_sys, and a struct copy (a memcpy call).
 *
 *   selftest IN.bin OUT.bin
 *
 * IN is SELFTEST_N int8 values; OUT is 2 * SELFTEST_N int32 values,
 * little-endian: per input, the requantized value and an int64 remainder.
 * The Rust test computes the same numbers. */
#include <stddef.h>
#include <stdint.h>

#include "rv32_sys.h"

#define SELFTEST_N 256

static int32_t srdhm(int32_t a, int32_t b)
{
    int overflow = a == b && a == INT32_MIN;
    int64_t ab = (int64_t)a * (int64_t)b;
    int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    int32_t r = (int32_t)((ab + nudge) / ((int64_t)1 << 31));
    return overflow ? INT32_MAX : r;
}

static int32_t rounding_divide_by_pot(int32_t x, int e)
{
    int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
    int32_t rem = x & mask;
    int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> e) + (rem > threshold ? 1 : 0);
}

struct state {
    int32_t words[24];
};

static int8_t input[SELFTEST_N];
static uint8_t output[8 * SELFTEST_N];
static struct state saved;

static void put_le32(uint8_t *p, int32_t v)
{
    uint32_t u = (uint32_t)v;
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

int main(int argc, char **argv)
{
    struct state s;
    int i;
    if (argc != 3) {
        rv32_puts("usage: selftest IN.bin OUT.bin\n");
        return 2;
    }
    if (rv32_read_file(argv[1], input, sizeof input) != 0) {
        return 1;
    }
    s = saved;
    for (i = 0; i < SELFTEST_N; i++) {
        int32_t x = (int32_t)input[i] * 1000003 + i * 7919 - 500000;
        int64_t sq = (int64_t)x * (int64_t)(x - 3);
        int32_t q = rounding_divide_by_pot(srdhm(x, 1518500250), i % 8);
        int32_t r = (int32_t)((sq / 12345) % 1000000007);
        s.words[i % 24] += q;
        put_le32(&output[8 * i], q + s.words[(i + 5) % 24] % 3);
        put_le32(&output[8 * i + 4], r);
    }
    saved = s;
    if (rv32_write_file(argv[2], output, sizeof output) != 0) {
        return 1;
    }
    rv32_puts("selftest: stack high-water ");
    rv32_put_u32(rv32_stack_high_water());
    rv32_puts(" bytes\n");
    return 0;
}
