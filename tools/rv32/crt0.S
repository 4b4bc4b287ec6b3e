/* Start file for rv32imc (ilp32) freestanding programs run under
 * qemu-user (qemu-riscv32): no libc, no crt files from the toolchain.
 *
 * Like a microcontroller's reset handler it zeroes .bss and switches to a
 * stack of its own (RV32_STACK_SIZE bytes in .bss, painted with a pattern
 * so that rv32_stack_high_water() can tell how deep main went), then calls
 * main(argc, argv) and exits with main's return value through the Linux
 * exit_group system call (93/94 are asm-generic numbers; qemu-user runs
 * them on the host). .data needs no copy: qemu-user loads every segment at
 * its link address (VMA == LMA in rv32.ld).
 *
 * Entry state under qemu-user (Linux ELF ABI): 0(sp) = argc,
 * 4(sp) = argv[0], ...
 */

#ifndef RV32_STACK_SIZE
#define RV32_STACK_SIZE 65536
#endif

#define RV32_STACK_PAINT 0x5A5A5A5A

    .section .text.start, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    .option push
    .option norelax
    la      gp, __global_pointer$
    .option pop

    /* argc, argv from the loader's stack: kept in callee-saved s0, s1. */
    lw      s0, 0(sp)
    addi    s1, sp, 4

    /* Zero .bss (word aligned by the default linker script's layout of
     * our objects; byte loop for the tail to be safe). */
    la      t0, __bss_start
    la      t1, _end
1:  bgeu    t0, t1, 2f
    sb      zero, 0(t0)
    addi    t0, t0, 1
    j       1b
2:
    /* Paint our stack, then switch to it. */
    la      t0, rv32_stack_bottom
    la      t1, rv32_stack_top
    li      t2, RV32_STACK_PAINT
3:  bgeu    t0, t1, 4f
    sw      t2, 0(t0)
    addi    t0, t0, 4
    j       3b
4:
    la      sp, rv32_stack_top

    mv      a0, s0
    mv      a1, s1
    call    main

    /* exit_group(main's return value) */
    li      a7, 94
    ecall
    /* not reached */
5:  j       5b
    .size _start, . - _start

    .section .bss.rv32_stack, "aw", @nobits
    .balign 16
    .globl rv32_stack_bottom
rv32_stack_bottom:
    .space  RV32_STACK_SIZE
    .globl rv32_stack_top
rv32_stack_top:
