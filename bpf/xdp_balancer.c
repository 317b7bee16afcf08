// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/* xdp_balancer.c: the XDP direct-routing balancer: parse, find the service, keep flows on their backend, rewrite MACs, send. */

#include <linux/bpf.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "consts.h"
#include "structs.h"
#include "maps.h"
#include "helpers.h"
#include "parsing.h"
#include "scheduling.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

static __always_inline struct service *find_service(const struct packet *pkt)
{
	struct service *svc;

	if (pkt->fragment) {
		struct frag_key fk = {};

		__builtin_memcpy(fk.addr, pkt->key.dst, sizeof(fk.addr));
		fk.proto = pkt->key.proto;
		fk.family = pkt->key.family;
		return bpf_map_lookup_elem(&frag_services, &fk);
	}

	struct svc_key k = {};

	__builtin_memcpy(k.addr, pkt->key.dst, sizeof(k.addr));
	k.port = pkt->key.dport;
	k.proto = pkt->key.proto;
	k.family = pkt->key.family;
	svc = bpf_map_lookup_elem(&services, &k);
	if (!svc && (cfg.flags & CFG_F_ANY_PORT)) {
		k.port = 0;
		svc = bpf_map_lookup_elem(&services, &k);
	}
	return svc;
}

/* target is where a frame goes: a backend that may take it. */
struct target {
	struct backend *be;
	__u32 id;
	__u32 svc;
	__u32 new_flow;
};

/* send hands the frame to its target: the local stack when the backend is
 * this host, else out of the egress interface with the MACs rewritten. */
static __always_inline int send(struct xdp_md *ctx, const struct packet *pkt, const struct target *t)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	const struct backend *be = t->be;
	struct ethhdr *eth = data;

	if (be->flags & BE_F_LOCAL) {
		count_service(t->svc, pkt->len, t->new_flow);
		count_backend(t->id, pkt->len, t->new_flow);
		return verdict(XDP_PASS, STAT_PASS_LOCAL_BACKEND);
	}
	if ((void *)(eth + 1) > data_end)
		return verdict(XDP_PASS, STAT_PASS_TRUNCATED_ETH);
	if (pkt->vlan != be->vlan) {
		struct vlan_hdr_ *vh = (void *)(eth + 1);

		/* Retagging is cheap; adding or removing a tag is not done. */
		if (!pkt->tagged || !be->vlan)
			return verdict(XDP_PASS, STAT_PASS_VLAN_MISMATCH);
		if ((void *)(vh + 1) > data_end)
			return verdict(XDP_PASS, STAT_PASS_TRUNCATED_ETH);
		vh->tci = bpf_htons((bpf_ntohs(vh->tci) & ~VLAN_VID_MASK) | be->vlan);
	}
	count_service(t->svc, pkt->len, t->new_flow);
	count_backend(t->id, pkt->len, t->new_flow);
	__builtin_memcpy(eth->h_dest, be->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, be->src_mac, ETH_ALEN);
	if (be->ifindex == ctx->ingress_ifindex) {
		count(STAT_VERDICT_TX);
		return XDP_TX;
	}
	int action = bpf_redirect_map(&tx_ports, be->ifindex, 0);
	count(action);
	return action;
}

static __always_inline int flow_expired(const struct flow *f, const struct packet *pkt, __u64 now)
{
	__u64 timeout = pkt->key.proto == IPPROTO_TCP_ ? cfg.tcp_timeout : cfg.udp_timeout;

	return timeout && now - f->last_seen > timeout;
}

/* reopened: a bare SYN on a flow that already closed is a new connection
 * reusing the ports. */
static __always_inline int reopened(const struct flow *f, const struct packet *pkt)
{
	return (f->flags & FLOW_F_CLOSING) && (pkt->tcp_flags & (TCP_SYN | TCP_ACK)) == TCP_SYN;
}

static __always_inline void refresh_persistence(const struct packet *pkt, __u32 id, __u64 now)
{
	struct persist_key pk = {};
	struct service *svc;
	struct persist *p;

	svc = find_service(pkt);
	if (!svc || !svc->persist_timeout)
		return;
	persist_key_of(svc, pkt, &pk);
	p = bpf_map_lookup_elem(&persistence, &pk);
	if (p && p->backend == id)
		p->last_seen = now;
}

/* cache_slot: the slot of this CPU's flow cache a flow maps to. A
 * multiplicative hash of the key's words folded together: cheap, and a
 * collision only costs a flow table lookup. */
static __always_inline __u32 cache_slot(__u32 fold)
{
	return (fold * 0x9e3779b1u) >> (32 - FLOW_CACHE_BITS);
}

/* cache_fresh: the copy was taken from the flow table within the last
 * second and since flow_epoch last moved, and the flow has not timed out.
 * Frames that may open or close a connection (SYN, FIN, RST) always go
 * through the flow table. */
static __always_inline int cache_fresh(const struct flow_copy *c, const struct packet *pkt, __u64 now,
				       __u32 epoch)
{
	__u64 timeout = pkt->key.proto == IPPROTO_TCP_ ? cfg.tcp_timeout : cfg.udp_timeout;
	__u64 age = now - c->last_seen;

	return c->epoch == epoch && !(pkt->tcp_flags & (TCP_SYN | TCP_FIN | TCP_RST)) && age < cfg.hz &&
	       !(timeout && age > timeout);
}

static __always_inline void cache_fill(struct flow_copy *c, const struct flow *f, __u32 epoch)
{
	c->last_seen = f->last_seen;
	c->backend = f->backend;
	c->gen = f->gen;
	c->epoch = epoch;
}

static __always_inline int same_key4(const struct flow_key4 *x, const struct flow_key4 *y)
{
	const __u64 *a = (const void *)x, *b = (const void *)y;

	return a[0] == b[0] && a[1] == b[1];
}

static __always_inline int same_key(const struct flow_key *x, const struct flow_key *y)
{
	const __u64 *a = (const void *)x, *b = (const void *)y;

	return a[0] == b[0] && a[1] == b[1] && a[2] == b[2] && a[3] == b[3] && a[4] == b[4];
}

/* cache_store makes the CPU's slot (c4 or c6, whichever the flow has)
 * a copy of f. */
static __always_inline void cache_store(struct flow_cache_entry4 *c4, struct flow_cache_entry6 *c6,
					const struct flow_key4 *k4, const struct flow_key *k,
					const struct flow *f, __u32 epoch)
{
	if (c4) {
		c4->key = *k4;
		cache_fill(&c4->copy, f, epoch);
	} else if (c6) {
		c6->key = *k;
		cache_fill(&c6->copy, f, epoch);
	}
}

/* hit points t at the backend an established flow keeps. */
static __always_inline __u32 hit(struct target *t, struct backend *be, __u32 id)
{
	count(STAT_FLOW_HIT);
	t->be = be;
	t->id = id;
	t->svc = be->service;
	return 0;
}

/* flow_target finds the frame's flow, or schedules a new one. The hit path
 * reads this CPU's copy of the flow (else the flow table) and the backend
 * only; the service is looked up when the flow is new or stale. It returns
 * 0 with t filled, or the reason to pass the frame to the stack. */
static __always_inline __u32 flow_target(const struct packet *pkt, struct target *t, __u64 now)
{
	const struct flow_key *k = &pkt->key;
	struct flow_cache_entry4 *c4 = 0;
	struct flow_cache_entry6 *c6 = 0;
	struct flow_key4 k4 = {};
	struct service *svc;
	struct backend *be;
	struct flow *f;
	__u32 id = NO_BACKEND, zero = 0, epoch = 0, slot;
	__u32 *epoch_p = bpf_map_lookup_elem(&flow_epoch, &zero);

	if (epoch_p)
		epoch = *epoch_p;
	if (k->family == FAMILY_V4) {
		k4.src = k->src[0];
		k4.dst = k->dst[0];
		k4.sport = k->sport;
		k4.dport = k->dport;
		k4.proto = k->proto;
		slot = cache_slot(k4.src ^ k4.dst ^ ((__u32)k4.sport << 16 | k4.dport) ^ k4.proto);
		c4 = bpf_map_lookup_elem(&flow_cache4, &slot);
		if (c4 && same_key4(&c4->key, &k4) && cache_fresh(&c4->copy, pkt, now, epoch)) {
			be = usable(c4->copy.backend, c4->copy.gen);
			if (be)
				return hit(t, be, c4->copy.backend);
		}
		f = bpf_map_lookup_elem(&flows4, &k4);
	} else {
		slot = cache_slot(k->src[0] ^ k->src[1] ^ k->src[2] ^ k->src[3] ^ k->dst[0] ^ k->dst[1] ^
				  k->dst[2] ^ k->dst[3] ^ ((__u32)k->sport << 16 | k->dport) ^ k->proto);
		c6 = bpf_map_lookup_elem(&flow_cache6, &slot);
		if (c6 && same_key(&c6->key, k) && cache_fresh(&c6->copy, pkt, now, epoch)) {
			be = usable(c6->copy.backend, c6->copy.gen);
			if (be)
				return hit(t, be, c6->copy.backend);
		}
		f = bpf_map_lookup_elem(&flows6, k);
	}
	if (f) {
		be = usable(f->backend, f->gen);
		if (be && !flow_expired(f, pkt, now) && !reopened(f, pkt)) {
			if (now - f->last_seen >= cfg.hz) {
				f->last_seen = now;
				refresh_persistence(pkt, f->backend, now);
			}
			if ((pkt->tcp_flags & (TCP_FIN | TCP_RST)) && !(f->flags & FLOW_F_CLOSING)) {
				f->flags |= FLOW_F_CLOSING;
				add_conns(f->backend, -1);
			}
			cache_store(c4, c6, &k4, k, f, epoch);
			return hit(t, be, f->backend);
		}
	}

	svc = find_service(pkt);
	if (!svc)
		return STAT_PASS_NOT_SERVICE;
	if (!(svc->flags & SVC_F_SERVED))
		return STAT_PASS_NOT_SERVED; /* the flow stays for when it is served again */
	if (f) {
		/* Stale: take it off its backend's active count if it still
		 * counted there, then schedule the packet as a new flow. A
		 * reopened flow may still be usable in other CPUs' caches:
		 * moving the epoch retires their copies. */
		struct backend *old = bpf_map_lookup_elem(&backends, &f->backend);

		if (epoch_p && reopened(f, pkt)) {
			__sync_fetch_and_add(epoch_p, 1);
			c4 = 0;
			c6 = 0;
		}

		if (old && old->gen == f->gen && !(f->flags & FLOW_F_CLOSING))
			add_conns(f->backend, -1);
		count(usable(f->backend, f->gen) ? STAT_FLOW_EXPIRED : STAT_FLOW_RESCHEDULED);
	}

	/* New flow. Declared here, not above: zeroing them would cost the hit
	 * path. */
	struct persist_key pk = {};
	struct flow nf = {};

	if (svc->persist_timeout) {
		persist_key_of(svc, pkt, &pk);
		id = persisted(svc, &pk, now);
		if (id != NO_BACKEND)
			count(STAT_PERSIST_HIT);
	}
	if (id == NO_BACKEND)
		id = schedule(svc, pkt);
	be = bpf_map_lookup_elem(&backends, &id);
	if (!be || !(be->flags & BE_F_FORWARD))
		return STAT_PASS_NO_BACKEND;

	nf.last_seen = now;
	nf.backend = id;
	nf.gen = be->gen;
	if (pkt->tcp_flags & (TCP_FIN | TCP_RST))
		nf.flags = FLOW_F_CLOSING;
	else
		add_conns(id, 1);
	flow_update(&pkt->key, &nf);
	cache_store(c4, c6, &k4, k, &nf, epoch);
	if (svc->persist_timeout) {
		struct persist p = {.last_seen = now, .backend = id, .gen = be->gen};

		bpf_map_update_elem(&persistence, &pk, &p, BPF_ANY);
	}
	count(STAT_FLOW_NEW);
	t->be = be;
	t->id = id;
	t->svc = svc->id;
	t->new_flow = 1;
	return 0;
}

/* fragment_target sends every piece of a datagram to one backend: the
 * client's persistence pin if any, else a hash of its address. No flow
 * entry: later pieces have no ports to find it by. */
static __always_inline __u32 fragment_target(const struct service *svc, const struct packet *pkt,
					     struct target *t)
{
	struct persist_key pk = {};
	struct backend *be;
	__u32 id = NO_BACKEND;

	if (svc->persist_timeout) {
		persist_key_of(svc, pkt, &pk);
		id = persisted(svc, &pk, clock_now());
	}
	if (id == NO_BACKEND)
		id = schedule(svc, pkt);
	be = bpf_map_lookup_elem(&backends, &id);
	if (!be || !(be->flags & BE_F_FORWARD))
		return STAT_PASS_NO_BACKEND;
	count(STAT_FRAGMENT);
	t->be = be;
	t->id = id;
	t->svc = svc->id;
	return 0;
}

/* icmp_target sends an ICMP "fragmentation needed" / "packet too big"
 * about a service flow to the backend that owns the flow, so path MTU
 * discovery works through direct routing. */
static __always_inline __u32 icmp_target(const struct service *svc, const struct packet *pkt,
					 struct target *t)
{
	struct persist_key pk = {};
	struct backend *be = 0;
	struct flow *f;
	__u32 id = NO_BACKEND;

	f = flow_lookup(&pkt->key);
	if (f && usable(f->backend, f->gen))
		id = f->backend;
	if (id == NO_BACKEND && svc->persist_timeout) {
		persist_key_of(svc, pkt, &pk);
		id = persisted(svc, &pk, clock_now());
	}
	/* Hash schedulers give the same answer the flow got. */
	if (id == NO_BACKEND && (svc->sched == SCHED_SH || svc->sched == SCHED_MH))
		id = schedule(svc, pkt);
	if (id != NO_BACKEND)
		be = bpf_map_lookup_elem(&backends, &id);
	if (!be || !(be->flags & BE_F_FORWARD))
		return STAT_PASS_ICMP_NO_FLOW;
	count(STAT_ICMP_FORWARDED);
	t->be = be;
	t->id = id;
	t->svc = svc->id;
	return 0;
}

SEC("xdp")
int xdp_balancer(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct packet pkt = {};
	struct target t = {};
	struct service *svc;
	__u32 reason;

	reason = parse_packet(data, data_end, &pkt);
	if (reason)
		return verdict(XDP_PASS, reason);
	pkt.len = data_end - data;

	if (pkt.fragment || pkt.icmp_error) {
		svc = find_service(&pkt);
		if (!svc)
			return verdict(XDP_PASS, STAT_PASS_NOT_SERVICE);
		if (!(svc->flags & SVC_F_SERVED))
			return verdict(XDP_PASS, STAT_PASS_NOT_SERVED);
		if (lease_expired(clock_now()))
			return verdict(XDP_PASS, STAT_PASS_LEASE_EXPIRED);
		if (pkt.fragment)
			reason = fragment_target(svc, &pkt, &t);
		else
			reason = icmp_target(svc, &pkt, &t);
	} else {
		if (!maybe_vip(pkt.key.dst))
			return verdict(XDP_PASS, STAT_PASS_NOT_SERVICE);
		__u64 now = clock_now();

		if (lease_expired(now))
			return verdict(XDP_PASS, STAT_PASS_LEASE_EXPIRED);
		reason = flow_target(&pkt, &t, now);
	}
	if (reason || !t.be)
		return verdict(XDP_PASS, reason ? reason : STAT_PASS_NO_BACKEND);
	return send(ctx, &pkt, &t);
}
