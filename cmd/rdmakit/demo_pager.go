package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/pager"
)

func init() {
	registerDemo("pager", 40, demoPager)
}

// demoPager starts a memory server in a child process, maps a region four times the local
// budget, fills it and sums it back, and prints what paging it took.
func demoPager(ctx context.Context, w io.Writer, addr string) error {
	const budget = 4 << 20
	const size = 4 * budget
	a, err := fabric.ParseAddr(addr)
	if err != nil {
		return err
	}
	listen := ""
	switch a.Provider {
	case "shm":
		listen, _ = loopbackListen("shm")
	default:
		a.Port = "0"
		listen = a.String()
	}
	srvAddr, stop, err := spawnServer(ctx, listen, size+budget)
	if err != nil {
		return fmt.Errorf("memory server: %w", err)
	}
	defer stop()
	fmt.Fprintf(w, "memory server at %s, pool %d MiB\n", srvAddr, (size+budget)>>20)

	p, err := pager.New(ctx, srvAddr, pager.Options{Budget: budget, Timeout: 10 * time.Second,
		Logger: slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		return err
	}
	defer p.Close()
	r, err := p.Map(size)
	if err != nil {
		return err
	}
	b := r.Bytes()
	fmt.Fprintf(w, "mapped %d MiB of paged memory over a %d MiB local budget\n", size>>20, budget>>20)

	start := time.Now()
	for i := 0; i < len(b); i += 8 { // an indexed store: faults stay preemptible Go code
		binary.LittleEndian.PutUint64(b[i:], uint64(i/8)*3+1)
	}
	fill := time.Since(start)
	st := p.Stats()
	fmt.Fprintf(w, "fill: %v, %d faults (%d zero-page), %d evictions, %d pages written back\n",
		fill.Round(time.Millisecond), st.Faults, st.ZeroFills, st.Evictions, st.RemoteWrites)

	start = time.Now()
	var sum uint64
	for i := 0; i < len(b); i += 8 {
		sum += binary.LittleEndian.Uint64(b[i:])
	}
	scan := time.Since(start)
	n := uint64(size / 8)
	want := 3*(n*(n-1)/2) + n
	after := p.Stats()
	fmt.Fprintf(w, "sum:  %v, %d faults (%d major, %d from read-ahead), %d evictions\n",
		scan.Round(time.Millisecond), after.Faults-st.Faults, after.MajorFaults-st.MajorFaults,
		after.PrefetchHits-st.PrefetchHits, after.Evictions-st.Evictions)
	fmt.Fprintf(w, "total: %d faults, %d evictions, %d remote reads, %d remote writes, hit rate %.1f%%, fault p50 %v p99 %v\n",
		after.Faults, after.Evictions, after.RemoteReads, after.RemoteWrites, 100*after.HitRate(),
		after.FaultLatency.Quantile(0.5), after.FaultLatency.Quantile(0.99))
	if err := p.Err(); err != nil {
		return err
	}
	if sum != want {
		return fmt.Errorf("sum %d, want %d", sum, want)
	}
	fmt.Fprintf(w, "sum %d matches\n", sum)
	return r.Close()
}
