package verbs_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/rdmakit/rdmakit/verbs"
)

// List the RDMA devices of the host (an empty list on a host without RDMA).
func ExampleDevices() {
	devs, err := verbs.Devices()
	if err != nil {
		log.Fatal(err)
	}
	for _, d := range devs {
		fmt.Println(d.Name, d.GUID, d.NodeType)
	}
}

// Open a device, allocate a PD and register off-heap memory for remote access.
func ExampleOpen() {
	c, err := verbs.Open("rxe0")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close() // closes everything below, newest first
	pd, err := c.AllocPD()
	if err != nil {
		log.Fatal(err)
	}
	mem, err := verbs.Alloc(1 << 20) // mmap'd, never on the Go heap
	if err != nil {
		log.Fatal(err)
	}
	defer mem.Close()
	mr, err := pd.Register(mem, verbs.AccessAll)
	if err != nil {
		log.Fatal(err) // errors.Is(err, verbs.ErrMemlock) says to raise ulimit -l
	}
	fmt.Printf("addr %#x rkey %#x\n", mr.Addr(), mr.RKey())
}

// Accept one RC connection with private data.
func ExampleListen() {
	c, err := verbs.Open("rxe0")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	pd, _ := c.AllocPD()
	ln, err := verbs.Listen("10.77.0.1:7471", 8)
	if err != nil {
		log.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := ln.Accept(ctx)
	if err != nil {
		log.Fatal(err)
	}
	conn, err := req.Accept(ctx, verbs.ConnConfig{PD: pd, PrivateData: []byte("welcome")})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	fmt.Printf("peer said %q\n", conn.PrivateData())
}

// Dial, post a batch of RDMA writes and wait for the completions with a context.
func ExampleDial() {
	c, err := verbs.Open("rxe0")
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	pd, _ := c.AllocPD()
	mem, _ := verbs.Alloc(1 << 16)
	defer mem.Close()
	mr, _ := pd.Register(mem, verbs.AccessLocalWrite)
	cq, err := c.CreateCQ(64, nil) // with a completion channel driven by Go's netpoller
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := verbs.Dial(ctx, "10.77.0.1:7471", verbs.ConnConfig{PD: pd, SendCQ: cq, PrivateData: []byte("hello")})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	var remoteAddr uint64 // learnt from the peer, e.g. in the private data
	var rkey uint32
	wrs := make([]verbs.SendWR, 4)
	for i := range wrs {
		wrs[i] = verbs.SendWR{ID: uint64(i), Opcode: verbs.OpWrite,
			RemoteAddr: remoteAddr + uint64(i)*4096, RKey: rkey}
		wrs[i].Local(mr.SGE(i*4096, 4096))
	}
	wrs[3].Flags = verbs.Signaled // one completion for the batch
	if _, err := conn.QP().PostSend(wrs); err != nil {
		log.Fatal(err)
	}
	wcs := make([]verbs.WC, 8)
	n, err := cq.Wait(ctx, wcs)
	if err != nil {
		log.Fatal(err)
	}
	for _, wc := range wcs[:n] {
		if err := wc.Err(); err != nil {
			log.Fatal(err) // e.g. errors.Is(err, verbs.ErrRemoteAccess)
		}
	}
}
