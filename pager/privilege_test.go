package pager

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestNoPrivilege runs New as an unprivileged user (nobody): userfaultfd must be refused with
// an error that says what is needed. Only root can switch users, so others skip.
func TestNoPrivilege(t *testing.T) {
	if os.Getenv(helperEnv) == "noprivilege" {
		_, err := New(t.Context(), "ofi+tcp://127.0.0.1:1", Options{})
		if !errors.Is(err, ErrPrivilege) {
			t.Fatalf("New as uid %d: %v, want ErrPrivilege", os.Getuid(), err)
		}
		t.Log(err)
		return
	}
	if os.Getuid() != 0 {
		t.Skip("needs root to run a helper as another user")
	}
	if b, _ := os.ReadFile("/proc/sys/vm/unprivileged_userfaultfd"); strings.TrimSpace(string(b)) == "1" {
		t.Skip("vm.unprivileged_userfaultfd=1: every user may use userfaultfd here")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "pager.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for d := dir; d != filepath.Dir(d) && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	cmd := exec.Command(exe, "-test.run=^TestNoPrivilege$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), helperEnv+"=noprivilege")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("unprivileged helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "CAP_SYS_PTRACE") || !strings.Contains(string(out), "/dev/userfaultfd") {
		t.Fatalf("the error does not say what is needed:\n%s", out)
	}
	t.Logf("%s", out)
}
