package httpapi

import (
	"encoding/json"
	"net/http"

	"github.com/tether-run/tether/store"
)

// publishResponse answers a publish: where the message sits in the log.
type publishResponse struct {
	Channel string       `json:"channel"`
	ID      store.Cursor `json:"id"`
}

// publish serves POST /v1/channels/{channel}/messages. It answers 201 only
// once the store says the message is durable. With an Idempotency-Key, a
// retry within the store's dedup window answers the original cursor, marked
// with the header Idempotent-Replayed: true, and appends nothing.
func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	channel := r.PathValue("channel")
	if e := decodeChannel(channel); e != nil {
		writeError(w, e)
		return
	}
	key := r.Header.Get("Idempotency-Key")
	if e := decodeIdempotencyKey(key); e != nil {
		writeError(w, e)
		return
	}
	body, e := readBody(w, r, a.maxBody, a.body)
	if e != nil {
		writeError(w, e)
		return
	}
	data, e := decodeMessage(body)
	if e != nil {
		writeError(w, e)
		return
	}
	res, err := a.store.Append(r.Context(), channel, data, store.AppendOptions{IdempotencyKey: key})
	if err != nil {
		a.writeStoreError(w, r, err)
		return
	}
	a.published(res.Duplicate)
	if res.Duplicate {
		w.Header().Set("Idempotent-Replayed", "true")
	}
	writeBody(w, http.StatusCreated, appendPublishResponse(make([]byte, 0, 64+len(res.ID)), channel, res.ID))
}

// appendPublishResponse appends the publish answer's JSON and its newline,
// byte for byte what writeJSON makes of publishResponse, without
// reflection: the channel is a valid name (letters, digits and "-_.:"),
// and a cursor is written as it is when it holds no byte that
// encoding/json would escape (engines mint ASCII digits and separators).
func appendPublishResponse(b []byte, channel string, id store.Cursor) []byte {
	for i := 0; i < len(id); i++ {
		if c := id[i]; c < ' ' || c > '~' || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			j, _ := json.Marshal(publishResponse{Channel: channel, ID: id})
			return append(append(b, j...), '\n')
		}
	}
	b = append(b, `{"channel":"`...)
	b = append(b, channel...)
	b = append(b, `","id":"`...)
	b = append(b, id...)
	return append(b, "\"}\n"...)
}
