package join

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// ErrBadSignature means the cluster-info signature for the token's ID does
// not verify: whoever answered does not know the token's secret, or the
// token is not the one the signature was made with.
var ErrBadSignature = errors.New("the JWS signature of cluster-info does not verify with this token: the API server cannot be trusted")

// jwsHeader is the protected header of the bootstrap signer's signatures:
// {"alg":"HS256","kid":"<token ID>"}.
type jwsHeader struct {
	Alg string `json:"alg"`
	Kid string `json:"kid"`
	Typ string `json:"typ,omitempty"`
}

// verifyDetachedJWS checks that jws, a compact JWS with a detached payload
// ("<header>..<signature>", RFC 7515 appendix F), is the bootstrap
// signer's HS256 signature of payload with tok's secret as key and tok's ID
// as key ID.
//
// The bootstrap signer pads secrets shorter than 32 bytes with zeros to
// please its JOSE library; HMAC pads every key shorter than SHA-256's block
// with zeros anyway, so the secret is the key as it is.
func verifyDetachedJWS(jws, payload string, tok bootstrapToken) error {
	parts := strings.Split(jws, ".")
	if len(parts) != 3 || parts[1] != "" {
		return fmt.Errorf("%w: not a detached compact JWS (<header>..<signature>)", ErrBadSignature)
	}
	rawHeader, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return fmt.Errorf("%w: header: %w", ErrBadSignature, err)
	}
	var h jwsHeader
	dec := json.NewDecoder(bytes.NewReader(rawHeader))
	// Any other member (crit, b64, jku, ...) would ask for processing this
	// check does not do: refuse rather than ignore it.
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return fmt.Errorf("%w: header: %w", ErrBadSignature, err)
	}
	if h.Alg != "HS256" {
		return fmt.Errorf("%w: algorithm %q, want HS256", ErrBadSignature, h.Alg)
	}
	if h.Kid != tok.id {
		return fmt.Errorf("%w: signed for token ID %q, not %q", ErrBadSignature, h.Kid, tok.id)
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("%w: signature: %w", ErrBadSignature, err)
	}
	mac := hmac.New(sha256.New, []byte(tok.secret))
	mac.Write([]byte(parts[0]))
	mac.Write([]byte{'.'})
	mac.Write([]byte(base64.RawURLEncoding.EncodeToString([]byte(payload))))
	if !hmac.Equal(mac.Sum(nil), sig) {
		return ErrBadSignature
	}
	return nil
}
