package xtables

import "strings"

// QuoteComment quotes a comment the way iptables-save prints it: bare when it
// is made only of letters, digits, underscores and dashes, else in double
// quotes, with double quotes, single quotes and backslashes escaped by a
// backslash.
func QuoteComment(s string) string {
	bare := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			bare = false
			break
		}
	}
	if bare {
		return s
	}
	if !strings.ContainsAny(s, `"\'`) {
		return `"` + s + `"`
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		if r == '"' || r == '\\' || r == '\'' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

// maxComment is the longest comment the comment match takes (256 bytes with
// the terminating NUL).
const maxComment = 255

// CommentText makes a service's name safe to put in a comment: Kubernetes
// names never need it, but a renderer must not let any State produce input
// iptables-restore cannot parse (nor a comment "berth rules explain" would
// have to unescape).
func CommentText(s string) string {
	safe := func(r rune) bool {
		return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:", r)
	}
	if strings.IndexFunc(s, func(r rune) bool { return !safe(r) }) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if safe(r) {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Comment returns the comment match for text, cut to what the kernel takes
// and quoted as iptables-save would, as one argument of Writer.Add.
func Comment(text string) string {
	if len(text) > maxComment {
		text = text[:maxComment]
	}
	return "-m comment --comment " + QuoteComment(text)
}

// JoinRule joins a rule's arguments (as Split returns them) into the line
// iptables-save prints, quoting comments as it does.
func JoinRule(args []string) string {
	parts := make([]string, len(args))
	for i, a := range args {
		if i > 0 && args[i-1] == "--comment" {
			a = QuoteComment(a)
		}
		parts[i] = a
	}
	return strings.Join(parts, " ")
}
