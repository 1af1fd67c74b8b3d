package fabric_test

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"testing"

	"github.com/rdmakit/rdmakit/fabric"
)

// BenchmarkDial opens connections over tcp;ofi_rxm, both ends in this process, and keeps them
// open: ns/op is a dial (with its accept), rss-MB/conn the resident memory a connection holds
// on its two ends. Both are mostly the provider's endpoint buffers (ofi sets
// FI_OFI_RXM_BUFFER_SIZE and FI_OFI_RXM_MSG_RX_SIZE; run with them set to 16384 and 4096,
// libfabric's defaults, to compare).
func BenchmarkDial(b *testing.B) {
	ctx := context.Background()
	f, l, err := fabric.Listen(ctx, "ofi+tcp://127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	go func() {
		for {
			if _, err := l.Accept(ctx); err != nil {
				return // closed with f, with the connections
			}
		}
	}()
	d, err := fabric.Open("ofi+tcp://127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Dial(ctx, l.Addr()); err != nil { // libfabric's first use is not measured
		b.Fatal(err)
	}
	before := rssKB(b)
	b.ResetTimer()
	for range b.N {
		if _, err := d.Dial(ctx, l.Addr()); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(rssKB(b)-before)/1024/float64(b.N), "rss-MB/conn")
}

// rssKB is this process's resident set (VmRSS) in KiB.
func rssKB(b *testing.B) int {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range bytes.Lines(st) {
		if v, ok := bytes.CutPrefix(line, []byte("VmRSS:")); ok {
			n, err := strconv.Atoi(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))))
			if err != nil {
				b.Fatal(err)
			}
			return n
		}
	}
	b.Fatal("no VmRSS in /proc/self/status")
	return 0
}
