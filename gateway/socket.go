package gateway

import (
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"golang.org/x/time/rate"
)

// WebSocket close codes the gateway uses beyond the standard ones.
const (
	// CloseAuthTimeout: no authenticate frame within the auth timeout.
	CloseAuthTimeout = 4000
	// CloseTokenRevoked: the socket's token was revoked (logout) or its participant banned.
	CloseTokenRevoked = 4001
	// CloseSlowConsumer: the socket could not keep up with its events; the client reconnects
	// and fills its gap from seq.
	CloseSlowConsumer = 4008
)

// socket is one WebSocket connection. The reader goroutine (the connection's handler) reads
// and handles frames in order; the writer goroutine drains the send queue, batching frames
// into one write when several are waiting.
type socket struct {
	id      string
	conn    *websocket.Conn
	cork    *corkConn // nil when the listener is not ours (tests)
	limiter *rate.Limiter
	addr    string
	m       *metrics

	// Set once authenticated; role may change (hub.mu guards it after registration).
	participantID string
	tokenID       string
	tokenExp      int64
	role          string

	// Guarded by hub.mu.
	rooms      map[string]struct{}
	registered bool
	active     bool
	held       [][]byte

	qmu      sync.Mutex
	queue    [][]byte
	qbytes   int
	maxQueue int
	wake     chan struct{}
	closing  bool
	closeMsg []byte
	done     chan struct{} // closed when the writer has stopped
}

func newSocket(id string, conn *websocket.Conn, cork *corkConn, maxQueue int, lim *rate.Limiter, addr string, m *metrics) *socket {
	return &socket{
		id: id, conn: conn, cork: cork, limiter: lim, addr: addr, m: m,
		rooms: map[string]struct{}{}, maxQueue: maxQueue,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
}

// maxQueueBytes bounds the bytes waiting for one socket, whatever the frame count.
const maxQueueBytes = 8 << 20

// send queues a frame. It never blocks: a socket whose queue is full is closed as a slow
// consumer (it resumes from seq when it reconnects), so it cannot slow the others.
func (s *socket) send(frame []byte) {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		return
	}
	if len(s.queue) >= s.maxQueue || s.qbytes+len(frame) > maxQueueBytes {
		s.qmu.Unlock()
		s.m.slowClosed.Inc()
		s.closeWith(CloseSlowConsumer, "too slow: reconnect and resume from seq")
		return
	}
	s.queue = append(s.queue, frame)
	s.qbytes += len(frame)
	s.qmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// closeWith makes the writer send a close frame with code and reason (after what is already
// queued is dropped) and close the connection.
func (s *socket) closeWith(code int, reason string) {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		return
	}
	s.closing = true
	s.closeMsg = websocket.FormatCloseMessage(code, reason)
	s.queue = nil
	s.qbytes = 0
	s.qmu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// writeLoop is the writer goroutine. It sends pings every pingEvery.
func (s *socket) writeLoop(pingEvery, writeWait time.Duration) {
	defer close(s.done)
	ping := time.NewTicker(pingEvery)
	defer ping.Stop()
	var batch [][]byte
	for {
		select {
		case <-s.wake:
		case <-ping.C:
			if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				s.conn.Close()
				return
			}
			continue
		}
		s.qmu.Lock()
		batch, s.queue = s.queue, batch[:0]
		s.qbytes = 0
		closing, closeMsg := s.closing, s.closeMsg
		s.qmu.Unlock()
		if closing {
			_ = s.conn.WriteControl(websocket.CloseMessage, closeMsg, time.Now().Add(writeWait))
			s.conn.Close()
			return
		}
		if len(batch) == 0 {
			continue
		}
		if err := s.writeBatch(batch, writeWait); err != nil {
			s.conn.Close()
			return
		}
		s.m.framesOut.Add(float64(len(batch)))
		for i := range batch {
			batch[i] = nil
		}
	}
}

func (s *socket) writeBatch(batch [][]byte, writeWait time.Duration) error {
	_ = s.conn.SetWriteDeadline(time.Now().Add(writeWait))
	if s.cork != nil && len(batch) > 1 {
		s.cork.cork()
		for _, f := range batch {
			if err := s.conn.WriteMessage(websocket.TextMessage, f); err != nil {
				_ = s.cork.uncork()
				return err
			}
		}
		return s.cork.uncork()
	}
	for _, f := range batch {
		if err := s.conn.WriteMessage(websocket.TextMessage, f); err != nil {
			return err
		}
	}
	return nil
}
