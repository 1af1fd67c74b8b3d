package shmem

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestProcessExited watches a child process: alive, then killed and not yet reaped (a zombie,
// which kill(pid, 0) still finds), then reaped.
func TestProcessExited(t *testing.T) {
	if watchProcess(0, -1) != nil || watchProcess(os.Getpid(), -1) != nil {
		t.Fatal("a remote member or our own process is watched")
	}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := watchProcess(cmd.Process.Pid, -1)
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

// TestBeacon watches a child process through its beacon: alive, then dead by the time the
// child's kill is known (no polling: the kernel marks the beacon during the exit). Files of
// the child that are not its beacon are refused.
func TestBeacon(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SHMEM_BEACON_HELPER=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var pid, fd, exe int
	if _, err := fmt.Fscan(out, &pid, &fd, &exe); err != nil || pid != cmd.Process.Pid {
		t.Fatalf("helper said pid %d fd %d exe %d, %v", pid, fd, exe, err)
	}
	for _, other := range []int{0, exe} { // /dev/null, and a regular file of over 4 KiB
		if _, err := openBeacon(pid, other); err == nil {
			t.Errorf("fd %d, not a beacon, was taken for one", other)
		}
	}
	p := watchProcess(pid, fd)
	if p.beacon == nil {
		t.Fatal("the child's beacon did not open")
	}
	defer p.close()
	if p.exited() {
		t.Fatal("a live process counts as exited")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := cmd.Process.Wait(); err != nil {
		t.Fatal(err)
	}
	if !p.exited() {
		t.Fatal("a killed process does not count as exited once its death is known")
	}
}
