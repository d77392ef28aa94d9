/* server_wake (server.h) on its own, so code that only wakes the server
 * (operations.c) links without the server itself (unit tests). */
#ifndef GR_DAEMON_WAKE_H
#define GR_DAEMON_WAKE_H

/* The lws_context to wake, or NULL while no server runs (server.c). */
void server_wake_set_context(void *lws_context);

#endif
