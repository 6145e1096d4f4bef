/*
 * test_throttle.c - unit tests for src/throttle.c: the failed-login delay per
 * client address (doubling, cap, forgetting after a minute, reset on
 * success, addresses kept apart, a full table reusing its stalest entry).
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "throttle.h"
#include "unit.h"

static struct sockaddr_storage
v4(const char *text)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *) &ss;

	memset(&ss, 0, sizeof(ss));
	sin->sin_family = AF_INET;
	CHECK(inet_pton(AF_INET, text, &sin->sin_addr) == 1);
	return ss;
}

static void
test_doubling_and_cap(void)
{
	struct sockaddr_storage a = v4("192.0.2.1");
	TimestampTz now = 1000 * USECS_PER_SEC;
	int			want = 100;

	CHECK(throttle_failure(&a, false, 0, now) == 0);	/* off */
	for (int i = 0; i < 12; i++)
	{
		CHECK(throttle_failure(&a, false, 100, now) == Min(want, 30000));
		want *= 2;
	}
	/* a minute later the count starts over */
	CHECK(throttle_failure(&a, false, 100, now + 61 * USECS_PER_SEC) == 100);
	/* a success clears it */
	CHECK(throttle_failure(&a, false, 100, now + 62 * USECS_PER_SEC) == 200);
	throttle_success(&a, false, now + 63 * USECS_PER_SEC);
	CHECK(throttle_failure(&a, false, 100, now + 64 * USECS_PER_SEC) == 100);
}

static void
test_addresses_apart(void)
{
	struct sockaddr_storage a = v4("198.51.100.7");
	struct sockaddr_storage b = v4("198.51.100.8");
	TimestampTz now = 5000 * USECS_PER_SEC;

	CHECK(throttle_failure(&a, false, 50, now) == 50);
	CHECK(throttle_failure(&a, false, 50, now) == 100);
	CHECK(throttle_failure(&b, false, 50, now) == 50);
	CHECK(throttle_failure(NULL, true, 50, now) == 50);	/* Unix socket: one entry */
	CHECK(throttle_failure(NULL, true, 50, now) == 100);
	CHECK(throttle_failure(&a, false, 50, now) == 200);
}

static void
test_table_full(void)
{
	TimestampTz now = 9000 * USECS_PER_SEC;
	struct sockaddr_storage first = v4("203.0.113.1");
	char		text[32];

	CHECK(throttle_failure(&first, false, 10, now) == 10);
	/* many other senders, later: the stalest entry (first) is reused, never grown */
	for (int i = 0; i < 2000; i++)
	{
		struct sockaddr_storage x;

		snprintf(text, sizeof(text), "10.%d.%d.1", i / 250, i % 250);
		x = v4(text);
		CHECK(throttle_failure(&x, false, 10, now + 1 + i) == 10);
	}
	CHECK(throttle_failure(&first, false, 10, now + 5000) == 10);
}

void
throttle_suite(void)
{
	UNIT_RUN(test_doubling_and_cap);
	UNIT_RUN(test_addresses_apart);
	UNIT_RUN(test_table_full);
}
