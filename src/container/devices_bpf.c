/* eBPF device filter for cgroup v2; semantics in devices_bpf.h.
 *
 * The program is built by hand from struct bpf_insn (no libbpf): it is small
 * and straight-line, with forward jumps only.
 *
 *   r2 = ctx->access_type & 0xffff      device type (BPF_DEVCG_DEV_BLOCK/CHAR)
 *   r3 = ctx->access_type >> 16         requested access (BPF_DEVCG_ACC_*)
 *   r4 = ctx->major
 *   r5 = ctx->minor
 *   for each exception:                 (r1 is scratch once the context is read)
 *     if r2 != type goto next
 *     [allow, access not rwm]  r1 = r3 & access; if r1 != r3 goto next
 *     [deny, access not rwm]   r1 = r3 & access; if r1 == 0 goto next
 *     [major given]            if r4 != major goto next
 *     [minor given]            if r5 != minor goto next
 *     r0 = allow; exit
 *   next: ...
 *   r0 = default; exit
 */
#include "devices_bpf.h"

#include <errno.h>
#include <inttypes.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../common/cleanup.h"

#define DB_FIELD "linux.resources.devices"
#define DB_ACC_ALL (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD)
#define DB_LOG_SIZE (64 * 1024)
#define DB_LOG_LINES 6
#define DB_QUERY_MAX 64         /* the kernel allows 64 programs per cgroup and type */

/* ------------------------------------------------------------- emulation */

struct db_exception {
	char type;              /* 'b' or 'c' */
	int64_t major, minor;   /* -1 = any */
	unsigned access;        /* BPF_DEVCG_ACC_* bits, never 0 */
};

struct db_emulator {
	bool default_allow;
	struct db_exception *v;
	size_t n, cap;
};

static void db_emulator_free(struct db_emulator *e)
{
	free(e->v);
}

static unsigned db_access_bits(const char *access)
{
	unsigned bits = 0;
	for (const char *p = access; *p; p++)
		bits |= *p == 'r' ? BPF_DEVCG_ACC_READ : *p == 'w' ? BPF_DEVCG_ACC_WRITE : BPF_DEVCG_ACC_MKNOD;
	return bits;
}

static void db_access_str(unsigned bits, char out[4])
{
	size_t k = 0;
	if (bits & BPF_DEVCG_ACC_READ)
		out[k++] = 'r';
	if (bits & BPF_DEVCG_ACC_WRITE)
		out[k++] = 'w';
	if (bits & BPF_DEVCG_ACC_MKNOD)
		out[k++] = 'm';
	out[k] = '\0';
}

/* "c 1:3 rw", "b *:* m" */
static void db_rule_str(char type, int64_t major, int64_t minor, unsigned access, char *buf, size_t size)
{
	char maj[24] = "*", min[24] = "*", acc[4];
	if (major >= 0)
		snprintf(maj, sizeof(maj), "%" PRId64, major);
	if (minor >= 0)
		snprintf(min, sizeof(min), "%" PRId64, minor);
	db_access_str(access, acc);
	snprintf(buf, size, "%c %s:%s %s", type, maj, min, acc);
}

static struct db_exception *db_find(struct db_emulator *e, char type, int64_t major, int64_t minor)
{
	for (size_t i = 0; i < e->n; i++)
		if (e->v[i].type == type && e->v[i].major == major && e->v[i].minor == minor)
			return &e->v[i];
	return NULL;
}

static int db_add(struct db_emulator *e, const struct db_exception *x, struct gr_error *err)
{
	struct db_exception *old = db_find(e, x->type, x->major, x->minor);
	if (old) {
		old->access |= x->access;
		return 0;
	}
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 16;
		struct db_exception *v = realloc(e->v, cap * sizeof(*v));
		if (!v)
			return gr_error_set(err, ENOMEM, "out of memory");
		e->v = v;
		e->cap = cap;
	}
	e->v[e->n++] = *x;
	return 0;
}

/* Removes access bits from the exception with exactly this type/major/minor.
 * Wider wildcard exceptions are not split (v1 cannot either): a removal that
 * overlaps one is refused instead of being silently ineffective. */
static int db_remove(struct db_emulator *e, const struct db_exception *x, size_t idx, struct gr_error *err)
{
	const int64_t wider[3][2] = { { -1, x->minor }, { x->major, -1 }, { -1, -1 } };
	for (size_t k = 0; k < 3; k++) {
		if (wider[k][0] == x->major && wider[k][1] == x->minor)
			continue;
		struct db_exception *w = db_find(e, x->type, wider[k][0], wider[k][1]);
		if (w && (w->access & x->access)) {
			char mine[96], theirs[96];
			db_rule_str(x->type, x->major, x->minor, x->access, mine, sizeof(mine));
			db_rule_str(w->type, w->major, w->minor, w->access, theirs, sizeof(theirs));
			return gr_error_set(err, EINVAL,
					    DB_FIELD "[%zu]: the %s rule \"%s\" would punch a hole in the earlier "
					    "wildcard rule \"%s\", which the devices cgroup does not support; "
					    "narrow the wildcard rule instead",
					    idx, e->default_allow ? "allow" : "deny", mine, theirs);
		}
	}
	struct db_exception *old = db_find(e, x->type, x->major, x->minor);
	if (old) {
		old->access &= ~x->access;
		if (!old->access)
			*old = e->v[--e->n];
	}
	return 0;
}

static int db_check_number(int64_t v, size_t idx, const char *name, struct gr_error *err)
{
	if (v < -1 || v > (int64_t)UINT32_MAX)
		return gr_error_set(err, EINVAL, DB_FIELD "[%zu].%s: invalid device number %" PRId64
				    " (expected 0 to %" PRIu32 ", or absent for any)", idx, name, v, UINT32_MAX);
	return 0;
}

static int db_apply(struct db_emulator *e, const struct oci_device_rule *d, size_t idx, struct gr_error *err)
{
	char type = d->type ? d->type : 'a';
	const char *access = d->access && *d->access ? d->access : "rwm";
	int r;
	if (type != 'a' && type != 'b' && type != 'c')
		return gr_error_set(err, EINVAL, DB_FIELD "[%zu].type: invalid device type '%c' (expected a, b or c)",
				    idx, type);
	if (access[strspn(access, "rwm")] != '\0')
		return gr_error_set(err, EINVAL, DB_FIELD "[%zu].access: invalid access \"%s\" (expected a subset of "
				    "\"rwm\")", idx, access);
	if ((r = db_check_number(d->major, idx, "major", err)) < 0 ||
	    (r = db_check_number(d->minor, idx, "minor", err)) < 0)
		return r;
	if (type == 'a') {
		/* As in v1 (and runc): "a" resets, whatever its numbers and access. */
		e->default_allow = d->allow;
		e->n = 0;
		return 0;
	}
	struct db_exception x = { .type = type, .major = d->major, .minor = d->minor,
				  .access = db_access_bits(access) };
	if (d->allow == e->default_allow)
		return db_remove(e, &x, idx, err);
	return db_add(e, &x, err);
}

/* -------------------------------------------------------------- assembly */

struct db_prog {
	struct bpf_insn *v;
	size_t n, cap;
};

static int db_emit(struct db_prog *p, uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm,
		   struct gr_error *err)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 64;
		struct bpf_insn *v = realloc(p->v, cap * sizeof(*v));
		if (!v)
			return gr_error_set(err, ENOMEM, "out of memory");
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = (struct bpf_insn){ .code = code, .dst_reg = dst, .src_reg = src, .off = off, .imm = imm };
	return 0;
}

#define EMIT(code, dst, src, off, imm)                                          \
	do {                                                                    \
		int emit_r_ = db_emit(p, (code), (dst), (src), (off), (imm), err); \
		if (emit_r_ < 0)                                                \
			return emit_r_;                                         \
	} while (0)

/* Marker in .off for "jump to the end of this block", patched afterwards. */
#define DB_NEXT INT16_MIN

static int db_emit_exception(struct db_prog *p, const struct db_exception *x, bool allow, struct gr_error *err)
{
	/* Numbers above INT32_MAX cannot be a device (12-bit majors, 20-bit
	 * minors) and would not survive the sign-extended immediate: such an
	 * exception never matches, so it is left out. */
	if (x->major > INT32_MAX || x->minor > INT32_MAX)
		return 0;
	size_t start = p->n;
	EMIT(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_2, 0, DB_NEXT,
	     x->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR);
	if (x->access != DB_ACC_ALL) {
		EMIT(BPF_ALU | BPF_MOV | BPF_X, BPF_REG_1, BPF_REG_3, 0, 0);
		EMIT(BPF_ALU | BPF_AND | BPF_K, BPF_REG_1, 0, 0, (int32_t)x->access);
		if (allow)
			EMIT(BPF_JMP | BPF_JNE | BPF_X, BPF_REG_1, BPF_REG_3, DB_NEXT, 0);
		else
			EMIT(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_1, 0, DB_NEXT, 0);
	}
	if (x->major >= 0)
		EMIT(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_4, 0, DB_NEXT, (int32_t)x->major);
	if (x->minor >= 0)
		EMIT(BPF_JMP | BPF_JNE | BPF_K, BPF_REG_5, 0, DB_NEXT, (int32_t)x->minor);
	EMIT(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, allow ? 1 : 0);
	EMIT(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	for (size_t i = start; i < p->n; i++)
		if (p->v[i].off == DB_NEXT)
			p->v[i].off = (int16_t)(p->n - i - 1);
	return 0;
}

static int db_assemble(struct db_prog *p, const struct db_emulator *e, struct gr_error *err)
{
	/* struct bpf_cgroup_dev_ctx { u32 access_type, major, minor; } in r1 */
	EMIT(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_2, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, access_type), 0);
	EMIT(BPF_ALU | BPF_AND | BPF_K, BPF_REG_2, 0, 0, 0xffff);
	EMIT(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_3, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, access_type), 0);
	EMIT(BPF_ALU | BPF_RSH | BPF_K, BPF_REG_3, 0, 0, 16);
	EMIT(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_4, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, major), 0);
	EMIT(BPF_LDX | BPF_MEM | BPF_W, BPF_REG_5, BPF_REG_1, offsetof(struct bpf_cgroup_dev_ctx, minor), 0);
	for (size_t i = 0; i < e->n; i++) {
		int r = db_emit_exception(p, &e->v[i], !e->default_allow, err);
		if (r < 0)
			return r;
	}
	EMIT(BPF_ALU | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, e->default_allow ? 1 : 0);
	EMIT(BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
	return 0;
}

#undef EMIT

int devices_bpf_build(const struct oci_device_rule *rules, size_t n, struct bpf_insn **prog, size_t *len,
		      struct gr_error *err)
{
	*prog = NULL;
	*len = 0;
	_cleanup_(db_emulator_free) struct db_emulator e = { .default_allow = false };
	for (size_t i = 0; i < n; i++) {
		int r = db_apply(&e, &rules[i], i, err);
		if (r < 0)
			return r;
	}
	struct db_prog p = { 0 };
	int r = db_assemble(&p, &e, err);
	if (r < 0) {
		free(p.v);
		return r;
	}
	*prog = p.v;
	*len = p.n;
	return 0;
}

/* ------------------------------------------------------------ the kernel */

static int db_bpf(enum bpf_cmd cmd, union bpf_attr *attr)
{
	long r = syscall(SYS_bpf, cmd, attr, sizeof(*attr));
	return r < 0 ? -errno : (int)r;
}

static uint64_t db_ptr(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static int db_load_once(const struct bpf_insn *prog, size_t len, char *log, size_t log_size)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
	a.insns = db_ptr(prog);
	a.insn_cnt = (uint32_t)len;
	a.license = db_ptr("Apache-2.0");
	if (log) {
		a.log_buf = db_ptr(log);
		a.log_size = (uint32_t)log_size;
		a.log_level = 1;
		log[0] = '\0';
	}
	snprintf(a.prog_name, sizeof(a.prog_name), "%s", DEVICES_BPF_PROG_NAME);
	return db_bpf(BPF_PROG_LOAD, &a);
}

/* The first lines of the verifier log on one line, "; "-separated. */
static void db_log_head(const char *log, char *out, size_t size)
{
	size_t k = 0;
	int lines = 0;
	out[0] = '\0';
	for (const char *p = log; *p && lines < DB_LOG_LINES && k + 1 < size;) {
		const char *eol = strchr(p, '\n');
		size_t n = eol ? (size_t)(eol - p) : strlen(p);
		if (n > 0) {
			int w = snprintf(out + k, size - k, "%s%.*s", k ? "; " : "", (int)n, p);
			if (w < 0)
				break;
			k += (size_t)w < size - k ? (size_t)w : size - k - 1;
			lines++;
		}
		p += n + (eol ? 1 : 0);
	}
}

static int db_load(const struct bpf_insn *prog, size_t len, struct gr_error *err)
{
	int fd = db_load_once(prog, len, NULL, 0);
	if (fd == -EPERM) {
		/* Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK: raise
		 * the soft limit to the hard one and try once more. */
		struct rlimit rl;
		if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			if (setrlimit(RLIMIT_MEMLOCK, &rl) == 0)
				fd = db_load_once(prog, len, NULL, 0);
		}
	}
	if (fd >= 0)
		return fd;
	if (fd == -EPERM || fd == -ENOSYS || fd == -ENOMEM)
		return gr_error_sys(err, -fd, DB_FIELD ": cannot load the eBPF device filter");
	/* Rejected: load again with a log to say why. */
	gr_autofree char *log = calloc(1, DB_LOG_SIZE);
	if (!log)
		return gr_error_sys(err, -fd, DB_FIELD ": cannot load the eBPF device filter");
	int again = db_load_once(prog, len, log, DB_LOG_SIZE);
	if (again >= 0)
		return again; /* passed the second time (transient failure) */
	char head[512];
	db_log_head(log, head, sizeof(head));
	int r = gr_error_sys(err, -fd, DB_FIELD ": cannot load the eBPF device filter (%zu instructions)", len);
	if (head[0]) {
		size_t n = strlen(err->msg);
		snprintf(err->msg + n, sizeof(err->msg) - n, "; verifier: %s", head);
	}
	return r;
}

/* The ids of the BPF_CGROUP_DEVICE programs attached to the cgroup itself. */
static int db_query(int dirfd, uint32_t *ids, uint32_t *n, struct gr_error *err)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.query.target_fd = (uint32_t)dirfd;
	a.query.attach_type = BPF_CGROUP_DEVICE;
	a.query.prog_ids = db_ptr(ids);
	a.query.prog_cnt = DB_QUERY_MAX;
	int r = db_bpf(BPF_PROG_QUERY, &a);
	if (r < 0)
		return gr_error_sys(err, -r, DB_FIELD ": cannot list the eBPF device filters attached to the cgroup "
				    "(BPF_PROG_QUERY)");
	*n = a.query.prog_cnt < DB_QUERY_MAX ? a.query.prog_cnt : DB_QUERY_MAX;
	return 0;
}

/* An fd for program id when it is one of ours, -1 when it is someone
 * else's (or cannot be inspected: LSM policy, or already gone). */
static int db_open_ours(uint32_t id)
{
	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.prog_id = id;
	gr_autoclose int fd = db_bpf(BPF_PROG_GET_FD_BY_ID, &a);
	if (fd < 0)
		return -1;
	struct bpf_prog_info info;
	memset(&info, 0, sizeof(info));
	memset(&a, 0, sizeof(a));
	a.info.bpf_fd = (uint32_t)fd;
	a.info.info_len = sizeof(info);
	a.info.info = db_ptr(&info);
	if (db_bpf(BPF_OBJ_GET_INFO_BY_FD, &a) < 0)
		return -1;
	if (info.type != BPF_PROG_TYPE_CGROUP_DEVICE ||
	    strncmp(info.name, DEVICES_BPF_PROG_NAME, sizeof(info.name)) != 0)
		return -1;
	return gr_steal_fd(fd);
}

int devices_bpf_attach(int cgroup_dirfd, const struct bpf_insn *prog, size_t len, struct gr_error *err)
{
	uint32_t old[DB_QUERY_MAX];
	uint32_t n_old = 0;
	int r = db_query(cgroup_dirfd, old, &n_old, err);
	if (r < 0)
		return r;
	gr_autoclose int fd = db_load(prog, len, err);
	if (fd < 0)
		return fd;

	union bpf_attr a;
	memset(&a, 0, sizeof(a));
	a.target_fd = (uint32_t)cgroup_dirfd;
	a.attach_bpf_fd = (uint32_t)fd;
	a.attach_type = BPF_CGROUP_DEVICE;
	a.attach_flags = BPF_F_ALLOW_MULTI;
	if ((r = db_bpf(BPF_PROG_ATTACH, &a)) < 0)
		return gr_error_sys(err, -r, DB_FIELD ": cannot attach the eBPF device filter to the cgroup "
				    "(BPF_PROG_ATTACH, BPF_CGROUP_DEVICE)");

	/* The new filter is in force; now drop the ones it replaces. */
	for (uint32_t i = 0; i < n_old; i++) {
		gr_autoclose int ofd = db_open_ours(old[i]);
		if (ofd < 0)
			continue;
		memset(&a, 0, sizeof(a));
		a.target_fd = (uint32_t)cgroup_dirfd;
		a.attach_bpf_fd = (uint32_t)ofd;
		a.attach_type = BPF_CGROUP_DEVICE;
		if ((r = db_bpf(BPF_PROG_DETACH, &a)) < 0 && r != -ENOENT)
			return gr_error_sys(err, -r, DB_FIELD ": the new eBPF device filter is attached, but the "
					    "previous one (program id %" PRIu32 ") cannot be detached (BPF_PROG_DETACH)",
					    old[i]);
	}
	return 0;
}
