package verbs_test

import (
	"bytes"
	"net"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/verbs"
)

func TestUDSendRecv(t *testing.T) {
	c, ip := lab(t)
	pd, err := c.AllocPD()
	if err != nil {
		t.Fatal(err)
	}
	cq, err := c.CreateCQ(64, nil)
	if err != nil {
		t.Fatal(err)
	}
	gid, err := c.FindGID(1, verbs.GIDTypeRoCEv2, net.ParseIP(ip))
	if err != nil {
		t.Fatal(err)
	}
	mk := func() *verbs.QP {
		qp, err := pd.CreateQP(verbs.QPConfig{Type: verbs.QPTypeUD, SendCQ: cq})
		if err != nil {
			t.Fatal(err)
		}
		if err := qp.ToInit(verbs.InitAttr{QKey: verbs.DefaultQKey}); err != nil {
			t.Fatal(err)
		}
		if err := qp.ToRTR(verbs.RTRAttr{}); err != nil {
			t.Fatal(err)
		}
		if err := qp.ToRTS(verbs.RTSAttr{SQPSN: 1}); err != nil {
			t.Fatal(err)
		}
		return qp
	}
	a, b := mk(), mk()
	buf := newRegion(t, pd, 8192, verbs.AccessLocalWrite)
	var r verbs.RecvWR
	r.ID = 1
	r.Local(buf.mr.SGE(4096, verbs.GRHSize+256))
	if _, err := b.PostRecv([]verbs.RecvWR{r}); err != nil {
		t.Fatal(err)
	}
	ah, err := pd.CreateAH(verbs.AHAttr{Global: true, DGID: gid.GID, SGIDIndex: gid.Index})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("datagram over rxe")
	copy(buf.mr.Bytes(), msg)
	w := verbs.SendWR{ID: 2, Opcode: verbs.OpSendWithImm, Imm: 5, Flags: verbs.Signaled,
		RemoteQPN: b.Num(), RemoteQKey: verbs.DefaultQKey}
	w.Local(buf.mr.SGE(0, len(msg)))
	w.SetAH(ah)
	if _, err := a.PostSend([]verbs.SendWR{w}); err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]verbs.WC{}
	for len(seen) < 2 {
		wc := waitOne(t, cq, 10*time.Second)
		seen[wc.ID] = wc
	}
	rc := seen[1]
	if rc.Err() != nil || rc.ByteLen != uint32(verbs.GRHSize+len(msg)) || rc.SrcQP != a.Num() || rc.Imm != 5 || !rc.HasGRH() {
		t.Fatalf("UD receive %+v", rc)
	}
	if got := buf.mr.Bytes()[4096+verbs.GRHSize:][:len(msg)]; !bytes.Equal(got, msg) {
		t.Fatalf("UD payload %q", got)
	}
	if err := seen[2].Err(); err != nil {
		t.Fatal(err)
	}
	// A UD send needs a live address handle.
	ah.Close()
	if _, err := a.PostSend([]verbs.SendWR{w}); err == nil {
		t.Fatal("UD send with a closed AH was posted")
	}
}

func TestSRQ(t *testing.T) {
	c, ip := lab(t)
	_ = ip
	pd, err := c.AllocPD()
	if err != nil {
		t.Fatal(err)
	}
	srq, err := pd.CreateSRQ(32, 1)
	if err != nil {
		t.Fatal(err)
	}
	if srq.Len() < 32 {
		t.Fatalf("SRQ len %d", srq.Len())
	}
	p := newPairSRQ(t, c, pd, srq)
	buf := newRegion(t, pd, 1<<16, verbs.AccessLocalWrite)
	var recvs []verbs.RecvWR
	for i := range 8 {
		var r verbs.RecvWR
		r.ID = uint64(i)
		recvs = append(recvs, *r.Local(buf.mr.SGE(i*128, 128)))
	}
	if n, err := srq.PostRecv(recvs); err != nil || n != 8 {
		t.Fatalf("SRQ PostRecv %d %v", n, err)
	}
	if _, err := p.server.QP().PostRecv(recvs[:1]); err == nil {
		t.Fatal("PostRecv on a QP attached to an SRQ succeeded")
	}
	src := newRegion(t, pd, 4096, verbs.AccessLocalWrite)
	for i := range 8 {
		copy(src.mr.Bytes()[i*16:], []byte{byte('a' + i), byte('A' + i)})
		w := verbs.SendWR{ID: uint64(10 + i), Opcode: verbs.OpSend}
		if err := post(t, p.client, *w.Local(src.mr.SGE(i*16, 2))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 8 {
		wc := waitOne(t, p.server.QP().RecvCQ(), 10*time.Second)
		if wc.Err() != nil || wc.ByteLen != 2 || wc.QPNum != p.server.QP().Num() {
			t.Fatalf("SRQ recv %d: %+v", i, wc)
		}
		off := int(wc.ID) * 128
		if got := buf.mr.Bytes()[off : off+2]; got[0] != byte('a'+i) || got[1] != byte('A'+i) {
			t.Fatalf("SRQ message %d landed in buffer %d as %q", i, wc.ID, got)
		}
	}
}
