// Command ibvdevs prints the names of the RDMA devices libibverbs finds, one a line. The lab's
// end-to-end test runs it, and its test, inside the VM: a cgo binary built on the host.
package main

/*
#cgo pkg-config: libibverbs
#include <stdlib.h>
#include <string.h>
#include <infiniband/verbs.h>

// device_names returns the devices' names, NUL-separated, in a malloc'ed buffer (or NULL), and
// their number in *n; errno is set when libibverbs fails.
static char *device_names(int *n) {
	struct ibv_device **list = ibv_get_device_list(n);
	if (list == NULL)
		return NULL;
	size_t size = 1;
	for (int i = 0; i < *n; i++)
		size += strlen(ibv_get_device_name(list[i])) + 1;
	char *buf = calloc(1, size), *p = buf;
	for (int i = 0; buf != NULL && i < *n; i++) {
		const char *name = ibv_get_device_name(list[i]);
		memcpy(p, name, strlen(name));
		p += strlen(name) + 1;
	}
	ibv_free_device_list(list);
	return buf;
}
*/
import "C"

import (
	"fmt"
	"os"
	"unsafe"
)

// deviceNames lists the RDMA devices through ibv_get_device_list.
func deviceNames() ([]string, error) {
	var n C.int
	buf, err := C.device_names(&n)
	if buf == nil {
		return nil, fmt.Errorf("ibv_get_device_list: %w", err)
	}
	defer C.free(unsafe.Pointer(buf))
	names := make([]string, 0, int(n))
	p := buf
	for range int(n) {
		name := C.GoString(p)
		names = append(names, name)
		p = (*C.char)(unsafe.Add(unsafe.Pointer(p), len(name)+1))
	}
	return names, nil
}

func main() {
	names, err := deviceNames()
	if err != nil {
		fmt.Fprintln(os.Stderr, "ibvdevs:", err)
		os.Exit(1)
	}
	for _, name := range names {
		fmt.Println(name)
	}
}
