package pager

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
)

func TestReadWriteAt(t *testing.T) {
	srv := startServer(t, transports[0].listen(), 16<<20, ServerOptions{})
	p := newPager(t, srv.Addr(), Options{Budget: testBudgetPages * PageSize})
	const size = 8 * testBudgetPages * PageSize
	r, err := p.Map(size)
	if err != nil {
		t.Fatal(err)
	}
	shadow := make([]byte, size)
	const workers = 4
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Add(1)
		go func() { // each worker owns a quarter of the region; chunks cross page boundaries
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			lo, span := g*size/workers, size/workers
			buf := make([]byte, 3*PageSize)
			for range 150 {
				n := 1 + rng.IntN(len(buf))
				off := lo + rng.IntN(span-n)
				if rng.IntN(2) == 0 {
					for i := range buf[:n] {
						buf[i] = byte(rng.Uint32())
					}
					if k, err := r.WriteAt(buf[:n], int64(off)); k != n || err != nil {
						errs <- err
						return
					}
					copy(shadow[off:], buf[:n])
				} else {
					if k, err := r.ReadAt(buf[:n], int64(off)); k != n || err != nil {
						errs <- err
						return
					}
					if !bytes.Equal(buf[:n], shadow[off:off+n]) {
						errs <- errors.New("ReadAt returned other bytes than written")
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	all := make([]byte, size)
	if n, err := r.ReadAt(all, 0); n != size || err != nil || !bytes.Equal(all, shadow) {
		t.Fatalf("whole region: %d, %v, equal %v", n, err, bytes.Equal(all, shadow))
	}
	if n, err := r.ReadAt(make([]byte, 10), size-4); n != 4 || err != io.EOF {
		t.Fatalf("read across the end: %d, %v", n, err)
	}
	if _, err := r.WriteAt([]byte{1}, -1); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative offset: %v", err)
	}
	if st := p.Stats(); st.Evictions == 0 || st.WriteFaults == 0 {
		t.Fatalf("stats: %v", st)
	}
}
