package raid

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/rdmakit/rdmakit/fabric"
)

// stripeIO is the part of a request inside one stripe.
type stripeIO struct {
	s   int64
	ext []extent
}

func groupStripes(ext []extent) []stripeIO {
	var out []stripeIO
	for _, e := range ext {
		if len(out) == 0 || out[len(out)-1].s != e.stripe {
			out = append(out, stripeIO{s: e.stripe})
		}
		out[len(out)-1].ext = append(out[len(out)-1].ext, e)
	}
	return out
}

func stripesOf(batch []stripeIO) []int64 {
	out := make([]int64, len(batch))
	for i, b := range batch {
		out[i] = b.s
	}
	return out
}

// slots addresses a controller buffer: per stripe slot, N shard chunks then K old-data chunks.
type slots struct {
	l   Layout
	buf *fabric.Memory
}

// shard is the offset of shard j of slot b (new data or parity).
func (s slots) shard(b, j int) int { return (b*(s.l.N()+s.l.K) + j) * s.l.Chunk }

// old is the offset of the old data of data shard d of slot b.
func (s slots) old(b, d int) int { return (b*(s.l.N()+s.l.K) + s.l.N() + d) * s.l.Chunk }

func (s slots) bytes(off, n int) []byte { return s.buf.Bytes()[off : off+n] }

// cmdKey groups the segments of one command.
type cmdKey struct {
	member int
	op     uint8
	kind   uint8
	host   bool
}

// cmdSet collects commands for several members.
type cmdSet struct {
	cmds  map[cmdKey]*command
	order []cmdKey
}

func newCmdSet() *cmdSet { return &cmdSet{cmds: map[cmdKey]*command{}} }

func (cs *cmdSet) add(k cmdKey, session uint64, remote fabric.Remote, sync bool, seg segment) {
	c := cs.cmds[k]
	if c == nil {
		c = &command{Op: k.op, Kind: k.kind, Session: session, Remote: remote, Sync: sync}
		cs.cmds[k] = c
		cs.order = append(cs.order, k)
	}
	if n := len(c.Segs); n > 0 {
		p := &c.Segs[n-1]
		if p.MemberOff+uint64(p.Len) == seg.MemberOff && p.RemoteOff+uint64(p.Len) == seg.RemoteOff &&
			uint64(p.Len)+uint64(seg.Len) < 1<<31 {
			p.Len += seg.Len
			return
		}
	}
	c.Segs = append(c.Segs, seg)
}

func (cs *cmdSet) empty() bool { return len(cs.order) == 0 }

// run sends every command (split to fit a message) concurrently, together with extra work,
// and waits. Members that fail are failed on the controller; their indexes are returned. The
// error is the first failure that is not a member's own.
func (c *Controller) run(ctx context.Context, v view, cs *cmdSet, extra func() error) ([]int, error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []int
	why := map[int]error{}
	var firstErr error
	note := func(member int, err error) {
		mu.Lock()
		defer mu.Unlock()
		if member >= 0 && isMemberError(err) {
			if why[member] == nil {
				failed = append(failed, member)
				why[member] = err
			}
			return
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	for _, k := range cs.order {
		cmd := cs.cmds[k]
		r := v.rpcs[k.member]
		for len(cmd.Segs) > 0 {
			part := *cmd
			n := min(len(cmd.Segs), maxSegs)
			part.Segs = cmd.Segs[:n]
			cmd.Segs = cmd.Segs[n:]
			wg.Add(1)
			go func(member int) {
				defer wg.Done()
				if r == nil {
					note(member, memberError{errors.New("not connected")})
					return
				}
				cctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
				defer cancel()
				if _, err := runCommand(cctx, r, part); err != nil {
					if ctx.Err() != nil {
						// The operation was abandoned (another part of it failed): not the
						// member's fault.
						err = fmt.Errorf("member %d: %w", member, ctx.Err())
					}
					note(member, err)
				}
			}(k.member)
		}
	}
	if extra != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := extra(); err != nil {
				note(-1, err)
			}
		}()
	}
	wg.Wait()
	for _, i := range failed {
		c.fail(i, why[i])
	}
	return failed, firstErr
}
