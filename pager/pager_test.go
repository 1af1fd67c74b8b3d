package pager

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const testBudgetPages = 32

// shadowed is a region and a Go-heap copy of what it must hold. Words are owned by workers
// (word w belongs to worker w % workers), so workers share every page, and so fault on the
// same pages at once, while each word has one writer and a definite expected value.
type shadowed struct {
	b      []byte
	shadow []uint64
}

func (s *shadowed) words() int { return len(s.shadow) }

func (s *shadowed) store(w int, v uint64) {
	binary.LittleEndian.PutUint64(s.b[8*w:], v)
	s.shadow[w] = v
}

func (s *shadowed) check(w int) error {
	if got := binary.LittleEndian.Uint64(s.b[8*w:]); got != s.shadow[w] {
		return fmt.Errorf("word %d (page %d): %#x, want %#x", w, 8*w/PageSize, got, s.shadow[w])
	}
	return nil
}

// run drives workers over the region: random or sequential passes of reads and writes.
func (s *shadowed) run(workers, opsPerWorker int, pattern string, seed uint64) error {
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			mine := (s.words() - g + workers - 1) / workers // words g, g+workers, ...
			for i := range opsPerWorker {
				var w int
				switch pattern {
				case "random":
					w = g + workers*rng.IntN(mine)
				case "sequential":
					// a page per step, every worker on its own word of that page
					stride := PageSize / 8
					w = (i*stride + g) % s.words()
				}
				if w%workers != g {
					continue
				}
				if rng.IntN(2) == 0 {
					s.store(w, rng.Uint64())
				} else if err := s.check(w); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

func (s *shadowed) verifyAll() error {
	for w := range s.words() {
		if err := s.check(w); err != nil {
			return err
		}
	}
	return nil
}

func TestWorkingSets(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) { testWorkingSets(t, tr.listen(), []int{1, 4, 16}, 0) })
	}
}

// testWorkingSets pages working sets of each multiple of the budget, randomly and
// sequentially, from a server process listening on listen, checked against a shadow copy.
// timeout is Options.Timeout (0: the default).
func testWorkingSets(t *testing.T, listen string, mults []int, timeout time.Duration) {
	addr := remoteServer(t, listen, 16<<20)
	for _, mult := range mults {
		for _, pattern := range []string{"random", "sequential"} {
			t.Run(fmt.Sprintf("%dx/%s", mult, pattern), func(t *testing.T) {
				p := newPager(t, addr, Options{Budget: testBudgetPages * PageSize, Timeout: timeout})
				size := mult * testBudgetPages * PageSize
				r, err := p.Map(size)
				if err != nil {
					t.Fatal(err)
				}
				s := &shadowed{b: r.Bytes(), shadow: make([]uint64, size/8)}
				if err := s.verifyAll(); err != nil { // a new region reads as zeros
					t.Fatal(err)
				}
				const workers = 8
				ops := 500 // per worker and round: thousands of faults at 16×
				if pattern == "sequential" {
					ops = 3 * size / PageSize // three passes over every page
				}
				for round := range 3 {
					if err := s.run(workers, ops, pattern, uint64(round)); err != nil {
						t.Fatalf("round %d: %v\n%v", round, err, p.Stats())
					}
				}
				if err := s.verifyAll(); err != nil {
					t.Fatalf("final: %v", err)
				}
				st := p.Stats()
				t.Log(st)
				if st.Faults == 0 || st.Resident > st.Budget {
					t.Fatalf("stats: %v", st)
				}
				if mult > 1 && (st.Evictions == 0 || st.RemoteWrites == 0 || st.RemoteReads == 0) {
					t.Fatalf("a working set %d× the budget ran without evicting: %v", mult, st)
				}
				if pattern == "sequential" && mult == 16 && st.PrefetchHits == 0 {
					t.Fatalf("sequential passes never hit read-ahead pages: %v", st)
				}
				if err := p.Err(); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestMultipleRegions(t *testing.T) {
	srv := startServer(t, transports[0].listen(), 16<<20, ServerOptions{})
	p := newPager(t, srv.Addr(), Options{Budget: testBudgetPages * PageSize})
	var regions []*shadowed
	var rs []*Region
	for i, pages := range []int{40, 64, 100} {
		r, err := p.Map(pages * PageSize)
		if err != nil {
			t.Fatalf("region %d: %v", i, err)
		}
		rs = append(rs, r)
		regions = append(regions, &shadowed{b: r.Bytes(), shadow: make([]uint64, pages*PageSize/8)})
	}
	if st := srv.Stats(); st.Slabs != 3 || st.Used != (40+64+100)*PageSize {
		t.Fatalf("server after three maps: %+v", st)
	}
	var wg sync.WaitGroup
	errs := make([]error, len(regions))
	for i, s := range regions {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = s.run(4, 600, "random", uint64(i)) }()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("region %d: %v", i, err)
		}
	}
	// Dropping one region leaves the others intact and frees its slab.
	if err := rs[1].Close(); err != nil {
		t.Fatal(err)
	}
	if err := rs[1].Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if st := srv.Stats(); st.Slabs != 2 || st.Used != (40+100)*PageSize {
		t.Fatalf("server after closing a region: %+v", st)
	}
	for _, i := range []int{0, 2} {
		if err := regions[i].run(4, 600, "random", 99); err != nil {
			t.Fatalf("region %d after closing another: %v", i, err)
		}
		if err := regions[i].verifyAll(); err != nil {
			t.Fatalf("region %d: %v", i, err)
		}
	}
	if st := p.Stats(); st.Resident > st.Budget || st.Evictions == 0 {
		t.Fatalf("stats: %v", st)
	}
}

func TestCloseReleasesSlabs(t *testing.T) {
	srv := startServer(t, transports[0].listen(), 4<<20, ServerOptions{Lease: 2 * time.Second})
	p := newPager(t, srv.Addr(), Options{Budget: testBudgetPages * PageSize})
	for range 3 {
		r, err := p.Map(64 * PageSize)
		if err != nil {
			t.Fatal(err)
		}
		r.Bytes()[0] = 1
	}
	if st := srv.Stats(); st.Used != 3*64*PageSize {
		t.Fatalf("used %d", st.Used)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := p.Map(PageSize); !errors.Is(err, ErrClosed) {
		t.Fatalf("map after close: %v", err)
	}
	eventually(t, "slabs released after Close", func() bool { st := srv.Stats(); return st.Used == 0 && st.Slabs == 0 })

	// A client that vanishes without a word loses its slabs when its lease runs out.
	q := newPager(t, srv.Addr(), Options{Budget: testBudgetPages * PageSize, Keepalive: time.Hour})
	if _, err := q.Map(128 * PageSize); err != nil {
		t.Fatal(err)
	}
	q.conn.Close()
	eventually(t, "slabs released after disconnect", func() bool { return srv.Stats().Used == 0 })
	// and the whole pool is usable again
	r := newPager(t, srv.Addr(), Options{Budget: testBudgetPages * PageSize})
	if _, err := r.Map(4 << 20); err != nil {
		t.Fatalf("map the whole pool after releases: %v", err)
	}
}

func TestBadInput(t *testing.T) {
	srv := startServer(t, transports[0].listen(), 1<<20, ServerOptions{Quota: 512 << 10})
	p := newPager(t, srv.Addr(), Options{Budget: testBudgetPages * PageSize})
	for _, size := range []int{0, -PageSize, 100, PageSize + 1} {
		if _, err := p.Map(size); !errors.Is(err, ErrInvalid) {
			t.Errorf("Map(%d): %v, want ErrInvalid", size, err)
		}
	}
	if _, err := p.Map(768 << 10); !errors.Is(err, ErrQuota) {
		t.Errorf("map over the quota: %v, want ErrQuota", err)
	}
	q := newPager(t, srv.Addr(), Options{Budget: testBudgetPages * PageSize})
	if _, err := p.Map(512 << 10); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Map(768 << 10); !errors.Is(err, ErrQuota) {
		t.Errorf("second client over its quota: %v", err)
	}
	if _, err := q.Map(512<<10 + PageSize); !errors.Is(err, ErrQuota) {
		t.Errorf("second client: %v", err)
	}
	big := startServer(t, transports[0].listen(), 1<<20, ServerOptions{})
	a := newPager(t, big.Addr(), Options{Budget: testBudgetPages * PageSize})
	if _, err := a.Map(768 << 10); err != nil {
		t.Fatal(err)
	}
	b := newPager(t, big.Addr(), Options{Budget: testBudgetPages * PageSize})
	if _, err := b.Map(512 << 10); !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "no free range") {
		t.Errorf("map beyond the pool: %v, want ErrPoolExhausted", err)
	}
	for _, budget := range []int{PageSize, MinBudget - PageSize, MinBudget + 1, -1} {
		if _, err := New(t.Context(), srv.Addr(), Options{Budget: budget}); !errors.Is(err, ErrInvalid) {
			t.Errorf("budget %d: %v, want ErrInvalid", budget, err)
		}
	}
	for _, size := range []int64{0, -1, 100} {
		if _, err := NewServer(t.Context(), transports[0].listen(), size, ServerOptions{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("server of %d bytes: %v, want ErrInvalid", size, err)
		}
	}
	if _, err := New(t.Context(), "nonsense://", Options{}); err == nil {
		t.Error("pager on a bad address")
	}
	// still working after all that
	r, err := b.Map(PageSize)
	if err != nil {
		t.Fatal(err)
	}
	r.Bytes()[10] = 7
	if r.Bytes()[10] != 7 {
		t.Fatal("lost a write")
	}
}

// TestServerKilled kills the server process under a client: faults on non-resident pages
// must end in the defined failure, SIGBUS, never in zeros.
func TestServerKilled(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			srv := startHelper(t, "serve", "ADDR="+tr.listen(), fmt.Sprint("SIZE=", 4<<20))
			addr := srv.expect(t, "ADDR")

			// In this process: the goroutine asks for a panic instead of a crash.
			p := newPager(t, addr, Options{Budget: testBudgetPages * PageSize, Timeout: 2 * time.Second})
			r, err := p.Map(4 * testBudgetPages * PageSize)
			if err != nil {
				t.Fatal(err)
			}
			b := r.Bytes()
			for i := 0; i < len(b); i += 8 {
				binary.LittleEndian.PutUint64(b[i:], uint64(i)+1)
			}
			srv.cmd.Process.Kill()
			<-srv.done
			type result struct {
				bad  string
				seen any
			}
			ch := make(chan result, 1)
			go func() {
				debug.SetPanicOnFault(true)
				defer func() { ch <- result{seen: recover()} }()
				for i := 0; i < len(b); i += 8 {
					if v := binary.LittleEndian.Uint64(b[i:]); v != uint64(i)+1 {
						ch <- result{bad: fmt.Sprintf("offset %d read %d after the server died", i, v)}
						return
					}
				}
			}()
			res := <-ch
			if res.bad != "" {
				t.Fatal(res.bad)
			}
			e, ok := res.seen.(interface{ Addr() uintptr })
			if !ok {
				t.Fatalf("reading a region 4× the budget after the server died: %v, want a fault panic", res.seen)
			}
			if a := e.Addr(); a < uintptr(unsafePointer(b)) || a >= uintptr(unsafePointer(b))+uintptr(len(b)) {
				t.Fatalf("fault at %#x, outside the region", a)
			}
			if err := p.Err(); err == nil {
				t.Fatal("pager reports no failure")
			}
			t.Logf("fault panic: %v; pager: %v", res.seen, p.Err())
			if _, err := p.Map(PageSize); !errors.Is(err, ErrFailed) {
				t.Fatalf("map after failure: %v", err)
			}
		})
	}
}

// TestServerKilledSIGBUS runs the client in its own process: with the server killed, the
// client dies of SIGBUS and never prints a sum.
func TestServerKilledSIGBUS(t *testing.T) {
	srv := startHelper(t, "serve", "ADDR="+transports[0].listen(), fmt.Sprint("SIZE=", 4<<20))
	addr := srv.expect(t, "ADDR")
	cli := startHelper(t, "client", "ADDR="+addr)
	cli.expect(t, "FILLED")
	srv.cmd.Process.Kill()
	<-srv.done
	fmt.Fprintln(cli.stdin, "go")
	for l := range cli.lines {
		if strings.HasPrefix(l, "SUM") {
			t.Fatalf("client summed a region whose server is dead: %s", l)
		}
	}
	<-cli.done
	ws, _ := cli.cmd.ProcessState.Sys().(syscall.WaitStatus)
	stderr := cli.stderr.String()
	if cli.cmd.ProcessState.Success() || !strings.Contains(stderr, "SIGBUS") ||
		!strings.Contains(stderr, "remote memory lost") {
		t.Fatalf("client: %v (%v)\n%s", cli.cmd.ProcessState, ws, stderr)
	}
	t.Logf("client: %v; stderr starts %q", cli.cmd.ProcessState, firstLines(stderr, 3))
}

func firstLines(s string, n int) string {
	ls := strings.SplitN(s, "\n", n+1)
	return strings.Join(ls[:min(n, len(ls))], " | ")
}
