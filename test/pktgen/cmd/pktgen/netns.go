package main

import (
	"fmt"
	"net"
	"runtime"

	"github.com/vishvananda/netns"
)

// interfaceIn looks an interface up inside another namespace, from a
// throwaway thread.
func interfaceIn(nsPath, name string) (*net.Interface, error) {
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	type result struct {
		ifc *net.Interface
		err error
	}
	c := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // discarded with the goroutine
		if err := netns.Set(ns); err != nil {
			c <- result{err: err}
			return
		}
		ifc, err := net.InterfaceByName(name)
		c <- result{ifc, err}
	}()
	r := <-c
	return r.ifc, r.err
}
