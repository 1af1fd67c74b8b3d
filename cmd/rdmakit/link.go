package main

import (
	"fmt"
	"os"

	"github.com/rdmakit/rdmakit/verbs"
)

func init() {
	register("link", "add or delete software RDMA devices (rxe, siw)", runLink)
}

const linkUsage = `usage:
  rdmakit link add NAME type rxe|siw netdev DEV
  rdmakit link del NAME
  rdmakit link list`

func runLink(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		fmt.Fprintln(os.Stderr, linkUsage)
		return 2
	}
	switch args[0] {
	case "add":
		if len(args) != 6 || args[2] != "type" || args[4] != "netdev" {
			fmt.Fprintln(os.Stderr, linkUsage)
			return 2
		}
		if err := verbs.AddLink(args[1], verbs.LinkType(args[3]), args[5]); err != nil {
			fmt.Fprintln(os.Stderr, "rdmakit link:", err)
			return 1
		}
	case "del", "delete":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, linkUsage)
			return 2
		}
		if err := verbs.DelLink(args[1]); err != nil {
			fmt.Fprintln(os.Stderr, "rdmakit link:", err)
			return 1
		}
	case "list", "show":
		links, err := verbs.Links()
		if err != nil {
			fmt.Fprintln(os.Stderr, "rdmakit link:", err)
			return 1
		}
		for _, l := range links {
			nds, _ := verbs.Netdevs(l.Name)
			fmt.Printf("%d: %s ports %d netdev %v\n", l.Index, l.Name, l.NumPorts, nds)
		}
	default:
		fmt.Fprintln(os.Stderr, linkUsage)
		return 2
	}
	return 0
}
