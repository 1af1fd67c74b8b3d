package raid

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// superblockLen is the on-disk size of a superblock; it occupies the first block of a store.
const superblockLen = 128

// dataStart is where a store's data area begins.
const dataStart = 4096

// Superblock identifies a store as member Index of volume ID, with the volume's layout and the
// membership generation it was written in.
type Superblock struct {
	ID         [16]byte
	Index      int
	Layout     Layout
	Generation uint64
	Stripes    int64 // stripes per member
}

var sbMagic = [8]byte{'R', 'K', 'R', 'A', 'I', 'D', 'S', 'B'}

// MarshalBinary is the superblock's 128-byte form, with a CRC-32C at its end.
func (s Superblock) MarshalBinary() ([]byte, error) {
	b := make([]byte, superblockLen)
	copy(b, sbMagic[:])
	copy(b[8:], s.ID[:])
	binary.LittleEndian.PutUint32(b[24:], uint32(s.Index))
	binary.LittleEndian.PutUint32(b[28:], uint32(s.Layout.K))
	binary.LittleEndian.PutUint32(b[32:], uint32(s.Layout.M))
	binary.LittleEndian.PutUint32(b[36:], uint32(s.Layout.Chunk))
	binary.LittleEndian.PutUint64(b[40:], s.Generation)
	binary.LittleEndian.PutUint64(b[48:], uint64(s.Stripes))
	if len(s.Layout.Level) > 15 {
		return nil, fmt.Errorf("%w: level %q", ErrLayout, s.Layout.Level)
	}
	b[56] = byte(len(s.Layout.Level))
	copy(b[57:72], s.Layout.Level)
	binary.LittleEndian.PutUint32(b[superblockLen-4:], crc32.Checksum(b[:superblockLen-4], crcTable))
	return b, nil
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// UnmarshalBinary parses a superblock, checking magic, checksum and layout.
func (s *Superblock) UnmarshalBinary(b []byte) error {
	if len(b) != superblockLen {
		return fmt.Errorf("%w: %d bytes, want %d", ErrSuperblk, len(b), superblockLen)
	}
	if [8]byte(b[:8]) != sbMagic {
		return fmt.Errorf("%w: no superblock magic", ErrSuperblk)
	}
	if got, want := crc32.Checksum(b[:superblockLen-4], crcTable), binary.LittleEndian.Uint32(b[superblockLen-4:]); got != want {
		return fmt.Errorf("%w: checksum %08x, want %08x", ErrSuperblk, got, want)
	}
	var v Superblock
	copy(v.ID[:], b[8:24])
	v.Index = int(binary.LittleEndian.Uint32(b[24:]))
	v.Layout.K = int(binary.LittleEndian.Uint32(b[28:]))
	v.Layout.M = int(binary.LittleEndian.Uint32(b[32:]))
	v.Layout.Chunk = int(binary.LittleEndian.Uint32(b[36:]))
	v.Generation = binary.LittleEndian.Uint64(b[40:])
	v.Stripes = int64(binary.LittleEndian.Uint64(b[48:]))
	if n := int(b[56]); n <= 15 {
		v.Layout.Level = string(b[57 : 57+n])
	}
	if v.Layout.K < 0 || v.Layout.M < 0 || v.Layout.K > 64 || v.Layout.M > 64 {
		return fmt.Errorf("%w: %d+%d", ErrSuperblk, v.Layout.K, v.Layout.M)
	}
	if err := v.Layout.Check(v.Layout.N()); err != nil {
		return fmt.Errorf("%w: %w", ErrSuperblk, err)
	}
	if v.Index >= v.Layout.N() || v.Stripes < 0 {
		return fmt.Errorf("%w: member %d of %d, %d stripes", ErrSuperblk, v.Index, v.Layout.N(), v.Stripes)
	}
	*s = v
	return nil
}
