/*
 * test_poll.c - unit tests for poll_events_first (src/poll.c): the events
 * it picks move to the front, both parts keep their order, nothing is lost
 * or duplicated, and a full batch of 256 works like a short one.
 */
#include "postgres.h"

#include "poll.h"
#include "unit.h"

/* Objects whose kind says whether the test's first() picks them. */
static IoObj picked = {IO_SERVER};
static IoObj passed = {IO_CLIENT};

static bool
is_server(const IoObj *obj)
{
	return obj->kind == IO_SERVER;
}

/* n events, event i picked when pattern says so, events[i].events = i. */
static void
fill(PollEvent *events, int n, bool (*pattern) (int i))
{
	for (int i = 0; i < n; i++)
	{
		events[i].obj = pattern(i) ? &picked : &passed;
		events[i].events = (uint32_t) i;
	}
}

static bool
every_third(int i)
{
	return i % 3 == 0;
}

static bool
none(int i)
{
	return i < 0;
}

static bool
all(int i)
{
	return i >= 0;
}

static bool
last_only(int i)
{
	return i == 255;
}

/* The front nfirst events are the picked ones in order, then the others in order. */
static void
check_order(PollEvent *events, int n, int nfirst, bool (*pattern) (int i))
{
	int			at = 0;

	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < n; i++)
			if (pattern(i) == (pass == 0))
			{
				CHECK(events[at].events == (uint32_t) i);
				CHECK(events[at].obj == (pass == 0 ? &picked : &passed));
				at++;
			}
	CHECK(at == n);
	for (int i = 0; i < n; i++)
		CHECK((i < nfirst) == (events[i].obj == &picked));
}

static void
test_partition(void)
{
	bool		(*patterns[]) (int) = {every_third, none, all, last_only};
	int			sizes[] = {0, 1, 2, 7, 256};
	PollEvent	events[256];

	for (size_t p = 0; p < lengthof(patterns); p++)
		for (size_t s = 0; s < lengthof(sizes); s++)
		{
			int			n = sizes[s];
			int			want = 0;
			int			nfirst;

			fill(events, n, patterns[p]);
			for (int i = 0; i < n; i++)
				want += patterns[p](i);
			nfirst = poll_events_first(events, n, is_server);
			CHECK(nfirst == want);
			check_order(events, n, nfirst, patterns[p]);
		}
}

void
poll_suite(void)
{
	UNIT_RUN(test_partition);
}
