package fabric

import "context"

// The backend interfaces: what a transport implements. The exported types (Fabric, Conn,
// Listener, Memory) validate arguments and keep state; backends only move bytes.

type backend interface {
	alloc(size int, acc Access) (memoryImpl, error)
	register(b []byte, acc Access) (memoryImpl, error)
	listen(ctx context.Context) (listenerImpl, error)
	dial(ctx context.Context, to Addr) (connImpl, error)
	caps() Caps
	close() error
}

type memoryImpl interface {
	bytes() []byte
	remote() Remote
	close() error
}

type listenerImpl interface {
	accept(ctx context.Context) (connImpl, error)
	addr() string
	close() error
}

type connImpl interface {
	// do runs validated ops; on return every op has finished or the connection was closed.
	do(ctx context.Context, ops []Op) error
	send(ctx context.Context, msg []byte) error
	recv(ctx context.Context, buf []byte) (int, error)
	remoteAddr() string
	close() error
}
