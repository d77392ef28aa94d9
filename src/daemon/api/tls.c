/* tls.h: the server certificate, made with OpenSSL 3. */
#include "daemon/api/tls.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/cleanup.h"
#include "common/fs.h"

#define VALID_DAYS (10 * 365 + 2)

static int ssl_error(struct gr_error *err, const char *what)
{
	char buf[256] = "";
	unsigned long e = ERR_get_error();
	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	return gr_error_set(err, EIO, "%s%s%s", what, buf[0] ? ": " : "", buf);
}

static int fingerprint_of(X509 *x, char *fp, size_t fp_len, struct gr_error *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	if (!X509_digest(x, EVP_sha256(), md, &n))
		return ssl_error(err, "cannot hash the certificate");
	if (fp_len < (size_t)n * 3)
		return gr_error_set(err, ERANGE, "fingerprint buffer too small");
	for (unsigned int i = 0; i < n; i++)
		snprintf(fp + 3 * i, fp_len - 3 * i, "%02X%s", md[i], i + 1 < n ? ":" : "");
	return 0;
}

int tls_cert_fingerprint(const char *crt_path, char *fp, size_t fp_len, struct gr_error *err)
{
	FILE *f = fopen(crt_path, "re");
	if (!f)
		return gr_error_sys(err, errno, "cannot open %s", crt_path);
	X509 *x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!x)
		return ssl_error(err, "cannot read the certificate");
	int rc = fingerprint_of(x, fp, fp_len, err);
	X509_free(x);
	if (rc < 0)
		gr_error_prefix(err, "%s", crt_path);
	return rc;
}

static int add_ext(X509 *x, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -1;
	int ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -1;
}

/* PEM of a new key and certificate, malloc'd. */
static int make_pair(char **key_pem, size_t *key_len, char **crt_pem, size_t *crt_len, struct gr_error *err)
{
	int rc = -EIO;
	EVP_PKEY *pkey = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	BIO *kb = BIO_new(BIO_s_mem()), *cb = BIO_new(BIO_s_mem());
	char host[HOST_NAME_MAX + 1] = "gureumd";
	if (!pkey || !x || !kb || !cb) {
		rc = ssl_error(err, "cannot make an ECDSA P-256 key");
		goto out;
	}
	gethostname(host, sizeof(host));
	host[sizeof(host) - 1] = '\0';
	unsigned char serial[16];
	if (RAND_bytes(serial, sizeof(serial)) != 1) {
		rc = ssl_error(err, "cannot make a serial number");
		goto out;
	}
	serial[0] &= 0x7f;            /* positive */
	BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
	ASN1_INTEGER *sn = bn ? BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) : NULL;
	BN_free(bn);
	char san[HOST_NAME_MAX + 128];
	snprintf(san, sizeof(san), "DNS:%s, DNS:localhost, IP:127.0.0.1, IP:::1", host);
	X509_NAME *name = X509_get_subject_name(x);
	if (!sn || !X509_set_version(x, 2) || !X509_gmtime_adj(X509_getm_notBefore(x), -60) ||
	    !X509_gmtime_adj(X509_getm_notAfter(x), (long)VALID_DAYS * 24 * 3600) || !X509_set_pubkey(x, pkey) ||
	    !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)"gureum", -1, -1, 0) ||
	    !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)host, -1, -1, 0) ||
	    !X509_set_issuer_name(x, name) || add_ext(x, NID_subject_alt_name, san) < 0 ||
	    add_ext(x, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
	    add_ext(x, NID_key_usage, "critical,digitalSignature") < 0 ||
	    add_ext(x, NID_ext_key_usage, "serverAuth") < 0 || !X509_sign(x, pkey, EVP_sha256())) {
		rc = ssl_error(err, "cannot make the server certificate");
		goto out;
	}
	if (!PEM_write_bio_PrivateKey(kb, pkey, NULL, NULL, 0, NULL, NULL) || !PEM_write_bio_X509(cb, x)) {
		rc = ssl_error(err, "cannot encode the key and certificate");
		goto out;
	}
	char *p;
	long n = BIO_get_mem_data(kb, &p);
	*key_pem = malloc((size_t)n);
	if (*key_pem)
		memcpy(*key_pem, p, (size_t)n);
	*key_len = (size_t)n;
	n = BIO_get_mem_data(cb, &p);
	*crt_pem = malloc((size_t)n);
	if (*crt_pem)
		memcpy(*crt_pem, p, (size_t)n);
	*crt_len = (size_t)n;
	if (!*key_pem || !*crt_pem) {
		free(*key_pem);
		free(*crt_pem);
		*key_pem = *crt_pem = NULL;
		rc = gr_error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	rc = 0;
out:
	BIO_free(kb);
	BIO_free(cb);
	X509_free(x);
	EVP_PKEY_free(pkey);
	return rc;
}

int tls_ensure_cert(const char *state_dir, char **crt, char **key, char *fp, size_t fp_len, struct gr_error *err)
{
	gr_autofree char *crt_path = NULL, *key_path = NULL;
	if (asprintf(&crt_path, "%s/server.crt", state_dir) < 0 || asprintf(&key_path, "%s/server.key", state_dir) < 0)
		return gr_error_set(err, ENOMEM, "out of memory");
	bool have_crt = access(crt_path, F_OK) == 0, have_key = access(key_path, F_OK) == 0;
	if (!have_crt || !have_key) {
		gr_autofree char *kp = NULL, *cp = NULL;
		size_t kl = 0, cl = 0;
		int rc = make_pair(&kp, &kl, &cp, &cl, err);
		if (rc < 0)
			return rc;
		/* Key first: a certificate is never there without its key. */
		if ((rc = gr_write_file_atomic(key_path, kp, kl, 0600, err)) < 0 ||
		    (rc = gr_write_file_atomic(crt_path, cp, cl, 0600, err)) < 0)
			return rc;
	} else {
		struct stat st;
		if (stat(key_path, &st) == 0 && (st.st_mode & 077) && chmod(key_path, 0600) < 0)
			return gr_error_sys(err, errno, "cannot make %s owner-only", key_path);
	}
	int rc = tls_cert_fingerprint(crt_path, fp, fp_len, err);
	if (rc < 0)
		return rc;
	*crt = gr_steal_ptr(crt_path);
	*key = gr_steal_ptr(key_path);
	return 0;
}
