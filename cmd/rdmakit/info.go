package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"text/tabwriter"

	"github.com/rdmakit/rdmakit/ofi"
)

func init() {
	register("info", "list libfabric providers and their capabilities (like fi_info)", runInfo)
}

func runInfo(args []string) int {
	fs := flag.NewFlagSet("info", flag.ContinueOnError)
	prov := fs.String("p", "", "only this provider (e.g. \"tcp;ofi_rxm\", shm)")
	verbose := fs.Bool("v", false, "print every field, as fi_info -v does")
	atomics := fs.Bool("atomics", false, "also list the 64-bit atomic operations each provider supports")
	if fs.Parse(args) != nil {
		return 2
	}
	infos, err := ofi.GetInfo("", "", false, &ofi.Hints{Provider: *prov})
	if err != nil {
		fmt.Fprintln(os.Stderr, "rdmakit info:", err)
		return 1
	}
	fmt.Printf("libfabric %s: %d configurations\n\n", ofi.Version(), len(infos))
	if *verbose {
		for _, i := range infos {
			fmt.Println(i.String())
			fmt.Println()
		}
		return 0
	}
	sort.SliceStable(infos, func(a, b int) bool { return infos[a].Provider() < infos[b].Provider() })
	tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tEP\tFABRIC\tDOMAIN\tCAPS\tMR_MODE\tPROGRESS\tINJECT")
	for _, i := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s/%s\t%d\n", i.Provider(), i.EPType(), i.FabricName(),
			i.DomainName(), i.Caps(), i.MRMode(), i.ControlProgress(), i.DataProgress(), i.InjectSize())
	}
	tw.Flush()
	if *atomics {
		fmt.Println()
		printAtomics(*prov)
	}
	return 0
}

// printAtomics opens each RDM provider with FI_ATOMIC and asks fi_query_atomic what it runs.
func printAtomics(only string) {
	type q struct {
		kind ofi.OpKind
		op   ofi.AtomicOp
	}
	queries := []q{{ofi.OpAtomic, ofi.OpSum}, {ofi.OpFetchAtomic, ofi.OpSum}, {ofi.OpFetchAtomic, ofi.OpAtomicRead},
		{ofi.OpAtomic, ofi.OpAtomicWrite}, {ofi.OpFetchAtomic, ofi.OpBor}, {ofi.OpFetchAtomic, ofi.OpBand},
		{ofi.OpFetchAtomic, ofi.OpBxor}, {ofi.OpAtomic, ofi.OpMin}, {ofi.OpAtomic, ofi.OpMax},
		{ofi.OpCompareAtomic, ofi.OpCswap}, {ofi.OpCompareAtomic, ofi.OpMswap}}
	for _, p := range []string{"tcp;ofi_rxm", "sockets", "shm", "verbs;ofi_rxm"} {
		if only != "" && only != p {
			continue
		}
		infos, err := ofi.GetInfo("", "", false, &ofi.Hints{Provider: p, EPType: ofi.EPRDM, Caps: ofi.CapAtomic})
		if err != nil {
			fmt.Printf("%-14s no atomics (%v)\n", p, err)
			continue
		}
		f, err := ofi.OpenFabric(infos[0])
		if err != nil {
			fmt.Printf("%-14s %v\n", p, err)
			continue
		}
		d, err := f.OpenDomain(infos[0])
		if err != nil {
			f.Close()
			fmt.Printf("%-14s %v\n", p, err)
			continue
		}
		fmt.Printf("%-14s uint64:", p)
		for _, q := range queries {
			if d.QueryAtomic(q.kind, q.op, ofi.Uint64) == nil {
				fmt.Printf(" %s/%s", q.kind, q.op)
			}
		}
		fmt.Println()
		f.Close()
	}
}
