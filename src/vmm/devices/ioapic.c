/* The userspace I/O APIC for KVM's split irqchip; see ioapic.h. */
#include "ioapic.h"

#include <errno.h>
#include <string.h>

#define MSI_ADDRESS_BASE     0xFEE00000ULL
#define MSI_ADDR_DEST_SHIFT  12
#define MSI_ADDR_DESTMODE    (1u << 2)
#define MSI_DATA_DELMODE_SHIFT 8
#define MSI_DATA_ASSERT      (1u << 14)
#define MSI_DATA_LEVEL       (1u << 15)

#define IOAPIC_ID_MASK       0x0F000000u  /* bits 24..27 */
#define IOAPIC_MAX_RTE       (IOAPIC_PINS - 1)
#define IOAPIC_VERSION_VALUE ((uint32_t)IOAPIC_MAX_RTE << 16 | IOAPIC_VERSION)
#define IOAPIC_RTE_RESET     IOAPIC_RTE_MASKED

int ioapic_init(struct ioapic *io, const struct ioapic_ops *ops, void *opaque, struct gr_error *err)
{
	memset(io, 0, sizeof(*io));
	if (!ops || !ops->send_msi)
		return gr_error_set(err, EINVAL, "I/O APIC: no way to send interrupts given");
	io->ops = ops;
	io->opaque = opaque;
	for (uint32_t i = 0; i < IOAPIC_PINS; i++)
		io->rte[i] = IOAPIC_RTE_RESET;
	io->routes_valid = true; /* no level pins, and KVM's split irqchip starts with no routes */
	int e = pthread_mutex_init(&io->lock, NULL);
	if (e)
		return gr_error_sys(err, e, "I/O APIC: pthread_mutex_init");
	return 0;
}

void ioapic_destroy(struct ioapic *io)
{
	if (io->ops)
		pthread_mutex_destroy(&io->lock);
	io->ops = NULL;
}

bool ioapic_rte_to_msi(uint64_t rte, struct ioapic_msi *msi)
{
	uint32_t vector = (uint32_t)(rte & IOAPIC_RTE_VECTOR);
	uint32_t mode = (uint32_t)((rte & IOAPIC_RTE_DELMODE) >> IOAPIC_RTE_DELMODE_SHIFT);
	bool level = rte & IOAPIC_RTE_LEVEL;
	switch (mode) {
	case IOAPIC_DM_FIXED:
	case IOAPIC_DM_LOWEST:
		if (vector < 16)
			return false; /* vectors 0..15 are illegal for a local APIC (SDM 11.5.2) */
		break;
	case IOAPIC_DM_NMI:
	case IOAPIC_DM_INIT:
		level = false;    /* these are edge-triggered whatever the entry says; no vector */
		vector = 0;
		break;
	default:
		return false;     /* SMI (no SMM here), ExtINT (no PIC), reserved 3 and 6 */
	}
	uint32_t dest = (uint32_t)(rte >> IOAPIC_RTE_DEST_SHIFT);
	msi->address = MSI_ADDRESS_BASE | (uint64_t)dest << MSI_ADDR_DEST_SHIFT |
		       ((rte & IOAPIC_RTE_DESTMODE) ? MSI_ADDR_DESTMODE : 0);
	msi->data = vector | mode << MSI_DATA_DELMODE_SHIFT | (level ? MSI_DATA_LEVEL | MSI_DATA_ASSERT : 0);
	return true;
}

static void report(struct ioapic *io, int r, const char *what)
{
	if (r < 0 && io->ops->failed)
		io->ops->failed(io->opaque, r, what);
}

/* Sends pin's interrupt if its entry allows it now. Lock held. */
static int service(struct ioapic *io, uint32_t pin)
{
	uint64_t e = io->rte[pin];
	if (e & IOAPIC_RTE_MASKED) {
		io->stats.masked++;
		return 0;
	}
	if ((e & IOAPIC_RTE_LEVEL) && (e & IOAPIC_RTE_REMOTE_IRR))
		return 0; /* in service: the EOI delivers again if the input is still asserted */
	struct ioapic_msi m;
	if (!ioapic_rte_to_msi(e, &m)) {
		io->stats.undeliverable++;
		return 0;
	}
	int r = io->ops->send_msi(io->opaque, &m);
	if (r < 0)
		return r;
	if (r == 0) {
		io->stats.not_accepted++;
		return 0;
	}
	io->stats.delivered++;
	if (m.data & MSI_DATA_LEVEL)
		io->rte[pin] |= IOAPIC_RTE_REMOTE_IRR;
	return 0;
}

static bool routes_equal(const struct ioapic_route *a, const struct ioapic_route *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i].pin != b[i].pin || a[i].msi.address != b[i].msi.address || a[i].msi.data != b[i].msi.data)
			return false;
	return true;
}

/* Hands the host the messages of the level-triggered pins when they changed. Lock held. */
static void refresh_routes(struct ioapic *io)
{
	if (!io->ops->set_level_routes)
		return;
	struct ioapic_route routes[IOAPIC_PINS];
	size_t n = 0;
	for (uint32_t pin = 0; pin < IOAPIC_PINS; pin++) {
		struct ioapic_msi m;
		if ((io->rte[pin] & IOAPIC_RTE_LEVEL) && ioapic_rte_to_msi(io->rte[pin], &m) &&
		    (m.data & MSI_DATA_LEVEL))
			routes[n++] = (struct ioapic_route){ .pin = pin, .msi = m };
	}
	if (io->routes_valid && n == io->n_routes && routes_equal(routes, io->routes, n))
		return;
	io->stats.route_updates++;
	int r = io->ops->set_level_routes(io->opaque, routes, n);
	if (r < 0) {
		io->routes_valid = false; /* try again at the next change */
		report(io, r, "setting the level-triggered interrupt routes");
		return;
	}
	memcpy(io->routes, routes, n * sizeof(routes[0]));
	io->n_routes = n;
	io->routes_valid = true;
}

static void write_rte(struct ioapic *io, uint32_t pin, bool high, uint32_t val)
{
	uint64_t old = io->rte[pin];
	uint64_t e = high ? (old & 0xFFFFFFFFULL) | (uint64_t)val << 32 : (old & ~0xFFFFFFFFULL) | val;
	e = (e & IOAPIC_RTE_WRITABLE) | (old & IOAPIC_RTE_REMOTE_IRR);
	if (!(e & IOAPIC_RTE_LEVEL))
		e &= ~IOAPIC_RTE_REMOTE_IRR; /* switching to edge ends the level cycle (Linux relies on it) */
	io->rte[pin] = e;
	refresh_routes(io);
	/* A level pin whose input is asserted delivers as soon as the entry allows it. */
	if ((e & IOAPIC_RTE_LEVEL) && !(e & (IOAPIC_RTE_MASKED | IOAPIC_RTE_REMOTE_IRR)) && (io->line >> pin & 1))
		report(io, service(io, pin), "sending an interrupt");
}

/* The EOI of vector, from KVM's EOI exit or the EOI register: every level
 * pin in service with that vector leaves it, and delivers again while its
 * input is asserted. Lock held. */
static int eoi_locked(struct ioapic *io, uint8_t vector)
{
	int r = 0;
	for (uint32_t pin = 0; pin < IOAPIC_PINS && r == 0; pin++) {
		uint64_t e = io->rte[pin];
		if (!(e & IOAPIC_RTE_LEVEL) || !(e & IOAPIC_RTE_REMOTE_IRR) || (e & IOAPIC_RTE_VECTOR) != vector)
			continue;
		io->rte[pin] = e & ~IOAPIC_RTE_REMOTE_IRR;
		io->stats.eois++;
		if (io->line >> pin & 1)
			r = service(io, pin); /* still asserted: deliver again */
	}
	return r;
}

static uint32_t read_reg(struct ioapic *io, uint32_t index)
{
	switch (index) {
	case IOAPIC_REG_ID:
	case IOAPIC_REG_ARB:
		return io->id;
	case IOAPIC_REG_VERSION:
		return IOAPIC_VERSION_VALUE;
	default:
		break;
	}
	if (index >= IOAPIC_REG_REDTBL && index < IOAPIC_REG_REDTBL + 2 * IOAPIC_PINS) {
		uint64_t e = io->rte[(index - IOAPIC_REG_REDTBL) / 2];
		return (index & 1) ? (uint32_t)(e >> 32) : (uint32_t)e;
	}
	io->stats.bad_accesses++;
	return 0;
}

static void write_reg(struct ioapic *io, uint32_t index, uint32_t val)
{
	switch (index) {
	case IOAPIC_REG_ID:
		io->id = val & IOAPIC_ID_MASK;
		return;
	case IOAPIC_REG_VERSION:
	case IOAPIC_REG_ARB:
		return; /* read-only */
	default:
		break;
	}
	if (index >= IOAPIC_REG_REDTBL && index < IOAPIC_REG_REDTBL + 2 * IOAPIC_PINS) {
		write_rte(io, (index - IOAPIC_REG_REDTBL) / 2, index & 1, val);
		return;
	}
	io->stats.bad_accesses++;
}

void ioapic_mmio_read(void *dev, uint64_t offset, void *data, uint32_t len)
{
	struct ioapic *io = dev;
	uint32_t v = 0;
	pthread_mutex_lock(&io->lock);
	if (len != 4 || (offset != IOAPIC_IOREGSEL && offset != IOAPIC_IOWIN))
		io->stats.bad_accesses++;
	else
		v = offset == IOAPIC_IOREGSEL ? io->ioregsel : read_reg(io, io->ioregsel);
	pthread_mutex_unlock(&io->lock);
	memset(data, 0, len);
	if (len == 4)
		memcpy(data, &v, 4);
}

void ioapic_mmio_write(void *dev, uint64_t offset, const void *data, uint32_t len)
{
	struct ioapic *io = dev;
	uint32_t v;
	pthread_mutex_lock(&io->lock);
	if (len != 4 || (offset != IOAPIC_IOREGSEL && offset != IOAPIC_IOWIN && offset != IOAPIC_EOI)) {
		io->stats.bad_accesses++;
	} else {
		memcpy(&v, data, 4);
		if (offset == IOAPIC_IOREGSEL) {
			io->ioregsel = v & 0xFFu; /* bits 8..31 are reserved */
		} else if (offset == IOAPIC_IOWIN) {
			write_reg(io, io->ioregsel, v);
		} else {
			io->stats.eoi_writes++;
			report(io, eoi_locked(io, (uint8_t)v), "sending an interrupt"); /* bits 8..31 are reserved */
		}
	}
	pthread_mutex_unlock(&io->lock);
}

int ioapic_set_irq(struct ioapic *io, uint32_t pin, bool asserted)
{
	if (pin >= IOAPIC_PINS)
		return -EINVAL;
	uint32_t bit = 1u << pin;
	int r = 0;
	pthread_mutex_lock(&io->lock);
	bool was = io->line & bit;
	if (asserted) {
		io->line |= bit;
		if ((io->rte[pin] & IOAPIC_RTE_LEVEL) || !was)
			r = service(io, pin);
	} else {
		io->line &= ~bit;
	}
	pthread_mutex_unlock(&io->lock);
	return r;
}

int ioapic_pulse_irq(struct ioapic *io, uint32_t pin)
{
	if (pin >= IOAPIC_PINS)
		return -EINVAL;
	uint32_t bit = 1u << pin;
	int r = 0;
	pthread_mutex_lock(&io->lock);
	if ((io->rte[pin] & IOAPIC_RTE_LEVEL) || !(io->line & bit))
		r = service(io, pin);
	io->line &= ~bit;
	pthread_mutex_unlock(&io->lock);
	return r;
}

int ioapic_eoi(struct ioapic *io, uint8_t vector)
{
	pthread_mutex_lock(&io->lock);
	int r = eoi_locked(io, vector);
	pthread_mutex_unlock(&io->lock);
	return r;
}

uint64_t ioapic_get_rte(struct ioapic *io, uint32_t pin)
{
	if (pin >= IOAPIC_PINS)
		return 0;
	pthread_mutex_lock(&io->lock);
	uint64_t e = io->rte[pin];
	pthread_mutex_unlock(&io->lock);
	return e;
}

struct ioapic_stats ioapic_get_stats(struct ioapic *io)
{
	pthread_mutex_lock(&io->lock);
	struct ioapic_stats s = io->stats;
	pthread_mutex_unlock(&io->lock);
	return s;
}
