package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Wire types: only the fields the tool reads (PROTOCOL.md).
type participant struct {
	ID          string `json:"id"`
	DisplayName string `json:"displayName"`
	Role        string `json:"role"`
}

type authResponse struct {
	Token       string      `json:"token"`
	Participant participant `json:"participant"`
}

type setupState struct {
	NeedsSetup bool   `json:"needsSetup"`
	MeshName   string `json:"meshName"`
}

type room struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	MemberCount int    `json:"memberCount"`
}

type storedMessage struct {
	ID          string  `json:"id"`
	RoomID      string  `json:"roomId"`
	Seq         int64   `json:"seq"`
	ClientMsgID *string `json:"clientMsgId"`
	Deleted     bool    `json:"deleted"`
}

type messagePage struct {
	Items      []storedMessage `json:"items"`
	NextCursor *string         `json:"nextCursor"`
}

// apiError is a REST error answer of the contract.
type apiError struct {
	Method, Path string
	Status       int
	Code         string
	Message      string
	RetryAfter   time.Duration
}

func (e *apiError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.Path, e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("%s %s: status %d", e.Method, e.Path, e.Status)
}

// isAPIStatus reports whether err is an API answer with the given status.
func isAPIStatus(err error, status int) bool {
	var ae *apiError
	return errors.As(err, &ae) && ae.Status == status
}

// apiClient calls the REST routes. Every call is retried on network errors and 5xx
// answers (a few times, with backoff) and on 429 (honouring Retry-After, until ctx ends);
// POSTs carry an Idempotency-Key so that a retry is safe.
type apiClient struct {
	base        *url.URL
	http        *http.Client
	maxAttempts int
	logf        func(format string, args ...any)

	// warnf, when set, hears once about the first 429 (a slow set-up should say why).
	warnf    func(format string, args ...any)
	warnOnce sync.Once

	rateLimited atomic.Int64 // 429 answers seen
	retried     atomic.Int64 // retries after network errors or 5xx
}

func newAPIClient(base *url.URL, concurrency int, logf func(string, ...any)) *apiClient {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = concurrency * 2
	tr.MaxIdleConnsPerHost = concurrency * 2
	tr.Proxy = nil // loopback: never through a proxy
	return &apiClient{
		base:        base,
		http:        &http.Client{Transport: tr, Timeout: 60 * time.Second},
		maxAttempts: 5,
		logf:        logf,
	}
}

func (a *apiClient) url(path string, q url.Values) string {
	u := *a.base
	u.Path = a.base.Path + path
	u.RawQuery = q.Encode()
	return u.String()
}

// do sends a request and decodes a 2xx answer into out (when out is not nil).
func (a *apiClient) do(ctx context.Context, method, path string, q url.Values, token string, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s %s: encode: %w", method, path, err)
		}
	}
	idemKey := ""
	if method != http.MethodGet {
		idemKey = newID()
	}
	failures := 0
	for {
		err := a.once(ctx, method, path, q, token, payload, idemKey, out)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		var wait time.Duration
		var ae *apiError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusTooManyRequests:
			a.rateLimited.Add(1)
			if a.warnf != nil {
				a.warnOnce.Do(func() {
					a.warnf("%s %s: rate limited (429), waiting as Retry-After says (%s); a benchmark server "+
						"can relax this (meshd: MESH_REGISTRATIONS_PER_MINUTE, MESH_REST_RATE, MESH_REST_BURST)", method, path, ae.RetryAfter)
				})
			}
			wait = ae.RetryAfter
			if wait <= 0 {
				wait = time.Second
			}
			if wait > time.Minute {
				wait = time.Minute
			}
		case errors.As(err, &ae) && ae.Status < 500, errors.As(err, &ae) && ae.Status == http.StatusNotImplemented:
			return err
		default: // network error or 5xx
			failures++
			if failures >= a.maxAttempts {
				return err
			}
			a.retried.Add(1)
			wait = time.Duration(100<<failures) * time.Millisecond
			if a.logf != nil {
				a.logf("retrying %s %s in %s: %v", method, path, wait, err)
			}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

func (a *apiClient) once(ctx context.Context, method, path string, q url.Values, token string, payload []byte, idemKey string, out any) error {
	var rd io.Reader
	if payload != nil {
		rd = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url(path, q), rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &apiError{Method: method, Path: path, Status: resp.StatusCode,
			RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(data, &eb) == nil {
			ae.Code, ae.Message = eb.Error.Code, eb.Error.Message
		}
		return ae
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s < 0 || s > 86400 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := t.Sub(now); d > 0 {
			return d
		}
	}
	return 0
}

func (a *apiClient) GetSetup(ctx context.Context) (setupState, error) {
	var s setupState
	err := a.do(ctx, http.MethodGet, "/api/setup", nil, "", nil, &s)
	return s, err
}

func (a *apiClient) Setup(ctx context.Context, meshName, email, password, displayName string) (authResponse, error) {
	var r authResponse
	err := a.do(ctx, http.MethodPost, "/api/setup", nil, "", map[string]string{
		"meshName": meshName, "email": email, "password": password, "displayName": displayName,
	}, &r)
	return r, err
}

func (a *apiClient) Register(ctx context.Context, email, password, displayName string) (authResponse, error) {
	var r authResponse
	err := a.do(ctx, http.MethodPost, "/api/auth/register", nil, "", map[string]string{
		"email": email, "password": password, "displayName": displayName,
	}, &r)
	return r, err
}

func (a *apiClient) Login(ctx context.Context, email, password string) (authResponse, error) {
	var r authResponse
	err := a.do(ctx, http.MethodPost, "/api/auth/login", nil, "", map[string]string{
		"email": email, "password": password,
	}, &r)
	return r, err
}

func (a *apiClient) CreateRoom(ctx context.Context, token, name, topic string) (room, error) {
	var r room
	err := a.do(ctx, http.MethodPost, "/api/rooms", nil, token, map[string]any{
		"name": name, "topic": topic, "private": false,
	}, &r)
	return r, err
}

func (a *apiClient) JoinRoom(ctx context.Context, token, roomID string) error {
	return a.do(ctx, http.MethodPost, "/api/rooms/"+url.PathEscape(roomID)+"/join", nil, token, nil, nil)
}

func (a *apiClient) DeleteRoom(ctx context.Context, token, roomID string) error {
	return a.do(ctx, http.MethodDelete, "/api/rooms/"+url.PathEscape(roomID), nil, token, nil, nil)
}

// Messages reads up to limit messages of a room with a seq above after, in seq order.
// From the start (after 0) it asks for the messages before limit+1 instead: the same set,
// and it does not depend on how a server reads an explicit after=0 (some treat it as
// absent, which means "the latest page").
func (a *apiClient) Messages(ctx context.Context, token, roomID string, after int64, limit int) (messagePage, error) {
	var p messagePage
	q := url.Values{"after": {strconv.FormatInt(after, 10)}, "limit": {strconv.Itoa(limit)}}
	if after <= 0 {
		q = url.Values{"before": {strconv.Itoa(limit + 1)}, "limit": {strconv.Itoa(limit)}}
	}
	err := a.do(ctx, http.MethodGet, "/api/rooms/"+url.PathEscape(roomID)+"/messages", q, token, nil, &p)
	return p, err
}

// newID is a random 128-bit hex string.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on Linux (and panics rather than return an error)
	return hex.EncodeToString(b[:])
}
