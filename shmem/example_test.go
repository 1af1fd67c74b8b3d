package shmem_test

import (
	"context"
	"fmt"
	"time"

	"github.com/rdmakit/rdmakit/shmem"
)

// A one-member segment on loopback tcp; a real cluster lists every member's address, the same
// list on each, and each member joins with its own index.
func ExampleJoin() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := shmem.Join(ctx, shmem.Config{
		Name:        "example",
		Members:     []string{"ofi+tcp://127.0.0.1:0"},
		Self:        0,
		PortionSize: 4096,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	old, _ := s.FetchAdd(ctx, 0, 8, 5) // node 0, offset 8
	prev, _ := s.MaskedSwap(ctx, 0, 8, 0xf0, 0xf0)
	_, ok, _ := s.CSwap(ctx, 0, 8, 1) // compare against the local copy (0xf5)
	now, _ := s.Load(ctx, 0, 8)
	fmt.Println(old, prev, ok, now)
	// Output: 0 5 true 1
}

func ExampleCounter() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := shmem.Join(ctx, shmem.Config{Members: []string{"ofi+tcp://127.0.0.1:0"}, PortionSize: 64})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	c, _ := s.Counter(0, 0)
	for range 3 {
		c.Add(ctx, 2)
	}
	v, _ := c.Load(ctx)
	fmt.Println(v)
	// Output: 6
}

func ExampleBitmap() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := shmem.Join(ctx, shmem.Config{Members: []string{"ofi+tcp://127.0.0.1:0"}, PortionSize: 64})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	ids, _ := s.Bitmap(0, 0, 100)
	a, _ := ids.Claim(ctx)
	b, _ := ids.Claim(ctx)
	ids.Release(ctx, a)
	c, _ := ids.Claim(ctx)
	fmt.Println(a, b, c)
	// Output: 0 1 0
}

func ExampleLock() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := shmem.Join(ctx, shmem.Config{Members: []string{"ofi+tcp://127.0.0.1:0"}, PortionSize: 64})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()
	lk, _ := s.Lock(0, 0, 5*time.Second)
	lease, err := lk.Acquire(ctx)
	if err != nil {
		fmt.Println(err)
		return
	}
	// ... act on the protected state until lease.Deadline(), calling lease.Renew to go on ...
	fmt.Println(time.Until(lease.Deadline()) > 0, lease.Release(ctx))
	// Output: true <nil>
}
