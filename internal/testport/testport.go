// Package testport picks loopback ports for the servers tests start (redis-server, FerretDB).
//
// Ports are picked below Linux's ephemeral range (32768-60999), so that a port left free while
// a server is stopped is not handed to some other listener asking for port 0, and never twice
// in one process, so that two servers of one test binary never meet, whatever kind they are.
package testport

import (
	"errors"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
)

const (
	low  = 20000
	high = 32000
)

var taken struct {
	sync.Mutex
	ports map[int]bool
}

// Pick returns a loopback port that was free a moment ago and that this process has not
// picked before.
func Pick() (int, error) {
	taken.Lock()
	defer taken.Unlock()
	if taken.ports == nil {
		taken.ports = make(map[int]bool)
	}
	for range 100 {
		port := low + rand.IntN(high-low)
		if taken.ports[port] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue // in use
		}
		_ = l.Close()
		taken.ports[port] = true
		return port, nil
	}
	return 0, errors.New("testport: no free port")
}
