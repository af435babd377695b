package mvcc

// Watcher will deliver events to a watch; Store.Watch lands in the next commit.
type Watcher struct{}

// wakeWatchers tells the watchers that a new revision or a compaction happened.
func (s *Store) wakeWatchers() {}
