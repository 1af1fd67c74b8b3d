package verbs

/*
#include "shim.h"

// The posting helpers copy the work requests and write *posted before they return; they keep
// no pointer and call no Go: the caller's arguments need not move to the heap (an allocation
// per post otherwise).
#cgo noescape rk_post_send
#cgo nocallback rk_post_send
#cgo noescape rk_post_recv
#cgo nocallback rk_post_recv

static int rk_qp_state(struct ibv_qp *qp, int *state) {
	struct ibv_qp_attr a;
	struct ibv_qp_init_attr ia;
	int rc = ibv_query_qp(qp, &a, IBV_QP_STATE, &ia);
	*state = a.qp_state;
	return rc;
}
*/
import "C"

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"unsafe"
)

// QPType is enum ibv_qp_type.
type QPType int

// QP types.
const (
	QPTypeRC QPType = C.IBV_QPT_RC
	QPTypeUC QPType = C.IBV_QPT_UC
	QPTypeUD QPType = C.IBV_QPT_UD
)

// QPState is enum ibv_qp_state.
type QPState int

// QP states.
const (
	QPStateReset QPState = C.IBV_QPS_RESET
	QPStateInit  QPState = C.IBV_QPS_INIT
	QPStateRTR   QPState = C.IBV_QPS_RTR
	QPStateRTS   QPState = C.IBV_QPS_RTS
	QPStateSQD   QPState = C.IBV_QPS_SQD
	QPStateSQE   QPState = C.IBV_QPS_SQE
	QPStateErr   QPState = C.IBV_QPS_ERR
)

func (s QPState) String() string {
	switch s {
	case QPStateReset:
		return "RESET"
	case QPStateInit:
		return "INIT"
	case QPStateRTR:
		return "RTR"
	case QPStateRTS:
		return "RTS"
	case QPStateSQD:
		return "SQD"
	case QPStateSQE:
		return "SQE"
	case QPStateErr:
		return "ERR"
	}
	return fmt.Sprintf("QPState(%d)", int(s))
}

// QPCap sizes a QP's queues (struct ibv_qp_cap).
type QPCap struct {
	MaxSendWR, MaxRecvWR   int
	MaxSendSGE, MaxRecvSGE int
	MaxInline              int
}

// QPConfig describes a QP to create.
type QPConfig struct {
	Type   QPType // default RC
	SendCQ *CQ
	RecvCQ *CQ // default SendCQ
	SRQ    *SRQ
	Cap    QPCap
	// SignalAll makes every send signaled (sq_sig_all).
	SignalAll bool
}

// QP is a queue pair (struct ibv_qp).
type QP struct {
	g       guard
	pd      *PD
	qp      *C.struct_ibv_qp
	h       uint64
	typ     QPType
	num     uint32
	cap     QPCap
	sendCQ  *CQ
	recvCQ  *CQ
	srq     *SRQ
	cm      *Conn // owning rdma_cm connection, if any
	failure atomic.Pointer[error]
}

func (cfg *QPConfig) initAttr() (C.struct_ibv_qp_init_attr, error) {
	var a C.struct_ibv_qp_init_attr
	if cfg.Type == 0 {
		cfg.Type = QPTypeRC
	}
	if cfg.SendCQ == nil {
		return a, fmt.Errorf("%w: QPConfig.SendCQ is nil", ErrInvalid)
	}
	if cfg.RecvCQ == nil {
		cfg.RecvCQ = cfg.SendCQ
	}
	c := &cfg.Cap
	if c.MaxSendWR <= 0 {
		c.MaxSendWR = 64
	}
	if c.MaxRecvWR <= 0 && cfg.SRQ == nil {
		c.MaxRecvWR = 64
	}
	if c.MaxSendSGE <= 0 {
		c.MaxSendSGE = 1
	}
	if c.MaxRecvSGE <= 0 {
		c.MaxRecvSGE = 1
	}
	if c.MaxSendSGE > MaxSGE || c.MaxRecvSGE > MaxSGE {
		return a, fmt.Errorf("%w: at most %d SGEs per work request", ErrInvalid, MaxSGE)
	}
	a.send_cq = cfg.SendCQ.cq
	a.recv_cq = cfg.RecvCQ.cq
	if cfg.SRQ != nil {
		a.srq = cfg.SRQ.srq
	}
	a.cap.max_send_wr = C.uint32_t(c.MaxSendWR)
	a.cap.max_recv_wr = C.uint32_t(c.MaxRecvWR)
	a.cap.max_send_sge = C.uint32_t(c.MaxSendSGE)
	a.cap.max_recv_sge = C.uint32_t(c.MaxRecvSGE)
	a.cap.max_inline_data = C.uint32_t(c.MaxInline)
	a.qp_type = uint32(cfg.Type)
	if cfg.SignalAll {
		a.sq_sig_all = 1
	}
	return a, nil
}

// enterDeps holds the read side of the objects a new QP refers to.
func (cfg *QPConfig) enterDeps() (leave func(), err error) {
	var held []*guard
	leave = func() {
		for _, g := range held {
			g.leave()
		}
	}
	for _, g := range []*guard{cqGuard(cfg.SendCQ), cqGuard(cfg.RecvCQ), srqGuard(cfg.SRQ)} {
		if g == nil {
			continue
		}
		if err := g.enter(); err != nil {
			leave()
			return nil, err
		}
		held = append(held, g)
	}
	return leave, nil
}

func cqGuard(q *CQ) *guard {
	if q == nil {
		return nil
	}
	return &q.g
}

func srqGuard(s *SRQ) *guard {
	if s == nil {
		return nil
	}
	return &s.g
}

// CreateQP creates a queue pair in the RESET state. Move it through ToInit, ToRTR and ToRTS,
// or let the rdma_cm do it (Dial, Listener.Accept).
func (p *PD) CreateQP(cfg QPConfig) (*QP, error) {
	if err := p.g.enter(); err != nil {
		return nil, err
	}
	defer p.g.leave()
	a, err := cfg.initAttr()
	if err != nil {
		return nil, err
	}
	leave, err := cfg.enterDeps()
	if err != nil {
		return nil, err
	}
	defer leave()
	qp, cerr := C.ibv_create_qp(p.pd, &a)
	if qp == nil {
		return nil, callError("ibv_create_qp", errnoOf(-1, cerr))
	}
	q := p.wrapQP(qp, &cfg, &a)
	p.c.kids.add(q)
	return q, nil
}

func (p *PD) wrapQP(qp *C.struct_ibv_qp, cfg *QPConfig, a *C.struct_ibv_qp_init_attr) *QP {
	q := &QP{pd: p, qp: qp, typ: cfg.Type, num: uint32(qp.qp_num), sendCQ: cfg.SendCQ,
		recvCQ: cfg.RecvCQ, srq: cfg.SRQ,
		cap: QPCap{MaxSendWR: int(a.cap.max_send_wr), MaxRecvWR: int(a.cap.max_recv_wr),
			MaxSendSGE: int(a.cap.max_send_sge), MaxRecvSGE: int(a.cap.max_recv_sge),
			MaxInline: int(a.cap.max_inline_data)}}
	q.h = newHandle(q)
	C.rk_set_qp_context(qp, C.uint64_t(q.h))
	return q
}

// Num returns the QP number.
func (q *QP) Num() uint32 { return q.num }

// Type returns the QP type.
func (q *QP) Type() QPType { return q.typ }

// Cap returns the queue sizes granted by the device.
func (q *QP) Cap() QPCap { return q.cap }

// SendCQ returns the send completion queue.
func (q *QP) SendCQ() *CQ { return q.sendCQ }

// RecvCQ returns the receive completion queue.
func (q *QP) RecvCQ() *CQ { return q.recvCQ }

// Err returns the asynchronous error reported for the QP (fatal, access, request), or nil.
func (q *QP) Err() error {
	if p := q.failure.Load(); p != nil {
		return *p
	}
	return nil
}

func (q *QP) asyncEvent(t AsyncEventType) {
	switch t {
	case EventQPFatal, EventQPReqErr, EventQPAccessErr:
		err := fmt.Errorf("%w: QP %d: %s", ErrQPFatal, q.num, t)
		q.failure.CompareAndSwap(nil, &err)
	}
}

// InitAttr moves a QP from RESET to INIT.
type InitAttr struct {
	Port      int    // default 1
	PKeyIndex int    // default 0
	Access    Access // remote access the QP allows (RC/UC)
	QKey      uint32 // UD only
}

// ToInit moves the QP to INIT.
func (q *QP) ToInit(ia InitAttr) error {
	var a C.struct_ibv_qp_attr
	if ia.Port == 0 {
		ia.Port = 1
	}
	a.qp_state = C.IBV_QPS_INIT
	a.port_num = C.uint8_t(ia.Port)
	a.pkey_index = C.uint16_t(ia.PKeyIndex)
	mask := C.IBV_QP_STATE | C.IBV_QP_PKEY_INDEX | C.IBV_QP_PORT
	if q.typ == QPTypeUD {
		a.qkey = C.uint32_t(ia.QKey)
		mask |= C.IBV_QP_QKEY
	} else {
		a.qp_access_flags = C.uint(ia.Access &^ AccessOnDemand)
		mask |= C.IBV_QP_ACCESS_FLAGS
	}
	return q.modify(&a, mask, "INIT")
}

// RTRAttr moves a QP from INIT to RTR. For UD only the state changes.
type RTRAttr struct {
	PathMTU         MTU    // default 1024 (3)
	DestQPN         uint32 // peer QP number
	RQPSN           uint32 // peer's initial send PSN
	MaxDestRdAtomic int    // outstanding reads/atomics served (responder resources)
	MinRNRTimer     int    // default 12 (0.64 ms)
	Port            int    // default 1
	// DGID and SGIDIndex address the peer over RoCE (IsGlobal is implied); DLID over IB.
	DGID      [16]byte
	SGIDIndex int
	HopLimit  int // default 64
	DLID      uint16
	Global    bool // use the GRH (always for RoCE)
}

// ToRTR moves the QP to RTR (ready to receive).
func (q *QP) ToRTR(ra RTRAttr) error {
	var a C.struct_ibv_qp_attr
	a.qp_state = C.IBV_QPS_RTR
	mask := C.IBV_QP_STATE
	if q.typ != QPTypeUD {
		if ra.PathMTU == 0 {
			ra.PathMTU = 3
		}
		if ra.MinRNRTimer == 0 {
			ra.MinRNRTimer = 12
		}
		if ra.Port == 0 {
			ra.Port = 1
		}
		if ra.HopLimit == 0 {
			ra.HopLimit = 64
		}
		if ra.MaxDestRdAtomic <= 0 {
			ra.MaxDestRdAtomic = 1
		}
		a.path_mtu = uint32(ra.PathMTU)
		a.dest_qp_num = C.uint32_t(ra.DestQPN)
		a.rq_psn = C.uint32_t(ra.RQPSN)
		a.max_dest_rd_atomic = C.uint8_t(ra.MaxDestRdAtomic)
		a.min_rnr_timer = C.uint8_t(ra.MinRNRTimer)
		a.ah_attr.port_num = C.uint8_t(ra.Port)
		a.ah_attr.dlid = C.uint16_t(ra.DLID)
		if ra.Global {
			a.ah_attr.is_global = 1
			*(*[16]byte)(unsafe.Pointer(&a.ah_attr.grh.dgid)) = ra.DGID
			a.ah_attr.grh.sgid_index = C.uint8_t(ra.SGIDIndex)
			a.ah_attr.grh.hop_limit = C.uint8_t(ra.HopLimit)
		}
		mask |= C.IBV_QP_AV | C.IBV_QP_PATH_MTU | C.IBV_QP_DEST_QPN | C.IBV_QP_RQ_PSN |
			C.IBV_QP_MAX_DEST_RD_ATOMIC | C.IBV_QP_MIN_RNR_TIMER
		if q.typ == QPTypeUC {
			mask &^= C.IBV_QP_MAX_DEST_RD_ATOMIC | C.IBV_QP_MIN_RNR_TIMER
		}
	}
	return q.modify(&a, mask, "RTR")
}

// RTSAttr moves a QP from RTR to RTS.
type RTSAttr struct {
	SQPSN       uint32
	Timeout     int // local ACK timeout exponent, default 14 (~67 ms)
	RetryCount  int // default 7
	RNRRetry    int // default 7 (infinite)
	MaxRdAtomic int // outstanding reads/atomics issued (initiator depth), default 1
}

// ToRTS moves the QP to RTS (ready to send).
func (q *QP) ToRTS(ra RTSAttr) error {
	var a C.struct_ibv_qp_attr
	a.qp_state = C.IBV_QPS_RTS
	a.sq_psn = C.uint32_t(ra.SQPSN)
	mask := C.IBV_QP_STATE | C.IBV_QP_SQ_PSN
	if q.typ == QPTypeRC {
		if ra.Timeout == 0 {
			ra.Timeout = 14
		}
		if ra.RetryCount == 0 {
			ra.RetryCount = 7
		}
		if ra.RNRRetry == 0 {
			ra.RNRRetry = 7
		}
		if ra.MaxRdAtomic <= 0 {
			ra.MaxRdAtomic = 1
		}
		a.timeout = C.uint8_t(ra.Timeout)
		a.retry_cnt = C.uint8_t(ra.RetryCount)
		a.rnr_retry = C.uint8_t(ra.RNRRetry)
		a.max_rd_atomic = C.uint8_t(ra.MaxRdAtomic)
		mask |= C.IBV_QP_TIMEOUT | C.IBV_QP_RETRY_CNT | C.IBV_QP_RNR_RETRY | C.IBV_QP_MAX_QP_RD_ATOMIC
	}
	return q.modify(&a, mask, "RTS")
}

// ToError moves the QP to ERR: outstanding and later work requests complete with ErrFlushed.
func (q *QP) ToError() error {
	var a C.struct_ibv_qp_attr
	a.qp_state = C.IBV_QPS_ERR
	return q.modify(&a, C.IBV_QP_STATE, "ERR")
}

// ToReset moves the QP to RESET (its queues are emptied without completions).
func (q *QP) ToReset() error {
	var a C.struct_ibv_qp_attr
	a.qp_state = C.IBV_QPS_RESET
	return q.modify(&a, C.IBV_QP_STATE, "RESET")
}

func (q *QP) modify(a *C.struct_ibv_qp_attr, mask int, what string) error {
	if err := q.g.enter(); err != nil {
		return err
	}
	defer q.g.leave()
	if rc := C.ibv_modify_qp(q.qp, a, C.int(mask)); rc != 0 {
		return callError("ibv_modify_qp to "+what, syscall.Errno(rc))
	}
	return nil
}

// State queries the QP state.
func (q *QP) State() (QPState, error) {
	if err := q.g.enter(); err != nil {
		return 0, err
	}
	defer q.g.leave()
	var s C.int
	if rc := C.rk_qp_state(q.qp, &s); rc != 0 {
		return 0, callError("ibv_query_qp", syscall.Errno(rc))
	}
	return QPState(s), nil
}

// PostSend posts the work requests in one cgo call (the ibv_send_wr chain is built in C) and
// returns how many the provider accepted. Bad descriptors are refused before anything is
// posted (ErrInvalid); a provider refusal (e.g. a full send queue: ENOMEM) is returned as a
// wrapped errno together with the count posted before it.
func (q *QP) PostSend(wrs []SendWR) (int, error) {
	if len(wrs) == 0 {
		return 0, nil
	}
	if err := q.g.enter(); err != nil {
		return 0, err
	}
	defer q.g.leave()
	if q.typ == QPTypeUD {
		ahMu.RLock() // no AH is destroyed while the batch refers to it
		defer ahMu.RUnlock()
	}
	for i := range wrs {
		if err := q.checkSend(&wrs[i]); err != "" {
			return 0, fmt.Errorf("%w: work request %d (id %d): %s", ErrInvalid, i, wrs[i].ID, err)
		}
	}
	var posted C.int
	rc := C.rk_post_send(q.qp, (*C.rk_send_wr)(unsafe.Pointer(&wrs[0])), C.int(len(wrs)), &posted)
	if rc != 0 {
		return int(posted), callError(fmt.Sprintf("ibv_post_send (work request %d of %d)", int(posted), len(wrs)), syscall.Errno(rc))
	}
	return int(posted), nil
}

func (q *QP) checkSend(w *SendWR) string {
	if w.Opcode > maxKnownOpcode {
		return fmt.Sprintf("unknown opcode %d", w.Opcode)
	}
	if w.NumSGE > MaxSGE {
		return fmt.Sprintf("%d SGEs (max %d)", w.NumSGE, MaxSGE)
	}
	if w.Flags&Inline != 0 {
		total := 0
		for i := uint32(0); i < w.NumSGE; i++ {
			s := w.SG[i]
			total += int(s.Length)
			if s.Length > 0 && !liveRange(s.Addr, s.Length) {
				return fmt.Sprintf("inline SGE %d [%#x, +%d) is not inside live verbs.Memory", i, s.Addr, s.Length)
			}
		}
		if total > q.cap.MaxInline {
			return fmt.Sprintf("%d inline bytes (QP max %d)", total, q.cap.MaxInline)
		}
	}
	switch w.Opcode {
	case OpFetchAdd, OpCompareSwap:
		if w.RemoteAddr%8 != 0 {
			return fmt.Sprintf("atomic remote address %#x is not 8-byte aligned", w.RemoteAddr)
		}
		if w.NumSGE != 1 || w.SG[0].Length != 8 {
			return "an atomic needs one 8-byte local SGE"
		}
	}
	if q.typ == QPTypeUD {
		if w.Opcode != OpSend && w.Opcode != OpSendWithImm {
			return "UD QPs only send"
		}
		if w.ah == 0 || !ahLive[w.ah] {
			return "UD send without a live address handle (SetAH)"
		}
	} else {
		w.ah = 0
	}
	return ""
}

// PostRecv posts receive work requests in one cgo call; same contract as PostSend.
func (q *QP) PostRecv(wrs []RecvWR) (int, error) {
	if len(wrs) == 0 {
		return 0, nil
	}
	if err := q.g.enter(); err != nil {
		return 0, err
	}
	defer q.g.leave()
	if q.srq != nil {
		return 0, fmt.Errorf("%w: QP %d receives through its SRQ", ErrInvalid, q.num)
	}
	for i := range wrs {
		if wrs[i].NumSGE > MaxSGE {
			return 0, fmt.Errorf("%w: receive work request %d: %d SGEs", ErrInvalid, i, wrs[i].NumSGE)
		}
	}
	var posted C.int
	rc := C.rk_post_recv(q.qp, nil, (*C.rk_recv_wr)(unsafe.Pointer(&wrs[0])), C.int(len(wrs)), &posted)
	if rc != 0 {
		return int(posted), callError("ibv_post_recv", syscall.Errno(rc))
	}
	return int(posted), nil
}

// Close destroys the QP (for an rdma_cm connection, close the Conn instead; Close on its QP
// does the same). It is idempotent.
func (q *QP) Close() error {
	if q.cm != nil {
		return q.cm.Close()
	}
	return q.destroy()
}

func (q *QP) destroy() error {
	did := false
	err := q.g.shut(func() error {
		if rc := C.ibv_destroy_qp(q.qp); rc != 0 {
			return callError("ibv_destroy_qp", syscall.Errno(rc))
		}
		dropHandle(q.h)
		did = true
		return nil
	})
	if did && q.cm == nil {
		q.pd.c.kids.remove(q)
	}
	return err
}
