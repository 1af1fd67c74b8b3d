package main

import (
	"os"
	"slices"
	"testing"
)

// TestLabDevice checks, inside the lab VM, that libibverbs sees the device the lab announces.
func TestLabDevice(t *testing.T) {
	if os.Getenv("RDMAKIT_LAB") != "1" {
		t.Skip("runs inside the lab VM (ci/lab)")
	}
	want := os.Getenv("RDMAKIT_DEVICE")
	names, err := deviceNames()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("devices: %q", names)
	if want == "" || !slices.Contains(names, want) {
		t.Fatalf("RDMAKIT_DEVICE=%q, libibverbs lists %q", want, names)
	}
}
