package raid

import (
	"testing"

	"github.com/rdmakit/rdmakit/internal/labtest"
)

// TestVerbs runs the shadow-copy check of a RAID-6 volume whose targets pull from the host
// over RDMA (the verbs backend on the lab's rxe device).
func TestVerbs(t *testing.T) {
	_, labIP = labtest.Device(t)
	testShadow(t, "6", 5, "verbs")
}
