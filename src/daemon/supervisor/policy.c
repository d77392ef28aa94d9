/* Restart policy, back-off and the exit record. */
#include "daemon/supervisor/supervisor.h"
#include "common/cleanup.h"
#include "common/fs.h"
#include "common/json.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

int restart_policy_parse(const char *s, struct restart_policy *p, struct gr_error *err)
{
	*p = (struct restart_policy){ RESTART_NO, 0 };
	if (!s || !s[0] || strcmp(s, "no") == 0)
		return 0;
	if (strcmp(s, "always") == 0) {
		p->mode = RESTART_ALWAYS;
		return 0;
	}
	if (strcmp(s, "on-failure") == 0) {
		p->mode = RESTART_ON_FAILURE;
		return 0;
	}
	if (strncmp(s, "on-failure:", 11) == 0) {
		uint64_t n;
		if (gr_parse_u64(s + 11, &n) < 0 || n < 1 || n > 1000000)
			return gr_error_set(err, EINVAL, "boot.restart: \"%s\": the retry count after \"on-failure:\" must "
					    "be a whole number from 1 to 1000000", s);
		p->mode = RESTART_ON_FAILURE;
		p->max = (unsigned)n;
		return 0;
	}
	return gr_error_set(err, EINVAL, "boot.restart: \"%s\": expected no, on-failure, on-failure:N or always", s);
}

bool restart_wanted(const struct restart_policy *p, int exit_code, unsigned restarts_done)
{
	switch (p->mode) {
	case RESTART_NO:
		return false;
	case RESTART_ALWAYS:
		return true;
	case RESTART_ON_FAILURE:
		return exit_code != 0 && (p->max == 0 || restarts_done < p->max);
	}
	return false;
}

unsigned restart_backoff_next(unsigned *failures, uint64_t ran_ms)
{
	if (ran_ms >= RESTART_BACKOFF_RESET_MS)
		*failures = 0;
	unsigned f = *failures;
	if (*failures < 64)
		(*failures)++;
	uint64_t d = RESTART_BACKOFF_MIN_MS;
	for (unsigned i = 0; i < f && d < RESTART_BACKOFF_MAX_MS; i++)
		d *= 2;
	return d > RESTART_BACKOFF_MAX_MS ? RESTART_BACKOFF_MAX_MS : (unsigned)d;
}

static void now_rfc3339(char *buf, size_t n)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char base[32];
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, n, "%s.%09ldZ", base, ts.tv_nsec);
}

void exit_info_from_status(struct exit_info *e, int wstatus, bool stopped)
{
	char what[96];
	e->signal = 0;
	if (WIFSIGNALED(wstatus)) {
		e->signal = WTERMSIG(wstatus);
		e->exit_code = 128 + e->signal;
		const char *name = sigabbrev_np(e->signal);
		if (name)
			snprintf(what, sizeof(what), "killed by SIG%s", name);
		else
			snprintf(what, sizeof(what), "killed by signal %d", e->signal);
	} else {
		e->exit_code = WEXITSTATUS(wstatus);
		snprintf(what, sizeof(what), "exited with %d", e->exit_code);
	}
	e->stopped = stopped;
	snprintf(e->reason, sizeof(e->reason), "%s%s", stopped ? "stopped: " : "", what);
	now_rfc3339(e->exited_at, sizeof(e->exited_at));
}

void exit_info_failed_start(struct exit_info *e, const char *msg)
{
	*e = (struct exit_info){ .exit_code = -1 };
	snprintf(e->reason, sizeof(e->reason), "failed to start: %s", msg);
	now_rfc3339(e->exited_at, sizeof(e->exited_at));
}

json_t *exit_info_to_json(const struct exit_info *e)
{
	return json_pack("{s:i, s:i, s:s, s:i, s:b, s:b, s:s}", "exit_code", e->exit_code, "signal", e->signal,
			 "reason", e->reason, "restarts", (json_int_t)e->restarts, "stopped", e->stopped,
			 "restarting", e->restarting, "exited_at", e->exited_at);
}

int exit_info_from_json(const json_t *j, struct exit_info *e, struct gr_error *err)
{
	*e = (struct exit_info){ .exit_code = -1 };
	int32_t code = -1, sig = 0;
	uint32_t restarts = 0;
	bool stopped = false, restarting = false;
	const char *reason = NULL, *at = NULL;
	int r;
	if (!json_is_object(j))
		return gr_error_set(err, EINVAL, "exit.json: expected an object");
	if ((r = gr_json_get_int32(j, NULL, "exit_code", &code, err)) < 0 ||
	    (r = gr_json_get_int32(j, NULL, "signal", &sig, err)) < 0 ||
	    (r = gr_json_get_string(j, NULL, "reason", &reason, err)) < 0 ||
	    (r = gr_json_get_uint32(j, NULL, "restarts", &restarts, err)) < 0 ||
	    (r = gr_json_get_bool(j, NULL, "stopped", &stopped, err)) < 0 ||
	    (r = gr_json_get_bool(j, NULL, "restarting", &restarting, err)) < 0 ||
	    (r = gr_json_get_string(j, NULL, "exited_at", &at, err)) < 0)
		return gr_error_prefix(err, "exit.json");
	e->exit_code = code;
	e->signal = sig;
	e->restarts = restarts;
	e->stopped = stopped;
	e->restarting = restarting;
	snprintf(e->reason, sizeof(e->reason), "%s", reason ? reason : "");
	snprintf(e->exited_at, sizeof(e->exited_at), "%s", at ? at : "");
	return 0;
}

int exit_info_write(const char *path, const struct exit_info *e, struct gr_error *err)
{
	gr_autojson json_t *j = exit_info_to_json(e);
	gr_autofree char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (!text)
		return gr_error_set(err, ENOMEM, "cannot encode exit.json");
	return gr_write_file_atomic(path, text, strlen(text), 0600, err);
}

int exit_info_read(const char *path, struct exit_info *e, struct gr_error *err)
{
	*e = (struct exit_info){ .exit_code = -1 };
	gr_autofree char *text = NULL;
	struct gr_error rerr = { 0 };
	int r = gr_read_file(path, &text, NULL, &rerr);
	if (r == -ENOENT)
		return r;
	if (r < 0) {
		*err = rerr;
		return r;
	}
	gr_autojson json_t *j = NULL;
	if ((r = gr_json_load_string(path, text, &j, err)) < 0)
		return r;
	return exit_info_from_json(j, e, err);
}
