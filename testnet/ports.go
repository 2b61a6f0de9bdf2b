package testnet

import (
	"fmt"
	"net"
	"strconv"
)

// loopback is the host every testnet address uses.
const loopback = "127.0.0.1"

// FreePorts returns n distinct loopback ports that were free a moment ago:
// each is found by binding 127.0.0.1:0 over TCP, and kept only if the same
// UDP port can be bound too (a node listens on TCP and QUIC on one port).
// All are held until every one is found, so none repeats, then released.
// Another process may still take one before the node does; Up then fails
// with the node's log, and a second `up` picks again.
func FreePorts(n int) ([]int, error) {
	var held []func()
	defer func() {
		for _, release := range held {
			release()
		}
	}()
	ports := make([]int, 0, n)
	for tries := 0; len(ports) < n; tries++ {
		if tries > 20*n+20 {
			return nil, fmt.Errorf("failed to find %d free loopback ports", n)
		}
		tl, err := net.Listen("tcp", net.JoinHostPort(loopback, "0"))
		if err != nil {
			return nil, fmt.Errorf("failed to find a free loopback port: %w", err)
		}
		port := tl.Addr().(*net.TCPAddr).Port
		ul, err := net.ListenPacket("udp", net.JoinHostPort(loopback, strconv.Itoa(port)))
		if err != nil {
			tl.Close() // UDP side taken: try another
			continue
		}
		held = append(held, func() { tl.Close(); ul.Close() })
		ports = append(ports, port)
	}
	return ports, nil
}

// portFree reports whether port can be bound on loopback over TCP and UDP.
func portFree(port int) bool {
	addr := net.JoinHostPort(loopback, strconv.Itoa(port))
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer tl.Close()
	ul, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	ul.Close()
	return true
}
