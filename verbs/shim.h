// shim.h - C helpers shared by the cgo files of package verbs.
//
// ibv_post_send, ibv_post_recv, ibv_poll_cq, ibv_req_notify_cq, ibv_query_device_ex and
// ibv_reg_mr are static inline functions or macros in rdma-core: they are called from here,
// never through dlsym. Work requests and completions cross the cgo boundary as arrays of plain
// values (rk_send_wr, rk_recv_wr, rk_wc) whose layout matches the Go types SendWR, RecvWR and
// WC; the ibv_*_wr chains are built on the C stack, one cgo call per batch.
#ifndef RDMAKIT_VERBS_SHIM_H
#define RDMAKIT_VERBS_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

#define RK_MAX_SGE 4
#define RK_CHUNK 32

typedef struct rk_sge {
	uint64_t addr;
	uint32_t length;
	uint32_t lkey;
} rk_sge;

typedef struct rk_send_wr {
	uint64_t wr_id;
	uint32_t opcode;
	uint32_t flags;
	uint32_t num_sge;
	uint32_t imm; // host order
	rk_sge sge[RK_MAX_SGE];
	uint64_t remote_addr;
	uint64_t compare_add;
	uint64_t swap;
	uint64_t ah; // struct ibv_ah * (C memory) for UD
	uint32_t rkey;
	uint32_t remote_qpn;
	uint32_t remote_qkey;
	uint32_t pad;
} rk_send_wr;

typedef struct rk_recv_wr {
	uint64_t wr_id;
	uint32_t num_sge;
	uint32_t pad;
	rk_sge sge[RK_MAX_SGE];
} rk_recv_wr;

typedef struct rk_wc {
	uint64_t wr_id;
	uint32_t status;
	uint32_t opcode;
	uint32_t vendor_err;
	uint32_t byte_len;
	uint32_t imm; // host order
	uint32_t qp_num;
	uint32_t src_qp;
	uint32_t wc_flags;
	uint16_t pkey_index;
	uint16_t slid;
	uint8_t sl;
	uint8_t dlid_path_bits;
	uint16_t pad;
} rk_wc;

// rk_post_send posts n work requests in chunks of RK_CHUNK. It returns 0 or an errno and
// stores in *posted how many were accepted by the provider.
static inline int rk_post_send(struct ibv_qp *qp, rk_send_wr *in, int n, int *posted) {
	struct ibv_send_wr wr[RK_CHUNK];
	struct ibv_sge sge[RK_CHUNK][RK_MAX_SGE];
	*posted = 0;
	for (int base = 0; base < n; base += RK_CHUNK) {
		int m = n - base < RK_CHUNK ? n - base : RK_CHUNK;
		memset(wr, 0, sizeof(wr[0]) * m);
		for (int i = 0; i < m; i++) {
			rk_send_wr *s = &in[base + i];
			struct ibv_send_wr *w = &wr[i];
			w->wr_id = s->wr_id;
			w->next = i + 1 < m ? &wr[i + 1] : NULL;
			w->opcode = (enum ibv_wr_opcode)s->opcode;
			w->send_flags = s->flags;
			w->num_sge = (int)s->num_sge;
			w->sg_list = sge[i];
			for (uint32_t j = 0; j < s->num_sge && j < RK_MAX_SGE; j++) {
				sge[i][j].addr = s->sge[j].addr;
				sge[i][j].length = s->sge[j].length;
				sge[i][j].lkey = s->sge[j].lkey;
			}
			switch (s->opcode) {
			case IBV_WR_SEND_WITH_IMM:
			case IBV_WR_RDMA_WRITE_WITH_IMM:
				w->imm_data = htonl(s->imm);
				break;
			default:
				break;
			}
			switch (s->opcode) {
			case IBV_WR_RDMA_WRITE:
			case IBV_WR_RDMA_WRITE_WITH_IMM:
			case IBV_WR_RDMA_READ:
				w->wr.rdma.remote_addr = s->remote_addr;
				w->wr.rdma.rkey = s->rkey;
				break;
			case IBV_WR_ATOMIC_FETCH_AND_ADD:
			case IBV_WR_ATOMIC_CMP_AND_SWP:
				w->wr.atomic.remote_addr = s->remote_addr;
				w->wr.atomic.rkey = s->rkey;
				w->wr.atomic.compare_add = s->compare_add;
				w->wr.atomic.swap = s->swap;
				break;
			default:
				if (s->ah) {
					w->wr.ud.ah = (struct ibv_ah *)(uintptr_t)s->ah;
					w->wr.ud.remote_qpn = s->remote_qpn;
					w->wr.ud.remote_qkey = s->remote_qkey;
				}
				break;
			}
		}
		struct ibv_send_wr *bad = NULL;
		int rc = ibv_post_send(qp, wr, &bad);
		if (rc) {
			*posted += bad ? (int)(bad - wr) : 0;
			return rc;
		}
		*posted += m;
	}
	return 0;
}

// rk_post_recv posts n receive work requests; same contract as rk_post_send.
static inline int rk_post_recv(struct ibv_qp *qp, struct ibv_srq *srq, rk_recv_wr *in, int n, int *posted) {
	struct ibv_recv_wr wr[RK_CHUNK];
	struct ibv_sge sge[RK_CHUNK][RK_MAX_SGE];
	*posted = 0;
	for (int base = 0; base < n; base += RK_CHUNK) {
		int m = n - base < RK_CHUNK ? n - base : RK_CHUNK;
		for (int i = 0; i < m; i++) {
			rk_recv_wr *s = &in[base + i];
			wr[i].wr_id = s->wr_id;
			wr[i].next = i + 1 < m ? &wr[i + 1] : NULL;
			wr[i].num_sge = (int)s->num_sge;
			wr[i].sg_list = sge[i];
			for (uint32_t j = 0; j < s->num_sge && j < RK_MAX_SGE; j++) {
				sge[i][j].addr = s->sge[j].addr;
				sge[i][j].length = s->sge[j].length;
				sge[i][j].lkey = s->sge[j].lkey;
			}
		}
		struct ibv_recv_wr *bad = NULL;
		int rc = srq ? ibv_post_srq_recv(srq, wr, &bad) : ibv_post_recv(qp, wr, &bad);
		if (rc) {
			*posted += bad ? (int)(bad - wr) : 0;
			return rc;
		}
		*posted += m;
	}
	return 0;
}

// rk_poll_cq polls up to max completions into out. Returns the count, or -1 on error.
static inline int rk_poll_cq(struct ibv_cq *cq, rk_wc *out, int max) {
	struct ibv_wc wc[RK_CHUNK];
	int total = 0;
	while (total < max) {
		int want = max - total < RK_CHUNK ? max - total : RK_CHUNK;
		int n = ibv_poll_cq(cq, want, wc);
		if (n < 0)
			return total ? total : -1;
		for (int i = 0; i < n; i++) {
			rk_wc *o = &out[total + i];
			o->wr_id = wc[i].wr_id;
			o->status = wc[i].status;
			o->opcode = wc[i].opcode;
			o->vendor_err = wc[i].vendor_err;
			o->byte_len = wc[i].byte_len;
			o->imm = (wc[i].wc_flags & IBV_WC_WITH_IMM) ? ntohl(wc[i].imm_data) : 0;
			o->qp_num = wc[i].qp_num;
			o->src_qp = wc[i].src_qp;
			o->wc_flags = wc[i].wc_flags;
			o->pkey_index = wc[i].pkey_index;
			o->slid = wc[i].slid;
			o->sl = wc[i].sl;
			o->dlid_path_bits = wc[i].dlid_path_bits;
		}
		total += n;
		if (n < want)
			break;
	}
	return total;
}

// rk_get_cq_events drains a non-blocking completion channel: it fetches events until EAGAIN
// (or max), acknowledges them in one batch per CQ run, and stores each event's cq_context
// (an integer handle, never a pointer) in handles. Returns the count, or -errno.
static inline int rk_get_cq_events(struct ibv_comp_channel *ch, uint64_t *handles, int max) {
	int n = 0, run = 0, rc = 0;
	struct ibv_cq *last = NULL;
	while (n < max) {
		struct ibv_cq *cq;
		void *ctx;
		if (ibv_get_cq_event(ch, &cq, &ctx)) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && n == 0)
				rc = -errno;
			break;
		}
		if (cq != last && run) {
			ibv_ack_cq_events(last, run);
			run = 0;
		}
		last = cq;
		run++;
		handles[n++] = (uint64_t)(uintptr_t)ctx;
	}
	if (run)
		ibv_ack_cq_events(last, run);
	return rc ? rc : n;
}

static inline int rk_set_nonblock(int fd) {
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	if (fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static inline struct ibv_mr *rk_reg_mr(struct ibv_pd *pd, uint64_t addr, uint64_t len, int access) {
	return ibv_reg_mr(pd, (void *)(uintptr_t)addr, (size_t)len, access);
}

static inline void rk_set_cq_context(struct ibv_cq *cq, uint64_t h) { cq->cq_context = (void *)(uintptr_t)h; }
static inline void rk_set_qp_context(struct ibv_qp *qp, uint64_t h) { qp->qp_context = (void *)(uintptr_t)h; }
static inline void rk_set_srq_context(struct ibv_srq *s, uint64_t h) { s->srq_context = (void *)(uintptr_t)h; }
static inline void rk_set_id_context(struct rdma_cm_id *id, uint64_t h) { id->context = (void *)(uintptr_t)h; }

// rk_async is one asynchronous device event, copied out of struct ibv_async_event.
typedef struct rk_async {
	uint32_t type;
	uint32_t pad;
	uint64_t handle; // cq_context / qp_context / srq_context of the element, or port number
} rk_async;

// rk_get_async_events drains the device's non-blocking async fd. Returns count or -errno.
static inline int rk_get_async_events(struct ibv_context *c, rk_async *out, int max) {
	int n = 0;
	while (n < max) {
		struct ibv_async_event ev;
		if (ibv_get_async_event(c, &ev)) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return n ? n : -errno;
		}
		out[n].type = ev.event_type;
		out[n].handle = 0;
		switch (ev.event_type) {
		case IBV_EVENT_CQ_ERR:
			out[n].handle = (uint64_t)(uintptr_t)ev.element.cq->cq_context;
			break;
		case IBV_EVENT_QP_FATAL:
		case IBV_EVENT_QP_REQ_ERR:
		case IBV_EVENT_QP_ACCESS_ERR:
		case IBV_EVENT_COMM_EST:
		case IBV_EVENT_SQ_DRAINED:
		case IBV_EVENT_PATH_MIG:
		case IBV_EVENT_PATH_MIG_ERR:
		case IBV_EVENT_QP_LAST_WQE_REACHED:
			out[n].handle = (uint64_t)(uintptr_t)ev.element.qp->qp_context;
			break;
		case IBV_EVENT_SRQ_ERR:
		case IBV_EVENT_SRQ_LIMIT_REACHED:
			out[n].handle = (uint64_t)(uintptr_t)ev.element.srq->srq_context;
			break;
		case IBV_EVENT_PORT_ACTIVE:
		case IBV_EVENT_PORT_ERR:
		case IBV_EVENT_LID_CHANGE:
		case IBV_EVENT_PKEY_CHANGE:
		case IBV_EVENT_SM_CHANGE:
		case IBV_EVENT_CLIENT_REREGISTER:
		case IBV_EVENT_GID_CHANGE:
			out[n].handle = (uint64_t)ev.element.port_num;
			break;
		default:
			break;
		}
		ibv_ack_async_event(&ev);
		n++;
	}
	return n;
}

// rk_cm_event is one rdma_cm event, copied out before rdma_ack_cm_event.
typedef struct rk_cm_event {
	uint64_t handle;     // id->context of the event's id (0 for a new connection request)
	uint64_t listen;     // listen_id->context for CONNECT_REQUEST
	uint64_t new_id;     // struct rdma_cm_id * for CONNECT_REQUEST (C memory)
	int32_t type;
	int32_t status;
	uint8_t responder_resources;
	uint8_t initiator_depth;
	uint8_t retry_count;
	uint8_t rnr_retry_count;
	uint8_t private_len;
	uint8_t pad[3];
	uint32_t qp_num;
	uint8_t private_data[256];
} rk_cm_event;

// rk_get_cm_events drains a non-blocking rdma_cm event channel, acknowledging each event
// right after copying it. Returns count or -errno.
static inline int rk_get_cm_events(struct rdma_event_channel *ch, rk_cm_event *out, int max) {
	int n = 0;
	while (n < max) {
		struct rdma_cm_event *ev;
		if (rdma_get_cm_event(ch, &ev)) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return n ? n : -errno;
		}
		rk_cm_event *o = &out[n];
		memset(o, 0, sizeof(*o) - sizeof(o->private_data));
		o->type = ev->event;
		o->status = ev->status;
		if (ev->event == RDMA_CM_EVENT_CONNECT_REQUEST) {
			o->new_id = (uint64_t)(uintptr_t)ev->id;
			o->listen = (uint64_t)(uintptr_t)ev->listen_id->context;
		} else {
			o->handle = (uint64_t)(uintptr_t)ev->id->context;
		}
		if (ev->id->qp_type == IBV_QPT_UD) {
			o->private_len = ev->param.ud.private_data ? ev->param.ud.private_data_len : 0;
			if (o->private_len)
				memcpy(o->private_data, ev->param.ud.private_data, o->private_len);
			o->qp_num = ev->param.ud.qp_num;
		} else {
			o->responder_resources = ev->param.conn.responder_resources;
			o->initiator_depth = ev->param.conn.initiator_depth;
			o->retry_count = ev->param.conn.retry_count;
			o->rnr_retry_count = ev->param.conn.rnr_retry_count;
			o->qp_num = ev->param.conn.qp_num;
			o->private_len = ev->param.conn.private_data ? ev->param.conn.private_data_len : 0;
			if (o->private_len)
				memcpy(o->private_data, ev->param.conn.private_data, o->private_len);
		}
		rdma_ack_cm_event(ev);
		n++;
	}
	return n;
}

#endif
