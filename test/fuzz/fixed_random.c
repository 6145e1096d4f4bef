/*
 * fixed_random.c - a deterministic pg_strong_random for the SCRAM fuzz
 * targets (linked before libpgport, so it replaces the real one).
 *
 * Nonces made by scram.c then come out the same for every run, which keeps
 * libFuzzer's runs reproducible and lets the committed seed corpus carry
 * complete, valid exchanges (test/fuzz/make_corpus.py computes them with
 * the same bytes): byte i of every request is 0xA5 ^ (31 * i).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

bool		pg_strong_random(void *buf, size_t len);

bool
pg_strong_random(void *buf, size_t len)
{
	uint8_t    *p = buf;

	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t) (0xA5 ^ (31 * i));
	return true;
}
