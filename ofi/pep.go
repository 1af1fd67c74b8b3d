package ofi

/*
#include "helpers.h"
*/
import "C"

import "fmt"

// PassiveEndpoint listens for connection requests (fi_passive_ep) of MSG endpoints.
type PassiveEndpoint struct {
	node
	c      *C.struct_fid_pep
	fabric *Fabric
}

// NewPassiveEndpoint creates a listening endpoint for info (GetInfo with source=true names the
// address it listens on).
func (f *Fabric) NewPassiveEndpoint(info *Info) (*PassiveEndpoint, error) {
	if f.isClosed() {
		return nil, ErrClosed
	}
	p := &PassiveEndpoint{fabric: f}
	if rc := C.fi_passive_ep(f.c, info.c, &p.c, nil); rc != 0 {
		return nil, fmt.Errorf("provider %s: %w", info.Provider(), fiErr("fi_passive_ep", C.ssize_t(rc)))
	}
	if err := p.init(&f.node, rankEndpoint, func() error {
		return fiErr("fi_close(pep)", C.ssize_t(C.fi_close(&p.c.fid)))
	}); err != nil {
		C.fi_close(&p.c.fid)
		return nil, err
	}
	return p, nil
}

// BindEQ binds the queue that receives connection requests.
func (p *PassiveEndpoint) BindEQ(eq *EQ) error {
	if !p.enter() {
		return ErrClosed
	}
	defer p.exit()
	if !eq.enter() {
		return ErrClosed
	}
	defer eq.exit()
	return fiErr("fi_pep_bind", C.ssize_t(C.fi_pep_bind(p.c, &eq.c.fid, 0)))
}

// Listen starts listening.
func (p *PassiveEndpoint) Listen() error {
	if !p.enter() {
		return ErrClosed
	}
	defer p.exit()
	return fiErr("fi_listen", C.ssize_t(C.fi_listen(p.c)))
}

// Name is the listening address in the provider's format.
func (p *PassiveEndpoint) Name() ([]byte, error) {
	if !p.enter() {
		return nil, ErrClosed
	}
	defer p.exit()
	return getname(&p.c.fid)
}

// Reject refuses a connection request, with private data for the peer.
func (p *PassiveEndpoint) Reject(req *Event, priv []byte) error {
	if !p.enter() {
		return ErrClosed
	}
	defer p.exit()
	if req == nil || req.Info == nil {
		return fmt.Errorf("%w: not a connection request", ErrInvalid)
	}
	cp := cbytes(priv)
	defer C.free(cp)
	return fiErr("fi_reject", C.ssize_t(C.fi_reject(p.c, req.Info.c.handle, cp, C.size_t(len(priv)))))
}

// Close stops listening. Idempotent.
func (p *PassiveEndpoint) Close() error { return p.close() }

func (p *PassiveEndpoint) fid() uintptr { return uintptrOf(&p.c.fid) }
