package fabric_test

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"
	"testing"

	"github.com/rdmakit/rdmakit/fabric"
	"github.com/rdmakit/rdmakit/fabric/fabrictest"
	"github.com/rdmakit/rdmakit/ofi"
)

var shmNames atomic.Int64

// freePort is a loopback TCP port nobody listens on (just released).
func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ofiTransports are the libfabric transports this host offers, as fi_getinfo reports them.
func ofiTransports(t *testing.T) map[string]fabrictest.Transport {
	out := map[string]fabrictest.Transport{}
	for _, c := range []struct {
		name, prov, scheme, query string
		ep                        ofi.EPType
	}{
		{"tcp-rxm", "tcp;ofi_rxm", "ofi+tcp", "", ofi.EPRDM},
		{"tcp-msg", "tcp", "ofi+tcp", "?ep=msg", ofi.EPMsg},
		{"sockets", "sockets", "ofi+sockets", "", ofi.EPRDM},
		{"sockets-msg", "sockets", "ofi+sockets", "?ep=msg", ofi.EPMsg},
		{"shm", "shm", "ofi+shm", "", ofi.EPRDM},
	} {
		if _, err := ofi.GetInfo("", "", false, &ofi.Hints{Provider: c.prov, EPType: c.ep, Caps: ofi.CapMsg | ofi.CapRMA}); err != nil {
			t.Logf("%s: not offered by libfabric here: %v", c.name, err)
			continue
		}
		if c.scheme == "ofi+shm" {
			// Twice: RMA by CMA from the initiator (the default: keys are not checked) and
			// through the peer, which checks them.
			for name, query := range map[string]string{"shm": "", "shm-checked": "?rma=checked"} {
				out[name] = fabrictest.Transport{
					Listen:    func() string { return fmt.Sprintf("ofi+shm://rk-test-%d-%d%s", os.Getpid(), shmNames.Add(1), query) },
					Nothing:   func() string { return fmt.Sprintf("ofi+shm://rk-nobody-%d%s", os.Getpid(), query) },
					Unchecked: query == "",
				}
			}
			continue
		}
		out[c.name] = fabrictest.Transport{
			Listen:  func() string { return c.scheme + "://127.0.0.1:0" + c.query },
			Nothing: func() string { return fmt.Sprintf("%s://127.0.0.1:%d%s", c.scheme, freePort(t), c.query) },
		}
	}
	for _, must := range []string{"tcp-rxm", "tcp-msg", "sockets", "shm", "shm-checked"} {
		if _, ok := out[must]; !ok {
			t.Errorf("libfabric lacks %s: install libfabric1 with its tcp, sockets and shm providers", must)
		}
	}
	return out
}

func TestConformanceOFI(t *testing.T) {
	for name, tr := range ofiTransports(t) {
		t.Run(name, func(t *testing.T) { fabrictest.Run(t, tr) })
	}
}

func TestParseAddr(t *testing.T) {
	for in, want := range map[string]string{
		"ofi+tcp://127.0.0.1:7471":        "ofi+tcp://127.0.0.1:7471",
		"ofi+tcp://127.0.0.1:7471?ep=msg": "ofi+tcp://127.0.0.1:7471?ep=msg",
		"ofi+shm://name":                  "ofi+shm://name",
		"ofi+shm://name:0:3":              "ofi+shm://name:0:3",
		"verbs://10.0.0.1:7471":           "verbs://10.0.0.1:7471",
		"ofi+sockets://[::1]:9":           "ofi+sockets://[::1]:9",
	} {
		a, err := fabric.ParseAddr(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseAddr(%q) = %v, %v; want %s", in, a, err, want)
		}
	}
	for _, bad := range []string{"", "tcp", "ofi://x:1", "ofi+bogus://x:1", "verbs+x://h:1", "ofi+shm://a/b", "rdma://h:1", "ofi+tcp://:1"} {
		if _, err := fabric.ParseAddr(bad); err == nil {
			t.Errorf("ParseAddr(%q) accepted", bad)
		}
	}
}
