package lab

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// End-to-end tests: they boot three VMs (two at once), ~30 s in all once the kernel is cached.

// envVMTests turns the VM tests on; the Makefile's lab target sets it.
const envVMTests = "RDMAKIT_LAB_VM_TESTS"

func needVM(t *testing.T) {
	t.Helper()
	if os.Getenv(envVMTests) != "1" {
		t.Skipf("boots qemu VMs (~7 s each, ~70 MB download the first time): set %s=1, as `make lab` does", envVMTests)
	}
}

// guestProbe runs in the guest as `bash -c guestProbe probe HOSTFILE RWDIR`: it prints
// key=value lines about the VM, leaves a file in RWDIR, writes to stderr and exits 7.
const guestProbe = `
echo "state=$(cat /sys/class/infiniband/rxe0/ports/1/state)"
echo "rdma=$(rdma link show rxe0/1)"
echo "veth0=$(ip -br addr show dev veth0 | tr -s ' ' | cut -d' ' -f3-)"
echo "memlock=$(ulimit -l)"
echo "pwd=$PWD"
for v in RDMAKIT_LAB RDMAKIT_DEVICE RDMAKIT_IP RDMAKIT_NETDEV RDMAKIT_PROBE_HOST RDMAKIT_PROBE_FLAG GOTRACEBACK RDMAKIT_LAB_PROBE PROBE_OTHER; do
  echo "env.$v=${!v-unset}"
done
echo "hostfile=$(cat "$1")"
sysctl -qw net.mpls.platform_labels=1000 && ip -f mpls route add 100 dev lo && echo "mpls=$(ip -M route show | xargs)"
echo written-in-the-guest > "$2/guest-file"
echo "probe-stderr" >&2
exit 7
`

// TestVM boots two VMs at once: one probes the guest, the other runs out of time.
func TestVM(t *testing.T) {
	needVM(t)
	t.Run("Probe", func(t *testing.T) {
		t.Parallel()
		tmp := t.TempDir() // under the host's /tmp: the guest must see it
		hostFile := filepath.Join(tmp, "host-file")
		if err := os.WriteFile(hostFile, []byte("written-on-the-host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		rw := filepath.Join(tmp, "rw")
		if err := os.Mkdir(rw, 0o755); err != nil {
			t.Fatal(err)
		}
		hostEnv := append(os.Environ(), "RDMAKIT_PROBE_HOST=host", "RDMAKIT_PROBE_FLAG=host",
			"GOTRACEBACK=crash", "RDMAKIT_LAB_PROBE=knob", "PROBE_OTHER=host")
		var stdout, stderr bytes.Buffer
		opt := Options{
			Timeout:  5 * time.Minute,
			Writable: []string{rw},
			Env:      []string{"RDMAKIT_PROBE_FLAG=flag"},
			HostEnv:  hostEnv,
			Dir:      tmp,
			Stdout:   &stdout,
			Stderr:   &stderr,
		}
		code, err := Run(context.Background(), opt, []string{"bash", "-c", guestProbe, "probe", hostFile, rw})
		t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
		if err != nil || code != 7 {
			t.Fatalf("Run = %d, %v; want the command's exit status 7", code, err)
		}
		got := map[string]string{}
		for _, line := range strings.Split(stdout.String(), "\n") {
			if k, v, ok := strings.Cut(line, "="); ok {
				got[k] = v
			}
		}
		for k, want := range map[string]string{
			"state":                  "4: ACTIVE",
			"memlock":                "unlimited",
			"pwd":                    tmp,
			"hostfile":               "written-on-the-host",
			"env.RDMAKIT_LAB":        "1",
			"env.RDMAKIT_DEVICE":     "rxe0",
			"env.RDMAKIT_IP":         "10.77.0.1",
			"env.RDMAKIT_NETDEV":     "veth0",
			"env.RDMAKIT_PROBE_HOST": "host",
			"env.RDMAKIT_PROBE_FLAG": "flag",
			"env.GOTRACEBACK":        "crash",
			"env.RDMAKIT_LAB_PROBE":  "unset",
			"env.PROBE_OTHER":        "unset",
			"mpls":                   "100 dev lo",
		} {
			if got[k] != want {
				t.Errorf("guest %s = %q, want %q", k, got[k], want)
			}
		}
		for k, want := range map[string]string{"rdma": "netdev veth0", "veth0": "10.77.0.1/24 fd77::1/64"} {
			if !strings.Contains(got[k], want) {
				t.Errorf("guest %s = %q, want it to hold %q", k, got[k], want)
			}
		}
		if strings.Contains(stdout.String(), "probe-stderr") || !strings.Contains(stderr.String(), "probe-stderr") {
			t.Error("the guest's stderr did not come back on stderr alone")
		}
		if b, err := os.ReadFile(filepath.Join(rw, "guest-file")); err != nil || string(b) != "written-in-the-guest\n" {
			t.Errorf("file written in the -w directory: %q, %v", b, err)
		}
	})
	t.Run("Timeout", func(t *testing.T) {
		t.Parallel()
		var stdout, stderr bytes.Buffer
		opt := Options{Timeout: 15 * time.Second, Stdout: &stdout, Stderr: &stderr}
		start := time.Now()
		code, err := Run(context.Background(), opt, []string{"sh", "-c", "echo started; exec sleep 600"})
		t.Logf("after %v, stdout %q, stderr:\n%s", time.Since(start).Round(time.Second), stdout.String(), stderr.String())
		if err != nil || code != ExitTimeout {
			t.Fatalf("Run = %d, %v; want %d", code, err, ExitTimeout)
		}
		if !strings.Contains(stderr.String(), "timed out") {
			t.Error("stderr does not say that the VM timed out")
		}
	})
}

// TestGoTestExec runs a cgo test binary, built with -race, through `go test -exec vm.sh`.
func TestGoTestExec(t *testing.T) {
	needVM(t)
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatal(err)
	}
	vm, err := filepath.Abs("vm.sh")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(gocmd, "test", "-race", "-count=1", "-v", "-exec", vm+" --", "./testdata/ibvdevs")
	out, err := cmd.CombinedOutput()
	t.Logf("go test -race -exec vm.sh ./testdata/ibvdevs:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`devices: ["rxe0"]`, "--- PASS: TestLabDevice"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the output does not hold %q", want)
		}
	}
}
