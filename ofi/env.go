package ofi

import "os"

// libfabric reads its environment once, at the first fi_getinfo; these defaults are set before.
func init() {
	// libfabric 1.17's memory-registration cache (used by the verbs provider) registers cached
	// regions with wider access than asked for, so a region registered for remote reads also
	// accepts remote writes. rdmakit registers few, long-lived regions and wants the access
	// flags enforced exactly: the cache is off unless the user sets the variable.
	if _, set := os.LookupEnv("FI_MR_CACHE_MAX_COUNT"); !set {
		os.Setenv("FI_MR_CACHE_MAX_COUNT", "0")
	}
	// ofi_rxm gives every endpoint buffer pools of 1024 buffers of this size, filled when the
	// endpoint is enabled. At its default of 16 KiB that is about 87 MB of resident memory per
	// endpoint, and rdmakit's fabric opens one per connection: 20 connections over
	// tcp;ofi_rxm held 1.75 GB, and opening an endpoint took 210 ms on a 2-core VM (page
	// faults), so that a dial, which opens one on each side, took 0.55 s. At 4 KiB: 26 MB per
	// endpoint and 0.19 s a dial. Messages above the size go by rxm's segmented protocol;
	// rdmakit moves data by RMA and its messages are small. Set the variable to choose.
	if _, set := os.LookupEnv("FI_OFI_RXM_BUFFER_SIZE"); !set {
		os.Setenv("FI_OFI_RXM_BUFFER_SIZE", "4096")
	}
	// Over tcp, rxm receives through a shared receive context and posts 4096 of those buffers
	// to it per endpoint (128 without one), sized for an endpoint that hears from many peers;
	// rdmakit's fabric gives each connection endpoints of its own, each with one peer. At 4096
	// a connection held 52 MB on its two ends and a dial took 0.22 s; at 128, 23.5 MB and
	// 0.11 s (BenchmarkDial), and pipelined atomics ran as fast. Requests beyond the posted
	// buffers (rxm carries atomics in messages) wait in the TCP connection until rxm reposts
	// some (fabrictest's AtomicBurst). Set the variable to choose.
	if _, set := os.LookupEnv("FI_OFI_RXM_MSG_RX_SIZE"); !set {
		os.Setenv("FI_OFI_RXM_MSG_RX_SIZE", "128")
	}
}
