package raid

import (
	"context"

	"github.com/rdmakit/rdmakit/fabric"
)

// Full-stripe writes take a path of their own: nothing needs to be read from the members, so
// the data members can pull their chunks from the host while the controller reads the same data
// to compute parity, and a whole batch of stripes costs each member one data command and one
// parity command.

// fullGroup is how many stripes of host data the controller reads (and encodes) at a time on
// the direct path.
const fullGroup = 4

// splitFull separates the full stripes of a write (those the full-stripe path takes) from the
// partial ones at its ends. Layouts without parity computed by the controller (RAID 0 and
// mirrors) have no full-stripe path.
func (c *Controller) splitFull(stripes []stripeIO) (partial, full []stripeIO) {
	l := c.layout
	if l.M == 0 || l.Mirror() {
		return stripes, nil
	}
	isFull := func(st stripeIO) bool {
		n := 0
		for _, e := range st.ext {
			n += e.n
		}
		return int64(n) == l.StripeData()
	}
	lo, hi := 0, len(stripes)
	for lo < hi && !isFull(stripes[lo]) {
		lo++
	}
	for hi > lo && !isFull(stripes[hi-1]) {
		hi--
	}
	partial = append(append([]stripeIO(nil), stripes[:lo]...), stripes[hi:]...)
	return partial, stripes[lo:hi]
}

// fullBuf lays out a controller buffer for a batch of full stripes: the parity chunks of every
// stripe, then room for the data chunks of group stripes, reused group after group (on the
// through-controller path group is the whole batch: the members fetch the data from here).
type fullBuf struct {
	l       Layout
	buf     *fabric.Memory
	stripes int
	group   int
}

func (c *Controller) newFullBuf(buf *fabric.Memory, through bool) fullBuf {
	s, g := c.fullShape(through)
	return fullBuf{l: c.layout, buf: buf, stripes: s, group: g}
}

// fullShape is how many full stripes a controller buffer takes, and how many of them have
// their data in it at a time.
func (c *Controller) fullShape(through bool) (stripes, group int) {
	l := c.layout
	chunks := c.bufSlots * (l.N() + l.K) // see NewController
	if through {
		s := chunks / l.N()
		return s, s
	}
	g := max(1, min(fullGroup, (chunks-l.M)/l.K))
	return (chunks - g*l.K) / l.M, g
}

// fullSlots is how many full stripes one buffer takes.
func (c *Controller) fullSlots(through bool) int {
	s, _ := c.fullShape(through)
	return s
}

// parity is the offset of parity chunk p (0..M-1) of the batch's stripe b.
func (f fullBuf) parity(b, p int) int { return (b*f.l.M + p) * f.l.Chunk }

// data is the offset of data chunk d of the batch's stripe b.
func (f fullBuf) data(b, d int) int { return (f.stripes*f.l.M + (b%f.group)*f.l.K + d) * f.l.Chunk }

func (f fullBuf) bytes(off int) []byte { return f.buf.Bytes()[off : off+f.l.Chunk] }

// writeFull writes a batch of full stripes. The intent is recorded first; then, on the direct
// path, the data members pull their chunks from the host at once while the controller reads
// the data group by group and encodes parity, which the parity members pull when it is all
// computed. On the through-controller path the controller reads all the data first and the
// members pull it from controller memory.
func (c *Controller) writeFull(ctx context.Context, session uint64, req ioRequest, batch []stripeIO, buf *fabric.Memory) error {
	through := req.Flags&flagThroughController != 0
	fb := c.newFullBuf(buf, through)
	stripes := stripesOf(batch)
	unlock := c.lockStripes(stripes)
	defer unlock()
	v, err := c.view(0)
	if err != nil {
		return err
	}
	if err := c.intent.mark(stripes); err != nil {
		return err
	}
	fc := c.fullCommands(session, req, batch, fb, v, through)
	f := c.inflight(ctx)
	if !through {
		f.commands(v, fc.data) // the members need nothing from the controller
	}
	var hostRead uint64
	f.do(func() error {
		var err error
		hostRead, err = c.fullParity(ctx, session, req, batch, fb, func() {
			if through {
				f.commands(v, fc.data)
			}
		})
		if err == nil {
			f.commands(v, fc.parity)
		}
		return err
	})
	_, err = f.wait()
	if err := c.settle(ctx, stripes, slots{l: c.layout, buf: buf}, err); err != nil {
		return err
	}
	c.ctr.add(cHostReadParity, hostRead)
	c.ctr.add(cParityToTargets, fc.parityBytes)
	c.ctr.add(cDataToTargets, fc.ctrlData)
	c.ctr.add(cFull, uint64(len(batch)))
	return nil
}

// fullCmds are the commands of a batch of full stripes.
type fullCmds struct {
	data, parity          *cmdSet
	ctrlData, parityBytes uint64 // bytes the members pull from controller memory
}

// fullCommands has every writable member pull its data chunks (from the host, or from the
// controller's buffer on the through-controller path) and its parity chunks.
func (c *Controller) fullCommands(session uint64, req ioRequest, batch []stripeIO, fb fullBuf, v view, through bool) fullCmds {
	l := c.layout
	ctrl := fb.buf.Remote()
	fc := fullCmds{data: newCmdSet(), parity: newCmdSet()}
	for b, st := range batch {
		for _, e := range st.ext {
			m := l.Member(st.s, e.shard)
			if !v.writable[m] {
				continue
			}
			seg := segment{MemberOff: uint64(st.s)*uint64(l.Chunk) + uint64(e.co), Len: uint32(e.n)}
			if through {
				seg.RemoteOff = uint64(fb.data(b, e.shard) + e.co)
				fc.data.add(cmdKey{member: m, op: cmdPull, kind: kindCtrlData}, 0, ctrl, true, seg)
				fc.ctrlData += uint64(e.n)
			} else {
				seg.RemoteOff = req.HostOff + uint64(e.hoff)
				fc.data.add(cmdKey{member: m, op: cmdPull, kind: kindData, host: true}, session, req.Host, true, seg)
			}
		}
		for p := range l.M {
			m := l.Member(st.s, l.K+p)
			if !v.writable[m] {
				continue
			}
			fc.parity.add(cmdKey{member: m, op: cmdPull, kind: kindParity}, 0, ctrl, true,
				segment{MemberOff: uint64(st.s) * uint64(l.Chunk), RemoteOff: uint64(fb.parity(b, p)), Len: uint32(l.Chunk)})
			fc.parityBytes += uint64(l.Chunk)
		}
	}
	return fc
}

// fullParity reads the batch's host data into the buffer group by group and encodes its
// parity; first runs once the first group is in (all the data, on the through-controller
// path). It returns the bytes read from the host.
func (c *Controller) fullParity(ctx context.Context, session uint64, req ioRequest, batch []stripeIO, fb fullBuf, first func()) (uint64, error) {
	l := c.layout
	shards := make([][]byte, l.N())
	var ops []fabric.Op
	var n uint64
	for g := 0; g < len(batch); g += fb.group {
		group := batch[g:min(len(batch), g+fb.group)]
		ops = ops[:0]
		for i, st := range group {
			for _, e := range st.ext {
				ops = append(ops, fabric.Op{Kind: fabric.OpRead, Mem: fb.buf, Off: fb.data(g+i, e.shard) + e.co,
					Len: e.n, Remote: req.Host, RemoteOff: req.HostOff + uint64(e.hoff)})
				n += uint64(e.n)
			}
		}
		if err := c.hostDo(ctx, session, ops); err != nil {
			return n, err
		}
		if g == 0 {
			first()
		}
		for i := range group {
			for d := range l.K {
				shards[d] = fb.bytes(fb.data(g+i, d))
			}
			for p := range l.M {
				shards[l.K+p] = fb.bytes(fb.parity(g+i, p))
			}
			if err := c.enc.Encode(shards); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}
