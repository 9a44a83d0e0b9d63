package gateway

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"sync"
	"time"
)

// bufListener wraps accepted connections in bufConns.
type bufListener struct{ net.Listener }

func (l bufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &bufConn{Conn: c}, nil
}

// bufConn is a connection whose socket writer never blocks for long: it writes with a short
// deadline and keeps what the kernel would not take yet (pending) for its next turn. Writes
// from others (fasthttp's HTTP answers before the upgrade; the websocket library's pongs and
// closes) go straight through, or after the pending bytes when there are any, so frames never
// interleave.
type bufConn struct {
	net.Conn
	mu       sync.Mutex
	pending  []byte
	deadline time.Time  // what others asked for with SetWriteDeadline
	kick     func()     // asks the socket's writer for a turn (set after the upgrade)
	kickMu   sync.Mutex // guards kick
}

func (c *bufConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *bufConn) SetDeadline(t time.Time) error {
	_ = c.SetWriteDeadline(t)
	return c.Conn.SetReadDeadline(t)
}

func (c *bufConn) setKick(f func()) {
	c.kickMu.Lock()
	c.kick = f
	c.kickMu.Unlock()
}

func (c *bufConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if len(c.pending) > 0 {
		c.pending = append(c.pending, p...)
		c.mu.Unlock()
		c.kickMu.Lock()
		kick := c.kick
		c.kickMu.Unlock()
		if kick != nil {
			kick()
		}
		return len(p), nil
	}
	defer c.mu.Unlock()
	_ = c.Conn.SetWriteDeadline(c.deadline)
	return c.Conn.Write(p)
}

// writeOut writes what is pending and then b, for at most wait. It reports blocked when the
// peer is not reading fast enough: what was not written stays pending for the next call.
func (c *bufConn) writeOut(b []byte, wait time.Duration) (blocked bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := b
	if len(c.pending) > 0 {
		c.pending = append(c.pending, b...)
		out = c.pending
	}
	if len(out) == 0 {
		return false, nil
	}
	_ = c.Conn.SetWriteDeadline(time.Now().Add(wait))
	n, err := c.Conn.Write(out)
	rest := out[n:]
	switch {
	case len(rest) == 0:
		c.pending = nil
	case len(c.pending) > 0:
		c.pending = c.pending[:copy(c.pending, rest)]
	default:
		c.pending = append([]byte(nil), rest...)
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		return true, nil
	}
	return false, err
}

// pendingBytes is how much is waiting for the peer.
func (c *bufConn) pendingBytes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// WebSocket frames as a server sends them (RFC 6455, section 5.2: final, unmasked).
const (
	opText  = 0x1
	opClose = 0x8
	opPing  = 0x9
)

// encodeFrame returns payload as one frame with opcode op.
func encodeFrame(op byte, payload []byte) []byte {
	n := len(payload)
	var hdr [10]byte
	hdr[0] = 0x80 | op
	h := 2
	switch {
	case n < 126:
		hdr[1] = byte(n)
	case n <= 0xffff:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(n))
		h = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(n))
		h = 10
	}
	out := make([]byte, h+n)
	copy(out, hdr[:h])
	copy(out[h:], payload)
	return out
}

// encodeText is payload as a text frame.
func encodeText(payload []byte) []byte { return encodeFrame(opText, payload) }

// encodeClose is a close frame with a status code and a reason (cut to fit a control frame).
func encodeClose(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
	}
	p := make([]byte, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	copy(p[2:], reason)
	return encodeFrame(opClose, p)
}

var pingFrame = encodeFrame(opPing, nil)

// framePayload is the payload of an encoded frame (for tests and diagnostics).
func framePayload(f []byte) []byte {
	if len(f) < 2 {
		return nil
	}
	switch n := f[1] & 0x7f; n {
	case 126:
		return f[4:]
	case 127:
		return f[10:]
	default:
		return f[2:]
	}
}
