package shmem_test

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"testing"

	"github.com/rdmakit/rdmakit/internal/labtest"
	"github.com/rdmakit/rdmakit/verbs"
)

// cmPort is an rdma_cm port on ip that nobody listens on, below the ephemeral range (members
// are configured with their ports before they start). The rdma_cm has port spaces of its own:
// a free TCP port says nothing about them.
func cmPort(t testing.TB, ip string) string {
	t.Helper()
	for range 100 {
		p := strconv.Itoa(20000 + rand.IntN(10000))
		l, err := verbs.Listen(net.JoinHostPort(ip, p), 1)
		if err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free rdma_cm port")
	return ""
}

// labTransports are the transports on the lab's RDMA device (kernel rxe): the verbs backend,
// whose only native atomics are fetch-add and compare-and-swap (the rest become CAS loops).
// Not libfabric's verbs;ofi_rxm: with two members making atomics at each other, libfabric 1.17
// crashes inside rxm (fi_cq_read progress and fi_close of a connection) on rxe.
func labTransports(t *testing.T) []transport {
	_, ip := labtest.Device(t)
	mk := func(name, scheme string) transport {
		return transport{name, func(t testing.TB) string {
			return fmt.Sprintf("%s://%s", scheme, net.JoinHostPort(ip, cmPort(t, ip)))
		}}
	}
	return []transport{mk("verbs", "verbs")}
}

// TestVerbs runs the word operations, the bitmap allocator and the lease lock on RDMA.
func TestVerbs(t *testing.T) {
	for _, tr := range labTransports(t) {
		t.Run(tr.name, func(t *testing.T) {
			t.Run("Ops", func(t *testing.T) { testOps(t, tr) })
			t.Run("BitmapAndLock", func(t *testing.T) { testBitmapAndLock(t, tr) })
		})
	}
}
