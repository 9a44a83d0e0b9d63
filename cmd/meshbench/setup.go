package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

type benchUser struct {
	Index int
	Email string
	ID    string
	Token string
	Room  int // index of the one bench room the user is a member of
}

type benchRoom struct {
	Index  int
	ID     string
	Name   string
	idJSON []byte // the id as a JSON string, quotes included, for building frames
}

// setupResult is the mesh as the run found and prepared it.
type setupResult struct {
	OwnerToken string
	Owner      participant
	Users      []benchUser
	Rooms      []benchRoom
	report     setupReport
}

type setupReport struct {
	OwnerCreated      bool    `json:"ownerCreated"`
	UsersRegistered   int64   `json:"usersRegistered"`
	UsersLoggedIn     int64   `json:"usersLoggedIn"`
	RoomsCreated      int     `json:"roomsCreated"`
	Joins             int64   `json:"joins"`
	RateLimited       int64   `json:"rateLimited429"`
	Retries           int64   `json:"retries"`
	Seconds           float64 `json:"seconds"`
	RegisterPerSecond float64 `json:"registerPerSecond"`
}

// forEach runs fn(i) for i in [0, n) on at most concurrency goroutines. It stops handing
// out work at the first error or when ctx ends, and returns the first error.
func forEach(ctx context.Context, n, concurrency int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if concurrency > n {
		concurrency = n
	}
	var (
		next     atomic.Int64
		errOnce  sync.Once
		firstErr error
		wg       sync.WaitGroup
	)
	for w := 0; w < concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := fn(ctx, i); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// progress logs "what: done/total" at most every few seconds.
type progress struct {
	what  string
	total int64
	done  atomic.Int64
	last  atomic.Int64 // unix nanos of the last line
	logf  func(string, ...any)
}

func newProgress(what string, total int, logf func(string, ...any)) *progress {
	p := &progress{what: what, total: int64(total), logf: logf}
	p.last.Store(time.Now().UnixNano())
	return p
}

func (p *progress) Add(n int64) {
	d := p.done.Add(n)
	now := time.Now().UnixNano()
	last := p.last.Load()
	if (now-last > int64(5*time.Second) || d == p.total) && p.last.CompareAndSwap(last, now) {
		p.logf("%s: %d/%d", p.what, d, p.total)
	}
}

// runSetup prepares the owner, the users and the rooms of a run.
func runSetup(ctx context.Context, cfg *config, api *apiClient, runID string, logf func(string, ...any)) (*setupResult, error) {
	start := time.Now()
	res := &setupResult{}
	rep := &res.report

	st, err := api.GetSetup(ctx)
	if err != nil {
		return nil, fmt.Errorf("setup state: %w", err)
	}
	var owner authResponse
	if st.NeedsSetup {
		owner, err = api.Setup(ctx, "meshbench", cfg.OwnerEmail, cfg.OwnerPassword, "Bench Owner")
		switch {
		case err == nil:
			rep.OwnerCreated = true
			logf("mesh set up with owner %s", cfg.OwnerEmail)
		case isAPIStatus(err, http.StatusConflict): // set up meanwhile: log in below
		default:
			return nil, fmt.Errorf("set up the mesh: %w", err)
		}
	}
	if !rep.OwnerCreated {
		owner, err = api.Login(ctx, cfg.OwnerEmail, cfg.OwnerPassword)
		if err != nil {
			return nil, fmt.Errorf("log in as owner %s (set -owner-email and -owner-password): %w", cfg.OwnerEmail, err)
		}
	}
	if owner.Token == "" {
		return nil, errors.New("owner: the server answered no token")
	}
	res.OwnerToken, res.Owner = owner.Token, owner.Participant

	// Users: register, or log in when the email is taken (a previous run's user).
	res.Users = make([]benchUser, cfg.Users)
	prog := newProgress("users ready", cfg.Users, logf)
	regStart := time.Now()
	err = forEach(ctx, cfg.Users, cfg.SetupConcurrency, func(ctx context.Context, i int) error {
		u := benchUser{Index: i, Email: cfg.userEmail(i), Room: i % cfg.Rooms}
		ar, err := api.Register(ctx, u.Email, cfg.UserPassword, fmt.Sprintf("Bench User %05d", i+1))
		switch {
		case err == nil:
			atomic.AddInt64(&rep.UsersRegistered, 1)
		case isAPIStatus(err, http.StatusConflict):
			ar, err = api.Login(ctx, u.Email, cfg.UserPassword)
			if err != nil {
				return fmt.Errorf("user %s exists; log in: %w", u.Email, err)
			}
			atomic.AddInt64(&rep.UsersLoggedIn, 1)
		case isAPIStatus(err, http.StatusForbidden):
			return fmt.Errorf("register %s: %w (is registration closed?)", u.Email, err)
		default:
			return fmt.Errorf("register %s: %w", u.Email, err)
		}
		if ar.Token == "" {
			return fmt.Errorf("user %s: the server answered no token", u.Email)
		}
		u.ID, u.Token = ar.Participant.ID, ar.Token
		res.Users[i] = u
		prog.Add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if d := time.Since(regStart).Seconds(); d > 0 {
		rep.RegisterPerSecond = round2(float64(cfg.Users) / d)
	}

	// Rooms: fresh ones each run, created by the owner.
	res.Rooms = make([]benchRoom, cfg.Rooms)
	err = forEach(ctx, cfg.Rooms, cfg.SetupConcurrency, func(ctx context.Context, i int) error {
		name := fmt.Sprintf("bench-%s-%03d", runID, i+1)
		r, err := api.CreateRoom(ctx, res.OwnerToken, name, "meshbench load test")
		if err != nil {
			return fmt.Errorf("create room %s: %w", name, err)
		}
		if r.ID == "" {
			return fmt.Errorf("create room %s: the server answered no id", name)
		}
		idJSON, err := json.Marshal(r.ID)
		if err != nil {
			return fmt.Errorf("room id %q: %w", r.ID, err)
		}
		res.Rooms[i] = benchRoom{Index: i, ID: r.ID, Name: name, idJSON: idJSON}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.RoomsCreated = cfg.Rooms
	logf("created %d rooms", cfg.Rooms)

	// Joins: each user joins its one room.
	prog = newProgress("users joined", cfg.Users, logf)
	err = forEach(ctx, cfg.Users, cfg.SetupConcurrency, func(ctx context.Context, i int) error {
		u := &res.Users[i]
		if u.ID != "" && u.ID == res.Owner.ID {
			return fmt.Errorf("user %s is the owner account: use another -user-prefix", u.Email)
		}
		err := api.JoinRoom(ctx, u.Token, res.Rooms[u.Room].ID)
		if err != nil && !isAPIStatus(err, http.StatusConflict) {
			return fmt.Errorf("%s joins %s: %w", u.Email, res.Rooms[u.Room].Name, err)
		}
		atomic.AddInt64(&rep.Joins, 1)
		prog.Add(1)
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep.RateLimited = api.rateLimited.Load()
	rep.Retries = api.retried.Load()
	rep.Seconds = round2(time.Since(start).Seconds())
	return res, nil
}

// cleanupRooms deletes the run's rooms; failures are only reported.
func cleanupRooms(ctx context.Context, api *apiClient, s *setupResult, logf func(string, ...any)) {
	var failed atomic.Int64
	_ = forEach(ctx, len(s.Rooms), 4, func(ctx context.Context, i int) error {
		if s.Rooms[i].ID == "" {
			return nil
		}
		if err := api.DeleteRoom(ctx, s.OwnerToken, s.Rooms[i].ID); err != nil {
			if failed.Add(1) == 1 {
				logf("cleanup: %v", err)
			}
		}
		return nil
	})
	if n := failed.Load(); n > 0 {
		logf("cleanup: %d of %d rooms not deleted", n, len(s.Rooms))
	}
}

func round2(v float64) float64 { return math.Round(v*100) / 100 }
