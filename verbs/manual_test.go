package verbs_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/verbs"
)

// TestManualRC connects two RC QPs without the rdma_cm: explicit INIT/RTR/RTS transitions
// addressed by GID, then an RDMA write and a send.
func TestManualRC(t *testing.T) {
	c, ip := lab(t)
	pd, _ := c.AllocPD()
	cq, err := c.CreateCQ(32, nil)
	if err != nil {
		t.Fatal(err)
	}
	gid, err := c.FindGID(1, verbs.GIDTypeRoCEv2, net.ParseIP(ip))
	if err != nil {
		t.Fatal(err)
	}
	a, err := pd.CreateQP(verbs.QPConfig{SendCQ: cq})
	if err != nil {
		t.Fatal(err)
	}
	b, err := pd.CreateQP(verbs.QPConfig{SendCQ: cq})
	if err != nil {
		t.Fatal(err)
	}
	port, _ := c.QueryPort(1)
	for _, x := range []struct{ q, peer *verbs.QP }{{a, b}, {b, a}} {
		if s, _ := x.q.State(); s != verbs.QPStateReset {
			t.Fatalf("new QP in %v", s)
		}
		if err := x.q.ToInit(verbs.InitAttr{Access: verbs.AccessAll}); err != nil {
			t.Fatal(err)
		}
		if err := x.q.ToRTR(verbs.RTRAttr{PathMTU: port.ActiveMTU, DestQPN: x.peer.Num(), RQPSN: 100,
			Global: true, DGID: gid.GID, SGIDIndex: gid.Index, MaxDestRdAtomic: 1}); err != nil {
			t.Fatal(err)
		}
		if err := x.q.ToRTS(verbs.RTSAttr{SQPSN: 100}); err != nil {
			t.Fatal(err)
		}
		if s, err := x.q.State(); err != nil || s != verbs.QPStateRTS {
			t.Fatalf("state %v %v", s, err)
		}
	}
	src := newRegion(t, pd, 4096, verbs.AccessAll)
	dst := newRegion(t, pd, 4096, verbs.AccessAll)
	copy(src.mr.Bytes(), "manually connected")
	w := verbs.SendWR{ID: 1, Opcode: verbs.OpWrite, Flags: verbs.Signaled, RemoteAddr: dst.mr.Addr() + 100, RKey: dst.mr.RKey()}
	w.Local(src.mr.SGE(0, 18))
	if _, err := a.PostSend([]verbs.SendWR{w}); err != nil {
		t.Fatal(err)
	}
	if wc := waitOne(t, cq, 10*time.Second); wc.Err() != nil || wc.ID != 1 || wc.QPNum != a.Num() {
		t.Fatalf("write completion %+v", wc)
	}
	if !bytes.Equal(dst.mr.Bytes()[100:118], src.mr.Bytes()[:18]) {
		t.Fatalf("got %q", dst.mr.Bytes()[100:118])
	}
}
