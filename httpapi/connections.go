package httpapi

import (
	"errors"
	"net/http"

	"github.com/tether-run/tether/conn"
	"github.com/tether-run/tether/registry"
)

// Error codes of the connections admin API (docs/api.md).
const (
	CodeNoConnection = "no_connection"
	CodeBadMode      = "bad_mode"
)

// ConnectionsHandler serves the connections admin API over reg:
//
//   - GET /v1/connections: {"connections": [registry.Info...]}, oldest first.
//   - POST /v1/connections/{id}/close?mode=close|reset|discard (default
//     close): ends the connection with reason kicked and answers 200
//     {"id": ..., "mode": ...} once its transport acted on the socket. mode
//     is the one applied: "reset" when discard was asked for but refused
//     (TCP_REPAIR needs CAP_NET_ADMIN), with "requested": "discard".
//     404 no_connection for an unknown id, 400 bad_mode for another mode.
//
// It is an operator's API: mount it only where operators reach it.
func ConnectionsHandler(reg *registry.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/connections", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, struct {
			Connections []registry.Info `json:"connections"`
		}{reg.List()})
	})
	mux.HandleFunc("POST /v1/connections/{id}/close", func(w http.ResponseWriter, r *http.Request) {
		closeConnection(reg, w, r)
	})
	mux.HandleFunc("/v1/connections", methodNotAllowed)
	mux.HandleFunc("/v1/connections/{id}/close", methodNotAllowed)
	mux.HandleFunc("/", notFound)
	return mux
}

type closeAnswer struct {
	ID        string         `json:"id"`
	Mode      conn.CloseMode `json:"mode"`
	Requested conn.CloseMode `json:"requested,omitempty"`
}

func closeConnection(reg *registry.Registry, w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	mode := conn.CloseMode(r.URL.Query().Get("mode"))
	switch mode {
	case "":
		mode = conn.CloseGraceful
	case conn.CloseGraceful, conn.CloseReset, conn.CloseDiscard:
	default:
		writeError(w, errorf(http.StatusBadRequest, CodeBadMode, "mode must be close, reset or discard"))
		return
	}
	err := reg.Close(id, mode)
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, closeAnswer{ID: id, Mode: mode})
	case errors.Is(err, registry.ErrNoConnection):
		writeError(w, errorf(http.StatusNotFound, CodeNoConnection, "no live connection "+id))
	case errors.Is(err, conn.ErrDiscardRefused):
		writeJSON(w, http.StatusOK, closeAnswer{ID: id, Mode: conn.CloseReset, Requested: mode})
	default:
		writeError(w, errorf(http.StatusInternalServerError, CodeInternal, "closing "+id+": "+err.Error()))
	}
}
