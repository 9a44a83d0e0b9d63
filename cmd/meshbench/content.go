package main

import (
	"bytes"
	"strconv"
)

// A bench message's content is plain ASCII that JSON never escapes:
//
//	mb1 <run> <epoch> <sentUnixNano> <sender>.<n>[ xxxx...]
//
// run tells this tool's messages from any other traffic, epoch the measurement (a step of
// the step mode) they belong to, sentUnixNano the time just before the frame was written,
// and <sender>.<n> the sending socket and its sequence. Padding brings the content up to
// -msg-size bytes.
const contentMagic = "mb1 "

var contentMagicBytes = []byte(contentMagic)

// appendContent appends a content to dst; size is the minimum length (0 for none).
func appendContent(dst []byte, run string, epoch uint32, sent int64, sender int, n uint64, size int) []byte {
	start := len(dst)
	dst = append(dst, contentMagic...)
	dst = append(dst, run...)
	dst = append(dst, ' ')
	dst = strconv.AppendUint(dst, uint64(epoch), 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, sent, 10)
	dst = append(dst, ' ')
	dst = strconv.AppendInt(dst, int64(sender), 10)
	dst = append(dst, '.')
	dst = strconv.AppendUint(dst, n, 10)
	if pad := size - (len(dst) - start); pad > 1 {
		dst = append(dst, ' ')
		for i := 1; i < pad; i++ {
			dst = append(dst, 'x')
		}
	}
	return dst
}

// parseContent reads the epoch and send time of a content made by appendContent for run.
// ok is false for any other content.
func parseContent(c, run []byte) (epoch uint32, sent int64, ok bool) {
	if !bytes.HasPrefix(c, contentMagicBytes) {
		return 0, 0, false
	}
	c = c[len(contentMagic):]
	if !bytes.HasPrefix(c, run) || len(c) <= len(run) || c[len(run)] != ' ' {
		return 0, 0, false
	}
	c = c[len(run)+1:]
	e, c, ok := nextField(c)
	if !ok {
		return 0, 0, false
	}
	ev, ok := atoi64(e)
	if !ok || ev < 0 || ev > 1<<32-1 {
		return 0, 0, false
	}
	s, _, ok := nextField(c)
	if !ok {
		return 0, 0, false
	}
	sv, ok := atoi64(s)
	if !ok || sv <= 0 {
		return 0, 0, false
	}
	return uint32(ev), sv, true
}

// nextField splits c at its first space; the field must not be empty.
func nextField(c []byte) (field, rest []byte, ok bool) {
	i := bytes.IndexByte(c, ' ')
	if i < 0 {
		return nil, nil, false
	}
	if i == 0 {
		return nil, nil, false
	}
	return c[:i], c[i+1:], true
}
