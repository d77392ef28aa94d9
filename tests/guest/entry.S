/* 32-bit protected-mode entry (PVH): ebx holds the hvm_start_info address. */
	.code32
	.section .text.entry, "ax"
	.globl _start
_start:
	cli
	movl $stack_top, %esp
	pushl %ebx
	call payload_main
1:	hlt
	jmp 1b

	.section .bss
	.balign 16
stack:
	.skip 8192
stack_top:

	.section .note.GNU-stack, "", @progbits
