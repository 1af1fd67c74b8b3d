package ofi

// #cgo pkg-config: libfabric
import "C"
