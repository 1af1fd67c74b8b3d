// Command rping is rdma-core's rping in Go: it pings a C `rping -s` server, or serves a C
// `rping -c` client, with the same flags and output.
//
//	rping -s [-vV] [-S size] [-C count] [-a addr] [-p port]
//	rping -c [-vV] [-S size] [-C count] -a addr [-p port]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"

	"github.com/rdmakit/rdmakit/examples/rping"
	"github.com/rdmakit/rdmakit/fabric"
)

func main() {
	server := flag.Bool("s", false, "server side")
	client := flag.Bool("c", false, "client side")
	addr := flag.String("a", "", "address (the server binds to it, the client connects to it)")
	port := flag.Int("p", 7174, "port")
	count := flag.Int("C", 0, "ping count (0: forever)")
	size := flag.Int("S", 64, "ping data size")
	verbose := flag.Bool("v", false, "display ping data to stdout")
	validate := flag.Bool("V", false, "validate ping data")
	flag.Parse()
	if *server == *client || *client && *addr == "" {
		fmt.Fprintln(os.Stderr, "usage: rping -s [-vV] [-S size] [-C count] [-a addr] [-p port]")
		fmt.Fprintln(os.Stderr, "       rping -c [-vV] [-S size] [-C count] -a addr [-p port]")
		os.Exit(2)
	}
	if *size < rping.MinSize || *size > rping.MaxSize {
		fmt.Fprintf(os.Stderr, "Invalid size %d (valid range is %d to %d)\n", *size, rping.MinSize, rping.MaxSize)
		os.Exit(2)
	}
	o := rping.Options{Count: *count, Size: *size, Validate: *validate}
	if *verbose {
		o.Verbose = os.Stdout
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	host := *addr
	if host == "" {
		host = "0.0.0.0"
	}
	url := "verbs://" + net.JoinHostPort(host, strconv.Itoa(*port))
	var err error
	if *server {
		err = serve(ctx, url, o)
	} else {
		err = ping(ctx, url, o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func ping(ctx context.Context, url string, o rping.Options) error {
	c, err := fabric.Dial(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close()
	return rping.Client(ctx, c, o)
}

func serve(ctx context.Context, url string, o rping.Options) error {
	f, l, err := fabric.Listen(ctx, url)
	if err != nil {
		return err
	}
	defer f.Close()
	c, err := l.Accept(ctx)
	if err != nil {
		return err
	}
	l.Close()
	defer c.Close()
	return rping.Serve(ctx, c, o)
}
