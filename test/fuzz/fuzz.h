/*
 * fuzz.h - shared bits of pgbun's libFuzzer targets (test/fuzz/fuzz_*.c).
 *
 * Each target is one file defining LLVMFuzzerTestOneInput (and, if it needs
 * set-up, LLVMFuzzerInitialize); the Makefile builds every fuzz_*.c here with
 * -fsanitize=fuzzer,address,undefined and links the src/ files named on its
 * fuzz_src_<name> line. A crash, a sanitizer report or a FUZZ_ASSERT is a
 * finding: the input libFuzzer saves becomes a unit test in test/unit/.
 *
 * Inputs are exact-size heap copies (libFuzzer's own buffer), so reading one
 * byte past a message is an AddressSanitizer report, not silent garbage.
 */
#ifndef PGBUN_FUZZ_H
#define PGBUN_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An invariant of the code under test; on failure say which and abort (a finding). */
#define FUZZ_ASSERT(cond) \
	do { \
		if (!(cond)) \
		{ \
			fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
			abort(); \
		} \
	} while (0)

/* A heap copy of p[0..n), so an over-read of the copy is caught (free it). */
static inline uint8_t *
fuzz_copy(const uint8_t *p, size_t n)
{
	uint8_t    *c = malloc(n > 0 ? n : 1);

	if (!c)
		abort();
	if (n > 0)
		memcpy(c, p, n);
	return c;
}

/* Is s a NUL-terminated string that lies entirely inside [base, base+len)? */
static inline int
fuzz_string_inside(const char *s, const uint8_t *base, size_t len)
{
	const uint8_t *p = (const uint8_t *) s;

	if (p < base || p >= base + len)
		return 0;
	return memchr(p, 0, (size_t) (base + len - p)) != NULL;
}

#endif							/* PGBUN_FUZZ_H */
