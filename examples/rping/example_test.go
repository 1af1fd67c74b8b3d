package rping_test

import (
	"fmt"

	"github.com/rdmakit/rdmakit/examples/rping"
)

// The buffer advertisement as rping.c sends it: network byte order.
func ExampleAdv_MarshalBinary() {
	b, _ := rping.Adv{Addr: 0x7f0012345000, RKey: 0x1234, Size: 64}.MarshalBinary()
	fmt.Printf("% x\n", b)
	// Output: 00 00 7f 00 12 34 50 00 00 00 12 34 00 00 00 40
}

// The ping data of the first two pings, as the C client fills its buffer.
func ExampleFill() {
	buf := make([]byte, rping.MinSize)
	start := 65
	for ping := range 2 {
		start = rping.Fill(buf, ping, start)
		fmt.Printf("%q\n", buf)
	}
	// Output:
	// "rdma-ping-0: ABCDEFGHIJKL\x00"
	// "rdma-ping-1: BCDEFGHIJKLM\x00"
}
