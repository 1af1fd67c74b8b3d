package raid

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"
)

// procVolume is a volume of target and controller processes.
type procVolume struct {
	dir     string
	tr      string
	size    int64
	targets []*proc
	ctrl    *proc
	cfg     ControllerConfig
}

func newProcVolume(t testing.TB, tr, level string, n, chunk int, storeSize int64) *procVolume {
	return newProcVolumeIn(t, t.TempDir(), tr, level, n, chunk, storeSize)
}

func newProcVolumeIn(t testing.TB, dir, tr, level string, n, chunk int, storeSize int64) *procVolume {
	pv := &procVolume{dir: dir, tr: tr, size: storeSize}
	var members []string
	for range n {
		p := pv.startTarget(t)
		pv.targets = append(pv.targets, p)
		members = append(members, p.addr)
	}
	pv.cfg = ControllerConfig{Listen: listenAddr(tr), Level: level, Chunk: chunk, Members: members,
		StateDir: filepath.Join(pv.dir, "state"), Timeout: 2 * time.Second}
	pv.ctrl = startProc(t, "controller", pv.cfg)
	return pv
}

func (pv *procVolume) startTarget(t testing.TB) *proc {
	return startProc(t, "target", TargetConfig{Listen: listenAddr(pv.tr),
		Store: filepath.Join(pv.dir, fmt.Sprintf("store-%d", shmSeq.Add(1))), Size: pv.size})
}

// restartController starts a controller process on the same state directory.
func (pv *procVolume) restartController(t *testing.T) {
	cfg := pv.cfg
	cfg.Listen = listenAddr(pv.tr)
	pv.ctrl = startProc(t, "controller", cfg)
}

// readAll reads the whole volume, optionally with members excluded.
func readAll(ctx context.Context, t *testing.T, cli *Client, exclude uint64) []byte {
	t.Helper()
	mem, err := cli.Alloc(int(cli.Size()))
	if err != nil {
		t.Fatal(err)
	}
	defer mem.Close()
	if err := cli.ReadExcluding(ctx, mem, 0, 0, int(cli.Size()), exclude); err != nil {
		t.Fatalf("read all (exclude %#x): %v", exclude, err)
	}
	return bytes.Clone(mem.Bytes())
}

func waitRebuild(ctx context.Context, t *testing.T, cli *Client, member int) Status {
	t.Helper()
	for {
		st, err := cli.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.Rebuild; r != nil && r.Member == member && !r.Running {
			if r.Error != "" {
				t.Fatalf("rebuild of member %d: %s", member, r.Error)
			}
			return st
		}
		select {
		case <-ctx.Done():
			t.Fatal("rebuild did not finish")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestKillMembers kills -9 m targets of a k+m volume during a stream of writes: every
// acknowledged write reads back identical, degraded and after rebuilding both members.
func TestKillMembers(t *testing.T) {
	for _, tc := range []struct{ tr, level string }{{"tcp", "4+2"}, {"shm", "3+2"}} {
		t.Run(tc.tr, func(t *testing.T) {
			var k, m int
			fmt.Sscanf(tc.level, "%d+%d", &k, &m)
			chunk := 8192
			pv := newProcVolume(t, tc.tr, tc.level, k+m, chunk, 48*int64(chunk)+dataStart)
			ctx := testCtx(t, 90*time.Second)
			cli, err := Dial(ctx, pv.ctrl.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer cli.Close()
			size := cli.Size()
			shadow := make([]byte, size)
			mem, err := cli.Alloc(int(size))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(7, 9))
			victims := rng.Perm(k + m)[:m]
			const writes = 36
			for i := range writes {
				if i == writes/3 {
					for _, v := range victims {
						pv.targets[v].kill()
					}
					t.Logf("killed members %v", victims)
				}
				off := rng.Int64N(size)
				n := 1 + rng.Int64N(min(size-off, 3*int64(chunk)))
				buf := mem.Bytes()[:n]
				for j := range buf {
					buf[j] = byte(rng.Uint32())
				}
				if err := cli.Write(ctx, mem, 0, off, int(n)); err != nil {
					t.Fatalf("write %d [%d,+%d): %v", i, off, n, err)
				}
				copy(shadow[off:], buf)
			}
			if got := readAll(ctx, t, cli, 0); !bytes.Equal(got, shadow) {
				t.Fatal("degraded read differs from the acknowledged writes")
			}
			t.Logf("degraded read verified")
			for _, v := range victims {
				repl := pv.startTarget(t)
				if err := cli.Replace(ctx, v, repl.addr); err != nil {
					t.Fatalf("replace %d: %v", v, err)
				}
				waitRebuild(ctx, t, cli, v)
				t.Logf("member %d rebuilt", v)
			}
			if got := readAll(ctx, t, cli, 0); !bytes.Equal(got, shadow) {
				t.Fatal("read after rebuild differs")
			}
			t.Logf("read after rebuild verified")
			for i := range k + m {
				if got := readAll(ctx, t, cli, 1<<i); !bytes.Equal(got, shadow) {
					t.Fatalf("read after rebuild without member %d differs", i)
				}
			}
			st, err := cli.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, ms := range st.Members {
				if ms.State != stateOK {
					t.Errorf("member %d is %s after rebuild", ms.Index, ms.State)
				}
			}
			if st.Counters.DataToTargets != 0 || st.Counters.MemberFailures != uint64(m) {
				t.Errorf("counters: %+v", st.Counters)
			}
		})
	}
}

// TestControllerCrash kills -9 the controller during a stream of partial-stripe writes and
// restarts it: the write-intent log resyncs parity, so reading with any one member missing
// gives the same bytes as reading with all of them.
func TestControllerCrash(t *testing.T) {
	chunk := 4096
	pv := newProcVolume(t, "tcp", "6", 5, chunk, 256*int64(chunk)+dataStart)
	ctx := testCtx(t, 90*time.Second)
	cli, err := Dial(ctx, pv.ctrl.addr)
	if err != nil {
		t.Fatal(err)
	}
	size := cli.Size()
	const writers = 3
	done := make(chan error, writers)
	wctx, stopWriter := context.WithCancel(ctx)
	defer stopWriter()
	for w := range writers {
		go func() {
			mem, err := cli.Alloc(64 << 10)
			if err != nil {
				done <- err
				return
			}
			rng := rand.New(rand.NewPCG(3, uint64(w)))
			for i := 0; ; i++ {
				off := rng.Int64N(size - 64<<10)
				n := 1 + rng.IntN(64<<10)
				for j := range mem.Bytes()[:n] {
					mem.Bytes()[j] = byte(i + j + w)
				}
				if err := cli.Write(wctx, mem, 0, off, n); err != nil {
					done <- err
					return
				}
			}
		}()
	}
	time.Sleep(1500 * time.Millisecond) // a stream, not a measurement: let writes get going
	pv.ctrl.kill()
	stopWriter()
	for range writers {
		t.Logf("writer stopped by the crash: %v", <-done)
	}
	cli.Close()
	pv.restartController(t)
	cli, err = Dial(ctx, pv.ctrl.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	st, err := cli.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("after restart: %d stripes resynced", st.Counters.Resynced)
	all := readAll(ctx, t, cli, 0)
	for i := range 5 {
		if got := readAll(ctx, t, cli, 1<<i); !bytes.Equal(got, all) {
			t.Fatalf("read without member %d differs: parity inconsistent", i)
		}
	}
	for i := range 5 {
		for j := i + 1; j < 5; j++ {
			if got := readAll(ctx, t, cli, 1<<i|1<<j); !bytes.Equal(got, all) {
				t.Fatalf("read without members %d and %d differs", i, j)
			}
		}
	}
}
