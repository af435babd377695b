package patroni

import (
	"context"
	"fmt"
)

// ClusterPgHBA returns the cluster-wide pg_hba (postgresql.pg_hba of the
// dynamic configuration); ok is false when the cluster has none (made
// before pgherd kept it there).
func (c *Client) ClusterPgHBA(ctx context.Context) (lines []string, ok bool, err error) {
	m, err := c.Config(ctx)
	if err != nil {
		return nil, false, err
	}
	pg, _ := m["postgresql"].(map[string]any)
	list, ok := pg["pg_hba"].([]any)
	if !ok {
		return nil, false, nil
	}
	for _, l := range list {
		s, isString := l.(string)
		if !isString {
			return nil, false, fmt.Errorf("Patroni's postgresql.pg_hba holds %v, not a line", l)
		}
		lines = append(lines, s)
	}
	return lines, true, nil
}

// SetClusterPgHBA replaces the cluster-wide pg_hba. Every member whose
// own YAML has no postgresql.pg_hba writes its pg_hba.conf from it and
// reloads, on its next HA loop.
func (c *Client) SetClusterPgHBA(ctx context.Context, lines []string) error {
	if len(lines) == 0 {
		return fmt.Errorf("refusing an empty pg_hba: no connection at all would be allowed")
	}
	_, err := c.PatchConfig(ctx, map[string]any{"postgresql": map[string]any{"pg_hba": lines}})
	return err
}

// ClearLocalPgHBA removes postgresql.pg_hba from the member's YAML at path
// (so that the cluster-wide one applies) and reports whether it had one.
// Patroni applies the file on Client.Reload.
func ClearLocalPgHBA(path string) (bool, error) {
	c, err := ReadFile(path)
	if err != nil {
		return false, err
	}
	if len(c.PostgreSQL.PgHBA) == 0 {
		return false, nil
	}
	c.PostgreSQL.PgHBA = nil
	return true, c.WriteFile(path, ownerOf(path))
}
