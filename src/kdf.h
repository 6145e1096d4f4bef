/*
 * kdf.h - PBKDF2 on a small pool of threads, so the event loop never spends
 * one: cleartext password checks against SCRAM verifiers (client logins) and
 * the keys of a configured password for a server's salt (server logins).
 *
 * Loop side only (one thread calls these): kdf_start once, kdf_submit per
 * job, kdf_collect when the eventfd is readable. The threads run nothing
 * but scram_password_key() and scram_salted_keys().
 */
#ifndef PGBUN_KDF_H
#define PGBUN_KDF_H

#include "postgres.h"

/* Threads doing the checks, and how many checks may be queued or running at once. */
#define KDF_THREADS		2
#define KDF_QUEUE_MAX	64

typedef struct KdfJob KdfJob;

/*
 * A finished job for owner. A check: ok when the password matched, with its
 * ClientKey, server_key NULL. A derivation: ok with both keys.
 */
typedef void (*KdfDone) (void *owner, bool ok, const uint8 *client_key, const uint8 *server_key);

/* Start the threads (first call only). The eventfd to watch, or -1 when threads cannot run. */
extern int	kdf_start(void);
/*
 * Queue a check of pw (already SASLprepped) against a verifier's salt,
 * iterations and StoredKey, or with stored_key NULL the derivation of pw's
 * keys for that salt and count; done(owner, ...) gets the result. NULL when
 * the queue is full (or threads are not running): the caller refuses the
 * login or works inline.
 */
extern KdfJob *kdf_submit(const char *pw, const uint8 *salt, int salt_len, int iterations,
						  const uint8 *stored_key, KdfDone done, void *owner);
/* The owner is going away: its result will not be delivered. */
extern void kdf_cancel(KdfJob *job);
/* Drain the eventfd and deliver finished jobs to their done callbacks; how many were delivered. */
extern int	kdf_collect(void);
/*
 * Stop the threads (process exit): queued checks are dropped, running ones
 * finish, then the threads are joined, so none still uses OpenSSL while
 * exit() tears it down.
 */
extern void kdf_stop(void);
/* Checks queued, running or not yet collected. */
extern int	kdf_jobs_in_flight(void);

#endif							/* PGBUN_KDF_H */
