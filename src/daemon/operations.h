/* Async operations (Incus's): slow work runs on a worker thread; the client
 * gets 202 with /1.0/operations/ID at once and can GET it, wait for it
 * (GET .../wait, answered when it ends: the server keeps the request pending,
 * it does not block its thread), cancel it (DELETE, when may_cancel) and see
 * it in the events stream. Finished operations are kept for 5 minutes. */
#ifndef GR_DAEMON_OPERATIONS_H
#define GR_DAEMON_OPERATIONS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
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

/* The "websocket" class (exec with wait-for-websocket): op_start makes a
 * secret and the operation's metadata starts as
 * {"websocket":"/1.0/operations/ID/websocket?secret=S"} (op_set_metadata
 * replaces it, e.g. with {"return":CODE} at the end). The worker, once the
 * process runs, registers its relay (server.h; the operation owns it until a
 * client connects to that URL, then the server owns it and calls its
 * closed() when the connection ends), then waits for the client:
 * op_ws_wait returns 0 once a client has the relay, -ETIMEDOUT after
 * timeout_ms (< 0: no limit) or -ECANCELED when the operation is cancelled;
 * on failure the relay is unregistered, its descriptors closed and closed()
 * NOT called (the worker knows). A relay still registered when the worker
 * returns is freed the same way. */
struct ws_relay;
const char *op_ws_secret(const struct operation *op);     /* "" unless class "websocket" */
void op_set_ws_relay(struct operation *op, struct ws_relay *relay);
int op_ws_wait(struct operation *op, int timeout_ms);

/* For the API (api/core.c). op_get returns a new reference or NULL. */
struct operation *op_get(struct daemon *d, const char *id);
void op_put(struct operation *op);
json_t *op_json(struct operation *op);                     /* new reference */
bool op_done(struct operation *op);
/* DELETE: -ENOENT unknown, -EPERM not cancellable (may_cancel false),
 * -EALREADY already finished; 0: cancel requested (status Cancelling; the
 * work sees op_cancelled and ends as Cancelled). */
int op_cancel(struct daemon *d, const char *id, struct gr_error *err);
/* URLs, or objects with recursion. */
json_t *operations_list(struct daemon *d, bool recursion);
/* A client of GET .../websocket: 1 with *relay (now the caller's), 0 when
 * the relay is not registered yet, -EACCES wrong secret, -EALREADY already
 * taken, -ENOENT not a websocket operation or finished without one. */
int op_ws_claim(struct operation *op, const char *secret, struct ws_relay **relay);
/* Drops finished operations older than 5 minutes (called on every access;
 * exposed with an explicit clock for tests). Returns how many were dropped. */
unsigned operations_purge(struct daemon *d, uint64_t now_ms);
/* Frees a relay nobody took: closes its descriptors (closed() not called). */
void ws_relay_discard(struct ws_relay *relay);

int operations_init(struct daemon *d, struct gr_error *err);
/* Cancels every running operation and waits up to 10 s for the workers
 * (instances keep running); frees the registry when they all ended. */
void operations_free(struct daemon *d);

#endif
