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
	f := c.inflight(ctx)
	f.commands(v, cs)
	if extra != nil {
		f.do(extra)
	}
	return f.wait()
}

// flight is work under way for one operation: commands to members and controller-side work,
// started as they become ready and waited for together.
type flight struct {
	c   *Controller
	ctx context.Context
	wg  sync.WaitGroup

	mu       sync.Mutex
	failed   []int
	why      map[int]error
	firstErr error
}

func (c *Controller) inflight(ctx context.Context) *flight {
	return &flight{c: c, ctx: ctx, why: map[int]error{}}
}

// note records a failure: a member's own (member >= 0) or the operation's.
func (f *flight) note(member int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if member >= 0 && isMemberError(err) {
		if f.why[member] == nil {
			f.failed = append(f.failed, member)
			f.why[member] = err
		}
		return
	}
	if f.firstErr == nil {
		f.firstErr = err
	}
}

// commands sends every command of cs (split to fit a message) without waiting.
func (f *flight) commands(v view, cs *cmdSet) {
	for _, k := range cs.order {
		cmd := cs.cmds[k]
		r := v.rpcs[k.member]
		for len(cmd.Segs) > 0 {
			part := *cmd
			n := min(len(cmd.Segs), maxSegs)
			part.Segs = cmd.Segs[:n]
			cmd.Segs = cmd.Segs[n:]
			f.wg.Add(1)
			go func(member int) {
				defer f.wg.Done()
				if r == nil {
					f.note(member, memberError{errors.New("not connected")})
					return
				}
				cctx, cancel := context.WithTimeout(f.ctx, f.c.cfg.Timeout)
				defer cancel()
				if _, err := runCommand(cctx, r, part); err != nil {
					if f.ctx.Err() != nil {
						// The operation was abandoned (another part of it failed): not the
						// member's fault.
						err = fmt.Errorf("member %d: %w", member, f.ctx.Err())
					}
					f.note(member, err)
				}
			}(k.member)
		}
	}
}

// do runs work alongside the commands.
func (f *flight) do(work func() error) {
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		if err := work(); err != nil {
			f.note(-1, err)
		}
	}()
}

// wait waits for everything started, fails the members that failed on the controller and
// returns their indexes, and the first failure that is not a member's own.
func (f *flight) wait() ([]int, error) {
	f.wg.Wait()
	for _, i := range f.failed {
		f.c.fail(i, f.why[i])
	}
	return f.failed, f.firstErr
}
