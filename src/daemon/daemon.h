/* gureumd's shared state: what every part of the daemon reaches through one
 * struct daemon. Filled by main.c in this order: paths, store (SQLite),
 * events, operations, reconcile, server. */
#ifndef GR_DAEMON_H
#define GR_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include "common/error.h"
#include "daemon/instance/driver.h"

struct store;        /* store/store.h: SQLite */
struct events;       /* events.h: the event hub */
struct operations;   /* operations.h: async operations */
struct server;       /* api/server.h: libwebsockets */
struct image_store;  /* image/store.h: images and layers */
struct networks;     /* network/network.h: bridges, IPAM, NAT, forwards, dnsmasq */

struct daemon {
	struct driver_env env;        /* state_dir, run_dir, libexec_dir */
	const char *listen;           /* --listen ADDR:PORT for TLS, or NULL */
	struct store *store;
	struct image_store *images;   /* NULL only before start-up opened it */
	struct networks *networks;    /* NULL only before start-up */
	struct events *events;
	struct operations *ops;
	struct server *server;
	/* Serializes operations on one instance: instance_lock(d, name) before
	 * any driver call or state change of that instance. */
	pthread_mutex_t locks_mu;
	struct instance_lock *locks;  /* list, by name (api/instances.c) */
	volatile int stopping;        /* set by SIGTERM/SIGINT */
};

#endif
