/*
 * A test double, not the driver: pulp-nnx's NE16 calls as the GAP9 device
 * adapter (targets/gap9/device/gap9_device_units.c) uses them, with the
 * meaning pulp-nnx gives their arguments (pulp-platform/pulp-nnx
 * ne16/hal/ne16_task.c, inc/pulp_nnx_ne16.h; ../shared/HARDWARE.md "GAP9
 * NE16"), computed on the host at dispatch. So tests/tests/device_adapter.rs
 * can check that the adapter programs NE16 consistently with the driver's
 * contract (addresses moved back over the padding, byte strides, the
 * weight offset, 8- or 32-bit scales and 32-bit biases, the shift, ReLU, the
 * 2x2-strided mode), bit for bit against the emulation.
 *
 * The task's members are the stub's (tests/sdk-stubs/gap9/pulp-nnx): the
 * setters store their arguments there, dispatch reads them back.
 *
 * Addresses: the driver takes 32-bit addresses (GAP9's), the host has
 * 64-bit pointers. Every buffer NE16 reads or writes here (the emulation's
 * static L1 arena, the adapter's static scale and bias arrays) lies in this
 * program's data, so a 32-bit address is widened to the pointer nearest to
 * this file's own data with those low 32 bits (ASan would catch a miss).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pulp_nnx_ne16.h"

/* Where each setter's arguments go in the stub's task (our own use of its
 * fields; the real driver encodes registers instead). */
typedef struct {
    uint32_t kernel, depthwise, stride, out_bits, weight_offset_set;
    int32_t weight_offset;
    uint32_t shift, relu, norm, bias_on, scale_bytes;
    uint32_t w_in, k_in, h_in, h_in_stride, w_in_stride, h_out, w_out, k_out, h_out_stride, w_out_stride;
    uint32_t pt, pb, pl, pr, dims_set;
} double_cfg_t;

static double_cfg_t cfg_of[4];
static int n_tasks;

static double_cfg_t *cfg(ne16_task_t *t)
{
    return &cfg_of[t->id];
}

static void bad(const char *what)
{
    fprintf(stderr, "NE16 double: %s\n", what);
    abort();
}

static const ne16_dev_t double_dev;

static uint8_t *double_ptr(uint32_t a)
{
    const uintptr_t anchor = (uintptr_t)&double_dev;
    uintptr_t p = (anchor & ~(uintptr_t)0xffffffffu) | (uintptr_t)a;
    if (sizeof(uintptr_t) > 4u) {
        const uintptr_t half = (uintptr_t)1 << 31, span = half << 1;
        if (p > anchor && p - anchor > half) {
            p -= span;
        } else if (anchor > p && anchor - p > half) {
            p += span;
        }
    }
    return (uint8_t *)p;
}

const ne16_dev_t *ne16_pulp_get_dev(void)
{
    return &double_dev;
}

void ne16_nnx_init(const ne16_dev_t *dev, ne16_pulp_conf_t *conf)
{
    (void)dev;
    (void)conf;
}

void ne16_nnx_term(const ne16_dev_t *dev)
{
    (void)dev;
}

void ne16_task_init(ne16_task_t *task)
{
    memset(task, 0, sizeof *task);
    task->id = (uint8_t)(n_tasks++ % 4);
    memset(cfg(task), 0, sizeof(double_cfg_t));
}

void ne16_task_set_op_to_conv(ne16_task_t *task, const uint8_t kernel_shape, const uint8_t depthwise,
                              const uint8_t stride)
{
    if (!(kernel_shape == 1 || kernel_shape == 3) || (depthwise && kernel_shape != 3) || stride < 1 || stride > 2) {
        bad("set_op_to_conv: kernel 1 or 3 (depthwise 3), stride 1 or 2");
    }
    cfg(task)->kernel = kernel_shape;
    cfg(task)->depthwise = depthwise;
    cfg(task)->stride = stride;
}

void ne16_task_set_bits(ne16_task_t *task, const uint8_t input_bits, const uint8_t output_bits,
                        const uint8_t weight_bits)
{
    if (input_bits != 8 || weight_bits != 8 || !(output_bits == 8 || output_bits == 32)) {
        bad("set_bits: 8-bit inputs and weights, 8- or 32-bit outputs");
    }
    cfg(task)->out_bits = output_bits;
}

void ne16_task_set_norm_quant(ne16_task_t *task, ne16_quant_t quant, ne16_norm_t norm)
{
    if (quant.shift_amount > 31 || quant.flag_rounding != ne16TaskFlagFalse
        || (norm.mode != normMode8Bit && norm.mode != normMode32Bit) || norm.flag_shift != ne16TaskFlagFalse) {
        bad("set_norm_quant: a 5-bit layer shift, no rounding, 8- or 32-bit scales");
    }
    cfg(task)->norm = 1;
    /* HARDWARE.md: scales are read packed at their width, little-endian. */
    cfg(task)->scale_bytes = norm.mode == normMode32Bit ? 4u : 1u;
    cfg(task)->shift = quant.shift_amount;
    cfg(task)->relu = quant.function == quantFunctionRelu;
    cfg(task)->bias_on = norm.flag_bias == ne16TaskFlagTrue;
}

void ne16_task_set_weight_offset(ne16_task_t *task, ne16_weight_offset_mode_e mode, const int32_t weight_offset)
{
    if (mode != weightOffsetModeLayerWise) {
        bad("set_weight_offset: layer-wise mode");
    }
    cfg(task)->weight_offset = weight_offset;
    cfg(task)->weight_offset_set = 1;
}

/* pulp-nnx ne16_pad_addr: the input address moved back over the top and
 * left padding, as if the padded input started there. */
void ne16_task_set_addr_conv(ne16_task_t *task, uint32_t input_addr, uint32_t w_in, uint32_t w_in_stride,
                             uint8_t padding_top, uint8_t padding_left, uint32_t output_addr, uint32_t weights_addr)
{
    task->data.infeat_addr = input_addr - (padding_top * w_in + padding_left) * w_in_stride;
    task->data.outfeat_addr = output_addr;
    task->data.weights_addr = weights_addr;
}

void ne16_task_set_addr_norm_quant(ne16_task_t *task, uint32_t scale_addr, uint32_t shift_addr, uint32_t bias_addr)
{
    task->data.scale_addr = scale_addr;
    task->data.scale_shift_addr = shift_addr;
    task->data.scale_bias_addr = bias_addr;
}

void ne16_task_set_dims(ne16_task_t *task, const uint32_t w_in, const uint32_t k_in, const uint32_t h_in_stride,
                        const uint32_t w_in_stride, const uint32_t h_out, const uint32_t w_out, const uint32_t k_out,
                        const uint32_t h_out_stride, const uint32_t w_out_stride, const uint8_t padding_top,
                        const uint8_t padding_bottom, const uint8_t padding_left, const uint8_t padding_right)
{
    double_cfg_t *c = cfg(task);
    c->w_in = w_in; c->k_in = k_in; c->h_in_stride = h_in_stride; c->w_in_stride = w_in_stride;
    c->h_out = h_out; c->w_out = w_out; c->k_out = k_out; c->h_out_stride = h_out_stride;
    c->w_out_stride = w_out_stride; c->pt = padding_top; c->pb = padding_bottom; c->pl = padding_left;
    c->pr = padding_right;
    /* Stride 1: the input height follows from the output's. */
    c->h_in = h_out + c->kernel - 1 - padding_top - padding_bottom;
    c->dims_set = 1;
}

void ne16_task_set_dims_stride2x2(ne16_task_t *task, const uint32_t h_in, const uint32_t w_in, const uint32_t k_in,
                                  const uint32_t h_in_stride, const uint32_t w_in_stride, const uint32_t h_out,
                                  const uint32_t w_out, const uint32_t k_out, const uint32_t h_out_stride,
                                  const uint32_t w_out_stride, const uint8_t h_ker, const uint8_t w_ker,
                                  const uint8_t padding_top, const uint8_t padding_bottom, const uint8_t padding_left,
                                  const uint8_t padding_right)
{
    double_cfg_t *c = cfg(task);
    if (h_ker != c->kernel || w_ker != c->kernel) {
        bad("set_dims_stride2x2: kernel size differs from set_op_to_conv's");
    }
    ne16_task_set_dims(task, w_in, k_in, h_in_stride, w_in_stride, h_out, w_out, k_out, h_out_stride, w_out_stride,
                       padding_top, padding_bottom, padding_left, padding_right);
    c->h_in = h_in;
}

/* The unsigned weight (w + 128) of output channel k (depthwise: the
 * channel), input channel i, tap t, from HARDWARE.md's bit-plane layout. */
static uint32_t double_weight(const double_cfg_t *c, const uint8_t *w, uint32_t k, uint32_t i, uint32_t t)
{
    const uint32_t taps = c->kernel * c->kernel;
    const uint32_t ch = c->depthwise ? k : i;
    const uint32_t blk = ch / 16, in_blk = ch % 16;
    const uint32_t base = c->depthwise ? blk * 8 : (k * ((c->k_in + 15) / 16) + blk) * 8;
    uint32_t v = 0, b;
    for (b = 0; b < 8; b++) {
        const uint8_t byte = w[((base + b) * taps + t) * 2 + in_blk / 8];
        v |= (uint32_t)((byte >> (in_blk % 8)) & 1u) << b;
    }
    return v;
}

static void double_run(ne16_task_t *task)
{
    const double_cfg_t *c = cfg(task);
    const uint8_t *x = double_ptr(task->data.infeat_addr); /* the padded origin */
    const uint8_t *w = double_ptr(task->data.weights_addr);
    uint8_t *y = double_ptr(task->data.outfeat_addr);
    const uint8_t *scale = double_ptr(task->data.scale_addr);
    const uint8_t *bias = double_ptr(task->data.scale_bias_addr);
    uint32_t oy, ox, k, ky, kx, i;
    if (!c->dims_set || !c->weight_offset_set || c->kernel == 0 || c->out_bits == 0) {
        bad("dispatch before op, bits, weight offset and dims were set");
    }
    if ((c->out_bits == 8) != (c->norm != 0)) {
        bad("8-bit outputs need normalization and 32-bit ones none");
    }
    for (oy = 0; oy < c->h_out; oy++) {
        for (ox = 0; ox < c->w_out; ox++) {
            for (k = 0; k < c->k_out; k++) {
                uint32_t acc = 0, sum = 0;
                for (ky = 0; ky < c->kernel; ky++) {
                    const uint32_t py = oy * c->stride + ky; /* padded coordinates */
                    if (py < c->pt || py >= c->pt + c->h_in) {
                        continue; /* pad value 0 */
                    }
                    for (kx = 0; kx < c->kernel; kx++) {
                        const uint32_t px = ox * c->stride + kx;
                        const uint8_t *pix;
                        if (px < c->pl || px >= c->pl + c->w_in) {
                            continue;
                        }
                        pix = x + py * c->h_in_stride + px * c->w_in_stride;
                        if (c->depthwise) {
                            acc += (uint32_t)pix[k] * double_weight(c, w, k, 0, ky * c->kernel + kx);
                            sum += pix[k];
                        } else {
                            for (i = 0; i < c->k_in; i++) {
                                acc += (uint32_t)pix[i] * double_weight(c, w, k, i, ky * c->kernel + kx);
                                sum += pix[i];
                            }
                        }
                    }
                }
                acc += (uint32_t)c->weight_offset * sum;
                if (c->out_bits == 32) {
                    int32_t v = acc >= 0x80000000u ? -(int32_t)(~acc) - 1 : (int32_t)acc;
                    memcpy(y + oy * c->h_out_stride + ox * c->w_out_stride + k * 4, &v, 4);
                } else {
                    uint32_t b = 0u;
                    if (c->bias_on) {
                        memcpy(&b, bias + 4u * k, 4);
                    }
                    uint32_t s = 0u;
                    if (c->scale_bytes == 4u) {
                        memcpy(&s, scale + 4u * k, 4);
                    } else {
                        s = scale[k];
                    }
                    uint32_t t = acc * s + b;
                    int32_t v = t >= 0x80000000u ? -(int32_t)(~t) - 1 : (int32_t)t;
                    if (c->relu && v < 0) {
                        v = 0;
                    }
                    v = v >= 0 ? v >> c->shift : -1 - ((-1 - v) >> c->shift);
                    if (c->relu) {
                        v = v > 255 ? 255 : v;
                    } else {
                        v = v < -128 ? -128 : (v > 127 ? 127 : v);
                    }
                    y[oy * c->h_out_stride + ox * c->w_out_stride + k] = (uint8_t)v;
                }
            }
        }
    }
}

void ne16_nnx_dispatch_wait(const ne16_dev_t *dev)
{
    (void)dev;
}

int ne16_nnx_dispatch(const ne16_dev_t *dev, ne16_task_t *task)
{
    (void)dev;
    if (cfg(task)->stride != 1) {
        bad("a 2x2-strided task goes through ne16_nnx_dispatch_stride2x2");
    }
    double_run(task);
    return 0;
}

void ne16_nnx_dispatch_stride2x2(const ne16_dev_t *dev, ne16_task_t *task, const uint32_t w_in, const uint32_t k_in,
                                 const uint32_t h_out, const uint32_t w_out, const uint32_t k_out, const uint8_t h_ker,
                                 const uint8_t w_ker)
{
    const double_cfg_t *c = cfg(task);
    (void)dev;
    if (c->stride != 2 || w_in != c->w_in || k_in != c->k_in || h_out != c->h_out || w_out != c->w_out
        || k_out != c->k_out || h_ker != c->kernel || w_ker != c->kernel) {
        bad("dispatch_stride2x2: arguments differ from the task's");
    }
    if ((k_out * (c->out_bits / 8)) % 2 != 0) {
        bad("dispatch_stride2x2: output channels x bytes must be even");
    }
    double_run(task);
}

void ne16_nnx_resolve_wait(const ne16_dev_t *dev, ne16_task_t *task)
{
    (void)dev;
    (void)task;
}
