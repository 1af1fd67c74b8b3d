package ofi

/*
#include "helpers.h"
*/
import "C"

import "fmt"

// Fabric is an opened fabric (fi_fabric): the root of every other object.
type Fabric struct {
	node
	c    *C.struct_fid_fabric
	info *Info
}

// OpenFabric opens the fabric that info names.
func OpenFabric(info *Info) (*Fabric, error) {
	f := &Fabric{info: info}
	if rc := C.fi_fabric(info.c.fabric_attr, &f.c, nil); rc != 0 {
		return nil, fmt.Errorf("provider %s: %w", info.Provider(), fiErr("fi_fabric", C.ssize_t(rc)))
	}
	f.init(nil, rankDomain, func() error { return fiErr("fi_close(fabric)", C.ssize_t(C.fi_close(&f.c.fid))) })
	return f, nil
}

// Info is the fi_info the fabric was opened with.
func (f *Fabric) Info() *Info { return f.info }

// Close closes the fabric and everything opened from it, children first. Idempotent.
func (f *Fabric) Close() error { return f.close() }
