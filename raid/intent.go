package raid

import (
	"fmt"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// intentGroup is how many stripes share one write-intent byte.
const intentGroup = 16

// intentLog is the controller's write-intent record: one byte per group of stripes, set and
// made durable before any member is written, cleared when the write has finished. After a
// crash, the set groups are the only stripes whose parity may disagree with their data.
type intentLog struct {
	f    *os.File
	mu   sync.Mutex
	refs map[int64]int
}

func openIntent(path string, stripes int64) (*intentLog, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	groups := (stripes + intentGroup - 1) / intentGroup
	if st, err := f.Stat(); err != nil || st.Size() != groups {
		if err == nil {
			err = f.Truncate(groups)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("intent log: %w", err)
		}
	}
	return &intentLog{f: f, refs: map[int64]int{}}, nil
}

func groupsOf(stripes []int64) []int64 {
	var gs []int64
	for _, s := range stripes {
		g := s / intentGroup
		if len(gs) == 0 || gs[len(gs)-1] != g {
			gs = append(gs, g)
		}
	}
	return gs
}

// mark records intent to write the stripes (in ascending order) and makes it durable.
func (l *intentLog) mark(stripes []int64) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	dirty := false
	for _, g := range groupsOf(stripes) {
		if l.refs[g] == 0 {
			if _, err := l.f.WriteAt([]byte{1}, g); err != nil {
				return fmt.Errorf("intent log: %w", err)
			}
			dirty = true
		}
		l.refs[g]++
	}
	if dirty {
		if err := unix.Fdatasync(int(l.f.Fd())); err != nil {
			return fmt.Errorf("intent log: %w", err)
		}
	}
	return nil
}

// clear drops the intent; a group's byte is cleared (lazily, without sync) at its last writer.
func (l *intentLog) clear(stripes []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, g := range groupsOf(stripes) {
		if l.refs[g]--; l.refs[g] <= 0 {
			delete(l.refs, g)
			l.f.WriteAt([]byte{0}, g)
		}
	}
}

// dirty lists the groups whose intent is set on disk.
func (l *intentLog) dirty() ([]int64, error) {
	st, err := l.f.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, st.Size())
	if _, err := l.f.ReadAt(b, 0); err != nil && len(b) > 0 {
		return nil, err
	}
	var out []int64
	for g, v := range b {
		if v != 0 {
			out = append(out, int64(g))
		}
	}
	return out, nil
}

func (l *intentLog) close() error { return l.f.Close() }
