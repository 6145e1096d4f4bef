/*
 * track.h - the protocol tracker: one per server connection, the only code
 * that knows which answers the backend still owes and whether the server is
 * at rest.
 *
 * It is a pure state machine over message types (no sockets, no
 * postgres.h): the caller feeds it every message the client side sends to
 * the server (track_client) and every message the server sends back
 * (track_server), in stream order. Each request that gets an answer is an
 * entry in a fixed-size ring of answers owed; answers pop entries from the
 * head. The rules it models are PostgreSQL 15's (postgres.c, copyfromparse.c):
 *
 *  - Query, FunctionCall and Sync are answered by ReadyForQuery; Parse,
 *    Bind, Describe, Execute and Close by their own answers; Flush and
 *    CopyData never by anything.
 *  - An ErrorResponse to an extended-protocol message makes the backend skip
 *    everything (Query included) up to the next Sync. An ErrorResponse while
 *    a Sync, Query or FunctionCall is at the head (a failed commit at Sync)
 *    skips nothing: ReadyForQuery follows.
 *  - COPY FROM STDIN (CopyInResponse or CopyBothResponse, entered through
 *    either protocol): every client message up to CopyDone/CopyFail goes to
 *    the COPY, so the Syncs and Flushes sent meanwhile (libpq sends one right
 *    after Execute) are ignored, and any other message fails the COPY. After
 *    the COPY the Execute that started it is answered (CommandComplete) and
 *    the backend waits for the next Sync.
 *  - CopyData/CopyDone/CopyFail outside COPY are ignored by the backend.
 *
 * The server is at rest when nothing is owed, no COPY runs, the backend is
 * not skipping to a Sync, every extended-protocol message was followed by a
 * Sync that got its ReadyForQuery, and that ReadyForQuery said idle ('I').
 *
 * The layer above (prepared.c) tags entries with its own data and learns
 * each entry's fate through a callback when it leaves the ring. Entries an
 * error made the backend skip are reported newest first, the failed one
 * last, so that changes made speculatively when they were sent can be
 * undone in reverse.
 */
#ifndef PGBUN_TRACK_H
#define PGBUN_TRACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Answers owed per server connection. A client with more requests in flight
 * on one server (a pipeline of more than this many messages not yet
 * answered) is refused with 54000 rather than grown without end.
 */
#define TRACK_MAX_OWED 2048

/* Entry flags (the tracker's own). */
#define TRACK_HIDE		0x01	/* pgbun sent it: its successful answer is not the client's */
#define TRACK_SYNTH		0x02	/* never sent: pgbun answers it itself when it reaches the head */
#define TRACK_DATA		0x04	/* CopyData was sent between the previous entry and this one */
#define TRACK_EXT		0x08	/* an extended-protocol message (needs a later Sync) */

/* How an entry left the ring (the callback's fate argument). */
typedef enum TrackFate
{
	TRACK_ANSWERED,				/* its answer arrived (or, TRACK_SYNTH, pgbun gave it) */
	TRACK_FAILED,				/* an ErrorResponse answered it */
	TRACK_SKIPPED,				/* the backend skipped it (error earlier in the batch) */
	TRACK_IGNORED,				/* the backend read and ignored it (Sync during COPY, stray CopyDone) */
	TRACK_DISCARDED,			/* the tracker was reset or freed */
} TrackFate;

typedef struct TrackEntry
{
	char		type;			/* client message type: Q P B D E C S F c f */
	uint8_t		flags;			/* TRACK_* */
	uint8_t		uflags;			/* the owner's flags */
	char		synth;			/* TRACK_SYNTH: the answer type pgbun gives ('1', '3', 'E') */
	uint32_t	tag;			/* the owner's number (0 unless it sets one on the tail) */
	void	   *data;			/* the owner's data (a statement, an error text) */
	char	   *name;			/* the owner's data (a client's statement name), or NULL */
} TrackEntry;

struct Track;
typedef void (*TrackDropFn) (void *owner, struct Track *t, TrackEntry *e, TrackFate fate);

/* What track_server says about one server message. */
typedef enum TrackVerdict
{
	TRACK_FORWARD,				/* it goes to the client */
	TRACK_CONSUME,				/* the answer to pgbun's own request: hide it */
	TRACK_LOST,					/* it matches nothing owed: the stream cannot be followed */
} TrackVerdict;

/* What track_client says about one client message. */
typedef enum TrackPush
{
	TRACK_QUEUED,				/* an answer is owed now */
	TRACK_NO_ANSWER,			/* none will come (Flush, CopyData, or the backend is skipping) */
	TRACK_FULL,					/* TRACK_MAX_OWED reached (or no memory for the ring) */
} TrackPush;

typedef struct Track
{
	TrackEntry *ring;			/* TRACK_MAX_OWED entries, allocated at first use */
	uint32_t	head;
	uint32_t	count;
	uint32_t	ext_owed;		/* extended-protocol entries in the ring */
	uint32_t	syncs_owed;		/* Sync entries in the ring */
	uint32_t	parse_close_owed;	/* Parse and Close entries in the ring (pgbun's own included) */
	bool		unsynced;		/* an extended-protocol message has had no ReadyForQuery after it */
	bool		copy_in;		/* the head started COPY FROM STDIN (or COPY BOTH) */
	bool		skipping;		/* the backend drops what the client sends now, up to its next Sync */
	bool		data_pending;	/* CopyData sent after the last entry */
	bool		lost;			/* the stream stopped matching (or is ambiguous): never at rest */
	char		status;			/* transaction status of the last ReadyForQuery */
	TrackDropFn drop;			/* called for every entry leaving the ring, or NULL */
	void	   *owner;
} Track;

extern void track_init(Track *t, TrackDropFn drop, void *owner);
/* Forget everything (every entry leaves as TRACK_DISCARDED) and free the ring. */
extern void track_free(Track *t);

/*
 * A client message on its way to the server (or pgbun's own: flags
 * TRACK_HIDE; or an answer pgbun gives: TRACK_SYNTH with synth set).
 * data/name/uflags are stored for the owner. On TRACK_NO_ANSWER nothing is
 * stored (the owner keeps ownership of data and name).
 */
extern TrackPush track_client(Track *t, char type, uint8_t flags, char synth, uint8_t uflags,
							  void *data, char *name);

/*
 * A server message. detail: for ReadyForQuery its status byte; for
 * ErrorResponse TRACK_ERR_PROTOCOL when its SQLSTATE is 08P01 (a COPY in
 * progress failed on a message that is not COPY data), else anything.
 */
#define TRACK_ERR_PROTOCOL 'P'
extern TrackVerdict track_server(Track *t, char type, char detail);

/* The entry at the head (oldest owed), or NULL. */
static inline TrackEntry *
track_head(const Track *t)
{
	return t->count > 0 ? &t->ring[t->head] : NULL;
}

/* The newest entry (just pushed), or NULL. */
static inline TrackEntry *
track_tail(const Track *t)
{
	return t->count > 0 ? &t->ring[(t->head + t->count - 1) % TRACK_MAX_OWED] : NULL;
}

/* The entry i places after the head (0 <= i < count). */
static inline TrackEntry *
track_entry_at(const Track *t, uint32_t i)
{
	return &t->ring[(t->head + i) % TRACK_MAX_OWED];
}

/* Does pgbun owe the client an answer of its own now (TRACK_SYNTH at the head)? */
static inline bool
track_synth_due(const Track *t)
{
	return t->count > 0 && (t->ring[t->head].flags & TRACK_SYNTH);
}

/*
 * Could a Parse or Close still owed be followed by a Sync owed (its fate
 * open in an earlier batch)? false means no, in O(1); true means maybe: the
 * caller looks at the entries.
 */
static inline bool
track_parse_close_maybe_unsynced(const Track *t)
{
	return t->parse_close_owed > 0 && t->syncs_owed > 0;
}

/* pgbun gave the synthesized answer at the head: pop it (an 'E' starts a skip). */
extern void track_synth_done(Track *t);

/* The backend will ignore what the client sends now, up to its next Sync. */
static inline bool
track_skipping(const Track *t)
{
	return t->skipping;
}

/* Something is in flight: an answer owed, a COPY, a skip, or no Sync yet. */
static inline bool
track_busy(const Track *t)
{
	return t->count > 0 || t->copy_in || t->skipping || t->unsynced || t->lost;
}

/* Every request answered, transaction idle: the server may serve another client. */
static inline bool
track_at_rest(const Track *t)
{
	return !track_busy(t) && t->status == 'I';
}

/* The stream cannot be followed any more (see TRACK_LOST); never at rest again. */
static inline void
track_lose(Track *t)
{
	t->lost = true;
}

/* Short text for logs: what the tracker holds. */
extern const char *track_describe(const Track *t, char *buf, size_t len);

#endif							/* PGBUN_TRACK_H */
