package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usageText = `usage: rdmakit lab [-t SECS] [-w DIR]... [-e NAME=VALUE]... [-v] -- CMD [ARG...]

Runs CMD in a throwaway qemu VM (no KVM needed) that boots Debian 12's stock kernel with
SoftRoCE set up: rxe0 on veth0 (10.77.0.1/24, fd77::1/64), RDMAKIT_LAB=1 RDMAKIT_DEVICE=rxe0
RDMAKIT_IP=10.77.0.1 RDMAKIT_NETDEV=veth0 in CMD's environment, no memlock limit. The guest's
root is the host's / read-only: host binaries run as they are; writes outside -w directories are
lost. CMD runs as root in the current directory. The exit status is CMD's, 124 when the time ran
out, 125 when the VM failed. The first run downloads the kernel package (~70 MB, apt-get).

Options:
  -t SECS         stop the VM after SECS seconds (or a duration such as 5m), boot included
                  (default: $RDMAKIT_LAB_TIMEOUT or 900)
  -w DIR          share host directory DIR read-write at the same path (repeatable)
  -e NAME=VALUE   set NAME for CMD (repeatable); host variables named GO* and RDMAKIT_* pass
                  through by themselves
  -v              copy the guest's console to stderr

Environment: RDMAKIT_LAB_CACHE (cache directory), RDMAKIT_LAB_KERNEL_PKG (kernel package to
use), RDMAKIT_LAB_KERNEL_DEB (kernel .deb file to use), RDMAKIT_LAB_MODULES (more modules to
load), RDMAKIT_LAB_MEM (2G), RDMAKIT_LAB_SMP (2).
`

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// errHelp is returned by parseArgs for -h.
var errHelp = errors.New("help requested")

// Main is the `rdmakit lab` command: args are the arguments after "lab". It runs the command in
// the lab VM with the process's stdout and stderr, stops the VM on SIGINT or SIGTERM, and returns
// the exit status for os.Exit: the command's, ExitTimeout, ExitVMFailed, or ExitUsage when args
// are wrong.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	return command(ctx, args, os.Stdout, os.Stderr)
}

// command is Main with its context and output given.
func command(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opt, argv, err := parseArgs(args)
	if errors.Is(err, errHelp) {
		fmt.Fprint(stdout, usageText)
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "rdmakit lab: %v\n%s", err, strings.SplitN(usageText, "\n", 2)[0]+"\n")
		return ExitUsage
	}
	opt.Stdout, opt.Stderr = stdout, stderr
	code, err := Run(ctx, opt, argv)
	if err != nil {
		fmt.Fprintf(stderr, "rdmakit %v\n", err)
		if ctx.Err() != nil {
			return 128 + int(syscall.SIGINT)
		}
		if code < 0 {
			code = ExitVMFailed
		}
	}
	return code
}

// parseArgs turns the `rdmakit lab` arguments into Options and the command to run.
func parseArgs(args []string) (Options, []string, error) {
	var opt Options
	fs := flag.NewFlagSet("rdmakit lab", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Func("t", "", func(s string) error {
		d, err := parseTimeout(s)
		opt.Timeout = d
		return err
	})
	fs.Func("w", "", func(s string) error {
		if st, err := os.Stat(s); err != nil || !st.IsDir() {
			return errors.New("not a directory")
		}
		opt.Writable = append(opt.Writable, s)
		return nil
	})
	fs.Func("e", "", func(s string) error {
		if !envName.MatchString(s) {
			return errors.New("want NAME=VALUE")
		}
		opt.Env = append(opt.Env, s)
		return nil
	})
	fs.BoolVar(&opt.Verbose, "v", false, "")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return opt, nil, errHelp
		}
		return opt, nil, err
	}
	if fs.NArg() == 0 {
		return opt, nil, errors.New("no command given")
	}
	return opt, fs.Args(), nil
}

// parseTimeout reads -t: whole seconds, or a Go duration.
func parseTimeout(s string) (time.Duration, error) {
	if n, err := strconv.ParseUint(s, 10, 31); err == nil && n > 0 {
		return time.Duration(n) * time.Second, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return d, nil
	}
	return 0, errors.New("want seconds or a duration, above zero")
}
