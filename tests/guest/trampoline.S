/* Application processor start-up for smp.c.
 *
 * trampoline_start..trampoline_end is copied by the BSP to TRAMPOLINE_BASE
 * (a page below 1 MiB) and the APs start there in real mode after INIT and
 * SIPI with vector TRAMPOLINE_BASE >> 12 (CS = vector << 8, IP = 0). The
 * trampoline loads its own GDT, enters 32-bit protected mode and jumps to
 * ap_entry32, which runs at its linked address in the payload: it takes a
 * ticket (its stack slot), sets up that stack and calls ap_main(). */
#define TRAMPOLINE_BASE 0x8000
#define AP_STACK_SIZE 256
#define AP_MAX 256
#define T(sym) (TRAMPOLINE_BASE + (sym) - trampoline_start)

	.section .rodata.trampoline, "a"
	.code16
	.globl trampoline_start, trampoline_end
trampoline_start:
	cli
	xorw %ax, %ax
	movw %ax, %ds
	lgdtl T(tramp_gdtr)
	movl %cr0, %eax
	orl $1, %eax                    /* PE */
	movl %eax, %cr0
	ljmpl $0x08, $ap_entry32        /* a 32-bit far jump: flat code segment */

	.balign 8
tramp_gdt:
	.quad 0
	.quad 0x00CF9B000000FFFF        /* 0x08: code, 32-bit, flat */
	.quad 0x00CF93000000FFFF        /* 0x10: data, flat */
tramp_gdtr:
	.word tramp_gdtr - tramp_gdt - 1
	.long T(tramp_gdt)
trampoline_end:

	.text
	.code32
ap_entry32:
	movw $0x10, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	movw %ax, %fs
	movw %ax, %gs
	movl $1, %eax
	lock xaddl %eax, ap_ticket      /* eax = this AP's stack slot */
	cmpl $AP_MAX, %eax
	jae 2f                          /* no slot left: never check in */
	incl %eax
	imull $AP_STACK_SIZE, %eax, %esp
	addl $ap_stacks, %esp
	call ap_main
2:	cli
	hlt
	jmp 2b

	.data
	.balign 4
ap_ticket:
	.long 0

	.bss
	.balign 16
ap_stacks:
	.skip AP_STACK_SIZE * AP_MAX

	.section .note.GNU-stack, "", @progbits
