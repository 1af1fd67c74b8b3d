package verbs

/*
#include "shim.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// pollFD drives a library event fd (completion channel, async events, rdma_cm events) with
// Go's netpoller: the fd is made non-blocking and a dup of it is wrapped in an os.File, so a
// waiting goroutine parks in the poller instead of blocking a thread. Readiness is
// edge-triggered: the cond callback must drain the library queue until EAGAIN.
type pollFD struct {
	f      *os.File
	rc     syscall.RawConn
	sem    chan struct{} // one waiter at a time owns the read deadline
	closed atomic.Bool
}

var longAgo = time.Unix(1, 0)

func newPollFD(fd C.int, name string) (*pollFD, error) {
	if rc := C.rk_set_nonblock(fd); rc != 0 {
		return nil, callError("fcntl O_NONBLOCK "+name, syscall.Errno(-rc))
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("verbs: dup %s fd: %w", name, err)
	}
	f := os.NewFile(uintptr(nfd), name)
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("verbs: %s: %w", name, err)
	}
	return &pollFD{f: f, rc: rc, sem: make(chan struct{}, 1)}, nil
}

// wait calls cond until it reports done (or an error), parking in the netpoller between calls
// until the fd is readable, a kick arrives, ctx ends or the fd is closed.
func (p *pollFD) wait(ctx context.Context, cond func() (bool, error)) error {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return ctxError(ctx)
	}
	defer func() { <-p.sem }()
	stop := context.AfterFunc(ctx, p.kick)
	defer stop()
	for {
		// Reset the deadline before checking ctx and cond: a kick that lands after the reset
		// wakes the Read below, one that landed before is seen by the checks.
		_ = p.f.SetReadDeadline(time.Time{})
		if err := ctxError(ctx); err != nil {
			return err
		}
		var done bool
		var cerr error
		err := p.rc.Read(func(uintptr) bool {
			done, cerr = cond()
			return done || cerr != nil
		})
		if done || cerr != nil {
			return cerr
		}
		switch {
		case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case p.closed.Load() || errors.Is(err, os.ErrClosed):
			return ErrClosed
		default:
			return fmt.Errorf("verbs: wait on %s: %w", p.f.Name(), err)
		}
	}
}

// kick wakes the current waiter so that it re-checks its context and cond.
func (p *pollFD) kick() { _ = p.f.SetReadDeadline(longAgo) }

// close closes the dup; a parked waiter returns ErrClosed.
func (p *pollFD) close() error {
	p.closed.Store(true)
	return p.f.Close()
}
