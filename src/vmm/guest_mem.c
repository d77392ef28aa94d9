#include "guest_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define PAGE 4096ULL

int gm_create(struct guest_mem *gm, uint64_t size, struct gr_error *err)
{
	memset(gm, 0, sizeof(*gm));
	if (size < (1ULL << 20) || size % PAGE)
		return gr_error_set(err, EINVAL, "memory: %llu bytes is not a multiple of 4 KiB of at least 1 MiB",
				    (unsigned long long)size);
	if (size > (1ULL << 40))
		return gr_error_set(err, EINVAL, "memory: %llu bytes is more than 1 TiB", (unsigned long long)size);
	uint64_t low = size < GM_MMIO_HOLE_START ? size : GM_MMIO_HOLE_START;
	uint64_t high = size - low;
	/* [guard][low RAM][guard][high RAM][guard] in one reservation. */
	size_t total = (size_t)(low + high + 3 * PAGE);
	uint8_t *map = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (map == MAP_FAILED)
		return gr_error_sys(err, errno, "memory: cannot reserve %llu bytes", (unsigned long long)size);
	uint8_t *lo = map + PAGE;
	if (mprotect(lo, low, PROT_READ | PROT_WRITE) < 0) {
		int e = errno;
		munmap(map, total);
		return gr_error_sys(err, e, "memory: mprotect");
	}
	gm->regions[0] = (struct gm_region){ .gpa = 0, .size = low, .host = lo };
	gm->n_regions = 1;
	if (high) {
		uint8_t *hi = lo + low + PAGE;
		if (mprotect(hi, high, PROT_READ | PROT_WRITE) < 0) {
			int e = errno;
			munmap(map, total);
			return gr_error_sys(err, e, "memory: mprotect");
		}
		gm->regions[1] = (struct gm_region){ .gpa = GM_MMIO_HOLE_END, .size = high, .host = hi };
		gm->n_regions = 2;
	}
	(void)madvise(lo, low, MADV_DONTDUMP);
	gm->map = map;
	gm->map_size = total;
	gm->ram_size = size;
	return 0;
}

void gm_destroy(struct guest_mem *gm)
{
	if (gm->map)
		munmap(gm->map, gm->map_size);
	memset(gm, 0, sizeof(*gm));
}

void *gm_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	for (size_t i = 0; i < gm->n_regions; i++) {
		const struct gm_region *r = &gm->regions[i];
		if (gpa < r->gpa)
			continue;
		uint64_t off = gpa - r->gpa;
		if (off > r->size || len > r->size - off)
			continue;
		return r->host + off;
	}
	return NULL;
}

int gm_read(const struct guest_mem *gm, uint64_t gpa, void *dst, size_t len)
{
	void *p = gm_ptr(gm, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int gm_write(const struct guest_mem *gm, uint64_t gpa, const void *src, size_t len)
{
	void *p = gm_ptr(gm, gpa, len);
	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

int gm_parse_size(const char *s, uint64_t *out)
{
	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case '\0': break;
	case 'K': case 'k': shift = 10; end++; break;
	case 'M': case 'm': shift = 20; end++; break;
	case 'G': case 'g': shift = 30; end++; break;
	case 'T': case 't': shift = 40; end++; break;
	default: return -EINVAL;
	}
	if (*end == 'i' && shift)
		end++;
	if (*end == 'B' && shift)
		end++;
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	*out = (uint64_t)v << shift;
	return 0;
}
