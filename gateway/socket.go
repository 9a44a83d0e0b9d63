package gateway

import (
	"runtime"
	"sync"
	"sync/atomic"
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

// Limits of one socket's writer.
const (
	// maxQueueBytes bounds the bytes queued for one socket, whatever the frame count.
	maxQueueBytes = 8 << 20
	// writeSlice is how long one write may wait for the peer before the writer moves on to
	// other sockets and comes back later.
	writeSlice = 20 * time.Millisecond
	// retryAfter is when a blocked socket gets its next turn.
	retryAfter = 25 * time.Millisecond
	// blockedLimit: a socket whose peer has not read for this long is closed as too slow.
	blockedLimit = 10 * time.Second
	// closeLimit bounds the wait to deliver a close frame to a peer that is not reading.
	closeLimit = 5 * time.Second
	// turnFrames: after writing this many batches in one turn, a busy socket goes to the back
	// of the line so the others get their turn.
	turnBatches = 4
)

// socket is one WebSocket connection. Its reader goroutine (the connection's handler) reads
// and handles frames in order. Writing is done by the gateway's few writer goroutines: a
// socket with frames queued waits for a turn, and then everything queued goes out in one
// write. Under load, frames pile up between turns, so writes get bigger and fewer instead of
// the machine drowning in one system call per frame.
type socket struct {
	id      string
	conn    *websocket.Conn
	bc      *bufConn
	writers *writers
	limiter *rate.Limiter
	addr    string
	m       *metrics

	// Set once authenticated; role may change (hub.mu guards it after registration).
	participantID string
	tokenID       string
	tokenGen      int
	tokenExp      int64
	role          string

	// Guarded by hub.mu.
	rooms      map[string]struct{}
	registered bool
	active     bool
	held       [][]byte

	qmu          sync.Mutex
	queue        [][]byte // encoded frames
	spare        [][]byte
	qbytes       int
	maxQueue     int
	state        turnState
	closing      bool
	closeFrame   []byte
	pingDue      bool
	blockedSince time.Time
	closingSince time.Time
	lastTurn     int64 // writers' clock (ms) at the end of the last turn

	doneOnce sync.Once
	done     chan struct{} // closed when the connection is closed for good
}

func newSocket(id string, conn *websocket.Conn, bc *bufConn, w *writers, maxQueue int, lim *rate.Limiter, addr string, m *metrics) *socket {
	s := &socket{
		id: id, conn: conn, bc: bc, writers: w, limiter: lim, addr: addr, m: m,
		rooms: map[string]struct{}{}, maxQueue: maxQueue, done: make(chan struct{}),
	}
	if bc != nil {
		bc.setKick(s.kick)
	}
	return s
}

// send queues an answer to the socket's own frame (ack, error, pong): it goes out at the next
// writer turn, without waiting for the write interval, so request and answer stay quick.
func (s *socket) send(payload []byte) { s.queueFrame(encodeText(payload), true) }

// sendEncoded queues an encoded event frame (the hub encodes a room's event once for all
// sockets). A socket written to less than a write interval ago waits for the next tick, so
// that what arrives meanwhile goes out in the same write. It never blocks: a socket whose
// queue is full is closed as a slow consumer (it resumes from seq when it reconnects), so it
// cannot slow the others.
func (s *socket) sendEncoded(frame []byte) { s.queueFrame(frame, false) }

func (s *socket) queueFrame(frame []byte, now bool) {
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
	s.scheduleLocked(now)
}

// turnState is where a socket stands with the writers.
type turnState uint8

const (
	idle    turnState = iota // nothing queued, or queued and not yet asked for a turn
	later                    // waiting in the writers' later list for the next tick
	ready                    // in the writers' line
	running                  // a writer is at it (or will retry it: blocked peer)
)

// scheduleLocked asks for a writer turn unless one is coming; it unlocks qmu. Urgent frames
// (answers to the socket's own frames) and sockets not written to for a write interval get
// the next turn; the others wait for the next tick, collecting frames.
func (s *socket) scheduleLocked(urgent bool) {
	w := s.writers
	if w == nil {
		s.qmu.Unlock()
		return
	}
	switch {
	case s.state == idle && !urgent && w.recent(s.lastTurn):
		s.state = later
		s.qmu.Unlock()
		w.addLater(s)
	case s.state == idle || (s.state == later && urgent):
		s.state = ready // if it was in the later list, the tick skips it
		s.qmu.Unlock()
		w.schedule(s)
	default:
		s.qmu.Unlock()
	}
}

// kick asks for a turn (bytes written by others wait behind pending ones).
func (s *socket) kick() {
	s.qmu.Lock()
	s.scheduleLocked(true)
}

// ping queues a ping.
func (s *socket) ping() {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		return
	}
	s.pingDue = true
	s.scheduleLocked(false)
}

// closeWith drops what is queued and has the writer send a close frame with code and reason,
// then close the connection.
func (s *socket) closeWith(code int, reason string) {
	s.qmu.Lock()
	if s.closing {
		s.qmu.Unlock()
		return
	}
	s.closing = true
	s.closeFrame = encodeClose(code, reason)
	s.queue, s.qbytes = nil, 0
	s.scheduleLocked(true)
}

// finish closes the connection for good.
func (s *socket) finish() {
	s.doneOnce.Do(func() {
		s.qmu.Lock()
		s.closing = true
		s.queue = nil
		s.qmu.Unlock()
		if s.conn != nil {
			_ = s.conn.Close()
		}
		close(s.done)
	})
}

// turn is a writer's turn at the socket: it writes everything queued, in one write per
// batch, until the queue is empty, the peer stops reading (the socket gets a later turn),
// or the socket has had its share (it goes to the back of the line).
func (s *socket) turn() {
	s.qmu.Lock()
	s.state = running
	s.qmu.Unlock()
	// While the peer has not taken the last write, the queue stays where it is: it fills,
	// and a peer that never catches up is closed as a slow consumer.
	if s.bc != nil && s.bc.pendingBytes() > 0 {
		blocked, err := s.bc.writeOut(nil, writeSlice)
		if err != nil {
			s.finish()
			return
		}
		if blocked {
			s.stillBlocked()
			return
		}
	}
	for i := 0; ; i++ {
		s.qmu.Lock()
		if i == turnBatches && (len(s.queue) > 0 || s.pingDue) {
			s.state = ready
			s.qmu.Unlock()
			s.writers.schedule(s)
			return
		}
		batch := s.queue
		s.queue, s.spare = s.spare[:0], nil
		s.qbytes = 0
		closing, closeFrame, ping := s.closing, s.closeFrame, s.pingDue
		s.pingDue = false
		s.qmu.Unlock()

		buf := getBuf()
		for _, f := range batch {
			*buf = append(*buf, f...)
		}
		if ping {
			*buf = append(*buf, pingFrame...)
		}
		if closing && closeFrame != nil {
			*buf = append(*buf, closeFrame...)
		}
		var blocked bool
		var err error
		if s.bc != nil {
			blocked, err = s.bc.writeOut(*buf, writeSlice)
		}
		putBuf(buf)
		if n := len(batch); n > 0 {
			s.m.framesOut.Add(float64(n))
			s.m.writes.Inc()
		}
		clear(batch)
		s.qmu.Lock()
		s.spare = batch[:0]
		if closing {
			s.closeFrame = nil // it is in the connection's pending bytes now
		}
		s.qmu.Unlock()

		switch {
		case err != nil:
			s.finish()
			return
		case closing && !blocked:
			s.finish()
			return
		case closing:
			s.stillBlocked()
			return
		case blocked:
			s.stillBlocked()
			return
		}
		s.blockedSince = time.Time{}

		s.qmu.Lock()
		if len(s.queue) == 0 && !s.pingDue && !s.closing {
			s.state = idle
			s.lastTurn = s.writers.clock()
			s.qmu.Unlock()
			return
		}
		s.qmu.Unlock()
	}
}

// stillBlocked handles a peer that did not take a write: closing sockets get closeLimit to
// take their close frame, others blockedLimit to catch up, then the connection is dropped.
func (s *socket) stillBlocked() {
	now := time.Now()
	s.qmu.Lock()
	closing := s.closing
	s.qmu.Unlock()
	if closing {
		if s.closingSince.IsZero() {
			s.closingSince = now
		} else if now.Sub(s.closingSince) > closeLimit {
			s.finish()
			return
		}
	} else if s.blockedSince.IsZero() {
		s.blockedSince = now
	} else if now.Sub(s.blockedSince) > blockedLimit {
		s.m.slowClosed.Inc()
		s.finish()
		return
	}
	s.retryLater()
}

// retryLater gives a blocked socket another turn soon; it stays running meanwhile, so no
// other turn is asked for.
func (s *socket) retryLater() {
	time.AfterFunc(retryAfter, func() {
		s.qmu.Lock()
		s.state = ready
		s.qmu.Unlock()
		s.writers.schedule(s)
	})
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

func getBuf() *[]byte { return bufs.Get().(*[]byte) }

func putBuf(b *[]byte) {
	if cap(*b) > 1<<20 {
		return
	}
	*b = (*b)[:0]
	bufs.Put(b)
}

// writers are the gateway's writer goroutines and the line of sockets waiting for a turn.
// With an interval, a socket gets at most one turn per interval: what arrives meanwhile
// waits for its next turn and goes out in the same write (fewer, larger writes under load,
// at most one interval of added latency; an idle socket's first frame goes at once).
type writers struct {
	mu       sync.Mutex
	cond     *sync.Cond
	ready    []*socket
	head     int
	later    []*socket
	stop     bool
	wg       sync.WaitGroup
	interval time.Duration
	now      atomic.Int64 // ms, advanced by the interval ticker
}

func newWriters(interval time.Duration) *writers {
	w := &writers{interval: interval}
	w.cond = sync.NewCond(&w.mu)
	w.now.Store(time.Now().UnixMilli())
	return w
}

// clock is the writers' coarse clock in ms.
func (w *writers) clock() int64 { return w.now.Load() }

// recent reports whether a turn that ended at lastTurn was less than an interval ago.
func (w *writers) recent(lastTurn int64) bool {
	return w.interval > 0 && w.clock()-lastTurn < w.interval.Milliseconds()
}

// addLater puts s in the list moved into the line at the next tick.
func (w *writers) addLater(s *socket) {
	w.mu.Lock()
	w.later = append(w.later, s)
	w.mu.Unlock()
}

// tick moves the sockets that waited for this interval into the line.
func (w *writers) tick(done <-chan struct{}) {
	if w.interval <= 0 {
		return
	}
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			w.now.Store(now.UnixMilli())
			w.mu.Lock()
			moving := w.later
			w.later = nil
			w.mu.Unlock()
			for _, s := range moving {
				s.qmu.Lock()
				due := s.state == later // not already moved by an urgent frame
				if due {
					s.state = ready
				}
				s.qmu.Unlock()
				if due {
					w.mu.Lock()
					w.ready = append(w.ready, s)
					w.mu.Unlock()
				}
			}
			w.cond.Broadcast()
		}
	}
}

// schedule puts s at the back of the line.
func (w *writers) schedule(s *socket) {
	w.mu.Lock()
	w.ready = append(w.ready, s)
	w.mu.Unlock()
	w.cond.Signal()
}

func (w *writers) next() *socket {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.head == len(w.ready) && !w.stop {
		w.cond.Wait()
	}
	if w.head == len(w.ready) {
		return nil
	}
	s := w.ready[w.head]
	w.ready[w.head] = nil
	w.head++
	if w.head == len(w.ready) {
		w.ready, w.head = w.ready[:0], 0
	} else if w.head > 1024 && w.head > len(w.ready)/2 {
		w.ready, w.head = append(w.ready[:0], w.ready[w.head:]...), 0
	}
	return s
}

// start runs n writer goroutines.
func (w *writers) start(n int) {
	for i := 0; i < n; i++ {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for s := w.next(); s != nil; s = w.next() {
				s.turn()
				// A writer with a long line would keep its processor for a whole time slice
				// (10 ms); yielding after each turn lets commands and reads run in between.
				runtime.Gosched()
			}
		}()
	}
}

// close stops the writers once the line is empty.
func (w *writers) close() {
	w.mu.Lock()
	w.stop = true
	w.mu.Unlock()
	w.cond.Broadcast()
	w.wg.Wait()
}
