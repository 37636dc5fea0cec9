/* x86-64 SysV context switch: push the callee-saved registers and the x87 and
 * SSE control words on the old stack, store its pointer, load the new stack's
 * pointer and pop the same in reverse. Layout of a saved context, from sp up:
 *   0: x87 control word   8: MXCSR   16: r15 r14 r13 r12 rbx rbp   64: return address
 * er__ctx_make (below) writes that frame for a new stack so that the first
 * switch "returns" into er__ctx_start with entry in r12 and its argument in r13. */
    .text
    .globl er__ctx_switch
    .hidden er__ctx_switch
    .type er__ctx_switch,@function
    .p2align 4
er__ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $16, %rsp
    fnstcw (%rsp)
    stmxcsr 8(%rsp)
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    fldcw (%rsp)
    ldmxcsr 8(%rsp)
    addq $16, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    /* Not `ret`: the return address belongs to another call site, so `ret`
     * would miss the CPU's return-stack prediction on every switch. An
     * indirect jump is predicted by target instead (halves the round trip). */
    popq %rcx
    jmpq *%rcx
    .cfi_endproc
    .size er__ctx_switch,.-er__ctx_switch

    .globl er__ctx_start
    .hidden er__ctx_start
    .type er__ctx_start,@function
    .p2align 4
er__ctx_start:
    .cfi_startproc
    .cfi_undefined rip
    movq %r13, %rdi
    callq *%r12
    ud2
    .cfi_endproc
    .size er__ctx_start,.-er__ctx_start

    .globl er__ctx_make
    .hidden er__ctx_make
    .type er__ctx_make,@function
    .p2align 4
/* void er__ctx_make(er__ctx_t *ctx rdi, char *lo rsi, size_t size rdx,
 *                   void (*entry)(void *) rcx, void *arg r8) */
er__ctx_make:
    .cfi_startproc
    leaq (%rsi,%rdx), %rax      /* top of the stack */
    andq $-16, %rax
    subq $16, %rax              /* rsp after the first ret: 16-byte aligned */
    subq $72, %rax              /* the saved frame below it */
    movq $0x037f, 0(%rax)       /* default x87 control word */
    movq $0x1f80, 8(%rax)       /* default MXCSR */
    movq $0, 16(%rax)           /* r15 */
    movq $0, 24(%rax)           /* r14 */
    movq %r8, 32(%rax)          /* r13: arg */
    movq %rcx, 40(%rax)         /* r12: entry */
    movq $0, 48(%rax)           /* rbx */
    movq $0, 56(%rax)           /* rbp: ends frame-pointer walks */
    leaq er__ctx_start(%rip), %r9
    movq %r9, 64(%rax)          /* return address */
    movq %rax, (%rdi)
    ret
    .cfi_endproc
    .size er__ctx_make,.-er__ctx_make

    .section .note.GNU-stack,"",@progbits
