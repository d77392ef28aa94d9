/* Async operations (operations.h). One registry under one mutex; each
 * operation runs on its own detached worker thread and is reference-counted
 * (the registry, the worker, and API callers holding op_get references).
 * Every change of status or metadata is an "operation" event; the end of an
 * operation also wakes the server so pending GET .../wait requests are
 * answered. */
#include "daemon/operations.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "common/log.h"
#include "daemon/api/server.h"
#include "daemon/events.h"

#define OP_RETENTION_MS (5 * 60 * 1000)
#define SHUTDOWN_WAIT_S 10

enum op_status {
	OP_RUNNING = 103,
	OP_CANCELLING = 104,
	OP_SUCCESS = 200,
	OP_FAILURE = 400,
	OP_CANCELLED = 401,
};

struct operation {
	struct operation *next;       /* registry list */
	struct daemon *d;
	unsigned refs;
	char id[37];
	char klass[16];
	char *description;
	char *instance;               /* name or NULL */
	char created_at[64], updated_at[64];
	enum op_status status;
	bool may_cancel;
	bool cancel_requested;
	json_t *metadata;
	char *err;
	uint64_t finished_ms;         /* monotonic, 0 while running */
	op_fn fn;
	void *arg;
	void (*free_arg)(void *arg);
	bool announced;               /* its creation event is out: the worker may start */
	/* websocket class */
	char secret[65];
	struct ws_relay *relay;       /* registered, not yet taken */
	bool relay_taken;
};

struct operations {
	pthread_mutex_t mu;
	pthread_cond_t cond;          /* a worker ended, a relay was taken, a cancel */
	struct operation *list;
	unsigned workers;             /* running worker threads */
};

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *status_name(enum op_status s)
{
	switch (s) {
	case OP_RUNNING: return "Running";
	case OP_CANCELLING: return "Cancelling";
	case OP_SUCCESS: return "Success";
	case OP_FAILURE: return "Failure";
	case OP_CANCELLED: return "Cancelled";
	}
	return "Unknown";
}

static bool is_final(enum op_status s)
{
	return s == OP_SUCCESS || s == OP_FAILURE || s == OP_CANCELLED;
}

static int random_hex(char *out, size_t nbytes)
{
	unsigned char b[32];
	if (nbytes > sizeof(b))
		return -EINVAL;
	size_t got = 0;
	while (got < nbytes) {
		ssize_t n = getrandom(b + got, nbytes - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	for (size_t i = 0; i < nbytes; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
	return 0;
}

static int make_uuid(char out[37])
{
	unsigned char b[16];
	size_t got = 0;
	while (got < sizeof(b)) {
		ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		got += (size_t)n;
	}
	b[6] = (b[6] & 0x0f) | 0x40;  /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80;  /* variant 10 */
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

void ws_relay_discard(struct ws_relay *relay)
{
	if (!relay)
		return;
	int fds[5] = { relay->to_fd, relay->from_fd, relay->chan_fd[0], relay->chan_fd[1], relay->chan_fd[2] };
	for (int i = 0; i < 5; i++) {
		if (fds[i] < 0)
			continue;
		bool dup_seen = false;
		for (int j = 0; j < i; j++)
			if (fds[j] == fds[i])
				dup_seen = true;
		if (!dup_seen)
			close(fds[i]);
	}
	free(relay);
}

/* Called with ops->mu held. */
static void op_unref_locked(struct operation *op)
{
	if (--op->refs > 0)
		return;
	ws_relay_discard(op->relay);
	if (op->free_arg)
		op->free_arg(op->arg);
	json_decref(op->metadata);
	free(op->description);
	free(op->instance);
	free(op->err);
	free(op);
}

/* Called with ops->mu held. */
static json_t *op_json_locked(const struct operation *op)
{
	json_t *res = json_object();
	json_t *insts = json_array();
	if (op->instance) {
		char url[128];
		snprintf(url, sizeof(url), "/1.0/instances/%s", op->instance);
		json_array_append_new(insts, json_string(url));
	}
	json_object_set_new(res, "instances", insts);
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:b, s:s}", "id", op->id, "class", op->klass,
			 "description", op->description, "created_at", op->created_at, "updated_at", op->updated_at,
			 "status", status_name(op->status), "status_code", (int)op->status, "resources", res,
			 "metadata", op->metadata ? json_incref(op->metadata) : json_object(), "may_cancel", op->may_cancel, "err",
			 op->err ? op->err : "");
}

/* Emits the operation's current state; called without the mutex. */
static void emit(struct daemon *d, json_t *snapshot)
{
	events_emit(d, "operation", snapshot);
}

int operations_init(struct daemon *d, struct gr_error *err)
{
	struct operations *ops = calloc(1, sizeof(*ops));
	if (!ops)
		return gr_error_set(err, ENOMEM, "cannot allocate the operation registry");
	pthread_mutex_init(&ops->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ops->cond, &ca);
	pthread_condattr_destroy(&ca);
	d->ops = ops;
	return 0;
}

void operations_free(struct daemon *d)
{
	struct operations *ops = d->ops;
	if (!ops)
		return;
	pthread_mutex_lock(&ops->mu);
	for (struct operation *op = ops->list; op; op = op->next)
		if (!is_final(op->status))
			op->cancel_requested = true;
	pthread_cond_broadcast(&ops->cond);
	if (ops->workers)
		gr_info("gureumd: waiting up to %d s for %u running operation(s)", SHUTDOWN_WAIT_S, ops->workers);
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SHUTDOWN_WAIT_S;
	while (ops->workers > 0)
		if (pthread_cond_timedwait(&ops->cond, &ops->mu, &deadline) == ETIMEDOUT)
			break;
	if (ops->workers > 0) {
		/* Their threads still use the registry: leave it to the exit. */
		gr_warn("gureumd: %u operation(s) still running at exit", ops->workers);
		pthread_mutex_unlock(&ops->mu);
		return;
	}
	for (struct operation *op = ops->list, *next; op; op = next) {
		next = op->next;
		op_unref_locked(op);
	}
	ops->list = NULL;
	pthread_mutex_unlock(&ops->mu);
	pthread_mutex_destroy(&ops->mu);
	pthread_cond_destroy(&ops->cond);
	free(ops);
	d->ops = NULL;
}

static void *worker(void *arg)
{
	struct operation *op = arg;
	struct daemon *d = op->d;
	struct operations *ops = d->ops;
	struct gr_error err = { 0 };
	/* Every event of the operation follows its creation event. */
	pthread_mutex_lock(&ops->mu);
	while (!op->announced)
		pthread_cond_wait(&ops->cond, &ops->mu);
	pthread_mutex_unlock(&ops->mu);
	int rc = op->fn(d, op, op->arg, &err);

	pthread_mutex_lock(&ops->mu);
	if (rc == 0)
		op->status = OP_SUCCESS;
	else if (op->cancel_requested && (rc == -ECANCELED || err.code == ECANCELED))
		op->status = OP_CANCELLED;
	else
		op->status = OP_FAILURE;
	if (rc < 0) {
		free(op->err);
		op->err = strdup(err.msg[0] ? err.msg : strerror(-rc));
	}
	events_timestamp(op->updated_at, sizeof(op->updated_at));
	op->finished_ms = now_ms();
	struct ws_relay *unclaimed = gr_steal_ptr(op->relay);
	json_t *snap = op_json_locked(op);
	if (rc < 0)
		gr_debug("operation %s (%s) failed: %s", op->id, op->description, op->err);
	pthread_mutex_unlock(&ops->mu);

	ws_relay_discard(unclaimed);
	emit(d, snap);
	server_wake(d);

	pthread_mutex_lock(&ops->mu);
	op_unref_locked(op);
	ops->workers--;
	pthread_cond_broadcast(&ops->cond);
	pthread_mutex_unlock(&ops->mu);
	return NULL;
}

unsigned operations_purge(struct daemon *d, uint64_t now)
{
	struct operations *ops = d->ops;
	unsigned n = 0;
	pthread_mutex_lock(&ops->mu);
	for (struct operation **pp = &ops->list; *pp;) {
		struct operation *op = *pp;
		if (op->finished_ms && now >= op->finished_ms + OP_RETENTION_MS) {
			*pp = op->next;
			op_unref_locked(op);
			n++;
		} else {
			pp = &op->next;
		}
	}
	pthread_mutex_unlock(&ops->mu);
	return n;
}

int op_start(struct daemon *d, const struct op_params *p, const char **id_out, json_t **json_out,
	     struct gr_error *err)
{
	struct operations *ops = d->ops;
	operations_purge(d, now_ms());
	struct operation *op = calloc(1, sizeof(*op));
	if (!op) {
		if (p->free_arg)
			p->free_arg(p->arg);
		return gr_error_set(err, ENOMEM, "cannot allocate an operation");
	}
	op->d = d;
	op->fn = p->fn;
	op->arg = p->arg;
	op->free_arg = p->free_arg;
	op->refs = 1;
	op->may_cancel = p->may_cancel;
	op->status = OP_RUNNING;
	snprintf(op->klass, sizeof(op->klass), "%s", p->klass && *p->klass ? p->klass : "task");
	op->description = strdup(p->description ? p->description : "");
	op->instance = p->instance ? strdup(p->instance) : NULL;
	events_timestamp(op->created_at, sizeof(op->created_at));
	memcpy(op->updated_at, op->created_at, sizeof(op->updated_at));
	int rc = make_uuid(op->id);
	if (rc == 0 && strcmp(op->klass, "websocket") == 0) {
		rc = random_hex(op->secret, 32);
		if (rc == 0) {
			char url[256];
			snprintf(url, sizeof(url), "/1.0/operations/%s/websocket?secret=%s", op->id, op->secret);
			op->metadata = json_pack("{s:s}", "websocket", url);
		}
	}
	if (rc < 0 || !op->description || (p->instance && !op->instance)) {
		pthread_mutex_lock(&ops->mu);
		op_unref_locked(op);
		pthread_mutex_unlock(&ops->mu);
		return rc < 0 ? gr_error_sys(err, -rc, "cannot make an operation id")
			      : gr_error_set(err, ENOMEM, "cannot allocate an operation");
	}

	pthread_mutex_lock(&ops->mu);
	op->refs = 2;                 /* the registry and the worker */
	op->next = ops->list;
	ops->list = op;
	ops->workers++;
	json_t *snap = op_json_locked(op);
	json_t *ret = json_deep_copy(snap);
	pthread_mutex_unlock(&ops->mu);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_t t;
	rc = pthread_create(&t, &attr, worker, op);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		pthread_mutex_lock(&ops->mu);
		for (struct operation **pp = &ops->list; *pp; pp = &(*pp)->next)
			if (*pp == op) {
				*pp = op->next;
				break;
			}
		ops->workers--;
		op_unref_locked(op);
		op_unref_locked(op);
		pthread_mutex_unlock(&ops->mu);
		json_decref(snap);
		json_decref(ret);
		return gr_error_sys(err, rc, "cannot start a worker thread");
	}
	*id_out = op->id;             /* valid while the registry holds it (5 minutes after it ends) */
	if (json_out)
		*json_out = ret;
	else
		json_decref(ret);
	emit(d, snap);
	pthread_mutex_lock(&ops->mu);
	op->announced = true;
	pthread_cond_broadcast(&ops->cond);
	pthread_mutex_unlock(&ops->mu);
	return 0;
}

void op_set_metadata(struct operation *op, json_t *metadata)
{
	struct operations *ops = op->d->ops;
	pthread_mutex_lock(&ops->mu);
	json_decref(op->metadata);
	op->metadata = metadata;
	events_timestamp(op->updated_at, sizeof(op->updated_at));
	json_t *snap = op_json_locked(op);
	pthread_mutex_unlock(&ops->mu);
	emit(op->d, snap);
}

bool op_cancelled(struct operation *op)
{
	struct operations *ops = op->d->ops;
	pthread_mutex_lock(&ops->mu);
	bool c = op->cancel_requested;
	pthread_mutex_unlock(&ops->mu);
	return c;
}

const char *op_id(const struct operation *op)
{
	return op->id;
}

const char *op_ws_secret(const struct operation *op)
{
	return op->secret;
}

void op_set_ws_relay(struct operation *op, struct ws_relay *relay)
{
	struct operations *ops = op->d->ops;
	pthread_mutex_lock(&ops->mu);
	struct ws_relay *old = op->relay;
	op->relay = relay;
	op->relay_taken = false;
	pthread_mutex_unlock(&ops->mu);
	ws_relay_discard(old);
	server_wake(op->d);           /* a client may be waiting for it */
}

int op_ws_wait(struct operation *op, int timeout_ms)
{
	struct operations *ops = op->d->ops;
	struct timespec deadline;
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	if (timeout_ms >= 0) {
		deadline.tv_sec += timeout_ms / 1000;
		deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
	}
	int rc = 0;
	pthread_mutex_lock(&ops->mu);
	while (!op->relay_taken) {
		if (op->cancel_requested) {
			rc = -ECANCELED;
			break;
		}
		if (!op->relay) {
			rc = -ENOENT;
			break;
		}
		if (timeout_ms < 0) {
			pthread_cond_wait(&ops->cond, &ops->mu);
		} else if (pthread_cond_timedwait(&ops->cond, &ops->mu, &deadline) == ETIMEDOUT) {
			rc = op->relay_taken ? 0 : -ETIMEDOUT;
			break;
		}
	}
	struct ws_relay *drop = rc < 0 ? gr_steal_ptr(op->relay) : NULL;
	pthread_mutex_unlock(&ops->mu);
	ws_relay_discard(drop);
	return rc;
}

int op_ws_claim(struct operation *op, const char *secret, struct ws_relay **relay)
{
	struct operations *ops = op->d->ops;
	*relay = NULL;
	if (!op->secret[0])
		return -ENOENT;
	/* Constant time over the secret's length. */
	size_t n = strlen(op->secret), slen = strlen(secret);
	unsigned char diff = (unsigned char)(slen != n);
	for (size_t i = 0; i < n; i++)
		diff |= (unsigned char)(op->secret[i] ^ (i < slen ? secret[i] : 0));
	if (diff)
		return -EACCES;
	int rc;
	pthread_mutex_lock(&ops->mu);
	if (op->relay_taken) {
		rc = -EALREADY;
	} else if (op->relay) {
		*relay = gr_steal_ptr(op->relay);
		op->relay_taken = true;
		pthread_cond_broadcast(&ops->cond);
		rc = 1;
	} else {
		rc = is_final(op->status) ? -ENOENT : 0;
	}
	pthread_mutex_unlock(&ops->mu);
	return rc;
}

struct operation *op_get(struct daemon *d, const char *id)
{
	struct operations *ops = d->ops;
	operations_purge(d, now_ms());
	struct operation *found = NULL;
	pthread_mutex_lock(&ops->mu);
	for (struct operation *op = ops->list; op; op = op->next)
		if (strcmp(op->id, id) == 0) {
			found = op;
			op->refs++;
			break;
		}
	pthread_mutex_unlock(&ops->mu);
	return found;
}

void op_put(struct operation *op)
{
	if (!op)
		return;
	struct operations *ops = op->d->ops;
	pthread_mutex_lock(&ops->mu);
	op_unref_locked(op);
	pthread_mutex_unlock(&ops->mu);
}

json_t *op_json(struct operation *op)
{
	struct operations *ops = op->d->ops;
	pthread_mutex_lock(&ops->mu);
	json_t *j = op_json_locked(op);
	pthread_mutex_unlock(&ops->mu);
	return j;
}

bool op_done(struct operation *op)
{
	struct operations *ops = op->d->ops;
	pthread_mutex_lock(&ops->mu);
	bool done = is_final(op->status);
	pthread_mutex_unlock(&ops->mu);
	return done;
}

int op_cancel(struct daemon *d, const char *id, struct gr_error *err)
{
	struct operation *op = op_get(d, id);
	if (!op)
		return gr_error_set(err, ENOENT, "operation %s not found", id);
	struct operations *ops = d->ops;
	int rc = 0;
	json_t *snap = NULL;
	pthread_mutex_lock(&ops->mu);
	if (is_final(op->status)) {
		rc = gr_error_set(err, EALREADY, "operation %s has already ended (%s)", id, status_name(op->status));
	} else if (!op->may_cancel) {
		rc = gr_error_set(err, EPERM, "operation %s (%s) cannot be cancelled", id, op->description);
	} else if (!op->cancel_requested) {
		op->cancel_requested = true;
		op->status = OP_CANCELLING;
		events_timestamp(op->updated_at, sizeof(op->updated_at));
		snap = op_json_locked(op);
		pthread_cond_broadcast(&ops->cond);
	}
	pthread_mutex_unlock(&ops->mu);
	if (snap)
		emit(d, snap);
	op_put(op);
	return rc;
}

json_t *operations_list(struct daemon *d, bool recursion)
{
	struct operations *ops = d->ops;
	operations_purge(d, now_ms());
	json_t *list = json_array();
	pthread_mutex_lock(&ops->mu);
	for (struct operation *op = ops->list; op; op = op->next) {
		if (recursion) {
			json_array_append_new(list, op_json_locked(op));
		} else {
			char url[128];
			snprintf(url, sizeof(url), "/1.0/operations/%s", op->id);
			json_array_append_new(list, json_string(url));
		}
	}
	pthread_mutex_unlock(&ops->mu);
	return list;
}
