/* parsing.h: bounds-checked parsing of Ethernet, one 802.1Q tag, IPv4/IPv6 (with extension headers), TCP/UDP/SCTP ports and ICMP errors. */
#ifndef XKEEP_PARSING_H
#define XKEEP_PARSING_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "consts.h"
#include "structs.h"

/* What the main program needs to know about a frame. */
struct packet {
	struct flow_key key; /* as the client sent it (for ICMP errors: the quoted flow, reversed) */
	__u32 len;           /* frame length, for byte counters */
	__u16 vlan;          /* VLAN id of the tag; 0 when untagged */
	__u8 tagged;         /* the frame has an 802.1Q tag */
	__u8 fragment;       /* an IP fragment: ports unknown, hash on addresses */
	__u8 tcp_flags;
	__u8 icmp_error;     /* an ICMP error quoting key's flow */
};

struct vlan_hdr_ {
	__be16 tci;
	__be16 encap_proto;
};

struct ipv6_opt_ {
	__u8 nexthdr;
	__u8 hdrlen;
};

struct ipv6_frag_ {
	__u8 nexthdr;
	__u8 reserved;
	__be16 frag_off;
	__be32 identification;
};

struct icmp_ {
	__u8 type;
	__u8 code;
	__be16 checksum;
	__be32 rest;
};

/* ports reads the first four bytes of a TCP, UDP or SCTP header. */
static __always_inline int read_ports(void *l4, void *data_end, __be16 *sport, __be16 *dport)
{
	__be16 *p = l4;

	if ((void *)(p + 2) > data_end)
		return -1;
	*sport = p[0];
	*dport = p[1];
	return 0;
}

static __always_inline int carries_ports(__u8 proto)
{
	return proto == IPPROTO_TCP_ || proto == IPPROTO_UDP_ || proto == IPPROTO_SCTP_;
}

/* parse_icmp4_error fills key with the flow an ICMP "fragmentation needed"
 * quotes, reversed: the quoted packet went from the VIP to the client. */
static __always_inline __u32 parse_icmp4_error(void *icmp, void *data_end, struct packet *pkt)
{
	struct icmp_ *ih = icmp;
	struct iphdr *inner;
	__u32 hlen;

	if ((void *)(ih + 1) > data_end)
		return STAT_PASS_TRUNCATED_L4;
	if (ih->type != ICMP_DEST_UNREACH_ || ih->code != ICMP_FRAG_NEEDED_)
		return STAT_PASS_ICMP;
	inner = (void *)(ih + 1);
	if ((void *)(inner + 1) > data_end)
		return STAT_PASS_TRUNCATED_ICMP;
	if (inner->version != 4 || inner->ihl < 5)
		return STAT_PASS_TRUNCATED_ICMP;
	if (!carries_ports(inner->protocol))
		return STAT_PASS_ICMP;
	hlen = (inner->ihl & 0xf) << 2;
	if (read_ports((void *)inner + hlen, data_end, &pkt->key.dport, &pkt->key.sport))
		return STAT_PASS_TRUNCATED_ICMP;
	pkt->key.src[0] = inner->daddr;
	pkt->key.dst[0] = inner->saddr;
	pkt->key.proto = inner->protocol;
	pkt->icmp_error = 1;
	return 0;
}

/* parse_icmp6_error does the same for ICMPv6 "packet too big". */
static __always_inline __u32 parse_icmp6_error(void *icmp, void *data_end, struct packet *pkt)
{
	struct icmp_ *ih = icmp;
	struct ipv6hdr *inner;

	if ((void *)(ih + 1) > data_end)
		return STAT_PASS_TRUNCATED_L4;
	if (ih->type != ICMPV6_PKT_TOOBIG_)
		return STAT_PASS_ICMP;
	inner = (void *)(ih + 1);
	if ((void *)(inner + 1) > data_end)
		return STAT_PASS_TRUNCATED_ICMP;
	if (!carries_ports(inner->nexthdr))
		return STAT_PASS_ICMP;
	if (read_ports((void *)(inner + 1), data_end, &pkt->key.dport, &pkt->key.sport))
		return STAT_PASS_TRUNCATED_ICMP;
	__builtin_memcpy(pkt->key.src, inner->daddr.s6_addr32, 16);
	__builtin_memcpy(pkt->key.dst, inner->saddr.s6_addr32, 16);
	pkt->key.proto = inner->nexthdr;
	pkt->icmp_error = 1;
	return 0;
}

/* parse_l4 reads ports (or an ICMP error's quoted flow) at l4. */
static __always_inline __u32 parse_l4(void *l4, void *data_end, __u8 proto, struct packet *pkt)
{
	pkt->key.proto = proto;
	if (proto == IPPROTO_VRRP_)
		return STAT_PASS_VRRP;
	if (pkt->fragment)
		return 0; /* addresses only, for every piece alike */
	if (carries_ports(proto)) {
		if (read_ports(l4, data_end, &pkt->key.sport, &pkt->key.dport))
			return STAT_PASS_TRUNCATED_L4;
		if (proto == IPPROTO_TCP_) {
			__u8 *flags = l4 + 13;

			if ((void *)(flags + 1) > data_end)
				return STAT_PASS_TRUNCATED_L4;
			pkt->tcp_flags = *flags;
		}
		return 0;
	}
	if (proto == IPPROTO_ICMP_ && pkt->key.family == FAMILY_V4)
		return parse_icmp4_error(l4, data_end, pkt);
	if (proto == IPPROTO_ICMPV6_ && pkt->key.family == FAMILY_V6)
		return parse_icmp6_error(l4, data_end, pkt);
	return STAT_PASS_OTHER_PROTO;
}

/* parse_ipv4 and parse_ipv6 fill the addresses and find the L4 header. */
static __always_inline __u32 parse_ipv4(void *l3, void *data_end, struct packet *pkt,
					void **l4, __u8 *proto)
{
	struct iphdr *ip = l3;
	__u32 hlen;

	if ((void *)(ip + 1) > data_end)
		return STAT_PASS_TRUNCATED_IP;
	if (ip->version != 4 || ip->ihl < 5)
		return STAT_PASS_BAD_IP_HEADER;
	hlen = (ip->ihl & 0xf) << 2;
	if (l3 + hlen > data_end)
		return STAT_PASS_TRUNCATED_IP;
	pkt->key.family = FAMILY_V4;
	pkt->key.src[0] = ip->saddr;
	pkt->key.dst[0] = ip->daddr;
	if (ip->frag_off & bpf_htons(IP_MF_ | IP_OFFSET_))
		pkt->fragment = 1;
	*l4 = l3 + hlen;
	*proto = ip->protocol;
	return 0;
}

static __always_inline __u32 parse_ipv6(void *l3, void *data_end, struct packet *pkt,
					void **l4, __u8 *proto)
{
	struct ipv6hdr *ip6 = l3;
	__u8 nexthdr;
	__u32 off;
	int i;

	if ((void *)(ip6 + 1) > data_end)
		return STAT_PASS_TRUNCATED_IP;
	if (ip6->version != 6)
		return STAT_PASS_BAD_IP_HEADER;
	pkt->key.family = FAMILY_V6;
	__builtin_memcpy(pkt->key.src, ip6->saddr.s6_addr32, 16);
	__builtin_memcpy(pkt->key.dst, ip6->daddr.s6_addr32, 16);
	nexthdr = ip6->nexthdr;
	off = sizeof(*ip6);

#pragma unroll
	for (i = 0; i < MAX_IPV6_EXT_HDRS; i++) {
		void *h = l3 + off;

		if (nexthdr == EXTHDR_HOP || nexthdr == EXTHDR_ROUTING ||
		    nexthdr == EXTHDR_DEST || nexthdr == EXTHDR_AH) {
			struct ipv6_opt_ *opt = h;

			if ((void *)(opt + 1) > data_end)
				return STAT_PASS_TRUNCATED_IP;
			if (nexthdr == EXTHDR_AH)
				off += ((__u32)opt->hdrlen + 2) << 2;
			else
				off += ((__u32)opt->hdrlen + 1) << 3;
			nexthdr = opt->nexthdr;
		} else if (nexthdr == EXTHDR_FRAGMENT) {
			struct ipv6_frag_ *fh = h;

			if ((void *)(fh + 1) > data_end)
				return STAT_PASS_TRUNCATED_IP;
			pkt->fragment = 1;
			nexthdr = fh->nexthdr;
			off += sizeof(*fh);
		} else {
			break;
		}
	}
	if (nexthdr == EXTHDR_HOP || nexthdr == EXTHDR_ROUTING || nexthdr == EXTHDR_DEST ||
	    nexthdr == EXTHDR_AH || nexthdr == EXTHDR_FRAGMENT)
		return STAT_PASS_IPV6_EXT_LIMIT;
	/* Bounded for the verifier: at most MAX_IPV6_EXT_HDRS headers of
	 * 2 KiB each follow the fixed header. */
	off &= 0x7fff;
	*l4 = l3 + off;
	*proto = nexthdr;
	return 0;
}

/* parse_packet fills pkt, or returns the reason to pass the frame on. */
static __always_inline __u32 parse_packet(void *data, void *data_end, struct packet *pkt)
{
	struct ethhdr *eth = data;
	void *l3 = eth + 1, *l4 = 0;
	__u8 l4proto = 0;
	__u32 reason;
	__be16 proto;

	if (l3 > data_end)
		return STAT_PASS_TRUNCATED_ETH;
	proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q_)) {
		struct vlan_hdr_ *vh = l3;

		if ((void *)(vh + 1) > data_end)
			return STAT_PASS_TRUNCATED_ETH;
		pkt->tagged = 1;
		pkt->vlan = bpf_ntohs(vh->tci) & VLAN_VID_MASK;
		proto = vh->encap_proto;
		l3 = vh + 1;
	}
	if (proto == bpf_htons(ETH_P_IP_))
		reason = parse_ipv4(l3, data_end, pkt, &l4, &l4proto);
	else if (proto == bpf_htons(ETH_P_IPV6_))
		reason = parse_ipv6(l3, data_end, pkt, &l4, &l4proto);
	else
		return STAT_PASS_NOT_IP;
	if (reason)
		return reason;
	return parse_l4(l4, data_end, l4proto, pkt);
}

#endif
