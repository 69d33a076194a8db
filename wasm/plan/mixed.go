package plan

import (
	"fmt"
	"slices"
)

// option is one format a tensor may take in the mixed allocation, with its measured loss.
type option struct {
	loss  *Loss
	bits  int
	bytes int64
	per   []float64 // per-sample loss (the mean alone when the file has no samples)
}

// minBits is the narrowest width the allocation uses while the budget allows every tensor that
// wide: 2-bit formats enter only when nothing else fits. Their measured losses do not add up:
// on mkmodel's llama-tiny the mixed plan held to uniform q4-sym-g32-f16's bytes put layer 1's
// ffn_up and ffn_down at q2 to buy upgrades elsewhere, was predicted better than the uniform
// plan (worst prompt KL 3.75 against 4.08) and measured worse (5.10 against 3.48; README,
// "Precision plans"). At int4's bytes, and on USE-lite at the budgets measured (none, int4's,
// q4-sym-g32-f16's), the plan is the same with and without 2-bit candidates.
const minBits = 4

// allocate is the sensitivity-driven choice. Every tensor starts at its cheapest measured
// format; then, one step at a time, the upgrade with the most error removed per byte added is
// taken while it fits the budget, until the predicted worst sample is within maxLoss (0: until
// nothing more fits). Error is the sum over tensors of each one's measured loss per
// calibration sample (losses of small independent perturbations add); a step is judged by the
// mean plus the worst sample of that sum, so the worst sentence counts, not just the average.
func (r *Request) allocate(p *Plan, pol Policy, idx []int, budget int64, maxLoss float64) error {
	var fixed int64
	for i := range p.Tensors {
		if !slices.Contains(idx, i) {
			fixed += p.Tensors[i].Bytes
		}
	}
	samples := max(r.Sensitivity.Samples, 1)
	opts := make([][]option, len(idx))
	for n, i := range idx {
		ts := r.Sensitivity.Of(p.Tensors[i].Name)
		for k := range ts.Formats {
			l := &ts.Formats[k]
			f, err := ParseFormat(l.Format)
			if err != nil {
				return err
			}
			b := r.Tensors[i].Bytes(f)
			if len(r.Backends) > 0 && r.Backends[0].cannotHold(f, b) != "" {
				continue
			}
			per := l.PerSample
			if len(per) != samples {
				per = slices.Repeat([]float64{l.Mean}, samples)
			}
			opts[n] = append(opts[n], option{loss: l, bits: f.Bits, bytes: b, per: per})
		}
		slices.SortFunc(opts[n], func(a, b option) int { return int(a.bytes - b.bytes) })
		if len(opts[n]) == 0 {
			return fmt.Errorf("%w: tensor %q: none of its measured formats fits %s", ErrNoFit, p.Tensors[i].Name, r.Backends[0].Backend)
		}
	}
	narrowOnlyIfForced(opts, fixed, budget)
	cur := make([]int, len(idx))
	sum := make([]float64, samples)
	total := fixed
	for n := range idx {
		total += opts[n][0].bytes
		for s, v := range opts[n][0].per {
			sum[s] += v
		}
	}
	score := func(sum []float64) (j, worst float64) {
		for _, v := range sum {
			j += v / float64(len(sum))
			worst = max(worst, v)
		}
		return j + worst, worst
	}
	next := make([]float64, samples)
	for {
		now, worst := score(sum)
		if (maxLoss > 0 || budget == 0) && worst <= maxLoss {
			break
		}
		bestN, bestK, bestRatio := -1, -1, 0.0
		for n := range idx {
			from := opts[n][cur[n]]
			for k := cur[n] + 1; k < len(opts[n]); k++ {
				to := opts[n][k]
				add := to.bytes - from.bytes
				if add <= 0 || budget > 0 && total+add > budget {
					continue
				}
				for s := range sum {
					next[s] = sum[s] - from.per[s] + to.per[s]
				}
				j, _ := score(next)
				if ratio := (now - j) / float64(add); ratio > bestRatio {
					bestN, bestK, bestRatio = n, k, ratio
				}
			}
		}
		if bestN < 0 {
			break
		}
		from, to := opts[bestN][cur[bestN]], opts[bestN][bestK]
		for s := range sum {
			sum[s] += to.per[s] - from.per[s]
		}
		total += to.bytes - from.bytes
		cur[bestN] = bestK
	}
	for n, i := range idx {
		o := opts[n][cur[n]]
		c := &p.Tensors[i]
		c.Format, _ = ParseFormat(o.loss.Format)
		c.Bytes = o.bytes
		cheapest := opts[n][0]
		c.Reason = fmt.Sprintf("%s: measured loss alone %.2g (at %s: %.2g)", pol.Name, o.loss.Mean, cheapest.loss.Format, cheapest.loss.Mean)
		if err := r.place(c, &r.Tensors[i], true); err != nil {
			return err
		}
	}
	return nil
}

// narrowOnlyIfForced drops every tensor's options below minBits when each tensor has one at
// least that wide and the cheapest of those all fit the budget (or there is none).
func narrowOnlyIfForced(opts [][]option, fixed, budget int64) {
	floor := fixed
	for _, o := range opts {
		k := slices.IndexFunc(o, func(x option) bool { return x.bits >= minBits })
		if k < 0 {
			return
		}
		floor += o[k].bytes
	}
	if budget > 0 && floor > budget {
		return
	}
	for n := range opts {
		opts[n] = slices.DeleteFunc(opts[n], func(x option) bool { return x.bits < minBits })
	}
}
