/*
 * json.c - the strict JSON parser and the bounded writer (json.h).
 *
 * Recursive descent, at most JSON_MAX_DEPTH deep, so the C stack is
 * bounded as well as the node array.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

typedef struct JsonParser
{
	const char *in;
	size_t		len;
	size_t		pos;
	JsonNode   *nodes;
	uint32_t	n;
	uint32_t	max;
	int			error;
} JsonParser;

static void
skip_ws(JsonParser *p)
{
	while (p->pos < p->len &&
		   (p->in[p->pos] == ' ' || p->in[p->pos] == '\t' ||
			p->in[p->pos] == '\n' || p->in[p->pos] == '\r'))
		p->pos++;
}

static int
new_node(JsonParser *p, JsonType t)
{
	JsonNode   *nd;

	if (p->n >= p->max)
	{
		p->error = JSON_ERR_NODES;
		return -1;
	}
	nd = &p->nodes[p->n];
	nd->type = t;
	nd->start = (uint32_t) p->pos;
	nd->len = 0;
	nd->count = 0;
	nd->next = p->n + 1;
	return (int) p->n++;
}

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A string at p->pos (the opening quote): checked, its escapes left for json_string_decode. */
static int
parse_string(JsonParser *p)
{
	int			i = new_node(p, JSON_STRING);

	if (i < 0)
		return -1;
	p->pos++;
	p->nodes[i].start = (uint32_t) p->pos;
	while (p->pos < p->len)
	{
		unsigned char c = (unsigned char) p->in[p->pos];

		if (c == '"')
		{
			p->nodes[i].len = (uint32_t) (p->pos - p->nodes[i].start);
			p->pos++;
			return i;
		}
		if (c < 0x20)
			break;				/* control characters must be escaped */
		if (c == '\\')
		{
			char		e;

			if (p->pos + 1 >= p->len)
				break;
			e = p->in[p->pos + 1];
			if (e == 'u')
			{
				if (p->pos + 6 > p->len || !is_hex(p->in[p->pos + 2]) || !is_hex(p->in[p->pos + 3]) ||
					!is_hex(p->in[p->pos + 4]) || !is_hex(p->in[p->pos + 5]))
					break;
				p->pos += 6;
				continue;
			}
			if (!strchr("\"\\/bfnrt", e))
				break;
			p->pos += 2;
			continue;
		}
		p->pos++;
	}
	p->error = JSON_ERR_SYNTAX;
	return -1;
}

static int
parse_number(JsonParser *p)
{
	int			i = new_node(p, JSON_NUMBER);
	size_t		s = p->pos;
	size_t		digits;

	if (i < 0)
		return -1;
	if (p->pos < p->len && p->in[p->pos] == '-')
		p->pos++;
	digits = p->pos;
	if (p->pos < p->len && p->in[p->pos] == '0')
		p->pos++;
	else
		while (p->pos < p->len && p->in[p->pos] >= '0' && p->in[p->pos] <= '9')
			p->pos++;
	if (p->pos == digits)
		goto bad;
	if (p->pos < p->len && p->in[p->pos] == '.')
	{
		p->pos++;
		digits = p->pos;
		while (p->pos < p->len && p->in[p->pos] >= '0' && p->in[p->pos] <= '9')
			p->pos++;
		if (p->pos == digits)
			goto bad;
	}
	if (p->pos < p->len && (p->in[p->pos] == 'e' || p->in[p->pos] == 'E'))
	{
		p->pos++;
		if (p->pos < p->len && (p->in[p->pos] == '+' || p->in[p->pos] == '-'))
			p->pos++;
		digits = p->pos;
		while (p->pos < p->len && p->in[p->pos] >= '0' && p->in[p->pos] <= '9')
			p->pos++;
		if (p->pos == digits)
			goto bad;
	}
	p->nodes[i].len = (uint32_t) (p->pos - s);
	return i;
bad:
	p->error = JSON_ERR_SYNTAX;
	return -1;
}

static int	parse_value(JsonParser *p, int depth);

/* An array or object at p->pos (its opening bracket). */
static int
parse_container(JsonParser *p, int depth, bool object)
{
	int			i = new_node(p, object ? JSON_OBJECT : JSON_ARRAY);
	char		close = object ? '}' : ']';

	if (i < 0)
		return -1;
	if (depth >= JSON_MAX_DEPTH)
	{
		p->error = JSON_ERR_DEPTH;
		return -1;
	}
	p->pos++;
	skip_ws(p);
	if (p->pos < p->len && p->in[p->pos] == close)
	{
		p->pos++;
		p->nodes[i].len = (uint32_t) (p->pos - p->nodes[i].start);
		p->nodes[i].next = p->n;
		return i;
	}
	for (;;)
	{
		skip_ws(p);
		if (object)
		{
			if (p->pos >= p->len || p->in[p->pos] != '"' || parse_string(p) < 0)
				goto bad;
			skip_ws(p);
			if (p->pos >= p->len || p->in[p->pos] != ':')
				goto bad;
			p->pos++;
			skip_ws(p);
		}
		if (parse_value(p, depth + 1) < 0)
			return -1;
		p->nodes[i].count++;
		skip_ws(p);
		if (p->pos < p->len && p->in[p->pos] == ',')
		{
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->in[p->pos] == close)
		{
			p->pos++;
			p->nodes[i].len = (uint32_t) (p->pos - p->nodes[i].start);
			p->nodes[i].next = p->n;
			return i;
		}
		goto bad;
	}
bad:
	if (p->error == JSON_OK)
		p->error = JSON_ERR_SYNTAX;
	return -1;
}

static int
parse_literal(JsonParser *p, const char *word, JsonType t)
{
	size_t		wl = strlen(word);
	int			i;

	if (p->len - p->pos < wl || memcmp(p->in + p->pos, word, wl) != 0)
	{
		p->error = JSON_ERR_SYNTAX;
		return -1;
	}
	i = new_node(p, t);
	if (i < 0)
		return -1;
	p->nodes[i].len = (uint32_t) wl;
	p->pos += wl;
	return i;
}

static int
parse_value(JsonParser *p, int depth)
{
	char		c;

	skip_ws(p);
	if (p->pos >= p->len)
	{
		p->error = JSON_ERR_SYNTAX;
		return -1;
	}
	c = p->in[p->pos];
	switch (c)
	{
		case '{':
			return parse_container(p, depth, true);
		case '[':
			return parse_container(p, depth, false);
		case '"':
			return parse_string(p);
		case 't':
			return parse_literal(p, "true", JSON_TRUE);
		case 'f':
			return parse_literal(p, "false", JSON_FALSE);
		case 'n':
			return parse_literal(p, "null", JSON_NULL);
		default:
			if (c == '-' || (c >= '0' && c <= '9'))
				return parse_number(p);
			p->error = JSON_ERR_SYNTAX;
			return -1;
	}
}

int
json_parse(const char *in, size_t len, JsonNode *nodes, uint32_t max_nodes, size_t *err_off)
{
	JsonParser	p;

	memset(&p, 0, sizeof(p));
	p.in = in;
	p.len = len;
	p.nodes = nodes;
	p.max = max_nodes;
	if (len > UINT32_MAX)
	{
		*err_off = 0;
		return JSON_ERR_NODES;
	}
	if (parse_value(&p, 0) >= 0)
	{
		skip_ws(&p);
		if (p.pos == p.len)
			return (int) p.n;
		p.error = JSON_ERR_SYNTAX;	/* something after the value */
	}
	*err_off = p.pos;
	return p.error;
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c - 'A' + 10;
}

/* The character a one-letter escape stands for: \b \f \n \r \t, else itself (" \\ /). */
static char
simple_escape(char c)
{
	switch (c)
	{
		case 'b':
			return '\b';
		case 'f':
			return '\f';
		case 'n':
			return '\n';
		case 'r':
			return '\r';
		case 't':
			return '\t';
		default:
			return c;
	}
}

static unsigned
read_u4(const char *s)
{
	return (unsigned) (hexval(s[0]) << 12 | hexval(s[1]) << 8 | hexval(s[2]) << 4 | hexval(s[3]));
}

bool
json_string_decode(const char *in, const JsonNode *n, char *out, size_t cap, size_t *out_len)
{
	const char *s = in + n->start;
	const char *end = s + n->len;
	size_t		o = 0;

	if (n->type != JSON_STRING || cap < (size_t) n->len + 1)
		return false;
	while (s < end)
	{
		unsigned	cp;

		if (*s != '\\')
		{
			out[o++] = *s++;
			continue;
		}
		if (s[1] != 'u')
		{
			out[o++] = simple_escape(s[1]);
			s += 2;
			continue;
		}
		/* a \u escape with its four hex digits (the parser checked them) */
		cp = read_u4(s + 2);
		s += 6;
		if (cp >= 0xD800 && cp <= 0xDBFF)
		{
			unsigned	lo;

			if (end - s < 6 || s[0] != '\\' || s[1] != 'u')
				return false;
			lo = read_u4(s + 2);
			if (lo < 0xDC00 || lo > 0xDFFF)
				return false;
			s += 6;
			cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
		}
		else if (cp >= 0xDC00 && cp <= 0xDFFF)
			return false;
		if (cp == 0)
			return false;
		/* at most 4 UTF-8 bytes from at least 6 escaped ones: never past cap */
		if (cp < 0x80)
			out[o++] = (char) cp;
		else if (cp < 0x800)
		{
			out[o++] = (char) (0xC0 | (cp >> 6));
			out[o++] = (char) (0x80 | (cp & 0x3F));
		}
		else if (cp < 0x10000)
		{
			out[o++] = (char) (0xE0 | (cp >> 12));
			out[o++] = (char) (0x80 | ((cp >> 6) & 0x3F));
			out[o++] = (char) (0x80 | (cp & 0x3F));
		}
		else
		{
			out[o++] = (char) (0xF0 | (cp >> 18));
			out[o++] = (char) (0x80 | ((cp >> 12) & 0x3F));
			out[o++] = (char) (0x80 | ((cp >> 6) & 0x3F));
			out[o++] = (char) (0x80 | (cp & 0x3F));
		}
	}
	out[o] = '\0';
	*out_len = o;
	return true;
}

bool
json_string_is(const char *in, const JsonNode *n, const char *s)
{
	char		buf[64];
	size_t		l;

	if (n->type != JSON_STRING)
		return false;
	/* keys pgbun looks for are short and plain: compare raw when unescaped */
	if (!memchr(in + n->start, '\\', n->len))
		return strlen(s) == n->len && memcmp(in + n->start, s, n->len) == 0;
	if (!json_string_decode(in, n, buf, sizeof(buf), &l))
		return false;
	return strlen(s) == l && memcmp(buf, s, l) == 0;
}

int
json_object_get(const char *in, const JsonNode *nodes, int obj, const char *key)
{
	uint32_t	i;

	if (obj < 0 || nodes[obj].type != JSON_OBJECT)
		return -1;
	i = (uint32_t) obj + 1;
	for (uint32_t m = 0; m < nodes[obj].count; m++)
	{
		uint32_t	v = i + 1;

		if (json_string_is(in, &nodes[i], key))
			return (int) v;
		i = nodes[v].next;
	}
	return -1;
}

/* ---- writer ---- */

void
json_buf_init(JsonBuf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max;
}

void
json_buf_free(JsonBuf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

void
json_buf_reset(JsonBuf *b)
{
	b->len = 0;
	b->overflow = false;
}

/* Room for n more bytes, or overflow. */
static bool
reserve(JsonBuf *b, size_t n)
{
	size_t		cap;
	char	   *d;

	if (b->overflow)
		return false;
	if (n > b->max || b->len > b->max - n)
	{
		b->overflow = true;
		return false;
	}
	if (b->len + n <= b->cap)
		return true;
	cap = b->cap ? b->cap : 1024;
	while (cap < b->len + n)
		cap *= 2;
	if (cap > b->max)
		cap = b->max;
	d = realloc(b->data, cap);
	if (!d)
	{
		b->overflow = true;
		return false;
	}
	b->data = d;
	b->cap = cap;
	return true;
}

void
json_put_raw(JsonBuf *b, const char *s, size_t len)
{
	if (!reserve(b, len))
		return;
	memcpy(b->data + b->len, s, len);
	b->len += len;
}

void
json_put_cstr(JsonBuf *b, const char *s)
{
	json_put_raw(b, s, strlen(s));
}

void
json_put_char(JsonBuf *b, char ch)
{
	json_put_raw(b, &ch, 1);
}

void
json_put_int(JsonBuf *b, long long v)
{
	char		buf[24];
	int			n = snprintf(buf, sizeof(buf), "%lld", v);

	json_put_raw(b, buf, (size_t) n);
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned	cp;
	size_t		l;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		l = 2, cp = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		l = 3, cp = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		l = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < l)
		return 0;
	for (size_t i = 1; i < l; i++)
	{
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((l == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
		(l == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
		return 0;
	return l;
}

void
json_put_string(JsonBuf *b, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *) s;
	size_t		i = 0;

	json_put_char(b, '"');
	while (i < len && !b->overflow)
	{
		size_t		run = i;
		size_t		l;

		/* copy runs of plain bytes at once */
		while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
			run++;
		if (run > i)
		{
			json_put_raw(b, s + i, run - i);
			i = run;
			continue;
		}
		if (p[i] == '"' || p[i] == '\\')
		{
			char		e[2] = {'\\', (char) p[i]};

			json_put_raw(b, e, 2);
			i++;
		}
		else if (p[i] < 0x20)
		{
			char		e[8];

			switch (p[i])
			{
				case '\n':
					json_put_raw(b, "\\n", 2);
					break;
				case '\r':
					json_put_raw(b, "\\r", 2);
					break;
				case '\t':
					json_put_raw(b, "\\t", 2);
					break;
				default:
					snprintf(e, sizeof(e), "\\u%04x", p[i]);
					json_put_raw(b, e, 6);
			}
			i++;
		}
		else if ((l = utf8_seq(p + i, len - i)) > 0)
		{
			json_put_raw(b, s + i, l);
			i += l;
		}
		else
		{
			json_put_raw(b, "\xEF\xBF\xBD", 3);	/* U+FFFD for a byte that is not UTF-8 */
			i++;
		}
	}
	json_put_char(b, '"');
}
