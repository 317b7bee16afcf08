package xdp

// idPool hands out the ids that index the per-service and per-backend
// arrays, lowest first.
type idPool struct {
	free []uint32 // a stack: the next id to hand out is last
	used []bool
}

func newIDPool(n int) *idPool {
	p := &idPool{used: make([]bool, n)}
	p.rebuild()
	return p
}

func (p *idPool) get() (uint32, bool) {
	if len(p.free) == 0 {
		return 0, false
	}
	id := p.free[len(p.free)-1]
	p.free = p.free[:len(p.free)-1]
	p.used[id] = true
	return id, true
}

func (p *idPool) put(id uint32) {
	if int(id) >= len(p.used) || !p.used[id] {
		return
	}
	p.used[id] = false
	p.free = append(p.free, id)
}

// take marks id used without handing it out (adopting pinned state); call
// rebuild after the last take.
func (p *idPool) take(id uint32) {
	if int(id) < len(p.used) {
		p.used[id] = true
	}
}

func (p *idPool) rebuild() {
	p.free = p.free[:0]
	for i := len(p.used) - 1; i >= 0; i-- {
		if !p.used[i] {
			p.free = append(p.free, uint32(i))
		}
	}
}
