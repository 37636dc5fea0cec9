/* aarch64 (AAPCS64) context switch: x19-x30 and d8-d15 are callee-saved, plus
 * FPCR. Saved context, from sp up (176 bytes, 16-aligned):
 *   0: x19 x20  16: x21 x22  32: x23 x24  48: x25 x26  64: x27 x28
 *   80: x29 x30  96: d8 d9  112: d10 d11  128: d12 d13  144: d14 d15  160: fpcr
 * A new context starts in er__ctx_start with entry in x19 and its argument in
 * x20 (x30, the link register, points at er__ctx_start). */
    .text
    .globl er__ctx_switch
    .hidden er__ctx_switch
    .type er__ctx_switch,%function
    .p2align 4
er__ctx_switch:
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mrs x9, fpcr
    str x9, [sp, #160]
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    ldr x9, [sp, #160]
    msr fpcr, x9
    add sp, sp, #176
    ret
    .size er__ctx_switch,.-er__ctx_switch

    .globl er__ctx_start
    .hidden er__ctx_start
    .type er__ctx_start,%function
    .p2align 4
er__ctx_start:
    mov x0, x20
    blr x19
    brk #0
    .size er__ctx_start,.-er__ctx_start

/* void er__ctx_make(er__ctx_t *ctx x0, char *lo x1, size_t size x2,
 *                   void (*entry)(void *) x3, void *arg x4) */
    .globl er__ctx_make
    .hidden er__ctx_make
    .type er__ctx_make,%function
    .p2align 4
er__ctx_make:
    add x9, x1, x2
    and x9, x9, #~15
    sub x9, x9, #176
    mov x10, #0
    mov x11, #0
.Lzero:
    str x10, [x9, x11]
    add x11, x11, #8
    cmp x11, #176
    b.lt .Lzero
    stp x3, x4, [x9, #0]        /* x19: entry, x20: arg */
    adr x10, er__ctx_start
    str x10, [x9, #88]          /* x30 */
    mrs x10, fpcr
    str x10, [x9, #160]
    str x9, [x0]
    ret
    .size er__ctx_make,.-er__ctx_make

    .section .note.GNU-stack,"",%progbits
