package raid

import (
	"context"
	"fmt"

	"github.com/rdmakit/rdmakit/fabric"
)

func (c *Controller) read(ctx context.Context, session uint64, req ioRequest) error {
	if err := c.validate(req); err != nil {
		return err
	}
	if req.Flags&flagThroughController != 0 {
		return fmt.Errorf("%w: the through-controller path is for writes", ErrInvalid)
	}
	if err := c.probeHost(ctx, session, req); err != nil {
		return err
	}
	stripes := groupStripes(c.layout.extents(int64(req.Offset), int64(req.Length)))
	err := c.forBatches(ctx, stripes, c.bufSlots, func(ctx context.Context, b []stripeIO, sl slots) error {
		return c.readBatch(ctx, session, req, b, sl)
	})
	if err == nil {
		c.ctr.add(cReads, 1)
		c.ctr.add(cReadBytes, req.Length)
	}
	return err
}

// readBatch has the data members write their chunks straight into host memory; chunks of
// missing members are reconstructed from survivors in controller memory and written from
// there.
func (c *Controller) readBatch(ctx context.Context, session uint64, req ioRequest, batch []stripeIO, sl slots) error {
	l := c.layout
	ctrlRemote := sl.buf.Remote()
	for attempt := 0; ; attempt++ {
		v, err := c.view(req.Exclude)
		if err != nil {
			return err
		}
		if attempt > l.M+1 {
			return fmt.Errorf("%w: members kept failing", ErrFailed)
		}
		cs := newCmdSet()
		type lost struct {
			b      int
			lo, hi int
			ext    []extent
		}
		var losts []lost
		var gathered uint64
		for b, st := range batch {
			ls := lost{b: b, lo: l.Chunk}
			for _, e := range st.ext {
				m := l.Member(st.s, e.shard)
				if v.readable[m] {
					cs.add(cmdKey{member: m, op: cmdPush, kind: kindData, host: true}, session, req.Host, false,
						segment{MemberOff: uint64(st.s)*uint64(l.Chunk) + uint64(e.co),
							RemoteOff: req.HostOff + uint64(e.hoff), Len: uint32(e.n)})
					continue
				}
				ls.ext = append(ls.ext, e)
				ls.lo, ls.hi = min(ls.lo, e.co), max(ls.hi, e.co+e.n)
			}
			if len(ls.ext) == 0 {
				continue
			}
			losts = append(losts, ls)
			got := 0
			for j := 0; j < l.N() && got < l.K; j++ {
				m := l.Member(st.s, j)
				if !v.readable[m] {
					continue
				}
				cs.add(cmdKey{member: m, op: cmdPush, kind: kindChunk}, 0, ctrlRemote, false,
					segment{MemberOff: uint64(st.s)*uint64(l.Chunk) + uint64(ls.lo),
						RemoteOff: uint64(sl.shard(b, j) + ls.lo), Len: uint32(ls.hi - ls.lo)})
				gathered += uint64(ls.hi - ls.lo)
				got++
			}
			if got < l.K {
				return fmt.Errorf("%w: stripe %d has %d readable chunks, needs %d", ErrFailed, st.s, got, l.K)
			}
		}
		failed, err := c.run(ctx, v, cs, nil)
		if err != nil {
			return err
		}
		if len(failed) > 0 {
			continue
		}
		var hostOps []fabric.Op
		var recon uint64
		for _, ls := range losts {
			st := batch[ls.b]
			shards := make([][]byte, l.N())
			got := 0
			for j := range shards {
				s := sl.bytes(sl.shard(ls.b, j)+ls.lo, ls.hi-ls.lo)
				if got < l.K && v.readable[l.Member(st.s, j)] {
					got++
				} else {
					s = s[:0]
				}
				shards[j] = s
			}
			if err := c.enc.ReconstructData(shards); err != nil {
				return fmt.Errorf("%w: reconstruct stripe %d: %w", ErrFailed, st.s, err)
			}
			for _, e := range ls.ext {
				off := sl.shard(ls.b, e.shard) + e.co
				src := shards[e.shard][e.co-ls.lo : e.co-ls.lo+e.n]
				if dst := sl.bytes(off, e.n); &dst[0] != &src[0] {
					copy(dst, src)
				}
				hostOps = append(hostOps, fabric.Op{Kind: fabric.OpWrite, Mem: sl.buf, Off: off, Len: e.n,
					Remote: req.Host, RemoteOff: req.HostOff + uint64(e.hoff)})
				recon += uint64(e.n)
			}
		}
		if len(hostOps) > 0 {
			if err := c.hostDo(ctx, session, hostOps); err != nil {
				return err
			}
		}
		c.ctr.add(cChunksFromTargets, gathered)
		c.ctr.add(cReconToHost, recon)
		c.ctr.add(cDegraded, uint64(len(losts)))
		return nil
	}
}
