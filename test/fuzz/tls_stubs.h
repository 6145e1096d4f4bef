/*
 * tls_stubs.h - the TLS calls sbuf.c and its adapters (websocket.c,
 * http_sql.c) make only on TLS connections, for fuzz targets that have
 * none: reaching one is a bug. Include in exactly one file per fuzz binary.
 */
#ifndef PGBUN_FUZZ_TLS_STUBS_H
#define PGBUN_FUZZ_TLS_STUBS_H

#include <stdlib.h>

#include "sbuf.h"
#include "tls.h"

ssize_t
tls_read(SBuf *sb, void *buf, size_t len)
{
	abort();
}

ssize_t
tls_write(SBuf *sb, const void *buf, size_t len)
{
	abort();
}

void
tls_close(SBuf *sb)
{
}

bool
tls_pending(const SBuf *sb)
{
	return false;
}

#endif							/* PGBUN_FUZZ_TLS_STUBS_H */
