// Package forwardbench compares xkeep's two dataplanes on one rig: how
// many packets per second each forwards in DR mode, measured in the same
// kernel (test/vm -bench runs it in the 6.1 VM, where IPVS exists, and
// prints the XDP/IPVS ratio). It has no code of its own outside its
// benchmark.
package forwardbench
