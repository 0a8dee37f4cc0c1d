// SPDX-License-Identifier: MIT
/*
 * The C + libbpf reference for `make bench`: reads the same BPF maps the Python rows read, the
 * way a libbpf-bootstrap tool does, and copies every record into preallocated columns.
 *
 * The BPF program is loaded by the benchmark (the same BCC source as the Python rows) and its
 * fds are inherited by this process:
 *
 *   reader ring PROG_FD MAP_FD STATS_FD TOTAL FLOW      ring buffer, FLOW=1: flow-controlled
 *   reader perf PROG_FD MAP_FD STATS_FD TOTAL WAKEUP PAGES   perf buffer, wakeup every WAKEUP
 *   reader hash MAP_FD REPEAT                                whole hash map, best of REPEAT
 *
 * Events: a producer thread makes the program emit TOTAL records in runs of 2048 with
 * BPF_PROG_TEST_RUN (args = {n, first seq}), as benchmarks/workloads.py does; flow-controlled,
 * it emits a run only while the ring is under half full and sleeps 200 us otherwise. The main
 * thread consumes: ring with ring_buffer__consume() (no epoll: it sleeps 100 us when the ring is
 * empty, so no wakeup is ever waited for), perf with perf_buffer__poll(100 ms) on rings opened
 * with the given wakeup_events, then perf_buffer__consume() once the producer is done, so the
 * last records (fewer than WAKEUP) are read without waiting for a wakeup.
 *
 * The columns are touched before timing starts (a preallocated reader); with the environment
 * variable READER_COLD_COLUMNS=1 they are not, and the first write to each page is timed too, as
 * it is for a reader that allocates as it goes (ebpf_nb's DataFrame memory is new for each read).
 *
 * Prints one JSON line: received, submitted, dropped (failed submits counted by the program;
 * a perf drop also arrives as PERF_RECORD_LOST: lost), seconds (first emit to the last record
 * in the columns).
 */
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define BATCH 2048

struct event {              /* 64 bytes, as in workloads.py */
	uint64_t seq, ts;
	uint32_t pid, cpu;
	char comm[16];
	uint64_t a, b, c;
};

struct columns {            /* where every record is copied: one array per field */
	uint64_t *seq, *ts, *a, *b, *c;
	uint32_t *pid, *cpu, *rcpu;
	char (*comm)[16];
	long n, cap;
	uint64_t lost;
};

struct producer {
	int prog_fd, flow;
	long total;
	volatile uint64_t *cons, *prod;  /* ring positions (flow control) */
	uint64_t half;
	volatile int done;
	int err;
};

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static double cpu_seconds(void)  /* user + system time of the whole process (both threads) */
{
	struct rusage r;
	getrusage(RUSAGE_SELF, &r);
	return r.ru_utime.tv_sec + r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1e-6;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "reader: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(2);
}

static int cold_columns;  /* READER_COLD_COLUMNS=1: leave the columns' pages untouched */

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("malloc", ENOMEM);
	if (!cold_columns)
		memset(p, 0, n);  /* touch the pages now, not while timing */
	return p;
}

static void columns_init(struct columns *c, long cap)
{
	c->cap = cap;
	c->seq = xmalloc(cap * 8); c->ts = xmalloc(cap * 8);
	c->a = xmalloc(cap * 8); c->b = xmalloc(cap * 8); c->c = xmalloc(cap * 8);
	c->pid = xmalloc(cap * 4); c->cpu = xmalloc(cap * 4); c->rcpu = xmalloc(cap * 4);
	c->comm = xmalloc(cap * 16);
}

static inline void columns_add(struct columns *c, const struct event *e, int cpu)
{
	long i = c->n;
	if (i >= c->cap)
		return;  /* more than asked for: not copied, still counted below */
	c->seq[i] = e->seq; c->ts[i] = e->ts; c->pid[i] = e->pid; c->cpu[i] = e->cpu;
	memcpy(c->comm[i], e->comm, 16);
	c->a[i] = e->a; c->b[i] = e->b; c->c[i] = e->c; c->rcpu[i] = cpu;
	c->n = i + 1;
}

static void *produce(void *arg)
{
	struct producer *p = arg;
	long sent = 0;
	while (sent < p->total) {
		if (p->flow && *p->prod - *p->cons >= p->half) {
			usleep(200);
			continue;
		}
		uint64_t args[2] = {p->total - sent < BATCH ? p->total - sent : BATCH, sent};
		LIBBPF_OPTS(bpf_test_run_opts, opts, .ctx_in = args, .ctx_size_in = sizeof(args));
		int err = bpf_prog_test_run_opts(p->prog_fd, &opts);
		if (err) {
			p->err = err;
			break;
		}
		sent += args[0];
	}
	__sync_synchronize();
	p->done = 1;
	return NULL;
}

static void read_stats(int fd, uint64_t *submitted, uint64_t *failed)
{
	uint32_t k0 = 0, k1 = 1;
	*submitted = *failed = 0;
	bpf_map_lookup_elem(fd, &k0, submitted);
	bpf_map_lookup_elem(fd, &k1, failed);
}

static int on_ring(void *ctx, void *data, size_t size)
{
	if (size >= sizeof(struct event))
		columns_add(ctx, data, -1);
	return 0;
}

static enum bpf_perf_event_ret on_perf(void *ctx, int cpu, struct perf_event_header *h)
{
	struct columns *c = ctx;
	if (h->type == PERF_RECORD_SAMPLE) {
		struct { struct perf_event_header h; uint32_t size; char data[]; } *s = (void *)h;
		if (s->size >= sizeof(struct event))
			columns_add(c, (const struct event *)s->data, cpu);
	} else if (h->type == PERF_RECORD_LOST) {
		struct { struct perf_event_header h; uint64_t id, lost; } *l = (void *)h;
		c->lost += l->lost;
	}
	return LIBBPF_PERF_EVENT_CONT;
}

/* The producer is done and everything it submitted is received, dropped or lost. */
static int all_in(struct producer *p, int stats_fd, struct columns *c, uint64_t *sub,
		  uint64_t *failed)
{
	if (!p->done)
		return 0;
	read_stats(stats_fd, sub, failed);
	return (uint64_t)c->n + *failed >= *sub;
}

static int events(int argc, char **argv, int perf)
{
	if (argc < (perf ? 8 : 7)) {
		fprintf(stderr, "reader: missing arguments\n");
		return 2;
	}
	int prog_fd = atoi(argv[2]), map_fd = atoi(argv[3]), stats_fd = atoi(argv[4]);
	long total = atol(argv[5]);
	struct columns cols = {0};
	columns_init(&cols, total);
	struct producer p = {.prog_fd = prog_fd, .total = total};
	struct ring_buffer *rb = NULL;
	struct perf_buffer *pb = NULL;
	void *cons_page = NULL, *prod_page = NULL;
	long page = sysconf(_SC_PAGESIZE);

	if (!perf) {
		struct bpf_map_info info = {0};
		uint32_t len = sizeof(info);
		int err = bpf_obj_get_info_by_fd(map_fd, &info, &len);
		if (err)
			die("map info", err);
		p.flow = atoi(argv[6]);
		p.half = info.max_entries / 2;
		cons_page = mmap(NULL, page, PROT_READ, MAP_SHARED, map_fd, 0);
		prod_page = mmap(NULL, page, PROT_READ, MAP_SHARED, map_fd, page);
		if (cons_page == MAP_FAILED || prod_page == MAP_FAILED)
			die("mmap ring positions", errno);
		p.cons = cons_page;
		p.prod = prod_page;
		rb = ring_buffer__new(map_fd, on_ring, &cols, NULL);
		if (!rb)
			die("ring_buffer__new", errno);
	} else {
		struct perf_event_attr attr = {
			.type = PERF_TYPE_SOFTWARE, .size = sizeof(attr),
			.config = PERF_COUNT_SW_BPF_OUTPUT, .sample_period = 1,
			.sample_type = PERF_SAMPLE_RAW, .wakeup_events = atoi(argv[6]),
		};
		pb = perf_buffer__new_raw(map_fd, atol(argv[7]), &attr, on_perf, &cols, NULL);
		if (!pb)
			die("perf_buffer__new_raw", errno);
	}

	uint64_t sub = 0, failed = 0;
	pthread_t thread;
	double t0 = now(), c0 = cpu_seconds(), idle = 0;
	if (pthread_create(&thread, NULL, produce, &p))
		die("pthread_create", errno);
	for (;;) {
		long before = cols.n;
		if (rb) {
			if (ring_buffer__consume(rb) == 0)
				usleep(100);
		} else {
			perf_buffer__poll(pb, p.done ? 0 : 100);
			if (p.done)
				perf_buffer__consume(pb);
		}
		if (all_in(&p, stats_fd, &cols, &sub, &failed))
			break;
		if (p.done && cols.n == before) {  /* nothing more is coming: stop after 0.5 s */
			if (!idle)
				idle = now();
			else if (now() - idle > 0.5)
				break;
		}
	}
	double seconds = now() - t0;
	pthread_join(thread, NULL);
	double cpu = cpu_seconds() - c0;
	if (p.err)
		die("BPF_PROG_TEST_RUN", p.err);
	read_stats(stats_fd, &sub, &failed);
	printf("{\"received\": %ld, \"submitted\": %lu, \"dropped\": %lu, \"lost\": %lu, "
	       "\"seconds\": %.9f, \"cpu_seconds\": %.6f, \"last_seq\": %lu}\n", cols.n,
	       (unsigned long)sub, (unsigned long)failed, (unsigned long)cols.lost, seconds, cpu,
	       cols.n ? (unsigned long)cols.seq[cols.n - 1] : 0UL);
	ring_buffer__free(rb);
	perf_buffer__free(pb);
	return 0;
}

struct flow { uint64_t packets, bytes; };

static int hash(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "reader: missing arguments\n");
		return 2;
	}
	int fd = atoi(argv[2]), repeat = atoi(argv[3]);
	struct bpf_map_info info = {0};
	uint32_t len = sizeof(info);
	int err = bpf_obj_get_info_by_fd(fd, &info, &len);
	if (err)
		die("map info", err);
	if (info.key_size != 4 || info.value_size != sizeof(struct flow))
		die("expected u32 keys and struct flow values", EINVAL);
	long cap = info.max_entries;
	uint32_t *keys = xmalloc(cap * 4);
	struct flow *values = xmalloc(cap * sizeof(struct flow));
	uint32_t *key_col = xmalloc(cap * 4);
	uint64_t *packets = xmalloc(cap * 8), *bytes = xmalloc(cap * 8);
	double best = 1e9;
	long n = 0;
	for (int r = 0; r < repeat; r++) {
		double t0 = now();
		uint64_t token = 0;
		n = 0;
		for (int first = 1;; first = 0) {
			uint32_t count = cap - n;
			LIBBPF_OPTS(bpf_map_batch_opts, opts);
			err = bpf_map_lookup_batch(fd, first ? NULL : &token, &token, keys + n,
						   values + n, &count, &opts);
			n += count;
			if (err) {
				if (errno == ENOENT)
					break;
				die("bpf_map_lookup_batch", errno);
			}
			if (n >= cap)
				break;
		}
		for (long i = 0; i < n; i++) {  /* into columns, as a DataFrame holds them */
			key_col[i] = keys[i];
			packets[i] = values[i].packets;
			bytes[i] = values[i].bytes;
		}
		double t = now() - t0;
		if (t < best)
			best = t;
	}
	uint64_t check = 0;
	for (long i = 0; i < n; i++)
		check += bytes[i];
	printf("{\"entries\": %ld, \"seconds\": %.9f, \"bytes_sum\": %lu}\n", n, best,
	       (unsigned long)check);
	return 0;
}

int main(int argc, char **argv)
{
	const char *cold = getenv("READER_COLD_COLUMNS");
	cold_columns = cold && !strcmp(cold, "1");
	if (argc >= 2 && !strcmp(argv[1], "ring"))
		return events(argc, argv, 0);
	if (argc >= 2 && !strcmp(argv[1], "perf"))
		return events(argc, argv, 1);
	if (argc >= 2 && !strcmp(argv[1], "hash"))
		return hash(argc, argv);
	fprintf(stderr, "usage: reader ring|perf|hash ... (see the comment at the top)\n");
	return 2;
}
