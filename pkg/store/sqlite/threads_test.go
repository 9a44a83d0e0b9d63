package sqlite

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/themesh/mesh/pkg/store"
)

// TestThreadsPlan checks ListThreads' query plan, for each shape of its statement: the room's
// replies are read from messages_room_thread alone (it covers the query), in thread order (no
// sort to group them); the groups are sorted once, inside their subquery, and joined to their
// roots by id in that order (no sort after the join, so the join stops at Limit); no messages
// are scanned.
func TestThreadsPlan(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "mesh.db"), Options{})
	for _, q := range []store.ThreadQuery{
		{RoomID: "r1", Viewer: "a"},
		{RoomID: "r1"},
		{RoomID: "r1", Viewer: "a", Before: 10, Limit: 5},
		{RoomID: "r1", Before: 10},
	} {
		wantThreadsPlan(t, s, q)
	}
}

// wantThreadsPlan fails unless ListThreads' plan for q is the one TestThreadsPlan describes.
// Each step of the plan is written "parent > step".
func wantThreadsPlan(t *testing.T, s *Store, q store.ThreadQuery) {
	t.Helper()
	query, args := threadsQuery(q)
	rows, err := s.r.QueryContext(t.Context(), `EXPLAIN QUERY PLAN `+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	details := map[int]string{}
	var steps []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		details[id] = detail
		steps = append(steps, details[parent]+" > "+detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	plan := strings.Join(steps, "\n")
	for _, want := range []string{
		"CO-ROUTINE t > SEARCH messages USING COVERING INDEX messages_room_thread (room_id=? AND thread_id>?)",
		"CO-ROUTINE t > USE TEMP B-TREE FOR ORDER BY",
		"CO-ROUTINE m > SCAN t",
		"CO-ROUTINE m > SEARCH root USING INDEX sqlite_autoindex_messages_1 (id=?)",
	} {
		if !slices.Contains(steps, want) {
			t.Errorf("plan for %+v lacks %q:\n%s", q, want, plan)
		}
	}
	for _, bad := range []string{"TEMP B-TREE FOR GROUP BY", "SCAN messages", "SCAN root"} {
		if strings.Contains(plan, bad) {
			t.Errorf("plan for %+v has %q:\n%s", q, bad, plan)
		}
	}
	if n := strings.Count(plan, "USE TEMP B-TREE FOR ORDER BY"); n != 1 {
		t.Errorf("plan for %+v sorts %d times, want once (the groups):\n%s", q, n, plan)
	}
}
