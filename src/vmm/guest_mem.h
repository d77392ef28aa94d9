/* Guest physical memory as seen by the VMM: one anonymous mapping of the
 * guest's RAM, surrounded by guard pages, and the only way any part of the
 * VMM (loaders, ACPI, devices) touches guest memory. Every access goes through
 * gm_ptr(), which checks the whole range against RAM, so an address, length or
 * index a guest supplies can never reach outside it. */
#ifndef GR_VMM_GUEST_MEM_H
#define GR_VMM_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "common/error.h"

/* The 32-bit MMIO hole: RAM above this address is placed at 4 GiB. */
#define GM_MMIO_HOLE_START 0xC0000000ULL
#define GM_MMIO_HOLE_END   0x100000000ULL

struct gm_region {
	uint64_t gpa;   /* guest physical start */
	uint64_t size;
	uint8_t *host;  /* host address of gpa */
};

struct guest_mem {
	uint8_t *map;        /* whole reservation including the guard pages */
	size_t map_size;
	struct gm_region regions[2]; /* below the hole, and above 4 GiB */
	size_t n_regions;
	uint64_t ram_size;   /* bytes of RAM */
};

/* Reserves size bytes of RAM (a multiple of 4 KiB, at least 1 MiB) with a
 * guard page before and after each region. */
int gm_create(struct guest_mem *gm, uint64_t size, struct gr_error *err);
void gm_destroy(struct guest_mem *gm);

/* Host pointer for [gpa, gpa + len) when that range lies entirely inside one
 * RAM region; NULL otherwise (including on overflow). len 0 is valid. */
void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);
/* Copies with the same checks; -EFAULT when out of range. */
int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, size_t len);
int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, size_t len);

/* Parses "512M", "2G", "1048576" (bytes), "64K"; -EINVAL on anything else. */
int gm_parse_size(const char *s, uint64_t *out);

#endif
