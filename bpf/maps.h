/* maps.h: every map of the XDP balancer; all but .bss are pinned by name so a restarted daemon keeps them. */
#ifndef XKEEP_MAPS_H
#define XKEEP_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "consts.h"
#include "structs.h"

/* The VIP prefilter: bit fold16(dst) is set for every service address, so
 * most frames that are not for a VIP pass after one array read instead of
 * hash lookups. A set bit only means "maybe a VIP". */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, VIP_FILTER_WORDS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vip_filter SEC(".maps");

/* Services by VIP:port/protocol, served or not (SVC_F_SERVED says). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SERVICES);
	__type(key, struct svc_key);
	__type(value, struct service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} services SEC(".maps");

/* The service a fragment of VIP/protocol belongs to (the port-0 service if
 * any, else the lowest port): fragments carry no ports. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SERVICES);
	__type(key, struct frag_key);
	__type(value, struct service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} frag_services SEC(".maps");

/* One scheduling table per service: slot 0 holds the number of entries N,
 * slots 1..N backend ids (the slot list for rr/wrr/sh/lc/wlc, the Maglev
 * lookup table for mh). The control plane builds a new table and swaps it
 * in with one update of sched_tables, so a packet never sees a half-written
 * one. BPF_F_INNER_MAP lets tables differ in size. */
struct sched_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct sched_table);
} sched_tables SEC(".maps");

/* Per-CPU round-robin cursor of each service (rr, wrr): no locks, each CPU
 * walks the whole slot list. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rr_cursors SEC(".maps");

/* Backends by id: where to send, and whether flows may still use them. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backends SEC(".maps");

/* Active flows per backend id, for lc/wlc: +1 on a new flow, -1 on FIN/RST
 * or when a flow is found expired. Approximate: evicted flows are only
 * subtracted when the control plane recounts (Sweep). Shared, not per-CPU,
 * since a choice compares the totals; updated atomically. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, __s64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backend_conns SEC(".maps");

/* Flow tables, IPv4 and IPv6: 5-tuple to backend. Shared, not per-CPU (a
 * flow may arrive on any CPU, and rr must not reschedule it), with per-CPU
 * LRU lists (BPF_F_NO_COMMON_LRU) so inserts on different CPUs do not
 * contend. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FLOW_TABLE_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct flow_key4);
	__type(value, struct flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows4 SEC(".maps");

/* flow_cache4 and flow_cache6: each CPU's direct-mapped copies of the flows
 * it forwarded lately, in front of flows4 and flows6. A hit is an array
 * lookup the verifier inlines, where the flow table costs a hash table call
 * (hashing, bucket walk, memcmp: each call and return pays the CPU's
 * return-thunk mitigation). A copy is only ever a shortcut: one older than
 * a second, for another key, for a backend that changed, or from before
 * flow_epoch last moved sends the packet through the flow table, which
 * copies it again. Not pinned: a new program starts cold. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOW_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct flow_cache_entry4);
} flow_cache4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FLOW_CACHE_SLOTS);
	__type(key, __u32);
	__type(value, struct flow_cache_entry6);
} flow_cache6 SEC(".maps");

/* flow_epoch moves when a flow that other CPUs may have cached gets a new
 * backend (a reopened connection), so their copies stop matching. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} flow_epoch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FLOW_TABLE_SIZE);
	__uint(map_flags, BPF_F_NO_COMMON_LRU);
	__type(key, struct flow_key);
	__type(value, struct flow);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows6 SEC(".maps");

/* Persistence: service and client prefix to backend, like IPVS templates. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, PERSIST_TABLE_SIZE);
	__type(key, struct persist_key);
	__type(value, struct persist);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} persistence SEC(".maps");

/* Egress interfaces other than the ingress one, by ifindex, for
 * bpf_redirect_map. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, MAX_TX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tx_ports SEC(".maps");

/* Per-CPU packet and byte counters by backend id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct backend_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backend_stats SEC(".maps");

/* Per-CPU packet, byte and new-flow counters by service id. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct service_counters);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} service_stats SEC(".maps");

/* Per-CPU global counters indexed by enum stat. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} global_stats SEC(".maps");

/* Settings from the control plane (in .bss: not pinned, rewritten by each
 * daemon that loads the program). */
struct config cfg = {};

/* Never read: they put the enums into BTF, where bpf2go (-type) and the
 * counter names in Go take them from. */
const enum sched *unused_sched __attribute__((unused));
const enum stat *unused_stat __attribute__((unused));
const enum svc_flags *unused_svc_flags __attribute__((unused));
const enum backend_flags *unused_backend_flags __attribute__((unused));
const enum flow_flags *unused_flow_flags __attribute__((unused));
const enum config_flags *unused_config_flags __attribute__((unused));

#endif
