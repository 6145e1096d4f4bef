/*
 * slot_index.c - the hash index over a caller's array (slot_index.h).
 */
#include <stdlib.h>

#include "slot_index.h"

#define SLOT_INDEX_MIN_CAP 16

/* Put an entry in the first free slot of its probe sequence (there is one: at most half full). */
static void
place(SlotIndexEntry *slots, uint32_t mask, uint32_t hash, int32_t pos)
{
	uint32_t	i = hash & mask;

	while (slots[i].pos >= 0)
		i = (i + 1) & mask;
	slots[i].hash = hash;
	slots[i].pos = pos;
}

static bool
grow(SlotIndex *ix)
{
	uint32_t	ncap = ix->cap ? ix->cap * 2 : SLOT_INDEX_MIN_CAP;
	SlotIndexEntry *nslots;

	if (ncap == 0 || ncap > (UINT32_C(1) << 30))
		return false;
	nslots = malloc(sizeof(SlotIndexEntry) * ncap);
	if (!nslots)
		return false;
	for (uint32_t i = 0; i < ncap; i++)
		nslots[i].pos = -1;
	for (uint32_t i = 0; i < ix->cap; i++)
		if (ix->slots[i].pos >= 0)
			place(nslots, ncap - 1, ix->slots[i].hash, ix->slots[i].pos);
	free(ix->slots);
	ix->slots = nslots;
	ix->cap = ncap;
	return true;
}

bool
slot_index_add(SlotIndex *ix, uint32_t hash, int32_t pos)
{
	if ((ix->count + 1) * 2 > ix->cap && !grow(ix))
		return false;
	place(ix->slots, ix->cap - 1, hash, pos);
	ix->count++;
	return true;
}

/* The slot holding (hash, pos), or -1. */
static int64_t
find_slot(const SlotIndex *ix, uint32_t hash, int32_t pos)
{
	uint32_t	mask = ix->cap - 1;

	if (ix->cap == 0)
		return -1;
	for (uint32_t i = hash & mask;; i = (i + 1) & mask)
	{
		if (ix->slots[i].pos < 0)
			return -1;
		if (ix->slots[i].pos == pos && ix->slots[i].hash == hash)
			return i;
	}
}

void
slot_index_remove(SlotIndex *ix, uint32_t hash, int32_t pos)
{
	int64_t		found = find_slot(ix, hash, pos);
	uint32_t	mask = ix->cap - 1;
	uint32_t	hole;

	if (found < 0)
		return;
	hole = (uint32_t) found;
	/*
	 * Shift later entries of the run back into the hole unless their home
	 * slot lies (cyclically) after the hole: a look-up must never meet an
	 * empty slot before its entry.
	 */
	for (uint32_t j = (hole + 1) & mask; ix->slots[j].pos >= 0; j = (j + 1) & mask)
	{
		uint32_t	home = ix->slots[j].hash & mask;
		bool		stays = (hole <= j) ? (hole < home && home <= j) : (hole < home || home <= j);

		if (stays)
			continue;
		ix->slots[hole] = ix->slots[j];
		hole = j;
	}
	ix->slots[hole].pos = -1;
	ix->count--;
}

void
slot_index_move(SlotIndex *ix, uint32_t hash, int32_t from, int32_t to)
{
	int64_t		found = find_slot(ix, hash, from);

	if (found >= 0)
		ix->slots[found].pos = to;
}

int32_t
slot_index_next(const SlotIndex *ix, uint32_t hash, uint32_t *cursor)
{
	uint32_t	mask = ix->cap - 1;

	if (ix->cap == 0)
		return -1;
	while (*cursor <= mask)
	{
		const SlotIndexEntry *e = &ix->slots[(hash + *cursor) & mask];

		if (e->pos < 0)
			return -1;
		(*cursor)++;
		if (e->hash == hash)
			return e->pos;
	}
	return -1;
}

void
slot_index_free(SlotIndex *ix)
{
	free(ix->slots);
	ix->slots = NULL;
	ix->cap = ix->count = 0;
}
