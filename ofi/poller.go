package ofi

/*
#include "helpers.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// Polling windows of a domain's poller, measured from the last activity (a completion, a post,
// a peer's RMA or atomic counted on the activity counter): hot, it spins yielding the CPU
// between rounds; warm, it sleeps pollStep between rounds; cold, it wakes every pollCold or
// when something is posted.
const (
	pollHot   = 2 * time.Millisecond
	pollWarm  = 50 * time.Millisecond
	pollStep  = 5 * time.Microsecond
	pollCold  = time.Millisecond
	hotRounds = 4 // rounds per hot cgo call, each ending in sched_yield
)

// poller drives the queues of a domain that have no wait fd (shm): providers with manual
// progress serve peers' operations (messages, atomics, RMA without a fast path) only while
// polled, so an idle-looking queue may be what a peer waits for. One goroutine per domain polls
// all of them, as fast as the domain's recent activity warrants.
type poller struct {
	d       *Domain
	mu      sync.Mutex // held for a whole round: remove waits until the queue is out of use
	cqs     []*CQ
	carr    unsafe.Pointer // C array of the queues' fid_cq pointers
	running bool
	peek    bool  // zero-count fi_cq_read peeks (util-based providers)
	misses  int   // peeks that promised completions a drain did not find
	promise bool  // the last spin reported something
	cntr    *Cntr // counts peers' RMA and atomics on the domain's endpoints (FI_RMA_EVENT)
	seen    uint64

	last  atomic.Int64  // monotonic ns of the last activity the poller saw
	posts atomic.Uint64 // posts so far (touch): the poller reads the clock, not every post
	seenP uint64        // posts at the poller's last look
	cold  atomic.Bool   // sleeping a cold interval: posts kick
	kick  chan struct{}

	// spinners counts the goroutines spinning in await on the domain's polled queues. They
	// serve the domain's other queues as they spin (serve), and the poller stands by
	// meanwhile (standsBy): on a small machine a poller spinning beside them takes a CPU from
	// the peers they wait for. shmem's one-in-flight fetch-adds on shm against a C loop, 100000
	// at a time in alternating runs on 2 cores: 0.25-0.43 with the poller spinning, 0.61-0.68
	// standing by (0.65-0.75 with the old poller in a process at GOMAXPROCS=1, where it could
	// run only when the spinner yielded).
	spinners   atomic.Int32
	spins      atomic.Uint64 // spins begun, ever
	seenSpins  uint64        // spins at the poller's last look
	wantRound  atomic.Bool   // a waiter parked after spinning: poll unless others spin
	standingBy atomic.Bool   // the poller stands by for spinners: a parking waiter kicks
	rounds     atomic.Uint64 // rounds the poller made over the queues, ever
	standByFor time.Duration // the longest stand-by (pollCold when 0), under mu
}

var monoBase = time.Now()

func monoNow() int64 { return int64(time.Since(monoBase)) }

// touch records activity (a post) and wakes a cold poller.
func (p *poller) touch() {
	p.posts.Add(1)
	p.wake()
}

// wake ends a cold poller's sleep.
func (p *poller) wake() {
	if p.cold.Load() {
		p.kickNow()
	}
}

// serve drains the domain's queues other than self for a goroutine spinning on self, unless
// the poller is in a round of its own.
func (p *poller) serve(self *CQ) {
	if !p.mu.TryLock() {
		return
	}
	n, _ := p.drainQueues(self)
	p.mu.Unlock()
	if n > 0 {
		p.last.Store(monoNow())
	}
}

// drainQueues drains every queue of the domain but skip that nobody else is draining, and
// returns the completions it reaped and how many queues it left to someone draining them.
// p.mu is held.
func (p *poller) drainQueues(skip *CQ) (drained, busy int) {
	for _, q := range p.cqs {
		switch {
		case q == skip:
		case q.mu.TryLock():
			drained += q.drainLocked()
			q.mu.Unlock()
		default:
			busy++
		}
	}
	return drained, busy
}

// spinStart and spinDone bracket a spinner's spin (see spinners).
func (p *poller) spinStart() {
	p.spins.Add(1)
	p.spinners.Add(1)
}

func (p *poller) spinDone() { p.spinners.Add(-1) }

// parked records that a waiter parked on one of the domain's queues after spinning: unless
// goroutines still spin on the domain's queues (and serve it), nobody polls its queue now, so
// a standing-by poller takes over at once, hot.
func (p *poller) parked() {
	p.last.Store(monoNow())
	p.wantRound.Store(true)
	if p.standingBy.Load() {
		p.kickNow()
	}
}

// kickNow ends a cold or standing-by wait of the poller.
func (p *poller) kickNow() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// standsBy reports whether the poller leaves the queues to spinners: some spin now, or began
// to since its last look (spinners that finish an operation most likely spin again for the
// next) and no waiter parked since. It sets standingBy before it looks again, so that a
// waiter parking meanwhile either sees it (and kicks) or is seen. p.mu is held.
func (p *poller) standsBy() bool {
	s := p.spins.Load()
	moved := s != p.seenSpins
	p.seenSpins = s
	if p.spinners.Load() == 0 && (!moved || p.wantRound.Swap(false)) {
		return false
	}
	p.standingBy.Store(true)
	if p.spinners.Load() == 0 && p.wantRound.Swap(false) {
		p.standingBy.Store(false)
		return false
	}
	return true
}

// standBy is the poller's wait when it stands by (standsBy): for d, until a waiter parks with
// no spinner left, or until a queue leaves.
func (p *poller) standBy(d time.Duration) {
	p.waitKick(d)
	p.standingBy.Store(false)
}

// waitKick waits for d or until the poller is kicked (kickNow).
func (p *poller) waitKick(d time.Duration) {
	t := time.NewTimer(d)
	select {
	case <-p.kick:
	case <-t.C:
	}
	t.Stop()
}

// add starts polling q (and the poller, if it is not running).
func (p *poller) add(q *CQ) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.kick == nil {
		p.kick = make(chan struct{}, 1)
		p.peek = p.d.info.Provider() == "shm"
	}
	p.cqs = append(p.cqs, q)
	p.syncC()
	p.last.Store(monoNow())
	if !p.running {
		p.running = true
		go p.loop()
	}
}

// remove stops polling q; when it returns the poller no longer touches q.
func (p *poller) remove(q *CQ) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, c := range p.cqs {
		if c == q {
			p.cqs = append(p.cqs[:i], p.cqs[i+1:]...)
			break
		}
	}
	p.syncC()
	p.kickNow() // a cold or standing-by poller looks at once (and ends when no queue is left)
}

// syncC rebuilds the C array of queue pointers. p.mu is held.
func (p *poller) syncC() {
	if p.carr != nil {
		C.free(p.carr)
		p.carr = nil
	}
	if len(p.cqs) == 0 {
		return
	}
	p.carr = C.malloc(C.size_t(len(p.cqs)) * C.size_t(unsafe.Sizeof(uintptr(0))))
	arr := unsafe.Slice((**C.struct_fid_cq)(p.carr), len(p.cqs))
	for i, q := range p.cqs {
		arr[i] = q.c
	}
}

// activityCntr is the counter endpoints bind for peers' RMA and atomics, opened on first use.
// p.mu is held: reading the counter progresses the endpoints bound to it, so an endpoint is
// bound and enabled in one go while the poller is out.
func (p *poller) activityCntr() *Cntr {
	if p.cntr == nil {
		if c, err := p.d.OpenCntr(); err == nil {
			p.cntr = c
		}
	}
	return p.cntr
}

func (p *poller) loop() {
	for {
		p.mu.Lock()
		if len(p.cqs) == 0 {
			p.running = false
			p.mu.Unlock()
			return
		}
		if p.standsBy() {
			d := p.standByFor
			if d == 0 {
				d = pollCold
			}
			p.mu.Unlock()
			p.standBy(d)
			continue
		}
		p.rounds.Add(1)
		drained, busy := p.drainQueues(nil)
		n := drained + busy // a queue someone else drains is in use
		var cntr *C.struct_fid_cntr
		if p.cntr != nil && p.cntr.enter() {
			cntr = p.cntr.c
			p.d.quiet.RLock() // reading progresses the bound endpoints: none may be closing
			v := uint64(C.fi_cntr_read(cntr))
			p.d.quiet.RUnlock()
			if v != p.seen {
				p.seen = v
				n++
			}
			p.cntr.exit()
		}
		now := monoNow()
		if v := p.posts.Load(); v != p.seenP {
			p.seenP = v
			p.last.Store(now)
		}
		if n > 0 {
			p.last.Store(now)
			p.promise, p.misses = false, 0
			p.mu.Unlock()
			continue
		}
		if p.promise {
			// A peek said a queue held entries that no drain found (a failed queue, say):
			// after a few, stop trusting peeks and poll by draining.
			if p.misses++; p.misses > 16 {
				p.peek = false
			}
			p.promise = false
		}
		idle := time.Duration(now - p.last.Load())
		if idle >= pollWarm || !p.peek && idle >= pollHot {
			p.mu.Unlock()
			p.sleepCold()
			continue
		}
		rounds, step := hotRounds, time.Duration(0)
		if idle >= pollHot {
			rounds, step = 1, pollStep
		}
		if cntr != nil && !p.cntr.enter() {
			cntr = nil
		}
		p.d.quiet.RLock()
		got := C.rk_spin((**C.struct_fid_cq)(p.carr), C.int(len(p.cqs)), cntr, C.uint64_t(p.seen),
			boolInt(p.peek), C.int(rounds), C.int64_t(step))
		p.d.quiet.RUnlock()
		if cntr != nil {
			p.cntr.exit()
		}
		if got != 0 {
			p.last.Store(monoNow())
			p.promise = true
		}
		p.mu.Unlock()
		if got == 0 && step == 0 {
			// Hot: serve the process's queues with wait fds (see assistSet) and let waiting
			// goroutines have the P between rounds.
			assist.help(nil)
			runtime.Gosched()
		}
	}
}

// sleepCold waits a cold interval, or until a post kicks.
func (p *poller) sleepCold() {
	p.cold.Store(true)
	p.waitKick(pollCold)
	p.cold.Store(false)
}
