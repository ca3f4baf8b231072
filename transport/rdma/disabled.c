/* SPDX-License-Identifier: MIT */
/* transport/rdma/disabled.c - the rdma:// entry of a librmig built with -DRMIG_RDMA=OFF (no
 * rdma-core at build or run time). The scheme stays known, so an rdma:// URI gets an error that
 * says how to get RDMA back rather than "unknown scheme"; no connection or listener can exist,
 * so only listen and connect are ever reached. */
#include <errno.h>

#include "transport/log.h"
#include "transport/transport_impl.h"

int rdma_transport_device_count(void)
{
	return 0;
}

static int rdma_disabled(const char *uri)
{
	rmig_log_error("rdma: '%s': this librmig was built without RDMA (-DRMIG_RDMA=OFF); "
		       "rebuild with -DRMIG_RDMA=ON (needs rdma-core) or use tcp://",
		       uri);
	return -EPROTONOSUPPORT;
}

static int rdma_disabled_listen(const char *uri, const struct transport_options *opts,
				struct transport_listener **listener_p)
{
	(void)opts;
	(void)listener_p;
	return rdma_disabled(uri);
}

static int rdma_disabled_connect(const char *uri, const struct transport_options *opts,
				 struct transport_conn **conn_p)
{
	(void)opts;
	(void)conn_p;
	return rdma_disabled(uri);
}

static int rdma_disabled_listener_uri(struct transport_listener *listener, char *buf, size_t len)
{
	(void)listener;
	(void)buf;
	(void)len;
	return -EPROTONOSUPPORT;
}

static int rdma_disabled_accept(struct transport_listener *listener, int timeout_ms,
				struct transport_conn **conn_p)
{
	(void)listener;
	(void)timeout_ms;
	(void)conn_p;
	return -EPROTONOSUPPORT;
}

static void rdma_disabled_listener_close(struct transport_listener *listener)
{
	(void)listener;
}

static int rdma_disabled_region_register(struct transport_conn *conn, uint32_t id, void *addr,
					 size_t len, unsigned access)
{
	(void)conn;
	(void)id;
	(void)addr;
	(void)len;
	(void)access;
	return -EPROTONOSUPPORT;
}

static int rdma_disabled_region_deregister(struct transport_conn *conn, uint32_t id)
{
	(void)conn;
	(void)id;
	return -EPROTONOSUPPORT;
}

static int rdma_disabled_region_access_set(struct transport_conn *conn, uint32_t id,
					   unsigned access)
{
	(void)conn;
	(void)id;
	(void)access;
	return -EPROTONOSUPPORT;
}

static int rdma_disabled_batch_post(struct transport_conn *conn, uint64_t batch_id,
				    const struct transport_run *runs, size_t nruns)
{
	(void)conn;
	(void)batch_id;
	(void)runs;
	(void)nruns;
	return -EPROTONOSUPPORT;
}

static int rdma_disabled_flush(struct transport_conn *conn, int timeout_ms)
{
	(void)conn;
	(void)timeout_ms;
	return -EPROTONOSUPPORT;
}

static int rdma_disabled_ctrl_send(struct transport_conn *conn, const void *buf, size_t len)
{
	(void)conn;
	(void)buf;
	(void)len;
	return -EPROTONOSUPPORT;
}

static int rdma_disabled_recv(struct transport_conn *conn, struct transport_msg *msg,
			      int timeout_ms)
{
	(void)conn;
	(void)msg;
	(void)timeout_ms;
	return -EPROTONOSUPPORT;
}

static int rdma_disabled_read(struct transport_conn *conn, uint32_t region_id, uint64_t offset,
			      void *dst, size_t len, int timeout_ms)
{
	(void)conn;
	(void)region_id;
	(void)offset;
	(void)dst;
	(void)len;
	(void)timeout_ms;
	return -EPROTONOSUPPORT;
}

static int rdma_disabled_peer_timeout_set(struct transport_conn *conn, uint32_t timeout_ms)
{
	(void)conn;
	(void)timeout_ms;
	return -EPROTONOSUPPORT;
}

static void rdma_disabled_close(struct transport_conn *conn)
{
	(void)conn;
}

const struct transport_ops rdma_transport_ops = {
	.scheme = "rdma",
	.listen = rdma_disabled_listen,
	.listener_uri = rdma_disabled_listener_uri,
	.accept = rdma_disabled_accept,
	.listener_close = rdma_disabled_listener_close,
	.connect = rdma_disabled_connect,
	.region_register = rdma_disabled_region_register,
	.region_deregister = rdma_disabled_region_deregister,
	.region_access_set = rdma_disabled_region_access_set,
	.batch_post = rdma_disabled_batch_post,
	.flush = rdma_disabled_flush,
	.ctrl_send = rdma_disabled_ctrl_send,
	.recv = rdma_disabled_recv,
	.read = rdma_disabled_read,
	.peer_timeout_set = rdma_disabled_peer_timeout_set,
	.close = rdma_disabled_close,
};
