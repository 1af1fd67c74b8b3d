package ofi_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rdmakit/rdmakit/ofi"
)

// node is one process's libfabric objects.
type node struct {
	fab *ofi.Fabric
	dom *ofi.Domain
	ep  *ofi.Endpoint
	av  *ofi.AV
}

func openNode(hints *ofi.Hints) (*node, error) {
	infos, err := ofi.GetInfo("127.0.0.1", "", true, hints)
	if err != nil {
		return nil, err
	}
	n := &node{}
	if n.fab, err = ofi.OpenFabric(infos[0]); err != nil {
		return nil, err
	}
	n.dom, _ = n.fab.OpenDomain(infos[0])
	n.ep, _ = n.dom.NewEndpoint(infos[0])
	cq, _ := n.dom.OpenCQ(ofi.CQAttr{})
	n.av, _ = n.dom.OpenAV(ofi.AVTable, 4)
	n.ep.BindCQ(cq, ofi.BindTransmit|ofi.BindRecv)
	n.ep.BindAV(n.av)
	return n, n.ep.Enable()
}

// Two reliable-datagram endpoints on tcp;ofi_rxm: address exchange through the address
// vector, a message, and an RDMA write, one libfabric object at a time.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	hints := &ofi.Hints{Provider: "tcp;ofi_rxm", EPType: ofi.EPRDM, Caps: ofi.CapMsg | ofi.CapRMA}
	a, err := openNode(hints)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer a.fab.Close()
	b, err := openNode(hints)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.fab.Close()

	name, _ := b.ep.Name()
	peer, _ := a.av.Insert(name) // a can now address b

	buf, _ := ofi.Alloc(4096) // off-heap memory, registered on b for remote writes
	defer buf.Free()
	mr, _ := b.dom.RegMR(buf.Bytes(), ofi.AccessLocal|ofi.AccessRemote)
	region := mr.Region() // what b would send to a over the wire

	recvd := make(chan int)
	go func() {
		n, _ := b.ep.Recv(ctx, buf.Bytes()[:64], mr, ofi.AddrUnspec)
		recvd <- n
	}()
	a.ep.Send(ctx, []byte("hello"), nil, peer)
	n := <-recvd
	fmt.Printf("b received %q\n", buf.Bytes()[:n])

	src, _ := ofi.Alloc(64)
	defer src.Free()
	copy(src.Bytes(), "written by RDMA")
	a.ep.Do(ctx, []ofi.Op{{Kind: ofi.OpWrite, Buf: src.Bytes()[:15], Peer: peer,
		RemoteAddr: region.Addr + 100, Key: region.Key, Flags: ofi.DeliveryComplete}})
	fmt.Printf("b's memory at 100: %q\n", buf.Bytes()[100:115])
	// Output:
	// b received "hello"
	// b's memory at 100: "written by RDMA"
}
