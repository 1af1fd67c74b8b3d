package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/shmem"
	"github.com/rdmakit/rdmakit/shmem/shmembench"
)

func init() {
	registerDemo("shmem", 30, demoShmem)
}

// demoShmem: this process is member 0 of a segment; three more processes (`rdmakit shmem
// serve`) join it and hammer a counter and a bitmap allocator in member 0's portion with fabric
// atomics. The counter must end exact and no ID may be handed out twice.
func demoShmem(ctx context.Context, w io.Writer, addr string) error {
	const n, adds, claims = 4, 250, 12
	a, err := fabric.ParseAddr(addr)
	if err != nil {
		return err
	}
	transport := a.Backend + "+" + a.Provider
	members := make([]string, n)
	for i := range members {
		if members[i], err = shmembench.MemberAddr(transport); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	name := fmt.Sprintf("demo-%d", os.Getpid())
	type child struct {
		cmd *exec.Cmd
		out *bufio.Scanner
	}
	var kids []child
	defer func() {
		for _, k := range kids {
			k.cmd.Process.Kill()
			k.cmd.Wait()
		}
	}()
	for i := 1; i < n; i++ {
		cmd := exec.CommandContext(ctx, os.Args[0], "shmem", "serve", "-name", name, "-members",
			strings.Join(members, ","), "-self", fmt.Sprint(i), "-adds", fmt.Sprint(adds), "-claims", fmt.Sprint(claims))
		cmd.Stderr = os.Stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return err
		}
		kids = append(kids, child{cmd, bufio.NewScanner(out)})
	}
	s, err := shmem.Join(ctx, shmem.Config{Name: name, Members: members, Self: 0, PortionSize: 4096})
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(w, "%d processes joined a segment on %s (native atomics: %v)\n", n, transport, s.Caps().Atomics)
	start := time.Now()
	for {
		v, err := s.Load(ctx, 0, shmemDoneOff)
		if err != nil {
			return err
		}
		if v == n-1 {
			break
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-ctx.Done():
			return fmt.Errorf("workers did not finish: %w", ctx.Err())
		}
	}
	el := time.Since(start)
	ctr, _ := s.Counter(0, shmemCounterOff)
	total, err := ctr.Load(ctx)
	if err != nil {
		return err
	}
	bm, _ := s.Bitmap(0, shmemBitmapOff, shmemBitmapIDs)
	claimed, err := bm.Count(ctx)
	if err != nil {
		return err
	}
	if _, err := s.Store(ctx, 0, shmemFinishOff, 1); err != nil {
		return err
	}
	owner := map[uint64]int{}
	for i, k := range kids {
		if !k.out.Scan() {
			return fmt.Errorf("member %d said nothing", i+1)
		}
		var rep shmemReport
		if err := json.Unmarshal(k.out.Bytes(), &rep); err != nil {
			return fmt.Errorf("member %d: %w", i+1, err)
		}
		if rep.Error != "" {
			return fmt.Errorf("member %d: %s", i+1, rep.Error)
		}
		for _, id := range rep.IDs {
			if o, dup := owner[id]; dup {
				return fmt.Errorf("ID %d handed to members %d and %d", id, o, rep.Self)
			}
			owner[id] = rep.Self
		}
	}
	wantAdds := int64((n - 1) * shmemWorkers * adds)
	wantIDs := (n - 1) * shmemWorkers * claims
	fmt.Fprintf(w, "%d workers: counter %d (want %d), %d IDs claimed, %d distinct (want %d), in %v\n",
		(n-1)*shmemWorkers, total, wantAdds, claimed, len(owner), wantIDs, el.Round(time.Millisecond))
	if total != wantAdds || claimed != uint64(wantIDs) || len(owner) != wantIDs {
		return fmt.Errorf("totals do not check out")
	}
	for _, k := range kids {
		if err := k.cmd.Wait(); err != nil {
			return fmt.Errorf("member exited: %w", err)
		}
	}
	kids = nil
	return nil
}
