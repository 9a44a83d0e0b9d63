package mesh

import (
	"regexp"
	"strings"
)

// opDoc describes an operation's request and success response for the OpenAPI document.
type opDoc struct {
	request  string // a schema name, "" for no body
	response string // a schema name, "" for no content
	query    []string
}

// multipartOps take multipart/form-data (their opDoc's request names its schema); binaryOps
// answer with a file's bytes.
var (
	multipartOps = map[string]bool{OpFilesUpload: true}
	binaryOps    = map[string]bool{OpFilesGet: true}
)

var opDocs = map[string]opDoc{
	OpSetupGet:       {"", "SetupState", nil},
	OpSetupCreate:    {"SetupRequest", "Session", nil},
	OpAuthRegister:   {"RegisterRequest", "Session", nil},
	OpAuthLogin:      {"LoginRequest", "Session", nil},
	OpAuthMe:         {"", "Participant", nil},
	OpAuthLogout:     {"", "", nil},
	OpAuthUpdate:     {"ProfileUpdate", "Participant", nil},
	OpAuthPassword:   {"PasswordChange", "Session", nil},
	OpAuthSessions:   {"", "", nil},
	OpAuthDelete:     {"AccountDelete", "", nil},
	OpAuthRefresh:    {"", "Session", nil},
	OpParticipantGet: {"", "Participant", nil},
	OpPermissionsGet: {"", "PermissionList", nil},
	OpRolesList:      {"", "RoleList", nil},
	OpRolesCreate:    {"RoleCreate", "Role", nil},
	OpRolesUpdate:    {"RoleUpdate", "Role", nil},
	OpRolesDelete:    {"", "", nil},
	OpRoleAssign:     {"RoleAssign", "Participant", nil},
	OpParticipants:   {"", "ParticipantList", []string{"q", "limit", "cursor"}},
	OpBan:            {"", "Participant", nil},
	OpUnban:          {"", "Participant", nil},
	OpDeactivate:     {"", "Participant", nil},
	OpReactivate:     {"", "Participant", nil},
	OpSettingsGet:    {"", "Settings", nil},
	OpSettingsUpdate: {"SettingsUpdate", "Settings", nil},
	OpAuditList:      {"", "AuditList", []string{"actorId", "action", "target", "result", "since", "until", "cursor", "limit"}},
	OpPin:            {"", "Message", nil},
	OpUnpin:          {"", "Message", nil},
	OpPinsList:       {"", "MessageList", nil},
	OpLock:           {"", "Message", nil},
	OpUnlock:         {"", "Message", nil},
	OpRoomInvite:     {"InviteRequest", "Room", nil},
	OpInvitesCreate:  {"InviteCreate", "Invite", nil},
	OpInvitesList:    {"", "InviteList", nil},
	OpInvitesDelete:  {"", "", nil},
	OpSearch:         {"", "MessageList", []string{"q", "roomId", "cursor", "limit"}},
	OpFilesUpload:    {"FileUploadForm", "File", nil},
	OpFilesGet:       {"", "", []string{"download"}},
	OpFilesDelete:    {"", "", nil},
	OpFilesList:      {"", "FileList", []string{"cursor", "limit"}},
	OpFeedPost:       {"FeedEventCreate", "Message", nil},
	OpReadMark:       {"ReadMarkRequest", "ReadMark", nil},
	OpThreadsList:    {"", "ThreadList", []string{"cursor", "limit"}},
	OpRoomsList:      {"", "RoomList", []string{"q", "member", "limit", "cursor"}},
	OpRoomsCreate:    {"RoomCreate", "Room", nil},
	OpRoomsGet:       {"", "Room", nil},
	OpRoomsUpdate:    {"RoomUpdate", "Room", nil},
	OpRoomsDelete:    {"", "", nil},
	OpRoomsJoin:      {"", "Room", nil},
	OpRoomsLeave:     {"", "", nil},
	OpRoomsMembers:   {"", "ParticipantList", []string{"limit", "cursor"}},
	OpRoomsKick:      {"KickRequest", "", nil},
	OpRoomsMute:      {"MuteRequest", "", nil},
	OpMessagesList:   {"", "MessageList", []string{"after", "before", "threadId", "limit"}},
	OpMessagesSend:   {"MessageCreate", "Message", nil},
	OpMessagesEdit:   {"MessageEdit", "Message", nil},
	OpMessagesDelete: {"", "", nil},
	OpReactionsAdd:   {"ReactionRequest", "Message", nil},
	OpReactionsDel:   {"", "Message", nil},
}

// OpenAPIRoutes are routes the gateway serves itself, outside the route table.
var OpenAPIRoutes = []Route{
	{Method: "GET", Path: "/api/openapi.json", Summary: "This document"},
	{Method: "GET", Path: "/healthz", Summary: "Alive"},
	{Method: "GET", Path: "/readyz", Summary: "Ready: the bus and the database answer"},
	{Method: "GET", Path: "/metrics", Summary: "Prometheus metrics"},
	{Method: "GET", Path: "/ws", Summary: "The WebSocket (see PROTOCOL.md): send authenticate first"},
}

var paramRe = regexp.MustCompile(`\{([A-Za-z]+)\}`)

// OpenAPI is the OpenAPI 3.1 document of every route, built from the route table.
func OpenAPI() map[string]any {
	paths := map[string]any{}
	add := func(r Route, op map[string]any) {
		item, _ := paths[r.Path].(map[string]any)
		if item == nil {
			item = map[string]any{}
			paths[r.Path] = item
		}
		item[strings.ToLower(r.Method)] = op
	}
	for _, r := range Routes {
		d := opDocs[r.Op]
		op := map[string]any{"operationId": r.Op, "summary": r.Summary, "tags": []string{strings.Split(r.Op, ".")[0]}}
		var params []any
		for _, m := range paramRe.FindAllStringSubmatch(r.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range d.query {
			t := "string"
			if q == "limit" || q == "after" || q == "before" {
				t = "integer"
			}
			params = append(params, map[string]any{"name": q, "in": "query", "required": false, "schema": map[string]any{"type": t}})
		}
		if r.Mutating {
			params = append(params, map[string]any{"name": "Idempotency-Key", "in": "header", "required": false,
				"description": "A repeat from the same participant returns the first result and changes nothing.",
				"schema":      map[string]any{"type": "string", "maxLength": 255}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if d.request != "" {
			ct := "application/json"
			if multipartOps[r.Op] {
				ct = "multipart/form-data"
			}
			op["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				ct: map[string]any{"schema": ref(d.request)}}}
		}
		responses := map[string]any{}
		status := "200"
		switch {
		case binaryOps[r.Op]:
			responses[status] = map[string]any{
				"description": "The file's bytes, with the sniffed Content-Type, Content-Length, an ETag (its SHA-256) and Content-Disposition (inline for images, audio, video, PDF and plain text; attachment otherwise, or with download=1). If-None-Match is honoured (304). HEAD answers the same headers without the bytes.",
				"content":     map[string]any{"*/*": map[string]any{"schema": map[string]any{"type": "string", "contentMediaType": "application/octet-stream"}}}}
			responses["304"] = map[string]any{"description": "Not modified (If-None-Match matched the ETag)"}
			responses["206"] = map[string]any{"description": "One range of the bytes (Range: bytes=a-b, a-, or -n; Accept-Ranges: bytes; If-Range honoured), with Content-Range"}
			responses["416"] = ref("#/components/responses/Error")
		case d.response == "":
			status = "204"
			responses[status] = map[string]any{"description": "Done"}
		default:
			if strings.HasSuffix(r.Op, ".create") || r.Op == OpAuthRegister || r.Op == OpMessagesSend || r.Op == OpFilesUpload || r.Op == OpFeedPost {
				status = "201"
			}
			responses[status] = map[string]any{"description": "OK", "content": map[string]any{
				"application/json": map[string]any{"schema": ref(d.response)}}}
		}
		for _, code := range []string{"400", "429", "500", "503"} {
			responses[code] = ref("#/components/responses/Error")
		}
		if r.Auth {
			op["security"] = []any{map[string]any{"bearer": []string{}}}
			responses["401"] = ref("#/components/responses/Error")
			responses["403"] = ref("#/components/responses/Error")
			responses["404"] = ref("#/components/responses/Error")
		}
		if r.Mutating {
			responses["409"] = ref("#/components/responses/Error")
			responses["413"] = ref("#/components/responses/Error")
			responses["415"] = ref("#/components/responses/Error")
		}
		op["responses"] = responses
		if r.Permission != "" {
			op["x-permission"] = r.Permission
			op["description"] = "Needs the permission `" + r.Permission + "`."
		}
		add(r, op)
	}
	for _, r := range OpenAPIRoutes {
		add(r, map[string]any{"summary": r.Summary, "responses": map[string]any{"200": map[string]any{"description": "OK"}}})
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "The Mesh", "version": "1",
			"description": "The Mesh's REST API. The WebSocket contract is in PROTOCOL.md. Errors have the shape {\"error\": {\"code\", \"message\", \"details\"}}."},
		"paths": paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
			"responses": map[string]any{"Error": map[string]any{"description": "An error", "content": map[string]any{
				"application/json": map[string]any{"schema": ref("ErrorBody")}}}},
			"schemas": schemas(),
		},
	}
}

func ref(name string) map[string]any {
	if strings.HasPrefix(name, "#") {
		return map[string]any{"$ref": name}
	}
	return map[string]any{"$ref": "#/components/schemas/" + name}
}

func obj(required []string, props map[string]any) map[string]any {
	o := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		o["required"] = required
	}
	return o
}

var (
	str      = map[string]any{"type": "string"}
	nullStr  = map[string]any{"type": []string{"string", "null"}}
	boolean  = map[string]any{"type": "boolean"}
	integer  = map[string]any{"type": "integer"}
	dateTime = map[string]any{"type": "string", "format": "date-time"}
)

func listOf(item string) map[string]any {
	return obj([]string{"items", "nextCursor"}, map[string]any{
		"items": map[string]any{"type": "array", "items": ref(item)}, "nextCursor": nullStr})
}

func schemas() map[string]any {
	return map[string]any{
		"ErrorBody": obj([]string{"error"}, map[string]any{"error": obj([]string{"code", "message"}, map[string]any{
			"code": str, "message": str, "details": map[string]any{"type": "object"}})}),
		"Participant": obj([]string{"id", "displayName", "role", "isAgent", "ownerId", "did", "status", "createdAt"}, map[string]any{
			"id": str, "displayName": str, "role": str, "isAgent": boolean, "ownerId": nullStr, "did": nullStr,
			"status": map[string]any{"enum": []string{"online", "away", "offline"}}, "createdAt": dateTime,
			"email": map[string]any{"type": "string", "description": "Only to the participant itself and to holders of manage_members"}}),
		"Room": obj([]string{"id", "name", "topic", "private", "archived", "createdBy", "createdAt", "memberCount"}, map[string]any{
			"id": str, "name": str, "topic": str, "private": boolean, "archived": boolean, "createdBy": str,
			"createdAt": dateTime, "memberCount": integer}),
		"File": obj([]string{"id", "roomId", "uploaderId", "name", "contentType", "size", "sha256", "createdAt", "messageId"}, map[string]any{
			"id": str, "roomId": str, "uploaderId": str, "name": map[string]any{"type": "string", "maxLength": MaxFileNameBytes, "description": "As the uploader named it, without any folder"},
			"contentType": map[string]any{"type": "string", "description": "Sniffed from the bytes, never taken from the client"},
			"size":        integer, "sha256": map[string]any{"type": "string", "description": "Hex SHA-256 of the bytes"}, "createdAt": dateTime,
			"messageId": map[string]any{"type": []string{"string", "null"}, "description": "The message it is attached to; null while only its uploader sees it"}}),
		"FileUploadForm": obj([]string{"roomId", "file"}, map[string]any{
			"roomId": map[string]any{"type": "string", "description": "Before the file part (or as the query parameter roomId)"},
			"file":   map[string]any{"type": "string", "contentMediaType": "application/octet-stream", "description": "The file; its part's filename names it. At most the mesh's maxFileBytes (settings)."}}),
		"FileList":        listOf("File"),
		"ReadMarkRequest": obj([]string{"seq"}, map[string]any{"seq": map[string]any{"type": "integer", "minimum": 1, "description": "Read up to this seq (past the room's last seq: up to the last)"}}),
		"Thread": obj([]string{"root", "replies", "lastReplySeq", "lastReplyAt"}, map[string]any{
			"root": ref("Message"), "replies": map[string]any{"type": "integer", "description": "Replies the caller may see, deleted ones not counted"},
			"lastReplySeq": integer, "lastReplyAt": dateTime}),
		"ThreadList": listOf("Thread"),
		"ReadMark":   obj([]string{"roomId", "seq"}, map[string]any{"roomId": str, "seq": integer}),
		"FeedEvent": obj([]string{"kind", "title"}, map[string]any{
			"kind":  map[string]any{"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,39}$", "description": "A short machine name, such as ci.build"},
			"title": map[string]any{"type": "string", "maxLength": MaxFeedTitleRunes}, "body": str,
			"url":  map[string]any{"type": "string", "format": "uri", "description": "http or https"},
			"data": map[string]any{"type": "object", "description": "The event's own JSON object (at most 8 KiB), kept as sent"}}),
		"FeedEventCreate": obj([]string{"kind", "title"}, map[string]any{
			"kind": str, "title": str, "body": str, "url": str, "data": map[string]any{"type": "object"},
			"threadId": str, "clientMsgId": str}),
		"Message": obj([]string{"id", "roomId", "seq", "authorId", "content", "threadId", "to", "clientMsgId", "createdAt", "editedAt", "deleted", "reactions"}, map[string]any{
			"id": str, "roomId": str, "seq": integer, "authorId": str, "content": str, "threadId": nullStr, "to": nullStr,
			"clientMsgId": nullStr, "createdAt": dateTime, "editedAt": map[string]any{"type": []string{"string", "null"}, "format": "date-time"},
			"deleted": boolean, "pinned": boolean, "locked": boolean,
			"attachments": map[string]any{"type": "array", "items": ref("File"), "description": "Absent when the message has none"},
			"event":       map[string]any{"$ref": "#/components/schemas/FeedEvent", "description": "On feed events only"}, "reactions": map[string]any{"type": "object", "additionalProperties": map[string]any{"type": "array", "items": str}}}),
		"Session":      obj([]string{"token", "participant"}, map[string]any{"token": str, "participant": ref("Participant")}),
		"SetupState":   obj([]string{"needsSetup", "meshName"}, map[string]any{"needsSetup": boolean, "meshName": str}),
		"SetupRequest": obj([]string{"meshName", "email", "password", "displayName"}, map[string]any{"meshName": str, "email": str, "password": map[string]any{"type": "string", "minLength": MinPasswordLength}, "displayName": str}),
		"RegisterRequest": obj([]string{"email", "password", "displayName"}, map[string]any{"email": str, "password": map[string]any{"type": "string", "minLength": MinPasswordLength}, "displayName": str,
			"inviteCode": map[string]any{"type": "string", "description": "Needed while registration is closed"}}),
		"ProfileUpdate":  obj([]string{"displayName"}, map[string]any{"displayName": map[string]any{"type": "string", "maxLength": MaxDisplayNameRunes}}),
		"AccountDelete":  obj([]string{"password"}, map[string]any{"password": str}),
		"PasswordChange": obj([]string{"currentPassword", "newPassword"}, map[string]any{"currentPassword": str, "newPassword": map[string]any{"type": "string", "minLength": MinPasswordLength}}),
		"LoginRequest":   obj([]string{"email", "password"}, map[string]any{"email": str, "password": str}),
		"RoomCreate":     obj([]string{"name"}, map[string]any{"name": str, "topic": str, "private": boolean}),
		"RoomUpdate":     obj(nil, map[string]any{"name": str, "topic": str, "archived": boolean}),
		"KickRequest":    obj([]string{"participantId"}, map[string]any{"participantId": str, "reason": str}),
		"MuteRequest":    obj([]string{"participantId", "durationSeconds"}, map[string]any{"participantId": str, "durationSeconds": integer}),
		"MessageCreate": obj(nil, map[string]any{"content": map[string]any{"type": "string", "maxLength": DefaultMaxContentBytes, "description": "Required, unless attachments are given"},
			"threadId": str, "to": str, "clientMsgId": str,
			"attachments": map[string]any{"type": "array", "maxItems": MaxAttachments, "items": str, "description": "IDs of files the sender uploaded for this room and has not attached yet"}}),
		"MessageEdit":     obj([]string{"content"}, map[string]any{"content": str}),
		"ReactionRequest": obj([]string{"emoji"}, map[string]any{"emoji": str}),
		"RoomList":        listOf("Room"),
		"Permission": obj([]string{"key", "category", "description"}, map[string]any{
			"key": str, "category": map[string]any{"enum": []string{"general", "channels", "members", "bots", "administration"}}, "description": str}),
		"Role": obj([]string{"name", "priority", "permissions", "builtIn"}, map[string]any{
			"name": str, "priority": integer, "permissions": map[string]any{"type": "array", "items": str}, "builtIn": boolean}),
		"PermissionList": obj([]string{"items"}, map[string]any{"items": map[string]any{"type": "array", "items": ref("Permission")}}),
		"RoleList":       obj([]string{"items"}, map[string]any{"items": map[string]any{"type": "array", "items": ref("Role")}}),
		"RoleCreate": obj([]string{"name", "priority"}, map[string]any{"name": map[string]any{"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,39}$"},
			"priority": integer, "permissions": map[string]any{"type": "array", "items": str}}),
		"RoleUpdate": obj(nil, map[string]any{"priority": integer, "permissions": map[string]any{"type": "array", "items": str}}),
		"RoleAssign": obj([]string{"role"}, map[string]any{"role": str}),
		"Settings": obj([]string{"meshName", "registrationOpen", "defaultRole"}, map[string]any{
			"meshName": str, "registrationOpen": boolean, "defaultRole": str}),
		"SettingsUpdate": obj(nil, map[string]any{"meshName": str, "registrationOpen": boolean, "defaultRole": str}),
		"AuditEntry": obj([]string{"id", "at", "actorId", "onBehalfOf", "action", "target", "result"}, map[string]any{
			"id": str, "at": dateTime, "actorId": nullStr, "onBehalfOf": nullStr, "action": str, "target": nullStr,
			"result": map[string]any{"type": "string", "description": "ok, or the error code"}, "addr": str}),
		"AuditList":     listOf("AuditEntry"),
		"InviteRequest": obj([]string{"participantId"}, map[string]any{"participantId": str}),
		"Invite": obj([]string{"code", "createdBy", "createdAt", "expiresAt", "maxUses", "uses"}, map[string]any{
			"code": str, "createdBy": str, "createdAt": dateTime, "expiresAt": map[string]any{"type": []string{"string", "null"}, "format": "date-time"},
			"maxUses": integer, "uses": integer}),
		"InviteCreate":    obj(nil, map[string]any{"maxUses": integer, "expiresInSeconds": integer}),
		"InviteList":      listOf("Invite"),
		"ParticipantList": listOf("Participant"),
		"MessageList":     listOf("Message"),
	}
}
