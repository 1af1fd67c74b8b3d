// cref.h - the C reference loops rdmakit's benchmarks compare against: the same libfabric
// calls a C program makes, on a pair of RDM endpoints in one process (the target side runs in
// its own thread, as a C server's progress thread would).
#ifndef RDMAKIT_BENCH_CREF_H
#define RDMAKIT_BENCH_CREF_H

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <rdma/fabric.h>
#include <rdma/fi_atomic.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

typedef struct rkb_side {
	struct fi_info *info;
	struct fid_fabric *fab;
	struct fid_domain *dom;
	struct fid_ep *ep;
	struct fid_cq *cq;
	struct fid_av *av;
	struct fid_mr *mr;
	void *buf;
	size_t len;
	fi_addr_t peer;
	uint64_t raddr, rkey; // the other side's buffer
	void *desc;
	pthread_t thr;
	volatile int stop;
	int mode; // 0 progress only, 1 echo messages
	int recv_posted;
} rkb_side;

// No loop runs longer than this: a lost completion is an error, never a hang.
#define RKB_LIMIT_NS (60LL * 1000000000)

static int64_t rkb_now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int rkb_open(rkb_side *s, const char *prov, size_t len) {
	struct fi_info *h = fi_allocinfo();
	int rc;
	memset(s, 0, sizeof *s);
	h->caps = FI_MSG | FI_RMA | FI_ATOMIC;
	h->ep_attr->type = FI_EP_RDM;
	h->fabric_attr->prov_name = strdup(prov);
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	h->domain_attr->threading = FI_THREAD_SAFE;
	// As the Go side asks (gopair.go): no default transmit flags (writes ask for
	// FI_DELIVERY_COMPLETE per operation, in both), peers' RMA counted on shm.
	int shm = strcmp(prov, "shm") == 0;
	if (shm)
		h->caps |= FI_RMA_EVENT;
	rc = fi_getinfo(FI_VERSION(1, 17), shm ? NULL : "127.0.0.1", NULL, shm ? 0 : FI_SOURCE, h, &s->info);
	fi_freeinfo(h);
	if (rc) return rc;
	if ((rc = fi_fabric(s->info->fabric_attr, &s->fab, NULL))) return rc;
	if ((rc = fi_domain(s->fab, s->info, &s->dom, NULL))) return rc;
	if ((rc = fi_endpoint(s->dom, s->info, &s->ep, NULL))) return rc;
	// A wait fd where the provider has one, as ofi.Domain.OpenCQ opens the Go side's queue (it
	// costs tcp;ofi_rxm about a microsecond per round trip); the loops never wait on it.
	struct fi_cq_attr ca = { .size = 1024, .format = FI_CQ_FORMAT_TAGGED, .wait_obj = FI_WAIT_FD };
	if ((rc = fi_cq_open(s->dom, &ca, &s->cq, NULL))) {
		ca.wait_obj = FI_WAIT_NONE;
		if ((rc = fi_cq_open(s->dom, &ca, &s->cq, NULL))) return rc;
	}
	struct fi_av_attr aa = { .type = FI_AV_TABLE, .count = 4 };
	if ((rc = fi_av_open(s->dom, &aa, &s->av, NULL))) return rc;
	if ((rc = fi_ep_bind(s->ep, &s->cq->fid, FI_TRANSMIT | FI_RECV))) return rc;
	if ((rc = fi_ep_bind(s->ep, &s->av->fid, 0))) return rc;
	if ((rc = fi_enable(s->ep))) return rc;
	s->len = len;
	// Same memory as ofi.Alloc: huge pages from 2 MiB up.
	if (posix_memalign(&s->buf, len >= (2u << 20) ? (2u << 20) : 4096, len)) return -FI_ENOMEM;
	if (len >= (2u << 20)) madvise(s->buf, len, MADV_HUGEPAGE);
	memset(s->buf, 0, len);
	rc = fi_mr_reg(s->dom, s->buf, len, FI_SEND | FI_RECV | FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE,
		       0, 1, 0, &s->mr, NULL);
	if (rc) return rc;
	s->desc = fi_mr_desc(s->mr);
	return 0;
}

// rkb_pair makes a and b know each other and each other's buffer.
static int rkb_pair(rkb_side *a, rkb_side *b) {
	char na[256], nb[256];
	size_t la = sizeof na, lb = sizeof nb;
	int rc;
	if ((rc = fi_getname(&a->ep->fid, na, &la)) || (rc = fi_getname(&b->ep->fid, nb, &lb))) return rc;
	if (fi_av_insert(a->av, nb, 1, &a->peer, 0, NULL) != 1) return -FI_EINVAL;
	if (fi_av_insert(b->av, na, 1, &b->peer, 0, NULL) != 1) return -FI_EINVAL;
	int virt = a->info->domain_attr->mr_mode & FI_MR_VIRT_ADDR;
	a->raddr = virt ? (uint64_t)(uintptr_t)b->buf : 0;
	a->rkey = fi_mr_key(b->mr);
	b->raddr = virt ? (uint64_t)(uintptr_t)a->buf : 0;
	b->rkey = fi_mr_key(a->mr);
	return 0;
}

static void rkb_close(rkb_side *s) {
	if (s->ep) fi_close(&s->ep->fid);
	if (s->mr) fi_close(&s->mr->fid);
	if (s->av) fi_close(&s->av->fid);
	if (s->cq) fi_close(&s->cq->fid);
	if (s->dom) fi_close(&s->dom->fid);
	if (s->fab) fi_close(&s->fab->fid);
	if (s->info) fi_freeinfo(s->info);
	free(s->buf);
	memset(s, 0, sizeof *s);
}

// The target thread: progress (mode 0), or echo each message back (mode 1). One receive is
// kept posted across runs (recv_posted), and completions are told apart by their context.
static void *rkb_target(void *arg) {
	rkb_side *s = arg;
	struct fi_cq_tagged_entry e[16], junk[16];
	if (s->mode == 1) {
		while (!s->stop) {
			if (!s->recv_posted) {
				ssize_t r = fi_recv(s->ep, s->buf, 64, s->desc, FI_ADDR_UNSPEC, (void *)1);
				if (r == 0)
					s->recv_posted = 1;
				else if (r != -FI_EAGAIN)
					return NULL;
			}
			ssize_t n = fi_cq_read(s->cq, e, 16);
			for (ssize_t i = 0; i < n; i++) {
				if (e[i].op_context != (void *)1)
					continue; // an echo's send completed
				s->recv_posted = 0;
				while (!s->stop && fi_send(s->ep, s->buf, e[i].len, s->desc, s->peer, (void *)2) == -FI_EAGAIN)
					fi_cq_read(s->cq, junk, 0);
			}
		}
		return NULL;
	}
	while (!s->stop)
		fi_cq_read(s->cq, e, 16);
	return NULL;
}

static int rkb_start(rkb_side *b, int mode) {
	b->stop = 0;
	b->mode = mode;
	return pthread_create(&b->thr, NULL, rkb_target, b);
}

static void rkb_stop(rkb_side *b) {
	b->stop = 1;
	pthread_join(b->thr, NULL);
}

// rkb_rma runs iters RMA ops of size bytes (write, or read when rd), window in flight, and
// returns the elapsed nanoseconds (negative: an fi error).
static int64_t rkb_rma(rkb_side *a, size_t size, int iters, int window, int rd) {
	struct fi_cq_tagged_entry e[64];
	int posted = 0, done = 0;
	int64_t t0 = rkb_now();
	while (done < iters) {
		if (rkb_now() - t0 > RKB_LIMIT_NS)
			return -FI_ETIMEDOUT;
		while (posted < iters && posted - done < window) {
			ssize_t r;
			if (rd) {
				r = fi_read(a->ep, a->buf, size, a->desc, a->peer, a->raddr, a->rkey, (void *)3);
			} else {
				struct iovec iov = { a->buf, size };
				struct fi_rma_iov rma = { a->raddr, size, a->rkey };
				struct fi_msg_rma msg = { .msg_iov = &iov, .desc = &a->desc, .iov_count = 1,
					.addr = a->peer, .rma_iov = &rma, .rma_iov_count = 1, .context = (void *)3 };
				r = fi_writemsg(a->ep, &msg, FI_DELIVERY_COMPLETE | FI_COMPLETION);
			}
			if (r == -FI_EAGAIN) break;
			if (r) return r;
			posted++;
		}
		ssize_t n = fi_cq_read(a->cq, e, 64);
		if (n > 0) done += n;
		else if (n != -FI_EAGAIN) return n;
	}
	return rkb_now() - t0;
}

// rkb_pingpong sends iters size-byte messages to the echoing target and waits for each echo.
static int64_t rkb_pingpong(rkb_side *a, size_t size, int iters) {
	struct fi_cq_tagged_entry e[4];
	char *rbuf = (char *)a->buf + 4096;
	int64_t t0 = rkb_now();
	for (int i = 0; i < iters; i++) {
		ssize_t r;
		while ((r = fi_recv(a->ep, rbuf, 64, a->desc, FI_ADDR_UNSPEC, (void *)5)) == -FI_EAGAIN)
			fi_cq_read(a->cq, e, 4);
		if (r) return r;
		while ((r = fi_send(a->ep, a->buf, size, a->desc, a->peer, (void *)6)) == -FI_EAGAIN)
			fi_cq_read(a->cq, e, 4);
		if (r) return r;
		int got = 0;
		while (got < 2) {
			if (rkb_now() - t0 > RKB_LIMIT_NS)
				return -FI_ETIMEDOUT;
			ssize_t n = fi_cq_read(a->cq, e, 4);
			if (n > 0) got += n;
			else if (n != -FI_EAGAIN) return n;
		}
	}
	return rkb_now() - t0;
}

// rkb_fadd runs iters 64-bit fetch-adds on the target's first word, window in flight.
static int64_t rkb_fadd(rkb_side *a, int iters, int window) {
	struct fi_cq_tagged_entry e[64];
	uint64_t *operand = (uint64_t *)((char *)a->buf + 8192);
	uint64_t *result = operand + 1;
	*operand = 1;
	int posted = 0, done = 0;
	int64_t t0 = rkb_now();
	while (done < iters) {
		if (rkb_now() - t0 > RKB_LIMIT_NS)
			return -FI_ETIMEDOUT;
		while (posted < iters && posted - done < window) {
			ssize_t r = fi_fetch_atomic(a->ep, operand, 1, a->desc, result + (posted % 64), a->desc,
						    a->peer, a->raddr, a->rkey, FI_UINT64, FI_SUM, (void *)4);
			if (r == -FI_EAGAIN) break;
			if (r) return r;
			posted++;
		}
		ssize_t n = fi_cq_read(a->cq, e, 64);
		if (n > 0) done += n;
		else if (n != -FI_EAGAIN) return n;
	}
	return rkb_now() - t0;
}

#endif
