package sqlite

import (
	"fmt"
	"path/filepath"
	"testing"
)

func TestTmpPlan(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "x.db"), Options{})
	for _, q := range []string{
		withReactions(`SELECT * FROM messages WHERE room_id = ? AND (to_id IS NULL OR to_id = ? OR author_id = ?) ORDER BY seq DESC LIMIT ?`),
		withReactions(`SELECT * FROM messages WHERE id = ? AND room_id = ? AND (to_id IS NULL OR to_id = ? OR author_id = ?) UNION SELECT * FROM messages WHERE thread_id = ? AND room_id = ? AND (to_id IS NULL OR to_id = ? OR author_id = ?) ORDER BY seq DESC LIMIT ?`),
		withReactions(`SELECT * FROM messages WHERE id = ?`),
		`SELECT ` + roomCols + ` FROM rooms r WHERE r.id > ? AND (r.private = 0 OR EXISTS (SELECT 1 FROM memberships m WHERE m.room_id = r.id AND m.participant_id = ?)) ORDER BY r.id LIMIT ?`,
		`SELECT room_id FROM memberships WHERE participant_id = ? ORDER BY room_id`,
		`SELECT participant_id FROM memberships WHERE room_id = ? ORDER BY id`,
	} {
		rows, err := s.r.db.Query("EXPLAIN QUERY PLAN "+q, 1, 2, 3, 4, 5, 6, 7, 8, 9)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Println("----")
		for rows.Next() {
			var id, parent, nu int
			var d string
			rows.Scan(&id, &parent, &nu, &d)
			fmt.Println(parent, d)
		}
		rows.Close()
	}
}
