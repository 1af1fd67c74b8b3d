package raid

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// RebuildStatus is the progress of a rebuild.
type RebuildStatus struct {
	Member  int     `json:"member"`
	Done    int64   `json:"done"`  // stripes rebuilt
	Total   int64   `json:"total"` // stripes to rebuild
	Bytes   int64   `json:"bytes"` // bytes written to the new member
	Seconds float64 `json:"seconds"`
	Running bool    `json:"running"`
	Error   string  `json:"error,omitempty"`
}

type rebuildProgress struct {
	mu    sync.Mutex
	st    *RebuildStatus
	start time.Time
}

func (p *rebuildProgress) status() *RebuildStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.st == nil {
		return nil
	}
	s := *p.st
	if s.Running {
		s.Seconds = time.Since(p.start).Seconds()
	}
	return &s
}

// Replace puts the target at addr in place of member i and starts rebuilding it in the
// background (see Status for progress). The target must be blank or hold a superblock of this
// volume; a store of another volume is refused.
func (c *Controller) Replace(ctx context.Context, i int, addr string) error {
	if i < 0 || i >= c.layout.N() {
		return fmt.Errorf("%w: member %d of %d", ErrInvalid, i, c.layout.N())
	}
	if st := c.rebuild.status(); st != nil && st.Running {
		return fmt.Errorf("%w: member %d is being rebuilt", ErrBusy, st.Member)
	}
	if c.layout.M == 0 {
		return fmt.Errorf("%w: RAID 0 has no redundancy to rebuild from", ErrLayout)
	}
	r, info, err := dialMember(ctx, c.f, addr)
	if err != nil {
		return err
	}
	if len(info.Superblock) > 0 {
		var sb Superblock
		if err := sb.UnmarshalBinary(info.Superblock); err != nil || sb.ID != c.id {
			r.close()
			return fmt.Errorf("%w: %s holds member %d of volume %x", ErrForeign, addr, sb.Index, sb.ID)
		}
	}
	if int64(info.Capacity) < c.vol.Stripes*int64(c.layout.Chunk) {
		r.close()
		return fmt.Errorf("%w: %s has %d bytes, members need %d", ErrRange, addr, info.Capacity,
			c.vol.Stripes*int64(c.layout.Chunk))
	}
	c.mu.Lock()
	old := c.members[i]
	c.vol.Generation++
	c.vol.Members[i] = memberState{Addr: addr, State: stateRebuilding}
	c.members[i] = &member{idx: i, addr: addr, state: stateRebuilding, r: r}
	sb := c.superblock(i)
	c.mu.Unlock()
	if old.r != nil {
		old.r.close()
	}
	if err := formatMember(ctx, r, sb); err != nil {
		c.fail(i, err)
		return err
	}
	if err := c.save(); err != nil {
		return err
	}
	c.startRebuild(i)
	return nil
}

func (c *Controller) startRebuild(i int) {
	c.rebuild.mu.Lock()
	c.rebuild.st = &RebuildStatus{Member: i, Total: c.vol.Stripes, Running: true}
	c.rebuild.start = time.Now()
	c.rebuild.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := c.rebuildMember(c.ctx, i)
		c.rebuild.mu.Lock()
		c.rebuild.st.Running = false
		c.rebuild.st.Seconds = time.Since(c.rebuild.start).Seconds()
		if err != nil {
			c.rebuild.st.Error = err.Error()
		}
		c.rebuild.mu.Unlock()
		if err != nil {
			c.logf("rebuild of member %d: %v", i, err)
			return
		}
		c.mu.Lock()
		if c.members[i].state == stateRebuilding {
			c.members[i].state = stateOK
			c.vol.Members[i].State = stateOK
		}
		c.mu.Unlock()
		if err := c.save(); err != nil {
			c.logf("save state: %v", err)
		}
		c.logf("member %d rebuilt", i)
	}()
}

// rebuildMember reconstructs every chunk of member i from K survivors, stripe batch by stripe
// batch, holding each batch's stripe locks so writes cannot interleave.
func (c *Controller) rebuildMember(ctx context.Context, i int) error {
	l := c.layout
	for s0 := int64(0); s0 < c.vol.Stripes; {
		n := min(int64(c.bufSlots), c.vol.Stripes-s0)
		stripes := make([]int64, n)
		for k := range stripes {
			stripes[k] = s0 + int64(k)
		}
		var buf = <-c.bufs
		err := func() error {
			defer func() { c.bufs <- buf }()
			unlock := c.lockStripes(stripes)
			defer unlock()
			sl := slots{l: l, buf: buf}
			for attempt := 0; ; attempt++ {
				if err := ctx.Err(); err != nil {
					return err
				}
				v, err := c.view(0)
				if err != nil {
					return err
				}
				if !v.writable[i] {
					return fmt.Errorf("%w: the new member failed", ErrFailed)
				}
				if attempt > l.M+1 {
					return fmt.Errorf("%w: members kept failing", ErrFailed)
				}
				gather := newCmdSet()
				for b, s := range stripes {
					got := 0
					for j := 0; j < l.N() && got < l.K; j++ {
						m := l.Member(s, j)
						if m == i || !v.readable[m] {
							continue
						}
						gather.add(cmdKey{member: m, op: cmdPush, kind: kindChunk}, 0, buf.Remote(), false,
							segment{MemberOff: uint64(s) * uint64(l.Chunk), RemoteOff: uint64(sl.shard(b, j)), Len: uint32(l.Chunk)})
						got++
					}
					if got < l.K {
						return fmt.Errorf("%w: stripe %d has %d readable chunks", ErrFailed, s, got)
					}
				}
				failed, err := c.run(ctx, v, gather, nil)
				if err != nil {
					return err
				}
				if len(failed) > 0 {
					continue
				}
				put := newCmdSet()
				for b, s := range stripes {
					shards := make([][]byte, l.N())
					got := 0
					for j := range shards {
						sh := sl.bytes(sl.shard(b, j), l.Chunk)
						if m := l.Member(s, j); m != i && v.readable[m] && got < l.K {
							got++
						} else {
							sh = sh[:0]
						}
						shards[j] = sh
					}
					want := l.Shard(s, i)
					required := make([]bool, l.N())
					required[want] = true
					if err := c.enc.ReconstructSome(shards, required); err != nil {
						return fmt.Errorf("%w: reconstruct stripe %d: %w", ErrFailed, s, err)
					}
					dst := sl.bytes(sl.shard(b, want), l.Chunk)
					if &dst[0] != &shards[want][0] {
						copy(dst, shards[want])
					}
					put.add(cmdKey{member: i, op: cmdPull, kind: kindRebuild}, 0, buf.Remote(), true,
						segment{MemberOff: uint64(s) * uint64(l.Chunk), RemoteOff: uint64(sl.shard(b, want)), Len: uint32(l.Chunk)})
				}
				if failed, err := c.run(ctx, v, put, nil); err != nil || len(failed) > 0 {
					if err == nil {
						err = fmt.Errorf("%w: the new member failed", ErrFailed)
					}
					return err
				}
				c.ctr.add(cChunksFromTargets, uint64(len(stripes)*l.K*l.Chunk))
				c.ctr.add(cRebuild, uint64(len(stripes)*l.Chunk))
				return nil
			}
		}()
		if err != nil {
			return err
		}
		s0 += n
		c.rebuild.mu.Lock()
		c.rebuild.st.Done = s0
		c.rebuild.st.Bytes = s0 * int64(l.Chunk)
		c.rebuild.mu.Unlock()
	}
	return nil
}

// resync recomputes the parity of every stripe the write-intent log marks, after a crash.
func (c *Controller) resync(ctx context.Context) error {
	if c.layout.M == 0 {
		return nil
	}
	groups, err := c.intent.dirty()
	if err != nil || len(groups) == 0 {
		return err
	}
	c.logf("resync: %d stripe groups marked in the write-intent log", len(groups))
	buf := <-c.bufs
	defer func() { c.bufs <- buf }()
	sl := slots{l: c.layout, buf: buf}
	for _, g := range groups {
		var stripes []int64
		for s := g * intentGroup; s < min((g+1)*intentGroup, c.vol.Stripes); s++ {
			stripes = append(stripes, s)
		}
		for len(stripes) > 0 {
			n := min(len(stripes), c.bufSlots)
			unlock := c.lockStripes(stripes[:n])
			err := c.resyncStripes(ctx, stripes[:n], sl)
			unlock()
			if err != nil {
				return err
			}
			stripes = stripes[n:]
		}
		c.intent.f.WriteAt([]byte{0}, g)
	}
	return c.intent.f.Sync()
}

// resyncStripes rewrites the parity of stripes (locked by the caller) from their data. A
// stripe with a data member missing cannot be checked and is left as it is.
func (c *Controller) resyncStripes(ctx context.Context, stripes []int64, sl slots) error {
	l := c.layout
	if l.M == 0 {
		return nil
	}
	v, err := c.view(0)
	if err != nil {
		return err
	}
	gather := newCmdSet()
	ok := make([]bool, len(stripes))
	for b, s := range stripes {
		ok[b] = true
		for d := range l.K {
			if !v.readable[l.Member(s, d)] {
				ok[b] = false
			}
		}
		if !ok[b] {
			c.logf("resync: stripe %d has a data member missing; left as is", s)
			continue
		}
		for d := range l.K {
			gather.add(cmdKey{member: l.Member(s, d), op: cmdPush, kind: kindChunk}, 0, sl.buf.Remote(), false,
				segment{MemberOff: uint64(s) * uint64(l.Chunk), RemoteOff: uint64(sl.shard(b, d)), Len: uint32(l.Chunk)})
		}
	}
	if failed, err := c.run(ctx, v, gather, nil); err != nil || len(failed) > 0 {
		if err == nil {
			err = fmt.Errorf("%w: member failed during resync", ErrFailed)
		}
		return err
	}
	put := newCmdSet()
	for b, s := range stripes {
		if !ok[b] {
			continue
		}
		shards := make([][]byte, l.N())
		for j := range shards {
			shards[j] = sl.bytes(sl.shard(b, j), l.Chunk)
		}
		if err := c.enc.Encode(shards); err != nil {
			return err
		}
		for j := l.K; j < l.N(); j++ {
			if m := l.Member(s, j); v.writable[m] {
				put.add(cmdKey{member: m, op: cmdPull, kind: kindParity}, 0, sl.buf.Remote(), true,
					segment{MemberOff: uint64(s) * uint64(l.Chunk), RemoteOff: uint64(sl.shard(b, j)), Len: uint32(l.Chunk)})
			}
		}
		c.ctr.add(cResynced, 1)
	}
	_, err = c.run(ctx, v, put, nil)
	return err
}
