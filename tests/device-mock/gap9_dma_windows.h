/*
 * Forced in front of the GAP9 adapter (-include) by gap9_dma_check.c's
 * build: the memory windows of the test double, where gap9_device.h would
 * put GAP9's L1 and L2.
 */
#ifndef GAP9_DMA_WINDOWS_H
#define GAP9_DMA_WINDOWS_H

#include <stdint.h>

#define MOCK_L1_BYTES (256u * 1024u)
#define MOCK_L2_BYTES (512u * 1024u)
extern uint8_t mock_l1[MOCK_L1_BYTES];
extern uint8_t mock_l2[MOCK_L2_BYTES];

#define GAP9_L1_BASE ((uint32_t)(uintptr_t)mock_l1)
#define GAP9_L1_SIZE MOCK_L1_BYTES
#define GAP9_L2_BASE ((uint32_t)(uintptr_t)mock_l2)
#define GAP9_L2_SIZE MOCK_L2_BYTES

#endif
