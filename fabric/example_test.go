package fabric_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// A server registers memory and sends its descriptor; the client writes into it by RDMA and
// counts with a remote atomic.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	srv, l, err := fabric.Listen(ctx, "ofi+tcp://127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	mem, _ := srv.Alloc(4096, fabric.RemoteAll)
	go func() {
		c, err := l.Accept(ctx)
		if err != nil {
			return
		}
		desc, _ := mem.Remote().MarshalBinary()
		c.Send(ctx, desc)
	}()

	c, err := fabric.Dial(ctx, l.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	buf := make([]byte, 64)
	n, _ := c.Recv(ctx, buf)
	var r fabric.Remote
	r.UnmarshalBinary(buf[:n])

	local, _ := c.Fabric().Alloc(4096, 0)
	copy(local.Bytes()[8:], "hello, rdma")
	c.Write(ctx, local, 8, r, 8, 11)
	c.FetchAdd(ctx, r, 0, 41)
	old, _ := c.FetchAdd(ctx, r, 0, 1)
	fmt.Printf("%s, counter was %d\n", mem.Bytes()[8:19], old)
	// Output: hello, rdma, counter was 41
}
