/* helpers.h: hashing (Bob Jenkins' lookup3, as the kernel's jhash), the program clock and counter updates. */
#ifndef XKEEP_HELPERS_H
#define XKEEP_HELPERS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "consts.h"
#include "maps.h"
#include "structs.h"

#define rol32(x, k) (((x) << (k)) | ((x) >> (32 - (k))))

#define JHASH_MIX(a, b, c)                                                     \
	do {                                                                   \
		a -= c; a ^= rol32(c, 4);  c += b;                             \
		b -= a; b ^= rol32(a, 6);  a += c;                             \
		c -= b; c ^= rol32(b, 8);  b += a;                             \
		a -= c; a ^= rol32(c, 16); c += b;                             \
		b -= a; b ^= rol32(a, 19); a += c;                             \
		c -= b; c ^= rol32(b, 4);  b += a;                             \
	} while (0)

#define JHASH_FINAL(a, b, c)                                                   \
	do {                                                                   \
		c ^= b; c -= rol32(b, 14);                                     \
		a ^= c; a -= rol32(c, 11);                                     \
		b ^= a; b -= rol32(a, 25);                                     \
		c ^= b; c -= rol32(b, 16);                                     \
		a ^= c; a -= rol32(c, 4);                                      \
		b ^= a; b -= rol32(a, 14);                                     \
		c ^= b; c -= rol32(b, 24);                                     \
	} while (0)

#define JHASH_INITVAL 0xdeadbeef

/* hash_client hashes a client address (and a port when wanted): the key
 * of sh, mh and fragments. Five words, as jhash2(k, 5, seed). */
static __always_inline __u32 hash_client(const __be32 addr[4], __u32 port)
{
	__u32 a, b, c;

	a = b = c = JHASH_INITVAL + (5 << 2) + HASH_SEED;
	a += addr[0];
	b += addr[1];
	c += addr[2];
	JHASH_MIX(a, b, c);
	a += addr[3];
	b += port;
	JHASH_FINAL(a, b, c);
	return c;
}

/* now_ns is the program clock: the kernel's coarse monotonic clock (the one
 * CLOCK_MONOTONIC_COARSE reads), plus the offset tests use to move time. */
static __always_inline __u64 now_ns(void)
{
	return bpf_ktime_get_coarse_ns() + cfg.clock_offset;
}

static __always_inline void count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&global_stats, &idx);

	if (v)
		*v += 1;
}

/* verdict counts the verdict and the reason it was given for. */
static __always_inline int verdict(int action, __u32 reason)
{
	count((__u32)action);
	count(reason);
	return action;
}

static __always_inline void count_service(__u32 id, __u64 bytes, int new_flow)
{
	struct service_counters *s = bpf_map_lookup_elem(&service_stats, &id);

	if (!s)
		return;
	s->packets++;
	s->bytes += bytes;
	if (new_flow)
		s->new_flows++;
}

static __always_inline void count_backend(__u32 id, __u64 bytes, int new_flow)
{
	struct backend_counters *s = bpf_map_lookup_elem(&backend_stats, &id);

	if (!s)
		return;
	s->packets++;
	s->bytes += bytes;
	if (new_flow)
		s->new_flows++;
}

static __always_inline void add_conns(__u32 id, __s64 delta)
{
	__s64 *c = bpf_map_lookup_elem(&backend_conns, &id);

	if (c)
		__sync_fetch_and_add(c, delta);
}

#endif
