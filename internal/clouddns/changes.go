package clouddns

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	dns "google.golang.org/api/dns/v1"

	"github.com/kubeyard/kubeyard/internal/status"
	"github.com/kubeyard/kubeyard/internal/store"
)

func changeKey(project, zone, id string) string {
	return "dns/changes/" + project + "/" + zone + "/" + fmt.Sprintf("%020s", id)
}

// ApplyChange applies a change to a zone's record sets as Cloud DNS does:
// every deletion must name a record set as it is (same TTL and records),
// every addition one that does not exist (or that the change deletes),
// and all of it applies in one transaction, or none of it. The change is
// recorded, numbered in the zone's sequence, and born done.
func (s *Service) ApplyChange(ctx context.Context, project, zone string, c *dns.Change) (*dns.Change, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	z, err := s.GetZone(ctx, project, zone)
	if err != nil {
		return nil, err
	}
	if len(c.Additions) == 0 && len(c.Deletions) == 0 {
		return nil, status.Invalid("change", "The change adds and deletes nothing.")
	}
	type key struct{ name, typ string }
	var writes []store.Write
	deleted := map[key]int64{} // revision of each record set deleted
	for i, rr := range c.Deletions {
		field := fmt.Sprintf("change.deletions[%d]", i)
		k := key{rr.Name, rr.Type}
		if _, twice := deleted[k]; twice {
			return nil, status.Invalid(field, "The change deletes %s %s twice.", rr.Name, rr.Type)
		}
		var cur dns.ResourceRecordSet
		rev, err := s.cfg.Store.Get(ctx, rrsetKey(project, zone, rr.Name, rr.Type), &cur)
		if errors.Is(err, store.ErrNotFound) {
			return nil, status.Errorf(status.NotFound, "The 'entity.change.deletions[%d]' resource named '%s (%s)' does not exist.", i, rr.Name, rr.Type)
		} else if err != nil {
			return nil, err
		}
		if cur.Ttl != rr.Ttl || !slices.Equal(cur.Rrdatas, rr.Rrdatas) {
			return nil, status.Errorf(status.FailedPrecondition, "Precondition not met for 'entity.change.deletions[%d]': %s %s is not as the deletion gives it (TTL %d, %v).", i, rr.Name, rr.Type, cur.Ttl, cur.Rrdatas).
				WithReason("dns.googleapis.com", "conditionNotMet", nil)
		}
		deleted[k] = rev
	}
	added := map[key]bool{}
	for i, rr := range c.Additions {
		field := fmt.Sprintf("change.additions[%d]", i)
		if err := checkRecordSet(field, z, rr); err != nil {
			return nil, err
		}
		k := key{rr.Name, rr.Type}
		if added[k] {
			return nil, status.Invalid(field, "The change adds %s %s twice.", rr.Name, rr.Type)
		}
		added[k] = true
		rr.Kind = "dns#resourceRecordSet"
		rev, replaced := deleted[k]
		if !replaced {
			rev = store.Absent
		}
		writes = append(writes, store.Write{Key: rrsetKey(project, zone, rr.Name, rr.Type), Value: rr, Revision: rev})
	}
	for k, rev := range deleted {
		if added[k] {
			continue // replaced: written above
		}
		if k.name == z.DnsName && (k.typ == "SOA" || k.typ == "NS") {
			return nil, status.Errorf(status.FailedPrecondition, "The zone's own %s record can be replaced, not deleted.", k.typ)
		}
		writes = append(writes, store.Write{Key: rrsetKey(project, zone, k.name, k.typ), Revision: rev})
	}
	for _, rr := range c.Deletions {
		rr.Kind = "dns#resourceRecordSet"
	}
	changes, err := s.ListChanges(ctx, project, zone)
	if err != nil {
		return nil, err
	}
	c.Kind, c.Status = "dns#change", "done"
	c.Id = strconv.Itoa(len(changes) + 1)
	c.StartTime = s.cfg.Clock.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	writes = append(writes, store.Write{Key: changeKey(project, zone, c.Id), Value: c, Revision: store.Absent})
	if err := s.cfg.Store.Commit(ctx, writes...); errors.Is(err, store.ErrConflict) {
		// A record set was added or changed meanwhile by another request.
		return nil, status.Errorf(status.AlreadyExists, "A record set the change adds already exists, or one it deletes changed; nothing was applied.")
	} else if err != nil {
		return nil, err
	}
	return c, nil
}

// GetChange returns one change of a zone.
func (s *Service) GetChange(ctx context.Context, project, zone, id string) (*dns.Change, error) {
	if _, err := s.GetZone(ctx, project, zone); err != nil {
		return nil, err
	}
	c := new(dns.Change)
	if _, err := s.cfg.Store.Get(ctx, changeKey(project, zone, id), c); errors.Is(err, store.ErrNotFound) {
		return nil, status.Errorf(status.NotFound, "The 'parameters.changeId' resource named '%s' does not exist.", id)
	} else if err != nil {
		return nil, err
	}
	return c, nil
}

// ListChanges returns a zone's changes in their sequence.
func (s *Service) ListChanges(ctx context.Context, project, zone string) ([]*dns.Change, error) {
	if _, err := s.GetZone(ctx, project, zone); err != nil {
		return nil, err
	}
	return store.ListAs[dns.Change](ctx, s.cfg.Store, "dns/changes/"+project+"/"+zone+"/")
}
