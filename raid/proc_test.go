package raid

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rdmakit/rdmakit/fabric"
)

// TestMain lets the test binary run as a target or controller process (RAID_TEST_HELPER).
func TestMain(m *testing.M) {
	if role := os.Getenv("RAID_TEST_HELPER"); role != "" {
		os.Exit(helperMain(role, os.Getenv("RAID_TEST_CONFIG")))
	}
	os.Exit(m.Run())
}

func helperMain(role, cfg string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var addr string
	var closer func() error
	switch role {
	case "target":
		var h helperConfig
		if err := json.Unmarshal([]byte(cfg), &h); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		c := TargetConfig{Listen: h.Listen, Store: h.Store, Size: h.Size}
		t, err := NewTarget(ctx, c)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		addr, closer = t.Addr(), t.Close
	case "controller":
		var h helperConfig
		if err := json.Unmarshal([]byte(cfg), &h); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		c := ControllerConfig{Listen: h.Listen, Level: h.Level, Chunk: h.Chunk, Members: h.Members, StateDir: h.StateDir, Timeout: h.Timeout}
		if !h.Quiet {
			c.Logf = LogTo("controller: ")
		}
		ctl, err := NewController(ctx, c)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		addr, closer = ctl.Addr(), ctl.Close
	default:
		return 2
	}
	fmt.Printf("ADDR %s\n", addr)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
	<-ch
	closer()
	return 0
}

// helperConfig carries a role's configuration to a helper process.
type helperConfig struct {
	Listen, Store, Level, StateDir string
	Size                           int64
	Chunk                          int
	Members                        []string
	Timeout                        time.Duration
	Quiet                          bool
}

// proc is a helper process.
type proc struct {
	cmd    *exec.Cmd
	addr   string
	listen string // the address it was told to listen on
	done   chan struct{}
}

// startProc runs the test binary as role with cfg and waits for its address.
func startProc(t testing.TB, role string, cfg any) *proc {
	t.Helper()
	var hc helperConfig
	switch c := cfg.(type) {
	case TargetConfig:
		hc = helperConfig{Listen: c.Listen, Store: c.Store, Size: c.Size}
	case ControllerConfig:
		hc = helperConfig{Listen: c.Listen, Level: c.Level, Chunk: c.Chunk, Members: c.Members, StateDir: c.StateDir,
			Timeout: c.Timeout, Quiet: !testing.Verbose()}
	}
	b, err := json.Marshal(hc)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "RAID_TEST_HELPER="+role, "RAID_TEST_CONFIG="+string(b))
	cmd.Stderr = &prefixWriter{t: t, prefix: role}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, listen: hc.Listen, done: make(chan struct{})}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
	}()
	go func() { cmd.Wait(); close(p.done) }()
	t.Cleanup(p.stop)
	select {
	case l := <-lines:
		addr, ok := strings.CutPrefix(l, "ADDR ")
		if !ok {
			t.Fatalf("%s: unexpected output %q", role, l)
		}
		p.addr = addr
	case <-p.done:
		t.Fatalf("%s exited: %v", role, cmd.ProcessState)
	case <-time.After(60 * time.Second):
		p.cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, on stderr
		time.Sleep(2 * time.Second)
		t.Fatalf("%s did not start", role)
	}
	return p
}

// kill is kill -9.
func (p *proc) kill() {
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	p.removeShm()
}

// stop asks the process to close down (closing its fabric removes its shm regions) and kills it
// if it does not within a few seconds.
func (p *proc) stop() {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Signal(syscall.SIGKILL)
		<-p.done
	}
	p.removeShm()
}

// removeShm removes what the dead process left in /dev/shm: libfabric shm regions are files
// named after the endpoint's address, and only a clean close removes them.
func (p *proc) removeShm() {
	a, err := fabric.ParseAddr(p.listen)
	if err != nil || a.Provider != "shm" || a.Host == "" || strings.ContainsAny(a.Host, "/*?[") {
		return
	}
	files, _ := filepath.Glob(filepath.Join("/dev/shm", a.Host+":*"))
	for _, f := range files {
		os.Remove(f)
	}
}

type prefixWriter struct {
	t      testing.TB
	prefix string
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		fmt.Fprintf(os.Stderr, "    [%s] %s\n", w.prefix, l)
	}
	return len(b), nil
}
