package shmem_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/shmem"
)

// Multi-process tests: the test binary re-executes itself as a helper member (TestMain sees
// SHMEM_HELPER). Member 0 is the test process itself. Layout of the words they share:
const (
	offCounter = 0    // a counter in every member's portion
	offSeq     = 8    // node 0: sequencer
	offDone    = 16   // node 0: members that finished their work
	offFinish  = 24   // node 0: set by member 0 when helpers may exit
	offLock    = 32   // node 0: lease lock
	offInside  = 40   // node 0: holders inside the critical section
	offViol    = 48   // node 0: violations seen by anyone
	offAcq     = 56   // node 0: lock acquisitions
	offBitmap  = 1024 // node 1: bitmap allocator of nIDs
	offOwners  = 2048 // node 0: owner of each ID, one word each
	nIDs       = 96
	portion    = 4096

	goroutines = 4
	adds       = 60 // per goroutine per node
	seqs       = 40 // per goroutine
	claims     = 25 // per goroutine
	locks      = 6  // per goroutine
	lease      = 10 * time.Second
	holdLease  = time.Second
)

func TestMain(m *testing.M) {
	if os.Getenv("SHMEM_HELPER") != "" {
		os.Exit(helperMain())
	}
	if os.Getenv("SHMEM_BEACON_HELPER") != "" {
		os.Exit(shmem.BeaconHelper())
	}
	os.Exit(m.Run())
}

type helperReport struct {
	Seq   []uint64 `json:"seq"`
	Own   string   `json:"own"`   // digest of the helper's own portion at the end
	Copy0 string   `json:"copy0"` // digest of its refreshed local copy of node 0
	Err   string   `json:"err,omitempty"`
}

func helperMain() int {
	self, _ := strconv.Atoi(os.Getenv("SHMEM_SELF"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := shmem.Join(ctx, shmem.Config{Name: os.Getenv("SHMEM_NAME"), Members: strings.Split(os.Getenv("SHMEM_MEMBERS"), ","),
		Self: self, PortionSize: portion, OpTimeout: 30 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper join:", err)
		return 1
	}
	defer s.Close()
	fmt.Println("joined")
	switch os.Getenv("SHMEM_HELPER") {
	case "work":
		var rep helperReport
		rep.Seq, err = work(ctx, s)
		if err == nil {
			_, err = s.FetchAdd(ctx, 0, offDone, 1)
		}
		if err == nil {
			err = waitWord(ctx, s, 0, offFinish, func(v uint64) bool { return v != 0 })
		}
		if err == nil {
			err = s.Refresh(ctx, 0, 0, portion)
		}
		if err != nil {
			rep.Err = err.Error()
		}
		rep.Own = digest(s.Portion())
		c, _ := s.CopyOf(nil, 0, 0, portion)
		rep.Copy0 = digest(c)
		json.NewEncoder(os.Stdout).Encode(rep)
	case "holdlock":
		l, _ := s.Lock(0, offLock, holdLease)
		if _, err := l.Acquire(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "acquire:", err)
			return 1
		}
		fmt.Println("locked")
		<-ctx.Done()
	case "idle":
		waitWord(ctx, s, 0, offFinish, func(v uint64) bool { return v != 0 })
	}
	return 0
}

func digest(b []byte) string { h := sha256.Sum256(b); return hex.EncodeToString(h[:8]) }

func waitWord(ctx context.Context, s *shmem.Segment, node int, off uint64, ok func(uint64) bool) error {
	for {
		v, err := s.Load(ctx, node, off)
		if err != nil {
			return err
		}
		if ok(v) {
			return nil
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// work is what every member does: G goroutines hammering counters, the sequencer, the bitmap
// allocator and the lock, checking exclusivity in-band (violations are counted on node 0).
func work(ctx context.Context, s *shmem.Segment) ([]uint64, error) {
	seq, _ := s.Sequencer(0, offSeq)
	bm, err := s.Bitmap(1%s.Members(), offBitmap, nIDs)
	if err != nil {
		return nil, err
	}
	lk, _ := s.Lock(0, offLock, lease)
	var mu sync.Mutex
	var got []uint64
	errs := make(chan error, goroutines)
	var wg sync.WaitGroup
	for g := range goroutines {
		me := uint64(s.Self())<<16 | uint64(g+1)
		wg.Go(func() {
			errs <- func() error {
				for i := range adds * s.Members() {
					if _, err := s.FetchAdd(ctx, i%s.Members(), offCounter, 1); err != nil {
						return err
					}
				}
				for range seqs {
					v, err := seq.Next(ctx)
					if err != nil {
						return err
					}
					mu.Lock()
					got = append(got, v)
					mu.Unlock()
				}
				violation := func() error { _, err := s.FetchAdd(ctx, 0, offViol, 1); return err }
				for range claims {
					id, err := bm.Claim(ctx)
					if err != nil {
						return err
					}
					// Exactly one owner: mark the ID ours; anyone else's mark is a double claim.
					if prev, err := s.CompareSwap(ctx, 0, offOwners+8*id, 0, me); err != nil {
						return err
					} else if prev != 0 {
						violation()
					}
					if prev, err := s.CompareSwap(ctx, 0, offOwners+8*id, me, 0); err != nil {
						return err
					} else if prev != me {
						violation()
					}
					if err := bm.Release(ctx, id); err != nil {
						return err
					}
				}
				for range locks {
					h, err := lk.Acquire(ctx)
					if err != nil {
						return err
					}
					if old, err := s.FetchAdd(ctx, 0, offInside, 1); err != nil {
						return err
					} else if old != 0 {
						violation()
					}
					s.FetchAdd(ctx, 0, offAcq, 1)
					if old, err := s.FetchAdd(ctx, 0, offInside, ^uint64(0)); err != nil {
						return err
					} else if old != 1 {
						violation()
					}
					if err := h.Release(ctx); err != nil {
						return err
					}
				}
				return nil
			}()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// helper is a running helper member.
type helper struct {
	cmd   *exec.Cmd
	lines chan string
	done  chan struct{}
}

func startHelper(t *testing.T, role, name string, members []string, self int) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMEM_HELPER="+role, "SHMEM_NAME="+name,
		"SHMEM_MEMBERS="+strings.Join(members, ","), "SHMEM_SELF="+strconv.Itoa(self))
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, lines: make(chan string, 16), done: make(chan struct{})}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
		cmd.Wait()
		close(h.done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-h.done
	})
	return h
}

// line waits for the helper's next output line.
func (h *helper) line(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			t.Fatalf("helper exited: %v", h.cmd.ProcessState)
		}
		return l
	case <-time.After(d):
		t.Fatalf("helper said nothing for %v", d)
	}
	return ""
}

func TestMultiProcess(t *testing.T) {
	const n = 3
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ctx := ctxT(t, 2*time.Minute)
			members := addrs(t, tr, n)
			name := fmt.Sprintf("mp-%s-%d", tr.name, os.Getpid())
			var hs []*helper
			for i := 1; i < n; i++ {
				hs = append(hs, startHelper(t, "work", name, members, i))
			}
			s, err := shmem.Join(ctx, shmem.Config{Name: name, Members: members, Self: 0, PortionSize: portion,
				OpTimeout: 30 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			for _, h := range hs {
				if l := h.line(t, time.Minute); l != "joined" {
					t.Fatalf("helper: %q", l)
				}
			}
			mine, err := work(ctx, s)
			if err != nil {
				t.Fatalf("member 0: %v", err)
			}
			if err := waitWord(ctx, s, 0, offDone, func(v uint64) bool { return v == n-1 }); err != nil {
				t.Fatal(err)
			}
			// Counters end exact, in every portion.
			for node := range n {
				if v, err := s.Load(ctx, node, offCounter); err != nil || v != n*goroutines*adds {
					t.Errorf("counter on node %d = %d (%v), want %d", node, v, err, n*goroutines*adds)
				}
				// local copies converge: the fetch above left the copy equal to the word
				if c, _ := s.Cached(node, offCounter); c != n*goroutines*adds {
					t.Errorf("local copy of node %d's counter = %d", node, c)
				}
			}
			for _, c := range []struct {
				name string
				off  uint64
				want uint64
			}{{"violations", offViol, 0}, {"holders inside", offInside, 0}, {"acquisitions", offAcq, n * goroutines * locks},
				{"sequencer", offSeq, n * goroutines * seqs}} {
				if v, err := s.Load(ctx, 0, c.off); err != nil || v != c.want {
					t.Errorf("%s = %d (%v), want %d", c.name, v, err, c.want)
				}
			}
			bm, _ := s.Bitmap(1, offBitmap, nIDs)
			if k, err := bm.Count(ctx); err != nil || k != 0 {
				t.Errorf("IDs still claimed at the end: %d (%v)", k, err)
			}
			copies := make([]string, n)
			for node := range n {
				if err := s.Refresh(ctx, node, 0, portion); err != nil {
					t.Fatal(err)
				}
				c, _ := s.CopyOf(nil, node, 0, portion)
				copies[node] = digest(c)
			}
			if copies[0] != digest(s.Portion()) {
				t.Errorf("refreshed copy of my own portion differs from it")
			}
			if _, err := s.Store(ctx, 0, offFinish, 1); err != nil {
				t.Fatal(err)
			}
			copies[0] = digest(s.Portion()) // with finish set, as the helpers will see it
			seen := map[uint64]bool{}
			for _, v := range mine {
				seen[v] = true
			}
			for i, h := range hs {
				var rep helperReport
				if err := json.Unmarshal([]byte(h.line(t, time.Minute)), &rep); err != nil {
					t.Fatal(err)
				}
				if rep.Err != "" {
					t.Fatalf("helper %d: %s", i+1, rep.Err)
				}
				if rep.Own != copies[i+1] {
					t.Errorf("my copy of node %d differs from its portion", i+1)
				}
				if rep.Copy0 != copies[0] {
					t.Errorf("node %d's copy of node 0 differs from node 0's portion", i+1)
				}
				for _, v := range rep.Seq {
					if seen[v] {
						t.Fatalf("sequence number %d handed out twice", v)
					}
					seen[v] = true
				}
			}
			for v := range uint64(n * goroutines * seqs) {
				if !seen[v] {
					t.Fatalf("sequence number %d never handed out (%d seen)", v, len(seen))
				}
			}
		})
	}
}

// TestMemberKilled kills a member that holds a lock: operations on its portion fail with
// ErrMemberDown, the others go on, and the lock is taken over once its lease lapses.
func TestMemberKilled(t *testing.T) {
	const n = 3
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			ctx := ctxT(t, 2*time.Minute)
			members := addrs(t, tr, n)
			name := fmt.Sprintf("kill-%s-%d", tr.name, os.Getpid())
			victim := startHelper(t, "holdlock", name, members, 1)
			other := startHelper(t, "idle", name, members, 2)
			s, err := shmem.Join(ctx, shmem.Config{Name: name, Members: members, Self: 0, PortionSize: portion,
				OpTimeout: 3 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			victim.line(t, time.Minute)
			other.line(t, time.Minute)
			if l := victim.line(t, time.Minute); l != "locked" {
				t.Fatalf("victim: %q", l)
			}
			if _, err := s.FetchAdd(ctx, 1, 0, 1); err != nil {
				t.Fatalf("before the kill: %v", err)
			}
			if _, err := s.FetchAdd(ctx, 2, 0, 1); err != nil {
				t.Fatalf("before the kill: %v", err)
			}
			victim.cmd.Process.Kill()
			<-victim.done
			if _, err := s.FetchAdd(ctx, 2, 0, 1); err != nil {
				t.Errorf("right after the kill: %v", err)
			}
			_, err = s.FetchAdd(ctx, 1, 0, 1)
			for i := 0; err == nil && i < 50; i++ { // the transport may need a moment to notice
				time.Sleep(20 * time.Millisecond)
				_, err = s.FetchAdd(ctx, 1, 0, 1)
			}
			if !errors.Is(err, shmem.ErrMemberDown) {
				t.Fatalf("op on the dead member's portion: %v, want ErrMemberDown", err)
			}
			t.Logf("dead member: %v", err)
			if _, err := s.FetchAdd(ctx, 1, 8, 1); !errors.Is(err, shmem.ErrMemberDown) {
				t.Errorf("second op on the dead member: %v", err)
			}
			if _, err := s.FetchAdd(ctx, 0, 64, 1); err != nil {
				t.Errorf("op on my own portion: %v", err)
			}
			base, err := s.Load(ctx, 2, 0)
			if err != nil {
				t.Fatalf("op on a live member: %v", err)
			}
			for i := range 10 {
				if old, err := s.FetchAdd(ctx, 2, 0, 1); err != nil || old != base+uint64(i) {
					t.Fatalf("op on a live member: %d, %v", old, err)
				}
			}
			l, _ := s.Lock(0, offLock, holdLease)
			h, err := l.Acquire(ctx)
			if err != nil {
				t.Fatalf("lock held by the dead member was not taken over: %v", err)
			}
			if err := h.Release(ctx); err != nil {
				t.Fatal(err)
			}
			s.Store(ctx, 0, offFinish, 1)
			select {
			case <-other.done:
			case <-ctx.Done():
				t.Fatal("surviving helper did not finish")
			}
			if !other.cmd.ProcessState.Success() {
				t.Errorf("surviving helper: %v", other.cmd.ProcessState)
			}
		})
	}
}
