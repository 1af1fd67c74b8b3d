package verbs_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/verbs"
)

// TestMemlockTooLow lowers RLIMIT_MEMLOCK and drops CAP_IPC_LOCK (the lab runs as root, which
// would bypass the limit) on one locked OS thread, then registers more than the limit allows.
func TestMemlockTooLow(t *testing.T) {
	c, _ := lab(t)
	pd, err := c.AllocPD()
	if err != nil {
		t.Fatal(err)
	}
	m, err := verbs.Alloc(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &old); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		// The thread ends with this goroutine (never unlocked), taking its lowered
		// capabilities with it.
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		data[0].Effective &^= 1 << unix.CAP_IPC_LOCK
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		if err := unix.Setrlimit(unix.RLIMIT_MEMLOCK, &unix.Rlimit{Cur: 64 << 10, Max: old.Max}); err != nil {
			errc <- err
			return
		}
		mr, err := pd.Register(m, verbs.AccessLocalWrite)
		unix.Setrlimit(unix.RLIMIT_MEMLOCK, &old)
		if err == nil {
			mr.Close()
			err = errors.New("16 MiB registered under a 64 KiB RLIMIT_MEMLOCK")
		}
		errc <- err
	}()
	err = <-errc
	if !errors.Is(err, verbs.ErrMemlock) {
		t.Fatalf("Register under a low memlock limit: %v", err)
	}
	for _, want := range []string{"ulimit -l", "LimitMEMLOCK", "65536 bytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("memlock error %q lacks %q", err, want)
		}
	}
	soft, _, err := verbs.MemlockLimit()
	if err != nil || soft != old.Cur {
		t.Fatalf("limit not restored: %d %v", soft, err)
	}
	// With the limit back, the same registration works.
	mr, err := pd.Register(m, verbs.AccessLocalWrite)
	if err != nil {
		t.Fatal(err)
	}
	mr.Close()
}
