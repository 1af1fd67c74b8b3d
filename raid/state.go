package raid

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Member states.
const (
	stateOK         = "ok"
	stateFailed     = "failed"
	stateRebuilding = "rebuilding"
)

// volumeState is what a controller keeps in its state directory (volume.json): enough to
// serve the volume again after a restart.
type volumeState struct {
	ID         string        `json:"id"`
	Level      string        `json:"level"`
	K          int           `json:"k"`
	M          int           `json:"m"`
	Chunk      int           `json:"chunk"`
	Stripes    int64         `json:"stripes"`
	Generation uint64        `json:"generation"`
	Members    []memberState `json:"members"`
}

type memberState struct {
	Addr  string `json:"addr"`
	State string `json:"state"`
}

func (v volumeState) layout() Layout { return Layout{Level: v.Level, K: v.K, M: v.M, Chunk: v.Chunk} }

func (v volumeState) id() ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(v.ID)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("%w: volume id %q", ErrInvalid, v.ID)
	}
	copy(id[:], b)
	return id, nil
}

const stateFile = "volume.json"

// loadState reads dir/volume.json; ok is false when there is none.
func loadState(dir string) (v volumeState, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if os.IsNotExist(err) {
		return v, false, nil
	}
	if err != nil {
		return v, false, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, false, fmt.Errorf("%s: %w", stateFile, err)
	}
	if _, err := v.id(); err != nil {
		return v, false, fmt.Errorf("%s: %w", stateFile, err)
	}
	if err := v.layout().Check(len(v.Members)); err != nil {
		return v, false, fmt.Errorf("%s: %w", stateFile, err)
	}
	return v, true, nil
}

// saveState writes the state atomically and durably.
func saveState(dir string, v volumeState) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, stateFile+".tmp")
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err = f.Write(b); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, stateFile)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
