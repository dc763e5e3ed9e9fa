package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultLeeway is the clock skew allowed on exp and nbf.
const DefaultLeeway = 5 * time.Second

// DefaultMaxTokenBytes bounds a token's length: a longer one is refused
// before any parsing or signature work.
const DefaultMaxTokenBytes = 8 << 10

// MaxSubBytes bounds the sub claim, which connection and job records and
// GET /v1/connections carry.
const MaxSubBytes = 256

// Claims are the claims of a tether token.
type Claims struct {
	jwt.RegisteredClaims
	// Tether holds the permissions; absent means none (an identity only).
	Tether Permissions `json:"tether"`
}

// Config configures a Verifier. With neither Secret nor Keys the
// Verifier runs open (see Verifier.Open).
type Config struct {
	// Secret verifies HS256 tokens (--token-secret-file); at least
	// MinSecretBytes. Nil: HS256 tokens are refused.
	Secret []byte
	// Keys verify RS256, ES256 and EdDSA tokens (--token-keys-file), each
	// only the algorithm of its type.
	Keys []PublicKey
	// Issuer, if set, must equal the token's iss.
	Issuer string
	// Audience, if set, must be among the token's aud.
	Audience string
	// Leeway is the clock skew allowed on exp and nbf. Zero means
	// DefaultLeeway; negative means none.
	Leeway time.Duration
	// MaxTokenBytes bounds a token's length. Zero means
	// DefaultMaxTokenBytes.
	MaxTokenBytes int
	// Now is the clock. Nil means time.Now.
	Now func() time.Time
}

// Verifier checks tokens and turns them into Principals. It is immutable
// after NewVerifier and safe for concurrent use.
type Verifier struct {
	open    bool
	secret  []byte
	byAlg   map[string][]PublicKey
	methods []string
	parser  *jwt.Parser
	max     int
}

// NewVerifier validates cfg and returns a Verifier.
func NewVerifier(cfg Config) (*Verifier, error) {
	if cfg.Secret != nil && len(cfg.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("tether: token secret of %d bytes, want at least %d", len(cfg.Secret), MinSecretBytes)
	}
	if cfg.MaxTokenBytes < 0 {
		return nil, errors.New("tether: negative MaxTokenBytes")
	}
	v := &Verifier{byAlg: map[string][]PublicKey{}, max: cfg.MaxTokenBytes}
	if v.max == 0 {
		v.max = DefaultMaxTokenBytes
	}
	if cfg.Secret == nil && len(cfg.Keys) == 0 {
		v.open = true
		return v, nil
	}
	if cfg.Secret != nil {
		v.secret = append([]byte(nil), cfg.Secret...)
		v.methods = append(v.methods, AlgHS256)
	}
	for _, k := range cfg.Keys {
		if _, err := newPublicKey(k.ID, k.Key); err != nil {
			return nil, fmt.Errorf("tether: token key %q: %w", k.ID, err)
		}
		if k.Alg == "" {
			k, _ = newPublicKey(k.ID, k.Key)
		}
		if len(v.byAlg[k.Alg]) == 0 {
			v.methods = append(v.methods, k.Alg)
		}
		v.byAlg[k.Alg] = append(v.byAlg[k.Alg], k)
	}
	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(v.methods),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Open reports whether v runs open: no secret and no keys configured.
// Then Verify returns Open() for any input, a token or none, and the
// server should say so loudly at start.
func (v *Verifier) Open() bool { return v.open }

// MaxTokenBytes is the longest token Verify considers.
func (v *Verifier) MaxTokenBytes() int { return v.max }

// Verify checks token (the compact JWS, without "Bearer ") and returns
// its Principal. Errors are *Error: CodeTokenExpired when the token is
// genuine but expired, CodeUnauthorized for everything else (none given,
// too long, malformed, signature, algorithm, iss, aud, nbf, claims).
func (v *Verifier) Verify(token string) (*Principal, error) {
	if v.open {
		return Open(), nil
	}
	if token == "" {
		return nil, errNoToken
	}
	if len(token) > v.max {
		return nil, unauthorized(fmt.Sprintf("token longer than %d bytes", v.max))
	}
	var c Claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.key); err != nil {
		return nil, classify(err)
	}
	if err := checkSub(c.Subject); err != nil {
		return nil, unauthorized(err.Error())
	}
	var exp time.Time
	if c.ExpiresAt != nil {
		exp = c.ExpiresAt.Time
	}
	p, err := newPrincipal(c.Subject, exp, c.Tether)
	if err != nil {
		return nil, unauthorized("invalid tether claims: " + err.Error())
	}
	return p, nil
}

// key picks the keys for the token's algorithm, so the algorithm a
// token names can only select keys made for it. WithValidMethods has
// already refused algorithms with no key.
func (v *Verifier) key(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	if alg == AlgHS256 {
		return v.secret, nil
	}
	keys := v.byAlg[alg]
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, k := range keys {
		if kid == "" || k.ID == "" || k.ID == kid {
			set.Keys = append(set.Keys, k.Key)
		}
	}
	if len(set.Keys) == 0 {
		return nil, fmt.Errorf("no %s key with kid %q", alg, kid)
	}
	return set, nil
}

// classify maps a jwt error to a denial. Expiry is reported as
// CodeTokenExpired only when it is the sole problem, since jwt checks
// claims after the signature: a forged token never reads "expired".
func classify(err error) *Error {
	other := []error{
		jwt.ErrTokenMalformed, jwt.ErrTokenUnverifiable, jwt.ErrTokenSignatureInvalid,
		jwt.ErrTokenNotValidYet, jwt.ErrTokenInvalidIssuer, jwt.ErrTokenInvalidAudience,
		jwt.ErrTokenRequiredClaimMissing, jwt.ErrTokenUsedBeforeIssued, jwt.ErrInvalidType,
	}
	for _, o := range other {
		if errors.Is(err, o) {
			return unauthorized(err.Error())
		}
	}
	if errors.Is(err, jwt.ErrTokenExpired) {
		return &Error{Code: CodeTokenExpired, Message: "the token has expired; get a fresh one"}
	}
	return unauthorized(err.Error())
}

func checkSub(sub string) error {
	switch {
	case sub == "":
		return errors.New("the token has no sub")
	case len(sub) > MaxSubBytes:
		return fmt.Errorf("sub longer than %d bytes", MaxSubBytes)
	case !utf8.ValidString(sub):
		return errors.New("sub is not UTF-8")
	}
	for _, r := range sub {
		if unicode.IsControl(r) {
			return errors.New("sub has a control character")
		}
	}
	return nil
}

// errNoToken is the denial of a request that carries no token.
var errNoToken = unauthorized("no token: send Authorization: Bearer <token>, or ?token= where headers cannot be set")

// TokenMissing reports whether err is the denial of a request that
// carried no token at all (a client may then be asked to log in, rather
// than told its token is bad).
func TokenMissing(err error) bool {
	e, ok := AsError(err)
	return ok && e == errNoToken
}

// Sign signs claims with key, the algorithm following the key: a []byte
// secret signs HS256, *rsa.PrivateKey RS256, *ecdsa.PrivateKey (P-256)
// ES256, ed25519.PrivateKey EdDSA. It is for development tokens (tether
// token) and tests; production tokens come from the application's own
// issuer.
func Sign(key any, claims Claims) (string, error) {
	var m jwt.SigningMethod
	switch k := key.(type) {
	case []byte:
		if len(k) < MinSecretBytes {
			return "", fmt.Errorf("tether: secret of %d bytes, want at least %d", len(k), MinSecretBytes)
		}
		m = jwt.SigningMethodHS256
	case *rsa.PrivateKey:
		m = jwt.SigningMethodRS256
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("tether: ES256 needs a P-256 key")
		}
		m = jwt.SigningMethodES256
	case ed25519.PrivateKey:
		m = jwt.SigningMethodEdDSA
	default:
		return "", fmt.Errorf("tether: cannot sign with a %T", key)
	}
	return jwt.NewWithClaims(m, claims).SignedString(key)
}
