package raid

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rdmakit/rdmakit/fabric"
)

// rpc runs requests over one connection: each message carries an id, a reader goroutine hands
// replies to their callers. A failed connection fails every call, now and later.
type rpc struct {
	c      *fabric.Conn
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	pending map[uint64]chan []byte
	next    uint64
	err     error
}

func newRPC(c *fabric.Conn) *rpc {
	r := &rpc{c: c, pending: map[uint64]chan []byte{}, done: make(chan struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.read()
	return r
}

func (r *rpc) read() {
	defer close(r.done)
	buf := make([]byte, r.c.Caps().MaxMessage)
	for {
		n, err := r.c.Recv(r.ctx, buf)
		if err != nil && !errors.Is(err, fabric.ErrTooLarge) {
			r.fail(err)
			return
		}
		if n < headerLen {
			continue
		}
		_, id, _, perr := parseHeader(buf[:n])
		if perr != nil {
			continue
		}
		r.mu.Lock()
		ch := r.pending[id]
		delete(r.pending, id)
		r.mu.Unlock()
		if ch != nil {
			ch <- append([]byte(nil), buf[:n]...)
		}
	}
}

func (r *rpc) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	for id, ch := range r.pending {
		close(ch)
		delete(r.pending, id)
	}
}

// call sends the message build makes for a fresh id and waits for its reply.
func (r *rpc) call(ctx context.Context, build func(id uint64) []byte) (msgType, *dec, error) {
	r.mu.Lock()
	if r.err != nil {
		err := r.err
		r.mu.Unlock()
		return 0, nil, err
	}
	r.next++
	id := r.next
	ch := make(chan []byte, 1)
	r.pending[id] = ch
	r.mu.Unlock()
	forget := func() {
		r.mu.Lock()
		delete(r.pending, id)
		r.mu.Unlock()
	}
	if err := r.c.Send(ctx, build(id)); err != nil {
		forget()
		return 0, nil, err
	}
	select {
	case b, ok := <-ch:
		if !ok {
			r.mu.Lock()
			err := r.err
			r.mu.Unlock()
			return 0, nil, fmt.Errorf("%w: %w", fabric.ErrConnReset, err)
		}
		t, _, d, err := parseHeader(b)
		return t, d, err
	case <-ctx.Done():
		forget()
		return 0, nil, fmt.Errorf("%w: no reply: %w", fabric.ErrTimeout, ctx.Err())
	}
}

// callReply is call for requests answered by a generic reply.
func (r *rpc) callReply(ctx context.Context, build func(id uint64) []byte) error {
	t, d, err := r.call(ctx, build)
	if err != nil {
		return err
	}
	if t != msgReply {
		return fmt.Errorf("%w: reply of type %d", ErrFormat, t)
	}
	rep, err := parseReply(d)
	if err != nil {
		return err
	}
	return rep.err()
}

// close stops the reader and closes the connection.
func (r *rpc) close() error {
	r.cancel()
	<-r.done
	return r.c.Close()
}
