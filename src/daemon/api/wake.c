/* server_wake: safe from any thread at any time, also while the server
 * starts or stops (the context is reached only under the mutex). */
#include "daemon/api/wake.h"

#include <libwebsockets.h>
#include <pthread.h>

#include "daemon/api/server.h"

static pthread_mutex_t g_wake_mu = PTHREAD_MUTEX_INITIALIZER;
static struct lws_context *g_wake_ctx;

void server_wake_set_context(void *lws_context)
{
	pthread_mutex_lock(&g_wake_mu);
	g_wake_ctx = lws_context;
	pthread_mutex_unlock(&g_wake_mu);
}

void server_wake(struct daemon *d)
{
	(void)d;
	pthread_mutex_lock(&g_wake_mu);
	if (g_wake_ctx)
		lws_cancel_service(g_wake_ctx);
	pthread_mutex_unlock(&g_wake_mu);
}
