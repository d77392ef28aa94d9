/* Unit tests for the control channel (src/vmm/api_proto.c) with valid and
 * hostile messages, and for the VMM's request handler (api_control.c) on a
 * VM that is built but not running. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <linux/kvm.h>
#include <string.h>

#include "vmm/api_control.h"
#include "vmm/api_proto.h"
#include "vmm/devices/ged.h"

static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }

static void test_request_round_trip(void **state)
{
	(void)state;
	uint8_t b[VMM_CTL_REQUEST_LEN];
	struct vmm_ctl_request r;
	vmm_ctl_request_encode(&(struct vmm_ctl_request){ .op = VMM_CTL_STOP, .seq = 7, .arg = 2500 }, b);
	assert_int_equal(vmm_ctl_request_decode(b, sizeof(b), &r), 0);
	assert_int_equal(r.op, VMM_CTL_STOP);
	assert_int_equal(r.seq, 7);
	assert_int_equal(r.arg, 2500);
	vmm_ctl_request_encode(&(struct vmm_ctl_request){ .op = VMM_CTL_METRICS, .seq = 0xFFFFFFFF }, b);
	assert_int_equal(vmm_ctl_request_decode(b, sizeof(b), &r), 0);
	assert_int_equal(r.seq, 0xFFFFFFFF);
}

static void test_request_hostile(void **state)
{
	(void)state;
	uint8_t b[VMM_CTL_REQUEST_LEN + 1] = { 0 };
	struct vmm_ctl_request r = { 0 };
	vmm_ctl_request_encode(&(struct vmm_ctl_request){ .op = VMM_CTL_PAUSE, .seq = 3 }, b);
	/* Lengths other than exactly 16. */
	for (size_t n = 0; n <= sizeof(b); n++)
		if (n != VMM_CTL_REQUEST_LEN)
			assert_int_equal(vmm_ctl_request_decode(b, n, &r), -EBADMSG);
	/* Wrong magic (a response's, a hello's, zero). */
	put32(b, VMM_CTL_MAGIC_RESPONSE);
	assert_int_equal(vmm_ctl_request_decode(b, VMM_CTL_REQUEST_LEN, &r), -EBADMSG);
	put32(b, 0);
	assert_int_equal(vmm_ctl_request_decode(b, VMM_CTL_REQUEST_LEN, &r), -EBADMSG);
	put32(b, VMM_CTL_MAGIC_REQUEST);
	/* Unknown ops: the seq is still known, so the refusal can answer it. */
	static const uint32_t bad_ops[] = { 0, 6, 0x80000000u, 0xFFFFFFFFu };
	for (size_t i = 0; i < sizeof(bad_ops) / sizeof(bad_ops[0]); i++) {
		put32(b + 4, bad_ops[i]);
		r.seq = 0;
		assert_int_equal(vmm_ctl_request_decode(b, VMM_CTL_REQUEST_LEN, &r), -EOPNOTSUPP);
		assert_int_equal(r.seq, 3);
	}
	/* Arguments: none for pause/resume/status/metrics, stop up to one hour. */
	put32(b + 4, VMM_CTL_PAUSE);
	put32(b + 12, 1);
	assert_int_equal(vmm_ctl_request_decode(b, VMM_CTL_REQUEST_LEN, &r), -ERANGE);
	put32(b + 4, VMM_CTL_STOP);
	put32(b + 12, VMM_CTL_MAX_STOP_TIMEOUT_MS);
	assert_int_equal(vmm_ctl_request_decode(b, VMM_CTL_REQUEST_LEN, &r), 0);
	put32(b + 12, VMM_CTL_MAX_STOP_TIMEOUT_MS + 1);
	assert_int_equal(vmm_ctl_request_decode(b, VMM_CTL_REQUEST_LEN, &r), -ERANGE);
	put32(b + 12, 0xFFFFFFFFu);
	assert_int_equal(vmm_ctl_request_decode(b, VMM_CTL_REQUEST_LEN, &r), -ERANGE);
}

static void test_header_and_text(void **state)
{
	(void)state;
	uint8_t b[VMM_CTL_HEADER_LEN + VMM_CTL_MAX_TEXT + 8];
	struct vmm_ctl_header h;
	size_t n = vmm_ctl_text_encode("pause: the VM is \x01" "already\xff" " paused", b + VMM_CTL_HEADER_LEN);
	vmm_ctl_header_encode(&(struct vmm_ctl_header){ .magic = VMM_CTL_MAGIC_RESPONSE, .seq = 9, .result = -EALREADY,
							.len = (uint32_t)n },
			      b);
	assert_int_equal(vmm_ctl_header_decode(b, VMM_CTL_HEADER_LEN + n, VMM_CTL_MAGIC_RESPONSE, &h), 0);
	assert_int_equal(h.result, -EALREADY);
	assert_int_equal(h.seq, 9);
	char text[VMM_CTL_MAX_TEXT + 1];
	assert_int_equal(vmm_ctl_text_decode(b + VMM_CTL_HEADER_LEN, h.len, text, sizeof(text)), 0);
	assert_string_equal(text, "pause: the VM is ?already? paused"); /* control bytes replaced */
	/* The header's length must be the datagram's. */
	assert_int_equal(vmm_ctl_header_decode(b, VMM_CTL_HEADER_LEN + n + 1, VMM_CTL_MAGIC_RESPONSE, &h), -EBADMSG);
	assert_int_equal(vmm_ctl_header_decode(b, VMM_CTL_HEADER_LEN + n - 1, VMM_CTL_MAGIC_RESPONSE, &h), -EBADMSG);
	assert_int_equal(vmm_ctl_header_decode(b, VMM_CTL_HEADER_LEN - 1, VMM_CTL_MAGIC_RESPONSE, &h), -EBADMSG);
	/* A hello is not a response. */
	assert_int_equal(vmm_ctl_header_decode(b, VMM_CTL_HEADER_LEN + n, VMM_CTL_MAGIC_HELLO, &h), -EBADMSG);
	/* Positive results, absurd errnos, and errors without a message are refused. */
	put32(b + 8, 1);
	assert_int_equal(vmm_ctl_header_decode(b, VMM_CTL_HEADER_LEN + n, VMM_CTL_MAGIC_RESPONSE, &h), -EBADMSG);
	put32(b + 8, (uint32_t)-100000);
	assert_int_equal(vmm_ctl_header_decode(b, VMM_CTL_HEADER_LEN + n, VMM_CTL_MAGIC_RESPONSE, &h), -EBADMSG);
	put32(b + 8, (uint32_t)-EIO);
	put32(b + 12, 0);
	assert_int_equal(vmm_ctl_header_decode(b, VMM_CTL_HEADER_LEN, VMM_CTL_MAGIC_RESPONSE, &h), -EBADMSG);
	/* A length over the body limit, even with a matching datagram size claim. */
	put32(b + 12, VMM_CTL_MAX_BODY + 1);
	assert_int_equal(vmm_ctl_header_decode(b, VMM_CTL_HEADER_LEN + VMM_CTL_MAX_BODY + 1, VMM_CTL_MAGIC_RESPONSE, &h),
			 -EBADMSG);
	/* Text: empty, too long, not printable, no room for the NUL. */
	assert_int_equal(vmm_ctl_text_decode("", 0, text, sizeof(text)), -EBADMSG);
	char longer[VMM_CTL_MAX_TEXT + 1];
	memset(longer, 'a', sizeof(longer));
	assert_int_equal(vmm_ctl_text_decode(longer, sizeof(longer), text, sizeof(text) + 1), -EBADMSG);
	assert_int_equal(vmm_ctl_text_decode("a\nb", 3, text, sizeof(text)), -EBADMSG);
	assert_int_equal(vmm_ctl_text_decode("ab\0", 3, text, sizeof(text)), -EBADMSG);
	assert_int_equal(vmm_ctl_text_decode("abc", 3, text, 3), -EBADMSG);
	/* Encoding cuts at the limit and never produces an empty text. */
	memset(longer, 'b', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	uint8_t out[VMM_CTL_MAX_TEXT];
	assert_int_equal(vmm_ctl_text_encode(longer, out), VMM_CTL_MAX_TEXT);
	assert_int_equal(vmm_ctl_text_encode("", out), 1);
	assert_int_equal(vmm_ctl_text_encode(NULL, out), 1);
}

static void test_status(void **state)
{
	(void)state;
	uint8_t b[VMM_CTL_STATUS_LEN + 1];
	struct vmm_ctl_status s;
	vmm_ctl_status_encode(&(struct vmm_ctl_status){ .state = VMM_CTL_PAUSED, .vcpus = 4, .memory = 1ULL << 33,
							.uptime_us = 1234567 },
			      b);
	assert_int_equal(vmm_ctl_status_decode(b, VMM_CTL_STATUS_LEN, &s), 0);
	assert_int_equal(s.state, VMM_CTL_PAUSED);
	assert_int_equal(s.vcpus, 4);
	assert_true(s.memory == 1ULL << 33 && s.uptime_us == 1234567);
	assert_int_equal(vmm_ctl_status_decode(b, VMM_CTL_STATUS_LEN - 1, &s), -EBADMSG);
	assert_int_equal(vmm_ctl_status_decode(b, VMM_CTL_STATUS_LEN + 1, &s), -EBADMSG);
	put32(b, 3);   /* no such state */
	assert_int_equal(vmm_ctl_status_decode(b, VMM_CTL_STATUS_LEN, &s), -EBADMSG);
	put32(b, VMM_CTL_RUNNING);
	put32(b + 4, 0);   /* no vCPUs */
	assert_int_equal(vmm_ctl_status_decode(b, VMM_CTL_STATUS_LEN, &s), -EBADMSG);
}

static struct vmm_ctl_metrics m, d;   /* large */

static void test_metrics_round_trip(void **state)
{
	(void)state;
	static uint8_t b[VMM_CTL_MAX_BODY + 64];
	memset(&m, 0, sizeof(m));
	m.n_exits = 64;
	for (uint32_t i = 0; i < 64; i++)
		m.exits[i] = (uint64_t)i * 1000003u;
	m.n_devices = VMM_CTL_MAX_DEVICES;
	for (uint32_t k = 0; k < m.n_devices; k++) {
		snprintf(m.devices[k].name, sizeof(m.devices[k].name), "blk%u", k);
		m.devices[k].n_counters = VMM_CTL_MAX_COUNTERS;
		for (uint32_t c = 0; c < VMM_CTL_MAX_COUNTERS; c++) {
			snprintf(m.devices[k].counters[c].key, VMM_CTL_KEY_LEN, "counter_%u", c);
			m.devices[k].counters[c].value = ~0ULL - c;
		}
	}
	int n = vmm_ctl_metrics_encode(&m, b, sizeof(b));
	assert_int_equal(n, VMM_CTL_MAX_BODY);   /* everything at its limit fits exactly */
	assert_int_equal(vmm_ctl_metrics_decode(b, (size_t)n, &d), 0);
	assert_int_equal(d.n_exits, 64);
	assert_true(d.exits[63] == 63ULL * 1000003u);
	assert_int_equal(d.n_devices, VMM_CTL_MAX_DEVICES);
	assert_string_equal(d.devices[31].name, "blk31");
	assert_string_equal(d.devices[31].counters[15].key, "counter_15");
	assert_true(d.devices[31].counters[15].value == ~0ULL - 15);
	/* Too small a buffer, bad names or counts: not encoded. */
	assert_int_equal(vmm_ctl_metrics_encode(&m, b, (size_t)n - 1), -EINVAL);
	strcpy(m.devices[3].name, "Blk3");
	assert_int_equal(vmm_ctl_metrics_encode(&m, b, sizeof(b)), -EINVAL);
	strcpy(m.devices[3].name, "blk3");
	m.devices[2].n_counters = VMM_CTL_MAX_COUNTERS + 1;
	assert_int_equal(vmm_ctl_metrics_encode(&m, b, sizeof(b)), -EINVAL);
}

static void test_metrics_hostile(void **state)
{
	(void)state;
	static uint8_t b[VMM_CTL_MAX_BODY + 64];
	memset(&m, 0, sizeof(m));
	m.n_exits = 2;
	m.exits[1] = 5;
	m.n_devices = 1;
	strcpy(m.devices[0].name, "rng");
	m.devices[0].n_counters = 2;
	strcpy(m.devices[0].counters[0].key, "requests");
	strcpy(m.devices[0].counters[1].key, "bytes");
	int n = vmm_ctl_metrics_encode(&m, b, sizeof(b));
	assert_true(n > 0);
	assert_int_equal(vmm_ctl_metrics_decode(b, (size_t)n, &d), 0);
	/* Every truncation, and one byte too many. */
	for (int k = 0; k < n; k++)
		assert_int_equal(vmm_ctl_metrics_decode(b, (size_t)k, &d), -EBADMSG);
	assert_int_equal(vmm_ctl_metrics_decode(b, (size_t)n + 1, &d), -EBADMSG);
	/* Counts over the limits (the body would be far too short anyway: no read past it). */
	uint8_t c[VMM_CTL_MAX_BODY];
	memcpy(c, b, (size_t)n);
	put32(c, VMM_CTL_MAX_EXITS + 1);
	assert_int_equal(vmm_ctl_metrics_decode(c, (size_t)n, &d), -EBADMSG);
	put32(c, 0xFFFFFFFFu);
	assert_int_equal(vmm_ctl_metrics_decode(c, (size_t)n, &d), -EBADMSG);
	memcpy(c, b, (size_t)n);
	size_t dev_off = 4 + 2 * 8;
	put32(c + dev_off, VMM_CTL_MAX_DEVICES + 1);
	assert_int_equal(vmm_ctl_metrics_decode(c, (size_t)n, &d), -EBADMSG);
	memcpy(c, b, (size_t)n);
	put32(c + dev_off + 4 + VMM_CTL_NAME_LEN, VMM_CTL_MAX_COUNTERS + 1);
	assert_int_equal(vmm_ctl_metrics_decode(c, (size_t)n, &d), -EBADMSG);
	/* Names: not NUL-terminated, empty, other characters. */
	memcpy(c, b, (size_t)n);
	memset(c + dev_off + 4, 'a', VMM_CTL_NAME_LEN);
	assert_int_equal(vmm_ctl_metrics_decode(c, (size_t)n, &d), -EBADMSG);
	memcpy(c, b, (size_t)n);
	c[dev_off + 4] = '\0';
	assert_int_equal(vmm_ctl_metrics_decode(c, (size_t)n, &d), -EBADMSG);
	memcpy(c, b, (size_t)n);
	c[dev_off + 4] = '"';
	assert_int_equal(vmm_ctl_metrics_decode(c, (size_t)n, &d), -EBADMSG);
	memcpy(c, b, (size_t)n);
	size_t key_off = dev_off + 4 + VMM_CTL_NAME_LEN + 4;
	memset(c + key_off, 'k', VMM_CTL_KEY_LEN);
	assert_int_equal(vmm_ctl_metrics_decode(c, (size_t)n, &d), -EBADMSG);
	memcpy(c, b, (size_t)n);
	c[key_off + 2] = '/';
	assert_int_equal(vmm_ctl_metrics_decode(c, (size_t)n, &d), -EBADMSG);
}

/* ---- the VMM's handler, on a VM that exists but does not run ---- */

static void decode_response(const uint8_t *out, size_t n, uint32_t seq, struct vmm_ctl_header *h)
{
	assert_int_equal(vmm_ctl_header_decode(out, n, VMM_CTL_MAGIC_RESPONSE, h), 0);
	assert_int_equal(h->seq, seq);
}

static struct vmm_control ctl = VMM_CONTROL_NONE;
static struct vm vm;
static struct ged ged;

static void test_handler(void **state)
{
	(void)state;
	memset(&vm, 0, sizeof(vm));
	pthread_mutex_init(&vm.lock, NULL);
	pthread_cond_init(&vm.stopped_cond, NULL);
	pthread_cond_init(&vm.park_cond, NULL);
	vm.n_vcpus = 2;
	vm.exit_counts[KVM_EXIT_MMIO] = 11;
	ctl.vm = &vm;
	ctl.memory = 64 << 20;
	struct gr_error err = { 0 };
	ged.events = 1;
	ged.reads = 4;
	assert_int_equal(vmm_control_add_device(&ctl, "ged", NULL, vmm_control_collect_ged, &ged, &err), 0);
	assert_int_equal(vmm_control_add_device(&ctl, "bad name", NULL, vmm_control_collect_ged, &ged, &err), -EINVAL);
	assert_int_equal(vmm_control_add_device(&ctl, "a_very_long_device_name", NULL, vmm_control_collect_ged, &ged, &err),
			 -EINVAL);

	static uint8_t out[VMM_CTL_MAX_MESSAGE];
	uint8_t q[VMM_CTL_REQUEST_LEN];
	struct vmm_ctl_header h;
	vmm_ctl_request_encode(&(struct vmm_ctl_request){ .op = VMM_CTL_STATUS, .seq = 1 }, q);
	size_t n = vmm_control_handle(&ctl, q, sizeof(q), out);
	decode_response(out, n, 1, &h);
	struct vmm_ctl_status st;
	assert_int_equal(h.result, 0);
	assert_int_equal(vmm_ctl_status_decode(out + VMM_CTL_HEADER_LEN, h.len, &st), 0);
	assert_int_equal(st.state, VMM_CTL_RUNNING);
	assert_int_equal(st.vcpus, 2);
	assert_true(st.memory == 64 << 20 && st.uptime_us == 0);   /* not started */

	vmm_ctl_request_encode(&(struct vmm_ctl_request){ .op = VMM_CTL_METRICS, .seq = 2 }, q);
	n = vmm_control_handle(&ctl, q, sizeof(q), out);
	decode_response(out, n, 2, &h);
	assert_int_equal(vmm_ctl_metrics_decode(out + VMM_CTL_HEADER_LEN, h.len, &d), 0);
	assert_int_equal(d.n_exits, 64);
	assert_true(d.exits[KVM_EXIT_MMIO] == 11);
	assert_int_equal(d.n_devices, 1);
	assert_string_equal(d.devices[0].name, "ged");
	assert_string_equal(d.devices[0].counters[1].key, "reads");
	assert_true(d.devices[0].counters[1].value == 4);

	/* resume of a running VM: 409-style EALREADY with the VM's words. */
	vmm_ctl_request_encode(&(struct vmm_ctl_request){ .op = VMM_CTL_RESUME, .seq = 3 }, q);
	n = vmm_control_handle(&ctl, q, sizeof(q), out);
	decode_response(out, n, 3, &h);
	assert_int_equal(h.result, -EALREADY);

	/* stop arms the forced stop (no power button here); a second one is refused. */
	vmm_ctl_request_encode(&(struct vmm_ctl_request){ .op = VMM_CTL_STOP, .seq = 4, .arg = 1000 }, q);
	n = vmm_control_handle(&ctl, q, sizeof(q), out);
	decode_response(out, n, 4, &h);
	assert_int_equal(h.result, 0);
	assert_true(vm.stopping);
	n = vmm_control_handle(&ctl, q, sizeof(q), out);
	decode_response(out, n, 4, &h);
	assert_int_equal(h.result, -EALREADY);
	vmm_ctl_request_encode(&(struct vmm_ctl_request){ .op = VMM_CTL_PAUSE, .seq = 5 }, q);
	n = vmm_control_handle(&ctl, q, sizeof(q), out);
	decode_response(out, n, 5, &h);
	assert_int_equal(h.result, -EBUSY);

	/* Malformed requests are answered (with the seq when it can be read) and counted. */
	uint64_t refused = ctl.refused;
	n = vmm_control_handle(&ctl, q, sizeof(q) - 1, out);
	assert_int_equal(vmm_ctl_header_decode(out, n, VMM_CTL_MAGIC_RESPONSE, &h), 0);
	assert_int_equal(h.result, -EPROTO);
	vmm_ctl_request_encode(&(struct vmm_ctl_request){ .op = 99, .seq = 6 }, q);
	n = vmm_control_handle(&ctl, q, sizeof(q), out);
	decode_response(out, n, 6, &h);
	assert_int_equal(h.result, -EINVAL);
	n = vmm_control_handle(&ctl, q, VMM_CTL_MAX_MESSAGE + 1, out);   /* an oversized datagram (MSG_TRUNC length) */
	assert_int_equal(vmm_ctl_header_decode(out, n, VMM_CTL_MAGIC_RESPONSE, &h), 0);
	assert_int_equal(h.result, -EPROTO);
	assert_true(ctl.refused == refused + 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_round_trip),
		cmocka_unit_test(test_request_hostile),
		cmocka_unit_test(test_header_and_text),
		cmocka_unit_test(test_status),
		cmocka_unit_test(test_metrics_round_trip),
		cmocka_unit_test(test_metrics_hostile),
		cmocka_unit_test(test_handler),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
