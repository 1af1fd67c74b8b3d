package pager

import (
	"fmt"
	"io"
)

// ReadAt copies len(b) bytes at off out of the region (io.ReaderAt). Unlike a copy from
// Bytes, it never waits for a page inside runtime assembly: each page is pinned, brought in
// by an ordinary load, then copied, so a stop-the-world can always preempt the caller.
func (r *Region) ReadAt(b []byte, off int64) (int, error) {
	return r.access(b, off, false)
}

// WriteAt copies b into the region at off (io.WriterAt), page by page like ReadAt; each page
// is made writable (dirty) by an ordinary store before the copy.
func (r *Region) WriteAt(b []byte, off int64) (int, error) {
	return r.access(b, off, true)
}

func (r *Region) access(b []byte, off int64, write bool) (int, error) {
	if off < 0 || off > int64(len(r.mem)) {
		return 0, fmt.Errorf("%w: offset %d in a region of %d bytes", ErrInvalid, off, len(r.mem))
	}
	n := 0
	for n < len(b) && off < int64(len(r.mem)) {
		idx := int(off / PageSize)
		in := int(off % PageSize)
		k := min(len(b)-n, PageSize-in, len(r.mem)-int(off))
		r.pin(idx, 1)
		// The first byte moves by a plain load or store: if the page is out (or clean) the
		// fault happens here, in ordinary Go code, not inside memmove. (Not sync/atomic:
		// under the race detector those run in the race runtime's C code.)
		if write {
			r.mem[off] = b[n]
			copy(r.mem[off+1:int(off)+k], b[n+1:n+k])
		} else {
			b[n] = r.mem[off]
			copy(b[n+1:n+k], r.mem[off+1:int(off)+k])
		}
		r.pin(idx, -1)
		n += k
		off += int64(k)
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// pin adds d to page idx's pin count; the evictor leaves pinned pages alone.
func (r *Region) pin(idx, d int) {
	r.p.mu.Lock()
	r.pages[idx].pins += int32(d)
	r.p.mu.Unlock()
}
