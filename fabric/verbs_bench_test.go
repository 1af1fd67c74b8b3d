package fabric_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/fabric/fabrictest"
	"github.com/rdmakit/rdmakit/internal/labtest"
)

// The verbs backend against perftest, in the same run on the same device. Each benchmark
// reports its own figure and the ratio to perftest's: x-perftest-bw (Go bandwidth / perftest
// bandwidth; the target is >= 0.90) or x-perftest-lat (Go latency / perftest latency; the
// target is <= 1.15). Emulated links (rxe under qemu) slow both alike: only ratios count.

var perftestCache sync.Map // command line -> float64 result

// perftest runs a perftest server and client over the rdma_cm on the lab device once per
// process and returns the column of the client's result line: "BW average[MB/sec]" for
// bandwidth tests, "t_avg[usec]" for latency tests.
func perftest(b *testing.B, tool string, size, iters int) float64 {
	b.Helper()
	dev, ip := labtest.Device(b)
	bin, err := exec.LookPath(tool)
	if err != nil {
		if labtest.Required() {
			b.Fatalf("perftest's %s is not installed: %v", tool, err)
		}
		b.Skipf("perftest's %s is not installed", tool)
	}
	args := []string{"-d", dev, "-R", "-F", "-s", strconv.Itoa(size), "-n", strconv.Itoa(iters),
		"-p", unusedCMPort(b, ip)}
	key := tool + " " + strings.Join(args, " ")
	key = key[:strings.LastIndex(key, "-p")]
	if v, ok := perftestCache.Load(key); ok {
		return v.(float64)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	srv := exec.CommandContext(ctx, bin, args...)
	var sout bytes.Buffer
	srv.Stdout, srv.Stderr = &sout, &sout
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer srv.Process.Kill()
	port := args[len(args)-1]
	for {
		out, _ := exec.CommandContext(ctx, "rdma", "res", "show", "cm_id").Output()
		if bytes.Contains(out, []byte("LISTEN")) && bytes.Contains(out, []byte(":"+port+" ")) {
			break
		}
		if ctx.Err() != nil {
			b.Fatalf("%s server never listened:\n%s", tool, sout.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, err := exec.CommandContext(ctx, bin, append(args, ip)...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s client: %v\n%s", tool, err, out)
	}
	srv.Wait()
	v, err := perftestResult(string(out), size)
	if err != nil {
		b.Fatalf("%s: %v\n%s", tool, err, out)
	}
	perftestCache.Store(key, v)
	return v
}

// perftestResult reads the average of a perftest result table: bandwidth tests print
// "#bytes #iterations BW peak[MB/sec] BW average[MB/sec] ...", latency tests
// "#bytes #iterations t_min[usec] t_max[usec] t_typical[usec] t_avg[usec] ...".
func perftestResult(out string, size int) (float64, error) {
	col := -1
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if f[0] == "#bytes" {
			col = 3 // BW average
			for i, h := range f {
				if h == "t_avg[usec]" {
					col = i
				}
			}
			continue
		}
		if col >= 0 && f[0] == strconv.Itoa(size) && len(f) > col {
			return strconv.ParseFloat(f[col], 64)
		}
	}
	return 0, fmt.Errorf("no result line for %d bytes", size)
}

func benchPair(b *testing.B, opts ...fabric.Option) *fabrictest.Pair {
	_, ip := labtest.Device(b)
	return fabrictest.Connect(b, "verbs://"+net.JoinHostPort(ip, "0"), opts...)
}

// benchBW moves b.N transfers of size bytes with depth in flight, the way ib_write_bw and
// ib_read_bw do (one buffer on each side, perftest's default depth of 128).
func benchBW(b *testing.B, kind fabric.OpKind, tool string, size, iters int) {
	ref := perftest(b, tool, size, iters)
	p := benchPair(b)
	acc := fabric.RemoteWrite
	if kind == fabric.OpRead {
		acc = fabric.RemoteRead
	}
	srv, err := p.Server.Alloc(size, acc)
	if err != nil {
		b.Fatal(err)
	}
	cli, err := p.Client.Alloc(size, 0)
	if err != nil {
		b.Fatal(err)
	}
	const workers, batch = 4, 32
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var next sync.Mutex
	left := b.N
	take := func() int {
		next.Lock()
		defer next.Unlock()
		n := min(left, batch)
		left -= n
		return n
	}
	b.SetBytes(int64(size))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			ops := make([]fabric.Op, batch)
			for n := take(); n > 0; n = take() {
				for i := range ops[:n] {
					ops[i] = fabric.Op{Kind: kind, Mem: cli, Len: size, Remote: srv.Remote()}
				}
				if err := p.ClientConn.Do(ctx, ops[:n]); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	el := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	mbs := float64(b.N) * float64(size) / el.Seconds() / 1e6
	b.ReportMetric(mbs, "MB/s")
	b.ReportMetric(ref, "perftest-MB/s")
	b.ReportMetric(mbs/ref, "x-perftest-bw")
}

func BenchmarkVerbsWriteBW(b *testing.B) {
	b.Run("64KiB", func(b *testing.B) { benchBW(b, fabric.OpWrite, "ib_write_bw", 64<<10, 1000) })
	b.Run("1MiB", func(b *testing.B) { benchBW(b, fabric.OpWrite, "ib_write_bw", 1<<20, 100) })
}

func BenchmarkVerbsReadBW(b *testing.B) {
	b.Run("64KiB", func(b *testing.B) { benchBW(b, fabric.OpRead, "ib_read_bw", 64<<10, 1000) })
	b.Run("1MiB", func(b *testing.B) { benchBW(b, fabric.OpRead, "ib_read_bw", 1<<20, 100) })
}

// BenchmarkVerbsReadLat is ib_read_lat: one 8-byte RDMA read at a time.
func BenchmarkVerbsReadLat(b *testing.B) {
	for _, spin := range []time.Duration{0, 20 * time.Microsecond, time.Millisecond} {
		b.Run(spin.String(), func(b *testing.B) { benchReadLat(b, spin) })
	}
}

func benchReadLat(b *testing.B, spin time.Duration) {
	ref := perftest(b, "ib_read_lat", 8, 2000)
	p := benchPair(b, fabric.WithSpin(spin))
	srv, err := p.Server.Alloc(4096, fabric.RemoteRead)
	if err != nil {
		b.Fatal(err)
	}
	cli, err := p.Client.Alloc(4096, 0)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	r := srv.Remote()
	b.ResetTimer()
	for range b.N {
		if err := p.ClientConn.Read(ctx, cli, 0, r, 0, 8); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	us := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / 1e3
	b.ReportMetric(ref, "perftest-us")
	b.ReportMetric(us/ref, "x-perftest-lat")
}

// BenchmarkVerbsSendLat is ib_send_lat over RC: an 8-byte ping-pong; like perftest, the
// latency reported is half the round trip.
func BenchmarkVerbsSendLat(b *testing.B) {
	ref := perftest(b, "ib_send_lat", 8, 2000)
	p := benchPair(b, fabric.WithSpin(time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	echo := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		for {
			n, err := p.ServerConn.Recv(ctx, buf)
			if err == nil {
				err = p.ServerConn.Send(ctx, buf[:n])
			}
			if err != nil {
				echo <- err
				return
			}
		}
	}()
	msg, buf := make([]byte, 8), make([]byte, 64)
	b.ResetTimer()
	for range b.N {
		if err := p.ClientConn.Send(ctx, msg); err != nil {
			b.Fatal(err)
		}
		if _, err := p.ClientConn.Recv(ctx, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	us := float64(b.Elapsed().Nanoseconds()) / float64(b.N) / 2 / 1e3
	b.ReportMetric(us, "us/half-rtt")
	b.ReportMetric(ref, "perftest-us")
	b.ReportMetric(us/ref, "x-perftest-lat")
	cancel()
	<-echo
}
