/* Entry points of the kernel loader: reading the files, telling bzImage from
 * ELF by content, and what both protocols share (command line, initrd). */
#include "vmm/boot/boot.h"
#include "vmm/boot/boot_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cleanup.h"

#define PAGE 4096ULL

int boot_check_cmdline(const struct boot_req *req, uint64_t max_len, const char *limit_name,
		       size_t *len, struct gr_error *err)
{
	size_t n = req->cmdline ? strlen(req->cmdline) : 0;
	if (n + 1 > LAYOUT_CMDLINE_MAX)
		return gr_error_set(err, E2BIG, "cmdline: %zu bytes is longer than gureum-vmm's limit of %llu bytes",
				    n, LAYOUT_CMDLINE_MAX - 1);
	if (n > max_len)
		return gr_error_set(err, E2BIG, "cmdline: %zu bytes is longer than %s allows (%s %llu)", n,
				    req->kname, limit_name, (unsigned long long)max_len);
	*len = n;
	return 0;
}

int boot_write_cmdline(struct guest_mem *gm, const struct boot_req *req, struct gr_error *err)
{
	size_t n = req->cmdline ? strlen(req->cmdline) : 0;
	char *dst = gm_ptr(gm, LAYOUT_CMDLINE, n + 1);
	if (!dst || n + 1 > LAYOUT_CMDLINE_MAX)
		return gr_error_set(err, EFAULT, "cmdline: %zu bytes do not fit at 0x%llx", n, LAYOUT_CMDLINE);
	if (n)
		memcpy(dst, req->cmdline, n);
	dst[n] = '\0';
	return 0;
}

int boot_place_initrd(const struct guest_mem *gm, const struct boot_blob *initrd, uint64_t limit,
		      uint64_t kernel_end, uint64_t *gpa, struct gr_error *err)
{
	uint64_t low_end = boot_low_ram_end(gm);
	if (limit > low_end)
		limit = low_end;
	if (initrd->size == 0)
		return gr_error_set(err, EINVAL, "%s: the file is empty", initrd->what);
	if (initrd->size > limit || ((limit - initrd->size) & ~(PAGE - 1)) < kernel_end)
		return gr_error_set(err, ENOMEM,
				    "%s: %llu bytes do not fit below 0x%llx (above the kernel, which ends at 0x%llx); "
				    "give the guest more memory or use a smaller initrd",
				    initrd->what, (unsigned long long)initrd->size, (unsigned long long)limit,
				    (unsigned long long)kernel_end);
	*gpa = (limit - initrd->size) & ~(PAGE - 1);
	return 0;
}

int boot_copy_initrd(struct guest_mem *gm, const struct boot_blob *initrd, uint64_t gpa, struct gr_error *err)
{
	uint8_t *dst = gm_ptr(gm, gpa, initrd->size);
	if (!dst)
		return gr_error_set(err, EFAULT, "%s: %llu bytes at 0x%llx are outside guest RAM", initrd->what,
				    (unsigned long long)initrd->size, (unsigned long long)gpa);
	if (initrd->data) {
		memcpy(dst, initrd->data, initrd->size);
		return 0;
	}
	uint64_t done = 0;
	while (done < initrd->size) {
		uint64_t chunk = initrd->size - done;
		if (chunk > (1U << 30))
			chunk = 1U << 30;
		ssize_t r = pread(initrd->fd, dst + done, chunk, (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return gr_error_sys(err, errno, "%s: read at offset %llu", initrd->what,
					    (unsigned long long)done);
		}
		if (r == 0)
			return gr_error_set(err, EIO, "%s: the file shrank to %llu bytes while being read (expected %llu)",
					    initrd->what, (unsigned long long)done, (unsigned long long)initrd->size);
		done += (uint64_t)r;
	}
	return 0;
}

int boot_load_req(struct guest_mem *gm, const struct boot_req *req, struct boot_info *out, struct gr_error *err)
{
	memset(out, 0, sizeof(*out));
	if (boot_low_ram_end(gm) < LAYOUT_KERNEL_LOAD)
		return gr_error_set(err, EINVAL, "memory: the guest needs at least 1 MiB of RAM below 4 GiB");
	if (req->kernel_len >= 4 && memcmp(req->kernel, "\177ELF", 4) == 0)
		return boot_pvh_load(gm, req, out, err);
	if (req->kernel_len >= 0x206 && memcmp(req->kernel + 0x202, "HdrS", 4) == 0)
		return boot_bzimage_load(gm, req, out, err);
	return gr_error_set(err, ENOEXEC,
			    "%s: neither a bzImage nor an ELF vmlinux (%zu bytes, no ELF magic and no \"HdrS\" at 0x202)",
			    req->kname, req->kernel_len);
}

int boot_load_mem(struct guest_mem *gm, const uint8_t *kernel, size_t kernel_len, const uint8_t *initrd,
		  size_t initrd_len, const char *cmdline, uint64_t rsdp_gpa, struct boot_info *out,
		  struct gr_error *err)
{
	struct boot_blob blob = { .what = "initrd", .data = initrd, .fd = -1, .size = initrd_len };
	struct boot_req req = {
		.kname = "kernel",
		.kernel = kernel,
		.kernel_len = kernel ? kernel_len : 0,
		.initrd = initrd ? &blob : NULL,
		.cmdline = cmdline,
		.rsdp_gpa = rsdp_gpa,
	};
	return boot_load_req(gm, &req, out, err);
}

/* Opens a regular file no larger than max bytes. */
static int open_input(const char *what, const char *path, uint64_t max, uint64_t *size, struct gr_error *err)
{
	gr_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return gr_error_sys(err, errno, "%s %s: cannot open", what, path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return gr_error_sys(err, errno, "%s %s: fstat", what, path);
	if (!S_ISREG(st.st_mode))
		return gr_error_set(err, EINVAL, "%s %s: not a regular file", what, path);
	if ((uint64_t)st.st_size > max)
		return gr_error_set(err, EFBIG, "%s %s: %llu bytes is larger than the guest's %llu bytes of memory",
				    what, path, (unsigned long long)st.st_size, (unsigned long long)max);
	*size = (uint64_t)st.st_size;
	return gr_steal_fd(fd);
}

int boot_load(struct guest_mem *gm, const char *kernel, const char *initrd, const char *cmdline,
	      uint64_t rsdp_gpa, struct boot_info *out, struct gr_error *err)
{
	char kname[4200], iname[4200];
	snprintf(kname, sizeof(kname), "kernel %s", kernel);
	uint64_t ksize;
	gr_autoclose int kfd = open_input("kernel", kernel, gm->ram_size, &ksize, err);
	if (kfd < 0)
		return kfd;
	gr_autofree uint8_t *kbuf = malloc(ksize ? ksize : 1);
	if (!kbuf)
		return gr_error_set(err, ENOMEM, "%s: cannot allocate %llu bytes", kname, (unsigned long long)ksize);
	uint64_t done = 0;
	while (done < ksize) {
		ssize_t r = pread(kfd, kbuf + done, ksize - done, (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return gr_error_sys(err, errno, "%s: read at offset %llu", kname, (unsigned long long)done);
		}
		if (r == 0)
			break; /* shrank: parse what is there; the checks catch truncation */
		done += (uint64_t)r;
	}

	struct boot_blob blob = { .what = iname, .fd = -1 };
	gr_autoclose int ifd = -1;
	if (initrd) {
		snprintf(iname, sizeof(iname), "initrd %s", initrd);
		ifd = open_input("initrd", initrd, gm->ram_size, &blob.size, err);
		if (ifd < 0)
			return ifd;
		blob.fd = ifd;
	}
	struct boot_req req = {
		.kname = kname,
		.kernel = kbuf,
		.kernel_len = (size_t)done,
		.initrd = initrd ? &blob : NULL,
		.cmdline = cmdline,
		.rsdp_gpa = rsdp_gpa,
	};
	return boot_load_req(gm, &req, out, err);
}

int boot_finish(struct guest_mem *gm, const struct boot_req *req, enum boot_mode mode, uint64_t entry,
		uint64_t params_gpa, uint64_t kernel_end, uint64_t initrd_gpa, uint64_t initrd_size,
		struct boot_info *out, struct gr_error *err)
{
	int r = boot_write_cmdline(gm, req, err);
	if (r < 0)
		return r;
	if (req->initrd && (r = boot_copy_initrd(gm, req->initrd, initrd_gpa, err)) < 0)
		return r;
	*out = (struct boot_info){ .mode = mode, .entry = entry, .params_gpa = params_gpa,
				   .kernel_end = kernel_end, .initrd_gpa = initrd_gpa, .initrd_size = initrd_size };
	return 0;
}
