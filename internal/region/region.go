// Package region holds the wire form of a remote memory region descriptor: the address, key and
// length a peer needs to reach registered memory with RDMA. Both ofi and fabric expose it.
package region

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Size is the length of a marshalled Region.
const Size = 28

// magic opens every marshalled Region ("RKR" + format version 1).
var magic = [4]byte{'R', 'K', 'R', 1}

// ErrFormat is returned for bytes that are not a marshalled Region.
var ErrFormat = errors.New("region: malformed remote region descriptor")

// Region describes registered memory on a peer: Addr is the base target address used on the
// wire (a virtual address, or 0 where the provider addresses by offset), Key the remote key,
// Len the number of bytes that may be accessed from Addr.
type Region struct {
	Addr uint64
	Key  uint64
	Len  uint64
}

// String formats the descriptor for logs.
func (r Region) String() string {
	return fmt.Sprintf("{addr=%#x key=%#x len=%d}", r.Addr, r.Key, r.Len)
}

// Contains reports whether [off, off+n) lies inside the region.
func (r Region) Contains(off, n uint64) bool {
	return off <= r.Len && n <= r.Len-off
}

// AppendBinary appends the wire form of r (little endian) to b.
func (r Region) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, magic[:]...)
	b = binary.LittleEndian.AppendUint64(b, r.Addr)
	b = binary.LittleEndian.AppendUint64(b, r.Key)
	b = binary.LittleEndian.AppendUint64(b, r.Len)
	return b, nil
}

// MarshalBinary returns the Size-byte wire form of r.
func (r Region) MarshalBinary() ([]byte, error) {
	return r.AppendBinary(make([]byte, 0, Size))
}

// UnmarshalBinary decodes a descriptor made by MarshalBinary. Anything else, including a
// region whose end would overflow the address space, is ErrFormat.
func (r *Region) UnmarshalBinary(b []byte) error {
	if len(b) != Size {
		return fmt.Errorf("%w: %d bytes, want %d", ErrFormat, len(b), Size)
	}
	if [4]byte(b[:4]) != magic {
		return fmt.Errorf("%w: bad magic %x", ErrFormat, b[:4])
	}
	v := Region{
		Addr: binary.LittleEndian.Uint64(b[4:]),
		Key:  binary.LittleEndian.Uint64(b[12:]),
		Len:  binary.LittleEndian.Uint64(b[20:]),
	}
	if v.Addr+v.Len < v.Addr {
		return fmt.Errorf("%w: addr %#x + len %d overflows", ErrFormat, v.Addr, v.Len)
	}
	*r = v
	return nil
}
