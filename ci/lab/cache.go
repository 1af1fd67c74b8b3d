package lab

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// modulePath is the module whose checkout keeps its lab cache in .cache/lab.
const modulePath = "github.com/rdmakit/rdmakit"

// CacheDir returns the lab's cache directory: dir when not empty, else $RDMAKIT_LAB_CACHE, else
// .cache/lab in the rdmakit checkout holding the current directory, else rdmakit/lab in the
// user's cache directory ($XDG_CACHE_HOME or ~/.cache). It does not create it.
func CacheDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(EnvCache)
	}
	if dir == "" {
		if wd, err := os.Getwd(); err == nil {
			if root := repoRoot(wd); root != "" {
				dir = filepath.Join(root, ".cache", "lab")
			}
		}
	}
	if dir == "" {
		user, err := os.UserCacheDir()
		if err != nil {
			return "", fmt.Errorf("lab: no cache directory: %w", err)
		}
		dir = filepath.Join(user, "rdmakit", "lab")
	}
	return filepath.Abs(dir)
}

// repoRoot returns the directory at or above dir whose go.mod declares modulePath, or "".
func repoRoot(dir string) string {
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			found := declaresModule(f)
			f.Close()
			if found {
				return dir
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// declaresModule reports whether the go.mod read from f declares modulePath.
func declaresModule(f *os.File) bool {
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fields := strings.Fields(sc.Text()); len(fields) == 2 && fields[0] == "module" {
			return strings.Trim(fields[1], `"`) == modulePath
		}
	}
	return false
}

// writeScript makes dir/vm.sh hold the embedded script and returns its path. A copy that is
// already right is left alone; otherwise it is replaced in one rename, so that concurrent runs
// never see half a script.
func writeScript(dir string) (string, error) {
	path := filepath.Join(dir, "vm.sh")
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, script) {
		return path, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	f, err := os.CreateTemp(dir, ".vm.sh.*")
	if err != nil {
		return "", fmt.Errorf("lab: %w", err)
	}
	_, err = f.Write(script)
	err = errors.Join(err, f.Chmod(0o755), f.Close())
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("lab: writing the script: %w", err)
	}
	return path, nil
}
