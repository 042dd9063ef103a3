// SPDX-License-Identifier: GPL-2.0
// verify-path: count TCP frames on the watched ports per (interface, direction, 4-tuple) and per
// tenth of a second, in the kernel, without copying a frame to user space (only a bounded sample
// of frame headers, as evidence). Never alters traffic: the tc programs always return TCX_NEXT
// ("continue"). Reads no kernel struct, only __sk_buff and the packet: no CO-RE, no kernel BTF.
//
// Built at install time with the types of vmlinux.h from the running kernel's BTF (the Debian
// headers for this kernel do not exist, design.md section 6); see build.py.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define FIRST_BYTES 16
#define NBINS 32      // tenths of a second kept per flow: 3.2 s; user space reads them every second
#define TENTH_NS 100000000ULL
#define CLOCK_MONOTONIC 1
#define EVIDENCE_BYTES 160  // headers of one frame: Ethernet, 2 VLAN tags, IPv6, TCP with options
#define MAX_L4 8192   // beyond any TCP header's offset: Ethernet, 2 tags, IPv6 and 3 extension headers
#define FIRST_FRAMES 4      // a flow's first frames (per CPU, way and interface) go to the evidence

#define F_SYN 1       // a SYN without ACK went this way: the sender is the client
#define F_SYNACK 2    // a SYN+ACK went this way: the sender is the server
#define F_FIRST 4     // this CPU has offered the flow's first payload bytes already

enum { DIR_RX = 0, DIR_TX = 1 };

enum { ST_FLOW_FULL, ST_EVIDENCE_LOST, ST_MAX };  // index into `stats`

// The watched ports: up to INLINE_RANGES ranges in the config's first cache line, which every
// frame reads anyway; more as a bitmap (bit p of the 65,536), one load and a shift per port. The
// bitmap's word is a line of its own, which the stream's data copies evict between frames: perf
// showed its load among the program's hottest instructions, where every profile has 1-3 ranges.
#define INLINE_RANGES 4

// A watched device's segmentation (devices.py), at devs[ifindex % NDEVS] of the config, or in the
// `devs` map when two watched devices share that entry.
#define NDEVS 64
#define HW_TSO4 1  // the device segments IPv4 TCP itself
#define HW_TSO6 2  // and IPv6
struct vp_dev {
	__u32 ifindex;
	__u16 flags;
	__u16 gso_max_segs;
};

struct vp_config {
	__u32 nranges;  // 0: not configured yet, count nothing
	__u32 ninline;  // the ranges are lo[]/hi[] (unused ones empty: lo > hi); 0: use the bitmap
	__u64 t0_ns;  // CLOCK_MONOTONIC at start: bins count tenths of a second from it
	__u16 lo[INLINE_RANGES];
	__u16 hi[INLINE_RANGES];
	struct vp_dev devs[NDEVS];
	__u64 ports[1024];
};

struct vp_flow_key {
	__u32 ifindex;
	__u8 dir;
	__u8 family;
	__u16 sport;
	__u16 dport;
	__u16 pad;
	__u8 saddr[16];
	__u8 daddr[16];
};

// Bytes per tenth of a second since start, in a ring of NBINS slots in the flow's own value: one
// hash lookup per frame instead of a second map keyed by (flow, tenth). A slot holds one tenth
// (tag = tenth + 1, 0 = never used) until the same slot's tenth comes round again, 3.2 s later;
// user space reads the map every second, so it sees each tenth's final value before that.
struct vp_bin {
	__u64 tag;
	__u64 bytes;
};

struct vp_flow_val {
	__u64 bytes;
	__u64 packets;
	__u64 payload;
	__u64 flags;
	struct vp_bin bins[NBINS];
};

// A flow's counters on one CPU, kept in a slot of a small per-CPU array instead of the hash map:
// a bulk stream's frames repeat the same few keys on each CPU, and finding the slot (an index from
// the ports and the interface, the key compared as six words) costs a fraction of a hash lookup
// (variants of this file, iperf3 over the bench's san0, 10 s, kernel.bpf_stats_enabled: the lookup
// and its insert path were 90 of 165 ns per run). The first flow to reach a slot on a CPU keeps
// it for the capture's life; any other flow whose index lands there counts in the hash map on that
// CPU, always, so a flow's counts on one CPU are in exactly one place and user space adds the two
// maps like the CPUs of one (decode.merge_slots).
#define NSLOTS 32

struct vp_slot {
	union {
		struct vp_flow_key key;
		__u64 words[6];  // the key (44 bytes) and 4 bytes of zeros: compared word by word
	};
	struct vp_flow_val val;
};

// One frame: what count() found in layers 2 and 3, then what tcp_frame() adds.
struct vp_frame {
	union {
		struct vp_flow_key key;
		__u64 words[6];  // the key and 4 bytes of zeros, as in struct vp_slot
	};
	__u64 wire;     // bytes on the wire (all segments of a GSO packet, as tcpdump sees them)
	__u64 frames;   // frames on the wire
	__u32 len;      // skb->len
	__u32 vlan;     // 1: a VLAN tag was offloaded (not in the data)
	__u32 gso_segs; // skb->gso_segs
	__u32 l3;       // offset of the IP header
	__u32 l4;       // offset of the TCP header
	__u32 ip_len;   // the IP header's length field as a total length; 0 when it says nothing
	__u32 payload;  // TCP payload bytes
	__u32 hdr;      // the payload's offset: the end of the TCP header
	__u32 flag;     // F_SYN or F_SYNACK
	__u32 fin_rst;  // a FIN or RST: always kept as evidence
	// tcp_frame's copy of the TCP header: the helper's copy into tcp_frame's own stack made this
	// kernel's verifier (6.18) give up ("verifier bug: stack slot 3, total slots 2").
	struct tcphdr tcp;
};

struct vp_first_val {
	__u32 len;
	__u8 data[FIRST_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vp_config);
} vp_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct vp_dev);
} devs SEC(".maps");

// Per-CPU: no atomic operation on the hot path; user space adds the CPUs' values. Not
// preallocated: a capture sees tens of flows, and preallocating 16384 per-CPU entries of 544
// bytes at load would cost more CPU than counting gigabytes does.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vp_flow_key);
	__type(value, struct vp_flow_val);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct vp_flow_key);
	__type(value, struct vp_first_val);
} firsts SEC(".maps");

// All the slots in one per-CPU value (18.5 KiB per CPU): one per-CPU pointer for every frame to
// load (from a line that stays cached), not one of NSLOTS.
struct vp_slots {
	struct vp_slot slot[NSLOTS];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vp_slots);
} slots SEC(".maps");

// A wake-up for user space each time a flow carries its first payload (on a CPU, a way, an
// interface), with the flow's key: the ownership sampler then asks the kernel for that one
// connection's socket at once (a hash lookup, where a dump walks the whole TCP table), instead of
// polling the socket table fast all along.
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16384);
} new_flows SEC(".maps");

// Evidence for the pcaps, instead of a packet socket on every interface (whose tap clones every
// outgoing frame, in the sender's time): one record per SYN, FIN or RST, per flow's first
// FIRST_FRAMES frames, and per flow's first frame of each tenth of a second (the bin's first),
// so the rate is bounded by the number of flows, not by the stream's frames. Headers only, up to
// the end of the TCP header: never guest memory. User space drains it once a second (no wake-up
// per record); a record that finds the ring full is counted in `stats`, never blocks counting.
struct vp_evidence {
	__u64 ts_ns;      // CLOCK_MONOTONIC
	__u32 ifindex;
	__u32 len;        // the frame's length, an offloaded VLAN tag included
	__u16 caplen;     // bytes of data[] that hold the frame's headers
	__u8 dir;
	__u8 vlan;        // 1: a tag was offloaded (not in data[]); user space re-inserts it
	__u16 vlan_proto; // network order
	__u16 vlan_tci;   // host order
	__u8 data[EVIDENCE_BYTES];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 20);
} evidence SEC(".maps");

// The tenth of a second now, kept by a timer that fires at each tenth's start: one load per
// frame, where bpf_ktime_get_ns() and a division cost about a quarter of the program's run time
// (variants of this file, iperf3 over the bench's san0, kernel.bpf_stats_enabled: 217-229 ns per
// run with them, 144-175 without). The first frame arms the timer.
struct vp_clock {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct vp_clock);
} clock SEC(".maps");

__u64 vp_tenth_plus1 = 0;  // the current tenth + 1; 0 until the timer first fired

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, ST_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// A new flow's first value: zeros, from .bss (544 bytes do not fit the 512-byte BPF stack).
struct vp_flow_val vp_zero = {};

static __always_inline void bump(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &idx);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline __u64 tenth_at(const struct vp_config *cfg, __u64 now)
{
	return now > cfg->t0_ns ? (now - cfg->t0_ns) / TENTH_NS : 0;
}

static int tick(void *map, __u32 *key, struct vp_clock *clk)
{
	__u32 zero = 0;
	struct vp_config *cfg = bpf_map_lookup_elem(&vp_config, &zero);
	if (!cfg)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	__u64 tenth = tenth_at(cfg, now);
	vp_tenth_plus1 = tenth + 1;
	__u64 next = cfg->t0_ns + (tenth + 1) * TENTH_NS;  // the next tenth's start
	bpf_timer_start(&clk->timer, next > now ? next - now : TENTH_NS, 0);
	return 0;
}

// The rare paths below are global functions: the verifier checks each once, on its own, instead
// of once per state of the parser that reaches it (inlined, they tripled the object's load time,
// 0.045 -> 0.16 s of CPU).

// Arm the clock's timer; only the first init succeeds (-EBUSY after): one timer, whichever CPU's
// frame came first.
__attribute__((noinline)) int arm_clock(void)
{
	__u32 zero = 0;
	struct vp_clock *clk = bpf_map_lookup_elem(&clock, &zero);
	if (clk && bpf_timer_init(&clk->timer, &clock, CLOCK_MONOTONIC) == 0) {
		bpf_timer_set_callback(&clk->timer, tick);
		bpf_timer_start(&clk->timer, 0, 0);
	}
	return 0;
}

// The tenth a frame counts in: the timer's, or (before it first fired) the clock's, arming it.
static __always_inline __u64 current_tenth(const struct vp_config *cfg)
{
	__u64 t = vp_tenth_plus1;
	if (t)
		return t - 1;
	arm_clock();
	return tenth_at(cfg, bpf_ktime_get_ns());
}

// One evidence record: the frame's headers (CAP bytes from its start), its length and way.
__attribute__((noinline)) int keep_evidence(struct __sk_buff *skb, __u32 dir, __u32 cap)
{
	if (!skb)
		return 0;
	__u32 len = skb->len;
	__u32 vlan = skb->vlan_present;
	__u32 ifindex = skb->ifindex;
	if (cap > len)
		return 0;
	__u64 ts = bpf_ktime_get_ns();
	struct vp_evidence *e = bpf_ringbuf_reserve(&evidence, sizeof(*e), 0);
	if (!e) {
		bump(ST_EVIDENCE_LOST);
		return 0;
	}
	// Longer headers (IPv6 extension headers) are cut, never the payload kept. 64 bits, hidden
	// from clang, bounded where the helper takes it: the verifier needs the length it sees to be
	// 1..EVIDENCE_BYTES, and clang would test a zero-extended copy of a 32-bit value and pass
	// the original.
	__u64 n = cap > EVIDENCE_BYTES ? EVIDENCE_BYTES : cap;
	asm volatile("" : "+r"(n));
	if (n == 0 || n > EVIDENCE_BYTES || bpf_skb_load_bytes(skb, 0, e->data, n)) {
		bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
		return 0;
	}
	e->ts_ns = ts;
	e->ifindex = ifindex;
	e->len = len + (vlan ? 4 : 0);
	e->caplen = n;
	e->dir = dir;
	e->vlan = vlan ? 1 : 0;
	e->vlan_proto = skb->vlan_proto;
	e->vlan_tci = skb->vlan_tci;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

// The flow's counters on this CPU: its slot when it holds (or can take) one, else its hash entry.
static __always_inline struct vp_flow_val *flow_counters(struct vp_frame *f)
{
	struct vp_flow_key *key = &f->key;
	const __u64 *words = f->words;
	__u32 zero = 0;
	struct vp_slots *table = bpf_map_lookup_elem(&slots, &zero);
	if (table) {
		__u32 idx = (key->sport ^ key->dport ^ (key->ifindex << 1) ^ key->dir) & (NSLOTS - 1);
		struct vp_slot *slot = &table->slot[idx];
		if (slot->key.family == 0) {  // free on this CPU: the flow takes it for good
#pragma unroll
			for (int i = 0; i < 6; i++)
				slot->words[i] = words[i];
			return &slot->val;
		}
		if (slot->words[0] == words[0] && slot->words[1] == words[1] && slot->words[2] == words[2] &&
		    slot->words[3] == words[3] && slot->words[4] == words[4] && slot->words[5] == words[5])
			return &slot->val;
	}
	struct vp_flow_val *v = bpf_map_lookup_elem(&flows, key);
	if (!v) {
		bpf_map_update_elem(&flows, key, &vp_zero, BPF_NOEXIST);  // fails if another CPU won: fine
		v = bpf_map_lookup_elem(&flows, key);
		if (!v)
			bump(ST_FLOW_FULL);
	}
	return v;
}

static __always_inline int watched(const struct vp_config *cfg, __u16 port)
{
	if (cfg->ninline) {
		int in = 0;
#pragma unroll
		for (int i = 0; i < INLINE_RANGES; i++)
			in |= port >= cfg->lo[i] && port <= cfg->hi[i];
		return in;
	}
	return (cfg->ports[port >> 6] >> (port & 63)) & 1;
}

// How many frames a GSO super-packet leaves the device as. tc egress runs before the stack
// segments for a device without TSO (validate_xmit_skb: TCP builds GSO packets whatever the
// device offers), while tcpdump's tap sees the segments; count what the wire and tcpdump see.
// Mirrors netif_skb_features() for the cases that occur: the TSO/TSO6 feature and gso_max_segs,
// as user space read them at start (devices.py says why not from the kernel's structs here).
static __always_inline __u32 egress_segments(const struct vp_config *cfg, __u32 ifindex, __u32 segs, int v6)
{
	if (segs <= 1)
		return 1;
	const struct vp_dev *dev = &cfg->devs[ifindex & (NDEVS - 1)];
	if (dev->ifindex != ifindex) {
		dev = bpf_map_lookup_elem(&devs, &ifindex);  // two watched devices on one entry
		if (!dev)
			return 1;
	}
	__u16 tso = v6 ? HW_TSO6 : HW_TSO4;
	if ((dev->flags & tso) && segs <= dev->gso_max_segs)
		return 1;
	return segs;
}

// N bytes at OFF: straight from the packet when they are in its linear part, else through the
// helper. The direct read saves a helper call per header on every frame. It copies 4 or 2 bytes
// at a time (N is a multiple of 2 here): a memcpy from a packet pointer is compiled to single
// bytes, 20 loads and 20 stores for a TCP header, and the 16-bit reads of the copy that follow
// then wait for the byte stores (perf: the hottest instructions of the program). The verifier
// allows unaligned packet loads where the CPU does (x86, arm64) and refuses the object where it
// does not (then the ring engine counts, and says why).
static __always_inline int load(struct __sk_buff *skb, void *data, void *end, __u32 off, void *to, const __u32 n)
{
	void *p = data + off;
	if (p + n <= end) {
		if (n % 4 == 0) {
#pragma unroll
			for (__u32 i = 0; i < n / 4; i++)
				((__u32 *)to)[i] = ((const __u32 *)p)[i];
		} else {
#pragma unroll
			for (__u32 i = 0; i < n / 2; i++)
				((__u16 *)to)[i] = ((const __u16 *)p)[i];
		}
		return 0;
	}
	return bpf_skb_load_bytes(skb, off, to, n);
}

int add_frame(struct __sk_buff *skb, struct vp_frame *f, struct vp_flow_val *v);

// The TCP layer of frame F, whose IP header count() parsed: the ports, the lengths, the segments,
// then the flow's counters. Global functions (this one, add_frame, keep_evidence, arm_clock): the
// verifier checks each once, on its own, where inlined it was checked again for every state of the
// parser that reaches it (VLAN tags, IPv4 or IPv6 and its extension headers, each with its own
// offsets): 55-66k instructions verified for the two programs and 0.045-0.055 s of CPU at every
// start, against a call or two per frame.
__attribute__((noinline)) int tcp_frame(struct __sk_buff *skb, struct vp_frame *f)
{
	if (!skb || !f)
		return 0;
	__u32 zero = 0;
	struct vp_config *cfg = bpf_map_lookup_elem(&vp_config, &zero);
	if (!cfg)
		return 0;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 l4 = f->l4;
	if (l4 > MAX_L4)  // bounded for the verifier's packet checks; count() never hands more
		return 0;
	struct tcphdr *tcp = &f->tcp;
	if (load(skb, data, end, l4, tcp, sizeof(*tcp)))
		return 0;
	f->key.sport = bpf_ntohs(tcp->source);
	f->key.dport = bpf_ntohs(tcp->dest);
	if (!watched(cfg, f->key.sport) && !watched(cfg, f->key.dport))
		return 0;
	__u32 thl = tcp->doff * 4;
	__u32 len = f->len, vlan = f->vlan, ip_len = f->ip_len;
	__u32 l3 = f->l3;
	// The IP length fields are 0 under BIG TCP / GSO (design.md section 4): then the frame says.
	__u32 l3_len = len > l3 ? len - l3 : 0;
	if (!ip_len || ip_len > l3_len)
		ip_len = l3_len;
	__u32 ihl = l4 - l3;
	f->payload = ip_len > ihl + thl ? ip_len - ihl - thl : 0;
	f->hdr = l4 + thl;
	// An offloaded VLAN tag is not in the skb's data; libpcap re-inserts it and counts it in
	// orig_len, so it is counted here too.
	__u64 wire = len + (vlan ? 4 : 0);
	__u64 frames = 1;
	if (f->key.dir == DIR_TX) {
		frames = egress_segments(cfg, f->key.ifindex, f->gso_segs, f->key.family == 6);
		// Each segment repeats the headers (and the offloaded tag, if any).
		wire += (frames - 1) * (l4 + thl + (vlan ? 4 : 0));
	}
	f->wire = wire;
	f->frames = frames;
	if (tcp->syn)
		f->flag = tcp->ack ? F_SYNACK : F_SYN;
	f->fin_rst = tcp->fin || tcp->rst;
	struct vp_flow_val *v = flow_counters(f);
	if (v)
		add_frame(skb, f, v);
	return 0;
}

// The frame F into V, its flow's counters on this CPU (a slot's or a hash entry's: a function of
// its own, so that the verifier checks it once, not once per kind of pointer flow_counters returns).
__attribute__((noinline)) int add_frame(struct __sk_buff *skb, struct vp_frame *f, struct vp_flow_val *v)
{
	if (!skb || !f || !v)
		return 0;
	__u32 zero = 0;
	struct vp_config *cfg = bpf_map_lookup_elem(&vp_config, &zero);
	if (!cfg)
		return 0;
	__u64 wire = f->wire;
	__u32 payload = f->payload;
	int keep = f->flag || f->fin_rst || v->packets < FIRST_FRAMES;
	v->bytes += wire;
	v->packets += f->frames;
	v->payload += payload;
	v->flags |= f->flag;
	if (payload && !(v->flags & F_FIRST)) {
		// Evidence of the stream's kind (streams.classify): its first payload bytes, once.
		v->flags |= F_FIRST;
		struct vp_first_val fv = {};
		__u32 n = payload < FIRST_BYTES ? payload : FIRST_BYTES;
		// Hide n's range from clang, then mask it into [1, 16]: the verifier needs a bounded size.
		asm volatile("" : "+r"(n));
		n = ((n - 1) & (FIRST_BYTES - 1)) + 1;
		if (bpf_skb_load_bytes(skb, f->hdr, fv.data, n) == 0) {
			fv.len = n;
			// One wake-up per flow, way and interface: only the CPU whose insert wins sends it. A
			// full ring only loses a wake-up: the sampler's own looks remain.
			if (bpf_map_update_elem(&firsts, &f->key, &fv, BPF_NOEXIST) == 0)
				bpf_ringbuf_output(&new_flows, &f->key, sizeof(f->key), 0);
		}
	}
	// Tenths of a second: a migration over a fast link lasts about a second, and its rate is
	// measurable only in finer bins; user space sums them into the report's seconds.
	__u64 tenth = current_tenth(cfg);
	struct vp_bin *b = &v->bins[tenth & (NBINS - 1)];
	if (b->tag != tenth + 1) {
		b->tag = tenth + 1;
		b->bytes = 0;
		keep = 1;  // the flow's first frame in this tenth (on this CPU): a bounded sample
	}
	b->bytes += wire;
	if (keep)
		keep_evidence(skb, f->key.dir, f->hdr);
	return 0;
}

// Layers 2 and 3 of the frame: VLAN tags, IPv4 or IPv6 (extension headers skipped) carrying TCP;
// the rest is tcp_frame's.
static __always_inline void count(struct __sk_buff *skb, __u32 dir)
{
	__u32 zero = 0;
	struct vp_config *cfg = bpf_map_lookup_elem(&vp_config, &zero);
	if (!cfg || !cfg->nranges)
		return;
	struct vp_frame f;
	// The key is compared as words (padding included): zeros first. The rest is set field by field.
	__builtin_memset(&f.words, 0, sizeof(f.words));
	f.flag = 0;
	// Context fields are read once, up front: clang 14 otherwise merges two loads into one at a
	// computed offset, which the verifier rejects ("dereference of modified ctx ptr").
	f.len = skb->len;
	f.vlan = skb->vlan_present;
	f.gso_segs = skb->gso_segs;
	f.key.ifindex = skb->ifindex;
	f.key.dir = dir;
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	__u32 off = 14;
	__u16 proto;
	if (load(skb, data, end, 12, &proto, 2))
		return;
	proto = bpf_ntohs(proto);
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != ETH_P_8021Q && proto != ETH_P_8021AD)
			break;
		if (load(skb, data, end, off + 2, &proto, 2))
			return;
		proto = bpf_ntohs(proto);
		off += 4;
	}
	__u32 ihl;
	if (proto == ETH_P_IP) {
		struct iphdr ip;
		if (load(skb, data, end, off, &ip, sizeof(ip)))
			return;
		ihl = ip.ihl * 4;
		if (ip.version != 4 || ip.protocol != IPPROTO_TCP || ihl < 20)
			return;
		if (bpf_ntohs(ip.frag_off) & 0x1FFF)
			return;  // a later fragment carries no TCP header
		f.ip_len = bpf_ntohs(ip.tot_len);
		f.key.family = 4;
		__builtin_memcpy(f.key.saddr, &ip.saddr, 4);
		__builtin_memcpy(f.key.daddr, &ip.daddr, 4);
	} else if (proto == ETH_P_IPV6) {
		struct ipv6hdr ip6;
		if (load(skb, data, end, off, &ip6, sizeof(ip6)))
			return;
		__u8 nexthdr = ip6.nexthdr;
		ihl = 40;
		// Hop-by-hop, routing and destination options headers are skipped, as frames.py does.
#pragma unroll
		for (int i = 0; i < 3; i++) {
			if (nexthdr != 0 && nexthdr != 43 && nexthdr != 60)
				break;
			__u8 ext[2] __attribute__((aligned(4)));
			if (load(skb, data, end, off + ihl, ext, 2))
				return;
			nexthdr = ext[0];
			ihl += (ext[1] + 1) * 8;
		}
		if (nexthdr != IPPROTO_TCP)
			return;
		__u32 ip_len = bpf_ntohs(ip6.payload_len);
		f.ip_len = ip_len ? ip_len + 40 : 0;
		f.key.family = 6;
		__builtin_memcpy(f.key.saddr, &ip6.saddr, 16);
		__builtin_memcpy(f.key.daddr, &ip6.daddr, 16);
	} else {
		return;
	}
	f.l3 = off;
	f.l4 = off + ihl;
	tcp_frame(skb, &f);
}

SEC("tc")
int vp_ingress(struct __sk_buff *skb)
{
	count(skb, DIR_RX);
	return TCX_NEXT;
}

SEC("tc")
int vp_egress(struct __sk_buff *skb)
{
	count(skb, DIR_TX);
	return TCX_NEXT;
}

// The benchmark's instrument, never attached by verify-path: an empty program that the bench
// attaches beside the two above (verifier/bench/instrument.py). Its run time per run is what the
// kernel's run-time statistics count of their own clock reads and of the call, in every program's
// figure: measured in the same run, on the same frames, it separates our programs' own time.
SEC("tc")
int vp_noop(struct __sk_buff *skb)
{
	return TCX_NEXT;
}

char LICENSE[] SEC("license") = "GPL";
