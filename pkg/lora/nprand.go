package lora

// numpy's legacy RandomState (MT19937 seeded with init_genrand, shuffle with
// masked rejection sampling), so that batch order for a given --seed is the
// one mlx_lm's iterate_batches produces with np.random.seed/permutation.

const mtN = 624

type mt19937 struct {
	mt  [mtN]uint32
	idx int
}

func newMT19937(seed uint32) *mt19937 {
	m := &mt19937{idx: mtN}
	m.mt[0] = seed
	for i := 1; i < mtN; i++ {
		prev := m.mt[i-1]
		m.mt[i] = 1812433253*(prev^(prev>>30)) + uint32(i)
	}
	return m
}

func (m *mt19937) next() uint32 {
	if m.idx >= mtN {
		const upper, lower = 0x80000000, 0x7fffffff
		for i := 0; i < mtN; i++ {
			y := m.mt[i]&upper | m.mt[(i+1)%mtN]&lower
			v := m.mt[(i+397)%mtN] ^ y>>1
			if y&1 != 0 {
				v ^= 0x9908b0df
			}
			m.mt[i] = v
		}
		m.idx = 0
	}
	y := m.mt[m.idx]
	m.idx++
	y ^= y >> 11
	y ^= y << 7 & 0x9d2c5680
	y ^= y << 15 & 0xefc60000
	y ^= y >> 18
	return y
}

// interval returns a uniform integer in [0, max] (max < 2^32), as numpy's
// random_interval: draw 32-bit words masked to max's bit width until one fits.
func (m *mt19937) interval(max uint32) uint32 {
	if max == 0 {
		return 0
	}
	mask := max
	mask |= mask >> 1
	mask |= mask >> 2
	mask |= mask >> 4
	mask |= mask >> 8
	mask |= mask >> 16
	for {
		if v := m.next() & mask; v <= max {
			return v
		}
	}
}

// permutation returns numpy's RandomState.permutation(n).
func (m *mt19937) permutation(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := n - 1; i >= 1; i-- {
		j := int(m.interval(uint32(i)))
		p[i], p[j] = p[j], p[i]
	}
	return p
}
