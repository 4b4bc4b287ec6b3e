/*
 * DIANA device adapter: the application entry for a generated model on
 * DIANA's PULP runtime (the generated main.c reads files; a DIANA has
 * none). Built with the model's names on the command line, as
 * tools/rv32/main_rv32.c:
 *   -DMATCH_MODEL=name -DMATCH_MODEL_UPPER=NAME -DMATCH_MODEL_HEADER='"name.h"'
 * Up to 4 inputs and 4 outputs, in L2. It runs the network once on the
 * RISC-V core (the kernels drive the accelerators), times it with the
 * core's cycle counter and prints the cycles and a checksum of each
 * output. The inputs are zero here: an application fills in_0.. first.
 *
 * UNTESTED ON SILICON (README.md).
 */
#include <stdint.h>

#include "diana_device.h"
#include MATCH_MODEL_HEADER

#define DNM_CAT_(a, b) a##b
#define DNM_CAT(a, b) DNM_CAT_(a, b)
#define M(suffix) DNM_CAT(MATCH_MODEL_UPPER, suffix)
#define DNM_RUN DNM_CAT(MATCH_MODEL, _run)
#define DNM_STR_(x) #x
#define DNM_STR(x) DNM_STR_(x)

#define NUM_IN M(_NUM_INPUTS)
#define NUM_OUT M(_NUM_OUTPUTS)

#if NUM_IN < 1 || NUM_IN > 4 || NUM_OUT < 1 || NUM_OUT > 4
#error "diana_main.c handles 1 to 4 inputs and 1 to 4 outputs"
#endif

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

static const void *const outputs[NUM_OUT] = {OUT_ARGS};
static const uint32_t output_bytes[NUM_OUT] = {
    sizeof(out_0),
#if NUM_OUT >= 2
    sizeof(out_1),
#endif
#if NUM_OUT >= 3
    sizeof(out_2),
#endif
#if NUM_OUT >= 4
    sizeof(out_3),
#endif
};

/* FNV-1a over an output's bytes: a printed fingerprint to compare with the
 * emulation's output for the same input. */
static uint32_t dnm_fnv(const void *p, uint32_t bytes)
{
    const uint8_t *b = (const uint8_t *)p;
    uint32_t h = 2166136261u, i;
    for (i = 0; i < bytes; i++) {
        h = (h ^ b[i]) * 16777619u;
    }
    return h;
}

int main(void)
{
    int status, i;
    uint32_t cycles;
    diana_init();
    diana_timer_start();
    status = DNM_RUN(IN_ARGS, OUT_ARGS);
    diana_sync();
    cycles = diana_timer_stop();
    printf("%s: status %d, %u cycles\n", DNM_STR(MATCH_MODEL), status, (unsigned)cycles);
    for (i = 0; i < NUM_OUT; i++) {
        printf("output %d: %u bytes, fnv1a %08x\n", i, (unsigned)output_bytes[i],
               (unsigned)dnm_fnv(outputs[i], output_bytes[i]));
    }
    diana_deinit();
    return status;
}
