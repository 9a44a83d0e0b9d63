package apisvc

import (
	"bytes"
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"unicode/utf8"

	"github.com/themesh/mesh/pkg/mesh"
)

var feedKind = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,39}$`)

// feedPost posts a feed event into a room: a message whose Event says what happened, and
// whose content is its title and body (for clients that do not render events). The rules of
// posting apply (see post); threads and clientMsgId too.
func (s *Service) feedPost(ctx context.Context, c *call) (any, error) {
	room, err := roomParam(c)
	if err != nil {
		return nil, err
	}
	var in struct {
		Kind        string          `json:"kind"`
		Title       string          `json:"title"`
		Body        string          `json:"body"`
		URL         string          `json:"url"`
		Data        json.RawMessage `json:"data"`
		ThreadID    *string         `json:"threadId"`
		ClientMsgID *string         `json:"clientMsgId"`
	}
	if err := decode(c, &in); err != nil {
		return nil, err
	}
	if !feedKind.MatchString(in.Kind) {
		return nil, mesh.Errorf(mesh.CodeBadRequest, "kind must be 1 to 40 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit")
	}
	ev := &mesh.FeedEvent{Kind: in.Kind}
	if ev.Title, err = text("title", in.Title, true, mesh.MaxFeedTitleRunes); err != nil {
		return nil, err
	}
	if ev.Body, err = text("body", in.Body, false, 1<<20); err != nil {
		return nil, err
	}
	if in.URL != "" {
		u, err := url.Parse(in.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(in.URL) > mesh.MaxFeedURLBytes {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "url must be an http or https URL of at most %d bytes", mesh.MaxFeedURLBytes)
		}
		ev.URL = in.URL
	}
	if d := bytes.TrimSpace(in.Data); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		if d[0] != '{' || !utf8.Valid(d) {
			return nil, mesh.Errorf(mesh.CodeBadRequest, "data must be a JSON object (UTF-8)")
		}
		if len(d) > mesh.MaxFeedDataBytes {
			return nil, mesh.Errorf(mesh.CodePayloadTooLarge, "data is larger than %d bytes", mesh.MaxFeedDataBytes).
				WithDetails(map[string]any{"maxBytes": mesh.MaxFeedDataBytes})
		}
		ev.Data = d
	}
	content := ev.Title
	if ev.Body != "" {
		content += "\n\n" + ev.Body
	}
	if content, err = s.content(ctx, &content, false); err != nil {
		return nil, err
	}
	return s.post(ctx, c, room, content, messageInput{ThreadID: in.ThreadID, ClientMsgID: in.ClientMsgID}, ev)
}
