// Package cref is the C reference loop of the shmem benchmarks: the same libfabric atomic calls
// the Go path makes (fi_fetch_atomic for fetch-add, fi_compare_atomic for compare-and-swap and
// masked swap, on uint64), issued by plain C against a segment member served by Go, in batches
// (post depth, reap depth) like Segment.Do. Its endpoints are its own: one fabric, domain,
// completion queue and RDM endpoint per thread, busy-polling its completion queue. It opens
// them as package fabric does (Same) or as lean as a single-threaded busy-polling C program
// may (Lean).
package cref

/*
#cgo pkg-config: libfabric
#include <glob.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <rdma/fabric.h>
#include <rdma/fi_atomic.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_eq.h>

enum { CREF_WARM = 0, CREF_FADD = 1, CREF_CSWAP = 2, CREF_MSWAP = 3 };

typedef struct {
	const char *prov, *node, *service;
	uint64_t raddr, key;
	int kind, depth, lean, shm;
	uint64_t nops;
	int64_t stall_ns; // give up when a batch has waited this long (a dead target)
	int64_t warm_ns;  // run batches this long, uncounted, before the clock starts
	pthread_barrier_t *bar; // cref_run's start line (NULL: none)
	// outputs
	uint64_t done, warmed; // operations counted, and made in the warm-up
	int wait_fd, tagged, threading; // the setup obtained
	int err;
	char msg[160];
	// internal
	struct fi_info *info;
	struct fid_fabric *fab;
	struct fid_domain *dom;
	struct fid_cq *cq;
	struct fid_av *av;
	struct fid_ep *ep;
	struct fid_mr *mr;
	uint64_t *buf; // operand, compare, result: depth words each
	fi_addr_t peer;
	uint64_t cur; // the targeted word's value, as the warm-up read it
	uint64_t seq; // operations posted by cref_step
} cref_job;

static int cref_fail(cref_job *j, const char *what, long rc) {
	j->err = (int)(rc < 0 ? -rc : rc);
	snprintf(j->msg, sizeof j->msg, "%s: %s (%ld)", what, fi_strerror(j->err), rc);
	return -1;
}

static void cref_close(cref_job *j) {
	if (j->ep) fi_close(&j->ep->fid);
	if (j->mr) fi_close(&j->mr->fid);
	if (j->av) fi_close(&j->av->fid);
	if (j->cq) fi_close(&j->cq->fid);
	if (j->dom) fi_close(&j->dom->fid);
	if (j->fab) fi_close(&j->fab->fid);
	if (j->info) fi_freeinfo(j->info);
	free(j->buf);
}

// cref_stalled starts the stall clock *since on its first call and reports whether the job's
// stall limit has passed since.
static int cref_stalled(const cref_job *j, struct timespec *since) {
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (since->tv_sec == 0 && since->tv_nsec == 0) {
		*since = now;
		return 0;
	}
	return (int64_t)(now.tv_sec - since->tv_sec) * 1000000000 + (now.tv_nsec - since->tv_nsec) > j->stall_ns;
}

static int cref_warm(cref_job *j);

static int cref_setup(cref_job *j) {
	struct fi_info *hints = fi_allocinfo();
	hints->caps = FI_MSG | FI_RMA | FI_ATOMIC;
	hints->ep_attr->type = FI_EP_RDM;
	hints->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	hints->domain_attr->threading = FI_THREAD_DOMAIN;
	if (!j->lean) { // fabric's ofi backend (fabric/ofi_backend.go)
		hints->caps |= FI_TAGGED;
		hints->domain_attr->threading = FI_THREAD_SAFE;
		if (j->shm)
			hints->caps |= FI_RMA_EVENT;
		else
			hints->tx_attr->op_flags = FI_DELIVERY_COMPLETE;
	}
	hints->fabric_attr->prov_name = strdup(j->prov);
	int rc = fi_getinfo(FI_VERSION(1, 17), j->node, j->service, 0, hints, &j->info);
	if (rc == -FI_ENODATA && hints->tx_attr->op_flags) { // as fabric does (verbs lacks it)
		hints->tx_attr->op_flags = 0;
		rc = fi_getinfo(FI_VERSION(1, 17), j->node, j->service, 0, hints, &j->info);
	}
	fi_freeinfo(hints);
	if (rc) return cref_fail(j, "fi_getinfo", rc);
	if (j->lean) // rxm answers FI_THREAD_SAFE, and locks for that, when FI_THREAD_DOMAIN is asked
		j->info->domain_attr->threading = FI_THREAD_DOMAIN;
	if ((rc = fi_fabric(j->info->fabric_attr, &j->fab, NULL))) return cref_fail(j, "fi_fabric", rc);
	if ((rc = fi_domain(j->fab, j->info, &j->dom, NULL))) return cref_fail(j, "fi_domain", rc);
	// Lean: context entries, no wait object. Same: what ofi.Domain.OpenCQ asks for (tagged
	// entries and a wait fd, each where the provider has them).
	struct fi_cq_attr ca = { .size = (size_t)j->depth * 2 + 64, .format = FI_CQ_FORMAT_CONTEXT, .wait_obj = FI_WAIT_NONE };
	rc = -FI_ENOSYS;
	if (!j->lean) {
		enum fi_cq_format formats[2] = { FI_CQ_FORMAT_TAGGED, FI_CQ_FORMAT_DATA };
		for (int i = 0; i < 2 && rc; i++) {
			ca.format = formats[i];
			ca.wait_obj = FI_WAIT_FD;
			if ((rc = fi_cq_open(j->dom, &ca, &j->cq, NULL))) {
				ca.wait_obj = FI_WAIT_NONE;
				rc = fi_cq_open(j->dom, &ca, &j->cq, NULL);
			}
		}
	} else {
		rc = fi_cq_open(j->dom, &ca, &j->cq, NULL);
	}
	if (rc) return cref_fail(j, "fi_cq_open", rc);
	j->wait_fd = ca.wait_obj == FI_WAIT_FD;
	j->tagged = ca.format == FI_CQ_FORMAT_TAGGED;
	j->threading = j->info->domain_attr->threading;
	struct fi_av_attr aa = { .type = FI_AV_TABLE, .count = 4 };
	if ((rc = fi_av_open(j->dom, &aa, &j->av, NULL))) return cref_fail(j, "fi_av_open", rc);
	if ((rc = fi_endpoint(j->dom, j->info, &j->ep, NULL))) return cref_fail(j, "fi_endpoint", rc);
	if ((rc = fi_ep_bind(j->ep, &j->cq->fid, FI_TRANSMIT | FI_RECV))) return cref_fail(j, "fi_ep_bind(cq)", rc);
	if ((rc = fi_ep_bind(j->ep, &j->av->fid, 0))) return cref_fail(j, "fi_ep_bind(av)", rc);
	if ((rc = fi_enable(j->ep))) return cref_fail(j, "fi_enable", rc);
	if (fi_av_insert(j->av, j->info->dest_addr, 1, &j->peer, 0, NULL) != 1) return cref_fail(j, "fi_av_insert", -FI_EINVAL);
	size_t n = (size_t)j->depth * 3 * sizeof(uint64_t);
	if (posix_memalign((void **)&j->buf, 4096, n)) return cref_fail(j, "posix_memalign", -FI_ENOMEM);
	memset(j->buf, 0, n);
	if ((rc = fi_mr_reg(j->dom, j->buf, n, FI_READ | FI_WRITE, 0, 0, 0, &j->mr, NULL))) return cref_fail(j, "fi_mr_reg", rc);
	return cref_warm(j);
}

// cref_post posts operation i of a batch: kind is the job's, or CREF_WARM for a fetch-add of 0.
static ssize_t cref_post(cref_job *j, int kind, int i, uint64_t cur, uint64_t seq) {
	uint64_t *operand = j->buf, *compare = j->buf + j->depth, *result = j->buf + 2 * j->depth;
	void *desc = fi_mr_desc(j->mr);
	void *ctx = (void *)(uintptr_t)(i + 1);
	switch (kind) {
	case CREF_WARM:
	case CREF_FADD:
		operand[i] = kind == CREF_FADD;
		return fi_fetch_atomic(j->ep, &operand[i], 1, desc, &result[i], desc, j->peer, j->raddr, j->key,
				       FI_UINT64, FI_SUM, ctx);
	case CREF_CSWAP:
		compare[i] = cur;
		operand[i] = cur + 1;
		return fi_compare_atomic(j->ep, &operand[i], 1, desc, &compare[i], desc, &result[i], desc, j->peer,
					 j->raddr, j->key, FI_UINT64, FI_CSWAP, ctx);
	default:
		operand[i] = seq & 0xff;
		compare[i] = 0xff;
		return fi_compare_atomic(j->ep, &operand[i], 1, desc, &compare[i], desc, &result[i], desc, j->peer,
					 j->raddr, j->key, FI_UINT64, FI_MSWAP, ctx);
	}
}

// cref_post_retry posts like cref_post, progressing the queue while it is full (FI_EAGAIN). It
// returns 0, or -1 with the job failed (a post error, or the stall limit passed since *since).
static int cref_post_retry(cref_job *j, int kind, int i, uint64_t cur, uint64_t seq, struct timespec *since) {
	for (int idle = 0;;) {
		ssize_t rc = cref_post(j, kind, i, cur, seq);
		if (rc == 0)
			return 0;
		if (rc != -FI_EAGAIN)
			return cref_fail(j, "post", rc);
		fi_cq_read(j->cq, NULL, 0);
		if (++idle % 4096 == 0 && cref_stalled(j, since))
			return cref_fail(j, "post", -FI_ETIMEDOUT);
	}
}

// cref_reap reads n completions. It returns 0, or -1 with the job failed (an error completion,
// a failed read, or the stall limit passed since *since).
static int cref_reap(cref_job *j, int n, struct timespec *since) {
	struct fi_cq_tagged_entry ent[64]; // room for any format
	for (int got = 0, idle = 0; got < n;) {
		ssize_t rc = fi_cq_read(j->cq, ent, 64);
		if (rc == -FI_EAGAIN) {
			if (++idle % 4096 == 0 && cref_stalled(j, since))
				return cref_fail(j, "completion", -FI_ETIMEDOUT);
			continue;
		}
		if (rc == -FI_EAVAIL) {
			struct fi_cq_err_entry e; memset(&e, 0, sizeof e);
			fi_cq_readerr(j->cq, &e, 0);
			return cref_fail(j, "completion", e.err);
		}
		if (rc < 0)
			return cref_fail(j, "fi_cq_read", rc);
		got += (int)rc;
	}
	return 0;
}

// cref_warm makes one fetch-add of 0 on the targeted word and waits for it, so that the
// connection rxm makes on a peer's first operation (milliseconds: the target accepts it in its
// own time) is set up before the clock starts, as the Go path's is; it also reads the word's
// value for compare-and-swap.
static int cref_warm(cref_job *j) {
	struct timespec since = {0, 0};
	if (cref_post_retry(j, CREF_WARM, 0, 0, 0, &since) || cref_reap(j, 1, &since))
		return -1;
	j->cur = j->buf[2 * j->depth]; // result[0]
	return 0;
}

// cref_batch runs one batch of the loop: up to depth posts, then their reaps. *cur is the
// targeted word as a local copy would know it, *seq the operations posted so far. It returns
// 0, or -1 with the job failed.
static int cref_batch(cref_job *j, uint64_t *cur, uint64_t *seq) {
	uint64_t *operand = j->buf, *compare = j->buf + j->depth, *result = j->buf + 2 * j->depth;
	int batch = j->depth;
	if ((uint64_t)batch > j->nops - j->done) batch = (int)(j->nops - j->done);
	struct timespec since = {0, 0}; // read only once the batch has waited a while
	for (int i = 0; i < batch; i++, (*seq)++)
		if (cref_post_retry(j, j->kind, i, *cur, *seq, &since))
			return -1;
	if (cref_reap(j, batch, &since))
		return -1;
	for (int i = 0; i < batch; i++) // what a local copy would learn
		*cur = result[i] == compare[i] ? operand[i] : result[i];
	j->done += batch;
	return 0;
}

// cref_step runs one batch (cref_batch) with the loop's state in the job: the targeted word's
// value as a local copy would know it, and the operations posted so far. A loop driven from Go
// makes one cgo call of it per batch.
static int cref_step(cref_job *j) { return cref_batch(j, &j->cur, &j->seq); }

static int64_t cref_ns(void) {
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

// cref_warmup runs batches for warm_ns without counting them: after a pause (the other loop of
// a comparison ran meanwhile) the first operations are slower than the rest, on the target
// (its progress went to sleep) and in the caller's process, and the clock starts after them.
// It returns 0, or -1 with the job failed.
static int cref_warmup(cref_job *j) {
	if (j->warm_ns <= 0)
		return 0;
	uint64_t nops = j->nops;
	int64_t end = cref_ns() + j->warm_ns;
	j->nops = UINT64_MAX;
	int rc = 0;
	while (rc == 0 && cref_ns() < end)
		rc = cref_step(j);
	j->nops = nops;
	j->warmed = j->done;
	j->done = 0;
	return rc;
}

static void *cref_loop(void *arg) {
	cref_job *j = arg;
	int bad = cref_warmup(j);
	if (j->bar)
		pthread_barrier_wait(j->bar);
	while (!bad && j->done < j->nops && cref_step(j) == 0)
		;
	return NULL;
}

// cref_run runs n jobs, one thread each, and returns the wall time in ns from the moment all
// have warmed up.
static uint64_t cref_run(cref_job *jobs, int n) {
	pthread_t th[64];
	pthread_barrier_t bar;
	for (int i = 0; i < n; i++) {
		if (cref_setup(&jobs[i])) {
			for (int k = 0; k <= i; k++) cref_close(&jobs[k]);
			return 0;
		}
	}
	pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		jobs[i].bar = &bar;
		pthread_create(&th[i], NULL, cref_loop, &jobs[i]);
	}
	pthread_barrier_wait(&bar);
	int64_t a = cref_ns();
	for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
	int64_t b = cref_ns();
	pthread_barrier_destroy(&bar);
	for (int i = 0; i < n; i++) cref_close(&jobs[i]);
	return (uint64_t)(b - a);
}

// cref_shm_name finds the full shm endpoint name of a listener named name (newest match).
static int cref_shm_name(const char *name, char *out, size_t n) {
	char pat[512];
	snprintf(pat, sizeof pat, "/dev/shm/%s:*:*", name);
	glob_t g;
	if (glob(pat, 0, NULL, &g) || g.gl_pathc == 0) return -1;
	snprintf(out, n, "%s", strrchr(g.gl_pathv[g.gl_pathc - 1], '/') + 1);
	globfree(&g);
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"
	"unsafe"

	"github.com/rdmakit/rdmakit/fabric"
)

// Kind is the atomic the loop runs.
type Kind int

// Kinds.
const (
	FetchAdd    Kind = C.CREF_FADD  // fi_fetch_atomic FI_SUM
	CompareSwap Kind = C.CREF_CSWAP // fi_compare_atomic FI_CSWAP, expecting the last value seen
	MaskedSwap  Kind = C.CREF_MSWAP // fi_compare_atomic FI_MSWAP of the low byte
)

// Setup is how the loop opens its endpoint and completion queue.
type Setup int

// Setups.
const (
	// Same is the libfabric setup of package fabric's ofi backend, which the Go path runs on:
	// FI_THREAD_SAFE, FI_TAGGED, FI_DELIVERY_COMPLETE as default transmit flags (shm:
	// FI_RMA_EVENT instead), a completion queue of tagged entries with a FI_WAIT_FD wait
	// object where the provider has them (what Go's poller waits on). The loop itself never
	// waits on the fd.
	Same Setup = iota
	// Lean is what a single-threaded C program that only ever busy-polls may ask for:
	// FI_THREAD_DOMAIN, no tagged messages, default transmit flags, a completion queue of
	// context entries without a wait object. On tcp;ofi_rxm the wait fd alone costs about a
	// microsecond per operation one in flight (measured with this loop).
	Lean
)

// String is "same" or "lean".
func (s Setup) String() string {
	if s == Lean {
		return "lean"
	}
	return "same"
}

// Job is one run of the loop.
type Job struct {
	// Addr is the fabric address of the segment member whose memory is targeted (its
	// listener), e.g. "ofi+tcp://127.0.0.1:7600".
	Addr string
	// Remote and Off are the targeted word.
	Remote fabric.Remote
	Off    uint64
	Kind   Kind
	// Depth is how many operations are posted before reaping them all.
	Depth int
	// Ops per thread; Threads run concurrently, each with its own endpoint (at most 64).
	Ops     uint64
	Threads int
	// Stall ends the run with an error when a batch waits this long (default 30s): a dead
	// target never answers.
	Stall time.Duration
	// Warmup is how long each thread runs batches, uncounted, before the clock starts (after
	// the one warm-up operation every thread makes).
	Warmup time.Duration
	// Warmed, if not nil, receives the operations the warm-ups made (not counting the one every
	// thread makes, a fetch-add of 0).
	Warmed *uint64
	// Setup is how the endpoints are opened (default Same).
	Setup Setup
	// Got, if not nil, receives what the first thread's setup obtained.
	Got *Got
	// FromGo drives the loop from Go: each thread is a goroutine making one cgo call per batch
	// (the same C code posts and reaps it), yielding once a millisecond (yieldEvery) and
	// doing nothing else between the calls. It is the floor of any Go binding that makes a
	// call into C per operation: what it loses against the C loop is Go's, not a binding's.
	FromGo bool
}

// Got is what a setup obtained from the provider.
type Got struct {
	WaitFD     bool // the completion queue has a FI_WAIT_FD wait object
	Tagged     bool // its entries are FI_CQ_FORMAT_TAGGED
	ThreadSafe bool // the domain is FI_THREAD_SAFE
}

// Run runs the job and returns the operations completed and the wall time of the loops. Setup is
// excluded, and with it the connection to the target: each thread's endpoint first makes one
// fetch-add of 0 on the word and waits for it (rxm connects on a peer's first operation, which
// took 5-50 ms on loopback: 1-12% of a 10000-operation run one in flight, more pipelined).
func Run(j Job) (uint64, time.Duration, error) {
	a, err := fabric.ParseAddr(j.Addr)
	if err != nil {
		return 0, 0, err
	}
	if j.Depth <= 0 || j.Threads <= 0 || j.Threads > 64 || j.Ops == 0 {
		return 0, 0, errors.New("cref: depth, threads (1-64) and ops must be positive")
	}
	prov := map[string]string{"tcp": "tcp;ofi_rxm", "sockets": "sockets", "shm": "shm", "verbs": "verbs;ofi_rxm"}[a.Provider]
	if a.Backend != "ofi" || prov == "" || a.Options.Get("ep") == "msg" {
		return 0, 0, fmt.Errorf("cref: %s: only ofi RDM transports", j.Addr)
	}
	node, service := a.Host, a.Port
	if a.Provider == "shm" {
		cn := C.CString(a.Host)
		var full [512]C.char
		rc := C.cref_shm_name(cn, &full[0], 512)
		C.free(unsafe.Pointer(cn))
		if rc != 0 {
			return 0, 0, fmt.Errorf("cref: no shm endpoint named %q", a.Host)
		}
		node, service = C.GoString(&full[0]), ""
	} else if ip := net.ParseIP(node); ip == nil {
		return 0, 0, fmt.Errorf("cref: %s: want a numeric host", j.Addr)
	}
	stall := j.Stall
	if stall <= 0 {
		stall = 30 * time.Second
	}
	jobs := (*[64]C.cref_job)(C.calloc(64, C.size_t(unsafe.Sizeof(C.cref_job{}))))
	defer C.free(unsafe.Pointer(jobs))
	cprov, cnode := C.CString(prov), C.CString(node)
	defer C.free(unsafe.Pointer(cprov))
	defer C.free(unsafe.Pointer(cnode))
	var cservice *C.char
	if service != "" {
		cservice = C.CString(service)
		defer C.free(unsafe.Pointer(cservice))
	}
	for i := range j.Threads {
		jb := &jobs[i]
		jb.prov, jb.node, jb.service = cprov, cnode, cservice
		jb.raddr, jb.key = C.uint64_t(j.Remote.Addr+j.Off), C.uint64_t(j.Remote.Key)
		jb.kind, jb.depth, jb.nops = C.int(j.Kind), C.int(j.Depth), C.uint64_t(j.Ops)
		jb.stall_ns, jb.warm_ns = C.int64_t(stall), C.int64_t(j.Warmup)
		jb.lean, jb.shm = C.int(boolInt(j.Setup == Lean)), C.int(boolInt(a.Provider == "shm"))
	}
	var ns C.uint64_t
	if j.FromGo {
		ns = runFromGo(jobs[:j.Threads])
	} else {
		ns = C.cref_run(&jobs[0], C.int(j.Threads))
	}
	if j.Got != nil && jobs[0].err == 0 {
		*j.Got = Got{WaitFD: jobs[0].wait_fd != 0, Tagged: jobs[0].tagged != 0,
			ThreadSafe: jobs[0].threading == C.FI_THREAD_SAFE}
	}
	var done, warmed uint64
	for i := range j.Threads {
		if jobs[i].err != 0 {
			return 0, 0, fmt.Errorf("cref: thread %d: %s", i, C.GoString(&jobs[i].msg[0]))
		}
		done += uint64(jobs[i].done)
		warmed += uint64(jobs[i].warmed)
	}
	if j.Warmed != nil {
		*j.Warmed = warmed
	}
	return done, time.Duration(ns), nil
}

// A goroutine that never leaves the scheduler's hands runs on one schedtick, and after 10 ms
// of that sysmon takes its P while it is in a cgo call, then polls every 20 µs for a while: on
// a 2-core machine those wake-ups land on the CPU that serves the target. The loop from Go
// made 4000 sysmon sleeps a second that way and ran at 0.91-0.95 of the C loop; yielding
// every millisecond, it ran at 0.97-1.03.
const yieldEvery = time.Millisecond

// runFromGo is cref_run with the loops driven from goroutines (Job.FromGo).
func runFromGo(jobs []C.cref_job) C.uint64_t {
	for i := range jobs {
		if C.cref_setup(&jobs[i]) != 0 {
			for k := 0; k <= i; k++ {
				C.cref_close(&jobs[k])
			}
			return 0
		}
	}
	var warm, wg sync.WaitGroup
	start := make(chan struct{})
	for i := range jobs {
		jb := &jobs[i]
		warm.Add(1)
		wg.Go(func() {
			bad := C.cref_warmup(jb) != 0
			warm.Done()
			<-start
			last := time.Now()
			for !bad && jb.done < jb.nops && C.cref_step(jb) == 0 {
				if time.Since(last) > yieldEvery {
					runtime.Gosched()
					last = time.Now()
				}
			}
		})
	}
	warm.Wait()
	t0 := time.Now()
	close(start)
	wg.Wait()
	ns := C.uint64_t(time.Since(t0))
	for i := range jobs {
		C.cref_close(&jobs[i])
	}
	return ns
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
