/* The TLS server certificate of gureumd's --listen endpoint: made once with
 * OpenSSL (ECDSA P-256, self-signed, valid 10 years, CN and subjectAltName
 * of the host name, localhost and 127.0.0.1/::1) as STATE/server.crt and
 * STATE/server.key (both 0600), then reused on every start. */
#ifndef GR_DAEMON_TLS_H
#define GR_DAEMON_TLS_H

#include <stddef.h>
#include "common/error.h"

/* Makes the pair when either file is missing (written atomically: a
 * half-made pair is never left); *crt and *key get their paths (malloc'd)
 * and fp the certificate's SHA-256 fingerprint ("AB:CD:..." , fp_len >= 96). */
int tls_ensure_cert(const char *state_dir, char **crt, char **key, char *fp, size_t fp_len, struct gr_error *err);
/* The SHA-256 fingerprint of a PEM certificate file. */
int tls_cert_fingerprint(const char *crt_path, char *fp, size_t fp_len, struct gr_error *err);

#endif
