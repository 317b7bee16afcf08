package xdp

// The program is compiled from bpf/ with Debian's clang and committed (the
// .o and the Go bindings next to this file), so building needs no clang.
// `make generate` reruns this; CI fails when the output differs. Every
// struct the Go side reads or writes is generated from bpf/structs.h with
// -type. Both multiarch include directories are listed for asm/types.h;
// clang skips the one that does not exist.
//go:generate go tool bpf2go -tags linux -target bpfel -type service -type svc_key -type frag_key -type backend -type flow_key -type flow_key4 -type flow -type persist_key -type persist -type backend_counters -type service_counters -type stat -type sched -type svc_flags -type backend_flags -type flow_flags -type config_flags -type xdp_md balancer ../../bpf/xdp_balancer.c -- -mcpu=v3 -Wall -Werror -I/usr/include/x86_64-linux-gnu -I/usr/include/aarch64-linux-gnu
