package fabric

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
)

// TestSweepShm: regions left under anonymous names by a dead process go, those of live
// processes stay.
func TestSweepShm(t *testing.T) {
	if _, err := os.Stat("/dev/shm"); err != nil {
		t.Skip("no /dev/shm")
	}
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("/dev/shm/rdmakit-%d-1:0:1", cmd.Process.Pid)
	live := fmt.Sprintf("/dev/shm/rdmakit-%d-999:0:1", os.Getppid())
	for _, n := range []string{dead, live} {
		if err := os.WriteFile(n, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Remove(n) })
	}
	sweepShm()
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("region of the dead process %d is still there: %v", cmd.Process.Pid, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("region of the live process %d was removed: %v", os.Getppid(), err)
	}
}
