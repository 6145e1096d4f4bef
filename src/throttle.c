/*
 * throttle.c - slowing down password guessing (pgbun.auth_failure_delay).
 *
 * A failed login is answered only after a delay that doubles with each
 * further failure from the same client address within a minute (at most
 * 30 s). The worker never sleeps: the failed client just waits in the login
 * list until the janitor closes it. Addresses live in a small fixed table of
 * sets of a few entries, the set chosen by a hash of the address with a
 * per-process random seed (a login looks at one set, not the whole table);
 * when a set is full its stalest entry is reused, so the table cannot be
 * grown by an attacker, nor a chosen address pushed out on purpose.
 */
#include "postgres.h"

#include <netinet/in.h>

#include "common/hashfn.h"

#include "throttle.h"

#define THROTTLE_SLOTS 512
#define THROTTLE_WAYS 8			/* entries per set */
#define THROTTLE_FORGET_US (60 * USECS_PER_SEC)
#define THROTTLE_MAX_DELAY_MS 30000

typedef struct ThrottleSlot
{
	uint8		key[16];		/* IPv6 address, or IPv4 / "local" padded */
	uint8		key_len;
	uint32		failures;
	TimestampTz last_failure;
} ThrottleSlot;

static ThrottleSlot slots[THROTTLE_SLOTS];

/* The part of an address that identifies its sender (no port). */
static uint8
address_key(const struct sockaddr_storage *addr, bool unix_socket, uint8 *key)
{
	memset(key, 0, 16);
	if (unix_socket)
		return 1;				/* every local client shares one entry */
	if (addr->ss_family == AF_INET)
	{
		memcpy(key, &((const struct sockaddr_in *) addr)->sin_addr, 4);
		return 4;
	}
	if (addr->ss_family == AF_INET6)
	{
		memcpy(key, &((const struct sockaddr_in6 *) addr)->sin6_addr, 16);
		return 16;
	}
	return 1;
}

static ThrottleSlot *
find_slot(const uint8 *key, uint8 len, TimestampTz now, bool create)
{
	static uint64 seed;
	static bool seeded = false;
	ThrottleSlot *set;
	ThrottleSlot *stalest;

	if (!seeded)
	{
		if (!pg_strong_random(&seed, sizeof(seed)))
			seed = 0;
		seeded = true;
	}
	set = &slots[(hash_bytes_extended(key, 16, seed + len) % (THROTTLE_SLOTS / THROTTLE_WAYS)) *
				 THROTTLE_WAYS];
	stalest = &set[0];
	for (int i = 0; i < THROTTLE_WAYS; i++)
	{
		ThrottleSlot *s = &set[i];

		if (s->key_len == len && memcmp(s->key, key, 16) == 0)
		{
			if (now - s->last_failure > THROTTLE_FORGET_US)
				s->failures = 0;
			return s;
		}
		if (s->last_failure < stalest->last_failure)
			stalest = s;
	}
	if (!create)
		return NULL;
	memcpy(stalest->key, key, 16);
	stalest->key_len = len;
	stalest->failures = 0;
	return stalest;
}

int
throttle_failure(const struct sockaddr_storage *addr, bool unix_socket, int base_ms, TimestampTz now)
{
	uint8		key[16];
	uint8		len = address_key(addr, unix_socket, key);
	ThrottleSlot *s;
	int64		delay;

	if (base_ms <= 0)
		return 0;
	s = find_slot(key, len, now, true);
	s->failures++;
	s->last_failure = now;
	delay = (int64) base_ms << Min(s->failures - 1, 16);
	return (int) Min(delay, (int64) THROTTLE_MAX_DELAY_MS);
}

void
throttle_success(const struct sockaddr_storage *addr, bool unix_socket, TimestampTz now)
{
	uint8		key[16];
	uint8		len = address_key(addr, unix_socket, key);
	ThrottleSlot *s = find_slot(key, len, now, false);

	if (s)
		s->failures = 0;
}
