package proxy

import (
	"cmp"
	"reflect"
)

// changedServices returns the Name.Key() of every service port whose rules
// differ between prev and next: added, removed or changed. Both States'
// Services are sorted by key, as Compute leaves them.
func changedServices(prev, next *State) map[string]bool {
	changed := map[string]bool{}
	i, j := 0, 0
	for i < len(prev.Services) || j < len(next.Services) {
		switch {
		case j == len(next.Services):
			changed[prev.Services[i].Name.Key()] = true
			i++
		case i == len(prev.Services):
			changed[next.Services[j].Name.Key()] = true
			j++
		default:
			a, b := &prev.Services[i], &next.Services[j]
			switch c := cmp.Compare(a.Name.Key(), b.Name.Key()); {
			case c < 0:
				changed[a.Name.Key()] = true
				i++
			case c > 0:
				changed[b.Name.Key()] = true
				j++
			default:
				// DeepEqual rather than a field list, so that a field added
				// to ServicePort can never be missed.
				if !reflect.DeepEqual(a, b) {
					changed[a.Name.Key()] = true
				}
				i++
				j++
			}
		}
	}
	return changed
}

// sameGlobals tells whether everything but the services is equal: when it
// is not, every rule may change and the sync must be full.
func sameGlobals(prev, next *State) bool {
	a, b := *prev, *next
	a.Services, b.Services = nil, nil
	return reflect.DeepEqual(a, b)
}
