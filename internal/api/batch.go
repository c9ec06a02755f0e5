package api

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"

	"github.com/kubeyard/kubeyard/internal/api/codec"
	"github.com/kubeyard/kubeyard/internal/status"
)

// batchHandler serves Google's batch endpoint (POST /batch/compute/v1),
// which gcloud uses for a command on several resources: a multipart/mixed
// body of HTTP requests, answered by a multipart/mixed body of their
// responses, in order. Each request runs through api, the same routes as
// when sent alone; the batch itself was authenticated.
func batchHandler(api http.Handler, prefix string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mediaType, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		if err != nil || mediaType != "multipart/mixed" || params["boundary"] == "" {
			codec.Write(w, status.Invalid("", "A batch request is multipart/mixed with a boundary."))
			return
		}
		parts := multipart.NewReader(r.Body, params["boundary"])
		var out bytes.Buffer
		mw := multipart.NewWriter(&out)
		for {
			part, err := parts.NextPart()
			if err == io.EOF {
				break
			}
			if err != nil {
				codec.Write(w, status.Invalid("", "Malformed batch request: %v", err))
				return
			}
			inner, err := http.ReadRequest(bufio.NewReader(part))
			if err != nil {
				codec.Write(w, status.Invalid("", "Malformed request in the batch: %v", err))
				return
			}
			rec := httptest.NewRecorder()
			if !strings.HasPrefix(inner.URL.Path, prefix) {
				codec.Write(rec, status.Invalid("", "This batch endpoint takes requests under %s, not %s.", prefix, inner.URL.Path))
			} else {
				inner.RequestURI = ""
				api.ServeHTTP(rec, inner.WithContext(r.Context()))
			}
			header := textproto.MIMEHeader{"Content-Type": {"application/http"}}
			if id := part.Header.Get("Content-ID"); id != "" {
				header.Set("Content-ID", "<response-"+strings.Trim(id, "<>")+">")
			}
			pw, err := mw.CreatePart(header)
			if err != nil {
				codec.Write(w, err)
				return
			}
			resp := rec.Result()
			fmt.Fprintf(pw, "HTTP/1.1 %s\r\n", resp.Status)
			resp.Header.Write(pw)
			fmt.Fprint(pw, "\r\n")
			io.Copy(pw, resp.Body)
		}
		mw.Close()
		w.Header().Set("Content-Type", "multipart/mixed; boundary="+mw.Boundary())
		w.Write(out.Bytes())
	})
}
