package join

import (
	"encoding/base64"
	"errors"
	"testing"
)

// opensslVector is the bootstrap signer's signature of "hello, cluster"
// with token abcdef.0123456789abcdef, computed apart from this package:
//
//	b64u() { base64 -w0 | tr '+/' '-_' | tr -d '='; }
//	h=$(printf '{"alg":"HS256","kid":"abcdef"}' | b64u)
//	p=$(printf 'hello, cluster' | b64u)
//	s=$(printf '%s.%s' "$h" "$p" | openssl dgst -sha256 -hmac 0123456789abcdef -binary | b64u)
//	echo "$h..$s"
const opensslVector = "eyJhbGciOiJIUzI1NiIsImtpZCI6ImFiY2RlZiJ9..RXmP3lL0GewokptdFaNExydOeCVPnbqVWKzcbHDYKKY"

func header(json string) string { return base64.RawURLEncoding.EncodeToString([]byte(json)) }

func TestVerifyDetachedJWS(t *testing.T) {
	const payload = "hello, cluster"
	tok := bootstrapToken{id: testTokenID, secret: testTokenSecret}
	valid := signDetached(payload, tok.id, tok.secret)
	sig := valid[len(valid)-43:]
	tests := []struct {
		name    string
		jws     string
		payload string
		tok     bootstrapToken
		ok      bool
	}{
		{name: "openssl vector", jws: opensslVector, payload: payload, tok: tok, ok: true},
		{name: "test signer", jws: valid, payload: payload, tok: tok, ok: true},
		{name: "other secret", jws: valid, payload: payload, tok: bootstrapToken{id: tok.id, secret: "fedcba9876543210"}},
		{name: "other token ID", jws: valid, payload: payload, tok: bootstrapToken{id: "zzzzzz", secret: tok.secret}},
		{name: "signed for another ID", jws: signDetached(payload, "zzzzzz", tok.secret), payload: payload, tok: tok},
		{name: "payload changed", jws: valid, payload: payload + " ", tok: tok},
		{name: "empty payload", jws: valid, payload: "", tok: tok},
		{name: "alg none", jws: header(`{"alg":"none","kid":"abcdef"}`) + "..", payload: payload, tok: tok},
		{name: "alg none with signature", jws: header(`{"alg":"none","kid":"abcdef"}`) + ".." + sig, payload: payload, tok: tok},
		{name: "alg HS512", jws: header(`{"alg":"HS512","kid":"abcdef"}`) + ".." + sig, payload: payload, tok: tok},
		{name: "crit header", jws: header(`{"alg":"HS256","kid":"abcdef","crit":["b64"],"b64":false}`) + ".." + sig, payload: payload, tok: tok},
		{name: "no kid", jws: header(`{"alg":"HS256"}`) + ".." + sig, payload: payload, tok: tok},
		{name: "payload attached", jws: header(`{"alg":"HS256","kid":"abcdef"}`) + "." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + sig, payload: payload, tok: tok},
		{name: "two parts", jws: header(`{"alg":"HS256","kid":"abcdef"}`) + "." + sig, payload: payload, tok: tok},
		{name: "four parts", jws: valid + ".", payload: payload, tok: tok},
		{name: "empty", jws: "", payload: payload, tok: tok},
		{name: "header not base64url", jws: "eyJ*lbGc.." + sig, payload: payload, tok: tok},
		{name: "header not JSON", jws: header(`alg=HS256`) + ".." + sig, payload: payload, tok: tok},
		{name: "signature padded", jws: valid + "=", payload: payload, tok: tok},
		{name: "signature truncated", jws: valid[:len(valid)-2], payload: payload, tok: tok},
		{name: "no signature", jws: header(`{"alg":"HS256","kid":"abcdef"}`) + "..", payload: payload, tok: tok},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := verifyDetachedJWS(tt.jws, tt.payload, tt.tok)
			if tt.ok {
				if err != nil {
					t.Fatalf("verifyDetachedJWS() = %v, want success", err)
				}
				return
			}
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("verifyDetachedJWS() = %v, want %v", err, ErrBadSignature)
			}
		})
	}
}

func TestParseToken(t *testing.T) {
	tests := []struct {
		token string
		want  bootstrapToken
		ok    bool
	}{
		{token: "abcdef.0123456789abcdef", want: bootstrapToken{"abcdef", "0123456789abcdef"}, ok: true},
		{token: "a1b2c3.z9y8x7w6v5u4t3s2", want: bootstrapToken{"a1b2c3", "z9y8x7w6v5u4t3s2"}, ok: true},
		{token: ""},
		{token: "abcdef"},
		{token: "abcdef."},
		{token: "abcdef0123456789abcdef"},
		{token: "ABCDEF.0123456789abcdef"},
		{token: "abcdef.0123456789ABCDEF"},
		{token: "abcde.0123456789abcdef"},
		{token: "abcdefg.0123456789abcdef"},
		{token: "abcdef.0123456789abcde"},
		{token: "abcdef.0123456789abcdef0"},
		{token: "abcdef:0123456789abcdef"},
		{token: " abcdef.0123456789abcdef"},
		{token: "abcdef.0123456789abcdef\n"},
		{token: "abc-ef.0123456789abcdef"},
	}
	for _, tt := range tests {
		got, err := parseToken(tt.token)
		if !tt.ok {
			if !errors.Is(err, ErrTokenFormat) {
				t.Errorf("parseToken(%q) error = %v, want %v", tt.token, err, ErrTokenFormat)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseToken(%q) = %+v, %v; want %+v", tt.token, got, err, tt.want)
		}
	}
}
