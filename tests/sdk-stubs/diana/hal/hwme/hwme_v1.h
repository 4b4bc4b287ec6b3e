/*
 * Stub of DIANA's PULP runtime HAL for the HWME (the two accelerators'
 * shared wrapper), hal/hwme/hwme_v1.h, ours, declarations only.
 *
 * Source: the DIANA SoC's PULP runtime as used by DORY's Diana backend
 * (pulp-platform/dory Hardware_targets/Diana: its dory.c calls these) and
 * by KULeuven-MICAS/htvm's DIANA runtime; in the runtime they are
 * `static inline void f(unsigned int value)` register writes
 * (HWME_DIG_WRITE / HWME_ANA_WRITE), here plain prototypes.
 *
 * Memory copies between L2 and an accelerator's activation memory:
 *   op 2 = L2 -> L1, op 1 = L1 -> L2 (single bank; 3 / 4 multi-bank);
 *   addr = L2 byte address; l1addr = activation-memory address in 16-byte
 *   words (multi-bank: one per row of banks x 16 bytes, DORY's analog
 *   path); n = length in 4-byte words; then trigger.
 */
#ifndef MATCH_STUB_HAL_HWME_V1_H
#define MATCH_STUB_HAL_HWME_V1_H

/* digital accelerator */
void hwme_memcpy_op(unsigned int value);
void hwme_memcpy_addr_set(unsigned int value);
void hwme_l1addr_set(unsigned int value);
void hwme_memcpy_n_set(unsigned int value);
void hwme_trigger_job(void);
int hwme_acquire_job(void);
unsigned int hwme_get_status(void);
void hwme_soft_clear(void);

/* analog accelerator */
void hwme_ana_memcpy_op(unsigned int value);
void hwme_ana_memcpy_addr_set(unsigned int value);
void hwme_ana_l1addr_set(unsigned int value);
void hwme_ana_memcpy_n_set(unsigned int value);
/* multi-bank copies (ops 3 / 4): banks, and 16-byte rows per bank */
void hwme_ana_memcpy_bank_length_set(unsigned int value);
void hwme_ana_memcpy_row_length_set(unsigned int value);
void hwme_ana_trigger_job(void);
int hwme_ana_acquire_job(void);
unsigned int hwme_ana_get_status(void);
void hwme_ana_soft_clear(void);

/* clock/event enable of both accelerators (SoC event unit register) */
void plp_hwme_enable(void);
void plp_hwme_disable(void);

#endif /* MATCH_STUB_HAL_HWME_V1_H */
