package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

func init() { registerDemo("fabric", 10, demoFabric) }

// demoFabric: listen, dial, exchange a memory descriptor, RDMA write and read it, and run
// atomics from several goroutines, checking every result.
func demoFabric(ctx context.Context, w io.Writer, addr string) error {
	a, err := fabric.ParseAddr(addr)
	if err != nil {
		return err
	}
	if a.Provider != "shm" {
		a.Port = "0"
	}
	srv, l, err := fabric.Listen(ctx, a.String())
	if err != nil {
		return err
	}
	defer srv.Close()
	fmt.Fprintf(w, "listening on %s (%s, %s endpoints)\n", l.Addr(), srv.Caps().Provider, srv.Caps().Endpoint)
	accepted := make(chan *fabric.Conn, 1)
	go func() {
		c, err := l.Accept(ctx)
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	cli, err := fabric.Dial(ctx, l.Addr())
	if err != nil {
		return err
	}
	defer cli.Close()
	sc, ok := <-accepted
	if !ok {
		return fmt.Errorf("accept failed")
	}
	fmt.Fprintf(w, "connected: client -> %s\n", cli.RemoteAddr())

	// the server registers 1 MiB and sends its descriptor
	mem, err := srv.Alloc(1<<20, fabric.RemoteAll)
	if err != nil {
		return err
	}
	desc, _ := mem.Remote().MarshalBinary()
	if err := sc.Send(ctx, desc); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := cli.Recv(ctx, buf)
	if err != nil {
		return err
	}
	var r fabric.Remote
	if err := r.UnmarshalBinary(buf[:n]); err != nil {
		return err
	}
	fmt.Fprintf(w, "registered 1 MiB on the server, descriptor %s (%d bytes on the wire)\n", r, n)

	// RDMA write 1 MiB, then read it back into another buffer
	local, err := cli.Fabric().Alloc(2<<20, 0)
	if err != nil {
		return err
	}
	for i := range 1 << 20 {
		local.Bytes()[i] = byte(i*31 + i>>8)
	}
	start := time.Now()
	if err := cli.Write(ctx, local, 0, r, 0, 1<<20); err != nil {
		return err
	}
	wt := time.Since(start)
	if !bytes.Equal(mem.Bytes(), local.Bytes()[:1<<20]) {
		return fmt.Errorf("RDMA write: server memory differs")
	}
	start = time.Now()
	if err := cli.Read(ctx, local, 1<<20, r, 0, 1<<20); err != nil {
		return err
	}
	rt := time.Since(start)
	if !bytes.Equal(local.Bytes()[1<<20:], mem.Bytes()) {
		return fmt.Errorf("RDMA read: data differs")
	}
	fmt.Fprintf(w, "RDMA write 1 MiB in %v, read back in %v: data verified\n", wt.Round(time.Microsecond), rt.Round(time.Microsecond))

	caps := cli.Caps()
	fmt.Fprintf(w, "native atomics: %v\n", caps.Atomics)
	if !caps.Atomics.Has(fabric.FetchAdd) || !caps.Atomics.Has(fabric.CompareSwap) {
		fmt.Fprintln(w, "this transport has no fetch-add/compare-swap: atomics part skipped")
		return nil
	}
	// the server clears two words it owns; the client then updates them remotely
	clear(mem.Bytes()[:16])
	// 4 goroutines x 250 fetch-adds, batched 25 at a time, on one word
	const workers, each, batch = 4, 250, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	start = time.Now()
	for range workers {
		wg.Go(func() {
			ops := make([]fabric.Op, batch)
			for done := 0; done < each; done += batch {
				for i := range ops {
					ops[i] = fabric.Op{Kind: fabric.OpAtomic, Atomic: fabric.FetchAdd, Remote: r, RemoteOff: 0, Operand: 1}
				}
				if err := cli.Do(ctx, ops); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	el := time.Since(start)
	if got := binary.LittleEndian.Uint64(mem.Bytes()); got != workers*each {
		return fmt.Errorf("fetch-add total %d, want %d", got, workers*each)
	}
	fmt.Fprintf(w, "%d concurrent fetch-adds summed exactly (%.0f ops/s)\n", workers*each, float64(workers*each)/el.Seconds())
	// a compare-and-swap chain: each step expects the previous step's value
	cur := uint64(0)
	for i := uint64(1); i <= 10; i++ {
		old, err := cli.CompareSwap(ctx, r, 8, cur, cur+i)
		if err != nil {
			return err
		}
		if old != cur {
			return fmt.Errorf("CAS step %d: found %d, expected %d", i, old, cur)
		}
		cur += i
	}
	if got := binary.LittleEndian.Uint64(mem.Bytes()[8:]); got != 55 {
		return fmt.Errorf("CAS chain ended at %d, want 55", got)
	}
	fmt.Fprintln(w, "compare-and-swap chain of 10 steps held: word = 55")
	return nil
}
