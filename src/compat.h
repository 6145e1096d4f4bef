/*
 * compat.h - every PostgreSQL-version difference pgbun cares about, in one place.
 *
 * pgbun targets PostgreSQL 15 first; 16-18 changed a few backend APIs that we
 * call (SCRAM helpers gained a hash type and key length, base64 helpers
 * switched to uint8, ...). Code elsewhere calls the pgbun_* wrappers
 * below and never tests PG_VERSION_NUM itself.
 */
#ifndef PGBUN_COMPAT_H
#define PGBUN_COMPAT_H

#include "postgres.h"
#include "common/scram-common.h"
#include "storage/latch.h"

#if PG_VERSION_NUM < 150000
#error "pgbun needs PostgreSQL 15 or later"
#endif

/* SCRAM primitives: PG16 added (hash type, key length) arguments. */
#if PG_VERSION_NUM >= 160000
#define pgbun_scram_H(in, len, out, errstr) \
	scram_H((in), PG_SHA256, SCRAM_SHA_256_KEY_LEN, (out), (errstr))
#define pgbun_scram_ClientKey(salted, out, errstr) \
	scram_ClientKey((salted), PG_SHA256, SCRAM_SHA_256_KEY_LEN, (out), (errstr))
#define PGBUN_SCRAM_KEY_LEN SCRAM_SHA_256_KEY_LEN
#else
#define pgbun_scram_H(in, len, out, errstr) scram_H((in), (len), (out), (errstr))
#define pgbun_scram_ClientKey(salted, out, errstr) scram_ClientKey((salted), (out), (errstr))
#define PGBUN_SCRAM_KEY_LEN SCRAM_KEY_LEN
#endif

/* parse_scram_secret: PG16 added hash type / key length outputs. */
#if PG_VERSION_NUM >= 160000
#define pgbun_parse_scram_secret(secret, iter, salt, stored, server) \
	({ int _kl; pg_cryptohash_type _ht; \
	   parse_scram_secret((secret), (iter), &_ht, &_kl, (salt), (stored), (server)); })
#else
#define pgbun_parse_scram_secret(secret, iter, salt, stored, server) \
	parse_scram_secret((secret), (iter), (salt), (stored), (server))
#endif

/*
 * Latches (loop_wait.c): PG15 through PG18 wake a latch's sleeping owner
 * with SIGURG, blocked and read through a signalfd, once the owner has set
 * latch->maybe_sleeping. Older versions used SIGUSR1 and a self-pipe.
 */
#if PG_VERSION_NUM < 150000
#error "pgbun needs PostgreSQL 15 or later (latch wakeups by SIGURG)"
#endif

/* pg_b64_encode/decode: PG18 switched the source/destination to uint8 *. */
#if PG_VERSION_NUM >= 180000
#define pgbun_b64_encode(src, len, dst, dstlen) pg_b64_encode((const uint8 *) (src), (len), (dst), (dstlen))
#define pgbun_b64_decode(src, len, dst, dstlen) pg_b64_decode((src), (len), (uint8 *) (dst), (dstlen))
#else
#define pgbun_b64_encode(src, len, dst, dstlen) pg_b64_encode((const char *) (src), (len), (char *) (dst), (dstlen))
#define pgbun_b64_decode(src, len, dst, dstlen) pg_b64_decode((src), (len), (char *) (dst), (dstlen))
#endif

/* GUC "extra" data: malloc'd on PG15 (guc_malloc is static there), guc_malloc from PG16. */
#if PG_VERSION_NUM >= 160000
#include "utils/guc.h"
#define pgbun_guc_malloc(size) guc_malloc(LOG, (size))
#define pgbun_guc_free(ptr) guc_free(ptr)
#else
#define pgbun_guc_malloc(size) malloc(size)
#define pgbun_guc_free(ptr) free(ptr)
#endif

/*
 * The GUC table (admin console SHOW CONFIG): PG16 returns the count through
 * an argument. PG16 also made role inheritance a property of each grant
 * (pg_auth_members.inherit_option) instead of the member's rolinherit, which
 * read_console_privileges (auth.c) follows for PG15.
 */
#if PG_VERSION_NUM >= 160000
#define pgbun_guc_variables(n) get_guc_variables(n)
#else
#define pgbun_guc_variables(n) (*(n) = GetNumConfigOptions(), get_guc_variables())
#endif

#endif							/* PGBUN_COMPAT_H */
