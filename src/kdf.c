/*
 * kdf.c - PBKDF2 off the event loop (see kdf.h).
 *
 * Checking a cleartext password (hba "password") against a SCRAM verifier,
 * and deriving the keys of a configured password for the salt a server
 * sends (a forced user's login), run PBKDF2: thousands of HMACs, milliseconds
 * of CPU that the event loop must not spend. A tiny fixed pool of threads
 * does only that arithmetic (scram_password_key, scram_salted_keys: OpenSSL,
 * no PostgreSQL call, no palloc, no elog; every signal blocked, so
 * PostgreSQL's handlers always run on the loop's thread). Jobs go in through
 * a bounded queue; finished ones come back through an eventfd the loop
 * watches, and the loop hands each result to its owner's callback. An owner that goes away cancels its job: a waiting job is
 * dropped at once, a running one when it finishes.
 */
#include "postgres.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "kdf.h"
#include "scram.h"

typedef enum KdfState
{
	KDF_WAITING,				/* in the queue */
	KDF_RUNNING,				/* a thread has it */
	KDF_DONE,					/* on the done list */
} KdfState;

struct KdfJob
{
	struct KdfJob *next;
	KdfState	state;
	bool		cancelled;
	bool		derive;			/* keys for a password, not a check against stored_key */
	KdfDone		done;
	void	   *owner;
	char	   *pw;
	size_t		pwlen;
	uint8		salt[SCRAM_SALT_B64_MAX];
	int			salt_len;
	int			iterations;
	uint8		stored_key[SCRAM_KEY_BYTES];
	bool		ok;
	uint8		client_key[SCRAM_KEY_BYTES];
	uint8		server_key[SCRAM_KEY_BYTES];	/* derive only */
};

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cv = PTHREAD_COND_INITIALIZER;
static KdfJob *wait_head = NULL;
static KdfJob *wait_tail = NULL;
static KdfJob *done_head = NULL;
static int	n_jobs = 0;			/* waiting + running + done, under the mutex */
static int	event_fd = -1;
static int	n_threads = 0;
static pthread_t threads[KDF_THREADS];
static bool stopping = false;	/* kdf_stop: threads leave after their current check */

static void
job_free(KdfJob *job)
{
	if (job->pw)
	{
		OPENSSL_cleanse(job->pw, job->pwlen);
		free(job->pw);
	}
	OPENSSL_cleanse(job->client_key, sizeof(job->client_key));
	OPENSSL_cleanse(job->server_key, sizeof(job->server_key));
	free(job);
}

static void *
kdf_thread(void *arg pg_attribute_unused())
{
	for (;;)
	{
		KdfJob	   *job;
		uint64		one = 1;

		pthread_mutex_lock(&mutex);
		while (!wait_head && !stopping)
			pthread_cond_wait(&work_cv, &mutex);
		if (stopping)
		{
			pthread_mutex_unlock(&mutex);
			return NULL;
		}
		job = wait_head;
		wait_head = job->next;
		if (!wait_head)
			wait_tail = NULL;
		job->state = KDF_RUNNING;
		pthread_mutex_unlock(&mutex);

		if (job->derive)
			job->ok = scram_salted_keys(job->pw, job->pwlen, job->salt, job->salt_len, job->iterations,
										job->client_key, job->server_key);
		else
			job->ok = scram_password_key(job->pw, job->pwlen, job->salt, job->salt_len, job->iterations,
										 job->stored_key, job->client_key);

		pthread_mutex_lock(&mutex);
		job->state = KDF_DONE;
		job->next = done_head;
		done_head = job;
		pthread_mutex_unlock(&mutex);
		/* wake the loop; a full counter (never in practice) still leaves it readable */
		while (write(event_fd, &one, sizeof(one)) < 0 && errno == EINTR)
			;
	}
	return NULL;
}

int
kdf_start(void)
{
	sigset_t	all;
	sigset_t	old;

	if (event_fd >= 0)
		return event_fd;
	event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (event_fd < 0)
		return -1;
	/* threads inherit the mask: every signal stays with the loop's thread */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (int i = 0; i < KDF_THREADS; i++)
	{
		if (pthread_create(&threads[n_threads], NULL, kdf_thread, NULL) != 0)
			break;
		n_threads++;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (n_threads == 0)
	{
		close(event_fd);
		event_fd = -1;
		return -1;
	}
	return event_fd;
}

KdfJob *
kdf_submit(const char *pw, const uint8 *salt, int salt_len, int iterations, const uint8 *stored_key,
		   KdfDone done, void *owner)
{
	KdfJob	   *job;

	if (n_threads == 0 || salt_len <= 0 || salt_len > SCRAM_SALT_B64_MAX)
		return NULL;
	pthread_mutex_lock(&mutex);
	if (n_jobs >= KDF_QUEUE_MAX)
	{
		pthread_mutex_unlock(&mutex);
		return NULL;
	}
	n_jobs++;
	pthread_mutex_unlock(&mutex);

	job = calloc(1, sizeof(KdfJob));
	if (job)
		job->pw = strdup(pw);
	if (!job || !job->pw)
	{
		free(job);
		pthread_mutex_lock(&mutex);
		n_jobs--;
		pthread_mutex_unlock(&mutex);
		return NULL;
	}
	job->pwlen = strlen(pw);
	memcpy(job->salt, salt, salt_len);
	job->salt_len = salt_len;
	job->iterations = iterations;
	job->derive = (stored_key == NULL);
	if (stored_key)
		memcpy(job->stored_key, stored_key, SCRAM_KEY_BYTES);
	job->done = done;
	job->owner = owner;
	job->state = KDF_WAITING;

	pthread_mutex_lock(&mutex);
	if (wait_tail)
		wait_tail->next = job;
	else
		wait_head = job;
	wait_tail = job;
	pthread_cond_signal(&work_cv);
	pthread_mutex_unlock(&mutex);
	return job;
}

void
kdf_cancel(KdfJob *job)
{
	bool		free_now = false;

	pthread_mutex_lock(&mutex);
	job->cancelled = true;
	job->owner = NULL;
	if (job->state == KDF_WAITING)
	{
		/* still queued: take it out, nobody else will look at it */
		KdfJob	  **link = &wait_head;
		KdfJob	   *prev = NULL;

		while (*link && *link != job)
		{
			prev = *link;
			link = &(*link)->next;
		}
		if (*link)
		{
			*link = job->next;
			if (wait_tail == job)
				wait_tail = prev;
			n_jobs--;
			free_now = true;
		}
	}
	pthread_mutex_unlock(&mutex);
	if (free_now)
		job_free(job);
}

int
kdf_collect(void)
{
	uint64		count;
	uint64		one = 1;
	int			n = 0;
	bool		rearmed = false;

	if (event_fd < 0)
		return 0;
	while (read(event_fd, &count, sizeof(count)) > 0)
		;
	for (;;)
	{
		KdfJob	   *job;
		void	   *owner;
		bool		cancelled;
		bool		more;

		pthread_mutex_lock(&mutex);
		job = done_head;
		if (!job)
		{
			pthread_mutex_unlock(&mutex);
			break;
		}
		done_head = job->next;
		n_jobs--;
		more = done_head != NULL;
		owner = job->owner;
		cancelled = job->cancelled;
		pthread_mutex_unlock(&mutex);
		/* an ERROR out of a callback must not strand the rest: the eventfd says they are there */
		if (more && !rearmed)
		{
			while (write(event_fd, &one, sizeof(one)) < 0 && errno == EINTR)
				;
			rearmed = true;
		}
		if (!cancelled)
		{
			KdfDone		done = job->done;
			bool		ok = job->ok;
			bool		derive = job->derive;
			uint8		client_key[SCRAM_KEY_BYTES];
			uint8		server_key[SCRAM_KEY_BYTES];

			/* freed first, so an ERROR in the callback leaks nothing */
			memcpy(client_key, job->client_key, sizeof(client_key));
			memcpy(server_key, job->server_key, sizeof(server_key));
			job_free(job);
			done(owner, ok, client_key, derive ? server_key : NULL);
			OPENSSL_cleanse(client_key, sizeof(client_key));
			OPENSSL_cleanse(server_key, sizeof(server_key));
			n++;
		}
		else
			job_free(job);
	}
	return n;
}

void
kdf_stop(void)
{
	KdfJob	   *list;

	if (n_threads == 0)
		return;
	pthread_mutex_lock(&mutex);
	stopping = true;
	list = wait_head;
	wait_head = wait_tail = NULL;
	pthread_cond_broadcast(&work_cv);
	pthread_mutex_unlock(&mutex);
	while (list)
	{
		KdfJob	   *job = list;

		list = job->next;
		job_free(job);
	}
	/* a check under way finishes first: one PBKDF2 at most per thread */
	for (int i = 0; i < n_threads; i++)
		pthread_join(threads[i], NULL);
	n_threads = 0;
}

int
kdf_jobs_in_flight(void)
{
	int			n;

	pthread_mutex_lock(&mutex);
	n = n_jobs;
	pthread_mutex_unlock(&mutex);
	return n;
}
