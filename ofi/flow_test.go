package ofi

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFlowTake checks the limit's arithmetic: anything goes alone, more only within the limit.
func TestFlowTake(t *testing.T) {
	f := &flow{limit: 100}
	if !f.take(500) {
		t.Fatal("an op over the limit must go when nothing is in flight")
	}
	if f.take(1) {
		t.Fatal("took 1 beside 500 under a limit of 100")
	}
	f.give(500)
	if !f.take(60) || !f.take(40) || f.take(1) {
		t.Fatalf("60+40 must fit a limit of 100 and 1 more must not (used %d)", f.used.Load())
	}
	f.give(60)
	f.give(40)
	if f.used.Load() != 0 {
		t.Fatalf("used %d after giving everything back", f.used.Load())
	}
	if newFlow("tcp;ofi_rxm") != nil || newFlow("sockets") == nil {
		t.Fatal("only sockets endpoints are limited")
	}
}

// TestSocketsBatches runs batches of 512 writes and reads of 4 KiB over fresh sockets
// connections (RDM and MSG), the load that hung the provider about once in 70 batches when
// all of it was posted at once (see socketsInFlight), and checks that an endpoint never has
// more than the limit in flight.
func TestSocketsBatches(t *testing.T) {
	const rounds = 12
	for _, ep := range []EPType{EPRDM, EPMsg} {
		if _, err := GetInfo("", "", false, hintsFor("sockets", ep, CapMsg|CapRMA)); err != nil {
			t.Fatalf("sockets %v: %v", ep, err)
		}
		for r := range rounds {
			t.Run(fmt.Sprintf("%v/%d", ep, r), func(t *testing.T) { socketsBatch(t, ep, r) })
		}
	}
}

// socketsBatch is one round of TestSocketsBatches: a fresh pair of endpoints of type ep.
func socketsBatch(t *testing.T, ep EPType, r int) {
	const n, chunk = 512, 4096
	var a, b *side
	if ep == EPRDM {
		a, b = rdmPair(t, "sockets", CapMsg|CapRMA)
	} else {
		a, b = msgPair(t, "sockets", CapMsg|CapRMA)
	}
	loc := a.reg(t, n*chunk, AccessLocal)
	rem := b.reg(t, n*chunk, AccessLocal|AccessRemote)
	reg := rem.Region()
	for i := range loc.Bytes() {
		loc.Bytes()[i] = byte(i*7 + r)
	}
	var most atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	defer func() {
		close(stop)
		wg.Wait()
	}()
	go func() { // samples what the endpoint has in flight
		defer wg.Done()
		for {
			if u := a.ep.flow.used.Load(); u > most.Load() {
				most.Store(u)
			}
			select {
			case <-stop:
				return
			default:
				time.Sleep(20 * time.Microsecond)
			}
		}
	}()
	ops := make([]Op, n)
	for _, kind := range []OpKind{OpWrite, OpRead} {
		for i := range ops {
			ops[i] = Op{Kind: kind, Buf: loc.Bytes()[i*chunk : (i+1)*chunk], MR: loc, Peer: a.peer,
				RemoteAddr: reg.Addr + uint64((n-1-i)*chunk), Key: reg.Key}
		}
		if kind == OpRead {
			clear(loc.Bytes())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err := a.ep.Do(ctx, ops)
		cancel()
		if err != nil {
			t.Fatalf("%v round %d: %v batch: %v", ep, r, kind, err)
		}
	}
	for i := range n {
		if !bytes.Equal(loc.Bytes()[i*chunk:(i+1)*chunk], rem.Bytes()[(n-1-i)*chunk:(n-i)*chunk]) {
			t.Fatalf("%v round %d: chunk %d read back differs", ep, r, i)
		}
	}
	if m := most.Load(); m > socketsInFlight {
		t.Fatalf("%v: %d bytes in flight, over the limit of %d", ep, m, socketsInFlight)
	}
	if u := a.ep.flow.used.Load(); u != 0 {
		t.Fatalf("%v: %d bytes still counted in flight after the batches", ep, u)
	}
}
