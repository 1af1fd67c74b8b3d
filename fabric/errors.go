package fabric

import (
	"context"
	"errors"
	"fmt"

	"github.com/rdmakit/rdmakit/ofi"
)

// Sentinels for errors.Is. Backend errors are wrapped so that both the sentinel here and the
// backend's own error (with its errno and provider text) match.
var (
	ErrClosed       = errors.New("fabric: use of closed connection or memory")
	ErrTimeout      = errors.New("fabric: timed out")
	ErrCanceled     = errors.New("fabric: canceled")
	ErrAccess       = errors.New("fabric: remote access denied")
	ErrNotSupported = errors.New("fabric: not supported by this transport")
	ErrInvalid      = errors.New("fabric: invalid argument")
	ErrOutOfRange   = errors.New("fabric: outside the memory region")
	ErrTooLarge     = errors.New("fabric: too large")
	ErrConnRefused  = errors.New("fabric: connection refused")
	ErrConnReset    = errors.New("fabric: connection lost")
	ErrBadAddress   = errors.New("fabric: bad address")
)

// classes maps backend sentinels to fabric sentinels; the first match wins.
var ofiClasses = []struct{ from, to error }{
	{ofi.ErrClosed, ErrClosed},
	{ofi.ErrTimeout, ErrTimeout},
	{ofi.ErrCanceled, ErrCanceled},
	{ofi.ErrAccess, ErrAccess},
	{ofi.ErrNotSupported, ErrNotSupported},
	{ofi.ErrTooBig, ErrTooLarge},
	{ofi.ErrConnRefused, ErrConnRefused},
	{ofi.ErrConnReset, ErrConnReset},
	{ofi.ErrInvalid, ErrInvalid},
	{context.DeadlineExceeded, ErrTimeout},
	{context.Canceled, ErrCanceled},
}

// wrapClass returns err annotated with the first fabric sentinel whose backend class matches.
func wrapClass(err error, classes []struct{ from, to error }) error {
	if err == nil {
		return nil
	}
	for _, c := range classes {
		if errors.Is(err, c.to) {
			return err
		}
		if errors.Is(err, c.from) {
			if c.to == ErrAccess && errors.Is(err, ofi.ErrConnReset) {
				// RC (verbs) reports a protection fault as an I/O error that also moved
				// the queue pair to the error state: the connection is lost as well.
				return fmt.Errorf("%w: %w: %w", c.to, ErrConnReset, err)
			}
			return fmt.Errorf("%w: %w", c.to, err)
		}
	}
	return err
}

func ofiError(err error) error { return wrapClass(err, ofiClasses) }
