package journal

import "time"

// ItemStatus is the state of a treatment plan item.
type ItemStatus string

// Plan item states (after Open Dental's procedure states).
const (
	ItemPlanned   ItemStatus = "planned"
	ItemDone      ItemStatus = "done"
	ItemReferred  ItemStatus = "referred"
	ItemCancelled ItemStatus = "cancelled"
)

// ItemStatuses lists the states.
var ItemStatuses = []ItemStatus{ItemPlanned, ItemDone, ItemReferred, ItemCancelled}

// Plan is a patient's treatment plan. A patient has at most one active
// (not closed) plan.
type Plan struct {
	ID        int64      `json:"id"`
	PersonID  int64      `json:"person_id"`
	CreatedAt time.Time  `json:"created_at"`
	CreatedBy int64      `json:"created_by"`
	ClosedAt  time.Time  `json:"closed_at,omitzero"`
	Items     []PlanItem `json:"items"`
}

// PlanItem is one planned procedure. Items are never changed: a status
// change is a new event, and Status is the latest.
type PlanItem struct {
	ID        int64      `json:"id"`
	PlanID    int64      `json:"plan_id"`
	Tooth     Tooth      `json:"tooth,omitempty"`
	Surfaces  string     `json:"surfaces,omitempty"`
	Procedure string     `json:"procedure"`
	Note      string     `json:"note,omitempty"`
	EntryID   int64      `json:"entry_id"` // the treatment_planned entry that added it
	CreatedAt time.Time  `json:"created_at"`
	Status    ItemStatus `json:"status"`
	StatusAt  time.Time  `json:"status_at"`
	// DoneEntryID is the treatment_performed entry that carried it out.
	DoneEntryID int64 `json:"done_entry_id,omitempty"`
}

// Progress is how far a plan has come: done items of those not cancelled.
type Progress struct {
	Done, Total int
	Percent     int
}

// Progress of the plan.
func (p Plan) Progress() Progress {
	var pr Progress
	for _, it := range p.Items {
		switch it.Status {
		case ItemCancelled:
			continue
		case ItemDone, ItemReferred:
			pr.Done++
		}
		pr.Total++
	}
	if pr.Total > 0 {
		pr.Percent = pr.Done * 100 / pr.Total
	}
	return pr
}
