package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/raid"
)

func init() {
	registerDemo("raid", 20, demoRaid)
}

// demoProc is a raid role running as a process of its own.
type demoProc struct {
	cmd  *exec.Cmd
	addr string
	done chan struct{}
}

// startRaidProc runs `rdmakit raid ARGS...` and waits for the "listening on ADDR" line.
func startRaidProc(ctx context.Context, w io.Writer, args ...string) (*demoProc, error) {
	cmd := exec.Command(os.Args[0], append([]string{"raid"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &demoProc{cmd: cmd, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	go func() { cmd.Wait(); close(p.done) }()
	select {
	case l := <-lines:
		_, rest, ok := strings.Cut(l, " listening on ")
		if !ok {
			p.kill()
			return nil, fmt.Errorf("raid %s: unexpected output %q", args[0], l)
		}
		p.addr, _, _ = strings.Cut(rest, ": ")
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("raid %s exited: %s", args[0], strings.TrimSpace(stderr.String()))
	case <-ctx.Done():
		p.kill()
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		p.kill()
		return nil, fmt.Errorf("raid %s did not start", args[0])
	}
}

// kill is kill -9.
func (p *demoProc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// demoListenAddr is a fresh listen address on the demo's transport (loopback, port 0).
func demoListenAddr(addr string, n int) (string, error) {
	a, err := fabric.ParseAddr(addr)
	if err != nil {
		return "", err
	}
	if a.Provider == "shm" {
		a.Host = fmt.Sprintf("rk-demo-raid-%d-%d", os.Getpid(), n)
	} else {
		a.Port = "0"
	}
	return a.String(), nil
}

func demoRaid(ctx context.Context, w io.Writer, addr string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "rdmakit-demo-raid-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	var procs []*demoProc
	defer func() {
		for _, p := range procs {
			p.kill()
		}
	}()
	seq := 0
	target := func() (*demoProc, error) {
		seq++
		la, err := demoListenAddr(addr, seq)
		if err != nil {
			return nil, err
		}
		p, err := startRaidProc(ctx, w, "target", "--listen", la, "--store",
			filepath.Join(dir, fmt.Sprintf("store%d", seq)), "--size", "8M")
		if err == nil {
			procs = append(procs, p)
		}
		return p, err
	}
	const k, m = 4, 2
	var members []string
	var targets []*demoProc
	for range k + m {
		p, err := target()
		if err != nil {
			return err
		}
		targets = append(targets, p)
		members = append(members, p.addr)
	}
	fmt.Fprintf(w, "started %d target processes\n", len(targets))
	seq++
	la, err := demoListenAddr(addr, seq)
	if err != nil {
		return err
	}
	ctrl, err := startRaidProc(ctx, w, "controller", "--listen", la, "--level", "6", "--chunk", "64K",
		"--members", strings.Join(members, ","), "--state", filepath.Join(dir, "state"), "--timeout", "2s")
	if err != nil {
		return err
	}
	procs = append(procs, ctrl)
	cli, err := raid.Dial(ctx, ctrl.addr)
	if err != nil {
		return err
	}
	defer cli.Close()
	fmt.Fprintf(w, "controller %s: RAID-6 %d+%d, 64 KiB chunks, %d bytes\n", ctrl.addr, k, m, cli.Size())

	file := make([]byte, 5<<20+12345) // not a whole number of stripes: the tail is a partial stripe
	rand.Read(file)
	sum := sha256.Sum256(file)
	if err := cli.WriteAt(ctx, file, 0); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	fmt.Fprintf(w, "wrote %d bytes, sha256 %x\n", len(file), sum[:8])

	victims := []int{1, 4}
	for _, v := range victims {
		targets[v].kill()
	}
	fmt.Fprintf(w, "kill -9 targets %d and %d\n", victims[0], victims[1])
	verify := func(what string) error {
		got := make([]byte, len(file))
		start := time.Now()
		if err := cli.ReadAt(ctx, got, 0); err != nil {
			return fmt.Errorf("%s read: %w", what, err)
		}
		if s := sha256.Sum256(got); s != sum {
			return fmt.Errorf("%s read: sha256 %x, want %x", what, s[:8], sum[:8])
		}
		fmt.Fprintf(w, "%s read: sha256 matches (%v)\n", what, time.Since(start).Round(time.Millisecond))
		return nil
	}
	if err := verify("degraded"); err != nil {
		return err
	}
	for _, v := range victims {
		p, err := target()
		if err != nil {
			return err
		}
		if err := replaceWithProgress(ctx, cli, v, p.addr, w); err != nil {
			return fmt.Errorf("replace member %d: %w", v, err)
		}
	}
	if err := verify("rebuilt"); err != nil {
		return err
	}
	st, err := cli.Status(ctx)
	if err != nil {
		return err
	}
	printStatus(w, st)
	if st.Counters.DataToTargets != 0 {
		return fmt.Errorf("the controller sent %d data bytes to targets", st.Counters.DataToTargets)
	}
	var pulled uint64
	for _, ms := range st.Members {
		if ms.State != "ok" {
			return fmt.Errorf("member %d is %s", ms.Index, ms.State)
		}
	}
	for _, ms := range st.Members {
		if ms.Counters != nil {
			pulled += ms.Counters.PulledFromHost
		}
	}
	fmt.Fprintf(w, "data path: live targets pulled %d bytes straight from host memory; controller data egress %d\n",
		pulled, st.Counters.DataToTargets)
	return nil
}
