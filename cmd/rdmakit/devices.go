package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/rdmakit/rdmakit/verbs"
)

func init() {
	register("devices", "list RDMA devices, ports, state, GIDs and netdevs", runDevices)
}

func runDevices(args []string) int {
	fs := flag.NewFlagSet("devices", flag.ContinueOnError)
	gids := fs.Bool("gids", true, "show the GID table")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	devs, err := verbs.Devices()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rdmakit devices:", err)
		return 1
	}
	if len(devs) == 0 {
		fmt.Println("no RDMA devices (try: rdmakit link add rxe0 type rxe netdev eth0)")
		return 0
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	defer w.Flush()
	rc := 0
	for _, d := range devs {
		nds, _ := verbs.Netdevs(d.Name)
		fmt.Fprintf(w, "%s\tguid %s\t%s\tnetdev %s\n", d.Name, d.GUID, d.NodeType, orNone(strings.Join(nds, ",")))
		c, err := verbs.Open(d.Name)
		if err != nil {
			fmt.Fprintf(w, "  error: %v\n", err)
			rc = 1
			continue
		}
		a := c.Attr()
		fmt.Fprintf(w, "  fw %s\tmax_qp %d\tmax_cqe %d\tmax_mr_size %d\trd_atom %d/%d\todp %v\n",
			orNone(a.FWVer), a.MaxQP, a.MaxCQE, a.MaxMRSize, a.MaxQPRdAtom, a.MaxQPInitRdAtom, a.ODP())
		for p := 1; p <= a.PhysPortCnt; p++ {
			pa, err := c.QueryPort(p)
			if err != nil {
				fmt.Fprintf(w, "  port %d: %v\n", p, err)
				rc = 1
				continue
			}
			fmt.Fprintf(w, "  port %d\t%s\t%s\tmtu %d (max %d)\tlid %d\n", p, pa.State, pa.LinkLayer,
				pa.ActiveMTU.Bytes(), pa.MaxMTU.Bytes(), pa.LID)
		}
		if *gids {
			gs, err := c.GIDs()
			if err != nil {
				fmt.Fprintf(w, "  gids: %v\n", err)
			}
			for _, g := range gs {
				fmt.Fprintf(w, "    gid %d/%d\t%s\t%s\t%s\n", g.Port, g.Index, g.IP(), g.Type, orNone(g.Netdev))
			}
		}
		c.Close()
	}
	return rc
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
