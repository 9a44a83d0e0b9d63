package worldsvc

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
)

// This file is the Service's replicated mode (Deps.Log set). Three goroutines share the work:
// the loop goroutine gathers inputs into a batch and hands one entry per tick (or one as soon
// as an input that must not be lost arrives) to the proposer; the proposer encodes entries
// and proposes them to the log, in order; the committer waits for them, in the same order,
// and publishes what each committed entry produced. None of them touches a World: the log
// applies entries to the Machine.

// errLogBehind refuses an input when the log has fallen so far behind that the batch is full.
var errLogBehind = errors.New("worldsvc: the log is behind")

// refuse gives up on an input: an input that must not be lost is handed back to its consumer
// to be left on the stream (counted there, as retried); a lossy one is dropped for reason.
func (s *Service) refuse(in input, reason string, err error) {
	if in.done != nil {
		select {
		case in.done <- err:
		default:
		}
		return
	}
	s.m.dropped.WithLabelValues(opLabel(in.op), reason).Inc()
}

// queue adds an input to the batch of the current tick. An input that must not be lost is
// proposed at once (with the inputs before it), so that its consumer is not held a tick.
func (s *Service) queue(in input) {
	if len(s.batch) >= s.cfg.MaxPendingInputs {
		s.refuse(in, dropQueueFull, errLogBehind) // the log is not taking entries
		return
	}
	s.batch = append(s.batch, in)
	if in.done != nil || len(s.batch) >= s.cfg.MaxBatchInputs {
		s.flush(false)
	}
}

// flush hands the batch, with a step if step, to the proposer as one entry. If the proposer
// is behind, the batch is kept for the next try and this tick's step is skipped: the world's
// tick counts steps applied, so its moves are folded into the next tick's positions.
func (s *Service) flush(step bool) {
	if len(s.batch) == 0 && !step && !s.resume {
		return
	}
	p := &proposal{now: s.clock.Now(), resume: s.resume, step: step, inputs: s.batch}
	select {
	case s.props <- p:
		s.batch = nil
		s.resume = false
	default:
		s.m.deferred.Inc()
	}
}

// dropBatch gives up on the batch when this node stops leading.
func (s *Service) dropBatch() {
	for _, in := range s.batch {
		s.refuse(in, dropNotLeader, errNotLeader)
	}
	s.batch = nil
	s.resume = false
}

// proposeLoop proposes the loop's entries to the log, in order, until ctx is done.
func (s *Service) proposeLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-s.props:
			data, err := encodeEntry(p)
			if err != nil { // bodies are checked JSON: this does not happen
				s.log.Error("world: encode log entry", "err", err)
				s.fail(p, dropNotCommitted, err)
				continue
			}
			x := inflight{p: p, start: time.Now()}
			x.f = s.repl.Propose(data)
			select {
			case s.inflight <- x:
			case <-ctx.Done():
				return
			}
		}
	}
}

// commitLoop waits for the proposed entries, in order, and publishes what each committed one
// produced, until ctx is done.
func (s *Service) commitLoop(ctx context.Context) {
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case x := <-s.inflight:
			res, err := x.f.Wait(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.m.entries.WithLabelValues(entryFailed).Inc()
				if !failing {
					s.log.Warn("world: log entry not committed", "err", err)
					failing = true
				}
				s.fail(x.p, dropNotCommitted, err)
				continue
			}
			if failing {
				s.log.Info("world: log entries committed again")
				failing = false
			}
			s.m.entries.WithLabelValues(entryCommitted).Inc()
			s.m.commit.Observe(time.Since(x.start).Seconds())
			s.committed(x.p, res)
		}
	}
}

// fail gives up on every input of a proposal.
func (s *Service) fail(p *proposal, reason string, err error) {
	for _, in := range p.inputs {
		s.refuse(in, reason, err)
	}
}

// committed publishes what a committed entry produced: each input's events and reply, in
// order, then the step's events; and acks the inputs that waited for it.
func (s *Service) committed(p *proposal, res *Applied) {
	for i, in := range p.inputs {
		switch {
		case i >= len(res.Outputs): // not the entry proposed: cannot happen
		case res.Invalid != nil && res.Invalid[i]:
			// The leader checked the arguments; only a replica of another version refuses.
			s.m.invalid.WithLabelValues(in.op).Inc()
			if in.replyTo != "" {
				s.reply(in.replyTo, mesh.Reply{ID: in.id, Error: mesh.Errorf(mesh.CodeBadRequest, "%s: bad arguments", in.op)})
			}
		default:
			out := res.Outputs[i]
			if out.Ignored {
				s.m.ignored.WithLabelValues(in.op).Inc()
			}
			s.emit(out.Events)
			s.answer(in, out)
		}
		if in.done != nil {
			select {
			case in.done <- nil:
			default:
			}
		}
	}
	if p.step {
		for i := range res.Step {
			if res.Step[i].Event.Type == "positions" {
				s.m.positions.Inc()
			}
		}
		s.emit(res.Step)
	}
	s.m.online.Set(float64(res.Stats.Online))
}

// encodeEntry writes a proposal as an Entry.
func encodeEntry(p *proposal) ([]byte, error) {
	e := Entry{V: EntryVersion, Now: p.now.UnixNano(), Resume: p.resume, Step: p.step}
	if len(p.inputs) > 0 {
		e.Inputs = make([]EntryInput, len(p.inputs))
		for i, in := range p.inputs {
			e.Inputs[i] = EntryInput{Op: in.op, Args: in.body}
		}
	}
	return json.Marshal(&e)
}
