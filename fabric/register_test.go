package fabric_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/fabric/fabrictest"
)

// TestRegister registers a mapping of a file the test owns; a peer writes into it and reads
// from it with RMA, and the bytes are in the file. Closing the Memory leaves the mapping.
func TestRegister(t *testing.T) {
	for name, tr := range map[string]string{"tcp": "ofi+tcp://127.0.0.1:0", "sockets": "ofi+sockets://127.0.0.1:0",
		"shm": fmt.Sprintf("ofi+shm://rk-reg-%d", os.Getpid())} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			const size = 256 << 10
			f, err := os.Create(filepath.Join(t.TempDir(), "store"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := f.Truncate(size); err != nil {
				t.Fatal(err)
			}
			mapping, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Munmap(mapping)

			pair := fabrictest.Connect(t, tr)
			srv, cli, sc := pair.Server, pair.ClientConn, pair.ServerConn
			if _, err := srv.Register(nil, fabric.RemoteAll); !errors.Is(err, fabric.ErrInvalid) {
				t.Errorf("empty register: %v, want ErrInvalid", err)
			}
			if _, err := srv.Register(mapping, 0x80); !errors.Is(err, fabric.ErrInvalid) {
				t.Errorf("bad access: %v, want ErrInvalid", err)
			}
			m, err := srv.Register(mapping, fabric.RemoteRead|fabric.RemoteWrite)
			if err != nil {
				t.Fatal(err)
			}
			// The server serves RMA only while its queues are driven: keep a receive going.
			go sc.Recv(ctx, make([]byte, 64))

			local, err := cli.Fabric().Alloc(64<<10, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i := range local.Bytes() {
				local.Bytes()[i] = byte(i*7 + 3)
			}
			if err := cli.Write(ctx, local, 0, m.Remote(), 4096, 64<<10); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 64<<10)
			if _, err := f.ReadAt(got, 4096); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, local.Bytes()) {
				t.Fatal("the file does not hold what the peer wrote into its mapping")
			}
			copy(mapping[128<<10:], bytes.Repeat([]byte{0x5a}, 64<<10))
			if err := cli.Read(ctx, local, 0, m.Remote(), 128<<10, 64<<10); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(local.Bytes(), bytes.Repeat([]byte{0x5a}, 64<<10)) {
				t.Fatal("the peer read something else than the mapping holds")
			}
			if err := m.Close(); err != nil {
				t.Fatal(err)
			}
			mapping[0] = 1 // still mapped: Close deregisters only
		})
	}
}
