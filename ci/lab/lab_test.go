package lab

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Host-side tests: none of them boots a VM.

func TestEmbeddedScriptIsVMSh(t *testing.T) {
	disk, err := os.ReadFile("vm.sh")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(disk, script) {
		t.Fatal("the embedded script differs from vm.sh: rebuild")
	}
	st, err := os.Stat("vm.sh")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o111 == 0 {
		t.Errorf("vm.sh is not executable: %v", st.Mode())
	}
}

func TestScriptParses(t *testing.T) {
	out, err := exec.Command("bash", "-n", "vm.sh").CombinedOutput()
	if err != nil {
		t.Fatalf("bash -n vm.sh: %v\n%s", err, out)
	}
}

func TestParseArgs(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		opt  Options
		argv []string
	}{
		{[]string{"--", "true"}, Options{}, []string{"true"}},
		{[]string{"ibv_devices"}, Options{}, []string{"ibv_devices"}},
		{[]string{"-t", "30", "--", "sh", "-c", "exit 3"}, Options{Timeout: 30 * time.Second}, []string{"sh", "-c", "exit 3"}},
		{[]string{"-t", "2m", "--", "true"}, Options{Timeout: 2 * time.Minute}, []string{"true"}},
		{
			[]string{"-w", dir, "-e", "A=1", "-e", "B=x=y", "-w", dir, "-v", "--", "go", "-v", "--", "x"},
			Options{Writable: []string{dir, dir}, Env: []string{"A=1", "B=x=y"}, Verbose: true},
			[]string{"go", "-v", "--", "x"},
		},
		{[]string{"-e", "EMPTY=", "--", "env"}, Options{Env: []string{"EMPTY="}}, []string{"env"}},
	}
	for _, tt := range tests {
		opt, argv, err := parseArgs(tt.args)
		if err != nil {
			t.Errorf("parseArgs(%q): %v", tt.args, err)
			continue
		}
		if !reflect.DeepEqual(opt, tt.opt) || !reflect.DeepEqual(argv, tt.argv) {
			t.Errorf("parseArgs(%q) = %+v, %q; want %+v, %q", tt.args, opt, argv, tt.opt, tt.argv)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, args := range [][]string{
		nil,
		{"--"},
		{"-t", "5"},
		{"-t", "0", "--", "true"},
		{"-t", "-3", "--", "true"},
		{"-t", "soon", "--", "true"},
		{"-e", "NOEQUALS", "--", "true"},
		{"-e", "1X=y", "--", "true"},
		{"-w", missing, "--", "true"},
		{"-x", "--", "true"},
		{"-t"},
	} {
		var stdout, stderr bytes.Buffer
		if code := command(context.Background(), args, &stdout, &stderr); code != ExitUsage {
			t.Errorf("rdmakit lab %q: exit %d, want %d", args, code, ExitUsage)
		}
		if !strings.Contains(stderr.String(), "usage: rdmakit lab") || stdout.Len() != 0 {
			t.Errorf("rdmakit lab %q: stdout %q, stderr %q; want the usage line on stderr", args, stdout.String(), stderr.String())
		}
	}
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := command(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Errorf("rdmakit lab -h: exit %d", code)
	}
	for _, want := range []string{"usage: rdmakit lab", "-t SECS", "-w DIR", "-e NAME=VALUE", "RDMAKIT_LAB_KERNEL_PKG"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("rdmakit lab -h does not mention %q", want)
		}
	}
}

func TestRunNoCommand(t *testing.T) {
	code, err := Run(context.Background(), Options{CacheDir: t.TempDir()}, nil)
	if !errors.Is(err, ErrNoCommand) || code != ExitUsage {
		t.Errorf("Run without a command = %d, %v; want %d, ErrNoCommand", code, err, ExitUsage)
	}
}

func TestRunCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Options{CacheDir: t.TempDir()}, []string{"true"}); !errors.Is(err, context.Canceled) {
		t.Errorf("Run with a done context: %v, want context.Canceled", err)
	}
}

// TestRunScriptUsageError runs the installed script up to its own argument check.
func TestRunScriptUsageError(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "cache")
	var stderr bytes.Buffer
	code, err := Run(context.Background(), Options{CacheDir: cache, Env: []string{"1BAD=x"}, Stderr: &stderr}, []string{"true"})
	if err != nil || code != ExitUsage {
		t.Fatalf("Run with -e 1BAD=x = %d, %v; want %d", code, err, ExitUsage)
	}
	if !strings.Contains(stderr.String(), "1BAD=x") {
		t.Errorf("stderr %q does not name the bad setting", stderr.String())
	}
	installed, err := os.ReadFile(filepath.Join(cache, "vm.sh"))
	if err != nil || !bytes.Equal(installed, script) {
		t.Errorf("cache/vm.sh is not the embedded script (%v)", err)
	}
	// a second run keeps the right copy; a damaged one is replaced
	if err := os.WriteFile(filepath.Join(cache, "vm.sh"), []byte("exit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, err := Run(context.Background(), Options{CacheDir: cache, Env: []string{"1BAD=x"}}, []string{"true"}); err != nil || code != ExitUsage {
		t.Errorf("Run over a damaged copy = %d, %v; want %d", code, err, ExitUsage)
	}
	if installed, _ := os.ReadFile(filepath.Join(cache, "vm.sh")); !bytes.Equal(installed, script) {
		t.Error("the damaged copy was not replaced")
	}
}

// TestRunMissingKernel checks that a VM that cannot be set up says why and exits ExitVMFailed.
func TestRunMissingKernel(t *testing.T) {
	var stderr bytes.Buffer
	env := append(os.Environ(), EnvKernelDeb+"=/nonexistent/linux-image.deb")
	code, err := Run(context.Background(), Options{CacheDir: t.TempDir(), HostEnv: env, Stderr: &stderr}, []string{"true"})
	if err != nil || code != ExitVMFailed {
		t.Fatalf("Run with a missing kernel = %d, %v; want %d", code, err, ExitVMFailed)
	}
	if !strings.HasPrefix(stderr.String(), "lab: ") {
		t.Errorf("stderr %q: want a lab: message", stderr.String())
	}
}

func TestCacheDir(t *testing.T) {
	explicit := t.TempDir()
	if got, err := CacheDir(explicit); err != nil || got != explicit {
		t.Errorf("CacheDir(%q) = %q, %v", explicit, got, err)
	}
	fromEnv := t.TempDir()
	t.Setenv(EnvCache, fromEnv)
	if got, err := CacheDir(""); err != nil || got != fromEnv {
		t.Errorf("with %s=%s: CacheDir = %q, %v", EnvCache, fromEnv, got, err)
	}
	t.Setenv(EnvCache, "")
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := CacheDir(""); err != nil || got != filepath.Join(root, ".cache", "lab") {
		t.Errorf("in the repository: CacheDir = %q, %v; want %s/.cache/lab", got, err, root)
	}
	outside := t.TempDir()
	t.Chdir(outside)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(outside, "xdg"))
	if got, err := CacheDir(""); err != nil || got != filepath.Join(outside, "xdg", "rdmakit", "lab") {
		t.Errorf("outside the repository: CacheDir = %q, %v; want $XDG_CACHE_HOME/rdmakit/lab", got, err)
	}
}
