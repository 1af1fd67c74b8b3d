package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// demoPart is one section of `rdmakit demo`. run prints a readable summary to w and returns
// an error if anything it checked did not hold.
type demoPart struct {
	name  string
	order int
	run   func(ctx context.Context, w io.Writer, addr string) error
}

var demoParts []demoPart

// registerDemo adds a section to the demo; sections run by ascending order.
func registerDemo(name string, order int, run func(ctx context.Context, w io.Writer, addr string) error) {
	demoParts = append(demoParts, demoPart{name, order, run})
}

func init() {
	register("demo", "a short end-to-end tour: connect, register, RMA, atomics and each capability", runDemo)
}

func runDemo(args []string) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	addr := fs.String("addr", fabric.DefaultAddr, "fabric address to run the tour on")
	only := fs.String("only", "", "run just this section")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up after this long")
	if fs.Parse(args) != nil {
		return 2
	}
	sort.SliceStable(demoParts, func(i, j int) bool { return demoParts[i].order < demoParts[j].order })
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	failed := 0
	for _, p := range demoParts {
		if *only != "" && p.name != *only {
			continue
		}
		fmt.Printf("\n== %s (%s)\n", p.name, *addr)
		start := time.Now()
		if err := p.run(ctx, os.Stdout, *addr); err != nil {
			fmt.Printf("FAILED: %s: %v\n", p.name, err)
			failed++
			continue
		}
		fmt.Printf("ok: %s in %v\n", p.name, time.Since(start).Round(time.Millisecond))
	}
	if failed > 0 {
		fmt.Printf("\n%d demo section(s) failed\n", failed)
		return 1
	}
	fmt.Println("\ndemo complete")
	return 0
}
