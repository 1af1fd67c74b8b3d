package shmem

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestProcessExited watches a child process: alive, then killed and not yet reaped (a zombie,
// which kill(pid, 0) still finds), then reaped.
func TestProcessExited(t *testing.T) {
	if watchProcess(0) != nil || watchProcess(os.Getpid()) != nil {
		t.Fatal("a remote member or our own process is watched")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := watchProcess(cmd.Process.Pid)
	defer p.close()
	if p.pidfd == nil {
		t.Fatal("no pidfd for a live child") // Linux 5.3+, as everywhere this runs
	}
	if p.exited() {
		t.Fatal("a live process counts as exited")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !p.exited() { // the zombie, before Wait reaps it
		if time.Now().After(deadline) {
			t.Fatal("a killed, unreaped process does not count as exited")
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Wait()
	if !p.exited() {
		t.Fatal("a reaped process does not count as exited")
	}
	p.close()
	if p.exited() {
		t.Fatal("a closed watch reports an exit")
	}
}
