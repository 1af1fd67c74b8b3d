// helpers.h - C helpers for package ofi. libfabric's data-path calls (fi_write, fi_cq_read, ...)
// are static inline functions; these helpers call them from C so that Go pays one cgo call per
// batch, never one per operation, and passes only plain integers (no Go pointers) to C.
#ifndef RDMAKIT_OFI_HELPERS_H
#define RDMAKIT_OFI_HELPERS_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sched.h>
#include <sys/prctl.h>
#include <rdma/fabric.h>
#include <rdma/fi_atomic.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>
#include <rdma/fi_tagged.h>

// Operation kinds (mirrored by OpKind in op.go).
enum {
	RK_SEND = 1, RK_RECV, RK_TSEND, RK_TRECV, RK_INJECT, RK_TINJECT,
	RK_READ, RK_WRITE, RK_INJECT_WRITE, RK_ATOMIC, RK_FETCH_ATOMIC, RK_COMPARE_ATOMIC,
};

// rk_op is one operation as plain values. Addresses are integers (off-heap memory only).
typedef struct rk_op {
	uint32_t kind, atomic_op, datatype, has_data;
	uint64_t buf, len, desc;          // local buffer and its MR descriptor
	uint64_t addr;                    // peer fi_addr_t (FI_ADDR_UNSPEC when connected)
	uint64_t raddr, key;              // remote target of RMA and atomics
	uint64_t tag, ignore, data;       // tagged matching; remote CQ data
	uint64_t operand, compare, result, scratch_desc; // atomic operand/compare/result addresses
	uint64_t count;                   // atomic element count
	uint64_t flags;                   // extra operation flags (writes: FI_DELIVERY_COMPLETE)
	uint64_t ctx;                     // operation context: an integer, never a pointer
} rk_op;

// rk_call is C memory for one Do call: its operation when it has only one, and the outputs
// of the cgo calls that post it. Go memory passed to C escapes to the heap (an allocation per
// call) and is checked on every call; this is neither.
typedef struct rk_call {
	rk_op op;
	ssize_t rc;
	int ncomp;
} rk_call;

// rk_comp is one completion, successful or not, as plain values.
typedef struct rk_comp {
	uint64_t ctx, flags, len, data, tag, src;
	int32_t err, prov_errno;
	char text[112];
} rk_comp;

static inline ssize_t rk_post1(struct fid_ep *ep, const rk_op *o) {
	void *buf = (void *)(uintptr_t)o->buf;
	void *desc = (void *)(uintptr_t)o->desc;
	void *ctx = (void *)(uintptr_t)o->ctx;
	void *sdesc = (void *)(uintptr_t)o->scratch_desc;
	switch (o->kind) {
	case RK_SEND:
		if (o->has_data)
			return fi_senddata(ep, buf, o->len, desc, o->data, o->addr, ctx);
		return fi_send(ep, buf, o->len, desc, o->addr, ctx);
	case RK_RECV:
		return fi_recv(ep, buf, o->len, desc, o->addr, ctx);
	case RK_TSEND:
		if (o->has_data)
			return fi_tsenddata(ep, buf, o->len, desc, o->data, o->addr, o->tag, ctx);
		return fi_tsend(ep, buf, o->len, desc, o->addr, o->tag, ctx);
	case RK_TRECV:
		return fi_trecv(ep, buf, o->len, desc, o->addr, o->tag, o->ignore, ctx);
	case RK_INJECT:
		return fi_inject(ep, buf, o->len, o->addr);
	case RK_TINJECT:
		return fi_tinject(ep, buf, o->len, o->addr, o->tag);
	case RK_READ:
		return fi_read(ep, buf, o->len, desc, o->addr, o->raddr, o->key, ctx);
	case RK_WRITE:
		if (o->flags) {
			// Per-op flags need fi_writemsg: providers such as tcp ignore tx_attr op_flags
			// on fi_write.
			struct iovec iov = { .iov_base = buf, .iov_len = o->len };
			struct fi_rma_iov rma = { .addr = o->raddr, .len = o->len, .key = o->key };
			struct fi_msg_rma msg = { .msg_iov = &iov, .desc = &desc, .iov_count = 1,
				.addr = o->addr, .rma_iov = &rma, .rma_iov_count = 1, .context = ctx,
				.data = o->data };
			return fi_writemsg(ep, &msg, o->flags | FI_COMPLETION |
					   (o->has_data ? FI_REMOTE_CQ_DATA : 0));
		}
		if (o->has_data)
			return fi_writedata(ep, buf, o->len, desc, o->data, o->addr, o->raddr, o->key, ctx);
		return fi_write(ep, buf, o->len, desc, o->addr, o->raddr, o->key, ctx);
	case RK_INJECT_WRITE:
		if (o->has_data)
			return fi_inject_writedata(ep, buf, o->len, o->data, o->addr, o->raddr, o->key);
		return fi_inject_write(ep, buf, o->len, o->addr, o->raddr, o->key);
	case RK_ATOMIC:
		return fi_atomic(ep, (void *)(uintptr_t)o->operand, o->count, sdesc, o->addr,
				 o->raddr, o->key, o->datatype, o->atomic_op, ctx);
	case RK_FETCH_ATOMIC:
		return fi_fetch_atomic(ep, (void *)(uintptr_t)o->operand, o->count, sdesc,
				       (void *)(uintptr_t)o->result, sdesc, o->addr, o->raddr, o->key,
				       o->datatype, o->atomic_op, ctx);
	case RK_COMPARE_ATOMIC:
		return fi_compare_atomic(ep, (void *)(uintptr_t)o->operand, o->count, sdesc,
					 (void *)(uintptr_t)o->compare, sdesc,
					 (void *)(uintptr_t)o->result, sdesc, o->addr, o->raddr, o->key,
					 o->datatype, o->atomic_op, ctx);
	}
	return -FI_EINVAL;
}

// rk_iov is one local segment of a vectored operation.
typedef struct rk_iov {
	uint64_t addr, len, desc;
} rk_iov;

// rk_rmav posts one vectored RMA (fi_readmsg / fi_writemsg): n local segments gathered from
// (write) or scattered into (read) one remote range at raddr.
static inline ssize_t rk_rmav(struct fid_ep *ep, int write, const rk_iov *v, int n,
			      uint64_t addr, uint64_t raddr, uint64_t key, uint64_t data,
			      uint64_t flags, uint64_t ctx) {
	struct iovec iov[16];
	void *desc[16];
	uint64_t total = 0;
	if (n <= 0 || n > 16)
		return -FI_EINVAL;
	for (int i = 0; i < n; i++) {
		iov[i].iov_base = (void *)(uintptr_t)v[i].addr;
		iov[i].iov_len = v[i].len;
		desc[i] = (void *)(uintptr_t)v[i].desc;
		total += v[i].len;
	}
	struct fi_rma_iov rma = { .addr = raddr, .len = total, .key = key };
	struct fi_msg_rma msg = { .msg_iov = iov, .desc = desc, .iov_count = (size_t)n,
		.addr = addr, .rma_iov = &rma, .rma_iov_count = 1,
		.context = (void *)(uintptr_t)ctx, .data = data };
	flags |= FI_COMPLETION;
	return write ? fi_writemsg(ep, &msg, flags) : fi_readmsg(ep, &msg, flags);
}

// rk_post posts ops[0..n) in order and returns how many were posted; *rc gets the return code of
// the first one that was not (-FI_EAGAIN means "progress and retry").
static inline int rk_post(struct fid_ep *ep, const rk_op *ops, int n, ssize_t *rc) {
	int i;
	*rc = 0;
	for (i = 0; i < n; i++) {
		ssize_t r = rk_post1(ep, &ops[i]);
		if (r) {
			*rc = r;
			break;
		}
	}
	return i;
}

// rk_cq_drain reads up to n completions (error entries decoded, with the provider's text) into
// out. It returns the count, or a negative fi errno for a failure of the CQ itself. from selects
// fi_cq_readfrom, which reports the source address of received messages.
static inline int rk_cq_drain(struct fid_cq *cq, rk_comp *out, int n, int from, int tagged) {
	struct fi_cq_tagged_entry ent[64];
	struct fi_cq_data_entry dent[64];
	fi_addr_t src[64];
	void *buf = tagged ? (void *)ent : (void *)dent;
	int got = 0;
	while (got < n) {
		int want = n - got < 64 ? n - got : 64;
		ssize_t r = from ? fi_cq_readfrom(cq, buf, want, src) : fi_cq_read(cq, buf, want);
		if (r == -FI_EAGAIN)
			break;
		if (r == -FI_EAVAIL) {
			struct fi_cq_err_entry e;
			memset(&e, 0, sizeof e);
			r = fi_cq_readerr(cq, &e, 0);
			if (r == -FI_EAGAIN)
				continue;
			if (r < 0)
				return got ? got : (int)r;
			rk_comp *c = &out[got++];
			memset(c, 0, sizeof *c);
			c->ctx = (uint64_t)(uintptr_t)e.op_context;
			c->flags = e.flags;
			c->len = e.len;
			c->data = e.data;
			c->tag = e.tag;
			c->src = FI_ADDR_NOTAVAIL;
			c->err = e.err ? e.err : FI_EOTHER;
			c->prov_errno = e.prov_errno;
			const char *s = fi_cq_strerror(cq, e.prov_errno, e.err_data, NULL, 0);
			if (s)
				snprintf(c->text, sizeof c->text, "%s", s);
			continue;
		}
		if (r < 0)
			return got ? got : (int)r;
		if (!tagged) { // widen data entries into tagged ones (tag 0)
			for (ssize_t i = r - 1; i >= 0; i--) {
				struct fi_cq_data_entry d = dent[i];
				ent[i].op_context = d.op_context;
				ent[i].flags = d.flags;
				ent[i].len = d.len;
				ent[i].buf = d.buf;
				ent[i].data = d.data;
				ent[i].tag = 0;
			}
		}
		for (ssize_t i = 0; i < r; i++) {
			rk_comp *c = &out[got++];
			c->ctx = (uint64_t)(uintptr_t)ent[i].op_context;
			c->flags = ent[i].flags;
			c->len = ent[i].len;
			c->data = ent[i].data;
			c->tag = ent[i].tag;
			c->src = from ? src[i] : FI_ADDR_NOTAVAIL;
			c->err = 0;
			c->prov_errno = 0;
			c->text[0] = 0;
		}
		if (r < want)
			break;
	}
	return got;
}

// rk_now_ns is CLOCK_MONOTONIC in nanoseconds.
static inline int64_t rk_now_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

// rk_post_drain posts ops like rk_post, then polls cq until at least one completion arrives or
// ns nanoseconds have passed: the latency path of a blocking call, in one cgo call. *ncomp is
// what rk_cq_drain returned last: completions read, or a negative fi errno.
static inline int rk_post_drain(struct fid_ep *ep, const rk_op *ops, int n, ssize_t *rc,
				struct fid_cq *cq, rk_comp *out, int max, int from, int tagged,
				int64_t ns, int *ncomp) {
	int posted = rk_post(ep, ops, n, rc);
	int64_t end = rk_now_ns() + ns;
	int got;
	do
		got = rk_cq_drain(cq, out, max, from, tagged);
	while (got == 0 && rk_now_ns() < end);
	*ncomp = got;
	return posted;
}

// rk_spin drives the provider's progress on queues that have no wait fd and waits, for at most
// rounds rounds, until one of them holds a completion or the activity counter moves off seen.
// With peek, a zero-count fi_cq_read progresses a queue and tells whether entries wait without
// consuming them (util-based providers); without it, a round only pauses. A round ends by
// yielding the CPU (step_ns 0) or sleeping step_ns with fine timer slack. Calls stay short so
// that the Go scheduler gets its P back soon. It returns 1 when something arrived (or a queue
// reported an error), 0 otherwise.
static inline int rk_spin(struct fid_cq **cqs, int n, struct fid_cntr *cntr, uint64_t seen,
			  int peek, int rounds, int64_t step_ns) {
	struct timespec step = {0, step_ns};
	static __thread int slack_set;
	if (step_ns > 0 && !slack_set) {
		prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0); // this thread's sleeps: 1 µs slack
		slack_set = 1;
	}
	for (int r = 0; r < rounds; r++) {
		if (peek) {
			for (int i = 0; i < n; i++)
				if (fi_cq_read(cqs[i], NULL, 0) != -FI_EAGAIN)
					return 1;
		}
		if (cntr && fi_cntr_read(cntr) != seen)
			return 1;
		if (step_ns > 0)
			nanosleep(&step, NULL);
		else
			sched_yield();
	}
	return 0;
}

// rk_linger drives cq's progress with zero-count fi_cq_read (a util-based queue progresses its
// endpoints on every read and reports waiting entries without consuming them) for ns
// nanoseconds. It returns -1 as soon as the queue holds entries (or reports an error), else the
// number of reads that took longer than work_ns (each moved a peer's data: served a request).
static inline int rk_linger(struct fid_cq *cq, int64_t ns, int64_t work_ns) {
	int64_t prev = rk_now_ns(), end = prev + ns;
	int work = 0;
	for (;;) {
		if (fi_cq_read(cq, NULL, 0) != -FI_EAGAIN)
			return -1;
		int64_t now = rk_now_ns();
		if (now - prev > work_ns)
			work++;
		if (now >= end)
			return work;
		prev = now;
	}
}

// rk_close_ep_av closes an endpoint with a throwaway address vector bound first: rxm (libfabric
// 1.17) dereferences the endpoint's AV in fi_close and crashed closing one that had none. If
// no AV can be bound the endpoint stays open (fi_close would crash) and the error returns.
static inline int rk_close_ep_av(struct fid_ep *ep, struct fid_domain *dom) {
	struct fi_av_attr attr = {.type = FI_AV_TABLE, .count = 1};
	struct fid_av *av;
	int rc = fi_av_open(dom, &attr, &av, NULL);
	if (rc)
		return rc;
	rc = fi_ep_bind(ep, &av->fid, 0);
	if (rc) {
		fi_close(&av->fid);
		return rc;
	}
	rc = fi_close(&ep->fid);
	int rc2 = fi_close(&av->fid);
	return rc ? rc : rc2;
}

// rk_cancel cancels the operation posted with context ctx (receives; others finish anyway).
static inline int rk_cancel(struct fid_ep *ep, uint64_t ctx) {
	return (int)fi_cancel(&ep->fid, (void *)(uintptr_t)ctx);
}

static inline int rk_trywait1(struct fid_fabric *fab, struct fid_cq *cq) {
	struct fid *f = &cq->fid;
	return fi_trywait(fab, &f, 1);
}

static inline int rk_getwait_fd(struct fid *f, int *fd) {
	return fi_control(f, FI_GETWAIT, fd);
}

#endif
