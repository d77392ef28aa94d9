/* The PVH entry note: XEN_ELFNOTE_PHYS32_ENTRY (18) with the 32-bit entry. */
	.section .note.Xen, "a"
	.balign 4
	.long 4          /* name size: "Xen\0" */
	.long 4          /* descriptor size */
	.long 18         /* XEN_ELFNOTE_PHYS32_ENTRY */
	.asciz "Xen"
	.balign 4
	.long _start

	.section .note.GNU-stack, "", @progbits
