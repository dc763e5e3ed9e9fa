package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strings"
)

// Signing algorithms tether accepts. The key decides the algorithm: an
// HS256 token is checked only against the secret, an RS256 token only
// against RSA keys, and so on, so no key is ever used with an algorithm
// it was not made for (RFC 8725 section 3.1); "none" is never accepted.
const (
	AlgHS256 = "HS256"
	AlgRS256 = "RS256"
	AlgES256 = "ES256"
	AlgEdDSA = "EdDSA"
)

// MinSecretBytes is the shortest HS256 secret: RFC 7518 section 3.2
// requires a key at least as long as the hash output, 256 bits.
const MinSecretBytes = 32

// MinRSABits is the smallest RSA modulus accepted for RS256 (RFC 7518
// section 3.3 requires 2048 bits or more).
const MinRSABits = 2048

// maxKeyFileBytes bounds what a secret or keys file may hold, so a wrong
// path (a log, /dev/zero) fails clearly instead of eating memory.
const maxKeyFileBytes = 1 << 20

// PublicKey is one verification key: RSA (RS256), ECDSA P-256 (ES256) or
// Ed25519 (EdDSA).
type PublicKey struct {
	// ID is the JWK "kid", "" for a PEM key. When a token names a kid and
	// some keys have IDs, only the key with that ID is tried.
	ID string
	// Alg is the algorithm the key verifies, derived from its type.
	Alg string
	// Key is *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey.
	Key crypto.PublicKey
}

// LoadSecretFile reads an HS256 secret (--token-secret-file). Trailing
// line breaks are dropped, so a file written by echo works; the rest is
// used as bytes, unencoded. It must hold at least MinSecretBytes.
func LoadSecretFile(path string) ([]byte, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	b = bytes.TrimRight(b, "\r\n")
	if len(b) < MinSecretBytes {
		return nil, fmt.Errorf("tether: token secret in %s: %d bytes, want at least %d", path, len(b), MinSecretBytes)
	}
	return b, nil
}

// LoadKeysFile reads public keys (--token-keys-file): a JWKS document
// (RFC 7517) if the file starts with '{', else PEM blocks (PUBLIC KEY,
// RSA PUBLIC KEY or CERTIFICATE). See ParseKeys.
func LoadKeysFile(path string) ([]PublicKey, error) {
	b, err := readBounded(path)
	if err != nil {
		return nil, err
	}
	keys, err := ParseKeys(b)
	if err != nil {
		return nil, fmt.Errorf("tether: token keys in %s: %w", path, err)
	}
	return keys, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("tether: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("tether: %w", err)
	}
	if len(b) > maxKeyFileBytes {
		return nil, fmt.Errorf("tether: %s is larger than %d bytes", path, maxKeyFileBytes)
	}
	return b, nil
}

// ParseKeys parses a JWKS document or PEM blocks holding one or more
// public keys. Private keys are refused (the server only verifies), as
// are RSA keys under MinRSABits, curves other than P-256 and JWKs whose
// "alg" disagrees with their type. JWKs with "use": "enc" are skipped.
func ParseKeys(data []byte) ([]PublicKey, error) {
	var keys []PublicKey
	var err error
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		keys, err = parseJWKS(t)
	} else {
		keys, err = parsePEM(data)
	}
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no public key found")
	}
	return keys, nil
}

func parsePEM(data []byte) ([]PublicKey, error) {
	var keys []PublicKey
	for n := 1; ; n++ {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var pub any
		var err error
		switch {
		case block.Type == "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(block.Bytes)
		case block.Type == "RSA PUBLIC KEY":
			pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case block.Type == "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				pub = cert.PublicKey
			}
		case strings.Contains(block.Type, "PRIVATE KEY"):
			return nil, fmt.Errorf("PEM block %d is a private key; give public keys only", n)
		default:
			return nil, fmt.Errorf("PEM block %d: unsupported type %q", n, block.Type)
		}
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %v", n, err)
		}
		k, err := newPublicKey("", pub)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d: %v", n, err)
		}
		keys = append(keys, k)
	}
	if len(bytes.TrimSpace(data)) > 0 {
		return nil, errors.New("trailing data that is not a PEM block")
	}
	return keys, nil
}

// newPublicKey checks a key's type and strength and derives its
// algorithm.
func newPublicKey(id string, pub any) (PublicKey, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < MinRSABits {
			return PublicKey{}, fmt.Errorf("RSA key of %d bits, want at least %d", k.N.BitLen(), MinRSABits)
		}
		return PublicKey{ID: id, Alg: AlgRS256, Key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return PublicKey{}, fmt.Errorf("ECDSA key on %s, want P-256 (ES256)", k.Curve.Params().Name)
		}
		return PublicKey{ID: id, Alg: AlgES256, Key: k}, nil
	case ed25519.PublicKey:
		return PublicKey{ID: id, Alg: AlgEdDSA, Key: k}, nil
	}
	return PublicKey{}, fmt.Errorf("unsupported key type %T", pub)
}

// jwk is one key of a JWKS document (RFC 7517, 7518 section 6, RFC 8037).
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	Y   string `json:"y"`
	D   string `json:"d"`
}

func parseJWKS(data []byte) ([]PublicKey, error) {
	var doc struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("JWKS: %v", err)
	}
	var keys []PublicKey
	for i, j := range doc.Keys {
		if j.Use == "enc" {
			continue
		}
		k, err := j.publicKey()
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d (kid %q): %v", i, j.Kid, err)
		}
		if j.Alg != "" && j.Alg != k.Alg {
			return nil, fmt.Errorf("JWKS key %d (kid %q): alg %q, but the key is for %s", i, j.Kid, j.Alg, k.Alg)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func (j jwk) publicKey() (PublicKey, error) {
	if j.D != "" {
		return PublicKey{}, errors.New("a private key; give public keys only")
	}
	switch j.Kty {
	case "RSA":
		n, err := b64(j.N, 0)
		if err != nil {
			return PublicKey{}, fmt.Errorf("n: %v", err)
		}
		e, err := b64(j.E, 0)
		if err != nil || len(e) == 0 || len(e) > 4 {
			return PublicKey{}, errors.New("e: not a small base64url integer")
		}
		exp := new(big.Int).SetBytes(e)
		if exp.Int64() < 3 || exp.Bit(0) == 0 {
			return PublicKey{}, errors.New("e: not an odd integer of 3 or more")
		}
		return newPublicKey(j.Kid, &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(exp.Int64())})
	case "EC":
		if j.Crv != "P-256" {
			return PublicKey{}, fmt.Errorf("crv %q, want P-256", j.Crv)
		}
		x, err1 := b64(j.X, 32)
		y, err2 := b64(j.Y, 32)
		if err := errors.Join(err1, err2); err != nil {
			return PublicKey{}, fmt.Errorf("x, y: %v", err)
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return PublicKey{}, err
		}
		return newPublicKey(j.Kid, pub)
	case "OKP":
		if j.Crv != "Ed25519" {
			return PublicKey{}, fmt.Errorf("crv %q, want Ed25519", j.Crv)
		}
		x, err := b64(j.X, ed25519.PublicKeySize)
		if err != nil {
			return PublicKey{}, fmt.Errorf("x: %v", err)
		}
		return newPublicKey(j.Kid, ed25519.PublicKey(x))
	}
	return PublicKey{}, fmt.Errorf("unsupported kty %q", j.Kty)
}

// b64 decodes base64url without padding (RFC 7515 section 2), tolerating
// padding; size > 0 demands exactly that many bytes.
func b64(s string, size int) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, err
	}
	if size > 0 && len(b) != size {
		return nil, fmt.Errorf("%d bytes, want %d", len(b), size)
	}
	return b, nil
}
