/*
 * test_slot_index.c - unit tests for src/slot_index.c: the hash index is
 * driven the way prepared.c drives it (an array with removal by moving the
 * last item into the hole) through many random adds and removes, with
 * colliding hashes, and after each step every item is found at its
 * position, nothing else is, and removed items are gone.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slot_index.h"
#include "unit.h"

#define MODEL_MAX 600

/* The caller's array: the keys, and the hash the index knows each by. */
static uint32_t keys[MODEL_MAX];
static int	n_keys;

/* Few distinct hashes, so runs of collisions and wrap-around are common. */
static uint32_t
key_hash(uint32_t key)
{
	return (key * 2654435761u) % 37u;
}

/* Where the index says key is, -1 if nowhere; every candidate is checked. */
static int
lookup(const SlotIndex *ix, uint32_t key)
{
	uint32_t	cursor = 0;
	int32_t		pos;

	while ((pos = slot_index_next(ix, key_hash(key), &cursor)) >= 0)
	{
		CHECK(pos < n_keys);
		if (pos < n_keys && keys[pos] == key)
			return pos;
	}
	return -1;
}

static void
remove_at(SlotIndex *ix, int i)
{
	slot_index_remove(ix, key_hash(keys[i]), i);
	n_keys--;
	if (i != n_keys)
	{
		slot_index_move(ix, key_hash(keys[n_keys]), n_keys, i);
		keys[i] = keys[n_keys];
	}
}

static void
test_random_against_array(void)
{
	SlotIndex	ix = SLOT_INDEX_INIT;
	uint32_t	next_key = 1;
	int			bad = 0;

	srand(42);
	n_keys = 0;
	for (int step = 0; step < 20000; step++)
	{
		if (n_keys < MODEL_MAX && (n_keys == 0 || rand() % 3 != 0))
		{
			keys[n_keys] = next_key++;
			CHECK(slot_index_add(&ix, key_hash(keys[n_keys]), n_keys));
			n_keys++;
		}
		else
		{
			int			i = rand() % n_keys;
			uint32_t	gone = keys[i];

			remove_at(&ix, i);
			if (lookup(&ix, gone) != -1)
				bad++;
		}
		CHECK(ix.count == (uint32_t) n_keys);
		CHECK(ix.count * 2 <= ix.cap);
		if (step % 97 == 0)
			for (int i = 0; i < n_keys; i++)
				if (lookup(&ix, keys[i]) != i)
					bad++;
	}
	CHECK(bad == 0);
	for (int i = 0; i < n_keys; i++)
		CHECK(lookup(&ix, keys[i]) == i);
	/* empty it completely: every slot is free again */
	while (n_keys > 0)
		remove_at(&ix, n_keys - 1);
	CHECK(ix.count == 0);
	for (uint32_t i = 0; i < ix.cap; i++)
		CHECK(ix.slots[i].pos == -1);
	slot_index_free(&ix);
	CHECK(ix.cap == 0 && ix.slots == NULL);
}

static void
test_empty_index(void)
{
	SlotIndex	ix = SLOT_INDEX_INIT;
	uint32_t	cursor = 0;

	CHECK(slot_index_next(&ix, 7, &cursor) == -1);
	slot_index_remove(&ix, 7, 0);	/* nothing there: no effect */
	slot_index_move(&ix, 7, 0, 1);
	CHECK(ix.count == 0);
	slot_index_free(&ix);
}

void
slot_index_suite(void)
{
	UNIT_RUN(test_empty_index);
	UNIT_RUN(test_random_against_array);
}
