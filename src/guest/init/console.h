/* gureum-init's log: every line goes to /dev/console (the serial console,
 * which the host keeps as the boot log) as "gureum-init: TEXT". */
#ifndef GR_GUEST_CONSOLE_H
#define GR_GUEST_CONSOLE_H

/* Opens /dev/console for the log (falls back to fd 2 until it can). */
void console_open(void);
/* The log's fd (for children that should write to the console too). */
int console_fd(void);
/* "gureum-init: " + text + "\n", in one write. */
void console_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* The same with a sub-prefix, for the agent process: "gureum-init: agent: ...". */
void console_set_prefix(const char *prefix);

#endif
