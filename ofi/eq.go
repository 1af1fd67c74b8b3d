package ofi

/*
#include "helpers.h"

// rk_eq_read reads one event (blocking for none). For a connection request it also returns
// the fi_info the provider allocated (the caller frees it).
static inline ssize_t rk_eq_read(struct fid_eq *eq, uint32_t *event, uint64_t *fid,
				 struct fi_info **info, void *data, size_t datalen, size_t *plen,
				 int *err, int *prov_errno, char *text, size_t textlen) {
	struct {
		struct fi_eq_cm_entry cm;
		uint8_t priv[256];
	} ent;
	*info = NULL; *plen = 0; *err = 0; *prov_errno = 0; text[0] = 0;
	ssize_t r = fi_eq_read(eq, event, &ent, sizeof ent, 0);
	if (r == -FI_EAVAIL) {
		struct fi_eq_err_entry e;
		memset(&e, 0, sizeof e);
		r = fi_eq_readerr(eq, &e, 0);
		if (r < 0)
			return r;
		*fid = (uint64_t)(uintptr_t)e.fid;
		*err = e.err;
		*prov_errno = e.prov_errno;
		const char *s = fi_eq_strerror(eq, e.prov_errno, e.err_data, NULL, 0);
		if (s)
			snprintf(text, textlen, "%s", s);
		return 0;
	}
	if (r < 0)
		return r;
	*fid = (uint64_t)(uintptr_t)ent.cm.fid;
	if (*event == FI_CONNREQ || *event == FI_CONNECTED || *event == FI_SHUTDOWN) {
		if (*event == FI_CONNREQ)
			*info = ent.cm.info;
		if ((size_t)r > sizeof(struct fi_eq_cm_entry)) {
			size_t n = (size_t)r - sizeof(struct fi_eq_cm_entry);
			if (n > datalen)
				n = datalen;
			memcpy(data, ent.priv, n);
			*plen = n;
		}
	}
	return r;
}
*/
import "C"

import (
	"context"
	"fmt"
	"sync"
	"time"
	"unsafe"
)

// EventKind is the type of an event-queue event.
type EventKind uint32

// Event kinds.
const (
	EventConnReq      EventKind = C.FI_CONNREQ
	EventConnected    EventKind = C.FI_CONNECTED
	EventShutdown     EventKind = C.FI_SHUTDOWN
	EventNotify       EventKind = C.FI_NOTIFY
	EventMRComplete   EventKind = C.FI_MR_COMPLETE
	EventAVComplete   EventKind = C.FI_AV_COMPLETE
	EventJoinComplete EventKind = C.FI_JOIN_COMPLETE
)

func (k EventKind) String() string {
	switch k {
	case EventConnReq:
		return "FI_CONNREQ"
	case EventConnected:
		return "FI_CONNECTED"
	case EventShutdown:
		return "FI_SHUTDOWN"
	case EventNotify:
		return "FI_NOTIFY"
	case EventMRComplete:
		return "FI_MR_COMPLETE"
	case EventAVComplete:
		return "FI_AV_COMPLETE"
	}
	return fmt.Sprintf("event(%d)", uint32(k))
}

// Event is one connection-management event.
type Event struct {
	Kind EventKind
	fid  uintptr
	// Info describes the requested connection (EventConnReq): pass it to NewEndpoint.
	Info *Info
	// Data is the peer's connection private data (EventConnReq, EventConnected).
	Data []byte
	// Err is set for an error event (for example ErrConnRefused for a rejected connect).
	Err error
}

// For reports whether the event concerns ep (or pep).
func (ev *Event) For(ep interface{ fid() uintptr }) bool { return ev.fid == ep.fid() }

// EQ is an event queue (fi_eq_open) for connection management, waited on through Go's poller.
type EQ struct {
	node
	c      *C.struct_fid_eq
	fabric *Fabric
	waiter *fdWaiter
	mu     sync.Mutex
}

// OpenEQ opens an event queue.
func (f *Fabric) OpenEQ(size int) (*EQ, error) {
	if f.isClosed() {
		return nil, ErrClosed
	}
	if size <= 0 {
		size = 64
	}
	q := &EQ{fabric: f}
	var a C.struct_fi_eq_attr
	a.size = C.size_t(size)
	a.wait_obj = C.FI_WAIT_FD
	if rc := C.fi_eq_open(f.c, &a, &q.c, nil); rc != 0 {
		a.wait_obj = C.FI_WAIT_NONE
		if rc := C.fi_eq_open(f.c, &a, &q.c, nil); rc != 0 {
			return nil, fiErr("fi_eq_open", C.ssize_t(rc))
		}
	}
	if a.wait_obj == C.FI_WAIT_FD {
		var fd C.int
		if C.rk_getwait_fd(&q.c.fid, &fd) == 0 {
			q.waiter, _ = newFDWaiter(int(fd))
		}
	}
	if err := q.init(&f.node, rankQueue, func() error {
		if q.waiter != nil {
			q.waiter.close()
		}
		q.mu.Lock()
		defer q.mu.Unlock()
		return fiErr("fi_close(eq)", C.ssize_t(C.fi_close(&q.c.fid)))
	}); err != nil {
		C.fi_close(&q.c.fid)
		return nil, err
	}
	return q, nil
}

// Read waits for the next event until ctx ends.
func (q *EQ) Read(ctx context.Context) (*Event, error) {
	backoff := 50 * time.Microsecond
	for {
		ev, err := q.read()
		if ev != nil || err != nil {
			return ev, err
		}
		if ctx.Err() != nil {
			return nil, ctxErr(ctx)
		}
		if q.waiter != nil {
			deadline := time.Now().Add(20 * time.Millisecond)
			if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
				deadline = d
			}
			q.waiter.wait(deadline, readable)
			continue
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-q.done:
			t.Stop()
			return nil, ErrClosed
		case <-t.C:
		}
		backoff = min(2*backoff, 5*time.Millisecond)
	}
}

// read returns the next event, or nil when there is none.
func (q *EQ) read() (*Event, error) {
	if !q.enter() {
		return nil, ErrClosed
	}
	defer q.exit()
	q.mu.Lock()
	defer q.mu.Unlock()
	var (
		kind           C.uint32_t
		fid            C.uint64_t
		info           *C.struct_fi_info
		plen           C.size_t
		errno, provErr C.int
	)
	data := (*[256]byte)(C.malloc(256))
	defer C.free(unsafe.Pointer(data))
	text := (*[128]C.char)(C.malloc(128))
	defer C.free(unsafe.Pointer(text))
	rc := C.rk_eq_read(q.c, &kind, &fid, &info, unsafe.Pointer(data), 256, &plen, &errno, &provErr, &text[0], 128)
	if rc == -C.FI_EAGAIN {
		return nil, nil
	}
	if rc < 0 {
		return nil, fiErr("fi_eq_read", rc)
	}
	ev := &Event{Kind: EventKind(kind), fid: uintptr(fid)}
	if errno != 0 {
		ev.Kind = 0
		ev.Err = &Error{Op: "connection event", Errno: int(errno), ProvErrno: int(provErr), Text: C.GoString(&text[0])}
		return ev, nil
	}
	if info != nil {
		ev.Info = dupInfo(info)
		C.fi_freeinfo(info)
	}
	if plen > 0 {
		ev.Data = C.GoBytes(unsafe.Pointer(data), C.int(plen))
	}
	return ev, nil
}

// Close closes the queue. Idempotent.
func (q *EQ) Close() error { return q.close() }
