/* One dnsmasq per network (Debian's dnsmasq-base, run as a daemon), for
 * DHCP (static leases only: the database's IPAM decides every address) and
 * DNS (instance names, NAME and NAME.gureum; other names go to the host's
 * resolvers).
 *
 *   STATE/networks/NAME/dhcp-hosts     MAC,ADDR,NAME lines (--dhcp-hostsfile);
 *                                      just MAC,ADDR when dnsmasq would read
 *                                      NAME as a lease time (123, 1h, 2d,
 *                                      infinite) or as "ignore"
 *   STATE/networks/NAME/hosts          "ADDR NAME NAME.gureum" lines (--addn-hosts)
 *   STATE/networks/NAME/leases         --dhcp-leasefile
 *   RUN/networks/NAME/dnsmasq.pid      --pid-file
 *   RUN/networks/NAME/dnsmasq.log      --log-facility (not rotated: dnsmasq
 *                                      reopens it on SIGUSR2)
 *
 * dnsmasq is started with an argument vector (no shell) and a config of
 * /dev/null; it is not gureumd's child (it daemonizes), so it outlives a
 * gureumd restart as instances do. It is identified by its pid file and
 * checked to be a dnsmasq with that pid file on its command line before
 * anything is sent to it: /proc/PID/exe must be the dnsmasq binary (also
 * when a package upgrade replaced it since) and /proc/PID/cmdline must hold
 * --pid-file=RUN/networks/NAME/dnsmasq.pid; a stale pid file is never
 * followed by a signal. It inherits no descriptor of gureumd's.
 *
 * Its arguments: --conf-file=/dev/null --user=root --no-hosts --strict-order
 * --bind-interfaces --except-interface=lo --interface=BRIDGE
 * --listen-address=GATEWAY, the files above, --dhcp-range=FIRST_HOST,static,
 * NETMASK,1h --dhcp-lease-max=(hosts in the subnet) --dhcp-no-override
 * --dhcp-authoritative --dhcp-ignore-names (a guest cannot name itself into
 * DNS) --domain=gureum --local=/gureum/ --domain-needed (a dotless name that
 * is no instance is not forwarded). No --no-resolv: other names go to the
 * resolvers of the host's /etc/resolv.conf.
 *
 * --user=root: dnsmasq reads the host files after dropping privileges (at
 * start and on every SIGHUP), and STATE is 0700 root; as "nobody" it could
 * read neither. Moving them to a directory nobody can traverse would let it
 * drop root (then remove --user=root).
 *
 * The binary is /usr/sbin/dnsmasq, or the path in the environment variable
 * GUREUM_DNSMASQ (for tests). */
#ifndef GR_DAEMON_NETWORK_DNSMASQ_H
#define GR_DAEMON_NETWORK_DNSMASQ_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "common/error.h"
#include "daemon/network/addr.h"

#define DNSMASQ_DOMAIN "gureum"

struct dnsmasq_net {
	const char *name;         /* the network's name */
	const char *bridge;
	struct ipv4_net subnet;
	const char *state_dir;    /* STATE/networks/NAME (made 0700 if missing) */
	const char *run_dir;      /* RUN/networks/NAME (made 0700 if missing) */
};

struct dnsmasq_host {
	const char *name;         /* instance name */
	const uint8_t *mac;       /* 6 bytes */
	uint32_t addr;
};

/* Atomically and durably rewrites dhcp-hosts and hosts (a new temporary
 * file, fsync, rename, fsync of the directory), making the state and run
 * directories if missing. -EINVAL, with nothing written, for a name that is
 * not 1-63 of a-z, 0-9 and '-', a NULL MAC, or an address outside the
 * subnet. */
int dnsmasq_write_hosts(const struct dnsmasq_net *n, const struct dnsmasq_host *hosts, size_t count,
			struct gr_error *err);
/* The running dnsmasq of the network (checked as above), or 0. */
pid_t dnsmasq_pid(const struct dnsmasq_net *n);
/* Makes it run: when it runs, SIGHUP (rereads both host files; it does so
 * in its own time, shortly after); else starts it and returns once it
 * serves (its launcher exited 0 and the pid file names it; a failure
 * carries dnsmasq's message, -EIO). The host files must have been written
 * (-ENOENT). */
int dnsmasq_ensure(const struct dnsmasq_net *n, struct gr_error *err);
/* SIGTERM, waits for it to exit (SIGKILL after 5 s; -ETIMEDOUT if even
 * that does not end it within 5 s more), removes the pid file. 0 when it
 * does not run (a stale pid file is removed). */
int dnsmasq_stop(const struct dnsmasq_net *n, struct gr_error *err);

#endif
