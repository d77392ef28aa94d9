/* Start-up reconciliation of the database with what really runs (reconcile.c). */
#ifndef GR_DAEMON_RECONCILE_H
#define GR_DAEMON_RECONCILE_H

#include "common/error.h"
#include "daemon/daemon.h"

/* Called by main.c after the store, events and operations exist and before
 * the server serves:
 *  - rows left "creating" (gureumd died during a create) are rolled back:
 *    the driver removes what it made, the row goes;
 *  - rows left "deleting" are finished the same way;
 *  - every other instance's desired state follows what the driver reports
 *    (a running instance whose supervisor died is marked stopped with the
 *    driver's reason; one found running is marked running);
 *  - workloads the drivers find that the database does not know are logged
 *    and announced as "instance-unknown" lifecycle events, never touched.
 * Errors on one instance are logged and do not stop the others; a failure
 * returned here (-errno) means the database could not be read. */
int reconcile(struct daemon *d, struct gr_error *err);

#endif
