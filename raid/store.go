package raid

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// store is a target's backing file or block device: a superblock block, then the data area.
type store struct {
	f         *os.File
	capacity  int64  // bytes of the data area
	data      []byte // the data area mapped shared (mapData), or nil
	durable   groupSync
	formatted atomic.Bool // a superblock has been read or written: it is never taken back
}

// openStore opens (creating a sparse file if needed) a store of size bytes.
func openStore(path string, size int64) (*store, error) {
	if size < dataStart+512 {
		return nil, fmt.Errorf("%w: store size %d, need more than %d", ErrInvalid, size, dataStart+512)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode().IsRegular() && st.Size() < size {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, err
		}
	} else if !st.Mode().IsRegular() {
		end, err := f.Seek(0, io.SeekEnd)
		if err != nil || end < size {
			f.Close()
			return nil, fmt.Errorf("%w: device %s has %d bytes, want %d", ErrInvalid, path, end, size)
		}
	}
	s := &store{f: f, capacity: size - dataStart}
	s.durable.sync = func() error { return unix.Fdatasync(int(s.f.Fd())) }
	return s, nil
}

// superblock reads the superblock: nil for a blank store (all zero), an error for garbage.
func (s *store) superblock() ([]byte, error) {
	b := make([]byte, superblockLen)
	if _, err := s.f.ReadAt(b, 0); err != nil {
		return nil, err
	}
	if bytes.Equal(b, make([]byte, superblockLen)) {
		return nil, nil
	}
	var sb Superblock
	if err := sb.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	s.formatted.Store(true)
	return b, nil
}

func (s *store) writeSuperblock(b []byte) error {
	if _, err := s.f.WriteAt(b, 0); err != nil {
		return err
	}
	if err := unix.Fdatasync(int(s.f.Fd())); err != nil {
		return err
	}
	s.formatted.Store(true)
	return nil
}

func (s *store) check(off int64, n int) error {
	if off < 0 || n < 0 || off > s.capacity || int64(n) > s.capacity-off {
		return fmt.Errorf("%w: member range [%d, %d+%d) of %d bytes", ErrRange, off, off, n, s.capacity)
	}
	return nil
}

func (s *store) readAt(p []byte, off int64) error {
	_, err := s.f.ReadAt(p, dataStart+off)
	return err
}

func (s *store) writeAt(p []byte, off int64) error {
	_, err := s.f.WriteAt(p, dataStart+off)
	return err
}

// sync makes the writes that returned before the call durable; concurrent callers share
// fdatasync calls.
func (s *store) sync() error { return s.durable.wait() }

// mapData maps the data area shared, so that transfers can move member data straight to and
// from the page cache, and returns it. The mapping lives until close.
func (s *store) mapData() ([]byte, error) {
	if s.data == nil {
		m, err := unix.Mmap(int(s.f.Fd()), dataStart, int(s.capacity), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return nil, err
		}
		s.data = m
	}
	return s.data, nil
}

// unmapData drops the mapping mapData made, if any.
func (s *store) unmapData() error {
	if s.data == nil {
		return nil
	}
	err := unix.Munmap(s.data)
	s.data = nil
	return err
}

func (s *store) close() error { return errors.Join(s.unmapData(), s.f.Close()) }
