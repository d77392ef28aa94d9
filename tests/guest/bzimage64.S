/* A file laid out like a bzImage, to prove the 64-bit Linux boot protocol
 * (Documentation/arch/x86/boot.rst) end to end: the real-mode setup area
 * (the boot sector and SETUP_SECTS sectors) with the setup header at 0x1f1,
 * then the protected-mode part, which the boot loader puts at 1 MiB and
 * enters at +0x200 in long mode with rsi = the zero page. bzimage64.c checks
 * the zero page; bzimage64.ld places the parts and computes the sizes the
 * header gives (syssize, init_size, kernel_info_offset). */
#define SETUP_SECTS 3          /* not 0, which means 4: a loader must read the field */
#define LOADED_HIGH 0x01
#define XLF_KERNEL_64 0x0001
#define DEBUG_EXIT_PORT 0x501

	.section .setup, "a"
	.code16
	/* The boot sector: nothing boots it from a BIOS; it just halts. */
	cli
1:	hlt
	jmp 1b

	.org 0x1f1
	.byte SETUP_SECTS       /* 0x1f1 setup_sects */
	.word 0                 /* 0x1f2 root_flags */
	.long syssize           /* 0x1f4 syssize: 16-byte units of protected-mode code */
	.word 0                 /* 0x1f8 ram_size */
	.word 0                 /* 0x1fa vid_mode */
	.word 0                 /* 0x1fc root_dev */
	.word 0xAA55            /* 0x1fe boot_flag */
	.byte 0xEB, hdr_end - 2f /* 0x200 jump over the header (its end marks the header's length) */
2:	.ascii "HdrS"           /* 0x202 header */
	.word 0x020F            /* 0x206 version 2.15 */
	.long 0                 /* 0x208 realmode_swtch */
	.word 0                 /* 0x20c start_sys_seg */
	.word 0                 /* 0x20e kernel_version */
	.byte 0                 /* 0x210 type_of_loader (the loader writes it) */
	.byte LOADED_HIGH       /* 0x211 loadflags */
	.word 0                 /* 0x212 setup_move_size */
	.long 0x100000          /* 0x214 code32_start */
	.long 0                 /* 0x218 ramdisk_image (the loader writes it) */
	.long 0                 /* 0x21c ramdisk_size (the loader writes it) */
	.long 0                 /* 0x220 bootsect_kludge */
	.word 0                 /* 0x224 heap_end_ptr */
	.byte 0                 /* 0x226 ext_loader_ver */
	.byte 0                 /* 0x227 ext_loader_type */
	.long 0                 /* 0x228 cmd_line_ptr (the loader writes it) */
	.long 0x01FFFFFF        /* 0x22c initrd_addr_max: 32 MiB, lower than RAM in the tests */
	.long 0x200000          /* 0x230 kernel_alignment */
	.byte 0                 /* 0x234 relocatable_kernel */
	.byte 0                 /* 0x235 min_alignment */
	.word XLF_KERNEL_64     /* 0x236 xloadflags */
	.long 255               /* 0x238 cmdline_size */
	.long 0                 /* 0x23c hardware_subarch */
	.quad 0                 /* 0x240 hardware_subarch_data */
	.long 0                 /* 0x248 payload_offset */
	.long 0                 /* 0x24c payload_length */
	.quad 0                 /* 0x250 setup_data */
	.quad 0x100000          /* 0x258 pref_address */
	.long init_size         /* 0x260 init_size: code, data, bss and stack from 1 MiB */
	.long 0                 /* 0x264 handover_offset: no EFI handover */
	.long kernel_info_offset /* 0x268 kernel_info_offset (from the protected-mode start) */
hdr_end:
	.org (SETUP_SECTS + 1) * 512

	/* Protected-mode part, at 1 MiB. +0: the 32-bit entry, which this
	 * payload does not support: it reports failure 99. */
	.section .text.entry32, "ax"
	.code32
	movw $DEBUG_EXIT_PORT, %dx
	movb $99, %al
	outb %al, %dx
3:	hlt
	jmp 3b

	/* +0x200: the 64-bit entry. rsi = the zero page, interrupts off. */
	.section .text.entry64, "ax"
	.code64
	.globl startup_64
startup_64:
	cli
	leaq stack_top(%rip), %rsp
	movq %rsi, %rdi
	call bz_main
4:	hlt
	jmp 4b

	/* kernel_info (protocol 2.15): "LToP", its size, its total size,
	 * setup_type_max (this payload takes no setup_data). */
	.section .rodata.kernel_info, "a"
	.balign 4
	.globl kernel_info
kernel_info:
	.ascii "LToP"
	.long 16
	.long 16
	.long 0

	.bss
	.balign 16
	.skip 8192
stack_top:

	.section .note.GNU-stack, "", @progbits
