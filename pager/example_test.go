package pager_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/rdmakit/rdmakit/pager"
)

// A memory server and a pager on loopback tcp: a region four times the local budget, written
// and read back through page faults.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))

	srv, err := pager.NewServer(ctx, "ofi+tcp://127.0.0.1:0", 8<<20, pager.ServerOptions{Logger: quiet})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()
	go srv.Serve(ctx)

	p, err := pager.New(ctx, srv.Addr(), pager.Options{Budget: 1 << 20, Logger: quiet})
	if err != nil {
		fmt.Println(err) // e.g. pager.ErrPrivilege without root or CAP_SYS_PTRACE
		return
	}
	defer p.Close()
	r, err := p.Map(4 << 20)
	if err != nil {
		fmt.Println(err)
		return
	}
	b := r.Bytes()
	for i := 0; i < len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], uint64(i))
	}
	var sum uint64
	for i := 0; i < len(b); i += 8 {
		sum += binary.LittleEndian.Uint64(b[i:])
	}
	st := p.Stats()
	fmt.Println("sum:", sum)
	fmt.Println("evicted pages:", st.Evictions > 0, "resident within budget:", st.Resident <= st.Budget)
	// Output:
	// sum: 1099509530624
	// evicted pages: true resident within budget: true
}
