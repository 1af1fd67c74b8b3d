package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rdmakit/rdmakit/raid"
)

func init() {
	register("raid", "RAID volumes whose data moves host ↔ targets by RDMA (target, controller, put, get, status, replace)", runRaid)
}

const raidUsage = `usage:
  rdmakit raid target --listen ADDR --store PATH --size BYTES
  rdmakit raid controller --listen ADDR --level 0|1|5|6|k+m --chunk SIZE --members ADDR,... --state DIR
  rdmakit raid put --controller ADDR --offset N [FILE]            (stdin without FILE)
  rdmakit raid get --controller ADDR --offset N --length N [FILE] (stdout without FILE)
  rdmakit raid status --controller ADDR [--json]
  rdmakit raid replace --controller ADDR --member I --with ADDR

sizes take K, M, G suffixes (powers of 1024); addresses look like ofi+tcp://127.0.0.1:7101`

func runRaid(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(os.Stderr, raidUsage)
		return 2
	}
	sub := map[string]func([]string) error{"target": raidTarget, "controller": raidController, "put": raidPut,
		"get": raidGet, "status": raidStatus, "replace": raidReplace}[args[0]]
	if sub == nil {
		fmt.Fprintf(os.Stderr, "rdmakit raid: unknown subcommand %q\n%s\n", args[0], raidUsage)
		return 2
	}
	if err := sub(args[1:]); err != nil {
		if err == flag.ErrHelp {
			return 2
		}
		fmt.Fprintf(os.Stderr, "rdmakit raid %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// parseSize parses a byte count with an optional K, M, G or T suffix.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	u := strings.ToUpper(strings.TrimSuffix(strings.TrimSuffix(s, "B"), "i"))
	if n := len(u); n > 0 {
		if i := strings.IndexByte("KMGT", u[n-1]); i >= 0 {
			mult = int64(1) << (10 * (i + 1))
			u = u[:n-1]
		}
	}
	v, err := strconv.ParseInt(u, 10, 64)
	if err != nil || v < 0 || v > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return v * mult, nil
}

func sizeFlag(fs *flag.FlagSet, name, def, usage string) *string { return fs.String(name, def, usage) }

// serveUntilSignal waits for SIGINT or SIGTERM.
func serveUntilSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	<-ch
}

func raidTarget(args []string) error {
	fs := flag.NewFlagSet("raid target", flag.ContinueOnError)
	listen := fs.String("listen", "", "fabric address to listen on")
	store := fs.String("store", "", "store file or block device")
	size := sizeFlag(fs, "size", "", "store size (bytes, K/M/G suffixes)")
	verbose := fs.Bool("v", false, "log commands")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listen == "" || *store == "" || *size == "" || fs.NArg() != 0 {
		return fmt.Errorf("need --listen, --store and --size")
	}
	n, err := parseSize(*size)
	if err != nil {
		return err
	}
	cfg := raid.TargetConfig{Listen: *listen, Store: *store, Size: n}
	if *verbose {
		cfg.Logf = raid.LogTo("raid target: ")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t, err := raid.NewTarget(ctx, cfg)
	if err != nil {
		return err
	}
	defer t.Close()
	fmt.Printf("raid target listening on %s\n", t.Addr())
	serveUntilSignal()
	return nil
}

func raidController(args []string) error {
	fs := flag.NewFlagSet("raid controller", flag.ContinueOnError)
	listen := fs.String("listen", "", "fabric address to listen on")
	level := fs.String("level", "", "RAID level: 0, 1, 5, 6 or k+m (only to create a volume)")
	chunk := sizeFlag(fs, "chunk", "64K", "chunk size")
	members := fs.String("members", "", "comma-separated target addresses (only to create a volume)")
	state := fs.String("state", "", "state directory (volume description and write-intent log)")
	timeout := fs.Duration("timeout", 5*time.Second, "a member that does not answer a command in this time is failed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *listen == "" || *state == "" || fs.NArg() != 0 {
		return fmt.Errorf("need --listen and --state (and --level, --members to create a volume)")
	}
	cs, err := parseSize(*chunk)
	if err != nil {
		return err
	}
	cfg := raid.ControllerConfig{Listen: *listen, Level: *level, Chunk: int(cs), StateDir: *state,
		Timeout: *timeout, Logf: raid.LogTo("raid controller: ")}
	if *members != "" {
		cfg.Members = strings.Split(*members, ",")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := raid.NewController(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Printf("raid controller listening on %s: %s, %d bytes\n", c.Addr(), c.Layout(), c.Size())
	serveUntilSignal()
	return nil
}

func dialController(addr string) (*raid.Client, context.Context, context.CancelFunc, error) {
	if addr == "" {
		return nil, nil, nil, fmt.Errorf("need --controller")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	dctx, dcancel := context.WithTimeout(ctx, 15*time.Second)
	defer dcancel()
	c, err := raid.Dial(dctx, addr)
	if err != nil {
		cancel()
		return nil, nil, nil, err
	}
	return c, ctx, cancel, nil
}

func raidPut(args []string) error {
	fs := flag.NewFlagSet("raid put", flag.ContinueOnError)
	ctrl := fs.String("controller", "", "controller address")
	off := sizeFlag(fs, "offset", "0", "volume offset")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o, err := parseSize(*off)
	if err != nil {
		return err
	}
	var in io.Reader = os.Stdin
	if fs.NArg() > 1 {
		return fmt.Errorf("one FILE at most")
	}
	if fs.NArg() == 1 {
		f, err := os.Open(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	c, ctx, cancel, err := dialController(*ctrl)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	mem, err := c.Alloc(8 << 20)
	if err != nil {
		return err
	}
	total := int64(0)
	start := time.Now()
	for {
		n, rerr := io.ReadFull(in, mem.Bytes())
		if n > 0 {
			if err := c.Write(ctx, mem, 0, o+total, n); err != nil {
				return err
			}
			total += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	if total == 0 {
		return fmt.Errorf("nothing to write")
	}
	fmt.Fprintf(os.Stderr, "wrote %d bytes at offset %d in %v\n", total, o, time.Since(start).Round(time.Millisecond))
	return nil
}

func raidGet(args []string) error {
	fs := flag.NewFlagSet("raid get", flag.ContinueOnError)
	ctrl := fs.String("controller", "", "controller address")
	off := sizeFlag(fs, "offset", "0", "volume offset")
	length := sizeFlag(fs, "length", "", "bytes to read")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o, err := parseSize(*off)
	if err != nil {
		return err
	}
	if *length == "" {
		return fmt.Errorf("need --length")
	}
	n, err := parseSize(*length)
	if err != nil {
		return err
	}
	var out io.Writer = os.Stdout
	if fs.NArg() > 1 {
		return fmt.Errorf("one FILE at most")
	}
	if fs.NArg() == 1 {
		f, err := os.Create(fs.Arg(0))
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	c, ctx, cancel, err := dialController(*ctrl)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	mem, err := c.Alloc(8 << 20)
	if err != nil {
		return err
	}
	if n == 0 {
		return c.Read(ctx, mem, 0, o, 0) // the controller explains
	}
	for done := int64(0); done < n; {
		k := int(min(n-done, int64(mem.Len())))
		if err := c.Read(ctx, mem, 0, o+done, k); err != nil {
			return err
		}
		if _, err := out.Write(mem.Bytes()[:k]); err != nil {
			return err
		}
		done += int64(k)
	}
	return nil
}

func raidStatus(args []string) error {
	fs := flag.NewFlagSet("raid status", flag.ContinueOnError)
	ctrl := fs.String("controller", "", "controller address")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, ctx, cancel, err := dialController(*ctrl)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	st, err := c.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		b, _ := json.MarshalIndent(st, "", "  ")
		fmt.Println(string(b))
		return nil
	}
	printStatus(os.Stdout, st)
	return nil
}

// printStatus prints members, health and the data-path counters.
func printStatus(w io.Writer, st raid.Status) {
	fmt.Fprintf(w, "volume %s: %s, %d bytes, generation %d\n", st.ID, st.Layout, st.Size, st.Generation)
	for _, m := range st.Members {
		fmt.Fprintf(w, "  member %d %-10s %s", m.Index, m.State, m.Addr)
		if tc := m.Counters; tc != nil {
			fmt.Fprintf(w, "  pulled-from-host %d pushed-to-host %d from-ctrl %d to-ctrl %d syncs %d",
				tc.PulledFromHost, tc.PushedToHost, tc.PulledFromController, tc.PushedToController, tc.Syncs)
		}
		fmt.Fprintln(w)
	}
	k := st.Counters
	fmt.Fprintf(w, "  controller: writes %d (%d B) reads %d (%d B)\n", k.Writes, k.WriteBytes, k.Reads, k.ReadBytes)
	fmt.Fprintf(w, "  controller: host bytes read for parity %d, parity to targets %d, DATA TO TARGETS %d\n",
		k.HostReadForParity, k.ParityToTargets, k.DataToTargets)
	fmt.Fprintf(w, "  controller: reconstructed to host %d, chunks from targets %d, rebuilt %d\n",
		k.ReconstructedToHost, k.ChunksFromTargets, k.RebuildBytes)
	fmt.Fprintf(w, "  stripes: full %d rmw %d rcw %d degraded %d resynced %d; member failures %d\n",
		k.FullStripes, k.RMWStripes, k.RCWStripes, k.DegradedStripes, k.Resynced, k.MemberFailures)
	if r := st.Rebuild; r != nil {
		state := "done"
		if r.Running {
			state = "running"
		}
		if r.Error != "" {
			state = "failed: " + r.Error
		}
		fmt.Fprintf(w, "  rebuild of member %d: %d/%d stripes, %s\n", r.Member, r.Done, r.Total, state)
	}
}

func raidReplace(args []string) error {
	fs := flag.NewFlagSet("raid replace", flag.ContinueOnError)
	ctrl := fs.String("controller", "", "controller address")
	member := fs.Int("member", -1, "member index to replace")
	with := fs.String("with", "", "address of the replacement target")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *member < 0 || *with == "" {
		return fmt.Errorf("need --member and --with")
	}
	c, ctx, cancel, err := dialController(*ctrl)
	if err != nil {
		return err
	}
	defer cancel()
	defer c.Close()
	return replaceWithProgress(ctx, c, *member, *with, os.Stderr)
}

// replaceWithProgress starts a rebuild and draws a progress bar until it ends.
func replaceWithProgress(ctx context.Context, c *raid.Client, member int, with string, w io.Writer) error {
	if err := c.Replace(ctx, member, with); err != nil {
		return err
	}
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		r := st.Rebuild
		if r == nil || r.Member != member {
			return fmt.Errorf("no rebuild reported")
		}
		frac := 1.0
		if r.Total > 0 {
			frac = float64(r.Done) / float64(r.Total)
		}
		bar := strings.Repeat("#", int(frac*30)) + strings.Repeat(".", 30-int(frac*30))
		rate := 0.0
		if r.Seconds > 0 {
			rate = float64(r.Bytes) / r.Seconds / (1 << 20)
		}
		fmt.Fprintf(w, "\rrebuild member %d [%s] %3.0f%% %d/%d stripes %.1f MiB/s", member, bar, frac*100,
			r.Done, r.Total, rate)
		if !r.Running {
			fmt.Fprintln(w)
			if r.Error != "" {
				return fmt.Errorf("rebuild: %s", r.Error)
			}
			return nil
		}
		select {
		case <-ctx.Done():
			fmt.Fprintln(w)
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
