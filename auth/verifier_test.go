package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var now = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

var secret = []byte("0123456789abcdef0123456789abcdef")

// testKeys are generated once per test binary: RSA generation is slow.
var testKeys = sync.OnceValue(func() (k struct {
	rsa   *rsa.PrivateKey
	rsa2  *rsa.PrivateKey
	ec    *ecdsa.PrivateKey
	ec384 *ecdsa.PrivateKey
	ed    ed25519.PrivateKey
}) {
	k.rsa, _ = rsa.GenerateKey(rand.Reader, 2048)
	k.rsa2, _ = rsa.GenerateKey(rand.Reader, 2048)
	k.ec, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k.ec384, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, k.ed, _ = ed25519.GenerateKey(rand.Reader)
	return k
})

func claims(sub string, exp time.Duration) Claims {
	c := Claims{Tether: Permissions{Subscribe: []string{"news.>"}}}
	c.Subject = sub
	c.ExpiresAt = jwt.NewNumericDate(now.Add(exp))
	return c
}

func sign(t *testing.T, key any, c Claims) string {
	t.Helper()
	s, err := Sign(key, c)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func pemOf(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func newVerifier(t *testing.T, cfg Config) *Verifier {
	t.Helper()
	cfg.Now = clock
	v, err := NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerifyAllows(t *testing.T) {
	k := testKeys()
	keys, err := ParseKeys(append(append(pemOf(t, &k.rsa.PublicKey), pemOf(t, &k.ec.PublicKey)...), pemOf(t, k.ed.Public())...))
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, Config{Secret: secret, Keys: keys})
	for _, key := range []any{secret, k.rsa, k.ec, k.ed} {
		p, err := v.Verify(sign(t, key, claims("alice", time.Hour)))
		if err != nil {
			t.Errorf("%T: %v", key, err)
			continue
		}
		if p.Sub() != "alice" || !p.Expires().Equal(now.Add(time.Hour)) || p.MaySubscribe("news.a") != nil {
			t.Errorf("%T: principal %+v", key, p)
		}
	}
	// Within the leeway an expired or not-yet-valid token still passes.
	if _, err := v.Verify(sign(t, secret, claims("a", -DefaultLeeway+time.Second))); err != nil {
		t.Errorf("expired within leeway: %v", err)
	}
	c := claims("a", time.Hour)
	c.NotBefore = jwt.NewNumericDate(now.Add(DefaultLeeway - time.Second))
	if _, err := v.Verify(sign(t, secret, c)); err != nil {
		t.Errorf("nbf within leeway: %v", err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	k := testKeys()
	rsaPEM := pemOf(t, &k.rsa.PublicKey)
	keys, err := ParseKeys(rsaPEM)
	if err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, Config{Secret: secret, Keys: keys, Issuer: "https://issuer", Audience: "tether"})
	rsaOnly := newVerifier(t, Config{Keys: keys})
	good := func() Claims {
		c := claims("alice", time.Hour)
		c.Issuer, c.Audience = "https://issuer", jwt.ClaimStrings{"tether"}
		return c
	}
	with := func(f func(*Claims)) Claims { c := good(); f(&c); return c }
	noneTok, err := jwt.NewWithClaims(jwt.SigningMethodNone, good()).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	hsWithRSAPEM, err := jwt.NewWithClaims(jwt.SigningMethodHS256, good()).SignedString(rsaPEM)
	if err != nil {
		t.Fatal(err)
	}
	tok := sign(t, secret, good())
	dot := strings.LastIndexByte(tok, '.')
	cases := []struct {
		name  string
		v     *Verifier
		token string
		code  Code
	}{
		{"no token", v, "", CodeUnauthorized},
		{"expired", v, sign(t, secret, with(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-DefaultLeeway - time.Second)) })), CodeTokenExpired},
		{"no exp", v, sign(t, secret, with(func(c *Claims) { c.ExpiresAt = nil })), CodeUnauthorized},
		{"nbf in the future", v, sign(t, secret, with(func(c *Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(time.Minute)) })), CodeUnauthorized},
		{"expired and wrong issuer", v, sign(t, secret, with(func(c *Claims) {
			c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour))
			c.Issuer = "evil"
		})), CodeUnauthorized},
		{"wrong signature (other secret)", v, sign(t, []byte("another secret of thirty-two bytes!"), good()), CodeUnauthorized},
		{"wrong signature (other RSA key)", v, sign(t, k.rsa2, good()), CodeUnauthorized},
		{"tampered signature", v, tok[:dot+1] + strings.Repeat("A", len(tok)-dot-1), CodeUnauthorized},
		{"alg none", v, noneTok, CodeUnauthorized},
		{"HS256 signed with the RSA public key", v, hsWithRSAPEM, CodeUnauthorized},
		{"HS256 on an RS-only verifier", rsaOnly, sign(t, secret, good()), CodeUnauthorized},
		{"ES256 with no EC key", v, sign(t, k.ec, good()), CodeUnauthorized},
		{"EdDSA with no Ed key", v, sign(t, k.ed, good()), CodeUnauthorized},
		{"wrong issuer", v, sign(t, secret, with(func(c *Claims) { c.Issuer = "evil" })), CodeUnauthorized},
		{"no issuer", v, sign(t, secret, with(func(c *Claims) { c.Issuer = "" })), CodeUnauthorized},
		{"wrong audience", v, sign(t, secret, with(func(c *Claims) { c.Audience = jwt.ClaimStrings{"other"} })), CodeUnauthorized},
		{"no sub", v, sign(t, secret, with(func(c *Claims) { c.Subject = "" })), CodeUnauthorized},
		{"sub with control character", v, sign(t, secret, with(func(c *Claims) { c.Subject = "a\nb" })), CodeUnauthorized},
		{"sub too long", v, sign(t, secret, with(func(c *Claims) { c.Subject = strings.Repeat("a", MaxSubBytes+1) })), CodeUnauthorized},
		{"malformed pattern", v, sign(t, secret, with(func(c *Claims) { c.Tether.Publish = []string{"a.>.b"} })), CodeUnauthorized},
		{"malformed job type", v, sign(t, secret, with(func(c *Claims) { c.Tether.Jobs = []string{"a b"} })), CodeUnauthorized},
		{"oversized", v, strings.Repeat("a", DefaultMaxTokenBytes+1), CodeUnauthorized},
		{"garbage", v, "not.a.jwt", CodeUnauthorized},
		{"two parts", v, "abc.def", CodeUnauthorized},
		{"bearer prefix left in", v, "Bearer " + tok, CodeUnauthorized},
	}
	for _, c := range cases {
		p, err := c.v.Verify(c.token)
		e, ok := AsError(err)
		if p != nil || !ok || e.Code != c.code || e.Status() != 401 {
			t.Errorf("%s: got %v, %v; want 401 %s", c.name, p, err, c.code)
			continue
		}
		if c.code == CodeTokenExpired && !errors.Is(err, ErrTokenExpired) || c.code == CodeUnauthorized && !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: errors.Is fails for %v", c.name, err)
		}
	}
	if _, err := v.Verify(tok); err != nil {
		t.Fatalf("the good token itself: %v", err)
	}
	if _, err := v.Verify(""); !TokenMissing(err) || WWWAuthenticate(err) != `Bearer realm="tether"` {
		t.Errorf("missing token: TokenMissing/WWWAuthenticate wrong for %v", err)
	}
	if _, err := v.Verify("x.y.z"); TokenMissing(err) || !strings.Contains(WWWAuthenticate(err), "invalid_token") {
		t.Errorf("bad token: TokenMissing/WWWAuthenticate wrong for %v", err)
	}
}

func TestNewVerifierConfig(t *testing.T) {
	v, err := NewVerifier(Config{})
	if err != nil || !v.Open() {
		t.Fatalf("empty config: %v, open %v; want open", err, v != nil && v.Open())
	}
	if p, err := v.Verify("garbage"); err != nil || !p.IsOpen() {
		t.Errorf("open Verify = %v, %v; want Open()", p, err)
	}
	if _, err := NewVerifier(Config{Secret: []byte("short")}); err == nil {
		t.Error("short secret accepted")
	}
	if _, err := NewVerifier(Config{Secret: secret, MaxTokenBytes: -1}); err == nil {
		t.Error("negative MaxTokenBytes accepted")
	}
	small := newVerifier(t, Config{Secret: secret, MaxTokenBytes: 64})
	if _, err := small.Verify(sign(t, secret, claims("a", time.Hour))); err == nil || !strings.Contains(err.Error(), "longer than 64") {
		t.Errorf("MaxTokenBytes 64: %v", err)
	}
}

func jwkOf(t *testing.T, kid string, pub crypto.PublicKey) map[string]string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig", "n": enc(k.N.Bytes()), "e": "AQAB"}
	case *ecdsa.PublicKey:
		b, err := k.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		return map[string]string{"kty": "EC", "kid": kid, "crv": "P-256", "x": enc(b[1:33]), "y": enc(b[33:])}
	case ed25519.PublicKey:
		return map[string]string{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": enc(k)}
	}
	t.Fatalf("jwkOf %T", pub)
	return nil
}

func writeJWKS(t *testing.T, keys ...map[string]string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func signKid(t *testing.T, m jwt.SigningMethod, kid string, key any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims("alice", time.Hour))
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWKS(t *testing.T) {
	k := testKeys()
	path := writeJWKS(t,
		jwkOf(t, "r1", &k.rsa.PublicKey), jwkOf(t, "r2", &k.rsa2.PublicKey),
		jwkOf(t, "e1", &k.ec.PublicKey), jwkOf(t, "d1", k.ed.Public()),
		map[string]string{"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}, // skipped
	)
	keys, err := LoadKeysFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 4 {
		t.Fatalf("loaded %d keys, want 4", len(keys))
	}
	v := newVerifier(t, Config{Keys: keys})
	ok := []struct {
		name, kid string
		m         jwt.SigningMethod
		key       any
	}{
		{"RSA r1", "r1", jwt.SigningMethodRS256, k.rsa},
		{"RSA r2", "r2", jwt.SigningMethodRS256, k.rsa2},
		{"RSA no kid", "", jwt.SigningMethodRS256, k.rsa2},
		{"EC", "e1", jwt.SigningMethodES256, k.ec},
		{"Ed25519", "d1", jwt.SigningMethodEdDSA, k.ed},
	}
	for _, c := range ok {
		if _, err := v.Verify(signKid(t, c.m, c.kid, c.key)); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	bad := []struct {
		name, kid string
		m         jwt.SigningMethod
		key       any
	}{
		{"kid names the other RSA key", "r2", jwt.SigningMethodRS256, k.rsa},
		{"unknown kid", "zz", jwt.SigningMethodRS256, k.rsa},
		{"kid of an EC key on an RS token", "e1", jwt.SigningMethodRS256, k.rsa},
		{"RS384 not accepted", "r1", jwt.SigningMethodRS384, k.rsa},
		{"PS256 not accepted", "r1", jwt.SigningMethodPS256, k.rsa},
	}
	for _, c := range bad {
		if _, err := v.Verify(signKid(t, c.m, c.kid, c.key)); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s: %v, want unauthorized", c.name, err)
		}
	}
}

func TestParseKeysRefuses(t *testing.T) {
	k := testKeys()
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	privDER, _ := x509.MarshalPKCS8PrivateKey(k.ec)
	rsaJWK := jwkOf(t, "r", &k.rsa.PublicKey)
	withField := func(m map[string]string, key, val string) map[string]string {
		c := map[string]string{}
		for a, b := range m {
			c[a] = b
		}
		c[key] = val
		return c
	}
	jwks := func(keys ...map[string]string) []byte {
		b, _ := json.Marshal(map[string]any{"keys": keys})
		return b
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"no keys in JWKS", jwks()},
		{"not JSON", []byte("{nope")},
		{"not PEM", []byte("hello")},
		{"private key PEM", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})},
		{"RSA 1024", pemOf(t, &small.PublicKey)},
		{"P-384", pemOf(t, &k.ec384.PublicKey)},
		{"trailing garbage", append(pemOf(t, &k.rsa.PublicKey), "junk"...)},
		{"JWK private", jwks(withField(rsaJWK, "d", "AQAB"))},
		{"JWK alg mismatch", jwks(withField(rsaJWK, "alg", "ES256"))},
		{"JWK bad n", jwks(withField(rsaJWK, "n", "!!"))},
		{"JWK even e", jwks(withField(rsaJWK, "e", "Ag"))},
		{"JWK unknown kty", jwks(map[string]string{"kty": "oct", "k": "AAAA"})},
		{"JWK EC off curve", jwks(map[string]string{"kty": "EC", "crv": "P-256", "x": strings.Repeat("A", 43), "y": strings.Repeat("A", 43)})},
		{"JWK EC P-384", jwks(map[string]string{"kty": "EC", "crv": "P-384", "x": "AA", "y": "AA"})},
		{"JWK Ed short x", jwks(map[string]string{"kty": "OKP", "crv": "Ed25519", "x": "AAAA"})},
	}
	for _, c := range cases {
		if keys, err := ParseKeys(c.data); err == nil {
			t.Errorf("%s: got %d keys, want an error", c.name, len(keys))
		}
	}
	// RSA PUBLIC KEY (PKCS #1) and CERTIFICATE blocks are accepted.
	pk1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	if keys, err := ParseKeys(pk1); err != nil || len(keys) != 1 || keys[0].Alg != AlgRS256 {
		t.Errorf("PKCS #1: %v %v", keys, err)
	}
}

func TestLoadSecretFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := LoadSecretFile(write("ok", string(secret)+"\n"))
	if err != nil || string(got) != string(secret) {
		t.Errorf("LoadSecretFile = %q, %v", got, err)
	}
	if _, err := LoadSecretFile(write("short", "short\n")); err == nil {
		t.Error("short secret accepted")
	}
	if _, err := LoadSecretFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing file accepted")
	}
}
