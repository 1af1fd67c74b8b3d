package ofi

import "testing"

// An RDM endpoint closed before an AV was bound to it (an error path between NewEndpoint and
// BindAV) closes cleanly: rxm crashed (SIGSEGV) in fi_close of one, with or without a CQ bound.
func TestCloseEndpointWithoutAV(t *testing.T) {
	for _, prov := range rdmProviders {
		for _, withCQ := range []bool{false, true} {
			name := prov + "/bare"
			if withCQ {
				name = prov + "/cq"
			}
			t.Run(name, func(t *testing.T) {
				node, svc := "127.0.0.1", "0"
				if prov == "shm" {
					node, svc = "", ""
				}
				s := openSide(t, node, svc, hintsFor(prov, EPRDM, CapMsg|CapRMA))
				ep, err := s.dom.NewEndpoint(s.info)
				if err != nil {
					t.Fatal(err)
				}
				if withCQ {
					cq, err := s.dom.OpenCQ(CQAttr{Size: 64})
					if err != nil {
						t.Fatal(err)
					}
					if err := ep.BindCQ(cq, BindTransmit|BindRecv); err != nil {
						t.Fatal(err)
					}
				}
				if err := ep.Close(); err != nil {
					t.Fatal(err)
				}
				if err := s.dom.Close(); err != nil { // nothing left open under it
					t.Fatal(err)
				}
			})
		}
	}
}
