package storetest

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/themesh/mesh/pkg/mesh"
	"github.com/themesh/mesh/pkg/store"
)

var auditTests = []test{
	{name: "AppendAndList", fn: auditAppendAndList},
	{name: "Filters", fn: auditFilters},
	{name: "BeforePaging", fn: auditBeforePaging},
	{name: "Limit", fn: auditLimit},
	{name: "EmptyAppend", fn: auditEmptyAppend},
}

// auditBase is the time of the first fixture entry; the others follow it.
var auditBase = time.Date(2026, 3, 4, 5, 6, 7, 8e6, time.UTC)

// auditFixture is five complete entries, in ID (and time) order. Their times are given in a
// zone other than UTC, at millisecond precision; they must read back in UTC. The second is
// anonymous (no actor, no target), so empty fields round-trip too.
func auditFixture() []store.AuditEntry {
	zone := time.FixedZone("UTC+2", 2*60*60)
	at := func(d time.Duration) time.Time { return auditBase.Add(d).In(zone) }
	return []store.AuditEntry{
		{ID: newID("a"), At: at(0), ActorID: "p1", OnBehalfOf: "p1", Action: "messages.send",
			Target: "r1", Result: "ok", Addr: "10.0.0.1:5001"},
		{ID: newID("a"), At: at(time.Second + 123*time.Millisecond), ActorID: "", OnBehalfOf: "",
			Action: "auth.login", Target: "", Result: string(mesh.CodeInvalidCredentials), Addr: "10.0.0.2:5002"},
		{ID: newID("a"), At: at(2 * time.Second), ActorID: "bot1", OnBehalfOf: "p1", Action: "messages.send",
			Target: "r2", Result: "ok", Addr: "10.0.0.3:5003"},
		{ID: newID("a"), At: at(3 * time.Second), ActorID: "p2", OnBehalfOf: "p2", Action: "rooms.create",
			Target: "r1", Result: string(mesh.CodeForbidden), Addr: "[::1]:5004"},
		{ID: newID("a"), At: at(4*time.Second + 999*time.Millisecond), ActorID: "p1", OnBehalfOf: "p1",
			Action: "roles.delete", Target: "helper", Result: "ok", Addr: "10.0.0.1:5005"},
	}
}

// appendFixture appends the fixture in two calls (two, then three) and returns it.
func appendFixture(t *testing.T, s store.Store) []store.AuditEntry {
	t.Helper()
	es := auditFixture()
	for _, batch := range [][]store.AuditEntry{es[:2], es[2:]} {
		if err := s.AppendAudit(t.Context(), batch); err != nil {
			t.Fatalf("AppendAudit(%d entries): %v", len(batch), err)
		}
	}
	return es
}

func listAudit(t *testing.T, s store.Store, q store.AuditQuery) []store.AuditEntry {
	t.Helper()
	es, err := s.ListAudit(t.Context(), q)
	if err != nil {
		t.Fatalf("ListAudit(%+v): %v", q, err)
	}
	return es
}

func auditIDs(es []store.AuditEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

// pick is the IDs of es at the given indexes, in that order.
func pick(es []store.AuditEntry, idx ...int) []string {
	out := make([]string, len(idx))
	for i, j := range idx {
		out[i] = es[j].ID
	}
	return out
}

// checkAudit compares every field; At must be the same instant, in UTC.
func checkAudit(t *testing.T, what string, got, want store.AuditEntry) {
	t.Helper()
	if !got.At.Equal(want.At) || got.At.Location() != time.UTC {
		t.Errorf("%s: At = %v, want %v in UTC", what, got.At, want.At.UTC())
	}
	got.At, want.At = time.Time{}, time.Time{}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func auditAppendAndList(t *testing.T, s store.Store) {
	if got := listAudit(t, s, store.AuditQuery{}); len(got) != 0 {
		t.Errorf("ListAudit (none) = %v, want none", auditIDs(got))
	}
	es := appendFixture(t, s)
	got := listAudit(t, s, store.AuditQuery{})
	wantEqual(t, "ListAudit IDs (newest first)", auditIDs(got), pick(es, 4, 3, 2, 1, 0))
	if len(got) != len(es) {
		t.FailNow()
	}
	for i, g := range got {
		want := es[len(es)-1-i]
		checkAudit(t, "ListAudit "+want.ID, g, want)
	}
}

func auditFilters(t *testing.T, s store.Store) {
	es := appendFixture(t, s)
	at := func(i int) time.Time { return es[i].At }
	for _, c := range []struct {
		name string
		q    store.AuditQuery
		want []int
	}{
		{"ActorID", store.AuditQuery{ActorID: "p1"}, []int{4, 0}},
		{"ActorID (other)", store.AuditQuery{ActorID: "bot1"}, []int{2}},
		{"ActorID (unknown)", store.AuditQuery{ActorID: "nobody"}, []int{}},
		{"Action", store.AuditQuery{Action: "messages.send"}, []int{2, 0}},
		{"Target", store.AuditQuery{Target: "r1"}, []int{3, 0}},
		{"Result", store.AuditQuery{Result: "ok"}, []int{4, 2, 0}},
		{"Result (error code)", store.AuditQuery{Result: string(mesh.CodeForbidden)}, []int{3}},
		{"Since (inclusive)", store.AuditQuery{Since: at(2)}, []int{4, 3, 2}},
		{"Since (between entries)", store.AuditQuery{Since: at(1).Add(time.Millisecond)}, []int{4, 3, 2}},
		{"Until (exclusive)", store.AuditQuery{Until: at(2)}, []int{1, 0}},
		{"Until (just after)", store.AuditQuery{Until: at(2).Add(time.Millisecond)}, []int{2, 1, 0}},
		{"Since and Until", store.AuditQuery{Since: at(1), Until: at(4)}, []int{3, 2, 1}},
		{"ActorID and Action", store.AuditQuery{ActorID: "p1", Action: "messages.send"}, []int{0}},
		{"Target and Result", store.AuditQuery{Target: "r1", Result: "ok"}, []int{0}},
		{"Action and Since", store.AuditQuery{Action: "messages.send", Since: at(1)}, []int{2}},
		{"Before", store.AuditQuery{Before: es[3].ID}, []int{2, 1, 0}},
		{"Before and ActorID", store.AuditQuery{ActorID: "p1", Before: es[4].ID}, []int{0}},
	} {
		got := listAudit(t, s, c.q)
		wantEqual(t, "ListAudit IDs, "+c.name, auditIDs(got), pick(es, c.want...))
		for _, g := range got {
			for _, e := range es {
				if e.ID == g.ID {
					checkAudit(t, "ListAudit, "+c.name+", "+g.ID, g, e)
				}
			}
		}
	}
}

// auditBeforePaging walks the log by pages of 2, the cursor being the last ID of the previous
// page: every entry comes exactly once, newest first, and the page after the last is empty.
func auditBeforePaging(t *testing.T, s store.Store) {
	es := appendFixture(t, s)
	for _, c := range []struct {
		name string
		q    store.AuditQuery
		want []string
	}{
		{"all", store.AuditQuery{}, pick(es, 4, 3, 2, 1, 0)},
		{"Result ok", store.AuditQuery{Result: "ok"}, pick(es, 4, 2, 0)},
	} {
		var seen []string
		q := c.q
		q.Limit = 2
		for page := 0; ; page++ {
			if page > len(es) {
				t.Fatalf("%s: paging does not end", c.name)
			}
			got := listAudit(t, s, q)
			if len(got) > 2 {
				t.Fatalf("%s: page %d has %d entries, want at most 2", c.name, page, len(got))
			}
			if len(got) == 0 {
				break
			}
			seen = append(seen, auditIDs(got)...)
			q.Before = got[len(got)-1].ID
		}
		wantEqual(t, "IDs over the pages, "+c.name, seen, c.want)
	}
}

func auditLimit(t *testing.T, s store.Store) {
	ctx := t.Context()
	n := mesh.MaxListLimit + 10
	es := make([]store.AuditEntry, n)
	for i := range es {
		es[i] = store.AuditEntry{
			ID: newID("a"), At: auditBase.Add(time.Duration(i) * time.Millisecond), ActorID: "p1",
			OnBehalfOf: "p1", Action: "messages.send", Target: fmt.Sprint("r", i%3), Result: "ok", Addr: "10.0.0.1:1",
		}
	}
	if err := s.AppendAudit(ctx, es); err != nil {
		t.Fatalf("AppendAudit(%d entries): %v", n, err)
	}
	newest := func(k int) []string {
		out := make([]string, k)
		for i := range k {
			out[i] = es[n-1-i].ID
		}
		return out
	}
	for _, c := range []struct {
		name  string
		limit int
		want  int
	}{
		{"0 (the default)", 0, mesh.DefaultListLimit},
		{"3", 3, 3},
		{"the maximum", mesh.MaxListLimit, mesh.MaxListLimit},
		{"above the maximum", mesh.MaxListLimit + 5, mesh.MaxListLimit},
	} {
		got := listAudit(t, s, store.AuditQuery{Limit: c.limit})
		wantEqual(t, "ListAudit IDs, Limit "+c.name, auditIDs(got), newest(c.want))
	}
	// The limit applies after the filter.
	got := listAudit(t, s, store.AuditQuery{ActorID: "p1", Limit: mesh.MaxListLimit + 5})
	if len(got) != mesh.MaxListLimit {
		t.Errorf("ListAudit(ActorID, above the maximum): %d entries, want %d", len(got), mesh.MaxListLimit)
	}
}

func auditEmptyAppend(t *testing.T, s store.Store) {
	ctx := t.Context()
	for _, none := range [][]store.AuditEntry{nil, {}} {
		if err := s.AppendAudit(ctx, none); err != nil {
			t.Errorf("AppendAudit(%#v): %v", none, err)
		}
	}
	if got := listAudit(t, s, store.AuditQuery{}); len(got) != 0 {
		t.Errorf("ListAudit after empty appends = %v, want none", auditIDs(got))
	}
	es := appendFixture(t, s)
	if err := s.AppendAudit(ctx, nil); err != nil {
		t.Errorf("AppendAudit(nil) after entries: %v", err)
	}
	wantEqual(t, "ListAudit IDs after a further empty append", auditIDs(listAudit(t, s, store.AuditQuery{})),
		pick(es, 4, 3, 2, 1, 0))
}
