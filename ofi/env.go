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
}
