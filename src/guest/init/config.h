/* /etc/gureum/instance.json, written by gureumd into the per-instance
 * initramfs (README.md has the format). Every field is checked here. */
#ifndef GR_GUEST_CONFIG_H
#define GR_GUEST_CONFIG_H

#include <netinet/in.h>
#include <stdbool.h>

#include "common/error.h"

#define GINIT_CONFIG_PATH "/etc/gureum/instance.json"
#define GINIT_MAX_DNS 3

struct ginit_network {
	bool has_mac;
	unsigned char mac[6];
	struct in_addr address;
	unsigned prefix;            /* 0..32 */
	bool has_gateway;
	struct in_addr gateway;
	unsigned ndns;
	struct in_addr dns[GINIT_MAX_DNS];
};

/* A block volume: the disk with virtio serial "gureum-diskN" (N = disk). */
struct ginit_volume {
	unsigned disk;              /* 1.. (0 is the root disk) */
	char *name;                 /* the volume's name: /dev/disk/gureum/NAME */
	char *path;                 /* where it is mounted when it holds ext4 */
	bool readonly;
};
#define GINIT_MAX_VOLUMES 32

struct ginit_config {
	char *hostname;             /* NULL: unchanged */
	char **command;             /* NULL: exec the image's init */
	char **env;                 /* for the command; never NULL */
	char *cwd;                  /* for the command; "/" by default */
	bool has_network;           /* false: DHCP (command mode, when the image has a client) */
	struct ginit_network net;
	char *agent_port;           /* "org.gureum.agent.0": ports org.gureum.agent.N are served */
	unsigned agent_vsock_port;  /* 0: no vsock listener */
	char *root;                 /* "/dev/vda" */
	bool has_root_disk;         /* the root is the disk with serial "gureum-disk0", not `root` */
	struct ginit_volume *volumes;
	size_t nvolumes;
	char *rootfstype;           /* "ext4" */
	char *init;                 /* "/sbin/init" */
};

int ginit_config_parse(const char *text, struct ginit_config *c, struct gr_error *err);
int ginit_config_load(const char *path, struct ginit_config *c, struct gr_error *err);
void ginit_config_free(struct ginit_config *c);

/* "A.B.C.D/P" (P 0..32) */
int ginit_parse_cidr(const char *s, struct in_addr *addr, unsigned *prefix);
/* "aa:bb:cc:dd:ee:ff" (either case) */
int ginit_parse_mac(const char *s, unsigned char mac[6]);
/* Whether a virtio port name is one of the agent's: the same as `agent_port`
 * with its trailing number replaced by any number (1 to 3 digits). */
bool ginit_agent_port_match(const char *agent_port, const char *name);

#endif
