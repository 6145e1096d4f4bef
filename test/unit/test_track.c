/*
 * test_track.c - unit tests for src/track.c, the protocol tracker.
 *
 * Most tests feed it message types only ("the client sent X", "the server
 * sent Y") and check what it says: answers owed, at rest, which entry an
 * answer belongs to (the drop callback records each entry's fate). The
 * sequences are PostgreSQL 15's own answers to them. One test runs a real
 * byte stream over a socketpair: a fake backend answers a pipeline and the
 * tracker, fed from the bytes read, ends at rest exactly at the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "proto.h"
#include "track.h"
#include "unit.h"

/* What the drop callback saw, as "type:fate" letters: "P+ B! Q- S~" */
static char fates[512];

static void
record(void *owner, Track *t, TrackEntry *e, TrackFate fate)
{
	static const char mark[] = {'+', '!', '-', '~', 'x'};
	size_t		n = strlen(fates);

	(void) owner;
	(void) t;
	if (n + 3 < sizeof(fates))
	{
		fates[n] = e->type;
		fates[n + 1] = mark[fate];
		fates[n + 2] = '\0';
	}
}

static void
start(Track *t)
{
	fates[0] = '\0';
	track_init(t, record, NULL);
}

/* The tracker's per-kind counts (prepared.c's O(1) checks) agree with the ring. */
static void
check_counts(const Track *t)
{
	uint32_t	syncs = 0,
				parse_close = 0;

	for (uint32_t i = 0; i < t->count; i++)
	{
		char		type = track_entry_at(t, i)->type;

		syncs += (type == 'S');
		parse_close += (type == 'P' || type == 'C');
	}
	CHECK(t->syncs_owed == syncs && t->parse_close_owed == parse_close);
	CHECK(track_parse_close_maybe_unsynced(t) == (syncs > 0 && parse_close > 0));
}

/* The client sends each type in s (no flags). */
static void
client(Track *t, const char *s)
{
	for (; *s; s++)
	{
		CHECK(track_client(t, *s, 0, 0, 0, NULL, NULL) != TRACK_FULL);
		check_counts(t);
	}
}

/* The server sends each type in s; 'Z' carries status; every one must be forwarded. */
static void
server(Track *t, const char *s, char status)
{
	for (; *s; s++)
	{
		CHECK(track_server(t, *s, status) == TRACK_FORWARD);
		check_counts(t);
	}
}

/* The counts follow every way out of the ring: answered, failed, skipped, ignored, freed. */
static void
test_kind_counts(void)
{
	Track		t;

	start(&t);
	client(&t, "PBES");
	client(&t, "PCS");
	CHECK(t.syncs_owed == 2 && t.parse_close_owed == 3);
	server(&t, "12E", 'I');		/* the Execute fails: nothing left to skip before its Sync */
	server(&t, "Z", 'I');
	CHECK(t.syncs_owed == 1 && t.parse_close_owed == 2);
	server(&t, "13Z", 'I');
	CHECK(t.syncs_owed == 0 && t.parse_close_owed == 0 && track_at_rest(&t));
	/* skipped entries: a failing Parse takes the rest of its batch with it */
	client(&t, "PBCPS");
	server(&t, "E", 'I');
	CHECK(t.syncs_owed == 1 && t.parse_close_owed == 0);
	server(&t, "Z", 'I');
	/* freed with entries owed */
	client(&t, "PCS");
	track_free(&t);
	CHECK(t.syncs_owed == 0 && t.parse_close_owed == 0);
}

static void
test_simple_query(void)
{
	Track		t;

	start(&t);
	CHECK(track_at_rest(&t));
	client(&t, "Q");
	CHECK(!track_at_rest(&t) && track_busy(&t));
	server(&t, "TDDC", 'I');
	CHECK(!track_at_rest(&t));
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	CHECK(strcmp(fates, "Q+") == 0);
	/* a multi-statement query: several results, one ReadyForQuery; an empty one */
	client(&t, "QQ");
	server(&t, "TDCCTCZ", 'I');
	CHECK(!track_at_rest(&t));
	server(&t, "IZ", 'I');
	CHECK(track_at_rest(&t));
	track_free(&t);
}

static void
test_transaction_status(void)
{
	Track		t;

	start(&t);
	client(&t, "Q");
	server(&t, "CZ", 'T');
	CHECK(!track_busy(&t) && !track_at_rest(&t));	/* idle in transaction: not for others */
	client(&t, "Q");
	server(&t, "CZ", 'I');
	CHECK(track_at_rest(&t));
	client(&t, "Q");
	server(&t, "EZ", 'E');
	CHECK(!track_at_rest(&t));
	track_free(&t);
}

static void
test_extended_batch(void)
{
	Track		t;

	start(&t);
	client(&t, "PBDES");
	server(&t, "12TDDC", 'I');
	CHECK(!track_at_rest(&t));
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	CHECK(strcmp(fates, "P+B+D+E+S+") == 0);
	/* Describe of a statement: ParameterDescription then RowDescription or NoData */
	client(&t, "DDS");
	server(&t, "tTtnZ", 'I');
	CHECK(track_at_rest(&t));
	/* PortalSuspended ends an Execute with a row limit */
	client(&t, "BEES");
	server(&t, "2DsDCZ", 'I');
	CHECK(track_at_rest(&t));
	track_free(&t);
}

static void
test_flush_without_sync(void)
{
	Track		t;

	start(&t);
	client(&t, "PDH");
	server(&t, "1tT", 'I');
	/* nothing owed, but the batch is not synced: the server is not at rest */
	CHECK(t.count == 0);
	CHECK(track_busy(&t) && !track_at_rest(&t));
	client(&t, "BES");
	server(&t, "2DCZ", 'I');
	CHECK(track_at_rest(&t));
	/* a lone Flush neither owes anything nor holds the server */
	client(&t, "H");
	CHECK(track_at_rest(&t));
	track_free(&t);
}

static void
test_error_skips_to_sync(void)
{
	Track		t;

	start(&t);
	/* Parse, failing Bind, a Query (skipped too), Sync */
	client(&t, "PBQS");
	server(&t, "1E", 'I');
	CHECK(t.count == 1 && track_head(&t)->type == 'S');
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	CHECK(strcmp(fates, "P+Q-B!S+") == 0);	/* what did not happen: newest first */
	track_free(&t);
}

static void
test_error_before_sync_sent(void)
{
	Track		t;

	start(&t);
	client(&t, "P");
	server(&t, "E", 'I');
	/* the backend now drops everything up to the client's Sync */
	CHECK(track_skipping(&t) && !track_at_rest(&t));
	CHECK(track_client(&t, 'B', 0, 0, 0, NULL, NULL) == TRACK_NO_ANSWER);
	CHECK(track_client(&t, 'Q', 0, 0, 0, NULL, NULL) == TRACK_NO_ANSWER);
	CHECK(track_client(&t, 'S', 0, 0, 0, NULL, NULL) == TRACK_QUEUED);
	CHECK(!track_skipping(&t));
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	track_free(&t);
}

static void
test_error_at_sync(void)
{
	Track		t;

	start(&t);
	/* the implicit transaction's commit fails at Sync, the next batch is already sent */
	client(&t, "PBESPBES");
	server(&t, "12CE", 'I');
	CHECK(t.count == 5 && track_head(&t)->type == 'S');
	server(&t, "Z", 'I');
	server(&t, "12DCZ", 'I');
	CHECK(track_at_rest(&t));
	CHECK(strcmp(fates, "P+B+E+S+P+B+E+S+") == 0);
	/* an error in a simple query, and in a function call: ReadyForQuery follows */
	client(&t, "QF");
	server(&t, "EZEZ", 'I');
	CHECK(track_at_rest(&t));
	track_free(&t);
}

static void
test_extended_copy_in(void)
{
	Track		t;

	start(&t);
	/* PQexecParams: the first Sync arrives while the backend is in copy-in */
	client(&t, "PBDES");
	server(&t, "12nG", 'I');
	CHECK(t.copy_in);
	client(&t, "dddcS");
	server(&t, "C", 'I');
	CHECK(!t.copy_in && t.count == 1 && track_head(&t)->type == 'S');
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	CHECK(strcmp(fates, "P+B+D+S~c~E+S+") == 0);
	/* without the second Sync the backend still waits for one */
	client(&t, "PBES");
	server(&t, "12G", 'I');
	client(&t, "dc");
	server(&t, "C", 'I');
	CHECK(t.count == 0 && track_busy(&t) && !track_at_rest(&t));
	client(&t, "S");
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	track_free(&t);
}

static void
test_copy_fail_and_bad_data(void)
{
	Track		t;

	start(&t);
	/* CopyFail in extended mode: error, skip to the second Sync */
	client(&t, "PBES");
	server(&t, "12G", 'I');
	client(&t, "dfS");
	server(&t, "E", 'I');
	CHECK(t.count == 1 && track_head(&t)->type == 'S');
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	/* bad data: the error comes while the client is still sending */
	client(&t, "PBES");
	server(&t, "12G", 'I');
	client(&t, "d");
	server(&t, "E", 'I');
	CHECK(!t.copy_in && track_skipping(&t));
	client(&t, "ddcS");
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	/* simple-query COPY, bad data, the rest of the data and another query */
	client(&t, "Q");
	server(&t, "G", 'I');
	client(&t, "d");
	server(&t, "EZ", 'I');
	CHECK(track_at_rest(&t));
	client(&t, "dcQ");
	CHECK(t.count == 1);		/* the stray CopyDone is ignored at once */
	server(&t, "TDCZ", 'I');
	CHECK(track_at_rest(&t));
	track_free(&t);
}

static void
test_copy_pipelined_and_out(void)
{
	Track		t;

	start(&t);
	/* simple COPY FROM STDIN with the data sent before CopyInResponse */
	client(&t, "QddcQ");
	server(&t, "GCZ", 'I');
	server(&t, "TDCZ", 'I');
	CHECK(track_at_rest(&t));
	/* a query sent into the COPY instead of data fails it (08P01) and is consumed */
	client(&t, "QQ");
	server(&t, "G", 'I');
	server(&t, "E", TRACK_ERR_PROTOCOL);
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	/* a COPY failing before it reads anything (into a view): the Sync is the main loop's */
	client(&t, "PBES");
	server(&t, "12GE", 'I');
	CHECK(t.count == 1 && track_head(&t)->type == 'S');
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	client(&t, "dcS");
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	/* COPY TO STDOUT in both protocols, and a COPY BOTH */
	client(&t, "Q");
	server(&t, "HdddcCZ", 'I');
	client(&t, "PBES");
	server(&t, "12HdcCZ", 'I');
	CHECK(track_at_rest(&t));
	client(&t, "Q");
	server(&t, "W", 'I');
	client(&t, "dc");
	server(&t, "dcCZ", 'I');
	CHECK(track_at_rest(&t));
	track_free(&t);
}

static void
test_copy_ambiguous(void)
{
	Track		t;

	start(&t);
	/* a Sync after CopyData, then a failed COPY: read by the COPY or not? */
	client(&t, "PBES");
	server(&t, "12G", 'I');
	client(&t, "dSdc");
	CHECK(track_server(&t, 'E', 'I') == TRACK_LOST);
	CHECK(!track_at_rest(&t));
	track_free(&t);
}

static void
test_function_call_and_stray_copy(void)
{
	Track		t;

	start(&t);
	client(&t, "F");
	server(&t, "VZ", 'I');
	CHECK(track_at_rest(&t));
	/* CopyDone / CopyFail / CopyData outside COPY: the backend ignores them */
	client(&t, "cfd");
	CHECK(t.count == 0 && track_at_rest(&t));
	CHECK(strcmp(fates, "F+c~f~") == 0);
	track_free(&t);
}

static void
test_hidden_and_synth(void)
{
	Track		t;

	start(&t);
	/* pgbun's own Parse before the client's Bind: its ParseComplete is hidden */
	CHECK(track_client(&t, 'P', TRACK_HIDE, 0, 7, NULL, NULL) == TRACK_QUEUED);
	client(&t, "B");
	/* a Parse pgbun answers itself, then a Close */
	CHECK(track_client(&t, 'P', TRACK_SYNTH, '1', 0, NULL, NULL) == TRACK_QUEUED);
	CHECK(track_client(&t, 'C', TRACK_SYNTH, '3', 0, NULL, NULL) == TRACK_QUEUED);
	client(&t, "S");
	CHECK(!track_synth_due(&t));
	CHECK(track_server(&t, '1', 'I') == TRACK_CONSUME);
	server(&t, "2", 'I');
	CHECK(track_synth_due(&t) && track_head(&t)->synth == '1');
	track_synth_done(&t);
	CHECK(track_synth_due(&t) && track_head(&t)->synth == '3');
	track_synth_done(&t);
	CHECK(!track_synth_due(&t));
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	/* pgbun's own error (42P05): no answer for it from the server; the Sync is answered */
	CHECK(track_client(&t, 'P', TRACK_SYNTH, 'E', 0, NULL, NULL) == TRACK_QUEUED);
	client(&t, "S");
	track_synth_done(&t);
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	/* an earlier error skips pgbun's answers too */
	client(&t, "B");
	CHECK(track_client(&t, 'P', TRACK_SYNTH, '1', 0, NULL, NULL) == TRACK_QUEUED);
	client(&t, "S");
	fates[0] = '\0';
	server(&t, "E", 'I');
	CHECK(strcmp(fates, "P-B!") == 0);
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	track_free(&t);
}

static void
test_lost(void)
{
	Track		t;

	start(&t);
	client(&t, "P");
	CHECK(track_server(&t, '2', 'I') == TRACK_LOST);
	CHECK(!track_at_rest(&t) && track_busy(&t));
	track_free(&t);
	start(&t);
	/* a ReadyForQuery nothing asked for */
	CHECK(track_server(&t, 'Z', 'I') == TRACK_LOST);
	track_free(&t);
	start(&t);
	/* asynchronous messages and a FATAL error with nothing owed are fine */
	server(&t, "NSAE", 'I');
	CHECK(track_at_rest(&t));
	track_free(&t);
}

static void
test_ring_bound(void)
{
	Track		t;
	int			queued = 0;

	start(&t);
	for (int i = 0; i < TRACK_MAX_OWED + 10; i++)
		if (track_client(&t, 'B', 0, 0, 0, NULL, NULL) == TRACK_QUEUED)
			queued++;
	CHECK(queued == TRACK_MAX_OWED);
	CHECK(track_client(&t, 'S', 0, 0, 0, NULL, NULL) == TRACK_FULL);
	/* answers make room again, and the ring wraps around */
	for (int i = 0; i < 100; i++)
		server(&t, "2", 'I');
	client(&t, "S");
	for (int i = 0; i < TRACK_MAX_OWED - 100; i++)
		server(&t, "2", 'I');
	server(&t, "Z", 'I');
	CHECK(track_at_rest(&t));
	fates[0] = '\0';
	track_free(&t);
	CHECK(fates[0] == '\0');
}

/* ---- over a socketpair: a fake backend answers what it reads ---- */

static void
put(uint8_t **p, char type, const char *body, uint32_t blen)
{
	uint32_t	len = 4 + blen;

	*(*p)++ = (uint8_t) type;
	*(*p)++ = (uint8_t) (len >> 24);
	*(*p)++ = (uint8_t) (len >> 16);
	*(*p)++ = (uint8_t) (len >> 8);
	*(*p)++ = (uint8_t) len;
	memcpy(*p, body, blen);
	*p += blen;
}

/*
 * The backend side of a pipeline: Parse -> '1', Bind -> '2', Execute ->
 * DataRow + CommandComplete, Sync -> ReadyForQuery, Query -> RowDescription,
 * CommandComplete, ReadyForQuery. Whatever it reads it answers in order.
 */
static size_t
fake_backend(const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t    *p = out;
	size_t		pos = 0;
	ProtoHeader h;

	while (proto_parse_header(in + pos, len - pos, 1 << 20, &h) == PROTO_OK &&
		   pos + proto_msg_size(&h) <= len)
	{
		switch (h.type)
		{
			case 'P':
				put(&p, '1', "", 0);
				break;
			case 'B':
				put(&p, '2', "", 0);
				break;
			case 'E':
				put(&p, 'D', "\0\1\0\0\0\1x", 7);
				put(&p, 'C', "SELECT 1", 9);
				break;
			case 'S':
				put(&p, 'Z', "I", 1);
				break;
			case 'Q':
				put(&p, 'T', "\0\0", 2);
				put(&p, 'C', "SELECT 0", 9);
				put(&p, 'Z', "I", 1);
				break;
		}
		pos += proto_msg_size(&h);
	}
	return (size_t) (p - out);
}

static void
test_socketpair_pipeline(void)
{
	int			sv[2];
	uint8_t		req[4096];
	uint8_t		ans[8192];
	uint8_t		got[8192];
	uint8_t    *p = req;
	size_t		rlen;
	size_t		alen;
	size_t		glen = 0;
	size_t		pos = 0;
	Track		t;
	ProtoHeader h;
	int			rest_points = 0;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
	start(&t);
	/* the client side: three batches and a simple query, fed to the tracker as sent */
	for (int b = 0; b < 3; b++)
	{
		put(&p, 'P', "\0SELECT 1\0\0\0", 12);
		put(&p, 'B', "\0\0\0\0\0\0\0\0", 8);
		put(&p, 'E', "\0\0\0\0\0", 5);
		put(&p, 'S', "", 0);
	}
	put(&p, 'Q', "SELECT 0", 9);
	rlen = (size_t) (p - req);
	for (size_t i = 0; proto_parse_header(req + i, rlen - i, 1 << 20, &h) == PROTO_OK && i < rlen;
		 i += proto_msg_size(&h))
		CHECK(track_client(&t, h.type, 0, 0, 0, NULL, NULL) == TRACK_QUEUED);
	CHECK(t.count == 13);
	/* the backend answers; its bytes come back through the socket in pieces */
	alen = fake_backend(req, rlen, ans);
	for (size_t off = 0; off < alen; off += 7)
		CHECK(write(sv[0], ans + off, (alen - off < 7) ? alen - off : 7) > 0);
	close(sv[0]);
	for (;;)
	{
		ssize_t		n = read(sv[1], got + glen, sizeof(got) - glen);

		if (n <= 0)
			break;
		glen += (size_t) n;
	}
	close(sv[1]);
	CHECK(glen == alen);
	while (proto_parse_header(got + pos, glen - pos, 1 << 20, &h) == PROTO_OK && pos < glen)
	{
		CHECK(!track_at_rest(&t));
		CHECK(track_server(&t, h.type, h.type == 'Z' ? (char) got[pos + 5] : 'I') == TRACK_FORWARD);
		if (track_at_rest(&t))
			rest_points++;
		pos += proto_msg_size(&h);
	}
	/* the whole pipeline was owed: at rest only after its very last answer */
	CHECK(pos == glen);
	CHECK(rest_points == 1);
	CHECK(track_at_rest(&t));
	track_free(&t);
}

void
track_suite(void)
{
	UNIT_RUN(test_simple_query);
	UNIT_RUN(test_transaction_status);
	UNIT_RUN(test_extended_batch);
	UNIT_RUN(test_flush_without_sync);
	UNIT_RUN(test_error_skips_to_sync);
	UNIT_RUN(test_error_before_sync_sent);
	UNIT_RUN(test_error_at_sync);
	UNIT_RUN(test_extended_copy_in);
	UNIT_RUN(test_copy_fail_and_bad_data);
	UNIT_RUN(test_copy_pipelined_and_out);
	UNIT_RUN(test_copy_ambiguous);
	UNIT_RUN(test_function_call_and_stray_copy);
	UNIT_RUN(test_hidden_and_synth);
	UNIT_RUN(test_lost);
	UNIT_RUN(test_ring_bound);
	UNIT_RUN(test_socketpair_pipeline);
	UNIT_RUN(test_kind_counts);
}
