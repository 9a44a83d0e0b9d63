package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fasthttp/websocket"
)

const (
	writeTimeout   = 5 * time.Second
	initialBufSize = 512
	keepBufSize    = 4 << 10   // a reader keeps its buffer up to this size between frames
	maxFrameRead   = 256 << 20 // snapshots of big meshes are large; anything bigger is broken
)

// hub is the state every socket's reader shares: the run's identity and the measurement
// in progress (nil between measurements).
type hub struct {
	run []byte
	cur atomic.Pointer[measurement]

	disconnects atomic.Int64 // sockets that closed without the tool closing them
	lateAcks    atomic.Int64 // acks or errors for sends of a finished measurement
	unrefErrors atomic.Int64 // error frames without a ref (bad frame, and so on)

	discMu      sync.Mutex
	discSamples []string
}

func (h *hub) noteDisconnect(s *sock, err error) {
	h.disconnects.Add(1)
	h.discMu.Lock()
	if len(h.discSamples) < 5 {
		h.discSamples = append(h.discSamples, fmt.Sprintf("socket %d: %v", s.idx, err))
	}
	h.discMu.Unlock()
}

// pendingSend is a send_message waiting for its ack.
type pendingSend struct {
	epoch uint32
	sent  int64 // unix nanos
}

// sock is one WebSocket of one user in one room. Its reader goroutine alone reads the
// connection and updates the reader-owned fields; writes are serialised by wmu.
type sock struct {
	idx  int
	user *benchUser
	room *benchRoom
	ws   *websocket.Conn

	wmu     sync.Mutex
	closing atomic.Bool
	done    chan struct{} // closed when the reader returns

	// Reader-owned.
	buf     []byte
	lastSeq int64

	// Written by the reader, read by reports.
	frames    atomic.Uint64
	messages  atomic.Uint64 // message events of this socket's room from this run
	foreign   atomic.Uint64 // message events that are not this run's (or not this room's)
	stale     atomic.Uint64 // this run's messages outside their measurement (late)
	order     atomic.Uint64 // seq regressions or repeats
	seqGaps   atomic.Uint64 // seqs skipped
	parseErrs atomic.Uint64

	// Sending state (sender sockets only).
	nextRef uint64 // owned by the sender goroutine of the current measurement
	pmu     sync.Mutex
	pending map[uint64]pendingSend
}

// write sends one text frame.
func (s *sock) write(b []byte) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.ws.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	return s.ws.WriteMessage(websocket.TextMessage, b)
}

// close closes the socket, politely if the close frame can be written by deadline; the
// reader then returns.
func (s *sock) close(deadline time.Time) {
	if s.closing.Swap(true) {
		return
	}
	if time.Now().Before(deadline) {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "meshbench done")
		_ = s.ws.WriteControl(websocket.CloseMessage, msg, deadline)
	}
	_ = s.ws.Close()
}

// readFrame reads the next data frame into s.buf and returns it.
func (s *sock) readFrame() ([]byte, error) {
	_, r, err := s.ws.NextReader()
	if err != nil {
		return nil, err
	}
	if s.buf == nil {
		s.buf = make([]byte, 0, initialBufSize)
	}
	b := s.buf[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			s.buf = b
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// shrinkBuf drops a buffer grown by a big frame (such as a snapshot) so that thousands of
// idle sockets do not each hold one.
func (s *sock) shrinkBuf() {
	if cap(s.buf) > keepBufSize {
		s.buf = nil
	}
}

// readLoop is the socket's reader goroutine: it parses each frame minimally and accounts
// for it. It returns when the connection fails or is closed.
func (s *sock) readLoop(h *hub) {
	defer close(s.done)
	var f frame
	for {
		b, err := s.readFrame()
		if err != nil {
			if !s.closing.Load() {
				h.noteDisconnect(s, err)
			}
			return
		}
		s.frames.Add(1)
		if err := parseFrame(b, &f); err != nil {
			s.parseErrs.Add(1)
			s.shrinkBuf()
			continue
		}
		switch f.Type {
		case ftMessage:
			s.onMessage(h, &f)
		case ftAck, ftError:
			s.onReply(h, &f)
		}
		s.shrinkBuf()
	}
}

func (s *sock) onMessage(h *hub, f *frame) {
	now := time.Now().UnixNano()
	m := &f.Msg
	if !f.HasMsg || string(m.RoomID) != s.room.ID || m.ContentEscaped {
		s.foreign.Add(1)
		return
	}
	if m.HasSeq {
		switch last := s.lastSeq; {
		case last == 0:
		case m.Seq <= last:
			s.order.Add(1)
		case m.Seq > last+1:
			s.seqGaps.Add(uint64(m.Seq - last - 1))
		}
		if m.Seq > s.lastSeq {
			s.lastSeq = m.Seq
		}
	}
	epoch, sent, ok := parseContent(m.Content, h.run)
	if !ok {
		s.foreign.Add(1)
		return
	}
	s.messages.Add(1)
	cur := h.cur.Load()
	if cur == nil || cur.epoch != epoch {
		s.stale.Add(1)
		return
	}
	cur.delivered(s, time.Duration(now-sent))
}

// onReply handles an ack or an error frame.
func (s *sock) onReply(h *hub, f *frame) {
	if len(f.Ref) == 0 {
		if f.Type == ftError {
			h.unrefErrors.Add(1)
		}
		return
	}
	ref, ok := atoi64(f.Ref)
	if !ok || ref < 0 {
		return // not one of ours (ours are decimal numbers)
	}
	s.pmu.Lock()
	p, found := s.pending[uint64(ref)]
	if found {
		delete(s.pending, uint64(ref))
	}
	s.pmu.Unlock()
	if !found {
		return
	}
	cur := h.cur.Load()
	if cur == nil || cur.epoch != p.epoch {
		h.lateAcks.Add(1)
		return
	}
	if f.Type == ftAck {
		seq, hasSeq := f.Seq, f.HasSeq
		if !hasSeq && f.HasMsg && f.Msg.HasSeq {
			seq, hasSeq = f.Msg.Seq, true
		}
		cur.acked(s, uint64(ref), seq, hasSeq, time.Duration(time.Now().UnixNano()-p.sent))
		return
	}
	cur.failed(string(f.Code))
}

// addPending registers a send before it is written.
func (s *sock) addPending(ref uint64, p pendingSend) {
	s.pmu.Lock()
	if s.pending == nil {
		s.pending = make(map[uint64]pendingSend)
	}
	s.pending[ref] = p
	s.pmu.Unlock()
}

func (s *sock) dropPending(ref uint64) {
	s.pmu.Lock()
	delete(s.pending, ref)
	s.pmu.Unlock()
}

// pendingFor counts the sends of epoch still waiting for an answer.
func (s *sock) pendingFor(epoch uint32) int {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	n := 0
	for _, p := range s.pending {
		if p.epoch == epoch {
			n++
		}
	}
	return n
}

// clientMsgID is the clientMsgId of send ref of socket s in run.
func clientMsgID(run []byte, sockIdx int, ref uint64) string {
	return "mb-" + string(run) + "-" + strconv.Itoa(sockIdx) + "-" + strconv.FormatUint(ref, 10)
}

// dialFailure classes.
const (
	failDial     = "dial"      // TCP connect failed
	failUpgrade  = "upgrade"   // the HTTP upgrade was refused
	failAuth     = "auth"      // an error frame instead of auth_ok
	failTimeout  = "timeout"   // no auth_ok+snapshot in time
	failClosed   = "closed"    // the server closed during authentication
	failProtocol = "protocol"  // unparseable frames
	failFDs      = "no_fds"    // the tool ran out of file descriptors
	failPorts    = "no_ports"  // the tool ran out of local ports
	failCanceled = "cancelled" // the run ended first
)

type dialError struct {
	class string
	err   error
}

func (e *dialError) Error() string { return e.class + ": " + e.err.Error() }
func (e *dialError) Unwrap() error { return e.err }

// dialer opens authenticated sockets.
type dialer struct {
	d           websocket.Dialer
	urls        []string // socket idx dials urls[idx % len]
	authTimeout time.Duration
}

func newDialer(wsURLs []string, authTimeout time.Duration) *dialer {
	nd := &net.Dialer{Timeout: authTimeout, KeepAlive: 30 * time.Second}
	return &dialer{
		d: websocket.Dialer{
			NetDialContext:   nd.DialContext,
			HandshakeTimeout: authTimeout,
			ReadBufferSize:   2048,
			WriteBufferSize:  1024,
			WriteBufferPool:  &sync.Pool{},
		},
		urls:        wsURLs,
		authTimeout: authTimeout,
	}
}

// open dials, authenticates with token, and waits for auth_ok and snapshot. The returned
// socket has no reader yet.
func (d *dialer) open(ctx context.Context, idx int, u *benchUser, r *benchRoom) (*sock, error) {
	ctx, cancel := context.WithTimeout(ctx, d.authTimeout)
	defer cancel()
	ws, resp, err := d.d.DialContext(ctx, d.urls[idx%len(d.urls)], nil)
	if err != nil {
		return nil, classifyDialErr(ctx, resp, err)
	}
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	s := &sock{idx: idx, user: u, room: r, ws: ws, done: make(chan struct{})}
	ws.SetReadLimit(maxFrameRead)
	fail := func(class string, err error) (*sock, error) {
		_ = ws.Close()
		return nil, &dialError{class, err}
	}
	// Bound the whole handshake by ctx: the deadline, or a close when ctx ends early.
	deadline, _ := ctx.Deadline()
	_ = ws.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = ws.SetReadDeadline(time.Now()) })
	defer stop()

	tok, err := json.Marshal(u.Token)
	if err != nil {
		return fail(failProtocol, err)
	}
	authFrame := append(append([]byte(`{"type":"authenticate","token":`), tok...), '}')
	if err := s.write(authFrame); err != nil {
		return fail(failClosed, fmt.Errorf("send authenticate: %w", err))
	}
	gotAuth := false
	var f frame
	for {
		b, err := s.readFrame()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
					return fail(failCanceled, ctx.Err())
				}
				what := "auth_ok"
				if gotAuth {
					what = "snapshot"
				}
				return fail(failTimeout, fmt.Errorf("no %s within %s", what, d.authTimeout))
			}
			return fail(failClosed, err)
		}
		if err := parseFrame(b, &f); err != nil {
			return fail(failProtocol, fmt.Errorf("%w: %.120q", err, b))
		}
		switch f.Type {
		case ftError:
			return fail(failAuth, fmt.Errorf("error %s: %s", f.Code, f.ErrMsg))
		case ftAuthOK:
			gotAuth = true
		case ftSnapshot:
			if gotAuth {
				if !stop() {
					return fail(failCanceled, context.Cause(ctx))
				}
				if err := ws.SetReadDeadline(time.Time{}); err != nil {
					return fail(failClosed, err)
				}
				s.buf = nil // the snapshot's buffer: idle sockets should not keep it
				return s, nil
			}
		}
	}
}

func classifyDialErr(ctx context.Context, resp *http.Response, err error) error {
	if resp != nil {
		body := ""
		if resp.Body != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			_ = resp.Body.Close()
			body = strings.TrimSpace(string(b))
		}
		return &dialError{failUpgrade, fmt.Errorf("HTTP %d %s", resp.StatusCode, body)}
	}
	switch {
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return &dialError{failFDs, err}
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return &dialError{failPorts, err}
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return &dialError{failCanceled, err}
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return &dialError{failTimeout, err}
	}
	return &dialError{failDial, err}
}
