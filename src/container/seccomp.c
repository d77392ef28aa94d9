/* seccomp through libseccomp, with runc/crun semantics:
 * - unknown syscall names are skipped;
 * - a rule whose action equals the default action is skipped;
 * - when several conditions share one argument index, each condition becomes
 *   a rule of its own (libseccomp refuses two comparisons of one argument);
 * - SCMP_ACT_ERRNO and SCMP_ACT_TRACE default to EPERM;
 * - no_new_privs is left to the runtime (SCMP_FLTATR_CTL_NNP = 0). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "../common/cleanup.h"
#include "../common/log.h"
#include "security.h"

static void seccomp_releasep(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}
#define gr_autoseccomp _cleanup_(seccomp_releasep)

const char *const seccomp_action_names[] = {
	"SCMP_ACT_KILL",
	"SCMP_ACT_KILL_PROCESS",
	"SCMP_ACT_KILL_THREAD",
	"SCMP_ACT_TRAP",
	"SCMP_ACT_ERRNO",
	"SCMP_ACT_TRACE",
	"SCMP_ACT_ALLOW",
	"SCMP_ACT_LOG",
	NULL,
};

/* In the order of enum oci_seccomp_op. */
const char *const seccomp_operator_names[] = {
	"SCMP_CMP_NE",
	"SCMP_CMP_LT",
	"SCMP_CMP_LE",
	"SCMP_CMP_EQ",
	"SCMP_CMP_GE",
	"SCMP_CMP_GT",
	"SCMP_CMP_MASKED_EQ",
	NULL,
};

static const enum scmp_compare seccomp_ops[] = {
	[SC_OP_NE] = SCMP_CMP_NE,
	[SC_OP_LT] = SCMP_CMP_LT,
	[SC_OP_LE] = SCMP_CMP_LE,
	[SC_OP_EQ] = SCMP_CMP_EQ,
	[SC_OP_GE] = SCMP_CMP_GE,
	[SC_OP_GT] = SCMP_CMP_GT,
	[SC_OP_MASKED_EQ] = SCMP_CMP_MASKED_EQ,
};

static const struct {
	const char *name;
	uint32_t token;
} seccomp_arches[] = {
	{ "SCMP_ARCH_X86", SCMP_ARCH_X86 },
	{ "SCMP_ARCH_X86_64", SCMP_ARCH_X86_64 },
	{ "SCMP_ARCH_X32", SCMP_ARCH_X32 },
	{ "SCMP_ARCH_ARM", SCMP_ARCH_ARM },
	{ "SCMP_ARCH_AARCH64", SCMP_ARCH_AARCH64 },
	{ "SCMP_ARCH_MIPS", SCMP_ARCH_MIPS },
	{ "SCMP_ARCH_MIPS64", SCMP_ARCH_MIPS64 },
	{ "SCMP_ARCH_MIPS64N32", SCMP_ARCH_MIPS64N32 },
	{ "SCMP_ARCH_MIPSEL", SCMP_ARCH_MIPSEL },
	{ "SCMP_ARCH_MIPSEL64", SCMP_ARCH_MIPSEL64 },
	{ "SCMP_ARCH_MIPSEL64N32", SCMP_ARCH_MIPSEL64N32 },
	{ "SCMP_ARCH_PPC", SCMP_ARCH_PPC },
	{ "SCMP_ARCH_PPC64", SCMP_ARCH_PPC64 },
	{ "SCMP_ARCH_PPC64LE", SCMP_ARCH_PPC64LE },
	{ "SCMP_ARCH_S390", SCMP_ARCH_S390 },
	{ "SCMP_ARCH_S390X", SCMP_ARCH_S390X },
	{ "SCMP_ARCH_PARISC", SCMP_ARCH_PARISC },
	{ "SCMP_ARCH_PARISC64", SCMP_ARCH_PARISC64 },
	{ "SCMP_ARCH_RISCV64", SCMP_ARCH_RISCV64 },
#ifdef SCMP_ARCH_LOONGARCH64
	{ "SCMP_ARCH_LOONGARCH64", SCMP_ARCH_LOONGARCH64 },
#endif
#ifdef SCMP_ARCH_M68K
	{ "SCMP_ARCH_M68K", SCMP_ARCH_M68K },
#endif
#ifdef SCMP_ARCH_SH
	{ "SCMP_ARCH_SH", SCMP_ARCH_SH },
	{ "SCMP_ARCH_SHEB", SCMP_ARCH_SHEB },
#endif
};
#define N_ARCHES (sizeof(seccomp_arches) / sizeof(seccomp_arches[0]))

const char *const seccomp_arch_names[] = {
	"SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
	"SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
	"SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
	"SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
	"SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",
#ifdef SCMP_ARCH_LOONGARCH64
	"SCMP_ARCH_LOONGARCH64",
#endif
#ifdef SCMP_ARCH_M68K
	"SCMP_ARCH_M68K",
#endif
#ifdef SCMP_ARCH_SH
	"SCMP_ARCH_SH", "SCMP_ARCH_SHEB",
#endif
	NULL,
};

const char *const seccomp_flag_names[] = {
	"SECCOMP_FILTER_FLAG_TSYNC",
	"SECCOMP_FILTER_FLAG_LOG",
	"SECCOMP_FILTER_FLAG_SPEC_ALLOW",
	NULL,
};

static const struct {
	const char *name;
	enum scmp_filter_attr attr;
} seccomp_flags[] = {
	{ "SECCOMP_FILTER_FLAG_TSYNC", SCMP_FLTATR_CTL_TSYNC },
	{ "SECCOMP_FILTER_FLAG_LOG", SCMP_FLTATR_CTL_LOG },
	{ "SECCOMP_FILTER_FLAG_SPEC_ALLOW", SCMP_FLTATR_CTL_SSB },
};

/* Turns an action name (plus errnoRet) into a libseccomp action. `path` names
 * the field for errors. */
static int seccomp_action_parse(const char *name, bool has_ret, uint32_t ret, const char *path,
				uint32_t *out, struct gr_error *err)
{
	if (!name)
		return gr_error_set(err, EINVAL, "%s: missing action", path);
	if (has_ret && strcmp(name, "SCMP_ACT_ERRNO") != 0 && strcmp(name, "SCMP_ACT_TRACE") != 0)
		return gr_error_set(err, EINVAL, "%s: errnoRet is only valid with SCMP_ACT_ERRNO or "
				    "SCMP_ACT_TRACE, not %s", path, name);
	if (has_ret && ret > 0xffff)
		return gr_error_set(err, EINVAL, "%s: errnoRet %u is out of range (0..65535)", path, ret);

	if (strcmp(name, "SCMP_ACT_KILL") == 0 || strcmp(name, "SCMP_ACT_KILL_THREAD") == 0)
		*out = SCMP_ACT_KILL_THREAD;
	else if (strcmp(name, "SCMP_ACT_KILL_PROCESS") == 0)
		*out = SCMP_ACT_KILL_PROCESS;
	else if (strcmp(name, "SCMP_ACT_TRAP") == 0)
		*out = SCMP_ACT_TRAP;
	else if (strcmp(name, "SCMP_ACT_ERRNO") == 0)
		*out = SCMP_ACT_ERRNO(has_ret ? ret : EPERM);
	else if (strcmp(name, "SCMP_ACT_TRACE") == 0)
		*out = SCMP_ACT_TRACE(has_ret ? ret : EPERM);
	else if (strcmp(name, "SCMP_ACT_ALLOW") == 0)
		*out = SCMP_ACT_ALLOW;
	else if (strcmp(name, "SCMP_ACT_LOG") == 0)
		*out = SCMP_ACT_LOG;
	else if (strcmp(name, "SCMP_ACT_NOTIFY") == 0)
		return gr_error_set(err, ENOTSUP, "linux.seccomp: SCMP_ACT_NOTIFY needs a listenerPath, "
				    "which gureum-runtime does not support yet");
	else
		return gr_error_set(err, EINVAL, "%s: unknown action \"%s\"", path, name);
	return 0;
}

static int seccomp_arch_lookup(const char *name, uint32_t *out)
{
	for (size_t i = 0; i < N_ARCHES; i++)
		if (strcmp(seccomp_arches[i].name, name) == 0) {
			*out = seccomp_arches[i].token;
			return 0;
		}
	return -1;
}

static int seccomp_add_archs(scmp_filter_ctx ctx, char *const *archs, struct gr_error *err)
{
	for (size_t i = 0; archs && archs[i]; i++) {
		uint32_t token;
		if (seccomp_arch_lookup(archs[i], &token) < 0)
			return gr_error_set(err, EINVAL, "linux.seccomp.architectures[%zu]: unknown "
					    "architecture \"%s\"", i, archs[i]);
		int r = seccomp_arch_add(ctx, token);
		if (r == -EDOM) {
			/* An architecture of the other endianness cannot share a
			 * filter with the native one, and its syscalls can never
			 * reach this kernel: skip it. */
			gr_debug("linux.seccomp.architectures[%zu]: %s cannot be combined with the native "
				 "architecture, skipped", i, archs[i]);
			continue;
		}
		if (r < 0 && r != -EEXIST)
			return gr_error_sys(err, -r, "linux.seccomp.architectures[%zu]: adding %s",
					    i, archs[i]);
	}
	return 0;
}

static int seccomp_set_flags(scmp_filter_ctx ctx, char *const *flags, struct gr_error *err)
{
	for (size_t i = 0; flags && flags[i]; i++) {
		size_t j;
		for (j = 0; j < sizeof(seccomp_flags) / sizeof(seccomp_flags[0]); j++)
			if (strcmp(seccomp_flags[j].name, flags[i]) == 0)
				break;
		if (j == sizeof(seccomp_flags) / sizeof(seccomp_flags[0]))
			return gr_error_set(err, EINVAL, "linux.seccomp.flags[%zu]: unknown flag \"%s\"",
					    i, flags[i]);
		int r = seccomp_attr_set(ctx, seccomp_flags[j].attr, 1);
		if (r < 0)
			return gr_error_sys(err, -r, "linux.seccomp.flags[%zu]: %s is not supported by "
					    "this kernel or libseccomp (API level %u)",
					    i, flags[i], seccomp_api_get());
	}
	return 0;
}

static int seccomp_add_rule(scmp_filter_ctx ctx, const struct oci_seccomp_rule *rule, size_t ri,
			    uint32_t action, struct gr_error *err)
{
	struct scmp_arg_cmp cmps[6];
	unsigned count[6] = { 0 };
	bool split = false;

	if (rule->n_args > 6)
		return gr_error_set(err, EINVAL, "linux.seccomp.syscalls[%zu].args: %zu conditions, "
				    "at most 6 are supported", ri, rule->n_args);
	for (size_t a = 0; a < rule->n_args; a++) {
		const struct oci_seccomp_arg *arg = &rule->args[a];
		if (arg->index > 5)
			return gr_error_set(err, EINVAL, "linux.seccomp.syscalls[%zu].args[%zu].index: "
					    "%u is out of range (0..5)", ri, a, arg->index);
		if ((unsigned)arg->op > SC_OP_MASKED_EQ)
			return gr_error_set(err, EINVAL, "linux.seccomp.syscalls[%zu].args[%zu].op: "
					    "unknown operator %d", ri, a, (int)arg->op);
		/* For SCMP_CMP_MASKED_EQ datum_a is the mask and datum_b the value,
		 * exactly as the spec's value and valueTwo. */
		cmps[a] = (struct scmp_arg_cmp){
			.arg = arg->index,
			.op = seccomp_ops[arg->op],
			.datum_a = arg->value,
			.datum_b = arg->value_two,
		};
		if (++count[arg->index] > 1)
			split = true;
	}

	for (size_t n = 0; rule->names && rule->names[n]; n++) {
		const char *name = rule->names[n];
		int nr = seccomp_syscall_resolve_name(name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* unknown here: skipped, as runc and crun do */

		int r;
		if (rule->n_args == 0) {
			r = seccomp_rule_add_array(ctx, action, nr, 0, NULL);
		} else if (!split) {
			r = seccomp_rule_add_array(ctx, action, nr, (unsigned)rule->n_args, cmps);
		} else {
			r = 0;
			for (size_t a = 0; a < rule->n_args && r == 0; a++)
				r = seccomp_rule_add_array(ctx, action, nr, 1, &cmps[a]);
		}
		if (r < 0)
			return gr_error_sys(err, -r, "linux.seccomp.syscalls[%zu].names[%zu]: adding the rule "
					    "for \"%s\"", ri, n, name);
	}
	return 0;
}

int seccomp_build(const struct oci_seccomp *s, scmp_filter_ctx *out, struct gr_error *err)
{
	uint32_t def;
	int r;

	*out = NULL;
	if (!s)
		return gr_error_set(err, EINVAL, "linux.seccomp: missing");
	r = seccomp_action_parse(s->default_action, s->default_errno_ret.set, s->default_errno_ret.v,
				 "linux.seccomp.defaultAction", &def, err);
	if (r < 0)
		return r;

	gr_autoseccomp scmp_filter_ctx ctx = seccomp_init(def);
	if (!ctx)
		return gr_error_set(err, EINVAL, "linux.seccomp.defaultAction: libseccomp refused %s "
				    "(is it supported by this kernel? API level %u)",
				    s->default_action, seccomp_api_get());
	if ((r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0)) < 0)
		return gr_error_sys(err, -r, "linux.seccomp: clearing the no_new_privs attribute");
	/* Report the kernel's own errno from seccomp_load (not -ECANCELED);
	 * older libseccomp without the attribute keeps its default. */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_API_SYSRAWRC, 1);
	if ((r = seccomp_add_archs(ctx, s->architectures, err)) < 0)
		return r;
	if ((r = seccomp_set_flags(ctx, s->flags, err)) < 0)
		return r;

	for (size_t i = 0; i < s->n_syscalls; i++) {
		const struct oci_seccomp_rule *rule = &s->syscalls[i];
		char path[64];
		uint32_t act;

		snprintf(path, sizeof(path), "linux.seccomp.syscalls[%zu].action", i);
		r = seccomp_action_parse(rule->action, rule->errno_ret.set, rule->errno_ret.v, path, &act, err);
		if (r < 0)
			return r;
		if (act == def)
			continue; /* libseccomp rejects rules equal to the default */
		if ((r = seccomp_add_rule(ctx, rule, i, act, err)) < 0)
			return r;
	}
	*out = gr_steal_ptr(ctx);
	return 0;
}

int seccomp_apply(const struct oci_seccomp *s, struct gr_error *err)
{
	gr_autoseccomp scmp_filter_ctx ctx = NULL;
	int r = seccomp_build(s, &ctx, err);
	if (r < 0)
		return r;
	r = seccomp_load(ctx);
	if (r == -EACCES || r == -EPERM)
		return gr_error_sys(err, -r, "linux.seccomp: loading the filter (the process needs "
				    "no_new_privs or CAP_SYS_ADMIN)");
	if (r < 0)
		return gr_error_sys(err, -r, "linux.seccomp: loading the filter");
	return 0;
}
