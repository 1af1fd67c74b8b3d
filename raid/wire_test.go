package raid

import (
	"bytes"
	"errors"
	"testing"

	"github.com/rdmakit/rdmakit/fabric"
)

var seedRemote = fabric.Remote{Addr: 0x7f0000001000, Key: 42, Len: 1 << 20}

// fuzzParse feeds data to parse through the header parser and checks that every failure is
// ErrFormat (or, for superblocks, ErrSuperblk) and that accepted messages re-encode to the same
// bytes.
func fuzzParse(f *testing.F, want msgType, seeds [][]byte, parse func(id uint64, d *dec) ([]byte, error)) {
	for _, s := range seeds {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(append(bytes.Clone(s), 0))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		typ, id, d, err := parseHeader(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("header error %v is not ErrFormat", err)
			}
			return
		}
		if typ != want {
			return
		}
		again, err := parse(id, d)
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		if again != nil && !bytes.Equal(again, b) {
			t.Fatalf("re-encoded %x, got %x", again, b)
		}
	})
}

func FuzzHello(f *testing.F) {
	fuzzParse(f, msgHostHello, [][]byte{hello{Session: 9, Role: roleData}.marshal(1), hello{Session: 1, Role: roleControl}.marshal(7)},
		func(id uint64, d *dec) ([]byte, error) {
			h, err := parseHello(d)
			if err != nil {
				return nil, err
			}
			return h.marshal(id), nil
		})
}

func FuzzVolumeInfo(f *testing.F) {
	v := VolumeInfo{ID: [16]byte{1, 2}, Layout: Layout{Level: "6", K: 2, M: 2, Chunk: 4096}, Size: 1 << 20,
		Members: []string{"ofi+tcp://127.0.0.1:1", "", "ofi+tcp://127.0.0.1:3", "ofi+shm://x"}}
	fuzzParse(f, msgVolumeInfo, [][]byte{v.marshal(3)}, func(id uint64, d *dec) ([]byte, error) {
		v, err := parseVolumeInfo(d)
		if err != nil {
			return nil, err
		}
		return v.marshal(id), nil
	})
}

func FuzzIORequest(f *testing.F) {
	r := ioRequest{Offset: 4096, Length: 100, Host: seedRemote, HostOff: 8, Flags: flagThroughController, Exclude: 2}
	fuzzParse(f, msgWrite, [][]byte{r.marshal(msgWrite, 4)}, func(id uint64, d *dec) ([]byte, error) {
		r, err := parseIORequest(d)
		if err != nil {
			return nil, err
		}
		return r.marshal(msgWrite, id), nil
	})
}

func FuzzReply(f *testing.F) {
	fuzzParse(f, msgReply, [][]byte{reply{Code: codeRange, Text: "outside"}.marshal(5), reply{}.marshal(1)},
		func(id uint64, d *dec) ([]byte, error) {
			r, err := parseReply(d)
			if err != nil {
				return nil, err
			}
			_ = r.err()
			return r.marshal(id), nil
		})
}

func FuzzReplace(f *testing.F) {
	fuzzParse(f, msgReplace, [][]byte{replaceReq{Member: 3, Addr: "ofi+tcp://127.0.0.1:7"}.marshal(2)},
		func(id uint64, d *dec) ([]byte, error) {
			r, err := parseReplace(d)
			if err != nil {
				return nil, err
			}
			return r.marshal(id), nil
		})
}

func FuzzTargetInfo(f *testing.F) {
	sb, _ := Superblock{ID: [16]byte{9}, Index: 1, Layout: Layout{Level: "5", K: 2, M: 1, Chunk: 512}, Generation: 3, Stripes: 10}.MarshalBinary()
	fuzzParse(f, msgTargetInfo, [][]byte{targetInfo{Capacity: 1 << 30, Superblock: sb}.marshal(1), targetInfo{Capacity: 5}.marshal(2)},
		func(id uint64, d *dec) ([]byte, error) {
			ti, err := parseTargetInfo(d)
			if err != nil {
				return nil, err
			}
			return ti.marshal(id), nil
		})
}

func FuzzCommand(f *testing.F) {
	c := command{Op: cmdPull, Kind: kindData, Session: 77, Remote: seedRemote, Sync: true,
		Segs: []segment{{MemberOff: 0, RemoteOff: 0, Len: 4096}, {MemberOff: 1 << 20, RemoteOff: 8192, Len: 100}}}
	fuzzParse(f, msgCommand, [][]byte{c.marshal(9)}, func(id uint64, d *dec) ([]byte, error) {
		c, err := parseCommand(d)
		if err != nil {
			return nil, err
		}
		for _, s := range c.Segs {
			if !c.Remote.Contains(s.RemoteOff, uint64(s.Len)) || s.Len == 0 {
				panic("accepted a segment outside the remote region")
			}
		}
		return c.marshal(id), nil
	})
}

func FuzzCmdReply(f *testing.F) {
	fuzzParse(f, msgCmdReply, [][]byte{cmdReply{reply: reply{Code: codeIO, Text: "disk"}, Bytes: 5}.marshal(1)},
		func(id uint64, d *dec) ([]byte, error) {
			r, err := parseCmdReply(d)
			if err != nil {
				return nil, err
			}
			return r.marshal(id), nil
		})
}

func FuzzTargetCounters(f *testing.F) {
	fuzzParse(f, msgStats, [][]byte{TargetCounters{1, 2, 3, 4, 5, 6}.marshal(1)}, func(id uint64, d *dec) ([]byte, error) {
		t, err := parseTargetCounters(d)
		if err != nil {
			return nil, err
		}
		return t.marshal(id), nil
	})
}

func FuzzStatus(f *testing.F) {
	fuzzParse(f, msgStatus, [][]byte{blobMsg(msgStatus, 1, []byte(`{"id":"x"}`))}, func(id uint64, d *dec) ([]byte, error) {
		b, err := parseBlob(d, 1<<20)
		if err != nil {
			return nil, err
		}
		return blobMsg(msgStatus, id, b), nil
	})
}

func FuzzSuperblock(f *testing.F) {
	sb, _ := Superblock{ID: [16]byte{9, 8}, Index: 4, Layout: Layout{Level: "4+2", K: 4, M: 2, Chunk: 65536}, Generation: 7, Stripes: 1000}.MarshalBinary()
	f.Add(sb)
	f.Add(make([]byte, superblockLen))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s Superblock
		if err := s.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrSuperblk) {
				t.Fatalf("error %v is not ErrSuperblk", err)
			}
			return
		}
		again, err := s.MarshalBinary()
		if err != nil || !bytes.Equal(again, b) && bytes.Equal(again[:72], b[:72]) == false {
			// bytes between the level and the checksum are not part of the superblock
			t.Fatalf("re-encoded superblock differs: %v", err)
		}
	})
}

func TestLayoutPlacement(t *testing.T) {
	for _, lv := range []struct {
		level string
		n     int
	}{{"0", 3}, {"1", 3}, {"5", 4}, {"6", 6}, {"8+2", 10}} {
		l, err := ParseLayout(lv.level, lv.n, 4096)
		if err != nil {
			t.Fatal(err)
		}
		parityOn := map[int]bool{}
		for s := int64(0); s < int64(lv.n); s++ {
			seen := map[int]bool{}
			for j := range l.N() {
				m := l.Member(s, j)
				if seen[m] || l.Shard(s, m) != j {
					t.Fatalf("%s stripe %d: shard %d on member %d is not a bijection", l, s, j, m)
				}
				seen[m] = true
				if j >= l.K {
					parityOn[m] = true
				}
			}
		}
		if l.M > 0 && len(parityOn) != lv.n {
			t.Errorf("%s: parity rotates over %d of %d members", l, len(parityOn), lv.n)
		}
	}
}
