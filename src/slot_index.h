/*
 * slot_index.h - a hash index over a caller's array: from a 32-bit hash to
 * the positions in the array of the items with that hash, so a look-up by
 * name or by pointer costs O(1) instead of a scan of the array.
 *
 * The caller keeps its items in its own array (removing by moving the last
 * item into the hole) and tells the index about every change: an item added
 * at a position, removed from one, moved from one position to another. A
 * look-up walks the positions stored under a hash; the caller compares the
 * items themselves (different keys can share a hash).
 *
 * Open addressing with linear probing, at most half full, deletion by
 * shifting back (no tombstones). Plain malloc: no postgres.h needed.
 */
#ifndef PGBUN_SLOT_INDEX_H
#define PGBUN_SLOT_INDEX_H

#include <stdbool.h>
#include <stdint.h>

typedef struct SlotIndexEntry
{
	uint32_t	hash;
	int32_t		pos;			/* position in the caller's array; -1: empty */
} SlotIndexEntry;

typedef struct SlotIndex
{
	uint32_t	cap;			/* entries allocated: 0 or a power of two */
	uint32_t	count;			/* entries in use */
	SlotIndexEntry *slots;
} SlotIndex;

/* An empty index (no memory until the first add). */
#define SLOT_INDEX_INIT {0, 0, NULL}

/* The item at pos has this hash. false: out of memory (the index is unchanged). */
extern bool slot_index_add(SlotIndex *ix, uint32_t hash, int32_t pos);

/* The item at pos (with this hash) is gone. */
extern void slot_index_remove(SlotIndex *ix, uint32_t hash, int32_t pos);

/* The item with this hash moved from position from to position to. */
extern void slot_index_move(SlotIndex *ix, uint32_t hash, int32_t from, int32_t to);

/*
 * The positions stored under hash, one per call: set *cursor to 0 first;
 * -1 when there are no more.
 */
extern int32_t slot_index_next(const SlotIndex *ix, uint32_t hash, uint32_t *cursor);

/* Free the index's memory (it is empty and usable again). */
extern void slot_index_free(SlotIndex *ix);

#endif							/* PGBUN_SLOT_INDEX_H */
