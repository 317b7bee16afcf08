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

/* maybe_vip reads the VIP prefilter: false means dst is no service's. The
 * fold: XOR of the address words, then of the word's two halves (the same
 * in Go's vipFilterBit). */
static __always_inline int maybe_vip(const __be32 dst[4])
{
	__u32 w = dst[0] ^ dst[1] ^ dst[2] ^ dst[3];
	__u32 bit = (w ^ (w >> 16)) & 0xffff;
	__u32 word = bit >> 6;
	__u64 *v = bpf_map_lookup_elem(&vip_filter, &word);

	return v && (*v >> (bit & 63)) & 1;
}

/* clock_now is the program clock: jiffies (the verifier inlines bpf_jiffies64 to
 * one load, where bpf_ktime_get_coarse_ns costs ~18 ns a packet), plus the
 * offset tests use to move time. Timeouts are exact to a tick (1/HZ). */
static __always_inline __u64 clock_now(void)
{
	return bpf_jiffies64() + cfg.clock_offset;
}

/* lease_expired: the control plane stopped renewing cfg.lease_until (its
 * daemon was killed), so services are no longer intercepted. */
static __always_inline int lease_expired(__u64 now)
{
	return cfg.lease_until && now > cfg.lease_until;
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

/* flow_lookup and flow_update use the flow table of the packet's family. */
static __always_inline struct flow *flow_lookup(const struct flow_key *k)
{
	if (k->family == FAMILY_V4) {
		struct flow_key4 k4 = {
			.src = k->src[0], .dst = k->dst[0], .sport = k->sport, .dport = k->dport, .proto = k->proto,
		};

		return bpf_map_lookup_elem(&flows4, &k4);
	}
	return bpf_map_lookup_elem(&flows6, k);
}

static __always_inline void flow_update(const struct flow_key *k, const struct flow *f)
{
	if (k->family == FAMILY_V4) {
		struct flow_key4 k4 = {
			.src = k->src[0], .dst = k->dst[0], .sport = k->sport, .dport = k->dport, .proto = k->proto,
		};

		bpf_map_update_elem(&flows4, &k4, f, BPF_ANY);
		return;
	}
	bpf_map_update_elem(&flows6, k, f, BPF_ANY);
}

static __always_inline void add_conns(__u32 id, __s64 delta)
{
	__s64 *c = bpf_map_lookup_elem(&backend_conns, &id);

	if (c)
		__sync_fetch_and_add(c, delta);
}

#endif
