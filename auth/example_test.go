package auth_test

import (
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/tether-run/tether/auth"
)

func Example() {
	secret := []byte("a secret of at least thirty-two bytes")
	v, err := auth.NewVerifier(auth.Config{Secret: secret})
	if err != nil {
		panic(err)
	}

	// The application's login signs a token for alice.
	c := auth.Claims{Tether: auth.Permissions{Subscribe: []string{"chat.>"}, Publish: []string{"chat.*"}}}
	c.Subject = "alice"
	c.ExpiresAt = jwt.NewNumericDate(time.Now().Add(time.Hour))
	token, _ := auth.Sign(secret, c)

	// tether checks it once per connection, then asks the Principal.
	p, err := v.Verify(token)
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Sub())
	fmt.Println(p.MayPublish("chat.room1"))
	fmt.Println(p.MayPublish("news"))
	fmt.Println(p.MayPublish("job.123"))

	_, err = v.Verify("")
	e, _ := auth.AsError(err)
	fmt.Println(e.Status(), e.Code)
	// Output:
	// alice
	// <nil>
	// forbidden: the token does not allow publishing to "news"
	// forbidden: "job.123" is written by the server alone
	// 401 unauthorized
}
