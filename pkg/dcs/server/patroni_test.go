package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgherd/pgherd/internal/testuser"
)

// patroniNode is one Patroni 3.0.2 process (with its PostgreSQL 15) run as
// the unprivileged user pgherd with a clean environment.
type patroniNode struct {
	name, api, dir string
	cmd            *exec.Cmd
}

const patroniYAML = `scope: pgherd-dcs-test
name: %[1]s
namespace: /service
restapi:
  listen: %[2]s
  connect_address: %[2]s
etcd3:
  hosts: %[3]s
  protocol: https
  cacert: %[5]s/client-ca.crt
  cert: %[5]s/etcd.crt
  key: %[5]s/etcd.key
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 2
    retry_timeout: 5
    postgresql:
      use_pg_rewind: true
  initdb:
  - encoding: UTF8
  pg_hba:
  - local all all trust
  - host all all 127.0.0.0/8 trust
  - host replication all 127.0.0.0/8 trust
postgresql:
  listen: %[4]s
  connect_address: %[4]s
  data_dir: %[5]s/data
  bin_dir: /usr/lib/postgresql/15/bin
  pgpass: %[5]s/pgpass
  authentication:
    superuser: {username: postgres, password: su}
    replication: {username: replicator, password: rep}
    rewind: {username: postgres, password: su}
  parameters:
    unix_socket_directories: %[5]s
`

// startPatroni starts Patroni with its own client certificate of the
// cluster's client CA (its etcd3 section says https; urllib3 checks the
// members' host names).
func startPatroni(t *testing.T, dir string, uid, gid uint32, name, api, pg, hosts string, pki *testPKI) *patroniNode {
	t.Helper()
	nd := filepath.Join(dir, name)
	if err := os.MkdirAll(nd, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := pki.pki.IssueClient(nd, "etcd", "patroni-"+name); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{nd, filepath.Join(nd, "etcd.crt"), filepath.Join(nd, "etcd.key"), filepath.Join(nd, "client-ca.crt")} {
		os.Chown(f, int(uid), int(gid))
	}
	file := filepath.Join(nd, "patroni.yml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(patroniYAML, name, api, hosts, pg, nd)), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(file, int(uid), int(gid))
	log, _ := os.Create(filepath.Join(nd, "patroni.log"))
	cmd := exec.Command("/usr/bin/patroni", file)
	cmd.Dir = nd
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + nd, "LANG=C.UTF-8"}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &patroniNode{name: name, api: api, dir: nd, cmd: cmd}
	t.Cleanup(func() { p.kill(); log.Close() })
	return p
}

// kill ends Patroni and its PostgreSQL at once: SIGKILL to Patroni's
// process group, then to the postmaster's (Patroni starts it in a session
// of its own).
func (p *patroniNode) kill() {
	if p.cmd.Process == nil {
		return
	}
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.cmd.Wait()
	raw, err := os.ReadFile(filepath.Join(p.dir, "data", "postmaster.pid"))
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(raw), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pid > 0 {
		syscall.Kill(-pid, syscall.SIGKILL)
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

type patroniCluster struct {
	Members []struct {
		Name  string `json:"name"`
		Role  string `json:"role"`
		State string `json:"state"`
	} `json:"members"`
}

func (p *patroniNode) cluster() (patroniCluster, error) {
	var c patroniCluster
	resp, err := http.Get("http://" + p.api + "/cluster")
	if err != nil {
		return c, err
	}
	defer resp.Body.Close()
	return c, json.NewDecoder(resp.Body).Decode(&c)
}

// leaderWithReplica is the name of the leader when the cluster has a
// running leader and a streaming replica.
func (p *patroniNode) leaderWithReplica() string {
	c, err := p.cluster()
	if err != nil {
		return ""
	}
	leader, replica := "", false
	for _, m := range c.Members {
		switch {
		case m.Role == "leader" && m.State == "running":
			leader = m.Name
		case m.Role == "replica" && (m.State == "streaming" || m.State == "running"):
			replica = true
		}
	}
	if !replica {
		return ""
	}
	return leader
}

// TestPatroniOnDCS runs Patroni 3.0.2 (etcd3 section, JSON gateway over
// TLS with a client certificate) on a 3-member pgherd dcs with mutual TLS
// on both ports: bootstrap of a 2-member PostgreSQL 15 cluster, a
// switchover, and a failover after SIGKILL of the primary's Patroni and
// PostgreSQL, which needs the dead leader's lease to expire.
func TestPatroniOnDCS(t *testing.T) {
	if testing.Short() {
		t.Skip("starts PostgreSQL and Patroni")
	}
	if _, err := os.Stat("/usr/bin/patroni"); err != nil {
		t.Skip("patroni is not installed")
	}
	_, uid, gid := testuser.Pgherd(t)
	dir, err := os.MkdirTemp("", "pgherd-dcs-patroni-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)

	p := newTestPKI(t)
	c := newCluster(t, 3, p.secure(nil))
	var hosts []string
	for _, s := range c.servers {
		hosts = append(hosts, hostPort(s.ClientURL()))
	}
	n1 := startPatroni(t, dir, uid, gid, "n1", freeLoopback(t, "127.0.1.1"), freeLoopback(t, "127.0.1.1"), strings.Join(hosts, ","), p)
	waitFor(t, 90*time.Second, "n1 to bootstrap as leader", func() bool {
		c, err := n1.cluster()
		return err == nil && len(c.Members) == 1 && c.Members[0].Role == "leader" && c.Members[0].State == "running"
	})
	n2 := startPatroni(t, dir, uid, gid, "n2", freeLoopback(t, "127.0.1.2"), freeLoopback(t, "127.0.1.2"), strings.Join(hosts, ","), p)
	waitFor(t, 90*time.Second, "n2 to stream from n1", func() bool { return n1.leaderWithReplica() == "n1" })

	body := strings.NewReader(`{"leader":"n1","candidate":"n2"}`)
	resp, err := http.Post("http://"+n1.api+"/switchover", "application/json", body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("switchover: HTTP %d", resp.StatusCode)
	}
	waitFor(t, 60*time.Second, "n2 to lead after the switchover", func() bool { return n1.leaderWithReplica() == "n2" })

	n2.kill()
	killed := time.Now()
	waitFor(t, 90*time.Second, "n1 to take over after n2 died", func() bool {
		c, err := n1.cluster()
		if err != nil {
			return false
		}
		for _, m := range c.Members {
			if m.Name == "n1" && m.Role == "leader" && m.State == "running" {
				return true
			}
		}
		return false
	})
	t.Logf("failover after %s (ttl 20s)", time.Since(killed).Round(time.Second))
}

func freeLoopback(t *testing.T, ip string) string {
	t.Helper()
	a := freePort(t)
	_, port, _ := strings.Cut(a, ":")
	return ip + ":" + port
}
