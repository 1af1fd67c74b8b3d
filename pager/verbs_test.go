package pager

import (
	"net"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/internal/labtest"
)

// TestVerbs pages working sets larger than the budget over RDMA (kernel rxe in the lab): the
// verbs backend, and libfabric's verbs;ofi_rxm.
func TestVerbs(t *testing.T) {
	_, ip := labtest.Device(t)
	for _, scheme := range []string{"verbs", "ofi+verbs"} {
		t.Run(scheme, func(t *testing.T) {
			// The lab is an emulated machine (and -race slows it further): a generous
			// Timeout, so that only a real failure fails the pager.
			testWorkingSets(t, scheme+"://"+net.JoinHostPort(ip, "0"), []int{4}, time.Minute)
		})
	}
}
