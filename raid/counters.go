package raid

import "sync/atomic"

// ControllerCounters are the controller's data-path counters.
type ControllerCounters struct {
	Writes, Reads        uint64 // host requests done
	WriteBytes           uint64 // bytes hosts wrote
	ReadBytes            uint64 // bytes hosts read
	HostReadForParity    uint64 // bytes the controller RDMA-read from hosts to compute parity
	HostProbeBytes       uint64 // bytes read from hosts to validate descriptors
	ParityToTargets      uint64 // parity bytes targets pulled from controller memory
	DataToTargets        uint64 // data bytes targets pulled from controller memory (0 on the direct path)
	ReconstructedToHost  uint64 // degraded-read bytes the controller wrote into host memory
	ChunksFromTargets    uint64 // bytes targets pushed into controller memory (RMW, degraded, rebuild)
	RebuildBytes         uint64 // reconstructed bytes written to replacement members
	FullStripes          uint64
	RMWStripes           uint64 // read-modify-write partial stripes
	RCWStripes           uint64 // reconstruct-write partial stripes
	DegradedStripes      uint64 // stripes read or written with a member missing
	Resynced             uint64 // stripes resynced from the write-intent log
	MemberFailures       uint64
	ThroughControllerOps uint64 // requests that used the classic through-controller path
}

type counters struct{ v [18]atomic.Uint64 }

const (
	cWrites = iota
	cReads
	cWriteBytes
	cReadBytes
	cHostReadParity
	cHostProbe
	cParityToTargets
	cDataToTargets
	cReconToHost
	cChunksFromTargets
	cRebuild
	cFull
	cRMW
	cRCW
	cDegraded
	cResynced
	cMemberFailures
	cThrough
)

func (c *counters) add(i int, n uint64) {
	if i < len(c.v) {
		c.v[i].Add(n)
	}
}

func (c *counters) snapshot() ControllerCounters {
	g := func(i int) uint64 { return c.v[i].Load() }
	return ControllerCounters{g(cWrites), g(cReads), g(cWriteBytes), g(cReadBytes), g(cHostReadParity),
		g(cHostProbe), g(cParityToTargets), g(cDataToTargets), g(cReconToHost), g(cChunksFromTargets),
		g(cRebuild), g(cFull), g(cRMW), g(cRCW), g(cDegraded), g(cResynced), g(cMemberFailures), g(cThrough)}
}

// TargetCounters are one target's data-path counters, as it counts them itself.
type TargetCounters struct {
	PulledFromHost       uint64 // RDMA READ from host memory (data of writes)
	PushedToHost         uint64 // RDMA WRITE into host memory (data of reads)
	PulledFromController uint64 // RDMA READ from controller memory (parity, rebuild, through-controller data)
	PushedToController   uint64 // RDMA WRITE into controller memory (RMW, degraded reads, rebuild)
	Syncs                uint64 // fdatasync calls
	Commands             uint64
}
