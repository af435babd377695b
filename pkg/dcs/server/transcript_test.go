package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The transcript records every HTTP exchange between Patroni 3.0.2 (plus
// curl probes) and a real etcd 3.4. TestTranscriptConformance replays its
// requests, in the order they started, against a one-member pgherd dcs and
// compares each answer's status and JSON shape (keys in order, value
// types; values themselves are masked, except error bodies, which must be
// identical).
// A copy of shared/research/patroni-etcd3-transcript/transcript.jsonl.
const transcriptFile = "testdata/patroni-etcd3-transcript.jsonl"

type trEvent struct {
	Seq      int             `json:"seq"`
	T        time.Time       `json:"t"`
	Event    string          `json:"event"`
	Method   string          `json:"method"`
	Path     string          `json:"path"`
	ReqRaw   string          `json:"req_raw"`
	Status   int             `json:"status"`
	RespRaw  string          `json:"resp_raw"`
	Stream   bool            `json:"stream"`
	Of       int             `json:"of"`
	Raw      string          `json:"raw"`
	RespBody json.RawMessage `json:"resp_body"`
}

// shape renders a JSON document's structure: keys in their order and the
// JSON type of every leaf.
func shape(raw []byte) string {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var b strings.Builder
	var walk func() error
	walk = func() error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				b.WriteByte('{')
				for dec.More() {
					k, _ := dec.Token()
					fmt.Fprintf(&b, "%v:", k)
					if err := walk(); err != nil {
						return err
					}
					b.WriteByte(',')
				}
				dec.Token()
				b.WriteByte('}')
			case '[':
				b.WriteByte('[')
				for dec.More() {
					if err := walk(); err != nil {
						return err
					}
					b.WriteByte(',')
				}
				dec.Token()
				b.WriteByte(']')
			}
		case string:
			b.WriteString("s")
		case json.Number:
			b.WriteString("n")
		case bool:
			fmt.Fprintf(&b, "%v", v)
		case nil:
			b.WriteString("null")
		}
		return nil
	}
	if err := walk(); err != nil {
		return "!" + strings.TrimSpace(string(raw))
	}
	return b.String()
}

var (
	revField  = regexp.MustCompile(`("(?:mod_revision|start_revision|revision)":\s*"?)(\d+)`)
	headerRev = regexp.MustCompile(`"revision":"(\d+)"`)
	leaseID   = regexp.MustCompile(`"ID":"(\d+)"`)
)

type replayer struct {
	t      *testing.T
	base   string
	revs   map[string]string // etcd revision -> ours
	leases map[string]string // etcd lease ID -> ours
	ttl    map[string]time.Duration
	last   map[string]time.Time // etcd lease ID -> last grant/keepalive (transcript time)
}

func (r *replayer) rewrite(body string) string {
	for from, to := range r.leases {
		body = strings.ReplaceAll(body, from, to)
	}
	return revField.ReplaceAllStringFunc(body, func(m string) string {
		s := revField.FindStringSubmatch(m)
		if to, ok := r.revs[s[2]]; ok {
			return s[1] + to
		}
		return m
	})
}

// learn maps etcd's header revision and lease IDs to ours.
func (r *replayer) learn(path, etcdBody, ourBody string, at time.Time) {
	if e, o := headerRev.FindStringSubmatch(etcdBody), headerRev.FindStringSubmatch(ourBody); e != nil && o != nil {
		if _, ok := r.revs[e[1]]; !ok {
			r.revs[e[1]] = o[1]
		}
	}
	e, o := leaseID.FindStringSubmatch(etcdBody), leaseID.FindStringSubmatch(ourBody)
	switch {
	case strings.HasSuffix(path, "/lease/grant") && e != nil && o != nil:
		r.leases[e[1]] = o[1]
		var g struct{ TTL string }
		json.Unmarshal([]byte(etcdBody), &g)
		ttl, _ := strconv.Atoi(g.TTL)
		r.ttl[e[1]] = time.Duration(ttl) * time.Second
		r.last[e[1]] = at
	case strings.HasSuffix(path, "/lease/keepalive") && e != nil && strings.Contains(etcdBody, `"TTL"`):
		r.last[e[1]] = at
	}
}

// expire revokes the leases that etcd had expired by transcript time at,
// standing in for the TTL that a fast replay does not wait out.
func (r *replayer) expire(at time.Time) {
	for id, last := range r.last {
		if last.Add(r.ttl[id]).Before(at) {
			body := fmt.Sprintf(`{"ID":"%s"}`, r.leases[id])
			if resp, err := http.Post(r.base+"/v3/lease/revoke", "application/json", strings.NewReader(body)); err == nil {
				resp.Body.Close()
			}
			delete(r.last, id)
		}
	}
}

type ourStream struct {
	mu   sync.Mutex
	msgs []string
	body io.ReadCloser
}

// wait gives the stream up to two seconds to deliver n entries.
func (st *ourStream) wait(n int) {
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		st.mu.Lock()
		got := len(flattenWatch(st.msgs))
		st.mu.Unlock()
		if got >= n {
			return
		}
	}
}

func TestTranscriptConformance(t *testing.T) {
	f, err := os.Open(transcriptFile)
	if err != nil {
		t.Skipf("transcript not available: %v", err)
	}
	defer f.Close()
	var evs []trEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e trEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	c := newCluster(t, 1, nil)
	r := &replayer{t: t, base: c.servers[0].ClientURL(), revs: map[string]string{"1": "1"},
		leases: map[string]string{}, ttl: map[string]time.Duration{}, last: map[string]time.Time{}}

	etcdRaw := map[int]string{} // watch seq -> etcd's stream bytes
	closedAt := map[int]time.Time{}
	var exchanges []trEvent
	for _, e := range evs {
		switch e.Event {
		case "exchange":
			exchanges = append(exchanges, e)
		case "stream_chunk":
			etcdRaw[e.Of] += e.Raw
		case "stream_client_closed":
			closedAt[e.Of] = e.T
		}
	}
	etcdStreams := map[int][]string{}
	for seq, raw := range etcdRaw {
		dec := json.NewDecoder(strings.NewReader(raw))
		for {
			var m json.RawMessage
			if dec.Decode(&m) != nil {
				break
			}
			etcdStreams[seq] = append(etcdStreams[seq], string(m))
		}
	}
	sort.SliceStable(exchanges, func(i, j int) bool { return exchanges[i].T.Before(exchanges[j].T) })

	ours := map[int]*ourStream{}
	client := &http.Client{}
	for _, e := range exchanges {
		for seq, st := range ours {
			if at, ok := closedAt[seq]; ok && at.Before(e.T) && st.body != nil {
				r.expire(at)
				st.wait(len(flattenWatch(etcdStreams[seq])))
				st.body.Close()
				st.body = nil
			}
		}
		r.expire(e.T)
		req, _ := http.NewRequest(e.Method, r.base+e.Path, strings.NewReader(r.rewrite(e.ReqRaw)))
		if e.ReqRaw == "" {
			req.Body = http.NoBody
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("seq %d %s: %v", e.Seq, e.Path, err)
		}
		if resp.StatusCode != e.Status {
			t.Errorf("seq %d %s %s: status %d, etcd %d", e.Seq, e.Method, e.Path, resp.StatusCode, e.Status)
		}
		if e.Stream {
			st := &ourStream{body: resp.Body}
			ours[e.Seq] = st
			go func() {
				dec := json.NewDecoder(resp.Body)
				for {
					var m json.RawMessage
					if dec.Decode(&m) != nil {
						return
					}
					st.mu.Lock()
					st.msgs = append(st.msgs, string(m))
					st.mu.Unlock()
				}
			}()
			st.wait(1) // etcd answers "created" at once
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got := strings.TrimSpace(string(body))
		want := strings.TrimSpace(e.RespRaw)
		if e.Status >= 400 && got != want {
			t.Errorf("seq %d %s: error body\n got %s\nwant %s", e.Seq, e.Path, got, want)
		} else if shape([]byte(got)) != shape([]byte(want)) {
			t.Errorf("seq %d %s %s: shape\n got %s\nwant %s\n(body %s)", e.Seq, e.Path, e.ReqRaw, shape([]byte(got)), shape([]byte(want)), got)
		}
		r.learn(e.Path, want, got, e.T)
	}
	// Compare each watch stream: the same messages, except that etcd may
	// batch events differently, so events are compared one by one.
	for seq, st := range ours {
		st.wait(len(flattenWatch(etcdStreams[seq])))
		st.mu.Lock()
		got, want := flattenWatch(st.msgs), flattenWatch(etcdStreams[seq])
		st.mu.Unlock()
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("watch seq %d:\n got %s\nwant %s", seq, strings.Join(got, "\n     "), strings.Join(want, "\n     "))
		}
		if st.body != nil {
			st.body.Close()
		}
	}
}

// flattenWatch turns watch messages into shapes, one per event and one
// per message without events.
func flattenWatch(msgs []string) []string {
	var out []string
	for _, m := range msgs {
		var w struct {
			Result struct {
				Events []json.RawMessage `json:"events"`
			} `json:"result"`
		}
		json.Unmarshal([]byte(m), &w)
		if len(w.Result.Events) == 0 {
			out = append(out, shape([]byte(m)))
		}
		for _, ev := range w.Result.Events {
			out = append(out, "event "+shape(ev))
		}
	}
	return out
}
