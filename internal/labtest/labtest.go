// Package labtest lets tests find the RDMA device they need: kernel rxe inside the lab VM, or
// real hardware. A test that needs one calls Device; on a host without RDMA it skips, unless the
// run promised RDMA (RDMAKIT_REQUIRE_RDMA=1, set by `make test` for its lab run), where a missing
// device fails the test loudly instead.
package labtest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Env names shared by the lab VM, the Makefile and the tests.
const (
	// EnvRequire, when "1", turns a missing RDMA device into a test failure.
	EnvRequire = "RDMAKIT_REQUIRE_RDMA"
	// EnvLab is "1" inside the lab VM.
	EnvLab = "RDMAKIT_LAB"
	// EnvDevice names the RDMA device to use (the lab sets rxe0).
	EnvDevice = "RDMAKIT_DEVICE"
	// EnvIP is an IPv4 address bound to the device's netdev (the lab sets 10.77.0.1).
	EnvIP = "RDMAKIT_IP"
)

// Required reports whether this run promised an RDMA device.
func Required() bool { return os.Getenv(EnvRequire) == "1" }

// InLab reports whether the process runs inside the lab VM.
func InLab() bool { return os.Getenv(EnvLab) == "1" }

// Device returns the RDMA device name and an IPv4 address on its netdev. Without one it skips
// the test, or fails it when Required.
func Device(t testing.TB) (dev, ip string) {
	t.Helper()
	dev, ip = os.Getenv(EnvDevice), os.Getenv(EnvIP)
	if dev == "" {
		if ents, _ := filepath.Glob("/sys/class/infiniband/*"); len(ents) > 0 {
			dev = filepath.Base(ents[0])
		}
	}
	if dev == "" || ip == "" {
		msg := "no RDMA device (set " + EnvDevice + " and " + EnvIP + ", or run in the lab: make test-lab)"
		if Required() {
			t.Fatalf("%s, but %s=1 promised one", msg, EnvRequire)
		}
		t.Skip(msg)
	}
	if _, err := os.Stat(filepath.Join("/sys/class/infiniband", dev)); err != nil {
		if Required() {
			t.Fatalf("RDMA device %s not found: %v", dev, err)
		}
		t.Skipf("RDMA device %s not found", dev)
	}
	return dev, strings.TrimSpace(ip)
}
