/* The PVH entry for ELF kernels (Linux vmlinux built with CONFIG_PVH, and the
 * test payloads): the PT_LOAD segments go to their p_paddr, the entry is the
 * 32-bit address in the "Xen" note XEN_ELFNOTE_PHYS32_ENTRY, and ebx points
 * at a struct hvm_start_info (version 1, with the e820 map as its memmap and
 * the initrd as module 0). Segments must lie at or above 1 MiB: below that are
 * the boot structures (GDT, start info, zero page, page tables, command line)
 * and the ACPI area. Every offset and size from the file is checked against
 * the file length before it is used. */
#include "vmm/boot/boot.h"
#include "vmm/boot/boot_internal.h"

#include <elf.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "ELF files are read in host byte order");
_Static_assert(sizeof(struct hvm_start_info) == 56, "hvm_start_info");
_Static_assert(offsetof(struct hvm_start_info, modlist_paddr) == 16, "modlist_paddr");
_Static_assert(offsetof(struct hvm_start_info, cmdline_paddr) == 24, "cmdline_paddr");
_Static_assert(offsetof(struct hvm_start_info, rsdp_paddr) == 32, "rsdp_paddr");
_Static_assert(offsetof(struct hvm_start_info, memmap_paddr) == 40, "memmap_paddr");
_Static_assert(offsetof(struct hvm_start_info, memmap_entries) == 48, "memmap_entries");
_Static_assert(sizeof(struct hvm_modlist_entry) == 32, "hvm_modlist_entry");
_Static_assert(sizeof(struct hvm_memmap_table_entry) == 24, "hvm_memmap_table_entry");
_Static_assert(sizeof(struct hvm_start_info) <= BOOT_PVH_MODLIST - LAYOUT_PVH_START_INFO, "start info fits");
_Static_assert(sizeof(struct hvm_modlist_entry) <= BOOT_PVH_MEMMAP - BOOT_PVH_MODLIST, "modlist fits");
_Static_assert(LAYOUT_PVH_START_INFO + 0x1000 <= LAYOUT_ZERO_PAGE, "start info page");

/* One program header, whatever the ELF class. */
struct phdr {
	uint32_t type;
	uint64_t offset, paddr, filesz, memsz, align;
};

struct elf {
	const uint8_t *data;
	size_t len;
	bool is64;
	uint64_t phoff;
	uint16_t phnum;
};

static void elf_phdr(const struct elf *e, unsigned i, struct phdr *p)
{
	const uint8_t *src = e->data + e->phoff + (uint64_t)i * (e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr));
	if (e->is64) {
		Elf64_Phdr ph;
		memcpy(&ph, src, sizeof(ph));
		*p = (struct phdr){ ph.p_type, ph.p_offset, ph.p_paddr, ph.p_filesz, ph.p_memsz, ph.p_align };
	} else {
		Elf32_Phdr ph;
		memcpy(&ph, src, sizeof(ph));
		*p = (struct phdr){ ph.p_type, ph.p_offset, ph.p_paddr, ph.p_filesz, ph.p_memsz, ph.p_align };
	}
}

static bool in_file(const struct elf *e, uint64_t off, uint64_t size)
{
	return off <= e->len && size <= e->len - off;
}

static int elf_open(struct elf *e, const struct boot_req *req, struct gr_error *err)
{
	const char *kn = req->kname;
	e->data = req->kernel;
	e->len = req->kernel_len;
	if (e->len < EI_NIDENT)
		return gr_error_set(err, ENOEXEC, "%s: truncated ELF header (%zu bytes)", kn, e->len);
	uint8_t cls = e->data[EI_CLASS], data = e->data[EI_DATA];
	if (cls != ELFCLASS64 && cls != ELFCLASS32)
		return gr_error_set(err, ENOEXEC, "%s: ELF class %u is neither ELFCLASS32 nor ELFCLASS64", kn, cls);
	if (data != ELFDATA2LSB)
		return gr_error_set(err, ENOEXEC, "%s: ELF data encoding %u is not little-endian (ELFDATA2LSB)", kn, data);
	e->is64 = cls == ELFCLASS64;
	uint16_t type, machine, phentsize;
	if (e->is64) {
		Elf64_Ehdr h;
		if (e->len < sizeof(h))
			return gr_error_set(err, ENOEXEC, "%s: truncated ELF64 header (%zu bytes)", kn, e->len);
		memcpy(&h, e->data, sizeof(h));
		type = h.e_type, machine = h.e_machine, phentsize = h.e_phentsize;
		e->phoff = h.e_phoff, e->phnum = h.e_phnum;
	} else {
		Elf32_Ehdr h;
		if (e->len < sizeof(h))
			return gr_error_set(err, ENOEXEC, "%s: truncated ELF32 header (%zu bytes)", kn, e->len);
		memcpy(&h, e->data, sizeof(h));
		type = h.e_type, machine = h.e_machine, phentsize = h.e_phentsize;
		e->phoff = h.e_phoff, e->phnum = h.e_phnum;
	}
	if (type != ET_EXEC)
		return gr_error_set(err, ENOEXEC, "%s: ELF type %u is not an executable (ET_EXEC)", kn, type);
	if (machine != EM_X86_64 && machine != EM_386)
		return gr_error_set(err, ENOEXEC, "%s: ELF machine %u is not x86 (EM_X86_64 or EM_386)", kn, machine);
	size_t want = e->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	if (phentsize != want)
		return gr_error_set(err, ENOEXEC, "%s: e_phentsize %u is not %zu", kn, phentsize, want);
	if (e->phnum == 0 || e->phnum == PN_XNUM)
		return gr_error_set(err, ENOEXEC, "%s: e_phnum %u: no usable program headers", kn, e->phnum);
	if (!in_file(e, e->phoff, (uint64_t)e->phnum * want))
		return gr_error_set(err, ENOEXEC, "%s: truncated: %u program headers at offset 0x%llx run past the "
				    "file's %zu bytes", kn, e->phnum, (unsigned long long)e->phoff, e->len);
	return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Looks for the PVH entry in PT_NOTE segment i; 1 when found, 0 when not. */
static int find_pvh_note(const struct elf *e, const struct boot_req *req, unsigned i, const struct phdr *p,
			 uint32_t *entry, struct gr_error *err)
{
	const char *kn = req->kname;
	if (!in_file(e, p->offset, p->filesz))
		return gr_error_set(err, ENOEXEC, "%s: segment %u (PT_NOTE at offset 0x%llx, %llu bytes) runs past the "
				    "file's %zu bytes", kn, i, (unsigned long long)p->offset,
				    (unsigned long long)p->filesz, e->len);
	/* Notes are 4-byte aligned, or 8-byte ones in a segment aligned so (as glibc reads them). */
	uint64_t a = p->align == 8 ? 8 : 4;
	uint64_t pos = p->offset, end = p->offset + p->filesz;
	while (end - pos >= 12) {
		uint32_t nh[3];
		memcpy(nh, e->data + pos, sizeof(nh));
		uint64_t name_off = pos + 12;
		uint64_t namesz = align_up(nh[0], a), descsz = align_up(nh[1], a);
		if (namesz > end - name_off || descsz > end - name_off - namesz)
			return gr_error_set(err, ENOEXEC, "%s: segment %u (PT_NOTE): the note at offset 0x%llx "
					    "(namesz %u, descsz %u) runs past the segment's end at 0x%llx", kn, i,
					    (unsigned long long)pos, nh[0], nh[1], (unsigned long long)end);
		const uint8_t *name = e->data + name_off, *desc = name + namesz;
		if (nh[0] == 4 && memcmp(name, "Xen", 4) == 0 && nh[2] == XEN_ELFNOTE_PHYS32_ENTRY) {
			if (nh[1] == 4) {
				memcpy(entry, desc, 4);
			} else if (nh[1] == 8) {
				uint64_t v;
				memcpy(&v, desc, 8);
				if (v >> 32)
					return gr_error_set(err, ENOEXEC, "%s: PVH entry 0x%llx (XEN_ELFNOTE_PHYS32_ENTRY) "
							    "is not a 32-bit address", kn, (unsigned long long)v);
				*entry = (uint32_t)v;
			} else {
				return gr_error_set(err, ENOEXEC, "%s: PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY) has a "
						    "%u-byte descriptor (expected 4 or 8)", kn, nh[1]);
			}
			return 1;
		}
		pos = name_off + namesz + descsz;
	}
	return 0;
}

static void describe_ram(const struct guest_mem *gm, char *buf, size_t size)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < gm->n_regions && n < size; i++) {
		int w = snprintf(buf + n, size - n, "%s0x%llx-0x%llx", i ? " and " : "",
				 (unsigned long long)gm->regions[i].gpa,
				 (unsigned long long)(gm->regions[i].gpa + gm->regions[i].size));
		if (w < 0)
			break;
		n += (size_t)w;
	}
}

static int check_load(const struct guest_mem *gm, const struct elf *e, const struct boot_req *req, unsigned i,
		      const struct phdr *p, struct gr_error *err)
{
	const char *kn = req->kname;
	if (p->filesz > p->memsz)
		return gr_error_set(err, ENOEXEC, "%s: segment %u (PT_LOAD at paddr 0x%llx): p_filesz %llu is larger "
				    "than p_memsz %llu", kn, i, (unsigned long long)p->paddr,
				    (unsigned long long)p->filesz, (unsigned long long)p->memsz);
	if (!in_file(e, p->offset, p->filesz))
		return gr_error_set(err, ENOEXEC, "%s: truncated: segment %u (PT_LOAD at paddr 0x%llx) has %llu bytes "
				    "at offset 0x%llx, past the file's %zu bytes", kn, i, (unsigned long long)p->paddr,
				    (unsigned long long)p->filesz, (unsigned long long)p->offset, e->len);
	if (p->paddr < LAYOUT_KERNEL_LOAD)
		return gr_error_set(err, ENOEXEC, "%s: segment %u (PT_LOAD at paddr 0x%llx, %llu bytes) overlaps the "
				    "boot structures below 1 MiB; link the kernel at 0x100000 or above", kn, i,
				    (unsigned long long)p->paddr, (unsigned long long)p->memsz);
	if (!gm_ptr(gm, p->paddr, p->memsz)) {
		char ram[128];
		describe_ram(gm, ram, sizeof(ram));
		return gr_error_set(err, ENOMEM, "%s: segment %u (PT_LOAD at paddr 0x%llx, %llu bytes) lies outside "
				    "guest RAM (%s); give the guest more memory", kn, i, (unsigned long long)p->paddr,
				    (unsigned long long)p->memsz, ram);
	}
	return 0;
}

int boot_pvh_load(struct guest_mem *gm, const struct boot_req *req, struct boot_info *out, struct gr_error *err)
{
	const char *kn = req->kname;
	struct elf e;
	int r = elf_open(&e, req, err);
	if (r < 0)
		return r;

	/* 1. The entry note and the segments, checked before anything is written. */
	uint32_t entry = 0;
	bool have_entry = false;
	unsigned n_load = 0;
	uint64_t kernel_end = 0;
	for (unsigned i = 0; i < e.phnum; i++) {
		struct phdr p;
		elf_phdr(&e, i, &p);
		if (p.type == PT_NOTE && !have_entry) {
			r = find_pvh_note(&e, req, i, &p, &entry, err);
			if (r < 0)
				return r;
			have_entry = r > 0;
		} else if (p.type == PT_LOAD && (p.memsz || p.filesz)) {
			r = check_load(gm, &e, req, i, &p, err);
			if (r < 0)
				return r;
			n_load++;
			if (p.paddr + p.memsz > kernel_end)
				kernel_end = p.paddr + p.memsz;
		}
	}
	if (!have_entry)
		return gr_error_set(err, ENOEXEC, "%s: ELF without a PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "
				    "build with CONFIG_PVH", kn);
	if (n_load == 0)
		return gr_error_set(err, ENOEXEC, "%s: ELF without a PT_LOAD segment", kn);
	bool entry_loaded = false;
	for (unsigned i = 0; i < e.phnum && !entry_loaded; i++) {
		struct phdr p;
		elf_phdr(&e, i, &p);
		entry_loaded = p.type == PT_LOAD && entry >= p.paddr && entry - p.paddr < p.filesz;
	}
	if (!entry_loaded)
		return gr_error_set(err, ENOEXEC, "%s: PVH entry 0x%x (XEN_ELFNOTE_PHYS32_ENTRY) is not inside the file "
				    "contents of any PT_LOAD segment", kn, entry);

	size_t cmdline_len;
	r = boot_check_cmdline(req, LAYOUT_CMDLINE_MAX - 1, "the PVH command line", &cmdline_len, err);
	if (r < 0)
		return r;
	uint64_t initrd_gpa = 0, initrd_size = 0;
	if (req->initrd) {
		r = boot_place_initrd(gm, req->initrd, GM_MMIO_HOLE_START, kernel_end, &initrd_gpa, err);
		if (r < 0)
			return r;
		initrd_size = req->initrd->size;
	}

	/* 2. Segments: file contents, then zeros up to p_memsz (the bss). */
	for (unsigned i = 0; i < e.phnum; i++) {
		struct phdr p;
		elf_phdr(&e, i, &p);
		if (p.type != PT_LOAD || !p.memsz)
			continue;
		uint8_t *dst = gm_ptr(gm, p.paddr, p.memsz);
		if (!dst) /* checked above */
			return gr_error_set(err, EFAULT, "%s: segment %u is outside guest RAM", kn, i);
		memcpy(dst, e.data + p.offset, p.filesz);
		memset(dst + p.filesz, 0, p.memsz - p.filesz);
	}

	/* 3. Start info, module list and memmap in their page below the zero page. */
	uint8_t *page = gm_ptr(gm, LAYOUT_PVH_START_INFO, 0x1000);
	if (!page)
		return gr_error_set(err, EFAULT, "%s: the start info page at 0x%llx is outside guest RAM", kn,
				    LAYOUT_PVH_START_INFO);
	memset(page, 0, 0x1000);
	struct e820_entry map[BOOT_PVH_MEMMAP_MAX];
	size_t n_map = boot_e820(gm, map, BOOT_PVH_MEMMAP_MAX);
	for (size_t i = 0; i < n_map; i++) {
		struct hvm_memmap_table_entry m = { map[i].addr, map[i].size, map[i].type, 0 };
		memcpy(page + (BOOT_PVH_MEMMAP - LAYOUT_PVH_START_INFO) + i * sizeof(m), &m, sizeof(m));
	}
	struct hvm_start_info si = {
		.magic = XEN_HVM_START_MAGIC_VALUE,
		.version = 1,
		.flags = 0,
		.cmdline_paddr = LAYOUT_CMDLINE,
		.rsdp_paddr = req->rsdp_gpa,
		.memmap_paddr = BOOT_PVH_MEMMAP,
		.memmap_entries = (uint32_t)n_map,
	};
	if (req->initrd) {
		struct hvm_modlist_entry mod = { .paddr = initrd_gpa, .size = initrd_size };
		memcpy(page + (BOOT_PVH_MODLIST - LAYOUT_PVH_START_INFO), &mod, sizeof(mod));
		si.nr_modules = 1;
		si.modlist_paddr = BOOT_PVH_MODLIST;
	}
	memcpy(page, &si, sizeof(si));

	return boot_finish(gm, req, BOOT_PVH, entry, LAYOUT_PVH_START_INFO, kernel_end, initrd_gpa,
			   initrd_size, out, err);
}
