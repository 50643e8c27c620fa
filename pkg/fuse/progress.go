package fuse

// sourceBytes is the bytes of every tensor the jobs read.
func (p *planned) sourceBytes() int64 {
	var n int64
	for _, j := range p.jobs {
		for _, s := range j.sources() {
			n += s.numBytes()
		}
	}
	return n
}

func (s *source) numBytes() int64 {
	var n int64
	for _, t := range s.srcs {
		n += t.NumBytes()
	}
	return n
}
