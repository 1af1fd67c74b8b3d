// Package lab runs commands in the SoftRoCE lab: a throwaway qemu VM that boots Debian 12's stock
// kernel with kernel RDMA set up (rxe0 on veth0, 10.77.0.1), for machines whose own kernel has
// none. The VM's root file system is the host's / (read-only, writes go to a tmpfs overlay), so
// host-built binaries, test binaries included, run in it unchanged.
//
// The work is done by vm.sh, a bash script embedded in this package (ci/lab/vm.sh in the
// repository, usable on its own and as `go test -exec`). Run writes it into a cache directory and
// runs it; Main is the `rdmakit lab` command.
package lab

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
)

//go:embed vm.sh
var script []byte

// Exit statuses of Run and Main besides the command's own.
const (
	// ExitUsage is the status of a usage error.
	ExitUsage = 2
	// ExitTimeout is the status when the VM ran out of time.
	ExitTimeout = 124
	// ExitVMFailed is the status when the VM failed before the command finished.
	ExitVMFailed = 125
)

// Environment variables the lab reads on the host.
const (
	// EnvCache names the cache directory (see CacheDir).
	EnvCache = "RDMAKIT_LAB_CACHE"
	// EnvKernelPkg pins the kernel package, e.g. linux-image-6.1.0-56-amd64.
	EnvKernelPkg = "RDMAKIT_LAB_KERNEL_PKG"
	// EnvKernelDeb names a kernel .deb file to use instead of downloading one.
	EnvKernelDeb = "RDMAKIT_LAB_KERNEL_DEB"
)

// ErrNoCommand is returned by Run when it is given no command.
var ErrNoCommand = errors.New("lab: no command")

// stopGrace is how long Run waits for the script to end the VM after its context is done.
const stopGrace = 30 * time.Second

// Options tune Run. The zero value runs the command in the current directory with the script's
// defaults and discards its output.
type Options struct {
	// Timeout bounds the VM's whole life, boot included; it is rounded up to whole seconds.
	// Zero means the script's default: RDMAKIT_LAB_TIMEOUT, else 900 s.
	Timeout time.Duration
	// Writable lists host directories shared read-write with the guest, at the same paths.
	// Everything else the command writes is lost with the VM.
	Writable []string
	// Env holds NAME=VALUE settings for the command; they win over every other setting.
	Env []string
	// HostEnv is the environment of the script on the host, which holds the lab's knobs
	// (RDMAKIT_LAB_*) and the variables passed through to the command (names starting with GO
	// or RDMAKIT_). Nil means os.Environ().
	HostEnv []string
	// Dir is the directory the command runs in; empty means the current directory.
	Dir string
	// CacheDir keeps the script, the kernel package and the built kernel and initramfs;
	// empty means CacheDir("").
	CacheDir string
	// Verbose copies the guest's console (kernel and init messages) to Stderr.
	Verbose bool
	// Stdout and Stderr receive the command's stdout and stderr, and the lab's own messages
	// (on Stderr). Nil discards, as with os/exec.
	Stdout, Stderr io.Writer
}

// Run runs argv in a fresh lab VM and returns its exit status, or ExitTimeout or ExitVMFailed;
// a usage error in opt gives ExitUsage. The first run downloads the kernel package (~70 MB,
// with apt-get) and builds an initramfs; later ones take a few seconds to boot.
//
// The error is non-nil only when the script could not run to its end: argv is empty, the cache
// is not writable, bash is missing, or ctx was done (the VM is then stopped and the status is
// that of the stopped script).
func Run(ctx context.Context, opt Options, argv []string) (exitCode int, err error) {
	if len(argv) == 0 {
		return ExitUsage, ErrNoCommand
	}
	if opt.Timeout < 0 {
		return ExitUsage, fmt.Errorf("lab: negative timeout %v", opt.Timeout)
	}
	dir, err := CacheDir(opt.CacheDir)
	if err != nil {
		return ExitVMFailed, err
	}
	path, err := writeScript(dir)
	if err != nil {
		return ExitVMFailed, err
	}
	args := []string{path}
	if opt.Timeout > 0 {
		args = append(args, "-t", strconv.FormatInt(int64((opt.Timeout+time.Second-1)/time.Second), 10))
	}
	for _, d := range opt.Writable {
		args = append(args, "-w", d)
	}
	for _, e := range opt.Env {
		args = append(args, "-e", e)
	}
	if opt.Verbose {
		args = append(args, "-v")
	}
	args = append(append(args, "--"), argv...)

	cmd := exec.CommandContext(ctx, "bash", args...)
	env := opt.HostEnv
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = append(env[:len(env):len(env)], EnvCache+"="+dir)
	cmd.Dir = opt.Dir
	cmd.Stdout, cmd.Stderr = opt.Stdout, opt.Stderr
	// SIGTERM lets the script stop qemu and remove its run directory.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	err = cmd.Run()
	code := cmd.ProcessState.ExitCode() // -1 when it did not start or was killed
	if ctx.Err() != nil {
		return code, fmt.Errorf("lab: %w", context.Cause(ctx))
	}
	var exitErr *exec.ExitError
	if err != nil && !(errors.As(err, &exitErr) && code >= 0) {
		return code, fmt.Errorf("lab: %w", err)
	}
	return code, nil
}
