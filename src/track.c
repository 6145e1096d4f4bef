/*
 * track.c - the protocol tracker (see track.h for the rules it models).
 *
 * Pure C, no postgres.h: unit-tested on its own (test/unit/test_track.c).
 * Nothing here allocates per message: the ring of answers owed is allocated
 * once, at the first request on a connection, and has a fixed size.
 *
 * unsynced: the backend sits in an implicit transaction (or holds an
 * unsynced batch) after an extended-protocol message until a ReadyForQuery
 * comes with no extended-protocol message left behind it in the ring, even
 * when nothing is owed (Parse + Flush, answered).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "track.h"

void
track_init(Track *t, TrackDropFn drop, void *owner)
{
	memset(t, 0, sizeof(*t));
	t->status = 'I';
	t->drop = drop;
	t->owner = owner;
}

/* The counts kept per kind of entry (track.h), as an entry joins or leaves the ring. */
static inline void
count_entry(Track *t, const TrackEntry *e, int delta)
{
	if (e->flags & TRACK_EXT)
		t->ext_owed += delta;
	if (e->type == 'S')
		t->syncs_owed += delta;
	else if (e->type == 'P' || e->type == 'C')
		t->parse_close_owed += delta;
}

/* Remove the head entry, telling the owner how it ended. */
static void
pop_head(Track *t, TrackFate fate)
{
	TrackEntry *e = &t->ring[t->head];

	count_entry(t, e, -1);
	if (t->drop)
		t->drop(t->owner, t, e, fate);
	t->head = (t->head + 1) % TRACK_MAX_OWED;
	t->count--;
}

/* Remove the entry i places after the head (i > 0), keeping the order of the rest. */
static void
remove_at(Track *t, uint32_t i, TrackFate fate)
{
	TrackEntry *e = &t->ring[(t->head + i) % TRACK_MAX_OWED];

	count_entry(t, e, -1);
	if (t->drop)
		t->drop(t->owner, t, e, fate);
	/* shift the older entries up by one: i is small (inside one COPY) */
	for (uint32_t k = i; k > 0; k--)
		t->ring[(t->head + k) % TRACK_MAX_OWED] = t->ring[(t->head + k - 1) % TRACK_MAX_OWED];
	t->head = (t->head + 1) % TRACK_MAX_OWED;
	t->count--;
}

void
track_free(Track *t)
{
	while (t->count > 0)
		pop_head(t, TRACK_DISCARDED);
	free(t->ring);
	t->ring = NULL;
	t->head = 0;
	t->copy_in = t->skipping = t->data_pending = t->unsynced = false;
	t->ext_owed = t->syncs_owed = t->parse_close_owed = 0;
}

/*
 * Entries the backend answers with nothing once they reach the head: a
 * CopyDone/CopyFail there is outside any COPY (a COPY keeps its starting
 * request at the head), so the backend ignores it.
 */
static void
settle(Track *t)
{
	while (t->count > 0 && !t->copy_in)
	{
		TrackEntry *h = &t->ring[t->head];

		if (h->type != 'c' && h->type != 'f')
			break;
		pop_head(t, TRACK_IGNORED);
	}
}

TrackPush
track_client(Track *t, char type, uint8_t flags, char synth, uint8_t uflags, void *data, char *name)
{
	TrackEntry *e;

	switch (type)
	{
		case 'd':
			t->data_pending = true;
			return TRACK_NO_ANSWER;
		case 'H':				/* Flush: never answered */
		case 'X':
			return TRACK_NO_ANSWER;
		case 'S':
			break;				/* a Sync ends a skip: it is answered */
		case 'Q':
		case 'F':
		case 'P':
		case 'B':
		case 'D':
		case 'E':
		case 'C':
		case 'c':
		case 'f':
			if (t->skipping)
				return TRACK_NO_ANSWER; /* the backend drops it unread */
			break;
		default:
			return TRACK_NO_ANSWER; /* not a request (the backend would refuse it: its error answers nothing owed) */
	}
	if (t->count >= TRACK_MAX_OWED)
		return TRACK_FULL;
	if (!t->ring)
	{
		t->ring = malloc(sizeof(TrackEntry) * TRACK_MAX_OWED);
		if (!t->ring)
			return TRACK_FULL;
	}
	e = &t->ring[(t->head + t->count) % TRACK_MAX_OWED];
	e->type = type;
	e->flags = flags & (TRACK_HIDE | TRACK_SYNTH);
	if (t->data_pending)
		e->flags |= TRACK_DATA;
	t->data_pending = false;
	if (strchr("PBDEC", type) && !(flags & TRACK_SYNTH))
	{
		e->flags |= TRACK_EXT;
		t->unsynced = true;
	}
	count_entry(t, e, 1);
	e->uflags = uflags;
	e->synth = synth;
	e->data = data;
	e->name = name;
	e->tag = 0;
	t->count++;
	if (type == 'S')
		t->skipping = false;
	settle(t);
	return TRACK_QUEUED;
}

/*
 * An ErrorResponse answered the extended-protocol message at the head: the
 * backend skips everything up to the next Sync. Entries already sent go now;
 * with no Sync sent yet, what the client sends until its Sync is dropped on
 * arrival (skipping).
 */
static void
start_skip(Track *t)
{
	uint32_t	n = 1;

	while (n < t->count && t->ring[(t->head + n) % TRACK_MAX_OWED].type != 'S')
		n++;
	/*
	 * Newest first: the owner changed its state for each of these when it
	 * was sent, and undoes those changes in reverse (a skipped Close gives
	 * back a name before the failed Parse that made it takes it away).
	 */
	for (uint32_t i = n; i-- > 0;)
	{
		TrackEntry *e = &t->ring[(t->head + i) % TRACK_MAX_OWED];

		count_entry(t, e, -1);
		if (t->drop)
			t->drop(t->owner, t, e, i == 0 ? TRACK_FAILED : TRACK_SKIPPED);
	}
	t->head = (t->head + n) % TRACK_MAX_OWED;
	t->count -= n;
	if (t->count == 0)
		t->skipping = true;
}

/*
 * The COPY FROM STDIN started by the head ended. ok: CommandComplete came,
 * so the backend read everything up to the first CopyDone: the Syncs before
 * it were ignored, anything else cannot be there. Else an ErrorResponse came:
 * the COPY failed at some point while reading. Syncs sent before any
 * CopyData were certainly read (and ignored) by the COPY; one sent after
 * CopyData may have been read by the COPY or, after a failure at that data,
 * by the main loop: ambiguous, so the tracker gives up (lost). A CopyDone or
 * CopyFail gets no answer either way. A non-COPY message right after the
 * last Sync with no CopyData before it is the one that failed the COPY
 * (consumed); after CopyData it is ambiguous in simple mode, and skipped
 * anyway in extended mode. An error with no COPY message sent yet failed
 * before the COPY read anything (unless it is the protocol violation of a
 * non-COPY message sent into it).
 */
static bool
end_copy(Track *t, bool ok, bool protocol_error)
{
	bool		data = false;
	bool		extended = (t->ring[t->head].type == 'E');
	bool		copy_sent = t->data_pending;
	bool		other_sent = false;

	t->copy_in = false;
	for (uint32_t i = 1; i < t->count; i++)
	{
		TrackEntry *e = &t->ring[(t->head + i) % TRACK_MAX_OWED];

		copy_sent |= (e->flags & TRACK_DATA) || e->type == 'c' || e->type == 'f';
		other_sent |= (e->type != 'S' && e->type != 'c' && e->type != 'f');
	}
	if (!ok && !copy_sent && !(protocol_error && other_sent))
	{
		/*
		 * It failed before the client sent anything for it (COPY into a view
		 * fails right after CopyInResponse): the backend read none of what
		 * followed, its main loop gets it all, Syncs included.
		 */
		return true;
	}
	while (t->count > 1)
	{
		TrackEntry *e = &t->ring[(t->head + 1) % TRACK_MAX_OWED];

		data |= (e->flags & TRACK_DATA) != 0;
		if (e->type == 'S')
		{
			if (!ok && data)
				return false;
			remove_at(t, 1, TRACK_IGNORED);
			continue;
		}
		if (e->type == 'c' || e->type == 'f')
		{
			if (ok && e->type == 'f')
				return false;	/* CopyFail cannot end in success */
			remove_at(t, 1, TRACK_IGNORED);
			return true;
		}
		/* any other request inside the COPY */
		if (ok)
			return false;		/* it would have failed the COPY */
		if (!data)
			remove_at(t, 1, TRACK_FAILED);	/* it failed the COPY, and was consumed */
		else if (!extended)
			return false;
		return true;
	}
	/* nothing but Syncs sent after it: the client's CopyDone is still to come */
	return !ok;
}

TrackVerdict
track_server(Track *t, char type, char detail)
{
	char		status = detail;

	TrackEntry *h;

	settle(t);
	h = track_head(t);
	if (type == 'N' || type == 'S' || type == 'A')
		return TRACK_FORWARD;	/* asynchronous: answer nothing */
	if (t->lost)
		return TRACK_FORWARD;	/* no longer followed: pass on */
	if (!h || (h->flags & TRACK_SYNTH))
	{
		/* a FATAL error with nothing owed is the server going away */
		if (!h && type == 'E')
			return TRACK_FORWARD;
		t->lost = true;
		return TRACK_LOST;
	}

	if (t->copy_in)
	{
		switch (type)
		{
			case 'C':
				if (!end_copy(t, true, false))
					break;
				if (t->ring[t->head].type == 'E')
					pop_head(t, TRACK_ANSWERED);
				return TRACK_FORWARD;
			case 'E':
				if (!end_copy(t, false, detail == TRACK_ERR_PROTOCOL))
					break;
				if (t->ring[t->head].type == 'E')
					start_skip(t);
				return TRACK_FORWARD;
			case 'd':			/* COPY BOTH: the server's data */
			case 'c':
				return TRACK_FORWARD;
			default:
				break;
		}
		t->lost = true;
		return TRACK_LOST;
	}

	switch (type)
	{
		case 'E':
			if (h->type == 'S' || h->type == 'Q' || h->type == 'F')
				return TRACK_FORWARD;	/* ReadyForQuery follows */
			start_skip(t);
			return TRACK_FORWARD;
		case 'Z':
			if (h->type != 'S' && h->type != 'Q' && h->type != 'F')
				break;
			t->status = status;
			pop_head(t, TRACK_ANSWERED);
			t->unsynced = (t->ext_owed > 0);
			settle(t);
			return TRACK_FORWARD;
		case '1':				/* ParseComplete */
			if (h->type != 'P')
				break;
			{
				bool		hide = (h->flags & TRACK_HIDE) != 0;

				pop_head(t, TRACK_ANSWERED);
				settle(t);
				return hide ? TRACK_CONSUME : TRACK_FORWARD;
			}
		case '2':				/* BindComplete */
			if (h->type != 'B')
				break;
			pop_head(t, TRACK_ANSWERED);
			settle(t);
			return TRACK_FORWARD;
		case '3':				/* CloseComplete */
			if (h->type != 'C')
				break;
			{
				bool		hide = (h->flags & TRACK_HIDE) != 0;

				pop_head(t, TRACK_ANSWERED);
				settle(t);
				return hide ? TRACK_CONSUME : TRACK_FORWARD;
			}
		case 't':				/* ParameterDescription: RowDescription or NoData follows */
			if (h->type != 'D')
				break;
			return TRACK_FORWARD;
		case 'T':				/* RowDescription */
			if (h->type == 'Q')
				return TRACK_FORWARD;
			if (h->type != 'D')
				break;
			pop_head(t, TRACK_ANSWERED);
			settle(t);
			return TRACK_FORWARD;
		case 'n':				/* NoData */
			if (h->type != 'D')
				break;
			pop_head(t, TRACK_ANSWERED);
			settle(t);
			return TRACK_FORWARD;
		case 'C':				/* CommandComplete */
		case 'I':				/* EmptyQueryResponse */
			if (h->type == 'Q')
				return TRACK_FORWARD;
			if (h->type != 'E')
				break;
			pop_head(t, TRACK_ANSWERED);
			settle(t);
			return TRACK_FORWARD;
		case 's':				/* PortalSuspended */
			if (h->type != 'E')
				break;
			pop_head(t, TRACK_ANSWERED);
			settle(t);
			return TRACK_FORWARD;
		case 'D':				/* DataRow */
		case 'H':				/* CopyOutResponse */
		case 'd':				/* CopyData (COPY TO STDOUT) */
		case 'c':				/* CopyDone (COPY TO STDOUT) */
			if (h->type != 'Q' && h->type != 'E')
				break;
			return TRACK_FORWARD;
		case 'G':				/* CopyInResponse */
		case 'W':				/* CopyBothResponse */
			if (h->type != 'Q' && h->type != 'E')
				break;
			t->copy_in = true;
			return TRACK_FORWARD;
		case 'V':				/* FunctionCallResponse */
			if (h->type != 'F')
				break;
			return TRACK_FORWARD;
		default:
			break;
	}
	t->lost = true;
	return TRACK_LOST;
}

void
track_synth_done(Track *t)
{
	TrackEntry *h = track_head(t);

	if (!h || !(h->flags & TRACK_SYNTH))
		return;
	if (h->synth == 'E')
	{
		/* pgbun's own error: the client's messages up to its Sync were not sent */
		pop_head(t, TRACK_FAILED);
		settle(t);
		return;
	}
	pop_head(t, TRACK_ANSWERED);
	settle(t);
}

const char *
track_describe(const Track *t, char *buf, size_t len)
{
	char		types[17];
	uint32_t	n = t->count < 16 ? t->count : 16;

	for (uint32_t i = 0; i < n; i++)
		types[i] = t->ring[(t->head + i) % TRACK_MAX_OWED].type;
	types[n] = '\0';
	snprintf(buf, len, "owed=%u [%s%s]%s%s%s%s status=%c",
			 t->count, types, t->count > n ? "..." : "",
			 t->copy_in ? " copy_in" : "", t->skipping ? " skipping" : "",
 t->unsynced ? " unsynced" : "", t->lost ? " lost" : "",
			 t->status);
	return buf;
}
