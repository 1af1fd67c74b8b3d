package raid

import (
	"context"
	"fmt"
	"sync"

	"github.com/rdmakit/rdmakit/fabric"
)

// validate checks a host request against the volume and the host's descriptor.
func (c *Controller) validate(req ioRequest) error {
	if req.Length == 0 {
		return fmt.Errorf("%w: zero length", ErrInvalid)
	}
	size := uint64(c.Size())
	if req.Offset > size || req.Length > size-req.Offset {
		return fmt.Errorf("%w: [%d, %d+%d) of a %d-byte volume", ErrRange, req.Offset, req.Offset, req.Length, size)
	}
	if !req.Host.Contains(req.HostOff, req.Length) {
		return fmt.Errorf("%w: host descriptor of %d bytes cannot hold %d bytes at offset %d", ErrInvalid,
			req.Host.Len, req.Length, req.HostOff)
	}
	if req.Exclude>>uint(c.layout.N()) != 0 {
		return fmt.Errorf("%w: exclude mask %#x for %d members", ErrInvalid, req.Exclude, c.layout.N())
	}
	return nil
}

// probeHost reads the first and last byte of the request's host memory, so that a bad key or
// a short registration is refused before any member is commanded.
func (c *Controller) probeHost(ctx context.Context, session uint64, req ioRequest) error {
	ops := []fabric.Op{
		{Kind: fabric.OpRead, Mem: c.probe, Off: 0, Len: 1, Remote: req.Host, RemoteOff: req.HostOff},
		{Kind: fabric.OpRead, Mem: c.probe, Off: 1, Len: 1, Remote: req.Host, RemoteOff: req.HostOff + req.Length - 1},
	}
	c.smu.Lock() // one probe buffer
	defer c.smu.Unlock()
	conn := c.sessions[session]
	if conn == nil {
		return fmt.Errorf("%w: host session %x has no data connection", ErrStale, session)
	}
	pctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if err := conn.Do(pctx, ops); err != nil {
		delete(c.sessions, session)
		go conn.Close()
		return fmt.Errorf("%w: host descriptor %v refused: %w", ErrHostAcc, req.Host, err)
	}
	c.ctr.add(cHostProbe, 2)
	return nil
}

// forBatches runs fn over consecutive batches of up to per stripes, two batches at a time,
// each with a controller buffer.
func (c *Controller) forBatches(ctx context.Context, stripes []stripeIO, per int, fn func(context.Context, []stripeIO, slots) error) error {
	var wg sync.WaitGroup
	errc := make(chan error, 1)
	sem := make(chan struct{}, 2)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for len(stripes) > 0 && ctx.Err() == nil {
		n := min(len(stripes), per)
		batch := stripes[:n]
		stripes = stripes[n:]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		var buf *fabric.Memory
		select {
		case buf = <-c.bufs:
		case <-ctx.Done():
			<-sem
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { c.bufs <- buf; <-sem; wg.Done() }()
			if err := fn(ctx, batch, slots{l: c.layout, buf: buf}); err != nil {
				select {
				case errc <- err:
				default:
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
	}
	return ctx.Err()
}

func (c *Controller) write(ctx context.Context, session uint64, req ioRequest) error {
	if err := c.validate(req); err != nil {
		return err
	}
	if err := c.probeHost(ctx, session, req); err != nil {
		return err
	}
	stripes := groupStripes(c.layout.extents(int64(req.Offset), int64(req.Length)))
	partial, full := c.splitFull(stripes)
	err := c.forBatches(ctx, partial, c.bufSlots, func(ctx context.Context, b []stripeIO, sl slots) error {
		return c.writeBatch(ctx, session, req, b, sl)
	})
	if err == nil && len(full) > 0 {
		err = c.forBatches(ctx, full, c.fullSlots(req.Flags&flagThroughController != 0),
			func(ctx context.Context, b []stripeIO, sl slots) error {
				return c.writeFull(ctx, session, req, b, sl.buf)
			})
	}
	if err == nil {
		c.ctr.add(cWrites, 1)
		c.ctr.add(cWriteBytes, req.Length)
		if req.Flags&flagThroughController != 0 {
			c.ctr.add(cThrough, 1)
		}
	}
	return err
}

// Write modes of a stripe.
const (
	modeDirect   = iota // no parity computed (RAID 0, RAID 1)
	modeFull            // full stripe: parity from the new data alone
	modeRMW             // read old data and parity of the changed chunks
	modeRCW             // read the unchanged data
	modeDegraded        // reconstruct the old data from survivors
)

type stripePlan struct {
	mode   int
	lo, hi int      // column range
	cover  [][2]int // per data shard: written [a, b), a == b when untouched
}

func (c *Controller) planStripe(st stripeIO, v view, through bool) stripePlan {
	l := c.layout
	p := stripePlan{cover: make([][2]int, l.K), lo: l.Chunk}
	for _, e := range st.ext {
		p.cover[e.shard] = [2]int{e.co, e.co + e.n}
		p.lo, p.hi = min(p.lo, e.co), max(p.hi, e.co+e.n)
	}
	if l.M == 0 || l.Mirror() && !through {
		p.mode = modeDirect
		return p
	}
	full := true
	for _, cv := range p.cover {
		if cv != [2]int{0, l.Chunk} {
			full = false
		}
	}
	if full {
		p.mode = modeFull
		return p
	}
	readable := func(j int) bool { return v.readable[l.Member(st.s, j)] }
	rmwOK, rcwOK := true, true
	costRMW, costRCW := l.M, 0
	for d, cv := range p.cover {
		if cv[0] != cv[1] {
			costRMW++
			rmwOK = rmwOK && readable(d)
		}
		if cv != [2]int{p.lo, p.hi} {
			costRCW++
			rcwOK = rcwOK && readable(d)
		}
	}
	for j := l.K; j < l.N(); j++ {
		rmwOK = rmwOK && readable(j)
	}
	switch {
	case rmwOK && (costRMW <= costRCW || !rcwOK):
		p.mode = modeRMW
	case rcwOK:
		p.mode = modeRCW
	default:
		p.mode = modeDegraded
	}
	return p
}

func (c *Controller) writeBatch(ctx context.Context, session uint64, req ioRequest, batch []stripeIO, sl slots) error {
	unlock := c.lockStripes(stripesOf(batch))
	defer unlock()
	l := c.layout
	through := req.Flags&flagThroughController != 0
	ctrlRemote := sl.buf.Remote()
	for attempt := 0; ; attempt++ {
		v, err := c.view(0)
		if err != nil {
			return err
		}
		if attempt > l.M+1 {
			return fmt.Errorf("%w: members kept failing", ErrFailed)
		}
		plans := make([]stripePlan, len(batch))
		gather := newCmdSet()
		var hostOps []fabric.Op
		var gathered, hostRead uint64
		counts := [5]uint64{}
		for b, st := range batch {
			p := c.planStripe(st, v, through)
			plans[b] = p
			counts[p.mode]++
			if p.mode == modeDirect && !through {
				continue
			}
			for _, e := range st.ext {
				hostOps = append(hostOps, fabric.Op{Kind: fabric.OpRead, Mem: sl.buf, Off: sl.shard(b, e.shard) + e.co,
					Len: e.n, Remote: req.Host, RemoteOff: req.HostOff + uint64(e.hoff)})
				hostRead += uint64(e.n)
			}
			if p.mode == modeDirect {
				continue
			}
			pull := func(j, off int) {
				m := l.Member(st.s, j)
				gather.add(cmdKey{member: m, op: cmdPush, kind: kindChunk}, 0, ctrlRemote, false,
					segment{MemberOff: uint64(st.s)*uint64(l.Chunk) + uint64(p.lo), RemoteOff: uint64(off + p.lo),
						Len: uint32(p.hi - p.lo)})
				gathered += uint64(p.hi - p.lo)
			}
			for d, cv := range p.cover {
				switch {
				case p.mode == modeRMW && cv[0] != cv[1],
					p.mode == modeRCW && cv != [2]int{p.lo, p.hi},
					p.mode == modeDegraded && v.readable[l.Member(st.s, d)]:
					pull(d, sl.old(b, d))
				}
			}
			if p.mode == modeRMW || p.mode == modeDegraded {
				for j := l.K; j < l.N(); j++ {
					if v.readable[l.Member(st.s, j)] {
						pull(j, sl.shard(b, j))
					}
				}
			}
		}
		failed, err := c.run(ctx, v, gather, func() error {
			if len(hostOps) == 0 {
				return nil
			}
			return c.hostDo(ctx, session, hostOps)
		})
		if err != nil {
			return err
		}
		if len(failed) > 0 {
			continue // plan again without them
		}
		c.ctr.add(cHostReadParity, hostRead)
		c.ctr.add(cChunksFromTargets, gathered)
		for b, st := range batch {
			if err := c.computeParity(st, plans[b], b, sl, v); err != nil {
				return err
			}
		}
		// Phase two: record the intent, then have every member fetch its part.
		stripes := stripesOf(batch)
		if l.M > 0 {
			if err := c.intent.mark(stripes); err != nil {
				return err
			}
		}
		put := newCmdSet()
		var parity, ctrlData uint64
		for b, st := range batch {
			p := plans[b]
			for _, e := range st.ext {
				shards := []int{e.shard}
				if l.Mirror() && !through {
					shards = shards[:0]
					for j := range l.N() {
						shards = append(shards, j)
					}
				}
				for _, j := range shards {
					m := l.Member(st.s, j)
					if !v.writable[m] {
						continue
					}
					seg := segment{MemberOff: uint64(st.s)*uint64(l.Chunk) + uint64(e.co), Len: uint32(e.n)}
					if through {
						seg.RemoteOff = uint64(sl.shard(b, e.shard) + e.co)
						put.add(cmdKey{member: m, op: cmdPull, kind: kindCtrlData}, 0, ctrlRemote, true, seg)
						ctrlData += uint64(e.n)
					} else {
						seg.RemoteOff = req.HostOff + uint64(e.hoff)
						put.add(cmdKey{member: m, op: cmdPull, kind: kindData, host: true}, session, req.Host, true, seg)
					}
				}
			}
			if p.mode == modeDirect {
				continue
			}
			for j := l.K; j < l.N(); j++ {
				m := l.Member(st.s, j)
				if !v.writable[m] {
					continue
				}
				put.add(cmdKey{member: m, op: cmdPull, kind: kindParity}, 0, ctrlRemote, true,
					segment{MemberOff: uint64(st.s)*uint64(l.Chunk) + uint64(p.lo),
						RemoteOff: uint64(sl.shard(b, j) + p.lo), Len: uint32(p.hi - p.lo)})
				parity += uint64(p.hi - p.lo)
			}
		}
		_, err = c.run(ctx, v, put, nil)
		if err := c.settle(ctx, stripes, sl, err); err != nil {
			return err
		}
		c.ctr.add(cParityToTargets, parity)
		c.ctr.add(cDataToTargets, ctrlData)
		c.ctr.add(cFull, counts[modeFull])
		c.ctr.add(cRMW, counts[modeRMW])
		c.ctr.add(cRCW, counts[modeRCW])
		c.ctr.add(cDegraded, counts[modeDegraded])
		return nil
	}
}

// settle ends the write of stripes whose member commands returned err, and returns the
// write's outcome. After a failure some members may hold the new chunks and others not: parity
// is made to agree with whatever the data is now (through sl, bufSlots stripes at a time)
// before the stripes are let go, and if that fails too the intent stays for a later resync.
// The intent the write recorded (layouts with parity record one) is then cleared and, after a
// success, the members' view checked.
func (c *Controller) settle(ctx context.Context, stripes []int64, sl slots, err error) error {
	if err != nil {
		for rest := stripes; len(rest) > 0; {
			n := min(len(rest), c.bufSlots)
			if rerr := c.resyncStripes(ctx, rest[:n], sl); rerr != nil {
				c.logf("resync after failed write: %v (intent kept)", rerr)
				return err
			}
			rest = rest[n:]
		}
	}
	if c.layout.M > 0 {
		c.intent.clear(stripes)
	}
	if err != nil {
		return err
	}
	_, err = c.view(0)
	return err
}

// computeParity turns the gathered chunks of one stripe slot into new parity.
func (c *Controller) computeParity(st stripeIO, p stripePlan, b int, sl slots, v view) error {
	l := c.layout
	lo, hi := p.lo, p.hi
	nw := func(j int) []byte { return sl.bytes(sl.shard(b, j)+lo, hi-lo) }
	old := func(d int) []byte { return sl.bytes(sl.old(b, d)+lo, hi-lo) }
	// merge keeps the old bytes of data shard d around what the host wrote.
	merge := func(d int) {
		cv := p.cover[d]
		if cv[0] == cv[1] {
			copy(nw(d), old(d))
			return
		}
		copy(nw(d)[:cv[0]-lo], old(d)[:cv[0]-lo])
		copy(nw(d)[cv[1]-lo:], old(d)[cv[1]-lo:])
	}
	switch p.mode {
	case modeDirect:
		return nil
	case modeFull:
		shards := make([][]byte, l.N())
		for j := range shards {
			shards[j] = sl.bytes(sl.shard(b, j), l.Chunk)
		}
		return c.enc.Encode(shards)
	case modeRMW:
		shards := make([][]byte, l.N())
		newData := make([][]byte, l.K)
		for d, cv := range p.cover {
			if cv[0] != cv[1] {
				merge(d)
				shards[d], newData[d] = old(d), nw(d)
			}
		}
		for j := l.K; j < l.N(); j++ {
			shards[j] = nw(j)
		}
		return c.enc.Update(shards, newData)
	case modeDegraded:
		shards := make([][]byte, l.N())
		for j := range shards {
			var s []byte
			if j < l.K {
				s = old(j)
			} else {
				s = nw(j)
			}
			if !v.readable[l.Member(st.s, j)] {
				s = s[:0]
			}
			shards[j] = s
		}
		if err := c.enc.ReconstructData(shards); err != nil {
			return fmt.Errorf("%w: reconstruct stripe %d: %w", ErrFailed, st.s, err)
		}
		for d := range l.K {
			if &shards[d][0] != &old(d)[0] {
				copy(old(d), shards[d])
			}
		}
	}
	// RCW and degraded: complete the data, encode all parity.
	for d, cv := range p.cover {
		if cv != [2]int{lo, hi} {
			merge(d)
		}
	}
	shards := make([][]byte, l.N())
	for j := range shards {
		shards[j] = nw(j)
	}
	return c.enc.Encode(shards)
}
