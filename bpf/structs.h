/* structs.h: the only types shared with Go (dataplane/xdp gets them through bpf2go -type). */
#ifndef XKEEP_STRUCTS_H
#define XKEEP_STRUCTS_H

#include <linux/types.h>

/* Scheduling algorithms, named as keepalived's lb_algo. */
enum sched {
	SCHED_NONE = 0,
	SCHED_RR = 1,  /* round robin over the slot list */
	SCHED_WRR = 2, /* round robin over a weighted, interleaved slot list */
	SCHED_SH = 3,  /* source hash over the weighted slot list */
	SCHED_MH = 4,  /* source hash over a Maglev table */
	SCHED_LC = 5,  /* fewest active flows */
	SCHED_WLC = 6, /* fewest active flows per weight */
};

/* Global counters: one per verdict, then one per reason. Go names them from
 * this enum's BTF ("STAT_PASS_VRRP" becomes "pass_vrrp"). */
enum stat {
	STAT_VERDICT_ABORTED = 0, /* indices 0..4 are the XDP verdicts */
	STAT_VERDICT_DROP = 1,
	STAT_VERDICT_PASS = 2,
	STAT_VERDICT_TX = 3,
	STAT_VERDICT_REDIRECT = 4,
	STAT_PASS_NOT_IP,         /* ARP, LLDP, stacked VLANs, anything not IPv4/IPv6 */
	STAT_PASS_VRRP,           /* IP protocol 112 */
	STAT_PASS_OTHER_PROTO,    /* an IP protocol no service can carry */
	STAT_PASS_ICMP,           /* ICMP not quoting a service (echo, ...) */
	STAT_PASS_NOT_SERVICE,    /* no service for this address:port/protocol */
	STAT_PASS_NOT_SERVED,     /* a service whose VIP this node does not hold */
	STAT_PASS_NO_BACKEND,     /* the service has no usable backend */
	STAT_PASS_ICMP_NO_FLOW,   /* ICMP quoting a service flow nobody owns */
	STAT_PASS_LOCAL_BACKEND,  /* the chosen backend is this host */
	STAT_PASS_VLAN_MISMATCH,  /* backend on another VLAN than the frame's tagging allows */
	STAT_PASS_TRUNCATED_ETH,  /* frame shorter than its Ethernet/802.1Q header */
	STAT_PASS_TRUNCATED_IP,   /* shorter than its IP header */
	STAT_PASS_BAD_IP_HEADER,  /* wrong version or header length */
	STAT_PASS_IPV6_EXT_LIMIT, /* more IPv6 extension headers than the parser skips */
	STAT_PASS_TRUNCATED_L4,   /* shorter than the ports or ICMP header */
	STAT_PASS_TRUNCATED_ICMP, /* ICMP error too short for the quoted header */
	STAT_FLOW_NEW,            /* scheduled a new flow */
	STAT_FLOW_HIT,            /* forwarded by the flow table */
	STAT_FLOW_RESCHEDULED,    /* flow's backend gone: scheduled again */
	STAT_FLOW_EXPIRED,        /* flow idle past its timeout: scheduled again */
	STAT_PERSIST_HIT,         /* new flow sent by a persistence entry */
	STAT_FRAGMENT,            /* forwarded an IP fragment by address hash */
	STAT_ICMP_FORWARDED,      /* forwarded an ICMP error to its flow's backend */
	STAT_PASS_LEASE_EXPIRED,  /* the control plane stopped renewing: not intercepting */
	STAT_MAX,
};

/* service.flags */
enum svc_flags {
	SVC_F_SERVED = 0x01,    /* this node holds the VIP: intercept */
	SVC_F_HASH_PORT = 0x02, /* sh-port / mh-port: hash the source port too */
};

/* backend.flags */
enum backend_flags {
	BE_F_ALLOCATED = 0x01, /* id in use by the control plane */
	BE_F_FORWARD = 0x02,   /* flows may use it (up or draining, MAC known) */
	BE_F_LOCAL = 0x04,     /* this host: pass to the local stack */
	BE_F_SERVED = 0x08,    /* its service's VIP is served here: the flow-table
				* hit path checks this instead of the service */
};

/* flow.flags */
enum flow_flags {
	FLOW_F_CLOSING = 0x01, /* FIN or RST seen; no longer counted active */
};

/* config.flags */
enum config_flags {
	CFG_F_ANY_PORT = 0x01, /* some service listens on port 0 (all ports) */
};

/* services key: a VIP, port (network order) and protocol. IPv4 addresses
 * fill addr[0]; the rest stays zero. */
struct svc_key {
	__be32 addr[4];
	__be16 port;
	__u8 proto;
	__u8 family;
};

/* A virtual service. The same value sits in fragment_services. */
struct service {
	__u32 id;              /* index into sched_tables, service_stats, rr_cursors */
	__u32 persist_timeout; /* seconds; 0 disables persistence */
	__be32 persist_mask[4]; /* client netmask persistence groups by */
	__u8 sched;            /* enum sched */
	__u8 flags;            /* SVC_F_* */
	__u16 pad;
};

/* fragment_services key: fragments carry no ports, so they find their
 * service by address and protocol only. */
struct frag_key {
	__be32 addr[4];
	__u8 proto;
	__u8 family;
	__u16 pad;
};

/* A backend of one service (backends is indexed by its id). */
struct backend {
	__u8 mac[6];     /* destination MAC: the backend's */
	__u8 src_mac[6]; /* source MAC: the egress interface's */
	__u32 ifindex;   /* egress interface (for a VLAN, its parent) */
	__u16 vlan;      /* VLAN id on the egress; 0 untagged */
	__u16 flags;     /* BE_F_* */
	__u32 gen;       /* bumped when the id is given to another backend */
	__u32 weight;
	/* Identity, read back by the control plane after a restart; the
	 * program does not use it. */
	__u32 service;
	__be32 addr[4];
	__be16 port;
	__u8 family;
	__u8 pad;
};

/* A connection's 5-tuple as the client sent it; the key of flows6. */
struct flow_key {
	__be32 src[4];
	__be32 dst[4];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};

/* The key of flows4: the same 5-tuple for IPv4, in 16 bytes instead of 40
 * (a shorter key hashes and compares faster on the hit path). */
struct flow_key4 {
	__be32 src;
	__be32 dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct flow {
	__u64 last_seen; /* program clock (jiffies); rewritten at most once a second */
	__u32 backend;
	__u32 gen;       /* backend's gen when scheduled: a mismatch reschedules */
	__u32 flags;     /* FLOW_F_* */
	__u32 pad;
};

/* flow_copy: a flow table entry as one CPU last copied it. */
struct flow_copy {
	__u64 last_seen; /* the flow table entry's, when copied */
	__u32 backend;
	__u32 gen;
	__u32 epoch;     /* flow_epoch when copied */
	__u32 pad;
};

/* Flow cache slots: the flow's key and its copy. */
struct flow_cache_entry4 {
	struct flow_key4 key;
	struct flow_copy copy;
};

struct flow_cache_entry6 {
	struct flow_key key;
	struct flow_copy copy;
};

/* persistence key: a service and the client's masked address. */
struct persist_key {
	__u32 service;
	__u32 family;
	__be32 addr[4];
};

struct persist {
	__u64 last_seen;
	__u32 backend;
	__u32 gen;
};

/* Per-CPU counters of a backend. */
struct backend_counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

/* Per-CPU counters of a service. */
struct service_counters {
	__u64 packets;
	__u64 bytes;
	__u64 new_flows;
};

/* Settings the control plane writes into the program's .bss. Times are
 * in ticks of the program clock (jiffies). */
struct config {
	/* Added to the kernel's clock. Always 0 in production; tests move the
	 * program's time forward with it to expire flows and persistence. */
	__u64 clock_offset;
	__u64 hz;          /* ticks per second (the kernel's HZ) */
	__u64 tcp_timeout; /* flow idle timeout */
	__u64 udp_timeout; /* also SCTP */
	/* Services are intercepted only while the clock is at or before this
	 * tick; 0: always. The control plane keeps renewing it, so the program
	 * of a daemon that was killed stops balancing VIP traffic before a
	 * peer can take over the VIP and send this node, as a real server, DR
	 * packets it would bounce back (a forwarding loop). */
	__u64 lease_until;
	__u32 flags;       /* CFG_F_* */
	__u32 pad;
};

#endif
