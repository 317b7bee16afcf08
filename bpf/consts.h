/* consts.h: every constant of the XDP balancer; sizes are compile-time defaults the loader may override. */
#ifndef XKEEP_CONSTS_H
#define XKEEP_CONSTS_H

/* Map sizes. dataplane/xdp sets the real max_entries at load time from its
 * options; these are the defaults baked into the object. */
#ifndef MAX_SERVICES
#define MAX_SERVICES 4096
#endif
#ifndef MAX_BACKENDS
#define MAX_BACKENDS 65536
#endif
#ifndef FLOW_TABLE_SIZE
#define FLOW_TABLE_SIZE 262144
#endif
#ifndef PERSIST_TABLE_SIZE
#define PERSIST_TABLE_SIZE 65536
#endif
/* Each CPU's flow cache has 2^FLOW_CACHE_BITS slots (see flow_cache4). */
#ifndef FLOW_CACHE_BITS
#define FLOW_CACHE_BITS 12
#endif
#define FLOW_CACHE_SLOTS (1u << FLOW_CACHE_BITS)
#ifndef MAX_TX_PORTS
#define MAX_TX_PORTS 64
#endif

/* The VIP prefilter: one bit per value of a 16-bit fold of the destination
 * address, in 64-bit words. */
#define VIP_FILTER_WORDS 1024

/* Parsing bounds: extension headers skipped before giving up on an IPv6
 * packet, and how many entries a least-connection choice compares. */
#ifndef MAX_IPV6_EXT_HDRS
#define MAX_IPV6_EXT_HDRS 6
#endif
#ifndef LC_SCAN_MAX
#define LC_SCAN_MAX 32
#endif


/* Seed of the scheduling hash. */
#ifndef HASH_SEED
#define HASH_SEED 0x6b656570u /* "keep" */
#endif

#define NO_BACKEND 0xffffffffu

/* Address families as stored in keys (AF_INET, AF_INET6). */
#define FAMILY_V4 2
#define FAMILY_V6 10

/* EtherTypes and IP protocol numbers. */
#define ETH_P_IP_ 0x0800
#define ETH_P_IPV6_ 0x86DD
#define ETH_P_8021Q_ 0x8100
#define IPPROTO_ICMP_ 1
#define IPPROTO_TCP_ 6
#define IPPROTO_UDP_ 17
#define IPPROTO_ICMPV6_ 58
#define IPPROTO_VRRP_ 112
#define IPPROTO_SCTP_ 132

/* IPv6 extension headers the parser skips. */
#define EXTHDR_HOP 0
#define EXTHDR_ROUTING 43
#define EXTHDR_FRAGMENT 44
#define EXTHDR_AH 51
#define EXTHDR_DEST 60

/* ICMP messages that quote a VIP flow. */
#define ICMP_DEST_UNREACH_ 3
#define ICMP_FRAG_NEEDED_ 4
#define ICMPV6_PKT_TOOBIG_ 2

/* IPv4 fragment bits (host order). */
#define IP_MF_ 0x2000
#define IP_OFFSET_ 0x1fff
#define IP6_OFFSET_ 0xfff8

/* TCP flag bits (the 14th byte of the header). */
#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_RST 0x04
#define TCP_ACK 0x10

#define VLAN_VID_MASK 0x0fff

#endif
