package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rdmakit/rdmakit/bench"
)

func init() {
	register("bench", "measure RMA, pingpong and atomics beside a C reference loop (Go/C ratios)", runBench)
}

func runBench(args []string) int {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	provs := fs.String("providers", "tcp;ofi_rxm,shm", "comma-separated libfabric providers")
	target := fs.Duration("time", 250*time.Millisecond, "time per measurement")
	rounds := fs.Int("rounds", 3, "alternating Go/C rounds (the best of each is kept)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if fs.Parse(args) != nil {
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	rs, err := bench.Run(ctx, bench.Config{Providers: strings.Split(*provs, ","), Target: *target, Rounds: *rounds})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rdmakit bench:", err)
		return 1
	}
	if *asJSON {
		err = bench.WriteJSON(os.Stdout, rs)
	} else {
		err = bench.WriteTable(os.Stdout, rs)
	}
	if err != nil {
		return 1
	}
	return 0
}
