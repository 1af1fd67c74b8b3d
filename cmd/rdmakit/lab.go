package main

import "github.com/rdmakit/rdmakit/ci/lab"

func init() {
	register("lab", "run a command in a throwaway VM with kernel SoftRoCE (rxe0), no RDMA hardware needed", lab.Main)
}
