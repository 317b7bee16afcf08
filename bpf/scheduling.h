/* scheduling.h: choosing a backend for a new flow: rr, wrr, sh, mh, lc, wlc, persistence and fragments. */
#ifndef XKEEP_SCHEDULING_H
#define XKEEP_SCHEDULING_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "consts.h"
#include "helpers.h"
#include "maps.h"
#include "structs.h"

static __always_inline __u32 table_slot(void *table, __u32 slot)
{
	__u32 *id = bpf_map_lookup_elem(table, &slot);

	return id ? *id : NO_BACKEND;
}

/* pick_round_robin walks the slot list with this CPU's cursor. The list is
 * weighted and interleaved for wrr, one slot per backend for rr. */
static __always_inline __u32 pick_round_robin(void *table, __u32 n, __u32 svc)
{
	__u32 *cursor = bpf_map_lookup_elem(&rr_cursors, &svc);
	__u32 c = 0;

	if (cursor) {
		c = *cursor;
		if (c >= n)
			c = 0;
		*cursor = c + 1;
	}
	return table_slot(table, c + 1);
}

/* pick_least_conn returns the backend with the fewest active flows (per
 * weight for wlc). Tables longer than LC_SCAN_MAX are compared over a
 * window starting at a random slot: with many backends the choice is the
 * best of LC_SCAN_MAX, not of all. */
static __always_inline __u32 pick_least_conn(void *table, __u32 n, int weighted)
{
	__u32 best = NO_BACKEND, best_weight = 1, start = 0, count = n, i;
	__s64 best_conns = 0;

	if (n > LC_SCAN_MAX) {
		start = bpf_get_prandom_u32() % n;
		count = LC_SCAN_MAX;
	}
	for (i = 0; i < LC_SCAN_MAX; i++) {
		__u32 slot = start + i, id, weight;
		struct backend *be;
		__s64 *c, conns;

		if (i >= count)
			break;
		if (slot >= n)
			slot -= n;
		id = table_slot(table, slot + 1);
		be = bpf_map_lookup_elem(&backends, &id);
		c = bpf_map_lookup_elem(&backend_conns, &id);
		if (!be || !c)
			continue;
		weight = weighted ? be->weight : 1;
		if (!weight)
			continue;
		conns = *c;
		if (conns < 0)
			conns = 0;
		/* conns/weight < best_conns/best_weight, without division. */
		if (best == NO_BACKEND || conns * best_weight < best_conns * weight) {
			best = id;
			best_conns = conns;
			best_weight = weight;
		}
	}
	return best;
}

/* schedule_new picks a backend id for a new flow of service svc, or
 * NO_BACKEND. hash is the client's hash, used by sh, mh and fragments. A
 * global function taking scalars only: the verifier checks it once instead
 * of at every call site. */
__attribute__((noinline)) __u32 schedule_new(__u32 svc, __u32 sched, __u32 hash, __u32 fragment)
{
	__u32 *np;
	void *table;
	__u32 n;

	table = bpf_map_lookup_elem(&sched_tables, &svc);
	if (!table)
		return NO_BACKEND;
	np = bpf_map_lookup_elem(table, &(__u32){0});
	if (!np || *np == 0)
		return NO_BACKEND;
	n = *np;

	/* Every piece of a datagram, first or not, goes by the client's
	 * address: the backend sh and mh give the client's other packets. */
	if (fragment)
		return table_slot(table, hash % n + 1);
	switch (sched) {
	case SCHED_RR:
	case SCHED_WRR:
		return pick_round_robin(table, n, svc);
	case SCHED_SH:
	case SCHED_MH:
		return table_slot(table, hash % n + 1);
	case SCHED_LC:
		return pick_least_conn(table, n, 0);
	case SCHED_WLC:
		return pick_least_conn(table, n, 1);
	}
	return NO_BACKEND;
}

static __always_inline __u32 schedule(const struct service *svc, const struct packet *pkt)
{
	__u32 hash = 0;

	if (pkt->fragment)
		hash = hash_client(pkt->key.src, 0);
	else if (svc->sched == SCHED_SH || svc->sched == SCHED_MH)
		hash = hash_client(pkt->key.src, (svc->flags & SVC_F_HASH_PORT) ? pkt->key.sport : 0);
	return schedule_new(svc->id, svc->sched, hash, pkt->fragment);
}

static __always_inline void persist_key_of(const struct service *svc, const struct packet *pkt,
					   struct persist_key *pk)
{
	int i;

	pk->service = svc->id;
	pk->family = pkt->key.family;
#pragma unroll
	for (i = 0; i < 4; i++)
		pk->addr[i] = pkt->key.src[i] & svc->persist_mask[i];
}

/* usable returns the backend behind id if it still forwards, its service
 * is served, and it is the one the entry was made for (same generation). */
static __always_inline struct backend *usable(__u32 id, __u32 gen)
{
	struct backend *be = bpf_map_lookup_elem(&backends, &id);

	if (!be || be->gen != gen || (be->flags & (BE_F_FORWARD | BE_F_SERVED)) != (BE_F_FORWARD | BE_F_SERVED))
		return 0;
	return be;
}

/* persisted returns the backend a persistent service pinned this client
 * to, if the pin has not expired. */
static __always_inline __u32 persisted(const struct service *svc, const struct persist_key *pk,
				       __u64 now)
{
	struct persist *p = bpf_map_lookup_elem(&persistence, pk);

	if (!p)
		return NO_BACKEND;
	if (now - p->last_seen > (__u64)svc->persist_timeout * cfg.hz)
		return NO_BACKEND;
	if (!usable(p->backend, p->gen))
		return NO_BACKEND;
	return p->backend;
}

#endif
