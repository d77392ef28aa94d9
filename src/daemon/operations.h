/* Async operations (Incus's): slow work runs on a worker thread; the client
 * gets 202 with /1.0/operations/ID at once and can GET it, wait for it
 * (GET .../wait, answered when it ends: the server keeps the request pending,
 * it does not block its thread), cancel it (DELETE, when may_cancel) and see
 * it in the events stream. Finished operations are kept for 5 minutes. */
#ifndef GR_DAEMON_OPERATIONS_H
#define GR_DAEMON_OPERATIONS_H

#include <jansson.h>
#include <stdbool.h>
#include "common/error.h"
#include "daemon/daemon.h"

struct operation;

/* The work: returns 0 or -errno with err filled; may set metadata with
 * op_set_metadata; should check op_cancelled() where it can stop early. */
typedef int (*op_fn)(struct daemon *d, struct operation *op, void *arg, struct gr_error *err);

struct op_params {
	const char *description;      /* "Creating instance" */
	const char *klass;            /* "task" or "websocket" */
	const char *instance;         /* resources.instances, or NULL */
	bool may_cancel;
	op_fn fn;
	void *arg;                    /* owned by the operation once created: */
	void (*free_arg)(void *arg);  /* called when the operation is freed */
};

/* Creates and starts the operation; *id_out (UUID string, static storage in
 * the operation) and *json_out (its object, a new reference) for the 202. */
int op_start(struct daemon *d, const struct op_params *p, const char **id_out, json_t **json_out,
	     struct gr_error *err);
void op_set_metadata(struct operation *op, json_t *metadata);    /* steals; emits an operation event */
bool op_cancelled(struct operation *op);
const char *op_id(const struct operation *op);

int operations_init(struct daemon *d, struct gr_error *err);
void operations_free(struct daemon *d);

#endif
