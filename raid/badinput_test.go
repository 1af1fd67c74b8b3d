package raid

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestBadInput sends requests that must be refused with a clear error and change nothing.
func TestBadInput(t *testing.T) {
	v := newVolume(t, "tcp", "5", 3, 4096, 32*4096+dataStart)
	ctx := testCtx(t, 60*time.Second)
	size := v.cli.Size()
	mem, err := v.cli.Alloc(int(size))
	if err != nil {
		t.Fatal(err)
	}
	for i := range mem.Bytes() {
		mem.Bytes()[i] = byte(i * 7)
	}
	if err := v.cli.Write(ctx, mem, 0, 0, int(size)); err != nil {
		t.Fatal(err)
	}
	before := bytes.Clone(mem.Bytes())
	other, err := v.cli.Alloc(8192)
	if err != nil {
		t.Fatal(err)
	}
	for i := range other.Bytes() {
		other.Bytes()[i] = 0xee
	}
	short := other.Remote()
	short.Len = 100
	wrongKey := other.Remote()
	wrongKey.Key ^= 0x5a5a
	for _, tc := range []struct {
		name string
		do   func() error
		want error
	}{
		{"offset beyond the volume", func() error { return v.cli.Write(ctx, other, 0, size, 1) }, ErrRange},
		{"length beyond the volume", func() error { return v.cli.Write(ctx, other, 0, size-10, 11) }, ErrRange},
		{"huge offset", func() error { return v.cli.WriteRemote(ctx, other.Remote(), 0, 1<<62, 1) }, ErrRange},
		{"negative offset", func() error { return v.cli.Write(ctx, other, 0, -1, 1) }, ErrRange},
		{"read beyond the volume", func() error { return v.cli.Read(ctx, other, 0, size-1, 2) }, ErrRange},
		{"zero length write", func() error { return v.cli.Write(ctx, other, 0, 0, 0) }, ErrInvalid},
		{"zero length read", func() error { return v.cli.Read(ctx, other, 0, 0, 0) }, ErrInvalid},
		{"descriptor too short", func() error { return v.cli.WriteRemote(ctx, short, 0, 0, 4096) }, ErrInvalid},
		{"descriptor offset past its end", func() error { return v.cli.WriteRemote(ctx, other.Remote(), 8000, 0, 4096) }, ErrInvalid},
		{"wrong key write", func() error { return v.cli.WriteRemote(ctx, wrongKey, 0, 0, 8192) }, ErrHostAcc},
		{"wrong key read", func() error { return v.cli.ReadRemote(ctx, wrongKey, 0, 0, 8192) }, ErrHostAcc},
		{"exclude too many", func() error { return v.cli.ReadExcluding(ctx, other, 0, 0, 10, 3) }, ErrFailed},
		{"exclude unknown member", func() error { return v.cli.ReadExcluding(ctx, other, 0, 0, 10, 1<<9) }, ErrInvalid},
		{"replace unknown member", func() error { return v.cli.Replace(ctx, 7, "ofi+tcp://127.0.0.1:1") }, ErrInvalid},
	} {
		err := tc.do()
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		} else {
			t.Logf("%s: %v", tc.name, err)
		}
	}
	clear(mem.Bytes())
	if err := v.cli.Read(ctx, mem, 0, 0, int(size)); err != nil {
		t.Fatalf("read after bad input: %v", err)
	}
	if !bytes.Equal(mem.Bytes(), before) {
		t.Fatal("bad input changed the volume")
	}
	for _, b := range other.Bytes() {
		if b != 0xee {
			t.Fatal("bad input changed host memory")
		}
	}
	st, err := v.cli.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.State != stateOK {
			t.Errorf("member %d %s after bad host input", m.Index, m.State)
		}
	}
}

// TestBadVolume: wrong member counts and foreign superblocks are refused.
func TestBadVolume(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	dir := t.TempDir()
	ts := newTargets(t, "tcp", 4, 16*4096+dataStart, dir)
	for _, tc := range []struct {
		level string
		n     int
	}{{"6", 3}, {"5", 2}, {"1", 1}, {"3+2", 4}, {"7", 4}, {"x+1", 3}, {"0+2", 2}} {
		_, err := NewController(ctx, ControllerConfig{Listen: listenAddr("tcp"), Level: tc.level, Chunk: 4096,
			Members: addrs(ts[:tc.n]), StateDir: filepath.Join(dir, "bad-"+tc.level)})
		if !errors.Is(err, ErrLayout) {
			t.Errorf("level %s over %d members: err = %v, want ErrLayout", tc.level, tc.n, err)
		}
	}
	_, err := NewController(ctx, ControllerConfig{Listen: listenAddr("tcp"), Level: "5", Chunk: 1000,
		Members: addrs(ts[:3]), StateDir: filepath.Join(dir, "badchunk")})
	if !errors.Is(err, ErrLayout) {
		t.Errorf("chunk 1000: %v", err)
	}
	// Volume A on targets 0-2; a controller creating B over 1-3 must refuse target 1 and 2.
	a, err := NewController(ctx, ControllerConfig{Listen: listenAddr("tcp"), Level: "5", Chunk: 4096,
		Members: addrs(ts[:3]), StateDir: filepath.Join(dir, "a")})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	_, err = NewController(ctx, ControllerConfig{Listen: listenAddr("tcp"), Level: "5", Chunk: 4096,
		Members: addrs(ts[1:4]), StateDir: filepath.Join(dir, "b")})
	if !errors.Is(err, ErrForeign) {
		t.Errorf("create over a foreign member: err = %v, want ErrForeign", err)
	}
	// Target 3 now still blank? It must be, nothing may have been written to it.
	other := newVolume(t, "tcp", "1", 2, 4096, 16*4096+dataStart)
	err = a.Replace(ctx, 0, other.targets[0].Addr())
	if !errors.Is(err, ErrForeign) {
		t.Errorf("replace with another volume's member: err = %v, want ErrForeign", err)
	}
	// The refused attempts left volume A intact.
	if st := a.Status(ctx); st.Members[0].State != stateOK || st.Generation != 1 {
		t.Errorf("volume A after refused replace: %+v", st)
	}
	// The state directory of A wins; asking it for a different layout is an error.
	a.Close()
	_, err = NewController(ctx, ControllerConfig{Listen: listenAddr("tcp"), Level: "6", Chunk: 4096,
		Members: addrs(ts[:4]), StateDir: filepath.Join(dir, "a")})
	if !errors.Is(err, ErrLayout) {
		t.Errorf("reopen with another layout: err = %v, want ErrLayout", err)
	}
}

// TestRestart: a restarted controller and a restarted target pick their state up from disk.
func TestRestart(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	ts, cfg, data := stoppedVolume(ctx, t, 0, "restart!")
	members := cfg.Members
	// Restart target 1 on the same address and store.
	store := ts[1].cfg.Store
	ts[1].Close()
	t1, err := NewTarget(ctx, TargetConfig{Listen: members[1], Store: store, Size: restartStore})
	if err != nil {
		t.Fatal(err)
	}
	defer t1.Close()
	cfg.Listen = listenAddr("tcp")
	cfg.Level, cfg.Members = "", nil
	c, err := NewController(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if st := c.Status(ctx); st.Members[1].State != stateOK {
		t.Fatalf("restarted target not taken back: %+v", st.Members)
	}
	cli := readBack(ctx, t, c, data, "after restart")
	for i := range 3 {
		mem, _ := cli.Alloc(len(data))
		if err := cli.ReadExcluding(ctx, mem, 0, 0, len(data), 1<<i); err != nil || !bytes.Equal(mem.Bytes(), data) {
			t.Fatalf("read without member %d after restart: %v", i, err)
		}
	}
}

// TestReopenWaitsForTargets: a restarted controller keeps trying a member whose target is down
// (restarting, or too busy to answer) before it fails it. A target that comes back while the
// controller tries is taken back; one that stays down is failed, and the volume serves degraded.
func TestReopenWaitsForTargets(t *testing.T) {
	ctx := testCtx(t, 60*time.Second)
	ts, cfg, data := stoppedVolume(ctx, t, 2*time.Second, "reopen..")
	members := cfg.Members
	store := ts[1].cfg.Store
	ts[1].Close()
	ts[2].Close()

	// Target 1 comes back once the restarted controller has found it down; target 2 stays down.
	retried := make(chan struct{})
	var once sync.Once
	cfg.Logf = func(format string, a ...any) {
		msg := fmt.Sprintf(format, a...)
		t.Log(msg)
		if strings.HasPrefix(msg, "member 1 ") && strings.HasSuffix(msg, "trying again") {
			once.Do(func() { close(retried) })
		}
	}
	back := make(chan *Target, 1)
	go func() {
		defer close(back)
		select {
		case <-retried:
		case <-ctx.Done():
			return
		}
		t1, err := NewTarget(ctx, TargetConfig{Listen: members[1], Store: store, Size: restartStore})
		if err != nil {
			t.Error(err)
			return
		}
		back <- t1
	}()
	cfg.Listen = listenAddr("tcp")
	cfg.Level, cfg.Members = "", nil
	c, err := NewController(ctx, cfg)
	if t1 := <-back; t1 != nil {
		defer t1.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := c.Status(ctx)
	if st.Members[1].State != stateOK || st.Members[2].State != stateFailed {
		t.Fatalf("after reopen: %+v, want member 1 ok and member 2 failed", st.Members)
	}
	readBack(ctx, t, c, data, "degraded, after reopen")
}

// restartStore is the store size of stoppedVolume's targets.
const restartStore = 16*4096 + dataStart

// stoppedVolume makes a raid5 volume over three targets (commands bounded by timeout; 0 is
// the default), fills it with fill and stops its controller: where restart tests begin.
func stoppedVolume(ctx context.Context, t *testing.T, timeout time.Duration, fill string) ([]*Target, ControllerConfig, []byte) {
	t.Helper()
	dir := t.TempDir()
	ts := newTargets(t, "tcp", 3, restartStore, dir)
	cfg := ControllerConfig{Listen: listenAddr("tcp"), Level: "5", Chunk: 4096, Members: addrs(ts),
		StateDir: filepath.Join(dir, "state"), Timeout: timeout}
	c, err := NewController(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cli, err := Dial(ctx, c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	data := bytes.Repeat([]byte(fill), int(cli.Size())/len(fill))
	if err := cli.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	return ts, cfg, data
}

// readBack dials c and reads the whole volume, which must hold data. The client stays open
// until the test ends.
func readBack(ctx context.Context, t *testing.T, c *Controller, data []byte, when string) *Client {
	t.Helper()
	cli, err := Dial(ctx, c.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	got := make([]byte, len(data))
	if err := cli.ReadAt(ctx, got, 0); err != nil {
		t.Fatalf("%s: %v", when, err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("%s: data differs", when)
	}
	return cli
}
