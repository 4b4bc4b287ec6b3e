/* main for generated models on rv32 under qemu-user: the generated
 * main.c's contract (`MODEL IN_0.bin .. OUT_0.bin .. [more sets]`, raw
 * little-endian tensor files in model order, several sets run in turn)
 * without stdio: file I/O through rv32_sys.
 *
 * Built with the model's prefix and header given on the command line:
 *   -DMATCH_MODEL=ad01_int8 -DMATCH_MODEL_UPPER=AD01_INT8
 *   -DMATCH_MODEL_HEADER='"ad01_int8.h"'
 * Optionally -DMATCH_INIT=host_init -DMATCH_DEINIT=host_deinit and
 * -DMATCH_API_HEADER='"host_platform.h"' (the target's api init/deinit).
 * Up to 4 inputs and 4 outputs. The target is little-endian like the
 * files, so tensors are read and written as their bytes. After the run it
 * prints the stack high-water mark to stderr. */
#include <stddef.h>
#include <stdint.h>

#include "rv32_sys.h"
#include MATCH_MODEL_HEADER
#ifdef MATCH_API_HEADER
#include MATCH_API_HEADER
#endif

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "main_rv32.c reads tensor files as raw bytes: little-endian targets only"
#endif

#define RV32_CAT_(a, b) a##b
#define RV32_CAT(a, b) RV32_CAT_(a, b)
#define M(suffix) RV32_CAT(MATCH_MODEL_UPPER, suffix)

#define NUM_IN M(_NUM_INPUTS)
#define NUM_OUT M(_NUM_OUTPUTS)

#if NUM_IN < 1 || NUM_IN > 4 || NUM_OUT < 1 || NUM_OUT > 4
#error "main_rv32.c handles 1 to 4 inputs and 1 to 4 outputs"
#endif

/* Buffers (word-aligned: any tensor type), their sizes, argument lists. */
static M(_INPUT_0_TYPE) in_0[M(_INPUT_0_ELEMENTS)];
#define IN_ARGS in_0
#if NUM_IN >= 2
static M(_INPUT_1_TYPE) in_1[M(_INPUT_1_ELEMENTS)];
#undef IN_ARGS
#define IN_ARGS in_0, in_1
#endif
#if NUM_IN >= 3
static M(_INPUT_2_TYPE) in_2[M(_INPUT_2_ELEMENTS)];
#undef IN_ARGS
#define IN_ARGS in_0, in_1, in_2
#endif
#if NUM_IN >= 4
static M(_INPUT_3_TYPE) in_3[M(_INPUT_3_ELEMENTS)];
#undef IN_ARGS
#define IN_ARGS in_0, in_1, in_2, in_3
#endif

static M(_OUTPUT_0_TYPE) out_0[M(_OUTPUT_0_ELEMENTS)];
#define OUT_ARGS out_0
#if NUM_OUT >= 2
static M(_OUTPUT_1_TYPE) out_1[M(_OUTPUT_1_ELEMENTS)];
#undef OUT_ARGS
#define OUT_ARGS out_0, out_1
#endif
#if NUM_OUT >= 3
static M(_OUTPUT_2_TYPE) out_2[M(_OUTPUT_2_ELEMENTS)];
#undef OUT_ARGS
#define OUT_ARGS out_0, out_1, out_2
#endif
#if NUM_OUT >= 4
static M(_OUTPUT_3_TYPE) out_3[M(_OUTPUT_3_ELEMENTS)];
#undef OUT_ARGS
#define OUT_ARGS out_0, out_1, out_2, out_3
#endif

struct tensor {
    void *data;
    size_t bytes;
};

static const struct tensor inputs[NUM_IN] = {
    {in_0, M(_INPUT_0_BYTES)},
#if NUM_IN >= 2
    {in_1, M(_INPUT_1_BYTES)},
#endif
#if NUM_IN >= 3
    {in_2, M(_INPUT_2_BYTES)},
#endif
#if NUM_IN >= 4
    {in_3, M(_INPUT_3_BYTES)},
#endif
};

static const struct tensor outputs[NUM_OUT] = {
    {out_0, M(_OUTPUT_0_BYTES)},
#if NUM_OUT >= 2
    {out_1, M(_OUTPUT_1_BYTES)},
#endif
#if NUM_OUT >= 3
    {out_2, M(_OUTPUT_2_BYTES)},
#endif
#if NUM_OUT >= 4
    {out_3, M(_OUTPUT_3_BYTES)},
#endif
};

int main(int argc, char **argv)
{
    int set, sets, i;
    if (argc < 1 + NUM_IN + NUM_OUT || (argc - 1) % (NUM_IN + NUM_OUT) != 0) {
        rv32_puts("usage: ");
        rv32_puts(argc > 0 ? argv[0] : "model");
        rv32_puts(" IN.bin... OUT.bin... (");
        rv32_put_u32(NUM_IN);
        rv32_puts(" inputs, ");
        rv32_put_u32(NUM_OUT);
        rv32_puts(" outputs per set)\n");
        return 2;
    }
    sets = (argc - 1) / (NUM_IN + NUM_OUT);
#ifdef MATCH_INIT
    MATCH_INIT();
#endif
    for (set = 0; set < sets; set++) {
        char **arg = argv + 1 + set * (NUM_IN + NUM_OUT);
        for (i = 0; i < NUM_IN; i++) {
            if (rv32_read_file(arg[i], inputs[i].data, inputs[i].bytes) != 0) {
                return 1;
            }
        }
        if (RV32_CAT(MATCH_MODEL, _run)(IN_ARGS, OUT_ARGS) != 0) {
            rv32_puts("model run failed\n");
            return 1;
        }
        for (i = 0; i < NUM_OUT; i++) {
            if (rv32_write_file(arg[NUM_IN + i], outputs[i].data, outputs[i].bytes) != 0) {
                return 1;
            }
        }
    }
#ifdef MATCH_DEINIT
    MATCH_DEINIT();
#endif
    rv32_puts("stack high-water ");
    rv32_put_u32(rv32_stack_high_water());
    rv32_puts(" bytes of ");
    rv32_put_u32(rv32_stack_size());
    rv32_puts("\n");
    return 0;
}
