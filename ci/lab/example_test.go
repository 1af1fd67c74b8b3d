package lab_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rdmakit/rdmakit/ci/lab"
)

// Run a host binary against the lab's rxe0 and look at how it ended.
func ExampleRun() {
	opt := lab.Options{Timeout: 2 * time.Minute, Stdout: os.Stdout, Stderr: os.Stderr}
	code, err := lab.Run(context.Background(), opt, []string{"ibv_devinfo", "-d", "rxe0"})
	switch {
	case err != nil:
		fmt.Println("could not run the lab:", err)
	case code == lab.ExitTimeout:
		fmt.Println("the VM ran out of time")
	case code == lab.ExitVMFailed:
		fmt.Println("the VM failed: its console log is under", "logs/ in the lab's cache directory")
	default:
		fmt.Println("ibv_devinfo exited with status", code)
	}
}

// `rdmakit lab -t 120 -e FI_LOG_LEVEL=warn -- fi_info -p verbs`: libfabric's verbs provider
// over rxe0, the status of fi_info as the process's.
func ExampleMain() {
	os.Exit(lab.Main([]string{"-t", "120", "-e", "FI_LOG_LEVEL=warn", "--", "fi_info", "-p", "verbs"}))
}
