package fabric

// openVerbs opens the rdma-core verbs backend.
func openVerbs(a Addr, o options) (backend, error) {
	return nil, ErrNotSupported
}
