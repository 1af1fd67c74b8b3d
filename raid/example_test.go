package raid_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rdmakit/rdmakit/raid"
)

// A RAID-5 volume over three targets, all in one process on libfabric tcp loopback: the host
// writes and reads its registered memory; the targets move the data.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir, _ := os.MkdirTemp("", "raid-example-")
	defer os.RemoveAll(dir)

	var members []string
	for i := range 3 {
		t, err := raid.NewTarget(ctx, raid.TargetConfig{Listen: "ofi+tcp://127.0.0.1:0",
			Store: filepath.Join(dir, fmt.Sprint("store", i)), Size: 1 << 20})
		if err != nil {
			fmt.Println(err)
			return
		}
		defer t.Close()
		members = append(members, t.Addr())
	}
	ctrl, err := raid.NewController(ctx, raid.ControllerConfig{Listen: "ofi+tcp://127.0.0.1:0", Level: "5",
		Chunk: 64 << 10, Members: members, StateDir: filepath.Join(dir, "state")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ctrl.Close()

	host, err := raid.Dial(ctx, ctrl.Addr())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer host.Close()
	mem, _ := host.Alloc(256 << 10)
	copy(mem.Bytes(), bytes.Repeat([]byte("rdmakit "), 32<<10))
	if err := host.Write(ctx, mem, 0, 4096, 256<<10); err != nil {
		fmt.Println(err)
		return
	}
	clear(mem.Bytes())
	if err := host.Read(ctx, mem, 0, 4096, 256<<10); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s\n", mem.Bytes()[:15])
	st := host.Info()
	fmt.Println(st.Layout, st.Size)
	fmt.Println("controller data egress:", ctrl.Counters().DataToTargets)
	// Output:
	// rdmakit rdmakit
	// raid5 2+1 chunk 65536 1966080
	// controller data egress: 0
}
