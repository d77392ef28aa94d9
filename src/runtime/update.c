/* update: change the resource limits of a running container, from
 * --resources FILE (linux.resources JSON, "-" for stdin) and/or flags. */
#include "runtime.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "1048576", "512k", "64m", "1g"; "-1" means unlimited. */
static int parse_size(const char *s, int64_t *out)
{
	if (strcmp(s, "-1") == 0) {
		*out = -1;
		return 0;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return -EINVAL;
	unsigned long long mult = 1;
	if (*end) {
		switch (*end | 0x20) {
		case 'k': mult = 1ULL << 10; break;
		case 'm': mult = 1ULL << 20; break;
		case 'g': mult = 1ULL << 30; break;
		case 't': mult = 1ULL << 40; break;
		case 'b': mult = 1; break;
		default: return -EINVAL;
		}
		end++;
		if ((*end | 0x20) == 'b' || (*end | 0x20) == 'i')
			end++;
		if (*end && (*end | 0x20) == 'b')
			end++;
		if (*end)
			return -EINVAL;
	}
	if (v > (unsigned long long)INT64_MAX / mult)
		return -ERANGE;
	*out = (int64_t)(v * mult);
	return 0;
}

int cmd_update(struct globals *g, int argc, char **argv)
{
	enum { O_RES = 'r', O_MEM = 256, O_MEMRES, O_SWAP, O_SHARES, O_QUOTA, O_PERIOD, O_RT_RUNTIME, O_RT_PERIOD,
	       O_CPUS, O_MEMS, O_PIDS, O_BLKIO, O_KMEM, O_KMEM_TCP };
	static const struct option opts[] = {
		{ "resources", required_argument, NULL, O_RES },
		{ "memory", required_argument, NULL, O_MEM },
		{ "memory-reservation", required_argument, NULL, O_MEMRES },
		{ "memory-swap", required_argument, NULL, O_SWAP },
		{ "cpu-shares", required_argument, NULL, O_SHARES },
		{ "cpu-quota", required_argument, NULL, O_QUOTA },
		{ "cpu-period", required_argument, NULL, O_PERIOD },
		{ "cpu-rt-runtime", required_argument, NULL, O_RT_RUNTIME },
		{ "cpu-rt-period", required_argument, NULL, O_RT_PERIOD },
		{ "cpuset-cpus", required_argument, NULL, O_CPUS },
		{ "cpuset-mems", required_argument, NULL, O_MEMS },
		{ "pids-limit", required_argument, NULL, O_PIDS },
		{ "blkio-weight", required_argument, NULL, O_BLKIO },
		{ "kernel-memory", required_argument, NULL, O_KMEM },
		{ "kernel-memory-tcp", required_argument, NULL, O_KMEM_TCP },
		{ 0 },
	};
	_cleanup_(oci_resources_free) struct oci_resources res = { 0 };
	struct gr_error err = { 0 };
	gr_autojson json_t *from_file = NULL;
	/* Pass 1: the --resources document, so that flags (pass 2) override it. */
	int c;
	while ((c = getopt_long(argc, argv, "+r:", opts, NULL)) != -1) {
		if (c == '?')
			return runtime_usage("update", "unknown option \"%s\"", argv[optind - 1]);
		if (c != O_RES)
			continue;
		if (from_file)
			return runtime_usage("update", "--resources given twice");
		gr_autofree char *text = NULL;
		const char *src = strcmp(optarg, "-") == 0 ? "/dev/stdin" : optarg;
		if (gr_read_file(src, &text, NULL, &err) < 0 ||
		    gr_json_load_string(optarg, text, &from_file, &err) < 0 ||
		    oci_resources_parse(from_file, "", &res, &err) < 0)
			return runtime_fail(&err);
	}
	optind = 0;
	while ((c = getopt_long(argc, argv, "+r:", opts, NULL)) != -1) {
		const char *name = NULL;
		int64_t v = 0;
		uint64_t u = 0;
		if (c >= O_MEM && c <= O_KMEM_TCP && c != O_CPUS && c != O_MEMS) {
			for (const struct option *o = opts; o->name; o++)
				if (o->val == c)
					name = o->name;
			bool size = c == O_MEM || c == O_MEMRES || c == O_SWAP || c == O_KMEM || c == O_KMEM_TCP;
			int r = size ? parse_size(optarg, &v) : gr_parse_i64(optarg, &v);
			if (r < 0)
				return runtime_usage("update", "--%s: expected %s, got \"%s\"", name,
						     size ? "a size in bytes (k, m, g suffixes allowed)" : "an integer", optarg);
			u = (uint64_t)v;
		}
		switch (c) {
		case O_RES:
			break; /* read in pass 1 */
		case O_MEM: res.memory.limit.set = true; res.memory.limit.v = v; break;
		case O_MEMRES: res.memory.reservation.set = true; res.memory.reservation.v = v; break;
		case O_SWAP: res.memory.swap.set = true; res.memory.swap.v = v; break;
		case O_KMEM: res.memory.kernel.set = true; res.memory.kernel.v = v; break;
		case O_KMEM_TCP: res.memory.kernel_tcp.set = true; res.memory.kernel_tcp.v = v; break;
		case O_SHARES: res.cpu.shares.set = true; res.cpu.shares.v = u; break;
		case O_QUOTA: res.cpu.quota.set = true; res.cpu.quota.v = v; break;
		case O_PERIOD: res.cpu.period.set = true; res.cpu.period.v = u; break;
		case O_RT_RUNTIME: res.cpu.realtime_runtime.set = true; res.cpu.realtime_runtime.v = v; break;
		case O_RT_PERIOD: res.cpu.realtime_period.set = true; res.cpu.realtime_period.v = u; break;
		case O_CPUS: free(res.cpu.cpus); res.cpu.cpus = strdup(optarg); break;
		case O_MEMS: free(res.cpu.mems); res.cpu.mems = strdup(optarg); break;
		case O_PIDS: res.pids.limit.set = true; res.pids.limit.v = v; break;
		case O_BLKIO:
			if (v < 10 || v > 1000)
				return runtime_usage("update", "--blkio-weight: expected 10 to 1000, got \"%s\"", optarg);
			res.blkio.weight.set = true;
			res.blkio.weight.v = (uint16_t)v;
			break;
		default:
			return runtime_usage("update", "unknown option \"%s\"", name ? name : "?");
		}
	}
	const char *id;
	if (runtime_one_id("update", argc, argv, &id))
		return 1;
	if (container_update(g->root, id, &res, &err) < 0)
		return runtime_fail(&err);
	return 0;
}
