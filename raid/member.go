package raid

import (
	"context"
	"errors"
	"fmt"

	"github.com/rdmakit/rdmakit/fabric"
)

// member is the controller's command queue to one target.
type member struct {
	idx   int
	addr  string
	state string
	r     *rpc // nil when failed
}

// dialMember connects to a target and asks for its capacity and superblock.
func dialMember(ctx context.Context, f *fabric.Fabric, addr string) (*rpc, targetInfo, error) {
	c, err := f.Dial(ctx, addr)
	if err != nil {
		return nil, targetInfo{}, err
	}
	r := newRPC(c)
	t, d, err := r.call(ctx, func(id uint64) []byte { return newMsg(msgCtrlHello, id).b })
	var info targetInfo
	if err == nil {
		switch t {
		case msgTargetInfo:
			info, err = parseTargetInfo(d)
		case msgReply:
			var rep reply
			if rep, err = parseReply(d); err == nil {
				err = rep.err()
			}
		default:
			err = fmt.Errorf("%w: answer of type %d to hello", ErrFormat, t)
		}
	}
	if err != nil {
		r.close()
		return nil, targetInfo{}, fmt.Errorf("target %s: %w", addr, err)
	}
	return r, info, nil
}

// format writes a superblock to the target.
func formatMember(ctx context.Context, r *rpc, sb Superblock) error {
	b, err := sb.MarshalBinary()
	if err != nil {
		return err
	}
	return r.callReply(ctx, func(id uint64) []byte { return blobMsg(msgFormat, id, b) })
}

// command runs one command on a target. A failure of the target itself (transport, timeout,
// I/O) is a memberError; a problem with the host's memory or connection is not.
func runCommand(ctx context.Context, r *rpc, c command) (uint64, error) {
	t, d, err := r.call(ctx, func(id uint64) []byte { return c.marshal(id) })
	if err != nil {
		return 0, memberError{err}
	}
	if t != msgCmdReply {
		return 0, memberError{fmt.Errorf("%w: answer of type %d to a command", ErrFormat, t)}
	}
	rep, err := parseCmdReply(d)
	if err != nil {
		return 0, memberError{err}
	}
	if err := rep.err(); err != nil {
		if rep.Code == codeHostAccess || rep.Code == codeStale || rep.Code == codeRange {
			return rep.Bytes, err
		}
		return rep.Bytes, memberError{err}
	}
	return rep.Bytes, nil
}

func targetStats(ctx context.Context, r *rpc) (TargetCounters, error) {
	t, d, err := r.call(ctx, func(id uint64) []byte { return newMsg(msgStatsReq, id).b })
	if err != nil {
		return TargetCounters{}, err
	}
	if t != msgStats {
		return TargetCounters{}, fmt.Errorf("%w: answer of type %d to stats", ErrFormat, t)
	}
	return parseTargetCounters(d)
}

// memberError marks a failure of the member itself: the controller fails the member.
type memberError struct{ err error }

func (e memberError) Error() string { return e.err.Error() }
func (e memberError) Unwrap() error { return e.err }

func isMemberError(err error) bool {
	var m memberError
	return errors.As(err, &m)
}
